"""Composition root: settings, database bootstrap, migrations, the CLI and the stack launcher."""

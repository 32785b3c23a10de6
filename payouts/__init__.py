"""Composition root: configuration, database bootstrap, migrations, the CLI and the stack launcher."""

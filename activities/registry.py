"""The activities the worker registers, built once per worker process with its dependencies."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine


def build_activities(engine: Engine) -> list[Callable[..., Any]]:
    """Bound activity methods of the classes that hold the worker's database engine."""
    return []

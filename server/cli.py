"""The ``payouts`` command: run the whole stack, or one part of it, and manage API keys.

    payouts run                    everything in the foreground (make run)
    payouts worker                 the Temporal worker alone (scale out)
    payouts api                    the HTTP API alone, in PAYOUTS_API_WORKERS processes
    payouts migrate                apply the database migrations and exit
    payouts api-keys create ...    create an API key and print it once (--mode test: sk_test_)
    payouts reconcile FILE         reconcile a bank statement CSV and print the report

Configuration comes from the environment (server/settings.py). Without ``DATABASE_URL`` every
command uses the embedded PostgreSQL in ``$PAYOUTS_DATA_DIR/postgres`` (attaching to it when a
running stack already started it); ``worker`` and ``api`` then also apply the migrations.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from server.database import create_api_engine, create_db_engine, database, migrate
from server.settings import Settings, get_settings

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine
    from temporalio.runtime import Runtime

    from server.worker_observability import WorkerMetrics

# Each command imports what only it needs (the worker no web framework, the API no workflow
# code): `payouts run` starts three Python processes at once, and imports are most of their
# start-up time.

log = logging.getLogger("payouts")


def configure_process_logging(settings: Settings) -> None:
    """JSON lines on stderr unless it is a terminal (observability.logs); every command."""
    from observability.logs import configure_logging

    fmt = settings.payouts_log_format
    configure_logging(
        settings.payouts_log_level, json_lines=None if fmt == "auto" else fmt == "json"
    )


def temporal_address(settings: Settings) -> str:
    return settings.temporal_address or f"127.0.0.1:{settings.payouts_temporal_port}"


# ---------------------------------------------------------------------------------------------
# Commands


def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    from server.stack import run_stack

    return run_stack(settings)


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    with database(settings) as url:
        migrate(url)
    print("migrations applied")
    return 0


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    with database(settings, migrate_embedded=True) as url:
        engine = create_db_engine(url, pool_size=settings.payouts_db_pool_size)
        try:
            asyncio.run(_serve_worker(settings, engine))
        finally:
            engine.dispose()
    return 0


async def _serve_worker(settings: Settings, engine: Engine) -> None:
    """Connect to Temporal (retrying while it starts), then run until SIGTERM or SIGINT."""
    from server.temporal_server import connect_when_ready
    from server.worker import run_worker

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    address = temporal_address(settings)
    metrics, runtime = _start_worker_metrics(settings)
    connecting = asyncio.create_task(
        connect_when_ready(
            address, namespace=settings.temporal_namespace, timeout=120, runtime=runtime
        )
    )
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({connecting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if stop.is_set():
        connecting.cancel()
        return
    stopping.cancel()
    client = connecting.result()
    log.info("worker connected to Temporal at %s", address)
    try:
        await run_worker(
            client,
            engine,
            stop=stop,
            max_concurrent_activities=settings.payouts_worker_max_concurrent_activities,
        )
    finally:
        if metrics is not None:
            metrics.stop()


def _start_worker_metrics(settings: Settings) -> tuple[WorkerMetrics | None, Runtime | None]:
    """The worker's metrics endpoint (PAYOUTS_WORKER_METRICS_PORT, 0: none) and the Temporal
    runtime that exports the SDK's metrics to it. A port already taken costs the metrics, not
    the worker: it logs an error and runs without."""
    from server.worker_observability import WorkerMetrics

    if settings.payouts_worker_metrics_port == 0:
        return None, None
    metrics = WorkerMetrics(
        settings.payouts_worker_metrics_host, settings.payouts_worker_metrics_port
    )
    try:
        return metrics, metrics.start()
    except OSError as exc:
        log.error(
            "worker metrics endpoint not started on %s:%d: %s",
            settings.payouts_worker_metrics_host,
            settings.payouts_worker_metrics_port,
            exc,
        )
        return None, None


def cmd_api(settings: Settings, args: argparse.Namespace) -> int:
    """The admin key and the embedded database here, once; then the server, in this process
    (PAYOUTS_API_WORKERS=1) or in N worker processes (server/api_server.py)."""
    from api.auth import ensure_admin_key
    from server.api_server import run_api_workers, serve_api

    workers = settings.payouts_api_workers
    with database(settings, migrate_embedded=True) as url:
        engine = create_api_engine(
            url,
            pool_size=settings.payouts_db_pool_size,
            request_timeout=settings.payouts_api_request_timeout,
        )
        try:
            key = ensure_admin_key(engine, settings.payouts_admin_api_key)
            if key:
                print(f"Admin API key (shown only this once, keep it): {key}", flush=True)
            if workers == 1:
                serve_api(settings, engine)
                return 0
        finally:
            engine.dispose()
        # Each worker process makes its own engine and Temporal client.
        return run_api_workers(settings, url, workers)


def cmd_api_keys_create(settings: Settings, args: argparse.Namespace) -> int:
    from api.auth import create_api_key, parse_mode

    if args.role == "seller" and not args.seller:
        print("error: --seller is required for a seller key", file=sys.stderr)
        return 2
    if args.role == "wallet" and not args.wallet_id:
        print("error: --wallet-id is required for a wallet key", file=sys.stderr)
        return 2
    with database(settings, migrate_embedded=True) as url:
        engine = create_db_engine(url, pool_size=1)
        try:
            with engine.begin() as conn:
                livemode = parse_mode(args.mode)
                mismatch = _owner_of_other_mode(conn, args, livemode)
                if mismatch is not None:
                    print(f"error: {mismatch}", file=sys.stderr)
                    return 2
                plaintext, _record = create_api_key(
                    conn,
                    role=args.role,
                    seller_id=args.seller,
                    wallet_id=args.wallet_id,
                    name=args.name or f"{args.mode} {args.role} key (payouts api-keys create)",
                    livemode=livemode,
                )
        finally:
            engine.dispose()
    print(plaintext)
    return 0


def _owner_of_other_mode(conn: Connection, args: argparse.Namespace, livemode: bool) -> str | None:
    """A seller or wallet key for a seller or wallet of the other mode would see nothing (to a
    key, the other mode's objects do not exist): say so instead of making it."""
    from sqlalchemy import select

    from marketplace.tables import sellers, wallets

    table, owner = (sellers, args.seller) if args.role == "seller" else (wallets, args.wallet_id)
    if args.role not in ("seller", "wallet") or owner is None:
        return None
    found = conn.execute(select(table.c.livemode).where(table.c.id == owner)).scalar_one_or_none()
    if found is None or found == livemode:
        return None
    mode = "live" if found else "test"
    return f"{args.role} {owner!r} is a {mode}-mode {args.role}: make its key with --mode {mode}"


def cmd_reconcile(settings: Settings, args: argparse.Namespace) -> int:
    """Reconcile a bank statement CSV; exit 0 when everything matched, 1 when not, 2 when the
    file cannot be read."""
    from marketplace.errors import StatementUnreadable
    from marketplace.reconciliation import format_report, reconcile_statement

    try:
        with open(args.file, "rb") as statement:
            content = statement.read()
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with database(settings, migrate_embedded=True) as url:
        engine = create_db_engine(url, pool_size=1)
        try:
            with engine.begin() as conn:
                report = reconcile_statement(conn, content, filename=os.path.basename(args.file))
        except StatementUnreadable as exc:
            print(f"error: {args.file}: {exc.message}", file=sys.stderr)
            return 2
        finally:
            engine.dispose()
    print(format_report(report))
    return 0 if report.all_matched else 1


# ---------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="payouts",
        description="Payout platform: ledger, Temporal workflows and HTTP API.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser(
        "run",
        help="start everything in the foreground: PostgreSQL, Temporal, worker, API",
    ).set_defaults(handler=cmd_run)
    commands.add_parser("worker", help="run the Temporal worker alone").set_defaults(
        handler=cmd_worker
    )
    commands.add_parser(
        "api", help="serve the HTTP API alone (PAYOUTS_API_WORKERS processes)"
    ).set_defaults(handler=cmd_api)
    commands.add_parser("migrate", help="apply database migrations and exit").set_defaults(
        handler=cmd_migrate
    )

    api_keys = commands.add_parser("api-keys", help="manage API keys")
    api_keys_commands = api_keys.add_subparsers(dest="api_keys_command", required=True)
    create = api_keys_commands.add_parser("create", help="create a key and print it once")
    create.add_argument("--role", required=True, choices=["admin", "operator", "seller", "wallet"])
    create.add_argument("--seller", help="seller id (required for --role seller)")
    create.add_argument("--wallet-id", help="wallet id (required for --role wallet)")
    create.add_argument("--name", help="a label to recognise the key by")
    create.add_argument(
        "--mode",
        choices=["live", "test"],
        default="live",
        help="live (default: sk_live_..., live objects only) or test (sk_test_..., test-mode "
        "objects only: test ledgers, sellers, wallets, payouts to the simulated bank)",
    )
    create.set_defaults(handler=cmd_api_keys_create)

    reconcile = commands.add_parser(
        "reconcile",
        help="match a bank statement CSV against the payouts, keep and print the report "
        "(exit 1 when anything did not match)",
    )
    reconcile.add_argument("file", help="CSV: date,amount,currency,reference (minor units)")
    reconcile.set_defaults(handler=cmd_reconcile)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = get_settings()
    configure_process_logging(settings)
    code: int = args.handler(settings, args)
    return code


if __name__ == "__main__":
    sys.exit(main())

"""``python -m payment_rail``: the simulated bank as an HTTP service (``payment_rail.service``).

Settings come from ``PAYOUTS_RAIL_*`` (``payment_rail.settings``); the options override them.
Prints ``Simulated bank listening on <url>`` once it accepts connections (with ``--port 0`` that
line tells the port). Stops on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
from contextlib import suppress
from pathlib import Path

from payment_rail.service import serve
from payment_rail.settings import RailSettings


def main(argv: list[str] | None = None) -> None:
    settings = RailSettings()
    parser = argparse.ArgumentParser(prog="python -m payment_rail", description=__doc__)
    parser.add_argument("--host", default=settings.host)
    parser.add_argument("--port", type=int, default=settings.port, help="0: any free port")
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="default: $PAYOUTS_DATA_DIR/rail"
    )
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    with suppress(KeyboardInterrupt):  # Ctrl-C: uvicorn and the bank have shut down already
        serve(
            settings,
            host=args.host,
            port=args.port,
            data_dir=args.data_dir,
            on_ready=lambda url: print(f"Simulated bank listening on {url}", flush=True),
            log_level=args.log_level,
        )


if __name__ == "__main__":
    main()

"""The payment rail's settings (``PAYOUTS_RAIL_*`` environment variables), with defaults.

Read by the simulated bank (in-process or as a service) and by ``open_payment_rail``, which the
platform uses to get its ``PaymentRail``. docs/api/rail.md lists them.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_WEBHOOK_SECRET = "whsec_simulated_bank_dev"
"""The dev default of ``PAYOUTS_RAIL_WEBHOOK_SECRET``: the bank and the platform share it when
neither sets one, so ``make run`` works out of the box. Set a real secret anywhere else."""


class RailSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAYOUTS_RAIL_", extra="ignore")

    url: str | None = Field(
        default=None,
        description="Base URL of the rail's HTTP API. Set: the platform talks to it over HTTP "
        "(HttpPaymentRail). Unset: open_payment_rail runs the simulated bank in-process.",
    )
    api_key: str | None = Field(
        default=None,
        description="Bearer key: the service requires it when set; the client sends it.",
    )
    test_url: str | None = Field(
        default=None,
        description="Where test-mode payouts go: the base URL of a simulated bank service "
        "(python -m payment_rail). Unset: the simulated bank in-process. Test-mode payouts "
        "never go to the live rail (url), whatever it is.",
    )
    test_api_key: str | None = Field(
        default=None, description="Bearer key of the test_url service, when it requires one."
    )
    settle_seconds: float = Field(
        default=2.0, ge=0, description="Delay between acceptance and paid/failed."
    )
    instant_settle_seconds: float = Field(
        default=1.0,
        ge=0,
        le=2,
        description="Delay between acceptance and paid/failed of an instant payout (the "
        "real-time rail: at most 2 s, whatever settle_seconds is).",
    )
    return_seconds: float = Field(
        default=10.0, ge=0, description="Delay between paid and returned (return test account)."
    )
    webhook_url: str | None = Field(
        default=None,
        description="Where the bank POSTs its events (the platform's /v1/rail/webhooks). "
        "Unset: events are kept until a URL is set (only status polling tells).",
    )
    webhook_secret: str = Field(
        default=DEFAULT_WEBHOOK_SECRET,
        description="HMAC-SHA256 key of the Rail-Signature header (shared with the platform).",
    )
    webhook_max_attempts: int = Field(
        default=8, ge=1, description="Delivery attempts per event before the bank gives up."
    )
    webhook_retry_seconds: float = Field(
        default=1.0,
        gt=0,
        description="Back-off before the 2nd attempt; doubles each time (capped at 60 s).",
    )
    webhook_timeout_seconds: float = Field(default=5.0, gt=0)
    data_dir: Path | None = Field(
        default=None,
        description="Where the bank keeps its SQLite state (rail.sqlite3). Unset: the service "
        "uses $PAYOUTS_DATA_DIR/rail (default .data/rail); in-process keeps memory only.",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8100, description="Port of the service (0: any free port).")

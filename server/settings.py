"""Configuration from environment variables, with embedded defaults when none are set."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from marketplace import InstantTerms


def available_cpus() -> int:
    """The CPUs this process may run on: its affinity mask (what ``taskset`` or a cpuset
    allows), else the machine's count; at least 1. A cgroup CPU quota (``docker --cpus``) is not
    seen: set PAYOUTS_API_WORKERS there."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


class Settings(BaseSettings):
    """Every knob the platform reads. Unset means the embedded single-machine default."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    database_url: str | None = Field(
        default=None,
        description="PostgreSQL URL. Unset: an embedded PostgreSQL in $PAYOUTS_DATA_DIR/postgres.",
    )
    payouts_data_dir: Path = Field(default=Path(".data"))
    payouts_api_host: str = "127.0.0.1"
    payouts_api_port: int = 8000
    payouts_admin_api_key: str | None = None
    payouts_api_workers: int = Field(
        default_factory=available_cpus,
        ge=1,
        description="API worker processes sharing the listening socket (each with its own "
        "database pool and Temporal client). 1: the API serves in the `payouts api` process. "
        "Unset or empty: the CPUs available.",
    )
    payouts_db_pool_size: int = 20
    payouts_worker_max_concurrent_activities: int = 20

    temporal_address: str | None = Field(
        default=None,
        description="host:port of a Temporal frontend. Unset: start the Temporal dev server.",
    )
    temporal_namespace: str = "default"
    payouts_temporal_port: int = 7233
    payouts_temporal_ui_port: int = 8233

    payouts_log_level: str = "INFO"
    payouts_log_format: str = Field(
        default="auto",
        pattern="^(auto|json|text)$",
        description="auto: JSON lines unless stderr is a terminal; json; text.",
    )
    payouts_worker_metrics_host: str = "127.0.0.1"
    payouts_worker_metrics_port: int = Field(
        default=9464,
        ge=0,
        le=65535,
        description="Port of the worker's Prometheus endpoint (platform and Temporal SDK "
        "metrics). 0: no endpoint.",
    )

    payouts_rail_poll_seconds: float = Field(
        default=60.0,
        gt=0,
        description="How long a payout waits for the rail's webhook before asking the rail "
        "(then again with back-off, at most hourly).",
    )
    payouts_instant_fee_bp: int = Field(
        default=150,
        ge=0,
        le=10_000,
        description="Fee of an instant payout in basis points of its amount (150 = 1.5 %), "
        "rounded up to the minor unit.",
    )
    payouts_instant_fee_minimum: int = Field(
        default=50,
        ge=0,
        description="The smallest fee of an instant payout, minor units.",
    )
    payouts_instant_daily_limit: int = Field(
        default=1_000_000,
        ge=0,
        description="Instant payouts per seller and UTC day, minor units of their amounts "
        "(a seller's own limit, if set, wins).",
    )
    payouts_instant_poll_seconds: float = Field(
        default=5.0,
        gt=0,
        description="How long an instant payout waits for the rail's webhook before asking "
        "the rail (at most PAYOUTS_RAIL_POLL_SECONDS).",
    )
    payouts_return_window: float = Field(
        default=14.0,
        ge=0,
        description="Days after paid during which a payout workflow still waits for a return.",
    )

    payouts_webhook_retry_initial_seconds: float = Field(
        default=5.0,
        gt=0,
        description="Webhooks to subscribers: the wait before a failed delivery's 2nd attempt "
        "(then doubling).",
    )
    payouts_webhook_retry_max_seconds: float = Field(
        default=3600.0, gt=0, description="The longest wait between two attempts of a delivery."
    )
    payouts_webhook_max_attempts: int = Field(
        default=25,
        ge=1,
        description="Attempts of a delivery before it is marked failed (re-sendable by API).",
    )
    payouts_api_request_timeout: float = Field(
        default=2.0,
        gt=0,
        description="Seconds within which every API request is answered: a connection is "
        "waited for at most a quarter of it, a statement runs at most half of it, a workflow "
        "call waits at most three quarters; past that the answer is a 503 with Retry-After.",
    )
    payouts_api_max_in_flight: int = Field(
        default=200,
        ge=1,
        description="Requests an API process serves at once; more are answered at once with "
        "503 overloaded and Retry-After.",
    )
    payouts_api_key_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        description="How long an API process remembers an authenticated key (no query per "
        "request): a revoked key is refused, and a new one accepted, at most this long after "
        "the change. 0: every request asks the database.",
    )
    payouts_hold_release_window: float = Field(
        default=5.0,
        ge=0,
        description="Seconds: a seller's hold workflow releases what fell due at most once per "
        "window (one wake per seller per window). Short for demos; a day in production costs "
        "one wake per seller a day and releases funds once a day.",
    )
    payouts_worker_max_cached_workflows: int = Field(
        default=10_000,
        ge=0,
        description="Workflows a worker keeps in memory between their tasks (a few tens of KB "
        "each). Fewer than the workflows that wake together (one hold workflow per seller with "
        "holds ending) and every task of theirs replays its history from the start.",
    )
    payouts_hold_sweep_seconds: float = Field(
        default=10.0,
        gt=0,
        description="How often the worker's dispatcher wakes hold workflows whose wake was lost "
        "(a booking's notification missed, Temporal down).",
    )
    payouts_webhook_sweep_seconds: float = Field(
        default=30.0,
        gt=0,
        description="How often the worker's dispatcher looks for deliveries whose notification "
        "was missed.",
    )

    def instant_terms(self) -> InstantTerms:
        from marketplace import InstantTerms  # when needed: the settings load before SQLAlchemy

        return InstantTerms(
            fee_bp=self.payouts_instant_fee_bp,
            fee_minimum=self.payouts_instant_fee_minimum,
            daily_limit=self.payouts_instant_daily_limit,
        )

    @field_validator("payouts_api_workers", mode="before")
    @classmethod
    def _empty_means_default(cls, value: Any) -> Any:
        # docker-compose passes `${PAYOUTS_API_WORKERS:-}` through as "" when .env leaves it
        # empty: that means the default, as it does for every variable there.
        return available_cpus() if value == "" else value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()

"""``/v1/sellers``: a seller's terms (hold period, rolling reserve) and balances."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import Field

from api.schemas.common import (
    AsText,
    Attributes,
    Currency,
    Duration,
    Metadata,
    Name,
    ObjectOut,
    RequestModel,
    ResponseModel,
    SellerId,
)
from api.schemas.test_clocks import ClockId
from contracts.holds import seller_holds_workflow_id
from ledger_core.checks import MAX_AMOUNT
from marketplace import RollingReserve


class RollingReserveIn(RequestModel):
    percent: Annotated[
        Decimal,
        Field(
            gt=0,
            le=100,
            decimal_places=2,
            description="Share of each earning's net held back after it posts (0.01 to 100).",
        ),
    ]
    period: Duration = Field(description="How long each reserve is held, e.g. P90D.")

    def to_domain(self) -> RollingReserve:
        return RollingReserve(percent_bp=int(self.percent * 100), period=self.period)


class RollingReserveOut(ResponseModel):
    percent: float
    period: Duration

    @classmethod
    def from_domain(cls, data: Any, context: dict[str, Any]) -> Any:
        """The domain keeps basis points; the API shows a percentage."""
        return Attributes(data, percent=data.percent_bp / 100)


class SellerCreate(RequestModel):
    id: SellerId
    name: Name
    currency: Currency
    hold_period: Duration = Field(
        default=timedelta(days=7), description="Hold of each earning before it posts."
    )
    rolling_reserve: RollingReserveIn | None = None
    metadata: Metadata = Field(default_factory=dict)
    test_clock: ClockId | None = Field(
        default=None,
        description="A test clock's id: the seller's holds, reserves and payouts follow its "
        "time (fixed at creation).",
    )


class SellerUpdate(RequestModel):
    """Fields to change; what is left out stays. A new hold period or reserve applies to earnings
    booked from now on. ``rolling_reserve: null`` removes the reserve."""

    name: Name | None = None
    hold_period: Duration | None = None
    rolling_reserve: RollingReserveIn | None = None
    metadata: Metadata | None = None
    instant_daily_limit: Annotated[int, Field(strict=True, ge=0, le=MAX_AMOUNT)] | None = Field(
        default=None,
        description="The seller's own daily limit of instant payouts, minor units; null: the "
        "platform's (PAYOUTS_INSTANT_DAILY_LIMIT).",
    )


class SellerOut(ObjectOut):
    id: str
    object: Literal["seller"] = "seller"
    name: str
    currency: str
    currency_exponent: int
    hold_period: Duration
    rolling_reserve: RollingReserveOut | None
    ledger_id: AsText
    ledger_account_id: AsText
    hold_workflow_id: str = Field(description="The seller's hold workflow in the Temporal UI.")
    instant_daily_limit: int | None = Field(
        description="The seller's own daily instant payout limit; null: the platform's."
    )
    test_clock: str | None = Field(description="The seller's test clock (null: none).")
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_domain(cls, data: Any, context: dict[str, Any]) -> Any:
        return Attributes(
            data,
            hold_workflow_id=seller_holds_workflow_id(data.id),
            test_clock=data.test_clock_id,
        )


class BalanceViewOut(ResponseModel):
    credits: int
    debits: int
    amount: int
    currency: str
    currency_exponent: int


class SellerBalancesOut(ObjectOut):
    """The seller's ledger account in DESIGN.md's three views, and what keeps money back."""

    object: Literal["seller_balances"] = "seller_balances"
    seller_id: str
    currency: str
    currency_exponent: int
    pending: BalanceViewOut = Field(description="Everything booked, including earnings on hold.")
    posted: BalanceViewOut = Field(description="Earnings whose hold ended, less lost disputes.")
    available: BalanceViewOut = Field(
        description="Posted, less what is held back (open disputes, rolling reserves): payable."
    )
    on_hold: int = Field(description="Net of earnings still in their hold period.")
    in_reserve: int = Field(description="Rolling reserves held back from posted earnings.")
    in_dispute: int = Field(description="Open chargebacks.")
    in_transit: int = Field(
        description="Payouts reserved and not yet paid (an instant payout's fee included)."
    )
    instant_available: int = Field(
        description="The largest instant payout now: its amount plus its fee fit in available, "
        "and its amount in what is left of today's instant limit."
    )
    instant_limit_remaining: int = Field(
        description="What is left of the seller's daily instant limit today (UTC), minor units."
    )
    ledger_account_id: AsText
    lock_version: int

    @classmethod
    def from_domain(cls, data: Any, context: dict[str, Any]) -> Any:
        """The three views of ``marketplace.SellerBalances`` carry no currency: shown with the
        seller's."""
        views = data.views
        money = {"currency": data.currency, "currency_exponent": data.currency_exponent}
        instant = context["instant"]
        return Attributes(
            data,
            pending=Attributes(views.pending, **money),
            posted=Attributes(views.posted, **money),
            available=Attributes(views.available, **money),
            instant_available=instant.available,
            instant_limit_remaining=instant.remaining_today,
        )

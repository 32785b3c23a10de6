"""Request and response models of the marketplace routes: sellers, earnings, holds, balances and
disputes. Same rules as ``api.schemas``: money is strict integers of minor units, request models
forbid unknown fields, errors are 422 problems before anything runs.

Durations (``hold_period``, ``rolling_reserve.period``) are ISO 8601 durations of days, hours,
minutes and whole seconds (``P7D``, ``PT5S``, ``P1DT12H``, ``P2W``). Months and years are refused:
they have no fixed length, and a hold must end at a known instant.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    Field,
    PlainSerializer,
    WithJsonSchema,
    model_validator,
)

from api.schemas import Amount, Metadata, Name, RequestModel, Text
from contracts.disputes import DisputeResult, dispute_workflow_id
from contracts.holds import EarningResult, seller_holds_workflow_id
from ledger_core import Balance
from marketplace import Dispute, Earning, Hold, RollingReserve, Seller

_DURATION = re.compile(
    r"^P(?!$)(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?$"
)
_CALENDAR = re.compile(r"^P(?:\d+Y)|^P(?:\d+Y)?\d+M")


def parse_duration(value: object) -> timedelta:
    """An ISO 8601 duration without months or years, as a ``timedelta``."""
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 duration string, e.g. P7D or PT12H")
    text = value.strip().upper()
    if _CALENDAR.match(text):
        raise ValueError(
            "months and years have no fixed length; give days, hours, minutes or seconds "
            "(e.g. P30D)"
        )
    match = _DURATION.match(text)
    if match is None or text.endswith("T"):
        raise ValueError(
            f"{value!r} is not an ISO 8601 duration of weeks, days, hours, minutes and whole "
            "seconds (e.g. P7D, PT5S, P1DT12H)"
        )
    parts = {k: int(v) for k, v in match.groupdict().items() if v is not None}
    try:
        return timedelta(**parts)
    except OverflowError:
        raise ValueError("the duration is too long") from None


def format_duration(value: timedelta) -> str:
    """The ISO 8601 form of a whole-seconds, non-negative ``timedelta``: P7D, PT5S, P1DT12H."""
    total = int(value.total_seconds())
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, seconds = divmod(rest, 60)
    date = f"{days}D" if days else ""
    time = "".join(f"{n}{unit}" for n, unit in ((hours, "H"), (minutes, "M"), (seconds, "S")) if n)
    if not date and not time:
        return "PT0S"
    return "P" + date + (f"T{time}" if time else "")


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "format": "duration", "examples": ["P7D", "PT5S"]}),
]
# A plain str: pydantic leaves ``pattern`` out of the JSON schema of a type with an
# AfterValidator (``Text``), so the schema would not say which ids are refused. The pattern
# already keeps out NUL and anything but ASCII.
SellerId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$",
        description="Chosen by the platform: letters, digits and _ . : - (1-128 characters).",
    ),
]
OrderId = Annotated[Text, Field(min_length=1, max_length=200)]
Fee = Annotated[int, Field(strict=True, ge=0, le=2**63 - 1)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code, e.g. USD")]


# ------------------------------------------------------------------------- sellers


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


class RollingReserveOut(BaseModel):
    percent: float
    period: Duration

    @classmethod
    def of(cls, reserve: RollingReserve | None) -> RollingReserveOut | None:
        if reserve is None:
            return None
        return cls(percent=reserve.percent_bp / 100, period=reserve.period)


class SellerCreate(RequestModel):
    id: SellerId
    name: Name
    currency: Currency
    hold_period: Duration = Field(
        default=timedelta(days=7), description="Hold of each earning before it posts."
    )
    rolling_reserve: RollingReserveIn | None = None
    metadata: Metadata = Field(default_factory=dict)


class SellerUpdate(RequestModel):
    """Fields to change; what is left out stays. A new hold period or reserve applies to earnings
    booked from now on. ``rolling_reserve: null`` removes the reserve."""

    name: Name | None = None
    hold_period: Duration | None = None
    rolling_reserve: RollingReserveIn | None = None
    metadata: Metadata | None = None


class SellerOut(BaseModel):
    id: str
    object: Literal["seller"] = "seller"
    name: str
    currency: str
    currency_exponent: int
    hold_period: Duration
    rolling_reserve: RollingReserveOut | None
    ledger_id: str
    ledger_account_id: str
    hold_workflow_id: str = Field(description="The seller's hold workflow in the Temporal UI.")
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, seller: Seller) -> SellerOut:
        return cls(
            id=seller.id,
            name=seller.name,
            currency=seller.currency,
            currency_exponent=seller.currency_exponent,
            hold_period=seller.hold_period,
            rolling_reserve=RollingReserveOut.of(seller.rolling_reserve),
            ledger_id=str(seller.ledger_id),
            ledger_account_id=str(seller.ledger_account_id),
            hold_workflow_id=seller_holds_workflow_id(seller.id),
            metadata=seller.metadata,
            created_at=seller.created_at,
            updated_at=seller.updated_at,
        )


class BalanceViewOut(BaseModel):
    credits: int
    debits: int
    amount: int
    currency: str
    currency_exponent: int


class SellerBalancesOut(BaseModel):
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
    in_transit: int = Field(description="Payouts reserved and not yet paid.")
    ledger_account_id: str
    lock_version: int

    @staticmethod
    def view(balance: Balance, currency: str, exponent: int) -> BalanceViewOut:
        return BalanceViewOut(
            credits=balance.credits,
            debits=balance.debits,
            amount=balance.amount,
            currency=currency,
            currency_exponent=exponent,
        )


# ------------------------------------------------------------------------- earnings and holds


class EarningCreate(RequestModel):
    order_id: OrderId = Field(description="The order's id; books the earning at most once.")
    amount: Amount = Field(description="The order's gross amount, minor units.")
    fee: Fee = Field(default=0, description="The platform's fee, minor units (<= amount).")
    metadata: Metadata = Field(default_factory=dict)

    @model_validator(mode="after")
    def _fee_within_amount(self) -> EarningCreate:
        if self.fee > self.amount:
            raise ValueError("fee must not exceed amount")
        return self


class HoldExtension(RequestModel):
    hold_until: AwareDatetime = Field(
        description="The new end of the hold (ISO 8601 with an offset); later than the current."
    )


class EarningOut(BaseModel):
    order_id: str
    object: Literal["earning"] = "earning"
    seller_id: str
    currency: str
    amount: int = Field(description="Gross, minor units.")
    fee: int
    net: int = Field(description="amount - fee: what the seller earns.")
    status: Literal["on_hold", "posted", "cancelled", "refunded"]
    hold_until: datetime
    posted_at: datetime | None
    cancelled_at: datetime | None
    ledger_transaction_id: str
    reserve_amount: int = Field(description="Held back after posting (rolling reserve).")
    reserve_release_at: datetime | None
    reserve_released_at: datetime | None
    metadata: dict[str, Any]

    @classmethod
    def of(cls, earning: Earning | EarningResult) -> EarningOut:
        return cls(
            order_id=earning.order_id,
            seller_id=earning.seller_id,
            currency=earning.currency,
            amount=earning.amount,
            fee=earning.fee,
            net=earning.net,
            status=str(earning.status),
            hold_until=earning.hold_until,
            posted_at=earning.posted_at,
            cancelled_at=earning.cancelled_at,
            ledger_transaction_id=str(earning.ledger_transaction_id),
            reserve_amount=earning.reserve_amount,
            reserve_release_at=earning.reserve_release_at,
            reserve_released_at=earning.reserve_released_at,
            metadata=earning.metadata,
        )


class HoldOut(BaseModel):
    """Money of the seller held back for an order: the earning's hold until it posts, then (with
    a rolling reserve) the reserve until it is released."""

    order_id: str
    object: Literal["hold"] = "hold"
    kind: Literal["earning", "reserve"]
    amount_held: int = Field(description="Net on hold, or the reserve held back.")
    ends_at: datetime = Field(description="When the hold workflow releases it.")
    hold_until: datetime
    reserve_release_at: datetime | None
    amount: int
    fee: int
    net: int
    ledger_transaction_id: str

    @classmethod
    def of(cls, hold: Hold) -> HoldOut:
        return cls(
            order_id=hold.order_id,
            kind="earning" if hold.kind == "earning" else "reserve",
            amount_held=hold.amount_held,
            ends_at=hold.ends_at,
            hold_until=hold.hold_until,
            reserve_release_at=hold.reserve_release_at,
            amount=hold.amount,
            fee=hold.fee,
            net=hold.net,
            ledger_transaction_id=str(hold.ledger_transaction_id),
        )


class HoldsOut(BaseModel):
    """A page of the seller's holds, from the database (``next_cursor`` as in every list)."""

    object: Literal["holds"] = "holds"
    seller_id: str
    workflow_id: str = Field(description="The seller's hold workflow in the Temporal UI.")
    items: list[HoldOut] = Field(description="By end time, the soonest first.")
    next_cursor: str | None


class EarningBatchItem(RequestModel):
    """As ``POST /v1/sellers/{seller_id}/earnings``. Values of the right types that cannot be
    booked (an amount below 1, a fee above the amount, an unknown seller) are answered in the
    item's result, so that one bad item does not refuse the batch."""

    seller_id: Annotated[Text, Field(max_length=128)]
    order_id: Annotated[Text, Field(max_length=200)] = Field(
        description="The order's id; one earning per seller and order."
    )
    amount: Annotated[int, Field(strict=True)] = Field(
        description="The seller's gross amount of the order, minor units (>= 1)."
    )
    fee: Annotated[int, Field(strict=True)] = Field(
        default=0, description="The platform's fee, minor units (0 <= fee <= amount)."
    )
    metadata: Metadata = Field(default_factory=dict)


class EarningBatchCreate(RequestModel):
    earnings: list[EarningBatchItem] = Field(
        min_length=1, max_length=1000, description="1 to 1,000 earnings (any sellers)."
    )
    atomic: bool = Field(
        default=False,
        description="All or nothing: one item that cannot be booked books none (422 "
        "`batch_rejected`). Otherwise each item is answered on its own.",
    )


class EarningBatchProblem(BaseModel):
    code: str
    detail: str


class EarningBatchResult(BaseModel):
    """One item's answer, as its own request would have been answered."""

    index: int
    status: int = Field(description="201 booked now, 200 booked before, else the error's status.")
    earning: EarningOut | None = None
    error: EarningBatchProblem | None = None


class EarningBatchOut(BaseModel):
    object: Literal["earning_batch"] = "earning_batch"
    results: list[EarningBatchResult] = Field(description="One per item, in request order.")
    created: int
    existing: int
    failed: int


# ------------------------------------------------------------------------- disputes


class DisputeCreate(RequestModel):
    id: SellerId | None = Field(
        default=None,
        description="Your id for the dispute (e.g. the card network's case id); generated when "
        "left out. The same id and terms again return the dispute.",
    )
    seller_id: SellerId
    order_id: OrderId
    amount: Amount = Field(description="The disputed amount, minor units.")
    reason: Annotated[Text, Field(max_length=1000)] = ""
    deadline: AwareDatetime | None = Field(
        default=None,
        description="Unresolved by then, the dispute is lost. Defaults to 14 days from now.",
    )
    respond_by: AwareDatetime | None = Field(default=None, description="Alias of deadline.")
    metadata: Metadata = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_deadline(self) -> DisputeCreate:
        if (
            self.deadline is not None
            and self.respond_by is not None
            and self.deadline != self.respond_by
        ):
            raise ValueError("give deadline or respond_by, not two different instants")
        return self


class DisputeResolution(RequestModel):
    outcome: Literal["won", "lost"]


class DisputeOut(BaseModel):
    id: str
    object: Literal["dispute"] = "dispute"
    seller_id: str
    order_id: str
    currency: str
    amount: int
    reason: str
    status: Literal["open", "won", "lost"]
    deadline: datetime
    resolved_at: datetime | None
    ledger_transaction_id: str
    workflow_id: str
    metadata: dict[str, Any]

    @classmethod
    def of(cls, dispute: Dispute | DisputeResult) -> DisputeOut:
        return cls(
            id=dispute.id,
            seller_id=dispute.seller_id,
            order_id=dispute.order_id,
            currency=dispute.currency,
            amount=dispute.amount,
            reason=dispute.reason,
            status=str(dispute.status),
            deadline=dispute.deadline,
            resolved_at=dispute.resolved_at,
            ledger_transaction_id=str(dispute.ledger_transaction_id),
            workflow_id=dispute_workflow_id(dispute.id),
            metadata=dispute.metadata,
        )

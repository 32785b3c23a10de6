"""``/v1/sellers``: a seller's terms (hold period, rolling reserve) and balances."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from api.schemas.common import Currency, Duration, Metadata, Name, RequestModel, SellerId
from ledger_core import Balance
from marketplace import RollingReserve, Seller
from workflows.types import seller_holds_workflow_id


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

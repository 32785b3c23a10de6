"""``/v1/wallets`` and ``/v1/wallet_transfers``: wallets, their balances, top-ups (lots), spends,
refunds and transfers."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, Field

from api.schemas.common import (
    Amount,
    AsText,
    Attributes,
    Currency,
    Description,
    Metadata,
    Name,
    ObjectOut,
    RequestModel,
    ResponseModel,
    SellerId,
)
from api.schemas.sellers import BalanceViewOut
from api.schemas.test_clocks import ClockId
from contracts.wallets import wallet_expiries_workflow_id

WalletId = SellerId  # the same ids: letters, digits and _ . : - (1-128 characters)


class WalletCreate(RequestModel):
    id: WalletId | None = Field(default=None, description="Chosen by the platform, or generated.")
    owner: Name = Field(description="Who the wallet belongs to: the platform's id of the user.")
    name: Name
    currency: Currency
    metadata: Metadata = Field(default_factory=dict)
    test_clock: ClockId | None = Field(
        default=None,
        description="A test clock's id: the wallet's expiries follow its time (fixed at creation).",
    )


class WalletOut(ObjectOut):
    id: str
    object: Literal["wallet"] = "wallet"
    owner: str
    name: str
    currency: str
    currency_exponent: int
    ledger_id: AsText
    ledger_account_id: AsText
    expiry_workflow_id: str = Field(description="The wallet's expiry workflow in the Temporal UI.")
    test_clock: str | None = Field(description="The wallet's test clock (null: none).")
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_domain(cls, data: Any, context: dict[str, Any]) -> Any:
        return Attributes(
            data,
            expiry_workflow_id=wallet_expiries_workflow_id(data.id),
            test_clock=data.test_clock_id,
        )


class WalletBalancesOut(ObjectOut):
    """The wallet's ledger account in DESIGN.md's three views: available powers spending checks,
    posted the statements."""

    object: Literal["wallet_balances"] = "wallet_balances"
    wallet_id: str
    currency: str
    currency_exponent: int
    pending: BalanceViewOut = Field(description="Including top-ups whose funding has not settled.")
    posted: BalanceViewOut = Field(description="Settled money, less spends, transfers, expiries.")
    available: BalanceViewOut = Field(description="What can be spent now.")
    expiring: int = Field(description="What remains of money that carries an expiry.")
    next_expiry_at: datetime | None = Field(description="The earliest expiry of it.")
    ledger_account_id: AsText
    lock_version: int

    @classmethod
    def from_domain(cls, data: Any, context: dict[str, Any]) -> Any:
        views = data.views
        money = {"currency": data.currency, "currency_exponent": data.currency_exponent}
        return Attributes(
            data,
            pending=Attributes(views.pending, **money),
            posted=Attributes(views.posted, **money),
            available=Attributes(views.available, **money),
        )


class TopUpCreate(RequestModel):
    amount: Amount
    settled: bool = Field(
        default=False,
        description="true: the money is settled (posted and available at once); false: pending "
        "until the funding settles (POST .../settle) or fails (POST .../fail).",
    )
    expires_at: AwareDatetime | None = Field(
        default=None,
        description="What is unspent of it by then goes to breakage (gift cards, promotions).",
    )
    metadata: Metadata = Field(default_factory=dict)


class ExpiryChange(RequestModel):
    """An operator's change of a top-up's expiry: a new ``expires_at`` (in the future), or null
    (it never expires)."""

    expires_at: AwareDatetime | None


class TopUpOut(ObjectOut):
    """A lot of the wallet's money: a top-up (``kind`` top_up) or a transfer in (``kind``
    transfer)."""

    id: str
    object: Literal["wallet_top_up"] = "wallet_top_up"
    wallet_id: str
    kind: str
    amount: int
    remaining: int = Field(description="What is left of it to spend.")
    expired_amount: int = Field(description="What of it went to breakage.")
    status: AsText = Field(description="pending | settled | failed | expired")
    expires_at: datetime | None
    transfer_id: str | None
    ledger_transaction_id: AsText
    metadata: dict[str, Any]
    settled_at: datetime | None
    failed_at: datetime | None
    expired_at: datetime | None
    created_at: datetime


class SpendCreate(RequestModel):
    amount: Amount
    description: Description = Field(description="What the money paid for.")
    metadata: Metadata = Field(default_factory=dict)


class SpentLotOut(ResponseModel):
    lot_id: str
    amount: int
    refunded: int
    expires_at: datetime | None


class SpendOut(ObjectOut):
    id: str
    object: Literal["wallet_spend"] = "wallet_spend"
    wallet_id: str
    amount: int
    refunded_amount: int
    description: str
    ledger_transaction_id: AsText
    lots: list[SpentLotOut] = Field(description="The money it used, soonest expiry first.")
    metadata: dict[str, Any]
    created_at: datetime


class RefundCreate(RequestModel):
    amount: Amount | None = Field(
        default=None, description="Minor units to give back; left out: all that is left of it."
    )
    metadata: Metadata = Field(default_factory=dict)


class WalletRefundOut(ObjectOut):
    id: str
    object: Literal["wallet_refund"] = "wallet_refund"
    spend_id: str
    wallet_id: str
    amount: int
    spend_refunded_amount: int = Field(description="The spend's refunded amount after it.")
    ledger_transaction_id: AsText
    metadata: dict[str, Any]
    created_at: datetime


class TransferCreate(RequestModel):
    from_wallet_id: WalletId
    to_wallet_id: WalletId
    amount: Amount
    description: Description = ""
    metadata: Metadata = Field(default_factory=dict)


class TransferOut(ObjectOut):
    id: str
    object: Literal["wallet_transfer"] = "wallet_transfer"
    from_wallet_id: str
    to_wallet_id: str
    currency: str
    amount: int
    description: str
    ledger_transaction_id: AsText
    metadata: dict[str, Any]
    created_at: datetime

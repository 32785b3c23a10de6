"""``/v1/sellers/{id}/earnings``, ``/v1/sellers/{id}/holds`` and ``/v1/earnings/batch``: earnings,
their holds and batches of them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    Field,
    model_validator,
)

from api.schemas.common import (
    Amount,
    AsText,
    Fee,
    Metadata,
    ObjectOut,
    OrderId,
    RequestModel,
    ResponseModel,
    Text,
    as_text,
)


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


class EarningOut(ObjectOut):
    order_id: str
    object: Literal["earning"] = "earning"
    seller_id: str
    currency: str
    amount: int = Field(description="Gross, minor units.")
    fee: int
    net: int = Field(description="amount - fee: what the seller earns.")
    status: Annotated[
        Literal["on_hold", "posted", "cancelled", "refunded"], BeforeValidator(as_text)
    ]
    hold_until: datetime
    posted_at: datetime | None
    cancelled_at: datetime | None
    ledger_transaction_id: AsText
    reserve_amount: int = Field(description="Held back after posting (rolling reserve).")
    reserve_release_at: datetime | None
    reserve_released_at: datetime | None
    metadata: dict[str, Any]


class HoldOut(ResponseModel):
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
    ledger_transaction_id: AsText


class HoldsOut(ObjectOut):
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


class EarningBatchOut(ObjectOut):
    object: Literal["earning_batch"] = "earning_batch"
    results: list[EarningBatchResult] = Field(description="One per item, in request order.")
    created: int
    existing: int
    failed: int

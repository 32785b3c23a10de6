"""``/v1/disputes``: chargebacks and their resolution."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BeforeValidator,
    Field,
    model_validator,
)

from api.schemas.common import (
    Amount,
    AsText,
    Attributes,
    Metadata,
    ObjectOut,
    OrderId,
    RequestModel,
    SellerId,
    Text,
    as_text,
)
from contracts.disputes import dispute_workflow_id


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


class DisputeOut(ObjectOut):
    id: str
    object: Literal["dispute"] = "dispute"
    seller_id: str
    order_id: str
    currency: str
    amount: int
    reason: str
    status: Annotated[Literal["open", "won", "lost"], BeforeValidator(as_text)]
    deadline: datetime
    resolved_at: datetime | None
    ledger_transaction_id: AsText
    workflow_id: str
    metadata: dict[str, Any]

    @classmethod
    def from_domain(cls, data: Any, context: dict[str, Any]) -> Any:
        return Attributes(data, workflow_id=dispute_workflow_id(data.id))

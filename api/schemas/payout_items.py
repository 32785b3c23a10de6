"""``/v1/payouts/{id}/items``: what a payout pays out, line by line
(``marketplace.payout_items``)."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from api.schemas.common import AsText, ObjectOut, ResponseModel


class PayoutItemOut(ResponseModel):
    object: str = "payout_item"
    line: int = Field(description="1, 2, ... in the payout.")
    kind: str = Field(
        description="An entry: earning, refund, chargeback, payout_returned, adjustment. No "
        "entry: brought_forward, payout_before_itemization, reserve_held, dispute_open, "
        "payout_in_transit, pending_debit, instant_fee, carried_forward."
    )
    reference: str | None = Field(
        description="The order, refund, dispute or payout id the line is about (adjustment: "
        "the ledger transaction's external id, else its id)."
    )
    ledger_entry_id: AsText | None = Field(
        description="The seller's ledger entry the line pays out; null for a line of no entry."
    )
    ledger_transaction_id: AsText | None
    amount: int = Field(description="Signed minor units: what the line adds to the payout.")
    effective_at: datetime = Field(
        description="The entry's effective time; a line of no entry: when the payout was made."
    )
    released_at: datetime | None = Field(
        description="The payout failed or was cancelled: the line no longer counts, and its "
        "entry goes to the seller's next payout."
    )


class PayoutItemsOut(ObjectOut):
    object: str = "list"
    payout_id: str
    seller_id: str
    currency: str
    amount: int = Field(description="The payout's amount.")
    itemized: bool = Field(
        description="false: the payout was made before payouts were itemized; no items were "
        "recorded."
    )
    total: int = Field(description="The sum of all the lines (every page): the payout's amount.")
    count: int = Field(description="The number of lines (every page).")
    items: list[PayoutItemOut]
    next_cursor: str | None

"""``/v1/ledgers``: a ledger and its creation."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field

from api.schemas.common import Description, Metadata, Name, ObjectOut, RequestModel


class LedgerCreate(RequestModel):
    name: Name
    description: Description | None = None
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code, e.g. USD")]
    currency_exponent: Annotated[int, Field(strict=True, ge=0, le=18)] | None = Field(
        default=None, description="Minor-unit digits; defaults to the ISO 4217 value."
    )
    metadata: Metadata = Field(default_factory=dict)


class LedgerOut(ObjectOut):
    id: uuid.UUID
    object: Literal["ledger"] = "ledger"
    name: str
    description: str | None
    currency: str
    currency_exponent: int
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime

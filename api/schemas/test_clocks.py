"""``/v1/test_clocks``: test clocks and their advances."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, Field

from api.schemas.common import (
    Attributes,
    Metadata,
    Name,
    ObjectOut,
    RequestModel,
    SellerId,
)
from contracts.test_clocks import clock_advance_workflow_id

ClockId = SellerId  # the same ids: letters, digits and _ . : - (1-128 characters)


class TestClockCreate(RequestModel):
    __test__ = False  # no test class for pytest

    id: ClockId | None = Field(default=None, description="Chosen by the platform, or generated.")
    name: Name
    frozen_time: AwareDatetime = Field(description="The clock's time, its objects' now.")
    metadata: Metadata = Field(default_factory=dict)


class TestClockAdvance(RequestModel):
    __test__ = False  # no test class for pytest

    frozen_time: AwareDatetime = Field(
        description="The time to advance to, later than the clock's: everything of the clock's "
        "objects that falls due until then happens, in order."
    )


class TestClockOut(ObjectOut):
    __test__ = False  # no test class for pytest

    id: str
    object: Literal["test_clock"] = "test_clock"
    name: str
    frozen_time: datetime = Field(description="The clock's time (while advancing: how far).")
    status: Literal["ready", "advancing"]
    advance_to: datetime | None = Field(description="The target of the advance under way.")
    advance_count: int = Field(description="Advances requested so far.")
    advance_workflow_id: str | None = Field(
        description="The latest advance's workflow in the Temporal UI (null: never advanced)."
    )
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_domain(cls, data: Any, context: dict[str, Any]) -> Any:
        workflow_id = (
            clock_advance_workflow_id(data.id, data.advance_count) if data.advance_count else None
        )
        return Attributes(data, status=str(data.status), advance_workflow_id=workflow_id)

"""The search attributes the callers set on the workflows and schedules they start."""

from __future__ import annotations

from typing import Any

from temporalio.common import SearchAttributePair, TypedSearchAttributes

from contracts.common import SELLER_ID


def seller_attributes(seller_id: str, *more: SearchAttributePair[Any]) -> TypedSearchAttributes:
    """The ``SellerId`` search attribute every workflow of a seller carries, and ``more``."""
    return TypedSearchAttributes([SearchAttributePair(SELLER_ID, seller_id), *more])

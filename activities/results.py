"""The activities' results, built from the marketplace's domain objects.

A result dataclass of ``contracts`` takes each field from the domain object's attribute of the
same name, UUIDs and enums as their strings (Temporal stores the results as JSON); the few fields
that differ in name or kind are given. A contract field the object lacks and nobody gives is an
error at once, not a silently missing value.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import fields
from typing import Any, TypeVar

from sqlalchemy import Engine

from contracts.disputes import DisputeResult
from contracts.holds import EarningResult
from contracts.payouts import PayoutResult, RefundResult, ReservePayoutResult
from marketplace import Dispute, Earning, Marketplace, Payout, Refund

C = TypeVar("C")


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, uuid.UUID | enum.Enum) else value


def contract_from(contract: type[C], domain: object, **given: Any) -> C:
    """``contract`` with the fields of ``domain`` by name, overridden by ``given``."""
    values = {
        f.name: given[f.name] if f.name in given else _plain(getattr(domain, f.name))
        for f in fields(contract)  # type: ignore[arg-type]
    }
    return contract(**values)


def earning_result(earning: Earning) -> EarningResult:
    return contract_from(EarningResult, earning)


def dispute_result(dispute: Dispute) -> DisputeResult:
    return contract_from(DisputeResult, dispute)


def payout_result(payout: Payout) -> PayoutResult:
    # The full account number never leaves the worker.
    return contract_from(PayoutResult, payout, account_number_masked=payout.masked_account_number)


def reserve_payout_result(
    payout: Payout, *, poll_seconds: float, return_window_seconds: float
) -> ReservePayoutResult:
    """A reserved payout with the worker's settings the payout workflow waits by."""
    return ReservePayoutResult(
        payout=payout_result(payout),
        poll_seconds=poll_seconds,
        return_window_seconds=return_window_seconds,
    )


def refund_result(refund: Refund, marketplace: Marketplace, engine: Engine) -> RefundResult:
    """The refund with its earning as it is after it (read in a transaction of its own)."""
    with engine.begin() as conn:
        earning = marketplace.get_earning(conn, refund.seller_id, refund.order_id)
    return contract_from(RefundResult, refund, earning=earning_result(earning))

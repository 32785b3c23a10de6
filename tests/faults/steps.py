"""The steps of the fault scenarios (tests/faults/test_*.py): clients' requests as a real client
sends them (``RetryingClient``), and the platform's state read by SQL on its database."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from sqlalchemy import text

from payment_rail import ACCOUNT_PAID, TEST_ROUTING_NUMBER
from tests.faults.books import (
    Accepted,
    assert_balances,
    assert_books_balance,
    assert_earnings_booked_once,
    assert_payouts_paid_once,
)
from tests.faults.harness import FaultStack, RetryingClient, Tally, until

PROBLEM_JSON = "application/problem+json"
# The 5xx a client may see while a part is down or the platform is busy (answered in time with
# Retry-After, api.routing.Admission); anything else (a 500 above all) is a bug.
RETRYABLE_PROBLEMS = {
    (503, "database_unavailable"),
    (503, "temporal_unavailable"),
    (503, "retry_later"),
    (503, "overloaded"),
    (503, "timeout"),
}
RECOVERY_TIMEOUT = 90.0


# -------------------------------------------------------------------------------------------------
# Clients' requests


def run_id() -> str:
    return uuid.uuid4().hex[:8]


async def create_sellers(client: RetryingClient, sellers: Iterable[str], hold_period: str) -> None:
    async def one(seller_id: str) -> None:
        body = {"id": seller_id, "name": f"Shop {seller_id}", "currency": "USD"}
        response = await client.post("/v1/sellers", {**body, "hold_period": hold_period})
        assert response.status_code in (200, 201), response.text
        account = {
            "account_number": ACCOUNT_PAID,
            "routing_number": TEST_ROUTING_NUMBER,
            "holder_name": f"Owner of {seller_id}",
        }
        response = await client.put(f"/v1/sellers/{seller_id}/payout_account", account)
        assert response.status_code == 200, response.text

    await asyncio.gather(*(one(s) for s in sellers))


async def book(
    client: RetryingClient, accepted: Accepted, seller_id: str, order_id: str, amount: int, fee: int
) -> None:
    """An order's earning, retried with one Idempotency-Key until it is accepted."""
    response = await client.post(
        f"/v1/sellers/{seller_id}/earnings",
        {"order_id": order_id, "amount": amount, "fee": fee},
        idempotency_key=f"earning-{order_id}",
    )
    assert response.status_code in (200, 201), response.text
    body = response.json()
    assert (body["order_id"], body["seller_id"], body["net"]) == (order_id, seller_id, amount - fee)
    accepted.earning(seller_id, order_id, amount, fee)


async def book_at_a_pace(
    client: RetryingClient,
    accepted: Accepted,
    seller_id: str,
    order_id: str,
    amount: int,
    fee: int,
    pause: float = 0.25,
) -> None:
    """``book``, then a pause: a stream of these lasts long enough for a part to die and come
    back in the middle of it, however fast the platform answers."""
    await book(client, accepted, seller_id, order_id, amount, fee)
    await asyncio.sleep(pause)


async def pay(
    client: RetryingClient,
    accepted: Accepted,
    seller_id: str,
    key: str,
    amount: int,
    method: str = "standard",
) -> str:
    """A manual payout, retried with one Idempotency-Key until it is accepted."""
    body: dict[str, Any] = {"amount": amount}
    if method != "standard":  # a standard payout's body as clients sent it before instant ones
        body["method"] = method
    response = await client.post(f"/v1/sellers/{seller_id}/payouts", body, idempotency_key=key)
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["amount"], body["method"]) == (amount, method), body
    accepted.payout(seller_id, body["id"], amount, body["fee"])
    return str(body["id"])


async def in_parallel(calls: list[Callable[[], Awaitable[Any]]], clients: int) -> None:
    """Run the calls, ``clients`` at a time (each a client of its own)."""
    queue = list(reversed(calls))

    async def client_loop() -> None:
        while queue:
            await queue.pop()()

    await asyncio.gather(*(client_loop() for _ in range(clients)))


def assert_only_retryable_errors(tally: Tally) -> None:
    """Every 5xx the clients saw was a problem+json with a code that says "retry"."""
    for error in tally.server_errors:
        assert error.content_type.startswith(PROBLEM_JSON), error
        assert (error.status, error.code) in RETRYABLE_PROBLEMS, error


# -------------------------------------------------------------------------------------------------
# The platform's state


def count(stack: FaultStack, sql: str, **params: Any) -> int:
    with stack.db.connect() as conn:
        return int(conn.execute(text(sql), params).scalar_one())


def paid(stack: FaultStack, payout_ids: Iterable[str]) -> int:
    return count(
        stack,
        "SELECT count(*) FROM payouts WHERE id = ANY(:ids) AND status = 'paid'",
        ids=list(payout_ids),
    )


def submitted(stack: FaultStack, payout_ids: Iterable[str]) -> int:
    return count(
        stack,
        "SELECT count(*) FROM payouts WHERE id = ANY(:ids) AND status <> 'pending'",
        ids=list(payout_ids),
    )


def posted(stack: FaultStack, order_ids: Iterable[str]) -> int:
    return count(
        stack,
        "SELECT count(*) FROM earnings WHERE order_id = ANY(:ids) AND status = 'posted'",
        ids=list(order_ids),
    )


async def all_paid(stack: FaultStack, accepted: Accepted) -> None:
    ids = list(accepted.payouts)
    await until(
        lambda: paid(stack, ids) == len(ids),
        stack,
        f"all {len(ids)} payouts are paid",
        timeout=RECOVERY_TIMEOUT,
    )


async def all_posted(stack: FaultStack, order_ids: Iterable[str]) -> None:
    ids = list(order_ids)
    await until(
        lambda: posted(stack, ids) == len(ids),
        stack,
        f"all {len(ids)} earnings are posted",
        timeout=RECOVERY_TIMEOUT,
    )


def assert_exactly_once(stack: FaultStack, accepted: Accepted, *, on_hold: set[str]) -> None:
    assert_earnings_booked_once(stack.db, accepted)
    with stack.bank() as bank:
        assert_payouts_paid_once(stack.db, bank, accepted)
    assert_books_balance(stack.db)
    assert_balances(stack.db, accepted, on_hold=on_hold)


async def book_batch(
    client: RetryingClient,
    accepted: Accepted,
    key: str,
    earnings: list[tuple[str, str, int, int]],
) -> None:
    """Earnings ``(seller, order, amount, fee)`` in one ``POST /v1/earnings/batch``, retried with
    one Idempotency-Key until it is answered; every item must be booked (201, or 200 when an
    earlier attempt's transaction committed but its answer was lost)."""
    response = await client.post(
        "/v1/earnings/batch",
        {
            "earnings": [
                {"seller_id": s, "order_id": o, "amount": a, "fee": f} for s, o, a, f in earnings
            ]
        },
        idempotency_key=key,
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == len(earnings)
    for (seller_id, order_id, amount, fee), result in zip(earnings, results, strict=True):
        assert result["status"] in (200, 201), result
        assert (result["earning"]["seller_id"], result["earning"]["order_id"]) == (
            seller_id,
            order_id,
        )
        accepted.earning(seller_id, order_id, amount, fee)


def events_per_earning(
    stack: FaultStack, event_type: str, sellers: Iterable[str]
) -> dict[str, int]:
    """How many events of ``event_type`` each earning of ``sellers`` has (by order id)."""
    with stack.db.connect() as conn:
        rows = conn.execute(
            text(
                """
                SELECT data -> 'object' ->> 'order_id' AS order_id, count(*) AS n FROM events
                 WHERE seller_id = ANY(:sellers) AND type = :type GROUP BY 1
                """
            ),
            {"sellers": list(sellers), "type": event_type},
        ).all()
    return {r.order_id: int(r.n) for r in rows}

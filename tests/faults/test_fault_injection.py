"""Fault injection on the running stack: each part of the platform, a process of its own, is
killed (SIGKILL) while money moves and started again on the same data, while clients keep
retrying as real ones do (same ``Idempotency-Key`` after a connection error or a 5xx).

1. the worker, while payouts are at the bank and their webhooks arrive; and while instant payouts
   are being submitted (the bank took them and pays them within seconds, but its answers are
   lost, so the worker's submissions are still retrying);
2. the Temporal dev server, during a stream of earnings with payouts in flight (restarted from
   its SQLite file: running workflows, updates and timers resume; orders are accepted meanwhile);
3. PostgreSQL (its postmaster), during a burst of earnings, for longer than a hold workflow's
   settle activity's first attempts last;
4. the API, during a burst of earnings and payouts; then every request is sent again with its
   key and must be a replay.

Afterwards, by SQL on the platform's database and by asking the bank (``books.py``): every payout
paid exactly once (the bank's count and one posted ledger transaction), every accepted earning
booked exactly once (one ledger transaction ``earning:<seller>/<order>``), every ledger sums to
zero, the running totals match the entries, and every seller's pending, posted and available
balances are what the accepted requests imply. No client ever saw a 500: what failed was a 503
problem with a stable code, or no answer at all.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.faults.books import Accepted
from tests.faults.harness import FaultStack, RetryingClient, Tally, until
from tests.faults.steps import (
    all_paid,
    all_posted,
    assert_exactly_once,
    assert_only_retryable_errors,
    book,
    book_at_a_pace,
    create_sellers,
    in_parallel,
    paid,
    pay,
    run_id,
    submitted,
)

pytestmark = pytest.mark.slow

# -------------------------------------------------------------------------------------------------
# The faults


async def test_worker_killed_while_payouts_are_in_flight(stack: FaultStack) -> None:
    run = run_id()
    sellers = [f"{run}-worker-{i}" for i in range(4)]
    accepted, tally = Accepted(), Tally()
    async with RetryingClient(stack.api_url, stack.admin_key, tally) as client:
        await create_sellers(client, sellers, "PT0S")  # posted as soon as booked
        await asyncio.gather(
            *(
                book(client, accepted, s, f"{s}-order", 10_000 + 100 * i, 1_000)
                for i, s in enumerate(sellers)
            )
        )
        await all_posted(stack, accepted.earnings)
        await asyncio.gather(
            *(
                pay(client, accepted, s, f"{s}-payout-{n}", amount)
                for s in sellers
                for n, amount in ((1, 3_000), (2, 2_500))
            )
        )
    # Every payout is at the bank (processing), which settles each 2 s after taking it: kill the
    # worker now.
    await until(
        lambda: submitted(stack, accepted.payouts) == len(accepted.payouts),
        stack,
        "every payout is submitted to the bank",
    )
    stack.kill("worker")
    paid_when_killed = paid(stack, accepted.payouts)
    assert paid_when_killed < len(accepted.payouts), "the kill came after every payout was paid"

    # The bank pays them and its webhooks reach the API, which signals the workflows; with no
    # worker nothing is settled in the ledger.
    with stack.bank() as bank:
        await until(
            lambda: all(bank.inspect(p).status.status == "paid" for p in accepted.payouts),
            stack,
            "the bank has paid every payout",
        )
    assert paid(stack, accepted.payouts) == paid_when_killed

    stack.restart("worker")
    await all_paid(stack, accepted)
    assert_exactly_once(stack, accepted, on_hold=set())
    assert tally.server_errors == []


async def test_worker_killed_while_submitting_instant_payouts(stack: FaultStack) -> None:
    run = run_id()
    sellers = [f"{run}-instant-{i}" for i in range(3)]
    accepted, tally = Accepted(), Tally()
    async with RetryingClient(stack.api_url, stack.admin_key, tally) as client:
        await create_sellers(client, sellers, "PT0S")
        await asyncio.gather(
            *(book(client, accepted, s, f"{s}-order", 20_000, 1_000) for s in sellers)
        )
        await all_posted(stack, accepted.earnings)
        # From now on the bank processes every submission (and pays an instant one within
        # seconds) but its answer is lost: the worker's submit activities keep retrying.
        with stack.bank() as bank:
            bank.make_unavailable(100_000, after_processing=True)
        await asyncio.gather(
            *(pay(client, accepted, s, f"{s}-instant", 6_000, "instant") for s in sellers)
        )
    assert all(p.fee > 0 for p in accepted.payouts.values())
    with stack.bank() as bank:
        await until(
            lambda: all(
                bank.inspect(p).status.status == "paid" and bank.inspect(p).submissions >= 2
                for p in accepted.payouts
            ),
            stack,
            "the bank has paid every instant payout, and the worker is retrying its submission",
        )
    assert submitted(stack, accepted.payouts) == 0, "no submission should have been answered"
    stack.kill("worker")
    with stack.bank() as bank:
        bank.make_unavailable(0)

    stack.restart("worker")
    await all_paid(stack, accepted)
    assert_exactly_once(stack, accepted, on_hold=set())
    assert tally.server_errors == []


async def test_temporal_restarted_from_its_state_during_earnings_and_payouts(
    stack: FaultStack,
) -> None:
    run = run_id()
    sellers = [f"{run}-temporal-{i}" for i in range(4)]
    accepted, tally = Accepted(), Tally()
    async with RetryingClient(stack.api_url, stack.admin_key, tally) as client:
        await create_sellers(client, sellers, "PT2S")
        await asyncio.gather(
            *(book(client, accepted, s, f"{s}-first", 10_000, 500) for s in sellers)
        )
        await all_posted(stack, accepted.earnings)
        await asyncio.gather(*(pay(client, accepted, s, f"{s}-payout", 4_000) for s in sellers))

        # Earnings at a steady pace (holds of 2 s, so timers run across the restart); Temporal
        # dies a few bookings in, with the payouts at the bank, and comes back 3 s later.
        burst = [(s, f"{s}-order-{n}", 1_000 + 10 * n, 10 * n) for n in range(8) for s in sellers]
        bursting = asyncio.create_task(
            in_parallel(
                [functools.partial(book_at_a_pace, client, accepted, *e) for e in burst],
                clients=4,
            )
        )
        await until(lambda: len(accepted.earnings) >= len(sellers) + 4, stack, "bookings start")
        stack.kill("temporal")
        killed_at = time.monotonic()
        await asyncio.sleep(3)
        stack.restart("temporal")
        restarted_at = time.monotonic()
        await bursting
    # Booking needs no Temporal: orders were accepted while it was down.
    during = [a for s, a in tally.spans if s > killed_at and a < restarted_at]
    assert during, "no booking was answered during the outage"

    await all_posted(stack, accepted.earnings)
    await all_paid(stack, accepted)
    assert_exactly_once(stack, accepted, on_hold=set())
    assert_only_retryable_errors(tally)


async def test_postgres_killed_during_a_burst_of_earnings(stack: FaultStack) -> None:
    run = run_id()
    short = [f"{run}-pg-short-{i}" for i in range(3)]  # held 2 s: posted after the outage
    long = [f"{run}-pg-long-{i}" for i in range(3)]  # held an hour: still pending at the end
    accepted, tally = Accepted(), Tally()
    async with RetryingClient(stack.api_url, stack.admin_key, tally) as client:
        await create_sellers(client, short, "PT2S")
        await create_sellers(client, long, "PT1H")
        burst = [
            (s, f"{s}-order-{n}", 2_000 + 7 * n, 100 + n) for n in range(8) for s in short + long
        ]
        bursting = asyncio.create_task(
            in_parallel([functools.partial(book, client, accepted, *e) for e in burst], clients=6)
        )
        await until(lambda: len(accepted.earnings) >= 10, stack, "bookings start")
        stack.postgres.kill()
        killed_at = time.monotonic()
        # Longer than a hold workflow's settle activity's first attempts last (1 + 2 + 4 + 8 s):
        # the holds of 2 s that fell due meanwhile are posted once the database is back.
        await asyncio.sleep(17)
        stack.postgres.restart()
        restarted_at = time.monotonic()
        await bursting
    assert tally.spanning(killed_at, restarted_at) > 0, "no booking was in flight during the outage"
    assert_only_retryable_errors(tally)
    assert (503, "database_unavailable") in tally.codes(), "no client noticed the database died"

    await all_posted(stack, [o for o, e in accepted.earnings.items() if e.seller_id in short])
    on_hold = {o for o, e in accepted.earnings.items() if e.seller_id in long}
    assert_exactly_once(stack, accepted, on_hold=on_hold)


async def test_api_killed_while_clients_retry_with_their_idempotency_keys(
    stack: FaultStack,
) -> None:
    run = run_id()
    sellers = [f"{run}-api-{i}" for i in range(4)]
    accepted, tally = Accepted(), Tally()
    api = stack.parts["api"]
    starts = api.starts
    async with RetryingClient(stack.api_url, stack.admin_key, tally) as client:
        await create_sellers(client, sellers, "PT0S")
        await asyncio.gather(
            *(book(client, accepted, s, f"{s}-opening", 20_000, 1_000) for s in sellers)
        )
        await all_posted(stack, accepted.earnings)  # available: the payouts below draw on it

        # Earnings and payouts, interleaved, from six clients; the API dies a few answers in and
        # is started again a second later.
        earnings = [(s, f"{s}-order-{n}", 5_000 + 10 * n, 500) for n in range(4) for s in sellers]
        payouts = [(s, f"{s}-payout-{n}", 1_000 + n) for n in range(3) for s in sellers]
        requests: list[Callable[[], Awaitable[Any]]] = []
        for n in range(max(len(earnings), len(payouts))):
            if n < len(earnings):
                requests.append(functools.partial(book, client, accepted, *earnings[n]))
            if n < len(payouts):
                requests.append(functools.partial(pay, client, accepted, *payouts[n]))
        opening = len(accepted.earnings)

        async def kill_api_a_few_answers_in() -> None:
            await until(
                lambda: len(accepted.earnings) - opening + len(accepted.payouts) >= 6,
                stack,
                "requests are accepted",
            )
            stack.kill("api")
            await asyncio.sleep(1)
            stack.restart("api")

        killer = asyncio.create_task(kill_api_a_few_answers_in())
        await in_parallel(requests, clients=6)
        await killer
        assert api.starts == starts + 1

        # Every request again, with its key: the first answer, replayed.
        for seller_id, order_id, amount, fee in earnings:
            response = await client.post(
                f"/v1/sellers/{seller_id}/earnings",
                {"order_id": order_id, "amount": amount, "fee": fee},
                idempotency_key=f"earning-{order_id}",
            )
            assert response.status_code in (200, 201), response.text
            assert response.headers.get("Idempotency-Replayed") == "true"
        for seller_id, key, amount in payouts:
            response = await client.post(
                f"/v1/sellers/{seller_id}/payouts", {"amount": amount}, idempotency_key=key
            )
            assert response.status_code == 201, response.text
            assert response.headers.get("Idempotency-Replayed") == "true"
            assert accepted.payouts[response.json()["id"]].seller_id == seller_id
    assert len(accepted.payouts) == len(payouts), "a retried payout request made a second payout"
    assert tally.connection_errors > 0, "no request noticed the API was gone"
    assert_only_retryable_errors(tally)

    await all_posted(stack, accepted.earnings)
    await all_paid(stack, accepted)
    assert_exactly_once(stack, accepted, on_hold=set())

"""A test clock over a seller's holds, end to end through the API and the real hold workflow: a
7-day hold ends when the clock passes it (posted at the clock's time), a rolling reserve is
released when its period has passed on the clock, and a live seller on the wall clock, booked
at the same moment, is untouched (and a live key sees no clock and cannot put a seller on one)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from tests.e2e.conftest import add_earning, balances, create_seller, money
from tests.test_clocks.conftest import START, advance, at, create_clock


async def test_a_seven_day_hold_ends_when_the_clock_passes_it(
    admin: httpx.AsyncClient, live_admin: httpx.AsyncClient, uid: str
) -> None:
    clock_id, seller, live = f"clock-{uid}", f"clocked-{uid}", f"live-{uid}"
    await create_clock(admin, clock_id)
    created = await create_seller(admin, seller, hold_period="P7D", test_clock=clock_id)
    assert created["test_clock"] == clock_id
    await create_seller(live_admin, live, hold_period="P7D")
    # Clocks are test mode's: a live key gets a 403, and cannot put a live seller on one.
    refused = await live_admin.get(f"/v1/test_clocks/{clock_id}")
    assert (refused.status_code, refused.json()["code"]) == (403, "test_mode_only")
    on_clock = await live_admin.post(
        "/v1/sellers",
        json={"id": f"l2-{uid}", "name": "L", "currency": "USD", "test_clock": clock_id},
    )
    assert (on_clock.status_code, on_clock.json()["code"]) == (404, "test_clock_not_found")

    earning = await add_earning(admin, seller, "order-1", 10_000, fee=1_000)
    # Booked at the clock's time: the hold ends 7 days after it.
    assert at(earning["hold_until"]) == at(START) + timedelta(days=7)
    txn = await admin.get(f"/v1/ledger_transactions/{earning['ledger_transaction_id']}")
    assert at(txn.json()["effective_at"]) == at(START)  # it counts from the clock's time
    live_earning = await add_earning(live_admin, live, "order-1", 10_000, fee=1_000)
    assert at(live_earning["hold_until"]) > datetime.now(UTC) + timedelta(days=6)

    # Six days on: still on hold.
    await advance(admin, clock_id, "2030-01-13T09:00:00+00:00")
    assert await balances(admin, seller) == money(9_000, 0, 0, on_hold=9_000)

    # A day and an hour more: the hold ended at the clock's 14th, 09:00, and posted then.
    await advance(admin, clock_id, "2030-01-14T10:00:00+00:00")
    assert await balances(admin, seller) == money(9_000, 9_000, 9_000)
    posted = (await admin.get(f"/v1/sellers/{seller}/earnings/order-1")).json()
    assert posted["status"] == "posted"
    assert at(posted["posted_at"]) == at("2030-01-14T09:00:00+00:00")

    # The seller on the wall clock is untouched.
    assert await balances(live_admin, live) == money(9_000, 0, 0, on_hold=9_000)
    status = (await live_admin.get(f"/v1/sellers/{live}/earnings/order-1")).json()["status"]
    assert status == "on_hold"


async def test_a_rolling_reserve_is_released_when_its_period_passed_on_the_clock(
    admin: httpx.AsyncClient, uid: str
) -> None:
    clock_id, seller = f"clock-{uid}", f"reserved-{uid}"
    await create_clock(admin, clock_id)
    await create_seller(
        admin,
        seller,
        hold_period="P7D",
        rolling_reserve={"percent": 10, "period": "P30D"},
        test_clock=clock_id,
    )
    await add_earning(admin, seller, "order-1", 10_000)

    # The hold ends on day 7 and a tenth is held back for 30 days from then.
    await advance(admin, clock_id, "2030-01-15T09:00:00+00:00")
    assert await balances(admin, seller) == money(9_000, 10_000, 9_000, in_reserve=1_000)
    earning = (await admin.get(f"/v1/sellers/{seller}/earnings/order-1")).json()
    assert at(earning["reserve_release_at"]) == at(START) + timedelta(days=37)

    # Day 38: the reserve's period has passed on the clock; all of it is available.
    await advance(admin, clock_id, "2030-02-14T09:00:00+00:00")
    assert await balances(admin, seller) == money(10_000, 10_000, 10_000)

    # An operator's early release on the clock: posted at the clock's time, its reserve held
    # for the period from then.
    await add_earning(admin, seller, "order-2", 5_000)
    released = await admin.post(f"/v1/sellers/{seller}/holds/order-2/release")
    assert released.status_code == 200, released.text
    early = (await admin.get(f"/v1/sellers/{seller}/earnings/order-2")).json()
    assert at(early["posted_at"]) == at("2030-02-14T09:00:00+00:00")
    assert at(early["reserve_release_at"]) == at("2030-03-16T09:00:00+00:00")

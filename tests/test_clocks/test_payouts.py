"""A month of weekly payouts on a test clock, end to end through the API, the schedule's own
payout-run workflow and the payout workflow: each Monday's run pays what the 6-day holds
released by then (a hold that ends before the firing is paid by it), runs are recorded with the
clock's firing times, nothing fires by wall time, and a paused schedule does not fire when the
clock advances."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from payment_rail import ACCOUNT_PAID, TEST_ROUTING_NUMBER
from tests.e2e.conftest import add_earning, create_seller
from tests.test_clocks.conftest import START, advance, at, create_clock


async def schedule(client: httpx.AsyncClient, seller: str) -> dict[str, Any]:
    response = await client.get(f"/v1/sellers/{seller}/payout_schedule")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_four_weekly_payout_runs_over_a_month(admin: httpx.AsyncClient, uid: str) -> None:
    clock_id, seller = f"clock-{uid}", f"weekly-{uid}"
    await create_clock(admin, clock_id)
    await create_seller(admin, seller, hold_period="P6D", test_clock=clock_id)
    account = await admin.put(
        f"/v1/sellers/{seller}/payout_account",
        json={
            "account_number": ACCOUNT_PAID,
            "routing_number": TEST_ROUTING_NUMBER,
            "holder_name": "Jane Doe",
        },
    )
    assert account.status_code == 200, account.text
    put = await admin.put(
        f"/v1/sellers/{seller}/payout_schedule",
        json={"interval": "weekly", "weekly_anchor": "monday", "time_of_day": "09:00"},
    )
    assert put.status_code == 200, put.text
    # The schedule follows the clock: nothing by wall time.
    assert (put.json()["test_clock"], put.json()["next_run_times"]) == (clock_id, [])

    # Each week an order; its 6-day hold ends before the next Monday's 09:00 run pays it.
    start = at(START)
    for week in range(4):
        await add_earning(admin, seller, f"order-{week}", 1_000 * (week + 1))
        target = start + timedelta(weeks=week + 1, minutes=30)
        await advance(admin, clock_id, target.isoformat())

    runs = sorted((await schedule(admin, seller))["recent_runs"], key=lambda r: r["scheduled_at"])
    assert [at(r["scheduled_at"]) for r in runs] == [
        start + timedelta(weeks=n) for n in (1, 2, 3, 4)
    ]
    assert [(r["outcome"], r["amount"]) for r in runs] == [
        ("started", 1_000),
        ("started", 2_000),
        ("started", 3_000),
        ("started", 4_000),
    ]
    for run in runs:
        payout = (await admin.get(f"/v1/payouts/{run['payout_id']}")).json()
        assert (payout["seller_id"], payout["amount"]) == (seller, run["amount"])

    # Paused by an operator: the clock's next Monday passes without a run.
    paused = await admin.post(
        f"/v1/sellers/{seller}/payout_schedule/pause", json={"note": "checking the account"}
    )
    assert paused.status_code == 200, paused.text
    await add_earning(admin, seller, "order-late", 5_000)
    await advance(admin, clock_id, (start + timedelta(weeks=6)).isoformat())
    assert len((await schedule(admin, seller))["recent_runs"]) == 4


async def test_one_advance_runs_a_month_of_weekly_firings_in_order(
    admin: httpx.AsyncClient, uid: str
) -> None:
    clock_id, seller = f"clock-{uid}", f"monthly-{uid}"
    await create_clock(admin, clock_id)
    await create_seller(admin, seller, hold_period="P7D", test_clock=clock_id)
    await admin.put(
        f"/v1/sellers/{seller}/payout_account",
        json={
            "account_number": ACCOUNT_PAID,
            "routing_number": TEST_ROUTING_NUMBER,
            "holder_name": "Jane Doe",
        },
    )
    put = await admin.put(
        f"/v1/sellers/{seller}/payout_schedule",
        json={"interval": "weekly", "weekly_anchor": "monday", "time_of_day": "09:00"},
    )
    assert put.status_code == 200, put.text
    # Booked on Monday 09:00: the hold ends the next Monday at 09:00, the time of the first run.
    await add_earning(admin, seller, "order-1", 7_500)
    start = at(START)
    await advance(admin, clock_id, (start + timedelta(days=29)).isoformat())

    runs = sorted((await schedule(admin, seller))["recent_runs"], key=lambda r: r["scheduled_at"])
    assert [(at(r["scheduled_at"]), r["outcome"], r["amount"], r["reason"]) for r in runs] == [
        (start + timedelta(weeks=1), "started", 7_500, None),
        (start + timedelta(weeks=2), "skipped", None, "nothing_available"),
        (start + timedelta(weeks=3), "skipped", None, "nothing_available"),
        (start + timedelta(weeks=4), "skipped", None, "nothing_available"),
    ]

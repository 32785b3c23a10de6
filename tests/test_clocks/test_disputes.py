"""A dispute's deadline on a test clock, end to end through the API and the real dispute
workflow: unresolved when the clock passes its deadline, the dispute is lost (as at a deadline
in wall time), at the deadline's time on the clock, and not a moment before."""

from __future__ import annotations

from datetime import timedelta

import httpx
from temporalio.testing import WorkflowEnvironment

from tests.e2e.conftest import add_earning, balances, create_seller, money
from tests.test_clocks.conftest import START, advance, at, create_clock, record_history


async def test_an_unresolved_dispute_is_lost_when_the_clock_passes_its_deadline(
    admin: httpx.AsyncClient, temporal_env: WorkflowEnvironment, uid: str
) -> None:
    clock_id, seller = f"clock-{uid}", f"disputed-{uid}"
    start = at(START)
    await create_clock(admin, clock_id)
    await create_seller(admin, seller, hold_period="P1D", test_clock=clock_id)
    await add_earning(admin, seller, "order-1", 10_000)
    await advance(admin, clock_id, (start + timedelta(days=2)).isoformat())
    assert await balances(admin, seller) == money(10_000, 10_000, 10_000)

    deadline = start + timedelta(days=10)
    # A deadline in the clock's past is refused, as one in the wall clock's past would be.
    refused = await admin.post(
        "/v1/disputes",
        json={
            "id": f"late-{uid}",
            "seller_id": seller,
            "order_id": "order-1",
            "amount": 3_000,
            "deadline": (start + timedelta(days=1)).isoformat(),
        },
    )
    assert refused.status_code == 422, refused.text
    opened = await admin.post(
        "/v1/disputes",
        json={
            "id": f"cb-{uid}",
            "seller_id": seller,
            "order_id": "order-1",
            "amount": 3_000,
            "deadline": deadline.isoformat(),
        },
    )
    assert opened.status_code == 201, opened.text
    assert await balances(admin, seller) == money(7_000, 10_000, 7_000, in_dispute=3_000)

    await advance(admin, clock_id, (deadline - timedelta(minutes=1)).isoformat())
    assert (await admin.get(f"/v1/disputes/cb-{uid}")).json()["status"] == "open"

    await advance(admin, clock_id, (deadline + timedelta(days=1)).isoformat())
    dispute = (await admin.get(f"/v1/disputes/cb-{uid}")).json()
    assert dispute["status"] == "lost"
    assert at(dispute["resolved_at"]) == deadline
    assert await balances(admin, seller) == money(7_000, 7_000, 7_000)
    await record_history(
        temporal_env.client.get_workflow_handle(f"dispute/cb-{uid}"),
        "dispute_lost_at_test_clock_deadline",
    )

"""The test clocks' API: create, read, list, delete, and an advance's answers (422 backwards,
409 while advancing elsewhere, the same advance again joins it), sellers and wallets on an
unknown clock (404)."""

from __future__ import annotations

from datetime import datetime

import httpx
from sqlalchemy import Engine

from marketplace.test_clocks import TestClocks
from tests.api.helpers import assert_problem
from tests.e2e.conftest import create_seller
from tests.helpers import eventually
from tests.test_clocks.conftest import START, at, create_clock


async def test_create_read_list_and_delete(admin: httpx.AsyncClient, uid: str) -> None:
    clock = await create_clock(admin, f"clock-{uid}")
    assert (clock["object"], clock["status"], clock["advance_to"]) == ("test_clock", "ready", None)
    assert at(clock["frozen_time"]) == at(START)
    assert clock["advance_workflow_id"] is None
    again = await admin.post(
        "/v1/test_clocks",
        json={"id": f"clock-{uid}", "name": f"Clock clock-{uid}", "frozen_time": START},
    )
    assert again.status_code == 200
    other = await admin.post(
        "/v1/test_clocks",
        json={"id": f"clock-{uid}", "name": "Other", "frozen_time": START},
    )
    assert_problem(other, 409, "test_clock_exists")
    generated = await admin.post("/v1/test_clocks", json={"name": "Any", "frozen_time": START})
    assert generated.status_code == 201 and generated.json()["id"].startswith("clock_")
    listed = (await admin.get("/v1/test_clocks", params={"per_page": 100})).json()
    assert f"clock-{uid}" in [c["id"] for c in listed["items"]]
    assert (await admin.get(f"/v1/test_clocks/{clock['id']}")).json() == clock

    # A clock with a seller is not deleted; one without is.
    await create_seller(admin, f"s-{uid}", test_clock=clock["id"])
    assert_problem(await admin.delete(f"/v1/test_clocks/{clock['id']}"), 409, "test_clock_in_use")
    gone = generated.json()["id"]
    assert (await admin.delete(f"/v1/test_clocks/{gone}")).status_code == 200
    assert_problem(await admin.get(f"/v1/test_clocks/{gone}"), 404, "test_clock_not_found")


async def test_objects_on_an_unknown_clock_are_404(admin: httpx.AsyncClient, uid: str) -> None:
    body = {"id": f"s-{uid}", "name": "S", "currency": "USD", "test_clock": f"nope-{uid}"}
    assert_problem(await admin.post("/v1/sellers", json=body), 404, "test_clock_not_found")
    body = {"owner": "u", "name": "W", "currency": "USD", "test_clock": f"nope-{uid}"}
    assert_problem(await admin.post("/v1/wallets", json=body), 404, "test_clock_not_found")


async def test_an_advance_goes_forward_once_at_a_time(
    admin: httpx.AsyncClient, engine: Engine, uid: str
) -> None:
    clock_id = f"clock-{uid}"
    await create_clock(admin, clock_id)
    url = f"/v1/test_clocks/{clock_id}/advance"
    for earlier in (START, "2030-01-01T00:00:00+00:00"):
        answer = await admin.post(url, json={"frozen_time": earlier})
        assert_problem(answer, 422, "test_clock_time_not_later")
    too_far = await admin.post(url, json={"frozen_time": "2031-02-08T09:00:00+00:00"})
    assert_problem(too_far, 422, "validation_failed")

    # An advance recorded, its workflow not started yet: the clock is advancing.
    target = datetime.fromisoformat("2030-01-08T09:00:00+00:00")
    with engine.begin() as conn:
        TestClocks().request_advance(conn, clock_id, target)
    answer = await admin.post(url, json={"frozen_time": "2030-01-09T09:00:00+00:00"})
    assert_problem(answer, 409, "test_clock_advancing")
    assert_problem(await admin.delete(f"/v1/test_clocks/{clock_id}"), 409, "test_clock_advancing")
    clock = (await admin.get(f"/v1/test_clocks/{clock_id}")).json()
    assert (clock["status"], at(clock["advance_to"])) == ("advancing", target)
    assert clock["advance_workflow_id"] == f"test-clock/{clock_id}/1"

    # The same advance again: it joins it (starts its workflow), and the clock gets ready.
    answer = await admin.post(url, json={"frozen_time": target.isoformat()})
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "advancing"

    async def ready() -> None:
        clock = (await admin.get(f"/v1/test_clocks/{clock_id}")).json()
        assert (clock["status"], clock["advance_to"]) == ("ready", None)
        assert at(clock["frozen_time"]) == target

    await eventually(ready)


async def test_an_advance_with_an_idempotency_key_replays(
    admin: httpx.AsyncClient, uid: str
) -> None:
    clock_id = f"clock-{uid}"
    await create_clock(admin, clock_id)
    url, headers = f"/v1/test_clocks/{clock_id}/advance", {"Idempotency-Key": f"adv-{uid}"}
    body = {"frozen_time": "2030-01-08T09:00:00+00:00"}
    first = await admin.post(url, json=body, headers=headers)
    assert first.status_code == 202, first.text
    again = await admin.post(url, json=body, headers=headers)
    assert (again.status_code, again.headers.get("Idempotency-Replayed")) == (202, "true")
    assert again.json() == first.json()

    async def ready() -> None:
        clock = (await admin.get(f"/v1/test_clocks/{clock_id}")).json()
        assert (clock["status"], clock["advance_count"]) == ("ready", 1)

    await eventually(ready)

"""``/v1/sellers/{id}/payout_schedule`` over HTTP (the app in the test's event loop, the session's
dev server, the platform's worker with a stand-in payout workflow): put, get with the amount a run
would pay now and recent runs, pause with a note, resume, trigger, delete, roles and errors."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import Engine
from temporalio.client import Client

from api.app import create_app
from api.auth import ApiKeyRole
from tests.api.conftest import make_key
from tests.schedules.conftest import eventually, new_seller, workflows_with_stand_in
from tests.temporal_env import TEST_REQUEST_TIMEOUT, running_worker


@pytest.fixture
async def http(
    temporal_client: Client, engine: Engine, task_queue: str
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        engine,
        temporal_client=temporal_client,
        workflow_task_queue=task_queue,
        request_timeout=TEST_REQUEST_TIMEOUT,
    )
    async with (
        running_worker(
            temporal_client, engine, task_queue=task_queue, workflows=workflows_with_stand_in()
        ),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://api",
            headers={"Authorization": f"Bearer {make_key(engine, ApiKeyRole.OPERATOR)}"},
            timeout=30,
        ) as client,
    ):
        yield client


async def test_schedule_life_cycle(http: httpx.AsyncClient, engine: Engine) -> None:
    seller_id = new_seller(engine, available=25_000)
    path = f"/v1/sellers/{seller_id}/payout_schedule"

    assert (await http.get(path)).json()["code"] == "payout_schedule_not_found"

    put = await http.put(
        path,
        json={
            "interval": "monthly",
            "monthly_anchor": 31,
            "time_of_day": "08:00",
            "time_zone": "Europe/Berlin",
            "minimum_amount": 30_000,
        },
    )
    assert put.status_code == 200, put.text
    body = put.json()
    assert body["schedule_id"] == f"payout-schedule/{seller_id}"
    assert (body["interval"], body["monthly_anchor"], body["paused"]) == ("monthly", 31, False)
    assert len(body["next_run_times"]) == 10

    got = (await http.get(path)).json()
    assert got["payout_now"] == {
        "amount": 0,
        "reason": "below_minimum",
        "available": 25_000,
        "currency": "USD",
    }
    assert got["recent_runs"] == []

    # Lower the minimum: a run would pay everything available.
    await http.put(path, json={"interval": "weekly", "weekly_anchor": "tuesday"})
    got = (await http.get(path)).json()
    assert got["payout_now"]["amount"] == 25_000 and got["payout_now"]["reason"] is None
    assert got["weekly_anchor"] == "tuesday" and got["monthly_anchor"] is None

    paused = await http.post(f"{path}/pause", json={"note": "payout returned: account closed"})
    assert paused.status_code == 200, paused.text
    assert paused.json()["paused"] is True
    assert paused.json()["note"] == "payout returned: account closed"
    assert paused.json()["next_run_times"] == []

    trigger = await http.post(f"{path}/trigger")
    assert trigger.status_code == 202, trigger.text

    async def recent() -> list[dict[str, object]] | None:
        runs: list[dict[str, object]] = (await http.get(path)).json()["recent_runs"]
        return runs or None

    (run,) = await eventually(recent)
    assert (run["outcome"], run["amount"]) == ("started", 25_000)
    assert isinstance(run["payout_id"], str)

    resumed = await http.post(f"{path}/resume", json={"note": "account fixed"})
    assert resumed.json()["paused"] is False and resumed.json()["note"] == "account fixed"
    assert len(resumed.json()["next_run_times"]) == 10

    assert (await http.delete(path)).status_code == 204
    gone = await http.get(path)
    assert gone.status_code == 404 and gone.json()["code"] == "payout_schedule_not_found"
    assert (await http.post(f"{path}/trigger")).status_code == 404


async def test_errors_and_roles(http: httpx.AsyncClient, engine: Engine) -> None:
    seller_id = new_seller(engine)
    other = new_seller(engine)
    path = f"/v1/sellers/{seller_id}/payout_schedule"
    assert (await http.put(path, json={"interval": "daily"})).status_code == 200

    bad_zone = await http.put(path, json={"interval": "daily", "time_zone": "Nowhere/Land"})
    assert bad_zone.status_code == 422
    assert (bad_zone.json()["code"], bad_zone.json()["field"]) == ("validation_failed", "time_zone")
    no_anchor = await http.put(path, json={"interval": "monthly"})
    assert no_anchor.status_code == 422 and no_anchor.json()["field"] == "monthly_anchor"
    assert (await http.put(path, json={"interval": "hourly"})).status_code == 422
    unknown = await http.put("/v1/sellers/nobody-here/payout_schedule", json={"interval": "daily"})
    assert unknown.status_code == 404 and unknown.json()["code"] == "seller_not_found"
    assert (await http.post(f"{path}/pause", json={})).status_code == 422  # a note is required

    seller_key = make_key(engine, ApiKeyRole.SELLER, seller_id)
    headers = {"Authorization": f"Bearer {seller_key}"}
    own = await http.get(path, headers=headers)
    assert own.status_code == 200 and own.json()["interval"] == "daily"
    assert own.json()["payout_now"]["reason"] == "nothing_available"
    foreign = await http.get(f"/v1/sellers/{other}/payout_schedule", headers=headers)
    assert foreign.status_code == 404 and foreign.json()["code"] == "seller_not_found"
    for method, suffix in (("PUT", ""), ("POST", "/pause"), ("POST", "/trigger"), ("DELETE", "")):
        refused = await http.request(
            method, f"{path}{suffix}", headers=headers, json={"interval": "daily", "note": "x"}
        )
        assert refused.status_code == 403, (method, suffix)
    assert (await http.delete(path)).status_code == 204

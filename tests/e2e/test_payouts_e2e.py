"""Payouts end to end over HTTP (DESIGN.md's "The seller's money", steps 4 and 5): the real API
(uvicorn on a free port), the platform's worker (``build_worker(..., rail=bank)``) with an
in-process simulated bank whose signed webhooks go to the API's ``/v1/rail/webhooks``, the
session's Temporal dev server and PostgreSQL. The bank is the only stand-in.

Each scenario reads the seller's balances through ``GET /v1/sellers/{id}/balances`` at every
step: earning -> hold (1 s) -> available -> payout through the seller's payout schedule
(``PUT .../payout_schedule``, ``POST .../trigger``) -> processing -> paid, failed (the bank's
closed account: the payout account failed, the schedule paused, a triggered run skipped, a manual
payout refused until a new account is set, the schedule resumed by hand) or paid then returned
(the bank's return account: the seller is credited back and the schedule paused with a note); a
manual payout retried with one ``Idempotency-Key``; a webhook delivered three times; a payout
whose webhook never comes (the status poll finds it paid).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import Engine
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from api.auth import ApiKeyRole
from payment_rail import (
    ACCOUNT_CLOSED,
    ACCOUNT_NO_WEBHOOK,
    ACCOUNT_PAID,
    ACCOUNT_RETURNED,
    TEST_ROUTING_NUMBER,
    RailSettings,
    SimulatedBank,
)
from payment_rail.simulated import WebhookState
from server.settings import get_settings
from server.worker import build_worker
from temporal_calls.payouts import get_payout_state
from tests.api.conftest import make_key
from tests.e2e.conftest import add_earning, balances, create_seller, money
from tests.helpers import eventually
from tests.temporal_env import TEST_REQUEST_TIMEOUT, new_task_queue, waking_holds

SECRET = "whsec_e2e_payouts"
HOLD = "PT1S"
SETTLE_SECONDS = 1.0  # long enough to see a payout processing, short enough for a quick test
RETURN_SECONDS = 2.0  # the return account's payouts come back 2 s after they were paid
POLL_SECONDS = 1.0  # PAYOUTS_RAIL_POLL_SECONDS: no webhook after 1 s -> ask the bank
RETURN_WINDOW_DAYS = 10 / 86_400  # PAYOUTS_RETURN_WINDOW: 10 s


@dataclass
class PayoutStack:
    base_url: str
    bank: SimulatedBank
    env: WorkflowEnvironment
    admin_key: str

    def client(self) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.admin_key}"}
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=30)


@pytest.fixture(scope="module")
async def payout_stack(
    temporal_env: WorkflowEnvironment, engine: Engine
) -> AsyncIterator[PayoutStack]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    base_url = f"http://127.0.0.1:{port}"
    rail_settings = RailSettings(
        settle_seconds=SETTLE_SECONDS,
        return_seconds=RETURN_SECONDS,
        webhook_secret=SECRET,
        webhook_retry_seconds=0.2,
    )
    task_queue = new_task_queue("e2e-payouts")
    with pytest.MonkeyPatch.context() as env_vars:
        # The API checks the webhook signature with this secret; the worker reads the poll
        # interval and the return window from the settings when it is built.
        env_vars.setenv("PAYOUTS_RAIL_WEBHOOK_SECRET", SECRET)
        env_vars.setenv("PAYOUTS_RAIL_POLL_SECONDS", str(POLL_SECONDS))
        env_vars.setenv("PAYOUTS_RETURN_WINDOW", str(RETURN_WINDOW_DAYS))
        get_settings.cache_clear()
        app = create_app(
            engine,
            temporal_client=temporal_env.client,
            workflow_task_queue=task_queue,
            request_timeout=TEST_REQUEST_TIMEOUT,
        )
        server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
        async with AsyncExitStack() as exits:
            bank = exits.enter_context(
                SimulatedBank(rail_settings, webhook_url=f"{base_url}/v1/rail/webhooks")
            )
            pool = exits.enter_context(ThreadPoolExecutor(20, thread_name_prefix="e2e-payouts"))
            worker = build_worker(
                temporal_env.client,
                engine,
                task_queue=task_queue,
                activity_executor=pool,
                rail=bank,
            )
            await exits.enter_async_context(worker)
            await exits.enter_async_context(
                waking_holds(temporal_env.client, engine, task_queue=task_queue)
            )
            serving = asyncio.create_task(server.serve(sockets=[sock]))
            while not server.started:
                if serving.done():
                    serving.result()
                await asyncio.sleep(0.01)
            try:
                yield PayoutStack(base_url, bank, temporal_env, make_key(engine, ApiKeyRole.ADMIN))
            finally:
                server.should_exit = True
                await serving
                sock.close()
        get_settings.cache_clear()


@pytest.fixture
async def api(payout_stack: PayoutStack) -> AsyncIterator[httpx.AsyncClient]:
    async with payout_stack.client() as client:
        yield client


# --- steps ----------------------------------------------------------------------------------------


async def seller_with_available(
    api: httpx.AsyncClient, seller: str, account_number: str, amount: int
) -> None:
    """A seller with a payout account, an earning held 1 s, then ``amount`` available."""
    await create_seller(api, seller, hold_period=HOLD)
    account = await api.put(
        f"/v1/sellers/{seller}/payout_account",
        json={
            "account_number": account_number,
            "routing_number": TEST_ROUTING_NUMBER,
            "holder_name": "Jane Doe",
        },
    )
    assert account.status_code == 200, account.text
    assert account.json()["account_number_masked"].endswith(account_number[-4:])
    assert account_number not in account.text
    earning = await add_earning(api, seller, f"order-{seller}", amount)
    assert earning["status"] == "on_hold"
    # Earned, on hold: pending only.
    assert await balances(api, seller) == money(amount, 0, 0, on_hold=amount)

    async def available() -> None:
        assert await balances(api, seller) == money(amount, amount, amount)

    await eventually(available)  # the hold ended: posted, and available


async def scheduled_payout(api: httpx.AsyncClient, seller: str) -> str:
    """Pay the seller through its payout schedule (manual interval, triggered now); the payout
    id from the schedule's recorded run."""
    put = await api.put(f"/v1/sellers/{seller}/payout_schedule", json={"interval": "manual"})
    assert put.status_code == 200, put.text
    assert (put.json()["schedule_id"], put.json()["paused"]) == (f"payout-schedule/{seller}", False)
    trigger = await api.post(f"/v1/sellers/{seller}/payout_schedule/trigger")
    assert trigger.status_code == 202, trigger.text

    async def started() -> str:
        schedule = (await api.get(f"/v1/sellers/{seller}/payout_schedule")).json()
        runs = schedule["recent_runs"]
        assert len(runs) == 1, runs  # recorded by the run, before it starts the payout
        [run] = runs
        assert run["outcome"] == "started" and run["payout_id"], run
        return str(run["payout_id"])

    return await eventually(started, interval=0.02)


async def payout(api: httpx.AsyncClient, payout_id: str) -> dict[str, Any]:
    response = await api.get(f"/v1/payouts/{payout_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def reaches(
    api: httpx.AsyncClient, payout_id: str, status: str, timeout: float = 15.0
) -> dict[str, Any]:
    async def check() -> dict[str, Any]:
        body = await payout(api, payout_id)
        assert body["status"] == status, body["status"]
        return body

    return await eventually(check, timeout=timeout, interval=0.02)


async def processing_with_money_reserved(
    api: httpx.AsyncClient, seller: str, payout_id: str, amount: int
) -> None:
    """Submitted to the bank, not settled: the reservation (a pending debit) takes it out of
    available and pending; posted still has it."""
    body = await reaches(api, payout_id, "processing")
    assert (body["amount"], body["seller_id"], body["rail_reference"] is not None) == (
        amount,
        seller,
        True,
    )
    assert await balances(api, seller) == money(0, amount, 0)


async def scheduled_payout_in_flight(
    api: httpx.AsyncClient, seller: str, account_number: str, amount: int
) -> str:
    """A seller with ``amount`` available on ``account_number`` and a schedule due now: its
    payout, once submitted to the bank with the money reserved."""
    await seller_with_available(api, seller, account_number, amount)
    payout_id = await scheduled_payout(api, seller)
    await processing_with_money_reserved(api, seller, payout_id, amount)
    return payout_id


# --- scenarios ------------------------------------------------------------------------------------


async def test_scheduled_payout_is_paid(
    api: httpx.AsyncClient, payout_stack: PayoutStack, uid: str
) -> None:
    seller = f"po-paid-{uid}"
    payout_id = await scheduled_payout_in_flight(api, seller, ACCOUNT_PAID, 7_000)
    paid = await reaches(api, payout_id, "paid")
    assert paid["origin"] == "scheduled" and paid["paid_at"] is not None
    assert await balances(api, seller) == money(0, 0, 0)  # posted drops: the money left
    assert payout_stack.bank.paid_count(payout_id) == 1
    listed = (await api.get("/v1/payouts", params={"seller_id": seller})).json()["items"]
    assert [(p["id"], p["status"]) for p in listed] == [(payout_id, "paid")]
    assert (await api.delete(f"/v1/sellers/{seller}/payout_schedule")).status_code == 204


async def test_scheduled_payout_fails_and_the_money_is_available_again(
    api: httpx.AsyncClient, payout_stack: PayoutStack, uid: str
) -> None:
    seller = f"po-fail-{uid}"
    payout_id = await scheduled_payout_in_flight(api, seller, ACCOUNT_CLOSED, 5_000)
    failed = await reaches(api, payout_id, "failed")
    assert failed["failure_code"] == "account_closed"
    assert failed["failure_reason"] == "The destination account is closed."
    assert await balances(api, seller) == money(5_000, 5_000, 5_000)  # available restored
    assert payout_stack.bank.paid_count(payout_id) == 0

    # The destination is dead: the account is failed and the schedule paused with a note.
    account_url = f"/v1/sellers/{seller}/payout_account"
    account = (await api.get(account_url)).json()
    assert (account["status"], account["failure_code"], account["failed_payout_id"]) == (
        "failed",
        "account_closed",
        payout_id,
    )
    schedule_url = f"/v1/sellers/{seller}/payout_schedule"

    async def paused() -> dict[str, Any]:
        schedule: dict[str, Any] = (await api.get(schedule_url)).json()
        assert schedule["paused"] is True, schedule
        return schedule

    schedule = await eventually(paused)
    assert schedule["note"] == (
        f"payout {payout_id} failed: account_closed; set a new payout account, then resume"
    )
    now = schedule["payout_now"]
    assert (now["amount"], now["reason"]) == (0, "payout_account_failed")
    # Even a manual trigger of the paused schedule pays nothing to it, nor does a manual payout.
    assert (await api.post(f"{schedule_url}/trigger")).status_code == 202

    async def skipped() -> None:
        runs = (await api.get(schedule_url)).json()["recent_runs"]
        assert len(runs) == 2, runs
        assert (runs[0]["outcome"], runs[0]["reason"]) == ("skipped", "payout_account_failed")

    await eventually(skipped)
    refused = await api.post(f"/v1/sellers/{seller}/payouts", json={})
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["code"] == "payout_account_failed"

    # A new account makes it active; the schedule stays paused until it is resumed.
    new = await api.put(
        account_url,
        json={
            "account_number": ACCOUNT_PAID,
            "routing_number": TEST_ROUTING_NUMBER,
            "holder_name": "Jane Doe",
        },
    )
    assert new.status_code == 200, new.text
    assert (new.json()["status"], new.json()["failure_code"]) == ("active", None)
    assert (await api.get(schedule_url)).json()["paused"] is True
    resumed = await api.post(f"{schedule_url}/resume")
    assert resumed.status_code == 200 and resumed.json()["paused"] is False, resumed.text
    assert (await api.get(schedule_url)).json()["payout_now"]["amount"] == 5_000
    assert (await api.delete(schedule_url)).status_code == 204


async def test_scheduled_payout_paid_then_returned_pauses_the_schedule(
    api: httpx.AsyncClient, payout_stack: PayoutStack, uid: str
) -> None:
    seller = f"po-ret-{uid}"
    payout_id = await scheduled_payout_in_flight(api, seller, ACCOUNT_RETURNED, 4_000)
    await reaches(api, payout_id, "paid")
    assert await balances(api, seller) == money(0, 0, 0)
    # RETURN_SECONDS later the bank returns it: a reversal credits the seller back.
    returned = await reaches(api, payout_id, "returned")
    assert returned["failure_code"] == "no_account"
    assert returned["return_transaction_id"] is not None
    assert await balances(api, seller) == money(4_000, 4_000, 4_000)
    assert payout_stack.bank.paid_count(payout_id) == 1

    async def paused() -> dict[str, Any]:
        schedule: dict[str, Any] = (await api.get(f"/v1/sellers/{seller}/payout_schedule")).json()
        assert schedule["paused"] is True, schedule
        return schedule

    schedule = await eventually(paused)
    assert payout_id in schedule["note"] and "returned" in schedule["note"]
    assert (await api.delete(f"/v1/sellers/{seller}/payout_schedule")).status_code == 204


async def test_manual_payout_retried_with_one_idempotency_key_pays_once(
    api: httpx.AsyncClient, payout_stack: PayoutStack, uid: str
) -> None:
    seller = f"po-idem-{uid}"
    await seller_with_available(api, seller, ACCOUNT_PAID, 6_000)
    headers = {"Idempotency-Key": f"manual-{uid}"}
    url = f"/v1/sellers/{seller}/payouts"
    # Two at once and one after: the same payout each time.
    first, second = await asyncio.gather(
        api.post(url, json={"amount": 2_500}, headers=headers),
        api.post(url, json={"amount": 2_500}, headers=headers),
    )
    third = await api.post(url, json={"amount": 2_500}, headers=headers)
    for response in (first, second, third):
        assert response.status_code == 201, response.text
    ids = {r.json()["id"] for r in (first, second, third)}
    assert len(ids) == 1
    [payout_id] = ids
    assert await balances(api, seller) == money(3_500, 6_000, 3_500)  # reserved once
    await reaches(api, payout_id, "paid")
    assert await balances(api, seller) == money(3_500, 3_500, 3_500)
    # After it was paid, a retry replays the first answer and moves nothing.
    again = await api.post(url, json={"amount": 2_500}, headers=headers)
    assert (again.status_code, again.json()) == (201, first.json())
    listed = (await api.get("/v1/payouts", params={"seller_id": seller})).json()["items"]
    assert [p["id"] for p in listed] == [payout_id]
    assert payout_stack.bank.paid_count(payout_id) == 1
    assert await balances(api, seller) == money(3_500, 3_500, 3_500)


async def test_duplicate_webhook_is_applied_once(
    api: httpx.AsyncClient, payout_stack: PayoutStack, uid: str
) -> None:
    seller = f"po-dup-{uid}"
    bank = payout_stack.bank
    await seller_with_available(api, seller, ACCOUNT_PAID, 3_000)
    created = await api.post(f"/v1/sellers/{seller}/payouts", json={})
    assert created.status_code == 201, created.text
    payout_id = created.json()["id"]
    assert created.json()["amount"] == 3_000
    # Submitted, not settled yet (SETTLE_SECONDS): its paid event goes out three times.
    bank.duplicate_webhooks(payout_id=payout_id, copies=3)
    assert await balances(api, seller) == money(0, 3_000, 0)
    await reaches(api, payout_id, "paid")

    async def delivered_three_times() -> None:
        [webhook] = bank.inspect(payout_id).webhooks
        assert (webhook.state, webhook.deliveries) == (WebhookState.DELIVERED, 3)

    await eventually(delivered_three_times)
    state = await get_payout_state(payout_stack.env.client, payout_id)
    assert (state.status, state.rail_events) == ("paid", 1)  # one event, counted once
    assert await balances(api, seller) == money(0, 0, 0)  # not debited twice
    assert bank.paid_count(payout_id) == 1
    assert (await payout(api, payout_id))["status"] == "paid"


async def test_payout_without_webhook_is_found_paid_by_the_status_poll(
    api: httpx.AsyncClient, payout_stack: PayoutStack, uid: str
) -> None:
    seller = f"po-poll-{uid}"
    await seller_with_available(api, seller, ACCOUNT_NO_WEBHOOK, 2_000)
    created = await api.post(f"/v1/sellers/{seller}/payouts", json={"amount": 1_500})
    assert created.status_code == 201, created.text
    payout_id = created.json()["id"]
    assert await balances(api, seller) == money(500, 2_000, 500)
    await reaches(api, payout_id, "paid")
    assert await balances(api, seller) == money(500, 500, 500)
    [webhook] = payout_stack.bank.inspect(payout_id).webhooks
    assert webhook.state == WebhookState.SUPPRESSED  # the bank never sent it
    state = await get_payout_state(payout_stack.env.client, payout_id)
    assert (state.status, state.rail_events) == ("paid", 0)
    assert state.rail_polls >= 1
    assert payout_stack.bank.paid_count(payout_id) == 1

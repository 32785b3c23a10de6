"""Instant payouts end to end over HTTP: the real API (uvicorn on a free port), the platform's
worker (``build_worker(..., rail=bank)``) with an in-process simulated bank whose standard rail
takes an hour and whose signed webhooks go to the API's ``/v1/rail/webhooks``, the session's
Temporal dev server and PostgreSQL. The instant terms come from the settings
(``PAYOUTS_INSTANT_*``: 1.5 %, at least 50, 20,000 a day here), as ``payouts run`` reads them.

An instant payout is paid in seconds, its fee shown on the payout and taken from the balances,
which say what is instantly available and what is left of the day's limit; past the limit, and
to an account without instant payments, the client gets a 422 and nothing is reserved; an
instant payout that fails gives the money and the fee back.
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
    ACCOUNT_INSTANT_FAILS,
    ACCOUNT_NO_INSTANT,
    ACCOUNT_PAID,
    TEST_ROUTING_NUMBER,
    RailSettings,
    SimulatedBank,
)
from server.settings import get_settings
from server.worker import build_worker
from tests.api.conftest import make_key
from tests.e2e.conftest import add_earning, create_seller
from tests.helpers import eventually
from tests.temporal_env import TEST_REQUEST_TIMEOUT, new_task_queue, waking_holds

SECRET = "whsec_e2e_instant"
DAILY_LIMIT = 20_000


@dataclass
class InstantStack:
    base_url: str
    bank: SimulatedBank
    admin_key: str


@pytest.fixture(scope="module")
async def instant_stack(
    temporal_env: WorkflowEnvironment, engine: Engine
) -> AsyncIterator[InstantStack]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    base_url = f"http://127.0.0.1:{port}"
    rail_settings = RailSettings(
        settle_seconds=3_600,  # the batch rail: an hour
        webhook_secret=SECRET,
        webhook_retry_seconds=0.2,
    )
    task_queue = new_task_queue("e2e-instant")
    with pytest.MonkeyPatch.context() as env_vars:
        env_vars.setenv("PAYOUTS_RAIL_WEBHOOK_SECRET", SECRET)
        env_vars.setenv("PAYOUTS_RETURN_WINDOW", str(2 / 86_400))
        env_vars.setenv("PAYOUTS_INSTANT_FEE_BP", "150")
        env_vars.setenv("PAYOUTS_INSTANT_FEE_MINIMUM", "50")
        env_vars.setenv("PAYOUTS_INSTANT_DAILY_LIMIT", str(DAILY_LIMIT))
        get_settings.cache_clear()
        app = create_app(
            engine,
            temporal_client=temporal_env.client,
            workflow_task_queue=task_queue,
            request_timeout=TEST_REQUEST_TIMEOUT,
            instant_terms=get_settings().instant_terms(),
        )
        server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
        async with AsyncExitStack() as exits:
            bank = exits.enter_context(
                SimulatedBank(rail_settings, webhook_url=f"{base_url}/v1/rail/webhooks")
            )
            pool = exits.enter_context(ThreadPoolExecutor(20, thread_name_prefix="e2e-instant"))
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
                yield InstantStack(base_url, bank, make_key(engine, ApiKeyRole.ADMIN))
            finally:
                server.should_exit = True
                await serving
                sock.close()
        get_settings.cache_clear()


@pytest.fixture
async def api(instant_stack: InstantStack) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {instant_stack.admin_key}"}
    async with httpx.AsyncClient(
        base_url=instant_stack.base_url, headers=headers, timeout=30
    ) as client:
        yield client


async def balances(api: httpx.AsyncClient, seller: str) -> dict[str, int]:
    response = await api.get(f"/v1/sellers/{seller}/balances")
    assert response.status_code == 200, response.text
    body = response.json()
    return {
        "posted": body["posted"]["amount"],
        "available": body["available"]["amount"],
        "in_transit": body["in_transit"],
        "instant_available": body["instant_available"],
        "instant_limit_remaining": body["instant_limit_remaining"],
    }


async def seller_with_available(
    api: httpx.AsyncClient, seller: str, account_number: str, amount: int
) -> None:
    await create_seller(api, seller, hold_period="PT0S")
    account = await api.put(
        f"/v1/sellers/{seller}/payout_account",
        json={
            "account_number": account_number,
            "routing_number": TEST_ROUTING_NUMBER,
            "holder_name": "Jane Doe",
        },
    )
    assert account.status_code == 200, account.text
    await add_earning(api, seller, f"order-{seller}", amount)

    async def available() -> None:
        assert (await balances(api, seller))["available"] == amount

    await eventually(available)


async def pay(api: httpx.AsyncClient, seller: str, **body: Any) -> httpx.Response:
    return await api.post(f"/v1/sellers/{seller}/payouts", json=body)


async def reaches(api: httpx.AsyncClient, payout_id: str, status: str) -> dict[str, Any]:
    async def check() -> dict[str, Any]:
        response = await api.get(f"/v1/payouts/{payout_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        assert body["status"] == status, body["status"]
        return body

    return await eventually(check, timeout=15, interval=0.05)


async def test_an_instant_payout_over_http(api: httpx.AsyncClient, uid: str) -> None:
    seller = f"rtp-{uid}"
    await seller_with_available(api, seller, ACCOUNT_PAID, 30_000)
    assert await balances(api, seller) == {
        "posted": 30_000,
        "available": 30_000,
        "in_transit": 0,
        "instant_available": DAILY_LIMIT,  # 29,556 + fee would fit; the limit caps it
        "instant_limit_remaining": DAILY_LIMIT,
    }
    standard = await pay(api, seller, amount=1_000)
    assert standard.status_code == 201, standard.text
    assert (standard.json()["method"], standard.json()["fee"]) == ("standard", 0)

    created = await pay(api, seller, amount=10_000, method="instant")
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["method"], body["amount"], body["fee"], body["status"]) == (
        "instant",
        10_000,
        150,
        "pending",
    )
    paid = await reaches(api, body["id"], "paid")
    assert paid["fee"] == 150
    # The standard payout waits for the batch rail.
    assert (await api.get(f"/v1/payouts/{standard.json()['id']}")).json()["status"] in (
        "pending",
        "processing",
    )
    assert await balances(api, seller) == {
        "posted": 30_000 - 10_150,
        "available": 30_000 - 10_150 - 1_000,
        "in_transit": 1_000,
        "instant_available": 10_000,
        "instant_limit_remaining": 10_000,
    }

    # Past the day's limit: 422, nothing reserved.
    over = await pay(api, seller, amount=10_001, method="instant")
    assert over.status_code == 422, over.text
    assert over.headers["content-type"].startswith("application/problem+json")
    assert over.json()["code"] == "instant_limit_exceeded"
    assert "10000 remains today" in over.json()["detail"]
    assert (await balances(api, seller))["available"] == 30_000 - 10_150 - 1_000

    # Everything instantly available: what the limit leaves.
    rest = await pay(api, seller, method="instant")
    assert rest.status_code == 201, rest.text
    assert (rest.json()["amount"], rest.json()["fee"]) == (10_000, 150)
    await reaches(api, rest.json()["id"], "paid")
    after = await balances(api, seller)
    assert (after["instant_available"], after["instant_limit_remaining"]) == (0, 0)


async def test_an_account_without_instant_payments_gets_a_422_and_nothing_is_reserved(
    api: httpx.AsyncClient, uid: str
) -> None:
    seller = f"rtp-no-{uid}"
    await seller_with_available(api, seller, ACCOUNT_NO_INSTANT, 5_000)
    before = await balances(api, seller)
    refused = await pay(api, seller, method="instant")
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "instant_not_supported"
    assert await balances(api, seller) == before
    listed = await api.get("/v1/payouts", params={"seller_id": seller})
    assert listed.json()["items"] == []
    # A standard payout to it is accepted.
    assert (await pay(api, seller, amount=1_000)).status_code == 201


async def test_an_instant_payout_that_fails_gives_the_money_and_the_fee_back(
    api: httpx.AsyncClient, uid: str
) -> None:
    seller = f"rtp-fail-{uid}"
    await seller_with_available(api, seller, ACCOUNT_INSTANT_FAILS, 5_000)
    created = await pay(api, seller, amount=2_000, method="instant")
    assert created.status_code == 201, created.text
    assert (await balances(api, seller))["available"] == 5_000 - 2_000 - 50
    failed = await reaches(api, created.json()["id"], "failed")
    assert failed["failure_code"] == "instant_declined"
    back = await balances(api, seller)
    assert (back["available"], back["in_transit"], back["instant_limit_remaining"]) == (
        5_000,
        0,
        DAILY_LIMIT,
    )


async def test_a_sellers_own_daily_limit_over_http(api: httpx.AsyncClient, uid: str) -> None:
    seller = f"rtp-own-{uid}"
    await seller_with_available(api, seller, ACCOUNT_PAID, 30_000)
    patched = await api.patch(f"/v1/sellers/{seller}", json={"instant_daily_limit": 5_000})
    assert patched.status_code == 200, patched.text
    assert patched.json()["instant_daily_limit"] == 5_000
    now = await balances(api, seller)
    assert (now["instant_available"], now["instant_limit_remaining"]) == (5_000, 5_000)
    over = await pay(api, seller, amount=5_001, method="instant")
    assert (over.status_code, over.json()["code"]) == (422, "instant_limit_exceeded")
    refused = await api.patch(f"/v1/sellers/{seller}", json={"instant_daily_limit": -1})
    assert refused.status_code == 422, refused.text
    reset = await api.patch(f"/v1/sellers/{seller}", json={"instant_daily_limit": None})
    assert reset.json()["instant_daily_limit"] is None
    assert (await balances(api, seller))["instant_limit_remaining"] == DAILY_LIMIT


async def test_concurrent_instant_payouts_cannot_pass_the_daily_limit(
    api: httpx.AsyncClient, uid: str
) -> None:
    seller = f"rtp-race-{uid}"
    await seller_with_available(api, seller, ACCOUNT_PAID, 60_000)
    answers = await asyncio.gather(
        *(
            api.post(
                f"/v1/sellers/{seller}/payouts",
                json={"amount": 6_000, "method": "instant"},
                headers={"Idempotency-Key": f"race-{n}"},
            )
            for n in range(6)
        )
    )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201, 201, 201, 422, 422, 422], [a.text for a in answers]
    assert {a.json()["code"] for a in answers if a.status_code == 422} == {"instant_limit_exceeded"}
    now = await balances(api, seller)
    assert (now["available"], now["instant_limit_remaining"]) == (60_000 - 3 * 6_090, 2_000)

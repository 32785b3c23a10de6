"""/metrics (route templates, ledger writes, payouts by status), /readyz with and without its
dependencies, and the worker's metrics endpoint with the Temporal SDK's metrics."""

from __future__ import annotations

import socket
import urllib.request
import uuid
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, create_engine, text
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from marketplace import Marketplace, Payouts
from server.worker_observability import WorkerMetrics
from tests.api.helpers import create_account, post_transaction, transfer
from tests.payouts.conftest import seller_with_available
from tests.temporal_env import running_worker


def samples(body: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def value(body: str, name: str, **labels: str) -> float:
    return samples(body).get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_is_open_and_labels_http_by_route_template(
    obs_app: FastAPI, admin: TestClient
) -> None:
    seller_id = f"m-{uuid.uuid4().hex[:8]}"
    admin.post("/v1/sellers", json={"id": seller_id, "name": "Shop", "currency": "USD"})
    assert admin.get(f"/v1/sellers/{seller_id}").status_code == 200
    assert admin.get("/v1/sellers/no-such-seller").status_code == 404
    with TestClient(obs_app) as anonymous:  # no key
        response = anonymous.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    body = response.text
    route = "/v1/sellers/{seller_id}"
    count = "payouts_http_request_duration_seconds_count"
    assert value(body, count, method="GET", route=route, status="200") >= 1
    assert value(body, count, method="GET", route=route, status="404") >= 1
    assert value(body, count, method="POST", route="/v1/sellers", status="201") >= 1
    assert seller_id not in body and "no-such-seller" not in body


def test_ledger_write_counters_follow_transactions(admin: TestClient) -> None:
    def writes(kind: str) -> float:
        return value(admin.get("/metrics").text, "payouts_ledger_writes_total", kind=kind)

    before = {kind: writes(kind) for kind in ("created", "posted", "reversed")}
    ledger = admin.post("/v1/ledgers", json={"name": f"m {uuid.uuid4()}", "currency": "USD"})
    ledger_id = ledger.json()["id"]
    seller = create_account(admin, ledger_id, "credit")
    cash = create_account(admin, ledger_id, "debit")
    earning = post_transaction(admin, ledger_id, transfer(cash, seller, 500), status="pending")
    assert earning.status_code == 201, earning.text
    tx = earning.json()["id"]
    assert admin.patch(f"/v1/ledger_transactions/{tx}", json={"status": "posted"}).is_success
    assert admin.post(f"/v1/ledger_transactions/{tx}/reversal", json={}).is_success
    assert writes("created") >= before["created"] + 1
    assert writes("posted") >= before["posted"] + 1
    assert writes("reversed") >= before["reversed"] + 1


def test_payouts_by_status_reflects_the_database(engine: Engine, admin: TestClient) -> None:
    payouts = Payouts(Marketplace())
    seller_id = f"pm-{uuid.uuid4().hex[:8]}"
    seller_with_available(engine, payouts, seller_id, 1_000)
    with engine.begin() as conn:
        payouts.reserve_payout(conn, payout_id=f"po-{seller_id}", seller_id=seller_id)
        expected = dict(
            conn.execute(text("SELECT status, count(*) FROM payouts GROUP BY status")).all()
        )
    with TestClient(create_app(engine)) as fresh:  # a new app: nothing cached yet
        body = fresh.get("/metrics").text
    assert expected["pending"] >= 1
    for status, count in expected.items():
        assert value(body, "payouts_by_status", status=status) == count


def test_readyz_ok_with_database_and_temporal(engine: Engine, temporal_client: Client) -> None:
    with TestClient(create_app(engine, temporal_client=temporal_client)) as c:
        response = c.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "temporal": "ok"}}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def assert_not_ready(response: Any, down: list[str]) -> None:
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "service_unavailable"
    assert body["unavailable"] == down
    for name in down:
        assert name in body["detail"]


def test_readyz_503_when_the_database_is_down(temporal_client: Client) -> None:
    bad = create_engine(
        f"postgresql+psycopg://nobody@127.0.0.1:{closed_port()}/none",
        connect_args={"connect_timeout": 1},
    )
    try:
        with TestClient(create_app(bad, temporal_client=temporal_client)) as c:
            assert_not_ready(c.get("/readyz"), ["database"])
            assert c.get("/healthz").status_code == 200  # alive, just not ready
    finally:
        bad.dispose()


async def test_readyz_503_when_temporal_is_down(engine: Engine) -> None:
    unreachable = await Client.connect(f"127.0.0.1:{closed_port()}", lazy=True)
    with TestClient(create_app(engine, temporal_client=unreachable)) as c:
        assert_not_ready(c.get("/readyz"), ["temporal"])


async def test_worker_metrics_endpoint_serves_temporal_sdk_metrics(
    temporal_env: WorkflowEnvironment, engine: Engine, task_queue: str
) -> None:
    metrics = WorkerMetrics("127.0.0.1", 0)  # a free port
    runtime = metrics.start()
    try:
        client = await Client.connect(
            temporal_env.client.service_client.config.target_host, runtime=runtime
        )
        async with running_worker(client, engine, task_queue=task_queue):
            url = f"http://127.0.0.1:{metrics.port}/metrics"
            with urllib.request.urlopen(url, timeout=5) as answer:
                body = answer.read().decode()
    finally:
        metrics.stop()
    names = {family.name for family in text_string_to_metric_families(body)}
    assert any(name.startswith("temporal_") for name in names), sorted(names)[:20]
    assert "payouts_hold_releases" in names
    assert "payouts_ledger_writes" in names

"""Structured logs: request id, method, route template, status and duration on every request
line; seller_id on a seller's request; workflow_id and seller_id on an activity's lines."""

from __future__ import annotations

import io
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine
from temporalio import activity, workflow
from temporalio.client import Client

from observability.logs import configure_logging, log_context
from tests.observability.conftest import JsonLines
from tests.temporal_env import running_worker


def request_lines(logs: JsonLines) -> list[dict[str, object]]:
    return [line for line in logs.lines() if line["logger"] == "api.request"]


def test_request_line_carries_the_callers_request_id(
    admin: TestClient, json_logs: JsonLines
) -> None:
    response = admin.get("/v1/sellers", headers={"X-Request-Id": "req-abc.123"})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "req-abc.123"
    [line] = request_lines(json_logs)
    assert line["request_id"] == "req-abc.123"
    assert line["method"] == "GET"
    assert line["route"] == "/v1/sellers"
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] > 0
    assert line["level"] == "INFO" and "ts" in line


def test_an_insane_request_id_is_replaced(admin: TestClient, json_logs: JsonLines) -> None:
    response = admin.get("/healthz", headers={"X-Request-Id": "bad id\twith spaces" + "x" * 200})
    generated = response.headers["x-request-id"]
    assert len(generated) == 32 and generated.isalnum()
    [line] = request_lines(json_logs)
    assert line["request_id"] == generated


def test_seller_route_lines_carry_seller_id_and_the_route_template(
    admin: TestClient, json_logs: JsonLines
) -> None:
    seller_id = f"log-{uuid.uuid4().hex[:8]}"
    created = admin.post("/v1/sellers", json={"id": seller_id, "name": "Shop", "currency": "USD"})
    assert created.status_code == 201, created.text
    json_logs.stream.truncate(0)
    json_logs.stream.seek(0)
    assert admin.get(f"/v1/sellers/{seller_id}").status_code == 200
    [line] = request_lines(json_logs)
    assert line["seller_id"] == seller_id
    assert line["route"] == "/v1/sellers/{seller_id}"
    assert line["path"] == f"/v1/sellers/{seller_id}"


def test_text_on_a_terminal_json_otherwise() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        tty, pipe = Tty(), io.StringIO()
        configure_logging("INFO", stream=tty)
        with log_context(request_id="r1"):
            logging.getLogger("t").info("on a terminal")
        configure_logging("INFO", stream=pipe)
        with log_context(request_id="r2", seller_id="s2"):
            logging.getLogger("t").warning("in a pipe")
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in saved[0]:
            root.addHandler(h)
        root.setLevel(saved[1])
    assert "INFO    t: on a terminal [request_id=r1]" in tty.getvalue()
    line = json.loads(pipe.getvalue())
    assert line["message"] == "in a pipe"
    assert (line["level"], line["request_id"], line["seller_id"]) == ("WARNING", "r2", "s2")


@dataclass
class GreetInput:
    seller_id: str


@activity.defn(name="observability_test_greet")
def greet(input: GreetInput) -> str:
    logging.getLogger("tests.some_library").info("greeting %s", input.seller_id)
    return "hi"


@workflow.defn(name="ObservabilityTestWorkflow", sandboxed=False)
class GreetWorkflow:
    @workflow.run
    async def run(self, seller_id: str) -> str:
        workflow.logger.info("about to greet")
        result: str = await workflow.execute_activity(
            "observability_test_greet",
            GreetInput(seller_id),
            start_to_close_timeout=timedelta(seconds=10),
        )
        return result


async def test_activity_lines_carry_workflow_id_and_seller_id(
    temporal_client: Client, engine: Engine, task_queue: str, json_logs: JsonLines
) -> None:
    workflow_id = f"obs-test/{uuid.uuid4().hex[:8]}"
    async with running_worker(
        temporal_client,
        engine,
        task_queue=task_queue,
        workflows=[GreetWorkflow],
        activities=[greet],
    ):
        result = await temporal_client.execute_workflow(
            GreetWorkflow.run, "seller-77", id=workflow_id, task_queue=task_queue
        )
    assert result == "hi"
    lines = json_logs.lines()
    [activity_line] = [line for line in lines if line["logger"] == "tests.some_library"]
    assert activity_line["workflow_id"] == workflow_id
    assert activity_line["seller_id"] == "seller-77"
    assert activity_line["activity"] == "observability_test_greet"
    workflow_lines = [line for line in lines if str(line["message"]).startswith("about to greet")]
    assert workflow_lines and workflow_lines[0]["workflow_id"] == workflow_id

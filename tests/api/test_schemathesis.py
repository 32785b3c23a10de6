"""Schemathesis against the app's own OpenAPI schema: every operation, valid and invalid input.

The app runs in-process (ASGI) on the session's PostgreSQL, with the session's Temporal dev
server and the platform's worker, so the workflow-backed routes do their real work. Requests carry
an admin key. Each response must not be a server error and must match the schema: a documented
status code, a documented content type and a body that validates (errors are problem+json, see
``api.routing.DOCUMENTED_ERRORS``).

Two runs, with the same checks:

- per operation: ``PAYOUTS_FUZZ_EXAMPLES`` examples each (default 15);
- stateful: ``PAYOUTS_FUZZ_SCENARIOS`` scenarios (default 100) of up to ``PAYOUTS_FUZZ_STEPS``
  calls (default 20) that follow the schema's OpenAPI links (``api.links``): create a ledger,
  then read it and create an account in it, create a seller, then read, change and book for it,
  ... so the item routes answer for ids that exist, not only 404. Only the declared links are
  followed (Schemathesis' own link inference is off), with valid input only, and the run must
  have reached existing resources (``MUST_REACH``). The wallets' routes have a stateful run of
  their own (``test_wallets_conform_statefully``, ``WALLETS_MUST_REACH``).

Both are derandomized so a run is reproducible. Raise them locally for a deeper search, e.g.
``PAYOUTS_FUZZ_EXAMPLES=200 PAYOUTS_FUZZ_SCENARIOS=300 .venv/bin/pytest
tests/api/test_schemathesis.py``.
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.config import SchemathesisConfig
from schemathesis.core.transport import Response
from sqlalchemy import Engine, create_engine
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from api.auth import ApiKeyRole
from tests.api.conftest import make_key
from tests.temporal_env import TEST_REQUEST_TIMEOUT, new_task_queue, running_worker

FUZZ_EXAMPLES = int(os.environ.get("PAYOUTS_FUZZ_EXAMPLES", "15"))
FUZZ_SCENARIOS = int(os.environ.get("PAYOUTS_FUZZ_SCENARIOS", "100"))
FUZZ_STEPS = int(os.environ.get("PAYOUTS_FUZZ_STEPS", "20"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


class WorkerThread:
    """The platform's worker on an event loop of its own thread: the ASGI client schemathesis uses
    runs the app on yet another loop (a blocking portal), so the pytest loop is not running."""

    def __init__(self, target_host: str, namespace: str, engine: Engine, task_queue: str) -> None:
        self._args = (target_host, namespace, engine, task_queue)
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="fuzz-worker", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        target_host, namespace, engine, task_queue = self._args
        client = await Client.connect(target_host, namespace=namespace)
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with running_worker(client, engine, task_queue=task_queue):
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> WorkerThread:
        self._thread.start()
        assert self._ready.wait(60), "the worker did not start"
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *_: Any) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)


@pytest.fixture(scope="module")
def fuzz_task_queue(temporal_env: WorkflowEnvironment, engine: Engine) -> Iterator[str]:
    queue = new_task_queue("fuzz")
    config = temporal_env.client.service_client.config
    with WorkerThread(config.target_host, temporal_env.client.namespace, engine, queue):
        yield queue


@pytest.fixture(scope="module")
def fuzz_admin_key(engine: Engine) -> str:
    return make_key(engine, ApiKeyRole.ADMIN)


@pytest.fixture(scope="module")
def fuzzed_app(engine: Engine, temporal_env: WorkflowEnvironment, fuzz_task_queue: str) -> FastAPI:
    return create_app(
        engine,
        temporal_client=temporal_env.client,
        workflow_task_queue=fuzz_task_queue,
        request_timeout=TEST_REQUEST_TIMEOUT,
    )


# The schema is the app's own; it needs no database, so an engine that never connects serves to
# load it at collection time (one test per operation). The requests go to ``fuzzed_app``.
schema_app = create_app(create_engine("postgresql+psycopg://schema-only/none"))
schema = schemathesis.openapi.from_asgi("/openapi.json", schema_app)
# The stateful run follows the links the app declares, and only those: with Schemathesis' own
# inference (from response schemas and path names) a link missing from api.links would go
# unnoticed. Its input is valid only: invalid input (a missing key, a wrong type) is the
# per-operation run's job, and here it would end most chains at their first step.
STATEFUL_CONFIG = {"generation": {"mode": "positive"}, "inference": {"algorithms": []}}
stateful_schema = schemathesis.openapi.from_asgi(
    "/openapi.json",
    schema_app,
    config=SchemathesisConfig.from_dict({"phases": {"stateful": STATEFUL_CONFIG}}),
)

# The wallets run on their own (``test_wallets_conform_statefully``): in one state machine their
# links would take the fixed budget of scenarios from the sellers' chains.
marketplace_schema = stateful_schema.exclude(tag="wallets")
wallets_schema = stateful_schema.include(tag="wallets")

# Operations that answer 200 only for a resource that exists: the stateful run must have reached
# each (through a link; a random id is a 404), or its links lead nowhere.
MUST_REACH = (
    "GET /v1/ledgers/{ledger_id}",
    "GET /v1/ledger_accounts/{ledger_account_id}",
    "GET /v1/sellers/{seller_id}",
    "PATCH /v1/sellers/{seller_id}",
    "GET /v1/sellers/{seller_id}/balances",
    "GET /v1/sellers/{seller_id}/earnings/{order_id}",
    "GET /v1/webhook_endpoints/{endpoint_id}",
    "DELETE /v1/webhook_endpoints/{endpoint_id}",
    "GET /v1/disputes/{dispute_id}",
)


@schema.parametrize()
@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_schema(
    case: schemathesis.Case, fuzzed_app: FastAPI, fuzz_admin_key: str
) -> None:
    case.call_and_validate(
        app=fuzzed_app, headers={"Authorization": f"Bearer {fuzz_admin_key}"}, checks=CHECKS
    )


# Ids the client chooses, by operation: the stateful run makes each unique per request.
CLIENT_IDS = {
    "POST /v1/sellers": ("id",),
    "POST /v1/disputes": ("id",),
    "POST /v1/sellers/{seller_id}/earnings": ("order_id",),
    "POST /v1/sellers/{seller_id}/earnings/{order_id}/refund": ("refund_id",),
    "POST /v1/ledger_accounts": ("external_id",),
    "POST /v1/ledger_transactions": ("external_id",),
    "POST /v1/ledger_transactions/{ledger_transaction_id}/reversal": ("external_id",),
    "POST /v1/wallets": ("id",),
    "POST /v1/test_clocks": ("id",),
}


def make_ids_unique(case: schemathesis.Case) -> None:
    """Hypothesis starts new scenarios from the steps of earlier ones, and must see the same
    answers to the same steps: a seller created in one scenario would exist in the next (200, not
    201, and the chain from it would vanish), an Idempotency-Key used again for another body is a
    422. So the ids the client chooses get a suffix of their own per request, which keeps a valid
    id valid (and an invalid one invalid), and every POST a key of its own."""
    suffix = f"-{uuid.uuid4().hex[:12]}"
    body = case.body
    for name in CLIENT_IDS.get(case.operation.label, ()):
        if isinstance(body, dict) and isinstance(body.get(name), str):
            body[name] = body[name][:100] + suffix
    if case.operation.method.upper() == "POST":
        case.headers = {**(case.headers or {}), "Idempotency-Key": str(uuid.uuid4())}


def test_api_conforms_to_its_schema_statefully(fuzzed_app: FastAPI, fuzz_admin_key: str) -> None:
    headers = {"Authorization": f"Bearer {fuzz_admin_key}"}
    answered: Counter[tuple[str, int]] = Counter()
    sellers: set[str] = set()
    earnings_of_sellers = 0

    class Scenario(marketplace_schema.as_state_machine()):
        def before_call(self, case: schemathesis.Case) -> None:
            make_ids_unique(case)

        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"app": fuzzed_app, "headers": headers}

        def after_call(self, response: Response, case: schemathesis.Case) -> None:
            nonlocal earnings_of_sellers
            super().after_call(response, case)
            label = case.operation.label
            answered[label, response.status_code] += 1
            if label == "POST /v1/sellers" and response.status_code == 201:
                sellers.add(response.json()["id"])
            if label == "GET /v1/sellers/{seller_id}/earnings" and response.status_code == 200:
                # A list answers 200 for any seller id: count the ones created in this run.
                earnings_of_sellers += (case.path_parameters or {}).get("seller_id") in sellers

        def validate_response(
            self,
            response: Response,
            case: schemathesis.Case,
            additional_checks: Any = None,
            **kwargs: Any,
        ) -> None:
            case.validate_response(
                response,
                checks=CHECKS,
                additional_checks=additional_checks,
                headers=headers,
                transport_kwargs=kwargs or None,
                recorder=self.recorder,
            )

    Scenario.run(
        settings=settings(
            max_examples=FUZZ_SCENARIOS,
            stateful_step_count=FUZZ_STEPS,
            phases=[Phase.generate],
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
    )
    unreached = [label for label in MUST_REACH if not answered[label, 200]]
    assert unreached == [], f"no 200 for existing ids; answered: {sorted(answered.items())}"
    assert earnings_of_sellers > 0, "no earnings list of a seller the run created"


# Wallet item routes the wallets' stateful run must have answered 200 (through a link).
WALLETS_MUST_REACH = (
    "GET /v1/wallets/{wallet_id}",
    "GET /v1/wallets/{wallet_id}/balances",
    "GET /v1/wallets/{wallet_id}/top_ups/{top_up_id}",
)


def test_wallets_conform_statefully(fuzzed_app: FastAPI, fuzz_admin_key: str) -> None:
    """The wallet routes on their own: create a wallet, then top it up, spend, settle, refund,
    change an expiry, following ``api.links``."""
    headers = {"Authorization": f"Bearer {fuzz_admin_key}"}
    answered: Counter[tuple[str, int]] = Counter()

    class WalletScenario(wallets_schema.as_state_machine()):
        def before_call(self, case: schemathesis.Case) -> None:
            make_ids_unique(case)

        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"app": fuzzed_app, "headers": headers}

        def after_call(self, response: Response, case: schemathesis.Case) -> None:
            super().after_call(response, case)
            answered[case.operation.label, response.status_code] += 1

        def validate_response(
            self,
            response: Response,
            case: schemathesis.Case,
            additional_checks: Any = None,
            **kwargs: Any,
        ) -> None:
            case.validate_response(
                response,
                checks=CHECKS,
                additional_checks=additional_checks,
                headers=headers,
                transport_kwargs=kwargs or None,
                recorder=self.recorder,
            )

    WalletScenario.run(
        settings=settings(
            max_examples=max(FUZZ_SCENARIOS // 3, 10),
            stateful_step_count=FUZZ_STEPS,
            phases=[Phase.generate],
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
    )
    unreached = [label for label in WALLETS_MUST_REACH if not answered[label, 200]]
    assert unreached == [], f"no 200 for existing ids; answered: {sorted(answered.items())}"

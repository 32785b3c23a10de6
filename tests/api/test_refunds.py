"""``POST /v1/sellers/{id}/earnings/{order_id}/refund``: the request writes the refund itself, in
its own database transaction (the app here has no Temporal client at all), idempotent by refund
id, with the domain's errors."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from marketplace import EarningRequest, Marketplace
from tests.api.helpers import assert_problem


def seller_with_orders(engine: Engine) -> tuple[str, str, str]:
    """A seller with an order on hold (10,000, fee 1,000) and one posted (5,000, fee 500)."""
    market = Marketplace()
    seller = f"rf-{uuid.uuid4().hex[:10]}"
    with engine.begin() as conn:
        market.create_seller(conn, seller_id=seller, name="Refunds", currency="USD")
        market.book_earnings(
            conn,
            [
                EarningRequest(seller, "held", 10_000, 1_000),
                EarningRequest(seller, "done", 5_000, 500),
            ],
        )
    with engine.begin() as conn:
        market.post_earning(conn, seller, "done", at=datetime.now(UTC) + timedelta(seconds=1))
    return seller, "held", "done"


def test_refunds_are_written_by_the_request(client: TestClient, engine: Engine) -> None:
    seller, held, done = seller_with_orders(engine)
    path = f"/v1/sellers/{seller}/earnings"

    part = client.post(f"{path}/{held}/refund", json={"amount": 4_000, "refund_id": "r-1"})
    assert part.status_code == 201, part.text
    assert (part.json()["kind"], part.json()["earning_status"]) == ("during_hold", "on_hold")
    assert (part.json()["fee_amount"], part.json()["seller_amount"]) == (400, 3_600)
    again = client.post(f"{path}/{held}/refund", json={"amount": 4_000, "refund_id": "r-1"})
    assert again.status_code == 201, again.text
    assert again.json()["ledger_transaction_id"] == part.json()["ledger_transaction_id"]

    conflict = client.post(f"{path}/{held}/refund", json={"amount": 1_000, "refund_id": "r-1"})
    assert_problem(conflict, 409, "refund_conflict")  # type: ignore[arg-type]
    too_much = client.post(f"{path}/{held}/refund", json={"amount": 6_001, "refund_id": "r-2"})
    assert_problem(too_much, 422, "refund_exceeds_earning")  # type: ignore[arg-type]
    no_id = client.post(f"{path}/{held}/refund", json={"amount": 1})
    assert_problem(no_id, 422, "refund_id_required")  # type: ignore[arg-type]
    unknown = client.post(f"{path}/nope/refund", json={"refund_id": "r-3"})
    assert_problem(unknown, 404, "earning_not_found")  # type: ignore[arg-type]

    # The rest of the held order, keyed by Idempotency-Key; then the posted one, in full.
    rest = client.post(f"{path}/{held}/refund", json={}, headers={"Idempotency-Key": "k-rest"})
    assert rest.status_code == 201, rest.text
    assert (rest.json()["amount"], rest.json()["earning_status"]) == (6_000, "cancelled")
    posted = client.post(f"{path}/{done}/refund", json={"refund_id": "r-4"})
    assert posted.status_code == 201, posted.text
    assert (posted.json()["kind"], posted.json()["seller_amount"]) == ("after_posting", 4_500)

    balances = client.get(f"/v1/sellers/{seller}/balances").json()
    assert balances["posted"]["amount"] == balances["available"]["amount"] == 0
    assert balances["on_hold"] == 0

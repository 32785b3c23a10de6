"""``GET /v1/payouts/{id}/items`` (lines, total, pages, who sees them, a payout made before
itemization), and the links to the items in the ``payout.paid`` event and in the reconciliation
report."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from api.auth import ApiKeyRole
from api.pagination import encode_key_cursor
from marketplace import Marketplace, Payouts
from tests.api.conftest import admin_key, app, client, client_for, make_key  # noqa: F401
from tests.api.helpers import assert_problem
from tests.payouts.items_helpers import adjust, earn, new_seller, paid


def a_paid_payout(engine: Engine, uid: str) -> tuple[str, str]:
    """A seller's payout of three lines (two earnings and an adjustment), paid."""
    payouts = Payouts(Marketplace())
    seller, pid = f"s-{uid}", f"po_{uid}"
    with engine.begin() as conn:
        new_seller(conn, payouts, seller)
        earn(conn, payouts, seller, f"o1-{uid}", 5_000, 500)
        earn(conn, payouts, seller, f"o2-{uid}", 2_000)
        adjust(conn, payouts, seller, -250, f"adj-{uid}")
        payouts.reserve_payout(conn, payout_id=pid, seller_id=seller)
        paid(conn, payouts, pid)
    return seller, pid


def test_the_items_of_a_payout_page_by_page(
    app: FastAPI,  # noqa: F811
    client: TestClient,  # noqa: F811
    engine: Engine,
    uid: str,
) -> None:
    seller, pid = a_paid_payout(engine, uid)
    whole = client.get(f"/v1/payouts/{pid}/items")
    assert whole.status_code == 200, whole.text
    body = whole.json()
    assert (body["object"], body["payout_id"], body["seller_id"]) == ("list", pid, seller)
    assert (body["itemized"], body["count"], body["amount"], body["total"]) == (
        True,
        3,
        6_250,
        6_250,
    )
    assert [(i["kind"], i["reference"], i["amount"]) for i in body["items"]] == [
        ("earning", f"o1-{uid}", 4_500),
        ("earning", f"o2-{uid}", 2_000),
        ("adjustment", f"adj-{uid}", -250),
    ]
    assert all(i["ledger_entry_id"] and i["released_at"] is None for i in body["items"])
    assert body["next_cursor"] is None

    pages, cursor = [], None
    while True:
        params = {"per_page": 2} | ({"after_cursor": cursor} if cursor else {})
        page = client.get(f"/v1/payouts/{pid}/items", params=params)
        assert page.status_code == 200, page.text
        pages.append([i["line"] for i in page.json()["items"]])
        assert page.json()["total"] == 6_250  # every page says the whole payout's total
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
        assert page.headers["X-After-Cursor"] == cursor
    assert pages == [[1, 2], [3]]
    for cursor in ("bm9wZQ", encode_key_cursor("payout_items", "²"), encode_key_cursor("x", "1")):
        assert_problem(
            client.get(f"/v1/payouts/{pid}/items", params={"after_cursor": cursor}),
            422,
            "invalid_cursor",
        )
    assert_problem(client.get("/v1/payouts/nothing-here/items"), 404, "payout_not_found")

    # A seller's key sees its own payouts' items only.
    with client_for(app, make_key(engine, ApiKeyRole.SELLER, seller)) as own:
        assert own.get(f"/v1/payouts/{pid}/items").json()["total"] == 6_250
    with client_for(app, make_key(engine, ApiKeyRole.SELLER, f"other-{uid}")) as other:
        assert_problem(other.get(f"/v1/payouts/{pid}/items"), 404, "payout_not_found")


def test_a_payout_made_before_itemization_answers_an_empty_list(
    client: TestClient,  # noqa: F811
    engine: Engine,
    uid: str,
) -> None:
    _, pid = a_paid_payout(engine, uid)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM payout_items WHERE payout_id = :p"), {"p": pid})
        conn.execute(text("UPDATE payouts SET item_count = NULL WHERE id = :p"), {"p": pid})
    body = client.get(f"/v1/payouts/{pid}/items").json()
    assert (body["itemized"], body["items"], body["count"], body["total"]) == (False, [], 0, 0)
    assert body["amount"] == 6_250


def test_the_paid_event_links_to_the_items(engine: Engine, uid: str) -> None:
    _, pid = a_paid_payout(engine, uid)
    with engine.connect() as conn:
        events = conn.execute(
            text(
                "SELECT type, data FROM events WHERE data -> 'object' ->> 'id' = :p "
                "AND type LIKE 'payout.%' ORDER BY position"
            ),
            {"p": pid},
        ).all()
    assert [e.type for e in events] == ["payout.created", "payout.paid"]
    created, paid_event = (e.data for e in events)
    assert paid_event["items_url"] == f"/v1/payouts/{pid}/items"
    assert paid_event["item_count"] == 3
    assert "items_url" not in created


def test_a_matched_statement_line_links_to_the_payouts_items(
    client: TestClient,  # noqa: F811
    engine: Engine,
    uid: str,
) -> None:
    _, pid = a_paid_payout(engine, uid)
    day = datetime.now(UTC).date().isoformat()
    csv = f"date,amount,currency,reference\n{day},6250,USD,{pid}\n{day},1,USD,nope-{uid}\n"
    report = client.post(
        "/v1/reconciliation/statements", content=csv, headers={"Content-Type": "text/csv"}
    )
    assert report.status_code == 201, report.text
    by_line = {line["line_number"]: line for line in report.json()["lines"]}
    assert by_line[2]["result"] == "matched"
    assert (by_line[2]["items_url"], by_line[2]["item_count"]) == (f"/v1/payouts/{pid}/items", 3)
    assert by_line[3]["result"] == "unmatched" and by_line[3]["items_url"] is None
    again = client.get(report.headers["Location"]).json()
    assert {line["line_number"]: line["items_url"] for line in again["lines"]}[2] == (
        f"/v1/payouts/{pid}/items"
    )

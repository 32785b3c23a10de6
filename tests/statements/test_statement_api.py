"""The statement routes: JSON, CSV (parsed with ``csv``) and PDF (turned into text with pypdf)
carry the same figures; the period's validation; 406 for an unsupported Accept; visibility (a
seller key reads its own seller's statement only, a wallet key its own wallet's)."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pypdf import PdfReader
from sqlalchemy import Engine

from api.auth import ApiKeyRole
from api.problems import PROBLEM_JSON
from api.statement_formats import format_amount
from ledger_core.checks import utc_now
from marketplace import Marketplace
from tests.api.conftest import client_for, make_key
from tests.statements.helpers import new_wallet, seller_story
from tests.wallets.helpers import wallet_key


def period_of_today() -> dict[str, str]:
    today = utc_now().date()
    return {"from": str(today - timedelta(days=1)), "to": str(today + timedelta(days=1))}


@pytest.fixture
def story(engine: Engine, marketplace: Marketplace, uid: str) -> Any:
    return seller_story(engine, marketplace, uid)


def test_json_csv_and_pdf_carry_the_same_figures(client: TestClient, story: Any) -> None:
    url = f"/v1/sellers/{story.seller_id}/statement"
    response = client.get(url, params=period_of_today())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "statement" and body["subject"] == "seller"
    assert (body["name"], body["currency"], body["currency_exponent"]) == ("Bakery & Co", "USD", 2)
    assert body["opening_balance"] == 0 and body["closing_balance"] == 9_575
    assert body["opening_balance"] + sum(x["amount"] for x in body["lines"]) == 9_575
    assert body["lines"][-1]["balance"] == 9_575
    assert {x["kind"] for x in body["lines"]} == {
        "earning", "refund", "chargeback", "payout", "payout_returned", "adjustment"
    }  # fmt: skip
    assert body["total_held"] == -1_350 and len(body["held_at_close"]) == 4
    assert body["period"]["from"] == period_of_today()["from"] and body["final"] is False
    assert len(body["digest"]) == 64 and response.headers["statement-digest"] == body["digest"]

    as_csv = client.get(url, params=period_of_today(), headers={"Accept": "text/csv"})
    assert as_csv.status_code == 200, as_csv.text
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert "attachment" in as_csv.headers["content-disposition"]
    assert as_csv.headers["statement-digest"] == body["digest"]
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    by_section: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_section.setdefault(row["section"], []).append(row)
    assert by_section["opening"][0]["balance"] == "0.00"
    assert by_section["closing"][0]["balance"] == "95.75"
    lines = by_section["line"]
    assert [r["reference"] for r in lines] == [x["reference"] for x in body["lines"]]
    assert [r["amount"] for r in lines] == [format_amount(x["amount"], 2) for x in body["lines"]]
    assert sum(round(float(r["amount"]) * 100) for r in lines) == 9_575
    assert {r["kind"] for r in by_section["held"]} == {"reserve", "payout", "chargeback"}

    as_pdf = client.get(url, params=period_of_today(), headers={"Accept": "application/pdf"})
    assert as_pdf.status_code == 200, as_pdf.text
    assert as_pdf.headers["content-type"] == "application/pdf"
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(as_pdf.content)).pages)
    assert "Seller statement" in text and f"Bakery & Co ({story.seller_id})" in text
    assert "Opening balance" in text and "0.00 USD" in text
    assert "Closing balance" in text and "95.75 USD" in text
    assert "90.00" in text and "-18.00" in text and "-30.00" in text  # o1, refund r1, p1
    assert "Page 1 of 1" in text and body["digest"] in text.replace("\n", "")


def test_a_pdf_of_many_pages_numbers_them(
    client: TestClient, engine: Engine, marketplace: Marketplace
) -> None:
    w = new_wallet(engine, marketplace, "Many lines")
    with engine.begin() as conn:
        for _ in range(70):
            marketplace.top_up(conn, w, amount=1_234, settled=True)
    response = client.get(
        f"/v1/wallets/{w}/statement",
        params=period_of_today(),
        headers={"Accept": "application/pdf"},
    )
    assert response.status_code == 200, response.text
    pages = PdfReader(io.BytesIO(response.content)).pages
    assert len(pages) >= 2
    last = pages[-1].extract_text()
    assert f"Page {len(pages)} of {len(pages)}" in last and "863.80 EUR" in last


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("application/json", "application/json"),
        ("*/*", "application/json"),
        ("text/csv;q=0.5, application/pdf", "application/pdf"),
        ("text/html, text/csv", "text/csv"),
    ],
)
def test_accept_chooses_the_format(
    client: TestClient, engine: Engine, marketplace: Marketplace, accept: str, expected: str
) -> None:
    w = new_wallet(engine, marketplace, "Formats")
    response = client.get(
        f"/v1/wallets/{w}/statement", params=period_of_today(), headers={"Accept": accept}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(expected)


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


def test_unsupported_accept_and_bad_periods_are_problems(
    client: TestClient, engine: Engine, marketplace: Marketplace
) -> None:
    w = new_wallet(engine, marketplace, "Problems")
    url = f"/v1/wallets/{w}/statement"
    assert_problem(
        client.get(url, params=period_of_today(), headers={"Accept": "text/html"}),
        406,
        "not_acceptable",
    )
    assert_problem(
        client.get(url, params=period_of_today(), headers={"Accept": "application/pdf;q=0"}),
        406,
        "not_acceptable",
    )
    bad = [
        {"from": "2026-11-30", "to": "2026-11-01"},  # to before from
        {"from": "2025-01-01", "to": "2026-01-02"},  # 367 days
        {**period_of_today(), "time_zone": "Mars/Olympus_Mons"},
        {**period_of_today(), "time_zone": "America"},  # a folder of zones
        {"from": "9999-12-30", "to": "9999-12-31", "time_zone": "Asia/Tokyo"},  # out of range
        {"to": "2026-11-30"},  # from missing
    ]
    for params in bad:
        assert_problem(client.get(url, params=params), 422, "validation_failed")
    assert_problem(client.get(url, params={"from": "2026-13-01", "to": "2026-12-01"}), 422,
                   "validation_error")  # fmt: skip
    ok = client.get(url, params={"from": "2025-01-01", "to": "2026-01-01"})  # 366 days
    assert ok.status_code == 200, ok.text


def test_a_time_zone_moves_the_period(
    client: TestClient, engine: Engine, marketplace: Marketplace
) -> None:
    w = new_wallet(engine, marketplace, "Zones")
    response = client.get(
        f"/v1/wallets/{w}/statement",
        params={"from": "2026-07-01", "to": "2026-07-31", "time_zone": "America/New_York"},
    )
    assert response.status_code == 200, response.text
    period = response.json()["period"]
    assert (period["start"], period["end"]) == ("2026-07-01T04:00:00Z", "2026-08-01T04:00:00Z")


def test_a_seller_key_reads_its_own_statement_only(
    app: FastAPI, engine: Engine, story: Any, marketplace: Marketplace, uid: str
) -> None:
    with engine.begin() as conn:
        marketplace.create_seller(conn, seller_id=f"other-{uid}", name="Other", currency="USD")
    own = client_for(app, make_key(engine, ApiKeyRole.SELLER, story.seller_id))
    assert (
        own.get(f"/v1/sellers/{story.seller_id}/statement", params=period_of_today()).json()[
            "closing_balance"
        ]
        == 9_575
    )
    other = own.get(f"/v1/sellers/other-{uid}/statement", params=period_of_today())
    unknown = own.get(f"/v1/sellers/nobody-{uid}/statement", params=period_of_today())
    body = assert_problem(other, 404, "seller_not_found")
    assert body["detail"] == f"seller 'other-{uid}' not found"
    assert_problem(unknown, 404, "seller_not_found")
    wallet_route = own.get(f"/v1/wallets/{story.seller_id}/statement", params=period_of_today())
    assert_problem(wallet_route, 403, "forbidden")


def test_a_wallet_key_reads_its_own_statement_only(
    app: FastAPI, engine: Engine, marketplace: Marketplace, story: Any
) -> None:
    mine, theirs = (
        new_wallet(engine, marketplace, "Mine"),
        new_wallet(engine, marketplace, "Theirs"),
    )
    key = client_for(app, wallet_key(engine, mine))
    response = key.get(f"/v1/wallets/{mine}/statement", params=period_of_today())
    assert response.status_code == 200 and response.json()["id"] == mine
    other = key.get(
        f"/v1/wallets/{theirs}/statement",
        params=period_of_today(),
        headers={"Accept": "application/pdf"},
    )
    assert (
        assert_problem(other, 404, "wallet_not_found")["detail"] == f"wallet {theirs!r} not found"
    )
    seller_route = key.get(f"/v1/sellers/{story.seller_id}/statement", params=period_of_today())
    assert_problem(seller_route, 403, "forbidden")

"""Bank statement reconciliation against real payouts in PostgreSQL (made through the payouts
domain: reserved, submitted, paid): every result, malformed files, the stored report, the HTTP
endpoints and the ``payouts reconcile`` command.

Each test moves its paid payouts to a paid date of its own (far in the future, random), so the
"missing from the statement" rule (paid within the statement's dates) sees only them."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from api.app import create_app
from api.auth import ApiKeyRole
from marketplace import Marketplace
from marketplace.payouts import Payouts
from marketplace.reconciliation import (
    StatementUnreadable,
    get_statement,
    reconcile_statement,
)
from server import cli
from server.settings import get_settings
from tests.api.conftest import make_key

HEADER = "date,amount,currency,reference\n"


def a_day() -> date:
    return date(2040, 1, 1) + timedelta(days=random.randrange(20_000))


def paid_payout(
    engine: Engine, amount: int, paid_on: date, *, status: str = "paid", livemode: bool = True
) -> str:
    """A seller with ``amount`` available, paid out through the payouts domain; the payout's
    paid_at is then set to ``paid_on`` (noon UTC). ``livemode`` False: a test-mode seller's."""
    market = Marketplace()
    payouts = Payouts(market)
    seller_id = f"rec-{uuid.uuid4().hex[:10]}"
    payout_id = f"po_{uuid.uuid4().hex[:16]}"
    with engine.begin() as conn:
        market.create_seller(
            conn,
            seller_id=seller_id,
            name="Rec",
            currency="USD",
            hold_period=timedelta(0),
            livemode=livemode,
        )
        order = f"o-{uuid.uuid4().hex[:10]}"
        market.book_earning(conn, seller_id=seller_id, order_id=order, amount=amount)
        market.post_earning(conn, seller_id, order)
        payouts.set_payout_account(conn, seller_id, "000123456789", "110000000", "Rec Holder")
        payouts.reserve_payout(conn, payout_id=payout_id, seller_id=seller_id)
        if status != "pending":
            payouts.begin_submission(conn, payout_id)
            payouts.mark_submitted(conn, payout_id, f"rail-{payout_id}")
            payouts.mark_paid(conn, payout_id)
            conn.execute(
                text("UPDATE payouts SET paid_at = :at WHERE id = :id"),
                {
                    "at": datetime(paid_on.year, paid_on.month, paid_on.day, 12, tzinfo=UTC),
                    "id": payout_id,
                },
            )
    return payout_id


def csv_of(*lines: str) -> bytes:
    return (HEADER + "".join(f"{line}\n" for line in lines)).encode()


def test_every_outcome_is_reported_and_kept(engine: Engine) -> None:
    day = a_day()
    matched = paid_payout(engine, 2_500, day)
    wrong_amount = paid_payout(engine, 1_000, day)
    wrong_currency = paid_payout(engine, 700, day)
    missing = paid_payout(engine, 300, day)  # paid that day, not on the statement
    outside = paid_payout(engine, 400, day + timedelta(days=5))  # after the statement's dates
    not_paid = paid_payout(engine, 900, day, status="pending")
    content = csv_of(
        f"{day},2500,USD,{matched}",
        f"{day},-1001,USD,{wrong_amount}",  # debit notation; one cent off
        f"{day},700,EUR,{wrong_currency}",
        f"{day},900,USD,{not_paid}",
        f"{day},123,USD,po_nobody",
        f"{day},2500,USD,{matched}",  # the same payout again
        "2040-02-30,100,USD,po_x",  # no such day
        f"{day + timedelta(days=2)},abc,USD,po_y",
        f"{day},100,US,po_z",
        f"{day},100,USD,",
    )
    with engine.begin() as conn:
        report = reconcile_statement(conn, content, filename="march.csv")
    by_line = {line.line_number: line for line in report.lines}
    assert by_line[2].result == "matched" and by_line[2].payout_id == matched
    assert by_line[3].result == "amount_mismatch"
    assert (by_line[3].amount, by_line[3].expected_amount) == (1_001, 1_000)
    assert by_line[4].result == "currency_mismatch"
    assert by_line[5].result == "unmatched" and "pending" in (by_line[5].detail or "")
    assert by_line[6].result == "unmatched" and by_line[6].payout_id is None
    assert by_line[7].result == "duplicate" and "line 2" in (by_line[7].detail or "")
    assert by_line[8].result == "invalid" and "date" in (by_line[8].detail or "")
    assert by_line[9].result == "invalid" and "amount" in (by_line[9].detail or "")
    assert by_line[10].result == "invalid" and "currency" in (by_line[10].detail or "")
    assert by_line[11].result == "invalid" and "reference" in (by_line[11].detail or "")
    missing_lines = [line for line in report.lines if line.result == "missing_from_statement"]
    assert [m.payout_id for m in missing_lines] == [missing]
    assert missing_lines[0].line_number < 0 and missing_lines[0].expected_amount == 300
    assert outside not in {line.payout_id for line in report.lines}
    assert (report.period_start, report.period_end) == (day, day)  # valid lines only
    assert report.line_count == 10
    assert report.counts == {
        "matched": 1,
        "amount_mismatch": 1,
        "currency_mismatch": 1,
        "unmatched": 2,
        "duplicate": 1,
        "invalid": 4,
        "missing_from_statement": 1,
    }
    assert not report.all_matched

    with engine.connect() as conn:
        stored = get_statement(conn, report.id)
    assert stored.lines == report.lines
    assert stored.counts == report.counts and stored.filename == "march.csv"
    assert stored.period_start == day and not stored.all_matched


def test_a_clean_statement_matches_everything(engine: Engine) -> None:
    day = a_day()
    first = paid_payout(engine, 1_234, day)
    second = paid_payout(engine, 99, day + timedelta(days=3))
    content = csv_of(f"{day},1234,USD,{first}", f"{day + timedelta(days=3)},99,usd,{second}")
    with engine.begin() as conn:
        report = reconcile_statement(conn, content)
    assert [line.result for line in report.lines] == ["matched", "matched"]
    assert report.all_matched


@pytest.mark.parametrize(
    ("content", "line", "words"),
    [
        (b"", 1, "empty"),
        (b"date,amount,reference\n2040-01-01,1,po\n", 1, "header"),
        (HEADER.encode(), 1, "no lines"),
        (csv_of("2040-01-01,100,USD,po_a", "2040-01-01,100,USD"), 3, "4 fields"),
        (csv_of("2040-01-01,100,USD,po_a", "2040-01-01,25.00,USD,po_b"), 3, "minor units"),
        (HEADER.encode() + b'2040-01-01,100,USD,"po_a\n', 2, "CSV"),
        (HEADER.encode() + b"2040-01-01,100,USD,po_\xff\n", 2, "UTF-8"),
    ],
)
def test_malformed_files_are_refused_with_the_line(
    engine: Engine, content: bytes, line: int, words: str
) -> None:
    with engine.begin() as conn:
        before = conn.execute(text("SELECT count(*) FROM reconciliation_statements")).scalar()
        with pytest.raises(StatementUnreadable) as err:
            reconcile_statement(conn, content)
        after = conn.execute(text("SELECT count(*) FROM reconciliation_statements")).scalar()
    assert err.value.details["line"] == line
    assert f"line {line}:" in err.value.message and words in err.value.message
    assert before == after


@pytest.fixture
def http(engine: Engine) -> Iterator[TestClient]:
    app = create_app(engine)
    key = make_key(engine, ApiKeyRole.OPERATOR)
    with TestClient(app, headers={"Authorization": f"Bearer {key}"}) as client:
        yield client


def test_statements_over_http(http: TestClient, engine: Engine) -> None:
    day = a_day()
    payout = paid_payout(engine, 5_000, day)
    body = csv_of(f"{day},5000,USD,{payout}", f"{day},10,USD,po_unknown")
    created = http.post(
        "/v1/reconciliation/statements?filename=bank.csv",
        content=body,
        headers={"Content-Type": "text/csv"},
    )
    assert created.status_code == 201, created.text
    report = created.json()
    assert created.headers["Location"] == f"/v1/reconciliation/statements/{report['id']}"
    assert [line["result"] for line in report["lines"]] == ["matched", "unmatched"]
    assert report["counts"]["matched"] == 1 and report["all_matched"] is False
    again = http.get(f"/v1/reconciliation/statements/{report['id']}")
    assert again.status_code == 200 and again.json() == report

    bad = http.post(
        "/v1/reconciliation/statements",
        content=csv_of(f"{day},50.00,USD,{payout}"),
        headers={"Content-Type": "text/csv"},
    )
    assert bad.status_code == 422
    assert bad.json()["code"] == "statement_unreadable" and bad.json()["line"] == 2
    json_body = http.post("/v1/reconciliation/statements", json={"csv": "no"})
    assert json_body.status_code == 415
    unknown = http.get("/v1/reconciliation/statements/stmt_nothing")
    assert unknown.status_code == 404 and unknown.json()["code"] == "statement_not_found"

    seller_key = make_key(engine, ApiKeyRole.SELLER, "someone")
    refused = http.get(
        f"/v1/reconciliation/statements/{report['id']}",
        headers={"Authorization": f"Bearer {seller_key}"},
    )
    assert refused.status_code == 403


def test_a_statement_is_live_money_only(engine: Engine) -> None:
    """A test-mode payout (paid by the simulated bank) is neither matched by a bank statement
    nor missing from it."""
    day = a_day()
    live = paid_payout(engine, 1_000, day)
    test = paid_payout(engine, 2_000, day, livemode=False)
    unlisted = paid_payout(engine, 3_000, day, livemode=False)  # paid that day, not listed
    with engine.begin() as conn:
        report = reconcile_statement(
            conn, csv_of(f"{day},1000,USD,{live}", f"{day},2000,USD,{test}")
        )
    results = {line.reference: line.result for line in report.lines}
    assert results == {live: "matched", test: "unmatched"}
    assert unlisted not in {line.payout_id for line in report.lines}


@pytest.fixture
def cli_database(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("DATABASE_URL", database_url)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_the_reconcile_command(
    engine: Engine, tmp_path: Path, cli_database: None, capsys: pytest.CaptureFixture[str]
) -> None:
    day = a_day()
    payout = paid_payout(engine, 4_200, day)
    clean = tmp_path / "clean.csv"
    clean.write_bytes(csv_of(f"{day},4200,USD,{payout}"))
    assert cli.main(["reconcile", str(clean)]) == 0
    out = capsys.readouterr().out
    assert "All lines matched" in out and "matched: 1" in out

    other = paid_payout(engine, 10, day)
    dirty = tmp_path / "dirty.csv"
    dirty.write_bytes(csv_of(f"{day},4300,USD,{payout}"))
    assert cli.main(["reconcile", str(dirty)]) == 1
    out = capsys.readouterr().out
    assert "amount_mismatch" in out and "missing_from_statement" in out and other in out

    broken = tmp_path / "broken.csv"
    broken.write_bytes(b"when,what\n")
    assert cli.main(["reconcile", str(broken)]) == 2
    assert "line 1" in capsys.readouterr().err
    assert cli.main(["reconcile", str(tmp_path / "absent.csv")]) == 2

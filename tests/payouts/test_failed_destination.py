"""A payout that fails because of its destination, in the domain (``marketplace.payouts``,
``marketplace.payout_accounts``, ``marketplace.payout_runs``): the payout account is marked failed
in the failure's own transaction, is never paid again (a manual payout is refused, a run skips), a
new account clears it, and any other failure changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine

from contracts.payouts import DESTINATION_FAILURES, is_destination_failure
from marketplace import Marketplace, PayoutAccountFailed, Payouts, PayoutState
from marketplace.payout_runs import PAYOUT_ACCOUNT_FAILED, decide_payout_run, payout_preview
from tests.payouts.test_domain import ACCOUNT, ROUTING, seller_with_money, views

NEW_ACCOUNT = "000999999999"


@pytest.fixture(scope="module")
def payouts() -> Payouts:
    return Payouts(Marketplace())


def submitted(engine: Engine, payouts: Payouts, payout_id: str, seller: str, amount: int) -> None:
    with engine.begin() as conn:
        payouts.reserve_payout(conn, payout_id=payout_id, seller_id=seller, amount=amount)
        payouts.begin_submission(conn, payout_id)
        payouts.mark_submitted(conn, payout_id, f"rail-{payout_id}")


def test_destination_failures_are_the_destinations_codes() -> None:
    assert {"account_closed", "no_account", "invalid_destination"} <= DESTINATION_FAILURES
    assert not is_destination_failure("could_not_process")  # the bank's transient "try again"
    assert not is_destination_failure("rail_unavailable")
    assert not is_destination_failure(None)


def test_a_failed_destination_fails_the_account_until_a_new_one_is_set(
    engine: Engine, payouts: Payouts, uid: str
) -> None:
    seller, pid = f"s-{uid}", f"f-{uid}"
    seller_with_money(engine, payouts, seller, (f"o-{uid}", 5_000, 0))
    submitted(engine, payouts, pid, seller, 2_000)
    with engine.begin() as conn:
        failed = payouts.mark_failed(conn, pid, "account_closed", "closed", destination_failed=True)
        # Asked again (a retried activity): the same failure, nothing moves twice.
        again = payouts.mark_failed(conn, pid, "account_closed", "closed", destination_failed=True)
    assert (failed.status, again.status) == (PayoutState.FAILED, PayoutState.FAILED)
    assert views(engine, payouts, seller) == (5_000, 5_000, 5_000)  # the money is back
    with engine.begin() as conn:
        account = payouts.get_payout_account(conn, seller)
    assert (account.status, account.failure_code, account.failed_payout_id) == (
        "failed",
        "account_closed",
        pid,
    )
    assert account.failed_at is not None and account.failed_at <= datetime.now(UTC)

    # Never paid again: a manual payout is refused, a run skips with its own reason.
    with engine.begin() as conn, pytest.raises(PayoutAccountFailed) as refused:
        payouts.reserve_payout(conn, payout_id=f"m-{uid}", seller_id=seller)
    assert refused.value.code == "payout_account_failed"
    with engine.begin() as conn:
        preview = payout_preview(conn, payouts.marketplace, seller, 0)
        run, _ = decide_payout_run(
            conn,
            payouts.marketplace,
            run_id=f"{seller}:run",
            seller_id=seller,
            scheduled_at=datetime.now(UTC),
            minimum_amount=0,
        )
    assert (preview.amount, preview.reason) == (0, PAYOUT_ACCOUNT_FAILED)
    assert (run.outcome, run.reason, run.payout_id) == ("skipped", PAYOUT_ACCOUNT_FAILED, None)
    assert views(engine, payouts, seller) == (5_000, 5_000, 5_000)

    # The same details again are the same dead account: still failed.
    with engine.begin() as conn:
        same = payouts.set_payout_account(conn, seller, ACCOUNT, ROUTING, "Jane Doe")
    assert (same.status, same.failed_payout_id) == ("failed", pid)

    # So are the same numbers under another holder's name: the money would go to the same place.
    with engine.begin() as conn:
        renamed = payouts.set_payout_account(conn, seller, ACCOUNT, ROUTING, "Jane Q. Doe")
    assert (renamed.status, renamed.holder_name, renamed.failed_payout_id) == (
        "failed",
        "Jane Q. Doe",
        pid,
    )

    # A new account clears it: active, no failure left, paid again.
    with engine.begin() as conn:
        new = payouts.set_payout_account(conn, seller, NEW_ACCOUNT, ROUTING, "Jane Doe")
    assert (new.status, new.failure_code, new.failed_payout_id, new.failed_at) == (
        "active",
        None,
        None,
        None,
    )
    with engine.begin() as conn:
        paid = payouts.reserve_payout(conn, payout_id=f"n-{uid}", seller_id=seller)
    assert (paid.amount, paid.masked_account_number[-4:]) == (5_000, NEW_ACCOUNT[-4:])


def test_other_failures_leave_the_account_active(
    engine: Engine, payouts: Payouts, uid: str
) -> None:
    seller, pid = f"s-{uid}", f"f-{uid}"
    seller_with_money(engine, payouts, seller, (f"o-{uid}", 3_000, 0))
    submitted(engine, payouts, pid, seller, 3_000)
    with engine.begin() as conn:
        payouts.mark_failed(conn, pid, "could_not_process", "try later", destination_failed=False)
        account = payouts.get_payout_account(conn, seller)
        assert payouts.reserve_payout(conn, payout_id=f"n-{uid}", seller_id=seller).amount == 3_000
    assert (account.status, account.failure_code) == ("active", None)


def test_a_late_failure_of_an_old_account_leaves_the_new_one_active(
    engine: Engine, payouts: Payouts, uid: str
) -> None:
    seller, pid = f"s-{uid}", f"f-{uid}"
    seller_with_money(engine, payouts, seller, (f"o-{uid}", 3_000, 0))
    submitted(engine, payouts, pid, seller, 1_000)
    with engine.begin() as conn:
        payouts.set_payout_account(conn, seller, NEW_ACCOUNT, ROUTING, "Jane Doe")
    with engine.begin() as conn:
        payouts.mark_failed(conn, pid, "account_closed", "closed", destination_failed=True)
        account = payouts.get_payout_account(conn, seller)
    assert (account.status, account.account_number) == ("active", NEW_ACCOUNT)

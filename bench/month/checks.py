"""The checks: the API, the ledger tables and the bank compared with the model."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from datetime import datetime

from sqlalchemy import Engine, text

from bench.month.model import Expected, Totals, model
from bench.month.plan import PLATFORM_ROLES, Json
from bench.month.simulation import Simulation
from payment_rail.client import SimulatedBankAdmin

# ---------------------------------------------------------------------------- checks


def compare_views(
    label: str, expected: Totals, normal: str, got: dict[str, Json], keys: dict[str, str]
) -> list[str]:
    """``got`` maps ``keys[view]`` to {credits, debits, amount}."""
    out = []
    for view, (credits, debits, amount) in expected.views(normal).items():
        g = got[keys[view]]
        if (g["credits"], g["debits"], g["amount"]) != (credits, debits, amount):
            out.append(
                f"{label} {view}: API credits/debits/amount {g['credits']}/{g['debits']}/"
                f"{g['amount']}, model {credits}/{debits}/{amount}"
            )
    return out


SELLER_VIEWS = {"pending": "pending", "posted": "posted", "available": "available"}
ACCOUNT_VIEWS = {
    "pending": "pending_balance",
    "posted": "posted_balance",
    "available": "available_balance",
}


def ledger_sums(engine: Engine) -> tuple[dict[str, Totals], dict[str, Totals], tuple[int, int]]:
    """From the ledger tables: per account, the entries summed by status and direction; the
    accounts' running totals; and credits - debits over all pending and all posted entries."""
    entries: dict[str, Totals] = defaultdict(Totals)
    running: dict[str, Totals] = {}
    zero = {"pending": 0, "posted": 0}
    with engine.connect() as conn:
        for account, status, direction, amount in conn.execute(
            text(
                "SELECT e.account_id, t.status, e.direction, sum(e.amount) FROM ledger_entries e"
                " JOIN ledger_transactions t ON t.id = e.transaction_id"
                " WHERE t.status IN ('pending', 'posted') GROUP BY 1, 2, 3"
            )
        ):
            totals = entries[str(account)]
            setattr(totals, f"{status}_{direction}s", int(amount))
            zero[status] += int(amount) if direction == "credit" else -int(amount)
        for row in conn.execute(
            text(
                "SELECT id, pending_debits, pending_credits, posted_debits, posted_credits"
                " FROM ledger_accounts"
            )
        ):
            running[str(row[0])] = Totals(*(int(v) for v in row[1:]))
    return entries, running, (zero["pending"], zero["posted"])


def transactions_by_external_id(engine: Engine) -> Counter[str]:
    with engine.connect() as conn:
        return Counter(
            str(e)
            for e in conn.execute(
                text("SELECT external_id FROM ledger_transactions WHERE external_id IS NOT NULL")
            ).scalars()
        )


def earning_rows(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return {str(o) for o in conn.execute(text("SELECT order_id FROM earnings")).scalars()}


async def checkpoint(
    sim: Simulation, label: str, bank: SimulatedBankAdmin, *, full: bool
) -> tuple[Expected | None, list[Json], list[str]]:
    """Everything the model predicts against the API and the ledger tables."""
    api, plan = sim.api, sim.plan
    mismatches: list[str] = []
    payouts = await api.list_all("payouts_list", "/v1/payouts")
    if payouts is None:
        return None, [], [f"{label}: could not list the payouts"]
    exp = model(plan, sim.facts, payouts)
    mismatches += exp.problems

    # The API's seller balances.
    async def seller(seller_id: str) -> None:
        got = await api.json("balances_get", f"/v1/sellers/{seller_id}/balances")
        if got is None:
            mismatches.append(f"seller {seller_id}: no balances")
            return
        want = exp.sellers[seller_id]
        mismatches.extend(
            compare_views(f"seller {seller_id}", want.totals, "credit", got, SELLER_VIEWS)
        )
        for key in ("on_hold", "in_reserve", "in_dispute"):
            if got[key] != getattr(want, key):
                mismatches.append(
                    f"seller {seller_id} {key}: API {got[key]}, model {getattr(want, key)}"
                )

    await sim.for_all(list(plan.sellers), seller)

    # The platform's accounts, through the ledger API.
    platform_ids: dict[str, str] = {}
    for role in PLATFORM_ROLES:
        listed = await api.json(
            "ledger_accounts_get",
            "/v1/ledger_accounts",
            ledger_id=sim.ledger_id,
            external_id=f"platform:{role}",
        )
        if listed is None or len(listed["items"]) != 1:
            mismatches.append(f"platform account {role}: not found")
            continue
        account = listed["items"][0]
        platform_ids[role] = account["id"]
        normal = "debit" if role == "clearing" else "credit"
        mismatches += compare_views(
            f"platform {role}", exp.platform[role], normal, account["balances"], ACCOUNT_VIEWS
        )

    # The ledger tables: entries per account, running totals, zero sum.
    entries, running, zero = await asyncio.to_thread(ledger_sums, sim.engine)
    if zero != (0, 0):
        mismatches.append(f"ledger does not sum to zero: pending {zero[0]}, posted {zero[1]}")
    accounts = {f"seller {s}": (a, exp.sellers[s].totals) for s, a in sim.ledger_accounts.items()}
    accounts |= {f"platform {r}": (a, exp.platform[r]) for r, a in platform_ids.items()}
    for name, (account_id, want_totals) in accounts.items():
        summed = entries.get(account_id, Totals()).astuple()
        kept = running.get(account_id, Totals()).astuple()
        if summed != want_totals.astuple():
            mismatches.append(f"{name}: ledger entries {summed}, model {want_totals.astuple()}")
        if kept != summed:
            mismatches.append(f"{name}: running totals {kept}, entries {summed}")
    unknown = set(running) - {a for a, _ in accounts.values()}
    if unknown:
        mismatches.append(f"{len(unknown)} ledger accounts the bench does not know")

    # Payouts: the outcome their destination calls for, nothing in flight.
    for p in payouts:
        want = exp.payouts[p["id"]]
        if p["status"] != want:
            mismatches.append(f"payout {p['id']}: {p['status']}, model {want}")
        if want == "failed" and p["failure_code"] != "account_closed":
            mismatches.append(f"payout {p['id']}: failure code {p['failure_code']}")

    if full:
        mismatches += await check_lists(sim, exp)
        mismatches += await asyncio.to_thread(check_exactly_once, sim, exp, payouts)
        mismatches += await asyncio.to_thread(check_bank, bank, payouts)
        mismatches += check_paid_no_more_than_earned(sim, exp, payouts)
    return exp, payouts, mismatches


async def check_lists(sim: Simulation, exp: Expected) -> list[str]:
    """Every earning and dispute as the API lists it, against the model."""
    mismatches: list[str] = []
    seen: set[str] = set()

    async def earnings(seller_id: str) -> None:
        items = await sim.api.list_all("earnings_list", f"/v1/sellers/{seller_id}/earnings")
        if items is None:
            mismatches.append(f"seller {seller_id}: could not list earnings")
            return
        for e in items:
            seen.add(e["order_id"])
            want = exp.earnings.get(e["order_id"])
            if want is None:
                mismatches.append(f"earning {e['order_id']}: not an accepted order")
                continue
            got = (e["status"], e["net"])
            if got != (want.status, want.net):
                mismatches.append(f"earning {e['order_id']}: {got}, model {want}")
            if want.reserve_amount is not None and e["reserve_amount"] != want.reserve_amount:
                mismatches.append(
                    f"earning {e['order_id']}: reserve {e['reserve_amount']}, "
                    f"model {want.reserve_amount}"
                )
            if want.status in ("posted", "refunded") and want.reserve_amount:
                released = e["reserve_released_at"] is not None
                if released == want.reserve_held:
                    mismatches.append(
                        f"earning {e['order_id']}: reserve released {released}, "
                        f"model held {want.reserve_held}"
                    )

    async def schedule(seller_id: str) -> None:
        got = await sim.schedule(seller_id)
        if got is None:
            mismatches.append(f"seller {seller_id}: no payout schedule")
            return
        sim.counts["triggers skipped by the schedules (a run still going)"] += got[
            "runs_skipped_overlapping"
        ]

    await sim.for_all(list(sim.plan.sellers), earnings)
    await sim.for_all(list(sim.plan.sellers), schedule)
    missing = set(exp.earnings) - seen
    if missing:
        mismatches.append(f"{len(missing)} accepted orders not listed, e.g. {sorted(missing)[:3]}")
    disputes = await sim.api.list_all("disputes_list", "/v1/disputes")
    if disputes is None:
        return [*mismatches, "could not list the disputes"]
    got_disputes = {d["id"]: d["status"] for d in disputes}
    if got_disputes != exp.disputes:
        wrong = {
            k: (got_disputes.get(k), exp.disputes.get(k))
            for k in got_disputes.keys() | exp.disputes.keys()
            if got_disputes.get(k) != exp.disputes.get(k)
        }
        mismatches.append(f"disputes (API, model): {dict(list(wrong.items())[:5])}")
    return mismatches


def check_exactly_once(sim: Simulation, exp: Expected, payouts: list[Json]) -> list[str]:
    """One ledger transaction per order, refund after posting, dispute, reserve, payout and
    return, and one per earning booked again; none for anything the bench did not do."""
    booked = transactions_by_external_id(sim.engine)
    want: Counter[str] = Counter()
    for order_id, order in sim.facts.orders.items():
        key = f"{order.plan.seller}/{order_id}"  # an earning is its seller's and its order's
        want[f"earning:{key}"] = 1
        for n in range(1, exp.rebooks[order_id] + 1):
            want[f"rebook:{n}:{key}"] = 1
    for refund_id in exp.after_posting_refunds:
        want[f"refund:{refund_id}"] = 1
    for dispute_id in sim.facts.disputes:
        want[f"dispute:{dispute_id}"] = 1
    for order_id in exp.reserves:
        want[f"reserve:{sim.facts.orders[order_id].plan.seller}/{order_id}"] = 1
    for p in payouts:
        want[f"payout:{p['id']}"] = 1
        if exp.payouts[p["id"]] == "returned":
            want[f"payout:{p['id']}:return"] = 1
    mismatches = []
    if booked != want:
        diff = {
            k: (booked.get(k, 0), want.get(k, 0))
            for k in booked.keys() | want.keys()
            if booked.get(k, 0) != want.get(k, 0)
        }
        mismatches.append(
            f"ledger transactions (booked, model) differ for {len(diff)} keys, e.g. "
            f"{dict(sorted(diff.items())[:5])}"
        )
    rows = earning_rows(sim.engine)
    if rows != set(sim.facts.orders):
        mismatches.append(
            f"earnings rows {len(rows)} for {len(sim.facts.orders)} accepted orders "
            f"(e.g. {sorted(rows ^ set(sim.facts.orders))[:3]})"
        )
    return mismatches


def check_bank(bank: SimulatedBankAdmin, payouts: list[Json]) -> list[str]:
    """Every payout at the bank once, same amount and outcome, paid at most once."""
    at_bank = {p.request.payout_id: p for p in bank.list_payouts()}
    mismatches = []
    for p in payouts:
        b = at_bank.pop(p["id"], None)
        if b is None:
            mismatches.append(f"payout {p['id']} ({p['status']}) never reached the bank")
            continue
        if b.times_paid > 1:
            mismatches.append(f"payout {p['id']}: paid {b.times_paid} times at the bank")
        if (b.request.amount, str(b.status.status)) != (p["amount"], p["status"]):
            mismatches.append(
                f"payout {p['id']}: bank {b.request.amount} {b.status.status}, "
                f"platform {p['amount']} {p['status']}"
            )
    if at_bank:
        mismatches.append(f"{len(at_bank)} payouts at the bank the platform does not list")
    return mismatches


def check_paid_no_more_than_earned(
    sim: Simulation, exp: Expected, payouts: list[Json]
) -> list[str]:
    """No seller was paid, by any of its payouts, more than the net of the orders it had been
    sent by then (refunds, chargebacks, reserves and returns only lower what may be paid)."""
    earned: dict[str, list[tuple[datetime, int]]] = defaultdict(list)
    for fact in sim.facts.orders.values():
        earned[fact.plan.seller].append((fact.requested_at, fact.plan.amount - fact.plan.fee))
    by_seller: dict[str, list[Json]] = defaultdict(list)
    for p in payouts:
        by_seller[p["seller_id"]].append(p)
    mismatches = []
    for seller_id, items in by_seller.items():
        paid = 0
        for p in sorted(items, key=lambda p: str(p["created_at"])):
            created = datetime.fromisoformat(p["created_at"])
            if exp.payouts[p["id"]] == "paid":
                paid += int(p["amount"])
            bound = sum(net for at, net in earned[seller_id] if at < created)
            if paid > bound:
                mismatches.append(
                    f"seller {seller_id}: {paid} paid by payout {p['id']}, only {bound} earned"
                )
                break
    return mismatches

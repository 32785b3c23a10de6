"""A month of a marketplace through the API, on the embedded stack, checked to the cent against an
independent model of the same events.

The stack is the one ``make run`` starts (``server.stack.Stack``: embedded PostgreSQL, Temporal dev
server, worker and API as child processes, free ports, a temporary folder), except that the
simulated bank runs as its own HTTP service (``python -m payment_rail``) with the worker pointed at
it (``PAYOUTS_RAIL_URL``) and its signed webhooks going to the stack's ``/v1/rail/webhooks``: the
bench then asks the bank itself (``/admin/payouts``) whether any payout left it twice.

**Time.** A simulated day lasts ``--day-seconds`` real seconds (default: what spreads ``--orders``
over ``--days`` at ``--rate`` orders per second, 40 by default: about 42 s a day at full size, a
21-minute month; 10 s, the least, at ``--orders 2000``). Every duration the
platform keeps is given in those seconds: hold periods and rolling-reserve periods as ISO 8601
durations on the sellers (``PT84S`` for a 2-day hold in days of 42 s), dispute deadlines, the
bank's settle and return delays, the payout return window. Orders are spread uniformly over the
month and sent when their time comes (as fast as ``--concurrency`` allows when the stack falls
behind).

**Payouts.** Every seller has a real Temporal payout schedule (``PUT .../payout_schedule``: daily,
or weekly on one weekday; some with a minimum amount), put at a time of day 12 hours from the
start so that it does not fire during a run of less than 12 hours: a Temporal schedule cannot fire
once per compressed day. The simulated days' runs are the API's trigger endpoint instead
(``POST .../payout_schedule/trigger``), at the end of every simulated day for daily sellers and of
every seventh day for weekly ones; each trigger is a run of the schedule (decision, recorded run,
payout workflow, bank, webhook).

**Failed and returned payouts** are chosen per (seller, day) run from the seed (2% fail, 0.5%
return): for such a run the bench first points the seller's payout account at the bank's test
account ``000111111113`` (account closed: the payout fails) or ``000111111116`` (paid, then
returned), triggers the run, waits until the run has reserved its payout (the payout keeps a copy
of its destination), and puts the seller's normal account (``000123456789``) back. The seller's
run before such a run is watched the same way (without the switch): a payout still reserving when
the account changes would go there too. The rates are of runs; the report gives the payouts'.
After a return the seller's schedule must be paused by the platform; the bench checks that and,
as an operator would, resumes it.

**The month**: ``--sellers`` sellers (1% without a payout account, 2% with a 60-day hold so that
their earnings are still on hold at the end, 20% with a 5% or 10% rolling reserve held 1 day or
90 days), ``--orders`` orders (log-normal amounts around $40, a fee of 5-12%), 1% of them refunded
(in full, in part, or in two parts; during the hold or after posting, whichever comes first),
0.3% charged back (won or lost by ``resolve``, lost by passing the deadline, or still open at the
end).

**The end**: after the last day the simulated days go on with payouts but no new events until every
hold, reserve and dispute that can end has ended; then no more triggers until nothing moves: no
payout run deciding and no payout reserving (asked of Temporal), none at the bank, every payout to
the returning account returned. Checkpoint A compares everything with the model. Then a final
payout run for every seller, whose outcome the model predicts exactly (the seller's whole available
balance, or the reason for skipping), and checkpoint B compares everything again, in full.

**The model** is plain integers. From what the bench sent and the API accepted (orders, refunds,
disputes and their resolutions) and the payouts the API lists, with the outcome each must have had
(by the account it was made to), it computes every seller's and every platform account's running
totals (pending and posted debits and credits), hence their pending, posted and available
balances, and the sellers' on hold, in reserve and in dispute; every earning's status and reserve,
every dispute's status, every payout's status, and which ledger transactions must exist. The fee's
share of each refund is computed from the rule (``ceil(fee * refunded / amount)`` refunded in
total) and compared with what the API answered. Checked against the model: the API's seller
balances and platform accounts, the ledger tables (entries summed per account and status, and the
accounts' running totals), the earnings, disputes and payouts the API lists; besides: the ledger
sums to zero, every order is booked exactly once (and every refund, dispute, reserve, payout and
return has exactly one transaction), every payout is at the bank with the same amount and outcome
and was paid there at most once, and no seller was paid more than it had earned by then. Any
mismatch, 5xx or unexpected answer makes the exit status 1.

The report: wall times, API requests per second (overall and per kind of request), p50 and p99
latency per kind, the events by kind, and the result of each check. ``--keep`` keeps the stack's
folder (logs, PostgreSQL, Temporal's and the bank's SQLite), as a failed run always does.

Usage: python -m bench.month [--sellers 1000] [--orders 50000] [--days 30]
       [--day-seconds S | --rate 40] [--concurrency 32] [--seed 1] [--keep]
"""

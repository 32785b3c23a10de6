"""The per-wallet expiry workflow (id ``wallet-expiries/<wallet id>``): it keeps time,
PostgreSQL keeps the money and the lots.

Each turn is one activity (``expire_wallet_lots``): it expires every lot of the wallet whose
expiry has come (what remains of it goes to the platform's breakage account) and records on the
wallet's row when the workflow looks next, the earliest expiry still ahead, which it returns.
The workflow then sleeps until then. No lot lives in its state or its continue-as-new input (a
counter does), so a turn's history is the same for one top-up or a hundred thousand.

Writes are the API's own database transactions. One whose lot expires before the workflow would
look (a settled top-up with an expiry, an expiry brought forward, a refund into a lot whose
expiry passed) notifies the worker's dispatcher at commit, which sends ``wake`` (signal-with-
start, so a wallet's first expiring top-up starts the workflow); the dispatcher's sweep repeats a
wake that got lost. A later or removed expiry needs no signal: the next turn finds nothing due
and sleeps until the next expiry it reads.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

from temporalio import workflow

from workflows.common import DURABLE_RETRY, history_too_long

with workflow.unsafe.imports_passed_through():
    from contracts.wallets import (
        EXPIRE_WALLET_LOTS,
        STATE_QUERY,
        WAKE_SIGNAL,
        WALLET_EXPIRY_WORKFLOW,
        ExpireWalletLotsInput,
        ExpireWalletLotsResult,
        WalletExpiryInput,
        WalletExpiryState,
    )

# A turn works through due batches for a few seconds (activities.wallets.EXPIRE_BUDGET) and
# heartbeats between them; expiring what is due must happen eventually (DURABLE_RETRY).
EXPIRE_TIMEOUT = timedelta(minutes=2)
EXPIRE_HEARTBEAT = timedelta(seconds=30)
# A turn that finds its next look already due waits at least this long (never spins).
MIN_SLEEP = timedelta(seconds=1)


@workflow.defn(name=WALLET_EXPIRY_WORKFLOW)
class WalletExpiryWorkflow:
    @workflow.init
    def __init__(self, input: WalletExpiryInput) -> None:
        self._wallet_id = input.wallet_id
        self._history_limit = input.history_limit
        self._wake = False
        self._state = WalletExpiryState(
            wallet_id=input.wallet_id, expired_count=input.expired_count
        )

    @workflow.run
    async def run(self, input: WalletExpiryInput) -> None:
        while True:
            if history_too_long(self._history_limit):
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(
                    WalletExpiryInput(
                        wallet_id=self._wallet_id,
                        history_limit=self._history_limit,
                        expired_count=self._state.expired_count,
                    )
                )
            self._wake = False
            turn: ExpireWalletLotsResult = await workflow.execute_activity(
                EXPIRE_WALLET_LOTS,
                ExpireWalletLotsInput(wallet_id=self._wallet_id, at=workflow.now()),
                result_type=ExpireWalletLotsResult,
                start_to_close_timeout=EXPIRE_TIMEOUT,
                heartbeat_timeout=EXPIRE_HEARTBEAT,
                retry_policy=DURABLE_RETRY,
            )
            self._state = WalletExpiryState(
                wallet_id=self._wallet_id,
                timer_at=turn.timer_at,
                expired_count=self._state.expired_count + turn.expired_lots,
                turns=self._state.turns + 1,
            )
            if turn.more:
                continue
            timeout = None
            if turn.timer_at is not None:
                timeout = max(turn.timer_at - workflow.now(), MIN_SLEEP)
            # Sleep until the next expiry, or sooner if a write wakes us.
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: self._wake or history_too_long(self._history_limit),
                    timeout=timeout,
                    timeout_summary="next expiry",
                )

    @workflow.signal(name=WAKE_SIGNAL)
    def wake(self) -> None:
        """A lot expires before this workflow would look (or the sweep thinks so): run a turn
        now."""
        self._wake = True

    @workflow.query(name=STATE_QUERY)
    def state(self) -> WalletExpiryState:
        """When this workflow looks next and how many lots it expired."""
        return self._state

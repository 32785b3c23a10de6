"""The marketplace domain on top of ledger_core: platform ledgers per currency and mode, sellers,
earnings with hold periods and rolling reserves, disputes, payouts, refunds, scheduled payout runs,
bank statement reconciliation, wallets, and the events and webhooks that tell subscribers of each
change. Sellers, wallets, webhook endpoints and events are live or test mode (``livemode``); what
they own takes their mode, and test money stays in the test platform ledgers.

Synchronous SQLAlchemy Core; the caller owns the database transaction and the domain code never
commits. One module per kind of money movement:

=======================  ====================================================================
``sellers``              ``MarketCore`` (the ledger service, platform ledgers, a seller's
                         account and lock: what every domain builds on) and ``Sellers``
``earnings``             ``Earnings``: an earning's life cycle (post, reserve, cancel, extend)
``booking``              set-based booking of earnings (``Marketplace.booking``)
``holds``                the hold clock and the settlement of due holds (``Marketplace.holds``)
``disputes``             ``Disputes``: chargebacks
``wallets``              stored value: ``WalletCore`` (wallets, balances, the wallet's lock,
                         lots; what every wallet module builds on)
``wallet_top_ups``       ``WalletTopUps``: top-ups (lots with an optional expiry)
``wallet_spends``        ``WalletSpends``: spends and their refunds
``wallet_transfers``     ``WalletTransfers``: transfers between wallets
``wallet_expiries``      ``WalletExpiries``: expiries, the expiry clock
``test_clocks``          ``TestClocks``: a time of their own for the sellers and wallets on a
                         clock (their now: ``MarketCore.seller_now``, ``wallet_now``), and an
                         advance's steps
``service``              ``Marketplace``: sellers, earnings, disputes and wallets (``Wallets``)
                         on one core
``payout_accounts``      ``PayoutAccounts``: where a seller is paid, an account's status
                         (active, or failed by a failure of its destination)
``payouts``              ``Payouts``: the payout life cycle, on ``PayoutAccounts``
``payout_items``         what each payout pays out, line by line (fixed when it is reserved)
``instant``              instant payouts: the fee, the daily limit, an instant reservation's
                         amount and fee, what a seller can be paid instantly now
``refunds``              ``Refunds``: refunds of an order's earning
``payout_runs``          what a scheduled payout run decided
``reconciliation``       bank statements against the payouts
``statements``           ``Statements``: a seller's or a wallet's statement over a period (the
                         ledger's account statement, each line's kind and reference)
``events``               the outbox: recording events, ``Events`` to read them
``webhooks``             ``Webhooks``: endpoints, deliveries, attempts
``tables``               every marketplace table, under one ``MetaData``
``errors``               every marketplace error; ``types``: the domain dataclasses
``checks``               shared checks of inputs (and the ledger's clock and amount checks)
``rows``                 domain objects and pages built from rows
=======================  ====================================================================

It may import ledger_core, SQLAlchemy (and psycopg through them) and the standard library;
never api, workflows, activities, server, temporalio or fastapi (``.importlinter``): the hold,
dispute and payout workflows drive it through activities, the API reads it.
"""

from marketplace.booking import BookingOutcome, EarningRequest, earning_external_id
from marketplace.disputes import dispute_external_id
from marketplace.errors import (
    BatchRejected,
    DisputeAlreadyResolved,
    DisputeConflict,
    DisputeNotFound,
    EarningConflict,
    EarningNotFound,
    InstantLimitExceeded,
    InstantNotSupported,
    InvalidEarningState,
    InvalidPayoutState,
    NothingToPay,
    PayoutAccountFailed,
    PayoutAccountMissing,
    PayoutAccountNotFound,
    PayoutConflict,
    PayoutNotFound,
    RefundConflict,
    RefundExceedsEarning,
    RefundNotFound,
    SellerExists,
    SellerNotFound,
    WalletNotFound,
    dispute_not_found,
    earning_not_found,
    event_not_found,
    payout_not_found,
    seller_not_found,
    wallet_not_found,
)
from marketplace.events import Events
from marketplace.holds import HoldClock, SettledBatch, reserve_external_id
from marketplace.instant import InstantAvailability, InstantTerms
from marketplace.payouts import Payouts
from marketplace.refunds import Refunds
from marketplace.sellers import UNCHANGED, Unchanged, seller_external_id
from marketplace.service import Marketplace
from marketplace.types import (
    Dispute,
    DisputeOutcome,
    DisputeStatus,
    Earning,
    EarningStatus,
    Hold,
    Page,
    Payout,
    PayoutAccount,
    PayoutState,
    PlatformAccount,
    PlatformLedger,
    Refund,
    RollingReserve,
    Seller,
    SellerBalances,
    Wallet,
    WalletBalances,
    WalletLot,
    WalletRefund,
    WalletSpend,
    WalletTransfer,
)
from marketplace.webhooks import Webhooks

__all__ = [
    "UNCHANGED",
    "BatchRejected",
    "BookingOutcome",
    "Dispute",
    "DisputeAlreadyResolved",
    "DisputeConflict",
    "DisputeNotFound",
    "DisputeOutcome",
    "DisputeStatus",
    "Earning",
    "EarningConflict",
    "EarningNotFound",
    "EarningRequest",
    "EarningStatus",
    "Events",
    "Hold",
    "HoldClock",
    "InstantAvailability",
    "InstantLimitExceeded",
    "InstantNotSupported",
    "InstantTerms",
    "InvalidEarningState",
    "InvalidPayoutState",
    "Marketplace",
    "NothingToPay",
    "Page",
    "Payout",
    "PayoutAccount",
    "PayoutAccountFailed",
    "PayoutAccountMissing",
    "PayoutAccountNotFound",
    "PayoutConflict",
    "PayoutNotFound",
    "PayoutState",
    "Payouts",
    "PlatformAccount",
    "PlatformLedger",
    "Refund",
    "RefundConflict",
    "RefundExceedsEarning",
    "RefundNotFound",
    "Refunds",
    "RollingReserve",
    "Seller",
    "SellerBalances",
    "SellerExists",
    "SellerNotFound",
    "SettledBatch",
    "Unchanged",
    "Wallet",
    "WalletBalances",
    "WalletLot",
    "WalletNotFound",
    "WalletRefund",
    "WalletSpend",
    "WalletTransfer",
    "Webhooks",
    "dispute_external_id",
    "dispute_not_found",
    "earning_external_id",
    "earning_not_found",
    "event_not_found",
    "payout_not_found",
    "reserve_external_id",
    "seller_external_id",
    "seller_not_found",
    "wallet_not_found",
]

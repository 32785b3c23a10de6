"""``Marketplace``: the marketplace on top of the ledger, sellers, earnings with hold periods and
rolling reserves, disputes, and the seller's balances, as one object callers hold.

Every method takes a SQLAlchemy ``Connection`` inside a database transaction the caller owns (an
activity, an API request, a test) and never commits. Every write is idempotent and keyed: an
earning by its seller and order (ledger transaction ``earning:<seller>/<order>``, its reserve
``reserve:<seller>/<order>``; earnings booked before version 0006 keep ``earning:<order>``), a
chargeback by its id (``dispute:<dispute id>``), and a state change asked twice is a no-op, so a
retried activity never moves money twice. Booking (``marketplace.booking``) and the release of
due holds (``marketplace.holds``) are set-based and can send their writes with the commit.

The ledger transactions each domain writes are described in its module (``marketplace.earnings``,
``marketplace.disputes``); payout accounts, payouts and refunds (``marketplace.payout_accounts``,
``marketplace.payouts``, ``marketplace.refunds``) take a ``Marketplace`` (``OnMarketplace``).
"""

from __future__ import annotations

from marketplace.disputes import Disputes
from marketplace.earnings import Earnings
from marketplace.sellers import Sellers
from marketplace.wallet_expiries import WalletExpiries
from marketplace.wallet_spends import WalletSpends
from marketplace.wallet_top_ups import WalletTopUps
from marketplace.wallet_transfers import WalletTransfers


class Wallets(WalletTopUps, WalletSpends, WalletTransfers, WalletExpiries):
    """Wallets, their lots (top-ups), spends, refunds, transfers and expiries, on the shared
    core (``MarketCore``: the ledger service and the platform ledgers), each from its module
    (``marketplace.wallet_top_ups``, ``wallet_spends``, ``wallet_transfers``,
    ``wallet_expiries``) on the wallets' core (``marketplace.wallets``). Stateless."""


class Marketplace(Sellers, Earnings, Disputes, Wallets):
    """The marketplace's operations: sellers (``marketplace.sellers``), earnings
    (``marketplace.earnings``, with ``booking`` and ``holds``), disputes
    (``marketplace.disputes``) and wallets (``Wallets``), on one shared core
    (``MarketCore``: the ledger service, the platform ledgers and the seller's lock). One
    instance per process."""


class OnMarketplace:
    """Operations built on a ``Marketplace`` (its ledger service, sellers and earnings): payout
    accounts, payouts and refunds. Stateless; without a ``marketplace``, on a new one."""

    def __init__(self, marketplace: Marketplace | None = None) -> None:
        self.marketplace = marketplace or Marketplace()
        self.ledger = self.marketplace.ledger

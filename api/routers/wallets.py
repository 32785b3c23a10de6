"""``/v1/wallets`` and ``/v1/wallet_transfers``: stored value per user (``marketplace.wallets``).
Database only (plain ``def`` endpoints, run in the thread pool): every write is the request's own
database transaction and answers at the ledger's speed; a top-up that expires wakes the wallet's
expiry workflow through the worker's dispatcher after the commit, never from the request.

Platform keys (admin, operator) create wallets and move their money; a wallet key reads only its
own wallet (another wallet and what it owns are a 404, as if they did not exist) and writes
nothing (403). Every POST takes an ``Idempotency-Key``.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from api.auth import CurrentPrincipal
from api.dependencies import DbConnection
from api.modes import KeyMode, NamedObjectsDep
from api.pagination import AfterCursor, PerPage, decode_key_cursor, paginate
from api.routing import ApiRoute
from api.schemas.common import ListResponse
from api.schemas.wallets import (
    ExpiryChange,
    RefundCreate,
    SpendCreate,
    SpendOut,
    TopUpCreate,
    TopUpOut,
    TransferCreate,
    TransferOut,
    WalletBalancesOut,
    WalletCreate,
    WalletOut,
    WalletRefundOut,
)
from api.scoping import (
    MarketplaceDep,
    PlatformAccess,
    WalletReadAccess,
    check_wallet_visible,
    is_wallet_key,
)
from marketplace import Page, WalletNotFound
from marketplace.errors import wallet_transfer_not_found

router = APIRouter(prefix="/v1/wallets", tags=["wallets"], route_class=ApiRoute)
transfers = APIRouter(prefix="/v1/wallet_transfers", tags=["wallets"], route_class=ApiRoute)


@router.post(
    "",
    status_code=201,
    dependencies=[PlatformAccess],
    responses={200: {"model": WalletOut, "description": "The wallet existed as asked."}},
)
def create_wallet(
    body: WalletCreate,
    conn: DbConnection,
    market: MarketplaceDep,
    response: Response,
    livemode: KeyMode,
) -> WalletOut:
    """Create a wallet of the key's mode and its credit-normal ledger account (in the platform
    ledger of its currency and mode). Without an ``id`` one is generated. The same request again
    returns the wallet (200); the same id with other attributes, or taken in the other mode, is
    a 409 ``wallet_exists``. ``test_clock`` (test mode only): the wallet lives on that test
    clock's time (404 ``test_clock_not_found``)."""
    wallet, created = market.create_wallet(
        conn,
        wallet_id=body.id,
        owner=body.owner,
        name=body.name,
        currency=body.currency,
        metadata=dict(body.metadata),
        livemode=livemode,
        test_clock_id=body.test_clock,
    )
    if not created:
        response.status_code = 200
    response.headers["Location"] = f"/v1/wallets/{wallet.id}"
    return WalletOut.model_validate(wallet)


@router.get("", dependencies=[WalletReadAccess])
def list_wallets(
    conn: DbConnection,
    market: MarketplaceDep,
    principal: CurrentPrincipal,
    response: Response,
    livemode: KeyMode,
    owner: str | None = None,
    per_page: PerPage = 25,
    after_cursor: AfterCursor = None,
) -> ListResponse[WalletOut]:
    """Wallets by id, optionally of one ``owner``. A wallet key sees only its own wallet."""
    after = decode_key_cursor("wallets", after_cursor)
    if is_wallet_key(principal):
        assert principal.wallet_id is not None
        own = [] if after is not None else [principal.wallet_id]
        try:
            items = [market.get_wallet(conn, w, livemode=livemode) for w in own]
        except WalletNotFound:  # a key for a wallet not created yet
            items = []
        page = Page(items=[w for w in items if owner is None or w.owner == owner], next_after=None)
    else:
        page = market.list_wallets(
            conn, owner=owner, livemode=livemode, after=after, limit=per_page
        )
    return paginate(response, "wallets", page, per_page, WalletOut)


@router.get("/{wallet_id}", dependencies=[WalletReadAccess])
def get_wallet(
    wallet_id: str, conn: DbConnection, market: MarketplaceDep, principal: CurrentPrincipal
) -> WalletOut:
    check_wallet_visible(principal, wallet_id)
    return WalletOut.model_validate(market.get_wallet(conn, wallet_id))


@router.get("/{wallet_id}/balances", dependencies=[WalletReadAccess])
def get_wallet_balances(
    wallet_id: str, conn: DbConnection, market: MarketplaceDep, principal: CurrentPrincipal
) -> WalletBalancesOut:
    """Pending, posted and available, each with its credits and debits (running totals: the
    same cost whatever the wallet's history), and what of it expires."""
    check_wallet_visible(principal, wallet_id)
    return WalletBalancesOut.model_validate(market.wallet_balances(conn, wallet_id))


# ---------------------------------------------------------------- top-ups


@router.post("/{wallet_id}/top_ups", status_code=201, dependencies=[PlatformAccess])
def create_top_up(
    wallet_id: str,
    body: TopUpCreate,
    conn: DbConnection,
    market: MarketplaceDep,
    response: Response,
) -> TopUpOut:
    """Add money: pending until the funding settles (``settle``) or fails (``fail``), or posted
    at once with ``"settled": true``. With ``expires_at``, what is unspent of it then goes to
    breakage (the wallet's expiry workflow keeps the time)."""
    lot = market.top_up(
        conn,
        wallet_id,
        amount=body.amount,
        settled=body.settled,
        expires_at=body.expires_at,
        metadata=dict(body.metadata),
    )
    response.headers["Location"] = f"/v1/wallets/{wallet_id}/top_ups/{lot.id}"
    return TopUpOut.model_validate(lot)


@router.get("/{wallet_id}/top_ups", dependencies=[WalletReadAccess])
def list_top_ups(
    wallet_id: str,
    conn: DbConnection,
    market: MarketplaceDep,
    principal: CurrentPrincipal,
    response: Response,
    per_page: PerPage = 25,
    after_cursor: AfterCursor = None,
) -> ListResponse[TopUpOut]:
    """The wallet's lots, oldest first: its top-ups and the money transferred in."""
    check_wallet_visible(principal, wallet_id)
    after = decode_key_cursor("top_ups", after_cursor)
    page = market.list_top_ups(conn, wallet_id, after=after, limit=per_page)
    return paginate(response, "top_ups", page, per_page, TopUpOut)


@router.get("/{wallet_id}/top_ups/{top_up_id}", dependencies=[WalletReadAccess])
def get_top_up(
    wallet_id: str,
    top_up_id: str,
    conn: DbConnection,
    market: MarketplaceDep,
    principal: CurrentPrincipal,
) -> TopUpOut:
    check_wallet_visible(principal, wallet_id)
    return TopUpOut.model_validate(market.get_top_up(conn, wallet_id, top_up_id))


@router.post("/{wallet_id}/top_ups/{top_up_id}/settle", dependencies=[PlatformAccess])
def settle_top_up(
    wallet_id: str, top_up_id: str, conn: DbConnection, market: MarketplaceDep
) -> TopUpOut:
    """The funding arrived: the top-up posts and its money is available. A settled top-up is
    returned as it is; a failed one is a 409 ``top_up_not_pending``."""
    return TopUpOut.model_validate(market.settle_top_up(conn, wallet_id, top_up_id))


@router.post("/{wallet_id}/top_ups/{top_up_id}/fail", dependencies=[PlatformAccess])
def fail_top_up(
    wallet_id: str, top_up_id: str, conn: DbConnection, market: MarketplaceDep
) -> TopUpOut:
    """The funding failed: the pending top-up is archived (pending balance drops). A failed
    top-up is returned as it is; a settled one is a 409 ``top_up_not_pending``."""
    return TopUpOut.model_validate(market.fail_top_up(conn, wallet_id, top_up_id))


@router.post("/{wallet_id}/top_ups/{top_up_id}/expiry", dependencies=[PlatformAccess])
def change_expiry(
    wallet_id: str,
    top_up_id: str,
    body: ExpiryChange,
    conn: DbConnection,
    market: MarketplaceDep,
) -> TopUpOut:
    """An operator extends (or brings forward) a top-up's expiry, or cancels it with
    ``"expires_at": null``. A failed or expired top-up is a 409 ``invalid_top_up_state``."""
    return TopUpOut.model_validate(market.set_expiry(conn, wallet_id, top_up_id, body.expires_at))


# ---------------------------------------------------------------- spends and refunds


@router.post("/{wallet_id}/spends", status_code=201, dependencies=[PlatformAccess])
def create_spend(
    wallet_id: str,
    body: SpendCreate,
    conn: DbConnection,
    market: MarketplaceDep,
    response: Response,
) -> SpendOut:
    """Spend from the wallet, checked atomically against what it can spend (a ledger balance
    condition: never below zero, whatever the concurrency): 422 ``insufficient_balance``
    otherwise. The money that expires first is used first."""
    spend = market.spend(
        conn,
        wallet_id,
        amount=body.amount,
        description=body.description,
        metadata=dict(body.metadata),
    )
    response.headers["Location"] = f"/v1/wallets/{wallet_id}/spends/{spend.id}"
    return SpendOut.model_validate(spend)


@router.get("/{wallet_id}/spends", dependencies=[WalletReadAccess])
def list_spends(
    wallet_id: str,
    conn: DbConnection,
    market: MarketplaceDep,
    principal: CurrentPrincipal,
    response: Response,
    per_page: PerPage = 25,
    after_cursor: AfterCursor = None,
) -> ListResponse[SpendOut]:
    check_wallet_visible(principal, wallet_id)
    after = decode_key_cursor("spends", after_cursor)
    page = market.list_spends(conn, wallet_id, after=after, limit=per_page)
    return paginate(response, "spends", page, per_page, SpendOut)


@router.get("/{wallet_id}/spends/{spend_id}", dependencies=[WalletReadAccess])
def get_spend(
    wallet_id: str,
    spend_id: str,
    conn: DbConnection,
    market: MarketplaceDep,
    principal: CurrentPrincipal,
) -> SpendOut:
    check_wallet_visible(principal, wallet_id)
    return SpendOut.model_validate(market.get_spend(conn, wallet_id, spend_id))


@router.post(
    "/{wallet_id}/spends/{spend_id}/refunds", status_code=201, dependencies=[PlatformAccess]
)
def refund_spend(
    wallet_id: str,
    spend_id: str,
    body: RefundCreate,
    conn: DbConnection,
    market: MarketplaceDep,
) -> WalletRefundOut:
    """Give back (part of) a spend; without ``amount``, all that is left of it. Never more
    than the spend: 422 ``refund_exceeds_spend``. The money goes back to the lots the spend
    used, with their expiry."""
    refund = market.refund_spend(
        conn, wallet_id, spend_id, amount=body.amount, metadata=dict(body.metadata)
    )
    return WalletRefundOut.model_validate(refund)


# ---------------------------------------------------------------- transfers


@transfers.post("", status_code=201, dependencies=[PlatformAccess])
def create_transfer(
    body: TransferCreate,
    conn: DbConnection,
    market: MarketplaceDep,
    response: Response,
    named: NamedObjectsDep,
) -> TransferOut:
    """Move money from one wallet to another in one ledger transaction (both balances change at
    once). Same currency only (422 ``currency_mismatch``); never beyond what the sender can
    spend (422 ``insufficient_balance``). The receiver gets the money with its expiry dates.
    Both wallets are of the key's mode (a wallet of the other mode is a 404 ``wallet_not_found``:
    test money never reaches a live wallet)."""
    named.check(conn, "wallet_id", body.from_wallet_id)  # the receiver: by the domain
    transfer = market.transfer(
        conn,
        from_wallet_id=body.from_wallet_id,
        to_wallet_id=body.to_wallet_id,
        amount=body.amount,
        description=body.description,
        metadata=dict(body.metadata),
    )
    response.headers["Location"] = f"/v1/wallet_transfers/{transfer.id}"
    return TransferOut.model_validate(transfer)


@transfers.get("/{transfer_id}", dependencies=[WalletReadAccess])
def get_transfer(
    transfer_id: str, conn: DbConnection, market: MarketplaceDep, principal: CurrentPrincipal
) -> TransferOut:
    """A transfer; a wallet key sees the transfers of its own wallet only."""
    transfer = market.get_transfer(conn, transfer_id)
    if is_wallet_key(principal) and principal.wallet_id not in (
        transfer.from_wallet_id,
        transfer.to_wallet_id,
    ):
        raise wallet_transfer_not_found(transfer_id)
    return TransferOut.model_validate(transfer)

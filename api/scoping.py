"""Who sees which seller: platform keys (admin, operator) see every seller; a seller key sees its
own seller only. Another seller's resources answer exactly as unknown ones (404 with the same
code and message), so a seller key cannot probe which sellers, orders or disputes exist.

Writes on sellers, earnings, holds and disputes are for platform keys (``PlatformAccess``); a
seller key gets a 403 before anything is looked up.

Wallets work the same way: a wallet key reads its own wallet only (``WalletReadAccess``,
``check_wallet_visible``: another wallet is the 404 of an unknown one) and writes nothing; it has
no access to the sellers' routes, nor a seller key to the wallets'.

``MarketplaceDep`` is the app's ``marketplace.Marketplace`` (on the app's ``LedgerService``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.auth import ApiKeyRecord, ApiKeyRole, require_roles
from api.problems import Problem
from marketplace import Marketplace, Payouts, seller_not_found, wallet_not_found

PlatformAccess = Depends(require_roles(ApiKeyRole.ADMIN, ApiKeyRole.OPERATOR))
# Configuration that decides where the platform's data goes (webhook endpoints): admin keys only.
AdminAccess = Depends(require_roles(ApiKeyRole.ADMIN))
AnyRole = Depends(require_roles(ApiKeyRole.ADMIN, ApiKeyRole.OPERATOR, ApiKeyRole.SELLER))
WalletReadAccess = Depends(require_roles(ApiKeyRole.ADMIN, ApiKeyRole.OPERATOR, ApiKeyRole.WALLET))


def is_seller_key(principal: ApiKeyRecord) -> bool:
    return principal.role is ApiKeyRole.SELLER


def check_visible(principal: ApiKeyRecord, seller_id: str, not_found: Exception) -> None:
    """A seller key asking for what another seller owns (``seller_id``): ``not_found``, the same
    404 as for an unknown one."""
    if is_seller_key(principal) and principal.seller_id != seller_id:
        raise not_found


def check_seller_visible(principal: ApiKeyRecord, seller_id: str) -> None:
    """A seller key asking for another seller: the same 404 as an unknown seller."""
    check_visible(principal, seller_id, seller_not_found(seller_id))


def visible_seller(principal: ApiKeyRecord, seller_id: str | None) -> str | None:
    """The seller a list is filtered by: a seller key's own (asking for another seller is the
    404 of an unknown one), else the ``seller_id`` asked for (None: every seller)."""
    if not is_seller_key(principal):
        return seller_id
    if seller_id is not None and seller_id != principal.seller_id:
        raise Problem(404, "seller_not_found", f"seller {seller_id!r} not found")
    return principal.seller_id


def is_wallet_key(principal: ApiKeyRecord) -> bool:
    return principal.role is ApiKeyRole.WALLET


def check_wallet_visible(principal: ApiKeyRecord, wallet_id: str) -> None:
    """A wallet key asking for another wallet (or what it owns): the same 404 as an unknown
    wallet."""
    if is_wallet_key(principal) and principal.wallet_id != wallet_id:
        raise wallet_not_found(wallet_id)


async def get_marketplace(request: Request) -> Marketplace:
    service = request.app.state.marketplace
    assert isinstance(service, Marketplace)
    return service


MarketplaceDep = Annotated[Marketplace, Depends(get_marketplace)]


async def get_payouts(request: Request) -> Payouts:
    """Payouts on the app's marketplace, with the platform's instant payout terms."""
    return Payouts(request.app.state.marketplace, request.app.state.instant_terms)


PayoutsDep = Annotated[Payouts, Depends(get_payouts)]

"""Payout accounts: where a seller is paid, and whether it can be paid there.

``PayoutAccounts`` takes a ``Marketplace``; like it, every method takes a ``Connection`` inside a
database transaction the caller owns and never commits. ``Payouts`` (``marketplace.payouts``) is
built on it, so ``Payouts.set_payout_account`` / ``get_payout_account`` are these.

* ``set_payout_account`` / ``get_payout_account``: one account per seller, created or replaced
  (the full number is kept for the rail, ``PayoutAccount.masked_account_number`` is what responses
  show). Payouts already made keep their destination (each payout keeps a copy).
* An account is ``active`` or ``failed``: ``Payouts.mark_failed`` of a failure of the destination
  marks it failed (``_fail_account``) in the same transaction, a failed account is never paid
  (``PayoutAccountFailed``, from ``_payable_account``, which a reservation asks first), and
  setting another account or routing number makes it active again.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Connection, and_, case, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Row

from ledger_core import ValidationFailed
from marketplace.checks import utc_now
from marketplace.errors import PayoutAccountFailed, PayoutAccountMissing, PayoutAccountNotFound
from marketplace.rows import from_row
from marketplace.service import OnMarketplace
from marketplace.tables import payout_accounts
from marketplace.types import PayoutAccount

_ACCOUNT = re.compile(r"^[0-9]{4,34}$")
_ROUTING = re.compile(r"^[0-9]{9}$")

ACCOUNT_ACTIVE = "active"
ACCOUNT_FAILED = "failed"


def _same_destination(account_number: Any, routing_number: Any) -> Any:
    """Whether the payout account row is the destination of these details: its account and
    routing numbers (the holder's name does not change where the money goes)."""
    return and_(
        payout_accounts.c.account_number == account_number,
        payout_accounts.c.routing_number == routing_number,
    )


class PayoutAccounts(OnMarketplace):
    """Payout accounts of a ``Marketplace``'s sellers. Stateless."""

    def set_payout_account(
        self,
        conn: Connection,
        seller_id: str,
        account_number: str,
        routing_number: str,
        holder_name: str,
    ) -> PayoutAccount:
        """Create or replace where the seller is paid. Payouts already made keep their
        destination (each payout keeps a copy). Another account or routing number makes a failed
        account active again; the same numbers keep it as it is (a dead account stays failed,
        whatever the holder's name)."""
        if not isinstance(account_number, str) or not _ACCOUNT.match(account_number):
            raise ValidationFailed("account_number must be 4-34 digits", field="account_number")
        if not isinstance(routing_number, str) or not _ROUTING.match(routing_number):
            raise ValidationFailed("routing_number must be 9 digits", field="routing_number")
        if not isinstance(holder_name, str) or not 1 <= len(holder_name.strip()) <= 200:
            raise ValidationFailed("holder_name must be 1-200 characters", field="holder_name")
        self.marketplace.get_seller(conn, seller_id)
        now = utc_now()
        stmt = pg_insert(payout_accounts).values(
            seller_id=seller_id,
            account_number=account_number,
            routing_number=routing_number,
            holder_name=holder_name,
            created_at=now,
            updated_at=now,
        )
        same = _same_destination(
            stmt.excluded.account_number, stmt.excluded.routing_number
        ).self_group()

        def unless_same(column: str, active: Any) -> Any:
            return case((same, payout_accounts.c[column]), else_=active)

        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["seller_id"],
                set_={
                    "account_number": stmt.excluded.account_number,
                    "routing_number": stmt.excluded.routing_number,
                    "holder_name": stmt.excluded.holder_name,
                    "status": unless_same("status", ACCOUNT_ACTIVE),
                    "failure_code": unless_same("failure_code", None),
                    "failed_payout_id": unless_same("failed_payout_id", None),
                    "failed_at": unless_same("failed_at", None),
                    "updated_at": now,
                },
            )
        )
        return self.get_payout_account(conn, seller_id)

    def get_payout_account(self, conn: Connection, seller_id: str) -> PayoutAccount:
        row = conn.execute(
            select(payout_accounts).where(payout_accounts.c.seller_id == seller_id)
        ).one_or_none()
        if row is None:
            self.marketplace.get_seller(conn, seller_id)  # an unknown seller: seller_not_found
            raise PayoutAccountNotFound(
                f"seller {seller_id!r} has no payout account", resource="payout_account"
            )
        return from_row(PayoutAccount, row)

    def _payable_account(self, conn: Connection, seller_id: str) -> PayoutAccount:
        """The seller's payout account, if it can be paid: raises ``PayoutAccountMissing``
        (none) or ``PayoutAccountFailed`` (its destination failed)."""
        try:
            account = self.get_payout_account(conn, seller_id)
        except PayoutAccountNotFound:
            raise PayoutAccountMissing(
                f"seller {seller_id!r} has no payout account; it is not paid until it has one",
                seller_id=seller_id,
            ) from None
        if account.status == ACCOUNT_FAILED:
            raise PayoutAccountFailed(
                f"seller {seller_id!r}'s payout account failed ({account.failure_code}, payout "
                f"{account.failed_payout_id}); it is not paid until a new payout account is set",
                seller_id=seller_id,
                failure_code=account.failure_code,
            )
        return account

    @staticmethod
    def _fail_account(conn: Connection, payout: Row[Any], code: str) -> None:
        """A failure of the payout's destination: the seller's account fails if it is still
        active with the payout's details (a new account set meanwhile is not the dead one)."""
        now = utc_now()
        conn.execute(
            payout_accounts.update()
            .where(
                payout_accounts.c.seller_id == payout.seller_id,
                _same_destination(payout.account_number, payout.routing_number),
                payout_accounts.c.status == ACCOUNT_ACTIVE,
            )
            .values(
                status=ACCOUNT_FAILED,
                failure_code=code,
                failed_payout_id=payout.id,
                failed_at=now,
                updated_at=now,
            )
        )

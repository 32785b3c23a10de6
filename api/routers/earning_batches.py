"""``POST /v1/earnings/batch``: up to 1,000 earnings of any sellers in one request, written
set-based in one database transaction (``marketplace.booking``).

Each item is answered as its own ``POST /v1/sellers/{seller_id}/earnings`` would be: 201 booked
now, 200 booked before with the same terms (idempotent by seller and order), or its problem
(404 ``seller_not_found``, 409 ``earning_conflict``, 422 ``validation_failed``). One bad item does
not fail the rest, unless ``atomic``: then any bad item books none (422 ``batch_rejected`` with
the items' errors). The whole request also honours ``Idempotency-Key``.
"""

from __future__ import annotations

from fastapi import APIRouter

from api.dependencies import DbConnection
from api.modes import KeyMode
from api.problems import ledger_error_status
from api.routing import ApiRoute, commits_in_one_message
from api.schemas.earnings import (
    EarningBatchCreate,
    EarningBatchOut,
    EarningBatchProblem,
    EarningBatchResult,
    EarningOut,
)
from api.scoping import MarketplaceDep, PlatformAccess
from marketplace import EarningRequest

router = APIRouter(prefix="/v1/earnings", tags=["earnings and holds"], route_class=ApiRoute)


@router.post("/batch", dependencies=[PlatformAccess])
@commits_in_one_message
def book_earnings(
    body: EarningBatchCreate, conn: DbConnection, market: MarketplaceDep, livemode: KeyMode
) -> EarningBatchOut:
    """Book orders' earnings (pending ledger transactions, each on hold for its seller's hold
    period); one result per item, in request order. A seller of the other mode than the key's is
    an item's 404 ``seller_not_found``, as an unknown one."""
    outcomes = market.book_earnings(
        conn,
        [
            EarningRequest(
                i.seller_id, i.order_id, i.amount, i.fee, dict(i.metadata), livemode=livemode
            )
            for i in body.earnings
        ],
        atomic=body.atomic,
        at_commit=True,
    )
    results = []
    for index, outcome in enumerate(outcomes):
        if outcome.error is not None:
            results.append(
                EarningBatchResult(
                    index=index,
                    status=ledger_error_status(outcome.error),
                    error=EarningBatchProblem(
                        code=outcome.error.code, detail=outcome.error.message
                    ),
                )
            )
        else:
            assert outcome.earning is not None
            results.append(
                EarningBatchResult(
                    index=index,
                    status=201 if outcome.created else 200,
                    earning=EarningOut.model_validate(outcome.earning),
                )
            )
    return EarningBatchOut(
        results=results,
        created=sum(1 for r in results if r.status == 201),
        existing=sum(1 for r in results if r.status == 200),
        failed=sum(1 for r in results if r.error is not None),
    )

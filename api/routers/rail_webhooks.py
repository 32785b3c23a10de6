"""``POST /v1/rail/webhooks``: the payment rail's signed webhook. No API key: the
``Rail-Signature`` HMAC (secret ``PAYOUTS_RAIL_WEBHOOK_SECRET``) is the authentication. A bad
signature is a 401 problem; a verified event is signalled to its payout workflow (which drops a
duplicate by event id) and answered 200 at once; an event for no running payout is answered 200
with ``"delivered": false`` (nothing is left to learn, and the rail must not retry forever)."""

from __future__ import annotations

import logging
import os

from fastapi import APIRouter, Request

from api.problems import Problem, problem_responses
from api.workflow_calls import WorkflowsDep
from observability.metrics import WEBHOOK_DELIVERIES
from payment_rail import SIGNATURE_HEADER, InvalidSignature, RailSettings, construct_event
from temporal_calls import payouts as payout_calls

log = logging.getLogger(__name__)

router = APIRouter(tags=["payment rail"])


def webhook_secret() -> str:
    return os.environ.get("PAYOUTS_RAIL_WEBHOOK_SECRET") or RailSettings().webhook_secret


@router.post(
    "/v1/rail/webhooks",
    # Not an ApiRoute (no API key), so its problems are documented here.
    responses=problem_responses((400, 401, 413, 422, 503)),
)
async def rail_webhook(request: Request, calls: WorkflowsDep) -> dict[str, object]:
    body = await request.body()
    try:
        event = construct_event(webhook_secret(), request.headers.get(SIGNATURE_HEADER), body)
    except InvalidSignature as exc:
        log.warning("rail webhook refused: %s", exc.reason)
        WEBHOOK_DELIVERIES.labels(direction="received", outcome="invalid_signature").inc()
        raise Problem(401, "invalid_signature", "The webhook signature is not valid.") from exc
    except ValueError as exc:
        raise Problem(400, "invalid_event", "The body is not a payment rail event.") from exc
    delivered = await calls.call(lambda client: payout_calls.signal_rail_event(client, event))
    WEBHOOK_DELIVERIES.labels(
        direction="received", outcome="delivered" if delivered else "no_payout_workflow"
    ).inc()
    return {"received": True, "event_id": event.id, "delivered": delivered}

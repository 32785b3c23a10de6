"""Group commit of bookings (``api.booking.BookingBatcher``): the bookings an API process has in
flight at once are booked in one database transaction, each answered with its own outcome."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import Engine, text

from api.booking import BookingBatcher
from marketplace import EarningRequest, Marketplace


def new_seller(engine: Engine, market: Marketplace) -> str:
    seller_id = f"gc-{uuid.uuid4().hex[:10]}"
    with engine.begin() as conn:
        market.create_seller(conn, seller_id=seller_id, name="Group", currency="USD")
    return seller_id


async def test_bookings_in_flight_together_are_answered_each_with_its_own_outcome(
    engine: Engine,
) -> None:
    market = Marketplace()
    seller = new_seller(engine, market)
    batcher = BookingBatcher(engine, market)
    requests = [EarningRequest(seller, f"o-{n}", 1_000 + n, 10) for n in range(20)]
    again = EarningRequest(seller, "o-3", 1_003, 10)  # the same order, booked again
    conflict = EarningRequest(seller, "o-4", 9_999, 10)  # the same order, another amount
    outcomes = await asyncio.gather(*(batcher.book(r) for r in requests))
    repeated = await asyncio.gather(batcher.book(again), batcher.book(conflict))
    assert all(o.created and o.error is None for o in outcomes)
    assert [o.earning.net for o in outcomes if o.earning] == [990 + n for n in range(20)]
    assert repeated[0].created is False and repeated[0].earning is not None
    assert repeated[0].earning.amount == 1_003
    assert repeated[1].error is not None and repeated[1].error.code == "earning_conflict"
    assert batcher.booked == 22 and batcher.batches < 22, "nothing was booked together"
    with engine.connect() as conn:
        booked = conn.execute(
            text("SELECT count(*) FROM earnings WHERE seller_id = :s"), {"s": seller}
        ).scalar_one()
    assert booked == 20


async def test_a_booking_queued_as_the_last_batch_ends_still_gets_a_writer(
    engine: Engine,
) -> None:
    """The request that resumes first when a batch commits books again at once: the writer that
    just finished must not look busy to it (it would wait for a writer that never comes)."""
    market = Marketplace()
    seller = new_seller(engine, market)
    batcher = BookingBatcher(engine, market)
    first = await batcher.book(EarningRequest(seller, "first", 500, 0))
    # Awaited directly (no task in between): the booking queues in the same step of the loop in
    # which the first one's answer arrived.
    async with asyncio.timeout(5):
        second = await batcher.book(EarningRequest(seller, "second", 600, 0))
    assert first.created and second.created

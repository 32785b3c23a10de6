"""The hold workflow as a worker before version 0006 ran it (holds kept in memory, no ``wake``
signal), for the test that such a run moves over (test_hold_migration). A module of its own:
the workflow sandbox imports it, so it imports only workflow code."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.common import SELLER_ID
    from contracts.holds import AddEarningRequest, EarningResult, Hold, SellerHoldInput
    from workflows.seller_holds_v1 import InMemoryHolds


@workflow.defn(name="SellerHoldWorkflow")
class FirstShapeHoldWorkflow:
    """The hold workflow as a worker before version 0006 ran it."""

    @workflow.init
    def __init__(self, input: SellerHoldInput) -> None:
        self._holds = InMemoryHolds(input)

    @workflow.run
    async def run(self, input: SellerHoldInput) -> None:
        workflow.upsert_search_attributes([SELLER_ID.value_set(input.seller_id)])
        await self._holds.run()

    @workflow.update
    async def add_earning(self, request: AddEarningRequest) -> EarningResult:
        return await self._holds.add_earning(request)

    @add_earning.validator
    def _validate_add_earning(self, request: AddEarningRequest) -> None:
        self._holds.validate_add_earning(request)

    @workflow.query
    def holds(self) -> list[Hold]:
        return self._holds.holds()

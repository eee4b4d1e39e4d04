"""A stop lets the work already past the gate land before it cancels what rests: an order being
posted when the stop began must not stay on the book after a stop with cancel_on_shutdown."""

from __future__ import annotations

from core.app.shutdown import wind_down
from core.events import EventBus
from core.execution.types import CancelResult


class Gate:
    def __init__(self, steps: list[str]) -> None:
        self.steps = steps

    async def disarm(self, by: str, reason: str) -> None:
        self.steps.append("disarm")


class Engine:
    def __init__(self, steps: list[str]) -> None:
        self.steps = steps
        self.resting: list[str] = []

    def open_orders(self) -> list[str]:
        return list(self.resting)

    async def cancel_all(self) -> CancelResult:
        self.steps.append(f"cancel {self.resting}")
        canceled, self.resting = tuple(self.resting), []
        return CancelResult(canceled=canceled)


async def test_an_order_in_flight_at_stop_is_canceled_not_left_resting() -> None:
    steps: list[str] = []
    gate, engine = Gate(steps), Engine(steps)

    async def in_flight_lands() -> None:  # the lifecycle's drain: a quote posted after the disarm
        engine.resting.append("pb-quote")
        steps.append("settled")

    await wind_down(gate, engine, EventBus(), cancel_open_orders=True, settle=in_flight_lands)  # type: ignore[arg-type]
    assert steps == ["disarm", "settled", "cancel ['pb-quote']"]
    assert engine.resting == []

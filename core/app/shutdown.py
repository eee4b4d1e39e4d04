"""What a stop does before anything closes: disarm first (no order is placed from here on), let
the work already past the gate finish (``settle``: an order being posted lands before the cancel,
not after it), cancel what rests if the settings say so (a failure is logged: the stop goes on),
then say so."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from core.events import Alert, EventBus, Severity
from core.execution.engine import Engine
from core.execution.risk_gate import RiskGate

log = logging.getLogger(__name__)


async def wind_down(
    risk: RiskGate,
    engine: Engine,
    bus: EventBus,
    *,
    cancel_open_orders: bool,
    settle: Callable[[], Awaitable[object]] | None = None,
) -> None:
    await risk.disarm("service", "shutdown")
    if settle is not None:
        await settle()
    if cancel_open_orders and engine.open_orders():
        try:
            res = await engine.cancel_all()
            log.info("shutdown: canceled %d open order(s)", len(res.canceled))
        except Exception:
            log.exception("shutdown: cancel_all failed")
    bus.publish(Alert(kind="service", severity=Severity.INFO, key="stop", message="Polybot stopping"))

"""The trading side's start, in order: the relayer, the engine's rebuild and reconcile, the user
channel's market set, the fills missed while down, the venue's balances."""

from __future__ import annotations

import logging

from core.app.system import System
from core.events import EventBus, FillEvent
from core.execution.types import TradeResync
from core.types import Mode

log = logging.getLogger(__name__)


async def start_trading(system: System, bus: EventBus, mode: Mode) -> None:
    execution = system.execution
    await execution.relayer.start()
    report = await execution.engine.start()  # forces disarmed, rebuilds positions, reconciles orders
    log.info("engine reconciled %d order(s) at start: %s", report.checked, report.changed or "no change")
    if system.user_markets is not None:  # the engine knows its orders and positions now
        system.user_markets.refresh()
    if isinstance(execution.relayer, TradeResync) and mode is Mode.LIVE:
        # the user channel does not replay: fills made while we were down come from REST, and are
        # applied now that the engine knows its orders (the engine ignores fills it already has)
        await execution.relayer.resync()
    if system.balances is not None:
        await system.balances.refresh()
        if (funds := system.balances.funds).collateral is None:
            log.warning("venue balance could not be read at start (%s): buys refused until it is", funds.last_error)
        bus.subscribe(FillEvent, system.balances.on_fill)

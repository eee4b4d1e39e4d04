"""The execution side built in the one order that needs no patching: sink, relayer, engine.

The event sink is created first; the relayer is built with it (``make_relayer(sink)``); the engine,
built on that relayer, connects to the sink as its one consumer. Funds may depend on the relayer
(live mode reads the venue's balances through it), so they are made from it. The caller (the
application layer) decides which relayer and which funds from its settings; this module knows
nothing of settings.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from core.events import EventBus
from core.execution.context import Sleep
from core.execution.engine import Engine, OneLegPolicy
from core.execution.events import EventSink
from core.execution.funds import FundsSource
from core.execution.positions import MarkProvider, PositionBook
from core.execution.risk_gate import RiskGate
from core.execution.store import ExecutionStore
from core.execution.submission import BookProvider
from core.execution.types import Relayer

R = TypeVar("R", bound=Relayer)


@dataclass(frozen=True, slots=True)
class EngineOptions:
    """The engine's knobs (``[service]`` retries, ``[risk]`` one-leg policy)."""

    relayer_max_retries: int = 2
    relayer_retry_sleep_ms: int = 200
    engine_max_retries: int = 1
    engine_retry_sleep_ms: int = 1000
    one_leg_policy: OneLegPolicy | str = OneLegPolicy.ALERT
    max_retry_after_s: float = 30.0
    unknown_grace_s: float = 30.0
    place_timeout_s: float | None = 30.0
    max_policy_runs: int = 1
    latency_budget_s: float | None = None


@dataclass(frozen=True, slots=True)
class Execution(Generic[R]):
    relayer: R
    engine: Engine
    events: EventSink  # the relayer's outlet, the engine connected to it


def assemble(
    make_relayer: Callable[[EventSink], R],
    risk: RiskGate,
    store: ExecutionStore,
    bus: EventBus,
    *,
    options: EngineOptions | None = None,
    positions: PositionBook | None = None,
    funds: Callable[[R], FundsSource | None] | None = None,
    books: BookProvider | None = None,
    marks: MarkProvider | None = None,
    clock: Callable[[], float] | None = None,
    sleep: Sleep = asyncio.sleep,
) -> Execution[R]:
    """Build the relayer with a new event sink, then the engine on it (connected to that sink)."""
    events = EventSink()
    relayer = make_relayer(events)
    if relayer.events is not events:
        raise ValueError(f"{type(relayer).__name__} was not built with the event sink it was handed")
    o = options or EngineOptions()
    engine = Engine(
        relayer,
        risk,
        store,
        bus,
        relayer_max_retries=o.relayer_max_retries,
        relayer_retry_sleep_ms=o.relayer_retry_sleep_ms,
        engine_max_retries=o.engine_max_retries,
        engine_retry_sleep_ms=o.engine_retry_sleep_ms,
        sleep=sleep,
        one_leg_policy=o.one_leg_policy,
        clock=clock,
        book_provider=books,
        mark_provider=marks,
        max_retry_after_s=o.max_retry_after_s,
        unknown_grace_s=o.unknown_grace_s,
        place_timeout_s=o.place_timeout_s,
        max_policy_runs=o.max_policy_runs,
        latency_budget_s=o.latency_budget_s,
        funds=funds(relayer) if funds is not None else None,
        positions=positions,
    )
    return Execution(relayer, engine, events)

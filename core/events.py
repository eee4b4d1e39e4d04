"""A tiny in-process event bus: core publishes typed events, front ends subscribe.

Core never imports ``bot/``: alerts reach Telegram because ``bot/`` subscribes here. Handlers
may be plain functions (run inline, in publish order) or coroutine functions (scheduled as
tasks on the running loop; :meth:`EventBus.drain` waits for them). A failing handler is logged
and counted, never allowed to break the publisher: trading must not stop because a chat
message could not be rendered.
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

from core.types import Fill, OrderStatus

log = logging.getLogger(__name__)


class Severity(enum.StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class AlertKind(enum.StrEnum):
    """Bounded set of alert kinds (also a metrics label and the alerts table's ``kind``)."""

    ONE_LEGGED = "one_legged"
    DAILY_LOSS = "daily_loss"
    ERROR_RATE = "error_rate"
    RESET_ON_START = "reset_on_start"
    KILL_SWITCH = "kill_switch"
    UNKNOWN_OUTCOME = "unknown_outcome"
    RECONCILE = "reconcile"
    POLICY_FAILED = "policy_failed"
    MARKET_RESOLVED = "market_resolved"


@dataclass(frozen=True, slots=True)
class Alert:
    kind: str
    severity: Severity
    key: str  # what the alert is about (group id, "risk", a client order id): clears match on (kind, key)
    message: str
    ts: float = field(default_factory=time.time)


@dataclass(frozen=True, slots=True)
class AlertCleared:
    kind: str
    key: str
    message: str = ""
    ts: float = field(default_factory=time.time)
    duration_s: float | None = None
    """How long the condition lasted, from its first sign (a failure may come long before its alert);
    None: the front end measures from the alert."""


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """An order changed state (placed, refused, filled, canceled ...)."""

    client_order_id: str
    status: OrderStatus | str  # an OrderStatus, or "refused" when the risk gate said no
    market: str = ""
    token_id: str = ""
    side: str = ""
    price: Decimal | None = None
    size: Decimal | None = None
    filled: Decimal = Decimal(0)
    reason_code: str = ""
    detail: str = ""
    group_id: str | None = None


@dataclass(frozen=True, slots=True)
class FillEvent:
    fill: Fill
    position_shares: Decimal = Decimal(0)  # the token's position after this fill
    realised_pnl: Decimal = Decimal(0)  # realised PnL this fill produced


@dataclass(frozen=True, slots=True)
class StateChanged:
    armed: bool
    by: str
    reason: str = ""
    ts: float = field(default_factory=time.time)


Event = Alert | AlertCleared | OrderEvent | FillEvent | StateChanged
E = TypeVar("E")
Handler = Callable[[Any], object]  # handlers of every event type in one list: the argument type is erased


class EventBus:
    """Publish/subscribe by event type (``None`` subscribes to everything)."""

    def __init__(self) -> None:
        self._subs: list[tuple[type | None, Handler]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.handler_errors = 0
        self.published = 0

    def subscribe(self, event_type: type[E] | None, handler: Callable[[E], object]) -> Callable[[], None]:
        """Register ``handler`` for ``event_type``; returns a function that unsubscribes it. A
        handler that returns an awaitable (a coroutine function) is run as a task."""
        entry = (event_type, handler)
        self._subs.append(entry)

        def unsubscribe() -> None:
            if entry in self._subs:
                self._subs.remove(entry)

        return unsubscribe

    def publish(self, event: object) -> None:
        self.published += 1
        for event_type, handler in list(self._subs):
            if event_type is not None and not isinstance(event, event_type):
                continue
            try:
                result = handler(event)
            except Exception:
                self._handler_failed(handler, event)
                continue
            if inspect.isawaitable(result):
                self._schedule(handler, event, result)

    def _schedule(self, handler: Handler, event: object, awaitable: Awaitable[object]) -> None:
        async def run() -> None:
            try:
                await awaitable
            except Exception:
                self._handler_failed(handler, event)

        try:
            task = asyncio.get_running_loop().create_task(run())
        except RuntimeError:
            # No loop (a sync caller): run to completion here rather than drop the event.
            asyncio.run(run())
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _handler_failed(self, handler: Handler, event: object) -> None:
        self.handler_errors += 1
        name = getattr(handler, "__qualname__", repr(handler))
        log.exception("event handler %s failed on %s", name, type(event).__name__)

    async def drain(self) -> None:
        """Wait until every scheduled async handler has finished (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


class Recorder:
    """Collects published events (tests, the offline runner, post-mortems)."""

    def __init__(self, bus: EventBus, event_type: type[object] | None = None) -> None:
        self.events: list[object] = []
        self._unsubscribe = bus.subscribe(event_type, self.events.append)

    def of(self, event_type: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, event_type)]

    def close(self) -> None:
        self._unsubscribe()

"""The alerts table follows the bus: a row per Alert, resolved by its AlertCleared.

Each bus handler runs as its own task on its own connection: a clearing published while its alert's
insert still waits (SQLite's write lock, a slow commit) would update no row, and the insert landing
after it would leave the alert open for good, shown by every face that reads the table (status,
health, Telegram through another process) long after the condition ended. So the writes of one
(kind, key) run in the order they were published (:mod:`core.execution.ordered_writes`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from core.events import Alert, AlertCleared, EventBus
from core.execution.ordered_writes import OrderedWrites


class AlertStore(Protocol):
    async def add_alert(self, alert: Alert) -> None: ...

    async def resolve_alert(self, kind: str, key: str, ts: float | None = None) -> None: ...


def _row_key(kind: str, key: str) -> str:
    return f"{kind}\x00{key}"


def record_alerts(bus: EventBus, store: AlertStore, *, writes: OrderedWrites | None = None) -> list[Callable[[], None]]:
    """Persist every Alert / AlertCleared published on ``bus``, in publication order per (kind, key);
    returns the unsubscribe functions. ``writes``: the queue, for tests to look at."""
    ordered = writes if writes is not None else OrderedWrites()

    async def on_alert(alert: Alert) -> None:
        await ordered.run((_row_key(alert.kind, alert.key),), lambda: store.add_alert(alert))

    async def on_cleared(cleared: AlertCleared) -> None:
        key = _row_key(cleared.kind, cleared.key)
        await ordered.run((key,), lambda: store.resolve_alert(str(cleared.kind), cleared.key, cleared.ts))

    return [bus.subscribe(Alert, on_alert), bus.subscribe(AlertCleared, on_cleared)]

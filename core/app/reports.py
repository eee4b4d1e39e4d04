"""Reports the service makes on its own: the health ping to admins and the daily summary.

Both are built from the control facade's answers (what /health, /status and /pnl say), read
through the narrow contracts below so this layer does not depend on the facade above it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Protocol

from core.app.order_sinks import TradingCounters
from core.events import Alert, EventBus, Severity


class Health(Protocol):
    @property
    def ok(self) -> bool: ...

    @property
    def reasons(self) -> Sequence[str]: ...


class Status(Protocol):
    @property
    def mode(self) -> str: ...

    @property
    def armed(self) -> bool: ...

    @property
    def frames(self) -> int: ...

    @property
    def open_orders(self) -> int: ...

    @property
    def positions(self) -> int: ...


class Pnl(Protocol):
    @property
    def realised_today(self) -> Decimal: ...

    @property
    def unrealised(self) -> Decimal: ...

    @property
    def complete_sets(self) -> Decimal: ...

    @property
    def locked_edge(self) -> Decimal: ...


class Groups(Protocol):
    def line(self) -> str: ...


class ServiceReadings(Protocol):
    """The control facade's read side."""

    async def health(self) -> Health: ...

    async def status(self) -> Status: ...

    async def pnl(self) -> Pnl: ...

    async def groups(self) -> Groups: ...


class AdminNotice(Protocol):
    """The chat front end's direct line to admins."""

    async def notify_admins(self, text: str) -> None: ...


class Reports:
    def __init__(
        self,
        readings: ServiceReadings,
        counters: TradingCounters,
        bus: EventBus,
        admins: AdminNotice | None,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._readings = readings
        self._counters = counters
        self._bus = bus
        self._admins = admins
        self._now = now

    async def health_ping(self) -> None:
        """To admins only (no chat front end: nobody to ping)."""
        if self._admins is None:
            return
        report = await self._readings.health()
        status = await self._readings.status()
        verdict = "✅ healthy" if report.ok else "⚠️ unhealthy: " + "; ".join(list(report.reasons)[:5])
        state = "armed" if status.armed else "disarmed"
        await self._admins.notify_admins(f"{verdict} — {status.mode}, {state}, {status.frames} frames")

    async def daily_summary(self) -> None:
        """An info alert: every alert chat hears it, and the alerts table keeps it."""
        pnl = await self._readings.pnl()
        status = await self._readings.status()
        groups = await self._readings.groups()
        c = self._counters
        self._bus.publish(
            Alert(
                kind="daily_summary",
                severity=Severity.INFO,
                key=self._now().strftime("%Y-%m-%d"),
                message=(
                    f"daily summary: realised today {pnl.realised_today} pUSD, unrealised {pnl.unrealised} pUSD, "
                    f"complete sets {pnl.complete_sets}, locked edge {pnl.locked_edge} pUSD, "
                    f"{status.open_orders} open order(s), {status.positions} position(s), "
                    f"{c.opportunities} opportunities; Dutch {groups.line()}"
                ),
            )
        )

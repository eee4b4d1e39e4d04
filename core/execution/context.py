"""What every part of the engine shares: where records go, the clock, the mode, how to wait."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from core.events import EventBus
from core.execution.funds import FundsSource
from core.execution.records import AuditRecord
from core.execution.store import ExecutionStore

Sleep = Callable[[float], Awaitable[None]]


def ms_since(started: float) -> float:
    """Milliseconds since ``started`` (a ``time.perf_counter()`` reading)."""
    return round((time.perf_counter() - started) * 1000.0, 3)


@dataclass(frozen=True, slots=True)
class EngineContext:
    """One per engine, shared by all its parts."""

    store: ExecutionStore
    bus: EventBus
    clock: Callable[[], float]
    mode: str
    sleep: Sleep
    funds: FundsSource | None = None  # collateral and venue shares for the gate (None: shares only)

    def audit(
        self,
        action: str,
        outcome: str,
        *,
        client_order_id: str | None = None,
        attempt: int = 1,
        request: dict[str, object] | None = None,
        error_class: str | None = None,
        error: str | None = None,
        latency_ms: float | None = None,
    ) -> AuditRecord:
        """An exec_audit row stamped with this engine's mode and clock (not yet written)."""
        return AuditRecord(
            action=action,
            outcome=outcome,
            client_order_id=client_order_id,
            attempt=attempt,
            request=request,
            error_class=error_class,
            error=error,
            latency_ms=latency_ms,
            mode=self.mode,
            ts=self.clock(),
        )

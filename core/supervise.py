"""Run long-lived components as tasks that are logged, alerted and restarted with backoff when they fail.

A component that dies must never take the loop down silently: its exception is logged with a
traceback, an Alert is published, and it is restarted after an exponential backoff (capped).
When it has run long enough again, the alert clears.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from core.events import Alert, AlertCleared, EventBus, Severity

log = logging.getLogger(__name__)


@dataclass
class ComponentState:
    name: str
    restarts: int = 0
    last_error: str = ""
    running: bool = False
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class Supervisor:
    def __init__(
        self,
        bus: EventBus,
        *,
        initial_backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        healthy_after_s: float = 60.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.bus = bus
        self.initial_backoff_s = initial_backoff_s
        self.max_backoff_s = max_backoff_s
        self.healthy_after_s = healthy_after_s
        self._sleep = sleep
        self.components: dict[str, ComponentState] = {}
        self._stopping = False

    def start(self, name: str, factory: Callable[[], Awaitable[None]]) -> ComponentState:
        state = ComponentState(name)
        self.components[name] = state
        state.task = asyncio.get_running_loop().create_task(self._run(state, factory), name=f"component:{name}")
        return state

    async def _run(self, state: ComponentState, factory: Callable[[], Awaitable[None]]) -> None:
        backoff = self.initial_backoff_s
        loop = asyncio.get_running_loop()
        while not self._stopping:
            started = loop.time()
            state.running = True
            try:
                await factory()
                state.running = False
                if self._stopping:
                    return
                log.warning("component %s returned; restarting", state.name)
                state.last_error = "returned unexpectedly"
            except asyncio.CancelledError:
                state.running = False
                raise
            except Exception as exc:
                state.running = False
                state.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("component %s failed", state.name)
            if self._stopping:
                return
            if loop.time() - started >= self.healthy_after_s:
                backoff = self.initial_backoff_s
            state.restarts += 1
            self.bus.publish(
                Alert(
                    kind="component_failed",
                    severity=Severity.CRITICAL,
                    key=state.name,
                    message=f"{state.name} failed ({state.last_error}); restart #{state.restarts} in {backoff:.1f}s",
                )
            )
            await self._sleep(backoff * (1 + random.random() * 0.2))
            backoff = min(self.max_backoff_s, backoff * 2)
            loop.call_later(self.healthy_after_s, self._maybe_clear, state, state.restarts)

    def _maybe_clear(self, state: ComponentState, restarts_then: int) -> None:
        if state.running and state.restarts == restarts_then and not self._stopping:
            self.bus.publish(AlertCleared(kind="component_failed", key=state.name, message="running again"))

    def begin_stop(self) -> None:
        """From now on a component that returns is finishing, not failing."""
        self._stopping = True

    async def stop(self, timeout_s: float = 10.0) -> None:
        self._stopping = True
        tasks = [s.task for s in self.components.values() if s.task is not None and not s.task.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s)

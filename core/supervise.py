"""Run long-lived components as tasks that are logged, alerted and restarted with backoff when they fail.

A component that dies must never take the loop down silently: its exception is logged with a
traceback, an Alert is published, and it is restarted after an exponential backoff (capped, on
the shared retry helper :func:`core.retry.reconnect_forever`). A run that lasted
``healthy_after_s`` starts the backoff over; when a restarted component has run that long
again, the alert clears. A component that ends because the service is stopping is finishing,
not failing: no alert.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from core.events import Alert, AlertCleared, EventBus, Severity
from core.retry import Backoff, Retry, reconnect_forever, upward_jitter

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
        rng: random.Random | None = None,
    ) -> None:
        self.bus = bus
        # up to 20% longer than the doubling base, so components that failed together restart apart
        self.backoff = Backoff(initial_backoff_s, max_backoff_s, 2.0, upward_jitter(0.2))
        self.healthy_after_s = healthy_after_s
        self._sleep = sleep
        self._rng = rng
        self.components: dict[str, ComponentState] = {}
        self._stopping = False

    @property
    def stopping(self) -> bool:
        return self._stopping

    def start(self, name: str, factory: Callable[[], Awaitable[None]]) -> ComponentState:
        state = ComponentState(name)
        self.components[name] = state
        run = reconnect_forever(
            lambda: self._run_once(state, factory),
            backoff=self.backoff,
            stopped=lambda: self._stopping,
            on_retry=lambda retry: self._restarting(state, retry),
            rng=self._rng,
            sleep=self._sleep,
        )
        state.task = asyncio.get_running_loop().create_task(run, name=f"component:{name}")
        return state

    async def _run_once(self, state: ComponentState, factory: Callable[[], Awaitable[None]]) -> bool:
        """One run of the component; True when it ran long enough to count as healthy."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        state.running = True
        try:
            await factory()
            if not self.stopping:
                log.warning("component %s returned; restarting", state.name)
                state.last_error = "returned unexpectedly"
        except Exception as exc:
            state.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("component %s failed", state.name)
        finally:
            state.running = False
        return loop.time() - started >= self.healthy_after_s

    def _restarting(self, state: ComponentState, retry: Retry[bool]) -> None:
        state.restarts += 1
        self.bus.publish(
            Alert(
                kind="component_failed",
                severity=Severity.CRITICAL,
                key=state.name,
                message=f"{state.name} failed ({state.last_error}); restart #{state.restarts} in {retry.delay_s:.1f}s",
            )
        )
        loop = asyncio.get_running_loop()
        loop.call_later(retry.delay_s + self.healthy_after_s, self._maybe_clear, state, state.restarts)

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

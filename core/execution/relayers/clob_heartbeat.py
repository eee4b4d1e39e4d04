"""The venue heartbeat: once started, the venue cancels all our orders if it misses ~10 s of beats.

Beats are chained by id; a refused beat starts a fresh chain on the next one. A failed beat is
counted and logged and the loop goes on: the next beat a fixed interval later is the retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter

from core.execution.relayers.clob_http import ClobHttp, VenueError
from core.execution.types import Outcome

log = logging.getLogger(__name__)


class Heartbeat:
    def __init__(self, http: ClobHttp, stats: Counter[str], interval_s: float) -> None:
        self._http = http
        self._stats = stats
        self.interval_s = interval_s
        self._id = ""
        self._ok_at: float | None = None  # monotonic
        self._task: asyncio.Task[None] | None = None

    def age_s(self) -> float | None:
        """Seconds since the last beat the venue accepted (None: none yet)."""
        return None if self._ok_at is None else time.monotonic() - self._ok_at

    async def beat(self) -> str:
        try:
            resp = await self._http.request("POST", "/v1/heartbeats", body={"heartbeat_id": self._id}, auth="l2")
        except VenueError as err:
            if err.outcome is Outcome.REJECTED:
                self._id = ""  # start a fresh chain on the next beat
            raise
        if isinstance(resp, dict) and resp.get("heartbeat_id"):
            self._id = str(resp["heartbeat_id"])
        self._stats["heartbeats"] += 1
        self._ok_at = time.monotonic()
        return self._id

    def start(self) -> None:
        if self.interval_s > 0 and self._task is None:
            self._task = asyncio.create_task(self._loop(), name="clob-heartbeat")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                await self.beat()
            except VenueError as err:
                self._stats["heartbeat_errors"] += 1
                log.warning("venue heartbeat failed: %s", err)
            except Exception:
                self._stats["heartbeat_errors"] += 1
                log.exception("venue heartbeat crashed")
            await asyncio.sleep(self.interval_s)

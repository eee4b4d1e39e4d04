"""A close of an aiosqlite connection that always ends.

aiosqlite 0.22.1 (the newest release) runs each connection in a worker thread that stops at the
first stop request in its queue. ``Connection.close()`` queues the close, then, in a ``finally``,
queues a stop of its own and waits for the worker to answer it. SQLAlchemy's terminate (the pool
invalidating a connection whose task was cancelled mid-query) starts that graceful close in a
shielded task and, when cancelled again, force-closes with ``stop()``: the worker ends at the force
close's stop, the graceful close's own stop is never answered, and the task waits for ever. The
event loop's shutdown then waits on that task: a service that never exits, a test run that hangs
(seen in this suite, 2026-12-05; the same deadlock as omnilib/aiosqlite#369 and
wapiti-scanner/wapiti#802).

Here the close waits for the worker thread to end instead of for an answer: once a stop is queued
the worker ends at the first one it meets, whoever queued it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiosqlite


class ClosingConnection(aiosqlite.Connection):
    """aiosqlite's connection with a close that cannot wait on a worker that has gone."""

    async def close(self) -> None:
        if self._connection is None:
            return
        try:
            if self._running:  # a stop already queued (a force close): nothing more can run
                await self._execute(self._conn.close)  # type: ignore[no-untyped-call]  # aiosqlite leaves it untyped
        finally:
            self._connection = None
            self.stop()
            if self._thread.ident is not None:  # started: it ends at the first stop it reaches
                await asyncio.to_thread(self._thread.join)


def adopt(dbapi_connection: Any) -> None:
    """Give a SQLAlchemy aiosqlite adapter's driver connection the close above (the connect hook)."""
    driver = getattr(dbapi_connection, "_connection", None)
    if type(driver) is aiosqlite.Connection:
        driver.__class__ = ClosingConnection

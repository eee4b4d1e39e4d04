"""Control requests from the database: ``polybot disarm`` / ``polybot kill`` run from another
process write a request row; the running service claims and acts on it at its next staleness tick.

Claiming is atomic (a request runs once, in one service, never after it expired); that rule and
the actions live with the control facade — this is the service's side: poll, and never let a
database error stop the tick that polls.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class ControlRequests:
    def __init__(self, handle_pending: Callable[[], Awaitable[object]]) -> None:
        self._handle_pending = handle_pending

    async def poll(self) -> None:
        try:
            await self._handle_pending()
        except Exception:
            log.exception("could not handle a control request from the database")

"""Disarm / kill a running service from the CLI, through the database it writes to.

The CLI has no socket into the service; both share the database. ``polybot disarm`` / ``polybot kill``
store a request in the ``state`` table; the service polls it every few seconds (its staleness job),
acts through the same control facade the bot uses, and writes an acknowledgement the CLI waits for.
Only the safe direction exists here: arming needs an authorised operator in chat.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.store.repo import get_state, set_state

REQUEST_KEY = "control_request"
ACK_KEY = "control_ack"
ACTIONS = ("disarm", "kill")


async def post_request(sessions: async_sessionmaker[AsyncSession], action: str, by: str, reason: str) -> str:
    if action not in ACTIONS:
        raise ValueError(f"unknown control action {action!r}")
    request_id = uuid.uuid4().hex[:12]
    async with sessions() as s, s.begin():
        await set_state(
            s, REQUEST_KEY, {"id": request_id, "action": action, "by": by, "reason": reason, "ts": time.time()}
        )
    return request_id


async def read_ack(sessions: async_sessionmaker[AsyncSession], request_id: str) -> dict[str, Any] | None:
    async with sessions() as s:
        ack = await get_state(s, ACK_KEY)
    return ack if isinstance(ack, dict) and ack.get("id") == request_id else None


async def take_request(sessions: async_sessionmaker[AsyncSession], handled: set[str]) -> dict[str, Any] | None:
    """The pending request, if one exists that this service has not handled yet."""
    async with sessions() as s:
        req = await get_state(s, REQUEST_KEY)
    if not isinstance(req, dict) or req.get("action") not in ACTIONS or req.get("id") in handled:
        return None
    return req


async def acknowledge(sessions: async_sessionmaker[AsyncSession], request_id: str, ok: bool, message: str) -> None:
    async with sessions() as s, s.begin():
        await set_state(s, ACK_KEY, {"id": request_id, "ok": ok, "message": message, "ts": time.time()})

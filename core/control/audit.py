"""The one writer of ``command_audit`` rows, for every face (Telegram, the CLI).

Every command a person sends — authorised or not, run, refused or only requested — becomes one
row: who, which command, what they typed (secret shapes masked, the markets they named kept),
the result and a detail. The column limits are applied here, once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

log = logging.getLogger(__name__)

FRONT_END_CHARS = 16
USER_CHARS = 64
COMMAND_CHARS = 64
ARGUMENT_CHARS = 500
RESULT_CHARS = 16
DETAIL_CHARS = 2000


class AuditRows(Protocol):
    """A non-blocking row sink (``core.store.writer.BatchedWriter``): False when its queue is full."""

    def put(self, table: str, row: dict[str, object]) -> bool: ...


def audit_row(
    front_end: str,
    user_id: int | str | None,
    command: str,
    arguments: str,
    result: str,
    detail: str,
    *,
    mask: Callable[[str], str],
) -> dict[str, object]:
    """The row as stored: truncated to the columns, what a person typed masked by ``mask``."""
    return {
        "ts": datetime.now(UTC),
        "front_end": front_end[:FRONT_END_CHARS],
        "user_id": None if user_id is None else str(user_id)[:USER_CHARS],
        "command": command[:COMMAND_CHARS],
        "arguments": mask(arguments)[:ARGUMENT_CHARS],
        "result": result[:RESULT_CHARS],
        "detail": mask(str(detail))[:DETAIL_CHARS],
    }


class AuditWriter:
    """Writes audit rows through a batched sink when there is one, else in their own transaction.

    Never raises: an audit failure is logged and must not block the command it records.
    """

    def __init__(
        self,
        mask: Callable[[str], str],
        *,
        sessions: async_sessionmaker[AsyncSession] | None = None,
        sink: AuditRows | None = None,
        counted: bool = True,
    ) -> None:
        self.mask = mask
        self.sessions = sessions
        self.sink = sink
        # counted in this process's metrics; a CLI process, which nothing scrapes, passes False (and
        # so never loads prometheus_client): the service counts a request when it runs it
        self.counted = counted

    async def record(
        self, front_end: str, user_id: int | str | None, command: str, arguments: str, result: str, detail: str
    ) -> None:
        if self.counted:
            from core.metrics.collect import record_command

            record_command(front_end, command, result)
        row = audit_row(front_end, user_id, command, arguments, result, detail, mask=self.mask)
        if self.sink is not None:
            try:
                if self.sink.put("command_audit", row):
                    return
            except Exception as exc:  # a writer that is closing: fall back to a direct write
                log.debug("audit row not queued (%s); writing it directly", exc)
        if self.sessions is None:
            log.debug("no database in this process: audit row for %s %s not stored", front_end, command)
            return
        from core.store.models import CommandAudit

        try:
            async with self.sessions() as session, session.begin():
                session.add(CommandAudit(**row))
        except Exception:
            log.exception("could not write the command_audit row for %s %s", front_end, command)

"""The transaction journal (:class:`core.chain.journal.TxJournal`) in the ``chain_txs`` table.

A journal change and its exec_audit row are one database transaction, so the audit trail never
says a transaction was sent that the journal does not hold (or the other way round). SQLite and
PostgreSQL alike.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.chain.journal import OPEN_STATUSES, ChainAudit, JournalEntry, JournalStatus, ReceiptFields, TxJournal
from core.store import models as m
from core.store.columns import utcnow


def audit_row(rec: ChainAudit) -> m.ExecAudit:
    return m.ExecAudit(
        ts=utcnow(),
        client_order_id=rec.key,
        action=rec.action[:16],
        attempt=rec.attempt,
        request=rec.request,
        outcome=rec.outcome[:16],
        error_class=None if rec.error_class is None else rec.error_class[:32],
        error=rec.error,
        latency_ms=rec.latency_ms,
        mode=rec.mode[:8],
    )


def _entry(row: m.ChainTx) -> JournalEntry:
    return JournalEntry(
        tx_hash=row.tx_hash,
        nonce=row.nonce,
        sender=row.sender,
        chain_id=row.chain_id,
        raw_tx=bytes.fromhex(row.raw_tx.removeprefix("0x")),
        purpose=row.purpose,
        ref=row.ref,
        to_address=row.to_address,
        function=row.function,
        args=list(row.args or []),
        gas_limit=row.gas_limit,
        max_fee_per_gas=row.max_fee_per_gas,
        max_priority_fee_per_gas=row.max_priority_fee_per_gas,
        status=JournalStatus(row.status),
        replaces=row.replaces,
        error=row.error,
        gas_used=row.gas_used,
        block_number=row.block_number,
        created=row.created.timestamp(),
    )


class SqlTxJournal(TxJournal):
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def record_signed(self, entry: JournalEntry, audit: ChainAudit) -> None:
        row = m.ChainTx(
            created=datetime.fromtimestamp(entry.created, UTC),
            updated=utcnow(),
            purpose=entry.purpose[:32],
            ref=entry.ref[:100],
            sender=entry.sender,
            chain_id=entry.chain_id,
            nonce=entry.nonce,
            tx_hash=entry.tx_hash,
            raw_tx="0x" + entry.raw_tx.hex(),
            to_address=entry.to_address,
            function=entry.function[:200],
            args=entry.args,
            gas_limit=entry.gas_limit,
            max_fee_per_gas=entry.max_fee_per_gas,
            max_priority_fee_per_gas=entry.max_priority_fee_per_gas,
            status=entry.status.value,
            replaces=entry.replaces,
            error=entry.error,
        )
        async with self._sessions() as s, s.begin():
            s.add(row)
            s.add(audit_row(audit))

    async def _write_mark(
        self, tx_hash: str, status: JournalStatus, fields: ReceiptFields, audit: ChainAudit | None
    ) -> None:
        values: dict[str, object] = {"status": status.value, "updated": utcnow(), **fields}
        async with self._sessions() as s, s.begin():
            await s.execute(update(m.ChainTx).where(m.ChainTx.tx_hash == tx_hash).values(**values))
            if audit is not None:
                s.add(audit_row(audit))

    async def pending(self) -> list[JournalEntry]:
        stmt = select(m.ChainTx).where(m.ChainTx.status.in_([s.value for s in OPEN_STATUSES])).order_by(m.ChainTx.id)
        async with self._sessions() as s:
            return [_entry(r) for r in await s.scalars(stmt)]

    async def entries(self, purpose: str | None = None, ref: str | None = None) -> list[JournalEntry]:
        """Every journaled transaction (of one purpose / ref), oldest first: for reports and tests."""
        stmt = select(m.ChainTx).order_by(m.ChainTx.id)
        if purpose is not None:
            stmt = stmt.where(m.ChainTx.purpose == purpose)
        if ref is not None:
            stmt = stmt.where(m.ChainTx.ref == ref)
        async with self._sessions() as s:
            return [_entry(r) for r in await s.scalars(stmt)]

    async def audit(self, rec: ChainAudit) -> None:
        async with self._sessions() as s, s.begin():
            s.add(audit_row(rec))

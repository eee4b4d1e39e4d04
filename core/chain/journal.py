"""The transaction journal: every signed transaction is written down before it leaves.

A transaction is journaled (:meth:`TxJournal.record_signed`) with its hash, nonce, raw signed
bytes and the call it makes, *before* ``eth_sendRawTransaction``. Whatever happens next (a crash,
a lost answer, a restart), the journal says which transactions may be on their way and how to
recognise them on chain: by hash. Nothing is ever signed again for a journaled call without the
operator; :func:`core.chain.reconcile.reconcile` only looks transactions up and, at most,
broadcasts the very same signed bytes again.

Every attempt (sent, replaced, refused, settled, reconciled) is also an exec_audit row
(:class:`ChainAudit`); the store writes a journal change and its audit row in one transaction.

:class:`MemoryTxJournal` keeps it all in memory (unit tests, dry runs); the SQL journal is
:class:`core.store.chain_txs.SqlTxJournal` (table ``chain_txs``).
"""

from __future__ import annotations

import abc
import enum
import time
from dataclasses import dataclass, field, replace
from typing import Any, TypedDict

from core.chain.types import ChainCall


class JournalStatus(enum.StrEnum):
    SIGNED = "signed"  # journaled; its broadcast not (yet) known to have reached a node
    SENT = "sent"  # a node accepted it
    STUCK = "stuck"  # sent, not confirmed within the receipt timeout: reconciled later
    CONFIRMED = "confirmed"  # mined with status 1 and the confirmations on top
    REVERTED = "reverted"  # mined with status 0
    REPLACED = "replaced"  # another of our transactions with the same nonce was mined
    DROPPED = "dropped"  # unknown to the node, and its nonce was used by a transaction we did not journal
    FAILED = "failed"  # the node refused these bytes: they never left


OPEN_STATUSES: frozenset[JournalStatus] = frozenset({JournalStatus.SIGNED, JournalStatus.SENT, JournalStatus.STUCK})
JOURNAL_STATUSES: tuple[str, ...] = tuple(s.value for s in JournalStatus)


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One signed transaction (a replacement is an entry of its own, ``replaces`` the one before)."""

    tx_hash: str  # 0x-prefixed, lower case
    nonce: int
    sender: str  # checksummed address of the signing key
    chain_id: int
    raw_tx: bytes  # the signed bytes exactly as broadcast
    purpose: str  # merge | redeem | ...
    ref: str  # the market (condition id) or event it settles
    to_address: str
    function: str
    args: list[Any]  # [[name, value], ...], JSON-safe (see :func:`json_args`)
    gas_limit: int
    max_fee_per_gas: int
    max_priority_fee_per_gas: int
    status: JournalStatus = JournalStatus.SIGNED
    replaces: str | None = None
    error: str | None = None
    gas_used: int | None = None
    block_number: int | None = None
    created: float = field(default_factory=time.time)

    @property
    def open(self) -> bool:
        return self.status in OPEN_STATUSES


@dataclass(frozen=True, slots=True)
class ChainAudit:
    """One exec_audit row for an on-chain attempt (never a secret: no key, no RPC URL)."""

    action: str  # chain_send | chain_replace | chain_result | chain_refused | chain_dry_run | chain_reconcile
    outcome: str  # a TxStatus or JournalStatus value, or what reconcile did ("rebroadcast", "pending")
    purpose: str
    ref: str
    request: dict[str, Any] = field(default_factory=dict)
    attempt: int = 1
    error_class: str | None = None
    error: str | None = None
    latency_ms: float | None = None
    mode: str = "live"  # live | dry_run

    @property
    def key(self) -> str:
        """What exec_audit's ``client_order_id`` holds for a chain row: ``purpose:ref``."""
        return f"{self.purpose}:{self.ref}"[:100]


class ReceiptFields(TypedDict, total=False):
    """What a :meth:`TxJournal.mark` changes besides the status: only the fields it was given."""

    error: str
    gas_used: int
    block_number: int


class TxJournal(abc.ABC):
    """Where signed transactions are journaled: :class:`MemoryTxJournal`, or the SQL journal."""

    @abc.abstractmethod
    async def record_signed(self, entry: JournalEntry, audit: ChainAudit) -> None:
        """Persist a signed transaction (and its audit row) before it is broadcast; raise if not."""

    async def mark(
        self,
        tx_hash: str,
        status: JournalStatus,
        *,
        error: str | None = None,
        gas_used: int | None = None,
        block_number: int | None = None,
        audit: ChainAudit | None = None,
    ) -> None:
        """Move one transaction to ``status`` (with what the receipt said), and audit it.

        A field not given keeps what the journal holds: a later mark (say, reconcile's) must not
        erase the error or the receipt an earlier one wrote."""
        fields = ReceiptFields()
        if error is not None:
            fields["error"] = error
        if gas_used is not None:
            fields["gas_used"] = gas_used
        if block_number is not None:
            fields["block_number"] = block_number
        await self._write_mark(tx_hash, status, fields, audit)

    @abc.abstractmethod
    async def _write_mark(
        self, tx_hash: str, status: JournalStatus, fields: ReceiptFields, audit: ChainAudit | None
    ) -> None:
        """Store one :meth:`mark`: the status, the ``fields`` given, the audit row (if any) with it."""

    @abc.abstractmethod
    async def pending(self) -> list[JournalEntry]:
        """Every transaction not final (signed, sent, stuck), oldest first."""

    @abc.abstractmethod
    async def audit(self, rec: ChainAudit) -> None:
        """An attempt that journals no transaction (a refusal, a dry run, a reconcile note)."""


def json_value(value: object) -> object:
    """A decoded ABI value as JSON: bytes as 0x-hex, integers past 2**53 as decimal strings."""
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if abs(value) < 2**53 else str(value)
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    return str(value)


def json_args(call: ChainCall) -> list[Any]:
    return [[name, json_value(value)] for name, value in call.args]


@dataclass(slots=True)
class MemoryTxJournal(TxJournal):
    """The journal in memory: unit tests, and a dry run's audit trail."""

    entries: dict[str, JournalEntry] = field(default_factory=dict)
    audits: list[ChainAudit] = field(default_factory=list)
    fail_next_record: bool = False  # a test's "the database is down"

    async def record_signed(self, entry: JournalEntry, audit: ChainAudit) -> None:
        if self.fail_next_record:
            self.fail_next_record = False
            raise OSError("journal unavailable")
        if entry.tx_hash in self.entries:
            raise ValueError(f"transaction {entry.tx_hash} is already journaled")
        self.entries[entry.tx_hash] = entry
        self.audits.append(audit)

    async def _write_mark(
        self, tx_hash: str, status: JournalStatus, fields: ReceiptFields, audit: ChainAudit | None
    ) -> None:
        self.entries[tx_hash] = replace(self.entries[tx_hash], status=status, **fields)
        if audit is not None:
            self.audits.append(audit)

    async def pending(self) -> list[JournalEntry]:
        return [e for e in self.entries.values() if e.open]

    async def audit(self, rec: ChainAudit) -> None:
        self.audits.append(rec)

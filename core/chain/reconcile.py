"""At start: what became of every journaled transaction that was not final when we stopped.

Entries are grouped by (sender, nonce): the original and its replacements are one call, and at
most one of them can ever be mined. For each group:

- a receipt for any hash: status 0 -> reverted; status 1 with the confirmations on top ->
  confirmed (fewer: left open, looked at again next time); the group's other hashes -> replaced;
- no receipt, but the node still holds a hash (``eth_getTransactionByHash``): left open;
- unknown to the node, and the sender's mined nonce count is past this nonce: another
  transaction, one we did not journal, used the nonce -> dropped (final; the call was not made);
- unknown, nonce unused: the newest signed bytes of the group are broadcast again. Those are the
  very same transaction (same hash), so this cannot make the call twice, and leaving the nonce
  unused would make the next transaction take it and stall every later one. A fresh transaction
  for the call is never signed here: that is the operator's decision.

Every action is an exec_audit row (``chain_reconcile``).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from core.chain.journal import ChainAudit, JournalEntry, JournalStatus, TxJournal
from core.chain.rpc import JsonRpc, quantity
from core.chain.rpc_errors import AlreadyKnown, RpcError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Reconciled:
    tx_hash: str
    purpose: str
    ref: str
    nonce: int
    before: str
    after: str
    note: str = ""


@dataclass(slots=True)
class ReconcileReport:
    items: list[Reconciled] = field(default_factory=list)
    rebroadcast: list[str] = field(default_factory=list)  # hashes whose same signed bytes were sent again
    still_open: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [
            f"{i.purpose} {i.ref} nonce {i.nonce} {i.tx_hash}: {i.before} -> {i.after} {i.note}".rstrip()
            for i in self.items
        ]


def receipt_facts(receipt: dict[str, Any]) -> tuple[int, int, int]:
    """(status, block number, gas used) of a receipt."""
    return (
        quantity(receipt.get("status"), "receipt status"),
        quantity(receipt.get("blockNumber"), "receipt blockNumber"),
        quantity(receipt.get("gasUsed", "0x0"), "receipt gasUsed"),
    )


async def reconcile(rpc: JsonRpc, journal: TxJournal, *, chain_id: int, confirmations: int) -> ReconcileReport:
    report = ReconcileReport()
    groups: dict[tuple[str, int, int], list[JournalEntry]] = defaultdict(list)
    for entry in await journal.pending():
        groups[(entry.sender, entry.chain_id, entry.nonce)].append(entry)
    if not groups:
        return report
    node_chain = await rpc.chain_id()
    for (_sender, entry_chain, _nonce), entries in groups.items():
        if entry_chain != node_chain:
            report.still_open.extend(e.tx_hash for e in entries)
            log.warning("journal entries on chain %d left open: the RPC node is on chain %d", entry_chain, node_chain)
            continue
        try:
            await _group(rpc, journal, entries, confirmations, report)
        except RpcError as exc:  # one group's lookup failing must not hide the others
            log.warning("reconcile of nonce %d: %s", entries[0].nonce, exc)
            report.still_open.extend(e.tx_hash for e in entries)
    return report


async def _group(
    rpc: JsonRpc, journal: TxJournal, entries: list[JournalEntry], confirmations: int, report: ReconcileReport
) -> None:
    for entry in entries:
        receipt = await rpc.get_transaction_receipt(entry.tx_hash)
        if receipt is None:
            continue
        status, block, gas_used = receipt_facts(receipt)
        if status == 1 and await rpc.block_number() - block < confirmations:
            report.still_open.extend(e.tx_hash for e in entries)
            return
        final = JournalStatus.CONFIRMED if status == 1 else JournalStatus.REVERTED
        for other in entries:
            if other is not entry:
                await _set(journal, report, other, JournalStatus.REPLACED, f"{entry.tx_hash} was mined")
        await _set(journal, report, entry, final, f"block {block}", gas_used=gas_used, block_number=block)
        return
    for entry in entries:
        if await rpc.get_transaction_by_hash(entry.tx_hash) is not None:
            report.still_open.extend(e.tx_hash for e in entries)
            return
    first = entries[0]
    mined_count = await rpc.get_transaction_count(first.sender, "latest")
    if mined_count > first.nonce:
        note = f"dropped or replaced outside Polybot: nonce {first.nonce} was used by another transaction"
        for entry in entries:
            await _set(journal, report, entry, JournalStatus.DROPPED, note)
        return
    newest = entries[-1]
    try:
        await rpc.send_raw_transaction(newest.raw_tx)
    except AlreadyKnown:
        pass
    await _set(journal, report, newest, JournalStatus.SENT, "unknown to the node: the same signed bytes sent again")
    report.rebroadcast.append(newest.tx_hash)
    report.still_open.extend(e.tx_hash for e in entries)


async def _set(
    journal: TxJournal,
    report: ReconcileReport,
    entry: JournalEntry,
    status: JournalStatus,
    note: str,
    *,
    gas_used: int | None = None,
    block_number: int | None = None,
) -> None:
    outcome = "rebroadcast" if status is JournalStatus.SENT else status.value
    audit = ChainAudit(
        "chain_reconcile",
        outcome,
        entry.purpose,
        entry.ref,
        {"tx_hash": entry.tx_hash, "nonce": entry.nonce, "before": entry.status.value, "note": note},
    )
    error = note if status in (JournalStatus.DROPPED, JournalStatus.REPLACED, JournalStatus.REVERTED) else None
    await journal.mark(entry.tx_hash, status, error=error, gas_used=gas_used, block_number=block_number, audit=audit)
    report.items.append(
        Reconciled(entry.tx_hash, entry.purpose, entry.ref, entry.nonce, entry.status.value, outcome, note)
    )
    log.info(
        "reconcile %s %s %s: %s -> %s (%s)", entry.purpose, entry.ref, entry.tx_hash, entry.status.value, outcome, note
    )

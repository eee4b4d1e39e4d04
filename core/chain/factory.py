"""The one place that turns settings into a :class:`~core.chain.types.TxSender`.

- ``dry_run``: :class:`~core.chain.dry_run.DryRunTxSender` (estimates when ``chain.rpc_url`` and
  ``relayer.private_key`` are set; never sends);
- live, signature type 0, with an RPC URL and a key: :class:`~core.chain.tx.TxManager`;
- live otherwise: :class:`RefusingTxSender`, whose every send is REFUSED with the reason (no RPC,
  no key, a wallet type whose tokens an EOA transaction cannot move).

Call ``await sender.reconcile()`` once at start (before the first send) and ``await
sender.aclose()`` at the end.
"""

from __future__ import annotations

from typing import Protocol

import httpx

from core.chain.dry_run import DryRunTxSender
from core.chain.journal import ChainAudit, TxJournal
from core.chain.prepare import request_summary, wallet_refusal
from core.chain.reconcile import ReconcileReport
from core.chain.rpc import JsonRpc
from core.chain.tx import DEFAULT_POLL_S, TxManager
from core.chain.types import ChainCall, TxResult, TxSender, TxStatus
from core.settings import Settings


class ManagedTxSender(TxSender, Protocol):
    async def reconcile(self) -> ReconcileReport: ...

    async def aclose(self) -> None: ...


class RefusingTxSender:
    """Live sending is not possible with this configuration: every call is refused, with why."""

    def __init__(self, reason: str, journal: TxJournal | None = None) -> None:
        self.reason = reason
        self._journal = journal

    async def send(self, call: ChainCall, *, purpose: str, ref: str) -> TxResult:
        if self._journal is not None:
            audit = ChainAudit(
                "chain_refused", TxStatus.REFUSED.value, purpose, ref, request_summary(call), error=self.reason
            )
            await self._journal.audit(audit)
        return TxResult(call, TxStatus.REFUSED, error=self.reason)

    async def reconcile(self) -> ReconcileReport:
        return ReconcileReport()

    async def aclose(self) -> None:
        return None


def tx_sender_for(
    settings: Settings,
    journal: TxJournal | None,
    *,
    dry_run: bool,
    transport: httpx.AsyncBaseTransport | None = None,
    poll_s: float = DEFAULT_POLL_S,
) -> ManagedTxSender:
    chain, relayer = settings.chain, settings.relayer
    url = chain.rpc_url
    key = relayer.private_key.get_secret_value() if relayer.private_key is not None else None
    signer = None
    if key:
        from core.chain.signing import Signer  # eth_account: imported only when there is a key to sign with

        signer = Signer(key)

    def rpc() -> JsonRpc | None:
        return None if url is None else JsonRpc(url, timeout_s=chain.timeout_s, transport=transport)

    if dry_run:
        return DryRunTxSender(
            chain,
            chain_id=relayer.chain_id,
            rpc=rpc(),
            sender=None if signer is None else signer.address,
            signature_type=relayer.signature_type,
            journal=journal,
        )
    reason = wallet_refusal(relayer.signature_type)
    if reason is None and url is None:
        reason = "chain.rpc_url is not set: no transaction can be sent"
    if reason is None and signer is None:
        reason = "relayer.private_key is not set: no transaction can be signed"
    if reason is not None or journal is None:
        return RefusingTxSender(reason or "no transaction journal (database) to record transactions in", journal)
    live_rpc = rpc()
    assert live_rpc is not None and signer is not None
    return TxManager(live_rpc, journal, signer, chain_id=relayer.chain_id, chain=chain, poll_s=poll_s)

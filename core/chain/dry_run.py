"""A dry run: the transaction built exactly as a live send would build it, and nothing sent.

With an RPC URL and a key (for the sender's address) it runs the live send's preparation too:
chain id, gas estimate (a reverting call is refused, as live would), fees within the caps. It has
no signer at all, so it cannot call ``eth_sendRawTransaction``.
"""

from __future__ import annotations

import logging

from core.chain.fees import Caps
from core.chain.journal import ChainAudit, TxJournal
from core.chain.prepare import Refused, check_chain, prepare, request_summary, wallet_refusal
from core.chain.reconcile import ReconcileReport
from core.chain.rpc import JsonRpc
from core.chain.rpc_errors import RpcError
from core.chain.types import ChainCall, TxResult, TxStatus
from core.settings.sections import ChainSettings

log = logging.getLogger(__name__)


class DryRunTxSender:
    """:class:`~core.chain.types.TxSender` that describes and estimates, and never sends."""

    def __init__(
        self,
        chain: ChainSettings,
        *,
        chain_id: int,
        rpc: JsonRpc | None = None,
        sender: str | None = None,
        signature_type: int = 0,
        journal: TxJournal | None = None,
    ) -> None:
        self._caps = Caps.of(chain)
        self._chain_id = chain_id
        self._rpc = rpc
        self._sender = sender
        self._signature_type = signature_type
        self._journal = journal

    async def aclose(self) -> None:
        if self._rpc is not None:
            await self._rpc.aclose()

    async def reconcile(self) -> ReconcileReport:
        return ReconcileReport()  # a dry run journals nothing

    async def send(self, call: ChainCall, *, purpose: str, ref: str) -> TxResult:
        result = await self._build(call)
        log.info("dry run %s %s: %s -> %s%s", purpose, ref, call.describe(), result.status.value, _note(result))
        if self._journal is not None:
            request = request_summary(call, gas_limit=result.gas_limit, max_fee_per_gas=result.max_fee_per_gas)
            audit = ChainAudit(
                "chain_dry_run",
                result.status.value,
                purpose,
                ref,
                request,
                error_class=None if result.error is None else result.status.value,
                error=result.error,
                mode="dry_run",
            )
            await self._journal.audit(audit)
        return result

    async def _build(self, call: ChainCall) -> TxResult:
        reason = wallet_refusal(self._signature_type)
        if reason is not None:
            return TxResult(call, TxStatus.REFUSED, error=reason)
        if self._rpc is None or self._sender is None:
            why = "no chain.rpc_url" if self._rpc is None else "no relayer.private_key (no sender address)"
            return TxResult(call, TxStatus.DRY_RUN, error=f"not estimated: {why}")
        try:
            await check_chain(self._rpc, self._chain_id)
            prepared = await prepare(self._rpc, call, self._sender, self._caps)
        except Refused as exc:
            return TxResult(call, TxStatus.REFUSED, error=str(exc))
        except RpcError as exc:
            return TxResult(call, TxStatus.DRY_RUN, error=f"not estimated: {exc}")
        return TxResult(
            call,
            TxStatus.DRY_RUN,
            gas_limit=prepared.gas_limit,
            max_fee_per_gas=prepared.fees.max_fee_per_gas,
            max_priority_fee_per_gas=prepared.fees.max_priority_fee_per_gas,
        )


def _note(result: TxResult) -> str:
    if result.error:
        return f" ({result.error})"
    if result.gas_limit is not None:
        return f" (gas limit {result.gas_limit})"
    return ""

"""The transaction sender settlement uses: none in paper mode; in dry-run and live the one
:func:`core.chain.factory.tx_sender_for` builds (dry-run: describe and estimate, never send; live:
the TxManager for an EOA, else a sender that refuses with the reason), journaled in ``chain_txs``.

The journal is reconciled once, before the first transaction of this process (a transaction left
open by an earlier run is looked up by hash first, so its nonce is known before a new one is used).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.chain.factory import ManagedTxSender, tx_sender_for
from core.chain.types import ChainCall, TxResult
from core.settings import Settings
from core.store.chain_txs import SqlTxJournal
from core.types import Mode

log = logging.getLogger(__name__)


class ReconcileFirst:
    """A :class:`~core.chain.types.TxSender` that reconciles its journal before its first send."""

    def __init__(self, inner: ManagedTxSender) -> None:
        self.inner = inner
        self._lock = asyncio.Lock()
        self._reconciled = False

    async def send(self, call: ChainCall, *, purpose: str, ref: str) -> TxResult:
        async with self._lock:
            if not self._reconciled:
                try:
                    report = await self.inner.reconcile()
                    log.info("transaction journal reconciled before the first %s: %s", purpose, report)
                except Exception:  # the send itself still reads the node's nonce: not a reason to stop
                    log.exception("reconciling the transaction journal failed")
                self._reconciled = True
        return await self.inner.send(call, purpose=purpose, ref=ref)

    async def aclose(self) -> None:
        await self.inner.aclose()


def settlement_sender(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], resources: contextlib.AsyncExitStack
) -> ReconcileFirst | None:
    if settings.mode is Mode.PAPER:
        return None
    sender = ReconcileFirst(tx_sender_for(settings, SqlTxJournal(sessions), dry_run=settings.mode is Mode.DRY_RUN))
    resources.push_async_callback(sender.aclose)
    return sender

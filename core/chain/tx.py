"""Sending a call as one EIP-1559 transaction from an EOA and following it to a final answer.

The order of things, for every transaction:

1. refusals first (:mod:`core.chain.prepare`): wallet type, chain id, a reverting estimate, the
   gas and fee caps: nothing is signed;
2. under one lock (two sends never share a nonce): nonce = max(the node's pending count, the
   next after our own open journal entries), sign, **journal** (hash, nonce, raw bytes, call),
   then ``eth_sendRawTransaction``; a journal that cannot write stops the send;
3. wait: a receipt for any hash of that nonce settles it (status 1 and ``confirmations`` blocks
   on top: CONFIRMED; status 0: REVERTED); not mined after ``replace_after_s``: a replacement
   (same nonce, fees raised, within the caps, journaled first); not confirmed by
   ``receipt_timeout_s``: STUCK, left open in the journal for :meth:`TxManager.reconcile`.

A broadcast whose answer was lost (timeout, connection dropped) may have reached the node: the
entry stays ``signed`` and the wait looks for it by hash like any other.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.chain.fees import Caps, Fees, bumped_fees
from core.chain.journal import ChainAudit, JournalEntry, JournalStatus, TxJournal, json_args
from core.chain.prepare import Refused, check_chain, prepare, request_summary, wallet_refusal
from core.chain.reconcile import ReconcileReport, receipt_facts, reconcile
from core.chain.rpc import JsonRpc
from core.chain.rpc_errors import AlreadyKnown, NonceTooLow, RpcCallError, RpcError
from core.chain.types import ChainCall, TxResult, TxStatus
from core.retry import Sleep
from core.settings.sections import ChainSettings

if TYPE_CHECKING:  # eth_account (with py_ecc: ~0.4 s to import) loads only where a key signs
    from core.chain.signing import SignedTx, Signer

log = logging.getLogger(__name__)

DEFAULT_POLL_S = 2.0  # Polygon makes a block about every 2 s


@dataclass(slots=True)
class _Flight:
    """One call's transaction while it is followed: every hash signed for its nonce."""

    call: ChainCall
    purpose: str
    ref: str
    attempts: list[SignedTx]
    fee_floor: Fees  # the last fees signed (a refused replacement's too): the next bump starts there
    mined_note: str | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def nonce(self) -> int:
        return self.attempts[0].nonce


class TxManager:
    """:class:`~core.chain.types.TxSender` for an EOA key (signature type 0)."""

    def __init__(
        self,
        rpc: JsonRpc,
        journal: TxJournal,
        signer: Signer,
        *,
        chain_id: int,
        chain: ChainSettings,
        signature_type: int = 0,
        poll_s: float = DEFAULT_POLL_S,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rpc = rpc
        self._journal = journal
        self._signer = signer
        self._chain_id = chain_id
        self._settings = chain
        self._caps = Caps.of(chain)
        self._signature_type = signature_type
        self._poll_s = poll_s
        self._sleep = sleep
        self._clock = clock
        self._lock = asyncio.Lock()
        self._next_nonce: int | None = None
        self._chain_checked = False

    @property
    def address(self) -> str:
        return self._signer.address

    async def aclose(self) -> None:
        await self._rpc.aclose()

    # ------------------------------------------------------------------ send

    async def send(self, call: ChainCall, *, purpose: str, ref: str) -> TxResult:
        reason = wallet_refusal(self._signature_type)
        if reason is not None:
            return await self._not_sent(call, purpose, ref, TxStatus.REFUSED, reason)
        try:
            if not self._chain_checked:
                await check_chain(self._rpc, self._chain_id)
                self._chain_checked = True
            prepared = await prepare(self._rpc, call, self._signer.address, self._caps)
        except Refused as exc:
            return await self._not_sent(call, purpose, ref, TxStatus.REFUSED, str(exc))
        except RpcError as exc:
            return await self._not_sent(call, purpose, ref, TxStatus.FAILED, f"not sent: {exc}")
        async with self._lock:
            try:
                nonce = await self._nonce()
            except RpcError as exc:
                return await self._not_sent(call, purpose, ref, TxStatus.FAILED, f"not sent: {exc}")
            except Exception as exc:  # the journal could not be read: our open nonces are unknown
                reason = f"not sent: the transaction journal could not be read ({type(exc).__name__})"
                return await self._not_sent(call, purpose, ref, TxStatus.FAILED, reason)
            signed = self._signer.sign(
                call, chain_id=self._chain_id, nonce=nonce, gas_limit=prepared.gas_limit, fees=prepared.fees
            )
            if not await self._journal_signed(signed, call, purpose, ref, attempt=1, replaces=None):
                return await self._not_sent(
                    call, purpose, ref, TxStatus.FAILED, "not sent: the transaction journal could not record it"
                )
            sent = await self._broadcast(signed, call, purpose, ref, attempt=1)
            if sent is False:
                self._next_nonce = None  # read the node again: the nonce may be taken
                entry_error = f"the node refused the transaction {signed.tx_hash}"
                return self._result(call, TxStatus.FAILED, signed, error=entry_error, attempts=(signed.tx_hash,))
            self._next_nonce = nonce + 1
        flight = _Flight(call, purpose, ref, [signed], signed.fees)
        return await self._follow(flight)

    async def _nonce(self) -> int:
        pending = await self._rpc.get_transaction_count(self._signer.address, "pending")
        if self._next_nonce is None:
            ours = [
                e.nonce
                for e in await self._journal.pending()
                if e.sender == self._signer.address and e.chain_id == self._chain_id
            ]
            self._next_nonce = max(ours) + 1 if ours else 0
        return max(pending, self._next_nonce)

    async def _journal_signed(
        self, signed: SignedTx, call: ChainCall, purpose: str, ref: str, *, attempt: int, replaces: str | None
    ) -> bool:
        entry = JournalEntry(
            tx_hash=signed.tx_hash,
            nonce=signed.nonce,
            sender=self._signer.address,
            chain_id=self._chain_id,
            raw_tx=signed.raw,
            purpose=purpose,
            ref=ref,
            to_address=call.to,
            function=call.function,
            args=json_args(call),
            gas_limit=signed.gas_limit,
            max_fee_per_gas=signed.fees.max_fee_per_gas,
            max_priority_fee_per_gas=signed.fees.max_priority_fee_per_gas,
            replaces=replaces,
        )
        action = "chain_send" if replaces is None else "chain_replace"
        audit = self._audit(action, JournalStatus.SIGNED.value, call, purpose, ref, signed, attempt=attempt)
        try:
            await self._journal.record_signed(entry, audit)
        except Exception as exc:  # whatever the store raised: nothing journaled, so nothing may leave
            log.error("journal write failed for %s %s: %s", purpose, ref, type(exc).__name__)
            return False
        return True

    async def _broadcast(
        self, signed: SignedTx, call: ChainCall, purpose: str, ref: str, *, attempt: int
    ) -> bool | None:
        """True: a node has it; False: refused (never left, journaled failed); None: unknown."""
        action = "chain_send" if attempt == 1 else "chain_replace"
        try:
            await self._rpc.send_raw_transaction(signed.raw)
        except AlreadyKnown:
            pass
        except NonceTooLow as exc:
            if not await self._known(signed.tx_hash):  # an earlier broadcast of these bytes may be mined
                await self._mark_failed(signed, call, purpose, ref, attempt, action, exc)
                return False
        except RpcCallError as exc:
            await self._mark_failed(signed, call, purpose, ref, attempt, action, exc)
            return False
        except RpcError as exc:
            log.warning("broadcast of %s: answer lost (%s); looked up by hash from now on", signed.tx_hash, exc)
            audit = self._audit(action, "unknown", call, purpose, ref, signed, attempt=attempt, error=exc)
            await self._write_audit(audit)
            return None
        audit = self._audit(action, JournalStatus.SENT.value, call, purpose, ref, signed, attempt=attempt)
        await self._mark(signed.tx_hash, JournalStatus.SENT, audit=audit)
        return True

    async def _mark_failed(
        self, signed: SignedTx, call: ChainCall, purpose: str, ref: str, attempt: int, action: str, exc: RpcError
    ) -> None:
        audit = self._audit(action, JournalStatus.FAILED.value, call, purpose, ref, signed, attempt=attempt, error=exc)
        await self._mark(signed.tx_hash, JournalStatus.FAILED, error=str(exc), audit=audit)

    async def _known(self, tx_hash: str) -> bool:
        try:
            if await self._rpc.get_transaction_receipt(tx_hash) is not None:
                return True
            return await self._rpc.get_transaction_by_hash(tx_hash) is not None
        except RpcError:
            return False

    # ------------------------------------------------------------------ follow

    async def _follow(self, flight: _Flight) -> TxResult:
        start = self._clock()
        deadline = start + self._settings.receipt_timeout_s
        last_sent = start
        can_replace = True
        while True:
            try:
                settled = await self._settle(flight)
                if settled is not None:
                    return settled
                now = self._clock()
                due = now - last_sent >= self._settings.replace_after_s
                if can_replace and due and flight.mined_note is None and now < deadline:
                    can_replace = await self._replace(flight)
                    last_sent = self._clock()
            except RpcError as exc:  # the node is down for a while: keep polling until the deadline
                log.warning("following %s: %s", flight.attempts[-1].tx_hash, exc)
                flight.errors.append(str(exc))
            if self._clock() >= deadline:
                return await self._stuck(flight)
            await self._sleep(self._poll_s)

    async def _settle(self, flight: _Flight) -> TxResult | None:
        for signed in reversed(flight.attempts):
            receipt = await self._rpc.get_transaction_receipt(signed.tx_hash)
            if receipt is None:
                continue
            status, block, gas_used = receipt_facts(receipt)
            if status == 0:
                return await self._finish(flight, signed, TxStatus.REVERTED, block, gas_used)
            depth = await self._rpc.block_number() - block
            if depth >= self._settings.confirmations:
                return await self._finish(flight, signed, TxStatus.CONFIRMED, block, gas_used)
            flight.mined_note = f"mined in block {block}, {depth} of {self._settings.confirmations} confirmations"
            return None
        return None

    async def _finish(self, flight: _Flight, winner: SignedTx, status: TxStatus, block: int, gas_used: int) -> TxResult:
        error = "reverted on chain (receipt status 0)" if status is TxStatus.REVERTED else None
        journal_status = JournalStatus.CONFIRMED if status is TxStatus.CONFIRMED else JournalStatus.REVERTED
        for other in flight.attempts:
            if other is not winner:
                await self._mark(other.tx_hash, JournalStatus.REPLACED, error=f"{winner.tx_hash} was mined")
        audit = self._audit(
            "chain_result",
            status.value,
            flight.call,
            flight.purpose,
            flight.ref,
            winner,
            attempt=len(flight.attempts),
            extra={"block_number": block, "gas_used": gas_used},
            error_text=error,
        )
        await self._mark(
            winner.tx_hash, journal_status, error=error, gas_used=gas_used, block_number=block, audit=audit
        )
        return self._result(
            flight.call,
            status,
            winner,
            gas_used=gas_used,
            block_number=block,
            error=error,
            attempts=tuple(s.tx_hash for s in flight.attempts),
        )

    async def _replace(self, flight: _Flight) -> bool:
        """Sign and send a replacement; False when the caps leave no room for one (stop trying)."""
        base = await self._rpc.base_fee()
        tip = await self._rpc.max_priority_fee_per_gas()
        fees = bumped_fees(flight.fee_floor, base, tip, self._caps)
        prev = flight.attempts[-1]
        attempt = len(flight.attempts) + 1
        if fees is None:
            note = (
                f"no replacement for {prev.tx_hash}: the fee caps leave no room for a {self._caps.bump_percent} % bump"
            )
            log.warning("%s", note)
            audit = self._audit(
                "chain_replace", "capped", flight.call, flight.purpose, flight.ref, prev, error_text=note
            )
            await self._write_audit(audit)
            return False
        signed = self._signer.sign(
            flight.call, chain_id=self._chain_id, nonce=prev.nonce, gas_limit=prev.gas_limit, fees=fees
        )
        flight.fee_floor = fees
        if not await self._journal_signed(
            signed, flight.call, flight.purpose, flight.ref, attempt=attempt, replaces=prev.tx_hash
        ):
            return True  # not sent; the next interval tries again
        if await self._broadcast(signed, flight.call, flight.purpose, flight.ref, attempt=attempt) is not False:
            flight.attempts.append(signed)
        return True

    async def _stuck(self, flight: _Flight) -> TxResult:
        waited = self._settings.receipt_timeout_s
        error = f"not confirmed within {waited:g} s ({flight.mined_note or 'not mined'}); kept open in the journal"
        last = flight.attempts[-1]
        for signed in flight.attempts:
            audit = None
            if signed is last:
                audit = self._audit(
                    "chain_result",
                    TxStatus.STUCK.value,
                    flight.call,
                    flight.purpose,
                    flight.ref,
                    last,
                    attempt=len(flight.attempts),
                    error_text=error,
                )
            await self._mark(signed.tx_hash, JournalStatus.STUCK, audit=audit)
        return self._result(
            flight.call, TxStatus.STUCK, last, error=error, attempts=tuple(s.tx_hash for s in flight.attempts)
        )

    # ------------------------------------------------------------------ reconcile

    async def reconcile(self) -> ReconcileReport:
        """Look up every open journal entry by hash (see :mod:`core.chain.reconcile`)."""
        async with self._lock:
            self._next_nonce = None
            return await reconcile(
                self._rpc, self._journal, chain_id=self._chain_id, confirmations=self._settings.confirmations
            )

    # ------------------------------------------------------------------ records

    async def _mark(self, tx_hash: str, status: JournalStatus, **changes: Any) -> None:
        """A journal update after the broadcast: a database down now must not turn a transaction in
        flight into an exception its caller could take for "not sent" (the entry stays open, and
        reconcile settles it by hash)."""
        try:
            await self._journal.mark(tx_hash, status, **changes)
        except Exception as exc:  # whatever the store raised; logged, the chain is the truth
            log.error("journal: %s -> %s not written (%s)", tx_hash, status.value, type(exc).__name__)

    async def _write_audit(self, rec: ChainAudit) -> None:
        try:
            await self._journal.audit(rec)
        except Exception as exc:  # an audit row lost must not stop or misreport a send
            log.error("exec_audit %s %s not written (%s)", rec.action, rec.key, type(exc).__name__)

    async def _not_sent(self, call: ChainCall, purpose: str, ref: str, status: TxStatus, reason: str) -> TxResult:
        log.warning("%s %s not sent (%s): %s", purpose, ref, status.value, reason)
        action = "chain_refused" if status is TxStatus.REFUSED else "chain_send"
        audit = ChainAudit(
            action, status.value, purpose, ref, request_summary(call), error_class=status.value, error=reason
        )
        await self._write_audit(audit)
        return TxResult(call, status, error=reason)

    def _audit(
        self,
        action: str,
        outcome: str,
        call: ChainCall,
        purpose: str,
        ref: str,
        signed: SignedTx,
        *,
        attempt: int = 1,
        error: Exception | None = None,
        error_text: str | None = None,
        extra: dict[str, object] | None = None,
    ) -> ChainAudit:
        request = request_summary(
            call,
            tx_hash=signed.tx_hash,
            nonce=signed.nonce,
            gas_limit=signed.gas_limit,
            max_fee_per_gas=signed.fees.max_fee_per_gas,
            max_priority_fee_per_gas=signed.fees.max_priority_fee_per_gas,
            **(extra or {}),
        )
        return ChainAudit(
            action,
            outcome,
            purpose,
            ref,
            request,
            attempt=attempt,
            error_class=None if error is None else type(error).__name__,
            error=str(error) if error is not None else error_text,
        )

    def _result(
        self,
        call: ChainCall,
        status: TxStatus,
        signed: SignedTx,
        *,
        error: str | None = None,
        gas_used: int | None = None,
        block_number: int | None = None,
        attempts: tuple[str, ...] = (),
    ) -> TxResult:
        return TxResult(
            call,
            status,
            tx_hash=signed.tx_hash,
            nonce=signed.nonce,
            gas_limit=signed.gas_limit,
            max_fee_per_gas=signed.fees.max_fee_per_gas,
            max_priority_fee_per_gas=signed.fees.max_priority_fee_per_gas,
            gas_used=gas_used,
            block_number=block_number,
            error=error,
            attempts=attempts,
        )

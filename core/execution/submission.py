"""Order life-cycle up to the venue's answer: intent -> request -> risk gate -> posts -> status.

- Idempotency: the client order id is a hash of the intent (:mod:`core.execution.ids`). An id
  that is in flight, known in memory, or already a row in ``orders`` (unique key) is never placed
  again; the caller gets the existing order back marked ``duplicate``.
- Retries (on :func:`core.retry.retry_call`): only ``RETRYABLE`` outcomes (425, 429, 5xx, timeout
  before send), in two bounded loops: up to ``relayer_max_retries`` quick re-posts
  (``relayer_retry_sleep_s`` apart, or the venue's Retry-After), and when those are exhausted up
  to ``engine_max_retries`` more rounds (``engine_retry_sleep_s`` apart, at least the
  Retry-After) that re-check the risk gate first. So at most ``(engine_max_retries + 1) x
  (relayer_max_retries + 1)`` posts. A Retry-After beyond ``max_retry_after_s`` ends it at once.
- ``UNKNOWN`` outcomes (the request may have reached the venue) are never re-posted: the order
  becomes ``submitted_unknown`` and is reconciled before anything else is done with that id.
- Every post attempt and every refusal is one exec_audit row; the last attempt's row is written
  in one transaction with the status it caused.
- A group's legs (:meth:`Submitter.place_together`) pass the gate as a whole, then they are signed
  and their rows written in one transaction (the write-ahead, committed before any byte leaves), in
  one worker thread, then they go out as batch requests (:mod:`core.execution.batches`); each leg's answer is
  applied as an order's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal

from core.events import Alert, AlertKind, OrderEvent, Severity
from core.execution import gc_hold
from core.execution.batches import BatchPoster, Posting, attempt_audit, presign, split_batches
from core.execution.context import EngineContext
from core.execution.fill_ledger import FillLedger
from core.execution.holdings import ExposureTracker
from core.execution.ids import client_order_id, intent_seq
from core.execution.order_table import OrderTable, Tracked, derive_status, order_summary
from core.execution.reconciler import Reconciler
from core.execution.records import FINAL_STATUSES, AuditRecord, OrderFacts, OrderRecord
from core.execution.risk_gate import RiskGate
from core.execution.rules import ReasonCode, RiskDecision
from core.execution.types import ErrorClass, OrderRequest, OrderStatus, Outcome, PlaceResult, Relayer
from core.execution.types import order_request as order_request  # named from here by the engine's parts
from core.retry import Backoff, RetryAfter, retry_call
from core.retry import Outcome as Attempt
from core.types import BookStatus, BookView, Intent, MarketInfo, Side

log = logging.getLogger(__name__)

ZERO = Decimal(0)
REFUSED = "refused"

BookProvider = Callable[[str], BookView | None]


@dataclass(frozen=True, slots=True)
class SubmitResult:
    client_order_id: str
    ok: bool  # accepted now (live, filled, or built in dry-run)
    status: OrderStatus | None  # None when refused before an order row existed
    reason_code: ReasonCode | None = None  # set when the risk gate refused
    detail: str = ""
    duplicate: bool = False  # the id existed: nothing was placed
    venue_order_id: str | None = None
    filled: Decimal = ZERO
    attempts: int = 0
    outcome: Outcome | None = None
    error_class: ErrorClass = ErrorClass.NONE
    signed_order: dict[str, object] | None = None


@dataclass(frozen=True, slots=True)
class RetryBounds:
    relayer_max_retries: int = 2
    relayer_retry_sleep_s: float = 0.2
    engine_max_retries: int = 1
    engine_retry_sleep_s: float = 1.0
    max_retry_after_s: float = 30.0
    place_timeout_s: float | None = 30.0

    def __post_init__(self) -> None:
        knobs = (
            self.relayer_max_retries,
            self.engine_max_retries,
            self.relayer_retry_sleep_s,
            self.engine_retry_sleep_s,
        )
        if min(knobs) < 0:
            raise ValueError("retry knobs must be >= 0")


def _retry_after(attempt: Attempt[PlaceResult]) -> float | None:
    return attempt.result.retry_after_s if attempt.result is not None else None


# a quick re-post waits the venue's Retry-After instead of the pause; a new round waits at least it
_REPOST_WAIT = RetryAfter(_retry_after, replaces_backoff=True)
_ROUND_WAIT = RetryAfter(_retry_after, replaces_backoff=False)


class Submitter:
    def __init__(
        self,
        ctx: EngineContext,
        relayer: Relayer,
        risk: RiskGate,
        orders: OrderTable,
        exposure: ExposureTracker,
        ledger: FillLedger,
        reconciler: Reconciler,
        books: BookProvider | None,
        bounds: RetryBounds,
    ) -> None:
        self._ctx = ctx
        self._relayer = relayer
        self._risk = risk
        self._orders = orders
        self._exposure = exposure
        self._ledger = ledger
        self._reconciler = reconciler
        self._books = books
        self.bounds = bounds
        self._batches = BatchPoster(ctx, relayer, bounds, self._recheck)

    def book_now(self, token_id: str) -> BookView | BookStatus | None:
        """The book as the gate should see it: the view (status and top of book), or
        ``awaiting_snapshot`` when there is none yet; None when the engine has no books at all."""
        if self._books is None:
            return None
        book = self._books(token_id)
        return book if book is not None else BookStatus.AWAITING_SNAPSHOT

    async def ensure_funds(self, reqs: Sequence[OrderRequest]) -> None:
        """Read the venue shares of the tokens about to be sold, when not read recently."""
        sells = [r.token_id for r in reqs if r.side is Side.SELL]
        funds = self._ctx.funds
        if sells and funds is not None:
            await funds.ensure(sells)

    async def submit(self, intent: Intent, market: MarketInfo, *, seq: int | str | None = None) -> SubmitResult:
        """Place one intent (at most once: the same intent and seq is a duplicate, never a second order)."""
        if market.condition_id != intent.market:
            raise ValueError(f"intent is for market {intent.market}, market info is {market.condition_id}")
        coid = client_order_id(intent, intent_seq(intent, seq))
        known = await self.known(coid)
        if known is not None:
            return known
        self._exposure.register_market(market)
        req = order_request(intent, market, coid)
        await self.ensure_funds([req])
        decision = await self._risk.check(req, market, self._exposure.snapshot(), book=self.book_now(req.token_id))
        if not decision.ok:
            return await self.refuse(req, decision, intent.group_id)
        return await self.place_new(req, market, intent.group_id, intent.reason)

    async def place_together(
        self,
        reqs: Sequence[OrderRequest],
        markets: Mapping[str, MarketInfo],
        group_id: str,
        reasons: Sequence[str],
    ) -> tuple[RiskDecision, list[SubmitResult]]:
        """All or nothing through the gate (each leg against the exposure of the legs before it),
        then every leg placed at once, in batch requests."""
        await self.ensure_funds(reqs)
        legs = [(r, markets[r.market], self.book_now(r.token_id)) for r in reqs]
        decision = await self._risk.check_many(legs, self._exposure.snapshot())
        if not decision.ok:
            return decision, [await self.refuse(r, decision, group_id) for r in reqs]
        with gc_hold.HOLD:  # no collection paid on the way to the wire (core.execution.gc_hold)
            return decision, await self.place_many(reqs, markets, group_id, reasons)

    async def place_many(
        self,
        reqs: Sequence[OrderRequest],
        markets: Mapping[str, MarketInfo],
        group_id: str | None,
        reasons: Sequence[str],
    ) -> list[SubmitResult]:
        """Orders that passed the gate: one write-ahead transaction, then batch requests; a result per order."""
        out: dict[int, SubmitResult] = {}
        fresh: list[int] = []
        for i, req in enumerate(reqs):
            known = await self.known(req.client_order_id)
            if known is not None:
                out[i] = known
            else:
                self._orders.inflight.add(req.client_order_id)
                fresh.append(i)
        try:
            ctx = self._ctx
            now = ctx.clock()
            recs = [
                OrderRecord.from_request(reqs[i], mode=ctx.mode, group_id=group_id, reason=reasons[i], ts=now)
                for i in fresh
            ]
            signing = await presign(self._relayer, [reqs[i] for i in fresh], recs)
            try:  # the write-ahead and the batches made while the legs are signed
                saved_rows = await ctx.store.save_orders(recs, then=signing.run)
                postings: dict[int, Posting] = {}
                for i, rec, saved in zip(fresh, recs, saved_rows, strict=True):
                    market = markets[reqs[i].market]
                    if saved:
                        postings[i] = Posting(self._orders.track(rec, reqs[i], market), market)
                    else:
                        out[i] = await self._existing(reqs[i], market)
                where = {id(p): i for i, p in postings.items()}
                batches = split_batches(list(postings.values()), self._books)
            finally:
                await signing.wait()  # every leg signed (and kept) before anything is posted
            # one batch (up to 15 legs) is awaited here: a task for it would cost a loop turn before the send
            posted = [await self._post_batch(batches[0])] if len(batches) == 1 else None
            for batch in posted or await asyncio.gather(*(self._post_batch(b) for b in batches)):
                out.update((where[id(p)], res) for p, res in batch)
        finally:
            for i in fresh:
                self._orders.inflight.discard(reqs[i].client_order_id)
        return [out[i] for i in range(len(reqs))]

    async def _post_batch(self, legs: list[Posting]) -> list[tuple[Posting, SubmitResult]]:
        results = await self._batches.post(legs)
        return list(zip(legs, await self._apply_batch(legs, results), strict=True))

    async def known(self, coid: str) -> SubmitResult | None:
        """The existing order as a duplicate result (an unknown outcome is looked up first); None if new."""
        if coid in self._orders.inflight:
            return SubmitResult(coid, False, OrderStatus.NEW, detail="already being placed", duplicate=True)
        t = self._orders.get(coid)
        if t is None:
            return None
        if t.status is OrderStatus.SUBMITTED_UNKNOWN:
            await self._reconciler.resolve_unknown(t)
        return duplicate(t)

    async def refuse(
        self, req: OrderRequest, decision: RiskDecision, group_id: str | None, attempt: int = 1
    ) -> SubmitResult:
        code = decision.reason_code
        if code is None:
            raise ValueError("a refusal needs a reason code")
        ctx = self._ctx
        request = {**order_summary(req, group_id), "reason_code": str(code)}
        await ctx.store.add_audit(
            ctx.audit(
                "refused",
                REFUSED,
                client_order_id=req.client_order_id,
                attempt=attempt,
                request=request,
                error_class=str(code),
                error=decision.detail,
            )
        )
        ctx.bus.publish(
            OrderEvent(
                req.client_order_id,
                REFUSED,
                req.market,
                req.token_id,
                str(req.side),
                req.price,
                req.size,
                reason_code=str(code),
                detail=decision.detail,
                group_id=group_id,
            )
        )
        return SubmitResult(req.client_order_id, False, None, code, decision.detail)

    async def place_new(self, req: OrderRequest, market: MarketInfo, group_id: str | None, reason: str) -> SubmitResult:
        coid = req.client_order_id
        if coid in self._orders.inflight or coid in self._orders:
            known = await self.known(coid)
            if known is None:  # pragma: no cover - in flight or tracked: known by definition
                raise RuntimeError(f"order {coid} is neither in flight nor tracked")
            return known
        self._orders.inflight.add(coid)
        try:
            ctx = self._ctx
            rec = OrderRecord.from_request(req, mode=ctx.mode, group_id=group_id, reason=reason, ts=ctx.clock())
            if not await ctx.store.save_order(rec):
                return await self._existing(req, market)
            t = self._orders.track(rec, req, market)
            posting = Posting(t, market)
            result = await self._post_with_retries(posting)
            return await self._apply(t, result, posting)
        finally:
            self._orders.inflight.discard(coid)

    async def _existing(self, req: OrderRequest, market: MarketInfo) -> SubmitResult:
        """The store already holds this order (another process, an earlier run): a duplicate."""
        coid = req.client_order_id
        existing = await self._ctx.store.get_order(coid)
        if existing is None:  # pragma: no cover - the unique key said it exists
            raise RuntimeError(f"order {coid} reported as duplicate but not found")
        t = self._orders.track(existing, req, market)
        if t.status is OrderStatus.SUBMITTED_UNKNOWN:
            await self._reconciler.resolve_unknown(t)
        return duplicate(t)

    # -- posting -----------------------------------------------------------------------------

    async def _post_with_retries(self, p: Posting) -> PlaceResult:
        """Post until final or out of retries (see the module docstring for the two loops)."""
        b = self.bounds

        def again(result: PlaceResult) -> bool:
            return result.outcome is Outcome.RETRYABLE and not p.over

        async def post() -> PlaceResult:
            if p.first is not None:  # the loops start from the attempt already made
                made, p.first = p.first, None
                return made
            await self._write_unwritten(p)
            p.attempts += 1
            result, p.unwritten = await self._post_once(p.t, p.attempts)
            p.last_error = result.error_class
            if again(result) and result.retry_after_s is not None and result.retry_after_s > b.max_retry_after_s:
                p.over = True
                why = f"Retry-After {result.retry_after_s:g}s exceeds {b.max_retry_after_s:g}s: giving up"
                return replace(result, error=f"{result.error} ({why})")
            return result

        async def round_() -> PlaceResult:
            if p.rounds > 0:
                refused = await self._recheck(p)
                if refused is not None:
                    return refused
            p.rounds += 1
            return await retry_call(
                post,
                backoff=Backoff.fixed(b.relayer_retry_sleep_s),
                max_retries=b.relayer_max_retries,
                retry_result=again,
                retry_after=_REPOST_WAIT,
                sleep=self._ctx.sleep,
            )

        first = await post()
        if not again(first):
            return first  # the common case, final at once: no retry machinery on the hot path
        p.first = first
        return await retry_call(
            round_,
            backoff=Backoff.fixed(b.engine_retry_sleep_s),
            max_retries=b.engine_max_retries,
            retry_result=again,
            retry_after=_ROUND_WAIT,
            sleep=self._ctx.sleep,
        )

    async def _write_unwritten(self, p: Posting) -> None:
        """A retry follows: the previous attempt's row is written on its own."""
        if p.unwritten is not None:
            await self._ctx.store.add_audit(p.unwritten)
            p.unwritten = None

    async def _recheck(self, p: Posting) -> PlaceResult | None:
        """A new round of posts passes the risk gate again (it may have been disarmed meanwhile)."""
        await self._write_unwritten(p)
        t = p.t
        exposure = self._exposure.snapshot(exclude=t)
        decision = await self._risk.check(t.req, p.market, exposure, book=self.book_now(t.req.token_id))
        if decision.ok:
            return None
        p.over = True
        await self.refuse(t.req, decision, t.rec.group_id, attempt=p.attempts + 1)
        return PlaceResult(
            outcome=Outcome.RETRYABLE,
            error_class=p.last_error,
            error=f"retry refused by the risk gate: {decision.reason_code}: {decision.detail}",
        )

    async def _post_once(self, t: Tracked, attempt: int) -> tuple[PlaceResult, AuditRecord]:
        started = time.perf_counter()
        timeout = self.bounds.place_timeout_s
        try:
            result = await asyncio.wait_for(self._relayer.place(t.req), timeout)
        except TimeoutError:
            result = PlaceResult(
                outcome=Outcome.UNKNOWN,
                error_class=ErrorClass.TIMEOUT,
                error=f"relayer did not answer within {timeout:g}s",
            )
        except Exception as exc:  # a relayer bug: the request may have gone out, so the outcome is unknown
            log.exception("relayer.place raised for %s", t.coid)
            result = PlaceResult(
                outcome=Outcome.UNKNOWN, error_class=ErrorClass.UNKNOWN_OUTCOME, error=f"{type(exc).__name__}: {exc}"
            )
        return result, attempt_audit(self._ctx, t, result, attempt, started)

    async def _apply(self, t: Tracked, result: PlaceResult, p: Posting) -> SubmitResult:
        status, changes = self._decide(t, result)
        await self._orders.set_status(t, status, audit=p.unwritten, **changes)
        return await self._settle(t, result, p, unknown=status is OrderStatus.SUBMITTED_UNKNOWN)

    async def _apply_batch(self, legs: Sequence[Posting], results: Sequence[PlaceResult]) -> list[SubmitResult]:
        """A batch's answers: every leg's status with its last attempt's row in one transaction, then
        each leg's fills and unknown outcome, as :meth:`_apply` does for one order."""
        decided = [(p, r, *self._decide(p.t, r, count=False)) for p, r in zip(legs, results, strict=True)]
        await self._orders.set_statuses([(p.t, status, changes, p.unwritten) for p, _, status, changes in decided])
        # the error breaker counts failed requests, not legs (a refused batch of 10 would trip the
        # default breaker on its own); distinct refusals inside a batch count each
        failures = {(r.outcome, r.error_class, r.error) for r in results if _is_error(r)}
        for _ in failures:
            self._risk.record_order_error()
        unknown = OrderStatus.SUBMITTED_UNKNOWN
        return [await self._settle(p.t, r, p, unknown=status is unknown) for p, r, status, _ in decided]

    def _decide(self, t: Tracked, result: PlaceResult, *, count: bool = True) -> tuple[OrderStatus, OrderFacts]:
        """The status an answer gives the order, and what it adds to its row (``count``: an error
        counts towards the risk gate's error breaker)."""
        outcome = result.outcome
        known = t.status in FINAL_STATUSES
        changes = _changes_of(t, result, keep_error=known)
        if known:
            # the venue's word over the user channel (filled, canceled, its trade failed) came before
            # this answer (until then an order is only ever NEW), which it outdates: a late "live" or
            # "matched", or an answer lost on the way (unknown outcome), never reopens the order
            status = t.status
        elif outcome is Outcome.ACCEPTED:
            reported = result.status if result.status is not OrderStatus.NEW else OrderStatus.LIVE
            status = derive_status(t, reported)
        elif outcome is Outcome.REJECTED:
            rejected = (OrderStatus.REJECTED, OrderStatus.CANCELED)
            status = result.status if result.status in rejected else OrderStatus.REJECTED
        elif outcome is Outcome.RETRYABLE:
            status = OrderStatus.FAILED  # certainly not placed
        else:
            status = OrderStatus.SUBMITTED_UNKNOWN
        if count and _is_error(result):
            self._risk.record_order_error()
        return status, changes

    async def _settle(self, t: Tracked, result: PlaceResult, p: Posting, *, unknown: bool) -> SubmitResult:
        """After the status: the answer's fills, an ``unknown`` outcome (nothing known of the order
        but the answer) reconciled, the caller's result."""
        outcome = result.outcome
        for fill in result.fills:
            await self._ledger.on_fill(fill if fill.client_order_id else replace(fill, client_order_id=t.coid))
        if unknown:
            self._ctx.bus.publish(
                Alert(
                    AlertKind.UNKNOWN_OUTCOME,
                    Severity.WARNING,
                    t.coid,
                    f"order {t.coid} outcome unknown ({result.error_class}: {result.error}); reconciling",
                    ts=self._ctx.clock(),
                )
            )
            await self._reconciler.resolve_unknown(t)
        return SubmitResult(
            t.coid,
            outcome is Outcome.ACCEPTED,
            t.status,
            detail=result.error,
            venue_order_id=t.rec.venue_order_id,
            filled=t.rec.filled_size,
            attempts=p.attempts,
            outcome=outcome,
            error_class=result.error_class,
            signed_order=t.rec.signed_order,
        )


def _is_error(result: PlaceResult) -> bool:
    """An answer that counts as an order error (a FOK the book killed is an outcome, not an error)."""
    return result.outcome is not Outcome.ACCEPTED and result.error_class is not ErrorClass.NONE


def _changes_of(t: Tracked, result: PlaceResult, *, keep_error: bool = False) -> OrderFacts:
    """What the venue's answer adds to the order row (ids, the signed body, the reason it failed;
    ``keep_error``: not the reason, the order's outcome being known otherwise)."""
    changes: OrderFacts = {}
    if result.venue_order_id:
        t.rec.venue_order_id = result.venue_order_id
        changes["venue_order_id"] = result.venue_order_id
    if result.signed_order is not None:
        t.rec.signed_order = dict(result.signed_order)
        changes["signed_order"] = t.rec.signed_order
    if result.order_hash and result.order_hash != t.rec.order_hash:
        t.rec.order_hash = result.order_hash
        changes["order_hash"] = result.order_hash
    if result.outcome is not Outcome.ACCEPTED and not keep_error:
        t.rec.error = result.error
        changes["error"] = result.error
    return changes


def duplicate(t: Tracked) -> SubmitResult:
    return SubmitResult(
        t.coid,
        False,
        t.status,
        detail=f"duplicate: order {t.coid} already exists ({t.status}); nothing placed",
        duplicate=True,
        venue_order_id=t.rec.venue_order_id,
        filled=t.rec.filled_size,
    )

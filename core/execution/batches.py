"""A group's legs on the wire: split into batch requests, scarcest leg first, posted with bounded retries.

- Signed first: a relayer that signs (:class:`~core.execution.types.Presigner`) signs every leg
  before anything is posted, and each intent row carries its order hash; where the hashes come
  before the signatures (:class:`~core.execution.types.JobPresigner`) the legs are signed in the
  write-ahead's worker thread, just before their rows are written.
- Split: the fewest requests of at most :data:`~core.execution.types.MAX_BATCH_ORDERS` legs (20
  legs go out as 15 + 5), the legs ordered by the size the current book offers at or better than
  their limit, least first: the leg most likely to miss goes out first, in the first request.
- Retries follow the single-order rules of :mod:`core.execution.submission` (the same bounds, the
  same Retry-After handling), applied to a request: the legs of a batch whose result is
  ``RETRYABLE`` (the whole request refused before acceptance, or one leg) are posted again together;
  legs with a final or ``UNKNOWN`` result never are. Each engine round re-checks the risk gate leg
  by leg; a refused leg drops out.
- ``UNKNOWN`` (timeout after send, a relayer that raised, an answer of the wrong length): every leg
  concerned is unknown and goes to reconciliation; nothing is re-posted, so no order is ever doubled.
- Every attempt is one exec_audit row per leg; a leg's last row is written with the status it caused.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import TYPE_CHECKING, cast

from core.execution.context import EngineContext, ms_since
from core.execution.order_table import Tracked, order_summary
from core.execution.records import AuditRecord, OrderRecord
from core.execution.types import (
    MAX_BATCH_ORDERS,
    ErrorClass,
    JobPresigner,
    OrderRequest,
    Outcome,
    PlaceResult,
    Presigner,
    Relayer,
    SigningJob,
)
from core.types import BookStatus, BookView, MarketInfo, Side

if TYPE_CHECKING:
    from core.execution.submission import RetryBounds

log = logging.getLogger(__name__)

ZERO = Decimal(0)


@dataclass(slots=True)
class Posting:
    """One order on its way through the retry loops."""

    t: Tracked
    market: MarketInfo
    attempts: int = 0
    rounds: int = 0
    unwritten: AuditRecord | None = None  # the last attempt's row: written with the status it caused
    last_error: ErrorClass = ErrorClass.NONE
    first: PlaceResult | None = None  # the first attempt's result, made before the retry loops
    over: bool = False  # no more attempts whatever the outcome (gate refused a retry, Retry-After too long)


def attempt_audit(ctx: EngineContext, t: Tracked, result: PlaceResult, attempt: int, started: float) -> AuditRecord:
    """The exec_audit row of one post attempt of one order (not yet written)."""
    return ctx.audit(
        "place",
        str(result.outcome),
        client_order_id=t.coid,
        attempt=attempt,
        request=order_summary(t.req, t.rec.group_id),
        error_class=str(result.error_class),
        error=result.error or None,
        latency_ms=result.latency_ms or ms_since(started),
    )


def available_at_limit(req: OrderRequest, book: BookView | None) -> Decimal:
    """Size the book offers at or better than the order's limit (0 without a usable book)."""
    if book is None or book.status is not BookStatus.OK:
        return ZERO
    buy = req.side is Side.BUY
    total = ZERO
    for price, size in book.asks() if buy else book.bids():  # best first: stop at the first beyond the limit
        if (price > req.price) if buy else (price < req.price):
            break
        total += size
    return total


def split_batches(
    legs: Sequence[Posting], books: Callable[[str], BookView | None] | None, limit: int = MAX_BATCH_ORDERS
) -> list[list[Posting]]:
    """The fewest batches of at most ``limit`` legs, scarcest leg first (stable among equals)."""
    if limit < 1:
        raise ValueError("a batch holds at least one order")
    if books is None:
        ordered = list(legs)
    else:
        ordered = sorted(legs, key=lambda p: available_at_limit(p.t.req, books(p.t.req.token_id)))
    return [ordered[i : i + limit] for i in range(0, len(ordered), limit)]


async def sign_first(relayer: Relayer, reqs: Sequence[OrderRequest]) -> list[str | None]:
    """The orders' hashes, for their intent rows, from a relayer that signs before posting
    (:class:`~core.execution.types.Presigner`); None each otherwise, or when signing failed (the
    post then answers for the order)."""
    if not reqs or not _implements(relayer, Presigner):
        return [None] * len(reqs)
    try:
        hashes = await cast(Presigner, relayer).sign_orders(reqs)
    except Exception:
        log.exception("signing %d orders before their write-ahead failed", len(reqs))
        return [None] * len(reqs)
    return list(hashes) if len(hashes) == len(reqs) else [None] * len(reqs)


class Presigned:
    """A group's signing under way (:func:`presign`). :meth:`run` signs in the calling thread: the
    store calls it in its write-ahead's worker thread, beside the transaction when that commits on
    the loop, else just before it (:mod:`core.execution.sqlite_ahead`); :meth:`wait`
    before any post and whatever happens: it signs in a worker thread if no store did, and keeps
    the signed orders for ``place_batch``."""

    def __init__(self, job: SigningJob | None) -> None:
        self._job = job
        self._lock = threading.Lock()  # one run, whichever thread comes first

    def run(self) -> None:
        """Sign here; once, thread-safe; never raises. In a worker thread, or on the loop when a store
        that committed there finds its worker not yet started (a signing's time on the loop, as the
        commit itself: see :mod:`core.execution.sqlite_ahead`)."""
        job = self._job
        if job is not None:
            with self._lock:
                if job.pending:
                    job.run()

    async def wait(self) -> None:
        job = self._job
        if job is None:
            return
        try:
            if job.pending:  # no store signed it (one that ignores ``then``, or a write that failed first)
                await asyncio.shield(asyncio.get_running_loop().run_in_executor(None, self.run))
        finally:
            job.finish()  # on the loop: the signed orders kept for place_batch


async def presign(relayer: Relayer, reqs: Sequence[OrderRequest], recs: Sequence[OrderRecord]) -> Presigned:
    """Each row of ``recs`` (one per request) given its order hash when the relayer signs first, and
    the signing ready to run. A relayer whose orders' hashes come before their signatures
    (:class:`~core.execution.types.JobPresigner`) signs in the write-ahead's worker thread (see
    :class:`Presigned`) while the loop tracks the legs and prepares the post. Other presigners sign here."""
    if not reqs or not _implements(relayer, JobPresigner):
        for rec, order_hash in zip(recs, await sign_first(relayer, reqs), strict=True):
            rec.order_hash = order_hash
        return Presigned(None)
    job = cast(JobPresigner, relayer).signing_job(reqs)
    for rec, order_hash in zip(recs, job.hashes, strict=True):
        rec.order_hash = order_hash
    return Presigned(job)


_IMPLEMENTS: dict[tuple[type, type], bool] = {}


def _implements(relayer: Relayer, protocol: type) -> bool:
    """``isinstance(relayer, protocol)`` for a runtime protocol, known per class (a check costs ~5 us)."""
    key = (type(relayer), protocol)
    known = _IMPLEMENTS.get(key)
    if known is None:
        known = _IMPLEMENTS[key] = isinstance(relayer, protocol)
    return known


Recheck = Callable[[Posting], Awaitable[PlaceResult | None]]


class BatchPoster:
    """Posts one batch of legs until each is final, unknown, or out of retries."""

    def __init__(self, ctx: EngineContext, relayer: Relayer, bounds: RetryBounds, recheck: Recheck) -> None:
        self._ctx = ctx
        self._relayer = relayer
        self._bounds = bounds
        self._recheck = recheck

    async def post(self, legs: Sequence[Posting]) -> list[PlaceResult]:
        """Each leg's last result, in the order of ``legs`` (see the module docstring for the loops)."""
        b = self._bounds
        last: dict[int, PlaceResult] = {}  # leg index -> its latest result
        waiting = list(range(len(legs)))
        for round_ in range(b.engine_max_retries + 1):
            if not waiting:
                break
            if round_:
                await self._ctx.sleep(_wait(b.engine_retry_sleep_s, [last[i] for i in waiting], replaces=False))
                for i in waiting:
                    legs[i].rounds += 1
                    refused = await self._recheck(legs[i])  # writes the leg's unwritten row first
                    if refused is not None:
                        last[i] = refused
                waiting = [i for i in waiting if _again(legs[i], last[i])]
            for quick in range(b.relayer_max_retries + 1):
                if not waiting:
                    break
                if quick:
                    await self._ctx.sleep(_wait(b.relayer_retry_sleep_s, [last[i] for i in waiting], replaces=True))
                    await self._write_unwritten([legs[i] for i in waiting])
                results = await self._post_once([legs[i] for i in waiting])
                last.update(zip(waiting, results, strict=True))
                waiting = [i for i in waiting if _again(legs[i], last[i])]
        return [last[i] for i in range(len(legs))]

    async def _write_unwritten(self, legs: Sequence[Posting]) -> None:
        """A retry follows: the previous attempt's rows are written on their own."""
        for p in legs:
            if p.unwritten is not None:
                await self._ctx.store.add_audit(p.unwritten)
                p.unwritten = None

    async def _post_once(self, legs: Sequence[Posting]) -> list[PlaceResult]:
        """One request; every leg's result, its attempt counted and its audit row kept for the status write."""
        started = time.perf_counter()
        results = await self._request([p.t.req for p in legs])
        cap = self._bounds.max_retry_after_s
        for n, (p, result) in enumerate(zip(legs, results, strict=True)):
            p.attempts += 1
            p.unwritten = attempt_audit(self._ctx, p.t, result, p.attempts, started)
            p.last_error = result.error_class
            hint = result.retry_after_s
            if result.outcome is Outcome.RETRYABLE and hint is not None and hint > cap:
                p.over = True
                why = f"Retry-After {hint:g}s exceeds {cap:g}s: giving up"
                results[n] = replace(result, error=f"{result.error} ({why})")
        return results

    async def _request(self, reqs: list[OrderRequest]) -> list[PlaceResult]:
        timeout = self._bounds.place_timeout_s
        try:
            # a timeout scope, not wait_for: no task of its own, so no event-loop turn before the send
            async with asyncio.timeout(timeout):
                results = await self._relayer.place_batch(reqs)
        except TimeoutError:
            return _unknown(len(reqs), ErrorClass.TIMEOUT, f"relayer did not answer within {timeout:g}s")
        except Exception as exc:  # a relayer bug: the request may have gone out, so the outcome is unknown
            log.exception("relayer.place_batch raised for %s", ", ".join(r.client_order_id for r in reqs))
            return _unknown(len(reqs), ErrorClass.UNKNOWN_OUTCOME, f"{type(exc).__name__}: {exc}")
        if len(results) != len(reqs):  # a relayer bug after the request went out: unknown too
            why = f"relayer answered {len(results)} results for a batch of {len(reqs)} orders"
            log.error(why)
            return _unknown(len(reqs), ErrorClass.UNKNOWN_OUTCOME, why)
        return list(results)


def _again(p: Posting, result: PlaceResult) -> bool:
    return result.outcome is Outcome.RETRYABLE and not p.over


def _unknown(n: int, error_class: ErrorClass, error: str) -> list[PlaceResult]:
    return [PlaceResult(outcome=Outcome.UNKNOWN, error_class=error_class, error=error)] * n


def _wait(pause_s: float, results: Sequence[PlaceResult], *, replaces: bool) -> float:
    """The pause before the next post: the venue's Retry-After (the longest the legs were given)
    replaces a quick re-post's pause, and is a floor under a new round's."""
    hints = [h for r in results if (h := r.retry_after_s) is not None and math.isfinite(h)]
    if not hints:
        return pause_s
    hint = max(0.0, max(hints))
    return hint if replaces else max(pause_s, hint)

"""Posting signed orders to the CLOB: one (``POST /order``) or a batch (``POST /orders``), each
answer mapped onto its order through the same rules (:mod:`.clob_post`).

A batch is the JSON array of the single-order bodies (at most :data:`MAX_BATCH_ORDERS`); the venue
answers an array of per-order responses in the same order. Per leg:

===========================================================  =================================
per-order answer                                             the leg
===========================================================  =================================
``success`` with an ``orderID``                              as ``POST /order``'s 2xx answer
``success`` false, or ``success`` with an empty ``orderID``  REJECTED with the venue's reason,
and an ``errorMsg``                                          as a 400 to ``POST /order``
no entry (short or malformed array), an entry naming         UNKNOWN (reconciled by its order
neither an order nor a reason                                hash, never assumed either way)
===========================================================  =================================

A batch that gets no 2xx answer maps, for every leg, exactly as ``POST /order`` maps that error
(400 rejected, 425/429/503 retryable with Retry-After, other 5xx and a timeout or dropped
connection after sending UNKNOWN). "Duplicated" (the venue already holds this very order) is
resolved the same way for one order and for a leg: the order is looked up by its hash.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence

from core.execution.relayers import clob_post
from core.execution.relayers.clob_http import ClobHttp, VenueError
from core.execution.relayers.clob_reads import ClobReader
from core.execution.relayers.clob_signing import (
    MarketParams,
    OrderInvalid,
    PreparedOrder,
    SignedClobOrder,
    serialize_orders,
    signing_key,
)
from core.execution.relayers.clob_user_translate import UserStreamTranslator
from core.execution.types import MAX_BATCH_ORDERS, ErrorClass, OrderRequest, OrderStatus, Outcome, PlaceResult

log = logging.getLogger(__name__)

Leg = tuple[OrderRequest, SignedClobOrder]


def check_batch_size(orders: Sequence[object]) -> None:
    if len(orders) > MAX_BATCH_ORDERS:
        raise ValueError(f"a batch holds at most {MAX_BATCH_ORDERS} orders, not {len(orders)}")


def batch_body(signed: Sequence[SignedClobOrder]) -> str:
    """The ``POST /orders`` body: the single-order bodies as one compact JSON array (as the
    official client serialises it)."""
    return serialize_orders([s.body for s in signed])


def leg_error(entry: object) -> VenueError | None:
    """What a per-order entry of a batch answer says when it does not accept the order: a
    refusal (REJECTED, as a 400 would be) or no usable answer (UNKNOWN); None when the entry is
    an answer ``POST /order`` could have given (mapped by :func:`clob_post.answered`)."""
    if not isinstance(entry, dict):
        return VenueError(
            Outcome.UNKNOWN,
            ErrorClass.UNKNOWN_OUTCOME,
            f"no answer for this order in the POST /orders response: {str(entry)[:200]}",
        )
    reason = str(entry.get("errorMsg") or entry.get("error") or "")
    if not entry.get("success"):
        return VenueError(Outcome.REJECTED, ErrorClass.BAD_REQUEST, reason or "order not accepted")
    if entry.get("orderID"):
        return None
    if reason:  # the venue's way of refusing one order inside an accepted batch
        return VenueError(Outcome.REJECTED, ErrorClass.BAD_REQUEST, reason)
    return VenueError(
        Outcome.UNKNOWN, ErrorClass.UNKNOWN_OUTCOME, "the POST /orders answer names neither an order id nor a reason"
    )


def batch_entries(resp: object, count: int) -> list[object]:
    """The per-order entries of a batch answer, one per leg (None where the answer has none)."""
    entries: list[object] = list(resp) if isinstance(resp, list) else []
    return [entries[i] if i < len(entries) else None for i in range(count)]


class OrderPoster:
    """Sends signed orders and maps the answers (the live half of the relayer's ``place``)."""

    def __init__(
        self, http: ClobHttp, reads: ClobReader, translator: UserStreamTranslator, stats: Counter[str]
    ) -> None:
        self._http = http
        self._reads = reads
        self._translator = translator
        self.stats = stats

    async def post_one(self, order: OrderRequest, signed: SignedClobOrder, started: float) -> PlaceResult:
        try:
            resp = await self._http.request("POST", "/order", serialized=signed.serialized, auth="l2")
        except VenueError as err:
            return await self.on_error(err, order, signed, started)
        return self.on_answer(resp, order, signed, started)

    async def post_batch(self, legs: Sequence[Leg], started: float) -> list[PlaceResult]:
        """One ``POST /orders`` for ``legs`` (at most 15); one result per leg, in order."""
        check_batch_size(legs)
        if not legs:
            return []
        self.stats["batch_posted"] += 1
        self.stats["batch_orders"] += len(legs)
        try:
            resp = await self._http.request("POST", "/orders", serialized=batch_body([s for _, s in legs]), auth="l2")
        except VenueError as err:  # no answer for the batch: every leg as POST /order maps the error
            return list(await asyncio.gather(*(self.on_error(err, o, s, started) for o, s in legs)))
        if not isinstance(resp, list) or len(resp) != len(legs):
            self.stats["batch_answer_malformed"] += 1
        entries = batch_entries(resp, len(legs))
        return list(
            await asyncio.gather(*(self.on_entry(e, o, s, started) for e, (o, s) in zip(entries, legs, strict=True)))
        )

    async def on_entry(
        self, entry: object, order: OrderRequest, signed: SignedClobOrder, started: float
    ) -> PlaceResult:
        err = leg_error(entry)
        if err is not None:
            return await self.on_error(err, order, signed, started)
        return self.on_answer(entry, order, signed, started)

    async def on_error(
        self, err: VenueError, order: OrderRequest, signed: SignedClobOrder, started: float
    ) -> PlaceResult:
        if clob_post.is_duplicate(err):
            existing = await self._reads.by_hash(signed.order_hash, order.client_order_id)
            if existing is not None:
                return clob_post.already_placed(existing, signed, ms_since(started), self.stats)
        return clob_post.failed(err, signed, ms_since(started), self.stats)

    def on_answer(self, resp: object, order: OrderRequest, signed: SignedClobOrder, started: float) -> PlaceResult:
        result = clob_post.answered(resp, order, signed, ms_since(started), self.stats)
        venue_id = result.venue_order_id
        if venue_id is not None and venue_id.lower() != signed.order_hash.lower():
            self.stats["venue_id_differs_from_hash"] += 1
            self._translator.register_order(venue_id, order.client_order_id, order.side, order.token_id)
        return result


class SignedOrders:
    """The orders signed so far, by client order id (the newest ``size``): placing the same client
    id again with the same content re-sends the *same* signed order. Keeping one also tells the
    reader (lookup by hash) and the user-channel translator about its order hash."""

    def __init__(self, size: int, reads: ClobReader, translator: UserStreamTranslator, stats: Counter[str]) -> None:
        # client order id -> (the request signed, what it was signed from, the signed order)
        self._orders: OrderedDict[str, tuple[OrderRequest, tuple[object, ...], SignedClobOrder]] = OrderedDict()
        self._size = size
        self._reads = reads
        self._translator = translator
        self.stats = stats

    def last(self, client_order_id: str) -> SignedClobOrder | None:
        """The signed order last built for ``client_order_id``."""
        cached = self._orders.get(client_order_id)
        return cached[2] if cached else None

    def cached(self, order: OrderRequest) -> SignedClobOrder | None:
        """The signed order for exactly this ``order``, if it was signed before (the very request
        object the engine passes again, or one with the same content)."""
        cached = self._orders.get(order.client_order_id)
        if cached is not None and (cached[0] is order or cached[1] == signing_key(order)):
            return cached[2]
        if cached is not None:
            self.stats["client_id_reused_with_other_content"] += 1
            log.warning("client order id %s re-used with different content: signing anew", order.client_order_id)
        return None

    def keep(self, order: OrderRequest, signed: SignedClobOrder) -> SignedClobOrder:
        self._orders[order.client_order_id] = (order, signing_key(order), signed)
        while len(self._orders) > self._size:
            self._orders.popitem(last=False)
        self._reads.remember(order.client_order_id, signed.order_hash)
        self._translator.register_order(signed.order_hash, order.client_order_id, order.side, order.token_id)
        return signed


class ClobSigningJob:
    """A group's legs signed at once (:class:`~core.execution.types.SigningJob`). Made on the loop:
    the cache looked up and the new legs prepared (fields and order hash, two keccaks a leg:
    :meth:`OrderSigner.prepare_batch`), so :attr:`hashes` are known at once; :meth:`run` in a worker
    thread (the signatures, libsecp256k1, in one :meth:`OrderSigner.complete_batch` call; nothing
    shared is touched there); :meth:`finish` back on the loop (the signed orders kept, as
    :meth:`SignedOrders.keep` does for any signed order)."""

    def __init__(
        self,
        orders: Sequence[OrderRequest],
        kept: SignedOrders,
        prepare: Callable[[list[tuple[OrderRequest, MarketParams | None]]], list[PreparedOrder | OrderInvalid]],
        complete: Callable[[list[PreparedOrder]], list[SignedClobOrder | OrderInvalid]],
        params: Callable[[OrderRequest], MarketParams | None],
    ) -> None:
        self._orders = list(orders)
        self._kept = kept
        self._complete = complete
        self._out: list[SignedClobOrder | OrderInvalid | None] = [kept.cached(o) for o in self._orders]
        self._hashes = [s.order_hash if isinstance(s, SignedClobOrder) else None for s in self._out]
        self._ready: list[tuple[int, PreparedOrder]] = []  # prepared, to be signed by run()
        self._signed: list[SignedClobOrder | OrderInvalid] | None = None
        self._error: Exception | None = None
        todo = [i for i, s in enumerate(self._out) if s is None]
        if not todo:
            return
        try:
            prepared = prepare([(self._orders[i], params(self._orders[i])) for i in todo])
        except Exception as exc:  # a signer bug: no hash, nothing signed; the post says why, leg by leg
            log.exception("preparing %d orders for signing failed", len(todo))
            self._error = exc
            return
        for i, p in zip(todo, prepared, strict=True):
            if isinstance(p, PreparedOrder):
                self._ready.append((i, p))
                self._hashes[i] = p.order_hash
            else:
                self._out[i] = p

    @property
    def pending(self) -> bool:
        return bool(self._ready) and self._signed is None

    @property
    def hashes(self) -> list[str | None]:
        """Each order's hash (known before it is signed), None where it cannot be signed."""
        return list(self._hashes)

    def run(self) -> list[str | None]:
        """The signatures (in any one thread); each order's hash, as :attr:`hashes`. Never raises: a
        leg whose signing failed is refused by :meth:`OrderSigner.complete_batch`, never posted."""
        if self.pending:
            self._signed = self._complete([p for _, p in self._ready])
        return self.hashes

    def finish(self) -> None:
        if self._signed is None:
            return
        for (i, _), s in zip(self._ready, self._signed, strict=True):
            self._out[i] = s if isinstance(s, OrderInvalid) else self._kept.keep(self._orders[i], s)
        self._ready, self._signed = [], None

    def results(self) -> list[SignedClobOrder | OrderInvalid]:
        """After :meth:`run` and :meth:`finish`: per order its signed order or why it was refused
        (the signer's error raised again, as a direct call would have raised it)."""
        if self._error is not None:
            raise self._error
        return [s for s in self._out if s is not None]


def refused(order: OrderRequest, exc: OrderInvalid, started: float, stats: Counter[str]) -> PlaceResult:
    """The REJECTED result of an order that cannot be signed as asked (nothing was sent)."""
    stats["place_invalid"] += 1
    log.warning("order %s refused before signing: %s", order.client_order_id, exc)
    return PlaceResult(
        Outcome.REJECTED,
        status=OrderStatus.REJECTED,
        error_class=ErrorClass.BAD_REQUEST,
        error=str(exc),
        latency_ms=ms_since(started),
    )


def ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


__all__ = [
    "ClobSigningJob",
    "OrderPoster",
    "SignedOrders",
    "batch_body",
    "batch_entries",
    "check_batch_size",
    "leg_error",
    "refused",
]

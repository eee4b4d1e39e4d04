"""``polybot recorder``: the bus's market data into the database, each message exactly once.

The recorder reads the market-data stream (``[bus] stream``) through a DURABLE pull consumer
(``--durable``, default ``polybot-recorder``): the server remembers what was acknowledged, so a
restarted recorder goes on where the last one stopped, and several recorders sharing the durable
split the messages between them (each fetch hands out messages no other recorder holds), as a
queue group would.

Exactly once, in three parts:

1. **Ack after commit.** A fetched batch's rows go to the batched writer
   (:class:`core.store.writer.BatchedWriter`); only when the writer says they committed
   (``flush``) are the batch's messages acknowledged. A recorder that dies before that leaves them
   unacknowledged, and the server delivers them again after ``ack_wait``: nothing is lost.
2. **Known keys are skipped.** Every row carries its message's key (``bus_epoch``, ``bus_seq``,
   ``bus_idx``: :mod:`core.bus.rows`). A message delivered more than once (JetStream's
   ``num_delivered`` > 1: it may have committed before its recorder died) is looked up first, and
   only the rows not stored yet are written; it is counted as ``duplicate`` when all were.
3. **The database has the last word.** The key is unique (migration 0006); should two recorders
   still race on one redelivered message, the second insert is refused by the index and the
   writer counts the row as rejected, never stored twice.

A message redelivered while this recorder still holds it (its commit slower than ``ack_wait``) is
ignored: the pending acknowledgement covers it. An undecodable message is terminated (never
redelivered) and counted as ``invalid``. Kinds the feed tables do not hold (best prices, tick size,
status, resolution) are acknowledged with their batch. Every few seconds the consumer's backlog and
the stream's size are read into the metrics (``polybot_bus_consumer_pending``,
``polybot_bus_stream_bytes``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine

from core.bus import messages as m
from core.bus.meter import NoBusMeter, RecorderMeter
from core.bus.rows import KEY_COLUMNS, Row, key_of, rows_of
from core.bus.subjects import md_wildcard
from core.store.models import Base
from core.store.writer import BatchedWriter

log = logging.getLogger(__name__)

DEFAULT_DURABLE = "polybot-recorder"
LOOKUP_CHUNK = 500  # keys per lookup query
RETRY_S = 0.5  # after a failed fetch (the connection is coming back)


@dataclass(frozen=True, slots=True)
class RecorderOptions:
    stream: str
    prefix: str
    durable: str = DEFAULT_DURABLE
    batch: int = 1000  # messages per fetch
    fetch_timeout_s: float = 1.0
    ack_wait_s: float = 30.0  # unacknowledged this long: delivered again (to any recorder)
    max_ack_pending: int = 50_000  # messages out and unacknowledged, over all recorders of the durable
    max_batches_in_flight: int = 4  # fetched batches waiting for their commit
    state_every_s: float = 5.0  # consumer backlog and stream size into the metrics


@dataclass
class RecorderCounts:
    messages: int = 0  # delivered to this recorder (redeliveries included)
    stored: int = 0  # messages whose rows committed, then acknowledged
    rows: int = 0  # rows handed to the writer
    duplicate: int = 0  # redeliveries already stored in full
    no_rows: int = 0  # kinds the feed tables do not hold, acknowledged
    invalid: int = 0
    redelivered: int = 0
    ignored_in_flight: int = 0
    refused: int = 0  # writer queue full: not acknowledged, asked again later
    bus_errors: int = 0  # fetches and acknowledgements that failed (reconnecting): retried


@dataclass
class _Batch:
    acks: list[Msg] = field(default_factory=list)
    keys: list[tuple[str, int, int]] = field(default_factory=list)
    stored: int = 0
    rows: int = 0


class Recorder:
    """One recorder on a JetStream context, writing through ``writer`` (whose ``engine`` is read to
    look up keys). ``run`` until ``stop`` is set; call from the writer's event loop."""

    def __init__(
        self,
        js: JetStreamContext,
        writer: BatchedWriter,
        options: RecorderOptions,
        *,
        stats: RecorderMeter | None = None,
        engine: AsyncEngine | None = None,
    ) -> None:
        if options.batch < 1 or options.max_batches_in_flight < 1:
            raise ValueError("batch and max_batches_in_flight must be >= 1")
        self.js = js
        self.writer = writer
        self.engine = engine if engine is not None else writer.engine
        self.options = options
        self.stats: RecorderMeter = stats if stats is not None else NoBusMeter()
        self.counts = RecorderCounts()
        self._in_flight: set[tuple[str, int, int]] = set()
        self._acking: list[asyncio.Task[None]] = []
        self._trouble_logged = -1e9
        self._tables = {name: Base.metadata.tables[name] for name in KEY_COLUMNS}

    def consumer_config(self) -> ConsumerConfig:
        o = self.options
        return ConsumerConfig(
            durable_name=o.durable,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=o.ack_wait_s,
            max_deliver=-1,
            max_ack_pending=o.max_ack_pending,
            filter_subject=md_wildcard(o.prefix),
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Fetch, write, acknowledge after commit, until ``stop``; then wait for the batches in
        flight to commit and be acknowledged (a clean stop leaves nothing to redeliver)."""
        o = self.options
        sub = await self.js.pull_subscribe(
            md_wildcard(o.prefix), durable=o.durable, stream=o.stream, config=self.consumer_config()
        )
        state = asyncio.create_task(self._state_loop(stop), name="recorder-state")
        try:
            while not stop.is_set():
                try:
                    msgs = await sub.fetch(o.batch, timeout=o.fetch_timeout_s)
                except TimeoutError:  # nothing to fetch (nats.errors.TimeoutError is one too)
                    self._reap()
                    continue
                except (nats.errors.ConnectionClosedError, nats.errors.ConnectionDrainingError):
                    raise
                except nats.errors.Error as exc:  # reconnecting, a server restarting: fetch again soon
                    self._trouble("fetch", exc)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), RETRY_S)
                    continue
                await self.handle(msgs)
        finally:
            state.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await state
            await self.drain()
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def handle(self, msgs: list[Msg]) -> None:
        """One fetched batch: decode, skip what is stored or in flight, queue the rest's rows, and
        schedule the acknowledgement for after their commit."""
        batch = _Batch()
        fresh: list[tuple[Msg, m.MdMessage, list[tuple[str, Row]]]] = []
        again: list[tuple[Msg, m.MdMessage, list[tuple[str, Row]]]] = []
        now = time.time_ns()
        for msg in msgs:
            decoded = await self._decode(msg)
            if decoded is None:
                continue
            key = (decoded.asset, decoded.epoch, decoded.seq)
            if key in self._in_flight:
                self.counts.ignored_in_flight += 1
                continue
            self.stats.on_received(m.KINDS[type(decoded)], (now - decoded.recv_ns) / 1e9 if decoded.recv_ns else None)
            item = (msg, decoded, rows_of(decoded))
            (again if _delivered(msg) > 1 else fresh).append(item)
        if again:
            self.counts.redelivered += len(again)
            self.stats.on_redelivered(len(again))
            again = await self._without_stored(again, batch)
        for msg, decoded, rows in (*fresh, *again):
            await self._queue(msg, decoded, rows, batch)
        if batch.acks:
            self._acking.append(asyncio.create_task(self._ack_after_commit(batch), name="recorder-ack"))
        while len(self._acking) >= self.options.max_batches_in_flight:
            await self._acking.pop(0)
        self._reap()

    async def drain(self) -> None:
        """Wait for every batch in flight to commit and be acknowledged."""
        while self._acking:
            await self._acking.pop(0)

    # ---- one message ---------------------------------------------------------------------------

    async def _decode(self, msg: Msg) -> m.MdMessage | None:
        self.counts.messages += 1
        try:
            return m.decode(msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self.counts.invalid += 1
            self.stats.on_recorded("invalid")
            log.warning("recorder: undecodable message on %s dropped: %s", msg.subject, exc)
            try:
                await msg.term()
            except nats.errors.Error as err:  # delivered again, and dropped again
                self._trouble("term", err)
            return None

    async def _queue(self, msg: Msg, decoded: m.MdMessage, rows: list[tuple[str, Row]], batch: _Batch) -> None:
        if not rows:  # a kind the feed tables do not hold: acknowledged with the batch
            self.counts.no_rows += 1
            batch.acks.append(msg)
            return
        for table, row in rows:
            if not self.writer.put(table, row):
                # the writer is full: the rows queued so far commit, the rest comes back later;
                # the redelivery is looked up, so the rows that did commit are not written twice
                self.counts.refused += 1
                try:
                    await msg.nak(delay=1.0)
                except nats.errors.Error as exc:  # delivered again after ack_wait instead
                    self._trouble("nak", exc)
                return
        key = (decoded.asset, decoded.epoch, decoded.seq)
        self._in_flight.add(key)
        batch.keys.append(key)
        batch.acks.append(msg)
        batch.stored += 1
        batch.rows += len(rows)

    async def _ack_after_commit(self, batch: _Batch) -> None:
        try:
            await self.writer.flush()
            for msg in batch.acks:
                try:
                    await msg.ack()
                except nats.errors.Error as exc:  # not acknowledged: delivered again, found stored
                    self._trouble("ack", exc)
            self.counts.stored += batch.stored
            self.counts.rows += batch.rows
            self.stats.on_recorded("stored", batch.stored)
        finally:
            self._in_flight.difference_update(batch.keys)

    def _trouble(self, what: str, exc: Exception) -> None:
        """A bus call failed (the connection is being re-established): logged, at most every 10 s."""
        self.counts.bus_errors += 1
        now = time.monotonic()
        if now - self._trouble_logged >= 10.0:
            self._trouble_logged = now
            log.warning(
                "recorder: %s failed (%s: %s); %d bus errors so far",
                what,
                type(exc).__name__,
                exc,
                self.counts.bus_errors,
            )

    def _reap(self) -> None:
        """Raise the failure of a finished acknowledgement task (the writer stopped: nothing more
        can be stored, so the recorder stops and the server keeps the messages)."""
        done = [t for t in self._acking if t.done()]
        for task in done:
            self._acking.remove(task)
            task.result()

    # ---- redeliveries --------------------------------------------------------------------------

    async def _without_stored(
        self, items: list[tuple[Msg, m.MdMessage, list[tuple[str, Row]]]], batch: _Batch
    ) -> list[tuple[Msg, m.MdMessage, list[tuple[str, Row]]]]:
        """The redelivered messages with only their rows not stored yet; those stored in full are
        acknowledged with the batch and counted as duplicates."""
        wanted: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        for _, _, rows in items:
            for table, row in rows:
                wanted[table].append(key_of(table, row))
        stored = await self.stored_keys(wanted)
        out = []
        for msg, decoded, rows in items:
            left = [(t, r) for t, r in rows if key_of(t, r) not in stored[t]]
            if rows and not left:
                self.counts.duplicate += 1
                self.stats.on_recorded("duplicate")
                batch.acks.append(msg)
                continue
            out.append((msg, decoded, left))
        return out

    async def stored_keys(self, wanted: dict[str, list[tuple[Any, ...]]]) -> dict[str, set[tuple[Any, ...]]]:
        """Which of these bus keys (per table) are in the database already."""
        found: dict[str, set[tuple[Any, ...]]] = defaultdict(set)
        async with self.engine.connect() as conn:
            for table_name, keys in wanted.items():
                table = self._tables[table_name]
                cols = [table.c[c] for c in KEY_COLUMNS[table_name]]
                for chunk in _chunks(sorted(set(keys)), LOOKUP_CHUNK):
                    query = select(*cols).where(table.c.bus_seq.is_not(None), tuple_(*cols).in_(chunk))
                    found[table_name].update(tuple(r) for r in await conn.execute(query))
        return found

    # ---- JetStream state into the metrics ------------------------------------------------------

    async def _state_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.read_state()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.options.state_every_s)

    async def read_state(self) -> None:
        o = self.options
        try:
            info = await self.js.consumer_info(o.stream, o.durable)
            self.stats.set_consumer(o.durable, info.num_pending or 0, info.num_ack_pending or 0)
            stream = await self.js.stream_info(o.stream)
            self.stats.set_stream(o.stream, stream.state.bytes, stream.state.messages)
        except Exception as exc:  # the metrics wait for the next reading; the recording goes on
            log.debug("recorder: could not read the consumer/stream state: %s", exc)


def _delivered(msg: Msg) -> int:
    """How many times JetStream delivered ``msg`` (1: the first time). Read from the reply subject
    (``$JS.ACK.<stream>.<consumer>.<delivered>....``, or with domain and account hash after ACK)
    without building the client's whole metadata object: this runs for every message."""
    tokens = (msg.reply or "").split(".")
    if len(tokens) < 9 or tokens[0] != "$JS" or tokens[1] != "ACK":
        return 1  # not a JetStream delivery (tests hand plain messages): a first delivery
    index = 4 if len(tokens) == 9 else 6
    try:
        return int(tokens[index])
    except ValueError:
        return 1


def _chunks(items: list[tuple[Any, ...]], size: int) -> Iterable[list[tuple[Any, ...]]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]

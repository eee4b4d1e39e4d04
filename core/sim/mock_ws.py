"""A local double of Polymarket's market channel: a real websocket server on loopback.

It speaks the venue's protocol: a client sends ``{"type":"market","assets_ids":[...],...}``,
gets one ``book`` per subscribed asset it knows, then the ``price_change`` stream for those
assets; the text ``PING`` is answered with ``PONG``. Dynamic ``{"assets_ids":[...],
"operation":"subscribe"|"unsubscribe"}`` messages are honoured too.

The stream comes from a recording (JSONL ``{"recv_ns", "frame"}`` lines, the format
``polybot record-ws`` writes) or from :class:`core.feed.synth.FrameGenerator`, deterministic
for a seed. One market clock drives every connection: frames are produced at ``rate_hz`` from
the first subscription on, whether or not anyone is listening, and applied to the server's
own copy of each book. A client that (re)connects therefore gets the current book, as from
the venue, and misses what happened while it was away.

Fault controls for tests: :meth:`drop_connections`, :meth:`stall`, :meth:`send_garbage`,
:meth:`send_raw` (e.g. an oversized frame), :meth:`set_book` (the next snapshot differs from
what the stream implied), :meth:`send_book`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import http
import logging
import random
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import msgspec
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from core.feed.replay import iter_frames
from core.feed.synth import FrameGenerator, token_id

log = logging.getLogger(__name__)

MARKET_PATH = "/ws/market"
DEFAULT_GARBAGE = "this is not json {"

_decode = msgspec.json.decode
_encode = msgspec.json.encode


# ------------------------------------------------------------------ frame sources


def read_recording(path: Path) -> Iterator[str]:
    """Raw frames of a recording, via the replay reader: JSONL ``{"recv_ns", "frame"}`` lines
    or a JSON array of frames like the shared captures (unreadable lines are logged, skipped)."""
    for _recv_ns, frame in iter_frames(path):
        yield frame


# ------------------------------------------------------------------ book state


@dataclass(slots=True)
class _Book:
    """The server's copy of one token's book: price -> (price text, size text) per side."""

    asset_id: str
    market: str = ""
    tick_size: str = "0.01"
    timestamp: str = "0"
    last_trade_price: str = ""
    bids: dict[Decimal, tuple[str, str]] = field(default_factory=dict)
    asks: dict[Decimal, tuple[str, str]] = field(default_factory=dict)

    def replace(self, bids: Iterable[Any], asks: Iterable[Any]) -> None:
        self.bids = _levels(bids)
        self.asks = _levels(asks)

    def set_level(self, side: str, price: str, size: str) -> None:
        try:
            key = Decimal(price)
            removed = Decimal(size) == 0
        except (InvalidOperation, TypeError, ValueError):
            return  # the stream is the venue's business; a bad level is the client's test case
        levels = self.bids if side.upper() == "BUY" else self.asks
        if removed:
            levels.pop(key, None)
        else:
            levels[key] = (price, size)

    def frame(self) -> dict[str, Any]:
        """A ``book`` event: bids ascending, asks descending (best level last), as the venue."""
        bids = [{"price": p, "size": s} for _, (p, s) in sorted(self.bids.items())]
        asks = [{"price": p, "size": s} for _, (p, s) in sorted(self.asks.items(), reverse=True)]
        digest = hashlib.sha1(_encode([self.asset_id, self.timestamp, bids, asks])).hexdigest()
        out: dict[str, Any] = {
            "event_type": "book",
            "market": self.market,
            "asset_id": self.asset_id,
            "timestamp": self.timestamp,
            "hash": digest,
            "bids": bids,
            "asks": asks,
            "tick_size": self.tick_size,
        }
        if self.last_trade_price:
            out["last_trade_price"] = self.last_trade_price
        return out


def _levels(raw: Iterable[Any]) -> dict[Decimal, tuple[str, str]]:
    out: dict[Decimal, tuple[str, str]] = {}
    for level in raw:
        if isinstance(level, dict):
            price, size = str(level["price"]), str(level["size"])
        else:
            price, size = (str(x) for x in level)
        if Decimal(size) != 0:
            out[Decimal(price)] = (price, size)
    return out


def _event_assets(event: dict[str, Any]) -> set[str] | None:
    """Assets an event concerns; ``None`` = broadcast to every subscriber."""
    kind = event.get("event_type")
    if kind in ("new_market", "market_resolved"):
        return None
    changes = event.get("price_changes")
    if isinstance(changes, list):
        return {a for c in changes if isinstance(c, dict) and isinstance(a := c.get("asset_id"), str)}
    asset = event.get("asset_id")
    return {asset} if isinstance(asset, str) else None


# ------------------------------------------------------------------ connections


@dataclass(eq=False)
class _Client:
    ws: ServerConnection
    queue: asyncio.Queue[str | bytes]
    assets: set[str] = field(default_factory=set)
    subscribed: bool = False
    writer: asyncio.Task[None] | None = None


@dataclass(frozen=True, slots=True)
class MockStats:
    connections: int
    total_connections: int
    frames_streamed: int
    frames_sent: int
    pings: int
    subscribes: int
    bad_messages: int
    slow_consumer_drops: int
    bad_source_events: int
    exhausted: bool


class MockMarketServer:
    """See the module docstring. ``async with MockMarketServer(...) as server:`` works too."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        recording: Path | str | None = None,
        assets: int = 4,
        seed: int = 1,
        rate_hz: float = 50.0,
        *,
        path: str = MARKET_PATH,
        books_as_array: bool = False,
        start_on_subscribe: bool = True,
        loop_recording: bool = False,
        max_queue: int = 100_000,
        compression: str | None = "deflate",
        levels: int = 20,
        start_ts_ms: int | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.path = path
        self.rate_hz = rate_hz
        self._recording = Path(recording) if recording is not None else None
        self._n_assets = assets
        self._seed = seed
        self._books_as_array = books_as_array
        self._start_on_subscribe = start_on_subscribe
        self._loop_recording = loop_recording
        self._max_queue = max_queue
        self._compression = compression
        self._books: dict[str, _Book] = {}
        self._asset_order: list[str] = []
        self._levels = levels
        self._start_ts_ms = start_ts_ms
        self._source: Iterator[str] | None = None
        self._peeked: tuple[str, list[dict[str, Any]] | None] | None = None
        self._clients: set[_Client] = set()
        self._server: Server | None = None
        self._streamer: asyncio.Task[None] | None = None
        self._stall_until = 0.0
        self._resume_handles: list[asyncio.TimerHandle] = []
        self._resumed = asyncio.Event()
        self._resumed.set()
        self.exhausted = asyncio.Event()
        self.subscribe_messages: list[str] = []  # raw text of every subscribe received
        self.total_connections = 0
        self.frames_streamed = 0  # frames taken from the source
        self.frames_sent = 0  # frames written to sockets (books, stream, PONG, injected)
        self.pings = 0
        self.bad_messages = 0
        self.slow_consumer_drops = 0
        self.bad_source_events = 0  # recording/source events the server could not apply

    # ---------------------------------------------------------------- lifecycle

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("MockMarketServer is not started")
        return f"ws://{self.host}:{self.port}{self.path}"

    @property
    def asset_ids(self) -> list[str]:
        """Assets this server has books for, in a stable order."""
        return list(self._asset_order)

    async def start(self) -> None:
        if self._server is not None:
            return
        self._prepare_source()
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            process_request=self._check_path,
            ping_interval=None,
            compression=self._compression,
            max_size=1024 * 1024,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        if not self._start_on_subscribe:
            self._start_streaming()

    async def stop(self) -> None:
        for handle in self._resume_handles:
            handle.cancel()
        self._resume_handles.clear()
        self._resumed.set()  # a stalled writer must not hold the shutdown
        if self._streamer is not None:
            self._streamer.cancel()
            await asyncio.gather(self._streamer, return_exceptions=True)
            self._streamer = None
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 5.0)
            self._server = None
        writers = [c.writer for c in self._clients if c.writer is not None]
        for w in writers:
            w.cancel()
        await asyncio.gather(*writers, return_exceptions=True)

    async def __aenter__(self) -> MockMarketServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def stats(self) -> MockStats:
        return MockStats(
            connections=len(self._clients),
            total_connections=self.total_connections,
            frames_streamed=self.frames_streamed,
            frames_sent=self.frames_sent,
            pings=self.pings,
            subscribes=len(self.subscribe_messages),
            bad_messages=self.bad_messages,
            slow_consumer_drops=self.slow_consumer_drops,
            bad_source_events=self.bad_source_events,
            exhausted=self.exhausted.is_set(),
        )

    @property
    def connections(self) -> int:
        return len(self._clients)

    # ---------------------------------------------------------------- fault controls

    def drop_connections(self) -> int:
        """Cut every open socket without a closing handshake (the client sees code 1006)."""
        clients = list(self._clients)
        for client in clients:
            client.ws.transport.abort()
        return len(clients)

    def stall(self, seconds: float) -> None:
        """Freeze for ``seconds``: no stream, no books, no PONG (sockets stay open)."""
        loop = asyncio.get_running_loop()
        self._stall_until = max(self._stall_until, loop.time() + seconds)
        self._resumed.clear()
        self._resume_handles.append(loop.call_later(seconds, self._maybe_resume))

    def send_garbage(self, text: str = DEFAULT_GARBAGE) -> int:
        """Queue a non-JSON text frame to every subscribed client; returns how many."""
        return self.send_raw(text)

    def send_raw(self, text: str | bytes) -> int:
        """Queue ``text`` as is (e.g. an oversized frame; bytes go out as a binary frame) to
        every subscribed client; returns how many."""
        targets = [c for c in self._clients if c.subscribed]
        for client in targets:
            self._enqueue(client, text)
        return len(targets)

    def set_book(
        self,
        asset_id: str,
        bids: Sequence[Any],
        asks: Sequence[Any],
        *,
        broadcast: bool = False,
    ) -> None:
        """Replace the server's book of ``asset_id`` (levels as ``{"price","size"}`` dicts or
        ``(price, size)`` pairs). The next snapshot (reconnect or ``broadcast``) carries it.
        Generated deltas keep following the generator's own book, so the client's integrity
        check may then flag a mismatch: that is the point of this control."""
        book = self._book(asset_id)
        book.replace(bids, asks)
        if broadcast:
            self.send_book(asset_id)

    def send_book(self, asset_id: str) -> int:
        """Send the current snapshot of ``asset_id`` to the clients subscribed to it."""
        text = _encode(self._books[asset_id].frame()).decode()
        targets = [c for c in self._clients if asset_id in c.assets]
        for client in targets:
            self._enqueue(client, text)
        return len(targets)

    # ---------------------------------------------------------------- source

    def _prepare_source(self) -> None:
        if self._recording is not None:
            if not self._recording.is_file():
                raise FileNotFoundError(f"recording not found: {self._recording}")
            # PONG lines are heartbeat answers, not market data: this server answers PINGs itself
            frames = [f for f in read_recording(self._recording) if f.strip() != "PONG"]
            if not frames:
                raise ValueError(f"recording {self._recording} holds no frames")
            # the books at the start of the recording are the state a first subscriber sees
            start = 0
            while start < len(frames) and self._is_book_frame(frames[start]):
                self._apply(frames[start], _parse(frames[start]))
                start += 1
            for text in frames[start:]:
                self._register_assets(text)
            body = frames[start:]
            # on each wrap the opening snapshots go out again: the deltas that follow assume them
            self._source = _cycle(body, frames[:start]) if self._loop_recording else iter(body)
        else:
            generator = FrameGenerator(_generated_asset_ids(self._n_assets, self._seed), self._seed, self._levels)
            ts0 = self._start_ts_ms if self._start_ts_ms is not None else _wall_ms()
            for text in generator.snapshot_frames(ts0):
                self._apply(text, _parse(text))
            self._source = self._generated(generator, ts0)

    def _generated(self, generator: FrameGenerator, ts0: int) -> Iterator[str]:
        """Endless generated stream; timestamps are wall-clock ms, or ``start_ts_ms + n``
        (byte-identical runs for a seed) when ``start_ts_ms`` was given."""
        n = 0
        while True:
            n += 1
            ts = ts0 + n if self._start_ts_ms is not None else _wall_ms()
            yield generator.next_frame(ts)

    def _is_book_frame(self, text: str) -> bool:
        events = _parse(text)
        return bool(events) and all(e.get("event_type") == "book" for e in events)

    def _register_assets(self, text: str) -> None:
        for event in _parse(text) or ():
            for asset in _event_assets(event) or ():
                if isinstance(asset, str) and asset:
                    self._book(asset, event.get("market"))

    def _book(self, asset_id: str, market: Any = None) -> _Book:
        book = self._books.get(asset_id)
        if book is None:
            book = self._books[asset_id] = _Book(asset_id)
            self._asset_order.append(asset_id)
        if isinstance(market, str) and market and not book.market:
            book.market = market
        return book

    def _apply(self, text: str, events: list[dict[str, Any]] | None) -> None:
        """Update the server's books from one frame's events. An event this server cannot
        read is counted and logged; the frame is still forwarded (fault recordings exist)."""
        for event in events or ():
            try:
                self._apply_event(event)
            except (KeyError, TypeError, ValueError, AttributeError, InvalidOperation) as exc:
                self.bad_source_events += 1
                log.warning(
                    "mock-ws: cannot apply %s event to its books (%r): %.120s", event.get("event_type"), exc, text
                )

    def _apply_event(self, event: dict[str, Any]) -> None:
        kind = event.get("event_type")
        ts = event.get("timestamp")
        if kind == "price_change":
            changes = event.get("price_changes")
            if not isinstance(changes, list):  # older formats: one asset at top level
                legacy = event.get("changes")
                levels = legacy if isinstance(legacy, list) else [event]  # oldest: one level per event
                changes = [{**c, "asset_id": event.get("asset_id")} for c in levels]
            for change in changes:
                book = self._book(_asset(change), event.get("market"))
                book.set_level(str(change.get("side", "")), str(change["price"]), str(change["size"]))
                if ts is not None:
                    book.timestamp = str(ts)
            return
        if kind not in ("book", "tick_size_change", "last_trade_price"):
            return
        book = self._book(_asset(event), event.get("market"))
        if kind == "book":
            bids = event.get("bids", event.get("buys")) or ()
            asks = event.get("asks", event.get("sells")) or ()
            levels = _levels(bids), _levels(asks)  # parse both before touching the book
            book.bids, book.asks = levels
            book.tick_size = str(event.get("tick_size") or book.tick_size)
            book.last_trade_price = str(event.get("last_trade_price") or book.last_trade_price)
        elif kind == "tick_size_change":
            book.tick_size = str(event.get("new_tick_size") or book.tick_size)
        else:
            book.last_trade_price = str(event.get("price") or book.last_trade_price)
        if ts is not None:
            book.timestamp = str(ts)

    # ---------------------------------------------------------------- streaming

    def _start_streaming(self) -> None:
        if self._streamer is None:
            self._streamer = asyncio.create_task(self._stream(), name="mock-ws-stream")

    def _maybe_resume(self) -> None:
        if asyncio.get_running_loop().time() >= self._stall_until - 1e-3:
            self._resumed.set()

    def _pull(self) -> tuple[str, list[dict[str, Any]] | None] | None:
        """The next source frame and its parsed events (None when the source is exhausted)."""
        if self._peeked is not None:
            item, self._peeked = self._peeked, None
            return item
        assert self._source is not None
        text = next(self._source, None)
        return None if text is None else (text, _parse(text))

    def _continues_burst(self, last_ts: object) -> bool:
        """Whether the next frame has the same timestamp as the last one sent: the frames of
        one match are sent together, so no snapshot is cut from a half-applied match."""
        if last_ts is None:
            return False
        if self._peeked is None:
            item = self._pull()
            if item is None:
                return False
            self._peeked = item
        events = self._peeked[1]
        return bool(events) and events[0].get("timestamp") == last_ts

    async def _stream(self) -> None:
        loop = asyncio.get_running_loop()
        rate = self.rate_hz
        t0, base = loop.time(), 0
        while True:
            if not self._resumed.is_set():
                await self._resumed.wait()
                t0, base = loop.time(), self.frames_streamed  # no catch-up burst after a stall
            if rate > 0:
                due = int((loop.time() - t0) * rate) - (self.frames_streamed - base)
                if due <= 0:
                    wait = (self.frames_streamed - base + 1) / rate - (loop.time() - t0)
                    await asyncio.sleep(max(wait, 0.0005))
                    continue
                due = min(due, 1000)
            else:
                due = 200
            last_ts: object = None
            sent = 0
            while sent < due or self._continues_burst(last_ts):
                item = self._pull()
                if item is None:
                    self.exhausted.set()
                    log.info("mock-ws: recording exhausted after %d frames", self.frames_streamed)
                    return
                text, events = item
                self.frames_streamed += 1
                sent += 1
                self._dispatch(text, events)
                last_ts = events[0].get("timestamp") if events else None
            await asyncio.sleep(0)

    def _dispatch(self, text: str, events: list[dict[str, Any]] | None) -> None:
        self._apply(text, events)
        clients = [c for c in self._clients if c.subscribed]
        if not clients:
            return
        if events is None:  # not JSON: a recorded oddity, delivered as is
            for client in clients:
                self._enqueue(client, text)
            return
        routed = [(_event_assets(e), e) for e in events]
        for client in clients:
            out = _route(routed, client.assets)
            if out is _WHOLE:
                self._enqueue(client, text)
            elif out:
                self._enqueue(client, _encode(out[0] if len(out) == 1 and len(events) == 1 else out).decode())

    def _enqueue(self, client: _Client, text: str | bytes) -> None:
        if client.queue.qsize() >= self._max_queue:
            # a consumer this far behind is cut, as a real venue would
            self.slow_consumer_drops += 1
            log.warning("mock-ws: client %r is %d frames behind; dropping it", client.ws.id, self._max_queue)
            client.ws.transport.abort()
            return
        client.queue.put_nowait(text)

    # ---------------------------------------------------------------- connection handler

    def _check_path(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path.split("?", 1)[0].rstrip("/") != self.path.rstrip("/"):
            return Response(http.HTTPStatus.NOT_FOUND.value, "Not Found", Headers(), b"no such channel\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        client = _Client(ws, asyncio.Queue())
        self._clients.add(client)
        self.total_connections += 1
        client.writer = asyncio.create_task(self._write(client), name="mock-ws-writer")
        try:
            async for message in ws:
                if message == "PING":
                    self.pings += 1
                    self._enqueue(client, "PONG")
                    continue
                self._on_message(client, message)
        except ConnectionClosed:
            pass
        finally:
            self._clients.discard(client)
            client.writer.cancel()
            await asyncio.gather(client.writer, return_exceptions=True)

    def _on_message(self, client: _Client, message: str | bytes) -> None:
        try:
            msg = _decode(message)
        except msgspec.DecodeError:
            msg = None
        assets = msg.get("assets_ids") if isinstance(msg, dict) else None
        if not isinstance(assets, list) or not all(isinstance(a, str) for a in assets):
            self.bad_messages += 1
            log.warning("mock-ws: ignoring message %.80r", message)
            return
        operation = str(msg.get("operation", "")).lower()
        if operation == "unsubscribe":
            client.assets.difference_update(assets)
            return
        if operation != "subscribe" and str(msg.get("type", "")).lower() != "market":
            self.bad_messages += 1
            log.warning("mock-ws: ignoring message %.80r", message)
            return
        text = message if isinstance(message, str) else message.decode()
        self.subscribe_messages.append(text)
        new = [a for a in dict.fromkeys(assets) if a not in client.assets]
        client.assets.update(new)
        client.subscribed = True
        books = [self._books[a].frame() for a in new if a in self._books]
        if books:
            if self._books_as_array:
                self._enqueue(client, _encode(books).decode())
            else:
                for book in books:
                    self._enqueue(client, _encode(book).decode())
        if self._start_on_subscribe:
            self._start_streaming()

    async def _write(self, client: _Client) -> None:
        queue, ws = client.queue, client.ws
        while True:
            text = await queue.get()
            if not self._resumed.is_set():
                await self._resumed.wait()
            try:
                await ws.send(text)
            except ConnectionClosed:
                return
            self.frames_sent += 1


# ------------------------------------------------------------------ helpers

_WHOLE: Any = object()


def _parse(text: str) -> list[dict[str, Any]] | None:
    try:
        data = _decode(text)
    except msgspec.DecodeError:
        return None
    if isinstance(data, dict):
        return [data]
    if isinstance(data, list) and all(isinstance(e, dict) for e in data):
        return data
    return None


def _asset(event: dict[str, Any]) -> str:
    asset = event["asset_id"]
    if not isinstance(asset, str) or not asset:
        raise TypeError(f"asset_id must be a non-empty string, got {asset!r}")
    return asset


def _route(routed: list[tuple[set[str] | None, dict[str, Any]]], assets: set[str]) -> Any:
    """The part of a frame a client subscribed to: ``_WHOLE``, a list of events, or []."""
    out: list[dict[str, Any]] = []
    whole = True
    for concerned, event in routed:
        if concerned is None or concerned <= assets:
            out.append(event)
        elif concerned & assets:
            whole = False
            kept = [c for c in event["price_changes"] if isinstance(c, dict) and c.get("asset_id") in assets]
            out.append({**event, "price_changes": kept})
        else:
            whole = False
    return _WHOLE if whole else out


def _cycle(frames: list[str], on_wrap: list[str]) -> Iterator[str]:
    """``frames`` forever, each later pass preceded by ``on_wrap`` (the recording's opening
    ``book`` snapshots): a rewound stream replayed on the books it ended with would contradict
    its own carried best prices, and the venue resets a book the same way, with a ``book``."""
    yield from frames
    while True:
        yield from on_wrap
        yield from frames


def _generated_asset_ids(count: int, seed: int) -> list[str]:
    rng = random.Random(f"mock-ws-assets:{seed}")
    return [token_id(rng) for _ in range(count)]


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000

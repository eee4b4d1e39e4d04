"""A local double of Polymarket's market channel: a real websocket server on loopback.

It speaks the venue's protocol: a client sends ``{"type":"market","assets_ids":[...],...}``,
gets one ``book`` per subscribed asset it knows, then the ``price_change`` stream for those
assets; the text ``PING`` is answered with ``PONG``. Dynamic ``{"assets_ids":[...],
"operation":"subscribe"|"unsubscribe"}`` messages are honoured too.

The stream comes from a recording or from :class:`core.feed.synth.FrameGenerator`
(:mod:`core.sim.mock_ws_source`). One market clock drives every connection: frames are
produced at ``rate_hz`` from the first subscription on, whether or not anyone is listening,
and applied to the server's own copy of each book (:mod:`core.sim.mock_ws_books`). A client
that (re)connects therefore gets the current book, as from the venue, and misses what
happened while it was away.

Fault controls for tests: :meth:`drop_connections`, :meth:`stall`, :meth:`send_garbage`,
:meth:`send_raw` (e.g. an oversized frame), :meth:`set_book` (the next snapshot differs from
what the stream implied), :meth:`send_book`.

Served by the ``websockets`` library, the one the feed client (``core.feed.ws``) is built on: a
websocket-only double needs no HTTP routes, and its faults act on that library's connection
(``transport.abort()`` for a 1006 cut, per-client send queues, the negotiated compression) —
and the fault suite's tap subclass of this server overrides its writer on those same objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from core.sim.mock_ws_books import (
    Event,
    MarketBooks,
    Routed,
    ServerBook,
    encode,
    levels_of,
    parse_frame,
    routed,
    subscriber_part,
)
from core.sim.mock_ws_source import generated_source, recording_source

log = logging.getLogger(__name__)

MARKET_PATH = "/ws/market"
DEFAULT_GARBAGE = "this is not json {"


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
    subscribe_operations: int = 0  # {"operation":"subscribe"} on a live socket
    unsubscribe_operations: int = 0


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
        self._market = MarketBooks()
        self._books = self._market.books  # asset -> ServerBook (others read one through book())
        self._levels = levels
        self._start_ts_ms = start_ts_ms
        self._source: Iterator[str] | None = None
        self._peeked: tuple[str, list[Event] | None] | None = None
        self._clients: set[_Client] = set()
        # asset -> clients subscribed to it: a frame is routed to its few subscribers instead of
        # being offered to every socket (100 sockets cost ~0.3 core at 5,000 frames/s)
        self._by_asset: dict[str, set[_Client]] = {}
        self._server: Server | None = None
        self._streamer: asyncio.Task[None] | None = None
        self._stall_until = 0.0
        self._resume_handles: list[asyncio.TimerHandle] = []
        self._resumed = asyncio.Event()
        self._resumed.set()
        self.exhausted = asyncio.Event()
        self.subscribe_messages: list[str] = []  # raw text of every subscribe received
        self.operations = {"subscribe": 0, "unsubscribe": 0}  # operations on live sockets, by kind
        self.total_connections = 0
        self.frames_streamed = 0  # frames taken from the source
        self.frames_sent = 0  # frames written to sockets (books, stream, PONG, injected)
        self.pings = 0
        self.bad_messages = 0
        self.slow_consumer_drops = 0

    # ---------------------------------------------------------------- lifecycle

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("MockMarketServer is not started")
        return f"ws://{self.host}:{self.port}{self.path}"

    @property
    def asset_ids(self) -> list[str]:
        """Assets this server has books for, in a stable order."""
        return list(self._market.order)

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
            bad_source_events=self._market.bad_events,
            exhausted=self.exhausted.is_set(),
            subscribe_operations=self.operations["subscribe"],
            unsubscribe_operations=self.operations["unsubscribe"],
        )

    @property
    def connections(self) -> int:
        return len(self._clients)

    def client_assets(self) -> list[set[str]]:
        """What each open socket is subscribed to now."""
        return [set(c.assets) for c in self._clients]

    def book(self, asset_id: str) -> ServerBook:
        """The server's current book of ``asset_id`` (what a snapshot sends now)."""
        return self._books[asset_id]

    @property
    def bad_source_events(self) -> int:
        """Recording/source events the server could not apply to its books."""
        return self._market.bad_events

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
        bids: Sequence[object],
        asks: Sequence[object],
        *,
        broadcast: bool = False,
    ) -> None:
        """Replace the server's book of ``asset_id`` (levels as ``{"price","size"}`` dicts or
        ``(price, size)`` pairs). The next snapshot (reconnect or ``broadcast``) carries it.
        Generated deltas keep following the generator's own book, so the client's integrity
        check may then flag a mismatch: that is the point of this control."""
        book = self._market.book(asset_id)
        book.bids, book.asks = levels_of(bids), levels_of(asks)
        if broadcast:
            self.send_book(asset_id)

    def send_book(self, asset_id: str) -> int:
        """Send the current snapshot of ``asset_id`` to the clients subscribed to it."""
        text = encode(self._books[asset_id].frame())
        targets = [c for c in self._clients if asset_id in c.assets]
        for client in targets:
            self._enqueue(client, text)
        return len(targets)

    # ---------------------------------------------------------------- source

    def _prepare_source(self) -> None:
        if self._recording is not None:
            self._source = recording_source(self._recording, self._market, loop=self._loop_recording)
        else:
            self._source = generated_source(
                self._market, assets=self._n_assets, seed=self._seed, levels=self._levels, start_ts_ms=self._start_ts_ms
            )

    # ---------------------------------------------------------------- streaming

    def _start_streaming(self) -> None:
        if self._streamer is None:
            self._streamer = asyncio.create_task(self._stream(), name="mock-ws-stream")

    def _maybe_resume(self) -> None:
        if asyncio.get_running_loop().time() >= self._stall_until - 1e-3:
            self._resumed.set()

    def _pull(self) -> tuple[str, list[Event] | None] | None:
        """The next source frame and its parsed events (None when the source is exhausted)."""
        if self._peeked is not None:
            item, self._peeked = self._peeked, None
            return item
        assert self._source is not None
        text = next(self._source, None)
        return None if text is None else (text, parse_frame(text))

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
        return events is not None and len(events) > 0 and events[0].get("timestamp") == last_ts

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

    def _dispatch(self, text: str, events: list[Event] | None) -> None:
        self._market.apply(text, events)
        clients = [c for c in self._clients if c.subscribed]
        if not clients:
            return
        if events is None:  # not JSON: a recorded oddity, delivered as is
            for client in clients:
                self._enqueue(client, text)
            return
        frame = routed(events)
        for client in self._audience(frame, clients):
            part = subscriber_part(frame, client.assets)
            if part is None:
                self._enqueue(client, text)
            elif part:
                self._enqueue(client, encode(part[0] if len(part) == 1 and len(events) == 1 else part))

    def _audience(self, frame: Routed, clients: list[_Client]) -> list[_Client]:
        """The subscribed clients a frame concerns: through the asset index, unless one of its
        events goes to everyone (a broadcast, or an event that names no asset)."""
        if any(not concerned for concerned, _ in frame):
            return clients
        index = self._by_asset
        found = {c for concerned, _ in frame for a in concerned or () for c in index.get(a, ())}
        return [c for c in found if c.subscribed]

    def _index(self, client: _Client, assets: Iterable[str], *, add: bool) -> None:
        for asset in assets:
            if add:
                self._by_asset.setdefault(asset, set()).add(client)
            elif (held := self._by_asset.get(asset)) is not None:
                held.discard(client)
                if not held:
                    del self._by_asset[asset]

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
            self._index(client, client.assets, add=False)
            client.writer.cancel()
            await asyncio.gather(client.writer, return_exceptions=True)

    def _on_message(self, client: _Client, message: str | bytes) -> None:
        request = _subscription(message)
        if request is None:
            self.bad_messages += 1
            log.warning("mock-ws: ignoring message %.80r", message)
            return
        operation, assets, dynamic = request
        if dynamic:
            self.operations[operation] += 1
        if operation == "unsubscribe":
            self._index(client, [a for a in assets if a in client.assets], add=False)
            client.assets.difference_update(assets)
            return
        self.subscribe_messages.append(message if isinstance(message, str) else message.decode())
        new = [a for a in dict.fromkeys(assets) if a not in client.assets]
        client.assets.update(new)
        self._index(client, new, add=True)
        client.subscribed = True
        books = [self._books[a].frame() for a in new if a in self._books]
        if books and self._books_as_array:
            self._enqueue(client, encode(books))
        else:
            for book in books:
                self._enqueue(client, encode(book))
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


def _subscription(message: str | bytes) -> tuple[str, list[str], bool] | None:
    """``("subscribe" | "unsubscribe", assets, dynamic)`` of a client message, or None when it is
    neither a first ``{"type":"market","assets_ids":[...]}`` nor a dynamic ``operation`` message."""
    try:
        msg = msgspec.json.decode(message)
    except msgspec.DecodeError:
        return None
    assets = msg.get("assets_ids") if isinstance(msg, dict) else None
    if not isinstance(assets, list) or not all(isinstance(a, str) for a in assets):
        return None
    operation = str(msg.get("operation", "")).lower()
    if operation == "unsubscribe":
        return operation, assets, True
    if operation != "subscribe" and str(msg.get("type", "")).lower() != "market":
        return None
    return "subscribe", assets, operation == "subscribe"

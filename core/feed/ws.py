"""Market-channel websocket client: subscribe, text heartbeat, liveness watch, reconnect.

:class:`MarketFeed` spreads the subscribed assets over connections of at most
``max_assets_per_connection`` each (Polymarket drops snapshots beyond ~500 per socket).
Every connection runs its own loop: connect, send the subscribe message, deliver every text
frame to ``on_frame(text, recv_ns)``, send the text ``PING`` every ``ping_interval_s`` and
declare the socket dead when nothing (no frame, no ``PONG``) arrived for ``dead_after_s``.
A dead or dropped socket is reconnected with capped exponential backoff plus jitter (the
house's one retry helper, :func:`core.retry.reconnect_forever`) and resubscribed with the
assets it carries *now*; the venue then sends fresh ``book`` snapshots.

The followed set may change while running (:meth:`MarketFeed.set_assets`): live sockets get
``subscribe`` / ``unsubscribe`` operations (no reconnect), new sockets open when every socket
is full and a socket left with nothing closes (:mod:`core.feed.subscriptions`).

Connection liveness is this module's business; market quietness (a live socket that carries
no trades) is not: the ``PONG`` answers keep a quiet socket alive, and the book-staleness
watch downstream sees the quiet market. State changes are reported as
:class:`ConnectionEvent`; on ``dead`` and ``reconnected`` the processor marks the books of
``asset_ids`` ``awaiting_snapshot``, because frames may have been missed in between.

The client never parses JSON: decoding and validation belong to the processor. It filters
the heartbeat answer ``PONG`` (counted, not delivered) and enforces the frame-size cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Sequence

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.frames import CloseCode

from core.feed.connection import (
    ConnectionEvent,
    ConnectionState,
    ConnectionStats,
    FeedStats,
    FrameHandler,
    split_assets,
    subscribe_message,
)
from core.feed.subscriptions import SubscriptionChange, plan
from core.feed.subscriptions_socket import Socket as _Connection
from core.feed.subscriptions_socket import sync_socket
from core.retry import Backoff, Retry, reconnect_forever, symmetric_jitter

log = logging.getLogger(__name__)

DEFAULT_MARKET_URL = "wss://ws-subscriptions-clob.polymarket.com/ws/market"
DEFAULT_MAX_FRAME_BYTES = 8 * 1024 * 1024
PING_TEXT = "PING"
PONG_TEXT = "PONG"


class _RateLimitedLog:
    """Logs at most one line per key per ``interval_s``; the lines say how many were folded."""

    def __init__(self, interval_s: float = 5.0) -> None:
        self._interval = interval_s
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, key: str, msg: str, *args: object) -> None:
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        folded = self._suppressed.pop(key, 0)
        self._last[key] = now
        if folded:
            log.warning(msg + " (%d similar suppressed)", *args, folded)
        else:
            log.warning(msg, *args)


class MarketFeed:
    """Websocket client for the market channel; see the module docstring.

    ``max_frame_bytes`` is the frame-size cap: a bigger frame is counted under ``dropped["oversized"]``, logged and
    skipped while the socket stays up. The library's own limit sits above it (``hard_max_frame_bytes``, default twice
    the cap); a frame beyond that makes the library close the socket (code 1009), counted under
    ``dropped["oversized_disconnect"]`` and handled like any dead socket: reconnect. ``quiet_before_data``: a
    connection that dies before its first frame logs at INFO (the command's own last line names that failure)."""

    def __init__(
        self,
        url: str,
        asset_ids: Sequence[str],
        on_frame: FrameHandler,
        *,
        max_assets_per_connection: int = 200,
        ping_interval_s: float = 10.0,
        dead_after_s: float = 30.0,
        reconnect_initial_s: float = 0.5,
        reconnect_max_s: float = 30.0,
        jitter: float = 0.2,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        hard_max_frame_bytes: int | None = None,
        on_state: Callable[[ConnectionEvent], None] | None = None,
        custom_feature_enabled: bool = True,
        open_timeout_s: float = 10.0,
        close_timeout_s: float = 2.0,
        compression: str | None = "deflate",
        rng: random.Random | None = None,
        quiet_before_data: bool = False,
    ) -> None:
        if ping_interval_s <= 0 or dead_after_s <= 0:
            raise ValueError("ping_interval_s and dead_after_s must be > 0")
        if reconnect_initial_s < 0 or reconnect_max_s < reconnect_initial_s:
            raise ValueError("need 0 <= reconnect_initial_s <= reconnect_max_s")
        if not 0 <= jitter < 1:
            raise ValueError("jitter must be in [0, 1)")
        if max_frame_bytes < 1:
            raise ValueError("max_frame_bytes must be >= 1")
        self.url = url
        self._on_frame = on_frame
        self._on_state = on_state
        self._quiet_before_data = quiet_before_data
        self._ping_interval = ping_interval_s
        self._dead_after = dead_after_s
        # the wait before a reconnect: grows while sockets die before any data, starts over
        # after one that delivered data (core.retry.reconnect_forever)
        self.backoff = Backoff(reconnect_initial_s, reconnect_max_s, jitter=symmetric_jitter(jitter))
        self._max_frame_bytes = max_frame_bytes
        self._hard_max = hard_max_frame_bytes if hard_max_frame_bytes is not None else 2 * max_frame_bytes
        if self._hard_max < max_frame_bytes:
            raise ValueError("hard_max_frame_bytes must be >= max_frame_bytes")
        self._open_timeout = open_timeout_s
        self._close_timeout = close_timeout_s
        self._compression = compression
        self._rng = rng or random.Random()
        self._per_conn = max_assets_per_connection
        self._custom = custom_feature_enabled
        groups = split_assets(asset_ids, max_assets_per_connection)
        self._conns = [_Connection(i, dict.fromkeys(group)) for i, group in enumerate(groups)]
        self._next_id = len(self._conns)
        self._changing = asyncio.Lock()
        self.opened = 0  # connections opened by set_assets
        self.closed = 0  # connections closed by set_assets (left with no asset)
        self._ops_of_closed = 0
        self._dropped: dict[str, int] = {}
        self._callback_errors = 0
        self._delivered = 0
        self._target: int | None = None
        self._target_reached = asyncio.Event()
        self._stop_event = asyncio.Event()
        self._started = False
        self._stopped = False
        self._rlog = _RateLimitedLog()

    # ------------------------------------------------------------------ public API

    @property
    def asset_ids(self) -> tuple[str, ...]:
        return tuple(a for c in self._conns for a in c.asset_ids)

    @property
    def connection_count(self) -> int:
        return len(self._conns)

    @property
    def operations(self) -> int:
        """Subscribe/unsubscribe operations sent on live sockets so far."""
        return sum(c.operations for c in self._conns) + self._ops_of_closed

    async def set_assets(self, asset_ids: Sequence[str]) -> SubscriptionChange:
        """Follow exactly ``asset_ids`` from now on, on the live sockets (see the module docstring).
        Before :meth:`start` it only rearranges what the sockets will subscribe."""
        async with self._changing:
            held = {c.conn_id: c.asset_ids for c in self._conns}
            todo = plan(held, asset_ids, self._per_conn)
            if todo.empty:
                return SubscriptionChange()
            by_id = {c.conn_id: c for c in self._conns}
            for conn_id, gone in todo.remove.items():
                for asset in gone:
                    by_id[conn_id].assets.pop(asset, None)
            for conn_id, new in todo.add.items():
                by_id[conn_id].assets.update(dict.fromkeys(new))
            for conn_id in todo.close:
                await self._close(by_id[conn_id])
            changed = {*todo.remove, *todo.add} - set(todo.close)
            await asyncio.gather(*(self._sync(by_id[i]) for i in sorted(changed)))
            for group in todo.new:
                self._open(group)
            removed = tuple(a for gone in todo.remove.values() for a in gone)
            added = tuple(a for new in [*todo.add.values(), *todo.new] for a in new)
            opened, closed, now = len(todo.new), len(todo.close), len(self._conns)
            log.info("market feed: +%d/-%d assets, +%d/-%d sockets (%d)", len(added), len(removed), opened, closed, now)
            return SubscriptionChange(added, removed, opened, closed)

    @property
    def delivered(self) -> int:
        """Frames handed to ``on_frame`` so far (PONGs and dropped frames excluded)."""
        return self._delivered

    async def start(self) -> None:
        """Start one task per connection; returns at once (connecting happens in the tasks)."""
        if self._started:
            return
        self._started = True
        for conn in self._conns:
            self._spawn(conn)

    def _spawn(self, conn: _Connection) -> None:
        conn.task = asyncio.create_task(self._run_connection(conn), name=f"market-feed-{conn.conn_id}")

    def _open(self, group: Sequence[str]) -> None:
        conn = _Connection(self._next_id, dict.fromkeys(group))
        self._next_id += 1
        self._conns.append(conn)
        self.opened += 1
        if self._started and not self._stopped:
            self._spawn(conn)

    async def _close(self, conn: _Connection) -> None:
        """A socket left with no asset: closed for good (its loop sees ``closing`` and ends)."""
        conn.closing = True
        self._conns.remove(conn)
        self._ops_of_closed += conn.operations
        self.closed += 1
        ws, task = conn.ws, conn.task
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), self._close_timeout + 1.0)
        elif task is not None:
            task.cancel()  # connecting or waiting to reconnect: nothing to close cleanly

    async def _sync(self, conn: _Connection) -> None:
        await sync_socket(conn, custom_feature_enabled=self._custom)

    async def stop(self) -> None:
        """Close every socket cleanly and wait for the connection tasks to finish."""
        if self._stopped:
            return
        self._stopped = True
        self._stop_event.set()
        for conn in self._conns:
            ws = conn.ws
            if ws is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.close(), self._close_timeout + 1.0)
        tasks = [c.task for c in self._conns if c.task is not None]
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=self._close_timeout + 2.0)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
            for task in tasks:
                if not task.cancelled() and task.exception() is not None:
                    log.error("connection task ended with %r", task.exception())

    async def run_until(
        self,
        *,
        max_messages: int | None = None,
        stop_event: asyncio.Event | None = None,
        timeout_s: float | None = None,
    ) -> FeedStats:
        """Run until ``max_messages`` frames were delivered, ``stop_event`` is set or the
        timeout passes (whichever first), then stop and return the final stats."""
        if max_messages is not None:
            self._target = max_messages
            if self._delivered >= max_messages:
                self._target_reached.set()
        await self.start()
        waiters: list[asyncio.Task[object]] = []
        try:
            if max_messages is not None:
                waiters.append(asyncio.create_task(self._target_reached.wait()))
            if stop_event is not None:
                waiters.append(asyncio.create_task(stop_event.wait()))
            waiters.append(asyncio.create_task(self._stop_event.wait()))
            await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
            await self.stop()
        return self.stats()

    def stats(self) -> FeedStats:
        conns = tuple(
            ConnectionStats(
                conn_id=c.conn_id,
                state=c.state,
                asset_count=len(c.assets),
                frames=c.frames,
                bytes=c.bytes,
                pongs=c.pongs,
                reconnects=c.reconnects,
                dead_count=c.dead_count,
                last_frame_ns=c.last_frame_ns,
                last_pong_ns=c.last_pong_ns,
                last_reason=c.last_reason,
            )
            for c in self._conns
        )
        return FeedStats(
            connections=conns,
            frames=sum(c.frames for c in conns),
            bytes=sum(c.bytes for c in conns),
            pongs=sum(c.pongs for c in conns),
            reconnects=sum(c.reconnects for c in conns),
            dead=sum(c.dead_count for c in conns),
            dropped=dict(self._dropped),
            callback_errors=self._callback_errors,
        )

    # ------------------------------------------------------------------ internals

    def _emit(self, conn: _Connection, state: ConnectionState, reason: str = "") -> None:
        conn.state = ConnectionState.CONNECTED if state is ConnectionState.RECONNECTED else state
        if reason:
            conn.last_reason = reason
        if state is ConnectionState.DEAD:
            conn.dead_count += 1
            if self._quiet_before_data and not conn.frames:
                log.info("market feed connection %d dead: %s", conn.conn_id, reason)
            else:
                self._rlog.warning(f"dead:{conn.conn_id}", "market feed connection %d dead: %s", conn.conn_id, reason)
        elif state is ConnectionState.RECONNECTED:
            conn.reconnects += 1
            log.info("market feed connection %d reconnected (%d assets)", conn.conn_id, len(conn.asset_ids))
        if self._on_state is None:
            return
        event = ConnectionEvent(conn.conn_id, state, conn.asset_ids, reason, time.time_ns())
        try:
            self._on_state(event)
        except Exception:
            self._callback_errors += 1
            log.exception("on_state callback failed for %s", event)

    def _drop(self, reason: str) -> None:
        self._dropped[reason] = self._dropped.get(reason, 0) + 1

    async def _sleep_unless_stopped(self, delay: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop_event.wait(), delay)

    async def _run_connection(self, conn: _Connection) -> None:
        async def session() -> bool:
            self._emit(conn, ConnectionState.CONNECTING)
            reason, healthy = await self._session(conn)
            if not self._stop_event.is_set() and not conn.closing:
                self._emit(conn, ConnectionState.DEAD, reason)
            return healthy

        def waiting(retry: Retry[bool]) -> None:
            if retry.outcome.error is not None:  # a bug in the session, not a dead socket
                log.warning("market feed connection %d failed: %r", conn.conn_id, retry.outcome.error)
            log.debug("market feed connection %d: next attempt in %.2fs", conn.conn_id, retry.delay_s)

        try:
            await reconnect_forever(
                session,
                backoff=self.backoff,
                stopped=lambda: self._stop_event.is_set() or conn.closing,
                on_retry=waiting,
                rng=self._rng,
                sleep=self._sleep_unless_stopped,
            )
        finally:
            conn.ws = None
            why = "stopped" if self._stop_event.is_set() else "no asset left" if conn.closing else conn.last_reason
            self._emit(conn, ConnectionState.CLOSED, why)

    async def _session(self, conn: _Connection) -> tuple[str, bool]:
        """One socket's life. Returns (why it ended, whether it delivered any data)."""
        try:
            ws = await connect(
                self.url,
                open_timeout=self._open_timeout,
                close_timeout=self._close_timeout,
                ping_interval=None,  # the venue wants the text PING, sent by _heartbeat
                max_size=self._hard_max,
                compression=self._compression,
                proxy=None,
            )
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            return f"connect failed: {type(exc).__name__}: {exc}", False
        conn.dead_reason = None
        frames_before = conn.frames + conn.pongs
        heartbeat: asyncio.Task[None] | None = None
        try:
            async with conn.lock:  # the set may change meanwhile: _sync sends the difference later
                if conn.closing:
                    return "no asset left", False
                conn.ws, sent = ws, dict.fromkeys(conn.assets)
                try:
                    await ws.send(subscribe_message(tuple(sent), custom_feature_enabled=self._custom))
                except ConnectionClosed as exc:
                    return f"closed before subscribe: {exc}", False
                conn.live = sent
            conn.last_activity = asyncio.get_running_loop().time()
            self._emit(conn, ConnectionState.RECONNECTED if conn.connected_once else ConnectionState.CONNECTED)
            conn.connected_once = True
            await self._sync(conn)
            heartbeat = asyncio.create_task(self._heartbeat(conn, ws), name=f"market-feed-hb-{conn.conn_id}")
            reason = await self._receive(conn, ws)
            return reason, conn.frames + conn.pongs > frames_before
        finally:
            if heartbeat is not None:
                heartbeat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await heartbeat
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), self._close_timeout + 1.0)
            conn.ws, conn.live = None, None

    async def _receive(self, conn: _Connection, ws: ClientConnection) -> str:
        loop = asyncio.get_running_loop()
        on_frame = self._on_frame
        max_bytes = self._max_frame_bytes
        while True:
            try:
                message = await ws.recv()
            except ConnectionClosed as exc:
                return self._closed_reason(conn, exc)
            recv_ns = time.time_ns()
            conn.last_activity = loop.time()
            if isinstance(message, bytes):
                size = len(message)
                try:
                    text = message.decode("utf-8")
                except UnicodeDecodeError:
                    self._drop("binary_not_utf8")
                    self._rlog.warning(
                        "binary", "connection %d: binary frame of %d bytes is not UTF-8", conn.conn_id, size
                    )
                    continue
            else:
                text = message
                # len(text) <= UTF-8 byte length <= 4 * len(text): encode only when it matters.
                size = len(text) if len(text) * 4 <= max_bytes or len(text) > max_bytes else len(text.encode())
            conn.bytes += size
            if text == PONG_TEXT:
                conn.pongs += 1
                conn.last_pong_ns = recv_ns
                continue
            if size > max_bytes:
                self._drop("oversized")
                self._rlog.warning(
                    "oversized",
                    "connection %d: frame of %d bytes above the %d-byte cap, skipped",
                    conn.conn_id,
                    size,
                    max_bytes,
                )
                continue
            conn.frames += 1
            conn.last_frame_ns = recv_ns
            try:
                on_frame(text, recv_ns)
            except Exception:
                self._callback_errors += 1
                self._rlog.warning("callback", "on_frame raised on connection %d", conn.conn_id)
                log.debug("on_frame failure", exc_info=True)
            self._delivered += 1
            if self._target is not None and self._delivered >= self._target:
                self._target_reached.set()

    def _closed_reason(self, conn: _Connection, exc: ConnectionClosed) -> str:
        if conn.dead_reason is not None:
            return conn.dead_reason
        if exc.sent is not None and exc.sent.code == CloseCode.MESSAGE_TOO_BIG:
            self._drop("oversized_disconnect")
            return f"frame above the {self._hard_max}-byte hard limit; socket closed (1009)"
        if exc.rcvd is not None:
            return f"closed by server: code {exc.rcvd.code} {exc.rcvd.reason}".rstrip()
        return "connection lost without a close frame (1006)"

    async def _heartbeat(self, conn: _Connection, ws: ClientConnection) -> None:
        """Send the text PING on schedule and kill the socket when it has gone silent."""
        loop = asyncio.get_running_loop()
        step = min(self._ping_interval, self._dead_after) / 4
        next_ping = loop.time() + self._ping_interval
        while True:
            await asyncio.sleep(step)
            now = loop.time()
            silent = now - conn.last_activity
            if silent >= self._dead_after:
                conn.dead_reason = f"no frame or PONG for {silent:.1f}s (limit {self._dead_after:g}s)"
                # abort, not close: a stalled peer would never finish the closing handshake
                ws.transport.abort()
                return
            if now >= next_ping:
                next_ping = now + self._ping_interval
                try:
                    await ws.send(PING_TEXT)
                except ConnectionClosed:
                    return

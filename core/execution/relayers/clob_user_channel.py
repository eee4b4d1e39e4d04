"""The authenticated user channel (``/ws/user``): one subscription kept alive.

The condition ids it covers change while it runs: :meth:`UserChannel.set_markets` sends the
difference on the live socket as ``{"operation":"subscribe"|"unsubscribe","markets":[...]}`` (no
reconnect, so nothing is missed while a new socket would subscribe); a reconnect subscribes the
current set. Frames are decoded by :mod:`.clob_user_wire` and translated by :mod:`.clob_user_translate`; this
module is the client: subscribe, ping, dead-socket detection and reconnect (on
:func:`core.retry.reconnect_forever`: the wait doubles from 0.25 s to 30 s, each drawn from
``[wait/2, wait]``, and starts over once a subscription succeeded).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable

import msgspec
import websockets
from websockets.asyncio.client import ClientConnection

from core.execution.relayers.clob_user_wire import BadMessage, decode_frame
from core.retry import EQUAL_JITTER, Backoff, Retry, Sleep, reconnect_forever

log = logging.getLogger(__name__)

FrameHandler = Callable[[list[object]], Awaitable[None]]
ConnectHandler = Callable[[bool], Awaitable[None]]


class UserChannel:
    """Keeps one authenticated ``/ws/user`` subscription alive: ping, dead-socket detection, reconnect.

    ``on_items`` gets the decoded JSON items of each frame; ``on_connect(reconnected)`` runs after
    every successful subscribe (``reconnected`` is True from the second one on: the caller then
    re-reads open orders and trades over REST, since the channel does not replay).
    """

    def __init__(
        self,
        url: str,
        auth: dict[str, str],
        markets: list[str],
        on_items: FrameHandler,
        on_connect: ConnectHandler,
        *,
        ping_interval_s: float = 10.0,
        dead_after_s: float = 30.0,
        open_timeout_s: float = 10.0,
        backoff_initial_s: float = 0.25,
        backoff_max_s: float = 30.0,
        rng: random.Random | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.url = url
        self._auth = dict(auth)
        self.markets = list(markets)
        self._on_items = on_items
        self._on_connect = on_connect
        self.ping_interval_s = ping_interval_s
        self.dead_after_s = dead_after_s
        self.open_timeout_s = open_timeout_s
        self.backoff = Backoff(backoff_initial_s, backoff_max_s, 2.0, EQUAL_JITTER)
        self._rng = rng
        self._sleep = sleep
        self.connected = asyncio.Event()
        self.connects = 0
        self.stats: Counter[str] = Counter()
        self._task: asyncio.Task[None] | None = None
        self._ws: ClientConnection | None = None
        self._stopping = False
        self.last_frame_at = 0.0
        self.down_since: float | None = None  # wall clock: since when it has had no live subscription
        self._on_socket: set[str] = set()  # what the live socket is subscribed to
        self._ops = asyncio.Lock()  # one writer of subscription frames: the socket's set stays exact
        self._syncs: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        # the subscription carries the API secret and passphrase: never show it
        return f"UserChannel(url={self.url!r}, markets={len(self.markets)}, connected={self.connected.is_set()})"

    def subscribe_message(self) -> str:
        return msgspec.json.encode({"auth": self._auth, "markets": self.markets, "type": "user"}).decode()

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._stopping = False
            self.down_since = time.time()
            self._task = asyncio.create_task(self._run(), name="clob-user-channel")

    async def stop(self) -> None:
        self._stopping = True
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self._task = None
        self.connected.clear()

    def set_markets(self, markets: list[str]) -> bool:
        """Change the subscribed condition ids; a live socket gets the difference as operations
        (see :meth:`sync`). Returns True when the list changed."""
        markets = list(dict.fromkeys(markets))
        if markets == self.markets:
            return False
        self.markets = markets
        if self._ws is not None:  # each sync diffs afresh under the lock: a later one never undoes an earlier
            task = asyncio.get_running_loop().create_task(self.sync(), name="clob-user-markets")
            self._syncs.add(task)
            task.add_done_callback(self._syncs.discard)
        return True

    async def sync(self) -> None:
        """Bring the live socket to :attr:`markets`: subscribe what is new, then unsubscribe what
        left. Returns once the frames are written; with no live socket the next one subscribes the
        whole set, and a failed send is the reader's disconnect (which reconnects)."""
        async with self._ops:
            ws = self._ws
            if ws is None:
                return
            wanted = set(self.markets)
            added = [m for m in self.markets if m not in self._on_socket]
            removed = sorted(self._on_socket - wanted)
            with contextlib.suppress(websockets.ConnectionClosed):
                if added:
                    await ws.send(_operation("subscribe", added))
                    self._on_socket.update(added)
                    self.stats["subscribe_ops"] += 1
                if removed:
                    await ws.send(_operation("unsubscribe", removed))
                    self._on_socket.difference_update(removed)
                    self.stats["unsubscribe_ops"] += 1

    async def reconnect(self) -> None:
        """Drop the current socket (e.g. after the market list changed); the loop resubscribes."""
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()

    async def _run(self) -> None:
        await reconnect_forever(
            self._session,
            backoff=self.backoff,
            stopped=lambda: self._stopping,
            on_retry=self._on_retry,
            rng=self._rng,
            sleep=self._sleep,
        )

    def _on_retry(self, retry: Retry[bool]) -> None:
        log.debug("user channel: next subscription in %.2fs", retry.delay_s)

    async def _session(self) -> bool:
        """One connection: subscribe, then read until it dies. True when the subscription went through."""
        subscribed = False
        try:
            async with websockets.connect(
                self.url, open_timeout=self.open_timeout_s, ping_interval=None, max_size=2**24
            ) as ws:
                async with self._ops:  # no operation may slip between the socket and its subscription
                    await ws.send(self.subscribe_message())
                    self._ws, self._on_socket = ws, set(self.markets)
                self.connects += 1
                self.connected.set()
                self.down_since = None
                subscribed = True
                await self._on_connect(self.connects > 1)
                await self._read(ws)
        except Exception as exc:
            if not self._stopping:
                self.stats["disconnects"] += 1
                log.warning("user channel %s: %s: %s", self.url, type(exc).__name__, exc)
        finally:
            self._ws, self._on_socket = None, set()
            if self.connected.is_set() or self.down_since is None:
                self.down_since = time.time()
            self.connected.clear()
        return subscribed

    async def _read(self, ws: ClientConnection) -> None:
        pinger = asyncio.create_task(self._ping(ws))
        try:
            while True:
                try:
                    data = await asyncio.wait_for(ws.recv(), timeout=self.dead_after_s)
                except TimeoutError:
                    self.stats["dead_socket"] += 1
                    log.warning("user channel: no frame for %.0f s, reconnecting", self.dead_after_s)
                    return
                self.last_frame_at = time.monotonic()
                try:
                    items = decode_frame(data)
                except BadMessage as exc:
                    self.stats["bad_frame"] += 1
                    log.warning("user channel: dropped a frame (%s)", exc)
                    continue
                if items:
                    self.stats["frames"] += 1
                    await self._on_items(items)
        finally:
            pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pinger

    async def _ping(self, ws: ClientConnection) -> None:
        while True:
            await asyncio.sleep(self.ping_interval_s)
            await ws.send("PING")


def _operation(kind: str, markets: list[str]) -> str:
    return msgspec.json.encode({"operation": kind, "markets": markets}).decode()

"""One market-channel socket as :class:`core.feed.ws.MarketFeed` keeps it: its counters, what it
should carry and what it holds now, and the operations that bring the two together on a live
socket (:func:`sync_socket`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from core.feed.connection import ConnectionState
from core.feed.subscriptions import SUBSCRIBE, UNSUBSCRIBE, operation_message


@dataclass(slots=True)
class Socket:
    conn_id: int
    assets: dict[str, None]  # what this socket should carry, in order (a dict as an ordered set)
    state: ConnectionState = ConnectionState.CLOSED
    frames: int = 0
    bytes: int = 0
    pongs: int = 0
    reconnects: int = 0
    dead_count: int = 0
    connected_once: bool = False
    last_frame_ns: int | None = None
    last_pong_ns: int | None = None
    last_activity: float = 0.0  # loop.time() of the last frame or PONG
    last_reason: str = ""
    dead_reason: str | None = None  # set by the heartbeat when it kills the socket
    ws: ClientConnection | None = None
    task: asyncio.Task[None] | None = None
    live: dict[str, None] | None = None  # what the socket holds now; None: not subscribed yet
    closing: bool = False  # left with no asset: closed for good, not reconnected
    lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)  # one writer of ``live`` at a time
    operations: int = 0  # subscribe/unsubscribe operations sent on live sockets

    @property
    def asset_ids(self) -> tuple[str, ...]:
        return tuple(self.assets)


async def sync_socket(conn: Socket, *, custom_feature_enabled: bool) -> None:
    """Send the operations that make a live socket hold ``conn.assets``; nothing when it is not
    live (its next session subscribes the current set)."""
    async with conn.lock:
        ws, live = conn.ws, conn.live
        if ws is None or live is None or conn.closing:
            return
        gone = [a for a in live if a not in conn.assets]
        new = [a for a in conn.assets if a not in live]
        try:
            if gone:
                await ws.send(operation_message(UNSUBSCRIBE, gone))
                conn.operations += 1
                for asset in gone:
                    del live[asset]
            if new:
                await ws.send(operation_message(SUBSCRIBE, new, custom_feature_enabled=custom_feature_enabled))
                conn.operations += 1
                live.update(dict.fromkeys(new))
        except ConnectionClosed:
            return  # the reconnect subscribes the current set

"""The CLOB double's user channel (``/ws/user``) on aiohttp, beside its REST routes in one app.

Like the venue: the first message authenticates (``{"auth":{"apiKey","secret","passphrase"},
"markets":[condition ids],"type":"user"}``; a bad one gets ``{"error": "invalid auth"}`` and a
1008 close), the text ``PING`` is answered ``PONG``, and an owner's ``order`` / ``trade`` events
go to its sockets subscribed to the event's market (or to every market, while a socket has
subscribed with no market and sent no operation: an assumption, the venue's documentation
does not say). On a live socket ``{"operation":"subscribe"|"unsubscribe","markets":[...]}``
changes the socket's markets; every operation is counted (:attr:`UserChannel.operations`) and
journaled beside the events sent (:attr:`UserChannel.journal`) so tests can tell which came
first. No replay: a client that reconnects resyncs over REST.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from aiohttp import WSCloseCode, WSMsgType, web

from core.sim.mock_clob_state import ApiKey, MockOrder, MockTrade

log = logging.getLogger(__name__)

USER_PATH = "/ws/user"
SUBSCRIBE_TIMEOUT_S = 10.0
CLOSE_TIMEOUT_S = 5.0  # how long a close waits for the client's closing frame
JOURNAL_LENGTH = 100_000
SERVICE_RESTART = 1012  # the close code a venue restart sends (RFC 6455 registry)


@dataclass(slots=True)
class Subscriber:
    ws: web.WebSocketResponse
    api_key: str
    markets: set[str]
    everything: bool = False  # subscribed with no market and no operation since
    operations: Counter[str] = field(default_factory=Counter)

    def hears(self, api_key: str, market: str) -> bool:
        return self.api_key == api_key and (self.everything or market in self.markets)


class UserChannel:
    """Subscribers and publishing; :meth:`handle` is the aiohttp handler of ``/ws/user``."""

    def __init__(self, api_keys: Mapping[str, ApiKey]) -> None:
        self._api_keys = api_keys
        self.subscribers: list[Subscriber] = []
        self._sockets: set[web.WebSocketResponse] = set()  # subscribed or not yet
        self.muted = False  # a fault: sockets stay up, events are not sent (counted in muted_events)
        self.muted_events = 0
        self.operations: Counter[str] = Counter()  # subscribe / unsubscribe / bad on live sockets
        # ("subscribe" | "unsubscribe" | "event", market), in order; the latest only (a soak sends millions)
        self.journal: deque[tuple[str, str]] = deque(maxlen=JOURNAL_LENGTH)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        # autoping answers protocol pings; the channel's own heartbeat is the text PING
        ws = web.WebSocketResponse(autoping=True, timeout=CLOSE_TIMEOUT_S)
        await ws.prepare(request)
        self._sockets.add(ws)
        try:
            subscriber = await self._subscribe(ws)
            if subscriber is not None:
                await self._serve(subscriber)
        finally:
            self._sockets.discard(ws)
        return ws

    async def _serve(self, subscriber: Subscriber) -> None:
        self.subscribers.append(subscriber)
        try:
            async for message in subscriber.ws:
                if message.type is not WSMsgType.TEXT:
                    continue
                if message.data == "PING":
                    await subscriber.ws.send_str("PONG")
                else:
                    self._operation(subscriber, message.data)
        finally:
            self._forget(subscriber)

    async def _subscribe(self, ws: web.WebSocketResponse) -> Subscriber | None:
        """The subscriber the first message authenticates, or None (the socket is then closed)."""
        try:
            first = await ws.receive(timeout=SUBSCRIBE_TIMEOUT_S)
            sub = json.loads(first.data) if first.type is WSMsgType.TEXT else None
        except (TimeoutError, ValueError):
            sub = None
        if not isinstance(sub, dict):
            await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"expected a subscribe message")
            return None
        auth = sub.get("auth")
        key = self._authenticate(auth if isinstance(auth, dict) else {}, sub.get("type", "user"))
        if key is None:
            with contextlib.suppress(ConnectionError):
                await ws.send_str(json.dumps({"error": "invalid auth"}))
            await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"invalid auth")
            return None
        markets = sub.get("markets")
        named = {str(m) for m in markets} if isinstance(markets, list) else set()
        return Subscriber(ws, key.api_key, named, everything=not named)

    def _operation(self, subscriber: Subscriber, text: str) -> None:
        try:
            doc = json.loads(text)
        except ValueError:
            doc = None
        op = doc.get("operation") if isinstance(doc, dict) else None
        markets = doc.get("markets") if isinstance(doc, dict) else None
        if op not in ("subscribe", "unsubscribe") or not isinstance(markets, list):
            self.operations["bad"] += 1
            return
        names = [str(m) for m in markets]
        subscriber.everything = False
        if op == "subscribe":
            subscriber.markets.update(names)
        else:
            subscriber.markets.difference_update(names)
        subscriber.operations[op] += 1
        self.operations[op] += 1
        self.journal.extend((op, m) for m in names)

    def _authenticate(self, auth: dict[str, object], channel: object) -> ApiKey | None:
        key = self._api_keys.get(str(auth.get("apiKey")))
        if key is None or str(channel).lower() != "user":
            return None
        if auth.get("secret") != key.secret or auth.get("passphrase") != key.passphrase:
            return None
        return key

    def _forget(self, subscriber: Subscriber) -> None:
        with contextlib.suppress(ValueError):
            self.subscribers.remove(subscriber)

    async def send(self, api_key: str, market: str, event: dict[str, object]) -> None:
        if self.muted:
            self.muted_events += 1
            return
        text = json.dumps(event, separators=(",", ":"))
        self.journal.append(("event", market))
        for sub in list(self.subscribers):
            if not sub.hears(api_key, market):
                continue
            try:
                await sub.ws.send_str(text)
            except ConnectionError:  # the socket closed under us: the client resyncs over REST
                self._forget(sub)

    async def publish_order(self, order: MockOrder, kind: str) -> None:
        await self.send(order.owner, order.market, order.event(kind))

    async def publish_trade(self, trade: MockTrade) -> None:
        for owner in trade.owners():
            if owner in self._api_keys:
                await self.send(owner, trade.market, trade.event_for(owner))

    async def close_all(self, code: int, reason: str, *, subscribed_only: bool = True) -> None:
        """Close the subscribed sockets (or every socket) with ``code``, all at once."""
        sockets = [sub.ws for sub in self.subscribers] if subscribed_only else list(self._sockets)
        results = await asyncio.gather(
            *(ws.close(code=code, message=reason.encode()) for ws in sockets), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, ConnectionError):
                log.warning("mock clob: closing a user channel failed: %r", result)

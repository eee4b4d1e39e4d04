"""The market double routes each frame through its asset index: a socket gets every change of
the assets it holds, trimmed to them, and nothing of the others, also when a market's two tokens
sit on different sockets and after a live unsubscribe."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from core.feed.connection import subscribe_message
from core.feed.subscriptions import UNSUBSCRIBE, operation_message
from core.sim.mock_ws import MockMarketServer

TIMEOUT = 30.0  # a ceiling, not a pace
# The clients stop reading while the double still sends at 400 Hz: with websockets' bounded queue
# (16 messages) a full queue pauses reading from the socket; most likely the double's closing frame then goes
# unread and the close waits out its 10 s timeout (seen: 20-30 s once in ~12 runs under load).
# An unbounded queue keeps reading until the close.


def change_assets(frame: Any) -> set[str]:
    events = frame if isinstance(frame, list) else [frame]
    return {c["asset_id"] for e in events if e.get("event_type") == "price_change" for c in e["price_changes"]}


async def changes_seen(ws: ClientConnection, want: int) -> list[set[str]]:
    """The asset sets of the next ``want`` price_change frames on ``ws``."""
    seen: list[set[str]] = []
    async with asyncio.timeout(TIMEOUT):
        while len(seen) < want:
            text = await ws.recv()
            if text != "PONG" and (assets := change_assets(json.loads(text))):
                seen.append(assets)
    return seen


async def test_a_markets_two_tokens_on_two_sockets_each_get_their_own_side() -> None:
    async with MockMarketServer(assets=2, seed=3, rate_hz=400) as server:
        yes, no = server.asset_ids
        async with (
            connect(server.url, proxy=None, max_queue=None) as a,
            connect(server.url, proxy=None, max_queue=None) as b,
        ):
            await a.send(subscribe_message([yes]))
            await b.send(subscribe_message([no]))
            got_a, got_b = await asyncio.gather(changes_seen(a, 20), changes_seen(b, 20))
    assert all(s == {yes} for s in got_a)
    assert all(s == {no} for s in got_b)


async def test_after_a_live_unsubscribe_a_socket_gets_only_what_it_still_holds() -> None:
    async with MockMarketServer(assets=4, seed=5, rate_hz=400) as server:
        ids = server.asset_ids
        async with connect(server.url, proxy=None, max_queue=None) as ws:
            await ws.send(subscribe_message(ids))
            await changes_seen(ws, 5)
            await ws.send(operation_message(UNSUBSCRIBE, ids[:2]))
            async with asyncio.timeout(TIMEOUT):
                # the server's counter has no event to wait on: poll it, under the ceiling
                while server.operations["unsubscribe"] < 1:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
            later = await changes_seen(ws, 200)
    # frames queued before the server read the unsubscribe may still name them; then none do
    tail = later[50:]
    assert tail and all(s <= set(ids[2:]) for s in tail)

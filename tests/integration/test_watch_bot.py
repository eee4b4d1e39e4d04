"""/watch and /unwatch through the offline bot runner, the market feed on its double over real
sockets: the watched market is subscribed on the live socket (no reconnect), audited, persisted
in the state table and still followed after a restart; /unwatch takes it off."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from bot.offline import TranscriptEntry
from core.sim.mock_ws import MockMarketServer
from polybot.cli.tools.tgbot_cmd import LocalOptions, local_session
from tests.integration.bot_world import audit_rows, refresh_markets_cli

OPERATOR = 1003
BINARY = "demo-btc-above-150k-2026"


def command(n: int, text: str, user: int = OPERATOR) -> dict[str, Any]:
    person = {"id": user, "is_bot": False, "first_name": "Op"}
    chat = {"id": user, "type": "private", "first_name": "Op"}
    return {"update_id": n, "message": {"message_id": n, "chat": chat, "from": person, "text": text}}


def reply(entry: TranscriptEntry) -> str:
    [text] = [c["text"] for c in entry.calls if c["method"] == "sendMessage"]
    return str(text)


async def wait_until(pred: Callable[[], bool], limit_s: float = 15.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not pred():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {limit_s}s waiting for {what}")
        await asyncio.sleep(0.02)


async def test_watch_and_unwatch_follow_the_feed_and_survive_a_restart(db_url: str) -> None:
    await asyncio.to_thread(refresh_markets_cli, db_url)
    async with MockMarketServer(assets=2, seed=7, rate_hz=100) as ws:
        opts = LocalOptions(db_url=db_url, no_replay=True, env={"POLYBOT_FEED__WS_URL": ws.url})
        async with local_session(opts) as session:
            market = session.service.registry.resolve(BINARY)
            tokens = {t.token_id for t in market.tokens}
            t = await session.feed([command(1, "/watch"), command(2, f"/watch {BINARY}")])
            assert reply(t[0]).startswith("Nothing on the watch list")
            assert reply(t[1]).startswith(f"👁 watching {BINARY}: +2 / -0 assets")
            feed = session.service.feed
            assert feed is not None and tokens <= set(feed.asset_ids)
            await wait_until(lambda: any(tokens <= held for held in ws.client_assets()), what="the subscription")
            books = session.service.processor.books
            assert tokens <= set(books)  # created awaiting their first snapshot, as at start
            t = await session.feed([command(3, f"/watch {market.condition_id}"), command(4, "/watch")])
            assert reply(t[2]).startswith(f"👁 already watching {BINARY}")
            assert BINARY in reply(t[3])
        connections = ws.stats().total_connections

        async with local_session(opts) as session:  # a restart: the watch list is read back
            feed = session.service.feed
            assert feed is not None and tokens <= set(feed.asset_ids)
            await wait_until(lambda: ws.stats().total_connections == connections + 1, what="the socket")
            t = await session.feed([command(5, f"/unwatch {BINARY}"), command(6, "/unwatch nothing-like-this")])
            assert reply(t[0]).startswith(f"👁 stopped watching {BINARY}: +0 / -2 assets")
            assert "unknown market" in reply(t[1])
            assert not tokens & set(feed.asset_ids) and not tokens & set(session.service.processor.books)
            await wait_until(lambda: not any(held for held in ws.client_assets()), what="the socket to go")

        async with local_session(opts) as session:  # and stays unwatched
            feed = session.service.feed
            assert feed is not None and not tokens & set(feed.asset_ids)
    rows = [r for r in await audit_rows(db_url) if r.command in ("watch", "unwatch")]
    assert [(r.command, r.arguments, r.result) for r in rows] == [
        ("watch", "", "ok"),
        ("watch", BINARY, "ok"),
        ("watch", market.condition_id, "ok"),
        ("watch", "", "ok"),
        ("unwatch", BINARY, "ok"),
        ("unwatch", "nothing-like-this", "error"),
    ]
    assert {r.user_id for r in rows} == {str(OPERATOR)}

"""Live-mode confirmations through the offline runner against the CLOB double over real sockets.

Accepted -> exactly one order posted; expired -> card edited, nothing posted; tapped twice -> one
order; tapped by another user -> refused and audited; disarmed before the tap -> re-checked and
refused. The live config is the real thing pointed at local doubles: relayer type "real",
dry_run false, a throwaway key and the API credentials the CLOB double issued for it.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account
from sqlalchemy import select

from bot.offline import TranscriptEntry, read_updates
from core.markets import load_markets
from core.sim.mock_clob import MockClobServer
from core.sim.mock_clob_state import MockMarket
from core.sim.mock_gamma import MockGammaServer
from core.sim.mock_ws import MockMarketServer
from core.store.db import create_engine, session_factory
from core.store.models import CommandAudit, Order
from polybot.cli.main import main
from polybot.cli.tools.tgbot_cmd import LocalOptions, LocalSession, local_session
from tests.conftest import PROJECT_FIXTURES

UPDATES = PROJECT_FIXTURES / "updates"
BINARY = "demo-btc-above-150k-2026"
ADMIN, VIEWER, OPERATOR, STRANGER = 1001, 1002, 1003, 6666
THROWAWAY_KEY = "0x" + "5a" * 32  # never funded; only the local CLOB double ever sees it
EXPIRED = "⌛ Confirmation expired; nothing was sent."


@contextmanager
def gamma_in_thread() -> Iterator[str]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = MockGammaServer()
    try:
        yield asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


@pytest.fixture(scope="module")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("live-template") / "markets.db"
    with gamma_in_thread() as url:
        assert main(["refresh-markets", url, "--db-url", f"sqlite:///{path}", "--migrate"]) == 0
    return path


@dataclass
class Live:
    db_url: str
    config: Path
    clob: MockClobServer


@pytest.fixture
async def live(template_db: Path, tmp_path: Path) -> AsyncIterator[Live]:
    db_path = tmp_path / "live.db"
    shutil.copy(template_db, db_path)
    db_url = f"sqlite:///{db_path}"
    engine = create_engine(db_url)
    try:
        markets = await load_markets(session_factory(engine))
    finally:
        await engine.dispose()
    clob = MockClobServer(confirm_delay_s=0.05)
    ws = MockMarketServer()  # preflight's feed probe (arming in live mode needs a passing preflight)
    await clob.start()
    await ws.start()
    for m in markets:
        clob.add_market(
            MockMarket(
                condition_id=m.condition_id,
                tokens=tuple((t.token_id, t.outcome) for t in m.tokens),
                tick_size=m.tick_size,
                min_order_size=m.min_order_size,
                neg_risk=m.neg_risk,
                fee_rate=m.fee_rate,
                question=m.question,
            )
        )
    creds = clob.creds_for(Account.from_key(THROWAWAY_KEY).address)
    config = tmp_path / "live.toml"
    config.write_text(
        f"""
[feed]
ws_url = "{ws.url}"
user_ws_url = "{clob.ws_url}"

[clob]
url = "{clob.url}"

[data_api]
url = "{clob.url}"

[relayer]
type = "real"
dry_run = false

[telegram]
users = [{{ id = {ADMIN}, role = "admin" }}, {{ id = {VIEWER}, role = "viewer" }}, {{ id = {OPERATOR}, role = "operator" }}]
alert_chats = [{ADMIN}]
"""
    )
    # secrets where a trader keeps them (live mode's preflight fails while one is in the main file)
    secrets = tmp_path / "secrets.local.toml"
    secrets.write_text(
        f'[relayer]\nprivate_key = "{THROWAWAY_KEY}"\napi_key = "{creds.api_key}"\n'
        f'api_secret = "{creds.secret}"\napi_passphrase = "{creds.passphrase}"\n'
    )
    secrets.chmod(0o600)
    try:
        yield Live(db_url, config, clob)
    finally:
        await ws.stop()
        await clob.stop()


async def run_live(live: Live, name: str) -> tuple[LocalSession, list[TranscriptEntry]]:
    opts = LocalOptions(db_url=live.db_url, config=live.config, market=BINARY, outcome="Yes")
    async with local_session(opts) as session:
        assert session.service.mode.value == "live"
        transcript = await session.feed(read_updates(UPDATES / name))
    assert session.errors == []
    return session, transcript


def texts(entry: TranscriptEntry, method: str) -> list[str]:
    return [c.get("text", "") for c in entry.calls if c["method"] == method]


def the_card(entry: TranscriptEntry) -> tuple[str, list[list[dict[str, str]]]]:
    cards = [c for c in entry.calls if c["method"] == "sendMessage" and c.get("buttons")]
    assert len(cards) == 1, entry.calls
    return cards[0]["text"], cards[0]["buttons"]


async def audit(db_url: str, *commands: str) -> list[tuple[str | None, str, str]]:
    engine = create_engine(db_url)
    try:
        async with session_factory(engine)() as s:
            rows = (await s.execute(select(CommandAudit).order_by(CommandAudit.id))).scalars()
            return [(r.user_id, r.command, r.result) for r in rows if r.command in commands]
    finally:
        await engine.dispose()


async def orders_in_db(db_url: str) -> list[Order]:
    engine = create_engine(db_url)
    try:
        async with session_factory(engine)() as s:
            return list((await s.execute(select(Order))).scalars())
    finally:
        await engine.dispose()


def posted(live: Live) -> int:
    return len(live.clob.requests_to("POST", "/order"))


async def test_accepted_confirmation_posts_exactly_one_order(live: Live) -> None:
    _, t = await run_live(live, "live_confirm_accepted.jsonl")
    assert texts(t[0], "sendMessage") == ["✅ armed (live mode)"]
    card, buttons = the_card(t[1])
    assert card.startswith("<b>⚠️ LIVE order — confirm</b>")
    assert "market: Will Bitcoin trade above $150,000 on December 31, 2026?" in card
    assert "outcome: <b>Yes</b>" in card and "side: <b>BUY</b> GTC" in card
    assert "shares: <b>10</b> at limit <b>0.20</b>" in card
    assert "notional: <b>2.00 pUSD</b>, est. taker fee ≤ 0.11200 pUSD" in card  # 0.07 * 10 * 0.2 * 0.8
    assert "Expires in 30s" in card
    assert [[b["text"] for b in row] for row in buttons] == [["Confirm", "Cancel"]]
    for row in buttons:
        for b in row:
            assert len(b["callback_data"].encode()) <= 64  # Telegram's limit
    nonce = buttons[0][0]["callback_data"][2:]
    assert buttons[0][1]["callback_data"] == f"x:{nonce}" and len(nonce) >= 12  # unguessable

    assert texts(t[2], "answerCallbackQuery") == ["LIVE order open (resting on the book)"]  # what happened
    result = texts(t[2], "editMessageText")
    assert len(result) == 1 and result[0].startswith(
        f"✅ <b>LIVE</b> order: open (resting on the book)\n<b>BUY 10 Yes @ 0.20</b> · GTC\nmarket: {BINARY}\nid: <code>pb-"
    )
    assert posted(live) == 1
    body = live.clob.requests_to("POST", "/order")[0].json()
    assert body["order"]["side"] == "BUY" and body["orderType"] == "GTC"
    assert texts(t[3], "sendMessage")[0].count(BINARY[:20]) == 1  # /orders shows it
    assert texts(t[4], "sendMessage")[0] == "🛑 killed: disarmed, 1 order(s) canceled"

    rows = await audit(live.db_url, "order", "order.confirm")
    assert rows == [(str(ADMIN), "order", "ok"), (str(ADMIN), "order.confirm", "ok")]
    assert [o.mode for o in await orders_in_db(live.db_url)] == ["live"]


async def test_expired_confirmation_edits_the_card_and_sends_nothing(live: Live) -> None:
    _, t = await run_live(live, "live_confirm_expired.jsonl")
    card, _ = the_card(t[1])
    assert "Expires in 30s" in card
    assert t[2].update == {"_advance_s": 31}
    edit = [c for c in t[2].calls if c["method"] == "editMessageText"]
    assert len(edit) == 1 and edit[0]["text"] == EXPIRED and edit[0]["chat_id"] == ADMIN
    assert edit[0]["message_id"] > 1000  # the card the bot sent (the double numbers its messages from 1001)
    assert texts(t[3], "answerCallbackQuery") == ["Expired."]
    assert texts(t[4], "sendMessage") == ["No open orders."]
    assert posted(live) == 0
    assert await orders_in_db(live.db_url) == []
    rows = await audit(live.db_url, "order.confirm")
    assert rows == [(str(ADMIN), "order.confirm", "expired"), (str(ADMIN), "order.confirm", "expired")]


async def test_confirm_tapped_twice_posts_one_order(live: Live) -> None:
    _, t = await run_live(live, "live_confirm_twice.jsonl")
    assert t[2].update["button"] == t[3].update["button"]  # the same button, twice
    assert texts(t[2], "answerCallbackQuery") == ["LIVE order open (resting on the book)"]
    assert texts(t[3], "answerCallbackQuery") == ["Already handled."]
    assert texts(t[3], "editMessageText") == [] and texts(t[3], "sendMessage") == []
    assert posted(live) == 1
    assert len(await orders_in_db(live.db_url)) == 1
    rows = await audit(live.db_url, "order.confirm")
    assert rows == [(str(ADMIN), "order.confirm", "ok"), (str(ADMIN), "order.confirm", "already_used")]


async def test_a_tap_by_another_user_is_refused_and_audited(live: Live) -> None:
    session, t = await run_live(live, "live_confirm_other_user.jsonl")
    assert texts(t[2], "answerCallbackQuery") == ["This confirmation belongs to another user."]
    assert texts(t[3], "answerCallbackQuery") == ["Not allowed."]  # a viewer may not trade at all
    assert t[4].calls == [{"method": "answerCallbackQuery"}]  # a stranger learns nothing
    for entry in t[2:5]:
        assert texts(entry, "editMessageText") == []
    assert texts(t[5], "answerCallbackQuery") == ["Cancelled: nothing was sent."]  # the owner's Cancel still works
    assert texts(t[5], "editMessageText") == ["✖️ Cancelled; nothing was sent."]
    assert texts(t[6], "answerCallbackQuery") == ["Already handled."]
    assert posted(live) == 0
    assert session.service.engine.open_orders() == []
    rows = await audit(live.db_url, "order.confirm", "order.cancel", "callback_query")
    assert rows == [
        (str(OPERATOR), "order.confirm", "wrong_user"),
        (str(VIEWER), "order.confirm", "forbidden"),
        (str(STRANGER), "callback_query", "denied"),
        (str(ADMIN), "order.cancel", "cancelled"),
        (str(ADMIN), "order.confirm", "already_used"),
    ]


async def test_the_order_is_rechecked_at_confirm_time(live: Live) -> None:
    _, t = await run_live(live, "live_confirm_recheck.jsonl")
    the_card(t[1])
    assert texts(t[2], "sendMessage") == ["🛑 disarmed: no new orders will be placed"]
    assert texts(t[3], "answerCallbackQuery") == ["Not sent: not armed: /arm first"]  # never "Sending…"
    assert texts(t[3], "editMessageText") == [
        f"⛔ <b>LIVE</b> order not sent: not armed: /arm first\n<b>BUY 10 Yes @ 0.20</b> · GTC\nmarket: {BINARY}"
    ]  # said once
    assert posted(live) == 0
    rows = await audit(live.db_url, "order.confirm")
    assert rows == [(str(ADMIN), "order.confirm", "refused")]

"""The bot through the offline runner in paper mode: every command, wrong arguments, roles,
strangers (every update kind), edited commands, HTML escaping, message splitting and 429s.

The database is filled the way a user does it: ``polybot refresh-markets`` against the Gamma
double; the default recording is fed through the service's pipeline so books exist.
"""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.offline import TranscriptEntry, read_updates
from bot.views import render_ticket
from core.control.orders import OrderRefused
from core.errors import UsageError
from core.sim.mock_gamma import load_markets_file, make_market
from core.types import Side
from polybot.cli.tools.tgbot_cmd import LocalOptions, LocalSession, local_session, prepare_update
from tests.conftest import PROJECT_FIXTURES
from tests.integration.bot_world import audit_rows, refresh_markets_cli

UPDATES = PROJECT_FIXTURES / "updates"
BINARY = "demo-btc-above-150k-2026"
ADMIN, VIEWER, OPERATOR, STRANGER = 1001, 1002, 1003, 6666
ORDER_USAGE = "/order MARKET OUTCOME BUY|SELL PRICE SIZE [gtc|gtd DURATION|fok|fak] [postonly]"
ALLOWED_TAGS = {"b", "i", "u", "s", "code", "pre", "a"}  # Telegram's HTML subset that we use


def replies(entry: TranscriptEntry) -> list[str]:
    return [c["text"] for c in entry.calls if c["method"] == "sendMessage"]


def only_reply(entry: TranscriptEntry) -> str:
    texts = replies(entry)
    assert len(texts) == 1, (entry.update, entry.calls)
    return texts[0]


def check_html(text: str) -> None:
    """Parse as Telegram would: only known tags, balanced, and no stray '<' or '&'."""

    class Checker(HTMLParser):
        def __init__(self) -> None:
            super().__init__(convert_charrefs=False)
            self.stack: list[str] = []

        def handle_starttag(self, tag: str, attrs: Any) -> None:
            assert tag in ALLOWED_TAGS, f"tag <{tag}> in {text!r}"
            self.stack.append(tag)

        def handle_endtag(self, tag: str) -> None:
            assert self.stack and self.stack.pop() == tag, f"unbalanced </{tag}> in {text!r}"

        def handle_entityref(self, name: str) -> None:
            assert name in ("lt", "gt", "amp", "quot"), name

    checker = Checker()
    checker.feed(text)
    checker.close()
    assert not checker.stack, f"unclosed {checker.stack} in {text!r}"


async def run_file(db_url: str, name: str, **kw: Any) -> tuple[LocalSession, list[TranscriptEntry]]:
    opts = LocalOptions(db_url=db_url, market=BINARY, outcome="Yes", **kw)
    async with local_session(opts) as session:
        transcript = await session.feed(read_updates(UPDATES / name))
    assert session.errors == []
    return session, transcript


# --------------------------------------------------------------------------------------------
# every command
# --------------------------------------------------------------------------------------------


async def test_every_command_answers_with_the_right_reply(db_url: str) -> None:
    await asyncio.to_thread(refresh_markets_cli, db_url)
    _, t = await run_file(db_url, "commands.jsonl")
    texts = [e.update["text"] for e in t]
    assert texts[0] == "/start" and len(t) == 26
    for entry in t:
        assert entry.update["user"] == ADMIN
        for text in replies(entry):
            check_html(text)

    start, help_ = only_reply(t[0]), only_reply(t[1])
    assert "your role: <b>admin</b>" in start and start == help_
    for command in ("start", "help", "status", "quotes", "markets", "arm", "disarm", "preflight", "order",
                    "orders", "cancel", "cancelall", "positions", "pnl", "health", "alerts", "kill"):  # fmt: skip
        assert f"<code>/{command}" in start, command

    status = only_reply(t[2])
    assert "mode <b>paper</b>, ⚪ disarmed" in status
    # tgbot-run-local follows no market (a recording stands in for the feed): the count says so
    assert "0 markets followed (0 outcomes) of 9 stored, frames 1503" in status and "books: ok 18" in status
    assert "open orders 0, positions 0, PnL today 0.00 pUSD" in status

    all_quotes = only_reply(t[3])
    assert all_quotes.count("demo-") == 18 and all_quotes.startswith("<b>Quotes</b>\n<pre>")
    one = only_reply(t[4]).splitlines()
    assert one[1].split()[:2] == ["<pre>market", "outcome"]
    yes = next(line for line in one[2:] if line.split()[1] == "Yes")
    assert yes.split()[0] == BINARY and yes.split()[5] == "ok"
    bid, ask, spread = (float(x) for x in yes.split()[2:5])  # display only; the engine uses Decimal
    assert 0 < bid < ask < 1 and abs(ask - bid - spread) < 1e-9

    assert only_reply(t[5]).startswith("<b>Markets</b> (9)")
    cup = only_reply(t[6])
    assert cup.startswith("<b>Markets</b> (4)") and cup.count("neg-risk") == 4

    preflight = only_reply(t[7])
    assert "<b>✅ preflight passed</b>" in preflight
    assert "SKIP  market feed   --offline" in preflight  # default endpoints are not loopback: never probed

    assert only_reply(t[8]) == "✅ armed (paper mode)"
    first, second = only_reply(t[9]), only_reply(t[10])
    assert first.startswith("✅ <b>PAPER</b> order: open (resting on the book)\n<b>BUY 10 Yes @ 0.30</b> · GTC\n")
    assert second.startswith("✅ <b>PAPER</b> order: open") and f"market: {BINARY}\nid: <code>pb-" in second
    orders = only_reply(t[11])
    assert orders.startswith("<b>Open orders</b>") and orders.count("demo-btc-above-150k-") == 2
    second_id = second.split("<code>")[1].split("</code>")[0]
    named = t[12].update["text"].removeprefix("/cancel ")  # $LAST_ORDER = the newest order named: by /orders
    assert f"<code>{named}</code>" in orders and second_id.startswith(named) and 8 <= len(named) < len(second_id)
    assert only_reply(t[12]) == f"✅ canceled {second_id}: PAPER order BUY 10 Yes @ 0.31 GTC, {BINARY}"
    assert only_reply(t[13]) == "canceled 1 order(s)"
    filled = only_reply(t[14])
    assert filled.startswith("✅ <b>PAPER</b> order: filled") and "filled 10 @ 0.4" in filled
    positions = only_reply(t[15])
    assert positions.startswith(f"<b>Positions</b>\n• {BINARY}\n    <b>Yes</b>: 10 shares")
    pnl = only_reply(t[16])
    assert pnl.startswith("<b>PnL</b>\nrealised today: 0.00 pUSD") and "unrealised: -" in pnl
    assert only_reply(t[17]) == "<b>✅ healthy</b>\nall checks pass"
    assert only_reply(t[18]) == "Alerts off for this chat (/alerts on to resume)."
    assert only_reply(t[19]) == "Alerts on for this chat."
    assert only_reply(t[20]).startswith("Alerts muted for 1h00m (until ")
    assert only_reply(t[21]) == "Alerts on for this chat."
    assert only_reply(t[22]) == "🛑 disarmed: no new orders will be placed"
    assert only_reply(t[23]) == "✅ armed (paper mode)"
    kill = replies(t[24])
    assert kill[0] == "🛑 killed: disarmed, 0 order(s) canceled"
    assert kill[1].startswith("⚠️ <b>Kill switch</b>\n")  # the push alert to the alert chat (1001)
    final = only_reply(t[25])
    assert "⚪ disarmed" in final and "open orders 0, positions 1" in final

    rows = await audit_rows(db_url)
    assert [r.command for r in rows] == [x.split()[0][1:] for x in texts]
    assert {r.result for r in rows} == {"ok"} and {r.user_id for r in rows} == {str(ADMIN)}
    assert {r.front_end for r in rows} == {"telegram"}
    assert rows[9].arguments == f"{BINARY} Yes BUY 0.30 10"


async def test_wrong_arguments_get_the_usage_line(markets_db: str) -> None:
    _, t = await run_file(markets_db, "usage.jsonl")
    by_text = {e.update["text"]: only_reply(e) for e in t}
    usage = {
        "/status now": "/status",
        "/quotes a b": "/quotes [market|slug]",
        "/arm please": "/arm",
        "/order nonsense": ORDER_USAGE,
        f"/order {BINARY} Yes HOLD 0.30 10": ORDER_USAGE,
        f"/order {BINARY} Yes BUY cheap 10": ORDER_USAGE,
        f"/order {BINARY} Yes BUY 0.30 NaN": ORDER_USAGE,
        "/cancel": "/cancel ORDER_ID",
        "/alerts mute": "/alerts [on|off|mute DURATION]",
        "/alerts mute forever": "/alerts [on|off|mute DURATION]",
        "/alerts on now": "/alerts [on|off|mute DURATION]",
        "/kill now": "/kill",
    }
    for text, line in usage.items():
        assert by_text[text].endswith(f"\nUsage: <code>{line}</code>"), (text, by_text[text])
    assert by_text["/alerts"] == "Alerts are on for this chat."  # alone: the state, not a usage error
    assert by_text[f"/order {BINARY} Yes HOLD 0.30 10"].startswith("SIDE must be BUY or SELL, got 'HOLD'\n")
    assert by_text["/alerts mute forever"].startswith("bad duration")
    assert by_text["/frobnicate"] == "Unknown command /frobnicate. Try /help."
    refused = {
        "/quotes no-such-market": "unknown market 'no-such-market'",
        f"/order {BINARY} Maybe BUY 0.30 10": "outcome must be one of Yes/No, got 'Maybe'",
        f"/order {BINARY} Yes BUY 0.305 10": "price 0.305 is not on this market's tick 0.01",
        f"/order {BINARY} Yes BUY 1.5 10": "price must be within [0.01, 0.99], got 1.5",
        f"/order {BINARY} Yes BUY 0.30 1": "size 1 is below this market's minimum of 5",
        "/cancel pb-does-not-exist": "no open order 'pb-does-not-exist'",
    }
    for text, reason in refused.items():
        assert by_text[text].startswith("⚠️ ") and reason in by_text[text], (text, by_text[text])
    not_armed = by_text[f"/order {BINARY} Yes BUY 0.30 10"]  # answered with the order it refused, once
    assert (
        not_armed
        == f"⛔ <b>PAPER</b> order not sent: not armed: /arm first\n<b>BUY 10 Yes @ 0.30</b> · GTC\nmarket: {BINARY}"
    )

    rows = await audit_rows(markets_db)
    assert len(rows) == len(t)
    results = {r.arguments or r.command: r.result for r in rows}
    assert results["nonsense"] == "usage" and results["no-such-market"] == "error"
    assert [r.result for r in rows].count("usage") == 20  # /alerts alone answers its state
    assert [r.result for r in rows].count("unknown_command") == 1


async def test_roles_viewer_reads_operator_trades(markets_db: str) -> None:
    session, t = await run_file(markets_db, "roles.jsonl")
    viewer_help = only_reply(t[0])
    assert "your role: <b>viewer</b>" in viewer_help
    assert (
        "<code>/status" in viewer_help
        and "<code>/arm</code>" not in viewer_help
        and "<code>/order MARKET" not in viewer_help
    )
    assert "mode <b>paper</b>" in only_reply(t[1])
    for entry, command in zip(t[2:6], ("arm", "order", "cancelall", "kill"), strict=True):
        assert only_reply(entry) == f"/{command} needs the operator role."
    assert "<code>/order" in only_reply(t[6]) and "your role: <b>operator</b>" in only_reply(t[6])
    assert only_reply(t[7]) == "✅ armed (paper mode)"
    assert only_reply(t[8]).startswith("✅ <b>PAPER</b> order: open")
    assert only_reply(t[9]).count("demo-btc-above-150k-") == 1  # the viewer sees the operator's order
    kill = t[10].calls
    assert [(c["chat_id"], c["text"][:9]) for c in kill] == [(OPERATOR, "🛑 killed:"), (ADMIN, "⚠️ <b>Kil")]
    assert not session.service.risk.armed

    rows = await audit_rows(markets_db)
    forbidden = [(r.user_id, r.command) for r in rows if r.result == "forbidden"]
    assert forbidden == [(str(VIEWER), c) for c in ("arm", "order", "cancelall", "kill")]


async def test_strangers_get_one_neutral_reply_and_an_audit_row_per_attempt(markets_db: str) -> None:
    session, t = await run_file(markets_db, "unauthorised.jsonl")
    strangers = [e for e in t if e.update["user"] == STRANGER]
    calls = [c for e in strangers for c in e.calls]
    assert calls[0] == {"method": "sendMessage", "chat_id": STRANGER, "text": "This bot is private."}
    # the button press is answered (so the client stops spinning) with no text; nothing else is sent
    assert calls[1:] == [{"method": "answerCallbackQuery"}]
    assert [len(e.calls) for e in strangers] == [1, 0, 0, 0, 1, 0, 0]
    # an authorised user in a group chat is refused silently too
    assert [e.calls for e in t[7:9]] == [[], []]
    # and an inline query from them is answered with nothing (inline mode is not offered)
    assert [c["method"] for c in t[9].calls] == ["answerInlineQuery"]
    assert not session.service.risk.armed

    rows = await audit_rows(markets_db)
    assert len(rows) == len(t) == 10
    got = [(r.user_id, r.command, r.arguments, r.result, r.detail) for r in rows]
    assert {r[3] for r in got[:9]} == {"denied"}
    assert got[0] == (str(STRANGER), "status", "/status", "denied", "unauthorised message in private")
    assert got[2] == (str(STRANGER), "message", "hello?", "denied", "unauthorised message in private")
    assert got[3] == (str(STRANGER), "kill", "/kill", "denied", "unauthorised edited_message in private")
    assert got[4] == (
        str(STRANGER), "callback_query", "c:AAAAAAAAAAAA", "denied", "unauthorised callback_query in private"
    )  # fmt: skip
    assert got[5] == (str(STRANGER), "inline_query", "status", "denied", "unauthorised inline_query in no chat")
    assert got[6][4] == "unauthorised message in supergroup"
    assert got[7] == (str(ADMIN), "status", "/status", "denied", "unauthorised message in supergroup")
    assert got[8][:2] == (str(ADMIN), "kill")
    assert got[9] == (str(ADMIN), "inline_query", "status", "unsupported", "")


async def test_an_edited_command_is_not_run_again(markets_db: str) -> None:
    _, t = await run_file(markets_db, "edited.jsonl")
    assert only_reply(t[1]).startswith("✅ <b>PAPER</b> order: open")
    assert t[2].update.get("edited") is True
    assert only_reply(t[2]) == "An edited command is not run; send it again as a new message."
    assert only_reply(t[3]) == "An edited command is not run; send it again as a new message."
    assert only_reply(t[4]).count("demo-btc-above-150k-") == 1  # still exactly one order
    rows = await audit_rows(markets_db)
    assert [(r.command, r.result) for r in rows if r.result == "edited"] == [("order", "edited"), ("status", "edited")]


# --------------------------------------------------------------------------------------------
# Telegram limits: escaping, splitting, 429
# --------------------------------------------------------------------------------------------


async def test_market_titles_are_escaped(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'odd.db'}"
    odd = make_market("odd-title-market", "Will <b>Bob</b> & _Alice_ win 1<2 & x>y?", gamma_id=7)
    markets = [*load_markets_file(PROJECT_FIXTURES / "gamma" / "markets.json"), odd]
    await asyncio.to_thread(refresh_markets_cli, db_url, markets)
    async with local_session(LocalOptions(db_url=db_url, no_replay=True)) as session:
        t = await session.feed(
            [
                {"message": {"message_id": 1, "chat": {"id": ADMIN, "type": "private"},
                             "from": {"id": ADMIN, "is_bot": False, "first_name": "A"}, "text": "/markets odd"}},
                {"message": {"message_id": 2, "chat": {"id": ADMIN, "type": "private"},
                             "from": {"id": ADMIN, "is_bot": False, "first_name": "A"}, "text": "/quotes <i>"}},
            ]
        )  # fmt: skip
        # the live confirmation card names the market by its title too (the ticket of a refused order:
        # disarmed, without a book)
        with pytest.raises(OrderRefused) as refused:
            await session.service.control.prepare_order(
                "odd-title-market", "Yes", Side.BUY, Decimal("0.30"), Decimal("10"), user="t"
            )
        card = render_ticket(refused.value.ticket, 30)
    escaped = "Will &lt;b&gt;Bob&lt;/b&gt; &amp; _Alice_ win 1&lt;2 &amp; x&gt;y?"
    assert f"market: {escaped}\n" in card
    check_html(card)
    text = only_reply(t[0])
    assert escaped in text
    check_html(text)
    assert only_reply(t[1]) == (
        "⚠️ unknown market '&lt;i&gt;': no stored market has that condition id or slug\n"
        "/markets lists the markets the bot knows (/markets WORD filters them)"
    )
    check_html(only_reply(t[1]))


async def test_long_messages_are_split_through_the_sender(markets_db: str) -> None:
    async with local_session(LocalOptions(db_url=markets_db, no_replay=True)) as session:
        sender = session.service.bot.sender
        lines = [f"<b>row {i}</b> " + "x&amp;y " * 12 for i in range(200)]
        text = "\n".join(lines)
        assert len(text) > 3 * 4096
        before = len(session.api.calls)
        markup = InlineKeyboardMarkup([[InlineKeyboardButton("ok", callback_data="x:1")]])
        message = await sender.send(ADMIN, text, reply_markup=markup)
        calls = session.api.calls[before:]
    assert message is not None and len(calls) >= 4
    assert all(c.method == "sendMessage" and c.params["parse_mode"] == "HTML" for c in calls)
    assert all(len(c.text or "") <= 4096 for c in calls)
    assert "\n".join(c.text or "" for c in calls) == text  # nothing lost, nothing reordered
    assert [bool(c.buttons) for c in calls] == [False] * (len(calls) - 1) + [True]  # buttons on the last part
    for c in calls:
        check_html(c.text or "")


async def test_a_429_from_the_bot_api_is_honoured(markets_db: str) -> None:
    async with local_session(LocalOptions(db_url=markets_db, no_replay=True)) as session:
        session.api.throttle_next = 1
        session.api.retry_after = 1
        started = time.monotonic()
        t = await session.feed(
            [{"message": {"message_id": 1, "chat": {"id": ADMIN, "type": "private"},
                          "from": {"id": ADMIN, "is_bot": False, "first_name": "A"}, "text": "/pnl"}}]
        )  # fmt: skip
        waited = time.monotonic() - started
    methods = [c["method"] for c in t[0].calls]
    assert methods == ["sendMessage!429", "sendMessage"]  # refused once, retried after retry_after
    assert only_reply(t[0]).startswith("<b>PnL</b>")
    assert waited >= 1.0


# --------------------------------------------------------------------------------------------
# the runner's own rules
# --------------------------------------------------------------------------------------------


def test_market_placeholders_need_market_and_outcome() -> None:
    line = {"message": {"message_id": 1, "chat": {"id": 1, "type": "private"}, "text": "/quotes $MARKET"}}
    with pytest.raises(UsageError, match=r"\$MARKET"):
        prepare_update(line, None, None)
    done = prepare_update(line, "slug-x", "Yes")
    assert done["message"]["text"] == "/quotes slug-x"
    assert done["message"]["entities"] == [{"type": "bot_command", "offset": 0, "length": 7}]
    assert line["message"]["text"] == "/quotes $MARKET"  # the input is not modified


async def test_an_unknown_market_argument_is_a_usage_error(markets_db: str) -> None:
    with pytest.raises(UsageError, match="MARKET: unknown market 'nope'"):
        async with local_session(LocalOptions(db_url=markets_db, market="nope", outcome="Yes")):
            pass


def _admin_message(update_id: object, text: str) -> dict[str, Any]:
    return {"update_id": update_id, "message": {"message_id": 1, "date": 1793000001,
            "chat": {"id": ADMIN, "type": "private"}, "from": {"id": ADMIN, "is_bot": False, "first_name": "A"},
            "text": text}}  # fmt: skip


def test_a_bad_line_is_named_by_file_line_and_field(tmp_path: Path) -> None:
    script = tmp_path / "u.jsonl"
    script.write_text('{"_comment": "c"}\n\n' + json.dumps(_admin_message("x", "/arm")) + "\n")
    with pytest.raises(UsageError) as exc:
        read_updates(script)
    assert str(exc.value) == f"{script}:3: update_id: input should be a valid integer, got 'x'"


def test_every_shipped_script_is_valid_as_it_will_run() -> None:
    scripts = sorted(UPDATES.glob("*.jsonl"))
    assert len(scripts) >= 10
    for path in scripts:
        assert read_updates(path, prepare=lambda raw: prepare_update(raw, BINARY, "Yes")), path


async def test_the_runner_refuses_a_bad_update_naming_its_field(markets_db: str) -> None:
    """Fed directly (tests, bench, demo), a bad update is a ValueError naming the field, and runs nothing."""
    async with local_session(LocalOptions(db_url=markets_db, no_replay=True)) as session:
        with pytest.raises(ValueError, match=r"^update_id: input should be a valid integer, got 'x'$"):
            await session.feed([_admin_message("x", "/arm")])
        with pytest.raises(ValueError, match=r"^_advance_s must be a number of seconds >= 0, got NaN$"):
            await session.feed([{"_advance_s": float("nan")}])
        assert not session.service.risk.armed and session.api.calls[len(session.startup_calls) :] == []
        t = await session.feed([_admin_message(7, "/arm")])
        assert only_reply(t[-1]) == "✅ armed (paper mode)"

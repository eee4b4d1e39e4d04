"""Order management in paper mode through the offline runner (issue 18 points 1, 2, 3 and 5):
replies that state the order and its mode, /orders' ids and [Cancel n] buttons, ids by unique
prefix (too short and ambiguous answered), /fills on both databases, /close, the order options,
refusals answered at once, and each authorised user's command menu."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from bot.auth import Role
from bot.commands import COMMANDS
from core.execution.ids import client_order_id
from core.types import Intent, OrderStatus, OrderType, Side
from polybot.cli.tools.tgbot_cmd import LocalOptions, local_session
from tests.integration.bot_script import ADMIN, OPERATOR, STRANGER, VIEWER, buttons, msg, reply, tap, texts
from tests.integration.bot_world import audit_rows, refresh_markets_cli

BINARY = "demo-btc-above-150k-2026"
ORDER = f"/order {BINARY} Yes"


def paper(db_url: str) -> LocalOptions:
    return LocalOptions(db_url=db_url, market=BINARY, outcome="Yes")


async def test_menus_each_authorised_user_sees_the_commands_of_their_role(markets_db: str) -> None:
    async with local_session(paper(markets_db)) as session:
        calls = session.startup_calls
    menus = [c for c in calls if c["method"] in ("setMyCommands", "deleteMyCommands")]
    assert menus[0] == {"method": "deleteMyCommands", "scope": {"type": "default"}}  # strangers, groups: none
    by_chat = {c["scope"]["chat_id"]: c["commands"] for c in menus[1:]}
    assert [c["scope"]["type"] for c in menus[1:]] == ["chat"] * 3 and len(by_chat) == 3
    for user, role in ((ADMIN, Role.ADMIN), (VIEWER, Role.VIEWER), (OPERATOR, Role.OPERATOR)):
        assert by_chat[user] == [n for n, spec in COMMANDS.items() if role >= spec.role]
    assert {"orders", "fills", "status"} <= set(by_chat[VIEWER])
    assert not {"order", "close", "cancel", "arm", "kill"} & set(by_chat[VIEWER])
    assert {"order", "close", "cancel", "fills"} <= set(by_chat[OPERATOR])


async def test_order_replies_state_the_order_and_its_mode(markets_db: str) -> None:
    async with local_session(paper(markets_db)) as session:
        t = await session.feed(
            [
                msg(ADMIN, "/arm"),
                msg(ADMIN, f"{ORDER} BUY 0.30 10"),
                msg(ADMIN, f"{ORDER} BUY 0.31 10 gtd 2h postonly"),
                msg(ADMIN, f"{ORDER} BUY 0.40 5 fok"),
                msg(ADMIN, f"{ORDER} BUY 0.20 5 FAK"),
                msg(ADMIN, f"{ORDER} BUY 0.40 10 postonly"),
                msg(ADMIN, f"{ORDER} BUY 0.20 5 fak postonly"),
                msg(ADMIN, f"{ORDER} BUY 0.20 5 gtd"),
                msg(ADMIN, f"{ORDER} BUY 0.20 5 gtc fok"),
                msg(ADMIN, f"{ORDER} BUY 0.20 5 gtd 8d"),
                msg(ADMIN, f"{ORDER} BUY 0.20 5 soon"),
            ]
        )
        engine = session.service.engine
        ids = [r.split("<code>")[1].split("</code>")[0] for r in (reply(e) for e in t[1:5])]
        gtd = engine.order(ids[1])
        assert gtd is not None and gtd.order_type is OrderType.GTD and gtd.post_only
    resting = reply(t[1])
    assert resting == (
        "✅ <b>PAPER</b> order: open (resting on the book)\n<b>BUY 10 Yes @ 0.30</b> · GTC\n"
        f"market: {BINARY}\nid: <code>{ids[0]}</code>"
    )
    assert "live" not in resting.lower()  # a paper order never reads like real money
    assert reply(t[2]).startswith(
        "✅ <b>PAPER</b> order: open (resting on the book)\n<b>BUY 10 Yes @ 0.31</b> · GTD until "
    )
    assert reply(t[2]).split("\n")[1].endswith(" UTC post-only")
    assert reply(t[3]).startswith("✅ <b>PAPER</b> order: filled\n<b>BUY 5 Yes @ 0.40</b> · FOK\n")
    assert reply(t[4]).startswith("✅ <b>PAPER</b> order: canceled\n<b>BUY 5 Yes @ 0.20</b> · FAK\n")  # nothing to take
    assert reply(t[5]) == (
        "⛔ <b>PAPER</b> order not sent: a post-only order must not cross the book (best ask 0.4)\n"
        f"<b>BUY 10 Yes @ 0.40</b> · GTC post-only\nmarket: {BINARY}"
    )
    usage = [reply(e).split("\n")[0] for e in t[6:]]
    assert usage == [
        "postonly goes only with gtc or gtd (a FOK/FAK order takes liquidity)",
        "gtd needs a duration, e.g. gtd 1h",
        "one order type only (got gtc and fok)",
        "bad duration '8d' (use e.g. 30m, 1h, 1d; at most 7d)",
        "unknown option 'soon': use gtc, gtd DURATION, fok, fak or postonly",
    ]
    rows = await audit_rows(markets_db)
    assert [r.result for r in rows] == ["ok"] * 5 + ["refused"] + ["usage"] * 5


async def test_orders_buttons_cancel_paper_orders_for_operators_only(markets_db: str) -> None:
    async with local_session(paper(markets_db)) as session:
        t = await session.feed(
            [
                msg(VIEWER, "/orders"),
                msg(OPERATOR, "/arm"),
                msg(OPERATOR, f"{ORDER} BUY 0.30 10"),
                msg(OPERATOR, f"{ORDER} BUY 0.31 10"),
                msg(OPERATOR, "/orders"),
                msg(VIEWER, "/orders"),
            ]
        )
        assert reply(t[0]) == "No open orders." and buttons(t[0]) == []
        listing, keys = reply(t[4]), buttons(t[4])
        assert [b["text"][:9] for b in keys] == ["Cancel 1 ", "Cancel 2 "] and buttons(t[5]) == []
        assert reply(t[5]).split("\n")[:-1] == listing.split("\n")[:-1]  # the same list, no buttons, no "tap"
        first = keys[0]["callback_data"]
        t = await session.feed([tap(VIEWER, first), tap(STRANGER, first), tap(OPERATOR, first), tap(ADMIN, first)])
        engine = session.service.engine
        coid = first.removeprefix("k:")
        assert engine.order(coid).status is OrderStatus.CANCELED  # type: ignore[union-attr]  # a known order
        assert len(engine.open_orders()) == 1
    assert texts(t[-4], "answerCallbackQuery") == ["Not allowed: cancelling needs the operator role."]
    assert t[-3].calls == [{"method": "answerCallbackQuery"}]  # a stranger learns nothing
    assert texts(t[-2], "answerCallbackQuery") == ["Canceled: PAPER · BUY 10 Yes @ 0.30 GTC · filled 0/10"]
    assert reply(t[-2]) == f"✅ canceled {coid}: PAPER order BUY 10 Yes @ 0.30 GTC, {BINARY}"
    assert texts(t[-1], "answerCallbackQuery") == ["Nothing canceled: that order is already canceled."]
    short = listing.split("<code>")[1].split("</code>")[0]
    assert keys[0]["text"] == f"Cancel 1 ({short})" and coid.startswith(short) and len(short) >= 12


async def test_ids_by_unique_prefix_too_short_and_ambiguous_are_answered(markets_db: str) -> None:
    async with local_session(paper(markets_db)) as session:
        service = session.service
        market = service.registry.resolve(BINARY)
        intent = Intent(market.condition_id, market.token("Yes").token_id, Side.BUY, Decimal("0.10"), Decimal(5))
        seen: dict[str, int] = {}
        pair: tuple[int, int] | None = None
        for seq in range(100_000):  # two orders whose ids share their first 8 characters
            head = client_order_id(intent, seq)[:8]
            if head in seen:
                pair = (seen[head], seq)
                break
            seen[head] = seq
        assert pair is not None
        await session.feed([msg(ADMIN, "/arm")])
        for seq in pair:
            assert (await service.engine.submit(intent, market, seq=seq)).status is OrderStatus.LIVE
        a, b = (client_order_id(intent, seq) for seq in pair)
        common = next(n for n in range(8, 40) if a[n] != b[n])
        t = await session.feed(
            [
                msg(ADMIN, "/orders"),  # the transcript's last six entries, below
                msg(ADMIN, f"/cancel {a[:8]}"),
                msg(ADMIN, f"/cancel {a[:7]}"),
                msg(ADMIN, f"/cancel {a[: common + 1]}"),
                msg(ADMIN, f"/cancel {a[: common + 1]}"),
                msg(ADMIN, f"/cancel {b}"),
            ]
        )
        t = t[-6:]
    listing = reply(t[0])
    shown = [listing.split("<code>")[n].split("</code>")[0] for n in (1, 2)]
    assert sorted(shown) == sorted([a[: max(12, common + 1)], b[: max(12, common + 1)]])  # each names one order
    assert reply(t[1]) == (
        f"⚠️ '{a[:8]}' is the start of 2 open orders ({', '.join(sorted([a, b]))}): type more of the id"
    )
    assert reply(t[2]) == f"⚠️ order id '{a[:7]}' is too short: give at least 8 characters (see /orders)"
    assert reply(t[3]) == f"✅ canceled {a}: PAPER order BUY 5 Yes @ 0.10 GTC, {BINARY}"
    assert reply(t[4]) == f"⚠️ no open order '{a[: common + 1]}' (see /orders)"  # a prefix names open orders only
    assert reply(t[5]) == f"✅ canceled {b}: PAPER order BUY 5 Yes @ 0.10 GTC, {BINARY}"


async def test_fills_and_close_on_both_databases(db_url: str) -> None:
    await asyncio.to_thread(refresh_markets_cli, db_url)
    async with local_session(paper(db_url)) as session:
        t = await session.feed(
            [
                msg(VIEWER, "/fills"),
                msg(OPERATOR, "/arm"),
                msg(OPERATOR, f"{ORDER} BUY 0.40 10"),
                msg(OPERATOR, f"{ORDER} SELL 0.45 5"),  # rests: 5 shares stay free to sell
                msg(OPERATOR, f"/close {BINARY} Yes"),
                msg(OPERATOR, f"/close {BINARY} Yes"),
                msg(OPERATOR, f"/close {BINARY} No 0.5"),
                msg(VIEWER, "/fills"),
                msg(VIEWER, "/fills 1"),
                msg(VIEWER, "/fills 0"),
                msg(VIEWER, "/fills 51"),
                msg(VIEWER, "/fills ten"),
                msg(VIEWER, "/close x Yes"),
            ]
        )
    assert reply(t[0]) == "No fills yet."
    close = reply(t[4])
    assert close.startswith("✅ <b>PAPER</b> order: filled\n<b>SELL 5 Yes @ 0.32</b> · GTC\n")  # at the best bid
    assert "/close: sells all 5 Yes shares free to sell (5 more already in open sells)" in close
    assert (
        reply(t[5]) == f"⚠️ all 5 Yes shares of {BINARY} are already in open sells: see /orders"
    )  # 5 sold, 5 in the open sell
    assert reply(t[6]) == f"⚠️ no No shares of {BINARY} held"
    fills = reply(t[7]).split("\n")
    assert fills[0] == "<b>Recent fills</b> (2, newest first)"
    assert " UTC <b>PAPER</b> SELL 5 Yes @ 0.32, fee " in fills[1] and fills[1].endswith(" pUSD")
    assert fills[2] == f"    {BINARY}"
    assert " UTC <b>PAPER</b> BUY 10 Yes @ 0.4, fee " in fills[3] and fills[4] == f"    {BINARY}"
    assert reply(t[8]).startswith("<b>Recent fills</b> (1, newest first)") and "SELL 5" in reply(t[8])
    for entry in t[9:12]:
        assert reply(entry).startswith("N must be a whole number from 1 to 50")
    assert reply(t[12]) == "/close needs the operator role."

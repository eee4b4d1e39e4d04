"""Order management in live mode through the offline runner, against the CLOB double over real
sockets (issue 18 points 1-3): the order types reach the venue as it wants them (GTD with its
expiration, post-only, FOK), a card is shown only for an order that would be sent, the tap's answer
says what happened, /orders' [Cancel n] asks a live order's confirmation (a viewer, a stranger and
another operator cannot cancel it), /close sells the position at the best bid, /fills lists it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from decimal import Decimal

from eth_account import Account

from bot.offline import TranscriptEntry
from core.execution.positions import Position
from core.types import BookStatus, OrderStatus
from polybot.cli.tools.tgbot_cmd import LocalOptions, LocalSession, local_session
from tests.integration.bot_script import ADMIN, OPERATOR, STRANGER, VIEWER, buttons, msg, reply, tap, texts
from tests.integration.test_bot_confirmations import BINARY, THROWAWAY_KEY, Live, audit, live, posted, template_db

__all__ = ["live", "template_db"]  # fixtures, used by name
ADDRESS = Account.from_key(THROWAWAY_KEY).address
ORDER = f"/order {BINARY} Yes BUY"


def session_for(live: Live) -> LocalOptions:
    return LocalOptions(db_url=live.db_url, config=live.config, market=BINARY, outcome="Yes")


def nonce_of(entry: TranscriptEntry) -> str:
    [confirm] = [b["callback_data"] for b in buttons(entry) if b["callback_data"].startswith("c:")]
    return confirm[2:]


async def until(check: Callable[[], bool], what: str, ceiling_s: float = 20.0) -> None:
    deadline = time.monotonic() + ceiling_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def wait_shares(session: LocalSession, token_id: str, shares: Decimal) -> None:
    """The trade confirmed on the user channel (the double confirms after confirm_delay_s): only a
    confirmed trade moves the position."""
    positions = session.service.engine.positions

    def held() -> Decimal:
        pos = positions.get(token_id)
        return pos.shares if pos is not None else Decimal(0)

    await until(lambda: held() == shares, f"{shares} shares of {token_id[:10]} held")


async def test_order_types_reach_the_venue_and_refusals_come_at_once(live: Live) -> None:
    async with local_session(session_for(live)) as session:
        market = session.service.registry.resolve(BINARY)
        yes = market.token("Yes").token_id
        live.clob.set_book(yes, [(Decimal("0.32"), Decimal(100))], [(Decimal("0.40"), Decimal(100))])
        t = await session.feed([msg(ADMIN, f"{ORDER} 0.20 10"), msg(ADMIN, "/arm")])
        refused = reply(t[0])  # disarmed: answered at once, no card to tap in vain
        assert refused.startswith("⛔ <b>LIVE</b> order not sent: not armed: /arm first\n<b>BUY 10 Yes @ 0.20</b>")
        assert buttons(t[0]) == [] and reply(t[1]) == "✅ armed (live mode)"

        before = time.time()
        t = await session.feed([msg(ADMIN, f"{ORDER} 0.20 10 gtd 1h postonly")])
        card = reply(t[-1])
        assert card.startswith("<b>⚠️ LIVE order — confirm</b>") and "side: <b>BUY</b> GTD until " in card
        assert card.count("post-only") == 1
        t = await session.feed([tap(ADMIN, f"c:{nonce_of(t[-1])}")])
        assert texts(t[-1], "answerCallbackQuery") == ["LIVE order open (resting on the book)"]
        [result] = texts(t[-1], "editMessageText")
        assert result.startswith(
            "✅ <b>LIVE</b> order: open (resting on the book)\n<b>BUY 10 Yes @ 0.20</b> · GTD until"
        )
        body = live.clob.requests_to("POST", "/order")[-1].json()
        assert body["orderType"] == "GTD" and body["postOnly"] is True
        # the order rests an hour: the venue ends a GTD order a minute before its expiration
        assert before + 3660 - 2 <= int(body["order"]["expiration"]) <= time.time() + 3660 + 2

        t = await session.feed([msg(ADMIN, f"{ORDER} 0.40 5 fok")])
        assert "side: <b>BUY</b> FOK" in reply(t[-1])
        t = await session.feed([tap(ADMIN, f"c:{nonce_of(t[-1])}")])
        [result] = texts(t[-1], "editMessageText")
        assert result.startswith("✅ <b>LIVE</b> order: filled\n<b>BUY 5 Yes @ 0.40</b> · FOK") and result.endswith(
            "\nmatched at the venue; the trade is settling (/fills shows it)"
        )
        body = live.clob.requests_to("POST", "/order")[-1].json()
        assert body["orderType"] == "FOK" and body["postOnly"] is False and body["order"]["expiration"] == "0"
        await wait_shares(session, yes, Decimal(5))

        sent = posted(live)
        book = session.service.control.rt.books[yes]
        book.set_status(BookStatus.STALE)  # type: ignore[attr-defined]  # the feed's Book: the feed would do this
        t = await session.feed([msg(ADMIN, f"{ORDER} 0.20 10")])
        book.set_status(BookStatus.OK)  # type: ignore[attr-defined]  # as above
        t = await session.feed(
            [
                msg(ADMIN, f"{ORDER} 0.40 10 postonly"),  # would cross the ask: the venue would refuse it
                msg(ADMIN, f"{ORDER} 0.20 300"),  # 60 pUSD over max_order_notional 50
                msg(ADMIN, f"{ORDER} 0.20 10 fak postonly"),
                msg(VIEWER, "/fills"),
            ]
        )
    stale, crossing, notional, usage, fills = (reply(e) for e in t[-5:])
    assert stale.startswith("⛔ <b>LIVE</b> order not sent: the book for this outcome is not ok (stale)\n<b>BUY 10")
    assert crossing.startswith(
        "⛔ <b>LIVE</b> order not sent: a post-only order must not cross the book (best ask 0.4)"
    )
    assert notional.startswith("⛔ <b>LIVE</b> order not sent: order notional 60.00 exceeds 50 (max_order_notional)")
    assert usage.startswith("postonly goes only with gtc or gtd")
    assert all(buttons(e) == [] for e in t[-5:])  # no card for an order that would not be sent
    assert posted(live) == sent  # and nothing more reached the venue
    assert fills.startswith("<b>Recent fills</b> (1, newest first)\n• ")
    assert "<b>LIVE</b> BUY 5 Yes @ 0.4, fee " in fills and fills.endswith(f"\n    {BINARY}")
    rows = await audit(live.db_url, "order")
    assert [r[2] for r in rows] == ["refused", "ok", "ok", "refused", "refused", "refused", "usage"]


async def test_live_cancel_button_asks_for_confirmation_and_only_its_asker_confirms(live: Live) -> None:
    async with local_session(session_for(live)) as session:
        t = await session.feed([msg(ADMIN, "/arm"), msg(ADMIN, f"{ORDER} 0.20 10")])
        t = await session.feed([tap(ADMIN, f"c:{nonce_of(t[-1])}"), msg(OPERATOR, "/orders"), msg(VIEWER, "/orders")])
        listing, [button] = reply(t[-2]), buttons(t[-2])
        coid = button["callback_data"].removeprefix("k:")
        short = listing.split("<code>")[1].split("</code>")[0]
        assert coid.startswith(short) and button["text"] == f"Cancel 1 ({short})"
        assert f"1. <code>{short}</code> LIVE · BUY 10 Yes @ 0.20 GTC · filled 0/10\n    {BINARY}\n" in listing
        assert buttons(t[-1]) == []  # a viewer gets no buttons
        t = await session.feed(
            [tap(VIEWER, button["callback_data"]), tap(STRANGER, button["callback_data"]), tap(OPERATOR, button["callback_data"])]
        )  # fmt: skip
        assert texts(t[-3], "answerCallbackQuery") == ["Not allowed: cancelling needs the operator role."]
        assert t[-2].calls == [{"method": "answerCallbackQuery"}]  # a stranger learns nothing
        assert texts(t[-1], "answerCallbackQuery") == ["Confirm the cancel on the card below."]
        card = reply(t[-1])
        assert (
            card.startswith("<b>⚠️ LIVE cancel — confirm</b>\nLIVE · BUY 10 Yes @ 0.20 GTC")
            and f"<code>{coid}</code>" in card
        )
        assert [b["text"] for b in buttons(t[-1])] == ["Confirm", "Keep the order"]
        nonce = nonce_of(t[-1])
        t = await session.feed([tap(ADMIN, f"c:{nonce}"), tap(OPERATOR, f"x:{nonce}")])
        assert texts(t[-2], "answerCallbackQuery") == ["This confirmation belongs to another user."]
        assert texts(t[-1], "answerCallbackQuery") == ["Kept: the order stays open."]
        assert texts(t[-1], "editMessageText") == ["✖️ Kept; nothing was canceled."]
        assert live.clob.requests_to("DELETE", "/order") == [] and session.service.engine.order(coid) is not None
        assert session.service.engine.order(coid).status is OrderStatus.LIVE  # type: ignore[union-attr]  # just asserted
        t = await session.feed([tap(OPERATOR, button["callback_data"])])
        t = await session.feed(
            [tap(OPERATOR, f"c:{nonce_of(t[-1])}"), msg(ADMIN, "/orders"), tap(OPERATOR, button["callback_data"])]
        )
        assert texts(t[-3], "answerCallbackQuery") == [f"Canceled: {coid}"]
        [done] = texts(t[-3], "editMessageText")
        assert done == f"✅ canceled {coid}: LIVE order BUY 10 Yes @ 0.20 GTC, {BINARY}"
        assert reply(t[-2]) == "No open orders."
        assert texts(t[-1], "answerCallbackQuery") == ["Nothing canceled: that order is already canceled."]
        assert len(live.clob.requests_to("DELETE", "/order")) == 1
        assert live.clob.open_orders_of(next(iter(live.clob.api_keys))) == []
    rows = await audit(live.db_url, "cancel.button", "cancel.confirm", "cancel.keep", "order.confirm")
    assert rows == [
        (str(ADMIN), "order.confirm", "ok"),
        (str(VIEWER), "cancel.button", "forbidden"),
        (str(OPERATOR), "cancel.button", "ok"),
        (str(ADMIN), "order.confirm", "wrong_user"),
        (str(OPERATOR), "cancel.keep", "cancelled"),
        (str(OPERATOR), "cancel.button", "ok"),
        (str(OPERATOR), "cancel.confirm", "ok"),
        (str(OPERATOR), "cancel.button", "closed"),
    ]


async def test_close_sells_the_position_at_the_best_bid_with_the_live_card(live: Live) -> None:
    async with local_session(session_for(live)) as session:
        market = session.service.registry.resolve(BINARY)
        yes = market.token("Yes").token_id
        live.clob.give_shares(ADDRESS, yes, Decimal(10))
        live.clob.set_book(yes, [(Decimal("0.32"), Decimal(100))], [(Decimal("0.40"), Decimal(100))])
        session.service.engine.positions.load([Position(yes, market.condition_id, Decimal(10), Decimal("4.0"))])
        t = await session.feed([msg(ADMIN, "/arm"), msg(OPERATOR, f"/close {BINARY} Yes")])
        card = reply(t[-1])
        assert card.startswith("<b>⚠️ LIVE order — confirm</b>") and "side: <b>SELL</b> GTC" in card
        assert "shares: <b>10</b> at limit <b>0.32</b>" in card  # the best bid
        assert "/close: sells all 10 Yes shares free to sell" in card
        t = await session.feed([tap(OPERATOR, f"c:{nonce_of(t[-1])}")])
        [result] = texts(t[-1], "editMessageText")
        assert result.startswith("✅ <b>LIVE</b> order: filled\n<b>SELL 10 Yes @ 0.32</b> · GTC")
        body = live.clob.requests_to("POST", "/order")[-1].json()
        assert body["order"]["side"] == "SELL" and body["orderType"] == "GTC"
        await wait_shares(session, yes, Decimal(0))
        t = await session.feed([msg(OPERATOR, f"/close {BINARY} Yes"), msg(VIEWER, "/fills 1")])
    assert reply(t[-2]) == f"⚠️ no Yes shares of {BINARY} held"
    fills = reply(t[-1])
    assert fills.startswith("<b>Recent fills</b> (1, newest first)") and "<b>LIVE</b> SELL 10 Yes @ 0.32" in fills
    assert live.clob.ledger.held(ADDRESS, yes) == 0

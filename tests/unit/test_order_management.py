"""The pieces of Telegram order management that need no service: the order options as typed, a
GTD ticket's expiration, ids by unique prefix, what /close may sell, and how a reply names the
mode (a dry run is never mistaken for a sent order)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot.commands import UsageProblem
from bot.trade_commands import parse_order_options
from bot.views import render_order_result
from core.control.closing import free_shares
from core.control.orders import OrderOptions, new_ticket, resolve_order_id, short_ids
from core.control.types import ControlError, OrderOutcome
from core.execution.records import OrderRecord
from core.execution.rules import GTD_MIN_LIFETIME_S
from core.types import MarketInfo, Mode, OrderType, Side, TokenInfo

MARKET = MarketInfo(
    condition_id="0x" + "ab" * 32,
    question="Will it?",
    slug="will-it-2026",
    tokens=(TokenInfo("1" * 20, "Yes"), TokenInfo("2" * 20, "No")),
)


def test_options_in_any_order_each_once() -> None:
    assert parse_order_options([]) == OrderOptions(OrderType.GTC, False, None)
    assert parse_order_options(["postonly", "GTD", "1h30m"]) == OrderOptions(OrderType.GTD, True, 5400)
    assert parse_order_options(["fak"]) == OrderOptions(OrderType.FAK, False, None)
    for words, problem in [
        (["gtd"], "gtd needs a duration"),
        (["fok", "postonly"], "postonly goes only with gtc or gtd"),
        (["gtc", "gtc"], "one order type only"),
        (["postonly", "post-only"], "postonly given twice"),
        (["ioc"], "unknown option 'ioc'"),
        (["gtd", "１h"], "bad duration"),
    ]:
        with pytest.raises(UsageProblem, match=problem):
            parse_order_options(words)


def test_a_gtd_ticket_rests_its_lifetime_after_the_venues_minute() -> None:
    ticket = new_ticket(
        MARKET, "yes", Side.BUY, Decimal("0.30"), Decimal(10), mode=Mode.LIVE, user="t",
        options=OrderOptions(OrderType.GTD, True, 3600), now=1_800_000_000.7,
    )  # fmt: skip
    assert ticket.expiration == 1_800_000_000 + GTD_MIN_LIFETIME_S + 3600 and ticket.post_only
    assert ticket.outcome == "Yes" and ticket.needs_confirmation
    plain = new_ticket(MARKET, "No", Side.SELL, Decimal("0.30"), Decimal(10), mode=Mode.PAPER, user="t", now=1e9)
    assert plain.expiration == 0 and plain.order_type is OrderType.GTC
    with pytest.raises(ControlError, match="post-only is only allowed with GTC or GTD"):
        new_ticket(
            MARKET, "Yes", Side.BUY, Decimal("0.30"), Decimal(10), mode=Mode.PAPER, user="t",
            options=OrderOptions(OrderType.FOK, True),
        )  # fmt: skip
    # a marketable order's minimum is the venue's $1, not the market's minimum size
    small = OrderOptions(OrderType.FOK)
    assert new_ticket(MARKET, "Yes", Side.BUY, Decimal("0.50"), Decimal(3), mode=Mode.PAPER, user="t", options=small)
    with pytest.raises(ControlError, match="below this market's minimum of 5"):
        new_ticket(MARKET, "Yes", Side.BUY, Decimal("0.50"), Decimal(3), mode=Mode.PAPER, user="t")


def test_ids_by_unique_prefix() -> None:
    ids = ["pb-aaaaa1111", "pb-aaaaa2222", "pb-bbbb0000"]
    assert resolve_order_id("pb-bbbb0", ids, known=False) == "pb-bbbb0000"
    assert resolve_order_id("pb-aaaaa1", ids, known=False) == "pb-aaaaa1111"
    assert resolve_order_id("pb-gone", ids, known=True) == "pb-gone"  # an exact id the engine knows
    with pytest.raises(ControlError, match="is the start of 2 open orders"):
        resolve_order_id("pb-aaaaa", ids, known=False)
    with pytest.raises(ControlError, match="too short"):
        resolve_order_id("pb-aa", ids, known=False)
    shown = short_ids(["pb-0123456789abcdefX", "pb-0123456789abcdefY", "pb-ffff"])
    assert shown == {
        "pb-0123456789abcdefX": "pb-0123456789abcdefX",
        "pb-0123456789abcdefY": "pb-0123456789abcdefY",
        "pb-ffff": "pb-ffff",
    }
    assert short_ids(["pb-0123456789ab", "pb-fedcba987654"]) == {
        "pb-0123456789ab": "pb-012345678",
        "pb-fedcba987654": "pb-fedcba987",
    }


def test_close_sells_what_open_sells_do_not_already_promise() -> None:
    sell = OrderRecord("pb-1", MARKET.condition_id, "1" * 20, Side.SELL, Decimal("0.5"), Decimal(5))
    buy = OrderRecord("pb-2", MARKET.condition_id, "1" * 20, Side.BUY, Decimal("0.5"), Decimal(5))
    sell.filled_size = Decimal(2)
    assert free_shares(Decimal("10.005"), [sell, buy], "1" * 20) == (Decimal("7.00"), Decimal(3))
    assert free_shares(Decimal(2), [sell], "1" * 20) == (Decimal(0), Decimal(3))


def test_a_dry_run_reply_says_nothing_was_sent() -> None:
    text = render_order_result(OrderOutcome("pb-x", "dry_run", Mode.DRY_RUN.value))
    assert text.startswith("📝 <b>DRY-RUN (not sent)</b> order: signed, not sent")

"""Command parsing as a trader types it, through the real PTB Application and the Bot API double.

``/cmd@<this bot>`` runs like ``/cmd`` (PTB matches the suffix against getMe's username, known once
the Application is initialised); a suffix naming another bot runs nothing and says so. Numbers in
``/order`` and durations in ``/alerts mute`` are ASCII only: ``٠.٥``, ``０.５`` and ``1_0`` are what
``Decimal()`` and ``int()`` silently read as numbers, so each is refused with the usage line.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from bot.offline import TranscriptEntry
from polybot.cli.tools.tgbot_cmd import LocalOptions, local_session
from polybot.updates import Updates
from tests.integration.bot_world import audit_rows

OPERATOR, ADMIN = 1003, 1001
BINARY = "demo-btc-above-150k-2026"
ME = "polybot_local_bot"  # what the Bot API double answers to getMe


def replies(entry: TranscriptEntry) -> list[str]:
    return [c["text"] for c in entry.calls if c["method"] == "sendMessage"]


async def run(db_url: str, texts: list[str], user: int = OPERATOR, **opts: Any) -> tuple[list[list[str]], bool, int]:
    """Each text as a new private message; the replies to each, then armed? and open orders."""
    u = Updates()
    async with local_session(LocalOptions(db_url=db_url, **opts)) as session:
        assert session.service.bot.app.bot.username == opts.get("bot_username", ME)
        transcript = await session.feed([u.msg(user, text) for text in texts])
        armed = session.service.risk.armed
        orders = len(await session.service.control.orders())
    assert session.errors == []
    return [replies(e) for e in transcript], armed, orders


async def test_own_username_runs_another_bots_does_not(markets_db: str) -> None:
    texts = [
        "/pnl",
        f"/pnl@{ME}",
        "/PNL@Polybot_Local_Bot",  # Telegram usernames and commands are case-insensitive
        "/arm@other_bot",  # the safety point: another bot's command must not run ours
        "/frobnicate@other_bot",
        f"/frobnicate@{ME}",
        "/status@",
        f"/arm@{ME}",
    ]
    out, armed, _ = await run(markets_db, texts)
    for reply in out[:3]:
        assert len(reply) == 1 and reply[0].startswith("<b>PnL</b>"), reply
    assert out[3] == [
        f"/arm@other_bot is for @other_bot, not for me (@{ME}): nothing was run. Send /arm to run it here."
    ]
    assert out[4] == [f"/frobnicate@other_bot is for @other_bot, not for me (@{ME}): nothing was run. Try /help."]
    assert out[5] == ["Unknown command /frobnicate. Try /help."]
    assert out[6] == [f"/status@ is for another bot, not for me (@{ME}): nothing was run. Send /status to run it here."]
    assert out[7] == ["✅ armed (paper mode)"] and armed  # only the last line armed

    rows = await audit_rows(markets_db)
    got = [(r.command, r.result, r.detail) for r in rows]
    assert got[:3] == [("pnl", "ok", "")] * 3
    assert got[3] == ("arm", "other_bot", "addressed to @other_bot")
    assert got[4] == ("frobnicate", "other_bot", "addressed to @other_bot")
    assert got[5][:2] == ("frobnicate", "unknown_command")
    assert got[6][:2] == ("status", "other_bot")
    assert got[7][:2] == ("arm", "ok")
    assert len(rows) == len(texts)


async def test_the_double_answers_getme_with_the_username_it_is_given(markets_db: str) -> None:
    texts = ["/arm@polybot_bot", f"/disarm@{ME}"]
    out, armed, _ = await run(markets_db, texts, bot_username="polybot_bot", no_replay=True)
    assert out[0] == ["✅ armed (paper mode)"]
    assert out[1] == [
        f"/disarm@{ME} is for @{ME}, not for me (@polybot_bot): nothing was run. Send /disarm to run it here."
    ]
    assert armed  # the /disarm addressed to another bot ran nothing


NOT_PLAIN = "must be a plain decimal number like 0.45 or 10 (ASCII digits, no exponent)"
USAGE = "\nUsage: <code>/order MARKET OUTCOME BUY|SELL PRICE SIZE [gtc|gtd DURATION|fok|fak] [postonly]</code>"


@pytest.mark.parametrize(
    ("price", "size", "refusal"),
    [
        ("٠.٣٠", "10", f"PRICE {NOT_PLAIN}, got '٠.٣٠'"),  # Arabic-Indic: Decimal() reads 0.30
        ("０.３０", "10", f"PRICE {NOT_PLAIN}, got '０.３０'"),  # fullwidth
        ("0.30", "1_0", f"SIZE {NOT_PLAIN}, got '1_0'"),  # Decimal() reads 10
        ("0.30", "1e1", f"SIZE {NOT_PLAIN}, got '1e1'"),
        ("0.30", "١٠", f"SIZE {NOT_PLAIN}, got '١٠'"),
        ("3e-1", "10", f"PRICE {NOT_PLAIN}, got '3e-1'"),
        ("0.30", "9" * 40, f"SIZE is too long (at most 32 characters), got '{'9' * 40}'"),
    ],
)
async def test_order_numbers_are_ascii_decimals_only(markets_db: str, price: str, size: str, refusal: str) -> None:
    """Armed, on a real market, at a price that trades: only the number's spelling is wrong."""
    texts = ["/arm", f"/order {BINARY} Yes BUY {price} {size}", f"/order {BINARY} Yes BUY 0.30 10"]
    out, armed, orders = await run(markets_db, texts)
    assert armed and out[0] == ["✅ armed (paper mode)"]
    assert out[1] == [refusal + USAGE]
    assert out[2][0].startswith("✅ <b>PAPER</b> order: open")  # the plain spelling of the same order trades
    assert orders == 1  # and nothing else was placed
    rows = await audit_rows(markets_db)
    assert [(r.command, r.result) for r in rows] == [("arm", "ok"), ("order", "usage"), ("order", "ok")]


async def test_mute_durations_are_ascii_digits_only(markets_db: str) -> None:
    out, _, _ = await run(markets_db, ["/alerts mute ١h", "/alerts mute １h", "/alerts mute 1h"], user=ADMIN)
    for reply in out[:2]:
        assert reply[0].startswith("bad duration") and reply[0].endswith(
            "Usage: <code>/alerts [on|off|mute DURATION]</code>"
        )
    assert len(out[2]) == 1 and re.fullmatch(r"Alerts muted for 1h00m \(until \d\d:\d\d UTC\)\.", out[2][0])

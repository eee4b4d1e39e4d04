"""/merge, /redeem and /balance through the offline runner in paper mode: the paper ledger moves,
the replies say what was merged and what it returned, roles hold (a viewer reads the balance but
cannot merge), and every command is audited."""

from __future__ import annotations

from bot.offline import read_updates
from polybot.cli.tools.tgbot_cmd import LocalOptions, local_session
from tests.conftest import PROJECT_FIXTURES
from tests.integration.bot_world import audit_rows
from tests.integration.test_bot_offline_runner import BINARY, check_html, only_reply


async def test_merge_redeem_and_balance_in_paper_mode(markets_db: str) -> None:
    opts = LocalOptions(db_url=markets_db, market=BINARY, outcome="Yes")
    async with local_session(opts) as session:
        t = await session.feed(read_updates(PROJECT_FIXTURES / "updates" / "settlement.jsonl"))
    assert session.errors == []
    for entry in t:
        check_html(only_reply(entry))
    assert "filled 10 @ " in only_reply(t[1]) and "filled 10 @ " in only_reply(t[2])
    before = only_reply(t[3])
    assert before.startswith("<b>Balance</b> [paper]") and f"sets mergeable: {BINARY}: 10" in before
    assert "allowance: not needed (paper: no chain)" in before
    four = only_reply(t[4])
    assert four.startswith("✅ <b>merge</b> [paper]")
    assert f"merged 4 sets of {BINARY}: 4 pUSD returned (paper ledger)" in four
    assert "100 sets asked, only 6 in" in only_reply(t[5])
    assert f"merged 6 sets of {BINARY}: 6 pUSD returned" in only_reply(t[6])
    after = only_reply(t[7])
    assert "no positions" in after and "sets mergeable: none" in after
    assert "since start: merged 10 sets, 10 pUSD returned" in after
    assert "nothing to redeem" in only_reply(t[8])
    assert "Usage: <code>/merge MARKET|EVENT [SETS]</code>" in only_reply(t[9])
    assert only_reply(t[10]) == "/merge needs the operator role."
    assert only_reply(t[11]).startswith("<b>Balance</b> [paper]")
    rows = await audit_rows(markets_db)
    assert [(r.command, r.result) for r in rows][3:] == [
        ("balance", "ok"),
        ("merge", "ok"),
        ("merge", "error"),
        ("merge", "ok"),
        ("balance", "ok"),
        ("redeem", "error"),
        ("merge", "usage"),
        ("merge", "forbidden"),
        ("balance", "ok"),
    ]

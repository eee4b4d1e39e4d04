"""A live /merge through the offline runner: the service in live mode against the CLOB double and
the chain double (one ledger), ``[chain] rpc_url`` at the chain double. The card is the /order
card's mechanism: another user's tap is refused, the asker's Confirm sends exactly one merge
transaction (mined and confirmed by the chain double, then booked), a second tap is refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from eth_account import Account

from bot.offline import read_updates
from core.execution.positions import Position
from core.sim.mock_chain import MockChain
from polybot.cli.tools.tgbot_cmd import LocalOptions, local_session
from tests.integration.test_bot_confirmations import (
    BINARY,
    THROWAWAY_KEY,
    UPDATES,
    Live,
    audit,
    live,
    template_db,
    texts,
    the_card,
)

__all__ = ["live", "template_db"]  # fixtures, used by name
ADDRESS = Account.from_key(THROWAWAY_KEY).address


@pytest.fixture
async def chain(live: Live) -> AsyncIterator[MockChain]:
    double = MockChain.beside(live.clob, blocks_per_receipt_poll=1)
    await double.start()
    text = live.config.read_text()
    live.config.write_text(text + f'\n[chain]\nrpc_url = "{double.url}"\nconfirmations = 1\n')
    try:
        yield double
    finally:
        await double.close()


async def test_live_merge_card_sends_one_confirmed_transaction(live: Live, chain: MockChain) -> None:
    market = next(m for m in live.clob.markets.values() if m.question and not m.neg_risk and len(m.tokens) == 2)
    opts = LocalOptions(db_url=live.db_url, config=live.config, market=BINARY, outcome="Yes")
    async with local_session(opts) as session:
        service = session.service
        cid = service.registry.resolve(BINARY).condition_id
        yes, no = (t.token_id for t in service.registry.resolve(BINARY).tokens)
        assert market.condition_id  # the CLOB double lists the demo markets
        for token in (yes, no):  # what the account bought earlier, at the venue and in the books
            live.clob.give_shares(ADDRESS, token, Decimal(10))
        service.engine.positions.load(
            [Position(yes, cid, Decimal(10), Decimal("4.5")), Position(no, cid, Decimal(10), Decimal(5))]
        )
        t = await session.feed(read_updates(UPDATES / "live_merge.jsonl"))
    assert session.errors == []
    assert "sets mergeable: demo-btc-above-150k-2026: 10" in texts(t[0], "sendMessage")[0]
    card, buttons = the_card(t[1])
    assert card.startswith("<b>⚠️ LIVE merge — confirm</b>") and "mergePositions(" in card and "amount=10000000" in card
    assert [b["text"] for b in buttons[0]] == ["Confirm", "Cancel"]
    assert texts(t[2], "answerCallbackQuery") == ["This confirmation belongs to another user."]
    [result] = texts(t[3], "editMessageText")
    assert "merged 10 sets of demo-btc-above-150k-2026: 10 pUSD returned (transaction 0x" in result
    assert texts(t[4], "answerCallbackQuery") == ["Already handled."]
    assert "no complete YES+NO set held" in texts(t[5], "sendMessage")[0]
    assert "since start: merged 10 sets, 10 pUSD returned" in texts(t[6], "sendMessage")[0]
    assert chain.sent_raw == 1
    assert live.clob.ledger.held(ADDRESS, yes) == 0 and live.clob.ledger.held(ADDRESS, no) == 0
    rows = await audit(live.db_url, "merge", "merge.confirm", "order.confirm")
    assert ("1001", "merge", "ok") in rows and ("1003", "order.confirm", "wrong_user") in rows

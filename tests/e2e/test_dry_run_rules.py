"""``relayer-dry-run`` checks an order with the engine's rules before it signs anything: it never
signs what live mode would refuse (was: it signed orders below the market's minimum size, with
size 1e12, crossing orders under $1 and GTD orders expiring within the venue's one-minute threshold).

The CLOB double serves the market and its book over a real socket; the CLI runs in a thread
(it owns its own event loop)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import pytest

from core.sim.mock_clob import MockClobServer
from polybot.cli.main import main

KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"


@pytest.fixture
async def clob() -> AsyncIterator[MockClobServer]:
    async with MockClobServer() as server:
        yield server


def _binary(server: MockClobServer) -> str:
    return next(cid for cid, m in server.markets.items() if not m.neg_risk)


async def _dry_run(server: MockClobServer, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    argv = ["relayer-dry-run", _binary(server), "Yes", *args, "--base-url", server.url, "--private-key", KEY]
    code = await asyncio.to_thread(main, argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        # the book's best bid is 0.48: a SELL at 0.10 takes it, and 5 x 0.10 is under the venue's $1
        (["SELL", "0.10", "5"], "size_below_min: marketable GTC order notional 0.50 is below the venue's $1 minimum"),
        (["BUY", "0.45", "4"], "size_below_min: size 4 is below the market's minimum 5"),
        (["BUY", "0.45", "1000000000000"], "max_order_notional: order notional 450000000000.00 exceeds 50"),
        (["BUY", "0.45", "10", "--order-type", "GTD", "--expiration", "{soon}"], "invalid_expiration"),
        (["BUY", "0.45", "10", "--order-type", "FOK", "--post-only"], "invalid_order_type"),
    ],
)
async def test_an_order_live_mode_would_refuse_is_not_signed(
    clob: MockClobServer, capsys: pytest.CaptureFixture[str], args: list[str], reason: str
) -> None:
    args = [a.format(soon=int(time.time()) + 30) for a in args]
    code, out, err = await _dry_run(clob, capsys, *args)
    assert code == 1, (out, err)
    assert f"not signed: {reason}" in err and "Traceback" not in err
    assert "signature" not in out.lower()


async def test_orders_within_the_rules_are_signed(clob: MockClobServer, capsys: pytest.CaptureFixture[str]) -> None:
    # resting at the minimum size; a crossing BUY worth more than $1; a GTD two minutes out
    later = str(int(time.time()) + 120)
    for args in (
        ["BUY", "0.45", "5"],
        ["BUY", "0.52", "2"],
        ["BUY", "0.45", "10", "--order-type", "GTD", "--expiration", later],
    ):
        code, out, err = await _dry_run(clob, capsys, *args, "--json")
        assert code == 0, err
        body = json.loads(out)
        assert body["order"]["signature"].startswith("0x")
    assert body["orderType"] == "GTD" and body["order"]["expiration"] == later
    assert not clob.requests_to("POST", "/order")  # a dry run never posts

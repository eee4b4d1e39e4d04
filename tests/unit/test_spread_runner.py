"""The quoter runner, ``polybot quoter-run-replay`` and ``polybot quoter-run-ws`` (against the
local market-channel double), on a scripted recording of the demo binary market."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from decimal import Decimal as D
from pathlib import Path

import pytest

from core.feed.replay import iter_frames
from core.strategies.runner import QuoterRunner, RecordingQuoteSink
from core.strategies.spread import SpreadConfig, SpreadQuoter
from polybot.cli.main import main
from tests.unit.strategy_books import FeedScript, cid, gamma_items, tokens

SLUG = "demo-btc-above-150k-2026"
QUOTER_ARGS = ["--size", "10", "--min-spread-ticks", "3", "--requote-ticks", "2", "--inventory", "20"]


def btc_script() -> FeedScript:
    """YES of the demo binary market, tick 0.01; 10-share quotes, inventory 20, no skew.

    1 YES book 0.40 / 0.50: fair 0.45, half 0.04 -> quote 0.41 / 0.49
    2 NO book: not our token, no decision
    3 a bid of 0.41 joins: mid 0.455 moved 0.5 tick < 2 -> keep
    4 a taker sells 4 @ 0.41: our bid fills 4 (inventory 24, 6 left resting) -> keep
    5 the 0.50 ask goes, 0.44 arrives: mid 0.425 moved 2.5 ticks -> re-quote:
      half 0.015 - 0.01 = 0.005 -> floor(0.42) = 0.42 / ceil(0.43) = 0.43
    6 a bid of 0.42: spread 2 ticks < 3 -> pull
    7 a trade with nothing resting: no decision
    8 the 0.42 bid goes: 0.41 / 0.44, 3 ticks -> quote 0.42 / 0.43 again
    """
    s = FeedScript()
    yes, no = tokens(SLUG)
    m = cid(SLUG)
    s.snapshot(m, yes, [("0.40", "100")], [("0.50", "100")])
    s.snapshot(m, no, [("0.50", "100")], [("0.60", "100")])
    s.change(m, (yes, "BUY", "0.41", "50"))
    s.trade(m, yes, "SELL", "0.41", "4")
    s.change(m, (yes, "SELL", "0.50", "0"), (yes, "SELL", "0.44", "100"))
    s.change(m, (yes, "BUY", "0.42", "100"))
    s.trade(m, yes, "BUY", "0.44", "7")
    s.change(m, (yes, "BUY", "0.42", "0"))
    return s


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_quoter_run_replay(tmp_path: Path, db_with_markets: str, capsys: pytest.CaptureFixture[str]) -> None:
    rec = btc_script().write(tmp_path / "btc.jsonl")
    code, out = run_cli(capsys, "quoter-run-replay", str(rec), SLUG, "Yes", "--db-url", db_with_markets, *QUOTER_ARGS)
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].startswith(f"quoter-run-replay {rec}: {SLUG} Yes (tick 0.01, min size 5)")
    body = [line.split(" ", 4)[4] for line in lines[1:-1]]  # drop "frame N recv_ns T"
    assert body == [
        "quote bid 10 @ 0.41 / ask 10 @ 0.49 (fair 0.45)",
        "paper fill BUY 4 @ 0.41 -> inventory 24",
        "quote bid 10 @ 0.42 / ask 10 @ 0.43 (fair 0.425)",
        "pull: spread 2 ticks < 3",
        "quote bid 10 @ 0.42 / ask 10 @ 0.43 (fair 0.425)",
    ]
    assert [line.split()[1] for line in lines[1:-1]] == ["1", "4", "5", "6", "8"]
    summary = lines[-1]
    assert summary.startswith("summary: frames 8, decisions 6: quotes 3, keeps 2, pulls 1, idle 0;")
    assert "paper fills 1 (bought 4, sold 0, cash spent 1.64 pUSD), inventory 24" in summary
    assert "book ok 0.41 / 0.44" in summary


def test_quoter_replay_is_byte_identical_and_json(
    tmp_path: Path, db_with_markets: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rec = btc_script().write(tmp_path / "btc.jsonl")
    args = ["quoter-run-replay", str(rec), cid(SLUG), "yes", "--db-url", db_with_markets, *QUOTER_ARGS]
    for extra in ([], ["--json"]):
        first, second = run_cli(capsys, *args, *extra), run_cli(capsys, *args, *extra)
        assert first == second and first[0] == 0
    doc = json.loads(first[1])
    assert [e["event"] for e in doc["events"]] == ["quote", "fill", "quote", "pull", "quote"]
    assert doc["events"][0]["bid"] == {"price": "0.41", "size": "10"}
    assert doc["summary"]["inventory"] == "24"
    assert doc["token_id"] == tokens(SLUG)[0]


def test_disarmed_never_quotes(tmp_path: Path, db_with_markets: str, capsys: pytest.CaptureFixture[str]) -> None:
    rec = btc_script().write(tmp_path / "btc.jsonl")
    argv = ["quoter-run-replay", str(rec), SLUG, "Yes", "--db-url", db_with_markets, *QUOTER_ARGS, "--disarmed"]
    code, out = run_cli(capsys, *argv)
    assert code == 0
    assert ", DISARMED" in out.splitlines()[0]
    # frames 1, 3, 5, 6 and 8 changed the book; with nothing resting, the trade of frame 4 fills nothing
    assert "decisions 5: quotes 0, keeps 0, pulls 0, idle 5;" in out.splitlines()[-1]


def test_bad_arguments(tmp_path: Path, db_with_markets: str, capsys: pytest.CaptureFixture[str]) -> None:
    rec = btc_script().write(tmp_path / "btc.jsonl")
    base = ["quoter-run-replay", str(rec), SLUG]
    assert main([*base, "Maybe", "--db-url", db_with_markets]) == 2
    assert main([*base, "Yes", "--db-url", db_with_markets, "--size", "2"]) == 2  # below the 5-share minimum
    assert main(["quoter-run-ws", "http://x", SLUG, "Yes", "--db-url", db_with_markets, "--max-messages", "1"]) == 2
    assert main(["quoter-run-ws", "ws://127.0.0.1:1/ws", SLUG, "Yes", "--db-url", db_with_markets]) == 2
    err = capsys.readouterr().err
    assert "no outcome 'Maybe'" in err and "below min_size" in err and "ws:// or wss://" in err
    assert "--max-messages" in err


def test_runner_in_process_paper_fills_both_sides(tmp_path: Path) -> None:
    from core.markets import parse_markets

    (gm,), _ = parse_markets([gamma_items()[SLUG]])
    market = gm.info
    s = btc_script()
    yes = tokens(SLUG)[0]
    s.trade(market.condition_id, yes, "BUY", "0.43", "25")  # a taker lifts our 0.43 ask: 10 sold
    rec = s.write(tmp_path / "btc.jsonl")
    out: list[str] = []
    cfg = SpreadConfig(min_spread_ticks=3, requote_ticks=2, size=D(10), skew_per_share=D(0), max_inventory=D(100))
    runner = QuoterRunner(
        market, market.token("Yes"), SpreadQuoter(cfg), RecordingQuoteSink(out.append), inventory=D(20)
    )
    for recv_ns, frame in iter_frames(rec):
        runner.on_frame(recv_ns, frame)
    assert runner.inventory == D(14)  # 20 + 4 bought - 10 sold
    assert runner.stats.fills == 2 and runner.stats.sold == D(10)
    assert runner.stats.cash == D("1.64") - D("4.30")
    # the ask was filled completely: it is re-quoted (the side had gone)
    assert out[-1].rstrip("\n").split(" ", 4)[4] == "quote bid 10 @ 0.42 / ask 10 @ 0.43 (fair 0.425)"


@pytest.fixture
def mock_ws(tmp_path: Path) -> Iterator[str]:
    """The market-channel double streaming the scripted recording, on its own loop in a thread."""
    from core.sim.mock_ws import MockMarketServer

    rec = btc_script().write(tmp_path / "btc.jsonl")
    loop = asyncio.new_event_loop()
    server = MockMarketServer(recording=rec, rate_hz=200.0)
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(10), "mock-ws did not start"
    try:
        yield server.url
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_quoter_run_ws_against_the_local_double(
    mock_ws: str, db_with_markets: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # 2 snapshots on subscribe, then the 6 streamed frames of the script
    argv = ["quoter-run-ws", mock_ws, SLUG, "Yes", "--db-url", db_with_markets, *QUOTER_ARGS]
    code, out = run_cli(capsys, *argv, "--max-messages", "8", "--duration", "20", "--json")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["source"] == mock_ws
    assert [e["event"] for e in doc["events"]] == ["quote", "fill", "quote", "pull", "quote"]
    assert doc["summary"]["frames"] == 8
    assert doc["summary"]["inventory"] == "24"
    assert doc["summary"]["book"] == {"status": "ok", "best_bid": "0.41", "best_ask": "0.44"}

"""The Dutch runner and ``polybot dutch-run-replay`` on a scripted recording of the project's
demo markets (fixtures/gamma/markets.json), stored in a fresh SQLite database."""

from __future__ import annotations

import json
from decimal import Decimal as D
from pathlib import Path

import pytest

from core.strategies.dutch import DutchConfig
from core.strategies.runner import DutchRunner, RecordingDutchSink, simulate_dutch_fill
from core.types import MarketInfo
from polybot.cli.main import main
from tests.unit.strategy_books import FeedScript, cid, gamma_items, tokens

CUP = ["demo-cup-2026-aurora", "demo-cup-2026-borealis", "demo-cup-2026-cascade", "demo-cup-2026-dynamo"]
MAYOR = [
    "demo-city-mayor-2026-alice",
    "demo-city-mayor-2026-bruno",
    "demo-city-mayor-2026-chen",
    "demo-city-mayor-2026-other",
]


def cup_script() -> FeedScript:
    """The cup event (4 outcomes, fee-free, tick 0.01). With margin 0.01 and 1 tick of slippage:

    frames 1-4: snapshots. After the 4th, asks A 0.30x50 0.32x200 | B 0.25x80 0.27x200 |
      C 0.20x100 0.22x100 | D 0.15x60 0.17x300. Limits = level + 0.01:
        (0, 50]  0.31 + 0.26 + 0.21 + 0.16 = 0.94 (+0.01 = 0.95) ok
        (50, 60] A -> 0.33: 0.96 (0.97) ok ; (60, 80] D -> 0.18: 0.98 (0.99) ok
        (80, 100] B -> 0.28: 1.00 (1.01) no            -> #1: 80 sets, limits .33 .26 .21 .18
      expected cost 50x.30+30x.32 + 80x.25 + 80x.20 + 60x.15+20x.17 = 24.6+20+16+12.4 = 73
      -> edge 7 ; worst 80 x (1 - 0.98) = 1.6
    frame 5: a bid on A changes: same opportunity -> a repeat, not reported again
    frame 6: D's 0.15 level goes: D = 0.17x300. (0,50] 0.96 ; (50,80] A -> 0.98 ; (80,100] 1.00
      -> #2: 80 sets, same limits, cost 24.6+20+16+13.6 = 74.2 -> edge 5.8, worst 1.6
    frame 7: C's 0.20 goes: C = 0.22x100. (0,50] .31+.26+.23+.18 = 0.98 ok ; (50, 80] A -> 1.00 no
      -> #3: 50 sets, cost 15+12.5+11+8.5 = 47 -> edge 3, worst 50 x 0.02 = 1
    frame 8: A's 0.30 goes: 0.33+0.26+0.23+0.18 = 1.00 -> nothing
    frame 9: A's 0.30 x 50 is back -> #4 = #3 again (reported: the opportunity had gone)
    frame 10: a trade print and frame 11 a PONG: no book changed, no evaluation
    """
    s = FeedScript()
    a, b, c, d = (tokens(slug)[0] for slug in CUP)
    m = "0x" + "ab" * 32  # the venue's event-level market id; the runner keys on assets
    s.snapshot(m, a, [("0.28", "100")], [("0.30", "50"), ("0.32", "200")])
    s.snapshot(m, b, [("0.23", "100")], [("0.25", "80"), ("0.27", "200")])
    s.snapshot(m, c, [("0.18", "100")], [("0.20", "100"), ("0.22", "100")])
    s.snapshot(m, d, [("0.13", "100")], [("0.15", "60"), ("0.17", "300")])
    s.change(m, (a, "BUY", "0.28", "150"))
    s.change(m, (d, "SELL", "0.15", "0"))
    s.change(m, (c, "SELL", "0.20", "0"))
    s.change(m, (a, "SELL", "0.30", "0"))
    s.change(m, (a, "SELL", "0.30", "50"))
    s.trade(m, a, "BUY", "0.30", "10")
    s.pong()
    return s


def cup_markets() -> list[MarketInfo]:
    from core.markets import parse_markets

    parsed, _ = parse_markets([gamma_items()[slug] for slug in CUP])
    return [gm.info for gm in parsed]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_dutch_run_replay_reports_each_opportunity_and_a_summary(
    tmp_path: Path, db_with_markets: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rec = cup_script().write(tmp_path / "cup.jsonl")
    args = ["dutch-run-replay", str(rec), "demo-cup-2026-borealis", "--db-url", db_with_markets]
    args += ["--safety-margin-usdc", "0.01", "--slippage-ticks", "1"]
    code, out = run_cli(capsys, *args)
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].startswith(f"dutch-run-replay {rec}: neg_risk ")
    assert (
        "4 legs (demo-cup-2026-aurora, demo-cup-2026-borealis, demo-cup-2026-cascade, demo-cup-2026-dynamo)" in lines[0]
    )
    opps = [line for line in lines if line.startswith("#")]
    assert len(opps) == 4
    assert opps[0].startswith("#1 frame 4 ")
    assert "4 legs x 80 sets" in opps[0]
    assert (
        "demo-cup-2026-aurora@0.33 demo-cup-2026-borealis@0.26 demo-cup-2026-cascade@0.21 demo-cup-2026-dynamo@0.18"
        in opps[0]
    )
    assert "expected edge 7" in opps[0] and "worst case 1.6" in opps[0]
    assert "simulated fill: cost 73" in opps[0] and "edge 7" in opps[0]
    assert opps[1].startswith("#2 frame 6 ") and "expected edge 5.8" in opps[1]
    assert opps[2].startswith("#3 frame 7 ") and "x 50 sets" in opps[2] and "expected edge 3" in opps[2]
    assert opps[3].startswith("#4 frame 9 ") and "x 50 sets" in opps[3]
    summary = lines[-1]
    assert summary.startswith("summary: frames 11, ")
    assert "opportunities 4 (repeats 1), sets 260" in summary
    assert "expected edge 18.8" in summary and "worst-case edge 5.2" in summary
    assert "simulated edge 18.8" in summary and "incomplete fills 0" in summary
    assert "decode errors 0" in summary and "books ok at end 4/4" in summary


def test_replaying_twice_gives_byte_identical_output(
    tmp_path: Path, db_with_markets: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rec = cup_script().write(tmp_path / "cup.jsonl")
    for extra in ([], ["--json"]):
        args = ["dutch-run-replay", str(rec), cid("demo-cup-2026-aurora"), "--db-url", db_with_markets, *extra]
        first = run_cli(capsys, *args)
        second = run_cli(capsys, *args)
        assert first[0] == second[0] == 0
        assert first[1] == second[1]
        assert first[1]
    doc = json.loads(first[1])
    assert doc["kind"] == "neg_risk" and not doc["augmented"]
    assert [o["sets"] for o in doc["opportunities"]] == ["80", "80", "50", "50"]
    assert doc["opportunities"][0]["expected_edge"] == "7"
    assert all(o["simulated_complete"] for o in doc["opportunities"])
    assert doc["summary"]["opportunities"] == 4 and doc["summary"]["repeats"] == 1
    # the same market named by its neg-risk group id
    group = gamma_items()["demo-cup-2026-aurora"]["negRiskMarketID"]
    code, out = run_cli(capsys, "dutch-run-replay", str(rec), group, "--db-url", db_with_markets, "--json")
    assert code == 0 and json.loads(out)["opportunities"] == doc["opportunities"]


def test_fee_bps_override_and_binary_market(
    tmp_path: Path, db_with_markets: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # binary demo market, fee 0.07: YES 0.40 x 100, NO 0.55 x 100, 1 tick of slippage:
    #   market fee: 0.41 + 0.56 + 0.07 x (0.41 x 0.59 + 0.56 x 0.44) = 0.97 + 0.034181 (+0.01) > 1 -> nothing
    #   --fee-bps 0: 0.97 + 0.01 < 1 -> 100 sets; expected edge 100 x (1 - 0.95) = 5, worst 3
    s = FeedScript()
    yes, no = tokens("demo-btc-above-150k-2026")
    m = cid("demo-btc-above-150k-2026")
    s.snapshot(m, yes, [("0.38", "100")], [("0.40", "100"), ("0.45", "100")])
    s.snapshot(m, no, [("0.52", "100")], [("0.55", "100"), ("0.60", "100")])
    rec = s.write(tmp_path / "btc.jsonl")
    base = ["dutch-run-replay", str(rec), "demo-btc-above-150k-2026", "--db-url", db_with_markets, "--json"]
    code, out = run_cli(capsys, *base)
    assert code == 0 and json.loads(out)["opportunities"] == []
    code, out = run_cli(capsys, *base, "--fee-bps", "0")
    doc = json.loads(out)
    assert doc["kind"] == "binary" and [leg["label"] for leg in doc["legs"]] == ["Yes", "No"]
    (opp,) = doc["opportunities"]
    assert opp["sets"] == "100" and opp["expected_edge"] == "5" and opp["worst_edge"] == "3"
    assert [leg["price"] for leg in opp["legs"]] == ["0.41", "0.56"]


def test_augmented_event_is_never_traded(
    tmp_path: Path, db_with_markets: str, capsys: pytest.CaptureFixture[str]
) -> None:
    s = FeedScript()
    m = "0x" + "cd" * 32
    for slug in MAYOR:  # 4 x 0.05 = 0.20 for a "set" that may not pay out at all
        s.snapshot(m, tokens(slug)[0], [("0.040", "100")], [("0.050", "1000")], tick="0.001")
    rec = s.write(tmp_path / "mayor.jsonl")
    code, out = run_cli(capsys, "dutch-run-replay", str(rec), "demo-city-mayor-2026-chen", "--db-url", db_with_markets)
    assert code == 0
    assert "AUGMENTED event: never traded" in out.splitlines()[0]
    assert "opportunities 0" in out.splitlines()[-1]
    assert not [line for line in out.splitlines() if line.startswith("#")]


def test_cli_errors_are_one_line(tmp_path: Path, db_with_markets: str, capsys: pytest.CaptureFixture[str]) -> None:
    rec = cup_script().write(tmp_path / "cup.jsonl")
    assert main(["dutch-run-replay", str(tmp_path / "missing.jsonl"), "x", "--db-url", db_with_markets]) == 1
    assert main(["dutch-run-replay", str(rec), "no-such-market", "--db-url", db_with_markets]) == 2
    assert main(["dutch-run-replay", str(rec), CUP[0], "--db-url", db_with_markets, "--fee-bps", "-5"]) == 2
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    assert main(["dutch-run-replay", str(rec), CUP[0], "--db-url", empty]) == 1
    err = capsys.readouterr().err
    assert "recording not found" in err
    assert "unknown market" in err
    assert "migrate --apply" in err


def test_runner_in_process_matches_and_simulates(tmp_path: Path) -> None:
    from core.feed.replay import iter_frames

    rec = cup_script().write(tmp_path / "cup.jsonl")
    markets = cup_markets()
    out: list[str] = []
    cfg = DutchConfig(safety_margin_usdc=D("0.01"), slippage_ticks=1)
    sink = RecordingDutchSink(write=out.append, rates={})
    runner = DutchRunner(markets, cfg, sink)
    sink.rates = runner.rates()
    seen = []
    for recv_ns, frame in iter_frames(rec):
        opp = runner.on_frame(recv_ns, frame)
        if opp is not None:
            seen.append(opp)
            fill = simulate_dutch_fill(opp, runner.books, runner.rates())
            assert fill.complete and fill.edge == opp.total_edge
    assert [o.sets for o in seen] == [D(80), D(80), D(50), D(50)]
    assert runner.stats.evaluations == 9  # frames 1-9 touched a leg; the trade and the PONG did not
    assert len(out) == 4

"""`polybot demo --duration 3` as a user runs it: exit 0, a transcript for each phase, and a
summary that shows ingested frames and at least one order (one of them live, confirmed in chat).
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest

from bot.fake_api import png_size
from tests.conftest import REPO_ROOT
from tests.procs import console_script, run

BAD_SIGNS = ("Task was destroyed but it is pending", "never awaited", "Traceback")


def _number(pattern: str, text: str) -> int:
    match = re.search(pattern, text, re.MULTILINE)
    assert match, f"{pattern!r} not in:\n{text}"
    return int(match.group(1))


@pytest.mark.slow(seconds=13)
def test_demo_runs_offline_and_summarises(tmp_path: Path, clean_env: dict[str, str]) -> None:
    env = {**clean_env, "PYTHONWARNINGS": "default"}
    proc = run(
        [console_script("polybot"), "demo", "--duration", "3", "--var-dir", str(tmp_path / "var")],
        cwd=REPO_ROOT,
        env=env,
        text=True,
        timeout_s=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    for phase in ("paper", "dry-run", "live"):
        assert f"===== {phase} mode: Telegram transcript =====" in out
    assert _number(r"^frames ingested\s+(\d+)", out) > 0
    assert _number(r"^orders\s+(\d+)", out) >= 1
    # the confirmed /order, then a YES and a NO that fill so that the live phase holds a set to merge
    assert _number(r"^live orders posted to the CLOB double: (\d+)", out) == 3
    assert re.search(r"^merge transactions sent to the chain double: 1 \(confirmed 1\)$", out, re.MULTILINE), out
    merged = re.search(r"^paper: merged ([\d.]+) sets, ([\d.]+) pUSD returned$", out, re.MULTILINE)
    assert merged and Decimal(merged.group(1)) > 0 and merged.group(1) == merged.group(2), out[-3000:]
    assert re.search(r"^live: merged 10 sets, 10 pUSD returned$", out, re.MULTILINE), out[-3000:]
    assert "⚠️ LIVE merge — confirm" in out and "mergePositions(" in out  # the live card, with the call
    # printed as the person reads it: no tag, no entity
    assert not re.search(r"</?(b|i|code|pre|a)>|&(amp|lt|gt|quot);", out), re.findall(r".*</?b>.*|.*&amp;.*", out)[:5]
    assert "(transaction 0x" in out and "confirmed)" in out  # the card's answer after Confirm
    assert _number(r"^commands audited\s+(\d+)", out) > 0
    # the chat shows the refusals and the confirmation flow, not just successes
    assert "   This bot is private." in out
    assert "   /arm needs the operator role." in out
    assert "   Not allowed." in out  # the viewer taps the trader's Confirm button
    assert "   Already handled." in out and "   Expired." in out
    # the paper phase's Dutch groups, as they happened: every group sent is accounted for
    err = proc.stderr
    sent = _number(r"^paper: groups sent (\d+), ", err)
    completed = _number(r"^paper: groups sent \d+, completed (\d+), ", err)
    one_legged = _number(r"^paper: .*, one-legged (\d+)", err)
    failed = _number(r"^paper: .*, failed (\d+), ", err)
    pending = _number(r"^paper: .*, pending (\d+); ", err)
    assert sent == completed + one_legged + failed + pending, err[-3000:]
    if one_legged:
        causes = re.search(
            r"one-legged \d+ \(venue rejected (\d+), book moved (\d+), latency budget exceeded (\d+)\)", err
        )
        assert causes and sum(int(n) for n in causes.groups()) == one_legged, err[-3000:]
    assert re.search(r"^paper: .*expected edge -?[\d.]+ pUSD, realised edge -?[\d.]+ pUSD$", err, re.MULTILINE)
    assert re.search(r"^paper: complete sets [\d.]+, locked edge -?[\d.]+ pUSD; ", err, re.MULTILINE), err[-3000:]
    for bad in BAD_SIGNS:
        assert bad not in proc.stderr, f"{bad!r} in stderr:\n{proc.stderr[-3000:]}"
    assert (tmp_path / "var" / "demo.db").is_file()
    # the two pictures the paper phase asked for, saved by the Bot API double under the var directory
    charts = re.findall(r"^chart saved\s+(\S+)$", out, re.MULTILINE)
    assert [Path(c).name for c in charts] == ["chart-demo-btc-above-150k-2026.png", "chart-pnl-7d.png"], out[-2000:]
    for chart in charts:
        png = Path(chart).read_bytes()
        assert Path(chart).parent == tmp_path / "var" / "charts"
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and png_size(png) == (900, 1000)
    assert "[photo 900x1000, " in out and f"saved to {charts[0]}]" in out

"""`polybot markets --watch-preview` end to end: markets served by `polybot mock-gamma` (a subprocess),
stored by refresh-markets, and the [[feed.watch]] rules of a configuration applied to them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from core.sim.mock_gamma import make_market
from polybot.cli.main import main
from tests.conftest import REPO_ROOT
from tests.procs import Lines, console_script, running

START_TIMEOUT_S = 30.0
POLYBOT = console_script("polybot")


def _market(slug: str, gamma_id: int, tag: str, volume: int, liquidity: int, **kw: object) -> dict[str, object]:
    extra = {"volume24hr": volume, "liquidityNum": liquidity, "tags": [{"label": tag.title(), "slug": tag}]}
    return make_market(slug, f"Will {slug} happen?", gamma_id=gamma_id, extra=extra, **kw)  # type: ignore[arg-type]  # test data: keyword pass-through


MARKETS = [
    _market("btc-up", 1, "crypto", 5000, 1200),
    _market("eth-up", 2, "crypto", 3000, 800, end_date="2026-09-30T12:00:00Z"),
    _market("sol-up", 3, "crypto", 100, 50),
    _market("election", 4, "politics", 9000, 20000),
    _market("old-crypto", 5, "crypto", 99999, 1, closed=True, active=False),
]

RULES = """
[[feed.watch]]
tag = "crypto"
max_assets = 4

[[feed.watch]]
min_volume_24h = 8000
"""


@pytest.fixture
def stored(tmp_path: Path, db_url: str) -> str:
    path = tmp_path / "markets.json"
    path.write_text(json.dumps(MARKETS))
    with running(
        [POLYBOT, "mock-gamma", "--port", "0", "--markets", str(path)],
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        (url,) = Lines(proc, proc.stdout).wait_lines(1, START_TIMEOUT_S)
        assert main(["refresh-markets", url, "--db-url", db_url, "--migrate", "--all"]) == 0
    return db_url


def _config(tmp_path: Path, db: str, rules: str = RULES) -> str:
    path = tmp_path / "service.toml"
    path.write_text(f'[db]\nurl = "{db}"\n{rules}')
    return str(path)


def test_the_rules_selection_as_a_table(stored: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["markets", "--watch-preview", "--config", _config(tmp_path, stored)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == (
        "rule 1 (tag crypto): 3 matched, 2 kept, 4 of max_assets 4 assets; max_assets cut 1 more matching market(s)"
    ), out
    assert lines[1].split() == ["SLUG", "VOLUME", "24H", "LIQUIDITY", "ENDS", "ASSETS", "QUESTION"]
    assert lines[2].split()[:6] == ["btc-up", "5000", "1200", "2026-12-31", "23:59", "2"]
    assert lines[3].split()[:6] == ["eth-up", "3000", "800", "2026-09-30", "12:00", "2"]
    assert "Will eth-up happen?" in lines[3] and "sol-up" not in out and "old-crypto" not in out
    assert lines[4] == "rule 2 (24h volume >= 8000): 1 matched, 1 kept, 2 of max_assets 1000 assets (nothing cut)"
    assert lines[6].split()[:3] == ["election", "9000", "20000"]
    assert lines[-1] == "total: 3 market(s), 6 asset(s) followed (of 4 open stored market(s))"


def test_the_rules_selection_as_json_with_the_config_database(
    stored: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    # no --db-url: the configuration's database
    assert main(["markets", "--watch-preview", "--config", _config(tmp_path, stored), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["stored_open_markets"], doc["markets"], doc["assets"]) == (4, 3, 6)
    crypto, busy = doc["rules"]
    assert (crypto["matched"], crypto["kept"], crypto["assets"], crypto["max_assets"], crypto["truncated"]) == (
        3,
        2,
        4,
        4,
        1,
    )
    assert [m["slug"] for m in crypto["markets"]] == ["btc-up", "eth-up"]
    btc = crypto["markets"][0]
    assert (btc["volume_24h"], btc["liquidity"], btc["end_date"]) == ("5000", "1200", "2026-12-31T23:59:59+00:00")
    assert btc["question"] == "Will btc-up happen?" and len(btc["assets"]) == 2
    assert [m["slug"] for m in busy["markets"]] == ["election"] and busy["truncated"] == 0


def test_no_rules_says_so(stored: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path, "sqlite:///nowhere.db", rules="")
    capsys.readouterr()
    assert main(["markets", "--watch-preview", "--config", config, "--db-url", stored]) == 0
    assert capsys.readouterr().out.strip() == f"no [[feed.watch]] rules in {config}: nothing is selected"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--watch-preview"], "--watch-preview needs --config FILE"),
        (["--watch-preview", "--config", "CONFIG", "btc"], "FILTER, --open and --limit do not apply"),
        (["--config", "CONFIG"], "--config is only read by --watch-preview"),
    ],
)
def test_bad_combinations_exit_2(
    tmp_path: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, "sqlite:///unused.db")
    assert main(["markets", *[config if a == "CONFIG" else a for a in args]]) == 2
    assert message in capsys.readouterr().err

"""Malformed input gets a clear one-line answer, never a crash (the cases of bench/bad_input.py).

Coverage is checked cheaply: every command of the real CLI parser and of ``bot.handlers.COMMANDS``
has cases, and the generator refuses to run when one has none. Every Telegram case is sent to a
running paper-mode Service; a representative sample of CLI cases runs as subprocesses. The full
table (every CLI case) is ``uv run python bench/bad_input.py``, which writes docs/bad-input.md.
"""

from __future__ import annotations

import importlib.util
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent.parent


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("polybot_bench_bad_input", REPO_ROOT / "bench" / "bad_input.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_every_cli_and_telegram_command_has_bad_input_cases(tmp_path: Path) -> None:
    bench = _bench()
    commands = bench.cli_commands()
    assert {"migrate", "ingest-ws", "config show", "config check", "tgbot-run-local"} <= set(commands)
    assert bench.cli_gaps(bench.cli_cases(tmp_path)) == []
    assert bench.telegram_gaps(bench.TELEGRAM_CASES) == []


def _doc_rows(section: str) -> list[list[str]]:
    text = (REPO_ROOT / "docs" / "bad-input.md").read_text()
    body = text.split(f"\n## {section}", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in body.splitlines() if line.startswith("| ") and not line.startswith("| command")]
    return [[cell.strip() for cell in row.strip("|").split(" | ")] for row in rows]


def test_the_committed_table_is_the_generator_s_current_one(tmp_path: Path) -> None:
    """docs/bad-input.md takes minutes to generate, so the suite does not regenerate it; it checks
    that the committed table has every case the generator has today, for every command, none flagged."""
    bench = _bench()
    cli, telegram = _doc_rows("CLI"), _doc_rows("Telegram")
    cases = bench.cli_cases(tmp_path)
    assert len(cli) == len(cases), "CLI cases changed: regenerate with uv run python bench/bad_input.py"
    assert len(telegram) == len(bench.TELEGRAM_CASES), "Telegram cases changed: regenerate the table"
    tree = bench._command_tree()
    tried = [row[1].strip("`").split()[1:] for row in cli]  # `polybot NAME [SUB] ...`
    documented = {f"{w[0]} {w[1]}" if len(w) > 1 and w[1] in tree.get(w[0], ()) else w[0] for w in tried if w}
    assert not [c for c in bench.cli_commands() if c not in documented], "a command without a row"
    assert {row[0].lstrip("/") for row in telegram} >= set(__import__("bot.handlers").handlers.COMMANDS)
    assert {row[-1] for row in cli + telegram} == {"ok"}, "a flagged case is committed"


def test_a_command_without_cases_stops_the_generator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bench = _bench()
    cases = bench.cli_cases(tmp_path)
    without = [c for c in cases if c[0] != "mock-ws" and bench.case_command(c) != "config check"]
    assert bench.cli_gaps(without) == ["config check", "mock-ws"]
    assert bench.telegram_gaps([t for t in bench.TELEGRAM_CASES if not t.startswith("/kill")]) == ["kill"]

    monkeypatch.setattr(bench, "cli_cases", lambda tmp: [c for c in cases if c[0] != "mock-ws"])
    out = tmp_path / "bad-input.md"
    assert bench.main(["--out", str(out)]) == 1
    assert not out.exists()  # nothing ran, nothing written


def test_cli_sample_answers_malformed_input_in_one_line(tmp_path: Path) -> None:
    """One case of each kind the review of issue 13 found answered badly, plus the classic ones."""
    bench = _bench()
    wanted = [
        ("relayer-dry-run", "1e30"),  # was: InvalidOperation: [<class 'decimal.InvalidOperation'>]
        ("relayer-approve-usdc", "nan"),  # was: accepted
        ("migrate", ""),  # was: migrated the default database
        ("migrate", "127.0.0.1:abc"),  # was: ValueError: invalid literal for int()
        ("record-ws", str(tmp_path)),  # was: IsADirectoryError
        ("replay-book", "nan"),  # was: accepted
        ("ingest-ws", "0"),  # --staleness-ms 0: was accepted
        ("run-service", "nan"),  # was: accepted
        ("smoke-live", "1e30"),
        ("(unknown command)", "frobnicate"),
        ("tgbot-run-local", bench.MISSING),
    ]
    cases = bench.cli_cases(tmp_path)
    sample = [next(c for c in cases if c[0] == name and any(needle in a for a in c[1])) for name, needle in wanted]
    assert not any(bench.FEED in args for _, args in sample)
    env = bench.cli_env()
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda c: bench.run_cli(c, env), sample))
    for r in results:
        assert r.flag == "", (r.given, r.flag, r.answer)
        assert r.code in ("1", "2") and r.answer.startswith("polybot"), (r.given, r.answer)
        assert "secretpw" not in r.answer


async def test_every_telegram_command_answers_malformed_input_clearly() -> None:
    bench = _bench()
    results = await bench.run_telegram()
    assert len(results) == len(bench.TELEGRAM_CASES)
    flagged = [(r.given, r.flag, r.answer) for r in results if r.flag]
    assert not flagged
    for r in results:
        assert r.answer and "Traceback" not in r.answer and "Internal error" not in r.answer

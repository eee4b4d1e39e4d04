"""Malformed input gets a clear one-line answer, never a crash (the cases of bench/bad_input.py).

Every Telegram command of the bad-input table is sent to a running paper-mode Service; a sample
of CLI commands runs as subprocesses. The full table (every CLI command) is
``uv run python bench/bad_input.py``, which writes docs/bad-input.md.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parent.parent.parent


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("polybot_bench_bad_input", REPO_ROOT / "bench" / "bad_input.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


async def test_every_telegram_command_answers_malformed_input_clearly() -> None:
    bench = _bench()
    results = await bench.run_telegram()
    assert len(results) == len(bench.TELEGRAM_CASES)
    flagged = [(r.given, r.flag, r.answer) for r in results if r.flag]
    assert not flagged
    for r in results:
        assert r.answer and "Traceback" not in r.answer and "Internal error" not in r.answer


def test_cli_commands_answer_malformed_input_in_one_line(tmp_path: Path) -> None:
    bench = _bench()
    wanted = {"(unknown command)", "migrate", "run-service", "replay-book", "smoke-live", "tgbot-run-local", "health"}
    cases = [c for c in bench.cli_cases(tmp_path) if c[0] in wanted]
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLYBOT_")}
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda c: bench.run_cli(c, env), cases))
    assert len(results) >= 12
    for r in results:
        assert r.flag == "", (r.given, r.flag, r.answer)
        assert r.code in ("1", "2") and r.answer.startswith("polybot"), (r.given, r.answer)

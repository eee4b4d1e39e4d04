"""The house's written rules, checked on every run of the suite (issue 14, points 6, 7 and 10).

- mypy (strict, configured in pyproject.toml) over core/, bot/ and polybot/: zero errors;
- import-linter's contracts (pyproject.toml [tool.importlinter]): the layers of
  ../shared/ARCHITECTURE.md and the forbidden imports;
- small rooms: no module over 500 lines (declarative tables excepted), no function of radon grade
  E or F outside tests;
- every ``type: ignore`` names its error code.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.procs import run

BIN = Path(sys.executable).parent
SOURCE_DIRS = ("core", "bot", "polybot")
MAX_MODULE_LINES = 500
DECLARATIVE = {
    "core/metrics/catalog.py",  # the metric table
    "core/metrics/dashboard.py",  # the Grafana panels
}


def _sources() -> list[Path]:
    out: list[Path] = []
    for top in SOURCE_DIRS:
        out += [p for p in (REPO_ROOT / top).rglob("*.py") if "migrations" not in p.parts]
    return sorted(out)


def _mypy_cache() -> Path:
    """mypy's incremental cache, kept per user and interpreter rather than per checkout: a fresh
    clone on a machine that has checked the project before re-checks only what differs (mypy
    validates every cached module against its source's hash), ~3 CPU-s instead of ~20."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "polybot" / f"mypy-py{sys.version_info.major}{sys.version_info.minor}"


@pytest.mark.slow(seconds=38)  # a machine that never ran it has no mypy cache
def test_mypy_strict_is_clean() -> None:
    env = {**os.environ, "MYPY_CACHE_DIR": str(_mypy_cache())}
    done = run([str(BIN / "mypy")], cwd=REPO_ROOT, timeout_s=600, text=True, env=env)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_import_layers_hold() -> None:
    done = run([str(BIN / "lint-imports")], cwd=REPO_ROOT, timeout_s=300, text=True)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_no_module_is_over_500_lines() -> None:
    big = {
        str(p.relative_to(REPO_ROOT)): n
        for p in _sources()
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert {k: v for k, v in big.items() if k not in DECLARATIVE} == {}


def test_no_function_of_radon_grade_e_or_f() -> None:
    paths = [str(REPO_ROOT / top) for top in SOURCE_DIRS]
    done = run(
        [str(BIN / "radon"), "cc", "-s", "-n", "E", "--exclude", "*/migrations/*", *paths], timeout_s=120, text=True
    )
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout


def test_every_type_ignore_names_its_error_code_and_a_reason() -> None:
    """``# type: ignore[code]  # why``: the code says what is silenced, the comment why it is right."""
    explained = re.compile(r"type:\s*ignore\[[\w,-]+\]\s+#\s*\S")
    bare = [
        f"{p.relative_to(REPO_ROOT)}:{n}"
        for p in _sources()
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if re.search(r"type:\s*ignore", line) and not explained.search(line)
    ]
    assert bare == []


def test_the_checks_can_fail(tmp_path: Path) -> None:
    """The tools really run and really judge: a type error fails mypy, a broken contract fails
    import-linter (so a green run above means something)."""
    bad = tmp_path / "bad.py"
    bad.write_text("x: int = 'not an int'\n")
    done = run([str(BIN / "mypy"), "--strict", "--no-incremental", str(bad)], cwd=tmp_path, timeout_s=300, text=True)
    assert done.returncode == 1 and "Incompatible types in assignment" in done.stdout, done.stdout
    contract = tmp_path / "contract.toml"
    contract.write_text(
        '[tool.importlinter]\nroot_packages = ["core"]\n\n'
        "[[tool.importlinter.contracts]]\n"
        'name = "a contract the code breaks on purpose"\n'
        'type = "forbidden"\n'
        'source_modules = ["core.service"]\n'
        'forbidden_modules = ["core.app"]\n'
    )
    done = run([str(BIN / "lint-imports"), "--config", str(contract)], cwd=REPO_ROOT, timeout_s=300, text=True)
    assert done.returncode == 1 and "BROKEN" in done.stdout, done.stdout[-2000:]

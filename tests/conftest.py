"""Fixtures shared by every test layer.

- ``shared_fixtures``: the real Polymarket captures in ../shared/fixtures/polymarket
  (skips with a reason when absent; never copied into the repo).
- ``sqlite_url`` / ``pg_url``: fresh, empty databases; ``db_url`` (parametrised over both): a
  database at the schema's head holding no rows (without a schema: ``@pytest.mark.empty_db``).
  PostgreSQL tests skip when the server is down, unless POLYBOT_REQUIRE_PG=1 (CI), where
  they fail instead.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.migrated_databases import MigratedDatabases, pg_admin

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_FIXTURES = REPO_ROOT.parent / "shared" / "fixtures" / "polymarket"
PROJECT_FIXTURES = REPO_ROOT / "fixtures"
PG_HOST, PG_PORT = "127.0.0.1", 5432
PG_ADMIN_URL = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/test"


def pytest_configure(config: pytest.Config) -> None:
    """A shell starts background jobs with SIGINT ignored, and an ignored signal stays ignored in
    every child across exec: the servers tests stop with Ctrl-C would never see it. Catching it
    here means children start with the default disposition again (a caught signal is reset on exec)."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if not hasattr(config, "workerinput"):  # once, in the controller, before any worker starts
        _compile_sources()


_NEVER_IMPORTED = re.compile(r"/site-packages/(mypy|mypyc)/|/site-packages/[^/]+/(.*/)?(tests?|testing)/")
"""Installed files no test imports: mypy's modules run compiled (its ``.py`` files stand beside
the ``.so`` that is loaded), and packages' own test suites (a quarter of the bytes, ~2 s)."""


def _compile_sources() -> None:
    """The suite starts a few hundred interpreters (every CLI and service test). Where the
    environment says PYTHONDONTWRITEBYTECODE (these machines do), each of them would compile every
    project module it imports again: about half of an interpreter's start-up. Compiling once
    here (compileall writes whatever that variable says; Python still reads what is there) spares
    it. The installed packages too: uv installs without bytecode, and its ``compile-bytecode``
    setting would re-check every file at each ``uv run`` (a quarter of a second per command).
    Unchanged files are skipped, so a later session pays a fraction of a second."""
    import compileall
    import sysconfig

    tops = [REPO_ROOT / top for top in ("core", "bot", "polybot", "tests")]
    for top in [*tops, Path(sysconfig.get_paths()["purelib"])]:
        compileall.compile_dir(top, quiet=2, workers=0, rx=_NEVER_IMPORTED)
    from tests.rewrite_cache import plugin_sources, write_all

    write_all(REPO_ROOT / "tests", plugin_sources())


def hatch_build_module() -> ModuleType:
    """The build hook (hatch_build.py at the top of the checkout), imported as the build imports it."""
    sys.path.insert(0, str(REPO_ROOT))
    try:
        import hatch_build
    finally:
        sys.path.remove(str(REPO_ROOT))
    return hatch_build


@pytest.fixture(scope="session")
def shared_fixtures() -> Path:
    if not SHARED_FIXTURES.is_dir():
        pytest.skip(f"real Polymarket captures not found at {SHARED_FIXTURES} (third-party data, not in the repo)")
    return SHARED_FIXTURES


def load_shared(rel: str) -> Any:
    """Load a JSON file from the shared captures, skipping the test when it is absent."""
    path = SHARED_FIXTURES / rel
    if not path.is_file():
        pytest.skip(f"shared capture {rel} not found under {SHARED_FIXTURES}")
    return json.loads(path.read_text())


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'polybot.db'}"


def _pg_up() -> bool:
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=1):
            return True
    except OSError:
        return False


def _require_pg() -> None:
    if not _pg_up():
        if os.environ.get("POLYBOT_REQUIRE_PG") == "1":
            pytest.fail(f"PostgreSQL is required (POLYBOT_REQUIRE_PG=1) but {PG_HOST}:{PG_PORT} is not reachable")
        pytest.skip(f"PostgreSQL not reachable at {PG_HOST}:{PG_PORT}")


def fresh_pg_database() -> Iterator[str]:
    """Create a fresh PostgreSQL database, yield its URL, drop it afterwards."""
    _require_pg()
    name = f"polybot_test_{uuid.uuid4().hex[:12]}"
    pg_admin(PG_ADMIN_URL, f'CREATE DATABASE "{name}"')
    try:
        yield _pg_url_of(name)
    finally:
        pg_admin(PG_ADMIN_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _pg_url_of(name: str) -> str:
    return f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{name}"


@pytest.fixture(scope="session")
def _migrated_databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MigratedDatabases]:
    databases = MigratedDatabases(tmp_path_factory.mktemp("migrated"), PG_ADMIN_URL, _pg_url_of)
    try:
        yield databases
    finally:
        databases.close()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    yield from fresh_pg_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, _migrated_databases: MigratedDatabases) -> Iterator[str]:
    """Parametrised over both backends: every storage test runs on SQLite and PostgreSQL.

    The database is already at the schema's head, and empty (one migrated per worker, emptied
    or copied for each test: tests/migrated_databases.py), unless the test is marked ``empty_db``."""
    empty = request.node.get_closest_marker("empty_db") is not None
    if request.param == "sqlite":
        path = tmp_path / "polybot.db"
        if not empty:
            _migrated_databases.copy_sqlite(path)
        yield f"sqlite:///{path}"
    elif empty:
        yield from fresh_pg_database()
    else:
        _require_pg()
        yield _migrated_databases.pg_at_head()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The tests that need the shared Polymarket captures skip where they are absent (outside CI):
    one line says so, with the count, rather than one reason per test."""
    skipped = terminalreporter.stats.get("skipped", [])
    missing = [r for r in skipped if str(SHARED_FIXTURES) in str(getattr(r, "longrepr", ""))]
    if missing:
        terminalreporter.write_line(
            f"{len(missing)} test(s) skipped: the real Polymarket captures are not at {SHARED_FIXTURES} "
            "(third-party data, not in the repo; CI has them)"
        )


if os.environ.get("POLYBOT_TEST_CPU_LOG"):  # where the suite's CPU goes: one JSON line per test phase

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
        import resource
        import time

        def cpu() -> float:
            own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
            return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

        started, wall = cpu(), time.perf_counter()
        yield
        line = {
            "test": item.nodeid,
            "cpu": round(cpu() - started, 3),
            "wall": round(time.perf_counter() - wall, 3),
            "end": round(time.time(), 3),
            "worker": os.environ.get("PYTEST_XDIST_WORKER", ""),
        }
        with open(os.environ["POLYBOT_TEST_CPU_LOG"], "a", encoding="utf-8") as log:
            log.write(json.dumps(line) + "\n")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist, every test marked ``slow`` starts first, spread over the workers
    (tests/xdist_order.py says why)."""
    from tests.xdist_order import SLOW_DEFAULT_S, slow_first

    workers = int(getattr(config, "workerinput", {}).get("workercount", 0))

    def seconds(item: pytest.Item) -> float | None:
        marker = item.get_closest_marker("slow")
        return None if marker is None else float(marker.kwargs.get("seconds", SLOW_DEFAULT_S))

    items[:] = slow_first(items, workers, seconds, lambda item: item.nodeid.split("::")[0])

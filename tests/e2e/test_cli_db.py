"""``polybot migrate`` and ``polybot status`` end to end (in-process and via the console script)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from core.defaults import DB_URL_ENV
from core.store.migrate import head_revision
from core.store.models import TABLES
from polybot.cli.main import main
from tests.conftest import REPO_ROOT
from tests.procs import console_script
from tests.procs import run as run_process

pytestmark = pytest.mark.empty_db  # these tests watch migrations happen

HEAD = head_revision()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("command", ["migrate", "status"])
def test_help_has_an_example(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    out = capsys.readouterr().out
    assert exc.value.code == 0
    assert "example:" in out and f"polybot {command} " in out and "--db-url" in out


def test_commands_are_listed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "migrate" in out and "status" in out


def test_print_sql_needs_no_server(capsys: pytest.CaptureFixture[str]) -> None:
    """PostgreSQL through the real console script (the host does not even resolve); SQLite in-process."""
    started = time.monotonic()
    url = "postgresql://postgres:pw@no-such-host.invalid:5432/polybot"
    proc = run_process(
        [console_script("polybot"), "migrate", "--db-url", url, "--print-sql"], cwd=REPO_ROOT, text=True, timeout_s=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "JSONB" in proc.stdout and "CREATE TABLE orders" in proc.stdout
    assert f"'{HEAD}'" in proc.stdout  # stamps the version table
    assert "pw@" not in proc.stdout + proc.stderr
    assert time.monotonic() - started < 60

    code, out, _ = run(capsys, "migrate", "--db-url", "sqlite:////no/such/dir/polybot.db", "--print-sql")
    assert code == 0 and "CREATE TABLE book_deltas" in out and f"'{HEAD}'" in out
    assert not Path("/no/such/dir").exists()


def test_apply_twice_and_current(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "migrate", "--db-url", db_url, "--current")
    assert code == 0 and out.startswith("empty database (no schema)")

    code, out, _ = run(capsys, "migrate", "--db-url", db_url, "--apply")
    assert (code, out.strip()) == (0, f"migrated from empty to {HEAD} (head)")

    code, out, _ = run(capsys, "migrate", "--db-url", db_url, "--apply")
    assert (code, out.strip()) == (0, f"schema already at head ({HEAD}): nothing to do")

    code, out, _ = run(capsys, "migrate", "--db-url", db_url, "--current")
    assert (code, out.strip()) == (0, f"{HEAD} (head)")

    code, out, _ = run(capsys, "migrate", "--db-url", db_url, "--current", "--json")
    assert code == 0 and json.loads(out) | {"message": ""} == {
        "revision": HEAD,
        "head": HEAD,
        "empty": False,
        "message": "",
    }


def test_status_on_empty_then_migrated_database(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "status", "--db-url", db_url)
    assert code == 0, err
    assert "empty" in out and "polybot migrate --apply" in out

    code, out, _ = run(capsys, "status", "--db-url", db_url, "--json")
    assert code == 0 and json.loads(out)["empty"] is True

    assert run(capsys, "migrate", "--db-url", db_url, "--apply")[0] == 0
    code, out, _ = run(capsys, "status", "--db-url", db_url)
    assert code == 0
    assert f"schema    {HEAD} (head)" in out and "armed     no" in out and "assets    0 tracked" in out

    code, out, _ = run(capsys, "status", "--db-url", db_url, "--json", "--verbose")
    data = json.loads(out)
    assert data["empty"] is False and data["schema"]["at_head"] is True
    assert data["tables"] == dict.fromkeys(TABLES, 0)


def test_default_url_creates_var_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(DB_URL_ENV, raising=False)
    code, out, _ = run(capsys, "status")
    assert code == 0 and "empty" in out
    assert not (tmp_path / "var").exists()  # a read command does not create the database
    code, out, _ = run(capsys, "migrate", "--apply")
    assert code == 0 and "migrated" in out
    assert (tmp_path / "var" / "polybot.db").is_file()


@pytest.mark.parametrize("argv", [["migrate", "--apply"], ["migrate", "--current"], ["status"]])
def test_unreachable_database_is_one_line_exit_1_without_password(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    url = "postgresql://polybot:pw-very-secret@127.0.0.1:1/polybot"
    code, out, err = run(capsys, *argv, "--db-url", url)
    assert code == 1
    assert "pw-very-secret" not in out + err
    assert "postgresql://polybot:***@127.0.0.1:1/polybot" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["migrate", "--db-url", "mysql://u:pw-very-secret@h/db", "--apply"],
        ["status", "--db-url", "oracle://h/db"],
        ["status", "--limit", "-1"],
        ["migrate", "--print-sql", "--db-url", ""],
        ["migrate", "--current", "--db-url", "postgresql://u:pw-very-secret@127.0.0.1:nope/db"],
    ],
)
def test_bad_url_or_option_is_usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert "pw-very-secret" not in out + err
    assert len(err.strip().splitlines()) == 1 and "Error:" not in err, err


def test_migrate_without_an_action_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate"]) == 2
    assert "--apply" in capsys.readouterr().err

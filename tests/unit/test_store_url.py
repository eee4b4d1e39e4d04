"""Database URL handling: mapping to async drivers, usage errors, password masking."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from core.defaults import DB_URL_ENV, DEFAULT_DB_URL
from core.errors import PolybotError, UsageError
from core.store.db import (
    connect_error,
    create_engine,
    default_db_url,
    driver_reason,
    mask_url,
    parse_db_url,
    scrub,
    sqlite_path,
)


@pytest.mark.parametrize(
    ("given", "driver", "database"),
    [
        ("sqlite:///./var/polybot.db", "sqlite+aiosqlite", "./var/polybot.db"),
        ("sqlite:////abs/path/x.db", "sqlite+aiosqlite", "/abs/path/x.db"),
        ("sqlite+aiosqlite:///rel.db", "sqlite+aiosqlite", "rel.db"),
        ("postgresql://user:pw@db.example:5432/bot", "postgresql+asyncpg", "bot"),
        ("postgres://user@127.0.0.1/bot", "postgresql+asyncpg", "bot"),
        ("postgresql+asyncpg://user@127.0.0.1:5433/bot", "postgresql+asyncpg", "bot"),
    ],
)
def test_urls_map_to_async_drivers(given: str, driver: str, database: str) -> None:
    url = parse_db_url(given)
    assert url.drivername == driver
    assert url.database == database


def test_postgres_url_keeps_credentials_host_and_port() -> None:
    url = parse_db_url("postgresql://trader:s3cr%40t@db.internal:6543/polybot")
    assert (url.username, url.password, url.host, url.port) == ("trader", "s3cr@t", "db.internal", 6543)


@pytest.mark.parametrize(
    "bad",
    ["mysql://u:pw@h/db", "http://example.com", "not a url", "postgresql://u@h", "sqlite://host/x.db"],
)
def test_unsupported_urls_are_usage_errors(bad: str) -> None:
    with pytest.raises(UsageError) as err:
        parse_db_url(bad)
    assert err.value.exit_code == 2
    assert "pw" not in str(err.value)


def test_unencoded_at_sign_in_password_is_refused_without_leaking_it() -> None:
    with pytest.raises(UsageError) as err:
        parse_db_url("postgresql://u:p@ssw0rd@h/db")
    assert "ssw0rd" not in str(err.value)
    assert "%40" in str(err.value)


def test_default_url_and_env_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DB_URL_ENV, raising=False)
    assert default_db_url() == DEFAULT_DB_URL == "sqlite:///./var/polybot.db"
    assert parse_db_url(None).database == "./var/polybot.db"
    monkeypatch.setenv(DB_URL_ENV, "postgresql://u@h/envdb")
    assert parse_db_url(None).database == "envdb"
    assert parse_db_url("sqlite:///given.db").database == "given.db"


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://trader:hunter2secret@h:5432/db",
        "postgres://trader:hunter2secret@h/db",
        "postgresql+asyncpg://trader:hunter2secret@h/db",
    ],
)
def test_passwords_are_masked(url: str) -> None:
    assert "hunter2secret" not in mask_url(url)
    assert "***" in mask_url(url)
    assert "hunter2secret" not in mask_url(parse_db_url(url))
    assert mask_url(parse_db_url(url)).startswith("postgresql://trader:***@h")


def test_scrub_removes_password_from_driver_messages() -> None:
    url = "postgresql://trader:hunter2secret@h/db"
    text = scrub(f"failed to connect to {url}; password hunter2secret rejected", url)
    assert "hunter2secret" not in text
    err = connect_error(parse_db_url(url), OSError("boom hunter2secret"))
    assert isinstance(err, PolybotError) and err.exit_code == 1
    assert "hunter2secret" not in str(err) and "postgresql://trader:***@h/db" in str(err)


def test_driver_reason_is_the_drivers_first_line_without_sql_or_parameters() -> None:
    driver = ValueError("NOT NULL constraint failed: markets.slug\nDETAIL: the row")
    wrapped = IntegrityError("INSERT INTO markets (slug) VALUES (?)", {"slug": "secret-param"}, driver)
    assert driver_reason(wrapped) == "NOT NULL constraint failed: markets.slug"
    assert driver_reason(OSError("  refused\nmore  ")) == "refused"
    assert driver_reason(OperationalError("SELECT 1", None, TimeoutError())) == "TimeoutError"  # blank: its class
    err = connect_error("sqlite:///x.db", wrapped)
    assert "INSERT" not in str(err) and "secret-param" not in str(err) and str(err).endswith("markets.slug")


def test_sqlite_path() -> None:
    assert sqlite_path(parse_db_url("sqlite:///a/b.db")) == Path("a/b.db")
    assert sqlite_path(parse_db_url("sqlite://")) is None
    assert sqlite_path(parse_db_url("sqlite:///:memory:")) is None


async def test_sqlite_directory_is_created_on_demand(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "er" / "polybot.db"
    engine = create_engine(f"sqlite:///{target}")
    try:
        assert target.parent.is_dir()
        async with engine.connect() as conn:
            mode = (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar()
            fks = (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar()
            busy = (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar()
        assert (mode, fks) == ("wal", 1)
        assert busy is not None and busy > 0
    finally:
        await engine.dispose()

"""Preflight against real databases (SQLite and PostgreSQL) and local doubles over real sockets."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from core.preflight import run_preflight
from core.preflight.probes import check_clob, check_database, check_feed
from core.settings import LoadedSettings, load_settings
from core.sim.http_double import HttpRequest, HttpResponse
from core.sim.mock_clob import MockClobServer
from core.sim.mock_ws import MockMarketServer
from core.store.migrate import head_revision, upgrade_to_head

KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
ADDRESS = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _load(tmp_path: Path, toml: str, env: dict[str, str] | None = None) -> LoadedSettings:
    path = tmp_path / "service.toml"
    path.write_text(toml)
    return load_settings(path, env=env or {})


KEY_ENV = {"POLYBOT_RELAYER__PRIVATE_KEY": KEY}
"""Secrets come from the environment (preflight fails a dry-run or live config holding them)."""


class SkewedClob(MockClobServer):
    """The CLOB double with its /time answer shifted (the double itself has no such knob)."""

    offset_s = 30

    async def _time(self, req: HttpRequest) -> HttpResponse:
        return HttpResponse.json(int(time.time()) + self.offset_s)


@pytest.fixture
async def clob() -> AsyncIterator[MockClobServer]:
    server = MockClobServer(confirm_delay_s=0.05)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def feed() -> AsyncIterator[MockMarketServer]:
    server = MockMarketServer(assets=2, rate_hz=5)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


# --------------------------------------------------------------------------- database


@pytest.mark.empty_db
async def test_database_unmigrated_then_migrated(tmp_path: Path, db_url: str) -> None:
    settings = _load(tmp_path, f'[db]\nurl = "{db_url}"\n').settings
    if db_url.startswith("sqlite"):
        await asyncio.to_thread(Path(db_url.removeprefix("sqlite:///")).touch)  # an existing, empty file
    check = await check_database(settings)
    assert not check.ok and "has no schema" in check.detail and "migrate" in check.detail
    await upgrade_to_head(db_url)
    check = await check_database(settings)
    assert check.ok and head_revision() in check.detail, check.detail


async def test_missing_sqlite_file_fails_and_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "none.db"
    settings = _load(tmp_path, f'[db]\nurl = "sqlite:///{path}"\n').settings
    check = await check_database(settings)
    assert not check.ok and "no such database file" in check.detail
    assert not path.exists() and not path.parent.exists()


async def test_unreachable_postgres_fails_quickly_and_masks_the_password(tmp_path: Path) -> None:
    url = f"postgresql://bot:hunter2secret@127.0.0.1:{_closed_port()}/polybot"
    settings = _load(tmp_path, f'[db]\nurl = "{url}"\n').settings
    started = time.monotonic()
    check = await check_database(settings, timeout_s=3)
    assert time.monotonic() - started < 5
    assert not check.ok and "hunter2secret" not in check.detail and "bot:***@" in check.detail


# --------------------------------------------------------------------------- market feed


async def test_feed_reachable_subscribes_and_gets_pong(tmp_path: Path, feed: MockMarketServer) -> None:
    settings = _load(tmp_path, f'[feed]\nws_url = "{feed.url}"\n').settings
    check = await check_feed(settings, timeout_s=3)
    assert check.ok and "PONG" in check.detail and "subscribed to nothing" in check.detail, check.detail
    assert "no market named in [feed] markets or the strategies, no feed.assets" in check.detail
    assert len(feed.subscribe_messages) == 1 and feed.pings == 1


async def test_feed_with_assets_gets_a_book(tmp_path: Path, feed: MockMarketServer) -> None:
    asset = feed.asset_ids[0]
    settings = _load(tmp_path, f'[feed]\nws_url = "{feed.url}"\nassets = ["{asset}"]\n').settings
    check = await check_feed(settings, timeout_s=3)
    assert check.ok and "1 asset(s)" in check.detail, check.detail
    assert asset in feed.subscribe_messages[0]


async def test_feed_unreachable_fails(tmp_path: Path) -> None:
    settings = _load(tmp_path, f'[feed]\nws_url = "ws://127.0.0.1:{_closed_port()}/ws/market"\n').settings
    check = await check_feed(settings, timeout_s=2)
    assert not check.ok and "cannot connect" in check.detail


async def test_feed_that_never_answers_times_out(tmp_path: Path) -> None:
    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(10)  # accepts TCP, never completes the websocket handshake

    server = await asyncio.start_server(mute, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        settings = _load(tmp_path, f'[feed]\nws_url = "ws://127.0.0.1:{port}/ws/market"\n').settings
        started = time.monotonic()
        check = await check_feed(settings, timeout_s=0.5)
        assert time.monotonic() - started < 3
        assert not check.ok, check.detail
    finally:
        server.close()


# --------------------------------------------------------------------------- CLOB and clock


async def test_clob_double_reachable_and_clock_in_sync(tmp_path: Path, clob: MockClobServer) -> None:
    settings = _load(tmp_path, f'[clob]\nurl = "{clob.url}"\n').settings
    reach, clock = await check_clob(settings, timeout_s=3)
    assert reach.ok and clob.url in reach.detail, reach.detail
    assert clock.ok, clock.detail
    assert [r.path for r in clob.requests] == ["/time", "/version"]


async def test_skewed_clob_clock_fails(tmp_path: Path) -> None:
    server = SkewedClob()
    await server.start()
    try:
        settings = _load(tmp_path, f'[clob]\nurl = "{server.url}"\n').settings
        reach, clock = await check_clob(settings, timeout_s=3)
    finally:
        await server.stop()
    assert reach.ok
    assert not clock.ok and clock.status == "FAIL"
    found = re.search(r"server clock ([+-][0-9.]+) s", clock.detail)
    assert found is not None and abs(float(found.group(1)) - 30) <= 0.6, clock.detail


async def test_unreachable_clob_fails(tmp_path: Path) -> None:
    settings = _load(tmp_path, f'[clob]\nurl = "http://127.0.0.1:{_closed_port()}"\n').settings
    reach, clock = await check_clob(settings, timeout_s=2)
    assert not reach.ok and "unreachable" in reach.detail
    assert clock.skipped


# --------------------------------------------------------------------------- the whole report


def _full_config(clob: MockClobServer, feed_url: str, db: str, extra: str = "") -> str:
    return (
        f'[feed]\nws_url = "{feed_url}"\n[clob]\nurl = "{clob.url}"\n[db]\nurl = "{db}"\n'
        f'[relayer]\ntype = "real"\n{extra}'
    )


async def test_everything_passes_online_against_the_doubles(
    tmp_path: Path, sqlite_url: str, clob: MockClobServer, feed: MockMarketServer
) -> None:
    await upgrade_to_head(sqlite_url)
    loaded = _load(tmp_path, _full_config(clob, feed.url, sqlite_url), KEY_ENV)
    report = await run_preflight(loaded, offline=False, timeout_s=3)
    statuses = {c.name: c.status for c in report.checks}
    assert report.ok, [c for c in report.checks if c.status == "FAIL"]
    assert statuses == {
        "config": "PASS",
        "mode": "PASS",
        "database": "PASS",
        "market feed": "PASS",
        "clob": "PASS",
        "clock skew": "PASS",
        "key & funder": "PASS",
        "api creds": "SKIP",
        "secrets": "PASS",
        "allowances": "SKIP",
        "balance": "SKIP",
        "risk limits": "PASS",
        "telegram": "SKIP",
    }
    assert all(KEY[2:] not in c.detail for c in report.checks)


async def test_offline_skips_every_network_check(tmp_path: Path, sqlite_url: str) -> None:
    await upgrade_to_head(sqlite_url)
    dead = _closed_port()
    toml = (
        f'[feed]\nws_url = "ws://127.0.0.1:{dead}/ws/market"\n[clob]\nurl = "http://127.0.0.1:{dead}"\n'
        f'[db]\nurl = "{sqlite_url}"\n[relayer]\ntype = "real"\n'
        '[chain]\nrpc_url = "http://127.0.0.1:9/rpc"\n'
    )
    report = await run_preflight(_load(tmp_path, toml, KEY_ENV), offline=True)
    skipped = {c.name for c in report.checks if c.skipped}
    assert {"market feed", "clob", "clock skew", "allowances", "balance"} <= skipped
    assert report.ok


@pytest.mark.parametrize(
    ("relayer", "offline", "detail"),
    [
        ('type = "fake"', False, "paper mode: a bankroll of 1000 pUSD"),
        ('type = "real"', True, "--offline"),
        ('type = "real"', False, "no API credentials: the venue balance cannot be read"),
    ],
)
async def test_the_balance_is_read_only_when_it_can_be(
    tmp_path: Path, sqlite_url: str, relayer: str, offline: bool, detail: str
) -> None:
    dead = _closed_port()
    toml = (
        f'[feed]\nws_url = "ws://127.0.0.1:{dead}/ws/market"\n[clob]\nurl = "http://127.0.0.1:{dead}"\n'
        f'[db]\nurl = "{sqlite_url}"\n[relayer]\n{relayer}\n'
    )
    report = await run_preflight(_load(tmp_path, toml, KEY_ENV), offline=offline, timeout_s=2)
    balance = next(c for c in report.checks if c.name == "balance")
    assert balance.status == "SKIP" and balance.detail == detail


async def test_online_with_a_dead_clob_and_feed_fails(tmp_path: Path, sqlite_url: str) -> None:
    await upgrade_to_head(sqlite_url)
    dead = _closed_port()
    toml = (
        f'[feed]\nws_url = "ws://127.0.0.1:{dead}/ws/market"\n[clob]\nurl = "http://127.0.0.1:{dead}"\n'
        f'[db]\nurl = "{sqlite_url}"\n'
    )
    report = await run_preflight(_load(tmp_path, toml), offline=False, timeout_s=2)
    failed = {c.name for c in report.checks if not c.ok and not c.skipped}
    assert not report.ok and failed == {"market feed", "clob"}


@pytest.mark.parametrize(("funds", "verdict"), [("20", "FAIL"), ("50", "PASS")])
async def test_live_preflight_reads_the_balance_and_fails_below_the_largest_order(
    tmp_path: Path, sqlite_url: str, clob: MockClobServer, feed: MockMarketServer, funds: str, verdict: str
) -> None:
    """Was: PASS with 20 pUSD at the venue and orders of up to 50 allowed; the venue then refused them."""
    await upgrade_to_head(sqlite_url)
    clob.set_balance(ADDRESS, Decimal(funds))
    creds = clob.creds_for(ADDRESS)
    env = {
        **KEY_ENV,
        "POLYBOT_RELAYER__API_KEY": creds.api_key,
        "POLYBOT_RELAYER__API_SECRET": creds.secret,
        "POLYBOT_RELAYER__API_PASSPHRASE": creds.passphrase,
    }
    config = _full_config(clob, feed.url, sqlite_url, "dry_run = false\n[risk]\nmax_order_notional = 50\n")
    report = await run_preflight(_load(tmp_path, config, env), offline=False, timeout_s=3)
    balance = next(c for c in report.checks if c.name == "balance")
    assert balance.status == verdict, balance.detail
    assert f"{funds} pUSD at the venue" in balance.detail
    assert (verdict == "PASS") == report.ok or verdict == "PASS"
    if verdict == "FAIL":
        assert "below risk.max_order_notional 50" in balance.detail and not report.ok
    assert all(creds.secret not in c.detail and creds.passphrase not in c.detail for c in report.checks)

"""CLI end to end: ``polybot preflight``, ``polybot smoke-live`` and ``relayer-dry-run --db-url`` storing.

The local doubles (CLOB, market websocket) run on the test's event loop; ``main([...])`` runs in a
worker thread (it calls ``asyncio.run`` itself) so both talk over real loopback sockets.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from core.sim.mock_clob import EXCHANGE_V2, NEG_RISK_EXCHANGE_V2, MockClobServer, demo_markets
from core.sim.mock_clob_verify import recover_order_signer
from core.sim.mock_ws import MockMarketServer
from polybot.cli.main import main
from tests.conftest import REPO_ROOT
from tests.procs import console_script, run

KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
ADDRESS = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
OTHER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
BINARY, NEG_RISK = (market for market, _books in demo_markets())


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _assert_no_key(*texts: str) -> None:
    for text in texts:
        assert KEY[2:].lower() not in text.lower(), "the private key leaked"


def _write_config(
    tmp_path: Path,
    *,
    db: str,
    clob_url: str | None = None,
    feed_url: str | None = None,
    relayer: str = "",
    key: str | None = KEY,
) -> Path:
    """service.toml + secrets.local.toml (the key lives in the secrets file, as in production)."""
    dead = _closed_port()
    path = tmp_path / "service.toml"
    path.write_text(
        f'[feed]\nws_url = "{feed_url or f"ws://127.0.0.1:{dead}/ws/market"}"\n'
        f'[clob]\nurl = "{clob_url or f"http://127.0.0.1:{dead}"}"\ntimeout_s = 3\n'
        f'[db]\nurl = "{db}"\n'
        f"[relayer]\n{relayer}\n"
    )
    if key is not None:
        secrets = tmp_path / "secrets.local.toml"
        secrets.write_text(f'[relayer]\nprivate_key = "{key}"\n')
        secrets.chmod(0o600)
    return path


def _migrate(db: str) -> None:
    assert main(["migrate", "--db-url", db, "--apply"]) == 0


def _stored_order(db: str, client_order_id: str) -> Any:
    from core.execution.store import SqlExecutionStore
    from core.store.db import create_engine, session_factory

    async def go() -> Any:
        engine = create_engine(db)
        try:
            return await SqlExecutionStore(session_factory(engine)).get_order(client_order_id)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def _order_count(db: str) -> int:
    from sqlalchemy import func, select

    from core.store import models
    from core.store.db import create_engine

    async def go() -> int:
        engine = create_engine(db)
        try:
            async with engine.connect() as conn:
                return int((await conn.execute(select(func.count()).select_from(models.Order))).scalar_one())
        finally:
            await engine.dispose()

    return asyncio.run(go())


async def _run(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


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


# --------------------------------------------------------------------------- preflight


def test_preflight_offline_passes_and_never_prints_the_key(
    tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _migrate(sqlite_url)
    config = _write_config(tmp_path, db=sqlite_url, relayer='type = "real"')
    capsys.readouterr()
    rc = main(["preflight", "--config", str(config), "--offline"])
    out = capsys.readouterr()
    assert rc == 0, out.out + out.err
    lines = out.out.splitlines()
    assert lines[0] == f"preflight of {config} (dry-run mode)"
    assert any(line.startswith("PASS  key & funder") and ADDRESS in line for line in lines)
    assert any(line.startswith("SKIP  clob") for line in lines)
    assert lines[-1].startswith("preflight passed")
    _assert_no_key(out.out, out.err)


def test_preflight_json(tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    _migrate(sqlite_url)
    config = _write_config(tmp_path, db=sqlite_url, relayer='type = "real"')
    capsys.readouterr()
    rc = main(["preflight", "--config", str(config), "--offline", "--json"])
    out = capsys.readouterr()
    assert rc == 0
    data = json.loads(out.out)
    assert data["ok"] is True and data["mode"] == "dry-run" and data["failed"] == []
    names = [c["name"] for c in data["checks"]]
    assert names[:3] == ["config", "mode", "database"] and "telegram" in names
    _assert_no_key(out.out, out.err)


def test_preflight_wrong_funder_exits_1(tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    _migrate(sqlite_url)
    config = _write_config(tmp_path, db=sqlite_url, relayer=f'type = "real"\nsignature_type = 0\nfunder = "{OTHER}"')
    capsys.readouterr()
    rc = main(["preflight", "--config", str(config), "--offline"])
    out = capsys.readouterr()
    assert rc == 1
    assert any(line.startswith("FAIL  key & funder") for line in out.out.splitlines())
    assert "1 of 13 checks failed (key & funder)" in out.out
    _assert_no_key(out.out, out.err)


def test_preflight_fails_while_the_key_is_in_the_main_file(
    tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _migrate(sqlite_url)
    config = _write_config(tmp_path, db=sqlite_url, relayer=f'type = "real"\nprivate_key = "{KEY}"', key=None)
    capsys.readouterr()
    rc = main(["preflight", "--config", str(config), "--offline"])
    out = capsys.readouterr()
    assert rc == 1
    assert any(
        line.startswith(f"FAIL  secrets       relayer.private_key is set in {config}") for line in out.out.splitlines()
    ), out.out
    assert "1 of 13 checks failed (secrets)" in out.out
    _assert_no_key(out.out, out.err)
    # moved to the secrets overlay (as _write_config does by default): it passes
    config = _write_config(tmp_path, db=sqlite_url, relayer='type = "real"')
    assert main(["preflight", "--config", str(config), "--offline"]) == 0
    assert "PASS  secrets       1 secret(s), from secrets.local.toml" in capsys.readouterr().out


def test_preflight_unmigrated_database_exits_1(
    tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _write_config(tmp_path, db=sqlite_url)
    rc = main(["preflight", "--config", str(config), "--offline"])
    out = capsys.readouterr().out
    assert rc == 1 and "FAIL  database" in out and "migrate" in out


def test_preflight_live_without_creds_exits_1(
    tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _migrate(sqlite_url)
    config = _write_config(tmp_path, db=sqlite_url, relayer='type = "real"\ndry_run = false')
    capsys.readouterr()
    rc = main(["preflight", "--config", str(config), "--offline"])
    out = capsys.readouterr().out
    assert rc == 1 and "FAIL  api creds" in out and "(live mode)" in out.splitlines()[0]


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[risk]\nmax_order_notinal = 5\n", "unknown key"),
        ('[relayer]\ntype = "real"\n', "private_key"),
    ],
)
def test_preflight_bad_config_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], toml: str, message: str
) -> None:
    path = tmp_path / "service.toml"
    path.write_text(toml)
    rc = main(["preflight", "--config", str(path)])
    err = capsys.readouterr().err
    assert rc == 2 and "invalid configuration" in err and message in err


def test_preflight_missing_config_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["preflight", "--config", str(tmp_path / "nope.toml"), "--offline"])
    assert rc == 2 and "config file not found" in capsys.readouterr().err


async def test_preflight_online_against_the_doubles(
    tmp_path: Path, sqlite_url: str, clob: MockClobServer, feed: MockMarketServer, capsys: pytest.CaptureFixture[str]
) -> None:
    await _run("migrate", "--db-url", sqlite_url, "--apply")
    config = _write_config(tmp_path, db=sqlite_url, clob_url=clob.url, feed_url=feed.url, relayer='type = "real"')
    capsys.readouterr()
    rc = await _run("preflight", "--config", str(config))
    out = capsys.readouterr()
    assert rc == 0, out.out + out.err
    for name in ("market feed", "clob", "clock skew", "database", "key & funder"):
        assert any(line.startswith(f"PASS  {name}") for line in out.out.splitlines()), name
    assert len(feed.subscribe_messages) == 1
    _assert_no_key(out.out, out.err)


async def test_preflight_online_with_an_unreachable_clob_exits_1(
    tmp_path: Path, sqlite_url: str, feed: MockMarketServer, capsys: pytest.CaptureFixture[str]
) -> None:
    await _run("migrate", "--db-url", sqlite_url, "--apply")
    config = _write_config(tmp_path, db=sqlite_url, feed_url=feed.url)  # CLOB on a closed port
    capsys.readouterr()
    rc = await _run("preflight", "--config", str(config))
    out = capsys.readouterr().out
    assert rc == 1 and "FAIL  clob" in out and "SKIP  clock skew" in out and "PASS  market feed" in out


def test_secrets_never_reach_a_real_terminal(tmp_path: Path, sqlite_url: str) -> None:
    """Subprocess: what a user would see on stdout and stderr, with verbose logging on."""
    _migrate(sqlite_url)
    config = _write_config(tmp_path, db=sqlite_url, relayer='type = "real"')
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLYBOT_")}
    env["POLYBOT_RELAYER__API_KEY"] = "public-id"  # a secret from the environment: allowed
    cmd = [console_script("polybot"), "-vv", "preflight", "--config", str(config), "--offline"]
    done = run(cmd, cwd=REPO_ROOT, env=env, text=True, timeout_s=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert ADDRESS in done.stdout
    _assert_no_key(done.stdout, done.stderr)


def test_a_malformed_key_is_refused_without_echoing_it(
    tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _write_config(tmp_path, db=sqlite_url, relayer='type = "real"', key=KEY[:-1])  # 63 hex digits
    rc = main(["--debug", "-vv", "preflight", "--config", str(config), "--offline"])
    out = capsys.readouterr()
    assert rc == 2 and "private_key" in out.err
    assert KEY[2:-1] not in out.out + out.err


# --------------------------------------------------------------------------- smoke-live


async def test_smoke_live_end_to_end(
    tmp_path: Path, sqlite_url: str, clob: MockClobServer, feed: MockMarketServer, capsys: pytest.CaptureFixture[str]
) -> None:
    await _run("migrate", "--db-url", sqlite_url, "--apply")
    config = _write_config(tmp_path, db=sqlite_url, clob_url=clob.url, feed_url=feed.url, relayer='type = "real"')
    capsys.readouterr()
    argv = ["smoke-live", "--config", str(config), BINARY.condition_id, "Yes", "BUY", "0.45", "5"]
    rc = await _run(*argv, "--client-order-id", "smoke-1")
    out = capsys.readouterr()
    assert rc == 0, out.out + out.err
    assert "preflight passed" in out.out and "DRY RUN: signed, NOT posted (stored)" in out.out
    assert f"maker            {ADDRESS}" in out.out and f"signer           {ADDRESS}" in out.out
    _assert_no_key(out.out, out.err)
    # Never posted: the double saw only the preflight probes and the market look-up.
    assert not clob.requests_to("POST", "/order") and not clob.orders
    row = await asyncio.to_thread(_stored_order, sqlite_url, "smoke-1")
    assert row is not None and row.status == "dry_run" and row.mode == "dry-run" and row.reason == "smoke-live"
    assert row.market == BINARY.condition_id and row.token_id == BINARY.tokens[0][0]
    assert row.price == Decimal("0.45") and row.size == Decimal("5")
    signed = row.signed_order["order"]
    assert recover_order_signer(signed, EXCHANGE_V2, 137) == ADDRESS
    assert signed["makerAmount"] == "2250000" and signed["takerAmount"] == "5000000"


async def test_smoke_live_json_neg_risk(
    tmp_path: Path, sqlite_url: str, clob: MockClobServer, feed: MockMarketServer, capsys: pytest.CaptureFixture[str]
) -> None:
    await _run("migrate", "--db-url", sqlite_url, "--apply")
    config = _write_config(tmp_path, db=sqlite_url, clob_url=clob.url, feed_url=feed.url, relayer='type = "real"')
    capsys.readouterr()
    rc = await _run("smoke-live", "--config", str(config), NEG_RISK.condition_id, "No", "SELL", "0.701", "10", "--json")
    out = capsys.readouterr()
    assert rc == 0, out.err
    data = json.loads(out.out)
    assert data["preflight"]["ok"] is True and data["order"]["posted"] is False and data["order"]["stored"] is True
    assert data["order"]["exchange"] == NEG_RISK_EXCHANGE_V2
    order = data["order"]["body"]["order"]
    assert order["tokenId"] == NEG_RISK.tokens[1][0] and order["side"] == "SELL"
    assert recover_order_signer(order, NEG_RISK_EXCHANGE_V2, 137) == ADDRESS
    row = await asyncio.to_thread(_stored_order, sqlite_url, data["order"]["client_order_id"])
    assert row is not None and row.signed_order == data["order"]["body"]
    _assert_no_key(out.out, out.err)


async def test_smoke_live_stops_when_preflight_fails(
    tmp_path: Path, sqlite_url: str, clob: MockClobServer, feed: MockMarketServer, capsys: pytest.CaptureFixture[str]
) -> None:
    await _run("migrate", "--db-url", sqlite_url, "--apply")
    config = _write_config(
        tmp_path, db=sqlite_url, clob_url=clob.url, feed_url=feed.url, relayer='type = "real"\ndry_run = false'
    )
    capsys.readouterr()
    rc = await _run("smoke-live", "--config", str(config), BINARY.condition_id, "Yes", "BUY", "0.45", "5")
    out = capsys.readouterr().out
    assert rc == 1 and "FAIL  api creds" in out and "no order built: the preflight failed" in out
    assert "order hash" not in out and "DRY RUN" not in out
    assert [r.path for r in clob.requests] == ["/time", "/version"]  # no market look-up, no order
    assert await asyncio.to_thread(_order_count, sqlite_url) == 0


async def test_smoke_live_in_live_mode_keeps_the_api_credentials_out(
    tmp_path: Path, sqlite_url: str, clob: MockClobServer, feed: MockMarketServer, capsys: pytest.CaptureFixture[str]
) -> None:
    await _run("migrate", "--db-url", sqlite_url, "--apply")
    config = _write_config(
        tmp_path, db=sqlite_url, clob_url=clob.url, feed_url=feed.url, relayer='type = "real"\ndry_run = false'
    )
    known = clob.creds_for(ADDRESS)  # live preflight reads the balance with them
    creds = {"api_key": known.api_key, "api_secret": known.secret, "api_passphrase": known.passphrase}
    with (tmp_path / "secrets.local.toml").open("a") as fh:
        fh.writelines(f'{k} = "{v}"\n' for k, v in creds.items())
    capsys.readouterr()
    argv = ["smoke-live", "--config", str(config), BINARY.condition_id, "No", "BUY", "0.52", "5", "--json"]
    rc = await _run(*argv, "--client-order-id", "smoke-live-mode")
    out = capsys.readouterr()
    assert rc == 0, out.out + out.err
    data = json.loads(out.out)
    assert data["mode"] == "live" and data["order"]["posted"] is False
    assert not clob.requests_to("POST", "/order") and not clob.orders
    row = await asyncio.to_thread(_stored_order, sqlite_url, "smoke-live-mode")
    stored = json.dumps(row.signed_order)
    for value in creds.values():
        assert value not in out.out + out.err and value not in stored
    _assert_no_key(out.out, out.err, stored)


def test_smoke_live_offline_with_a_token_id(
    tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _migrate(sqlite_url)
    config = _write_config(
        tmp_path, db=sqlite_url, relayer='type = "real"\nsignature_type = 2\nfunder = "' + OTHER + '"'
    )
    capsys.readouterr()
    token = BINARY.tokens[1][0]
    argv = ["smoke-live", "--config", str(config), token, "No", "BUY", "0.3", "10", "--offline"]
    rc = main([*argv, "--tick-size", "0.01", "--no-neg-risk", "--json", "--client-order-id", "smoke-off"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    order = json.loads(out.out)["order"]["body"]["order"]
    assert order["maker"] == OTHER and order["signer"] == ADDRESS and order["signatureType"] == 2
    assert _stored_order(sqlite_url, "smoke-off") is not None
    # Offline, a market the database does not know cannot be resolved: a usage error, no order.
    rc = main(["smoke-live", "--config", str(config), BINARY.condition_id, "Yes", "BUY", "0.3", "10", "--offline"])
    assert rc == 2 and "network look-ups are off" in capsys.readouterr().err
    assert _order_count(sqlite_url) == 1


def test_smoke_live_needs_a_real_relayer(tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    config = _write_config(tmp_path, db=sqlite_url, key=None)
    rc = main(["smoke-live", "--config", str(config), "123", "Yes", "BUY", "0.5", "5", "--offline"])
    assert rc == 2 and 'type = "real"' in capsys.readouterr().err


# --------------------------------------------------------------------------- relayer-dry-run --db-url


async def test_relayer_dry_run_with_db_url_stores_the_order(
    db_url: str, clob: MockClobServer, capsys: pytest.CaptureFixture[str]
) -> None:
    await _run("migrate", "--db-url", db_url, "--apply")
    capsys.readouterr()
    argv = ["relayer-dry-run", NEG_RISK.condition_id, "Yes", "BUY", "0.305", "20", "--base-url", clob.url]
    rc = await _run(*argv, "--private-key", KEY, "--db-url", db_url, "--json", "--client-order-id", "dry-db-1")
    out = capsys.readouterr()
    assert rc == 0, out.err
    body = json.loads(out.out)
    row = await asyncio.to_thread(_stored_order, db_url, "dry-db-1")
    assert row is not None and row.signed_order == body
    assert row.status == "dry_run" and row.mode == "dry-run" and row.reason == "relayer-dry-run"
    assert row.market == NEG_RISK.condition_id and row.token_id == NEG_RISK.tokens[0][0]
    assert row.order_hash and row.price == Decimal("0.305") and row.size == Decimal("20")
    assert recover_order_signer(body["order"], NEG_RISK_EXCHANGE_V2, 137) == ADDRESS
    assert not clob.requests_to("POST", "/order")
    _assert_no_key(out.out, out.err)


def test_smoke_live_refuses_what_the_configured_limits_refuse(
    tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The dry-run order meets the same rules as the engine's, with the config's own risk limits."""
    _migrate(sqlite_url)
    config = _write_config(tmp_path, db=sqlite_url, relayer='type = "real"')
    with config.open("a") as fh:
        fh.write("[risk]\nmax_order_notional = 2\n")
    capsys.readouterr()
    token = BINARY.tokens[1][0]
    argv = ["smoke-live", "--config", str(config), token, "No", "BUY", "0.3", "10", "--offline"]
    rc = main([*argv, "--tick-size", "0.01", "--no-neg-risk"])
    err = capsys.readouterr().err
    assert rc == 1 and "not signed: max_order_notional: order notional 3.0 exceeds 2" in err, err
    assert _order_count(sqlite_url) == 0
    rc = main([*argv[:-2], "4", "--offline", "--tick-size", "0.01", "--no-neg-risk"])  # 5 is the minimum
    assert rc == 1 and "size_below_min" in capsys.readouterr().err
    rc = main([*argv[:-3], "0.305", "5", "--offline", "--tick-size", "0.01", "--no-neg-risk"])
    assert rc == 1 and "price_off_tick" in capsys.readouterr().err
    # marketable (FOK) under $1: 5 x 0.10 = 0.50
    rc = main([*argv[:-3], "0.1", "5", "--offline", "--tick-size", "0.01", "--no-neg-risk", "--order-type", "FOK"])
    err = capsys.readouterr().err
    assert rc == 1 and "not signed" in err and "$1" in err, err
    assert _order_count(sqlite_url) == 0

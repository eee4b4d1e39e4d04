"""Preflight checks one by one: passing and failing, with no network (httpx MockTransport for HTTP)."""

from __future__ import annotations

import json
import re
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from core.control.types import PreflightCheck, PreflightReport
from core.errors import ConfigError
from core.execution import approvals as ap
from core.execution.risk_gate import RiskLimits
from core.preflight.local import (
    check_config,
    check_creds,
    check_key,
    check_mode,
    check_risk,
    check_secrets,
    check_telegram,
    key_address,
    maker_address,
)
from core.preflight.probes import check_allowances, check_clob
from core.preflight.report import origin_of
from core.settings import LoadedSettings, RelayerSettings, RiskSettings, Settings, TelegramSettings, load_settings

KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
ADDRESS = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
OTHER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw_"


def _load(tmp_path: Path, toml: str) -> LoadedSettings:
    path = tmp_path / "service.toml"
    path.write_text(toml)
    return load_settings(path, env={})


def _real(tmp_path: Path, extra: str = "", *, dry_run: bool = True) -> LoadedSettings:
    return _load(
        tmp_path,
        f'[relayer]\ntype = "real"\ndry_run = {str(dry_run).lower()}\nprivate_key = "{KEY}"\n{extra}\n',
    )


def _assert_no_key(*texts: str) -> None:
    for text in texts:
        assert KEY not in text and KEY[2:] not in text and KEY[2:].upper() not in text


# --------------------------------------------------------------------------- key & funder


def test_key_check_skipped_in_paper_mode(tmp_path: Path) -> None:
    check = check_key(_load(tmp_path, "").settings)
    assert check.skipped and not check.ok and check.status == "SKIP"


def test_eoa_key_without_funder_passes_and_names_the_address(tmp_path: Path) -> None:
    check = check_key(_real(tmp_path).settings)
    assert check.ok and check.status == "PASS", check.detail
    assert ADDRESS in check.detail
    _assert_no_key(check.detail)


def test_eoa_funder_equal_to_the_key_address_passes(tmp_path: Path) -> None:
    check = check_key(_real(tmp_path, f'funder = "{ADDRESS.lower()}"').settings)
    assert check.ok, check.detail


def test_eoa_with_a_foreign_funder_fails(tmp_path: Path) -> None:
    check = check_key(_real(tmp_path, f'funder = "{OTHER}"').settings)
    assert not check.ok and not check.skipped
    assert "signature_type 0" in check.detail and OTHER in check.detail and ADDRESS in check.detail
    _assert_no_key(check.detail)


@pytest.mark.parametrize("sig", [1, 2, 3])
def test_proxy_types_with_their_wallet_pass(tmp_path: Path, sig: int) -> None:
    settings = _real(tmp_path, f'signature_type = {sig}\nfunder = "{OTHER.lower()}"').settings
    check = check_key(settings)
    assert check.ok, check.detail
    assert OTHER in check.detail and ADDRESS in check.detail  # checksummed in the detail
    assert maker_address(settings) == OTHER.lower()


@pytest.mark.parametrize("sig", [1, 2, 3])
def test_proxy_types_with_the_key_address_as_funder_fail(tmp_path: Path, sig: int) -> None:
    check = check_key(_real(tmp_path, f'signature_type = {sig}\nfunder = "{ADDRESS}"').settings)
    assert not check.ok and "own address" in check.detail


def test_proxy_type_without_funder_fails(tmp_path: Path) -> None:
    # The loader refuses this; a Settings changed after loading (or built in code) is caught here.
    relayer = RelayerSettings.model_construct(type="real", private_key=SecretStr(KEY), signature_type=2, funder=None)
    settings = Settings.model_construct(relayer=relayer)
    check = check_key(settings)
    assert not check.ok and "needs relayer.funder" in check.detail
    config = check_config(LoadedSettings(settings=settings, sources={}))
    assert not config.ok and "relayer.funder" in config.detail
    _assert_no_key(check.detail, config.detail)


def test_funder_with_a_broken_checksum_fails(tmp_path: Path) -> None:
    broken = OTHER[:2] + OTHER[2:].swapcase()  # mixed case, but not the EIP-55 one
    check = check_key(_real(tmp_path, f'signature_type = 1\nfunder = "{broken}"').settings)
    assert not check.ok and "checksum" in check.detail


def test_a_key_off_the_curve_fails_without_showing_it(tmp_path: Path) -> None:
    zero = "0x" + "0" * 64  # 64 hex digits, but not a valid secp256k1 key
    settings = _load(tmp_path, f'[relayer]\ntype = "real"\nprivate_key = "{zero}"\n').settings
    assert key_address(settings) is None
    check = check_key(settings)
    assert not check.ok and "not a valid" in check.detail and "0" * 64 not in check.detail


def test_unsupported_chain_fails(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"relayer.chain_id: must be 137 \(Polygon mainnet\) or 80002"):
        _real(tmp_path, "chain_id = 5")
    # changed past validation (as a service might at runtime): the signer still refuses it
    settings = _real(tmp_path).settings
    relayer = settings.relayer.model_copy(update={"chain_id": 5})
    check = check_key(settings.model_copy(update={"relayer": relayer}))
    assert not check.ok and "chain id 5" in check.detail


# --------------------------------------------------------------------------- creds, mode


def test_creds_skipped_unless_live(tmp_path: Path) -> None:
    assert check_creds(_real(tmp_path).settings).skipped
    assert check_creds(_load(tmp_path, "").settings).skipped


def test_live_without_creds_fails_naming_what_is_missing(tmp_path: Path) -> None:
    check = check_creds(_real(tmp_path, 'api_key = "k-123456"', dry_run=False).settings)
    assert not check.ok and not check.skipped
    assert "relayer.api_secret" in check.detail and "relayer.api_passphrase" in check.detail
    assert "relayer.api_key," not in check.detail and "k-123456" not in check.detail


def test_live_with_creds_passes_without_showing_them(tmp_path: Path) -> None:
    extra = 'api_key = "key-abcdef"\napi_secret = "c2VjcmV0LXNlY3JldA=="\napi_passphrase = "pass-phrase-1"'
    check = check_creds(_real(tmp_path, extra, dry_run=False).settings)
    assert check.ok, check.detail
    for value in ("key-abcdef", "c2VjcmV0LXNlY3JldA==", "pass-phrase-1"):
        assert value not in check.detail


def test_mode_is_stated(tmp_path: Path) -> None:
    assert check_mode(_load(tmp_path, "").settings).detail.startswith("paper")
    dry = check_mode(_real(tmp_path).settings)
    assert dry.ok and dry.detail.startswith("dry-run") and "never posted" in dry.detail
    live = check_mode(_real(tmp_path, dry_run=False).settings)
    assert live.ok and live.detail.startswith("LIVE") and "clob.polymarket.com" in live.detail


# --------------------------------------------------------------------------- where the secrets live


def _split(tmp_path: Path, main: str, overlay: str | None = None, env: dict[str, str] | None = None) -> LoadedSettings:
    path = tmp_path / "service.toml"
    path.write_text(main)
    if overlay is not None:
        (tmp_path / "secrets.local.toml").write_text(overlay)
    return load_settings(path, env=env or {})


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "live"])
def test_a_secret_in_the_main_file_fails_outside_paper_mode(tmp_path: Path, dry_run: bool) -> None:
    loaded = _real(tmp_path, dry_run=dry_run)  # the key in service.toml
    check = check_secrets(loaded)
    assert check.status == "FAIL"
    assert check.detail.startswith(f"relayer.private_key is set in {tmp_path / 'service.toml'}")
    assert str(tmp_path / "secrets.local.toml") in check.detail and "POLYBOT_RELAYER__PRIVATE_KEY" in check.detail
    _assert_no_key(check.detail)


def test_every_kind_of_secret_in_the_main_file_is_named(tmp_path: Path) -> None:
    main = (
        f'[relayer]\ntype = "real"\ndry_run = false\napi_key = "k-1"\napi_secret = "s-1"\napi_passphrase = "p-1"\n'
        f'[telegram]\ntoken = "{TOKEN}"\n[db]\nurl = "postgresql://u:pw-123456@127.0.0.1/db"\n'
    )
    check = check_secrets(_split(tmp_path, main, env={"POLYBOT_RELAYER__PRIVATE_KEY": KEY}))
    assert check.status == "FAIL"
    for key in ("relayer.api_key", "relayer.api_secret", "relayer.api_passphrase", "telegram.token", "db.url"):
        assert key in check.detail
    assert "relayer.private_key" not in check.detail  # it comes from the environment
    for value in ("k-1", "s-1", "p-1", TOKEN, "pw-123456"):
        assert value not in check.detail


def test_secrets_from_the_overlay_and_the_environment_pass(tmp_path: Path) -> None:
    overlay = f'[relayer]\nprivate_key = "{KEY}"\n[telegram]\ntoken = "{TOKEN}"\n'
    env = {"POLYBOT_RELAYER__API_SECRET": "c2VjcmV0LXNlY3JldA=="}
    check = check_secrets(_split(tmp_path, '[relayer]\ntype = "real"\ndry_run = false\n', overlay, env))
    assert check.status == "PASS"
    assert check.detail == "3 secret(s), from the environment and secrets.local.toml"
    (tmp_path / "bare").mkdir()
    bare = check_secrets(_load(tmp_path / "bare", ""))
    assert bare.status == "PASS" and bare.detail == "no secret is configured"


def test_paper_mode_only_advises(tmp_path: Path) -> None:
    check = check_secrets(_load(tmp_path, f'[telegram]\ntoken = "{TOKEN}"\n'))
    assert check.status == "SKIP" and check.detail.startswith("paper mode, not enforced")
    assert "telegram.token is set in" in check.detail and TOKEN not in check.detail


# --------------------------------------------------------------------------- config, risk, telegram


def test_config_passes_for_a_loaded_file(tmp_path: Path) -> None:
    check = check_config(_real(tmp_path))
    assert check.ok and "service.toml" in check.detail


def test_risk_limits_pass_by_default_and_map_every_key(tmp_path: Path) -> None:
    settings = _load(tmp_path, '[risk]\nmax_daily_loss = "42.5"\nerror_rate_max = 7\norders_burst = 20\n').settings
    limits = RiskLimits.configured(settings.risk)
    assert limits.daily_loss_limit == Decimal("42.5") and limits.error_breaker_max_errors == 7
    assert limits.order_burst == 20 and limits.max_order_notional == Decimal("50")
    check = check_risk(settings)
    assert check.ok and "daily loss 42.5" in check.detail


def test_insane_risk_limits_fail(tmp_path: Path) -> None:
    # Built past validation (as a service might after a runtime change): preflight still catches it.
    risk = RiskSettings.model_construct(max_order_notional=Decimal("500"), max_market_notional=Decimal("100"))
    settings = Settings.model_construct(risk=risk)
    check = check_risk(settings)
    assert not check.ok and "max_order_notional (500) exceeds max_market_notional (100)" in check.detail
    config = check_config(LoadedSettings(settings=settings, sources={}))
    assert not config.ok and "risk.max_order_notional" in config.detail


def test_telegram_skipped_when_disabled(tmp_path: Path) -> None:
    assert check_telegram(_load(tmp_path, "").settings).skipped


def test_telegram_without_users_fails(tmp_path: Path) -> None:
    settings = _load(tmp_path, f'[telegram]\nenabled = true\ntoken = "{TOKEN}"\n').settings
    check = check_telegram(settings)
    assert not check.ok and "no authorised users" in check.detail and TOKEN not in check.detail


def test_telegram_without_token_fails(tmp_path: Path) -> None:
    settings = Settings.model_construct(telegram=TelegramSettings.model_construct(enabled=True, token=None, users=[]))
    check = check_telegram(settings)
    assert not check.ok and "telegram.token is not set" in check.detail


def test_telegram_with_token_and_users_passes(tmp_path: Path) -> None:
    toml = f'[telegram]\nenabled = true\ntoken = "{TOKEN}"\nusers = ["11:admin", "12:viewer", "13:viewer"]\n'
    check = check_telegram(_load(tmp_path, toml).settings)
    assert check.ok and "3 authorised user(s): 1 admin, 2 viewer" in check.detail
    assert TOKEN not in check.detail and TOKEN.split(":")[1] not in check.detail


# --------------------------------------------------------------------------- CLOB and clock (MockTransport)


def _clob_transport(
    *, offset_s: float = 0.0, version: Any = None, time_status: int = 200, ms: bool = False
) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/time":
            now = time.time() + offset_s
            return httpx.Response(time_status, json=int(now * 1000) if ms else int(now))
        if request.url.path == "/version":
            return httpx.Response(200, json={"version": 2 if version is None else version})
        return httpx.Response(404, json={"error": "not found"})

    return httpx.MockTransport(handler)


def _clob_settings(tmp_path: Path) -> Settings:
    return _load(tmp_path, '[clob]\nurl = "http://clob.test"\n').settings


async def test_clob_and_clock_pass(tmp_path: Path) -> None:
    clob, clock = await check_clob(_clob_settings(tmp_path), transport=_clob_transport())
    assert clob.ok and "version 2" in clob.detail, clob.detail
    assert clock.ok and "limit 2 s" in clock.detail, clock.detail


async def test_time_in_milliseconds_is_understood(tmp_path: Path) -> None:
    _, clock = await check_clob(_clob_settings(tmp_path), transport=_clob_transport(ms=True))
    assert clock.ok, clock.detail


@pytest.mark.parametrize("offset", [30.0, -30.0, 3.5])
async def test_clock_skew_fails(tmp_path: Path, offset: float) -> None:
    clob, clock = await check_clob(_clob_settings(tmp_path), transport=_clob_transport(offset_s=offset))
    assert clob.ok
    assert not clock.ok and not clock.skipped and "NTP" in clock.detail
    found = re.search(r"server clock ([+-][0-9.]+) s", clock.detail)
    assert found is not None and abs(float(found.group(1)) - offset) <= 0.6, clock.detail


async def test_clock_limit_is_configurable(tmp_path: Path) -> None:
    _, clock = await check_clob(_clob_settings(tmp_path), transport=_clob_transport(offset_s=30), max_skew_s=60)
    assert clock.ok


async def test_wrong_version_fails(tmp_path: Path) -> None:
    clob, clock = await check_clob(_clob_settings(tmp_path), transport=_clob_transport(version=1))
    assert not clob.ok and "version 1" in clob.detail
    assert clock.ok


async def test_time_error_fails_and_skips_the_clock(tmp_path: Path) -> None:
    clob, clock = await check_clob(_clob_settings(tmp_path), transport=_clob_transport(time_status=503))
    assert not clob.ok and "HTTP 503" in clob.detail
    assert clock.skipped and "not measured" in clock.detail


async def test_connection_refused_fails(tmp_path: Path) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    clob, clock = await check_clob(_clob_settings(tmp_path), transport=httpx.MockTransport(refuse))
    assert not clob.ok and "unreachable" in clob.detail and "ConnectError" in clob.detail
    assert clock.skipped


# --------------------------------------------------------------------------- allowances (JSON-RPC double)


def _rpc_transport(approved: set[tuple[str, str]], calls: list[dict[str, Any]]) -> httpx.MockTransport:
    """Answers eth_call allowance / isApprovedForAll from a set of (token, spender) pairs."""

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        calls.append(body)
        call = body["params"][0]
        data = call["data"][2:]
        spender = "0x" + data[8 + 64 + 24 : 8 + 128]
        ok = (call["to"].lower(), spender.lower()) in approved
        value = ap.MAX_UINT256 if ok and data.startswith(ap.ALLOWANCE) else int(ok)
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": body["id"], "result": "0x" + format(value, "064x")})

    return httpx.MockTransport(handler)


ALL_PAIRS = {(tx.token.lower(), tx.spender.lower()) for tx in ap.usdc_approvals() + ap.outcome_approvals()}


async def test_allowances_all_present(tmp_path: Path) -> None:
    settings = _real(tmp_path, '[chain]\nrpc_url = "https://rpc.test/v2/SECRETAPIKEY"').settings
    calls: list[dict[str, Any]] = []
    check = await check_allowances(settings, ADDRESS, transport=_rpc_transport(ALL_PAIRS, calls))
    assert check.ok and "all 6 approvals present" in check.detail, check.detail
    assert len(calls) == 6 and all(c["method"] == "eth_call" for c in calls)
    assert "SECRETAPIKEY" not in check.detail


async def test_allowances_missing_are_listed(tmp_path: Path) -> None:
    settings = _real(tmp_path, '[chain]\nrpc_url = "https://rpc.test/v2/SECRETAPIKEY"').settings
    present = {p for p in ALL_PAIRS if p[1] != ap.NEG_RISK_ADAPTER.lower()}
    check = await check_allowances(settings, ADDRESS, transport=_rpc_transport(present, []))
    assert not check.ok
    assert "missing 2 of 6" in check.detail
    assert "pUSD -> NegRisk Adapter" in check.detail and "ConditionalTokens -> NegRisk Adapter" in check.detail


def test_only_the_origin_of_an_rpc_url_is_shown() -> None:
    assert origin_of("https://rpc.test:8545/v2/SECRETAPIKEY?x=1") == "https://rpc.test:8545"
    assert origin_of("https://rpc.test/v2/SECRETAPIKEY") == "https://rpc.test"
    assert origin_of("https://rpc.test:85a45/v2/SECRETAPIKEY") == "the configured URL"  # a mistyped port


async def test_allowances_rpc_error_hides_the_url_path(tmp_path: Path) -> None:
    settings = _real(tmp_path, '[chain]\nrpc_url = "https://rpc.test/v2/SECRETAPIKEY"').settings
    transport = httpx.MockTransport(lambda request: httpx.Response(500, text="boom"))
    check = await check_allowances(settings, ADDRESS, transport=transport)
    assert not check.ok and "HTTP 500" in check.detail and "https://rpc.test" in check.detail
    assert "SECRETAPIKEY" not in check.detail


# --------------------------------------------------------------------------- rendering


def test_report_rendering() -> None:
    report = PreflightReport(
        [
            PreflightCheck("config", True, "fine"),
            PreflightCheck("market feed", False, "--offline", skipped=True),
            PreflightCheck("database", False, "no schema"),
        ]
    )
    assert not report.ok
    lines = report.lines()
    assert lines[0].startswith("PASS  config") and lines[1].startswith("SKIP  market feed")
    assert lines[2].startswith("FAIL  database") and "1 of 3 checks failed (database)" in lines[-1]
    data = report.as_dict()
    assert data["ok"] is False and data["failed"] == ["database"]
    assert [c["status"] for c in data["checks"]] == ["PASS", "SKIP", "FAIL"]
    passing = PreflightReport([PreflightCheck("config", True, "fine"), PreflightCheck("x", False, "", skipped=True)])
    assert passing.ok and passing.lines()[-1] == "preflight passed (1 passed, 1 skipped)"

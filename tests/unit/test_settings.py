"""Settings: defaults, overlay order, env parsing, every error kind, secrets never shown."""

from __future__ import annotations

import logging
import os
import re
import shutil
import tomllib
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from core.errors import ConfigError
from core.redact import clear_secrets, redact
from core.settings import (
    LoadedSettings,
    RiskSettings,
    Settings,
    env_name,
    leaf_keys,
    load_settings,
    secrets_in_main_file,
    set_secret_keys,
)
from core.types import Mode
from tests.conftest import REPO_ROOT
from tests.secret_shapes import API_SECRET as B64_API_SECRET
from tests.secret_shapes import (
    BOT_TOKEN,
    DB_PASSWORD,
    MISPLACED_ENV,
    MISPLACED_KEYS,
    MISPLACED_TOML,
    PRIVATE_KEY,
    TOKEN_HALF,
    assert_no_secret,
)

KEY = "0x" + "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawq"
API_SECRET = "c2VjcmV0LXNlY3JldC1zZWNyZXQ="


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def problems_of(config: Path | None, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_settings(config, env=env or {})
    return info.value.problems


def one_problem(problems: list[str], needle: str) -> str:
    hits = [p for p in problems if needle in p]
    assert len(hits) == 1, f"expected one problem mentioning {needle!r} in {problems}"
    return hits[0]


# --------------------------------------------------------------------------- defaults


def test_defaults_point_at_polymarket_and_are_safe() -> None:
    loaded = load_settings(None, env={})
    s = loaded.settings
    assert s.feed.ws_url == "wss://ws-subscriptions-clob.polymarket.com/ws/market"
    assert s.feed.user_ws_url == "wss://ws-subscriptions-clob.polymarket.com/ws/user"
    assert s.gamma.url == "https://gamma-api.polymarket.com"
    assert s.clob.url == "https://clob.polymarket.com"
    assert s.telegram.base_url == "https://api.telegram.org/bot"
    assert s.db.url == "sqlite:///./var/polybot.db"
    assert s.relayer.type == "fake" and s.relayer.dry_run is True
    assert s.mode is Mode.PAPER
    assert (s.risk.orders_per_s, s.risk.orders_burst, s.risk.cancels_per_s, s.risk.cancels_burst) == (30, 50, 60, 100)
    assert s.feed.max_assets_per_connection == 200 and s.gamma.page_limit == 100
    assert s.metrics.host == "127.0.0.1" and s.metrics.port == 9108
    assert s.telegram.confirm_ttl_s == 30
    assert isinstance(s.risk.max_order_notional, Decimal)
    assert set(loaded.sources.values()) == {"default"}
    assert set(loaded.sources) == set(leaf_keys(s))


def test_mode_follows_relayer() -> None:
    assert Settings(relayer={"type": "real", "private_key": KEY}).mode is Mode.DRY_RUN
    assert Settings(relayer={"type": "real", "private_key": KEY, "dry_run": False}).mode is Mode.LIVE


# --------------------------------------------------------------------------- overlay order


def test_overlay_order_file_then_secrets_then_env(tmp_path: Path) -> None:
    config = write(
        tmp_path / "service.toml",
        """
[service]
name = "from-file"
[risk]
max_order_notional = 10
max_market_notional = 100
max_daily_loss = 7.5
[relayer]
chain_id = 80002
signature_type = 0
""",
    )
    secrets = write(
        tmp_path / "secrets.local.toml",
        f"""
[risk]
max_order_notional = 20
max_market_notional = 150
[relayer]
private_key = "{KEY}"
""",
    )
    env = {"POLYBOT_RISK__MAX_ORDER_NOTIONAL": "30", "POLYBOT_REQUIRE_PG": "1", "HOME": "/x"}
    loaded = load_settings(config, env=env)
    s, src = loaded.settings, loaded.sources

    assert s.risk.max_order_notional == Decimal("30")
    assert src["risk.max_order_notional"] == "env:POLYBOT_RISK__MAX_ORDER_NOTIONAL"
    assert s.risk.max_market_notional == Decimal("150")
    assert src["risk.max_market_notional"] == f"secrets:{secrets}"
    assert s.risk.max_daily_loss == Decimal("7.5")
    assert src["risk.max_daily_loss"] == f"file:{config}"
    assert s.service.name == "from-file"
    assert src["risk.max_total_exposure"] == "default"
    # deep merge: the secrets [relayer] table adds to the file's, it does not replace it
    assert s.relayer.chain_id == 80002 and src["relayer.chain_id"] == f"file:{config}"
    assert s.relayer.private_key is not None
    assert s.relayer.private_key.get_secret_value() == KEY
    assert src["relayer.private_key"] == f"secrets:{secrets}"
    assert loaded.config_path == config and loaded.secrets_path == secrets


def test_secrets_file_is_optional(tmp_path: Path) -> None:
    config = write(tmp_path / "service.toml", "[service]\nname = 'x'\n")
    loaded = load_settings(config, env={})
    assert loaded.secrets_path is None
    assert loaded.settings.service.name == "x"


def test_a_secrets_file_readable_by_others_is_warned_about(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = write(tmp_path / "service.toml", "")
    secrets = write(tmp_path / "secrets.local.toml", f'[relayer]\nprivate_key = "{KEY}"\n')
    for mode, warned in ((0o644, True), (0o600, False)):
        secrets.chmod(mode)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="core.settings"):
            load_settings(config, env={})
        assert any(f"run: chmod 600 {secrets}" in r.getMessage() for r in caplog.records) is warned
        assert_no_secret(caplog.text)


def test_toml_numbers_become_exact_decimals(tmp_path: Path) -> None:
    config = write(
        tmp_path / "service.toml",
        "[strategies.dutch]\nsafety_margin_usdc = 0.1\nmax_sets = 3.30\n[strategies.spread]\nskew_per_share = 0.0003\n",
    )
    s = load_settings(config, env={}).settings
    assert s.strategies.dutch.safety_margin_usdc == Decimal("0.1")
    assert str(s.strategies.dutch.max_sets) == "3.30"
    assert s.strategies.spread.skew_per_share == Decimal("0.0003")


def test_binary_float_money_is_refused() -> None:
    with pytest.raises(ValidationError, match="binary float"):
        RiskSettings(max_order_notional=0.1)


# --------------------------------------------------------------------------- environment


def test_env_nested_and_typed_values() -> None:
    env = {
        "POLYBOT_STRATEGIES__DUTCH__SAFETY_MARGIN_USDC": "0.02",
        "POLYBOT_STRATEGIES__DUTCH__ENABLED": "true",
        "POLYBOT_STRATEGIES__DUTCH__FEE_BPS": "",
        "POLYBOT_STRATEGIES__SPREAD__MARKETS": '["will-it-rain", "0x' + "ab" * 32 + '"]',
        "POLYBOT_FEED__ASSETS": "111, 222",
        "POLYBOT_FEED__PING_INTERVAL_S": "5",
        "POLYBOT_TELEGRAM__USERS": "1001:admin,1002:viewer",
        "POLYBOT_TELEGRAM__ALERT_CHATS": "[-100123, 42]",
        "POLYBOT_METRICS__PORT": "9200",
        "POLYBOT_LOGGING__LEVEL": "debug",
    }
    loaded = load_settings(None, env=env)
    s = loaded.settings
    assert s.strategies.dutch.safety_margin_usdc == Decimal("0.02")
    assert s.strategies.dutch.enabled is True
    assert s.strategies.dutch.fee_bps is None
    assert s.strategies.spread.markets == ["will-it-rain", "0x" + "ab" * 32]
    assert s.feed.assets == ["111", "222"]
    assert s.feed.ping_interval_s == 5.0
    assert [(u.id, u.role) for u in s.telegram.users] == [(1001, "admin"), (1002, "viewer")]
    assert s.telegram.role_of(1001) == "admin" and s.telegram.role_of(9) is None
    assert s.telegram.alert_chats == [-100123, 42]
    assert s.metrics.port == 9200
    assert s.logging.level == "DEBUG"
    assert loaded.sources["strategies.dutch.safety_margin_usdc"] == "env:POLYBOT_STRATEGIES__DUTCH__SAFETY_MARGIN_USDC"


def test_env_whole_section_as_json_then_specific_key_wins() -> None:
    env = {
        "POLYBOT_STRATEGIES__DUTCH": '{"enabled": true, "max_sets": 2.5}',
        "POLYBOT_STRATEGIES__DUTCH__MAX_SETS": "4",
    }
    loaded = load_settings(None, env=env)
    dutch = loaded.settings.strategies.dutch
    assert dutch.enabled is True and dutch.max_sets == Decimal("4")
    assert loaded.sources["strategies.dutch.enabled"] == "env:POLYBOT_STRATEGIES__DUTCH"
    assert loaded.sources["strategies.dutch.max_sets"] == "env:POLYBOT_STRATEGIES__DUTCH__MAX_SETS"


def test_env_json_numbers_are_exact_decimals() -> None:
    # a binary float would be refused by every money key ("money must be exact")
    env = {"POLYBOT_STRATEGIES__DUTCH": '{"safety_margin_usdc": 0.05, "max_sets": 3.30}'}
    dutch = load_settings(None, env=env).settings.strategies.dutch
    assert dutch.safety_margin_usdc == Decimal("0.05") and str(dutch.max_sets) == "3.30"


def test_env_empty_list_clears_the_file_and_names_are_read_in_any_case(tmp_path: Path) -> None:
    config = write(tmp_path / "service.toml", "[feed]\nassets = ['111']\n[telegram]\nalert_chats = [42]\n")
    env = {"POLYBOT_FEED__ASSETS": "", "POLYBOT_TELEGRAM__ALERT_CHATS": " ", "polybot_Risk__Max_Daily_Loss": "7"}
    loaded = load_settings(config, env=env)
    assert loaded.settings.feed.assets == [] and loaded.settings.telegram.alert_chats == []
    assert loaded.sources["feed.assets"] == "env:POLYBOT_FEED__ASSETS"
    assert load_settings(config, env={"Polybot_Feed__Assets": "1, 2"}).settings.feed.assets == ["1", "2"]
    assert loaded.settings.risk.max_daily_loss == Decimal("7")
    assert loaded.sources["risk.max_daily_loss"] == "env:polybot_Risk__Max_Daily_Loss"


def test_env_names_without_a_key_or_with_an_empty_part() -> None:
    env = {"POLYBOT_RISK": '{"max_daily_loss": 5}', "POLYBOT_RISK____X": "1", "POLYBOT_REQUIRE_PG": "1"}
    (problem,) = problems_of(None, env)
    assert problem == "env POLYBOT_RISK____X: malformed name (expected POLYBOT_<SECTION>__<KEY>)"


def test_settings_built_in_code_never_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.upper().startswith("POLYBOT_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("POLYBOT_RISK__MAX_DAILY_LOSS", "5")
    monkeypatch.setenv("POLYBOT_risk__max_daily_loss", "5")  # the field's own spelling, too
    assert Settings().risk.max_daily_loss == Decimal("100")
    assert Settings(risk={"max_daily_loss": 7}).risk.max_daily_loss == Decimal("7")
    loaded = load_settings(None)  # the loader reads os.environ
    assert loaded.settings.risk.max_daily_loss == Decimal("5")
    assert loaded.sources["risk.max_daily_loss"].startswith("env:POLYBOT_")


def test_env_problems_name_the_variable() -> None:
    problems = problems_of(
        None,
        {
            "POLYBOT_RISK__MAX_ORDER_NOTINAL": "5",
            "POLYBOT_METRICS__PORT": "lots",
            "POLYBOT_TELEGRAM__ALERT_CHATS": "[1, 2",
            "POLYBOT_FEEED__WS_URL": "ws://127.0.0.1:1",
        },
    )
    assert len(problems) == 4, problems
    unknown = one_problem(problems, "POLYBOT_RISK__MAX_ORDER_NOTINAL")
    assert "risk.max_order_notinal" in unknown and "unknown key" in unknown and "max_order_notional" in unknown
    port = one_problem(problems, "POLYBOT_METRICS__PORT")
    assert "metrics.port" in port and "integer" in port
    assert "JSON" in one_problem(problems, "POLYBOT_TELEGRAM__ALERT_CHATS")
    assert "feeed" in one_problem(problems, "POLYBOT_FEEED__WS_URL")


# --------------------------------------------------------------------------- errors


def test_every_problem_reported_at_once_with_file_line_and_key(tmp_path: Path) -> None:
    config = write(
        tmp_path / "service.toml",
        """[feed]
ws_urll = "wss://example.invalid/ws"
max_assets_per_connection = 900

[relayer]
dry_run = "maybe"
signature_type = 7

[risk]
orders_per_s = 40
cancels_burst = 120
one_leg_policy = "pray"

[telegramm]
enabled = true
""",
    )
    problems = problems_of(config)
    assert len(problems) == 8, problems
    for p in problems:
        assert p.startswith(f"{config}:"), p

    unknown = one_problem(problems, "feed.ws_urll")
    assert unknown.startswith(f"{config}:2: ") and "unknown key" in unknown and '"ws_url"' in unknown
    assert one_problem(problems, "feed.max_assets_per_connection").startswith(f"{config}:3: ")
    assert "less than or equal to 500" in one_problem(problems, "feed.max_assets_per_connection")
    wrong_type = one_problem(problems, "relayer.dry_run")
    assert wrong_type.startswith(f"{config}:6: ") and "boolean" in wrong_type and '"maybe"' in wrong_type
    assert "less than or equal to 3" in one_problem(problems, "relayer.signature_type")
    assert "less than 40" in one_problem(problems, "risk.orders_per_s")
    assert "less than 120" in one_problem(problems, "risk.cancels_burst")
    assert "'unwind', 'hedge' or 'alert'" in one_problem(problems, "risk.one_leg_policy")
    assert one_problem(problems, "telegramm").startswith(f"{config}:14: ")


def test_missing_required_value_names_the_file_that_made_it_required(tmp_path: Path) -> None:
    config = write(tmp_path / "service.toml", '[relayer]\ntype = "real"\nsignature_type = 2\n')
    problems = problems_of(config)
    key = one_problem(problems, "relayer.private_key")
    assert key.startswith(f"{config}:2: ") and 'required when relayer.type = "real"' in key
    funder = one_problem(problems, "relayer.funder")
    assert funder.startswith(f"{config}:3: ") and "signature_type = 2" in funder


def test_missing_required_in_a_list_item(tmp_path: Path) -> None:
    config = write(
        tmp_path / "service.toml", "[[telegram.users]]\nid = 1\nrole = 'admin'\n[[telegram.users]]\nid = 2\n"
    )
    problem = one_problem(problems_of(config), "telegram.users[1].role")
    assert problem.startswith(f"{config}:4: ") and "required value is missing" in problem


def test_bad_toml_syntax_names_file_and_line(tmp_path: Path) -> None:
    config = write(tmp_path / "service.toml", "[service]\nname = 'ok'\nstaleness_ms = = 3\n")
    (problem,) = problems_of(config)
    assert problem.startswith(f"{config}: invalid TOML syntax")
    assert "line 3" in problem


def test_missing_config_file(tmp_path: Path) -> None:
    (problem,) = problems_of(tmp_path / "nope.toml")
    assert "nope.toml" in problem and "not found" in problem


def test_problems_in_secrets_file_name_the_secrets_file(tmp_path: Path) -> None:
    write(tmp_path / "service.toml", "[relayer]\ntype = 'fake'\n")
    secrets = write(tmp_path / "secrets.local.toml", "[relayer]\nprivat_key = 'abc'\nsignature_type = -1\n")
    problems = problems_of(tmp_path / "service.toml")
    assert one_problem(problems, "relayer.privat_key").startswith(f"{secrets}:2: ")
    assert one_problem(problems, "relayer.signature_type").startswith(f"{secrets}:3: ")


def test_cross_field_rules(tmp_path: Path) -> None:
    config = write(
        tmp_path / "service.toml",
        """
[feed]
ping_interval_s = 30
dead_after_s = 20
reconnect_initial_ms = 5000
reconnect_max_ms = 1000
[risk]
max_order_notional = 500
[telegram]
enabled = true
users = [{ id = 5, role = "admin" }, { id = 5, role = "viewer" }]
""",
    )
    problems = problems_of(config)
    assert "greater than ping_interval_s" in one_problem(problems, "feed.dead_after_s")
    assert "at least reconnect_initial_ms" in one_problem(problems, "feed.reconnect_max_ms")
    assert "max_market_notional" in one_problem(problems, "risk.max_order_notional")
    assert "telegram.enabled = true" in one_problem(problems, "telegram.token")
    assert "more than once" in one_problem(problems, "telegram.users")


def test_mode_hint_must_agree_with_relayer(tmp_path: Path) -> None:
    config = write(tmp_path / "service.toml", '[service]\nmode = "paper"\n')
    env = {"POLYBOT_RELAYER__TYPE": "real", "POLYBOT_RELAYER__PRIVATE_KEY": KEY}
    problem = one_problem(problems_of(config, env), "service.mode")
    assert problem.startswith(f"{config}:2: ") and '"dry-run"' in problem


@pytest.mark.parametrize(
    ("section", "key", "value", "ok"),
    [
        ("risk", "orders_per_s", "39", True),
        ("risk", "orders_burst", "60", False),
        ("risk", "cancels_per_s", "80", False),
        ("risk", "cancels_per_s", "0", False),
        ("metrics", "port", "65536", False),
        ("metrics", "port", "0", True),
        ("gamma", "page_limit", "101", False),
        ("relayer", "signature_type", "3", True),
        ("relayer", "heartbeat_s", "10", False),
        ("relayer", "funder", "0x1234", False),
        ("relayer", "rpc_url", "ftp://x", False),
        ("feed", "ws_url", "https://not-a-websocket", False),
        ("feed", "assets", "12ab", False),
        ("feed", "markets", "0x1234", False),
        ("service", "daily_summary_utc", "24:00", False),
        ("service", "daily_summary_utc", "23:59", True),
        ("db", "url", "mysql://x/y", False),
        ("db", "url", "postgresql://postgres@127.0.0.1:5432/test", True),
        ("risk", "max_daily_loss", "NaN", False),
    ],
)
def test_ranges_and_shapes(section: str, key: str, value: str, ok: bool) -> None:
    env = {f"POLYBOT_{section.upper()}__{key.upper()}": value}
    if ok:
        load_settings(None, env=env)
    else:
        problem = one_problem(problems_of(None, env), f"{section}.{key}")
        assert problem.startswith(f"env POLYBOT_{section.upper()}__{key.upper()}: ")


@pytest.mark.parametrize(
    ("key", "value", "ok"),
    [
        ("service.staleness_ms", "86400000", True),  # a day
        ("service.staleness_ms", "86400001", False),
        ("service.staleness_ms", "1e29", False),
        ("feed.quiet_after_s", "86400", True),
        ("feed.quiet_after_s", "86401", False),
        ("relayer.chain_id", "137", True),
        ("relayer.chain_id", "80002", True),
        ("relayer.chain_id", "1", False),
        ("relayer.chain_id", "5", False),
        ("relayer.chain_id", "100000000000000000000000", False),
        ("strategies.dutch.max_sets", "1000000", True),
        ("strategies.dutch.max_sets", "1000000.01", False),
        ("strategies.dutch.max_sets", "1e300", False),
        ("strategies.dutch.safety_margin_usdc", "0.99", True),
        ("strategies.dutch.safety_margin_usdc", "1", False),
        ("strategies.spread.size", "1000001", False),
        ("strategies.spread.max_inventory", "1000001", False),
        ("strategies.spread.skew_per_share", "0.01", True),
        ("strategies.spread.skew_per_share", "0.02", False),
        ("risk.max_total_exposure", "1000000000", True),  # 1e9 pUSD
        ("risk.max_total_exposure", "1000000000.01", False),
        ("risk.max_daily_loss", "1e308", False),
        ("risk.max_order_notional", "1e308", False),
        ("risk.max_market_notional", "1e308", False),
        ("risk.max_event_notional", "1e308", False),
        ("risk.error_rate_max", "10000", True),
        ("risk.error_rate_max", "10001", False),
        ("telegram.users", "9007199254740991:admin", True),  # 2**53 - 1: Telegram ids fit a double
        ("telegram.users", "9007199254740992:admin", False),
        ("telegram.alert_chats", "-1001234567890", True),
        ("telegram.alert_chats", "0", False),
        ("telegram.alert_chats", "99999999999999999999", False),
        ("telegram.token", BOT_TOKEN, True),
        ("telegram.token", "badtoken", False),
        ("telegram.token", BOT_TOKEN + "x", False),  # 36 characters after the colon
        ("telegram.token", BOT_TOKEN[:-1], False),
        ("telegram.token", TOKEN_HALF, False),  # the secret half without the bot id
        ("telegram.token", "7412589630:" + "!" * 35, False),
    ],
)
def test_every_number_has_a_sane_bound_and_the_token_its_shape(key: str, value: str, ok: bool) -> None:
    env = {env_name(key): value}
    if ok:
        load_settings(None, env=env)
        return
    problem = one_problem(problems_of(None, env), key)
    assert problem.startswith(f"env {env_name(key)}: ")
    if key == "telegram.token":  # a secret: the reason, never the value
        assert value not in problem and "@BotFather" in problem
    if key == "relayer.chain_id":
        assert "137 (Polygon mainnet) or 80002 (Polygon Amoy testnet)" in problem


def test_a_huge_number_is_described_not_shown(tmp_path: Path) -> None:
    # a private key typed unquoted is a TOML hex integer: its 77 decimal digits are the key
    config = write(tmp_path / "service.toml", f"[relayer]\nsignature_type = {PRIVATE_KEY}\n")
    problem = one_problem(problems_of(config), "relayer.signature_type")
    assert "a number of 77 characters, not shown" in problem
    assert str(int(PRIVATE_KEY, 16))[:8] not in problem


# --------------------------------------------------------------------------- secrets


def secret_config(tmp_path: Path) -> Path:
    config = write(tmp_path / "service.toml", '[relayer]\ntype = "real"\n[telegram]\nenabled = true\n')
    write(
        tmp_path / "secrets.local.toml",
        f"""
[relayer]
private_key = "{KEY[2:]}"
api_secret = "{API_SECRET}"
[telegram]
token = "{TOKEN}"
[db]
url = "postgresql://polybot:Pa55word-xyz@127.0.0.1:5432/polybot"
""",
    )
    return config


def test_secrets_are_masked_in_repr_str_and_dumps(tmp_path: Path) -> None:
    s = load_settings(secret_config(tmp_path), env={}).settings
    assert s.relayer.private_key is not None and s.relayer.private_key.get_secret_value() == KEY  # 0x added
    assert s.telegram.token is not None and s.telegram.token.get_secret_value() == TOKEN
    assert s.db.url.endswith("Pa55word-xyz@127.0.0.1:5432/polybot")
    texts = [
        repr(s),
        str(s),
        repr(s.relayer),
        repr(s.db),
        str(s.model_dump()),
        s.model_dump_json(),
        str(s.masked_dict()),
    ]
    for text in texts:
        for secret in (KEY, KEY[2:], TOKEN, API_SECRET, "Pa55word-xyz"):
            assert secret not in text
    masked = s.masked_dict()
    assert masked["relayer"]["private_key"] == "**********"
    assert masked["relayer"]["api_key"] == ""
    assert masked["db"]["url"] == "postgresql://polybot:**********@127.0.0.1:5432/polybot"


def test_loading_registers_secrets_for_redaction(tmp_path: Path) -> None:
    load_settings(secret_config(tmp_path), env={})
    line = f"key={KEY[2:]} secret={API_SECRET} pw=Pa55word-xyz"
    assert redact(line) == "key=*** secret=*** pw=***"


def test_bad_secret_values_are_never_echoed(tmp_path: Path) -> None:
    config = write(tmp_path / "service.toml", "")
    leaked = "not-a-key-but-still-secret-" + "z" * 20
    write(tmp_path / "secrets.local.toml", f'[relayer]\nprivate_key = "{leaked}"\nprivte_key = "{leaked}x"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(config, env={"POLYBOT_TELEGRAM__TOKEN": "has space inside"})
    message = str(info.value)
    assert "relayer.private_key" in message and "64 hex" in message
    assert "relayer.privte_key" in message
    assert "telegram.token" in message
    assert leaked not in message and "has space inside" not in message
    assert redact(f"x {leaked}x") == "x ***"  # the misspelt key's value was registered too


# --------------------------------------------------------------------------- shipped files


def _toml_keys(data: dict, prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for key, value in data.items():
        if isinstance(value, dict):
            keys |= _toml_keys(value, f"{prefix}{key}.")
        else:
            keys.add(f"{prefix}{key}")
    return keys


def test_example_config_loads_and_lists_every_key() -> None:
    path = REPO_ROOT / "config" / "service.example.toml"
    loaded = load_settings(path, env={})
    assert loaded.settings.mode is Mode.PAPER
    text = path.read_text()
    present = _toml_keys(tomllib.loads(text))
    missing = set(leaf_keys(loaded.settings)) - present
    # keys whose only "unset" value is absence in TOML appear commented out
    for key in missing:
        assert re.search(rf"^#\s*{re.escape(key.rsplit('.', 1)[1])}\s*=", text, re.M), key
    assert missing == {"strategies.dutch.fee_bps"}
    assert "disarmed" in text.lower()
    # every key carries a comment somewhere above it in its table
    assert text.count("#") > len(present)


def test_secrets_example_loads_next_to_the_service_example(tmp_path: Path) -> None:
    shutil.copy(REPO_ROOT / "config" / "service.example.toml", tmp_path / "service.toml")
    shutil.copy(REPO_ROOT / "config" / "secrets.local.toml.example", tmp_path / "secrets.local.toml")
    loaded: LoadedSettings = load_settings(tmp_path / "service.toml", env={})
    assert loaded.secrets_path == tmp_path / "secrets.local.toml"
    assert loaded.sources["relayer.private_key"].startswith("secrets:")
    assert loaded.settings.relayer.private_key is None  # placeholders are "not set"


def test_demo_config_is_offline_and_paper() -> None:
    s = load_settings(REPO_ROOT / "config" / "demo.toml", env={}).settings
    assert s.mode is Mode.PAPER
    assert s.db.url == "sqlite:///./var/demo.db"
    for url in (s.feed.ws_url, s.feed.user_ws_url, s.gamma.url, s.clob.url, s.telegram.base_url):
        assert "://127.0.0.1:" in url, url
    assert s.metrics.host == "127.0.0.1"


@pytest.mark.parametrize("layer", ["file", "secrets", "env"])
def test_secret_shapes_typed_under_the_wrong_key_are_never_echoed(tmp_path: Path, layer: str) -> None:
    clear_secrets()  # only the shapes may protect them here, not an earlier registration
    config = write(tmp_path / "service.toml", MISPLACED_TOML if layer == "file" else "")
    if layer == "secrets":
        write(tmp_path / "secrets.local.toml", MISPLACED_TOML)
    problems = problems_of(config, MISPLACED_ENV if layer == "env" else {})
    assert len(problems) == len(MISPLACED_KEYS), problems
    for key in MISPLACED_KEYS:
        one_problem(problems, f" {key}: ")
    text = "\n".join(problems)
    assert_no_secret(text)
    assert 'got "postgresq://polybot:***@127.0.0.1:5432/polybot"' in text  # the URL, without its password
    assert '(got "***")' in text


def test_ordinary_values_are_still_echoed(tmp_path: Path) -> None:
    config = write(tmp_path / "service.toml", '[risk]\none_leg_policy = "pray"\n[service]\nmode = "live-ish"\n')
    problems = problems_of(config)
    assert '(got "pray")' in one_problem(problems, "risk.one_leg_policy")
    assert '(got "live-ish")' in one_problem(problems, "service.mode")


def test_secrets_in_the_main_file_are_found_by_their_source(tmp_path: Path) -> None:
    config = write(
        tmp_path / "service.toml",
        f'[relayer]\nprivate_key = "{PRIVATE_KEY}"\napi_key = ""\n[telegram]\ntoken = "{BOT_TOKEN}"\n'
        f'[db]\nurl = "postgresql://polybot:{DB_PASSWORD}@127.0.0.1:5432/polybot"\n',
    )
    loaded = load_settings(config, env={})
    assert secrets_in_main_file(loaded) == ["relayer.private_key", "telegram.token", "db.url"]  # "" is unset

    write(tmp_path / "secrets.local.toml", f'[telegram]\ntoken = "{BOT_TOKEN}"\n')
    env = {"POLYBOT_RELAYER__PRIVATE_KEY": PRIVATE_KEY, "POLYBOT_RELAYER__API_SECRET": B64_API_SECRET}
    loaded = load_settings(config, env=env)
    assert secrets_in_main_file(loaded) == ["db.url"]
    assert set_secret_keys(loaded.settings) == ["relayer.private_key", "relayer.api_secret", "telegram.token", "db.url"]

    config.write_text('[db]\nurl = "postgresql://polybot@127.0.0.1:5432/polybot"\n')  # no password: no secret
    loaded = load_settings(config, env={})
    assert set_secret_keys(loaded.settings) == ["telegram.token"] and secrets_in_main_file(loaded) == []
    assert env_name("strategies.dutch.max_sets") == "POLYBOT_STRATEGIES__DUTCH__MAX_SETS"


def test_a_secret_pasted_as_a_key_name_is_masked_in_the_unknown_key_error(tmp_path: Path) -> None:
    config = write(tmp_path / "service.toml", f"[relayer]\n{TOKEN_HALF} = 1\n")
    (problem,) = problems_of(config)
    assert problem == f"{config}:2: relayer.***: unknown key"


def test_a_long_value_is_masked_before_it_is_shortened(tmp_path: Path) -> None:
    # shortened first, "my key: 0x" + 47 hex digits would no longer look like a key, yet be most of it
    config = write(tmp_path / "service.toml", f'[service]\nname = "my key: {PRIVATE_KEY} (the old one)"\n')
    problem = one_problem(problems_of(config), "service.name")
    assert problem.endswith('(got "my key: *** (the old one)")')
    assert_no_secret(problem)

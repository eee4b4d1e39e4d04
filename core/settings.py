"""Polybot settings: typed sections, loaded from TOML + a secrets overlay + the environment.

Load order (later wins, dictionaries merge deeply):

1. the defaults written below;
2. the service TOML given with ``--config FILE``;
3. ``secrets.local.toml`` in the same directory as that file (any section may be overlaid;
   it normally carries ``[relayer]`` keys and the Telegram token);
4. environment variables ``POLYBOT_<SECTION>__<KEY>`` (nested with more ``__``, e.g.
   ``POLYBOT_STRATEGIES__DUTCH__SAFETY_MARGIN_USDC=0.02``). Lists take JSON (``["a","b"]``)
   or a comma-separated string; ``POLYBOT_*`` names without ``__`` are not settings.

Every problem is collected before anything is reported: :func:`load_settings` raises one
:class:`core.errors.ConfigError` whose lines each name the file (with line when it can be
found) or the environment variable, the dotted key and the reason. Every model forbids
unknown keys, so a misspelt key is an error rather than a silently ignored default.

Secrets are :class:`pydantic.SecretStr` (``repr``/``str``/``model_dump`` show ``**********``;
``.get_secret_value()`` gives the value) and every one is registered with
:mod:`core.redact` as soon as a :class:`Settings` is built, so log lines mask it too.
Money is ``Decimal``: TOML floats are read as ``Decimal`` and binary floats are refused.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import re
import stat
import tomllib
import types
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import time
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from core.errors import ConfigError
from core.redact import (
    DISPLAY_MASK,
    TELEGRAM_TOKEN_PATTERN,
    mask_url_password,
    redact_typed,
    register_secret,
    url_password,
)
from core.types import Mode

_log = logging.getLogger(__name__)

ENV_PREFIX = "POLYBOT_"
ENV_SEPARATOR = "__"
SECRETS_FILENAME = "secrets.local.toml"

# Per-signer venue limits (standard tier); our token buckets must stay strictly below them.
VENUE_ORDERS_PER_S = 40
VENUE_ORDERS_BURST = 60
VENUE_CANCELS_PER_S = 80
VENUE_CANCELS_BURST = 120

DEFAULT_WS_URL = "wss://ws-subscriptions-clob.polymarket.com/ws/market"
DEFAULT_USER_WS_URL = "wss://ws-subscriptions-clob.polymarket.com/ws/user"
DEFAULT_GAMMA_URL = "https://gamma-api.polymarket.com"
DEFAULT_CLOB_URL = "https://clob.polymarket.com"
DEFAULT_TELEGRAM_BASE_URL = "https://api.telegram.org/bot"
DEFAULT_DB_URL = "sqlite:///./var/polybot.db"

# Upper bounds a trader never needs to exceed: a larger value is a typo (an extra zero, 1e308),
# and a limit nobody can reach is no limit. docs/config-guide.md lists each.
MAX_PUSD = Decimal(1_000_000_000)
"""Largest notional, exposure or loss limit (pUSD)."""
MAX_SHARES = Decimal(1_000_000)
"""Largest share count of one order, quote, set or inventory (the /order limit too)."""
DAY_MS = 86_400_000
DAY_S = 86_400
MAX_TELEGRAM_ID = 2**53 - 1
"""Telegram user and chat ids have at most 52 significant bits (they fit a double)."""
SUPPORTED_CHAIN_IDS = {137: "Polygon mainnet", 80002: "Polygon Amoy testnet"}
"""The chains whose exchange contracts the CLOB V2 client knows."""


# --------------------------------------------------------------------------- field types


def _reject_float(value: Any) -> Any:
    if isinstance(value, float):
        raise ValueError("money must be exact: give a decimal (TOML number or string), not a binary float")
    return value


def _reject_bool(value: Any) -> Any:
    # bool is an int subclass; "enabled = true" in a numeric key is a mistake, not 1.
    if isinstance(value, bool):
        raise ValueError("expected a number, not true/false")
    return value


def _empty_to_none(value: Any) -> Any:
    # The secrets example ships empty strings: "" means "not set", not "set to nothing".
    if isinstance(value, str) and not value.strip():
        return None
    if isinstance(value, SecretStr) and not value.get_secret_value().strip():
        return None
    return value


def _url_checker(schemes: frozenset[str], what: str) -> Any:
    def check(value: str) -> str:
        from urllib.parse import urlsplit

        value = value.strip()
        try:
            parts = urlsplit(value)
        except ValueError as exc:
            raise ValueError(f"not a valid URL ({exc})") from None
        if parts.scheme.lower() not in schemes or not parts.netloc:
            allowed = " or ".join(sorted(f"{s}://" for s in schemes))
            raise ValueError(f"must be a {what} URL starting with {allowed}")
        return value

    return AfterValidator(check)


_HTTP = frozenset({"http", "https"})
_WS = frozenset({"ws", "wss"})

Money = Annotated[Decimal, BeforeValidator(_reject_float)]
Int = Annotated[int, BeforeValidator(_reject_bool)]
Seconds = Annotated[float, BeforeValidator(_reject_bool)]
HttpUrl = Annotated[str, _url_checker(_HTTP, "http(s)")]
WsUrl = Annotated[str, _url_checker(_WS, "websocket")]
OptionalHttpUrl = Annotated[HttpUrl | None, BeforeValidator(_empty_to_none)]
OptionalSecret = Annotated[SecretStr | None, BeforeValidator(_empty_to_none)]
OptionalStr = Annotated[str | None, BeforeValidator(_empty_to_none)]

_HEX64 = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")
_CONDITION_ID = re.compile(r"^0x[0-9a-fA-F]{64}$")
_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")


def _asset_id(value: Any) -> Any:
    # Token ids are 77-digit integers; TOML happily reads them unquoted.
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str):
        value = value.strip()
        if not value.isdigit():
            raise ValueError("an asset (token) id is a decimal integer string")
    return value


def _market_ref(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip()
        if value.lower().startswith("0x"):
            if not _CONDITION_ID.match(value):
                raise ValueError("a condition id is 0x followed by 64 hex digits")
        elif not _SLUG.match(value):
            raise ValueError("a market is a condition id (0x + 64 hex) or a slug (letters, digits, '-')")
    return value


AssetId = Annotated[str, BeforeValidator(_asset_id)]
MarketRef = Annotated[str, BeforeValidator(_market_ref)]


class CrossFieldProblems(ValueError):
    """Problems that involve more than one key of a section.

    ``items`` are ``(key, reason, related_keys)`` with keys relative to the section that raised
    it; the loader turns each into its own problem line naming the file that set the keys.
    """

    def __init__(self, items: list[tuple[str, str, tuple[str, ...]]]) -> None:
        self.items = items
        super().__init__("; ".join(f"{key}: {reason}" for key, reason, _ in items))


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, validate_default=True)


# --------------------------------------------------------------------------- sections


class ServiceSettings(_Section):
    name: str = Field("polybot", min_length=1, max_length=64)
    mode: Literal["auto", "paper", "dry-run", "live"] = "auto"
    """A hint that must agree with the relayer settings; "auto" derives the mode from them."""
    cancel_on_shutdown: bool = True
    relayer_max_retries: Int = Field(3, ge=0, le=20)
    relayer_retry_sleep_ms: Int = Field(250, ge=0, le=60_000)
    engine_max_retries: Int = Field(2, ge=0, le=20)
    engine_retry_sleep_ms: Int = Field(500, ge=0, le=60_000)
    staleness_ms: Int = Field(5_000, gt=0, le=DAY_MS)
    market_refresh_minutes: Int = Field(15, gt=0, le=24 * 60)
    health_ping_minutes: Int = Field(60, ge=0, le=7 * 24 * 60)
    daily_summary_utc: str = "00:00"
    data_dir: str = Field("./var", min_length=1)
    reconcile_s: Seconds = Field(30.0, ge=1, le=3600)
    """How often open orders are compared with the venue while running (the same path as at start)."""

    @field_validator("daily_summary_utc")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        value = value.strip()
        if not _HHMM.match(value):
            raise ValueError('must be a UTC time "HH:MM" (00:00 to 23:59)')
        return value

    @property
    def daily_summary_time(self) -> time:
        hours, minutes = self.daily_summary_utc.split(":")
        return time(int(hours), int(minutes))


class FeedSettings(_Section):
    ws_url: WsUrl = DEFAULT_WS_URL
    user_ws_url: WsUrl = DEFAULT_USER_WS_URL
    assets: list[AssetId] = Field(default_factory=list)
    markets: list[MarketRef] = Field(default_factory=list)
    max_assets_per_connection: Int = Field(200, ge=1, le=500)
    ping_interval_s: Seconds = Field(10.0, gt=0, le=300)
    dead_after_s: Seconds = Field(30.0, gt=0, le=3600)
    reconnect_initial_ms: Int = Field(500, ge=1, le=600_000)
    reconnect_max_ms: Int = Field(30_000, ge=1, le=3_600_000)
    reconnect_jitter: float = Field(0.2, ge=0, le=1)
    max_frame_bytes: Int = Field(8 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024)
    quiet_after_s: Seconds = Field(300.0, gt=0, le=DAY_S)

    @model_validator(mode="after")
    def _consistent(self) -> FeedSettings:
        items: list[tuple[str, str, tuple[str, ...]]] = []
        if self.dead_after_s <= self.ping_interval_s:
            items.append(("dead_after_s", "must be greater than ping_interval_s", ("ping_interval_s",)))
        if self.reconnect_max_ms < self.reconnect_initial_ms:
            items.append(("reconnect_max_ms", "must be at least reconnect_initial_ms", ("reconnect_initial_ms",)))
        if items:
            raise CrossFieldProblems(items)
        return self


class GammaSettings(_Section):
    url: HttpUrl = DEFAULT_GAMMA_URL
    page_limit: Int = Field(100, ge=1, le=100)
    timeout_s: Seconds = Field(10.0, gt=0, le=300)
    max_retries: Int = Field(3, ge=0, le=20)
    active: bool = True
    closed: bool = False


class ClobSettings(_Section):
    url: HttpUrl = DEFAULT_CLOB_URL
    timeout_s: Seconds = Field(10.0, gt=0, le=300)


class RelayerSettings(_Section):
    type: Literal["fake", "real"] = "fake"
    dry_run: bool = True
    chain_id: Int = 137
    private_key: OptionalSecret = None
    signature_type: Int = Field(0, ge=0, le=3)
    funder: OptionalStr = None
    api_key: OptionalSecret = None
    api_secret: OptionalSecret = None
    api_passphrase: OptionalSecret = None
    rpc_url: OptionalHttpUrl = None
    heartbeat_s: Seconds = Field(5.0, gt=0, lt=10)
    """The venue cancels every open order when heartbeats stop for ~10 s."""
    unreachable_after: Int = Field(3, ge=1, le=100)
    """Consecutive failed venue calls (or heartbeats' worth of user-channel outage) before the one
    venue_unreachable alert."""

    @field_validator("chain_id")
    @classmethod
    def _chain(cls, value: int) -> int:
        if value not in SUPPORTED_CHAIN_IDS:
            names = " or ".join(f"{cid} ({name})" for cid, name in SUPPORTED_CHAIN_IDS.items())
            raise ValueError(f"must be {names}")
        return value

    @field_validator("private_key")
    @classmethod
    def _key_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        raw = value.get_secret_value().strip()
        if not _HEX64.match(raw):  # the message must never echo the value
            raise ValueError("must be 64 hex digits, optionally 0x-prefixed")
        return SecretStr(raw if raw.lower().startswith("0x") else "0x" + raw)

    @field_validator("funder")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None and not _ADDRESS.match(value.strip()):
            raise ValueError("must be an address: 0x followed by 40 hex digits")
        return value.strip() if value else value

    @model_validator(mode="after")
    def _consistent(self) -> RelayerSettings:
        items: list[tuple[str, str, tuple[str, ...]]] = []
        if self.type == "real":
            if self.private_key is None:
                items.append(("private_key", 'required when relayer.type = "real"', ("type",)))
            if self.signature_type in (1, 2, 3) and self.funder is None:
                items.append(
                    (
                        "funder",
                        f"required when signature_type = {self.signature_type} (the funder is the order's maker)",
                        ("signature_type", "type"),
                    )
                )
        if items:
            raise CrossFieldProblems(items)
        return self


class DutchSettings(_Section):
    enabled: bool = False
    safety_margin_usdc: Money = Field(Decimal("0.01"), ge=0, lt=1)
    """Per set, and a set pays out 1 pUSD: a margin of 1 or more could never be met."""
    fee_bps: Annotated[Int | None, BeforeValidator(_empty_to_none)] = Field(None, ge=0, le=10_000)
    slippage_ticks: Int = Field(0, ge=0, le=100)
    max_sets: Money = Field(Decimal("10"), gt=0, le=MAX_SHARES)
    markets: list[MarketRef] = Field(default_factory=list)


class SpreadSettings(_Section):
    enabled: bool = False
    markets: list[MarketRef] = Field(default_factory=list)
    min_spread_ticks: Int = Field(3, ge=1, le=1000)
    requote_ticks: Int = Field(1, ge=1, le=1000)
    size: Money = Field(Decimal("5"), gt=0, le=MAX_SHARES)
    skew_per_share: Money = Field(Decimal("0.0001"), ge=0, le=Decimal("0.01"))
    """pUSD of price per share held; 0.01 (a whole tick per share) already swamps any spread."""
    max_inventory: Money = Field(Decimal("100"), gt=0, le=MAX_SHARES)


class StrategiesSettings(_Section):
    dutch: DutchSettings = Field(default_factory=DutchSettings)
    spread: SpreadSettings = Field(default_factory=SpreadSettings)


class RiskSettings(_Section):
    max_order_notional: Money = Field(Decimal("50"), gt=0, le=MAX_PUSD)
    max_market_notional: Money = Field(Decimal("200"), gt=0, le=MAX_PUSD)
    max_event_notional: Money = Field(Decimal("500"), gt=0, le=MAX_PUSD)
    max_total_exposure: Money = Field(Decimal("1000"), gt=0, le=MAX_PUSD)
    max_daily_loss: Money = Field(Decimal("100"), gt=0, le=MAX_PUSD)
    error_rate_window_s: Int = Field(60, ge=1, le=DAY_S)
    error_rate_max: Int = Field(10, ge=1, le=10_000)
    orders_per_s: Int = Field(30, ge=1, lt=VENUE_ORDERS_PER_S)
    orders_burst: Int = Field(50, ge=1, lt=VENUE_ORDERS_BURST)
    cancels_per_s: Int = Field(60, ge=1, lt=VENUE_CANCELS_PER_S)
    cancels_burst: Int = Field(100, ge=1, lt=VENUE_CANCELS_BURST)
    one_leg_policy: Literal["unwind", "hedge", "alert"] = "unwind"
    paper_bankroll: Money = Field(Decimal("1000"), gt=0, le=MAX_PUSD)
    """Paper mode's collateral: buys beyond it (less what open buys hold) are refused."""
    balance_refresh_s: Seconds = Field(30.0, ge=1, le=3600)
    """How often the venue's balances are re-read in live mode (also after every fill, and before a
    sell of a token not read within this time)."""

    @model_validator(mode="after")
    def _consistent(self) -> RiskSettings:
        items: list[tuple[str, str, tuple[str, ...]]] = []
        if self.max_order_notional > self.max_market_notional:
            items.append(("max_order_notional", "must not exceed max_market_notional", ("max_market_notional",)))
        if self.max_market_notional > self.max_total_exposure:
            items.append(("max_market_notional", "must not exceed max_total_exposure", ("max_total_exposure",)))
        if self.max_event_notional > self.max_total_exposure:
            items.append(("max_event_notional", "must not exceed max_total_exposure", ("max_total_exposure",)))
        if items:
            raise CrossFieldProblems(items)
        return self


def _nonzero_chat(value: int) -> int:
    if value == 0:
        raise ValueError("a chat id is never 0 (users are positive, groups negative)")
    return value


ChatId = Annotated[Int, Field(ge=-MAX_TELEGRAM_ID, le=MAX_TELEGRAM_ID), AfterValidator(_nonzero_chat)]
_TELEGRAM_TOKEN = re.compile(TELEGRAM_TOKEN_PATTERN)

Role = Literal["viewer", "operator", "admin"]
ROLE_RANK: dict[str, int] = {"viewer": 0, "operator": 1, "admin": 2}


class TelegramUser(_Section):
    id: Int = Field(gt=0, le=MAX_TELEGRAM_ID)
    role: Role

    @model_validator(mode="before")
    @classmethod
    def _from_shorthand(cls, value: Any) -> Any:
        # "123456:admin" keeps an environment variable readable: POLYBOT_TELEGRAM__USERS=1:admin,2:viewer
        if isinstance(value, str) and ":" in value:
            user_id, _, role = value.partition(":")
            return {"id": user_id.strip(), "role": role.strip()}
        return value


class TelegramSettings(_Section):
    enabled: bool = False
    token: OptionalSecret = None
    base_url: HttpUrl = DEFAULT_TELEGRAM_BASE_URL
    users: list[TelegramUser] = Field(default_factory=list)
    alert_chats: list[ChatId] = Field(default_factory=list)
    confirm_ttl_s: Int = Field(30, ge=5, le=3600)
    commands_per_minute: Int = Field(30, ge=1, le=10_000)

    @field_validator("token")
    @classmethod
    def _token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        raw = value.get_secret_value().strip()
        if not _TELEGRAM_TOKEN.fullmatch(raw):  # the message must never echo the value
            raise ValueError(
                'must be the bot token from @BotFather: "<bot id digits>:<35 characters of A-Z a-z 0-9 _ ->"'
            )
        return SecretStr(raw)

    @model_validator(mode="after")
    def _consistent(self) -> TelegramSettings:
        items: list[tuple[str, str, tuple[str, ...]]] = []
        if self.enabled and self.token is None:
            items.append(("token", "required when telegram.enabled = true", ("enabled",)))
        seen: set[int] = set()
        for user in self.users:
            if user.id in seen:
                items.append(("users", f"user id {user.id} is listed more than once", ()))
            seen.add(user.id)
        if items:
            raise CrossFieldProblems(items)
        return self

    def role_of(self, user_id: int) -> str | None:
        """The configured role of a Telegram user id, or None when the user is not authorised."""
        for user in self.users:
            if user.id == user_id:
                return user.role
        return None


class MetricsSettings(_Section):
    enabled: bool = False
    host: str = Field("127.0.0.1", min_length=1)
    port: Int = Field(9108, ge=0, le=65_535)


class DbSettings(_Section):
    url: str = DEFAULT_DB_URL

    @field_validator("url")
    @classmethod
    def _db_url(cls, value: str) -> str:
        value = value.strip()
        scheme = value.partition("://")[0].lower() if "://" in value else ""
        if scheme.partition("+")[0] not in {"sqlite", "postgresql", "postgres"}:
            raise ValueError("must be a sqlite:///PATH or postgresql://user:pass@host:port/db URL")
        return value

    @field_serializer("url")
    def _masked_url(self, value: str) -> str:
        return mask_url_password(value)

    def __repr_args__(self) -> Any:
        yield "url", mask_url_password(self.url)


with warnings.catch_warnings():
    # The TOML key is "json"; it shadows BaseModel.json(), a deprecated method nobody calls here.
    warnings.filterwarnings("ignore", message=r'Field name "json"', category=UserWarning)

    class LoggingSettings(_Section):
        level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
        json: bool = False
        file: OptionalStr = None

        @field_validator("level", mode="before")
        @classmethod
        def _upper(cls, value: Any) -> Any:
            return value.strip().upper() if isinstance(value, str) else value


class Settings(_Section):
    """The whole configuration. Build it with :func:`load_settings` to get provenance and errors."""

    service: ServiceSettings = Field(default_factory=ServiceSettings)
    feed: FeedSettings = Field(default_factory=FeedSettings)
    gamma: GammaSettings = Field(default_factory=GammaSettings)
    clob: ClobSettings = Field(default_factory=ClobSettings)
    relayer: RelayerSettings = Field(default_factory=RelayerSettings)
    strategies: StrategiesSettings = Field(default_factory=StrategiesSettings)
    risk: RiskSettings = Field(default_factory=RiskSettings)
    telegram: TelegramSettings = Field(default_factory=TelegramSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    db: DbSettings = Field(default_factory=DbSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        for secret in iter_secret_values(self):
            register_secret(secret)
        hint = self.service.mode
        if hint != "auto" and hint != self.mode.value:
            raise CrossFieldProblems(
                [
                    (
                        "service.mode",
                        f'says "{hint}" but the relayer settings (type = "{self.relayer.type}", '
                        f'dry_run = {str(self.relayer.dry_run).lower()}) mean "{self.mode.value}"',
                        ("relayer.type", "relayer.dry_run"),
                    )
                ]
            )
        return self

    @property
    def mode(self) -> Mode:
        """Paper with the fake relayer; with the real one, dry-run unless ``dry_run = false``."""
        if self.relayer.type == "fake":
            return Mode.PAPER
        return Mode.DRY_RUN if self.relayer.dry_run else Mode.LIVE

    def masked_dict(self) -> dict[str, Any]:
        """JSON-safe nested dict for display: set secrets ``**********``, unset secrets ``""``."""
        return _masked(self)


def iter_secret_values(settings: Settings) -> Iterator[str]:
    """Every secret value in ``settings`` (SecretStr fields and the database password)."""
    yield from _secret_values(settings)
    password = url_password(settings.db.url)
    if password:
        yield password


DB_URL_KEY = "db.url"


def set_secret_keys(settings: Settings) -> list[str]:
    """Dotted keys of the secrets that are set: secret fields, and ``db.url`` when it has a password."""
    keys = [key for key, value in _secret_fields(settings) if value is not None]
    if url_password(settings.db.url):
        keys.append(DB_URL_KEY)
    return keys


def _secret_fields(model: BaseModel, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            yield from _secret_fields(value, f"{prefix}{name}.")
        elif _is_secret_annotation(info.annotation):
            yield f"{prefix}{name}", value


def env_name(key: str) -> str:
    """The environment variable that sets a dotted key: ``relayer.api_secret`` -> ``POLYBOT_RELAYER__API_SECRET``."""
    return ENV_PREFIX + ENV_SEPARATOR.join(key.split(".")).upper()


def secrets_in_main_file(loaded: LoadedSettings) -> list[str]:
    """Set secrets whose value comes from the main service file rather than the secrets overlay
    or the environment. That file is shared, copied and often world-readable: no place for a key."""
    return [key for key in set_secret_keys(loaded.settings) if loaded.sources.get(key, "").startswith("file:")]


def secret_location_advice(loaded: LoadedSettings, keys: list[str]) -> str:
    """One line naming misplaced secrets, the file they are in and where they belong."""
    where = loaded.config_path
    overlay = where.parent / SECRETS_FILENAME if where is not None else Path(SECRETS_FILENAME)
    names = ", ".join(f"{key} (it carries a password)" if key == DB_URL_KEY else key for key in keys)
    variables = ", ".join(env_name(key) for key in keys)
    one = len(keys) == 1
    return (
        f"{names} {'is' if one else 'are'} set in {where}, which is not for secrets: move "
        f"{'it' if one else 'them'} to {overlay} (beside the config, chmod 600) or to the environment "
        f"(variable{'' if one else 's'} {variables})"
    )


def _secret_values(model: BaseModel) -> Iterator[str]:
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, SecretStr):
            yield value.get_secret_value()
        elif isinstance(value, BaseModel):
            yield from _secret_values(value)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, BaseModel):
                    yield from _secret_values(item)


def _masked(model: BaseModel) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            out[name] = _masked(value)
        elif _is_secret_annotation(info.annotation):
            out[name] = DISPLAY_MASK if value is not None else ""
        elif isinstance(model, DbSettings) and name == "url":
            out[name] = mask_url_password(value)
        elif info.annotation == _MARKET_LIST:
            out[name] = _jsonable(value)  # condition ids, by design: the shape of a key, but public
        else:
            # a secret pasted under a key that takes any text (service.name, logging.file, …)
            out[name] = _typed_masked(_jsonable(value))
    return out


_MARKET_LIST = list[MarketRef]


def _typed_masked(value: Any) -> Any:
    if isinstance(value, str):
        return redact_typed(value)
    if isinstance(value, list):
        return [_typed_masked(v) for v in value]
    return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return _masked(value)
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    return value


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class LoadedSettings:
    settings: Settings
    sources: dict[str, str]
    """Dotted leaf key -> ``default`` | ``file:<path>`` | ``secrets:<path>`` | ``env:<NAME>``."""
    config_path: Path | None = None
    secrets_path: Path | None = None


@dataclass
class _Layer:
    label: str  # "file:PATH" / "secrets:PATH" / "env"
    text: str | None = None  # TOML source, to find the line of a bad key


def load_settings(config_path: str | Path | None, *, env: Mapping[str, str] | None = None) -> LoadedSettings:
    """Defaults -> ``config_path`` -> ``secrets.local.toml`` beside it -> ``POLYBOT_*`` env.

    Raises :class:`ConfigError` listing every problem found.
    """
    environ = os.environ if env is None else env
    problems: list[str] = []
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    texts: dict[str, str] = {}
    path: Path | None = None
    secrets_path: Path | None = None

    if config_path is not None:
        path = Path(config_path)
        data, text = _read_toml(path, problems)
        if data is not None:
            label = f"file:{path}"
            texts[label] = text or ""
            _overlay(merged, data, label, origin)
        candidate = path.parent / SECRETS_FILENAME
        if candidate.is_file() and candidate.resolve() != path.resolve():
            secrets_path = candidate
            _warn_if_readable_by_others(candidate)
            sdata, stext = _read_toml(candidate, problems)
            if sdata is not None:
                _register_raw_secrets(sdata)
                label = f"secrets:{candidate}"
                texts[label] = stext or ""
                _overlay(merged, sdata, label, origin)

    env_layer = _env_layer(environ, problems)
    for name, parts, value in env_layer:
        _overlay(merged, _nest(parts, value), f"env:{name}", origin)

    settings: Settings | None = None
    try:
        settings = Settings.model_validate(merged)
    except ValidationError as exc:
        problems.extend(_describe_errors(exc, origin, texts))
    if problems or settings is None:
        raise ConfigError(problems)

    sources = {key: _source_of(key, origin) or "default" for key in leaf_keys(settings)}
    return LoadedSettings(settings=settings, sources=sources, config_path=path, secrets_path=secrets_path)


def leaf_keys(model: BaseModel, prefix: str = "") -> list[str]:
    """Dotted keys of every leaf value (lists count as one leaf)."""
    keys: list[str] = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        dotted = f"{prefix}{name}"
        if isinstance(value, BaseModel):
            keys.extend(leaf_keys(value, dotted + "."))
        else:
            keys.append(dotted)
    return keys


def _read_toml(path: Path, problems: list[str]) -> tuple[dict[str, Any] | None, str | None]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        problems.append(f"{path}: config file not found")
        return None, None
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{path}: cannot read config file: {exc}")
        return None, None
    try:
        # Decimal, not float: money keys must keep the digits the operator wrote.
        return tomllib.loads(text, parse_float=Decimal), text
    except tomllib.TOMLDecodeError as exc:
        problems.append(f"{path}: invalid TOML syntax: {exc}")
        return None, text


def _warn_if_readable_by_others(path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        _log.warning("secrets file %s is readable by other users; run: chmod 600 %s", path, path)


def _overlay(dst: dict[str, Any], src: Mapping[str, Any], label: str, origin: dict[str, str], prefix: str = "") -> None:
    """Deep-merge ``src`` into ``dst``, recording ``label`` as the source of every leaf it sets."""
    for key, value in src.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            if not isinstance(dst.get(key), dict):
                _forget(origin, dotted)
                dst[key] = {}
            _overlay(dst[key], value, label, origin, dotted + ".")
        else:
            _forget(origin, dotted)
            dst[key] = value
            origin[dotted] = label


def _forget(origin: dict[str, str], dotted: str) -> None:
    origin.pop(dotted, None)
    for key in [k for k in origin if k.startswith(dotted + ".")]:
        del origin[key]


def _nest(parts: list[str], value: Any) -> dict[str, Any]:
    out: Any = value
    for part in reversed(parts):
        out = {part: out}
    return out


def _register_raw_secrets(data: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> None:
    """Mask secret-looking strings of the secrets file even when the file fails validation."""
    for key, value in data.items():
        parts = (*prefix, key)
        if isinstance(value, Mapping):
            _register_raw_secrets(value, parts)
        elif isinstance(value, str):
            annotation = _annotation_at(list(parts))
            # Unknown keys (likely misspelt secrets) count as secrets too.
            if annotation is _UNKNOWN or _is_secret_annotation(annotation):
                register_secret(value.strip())


# ---- environment


def _env_layer(environ: Mapping[str, str], problems: list[str]) -> list[tuple[str, list[str], Any]]:
    found: list[tuple[str, list[str], Any]] = []
    for name in sorted(environ):
        if not name.upper().startswith(ENV_PREFIX):
            continue
        rest = name[len(ENV_PREFIX) :]
        if ENV_SEPARATOR not in rest:
            continue  # POLYBOT_REQUIRE_PG and friends are not settings
        parts = [p.lower() for p in rest.split(ENV_SEPARATOR)]
        if not all(parts):
            problems.append(f"env {name}: malformed name (expected POLYBOT_<SECTION>__<KEY>)")
            continue
        raw = environ[name]
        try:
            value = _parse_env_value(raw, parts)
        except ValueError as exc:
            problems.append(f"env {name}: {'.'.join(parts)}: {exc}")
            continue
        found.append((name, parts, value))
    # Whole sections first so "POLYBOT_STRATEGIES__DUTCH={...}" does not wipe a more specific variable.
    found.sort(key=lambda item: len(item[1]))
    return found


_UNKNOWN = object()


def _annotation_at(parts: list[str]) -> Any:
    """The field annotation at a dotted path of :class:`Settings`, or ``_UNKNOWN``."""
    model: type[BaseModel] | None = Settings
    annotation: Any = _UNKNOWN
    for part in parts:
        if model is None:
            return _UNKNOWN
        info = model.model_fields.get(part)
        if info is None:
            return _UNKNOWN
        annotation = info.annotation
        model = _model_class(annotation, through_lists=True)
    return annotation


def _model_class(annotation: Any, *, through_lists: bool = False) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if through_lists and get_origin(annotation) is list:
        return _model_class(get_args(annotation)[0])
    return None


def _type_args(annotation: Any) -> tuple[Any, ...]:
    origin = get_origin(annotation)
    if origin is Annotated:
        return _type_args(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return get_args(annotation)
    return (annotation,)


def _is_secret_annotation(annotation: Any) -> bool:
    return any(arg is SecretStr for arg in _type_args(annotation))


def _parse_env_value(raw: str, parts: list[str]) -> Any:
    annotation = _annotation_at(parts)
    if annotation is _UNKNOWN:
        return raw  # validation reports the unknown key with this variable's name
    args = _type_args(annotation)
    structured = _model_class(annotation) is not None or any(
        get_origin(a) in (list, dict) or a in (list, dict) for a in args
    )
    stripped = raw.strip()
    if structured:
        if stripped.startswith(("[", "{")):
            try:
                return json.loads(stripped, parse_float=Decimal)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not valid JSON: {exc}") from None
        if any(get_origin(a) is list or a is list for a in args):
            return [item.strip() for item in stripped.split(",") if item.strip()]
        return raw
    if not stripped and type(None) in args:
        return None
    return raw


# ---- error reporting


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        # key names come from the person's file too: a value pasted as a key stays masked
        out += f"[{part}]" if isinstance(part, int) else (f".{redact_typed(part)}" if out else redact_typed(str(part)))
    return out


def _origin_key(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc)


def _source_of(key: str, origin: Mapping[str, str]) -> str | None:
    """The label of the layer that set ``key``, a section containing it, or a key inside it."""
    probe = key
    while probe:
        if probe in origin:
            return origin[probe]
        probe = probe.rpartition(".")[0]
    for candidate, label in origin.items():
        if candidate.startswith(key + "."):
            return label
    return None


def _where(label: str | None, loc: tuple[Any, ...], texts: Mapping[str, str]) -> str:
    if label is None:
        return "defaults"
    kind, _, rest = label.partition(":")
    if kind == "env":
        return f"env {rest}"
    line = _find_line(texts.get(label, ""), loc)
    return f"{rest}:{line}" if line else rest


_HEADER_RE = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY_RE = re.compile(r"^\s*([A-Za-z0-9_\-.\"' ]+?)\s*=")


def _split_key(key: str) -> list[str]:
    return [p.strip().strip("\"'") for p in key.split(".")]


def _find_line(text: str, loc: tuple[Any, ...]) -> int | None:
    """Best-effort line of ``loc`` in a TOML text (the key, else its table header)."""
    if not text:
        return None
    target = list(loc)
    keys: dict[tuple[Any, ...], int] = {}
    table: list[Any] = []
    array_counts: dict[tuple[str, ...], int] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        header = _HEADER_RE.match(line)
        if header:
            names = _split_key(header.group(2))
            if header.group(1) == "[[":
                count = array_counts.get(tuple(names), 0)
                array_counts[tuple(names)] = count + 1
                table = [*names, count]
            else:
                table = names
            keys.setdefault(tuple(table), lineno)
            keys.setdefault(tuple(names), lineno)
            continue
        match = _KEY_RE.match(line)
        if match and not line.lstrip().startswith("#"):
            keys.setdefault((*table, *_split_key(match.group(1))), lineno)
    while target:
        if tuple(target) in keys:
            return keys[tuple(target)]
        target.pop()
    return None


_MAX_SHOWN_NUMBER = 24
"""A longer number is described, not shown: a private key written as a TOML hex integer
(``0x4c08…`` unquoted) reads as a 77-digit int, and its digits are the key."""


def _show_input(value: Any) -> str | None:
    """How a rejected value is echoed in ``(got …)``: anything secret-shaped masked first,
    then shortened (shortening first would leave most of a key unmasked)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        shown = redact_typed(value)
        return json.dumps(shown if len(shown) <= 60 else shown[:57] + "...")
    if isinstance(value, int | Decimal | float):
        text = str(value)
        return text if len(text) <= _MAX_SHOWN_NUMBER else f"a number of {len(text)} characters, not shown"
    return None


def _describe_errors(exc: ValidationError, origin: Mapping[str, str], texts: Mapping[str, str]) -> list[str]:
    problems: list[str] = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        kind = err["type"]
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, CrossFieldProblems):
            for key, reason, related in cause.items:
                full = (*loc, *key.split("."))
                candidates = [full, *[(*loc, *r.split(".")) for r in related]]
                # Name the layer that set the offending key, else the one that set a related key.
                found, label = full, None
                for cand in candidates:
                    if _origin_key(cand) in origin:
                        found, label = cand, origin[_origin_key(cand)]
                        break
                if label is None:
                    label = _source_of(_origin_key(full), origin)
                problems.append(f"{_where(label, found, texts)}: {_dotted(full)}: {reason}")
            continue
        label = _source_of(_origin_key(loc), origin)
        if kind == "extra_forbidden":
            reason = "unknown key"
            parent_parts = [str(p) for p in loc[:-1] if isinstance(p, str)]
            parent = _annotation_at(parent_parts) if parent_parts else Settings
            model = _model_class(parent, through_lists=True)
            if model is not None and isinstance(loc[-1], str):
                close = difflib.get_close_matches(loc[-1], list(model.model_fields), n=1, cutoff=0.6)
                if close:
                    reason += f' (did you mean "{close[0]}"?)'
        elif kind == "missing":
            reason = "required value is missing"
        else:
            reason = str(err["msg"]).removeprefix("Value error, ")
            annotation = _annotation_at([str(p) for p in loc if isinstance(p, str)])
            shown = None if _is_secret_annotation(annotation) else _show_input(err.get("input"))
            if shown is not None:
                reason += f" (got {shown})"
        problems.append(f"{_where(label, loc, texts)}: {_dotted(loc)}: {reason}")
    return problems

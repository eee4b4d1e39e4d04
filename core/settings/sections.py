"""The sections of ``service.toml``: one model per table, with its bounds and cross-field rules.

A rule that involves two keys raises :class:`~core.settings.fields.CrossFieldProblems` so that
the loader reports each key on its own line, naming the file (and line) that set it.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from datetime import time
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, SecretStr, field_serializer, field_validator, model_validator

from core.defaults import (
    DEFAULT_CLOB_URL,
    DEFAULT_DATA_API_URL,
    DEFAULT_DB_URL,
    DEFAULT_GAMMA_URL,
    DEFAULT_TELEGRAM_BASE_URL,
    DEFAULT_USER_WS_URL,
    DEFAULT_WS_URL,
    VENUE_CANCELS_BURST,
    VENUE_CANCELS_PER_S,
    VENUE_ORDERS_BURST,
    VENUE_ORDERS_PER_S,
)
from core.redact import TELEGRAM_TOKEN_PATTERN, mask_url_password
from core.settings.fields import (
    ADDRESS,
    BLANK_IS_EMPTY_LIST,
    DAY_MS,
    DAY_S,
    HEX64,
    HHMM,
    MAX_PUSD,
    MAX_SHARES,
    MAX_TELEGRAM_ID,
    SUPPORTED_CHAIN_IDS,
    AssetList,
    CrossFieldProblems,
    HttpUrl,
    Int,
    MarketList,
    Money,
    OptionalHttpUrl,
    OptionalInt,
    OptionalSecret,
    OptionalStr,
    Seconds,
    Section,
    WsUrl,
)
from core.settings.retention import RetentionSettings
from core.settings.watch import WatchRule


class ServiceSettings(Section):
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
    sync_minutes: Int = Field(5, ge=0, le=24 * 60)
    """How often the positions held at the venue (Data API) are read and compared with Polybot's own
    ledger; also once at start. 0 = only at start. (Collateral: every risk.balance_refresh_s.)"""

    @field_validator("daily_summary_utc")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        value = value.strip()
        if not HHMM.match(value):
            raise ValueError('must be a UTC time "HH:MM" (00:00 to 23:59)')
        return value

    @property
    def daily_summary_time(self) -> time:
        hours, minutes = self.daily_summary_utc.split(":")
        return time(int(hours), int(minutes))


class FeedSettings(Section):
    ws_url: WsUrl = DEFAULT_WS_URL
    user_ws_url: WsUrl = DEFAULT_USER_WS_URL
    assets: AssetList = Field(default_factory=list)
    markets: MarketList = Field(default_factory=list)
    max_assets_per_connection: Int = Field(200, ge=1, le=500)
    ping_interval_s: Seconds = Field(10.0, gt=0, le=300)
    dead_after_s: Seconds = Field(30.0, gt=0, le=3600)
    reconnect_initial_ms: Int = Field(500, ge=1, le=600_000)
    reconnect_max_ms: Int = Field(30_000, ge=1, le=3_600_000)
    reconnect_jitter: float = Field(0.2, ge=0, le=1)
    max_frame_bytes: Int = Field(8 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024)
    quiet_after_s: Seconds = Field(300.0, gt=0, le=DAY_S)
    watch: list[WatchRule] = Field(default_factory=list, max_length=50)
    """Rules that select markets to follow from the stored markets (core.settings.watch)."""
    source: Literal["ws", "bus"] = "ws"
    """Where books come from: "ws" the venue's websockets (this process), "bus" the feed workers
    on NATS ([bus]; ``polybot feed-worker``)."""

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


class GammaSettings(Section):
    url: HttpUrl = DEFAULT_GAMMA_URL
    page_limit: Int = Field(100, ge=1, le=100)
    timeout_s: Seconds = Field(10.0, gt=0, le=300)
    max_retries: Int = Field(3, ge=0, le=20)
    active: bool = True
    closed: bool = False


class ClobSettings(Section):
    url: HttpUrl = DEFAULT_CLOB_URL
    timeout_s: Seconds = Field(10.0, gt=0, le=300)


class RelayerSettings(Section):
    type: Literal["fake", "real"] = "fake"
    dry_run: bool = True
    chain_id: Int = 137
    private_key: OptionalSecret = None
    signature_type: Int = Field(0, ge=0, le=3)
    funder: OptionalStr = None
    api_key: OptionalSecret = None
    api_secret: OptionalSecret = None
    api_passphrase: OptionalSecret = None
    heartbeat_s: Seconds = Field(5.0, gt=0, lt=10)
    """The venue cancels every open order when heartbeats stop for ~10 s."""
    unreachable_after: Int = Field(3, ge=1, le=100)
    """Consecutive failed venue calls (or heartbeats' worth of user-channel outage) before the one
    venue_unreachable alert."""
    paper_latency_ms: Int = Field(50, ge=0, le=10_000)
    """Paper trading (type fake): how long a request takes to reach the simulated venue; an order
    (every leg of a batch alike) fills against the books as they are after this wait."""

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
        if not HEX64.match(raw):  # the message must never echo the value
            raise ValueError("must be 64 hex digits, optionally 0x-prefixed")
        return SecretStr(raw if raw.lower().startswith("0x") else "0x" + raw)

    @field_validator("funder")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None and not ADDRESS.match(value.strip()):
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


class ChainSettings(Section):
    """On-chain transactions (merge, redeem): signed EIP-1559 transactions to ``rpc_url``, on the
    chain of ``relayer.chain_id``."""

    rpc_url: OptionalHttpUrl = None
    """Polygon JSON-RPC URL: merges and redeems are sent there, and preflight reads allowances; empty = none."""
    max_fee_gwei: Money = Field(Decimal("500"), gt=0, le=100_000)
    """Cap on maxFeePerGas: a transaction that would need more is not sent."""
    max_priority_fee_gwei: Money = Field(Decimal("50"), gt=0, le=100_000)
    """Cap on maxPriorityFeePerGas (the tip)."""
    gas_limit_cap: Int = Field(1_000_000, ge=21_000, le=30_000_000)
    """A transaction whose estimated gas exceeds this is not sent."""
    confirmations: Int = Field(3, ge=1, le=256)
    """Blocks on top of the receipt's before a transaction counts as confirmed."""
    receipt_timeout_s: Seconds = Field(180.0, gt=0, le=DAY_S)
    """How long to wait for a confirmed receipt before the transaction is reported stuck."""
    replace_after_s: Seconds = Field(60.0, gt=0, le=DAY_S)
    """A transaction not mined within this is replaced (same nonce, fees raised by fee_bump_percent, within the caps)."""
    fee_bump_percent: Int = Field(15, ge=10, le=500)
    """Fee increase of a replacement; nodes refuse a replacement under 10 %."""
    timeout_s: Seconds = Field(10.0, gt=0, le=300)
    """One JSON-RPC request."""

    @model_validator(mode="after")
    def _consistent(self) -> ChainSettings:
        items: list[tuple[str, str, tuple[str, ...]]] = []
        if self.max_priority_fee_gwei > self.max_fee_gwei:
            items.append(("max_priority_fee_gwei", "must not exceed max_fee_gwei", ("max_fee_gwei",)))
        if self.replace_after_s >= self.receipt_timeout_s:
            items.append(("replace_after_s", "must be less than receipt_timeout_s", ("receipt_timeout_s",)))
        if items:
            raise CrossFieldProblems(items)
        return self


class DataApiSettings(Section):
    """Polymarket's Data API: the positions an address holds at the venue (venue sync)."""

    url: HttpUrl = DEFAULT_DATA_API_URL
    timeout_s: Seconds = Field(10.0, gt=0, le=300)


class DutchSettings(Section):
    enabled: bool = False
    safety_margin_usdc: Money = Field(Decimal("0.01"), ge=0, lt=1)
    """Per set, and a set pays out 1 pUSD: a margin of 1 or more could never be met."""
    fee_bps: OptionalInt = Field(None, ge=0, le=10_000)
    slippage_ticks: Int = Field(0, ge=0, le=100)
    max_sets: Money = Field(Decimal("10"), gt=0, le=MAX_SHARES)
    markets: MarketList = Field(default_factory=list)
    order_type: Literal["FOK", "FAK"] = "FOK"
    """Legs are marketable: FOK fills whole or not at all, FAK takes what is there and cancels the rest."""
    latency_budget_ms: Int = Field(500, ge=1, le=60_000)
    """A failed leg answered later than this after its group was sent is counted as 'latency budget
    exceeded' in the group figures, not as a moved book."""
    merge: Literal["auto", "manual", "off"] = "manual"
    """Complete sets back into pUSD: "auto" merges a group's sets once every leg is CONFIRMED;
    "manual" only on /merge or `polybot merge`; "off" never."""
    redeem: Literal["auto", "manual", "off"] = "manual"
    """Winning shares into pUSD after resolution: "auto" redeems when a market resolves; "manual"
    only on /redeem or `polybot redeem`; "off" never."""


class SpreadSettings(Section):
    enabled: bool = False
    markets: MarketList = Field(default_factory=list)
    min_spread_ticks: Int = Field(3, ge=1, le=1000)
    requote_ticks: Int = Field(1, ge=1, le=1000)
    size: Money = Field(Decimal("5"), gt=0, le=MAX_SHARES)
    skew_per_share: Money = Field(Decimal("0.0001"), ge=0, le=Decimal("0.01"))
    """pUSD of price per share held; 0.01 (a whole tick per share) already swamps any spread."""
    max_inventory: Money = Field(Decimal("100"), gt=0, le=MAX_SHARES)


class StrategiesSettings(Section):
    dutch: DutchSettings = Field(default_factory=DutchSettings)
    spread: SpreadSettings = Field(default_factory=SpreadSettings)


class RiskSettings(Section):
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


class TelegramUser(Section):
    id: Int = Field(gt=0, le=MAX_TELEGRAM_ID)
    role: Role

    @model_validator(mode="before")
    @classmethod
    def _from_shorthand(cls, value: object) -> object:
        # "123456:admin" keeps an environment variable readable: POLYBOT_TELEGRAM__USERS=1:admin,2:viewer
        if isinstance(value, str) and ":" in value:
            user_id, _, role = value.partition(":")
            return {"id": user_id.strip(), "role": role.strip()}
        return value


class TelegramSettings(Section):
    enabled: bool = False
    token: OptionalSecret = None
    base_url: HttpUrl = DEFAULT_TELEGRAM_BASE_URL
    users: Annotated[list[TelegramUser], BLANK_IS_EMPTY_LIST] = Field(default_factory=list)
    alert_chats: Annotated[list[ChatId], BLANK_IS_EMPTY_LIST] = Field(default_factory=list)
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


class MetricsSettings(Section):
    enabled: bool = False
    host: str = Field("127.0.0.1", min_length=1)
    port: Int = Field(9108, ge=0, le=65_535)
    instance: str = Field("", max_length=128)
    """This process's identity in polybot_instance_info; empty: ROLE@HOSTNAME:PORT."""


class DbSettings(Section):
    url: str = DEFAULT_DB_URL
    retention: RetentionSettings = Field(default_factory=RetentionSettings)

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

    def __repr_args__(self) -> Iterator[tuple[str, object]]:
        yield "url", mask_url_password(self.url)


with warnings.catch_warnings():
    # The TOML key is "json"; it shadows BaseModel.json(), a deprecated method nobody calls here.
    warnings.filterwarnings("ignore", message=r'Field name "json"', category=UserWarning)

    class LoggingSettings(Section):
        level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
        json: bool = False  # type: ignore[assignment]  # the TOML key; BaseModel.json() is deprecated, never called
        file: OptionalStr = None

        @field_validator("level", mode="before")
        @classmethod
        def _upper(cls, value: object) -> object:
            return value.strip().upper() if isinstance(value, str) else value

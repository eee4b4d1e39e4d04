"""The whole configuration: :class:`Settings`, a pydantic-settings model of every section."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from core.redact import register_secret, url_password
from core.settings.bus import BusSettings
from core.settings.fields import CrossFieldProblems
from core.settings.sections import (
    ChainSettings,
    ClobSettings,
    DataApiSettings,
    DbSettings,
    FeedSettings,
    GammaSettings,
    LoggingSettings,
    MetricsSettings,
    RelayerSettings,
    RiskSettings,
    ServiceSettings,
    StrategiesSettings,
    TelegramSettings,
)
from core.settings.view import JsonValue, masked
from core.settings.walk import secret_values
from core.types import Mode

ENV_PREFIX = "POLYBOT_"
ENV_SEPARATOR = "__"


class Settings(BaseSettings):
    """The whole configuration. Build it with :func:`core.settings.load_settings` to get the file,
    the secrets overlay and the environment, with provenance and every problem at once."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_SEPARATOR,
        case_sensitive=True,  # TOML keys are exact; the environment source alone ignores case
        extra="forbid",
        validate_assignment=True,
        validate_default=True,
    )

    service: ServiceSettings = Field(default_factory=ServiceSettings)
    feed: FeedSettings = Field(default_factory=FeedSettings)
    gamma: GammaSettings = Field(default_factory=GammaSettings)
    clob: ClobSettings = Field(default_factory=ClobSettings)
    relayer: RelayerSettings = Field(default_factory=RelayerSettings)
    chain: ChainSettings = Field(default_factory=ChainSettings)
    data_api: DataApiSettings = Field(default_factory=DataApiSettings)
    strategies: StrategiesSettings = Field(default_factory=StrategiesSettings)
    risk: RiskSettings = Field(default_factory=RiskSettings)
    telegram: TelegramSettings = Field(default_factory=TelegramSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    db: DbSettings = Field(default_factory=DbSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    bus: BusSettings = Field(default_factory=BusSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Settings(...) built in code holds what it is given and never picks up the environment
        # by accident; load_settings() layers the file, the secrets overlay and the environment.
        return (init_settings,)

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

    def masked_dict(self) -> dict[str, JsonValue]:
        """JSON-safe nested dict for display: set secrets ``**********``, unset secrets ``""``."""
        return masked(self)


def iter_secret_values(settings: Settings) -> Iterator[str]:
    """Every secret value in ``settings`` (SecretStr fields and the database password)."""
    yield from secret_values(settings)
    for url in (settings.db.url, *settings.bus.servers):
        password = url_password(url)
        if password:
            yield password

"""Polybot settings: typed sections, loaded from TOML + a secrets overlay + the environment.

Load order (later wins, tables merge deeply), each layer read by a pydantic-settings source:

1. the defaults written in the models (:mod:`core.settings.sections`);
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
Money is ``Decimal``: TOML and JSON numbers are read as ``Decimal`` and binary floats are refused.

The modules: ``fields`` (value types, bounds), ``sections`` (one model per table), ``root``
(:class:`Settings`), ``sources`` (the pydantic-settings sources and the merge with provenance),
``problems`` (problem lines), ``load`` (:func:`load_settings`), ``secret_keys`` (where secrets
are), ``view`` (the masked display), ``walk`` (model introspection).
"""

from __future__ import annotations

from core.defaults import (
    DEFAULT_CLOB_URL,
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
from core.settings.bus import BusSettings
from core.settings.fields import (
    DAY_MS,
    DAY_S,
    MAX_PUSD,
    MAX_SHARES,
    MAX_TELEGRAM_ID,
    SUPPORTED_CHAIN_IDS,
    CrossFieldProblems,
)
from core.settings.load import SECRETS_FILENAME, LoadedSettings, load_settings
from core.settings.root import ENV_PREFIX, ENV_SEPARATOR, Settings, iter_secret_values
from core.settings.secret_keys import (
    DB_URL_KEY,
    env_name,
    secret_location_advice,
    secrets_in_main_file,
    set_secret_keys,
)
from core.settings.sections import (
    ROLE_RANK,
    ClobSettings,
    DbSettings,
    DutchSettings,
    FeedSettings,
    GammaSettings,
    LoggingSettings,
    MetricsSettings,
    RelayerSettings,
    RiskSettings,
    Role,
    ServiceSettings,
    SpreadSettings,
    StrategiesSettings,
    TelegramSettings,
    TelegramUser,
)
from core.settings.walk import leaf_keys

__all__ = [
    "DAY_MS",
    "DAY_S",
    "DB_URL_KEY",
    "DEFAULT_CLOB_URL",
    "DEFAULT_DB_URL",
    "DEFAULT_GAMMA_URL",
    "DEFAULT_TELEGRAM_BASE_URL",
    "DEFAULT_USER_WS_URL",
    "DEFAULT_WS_URL",
    "ENV_PREFIX",
    "ENV_SEPARATOR",
    "MAX_PUSD",
    "MAX_SHARES",
    "MAX_TELEGRAM_ID",
    "ROLE_RANK",
    "SECRETS_FILENAME",
    "SUPPORTED_CHAIN_IDS",
    "VENUE_CANCELS_BURST",
    "VENUE_CANCELS_PER_S",
    "VENUE_ORDERS_BURST",
    "VENUE_ORDERS_PER_S",
    "BusSettings",
    "ClobSettings",
    "CrossFieldProblems",
    "DbSettings",
    "DutchSettings",
    "FeedSettings",
    "GammaSettings",
    "LoadedSettings",
    "LoggingSettings",
    "MetricsSettings",
    "RelayerSettings",
    "RiskSettings",
    "Role",
    "ServiceSettings",
    "Settings",
    "SpreadSettings",
    "StrategiesSettings",
    "TelegramSettings",
    "TelegramUser",
    "env_name",
    "iter_secret_values",
    "leaf_keys",
    "load_settings",
    "secret_location_advice",
    "secrets_in_main_file",
    "set_secret_keys",
]

"""Values several layers name: the venue's addresses and published limits, the default database.

Plain constants with no imports, at the bottom of the house beside ``core.types``: a component
(store, markets, execution), the settings models and a CLI parser all read them from here.
They are not in ``core.settings.fields`` because importing that module runs the settings
package (pydantic and pydantic-settings, ~0.2 s), and not in ``core.markets`` because that
loads the Gamma client (httpx, ~0.15 s): ``polybot --help`` and every CLI run would pay for it.
``core.settings`` re-exports them and builds its defaults and bounds on them.
"""

from __future__ import annotations

from typing import Final

# Per-signer venue limits (standard tier); our token buckets must stay strictly below them.
VENUE_ORDERS_PER_S: Final = 40
VENUE_ORDERS_BURST: Final = 60
VENUE_CANCELS_PER_S: Final = 80
VENUE_CANCELS_BURST: Final = 120

DEFAULT_WS_URL: Final = "wss://ws-subscriptions-clob.polymarket.com/ws/market"
DEFAULT_USER_WS_URL: Final = "wss://ws-subscriptions-clob.polymarket.com/ws/user"
DEFAULT_GAMMA_URL: Final = "https://gamma-api.polymarket.com"
DEFAULT_CLOB_URL: Final = "https://clob.polymarket.com"
DEFAULT_DATA_API_URL: Final = "https://data-api.polymarket.com"
DEFAULT_TELEGRAM_BASE_URL: Final = "https://api.telegram.org/bot"

GAMMA_MAX_LIMIT: Final = 100
"""Gamma caps ``limit`` at 100 items per page."""
GAMMA_MAX_OFFSET: Final = 10_000
"""Gamma refuses offsets above 10,000: offset paging cannot see further than this."""

DEFAULT_DB_URL: Final = "sqlite:///./var/polybot.db"
DB_URL_ENV: Final = "POLYBOT_DB__URL"
"""The settings' ``db.url`` as an environment variable (``POLYBOT_`` + ``DB__URL``); faces read it too."""

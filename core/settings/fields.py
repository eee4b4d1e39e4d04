"""The value types of the settings: exact money, numbers that are not booleans, URLs, ids, bounds.

Each type refuses a wrong value with a reason a person can act on; none of the reasons echoes a
secret (the loader decides what of a rejected value may be shown).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, SecretStr

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

HEX64 = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")
ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
_CONDITION_ID = re.compile(r"^0x[0-9a-fA-F]{64}$")
_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class CrossFieldProblems(ValueError):
    """Problems that involve more than one key of a section.

    ``items`` are ``(key, reason, related_keys)`` with keys relative to the section that raised
    it; the loader turns each into its own problem line naming the file that set the keys.
    """

    def __init__(self, items: list[tuple[str, str, tuple[str, ...]]]) -> None:
        self.items = items
        super().__init__("; ".join(f"{key}: {reason}" for key, reason, _ in items))


class Section(BaseModel):
    """A table of the configuration: an unknown key is an error, never a silently ignored default."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, validate_default=True)


def _reject_float(value: object) -> object:
    if isinstance(value, float):
        raise ValueError("money must be exact: give a decimal (TOML number or string), not a binary float")
    return value


def _reject_bool(value: object) -> object:
    # bool is an int subclass; "enabled = true" in a numeric key is a mistake, not 1.
    if isinstance(value, bool):
        raise ValueError("expected a number, not true/false")
    return value


def empty_to_none(value: object) -> object:
    """The secrets example ships empty strings: "" means "not set", not "set to nothing"."""
    if isinstance(value, str) and not value.strip():
        return None
    if isinstance(value, SecretStr) and not value.get_secret_value().strip():
        return None
    return value


def _empty_to_list(value: object) -> object:
    # POLYBOT_FEED__ASSETS= (set, but to nothing) clears the list the file gave.
    return [] if isinstance(value, str) and not value.strip() else value


def _url_checker(schemes: frozenset[str], what: str) -> AfterValidator:
    def check(value: str) -> str:
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


def _asset_id(value: object) -> object:
    # Token ids are 77-digit integers; TOML happily reads them unquoted.
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str):
        value = value.strip()
        if not value.isdigit():
            raise ValueError("an asset (token) id is a decimal integer string")
    return value


def _market_ref(value: object) -> object:
    if isinstance(value, str):
        value = value.strip()
        if value.lower().startswith("0x"):
            if not _CONDITION_ID.match(value):
                raise ValueError("a condition id is 0x followed by 64 hex digits")
        elif not _SLUG.match(value):
            raise ValueError("a market is a condition id (0x + 64 hex) or a slug (letters, digits, '-')")
    return value


_HTTP = frozenset({"http", "https"})
_WS = frozenset({"ws", "wss"})

Money = Annotated[Decimal, BeforeValidator(_reject_float)]
Int = Annotated[int, BeforeValidator(_reject_bool)]
Seconds = Annotated[float, BeforeValidator(_reject_bool)]
HttpUrl = Annotated[str, _url_checker(_HTTP, "http(s)")]
WsUrl = Annotated[str, _url_checker(_WS, "websocket")]
OptionalHttpUrl = Annotated[HttpUrl | None, BeforeValidator(empty_to_none)]
OptionalSecret = Annotated[SecretStr | None, BeforeValidator(empty_to_none)]
OptionalStr = Annotated[str | None, BeforeValidator(empty_to_none)]
OptionalInt = Annotated[Int | None, BeforeValidator(empty_to_none)]
AssetId = Annotated[str, BeforeValidator(_asset_id)]
MarketRef = Annotated[str, BeforeValidator(_market_ref)]
BLANK_IS_EMPTY_LIST = BeforeValidator(_empty_to_list)
AssetList = Annotated[list[AssetId], BLANK_IS_EMPTY_LIST]
MarketList = Annotated[list[MarketRef], BLANK_IS_EMPTY_LIST]
"""Condition ids and slugs: public by design, although a condition id has the shape of a key."""

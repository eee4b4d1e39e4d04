"""Gamma's wire format: frozen msgspec Structs for ``/markets`` and ``/events`` items.

Gamma sends three list fields as JSON *encoded inside a string* (``outcomes``,
``outcomePrices``, ``clobTokenIds``: ``'["Yes", "No"]'``); hand-written files and older items
carry real lists. Both forms are decoded here, once, into tuples (:class:`TokenIds`,
:class:`Outcomes`, :class:`OutcomePrices`), so nothing past this module sees either. Numbers
arrive as JSON numbers or numeric strings and become exact Decimals straight from the JSON text
(never through a binary float). Flags arrive as booleans, ``"true"``/``"false"`` or 0/1
(:func:`flag` reads them).

Only the fields the bot uses are declared; msgspec skips the rest. A value of the wrong type
fails the one item it belongs to, with a :class:`BadReason` named after its field: a page is
decoded as a list of undecoded items (:func:`split_items`) so that one bad item costs only itself.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Final, TypeVar

import msgspec

from core.markets.errors import BadReason, GammaParseError

# --------------------------------------------------------------------------- decoded lists


class TokenIds(tuple[str, ...]):
    """``clobTokenIds``: the CLOB token of each outcome, as decoded (not yet checked)."""

    __slots__ = ()


class Outcomes(tuple[str, ...]):
    """``outcomes``: the outcome names, in the order of the token ids."""

    __slots__ = ()


class OutcomePrices(tuple[Decimal, ...]):
    """``outcomePrices``: Gamma's last prices per outcome (informational)."""

    __slots__ = ()


class UnreadableOutcomePrices(OutcomePrices):
    """``outcomePrices`` that did not decode. Empty; the market stays usable (the field is
    informational), and the translation counts a warning."""

    __slots__ = ()


_Listed = TypeVar("_Listed", TokenIds, Outcomes)


def _listed(obj: object) -> object:
    """A JSON list, or a JSON list encoded in a string, as a Python list (else a ValueError)."""
    if isinstance(obj, str):
        try:
            return msgspec.json.decode(obj)
        except msgspec.DecodeError as exc:
            raise ValueError(f"is not valid JSON ({exc})") from None
    return obj


def _strings(kind: type[_Listed], obj: object, name: str, reason: BadReason) -> _Listed:
    try:
        return kind(msgspec.convert(_listed(obj), list[str]))
    except (ValueError, msgspec.ValidationError) as exc:
        raise GammaParseError(reason, f"{name} {obj!r:.120} is not a list of strings ({exc})") from None


def _outcome_prices(obj: object) -> OutcomePrices:
    if obj == "":
        return OutcomePrices()
    try:
        return OutcomePrices(msgspec.convert(_listed(obj), list[Decimal]))
    except (ValueError, msgspec.ValidationError):
        return UnreadableOutcomePrices()


def _dec_hook(kind: type, obj: object) -> object:
    """msgspec calls this for the three list types above, with the JSON value as decoded (and
    for ``object``, a value of any shape, which is kept as decoded)."""
    if kind is object:
        return obj
    if kind is TokenIds:
        if obj == "":
            raise GammaParseError(BadReason.MISSING_TOKEN_IDS, "clobTokenIds is empty (no order book)")
        return _strings(TokenIds, obj, "clobTokenIds", BadReason.BAD_TOKEN_IDS)
    if kind is Outcomes:
        return _strings(Outcomes, obj, "outcomes", BadReason.BAD_OUTCOMES)
    if kind is OutcomePrices:
        return _outcome_prices(obj)
    # never reached by the structs below; msgspec reports a TypeError from the hook as a
    # validation error of the field, so a struct given a type without a rule fails loudly
    raise TypeError(f"no wire decoding for {kind.__name__}")


# --------------------------------------------------------------------------- structs

Flag = bool | int | str | None
"""A Gamma boolean as sent: ``true``, ``"true"``, ``1`` ... (read it with :func:`flag`)."""


def flag(value: Flag, default: bool | None = None) -> bool | None:
    """A Gamma flag as a bool; ``default`` when absent or not a recognisable boolean."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    return default


class GammaEventRef(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """The event a market belongs to, as ``/markets`` embeds it (``events[0]``)."""

    id: str | int | None = None
    slug: str | None = None
    neg_risk: Flag = None
    neg_risk_market_id: str | None = msgspec.field(default=None, name="negRiskMarketID")
    neg_risk_augmented: Flag = None


class GammaEvent(GammaEventRef, frozen=True, kw_only=True):
    """One ``/events`` item. Its markets stay undecoded until each is decoded on its own."""

    markets: list[msgspec.Raw]


class GammaMarketItem(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One ``/markets`` item (or one market of an ``/events`` item)."""

    id: str | int | None = None
    condition_id: str | None = None
    question: str | None = None
    slug: str | None = None
    outcomes: Outcomes | None = None
    outcome_prices: OutcomePrices | None = None
    clob_token_ids: TokenIds | None = None
    order_price_min_tick_size: Decimal | None = None
    order_min_size: Decimal | None = None
    fees_enabled: Flag = None
    fee_schedule: dict[str, object] | None = None
    """Kept as the document Gamma sent: it is stored as is and read by :mod:`core.fees`."""
    neg_risk: Flag = None
    neg_risk_market_id: str | None = msgspec.field(default=None, name="negRiskMarketID")
    neg_risk_augmented: Flag = None
    active: Flag = None
    closed: Flag = None
    accepting_orders: Flag = None
    end_date: str | None = None
    events: list[GammaEventRef] | None = None

    @property
    def first_event(self) -> GammaEventRef | None:
        return self.events[0] if self.events else None


class _Ident(msgspec.Struct, frozen=True):
    """Just the id of an item that failed to decode, for the log line."""

    id: str | int | None = None


# --------------------------------------------------------------------------- decoding

_FIELD_REASONS: Final[Mapping[str, BadReason]] = {
    "conditionId": BadReason.MISSING_CONDITION_ID,
    "clobTokenIds": BadReason.BAD_TOKEN_IDS,
    "outcomes": BadReason.BAD_OUTCOMES,
    "orderPriceMinTickSize": BadReason.BAD_NUMBER,
    "orderMinSize": BadReason.BAD_NUMBER,
    "feeSchedule": BadReason.BAD_NUMBER,
}
_PATH = re.compile(r" - at `\$\.([A-Za-z]+)")

_Item = TypeVar("_Item", GammaMarketItem, GammaEvent)
_market_decoder: Final = msgspec.json.Decoder(GammaMarketItem, dec_hook=_dec_hook)
_event_decoder: Final = msgspec.json.Decoder(GammaEvent, dec_hook=_dec_hook)
_ident_decoder: Final = msgspec.json.Decoder(_Ident)
_items_decoder: Final = msgspec.json.Decoder(list[msgspec.Raw])
_encoder: Final = msgspec.json.Encoder()


def _reason(exc: msgspec.ValidationError) -> GammaParseError:
    cause = exc.__cause__
    if isinstance(cause, GammaParseError):  # raised by _dec_hook, which knows its field
        return cause
    found = _PATH.search(str(exc))
    if found is None:  # the item itself has the wrong type
        return GammaParseError(BadReason.NOT_AN_OBJECT, str(exc))
    return GammaParseError(_FIELD_REASONS.get(found.group(1), BadReason.BAD_FIELD), str(exc))


def as_json(item: object) -> bytes:
    """An item's JSON text: bytes as they came, a decoded object (a file's item) re-encoded.

    Raises :class:`GammaParseError` (not an object) for anything else.
    """
    if isinstance(item, bytes | msgspec.Raw):
        return bytes(item)
    if isinstance(item, Mapping):
        try:
            return _encoder.encode(item)
        except (TypeError, ValueError) as exc:
            raise GammaParseError(BadReason.NOT_AN_OBJECT, f"item cannot be encoded as JSON ({exc})") from None
    raise GammaParseError(BadReason.NOT_AN_OBJECT, f"item is {type(item).__name__}, expected an object")


def _decoded(decoder: msgspec.json.Decoder[_Item], text: bytes) -> _Item:
    try:
        return decoder.decode(text)
    except msgspec.ValidationError as exc:
        raise _reason(exc) from None
    except msgspec.DecodeError as exc:
        raise GammaParseError(BadReason.NOT_AN_OBJECT, f"item is not JSON ({exc})") from None


def decode_market(text: bytes) -> GammaMarketItem:
    """One ``/markets`` item's JSON text as a wire struct; raises :class:`GammaParseError` with its reason."""
    return _decoded(_market_decoder, text)


def decode_event(text: bytes) -> GammaEvent:
    """One ``/events`` item's JSON text as a wire struct; raises :class:`GammaParseError` with its reason."""
    return _decoded(_event_decoder, text)


def item_id(text: bytes) -> str | None:
    """The ``id`` of an item that may not decode otherwise (for log lines); None if unreadable."""
    try:
        ident = _ident_decoder.decode(text).id
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    return None if ident is None else str(ident)


class KeysetBody(msgspec.Struct, frozen=True):
    """A ``/markets/keyset`` answer: the page's items (undecoded) and the cursor of the next page.

    The last page has no ``next_cursor`` (absent, null or empty: all three are read as the end)."""

    markets: list[msgspec.Raw]
    next_cursor: str | None = None


_keyset_decoder: Final = msgspec.json.Decoder(KeysetBody)


def split_keyset(body: bytes) -> KeysetBody:
    """A keyset page; raises ``msgspec.DecodeError`` / ``msgspec.ValidationError`` as :func:`split_items`."""
    return _keyset_decoder.decode(body)


def split_items(body: bytes) -> list[msgspec.Raw]:
    """A JSON list as one undecoded JSON text per item.

    Raises ``msgspec.DecodeError`` (not JSON) or ``msgspec.ValidationError`` (not a list).
    """
    return _items_decoder.decode(body)

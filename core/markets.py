"""Gamma market discovery: parse ``/markets`` items, page through Gamma, upsert, look up.

Gamma (``https://gamma-api.polymarket.com``) is Polymarket's public market catalogue. Three of
its fields are JSON *encoded as strings* inside the JSON (``outcomes``, ``outcomePrices``,
``clobTokenIds``); numbers arrive as JSON numbers or strings depending on the field and the
era of the market. Everything is decoded here once, into :class:`core.types.MarketInfo` (what
the rest of the bot uses) plus a :class:`GammaMarket` record that keeps the raw item for the
``raw`` JSON column.

Bad items (no condition id, undecodable token ids, outcomes/tokens length mismatch ...) are
counted by reason and logged; they never abort a page.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import random
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from functools import cache
from typing import Any

import httpx
from sqlalchemy import Select, func, or_, select
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from core.errors import PolybotError, UsageError
from core.fees import fee_rate_from_schedule
from core.store.db import session_factory
from core.store.models import Market, Token
from core.types import MarketInfo, TokenInfo

UNKNOWN_FEE_RATE = Decimal("0.07")
"""Assumed taker rate when fees are enabled but no schedule is published (2026's highest: crypto)."""

log = logging.getLogger(__name__)

GAMMA_URL = "https://gamma-api.polymarket.com"
MAX_LIMIT = 100
"""Gamma caps ``limit`` at 100 items per page."""
MAX_OFFSET = 10_000
"""Gamma refuses offsets above 10,000: offset paging cannot see further than this."""

DEFAULT_TICK = Decimal("0.01")
DEFAULT_MIN_SIZE = Decimal("5")
_STORE_QUANTUM = Decimal("0.000001")  # the markets table keeps prices/sizes/rates at 6 decimals


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------


class BadReason(enum.StrEnum):
    """Why a Gamma item was rejected (a bounded set: it is also a counter label)."""

    NOT_AN_OBJECT = "not_an_object"
    MISSING_CONDITION_ID = "missing_condition_id"
    MISSING_TOKEN_IDS = "missing_clob_token_ids"
    BAD_TOKEN_IDS = "bad_clob_token_ids"
    BAD_OUTCOMES = "bad_outcomes"
    LENGTH_MISMATCH = "outcomes_tokens_length_mismatch"
    BAD_NUMBER = "bad_number"
    FIELD_TOO_LONG = "field_too_long"


class GammaParseError(ValueError):
    def __init__(self, reason: BadReason, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


@dataclass(frozen=True, slots=True)
class GammaMarket:
    """One decoded Gamma market: the domain view plus what the ``markets`` table also keeps."""

    info: MarketInfo
    gamma_id: str | None
    end_date: datetime | None
    fee_schedule: dict[str, Any] | None
    fees_enabled: bool | None
    outcome_prices: tuple[Decimal, ...]
    accepting_orders: bool | None
    event_id: str | None
    event_slug: str | None
    raw: dict[str, Any] = field(compare=False, repr=False)

    @property
    def condition_id(self) -> str:
        return self.info.condition_id


@dataclass(slots=True)
class ParseStats:
    """Counts of one parse run; ``bad`` and ``warnings`` are keyed by reason."""

    seen: int = 0
    parsed: int = 0
    bad: Counter[str] = field(default_factory=Counter)
    warnings: Counter[str] = field(default_factory=Counter)

    @property
    def bad_total(self) -> int:
        return sum(self.bad.values())

    def merge(self, other: ParseStats) -> None:
        self.seen += other.seen
        self.parsed += other.parsed
        self.bad.update(other.bad)
        self.warnings.update(other.warnings)


def _decode_json_list(value: Any, name: str, reason: BadReason) -> list[Any]:
    """A Gamma list field: normally a JSON-encoded string, tolerated as an already-decoded list."""
    if isinstance(value, list):
        return value
    if not isinstance(value, str):
        raise GammaParseError(reason, f"{name} is {type(value).__name__}, expected a JSON-encoded list")
    try:
        decoded = json.loads(value)
    except ValueError as exc:
        raise GammaParseError(reason, f"{name} is not valid JSON ({exc.msg})") from None
    if not isinstance(decoded, list):
        raise GammaParseError(reason, f"{name} decodes to {type(decoded).__name__}, expected a list")
    return decoded


def _decimal(value: Any, name: str) -> Decimal:
    """Exact Decimal from a JSON number or numeric string.

    Floats come from ``json.loads``; ``str(float)`` is the shortest repr that round-trips, which
    for the short literals Gamma sends (0.001, 0.04) is the literal itself.
    """
    if isinstance(value, bool) or value is None:
        raise GammaParseError(BadReason.BAD_NUMBER, f"{name}={value!r} is not a number")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int | float | str):
        try:
            result = Decimal(str(value).strip())
        except InvalidOperation:
            raise GammaParseError(BadReason.BAD_NUMBER, f"{name}={value!r} is not a number") from None
    else:
        raise GammaParseError(BadReason.BAD_NUMBER, f"{name}={value!r} is not a number")
    if not result.is_finite():
        raise GammaParseError(BadReason.BAD_NUMBER, f"{name}={value!r} is not finite")
    return result


def _bool(value: Any, default: bool | None = None) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    return default


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _parse_datetime(value: Any) -> datetime | None:
    text = _text(value)
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _strip_nul(value: Any) -> Any:
    """``value`` with NUL characters removed from every string (the same object when it has none)."""
    if isinstance(value, str):
        return value.replace("\x00", "") if "\x00" in value else value
    if isinstance(value, Mapping):
        out = {k: _strip_nul(v) for k, v in value.items()}
        return value if all(out[k] is value[k] for k in value) else out
    if isinstance(value, list):
        items = [_strip_nul(v) for v in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value


@cache
def _column_limits() -> dict[str, int]:
    """Text length limits of the columns the parsed values go to (an item over them is refused)."""

    def length(col: Any) -> int:
        return int(getattr(col.type, "length", None) or 1_000_000)

    markets, tokens = Market.__table__.c, Token.__table__.c
    return {
        "conditionId": length(markets.condition_id),
        "slug": length(markets.slug),
        "events[0].id": length(markets.event_id),
        "negRiskMarketID": length(markets.neg_risk_market_id),
        "clobTokenIds": length(tokens.token_id),
        "outcomes": length(tokens.outcome),
    }


def _event_of(item: Mapping[str, Any], event: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The market's event: the one it was listed under, else the first of its ``events``."""
    if event is not None:
        return event
    events = item.get("events")
    if isinstance(events, list) and events and isinstance(events[0], Mapping):
        return events[0]
    return None


def parse_market(item: Any, *, event: Mapping[str, Any] | None = None, stats: ParseStats | None = None) -> GammaMarket:
    """Decode one Gamma ``/markets`` item (or one market of an ``/events`` item, with ``event``).

    Raises :class:`GammaParseError` for an item that cannot be traded on (counted as bad by
    :func:`parse_markets`); recoverable oddities are counted in ``stats.warnings``.
    """
    if not isinstance(item, Mapping):
        raise GammaParseError(BadReason.NOT_AN_OBJECT, f"item is {type(item).__name__}, expected an object")
    warn = stats.warnings if stats is not None else Counter()
    # PostgreSQL refuses NUL in text and JSONB; it carries no meaning, so it is dropped (and counted)
    clean = _strip_nul(item)
    if clean is not item:
        warn["nul_characters_stripped"] += 1
        item = clean

    condition_id = _text(item.get("conditionId"))
    if condition_id is None:
        raise GammaParseError(BadReason.MISSING_CONDITION_ID, f"market id={item.get('id')!r} has no conditionId")

    raw_tokens = item.get("clobTokenIds")
    if raw_tokens is None or raw_tokens == "":
        raise GammaParseError(BadReason.MISSING_TOKEN_IDS, "clobTokenIds is absent (no order book)")
    token_ids = [_text(t) for t in _decode_json_list(raw_tokens, "clobTokenIds", BadReason.BAD_TOKEN_IDS)]
    if not token_ids or any(t is None or not t.isdigit() for t in token_ids):
        raise GammaParseError(BadReason.BAD_TOKEN_IDS, f"clobTokenIds {raw_tokens!r} are not all decimal token ids")
    if len(set(token_ids)) != len(token_ids):
        raise GammaParseError(BadReason.BAD_TOKEN_IDS, "clobTokenIds contains duplicates")

    outcomes = [_text(o) for o in _decode_json_list(item.get("outcomes"), "outcomes", BadReason.BAD_OUTCOMES)]
    if any(o is None for o in outcomes):
        raise GammaParseError(BadReason.BAD_OUTCOMES, f"outcomes {item.get('outcomes')!r} has an empty name")
    if len(outcomes) != len(token_ids):
        raise GammaParseError(BadReason.LENGTH_MISMATCH, f"{len(outcomes)} outcomes but {len(token_ids)} clobTokenIds")

    limits = _column_limits()
    for what, values in (
        ("conditionId", [condition_id]),
        ("clobTokenIds", token_ids),
        ("outcomes", outcomes),
        ("slug", [_text(item.get("slug")) or ""]),
    ):
        limit = limits[what]
        if any(len(v or "") > limit for v in values):
            raise GammaParseError(BadReason.FIELD_TOO_LONG, f"{what} longer than {limit} characters")

    outcome_prices: tuple[Decimal, ...] = ()
    if item.get("outcomePrices") not in (None, ""):
        try:
            prices = _decode_json_list(item["outcomePrices"], "outcomePrices", BadReason.BAD_NUMBER)
            outcome_prices = tuple(_decimal(p, "outcomePrices") for p in prices)
        except GammaParseError:
            warn["bad_outcome_prices"] += 1  # informational field: the market stays usable
        if outcome_prices and len(outcome_prices) != len(outcomes):
            warn["outcome_prices_length_mismatch"] += 1
            outcome_prices = ()

    tick = DEFAULT_TICK
    if item.get("orderPriceMinTickSize") is not None:
        tick = _decimal(item["orderPriceMinTickSize"], "orderPriceMinTickSize")
        if not Decimal(0) < tick < Decimal(1):
            raise GammaParseError(BadReason.BAD_NUMBER, f"orderPriceMinTickSize={tick} outside (0, 1)")
    else:
        warn["default_tick_size"] += 1
    min_size = DEFAULT_MIN_SIZE
    if item.get("orderMinSize") is not None:
        min_size = _decimal(item["orderMinSize"], "orderMinSize")
        if min_size < 0:
            raise GammaParseError(BadReason.BAD_NUMBER, f"orderMinSize={min_size} is negative")
    else:
        warn["default_min_size"] += 1

    fees_enabled = _bool(item.get("feesEnabled"))
    schedule = item.get("feeSchedule")
    if schedule is not None and not isinstance(schedule, Mapping):
        raise GammaParseError(BadReason.BAD_NUMBER, f"feeSchedule is {type(schedule).__name__}, expected an object")
    fee_schedule = dict(schedule) if schedule is not None else None
    try:
        # the schedule wins even when feesEnabled says false: overstating a fee is the safe error
        fee_rate = fee_rate_from_schedule(fee_schedule)
    except ValueError as exc:
        raise GammaParseError(BadReason.BAD_NUMBER, str(exc)) from None
    if fees_enabled and fee_schedule is None:
        # Gamma says fees apply but publishes no schedule (early-2026 crypto markets): the rate is
        # unknown here. Understating a fee turns a loss into a phantom edge, so assume the highest
        # published taker rate until CLOB /fee-rate (the authority) says otherwise; count it.
        fee_rate = UNKNOWN_FEE_RATE
        warn["fees_enabled_without_schedule"] += 1
    for name, value in (("orderPriceMinTickSize", tick), ("orderMinSize", min_size), ("feeSchedule.rate", fee_rate)):
        if value != value.quantize(_STORE_QUANTUM, rounding=ROUND_DOWN):
            raise GammaParseError(BadReason.BAD_NUMBER, f"{name}={value} has more than 6 decimals")

    ev = _event_of(item, event)
    neg_risk = bool(_bool(item.get("negRisk"), False)) or bool(ev is not None and _bool(ev.get("negRisk"), False))
    neg_risk_market_id = _text(item.get("negRiskMarketID")) or (
        _text(ev.get("negRiskMarketID")) if ev is not None else None
    )
    event_id = _text(ev.get("id")) if ev is not None else None
    for what, value in (("events[0].id", event_id), ("negRiskMarketID", neg_risk_market_id)):
        if len(value or "") > limits[what]:
            raise GammaParseError(BadReason.FIELD_TOO_LONG, f"{what} longer than {limits[what]} characters")
    if neg_risk and neg_risk_market_id is None:
        warn["neg_risk_without_group_id"] += 1
    # negRiskAugmented lives on the event in real captures; a market-level flag wins when present.
    augmented = _bool(item.get("negRiskAugmented"))
    if augmented is None and ev is not None:
        augmented = _bool(ev.get("negRiskAugmented"))

    info = MarketInfo(
        condition_id=condition_id,
        question=_text(item.get("question")) or "",
        slug=_text(item.get("slug")) or "",
        tokens=tuple(TokenInfo(token_id=t, outcome=o) for t, o in zip(token_ids, outcomes, strict=True)),  # type: ignore[arg-type]
        tick_size=tick,
        min_order_size=min_size,
        neg_risk=neg_risk,
        neg_risk_market_id=neg_risk_market_id,
        neg_risk_augmented=bool(augmented),
        fee_rate=fee_rate,
        active=bool(_bool(item.get("active"), True)),
        closed=bool(_bool(item.get("closed"), False)),
    )
    return GammaMarket(
        info=info,
        gamma_id=_text(item.get("id")),
        end_date=_parse_datetime(item.get("endDate")),
        fee_schedule=fee_schedule,
        fees_enabled=fees_enabled,
        outcome_prices=outcome_prices,
        accepting_orders=_bool(item.get("acceptingOrders")),
        event_id=event_id,
        event_slug=_text(ev.get("slug")) if ev is not None else None,
        raw=dict(item),
    )


_MAX_BAD_LOGS_PER_PAGE = 5


def parse_markets(
    items: Iterable[Any], *, event: Mapping[str, Any] | None = None, stats: ParseStats | None = None
) -> tuple[list[GammaMarket], ParseStats]:
    """Decode a page of Gamma items; bad ones are counted by reason and logged, never raised."""
    stats = stats if stats is not None else ParseStats()
    page = ParseStats()
    markets: list[GammaMarket] = []
    for item in items:
        page.seen += 1
        try:
            markets.append(parse_market(item, event=event, stats=page))
            page.parsed += 1
        except GammaParseError as exc:
            page.bad[exc.reason] += 1
            if page.bad_total <= _MAX_BAD_LOGS_PER_PAGE:
                ident = item.get("id") if isinstance(item, Mapping) else None
                log.warning("gamma: skipped market id=%s: %s", ident, exc)
    if page.bad_total > _MAX_BAD_LOGS_PER_PAGE:
        log.warning(
            "gamma: %d more bad markets on this page: %s", page.bad_total - _MAX_BAD_LOGS_PER_PAGE, dict(page.bad)
        )
    if page.warnings:
        log.debug("gamma: parse warnings %s", dict(page.warnings))
    stats.merge(page)
    return markets, stats


def parse_events(events: Iterable[Any], *, stats: ParseStats | None = None) -> tuple[list[GammaMarket], ParseStats]:
    """Decode the markets of Gamma ``/events`` items (each market inherits its event's flags)."""
    stats = stats if stats is not None else ParseStats()
    markets: list[GammaMarket] = []
    for ev in events:
        if not isinstance(ev, Mapping) or not isinstance(ev.get("markets"), list):
            stats.seen += 1
            stats.bad[BadReason.NOT_AN_OBJECT] += 1
            log.warning(
                "gamma: skipped event without a markets list: %r", ev if not isinstance(ev, Mapping) else ev.get("id")
            )
            continue
        found, _ = parse_markets(ev["markets"], event=ev, stats=stats)
        markets.extend(found)
    return markets, stats


# --------------------------------------------------------------------------------------------
# HTTP client
# --------------------------------------------------------------------------------------------


class GammaError(PolybotError):
    """Gamma could not be read (after the retries allowed); names the URL and the last failure."""

    def __init__(self, message: str, *, url: str, status: int | None = None) -> None:
        self.url = url
        self.status = status
        super().__init__(message)


_RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


def _retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: an integer/decimal delay or an HTTP date."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


@dataclass(frozen=True, slots=True)
class GammaPage:
    """One page of raw ``/markets`` items; ``stop_reason`` is set on the last page only."""

    number: int
    offset: int
    items: list[Any]
    stop_reason: str | None = None  # "end" | "max_pages" | "offset_cap"


@dataclass(slots=True)
class ClientStats:
    requests: int = 0
    retries: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    delays: deque[float] = field(default_factory=lambda: deque(maxlen=100))
    """The most recent waits before a retry, in seconds."""


class GammaClient:
    """Async Gamma reader with bounded retries.

    Retried: timeouts, connection errors, 408/425/429/5xx (``Retry-After`` honoured, capped at
    ``max_retry_after_s``); other statuses fail at once. Backoff doubles from ``backoff_s`` up
    to ``max_backoff_s`` with up to 10% jitter. After ``max_retries`` retries a
    :class:`GammaError` names the URL and the last status or error.
    """

    def __init__(
        self,
        base_url: str = GAMMA_URL,
        *,
        timeout_s: float = 10.0,
        max_retries: int = 4,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        max_retry_after_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_retry_after_s = max_retry_after_s
        self.stats = ClientStats()
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s),
            transport=transport,
            headers={"Accept": "application/json", "User-Agent": "polybot"},
            follow_redirects=True,
        )

    async def __aenter__(self) -> GammaClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def _backoff(self, attempt: int) -> float:
        base = min(self.max_backoff_s, self.backoff_s * (2**attempt))
        return base * (1 + random.random() * 0.1)

    async def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET ``base_url + path`` and decode JSON, retrying transient failures."""
        url = f"{self.base_url}/{path.lstrip('/')}"
        query = {k: v for k, v in (params or {}).items() if v is not None}
        shown = str(httpx.URL(url, params=query))
        attempt = 0
        while True:
            self.stats.requests += 1
            retry_after: float | None = None
            status: int | None = None
            try:
                resp = await self._http.get(url, params=query)
            except httpx.TimeoutException:
                failure = f"timed out after {self.timeout_s:g}s"
                self.stats.failures["timeout"] += 1
            except httpx.TransportError as exc:
                failure = f"{type(exc).__name__}: {exc}".rstrip(": ")
                self.stats.failures["network"] += 1
            else:
                status = resp.status_code
                if 200 <= status < 300:
                    try:
                        return resp.json()
                    except ValueError:
                        raise GammaError(
                            f"GET {shown}: HTTP {status} but the body is not JSON: {resp.text[:120]!r}",
                            url=shown,
                            status=status,
                        ) from None
                body = resp.text[:200].strip()
                failure = f"HTTP {status}" + (f" {body}" if body else "")
                self.stats.failures[str(status)] += 1
                if status not in _RETRYABLE_STATUS:
                    raise GammaError(f"GET {shown} failed: {failure}", url=shown, status=status)
                if status in (429, 503):
                    retry_after = _retry_after_seconds(resp.headers.get("Retry-After"))
            if attempt >= self.max_retries:
                raise GammaError(
                    f"GET {shown} failed after {attempt + 1} attempts: last {failure}", url=shown, status=status
                )
            delay = self._backoff(attempt)
            if retry_after is not None:
                delay = min(self.max_retry_after_s, max(retry_after, 0.0))
            log.info("gamma: GET %s -> %s; retry %d/%d in %.2fs", shown, failure, attempt + 1, self.max_retries, delay)
            self.stats.retries += 1
            self.stats.delays.append(delay)
            attempt += 1
            await asyncio.sleep(delay)

    async def get_markets(
        self,
        *,
        limit: int = MAX_LIMIT,
        offset: int = 0,
        active: bool | None = None,
        closed: bool | None = None,
        condition_ids: Sequence[str] | None = None,
        slugs: Sequence[str] | None = None,
    ) -> list[Any]:
        """One ``GET /markets`` page (raw items)."""
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit must be in 1..{MAX_LIMIT}")
        if not 0 <= offset <= MAX_OFFSET:
            raise ValueError(f"offset must be in 0..{MAX_OFFSET}")
        if condition_ids is not None and len(condition_ids) > MAX_LIMIT:
            raise ValueError(f"at most {MAX_LIMIT} condition ids per request")
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if active is not None:
            params["active"] = "true" if active else "false"
        if closed is not None:
            params["closed"] = "true" if closed else "false"
        if condition_ids:
            params["condition_ids"] = list(condition_ids)
        if slugs:
            params["slug"] = list(slugs)
        data = await self.get_json("/markets", params)
        if not isinstance(data, list):
            url = f"{self.base_url}/markets"
            raise GammaError(f"GET {url}: expected a JSON list of markets, got {type(data).__name__}", url=url)
        return data

    async def iter_pages(
        self,
        *,
        active: bool | None = None,
        closed: bool | None = None,
        limit: int = MAX_LIMIT,
        max_pages: int | None = None,
        start_offset: int = 0,
    ) -> AsyncIterator[GammaPage]:
        """Page through ``/markets`` with limit/offset until a short page, ``max_pages`` or the offset cap."""
        if max_pages is not None and max_pages < 1:
            raise ValueError("max_pages must be >= 1")
        offset, number = start_offset, 0
        while True:
            items = await self.get_markets(limit=limit, offset=offset, active=active, closed=closed)
            number += 1
            stop: str | None = None
            if len(items) < limit:
                stop = "end"
            elif max_pages is not None and number >= max_pages:
                stop = "max_pages"
            elif offset + limit > MAX_OFFSET:
                stop = "offset_cap"
                log.warning("gamma: offset cap %d reached; markets past it are not listed by offset paging", MAX_OFFSET)
            yield GammaPage(number=number, offset=offset, items=items, stop_reason=stop)
            if stop is not None:
                return
            offset += limit

    async def iter_markets(
        self,
        *,
        active: bool | None = None,
        closed: bool | None = None,
        limit: int = MAX_LIMIT,
        max_pages: int | None = None,
    ) -> AsyncIterator[Any]:
        """Every raw ``/markets`` item, page after page."""
        async for page in self.iter_pages(active=active, closed=closed, limit=limit, max_pages=max_pages):
            for item in page.items:
                yield item

    async def get_events(
        self, *, limit: int = MAX_LIMIT, offset: int = 0, active: bool | None = None, closed: bool | None = None
    ) -> list[Any]:
        """One ``GET /events`` page (raw events, each with its ``markets``)."""
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if active is not None:
            params["active"] = "true" if active else "false"
        if closed is not None:
            params["closed"] = "true" if closed else "false"
        data = await self.get_json("/events", params)
        if not isinstance(data, list):
            url = f"{self.base_url}/events"
            raise GammaError(f"GET {url}: expected a JSON list of events, got {type(data).__name__}", url=url)
        return data


# --------------------------------------------------------------------------------------------
# Storage: idempotent upsert and lookups (markets + tokens tables)
# --------------------------------------------------------------------------------------------

SessionSource = AsyncEngine | async_sessionmaker[AsyncSession]


def _sessions(source: SessionSource) -> async_sessionmaker[AsyncSession]:
    return session_factory(source) if isinstance(source, AsyncEngine) else source


@dataclass(frozen=True, slots=True)
class MarketFilters:
    """What ``refresh_markets`` asks Gamma for (None = no filter on that flag)."""

    active: bool | None = True
    closed: bool | None = False
    limit: int = MAX_LIMIT
    max_pages: int | None = None


@dataclass(slots=True)
class RefreshResult:
    pages: int = 0
    seen: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    bad: int = 0
    bad_reasons: dict[str, int] = field(default_factory=dict)
    warnings: dict[str, int] = field(default_factory=dict)
    stop_reason: str | None = None  # "end" | "max_pages" | "offset_cap"
    elapsed_s: float = 0.0

    @property
    def changed(self) -> int:
        return self.inserted + self.updated

    def as_dict(self) -> dict[str, Any]:
        return {
            "pages": self.pages,
            "seen": self.seen,
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "bad": self.bad,
            "bad_reasons": dict(self.bad_reasons),
            "warnings": dict(self.warnings),
            "stop_reason": self.stop_reason,
            "elapsed_s": round(self.elapsed_s, 3),
        }


ProgressCallback = Callable[[RefreshResult], None]


def _row_values(gm: GammaMarket) -> dict[str, Any]:
    """The ``markets`` columns for one parsed market."""
    info = gm.info
    return {
        "question": info.question,
        "slug": info.slug,
        "event_id": gm.event_id,
        "neg_risk_market_id": info.neg_risk_market_id,
        "neg_risk": info.neg_risk,
        "neg_risk_augmented": info.neg_risk_augmented,
        "tick_size": info.tick_size,
        "min_order_size": info.min_order_size,
        "fee_rate": info.fee_rate,
        "fee_schedule": gm.fee_schedule,
        "end_date": gm.end_date,
        "active": info.active,
        "closed": info.closed,
        "raw": gm.raw,
    }


@dataclass(slots=True)
class _PageCounts:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    conflicts: int = 0
    rejected: int = 0


async def _upsert_page(sessions: async_sessionmaker[AsyncSession], markets: Sequence[GammaMarket]) -> _PageCounts:
    """Insert new markets, update changed ones, leave equal ones untouched: one transaction."""
    by_id: dict[str, GammaMarket] = {}
    for gm in markets:  # a market listed twice on a page: the later item wins
        by_id[gm.condition_id] = gm
    counts = _PageCounts()
    if not by_id:
        return counts
    token_ids = [t.token_id for gm in by_id.values() for t in gm.info.tokens]
    async with sessions() as session, session.begin():
        existing = {
            m.condition_id: m
            for m in (await session.scalars(select(Market).where(Market.condition_id.in_(list(by_id))))).all()
        }
        owners = dict(
            (
                await session.execute(select(Token.token_id, Token.condition_id).where(Token.token_id.in_(token_ids)))
            ).all()
        )
        for cid, gm in by_id.items():
            clash = [t.token_id for t in gm.info.tokens if owners.get(t.token_id, cid) != cid]
            if clash:
                counts.conflicts += 1
                log.warning(
                    "gamma: skipped market %s: token %s already belongs to market %s",
                    cid,
                    clash[0],
                    owners[clash[0]],
                )
                continue
            values = _row_values(gm)
            row = existing.get(cid)
            if row is None:
                session.add(
                    Market(
                        condition_id=cid,
                        **values,
                        tokens=[
                            Token(token_id=t.token_id, outcome=t.outcome, outcome_index=i)
                            for i, t in enumerate(gm.info.tokens)
                        ],
                    )
                )
                counts.inserted += 1
                continue
            changed = False
            for name, value in values.items():
                if getattr(row, name) != value:
                    setattr(row, name, value)
                    changed = True
            if _sync_tokens(row, gm):
                changed = True
            if changed:
                counts.updated += 1
            else:
                counts.unchanged += 1
    return counts


def _sync_tokens(row: Market, gm: GammaMarket) -> bool:
    """Make ``row.tokens`` match the parsed tokens; returns whether anything changed."""
    want = [(t.token_id, t.outcome, i) for i, t in enumerate(gm.info.tokens)]
    have = sorted(((t.token_id, t.outcome, t.outcome_index) for t in row.tokens), key=lambda x: x[2])
    if have == want:
        return False
    current = {t.token_id: t for t in row.tokens}
    keep: list[Token] = []
    for token_id, outcome, index in want:
        tok = current.get(token_id)
        if tok is None:
            tok = Token(token_id=token_id, outcome=outcome, outcome_index=index)
        else:
            tok.outcome, tok.outcome_index = outcome, index
        keep.append(tok)
    row.tokens = keep  # tokens no longer listed are deleted (delete-orphan)
    return True


async def refresh_markets(
    target: SessionSource,
    client: GammaClient,
    filters: MarketFilters | None = None,
    progress: ProgressCallback | None = None,
) -> RefreshResult:
    """Page through Gamma ``/markets`` and upsert markets and tokens; idempotent.

    Each page is one transaction, so an interrupted refresh keeps the pages already stored.
    A second run over the same data reports 0 inserted and 0 updated. ``progress`` is called
    after each page with the running totals.
    """
    filters = filters or MarketFilters()
    sessions = _sessions(target)
    result = RefreshResult()
    stats = ParseStats()
    started = time.monotonic()
    async for page in client.iter_pages(
        active=filters.active, closed=filters.closed, limit=filters.limit, max_pages=filters.max_pages
    ):
        markets, _ = parse_markets(page.items, stats=stats)
        counts = await _upsert_with_retry(sessions, markets)
        result.pages += 1
        result.inserted += counts.inserted
        result.updated += counts.updated
        result.unchanged += counts.unchanged
        if counts.conflicts:
            stats.bad["token_id_conflict"] += counts.conflicts
        if counts.rejected:
            stats.bad["db_rejected"] += counts.rejected
        result.seen = stats.seen
        result.bad = stats.bad_total
        result.bad_reasons = {str(k): v for k, v in stats.bad.items()}
        result.warnings = {str(k): v for k, v in stats.warnings.items()}
        result.stop_reason = page.stop_reason
        result.elapsed_s = time.monotonic() - started
        if progress is not None:
            progress(result)
    result.elapsed_s = time.monotonic() - started
    log.info("gamma refresh: %s", result.as_dict())
    return result


def _db_reason(exc: StatementError) -> str:
    """The driver's first line, without the SQL and parameters SQLAlchemy appends."""
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    return lines[0] if lines else type(orig).__name__


async def _upsert_with_retry(sessions: async_sessionmaker[AsyncSession], markets: Sequence[GammaMarket]) -> _PageCounts:
    try:
        return await _upsert_page(sessions, markets)
    except IntegrityError:
        # A concurrent refresh inserted the same market between our SELECT and INSERT; the
        # second attempt sees the row and updates it instead.
        log.info("gamma refresh: concurrent insert detected; retrying the page once")
        return await _upsert_page(sessions, markets)
    except StatementError as exc:  # a driver error, or a value a column type refused
        if getattr(exc, "connection_invalidated", False):
            raise
        first = exc
    # One market the database refuses must not cost the whole page: store them one by one.
    log.warning("gamma refresh: the database refused a page (%s); storing its markets one by one", _db_reason(first))
    total = _PageCounts()
    for gm in markets:
        try:
            counts = await _upsert_page(sessions, [gm])
        except StatementError as exc:
            if getattr(exc, "connection_invalidated", False):
                raise
            total.rejected += 1
            log.warning("gamma refresh: database refused market %s: %s", gm.condition_id, _db_reason(exc))
            continue
        total.inserted += counts.inserted
        total.updated += counts.updated
        total.unchanged += counts.unchanged
        total.conflicts += counts.conflicts
    if markets and total.rejected == len(markets):
        raise PolybotError(f"the database refused every market of a page: {_db_reason(first)}") from first
    return total


async def store_markets(target: SessionSource, markets: Sequence[GammaMarket]) -> RefreshResult:
    """Upsert already-parsed markets (e.g. from a file) with the same rules as a refresh."""
    counts = await _upsert_with_retry(_sessions(target), markets)
    reasons = {k: v for k, v in (("token_id_conflict", counts.conflicts), ("db_rejected", counts.rejected)) if v}
    return RefreshResult(
        pages=1,
        seen=len(markets),
        inserted=counts.inserted,
        updated=counts.updated,
        unchanged=counts.unchanged,
        bad=counts.conflicts + counts.rejected,
        bad_reasons=reasons,
    )


def _plain(value: Decimal) -> Decimal:
    """Stored decimals come back at scale 6 (0.010000): show them as written (0.01)."""
    normalized = value.normalize()
    return normalized.quantize(Decimal(1)) if normalized.as_tuple().exponent > 0 else normalized  # type: ignore[operator]


def market_info_from_row(row: Market) -> MarketInfo:
    return MarketInfo(
        condition_id=row.condition_id,
        question=row.question,
        slug=row.slug,
        tokens=tuple(
            TokenInfo(token_id=t.token_id, outcome=t.outcome) for t in sorted(row.tokens, key=lambda t: t.outcome_index)
        ),
        tick_size=_plain(row.tick_size),
        min_order_size=_plain(row.min_order_size),
        neg_risk=row.neg_risk,
        neg_risk_market_id=row.neg_risk_market_id,
        neg_risk_augmented=row.neg_risk_augmented,
        fee_rate=_plain(row.fee_rate),
        active=row.active,
        closed=row.closed,
    )


@dataclass(frozen=True, slots=True)
class StoredMarket:
    """A market as listed from the database: the domain view plus bookkeeping columns."""

    info: MarketInfo
    end_date: datetime | None
    event_id: str | None
    fee_schedule: dict[str, Any] | None
    updated_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        i = self.info
        return {
            "condition_id": i.condition_id,
            "slug": i.slug,
            "question": i.question,
            "outcomes": [t.outcome for t in i.tokens],
            "token_ids": [t.token_id for t in i.tokens],
            "tick_size": str(i.tick_size),
            "min_order_size": str(i.min_order_size),
            "neg_risk": i.neg_risk,
            "neg_risk_market_id": i.neg_risk_market_id,
            "neg_risk_augmented": i.neg_risk_augmented,
            "fee_rate": str(i.fee_rate),
            "fee_schedule": self.fee_schedule,
            "active": i.active,
            "closed": i.closed,
            "end_date": self.end_date.isoformat() if self.end_date else None,
            "event_id": self.event_id,
        }


def _filtered(
    text: str | None,
    active: bool | None,
    closed: bool | None,
    neg_risk_market_id: str | None,
    condition_ids: Sequence[str] | None,
) -> Select[tuple[Market]]:
    stmt = select(Market)
    if text and text.strip():
        t = text.strip()
        stmt = stmt.where(
            or_(
                Market.slug.icontains(t, autoescape=True),
                Market.question.icontains(t, autoescape=True),
                func.lower(Market.condition_id) == t.lower(),
                func.lower(Market.neg_risk_market_id) == t.lower(),
                Market.event_id == t,
            )
        )
    if active is not None:
        stmt = stmt.where(Market.active.is_(active))
    if closed is not None:
        stmt = stmt.where(Market.closed.is_(closed))
    if neg_risk_market_id is not None:
        stmt = stmt.where(func.lower(Market.neg_risk_market_id) == neg_risk_market_id.lower())
    if condition_ids is not None:
        stmt = stmt.where(Market.condition_id.in_(list(condition_ids)))
    return stmt.order_by(Market.neg_risk_market_id.is_(None), Market.neg_risk_market_id, Market.slug)


async def list_markets(
    target: SessionSource,
    text: str | None = None,
    *,
    active: bool | None = None,
    closed: bool | None = None,
    neg_risk_market_id: str | None = None,
    condition_ids: Sequence[str] | None = None,
    limit: int | None = None,
) -> list[StoredMarket]:
    """Stored markets matching a text filter (slug/question substring, condition/group/event id)."""
    stmt = _filtered(text, active, closed, neg_risk_market_id, condition_ids)
    if limit is not None:
        stmt = stmt.limit(limit)
    async with _sessions(target)() as session:
        rows = (await session.scalars(stmt)).all()
        return [
            StoredMarket(
                info=market_info_from_row(r),
                end_date=r.end_date,
                event_id=r.event_id,
                fee_schedule=r.fee_schedule,
                updated_at=r.updated_at,
            )
            for r in rows
        ]


async def load_markets(
    target: SessionSource,
    text: str | None = None,
    *,
    active: bool | None = None,
    closed: bool | None = None,
    neg_risk_market_id: str | None = None,
    condition_ids: Sequence[str] | None = None,
    limit: int | None = None,
) -> list[MarketInfo]:
    """Stored markets as :class:`MarketInfo` (same filters as :func:`list_markets`)."""
    rows = await list_markets(
        target,
        text,
        active=active,
        closed=closed,
        neg_risk_market_id=neg_risk_market_id,
        condition_ids=condition_ids,
        limit=limit,
    )
    return [r.info for r in rows]


class MarketLookupError(UsageError):
    """A MARKET argument names no stored market, or several."""


_MIN_PREFIX = 4
_MAX_CANDIDATES_SHOWN = 5


async def resolve_market(target: SessionSource, ref: str) -> MarketInfo:
    """The stored market a user means by ``ref``: a condition id or a slug.

    Exact matches win (condition id case-insensitively, then slug); otherwise a unique prefix
    of a slug or condition id (at least 4 characters) is accepted. Unknown or ambiguous
    references raise :class:`MarketLookupError` naming the candidates.
    """
    want = (ref or "").strip()
    if not want:
        raise MarketLookupError("empty market reference: give a condition id (0x...) or a slug")
    low = want.lower()
    async with _sessions(target)() as session:
        # the primary key first (cheap), then case-insensitively, then the slug
        for cond in (Market.condition_id == want, func.lower(Market.condition_id) == low, Market.slug == want):
            rows = (await session.scalars(select(Market).where(cond).limit(2))).all()
            if len(rows) == 1:
                return market_info_from_row(rows[0])
            if len(rows) > 1:  # slugs are not unique in the table; Gamma's are, but be explicit
                raise MarketLookupError(
                    f"market {want!r} is ambiguous: several markets have that slug; use a condition id"
                )
        if len(want) >= _MIN_PREFIX:
            like = want.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            stmt = (
                select(Market)
                .where(
                    or_(
                        Market.slug.like(like, escape="\\"),
                        func.lower(Market.condition_id).like(like.lower(), escape="\\"),
                    )
                )
                .order_by(Market.slug)
                .limit(_MAX_CANDIDATES_SHOWN + 1)
            )
            rows = (await session.scalars(stmt)).all()
            if len(rows) == 1:
                return market_info_from_row(rows[0])
            if rows:
                shown = ", ".join(r.slug or r.condition_id for r in rows[:_MAX_CANDIDATES_SHOWN])
                more = " ..." if len(rows) > _MAX_CANDIDATES_SHOWN else ""
                raise MarketLookupError(f"market {want!r} is ambiguous: matches {shown}{more}")
    raise MarketLookupError(
        f"unknown market {want!r}: no stored market has that condition id or slug (run polybot refresh-markets first?)"
    )


async def market_for_token(target: SessionSource, token_id: str) -> MarketInfo | None:
    """The stored market one of whose outcome tokens is ``token_id`` (None when unknown)."""
    async with _sessions(target)() as session:
        cid = await session.scalar(select(Token.condition_id).where(Token.token_id == token_id.strip()))
        if cid is None:
            return None
        row = await session.get(Market, cid)
        return market_info_from_row(row) if row is not None else None

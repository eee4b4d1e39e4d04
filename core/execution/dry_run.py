"""Dry-run orders: resolve the market, sign a real CLOB V2 order, never post it, optionally store it.

Shared by ``polybot relayer-dry-run`` (flags) and ``polybot smoke-live`` (the service config): both
sign with :class:`~core.execution.relayers.clob.ClobRelayer` in dry-run mode, so the order is
byte-for-byte what live mode would post, and store it in the orders table (status ``dry_run``)
when given a migrated database.

Market parameters (tick size, neg-risk, fee rate) come, in this order, from the markets table,
from the CLOB host (``/markets/{condition_id}``, ``/tick-size``, ``/neg-risk``), or from the
caller's explicit ``tick_size`` / ``neg_risk``. ``allow_venue=False`` forbids the REST look-ups
(``smoke-live --offline``).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from sqlalchemy.ext.asyncio import AsyncEngine

from core.errors import PolybotError, UsageError
from core.execution.relayers.clob import ClobRelayer
from core.execution.relayers.clob_signing import MarketParams
from core.execution.rules import crosses_book, order_rules
from core.execution.types import OrderRequest, Outcome, PlaceResult
from core.money import from_units
from core.types import MarketInfo, Mode, OrderType, Side

DEFAULT_MAX_ORDER_NOTIONAL = Decimal("50")
"""``risk.max_order_notional``'s default: a dry run checks what the service would check."""

DEFAULT_MIN_ORDER_SIZE = Decimal("5")  # the venue's usual minimum when the market is not known

SIGNATURE_TYPE_NAMES = {0: "EOA", 1: "POLY_PROXY", 2: "POLY_GNOSIS_SAFE", 3: "POLY_1271 (deposit wallet)"}


@dataclass(frozen=True, slots=True)
class DryRunSpec:
    """What to sign: the CLI arguments of ``relayer-dry-run`` / ``smoke-live``, already typed."""

    market: str  # token id, condition id, or (with a database) a slug
    outcome: str  # outcome name or token id; ignored when ``market`` is a token id
    side: Side
    price: Decimal
    size: Decimal
    order_type: OrderType = OrderType.GTC
    post_only: bool = False
    expiration: int = 0
    tick_size: Decimal | None = None
    neg_risk: bool | None = None
    client_order_id: str | None = None
    reason: str = "relayer-dry-run"
    max_order_notional: Decimal | None = DEFAULT_MAX_ORDER_NOTIONAL
    """The per-order ceiling the engine would apply (smoke-live passes the configured one)."""


@dataclass(frozen=True, slots=True)
class DryRunOrder:
    """A signed, never-posted order and where it went."""

    order: OrderRequest
    order_hash: str
    body: dict[str, object]  # the exact POST /order body
    exchange: str
    exchange_name: str
    stored: bool

    @property
    def signed(self) -> dict[str, object]:
        order = self.body["order"]
        if not isinstance(order, dict):  # pragma: no cover - built by the official order code
            raise TypeError("the signed body has no order object")
        return order

    def rows(self) -> list[tuple[str, str]]:
        """(label, value) lines for a human: amounts in 10^-6 units and in pUSD / shares."""
        body, signed = self.body, self.signed
        maker_amount, taker_amount = int(str(signed["makerAmount"])), int(str(signed["takerAmount"]))
        pay, get = ("pUSD", "shares") if signed["side"] == "BUY" else ("shares", "pUSD")
        sig_type = int(str(signed["signatureType"]))
        return [
            ("mode", "DRY RUN: signed, NOT posted" + (" (stored)" if self.stored else "")),
            ("client order id", self.order.client_order_id),
            ("exchange", f"{self.exchange} ({self.exchange_name})"),
            ("order hash", self.order_hash),
            ("maker", str(signed["maker"])),
            ("signer", str(signed["signer"])),
            ("token id", str(signed["tokenId"])),
            ("side", str(signed["side"])),
            ("price", str(self.order.price)),
            ("size", str(self.order.size)),
            ("maker amount", f"{maker_amount} ({from_units(maker_amount).normalize():f} {pay})"),
            ("taker amount", f"{taker_amount} ({from_units(taker_amount).normalize():f} {get})"),
            ("order type", f"{body['orderType']}{' post-only' if body['postOnly'] else ''}"),
            ("signature type", f"{sig_type} ({SIGNATURE_TYPE_NAMES.get(sig_type, '?')})"),
            ("salt", str(signed["salt"])),
            ("timestamp", str(signed["timestamp"])),
            ("signature", str(signed["signature"])),
        ]

    def as_dict(self) -> dict[str, object]:
        return {
            "client_order_id": self.order.client_order_id,
            "market": self.order.market,
            "token_id": self.order.token_id,
            "side": self.order.side.value,
            "price": str(self.order.price),
            "size": str(self.order.size),
            "order_hash": self.order_hash,
            "exchange": self.exchange,
            "exchange_name": self.exchange_name,
            "stored": self.stored,
            "posted": False,
            "body": self.body,
        }


def parse_decimal(value: str, what: str) -> Decimal:
    """A finite Decimal from user text, or :class:`UsageError` naming ``what``."""
    try:
        result = Decimal(value)
    except (InvalidOperation, TypeError):
        raise UsageError(f"{what} must be a decimal number, got {value!r}") from None
    if not result.is_finite():
        raise UsageError(f"{what} must be finite, got {value!r}")
    return result


async def open_migrated_db(db_url: str) -> AsyncEngine:
    """An engine on a migrated database (refuses an unmigrated one: no silent schema changes)."""
    from core.store.db import connect_error, create_engine
    from core.store.migrate import current_revision, head_revision

    engine = create_engine(db_url)
    try:
        revision = await current_revision(engine)
    except Exception as exc:
        await engine.dispose()
        raise connect_error(db_url, exc) from None
    if revision != head_revision():
        await engine.dispose()
        raise PolybotError(
            f"the database is not migrated (revision {revision or 'none'}); run: polybot migrate --db-url URL --apply"
        )
    return engine


async def store_dry_run_order(engine: AsyncEngine, order: OrderRequest, result: PlaceResult, *, reason: str) -> None:
    """Store the signed dry-run order in the orders table (status dry_run, mode dry-run)."""
    from core.execution.store import OrderRecord, SqlExecutionStore
    from core.store.db import session_factory

    rec = OrderRecord.from_request(order, mode=Mode.DRY_RUN.value, group_id=None, reason=reason, ts=time.time())
    rec.status = result.status
    rec.order_hash = result.order_hash
    rec.signed_order = result.signed_order
    if not await SqlExecutionStore(session_factory(engine)).save_order(rec):
        raise PolybotError(f"an order with client order id {order.client_order_id} is already stored")


def _params_from_info(info: MarketInfo, outcome: str) -> tuple[str, str, MarketParams]:
    """(condition id, token id, params) of a stored market's outcome (name or token id)."""
    try:
        token = info.token(outcome)
    except KeyError as exc:
        names = ", ".join(t.outcome for t in info.tokens) or "none"
        raise UsageError(f"{exc.args[0]} (outcomes: {names})") from None
    return (
        info.condition_id,
        token.token_id,
        MarketParams(
            token_id=token.token_id,
            tick_size=info.tick_size,
            neg_risk=info.neg_risk,
            condition_id=info.condition_id,
            outcome=token.outcome,
            min_order_size=info.min_order_size,
            fee_rate=info.fee_rate,
        ),
    )


async def _resolve_from_db(spec: DryRunSpec, engine: AsyncEngine) -> tuple[str, str, MarketParams] | None:
    """The market from the markets table, or None when it is not stored there."""
    from core.markets import MarketLookupError, market_for_token, resolve_market

    market = spec.market.strip()
    if market.isdigit():
        info = await market_for_token(engine, market)
        return None if info is None else _params_from_info(info, market)
    try:
        info = await resolve_market(engine, market)
    except MarketLookupError:
        if market.startswith("0x"):
            return None  # not stored: ask the venue
        raise
    return _params_from_info(info, spec.outcome.strip())


def _offline_refusal(spec: DryRunSpec, what: str) -> UsageError:
    return UsageError(
        f"{what} of {spec.market} is not in the database and network look-ups are off: give a token id with "
        "--tick-size and --neg-risk/--no-neg-risk, store the market (polybot refresh-markets), or drop --offline"
    )


async def _resolve_from_venue(
    spec: DryRunSpec, relayer: ClobRelayer, *, allow_venue: bool
) -> tuple[str, str, MarketParams | None]:
    """(condition id or "", token id, params from the venue or None when the spec says it all)."""
    from core.execution.relayers.clob_http import VenueError
    from core.execution.relayers.clob_markets import market_params_from_market

    market = spec.market.strip()
    if market.isdigit():
        token = market
        if spec.tick_size is not None and spec.neg_risk is not None:
            return "", token, None
        if not allow_venue:
            raise _offline_refusal(spec, "tick size / neg-risk")
        try:
            tick = await relayer.get_public("/tick-size", {"token_id": token})
            neg = await relayer.get_public("/neg-risk", {"token_id": token})
        except VenueError as err:
            raise PolybotError(
                f"cannot read tick size / neg-risk of token {token} from {relayer.host}: {err}"
            ) from None
        if not isinstance(tick, dict) or "minimum_tick_size" not in tick or not isinstance(neg, dict):
            raise PolybotError(f"unreadable tick size / neg-risk of token {token} from {relayer.host}")
        return (
            "",
            token,
            MarketParams(
                token_id=token,
                tick_size=parse_decimal(str(tick["minimum_tick_size"]), "tick size"),
                neg_risk=bool(neg.get("neg_risk")),
            ),
        )
    if not market.startswith("0x"):
        raise UsageError(
            f"MARKET must be a token id (digits) or a condition id (0x...), got {market!r} (slugs need a database)"
        )
    if not allow_venue:
        raise _offline_refusal(spec, "market")
    try:
        payload = await relayer.get_public(f"/markets/{market}")
        params = market_params_from_market(payload)
    except (VenueError, ValueError) as err:
        raise PolybotError(f"cannot read market {market} from {relayer.host}: {err}") from None
    want = spec.outcome.strip().lower()
    for p in params:
        if p.outcome.lower() == want or p.token_id == spec.outcome.strip():
            return market, p.token_id, p
    names = ", ".join(p.outcome for p in params) or "none"
    raise UsageError(f"market {market} has no outcome {spec.outcome!r} (outcomes: {names})")


async def _crosses_now(relayer: ClobRelayer, order: OrderRequest) -> bool | None:
    """Whether ``order`` would take liquidity on arrival (from ``GET /book``); None when unknown."""
    from core.execution.relayers.clob_http import VenueError

    try:
        book = await relayer.get_public("/book", {"token_id": order.token_id})
        if not isinstance(book, dict):
            return None
        bids = [Decimal(str(level["price"])) for level in book.get("bids") or ()]
        asks = [Decimal(str(level["price"])) for level in book.get("asks") or ()]
    except (VenueError, KeyError, TypeError, AttributeError, ArithmeticError):
        return None  # the venue has the last word on a crossing order under $1
    return crosses_book(order.side, order.price, max(bids, default=None), min(asks, default=None))


async def build_dry_run_order(
    relayer: ClobRelayer,
    spec: DryRunSpec,
    *,
    engine: AsyncEngine | None = None,
    allow_venue: bool = True,
) -> DryRunOrder:
    """Resolve, sign (never post) and, when ``engine`` is given, store one order.

    ``relayer`` must be in dry-run mode: this function refuses a live relayer rather than post.
    """
    if relayer.mode is not Mode.DRY_RUN:
        raise PolybotError("refusing to build a dry-run order with a live relayer")
    resolved = await _resolve_from_db(spec, engine) if engine is not None else None
    condition_id, token, params = resolved or await _resolve_from_venue(spec, relayer, allow_venue=allow_venue)
    tick = spec.tick_size
    neg_risk = spec.neg_risk
    if params is not None:
        if tick is not None and tick < params.tick_size:
            raise UsageError(f"--tick-size {tick} is finer than the market's minimum {params.tick_size}")
        if neg_risk is not None and neg_risk != params.neg_risk:
            raise UsageError(f"--neg-risk={neg_risk} contradicts the market (neg_risk={params.neg_risk})")
        relayer.prewarm_token(
            token,
            tick or params.tick_size,
            params.neg_risk,
            condition_id=params.condition_id,
            min_order_size=params.min_order_size,
            fee_rate=params.fee_rate,
        )
    order = OrderRequest(
        client_order_id=spec.client_order_id or f"dry-{uuid.uuid4().hex[:16]}",
        market=condition_id,
        token_id=token,
        side=spec.side,
        price=spec.price,
        size=spec.size,
        order_type=spec.order_type,
        post_only=spec.post_only,
        tick_size=tick or (params.tick_size if params else Decimal("0.01")),
        neg_risk=bool(neg_risk) if params is None else params.neg_risk,
        fee_rate=params.fee_rate if params else Decimal(0),
        expiration=spec.expiration,
    )
    marketable = await _crosses_now(relayer, order) if allow_venue else None
    rules = order_rules(
        order,
        tick=order.tick_size,
        min_order_size=params.min_order_size if params is not None else DEFAULT_MIN_ORDER_SIZE,
        now=time.time(),
        marketable=marketable,
        max_order_notional=spec.max_order_notional,
    )
    if not rules.ok:
        raise PolybotError(f"not signed: {rules.reason_code}: {rules.detail} (live mode would refuse it too)")
    result = await relayer.place(order)
    if result.outcome is not Outcome.ACCEPTED or result.signed_order is None:
        raise PolybotError(f"order refused: {result.error}")
    if engine is not None:
        await store_dry_run_order(engine, order, result, reason=spec.reason)
    signed = relayer.signed_order(order.client_order_id)
    exchange = signed.exchange if signed is not None else ""
    exchange_name = "NegRisk CTF Exchange V2" if exchange == relayer.signer.neg_risk_exchange else "CTF Exchange V2"
    return DryRunOrder(
        order=order,
        order_hash=result.order_hash or "",
        body=dict(result.signed_order),
        exchange=exchange,
        exchange_name=exchange_name,
        stored=engine is not None,
    )

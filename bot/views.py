"""Render control-facade results as Telegram HTML (every dynamic value escaped)."""

from __future__ import annotations

from decimal import Decimal

from bot.render import esc, money, price, table
from core.control.types import (
    CompleteSetRow,
    MarketRow,
    OrderOutcome,
    OrderRow,
    OrderTicket,
    PnlReport,
    PositionRow,
    QuoteRow,
    StatusReport,
)
from core.types import Mode


def render_status(s: StatusReport) -> str:
    armed = "🟢 ARMED" if s.armed else "⚪ disarmed"
    books = ", ".join(f"{k} {v}" for k, v in sorted(s.books.items())) or "none"
    lines = [
        f"<b>Polybot</b> — mode <b>{esc(s.mode)}</b>, {armed}",
        f"markets {s.markets}, assets {s.assets}, frames {s.frames}",
        f"books: {esc(books)}",
    ]
    for c in s.connections:
        age = "-" if c.seconds_since_frame is None else f"{c.seconds_since_frame:.1f}s"
        lines.append(
            f"feed {esc(c.name)}: {esc(c.state)}, {c.assets} assets, last frame {age}, reconnects {c.reconnects}"
        )
    if not s.connections:
        lines.append("feed: no connections")
    if s.venue:
        lines.append(f"venue: {esc(s.venue)}")
    if s.funds:
        lines.append(f"funds: {esc(s.funds)}")
    lines.append(f"open orders {s.open_orders}, positions {s.positions}, PnL today {money(s.pnl_today)} pUSD")
    lines.append(f"last alert: {esc(s.last_alert or 'none')}")
    return "\n".join(lines)


def render_quotes(rows: list[QuoteRow]) -> str:
    if not rows:
        return "No quotes (no matching market with a book yet)."
    body = [
        (
            r.market[:28],
            r.outcome[:14],
            price(r.bid),
            price(r.ask),
            price(r.spread),
            r.status,
            "-" if r.dutch_edge is None else f"{r.dutch_edge:+.4f}",
        )
        for r in rows
    ]
    return "<b>Quotes</b>\n" + table(body, ["market", "outcome", "bid", "ask", "spread", "book", "dutch"])


def render_markets(rows: list[MarketRow]) -> str:
    if not rows:
        return "No markets match."
    lines = [f"<b>Markets</b> ({len(rows)})"]
    for r in rows[:40]:
        flags = " · neg-risk" if r.neg_risk else ""
        lines.append(
            f"• <code>{esc(r.slug or r.condition_id[:16])}</code> {esc(r.question)} "
            f"[{esc('/'.join(r.outcomes))}] tick {price(r.tick_size)} fee {price(r.fee_rate)}{flags}"
        )
    if len(rows) > 40:
        lines.append(f"… and {len(rows) - 40} more (narrow the filter)")
    return "\n".join(lines)


def render_ticket(t: OrderTicket, ttl_s: int) -> str:
    return (
        "<b>⚠️ LIVE order — confirm</b>\n"
        f"market: {esc(t.market.question or t.market.slug)}\n"
        f"outcome: <b>{esc(t.outcome)}</b>\n"
        f"side: <b>{esc(t.side.value)}</b> {esc(t.order_type.value)}\n"
        f"shares: <b>{esc(t.size)}</b> at limit <b>{esc(t.price)}</b>\n"
        f"notional: <b>{money(t.notional)} pUSD</b>, est. taker fee ≤ {money(t.est_fee, 5)} pUSD\n"
        f"Expires in {ttl_s}s. Nothing is sent until you tap Confirm."
    )


def render_order_result(o: OrderOutcome) -> str:
    icon = {"rejected": "⛔", "refused": "⛔", "failed": "⛔", "submitted_unknown": "❓"}.get(o.status, "✅")
    mode = "DRY-RUN (not posted)" if o.mode == Mode.DRY_RUN.value else o.mode
    lines = [f"{icon} <b>{esc(o.status)}</b> [{esc(mode)}] <code>{esc(o.client_order_id)}</code>"]
    if o.filled:
        lines.append(f"filled {esc(o.filled)} @ {esc(o.avg_price)}")
    if o.message:
        lines.append(esc(o.message))
    return "\n".join(lines)


def render_orders(rows: list[OrderRow]) -> str:
    if not rows:
        return "No open orders."
    body = [
        (r.client_order_id[:14], r.market[:20], r.outcome[:10], r.side, price(r.price), r.size, r.filled, r.status)
        for r in rows
    ]
    return "<b>Open orders</b>\n" + table(
        body, ["id", "market", "outcome", "side", "price", "size", "filled", "status"]
    )


def render_positions(rows: list[PositionRow], sets: list[CompleteSetRow] | None = None) -> str:
    """Positions (the unrealised column marks only the shares outside complete sets), then the
    complete sets, each worth 1 pUSD at settlement."""
    if not rows:
        return "No positions."
    body = [
        (
            r.market[:20],
            r.outcome[:10],
            r.size if r.venue is None else f"{r.size} (venue {r.venue})",
            price(r.in_sets),
            price(r.avg_cost),
            price(r.mark),
            money(r.unrealised),
            money(r.realised),
        )
        for r in rows
    ]
    text = "<b>Positions</b>\n" + table(
        body, ["market", "outcome", "shares", "in sets", "avg", "mark", "unreal", "real"]
    )
    if any(r.venue is not None for r in rows):
        text += "\n(venue X): the venue holds X shares at the last venue sync, not what Polybot has"
    if sets:
        total = sum((s.sets for s in sets), Decimal(0))
        edge = sum((s.locked_edge for s in sets), Decimal(0))
        text += f"\ncomplete sets {price(total)}, locked edge {money(edge, 4)} pUSD"
        for s in sets:
            text += (
                f"\n• {esc(s.unit)} ({esc(s.kind)}): {price(s.sets)} sets worth {money(s.value)} pUSD, "
                f"cost {money(s.cost, 4)}, locked edge {money(s.locked_edge, 4)}"
            )
    return text


def render_pnl(p: PnlReport) -> str:
    return (
        f"<b>PnL</b>\nrealised today: {money(p.realised_today)} pUSD\n"
        f"realised total: {money(p.realised_total)} pUSD\n"
        f"unrealised: {money(p.unrealised)} pUSD (outside complete sets, at marks)\n"
        f"complete sets {price(p.complete_sets)}, locked edge {money(p.locked_edge, 4)} pUSD"
    )

"""Render control-facade results as Telegram HTML (every dynamic value escaped)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

from bot.render import esc, money, price, table, trimmed
from core.control.fills import FillRow
from core.control.orders import OrderRefused, gtd_ends, mode_label, status_words
from core.control.types import (
    CompleteSetRow,
    ControlError,
    MarketRow,
    OrderOutcome,
    OrderRow,
    OrderTicket,
    PnlReport,
    PositionRow,
    QuoteRow,
    StatusReport,
)
from core.types import OrderType


def render_status(s: StatusReport) -> str:
    armed = "🟢 ARMED" if s.armed else "⚪ disarmed"
    books = ", ".join(f"{k} {v}" for k, v in sorted(s.books.items())) or "none"
    lines = [
        f"<b>Polybot</b> — mode <b>{esc(s.mode)}</b>, {armed}",
        f"{esc(s.followed.text())}, frames {s.frames}",
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


def _kind(order_type: str, post_only: bool, expiration: int = 0) -> str:
    """ "GTC", "GTC post-only", "GTD until 2026-12-05 04:15:00 UTC" (when the venue ends it)."""
    text = order_type
    if order_type == OrderType.GTD.value and expiration:
        ends = datetime.fromtimestamp(gtd_ends(expiration), UTC)
        text += f" until {ends:%Y-%m-%d %H:%M:%S} UTC"
    return text + (" post-only" if post_only else "")


def _order_lines(t: OrderTicket) -> list[str]:
    """Side, size, outcome, price, type, then the market by slug (and question): what every reply states."""
    lines = [
        f"<b>{esc(t.side.value)} {esc(price(t.size))} {esc(t.outcome)} @ {esc(price(t.price))}</b> "
        f"· {esc(_kind(t.order_type.value, t.post_only, t.expiration))}",
        f"market: {esc(t.market.slug or t.market.condition_id)}",
    ]
    if t.note:
        lines.append(esc(t.note))
    return lines


def render_ticket(t: OrderTicket, ttl_s: int) -> str:
    lines = [
        "<b>⚠️ LIVE order — confirm</b>",
        f"market: {esc(t.market.question or t.market.slug)}",
    ]
    if t.market.slug and t.market.question:
        lines.append(f"slug: {esc(t.market.slug)}")
    lines += [
        f"outcome: <b>{esc(t.outcome)}</b>",
        f"side: <b>{esc(t.side.value)}</b> {esc(_kind(t.order_type.value, t.post_only, t.expiration))}",
        f"shares: <b>{esc(price(t.size))}</b> at limit <b>{esc(price(t.price))}</b>",
        f"notional: <b>{money(t.notional)} pUSD</b>, est. taker fee ≤ {money(t.est_fee, 5)} pUSD",
    ]
    if t.note:
        lines.append(esc(t.note))
    lines.append(f"Expires in {ttl_s}s. Nothing is sent until you tap Confirm.")
    return "\n".join(lines)


_ICONS = {"rejected": "⛔", "refused": "⛔", "failed": "⛔", "submitted_unknown": "❓", "dry_run": "📝"}


def render_order_result(o: OrderOutcome) -> str:
    """Mode (PAPER, DRY-RUN (not sent), LIVE), status, the order, its id: nothing to guess."""
    icon = _ICONS.get(o.status, "✅")
    lines = [f"{icon} <b>{esc(mode_label(o.mode))}</b> order: {esc(status_words(o.status))}"]
    if o.ticket is not None:
        lines += _order_lines(o.ticket)
    lines.append(f"id: <code>{esc(o.client_order_id)}</code>")
    if o.filled:
        lines.append(f"filled {esc(price(o.filled))} @ {esc(trimmed(o.avg_price))}")
    elif o.status in ("filled", "partially_filled"):  # the venue matched it; the trade is not confirmed yet
        lines.append("matched at the venue; the trade is settling (/fills shows it)")
    if o.message:
        lines.append(esc(o.message))
    return "\n".join(lines)


def render_refusal(ticket: OrderTicket, why: str) -> str:
    """An order that was not sent, and why (``why`` already masked), said once."""
    head = f"⛔ <b>{esc(mode_label(ticket.mode.value))}</b> order not sent: {esc(why)}"
    return "\n".join([head, *_order_lines(ticket)])


UNKNOWN_MARKET_HINT = "/markets lists the markets the bot knows (/markets WORD filters them)"


def render_control_error(exc: ControlError, mask: Callable[[str], str]) -> str:
    if isinstance(exc, OrderRefused):
        return render_refusal(exc.ticket, mask(str(exc)))
    hint = f"\n{UNKNOWN_MARKET_HINT}" if exc.reason_code == "unknown_market" else ""
    return f"⚠️ {esc(mask(str(exc)))}{esc(hint)}"


def order_summary(r: OrderRow) -> str:
    """``PAPER · BUY 10 Yes @ 0.30 GTC · filled 0/10`` (plain text: escape before HTML)."""
    state = "" if r.status == "live" else f" · {status_words(r.status)}"
    return (
        f"{mode_label(r.mode)} · {r.side} {price(r.size)} {r.outcome} @ {price(r.price)} "
        f"{_kind(r.order_type, r.post_only)} · filled {price(r.filled)}/{price(r.size)}{state}"
    )


def render_orders(rows: list[OrderRow], ids: dict[str, str], *, buttons: int = 0) -> str:
    """Open orders, each with the id /cancel takes (``ids``: the shortest unique prefix) and its full
    market slug on a line of its own, so a phone wraps it instead of cutting it."""
    if not rows:
        return "No open orders."
    lines = [f"<b>Open orders</b> ({len(rows)})"]
    for n, r in enumerate(rows, 1):
        lines.append(f"{n}. <code>{esc(ids.get(r.client_order_id, r.client_order_id))}</code> {esc(order_summary(r))}")
        lines.append(f"    {esc(r.market)}")
    if buttons:
        more = f" (buttons for the first {buttons})" if buttons < len(rows) else ""
        lines.append(f"Tap [Cancel n]{more}, or /cancel ID with the id shown (or any unique start of 8+ characters).")
    else:
        lines.append("/cancel ID takes the id shown, or any unique start of it of 8+ characters.")
    return "\n".join(lines)


def render_fills(rows: list[FillRow]) -> str:
    if not rows:
        return "No fills yet."
    lines = [f"<b>Recent fills</b> ({len(rows)}, newest first)"]
    for f in rows:
        when = f"{f.at:%m-%d %H:%M:%S} UTC " if f.at is not None else ""
        state = {"matched": " (settling)", "failed": " (FAILED to settle: it never happened)"}.get(f.status, "")
        lines.append(
            f"• {esc(when)}<b>{esc(mode_label(f.mode))}</b> {esc(f.side)} {esc(price(f.size))} {esc(f.outcome)} "
            f"@ {esc(trimmed(f.price))}, fee {esc(trimmed(f.fee))} pUSD{esc(state)}"
        )
        lines.append(f"    {esc(f.market)}")
    return "\n".join(lines)


def render_positions(rows: list[PositionRow], sets: list[CompleteSetRow] | None = None) -> str:
    """Positions (the unrealised figure marks only the shares outside complete sets), then the
    complete sets, each worth 1 pUSD at settlement. The full slug heads each position: a phone
    wraps it instead of cutting it."""
    if not rows:
        return "No positions."
    lines = ["<b>Positions</b>"]
    for r in rows:
        shares = price(r.size) if r.venue is None else f"{price(r.size)} (venue {price(r.venue)})"
        lines.append(f"• {esc(r.market)}")
        lines.append(
            f"    <b>{esc(r.outcome)}</b>: {esc(shares)} shares, {esc(price(r.in_sets))} in sets, "
            f"avg {esc(trimmed(r.avg_cost))}, mark {esc(price(r.mark))}, "
            f"unrealised {money(r.unrealised)}, realised {money(r.realised)} pUSD"
        )
    text = "\n".join(lines)
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

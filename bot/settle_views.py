"""Rendering of /merge, /redeem and /balance (HTML parse mode, every dynamic value escaped)."""

from __future__ import annotations

from decimal import Decimal

from bot.render import esc, table
from core.control.settlement import BalanceReport, SettleReport, SettleTicket

ICONS = {"booked": "✅", "confirmed": "✅", "dry_run": "📝", "nothing": "▫️"}


def plain(value: Decimal | None) -> str:
    if value is None:
        return "-"
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def render_settle_ticket(t: SettleTicket, ttl_s: int) -> str:
    lines = [f"<b>⚠️ LIVE {esc(t.action)} — confirm</b>"]
    lines += [f"• {esc(line)}" for line in t.lines]
    lines.append(f"Expires in {ttl_s}s. Nothing is sent until you tap Confirm.")
    return "\n".join(lines)


def render_settle_report(r: SettleReport) -> str:
    mode = "DRY-RUN (not sent)" if r.mode == "dry-run" else r.mode
    head = f"{'✅' if r.ok else '⛔'} <b>{esc(r.action)}</b> [{esc(mode)}]"
    lines = [head] + [f"{ICONS.get(row.status, '⛔')} {esc(row.message)}" for row in r.rows]
    if not r.rows:
        lines.append(f"nothing to {esc(r.action)}")
    if r.note:
        lines.append(f"ℹ️ {esc(r.note)}")
    return "\n".join(lines)


def render_balance(b: BalanceReport) -> str:
    cash = "unknown" if b.collateral is None else f"{plain(b.collateral)} pUSD"
    lines = [
        f"<b>Balance</b> [{esc(b.mode)}]",
        f"pUSD: <b>{esc(cash)}</b> ({esc(b.source)})",
        f"allowance: {esc(b.allowance)}",
    ]
    if b.positions:
        rows = [(p.label[:28], plain(p.shares), plain(p.mark), plain(p.value)) for p in b.positions]
        lines.append(table(rows, ("position", "shares", "mark", "value")))
    else:
        lines.append("no positions")
    merge = ", ".join(f"{m}: {plain(n)}" for m, n in b.mergeable) or "none"
    lines.append(f"sets mergeable: {esc(merge)}")
    if b.event_sets:
        held = ", ".join(f"{e[:12]}: {plain(n)}" for e, n in b.event_sets)
        lines.append(f"neg-risk event sets (held to resolution, 1 pUSD each): {esc(held)}")
    redeem = ", ".join(f"{m} {o}: {plain(p)} pUSD" for m, o, p in b.redeemable) or "none"
    lines.append(f"redeemable: {esc(redeem)}")
    if b.merged_sets or b.returned_pusd:
        lines.append(f"since start: merged {plain(b.merged_sets)} sets, {plain(b.returned_pusd)} pUSD returned")
    return "\n".join(lines)

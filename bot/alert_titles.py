"""How an alert reads to a person: a title per kind (never the internal name), and its recovery.

Core's alert kinds are a metrics label and a database column (``feed_dead``, ``one_legged``); a
trader reading a phone wants "Feed down". A kind not listed here still reads as words.
"""

from __future__ import annotations

TITLES: dict[str, str] = {
    "feed_dead": "Feed down",
    "market_quiet": "Markets quiet",
    "book_inconsistent": "Book out of sync",
    "order_rejected": "Order rejected",
    "order_failed": "Order failed",
    "one_legged": "One leg filled",
    "policy_failed": "One-leg fix failed",
    "daily_loss": "Daily loss limit hit",
    "error_rate": "Too many order errors",
    "reset_on_start": "Started disarmed",
    "kill_switch": "Kill switch",
    "unknown_outcome": "Order outcome unknown",
    "reconcile": "Orders not ours",
    "market_resolved": "Market resolved",
    "venue_unreachable": "Exchange unreachable",
    "position_mismatch": "Position mismatch",
    "settlement": "Merge/redeem failed",
    "settlement_failed": "Settlement failed",
    "component_failed": "Component down",
    "market_refresh": "Market list stale",
    "daily_summary": "Daily summary",
    "service": "Polybot",
}

RECOVERED: dict[str, str] = {
    "feed_dead": "Feed back",
    "market_quiet": "Markets trading again",
    "book_inconsistent": "Book back in sync",
    "one_legged": "Legs balanced",
    "error_rate": "Order errors back to normal",
    "unknown_outcome": "Order outcome known",
    "venue_unreachable": "Exchange reachable",
    "position_mismatch": "Positions agree",
    "component_failed": "Component running",
    "market_refresh": "Market list fresh",
}
"""Kinds that are cleared when over: one message when it starts, one when it ends, nothing between."""


def title(kind: str) -> str:
    return TITLES.get(kind) or kind.replace("_", " ").capitalize()


def recovered_title(kind: str) -> str:
    return RECOVERED.get(kind) or f"{title(kind)}: over"


def incident(kind: str) -> bool:
    """True when the condition is cleared by core when it ends (so it is one incident until then)."""
    return kind in RECOVERED


def duration(seconds: float) -> str:
    """95 -> '1m35s', 3725 -> '1h02m', 12 -> '12s'."""
    whole = int(seconds)
    if whole >= 3600:
        return f"{whole // 3600}h{(whole % 3600) // 60:02d}m"
    if whole >= 60:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole}s"

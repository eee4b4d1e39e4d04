"""Hand-made market-channel frames in the venue's current wire format (tests and tools write
the exact books and changes they need with these; :class:`core.feed.synth.FrameGenerator`
writes whole markets).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec

_encode = msgspec.json.encode


def book_frame(
    asset_id: str,
    bids: Sequence[tuple[str, str]],
    asks: Sequence[tuple[str, str]],
    *,
    market: str = "0xmarket",
    ts_ms: int = 0,
    tick_size: str | None = "0.01",
) -> str:
    """A ``book`` frame from best-first levels, written in the venue's order (best LAST)."""
    event: dict[str, object] = {
        "market": market,
        "asset_id": asset_id,
        "timestamp": str(ts_ms),
        "hash": "0" * 40,
        "bids": [{"price": p, "size": s} for p, s in reversed(bids)],
        "asks": [{"price": p, "size": s} for p, s in reversed(asks)],
        "event_type": "book",
    }
    if tick_size is not None:
        event["tick_size"] = tick_size
    return _encode(event).decode()


def change(
    asset_id: str, side: str, price: str, size: str, best_bid: str | None = None, best_ask: str | None = None
) -> dict[str, str]:
    """One ``price_changes[]`` entry (``best_bid``/``best_ask`` as the venue would carry them)."""
    entry = {"asset_id": asset_id, "price": price, "size": size, "side": side, "hash": "0" * 40}
    if best_bid is not None:
        entry["best_bid"] = best_bid
    if best_ask is not None:
        entry["best_ask"] = best_ask
    return entry


def price_change_frame(entries: Sequence[Mapping[str, str]], *, market: str = "0xmarket", ts_ms: int = 0) -> str:
    """A current-format ``price_change`` frame."""
    return _encode(
        {"market": market, "price_changes": list(entries), "timestamp": str(ts_ms), "event_type": "price_change"}
    ).decode()

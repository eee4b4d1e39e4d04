"""A static BookView for strategy tests and benches: levels given best-first, nothing else; and the
project's demo markets (fixtures/gamma/markets.json) by slug (the ``db_with_markets`` fixture in
tests/unit/conftest.py stores them in a database)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from core.types import BookStatus, Level, MarketInfo, TokenInfo
from tests.conftest import PROJECT_FIXTURES


@dataclass
class StaticBook:
    """Implements :class:`core.types.BookView`; bid/ask levels are (price, size), best first."""

    asset_id: str
    tick_size: Decimal = Decimal("0.01")
    bid_levels: list[Level] = field(default_factory=list)
    ask_levels: list[Level] = field(default_factory=list)
    status: BookStatus = BookStatus.OK

    def best_bid(self) -> Decimal | None:
        return self.bid_levels[0][0] if self.bid_levels else None

    def best_ask(self) -> Decimal | None:
        return self.ask_levels[0][0] if self.ask_levels else None

    def bids(self, depth: int | None = None) -> list[Level]:
        return list(self.bid_levels if depth is None else self.bid_levels[:depth])

    def asks(self, depth: int | None = None) -> list[Level]:
        return list(self.ask_levels if depth is None else self.ask_levels[:depth])


def levels(*pairs: tuple[str, str]) -> list[Level]:
    """("0.45", "100"), ... -> Decimal levels, in the order given (best first)."""
    return [(Decimal(p), Decimal(s)) for p, s in pairs]


def book(
    asset_id: str, asks: Iterable[tuple[str, str]] = (), bids: Iterable[tuple[str, str]] = (), **kw: object
) -> StaticBook:
    return StaticBook(asset_id=asset_id, ask_levels=levels(*asks), bid_levels=levels(*bids), **kw)  # type: ignore[arg-type]


def binary_market(
    cid: str = "0xbinary",
    *,
    tick: str = "0.01",
    fee_rate: str = "0",
    min_size: str = "5",
) -> MarketInfo:
    return MarketInfo(
        condition_id=cid,
        question=f"{cid}?",
        slug=cid.removeprefix("0x"),
        tokens=(TokenInfo(f"{cid}-yes", "Yes"), TokenInfo(f"{cid}-no", "No")),
        tick_size=Decimal(tick),
        min_order_size=Decimal(min_size),
        fee_rate=Decimal(fee_rate),
    )


def neg_risk_event(
    n: int,
    *,
    event_id: str = "0xevent",
    tick: str = "0.01",
    fee_rate: str = "0",
    augmented: bool = False,
    min_size: str = "5",
) -> list[MarketInfo]:
    return [
        MarketInfo(
            condition_id=f"{event_id}-m{i}",
            question=f"outcome {i}?",
            slug=f"outcome-{i}",
            tokens=(TokenInfo(f"{event_id}-m{i}-yes", "Yes"), TokenInfo(f"{event_id}-m{i}-no", "No")),
            tick_size=Decimal(tick),
            min_order_size=Decimal(min_size),
            neg_risk=True,
            neg_risk_market_id=event_id,
            neg_risk_augmented=augmented,
            fee_rate=Decimal(fee_rate),
        )
        for i in range(n)
    ]


def yes_tokens(markets: Sequence[MarketInfo]) -> list[str]:
    return [m.token("Yes").token_id for m in markets]


class FeedScript:
    """Writes market-channel frames as a record-ws JSONL recording, for runner tests.

    Keeps its own copy of every book so each ``price_change`` entry carries the right
    ``best_bid``/``best_ask`` (the feed cross-checks them). Prices and sizes are strings, as on
    the wire. Frames are ``step_ms`` apart; the event timestamp trails the receive time by 40 ms.
    """

    def __init__(self, start_ns: int = 1_767_225_600_000_000_000, step_ms: int = 100) -> None:
        self.recv_ns = start_ns
        self.step_ns = step_ms * 1_000_000
        self.lines: list[str] = []
        self.books: dict[str, tuple[dict[str, str], dict[str, str]]] = {}

    def _add(self, frame: object) -> None:
        import json

        self.recv_ns += self.step_ns
        text = frame if isinstance(frame, str) else json.dumps(frame, separators=(",", ":"))
        self.lines.append(json.dumps({"recv_ns": self.recv_ns, "frame": text}, separators=(",", ":")))

    @property
    def ts_ms(self) -> str:
        return str((self.recv_ns + self.step_ns) // 1_000_000 - 40)

    def snapshot(
        self,
        market: str,
        asset: str,
        bids: Iterable[tuple[str, str]],
        asks: Iterable[tuple[str, str]],
        tick: str = "0.01",
    ) -> None:
        bid_map, ask_map = dict(bids), dict(asks)
        self.books[asset] = (bid_map, ask_map)
        self._add(
            {
                "event_type": "book",
                "market": market,
                "asset_id": asset,
                "timestamp": self.ts_ms,
                "hash": "0" * 40,
                "bids": [{"price": p, "size": bid_map[p]} for p in sorted(bid_map, key=Decimal)],
                "asks": [{"price": p, "size": ask_map[p]} for p in sorted(ask_map, key=Decimal, reverse=True)],
                "tick_size": tick,
            }
        )

    def _best(self, asset: str) -> tuple[str, str]:
        bids, asks = self.books[asset]
        best_bid = max(bids, key=Decimal) if bids else "0"
        best_ask = min(asks, key=Decimal) if asks else "1"
        return best_bid, best_ask

    def change(self, market: str, *changes: tuple[str, str, str, str]) -> None:
        """(asset, side BUY|SELL, price, new absolute size) entries, applied as one event."""
        for asset, side, price, size in changes:
            levels = self.books[asset][0 if side == "BUY" else 1]
            if Decimal(size) == 0:
                levels.pop(price, None)
            else:
                levels[price] = size
        entries = []
        for asset, side, price, size in changes:
            best_bid, best_ask = self._best(asset)
            entries.append(
                {
                    "asset_id": asset,
                    "price": price,
                    "size": size,
                    "side": side,
                    "hash": "1" * 40,
                    "best_bid": best_bid,
                    "best_ask": best_ask,
                }
            )
        self._add({"event_type": "price_change", "market": market, "timestamp": self.ts_ms, "price_changes": entries})

    def trade(self, market: str, asset: str, side: str, price: str, size: str) -> None:
        self._add(
            {
                "event_type": "last_trade_price",
                "market": market,
                "asset_id": asset,
                "price": price,
                "side": side,
                "size": size,
                "fee_rate_bps": "0",
                "timestamp": self.ts_ms,
            }
        )

    def pong(self) -> None:
        self._add("PONG")

    def write(self, path: Path) -> Path:
        path.write_text("".join(line + "\n" for line in self.lines))
        return path


MARKETS_FILE = PROJECT_FIXTURES / "gamma" / "markets.json"


def gamma_items() -> dict[str, dict]:
    return {m["slug"]: m for m in json.loads(MARKETS_FILE.read_text())}


def tokens(slug: str) -> list[str]:
    return json.loads(gamma_items()[slug]["clobTokenIds"])


def cid(slug: str) -> str:
    return gamma_items()[slug]["conditionId"]

"""In-memory index of the markets the service knows: by condition id, slug, token and neg-risk event."""

from __future__ import annotations

from collections.abc import Iterable

from core.errors import UsageError
from core.types import MarketInfo, TokenInfo


class UnknownMarket(UsageError):
    """A market reference that names no known market, or several. The message says which; where
    to look is the face's to add (chat: /markets; a terminal: polybot refresh-markets)."""


class MarketRegistry:
    def __init__(self, markets: Iterable[MarketInfo] = ()) -> None:
        self._by_id: dict[str, MarketInfo] = {}
        self._by_slug: dict[str, str] = {}
        self._by_token: dict[str, str] = {}
        self.update(markets)

    def update(self, markets: Iterable[MarketInfo]) -> int:
        n = 0
        for m in markets:
            old = self._by_id.get(m.condition_id.lower())
            if old is not None:
                for t in old.tokens:
                    self._by_token.pop(t.token_id, None)
            self._by_id[m.condition_id.lower()] = m
            if m.slug:
                self._by_slug[m.slug.lower()] = m.condition_id.lower()
            for t in m.tokens:
                self._by_token[t.token_id] = m.condition_id.lower()
            n += 1
        return n

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, condition_id: object) -> bool:
        """A known market's condition id (any case): what redaction keeps readable in typed text."""
        return isinstance(condition_id, str) and condition_id.lower() in self._by_id

    def all(self) -> list[MarketInfo]:
        return list(self._by_id.values())

    def get(self, condition_id: str) -> MarketInfo | None:
        return self._by_id.get(condition_id.lower())

    def for_token(self, token_id: str) -> MarketInfo | None:
        cid = self._by_token.get(token_id)
        return self._by_id.get(cid) if cid else None

    def token(self, token_id: str) -> TokenInfo | None:
        m = self.for_token(token_id)
        if m is None:
            return None
        return next((t for t in m.tokens if t.token_id == token_id), None)

    def label(self, token_id: str) -> str:
        """How a trader reads a token in an alert: "slug outcome", or a shortened id when unknown."""
        market = self.for_token(token_id)
        tok = self.token(token_id)
        if market is None or tok is None:
            return token_id[:12] + "…"
        return f"{market.slug or market.condition_id[:10]} {tok.outcome}"

    def resolve(self, ref: str) -> MarketInfo:
        """A condition id, a slug, or a unique slug prefix (>= 4 chars) -> the market; clear error otherwise."""
        key = ref.strip().lower()
        if not key:
            raise UnknownMarket("empty market reference")
        if key in self._by_id:
            return self._by_id[key]
        if key in self._by_slug:
            return self._by_id[self._by_slug[key]]
        if key in self._by_token:
            return self._by_id[self._by_token[key]]
        if len(key) >= 4:
            hits = sorted({cid for slug, cid in self._by_slug.items() if slug.startswith(key)})
            hits += sorted(cid for cid in self._by_id if cid.startswith(key) and cid not in hits)
            if len(hits) == 1:
                return self._by_id[hits[0]]
            if len(hits) > 1:
                names = ", ".join(self._by_id[c].slug or c for c in hits[:5])
                raise UnknownMarket(f"market {ref!r} is ambiguous: {names}{' ...' if len(hits) > 5 else ''}")
        raise UnknownMarket(f"unknown market {ref!r}: no stored market has that condition id or slug")

    def search(self, text: str | None) -> list[MarketInfo]:
        if not text:
            return sorted(self._by_id.values(), key=lambda m: m.slug or m.condition_id)
        words = text.lower().split()
        out = [
            m
            for m in self._by_id.values()
            if all(w in f"{m.slug} {m.question} {m.condition_id}".lower() for w in words)
        ]
        return sorted(out, key=lambda m: m.slug or m.condition_id)

    def event_members(self, neg_risk_market_id: str) -> list[MarketInfo]:
        return sorted(
            (m for m in self._by_id.values() if m.neg_risk and m.neg_risk_market_id == neg_risk_market_id),
            key=lambda m: m.condition_id,
        )

    def token_ids(self) -> list[str]:
        return list(self._by_token)

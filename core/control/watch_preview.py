"""What the ``[[feed.watch]]`` rules would select from the stored markets (``polybot markets --watch-preview``).

The same selection the running service makes after each refresh (:mod:`core.app.watch_rules`),
from the configuration's rules and the database's markets, with what each rule looked at (24 h
volume, liquidity, end date) and how its ``max_assets`` cut it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.settings.watch import WatchRule


@dataclass(frozen=True, slots=True)
class PreviewMarket:
    condition_id: str
    slug: str
    question: str
    volume_24h: Decimal
    liquidity: Decimal
    end_date: datetime | None
    assets: tuple[str, ...]  # token ids

    def as_dict(self) -> dict[str, object]:
        return {
            "condition_id": self.condition_id,
            "slug": self.slug,
            "question": self.question,
            "volume_24h": str(self.volume_24h),
            "liquidity": str(self.liquidity),
            "end_date": None if self.end_date is None else self.end_date.isoformat(),
            "assets": list(self.assets),
        }


@dataclass(frozen=True, slots=True)
class PreviewRule:
    index: int  # 1-based, as in the configuration file
    conditions: str  # the rule as people read it
    max_assets: int
    matched: int  # markets that matched before the cap
    markets: tuple[PreviewMarket, ...]  # kept, busiest first

    @property
    def assets(self) -> int:
        return sum(len(m.assets) for m in self.markets)

    @property
    def truncated(self) -> int:
        """Matching markets the cap left out."""
        return self.matched - len(self.markets)

    def as_dict(self) -> dict[str, object]:
        return {
            "rule": self.index,
            "conditions": self.conditions,
            "max_assets": self.max_assets,
            "matched": self.matched,
            "kept": len(self.markets),
            "assets": self.assets,
            "truncated": self.truncated,
            "markets": [m.as_dict() for m in self.markets],
        }


@dataclass(frozen=True, slots=True)
class WatchPreview:
    stored: int  # open stored markets the rules looked at
    rules: tuple[PreviewRule, ...]

    @property
    def markets(self) -> int:
        """Distinct markets over every rule (the feed follows their union)."""
        return len({m.condition_id for r in self.rules for m in r.markets})

    @property
    def assets(self) -> int:
        return len({a for r in self.rules for m in r.markets for a in m.assets})

    def as_dict(self) -> dict[str, object]:
        return {
            "stored_open_markets": self.stored,
            "markets": self.markets,
            "assets": self.assets,
            "rules": [r.as_dict() for r in self.rules],
        }


def describe(rule: WatchRule) -> str:
    parts = []
    if rule.tag is not None:
        parts.append(f"tag {rule.tag}")
    if rule.min_volume_24h is not None:
        parts.append(f"24h volume >= {rule.min_volume_24h}")
    if rule.min_liquidity is not None:
        parts.append(f"liquidity >= {rule.min_liquidity}")
    if rule.neg_risk_only:
        parts.append("neg-risk only")
    if rule.end_within_days is not None:
        parts.append(f"ends within {rule.end_within_days:g} days")
    if rule.end_after is not None:
        parts.append(f"ends after {rule.end_after.isoformat()}")
    return ", ".join(parts) or "every open market"


async def preview(rules: list[WatchRule], db_url: str) -> WatchPreview:
    """The rules applied to the open markets stored in ``db_url`` (its schema must exist)."""
    from core.app.watch_rules import select_markets, stored_candidates
    from core.store.db import create_engine, session_factory
    from core.store.migrate import ensure_schema

    engine = create_engine(db_url)
    try:
        await ensure_schema(engine, db_url, migrate=False, migrate_flag=False)
        candidates = await stored_candidates(session_factory(engine))
    finally:
        await engine.dispose()
    by_id = {c.info.condition_id: c for c in candidates}
    out = []
    for sel in select_markets(rules, candidates):
        markets = []
        for info in sel.markets:
            c = by_id[info.condition_id]
            assets = tuple(t.token_id for t in info.tokens)
            markets.append(
                PreviewMarket(
                    info.condition_id, info.slug, info.question, c.volume_24h, c.liquidity, c.end_date, assets
                )
            )
        rule = rules[sel.rule]
        out.append(PreviewRule(sel.rule + 1, describe(rule), rule.max_assets, sel.matched, tuple(markets)))
    return WatchPreview(len(candidates), tuple(out))

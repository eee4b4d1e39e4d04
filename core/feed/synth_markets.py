"""The synthetic markets :mod:`core.feed.synth` trades: binary markets paired from asset ids,
and the demo's binary market plus a 3-outcome neg-risk event. Deterministic for a seed."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class SynthMarket:
    """A generated binary market (neg-risk members share ``neg_risk_market_id``)."""

    condition_id: str
    question: str
    slug: str
    token_ids: tuple[str, str]  # (YES, NO)
    outcomes: tuple[str, str] = ("Yes", "No")
    neg_risk: bool = False
    neg_risk_market_id: str | None = None
    group_item_title: str = ""
    tick_size: Decimal = Decimal("0.01")


def random_hex(rng: random.Random, nbytes: int) -> str:
    """``nbytes`` random bytes as lowercase hex (condition ids, hashes)."""
    return f"{rng.getrandbits(nbytes * 8):0{nbytes * 2}x}"


def token_id(rng: random.Random) -> str:
    """A token id shaped like Polymarket's (a 76-78 digit decimal)."""
    return str(rng.getrandbits(255) | (1 << 250))


def pair_markets(asset_ids: Sequence[str], seed: int, tick: Decimal = Decimal("0.01")) -> list[SynthMarket]:
    """Binary markets from consecutive asset ids (an odd last id gets a generated complement)."""
    rng = random.Random(f"markets:{seed}")
    ids = list(asset_ids)
    if len(ids) % 2:
        ids.append(token_id(rng))
    markets = []
    for i in range(0, len(ids), 2):
        markets.append(
            SynthMarket(
                condition_id="0x" + random_hex(rng, 32),
                question=f"Synthetic market {i // 2 + 1}?",
                slug=f"synthetic-market-{i // 2 + 1}",
                token_ids=(ids[i], ids[i + 1]),
                tick_size=tick,
            )
        )
    return markets


def demo_markets(seed: int = 7) -> list[SynthMarket]:
    """The markets of the demo recording: one binary market and a 3-outcome neg-risk event."""
    rng = random.Random(f"demo:{seed}")
    binary = SynthMarket(
        condition_id="0x" + random_hex(rng, 32),
        question="Will the demo binary market resolve Yes?",
        slug="demo-binary-yes-no",
        token_ids=(token_id(rng), token_id(rng)),
    )
    group_id = "0x" + random_hex(rng, 32)
    members = []
    for name in ("Alice", "Bob", "Carol"):
        members.append(
            SynthMarket(
                condition_id="0x" + random_hex(rng, 32),
                question=f"Will {name} win the demo election?",
                slug=f"will-{name.lower()}-win-the-demo-election",
                token_ids=(token_id(rng), token_id(rng)),
                neg_risk=True,
                neg_risk_market_id=group_id,
                group_item_title=name,
            )
        )
    return [binary, *members]


def market_table(markets: Sequence[SynthMarket]) -> Mapping[str, SynthMarket]:
    """token id -> market."""
    return {tok: m for m in markets for tok in m.token_ids}

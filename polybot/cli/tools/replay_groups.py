"""``dutch-run-replay``'s group figures: each opportunity counted as the engine counts a group."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.execution.group_stats import GroupFigures


def replay_groups(records: Sequence[dict[str, Any]]) -> GroupFigures:
    """The replay's groups, as the engine counts them: each opportunity is a group sent, filled
    against the book of its frame. A leg short of its size is a FOK/FAK that found no liquidity at
    its limit: book moved. Nothing is unwound in a replay: a one-legged group's filled legs stay
    unmatched (left out of the realised edge, at their cost)."""
    from core.execution.group_stats import Cause, GroupStats
    from core.types import Side

    stats = GroupStats()
    for rec in records:
        gid = f"{rec['n']}:{rec['group_id']}"
        legs = [f"{gid}/{k}" for k in range(len(rec["legs"]))]
        stats.sent(gid, legs, Decimal(rec["sets"]), Decimal(rec["expected_edge"]))
        filled = []
        for leg_id, leg in zip(legs, rec["legs"], strict=True):
            size = Decimal(leg["simulated_filled"])
            filled.append(size >= Decimal(leg["size"]))
            if size > 0:
                cost, fee = Decimal(leg["simulated_cost"]), Decimal(leg["simulated_fee"])
                stats.fill(leg_id, Side.BUY, size, cost, fee)
        if all(filled):
            stats.completed(gid)
        elif any(Decimal(leg["simulated_filled"]) > 0 for leg in rec["legs"]):
            stats.one_legged(gid, Cause.BOOK_MOVED)
        else:
            stats.failed(gid, Cause.BOOK_MOVED)
    return stats.figures()

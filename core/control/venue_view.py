"""``/positions`` with the venue's figures beside ours where the last venue sync found them differ.

A token the venue lists and Polybot does not hold gets a row of its own (ours 0), so that a
position opened elsewhere is visible where the trader looks for positions.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from core.control.types import PositionRow, PositionsAtVenue

ZERO = Decimal(0)


def with_venue(rows: list[PositionRow], synced: PositionsAtVenue | None) -> list[PositionRow]:
    if synced is None or not synced.differences:
        return rows
    differs = {d.token_id: d for d in synced.differences}
    out = [replace(r, venue=differs[r.token_id].venue) if r.token_id in differs else r for r in rows]
    ours = {r.token_id for r in rows}
    for d in synced.differences:
        if d.token_id not in ours:
            out.append(PositionRow(d.market, d.outcome, d.token_id, d.ours, ZERO, None, ZERO, ZERO, venue=d.venue))
    return out

"""A bus message as the feed-table rows a single process would have stored, plus its bus key.

The recorder (:mod:`core.bus.recorder`) stores the bus's events in the same tables and the same
shape as :class:`core.feed.pipeline.IngestPipeline` stores the websocket's: a ``snapshot`` is one
``book_snapshots`` row (levels as ``[price, size]`` decimal strings, best first), a ``delta`` one
``book_deltas`` row per level, a ``trade`` one ``trades`` row; the other kinds (best prices, tick
size, book status, resolution) are not feed rows there either. A test replays one recording both
ways and compares the rows.

Each row also carries the key of the message it came from (``bus_epoch``, ``bus_seq``, and
``bus_idx`` for a delta's level), unique in the database (migration 0006): see :data:`KEY_COLUMNS`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Final

from core.bus import messages as m
from core.feed.numbers import price_decimal, units_to_decimal
from core.feed.pipeline import stored_decimal

Row = dict[str, Any]

UNKNOWN_CONDITION: Final = "_"
"""The condition token of an asset whose market the worker did not know (stored as ``market = ''``)."""

KEY_COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "book_snapshots": ("asset_id", "bus_epoch", "bus_seq", "receive_ts"),
    "book_deltas": ("asset_id", "bus_epoch", "bus_seq", "bus_idx", "receive_ts"),
    "trades": ("asset_id", "bus_epoch", "bus_seq", "receive_ts"),
}
"""Each feed table's unique bus key (``uq_<table>_bus``), in index order."""


def rows_of(msg: m.MdMessage) -> list[tuple[str, Row]]:
    """``(table, row)`` for each row ``msg`` stores; empty for kinds the feed tables do not hold."""
    if isinstance(msg, m.Delta):
        return [("book_deltas", _delta_row(msg, i, lv)) for i, lv in enumerate(msg.levels)]
    if isinstance(msg, m.Snapshot):
        return [("book_snapshots", _snapshot_row(msg))]
    if isinstance(msg, m.Trade):
        return [("trades", _trade_row(msg))]
    return []


def key_of(table: str, row: Row) -> tuple[Any, ...]:
    """The row's bus key (the values of :data:`KEY_COLUMNS` ``[table]``)."""
    return tuple(row[c] for c in KEY_COLUMNS[table])


def _head(msg: m.MdMessage) -> Row:
    return {
        "asset_id": msg.asset,
        "market": "" if msg.condition == UNKNOWN_CONDITION else msg.condition,
        "exchange_ts": msg.ts_ms,
        "receive_ts": msg.recv_ns,
        "bus_epoch": msg.epoch,
        "bus_seq": msg.seq,
    }


def _levels(levels: tuple[m.LevelUnits, ...]) -> list[list[str]]:
    return [[str(price_decimal(p)), str(units_to_decimal(s))] for p, s in levels]


def _snapshot_row(msg: m.Snapshot) -> Row:
    return {
        **_head(msg),
        "bids": _levels(msg.bids),
        "asks": _levels(msg.asks),
        "tick_size": Decimal(msg.tick_size),
        "hash": msg.hash or None,
    }


def _delta_row(msg: m.Delta, idx: int, lv: m.DeltaLevel) -> Row:
    return {
        **_head(msg),
        "side": lv.side,
        "price": stored_decimal(lv.price),
        "size": stored_decimal(lv.size),
        "best_bid": stored_decimal(lv.best_bid),
        "best_ask": stored_decimal(lv.best_ask),
        "hash": None,  # the feed does not decode the entries' hashes
        "bus_idx": idx,
    }


def _trade_row(msg: m.Trade) -> Row:
    return {
        **_head(msg),
        "price": price_decimal(msg.price_units),
        "size": units_to_decimal(msg.size_units),
        "side": msg.side,
        "fee_rate_bps": msg.fee_rate_bps,
        "transaction_hash": msg.transaction_hash or None,
    }

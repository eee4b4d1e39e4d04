"""What the database says about the bot: schema, row counts, tracked assets, top of book, armed.

:func:`gather_status` works on any database: a missing SQLite file or an unmigrated database is
reported as empty, not as an error. Its result is plain JSON-able data (decimals as strings), so
the CLI, the Telegram bot and the control facade can all render it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Table, func, inspect, select
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from core.store.db import connect_error, create_engine, is_sqlite, mask_url, parse_db_url, sqlite_path
from core.store.migrate import VERSION_TABLE, head_revision
from core.store.models import ARMED_KEY, TABLES, Base
from core.store.repo import armed_from_value

EMPTY_NOTE = "empty database (no schema)"
DELTA_REPLAY_LIMIT = 200_000  # deltas applied on top of the latest snapshot, per asset

_t = Base.metadata.tables
SNAPSHOTS: Table = _t["book_snapshots"]
DELTAS: Table = _t["book_deltas"]
TRADES: Table = _t["trades"]
MARKETS: Table = _t["markets"]
STATE: Table = _t["state"]


def _empty_result(url: URL, note: str) -> dict[str, Any]:
    return {
        "db_url": mask_url(url),
        "backend": url.get_backend_name(),
        "empty": True,
        "note": note,
        "schema": {"revision": None, "head": head_revision(), "at_head": False, "tables": []},
        "tables": {},
        "markets": 0,
        "armed": False,
        "assets_tracked": 0,
        "assets": [],
    }


async def gather_status(
    url: str | URL | None,
    *,
    max_assets: int = 50,
    verbose: bool = False,
    now_ns: int | None = None,
) -> dict[str, Any]:
    """Collect the status of the database at ``url`` (see module docs for the shape).

    Raises :class:`core.errors.PolybotError` (one line, masked URL) when the database cannot
    be reached; :class:`core.errors.UsageError` for a bad URL.
    """
    parsed = url if isinstance(url, URL) else parse_db_url(url)
    if is_sqlite(parsed):
        path = sqlite_path(parsed)
        if path is not None and not path.expanduser().exists():
            return _empty_result(parsed, f"{EMPTY_NOTE}: database file {path} does not exist")
    now = time.time_ns() if now_ns is None else now_ns
    engine = create_engine(parsed)
    try:
        async with engine.connect() as conn:
            return await _gather(conn, parsed, max_assets=max_assets, verbose=verbose, now_ns=now)
    except (DBAPIError, OSError, TimeoutError) as exc:
        raise connect_error(parsed, exc) from None
    finally:
        await engine.dispose()


async def _gather(conn: AsyncConnection, url: URL, *, max_assets: int, verbose: bool, now_ns: int) -> dict[str, Any]:
    existing: list[str] = await conn.run_sync(lambda c: inspect(c).get_table_names())
    revision = None
    if VERSION_TABLE in existing:
        revision = (await conn.exec_driver_sql(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
    ours = [t for t in TABLES if t in existing]
    head = head_revision()
    result: dict[str, Any] = {
        "db_url": mask_url(url),
        "backend": url.get_backend_name(),
        "empty": revision is None and not ours,
        "schema": {"revision": revision, "head": head, "at_head": revision == head, "tables": ours},
    }
    if result["empty"]:
        result.update(note=EMPTY_NOTE, tables={}, markets=0, armed=False, assets_tracked=0, assets=[])
        return result
    if revision is None:
        result["note"] = "tables exist but no schema revision is stamped (not created by polybot migrate?)"
    elif revision != head:
        result["note"] = f"schema at {revision}, head is {head}: run polybot migrate --apply"

    counts: dict[str, int] = {}
    for name in ours:
        counts[name] = int((await conn.execute(select(func.count()).select_from(_t[name]))).scalar_one())
    result["tables"] = counts
    result["markets"] = counts.get("markets", 0)

    armed_value = None
    if "state" in ours:
        armed_value = (await conn.execute(select(STATE.c.value).where(STATE.c.key == ARMED_KEY))).scalar()
        if verbose:
            rows = (await conn.execute(select(STATE.c.key, STATE.c.value, STATE.c.updated_at))).all()
            result["state"] = {k: {"value": v, "updated_at": ts.isoformat()} for k, v, ts in rows}
    result["armed"] = armed_from_value(armed_value)

    assets = await _tracked_assets(conn, ours)
    result["assets_tracked"] = len(assets)
    # most recently updated first; the rest are counted, not listed
    ordered = sorted(assets.items(), key=lambda kv: kv[1]["last_receive_ts"] or 0, reverse=True)
    shown = []
    for asset_id, info in ordered[: max(0, max_assets)]:
        shown.append(await _asset_status(conn, asset_id, info, ours, now_ns=now_ns, verbose=verbose))
    result["assets"] = shown
    return result


async def _tracked_assets(conn: AsyncConnection, ours: list[str]) -> dict[str, dict[str, Any]]:
    assets: dict[str, dict[str, Any]] = {}
    for table, kind in ((SNAPSHOTS, "snapshot"), (DELTAS, "delta")):
        if table.name not in ours:
            continue
        rows = await conn.execute(select(table.c.asset_id, func.max(table.c.id)).group_by(table.c.asset_id))
        for asset_id, last_id in rows:
            assets.setdefault(asset_id, {"snapshot_id": None, "delta_id": None, "last_receive_ts": None})[
                f"{kind}_id"
            ] = last_id
    for info in assets.values():
        for table, key in ((SNAPSHOTS, "snapshot_id"), (DELTAS, "delta_id")):
            if info[key] is not None:
                ts = (await conn.execute(select(table.c.receive_ts).where(table.c.id == info[key]))).scalar()
                if ts is not None and (info["last_receive_ts"] is None or ts > info["last_receive_ts"]):
                    info["last_receive_ts"] = ts
    return assets


def _dec(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def _fmt(value: Decimal | None) -> str | None:
    """Canonical text: no exponent, no trailing zeros (0.500000 -> 0.5, 10 -> 10)."""
    return None if value is None else format(value.normalize(), "f")


def _levels(raw: Any) -> Iterable[tuple[Decimal, Decimal]]:
    """Levels from a snapshot column: ``[[price, size], ...]`` or ``[{"price", "size"}, ...]``."""
    for item in raw or []:
        if isinstance(item, dict):
            price, size = _dec(item.get("price")), _dec(item.get("size"))
        elif isinstance(item, list | tuple) and len(item) >= 2:
            price, size = _dec(item[0]), _dec(item[1])
        else:
            continue
        if price is not None and size is not None:
            yield price, size


async def _asset_status(
    conn: AsyncConnection, asset_id: str, info: dict[str, Any], ours: list[str], *, now_ns: int, verbose: bool
) -> dict[str, Any]:
    bids: dict[Decimal, Decimal] = {}
    asks: dict[Decimal, Decimal] = {}
    market = ""
    since_ns: int | None = None
    if info["snapshot_id"] is not None:
        snap = (await conn.execute(select(SNAPSHOTS).where(SNAPSHOTS.c.id == info["snapshot_id"]))).one()
        bids = dict(_levels(snap.bids))
        asks = dict(_levels(snap.asks))
        market = snap.market
        since_ns = snap.receive_ts
    applied = 0
    truncated = False
    if info["delta_id"] is not None:
        # snapshots and deltas have separate id sequences: order them by receive time. A delta
        # received in the same frame as the snapshot is re-applied harmlessly (sizes are absolute).
        stmt = select(DELTAS.c.side, DELTAS.c.price, DELTAS.c.size, DELTAS.c.market).where(
            DELTAS.c.asset_id == asset_id
        )
        if since_ns is not None:
            stmt = stmt.where(DELTAS.c.receive_ts >= since_ns)
        stmt = stmt.order_by(DELTAS.c.id.desc()).limit(DELTA_REPLAY_LIMIT + 1)
        deltas = (await conn.execute(stmt)).all()
        if len(deltas) > DELTA_REPLAY_LIMIT:
            truncated = True
            deltas = deltas[:DELTA_REPLAY_LIMIT]
        for side, price, size, delta_market in reversed(deltas):
            book = bids if side.upper() in ("BUY", "BID") else asks
            if size == 0:
                book.pop(price, None)
            else:
                book[price] = size
            market = market or delta_market
            applied += 1
    live_bids = [p for p, s in bids.items() if s > 0]
    live_asks = [p for p, s in asks.items() if s > 0]
    best_bid = max(live_bids) if live_bids else None
    best_ask = min(live_asks) if live_asks else None
    last_ts = info["last_receive_ts"]
    out: dict[str, Any] = {
        "asset_id": asset_id,
        "market": market,
        "best_bid": _fmt(best_bid),
        "best_bid_size": None if best_bid is None else _fmt(bids[best_bid]),
        "best_ask": _fmt(best_ask),
        "best_ask_size": None if best_ask is None else _fmt(asks[best_ask]),
        "spread": None if best_bid is None or best_ask is None else _fmt(best_ask - best_bid),
        "crossed": best_bid is not None and best_ask is not None and best_bid >= best_ask,
        "has_snapshot": info["snapshot_id"] is not None,
        "deltas_since_snapshot": applied,
        "last_update_age_s": None if last_ts is None else round(max(0, now_ns - last_ts) / 1e9, 3),
    }
    if truncated:
        out["note"] = f"only the last {DELTA_REPLAY_LIMIT} deltas were applied"
    if verbose:
        out["bid_levels"] = len(live_bids)
        out["ask_levels"] = len(live_asks)
        if "trades" in ours:
            trade = (
                await conn.execute(
                    select(TRADES.c.price, TRADES.c.size, TRADES.c.side, TRADES.c.receive_ts)
                    .where(TRADES.c.asset_id == asset_id)
                    .order_by(TRADES.c.id.desc())
                    .limit(1)
                )
            ).first()
            if trade is not None:
                out["last_trade"] = {
                    "price": _fmt(trade.price),
                    "size": _fmt(trade.size),
                    "side": trade.side,
                    "age_s": round(max(0, now_ns - trade.receive_ts) / 1e9, 3),
                }
    return out

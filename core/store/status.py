"""The read side a process outside the service uses: what the database says about the bot.

:func:`gather_status` (schema, row counts, tracked assets, top of book, armed) works on any
database: a missing SQLite file or an unmigrated database is reported as empty, not as an error.
:func:`open_alerts` lists the alerts still open. Results are plain JSON-able data
(:mod:`core.store.status_types`, decimals as strings); the control facade hands them to the faces.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable
from decimal import Decimal, InvalidOperation
from typing import Literal, TypedDict

from sqlalchemy import Table, func, inspect, select
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from core.store.db import connect_error, create_engine, is_sqlite, mask_url, parse_db_url, sqlite_path
from core.store.delta_index import asset_deltas, last_delta_ids
from core.store.migrate import VERSION_TABLE, head_revision
from core.store.models import ARMED_KEY, TABLES, Alert, Base
from core.store.repo import armed_from_value
from core.store.status_types import LastTrade, SchemaInfo, StateEntry, StoredAlert, StoredAsset, StoredStatus

EMPTY_NOTE = "empty database (no schema)"
DELTA_REPLAY_LIMIT = 200_000  # deltas applied on top of the latest snapshot, per asset

_t = Base.metadata.tables
SNAPSHOTS: Table = _t["book_snapshots"]
DELTAS: Table = _t["book_deltas"]
TRADES: Table = _t["trades"]
MARKETS: Table = _t["markets"]
TOKENS: Table = _t["tokens"]
_NAMES_PER_QUERY = 500  # token ids per IN (...) list: well under any backend's bound-parameter limit
STATE: Table = _t["state"]


class _Tracked(TypedDict):
    snapshot_id: int | None
    delta_id: int | None
    last_receive_ts: int | None


def _result(
    url: URL,
    schema: SchemaInfo,
    *,
    note: str | None = None,
    tables: dict[str, int] | None = None,
    state: dict[str, StateEntry] | None = None,
    armed: bool = False,
    tracked: int = 0,
    assets: list[StoredAsset] | None = None,
) -> StoredStatus:
    """The result in its documented key order; ``note`` and ``state`` only when there is one."""
    out: dict[str, object] = {
        "db_url": mask_url(url),
        "backend": url.get_backend_name(),
        "empty": schema["revision"] is None and not schema["tables"],
        "schema": schema,
    }
    if note is not None:
        out["note"] = note
    out["tables"] = tables or {}
    out["markets"] = (tables or {}).get("markets", 0)
    if state is not None:
        out["state"] = state
    out.update(armed=armed, assets_tracked=tracked, assets=assets or [])
    return out  # type: ignore[return-value]  # built key by key to keep the documented order


def _empty_result(url: URL, note: str) -> StoredStatus:
    return _result(url, {"revision": None, "head": head_revision(), "at_head": False, "tables": []}, note=note)


async def gather_status(
    url: str | URL | None,
    *,
    max_assets: int = 50,
    verbose: bool = False,
    now_ns: int | None = None,
) -> StoredStatus:
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


async def _gather(conn: AsyncConnection, url: URL, *, max_assets: int, verbose: bool, now_ns: int) -> StoredStatus:
    existing: list[str] = await conn.run_sync(lambda c: inspect(c).get_table_names())
    revision: str | None = None
    if VERSION_TABLE in existing:
        revision = (await conn.exec_driver_sql(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
    ours = [t for t in TABLES if t in existing]
    head = head_revision()
    schema: SchemaInfo = {"revision": revision, "head": head, "at_head": revision == head, "tables": ours}
    if revision is None and not ours:
        return _result(url, schema, note=EMPTY_NOTE)
    note = None
    if revision is None:
        note = "tables exist but no schema revision is stamped (not created by polybot migrate?)"
    elif revision != head:
        note = f"schema at {revision}, head is {head}: run polybot migrate --apply"

    counts: dict[str, int] = {}
    for name in ours:
        counts[name] = int((await conn.execute(select(func.count()).select_from(_t[name]))).scalar_one())

    armed_value = None
    state: dict[str, StateEntry] | None = None
    if "state" in ours:
        armed_value = (await conn.execute(select(STATE.c.value).where(STATE.c.key == ARMED_KEY))).scalar()
        if verbose:
            rows = (await conn.execute(select(STATE.c.key, STATE.c.value, STATE.c.updated_at))).all()
            state = {k: {"value": v, "updated_at": ts.isoformat()} for k, v, ts in rows}

    assets = await _tracked_assets(conn, ours, existing)
    # most recently updated first; the rest are counted, not listed
    ordered = sorted(assets.items(), key=lambda kv: kv[1]["last_receive_ts"] or 0, reverse=True)
    shown = [
        await _asset_status(conn, asset_id, info, ours, existing, now_ns=now_ns, verbose=verbose)
        for asset_id, info in ordered[: max(0, max_assets)]
    ]
    if shown and "markets" in ours:  # a resolved/closed market's books are done, not stale
        closed = set((await conn.execute(select(MARKETS.c.condition_id).where(MARKETS.c.closed.is_(True)))).scalars())
        for asset in shown:
            if asset["market"] in closed:
                asset["closed"] = True
        if "tokens" in ours:
            await _name_assets(conn, shown)
    return _result(
        url,
        schema,
        note=note,
        tables=counts,
        state=state,
        armed=armed_from_value(armed_value),
        tracked=len(assets),
        assets=shown,
    )


async def _name_assets(conn: AsyncConnection, shown: list[StoredAsset]) -> None:
    """Each shown asset's market slug and outcome, as people name them, from the tokens table."""
    by_id = {a["asset_id"]: a for a in shown}
    ids = list(by_id)
    for start in range(0, len(ids), _NAMES_PER_QUERY):
        rows = await conn.execute(
            select(TOKENS.c.token_id, TOKENS.c.outcome, MARKETS.c.slug, MARKETS.c.condition_id)
            .join(MARKETS, MARKETS.c.condition_id == TOKENS.c.condition_id)
            .where(TOKENS.c.token_id.in_(ids[start : start + _NAMES_PER_QUERY]))
        )
        for token_id, outcome, slug, condition_id in rows:
            asset = by_id[token_id]
            asset["slug"] = slug or condition_id
            asset["outcome"] = outcome


async def _tracked_assets(conn: AsyncConnection, ours: list[str], existing: list[str]) -> dict[str, _Tracked]:
    assets: dict[str, _Tracked] = {}
    for table in (SNAPSHOTS, DELTAS):
        if table.name not in ours:
            continue
        if table is SNAPSHOTS:
            queries = [select(table.c.asset_id, func.max(table.c.id)).group_by(table.c.asset_id)]
        else:  # on SQLite, from its per-asset index and the newest rows not yet in it
            queries = last_delta_ids(conn.dialect.name, existing)
        for query in queries:
            for asset_id, last_id in await conn.execute(query):
                info = assets.setdefault(asset_id, {"snapshot_id": None, "delta_id": None, "last_receive_ts": None})
                key: Literal["snapshot_id", "delta_id"] = "snapshot_id" if table is SNAPSHOTS else "delta_id"
                known = info[key]
                info[key] = last_id if known is None else max(known, last_id)
    for info in assets.values():
        for table, row_id in ((SNAPSHOTS, info["snapshot_id"]), (DELTAS, info["delta_id"])):
            if row_id is not None:
                ts = (await conn.execute(select(table.c.receive_ts).where(table.c.id == row_id))).scalar()
                if ts is not None and (info["last_receive_ts"] is None or ts > info["last_receive_ts"]):
                    info["last_receive_ts"] = ts
    return assets


def _dec(value: object) -> Decimal | None:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def _fmt(value: Decimal | None) -> str | None:
    """Canonical text: no exponent, no trailing zeros (0.500000 -> 0.5, 10 -> 10)."""
    return None if value is None else format(value.normalize(), "f")


def _levels(raw: object) -> Iterable[tuple[Decimal, Decimal]]:
    """Levels from a snapshot column: ``[[price, size], ...]`` or ``[{"price", "size"}, ...]``."""
    if not isinstance(raw, list | tuple):
        return
    for item in raw:
        if isinstance(item, dict):
            price, size = _dec(item.get("price")), _dec(item.get("size"))
        elif isinstance(item, list | tuple) and len(item) >= 2:
            price, size = _dec(item[0]), _dec(item[1])
        else:
            continue
        if price is not None and size is not None:
            yield price, size


async def _asset_status(
    conn: AsyncConnection,
    asset_id: str,
    info: _Tracked,
    ours: list[str],
    existing: list[str],
    *,
    now_ns: int,
    verbose: bool,
) -> StoredAsset:
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
        columns = (DELTAS.c.side, DELTAS.c.price, DELTAS.c.size, DELTAS.c.market)
        stmt = asset_deltas(
            conn.dialect.name, columns, asset_id, since_ns=since_ns, limit=DELTA_REPLAY_LIMIT + 1, tables=existing
        )
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
    out: StoredAsset = {
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
                last: LastTrade = {
                    "price": _fmt(trade.price),
                    "size": _fmt(trade.size),
                    "side": trade.side,
                    "age_s": round(max(0, now_ns - trade.receive_ts) / 1e9, 3),
                }
                out["last_trade"] = last
    return out


async def open_alerts(
    url: str | URL | None, *, severities: Collection[str], exclude_kinds: Collection[str], limit: int = 20
) -> list[StoredAlert]:
    """The newest alerts still open (not resolved) of these severities, except these kinds.

    Raises :class:`core.errors.PolybotError` (one line, masked URL) when the database cannot be reached.
    """
    parsed = url if isinstance(url, URL) else parse_db_url(url)
    engine = create_engine(parsed)
    try:
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(Alert.kind, Alert.key, Alert.severity, Alert.message)
                    .where(
                        Alert.resolved_at.is_(None),
                        Alert.severity.in_(sorted(severities)),
                        Alert.kind.not_in(sorted(exclude_kinds)),
                    )
                    .order_by(Alert.ts.desc())
                    .limit(limit)
                )
            ).all()
    except (DBAPIError, OSError, TimeoutError) as exc:
        raise connect_error(parsed, exc) from None
    finally:
        await engine.dispose()
    return [{"kind": k, "key": key, "severity": sev, "message": msg} for k, key, sev, msg in rows]

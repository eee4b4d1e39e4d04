"""Polybot's feed path beside NautilusTrader's lean Python path, on the peer stream, in one process.

The stream is ../shared/peer-bench's (``gen_stream.py``: 200,000 lines, 50 assets, 20 levels a
side, seed 42: ``book`` snapshots then ``price_change`` bursts carrying ``best_bid``/``best_ask``).
Rows, timed round-robin in the same process with the peer bench's own ``measure`` (so load
hits every row alike), each over the whole stream:

- Polybot, the feed path in use (``FeedProcessor.process``: decode, validate, apply, burst
  checks, domain events; compiled by mypyc when built);
- Polybot, the same modules loaded from source (``core.feed.kernel.source_twin``): the
  pure-Python path;
- NautilusTrader "full lean": bytes -> msgspec Structs -> Price/Quantity/BookOrder/
  OrderBookDelta -> ``OrderBook.apply_delta`` (Rust), exactly as the peer bench's
  ``full_lean`` row.

Every row's final books are checked against each other (top of book and depth, every asset) and
Polybot must end with no rejection, no fault and every book ok. Run it with the peer venv's
interpreter (it has nautilus_trader; Polybot's feed needs only msgspec, and a compiled feed built
for the same CPython loads there too); ``bench/ingest.py`` does that for you:

    var/peer-venv/bin/python bench/ingest_peer.py [--json]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, os.environ.get("PEER_BENCH_SRC", str(Path(__file__).resolve().parents[2] / "shared" / "peer-bench")))

import pm_structs  # type: ignore[import-not-found]  # the peer bench's wire structs
from _common import ensure_stream, load_lines  # type: ignore[import-not-found]  # peer venv only
from nautilus_trader.core.datetime import millis_to_nanos  # type: ignore[import-not-found]  # peer venv only
from nautilus_trader.model.book import OrderBook  # type: ignore[import-not-found]  # peer venv only
from nautilus_trader.model.currencies import USDC_POS  # type: ignore[import-not-found]  # peer venv only
from nautilus_trader.model.data import BookOrder, OrderBookDelta, OrderBookDeltas  # type: ignore[import-not-found]  # peer venv only
from nautilus_trader.model.enums import (  # type: ignore[import-not-found]  # peer venv only
    AssetClass,
    BookAction,
    BookType,
    OrderSide,
    RecordFlag,
)
from nautilus_trader.model.identifiers import InstrumentId, Symbol  # type: ignore[import-not-found]  # peer venv only
from nautilus_trader.model.instruments import BinaryOption  # type: ignore[import-not-found]  # peer venv only
from nautilus_trader.model.objects import Price, Quantity  # type: ignore[import-not-found]  # peer venv only

from core.feed import kernel
from core.feed.processor import FeedProcessor
from core.types import BookStatus

POLYBOT = "Polybot: FeedProcessor.process (feed path in use)"
POLYBOT_SOURCE = "Polybot: same modules from source (pure Python)"
NT_LEAN = "NautilusTrader full lean: bytes -> msgspec Structs -> objects -> apply_delta"
Top = tuple[Decimal | None, Decimal | None, int, int]


# make_instrument and snapshot_deltas as in ../shared/peer-bench/bench_nautilus.py, which cannot be
# imported here: it imports NautilusTrader's Polymarket adapter, which needs py_clob_client (the
# lean path never uses the adapter; the instrument id is built as get_polymarket_instrument_id does)


def _instrument(market: str, asset_id: str) -> Any:
    tick = Price.from_str("0.01")
    size_inc = Quantity.from_str("0.000001")
    return BinaryOption(
        instrument_id=InstrumentId.from_str(f"{market}-{asset_id}.POLYMARKET"),
        raw_symbol=Symbol(asset_id),
        outcome="Yes",
        description="synthetic",
        asset_class=AssetClass.ALTERNATIVE,
        currency=USDC_POS,
        price_increment=tick,
        price_precision=tick.precision,
        size_increment=size_inc,
        size_precision=size_inc.precision,
        activation_ns=0,
        expiration_ns=2_000_000_000_000_000_000,
        max_quantity=None,
        min_quantity=Quantity.from_int(5),
        maker_fee=Decimal(0),
        taker_fee=Decimal(0),
        ts_event=0,
        ts_init=0,
    )


def _snapshot_deltas(msg: Any, inst: Any) -> list[Any]:
    ts = millis_to_nanos(float(msg.timestamp))
    out = [OrderBookDelta.clear(inst.id, 0, ts, 0)]
    for side, levels in ((OrderSide.BUY, msg.bids), (OrderSide.SELL, msg.asks)):
        for lv in levels:
            order = BookOrder(
                side=side, price=inst.make_price(float(lv.price)), size=inst.make_qty(float(lv.size)), order_id=0
            )
            out.append(OrderBookDelta(inst.id, BookAction.ADD, order, 0, 0, ts, 0))
    return out


def _nt_lean(lines: list[bytes], instruments: dict[str, Any]) -> dict[str, Any]:
    # the peer bench's full_lean / apply_struct, verbatim but for names
    decode = pm_structs.decoder().decode
    buy, sell = OrderSide.BUY, OrderSide.SELL
    update, delete, last, l2 = BookAction.UPDATE, BookAction.DELETE, RecordFlag.F_LAST, BookType.L2_MBP
    books: dict[str, Any] = {}
    for line in lines:
        m = decode(line)
        changes = getattr(m, "price_changes", None)
        if changes is None:
            inst = instruments[m.asset_id]
            book = OrderBook(inst.id, book_type=l2)
            book.apply_deltas(OrderBookDeltas(inst.id, _snapshot_deltas(m, inst)))
            books[m.asset_id] = book
            continue
        ts = millis_to_nanos(float(m.timestamp))
        for c in changes:
            inst = instruments[c.asset_id]
            size = float(c.size)
            order = BookOrder(buy if c.side == "BUY" else sell, inst.make_price(float(c.price)), inst.make_qty(size), 0)
            books[c.asset_id].apply_delta(
                OrderBookDelta(inst.id, update if size > 0.0 else delete, order, last, 0, ts, 0)
            )
    return books


def _polybot(lines: list[bytes], make: Callable[[], Any]) -> Any:
    processor = make()
    process = processor.process
    now = time.time_ns
    for line in lines:
        process(line, now())
    processor.finish(now())
    return processor


def _nt_tops(books: dict[str, Any]) -> dict[str, Top]:
    def dec(price: Any) -> Decimal | None:
        return None if price is None else Decimal(str(price)).normalize()

    return {
        a: (dec(b.best_bid_price()), dec(b.best_ask_price()), len(b.bids()), len(b.asks())) for a, b in books.items()
    }


def _polybot_tops(processor: Any) -> dict[str, Top]:
    def dec(price: Decimal | None) -> Decimal | None:
        return None if price is None else price.normalize()

    return {
        a: (dec(b.best_bid()), dec(b.best_ask()), *b.level_counts()) for a, b in processor.books.items() if b.seeded
    }


def _measure(variants: Mapping[str, Callable[[], object]], runs: int) -> dict[str, dict[str, list[float]]]:
    """Round-robin like the peer bench's ``measure`` (one warm-up round, gc frozen and collected
    between runs), timing both the wall clock and this process's CPU time: on a machine shared
    with other work the CPU time is what the row cost, the wall clock also counts time waiting
    for a core."""
    times: dict[str, dict[str, list[float]]] = {name: {"wall": [], "cpu": []} for name in variants}
    gc.collect()
    gc.freeze()
    for fn in variants.values():
        fn()
    for _ in range(runs):
        for name, fn in variants.items():
            gc.collect()
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            times[name]["cpu"].append(time.process_time() - cpu)
            times[name]["wall"].append(time.perf_counter() - wall)
    return times


def _row(t: dict[str, list[float]], frames: int) -> dict[str, Any]:
    cpu, wall = statistics.median(t["cpu"]), statistics.median(t["wall"])
    return {
        "per_s": frames / cpu,
        "per_s_wall": frames / wall,
        "median_cpu_s": cpu,
        "spread_pct": (max(t["cpu"]) - min(t["cpu"])) / cpu * 100,
        "runs": len(t["cpu"]),
        "cpu_s": t["cpu"],
        "wall_s": t["wall"],
    }


def run(runs: int) -> dict[str, Any]:
    meta = ensure_stream()
    lines = load_lines()
    snapshots = [pm_structs.decoder().decode(x) for x in lines[: meta["book_events"]]]
    instruments = {m.asset_id: _instrument(m.market, m.asset_id) for m in snapshots}
    assets = set(instruments)
    source = kernel.source_twin()
    state: dict[str, Any] = {}
    variants = {
        POLYBOT: lambda: state.__setitem__(POLYBOT, _polybot(lines, lambda: FeedProcessor(known_assets=assets))),
        POLYBOT_SOURCE: lambda: state.__setitem__(
            POLYBOT_SOURCE, _polybot(lines, lambda: source.FeedProcessor(known_assets=assets))
        ),
        NT_LEAN: lambda: state.__setitem__(NT_LEAN, _nt_lean(lines, instruments)),
    }
    times = _measure(variants, runs)

    reference = _nt_tops(state[NT_LEAN])
    problems: list[str] = []
    for name in (POLYBOT, POLYBOT_SOURCE):
        processor = state[name]
        if processor.counters.total or processor.faults.total:
            problems.append(f"{name}: rejected {processor.counters.as_dict()} faults {processor.faults.as_dict()}")
        not_ok = [a for a, b in processor.books.items() if b.status is not BookStatus.OK]
        if not_ok:
            problems.append(f"{name}: {len(not_ok)} books not ok")
        if _polybot_tops(processor) != reference:
            problems.append(f"{name}: final books differ from NautilusTrader's")
    rows = {name: _row(t, len(lines)) for name, t in times.items()}

    def ratios(name: str, clock: str) -> list[float]:
        return [nt / pb for nt, pb in zip(times[NT_LEAN][clock], times[name][clock], strict=True)]

    return {
        "stream": {k: meta[k] for k in ("n", "assets", "levels", "book_events", "price_change_entries") if k in meta},
        "feed_path": FeedProcessor().kernel_status,
        "rows": rows,
        # NT lean time / Polybot time, per round (each round times every row once, back to back)
        "ratio_vs_nt_lean": statistics.median(ratios(POLYBOT, "cpu")),
        "ratio_vs_nt_lean_per_round": ratios(POLYBOT, "cpu"),
        "ratio_vs_nt_lean_wall_per_round": ratios(POLYBOT, "wall"),
        "source_ratio_vs_nt_lean": statistics.median(ratios(POLYBOT_SOURCE, "cpu")),
        "source_ratio_vs_nt_lean_per_round": ratios(POLYBOT_SOURCE, "cpu"),
        "correct": not problems,
        "problems": problems,
        "loadavg": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each row, round-robin (default 5)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    report = run(args.runs)
    if args.json:
        print(json.dumps(report, indent=1))
        return 0 if report["correct"] else 1
    print(f"peer stream: {report['stream']}; feed path: {report['feed_path']}")
    for name, row in report["rows"].items():
        print(
            f"  {name:<78} {row['per_s']:>9,.0f} frames/s CPU ({row['per_s_wall']:>9,.0f} wall; "
            f"median of {row['runs']}, spread {row['spread_pct']:.0f}%)"
        )

    def rounds(key: str) -> str:
        return ", ".join(f"{r:.2f}" for r in report[key])

    print(
        f"  Polybot / NautilusTrader lean: {report['ratio_vs_nt_lean']:.2f}x CPU (rounds: {rounds('ratio_vs_nt_lean_per_round')}; wall: {rounds('ratio_vs_nt_lean_wall_per_round')})"
    )
    print(
        f"  pure Python / NautilusTrader lean: {report['source_ratio_vs_nt_lean']:.2f}x CPU (rounds: {rounds('source_ratio_vs_nt_lean_per_round')})"
    )
    print(f"  load average {', '.join(f'{x:.1f}' for x in report['loadavg'])}")
    print(f"  correct={report['correct']} {'; '.join(report['problems'])}")
    return 0 if report["correct"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

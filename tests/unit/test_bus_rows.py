"""The recorder stores what a single process stores: the demo recording through one pipeline, whose
writer gets the single process's rows and whose MdPublisher sink makes the bus messages; the
messages, encoded and decoded, become the recorder's rows (:func:`core.bus.rows.rows_of`). Apart
from the bus key, the two are the same rows, table by table."""

from __future__ import annotations

from typing import Any

from core.bus import messages as m
from core.bus.publish import MdPublisher
from core.bus.rows import KEY_COLUMNS, key_of, rows_of
from core.feed.pipeline import IngestPipeline
from core.feed.processor import FeedProcessor
from core.feed.replay import iter_frames
from core.sim.demo_data import DEMO_RECORDING

BUS_COLUMNS = ("bus_epoch", "bus_seq", "bus_idx")


class Rows:
    def __init__(self) -> None:
        self.rows: list[tuple[str, dict[str, Any]]] = []

    def put(self, table: str, row: dict[str, Any]) -> bool:
        self.rows.append((table, row))
        return True


async def test_recorded_rows_equal_the_single_process_rows() -> None:
    processor = FeedProcessor()
    single = Rows()
    pipeline = IngestPipeline(processor, single)
    publisher = MdPublisher("polybot", processor.books)
    publisher.begin_epoch(3, [])
    pipeline.add_sink(publisher.on_events)
    for recv_ns, text in iter_frames(DEMO_RECORDING):
        pipeline.on_frame(text, recv_ns)
    sent: list[bytes] = []
    await publisher.flush(lambda _subject, payload: sent.append(payload))
    decoded = [m.decode(p) for p in sent]
    recorded = [tr for msg in decoded for tr in rows_of(msg)]

    def without_key(rows: list[tuple[str, dict[str, Any]]], table: str) -> list[dict[str, Any]]:
        # a price_change naming several assets is one message per asset on the bus: the rows of
        # one venue event may come in another order, so both sides are sorted
        out = [{k: v for k, v in r.items() if k not in BUS_COLUMNS} for t, r in rows if t == table]
        return sorted(out, key=lambda r: repr(sorted(r.items())))

    tables = {t for t, _ in single.rows}
    assert tables == {"book_snapshots", "book_deltas", "trades"}  # the recording has all three
    for table in sorted(tables):
        expected = without_key(single.rows, table)
        assert expected, table
        assert without_key(recorded, table) == expected, table
    # every recorded row has a key of its own
    keys = [(t, key_of(t, r)) for t, r in recorded]
    assert len(keys) == len(set(keys)) == len(single.rows)
    assert all(r["bus_epoch"] == 3 and r["bus_seq"] >= 1 for _, r in recorded)
    assert all(set(KEY_COLUMNS[t]) <= r.keys() for t, r in recorded)


def test_kinds_without_feed_rows_give_none() -> None:
    head = {"condition": "0xc", "asset": "1", "epoch": 1, "seq": 1}
    assert rows_of(m.BestPrices(**head, best_bid_units=1, best_ask_units=None)) == []
    assert rows_of(m.TickSize(**head, old_tick="0.01", new_tick="0.001")) == []
    assert rows_of(m.Status(**head, old="ok", new="stale", reason="quiet")) == []
    assert rows_of(m.Resolved(**head, asset_ids=("1", "2"), winning_asset_id="1", winning_outcome="Yes")) == []
    [(table, row)] = rows_of(m.Trade(**{**head, "condition": "_"}, side="SELL", price_units=10_000, size_units=5))
    assert table == "trades" and row["market"] == "" and str(row["price"]) == "0.01" and str(row["size"]) == "0.000005"

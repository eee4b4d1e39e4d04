"""Market websocket faults against a running Service (real sockets, real SQLite).

For each: the service keeps ingesting, the right alert fires once (and clears), every frame the
pipeline received is in the database (rows counted from the raw frames), counters say what happened.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from decimal import Decimal

import pytest

from core.events import Alert
from core.types import BookStatus
from tests.faults.fault_harness import (
    TRADER,
    WAIT_S,
    FaultRecord,
    Rig,
    count_rows,
    expected_feed_rows,
    running_service,
    wait_for,
)

FEED_TABLES = ("book_snapshots", "book_deltas", "trades")


async def _finish(rig: Rig, rec: FaultRecord) -> None:
    """Stop the service (the writer flushes), then compare rows stored with rows received."""
    assets = rig.assets
    feed_stats = rig.service.feed.stats()
    processor = rig.service.processor
    await asyncio.wait_for(rig.service.stop(), WAIT_S)
    want = expected_feed_rows(rig.frames, assets)
    got = await count_rows(rig.db_url, FEED_TABLES)
    rec.rows_expected = sum(want.values())
    rec.rows_stored = sum(got.values())
    rec.counters.update(
        {
            "frames_sent_by_double": rig.ws.sent_market_frames,
            "frames_received": len(rig.frames),
            "reconnects": feed_stats.reconnects,
            "dead": feed_stats.dead,
            "dropped": dict(feed_stats.dropped),
            "input_rejected": processor.counters.as_dict(),
            "integrity_faults": processor.faults.as_dict(),
        }
    )
    assert got == want, f"rows stored {got} != rows received {want}"


async def test_ws_dies_mid_stream(sqlite_url: str, monkeypatch: pytest.MonkeyPatch, fault_record: FaultRecord) -> None:
    fault_record.scenario = "market ws dies mid-stream (no close frame)"
    async with running_service(sqlite_url, monkeypatch) as rig:
        await rig.wait_books_ok()
        await rig.frames_advance(50)
        assert rig.ws.drop_connections() == 1
        await wait_for(lambda: rig.cleared("feed_dead"), WAIT_S, "the feed to reconnect")
        await rig.wait_books_ok()
        await rig.frames_advance(50)
        await rig.service.bus.drain()
        fault_record.alerts = rig.alert_summary("feed_dead")
        assert len(rig.alerts("feed_dead")) == 1
        assert len(rig.cleared("feed_dead")) == 1
        assert len(rig.tg_alerts("feed_dead")) == 1
        assert len(rig.tg_recovered("feed_dead")) == 1
        stats = rig.service.feed.stats()
        assert stats.reconnects == 1 and stats.dead == 1
        assert rig.service.pipeline.stats.reconnect_resets >= 1
        assert (await rig.service.control.health()).ok
        await _finish(rig, fault_record)
    assert fault_record.counters["frames_received"] <= fault_record.counters["frames_sent_by_double"]


async def test_ws_stalls_without_closing(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, fault_record: FaultRecord
) -> None:
    fault_record.scenario = "market ws stalls (socket open, no frames, no PONG)"
    async with running_service(sqlite_url, monkeypatch) as rig:
        await rig.wait_books_ok()
        await rig.frames_advance(50)

        # dead_after_s is 4 s: the heartbeat must abort the silent socket and reconnect. The double
        # stays silent until the service says so (however long that takes on a loaded machine),
        # and speaks again the moment it does, so the reconnect finds it alive.
        def resume_when_declared_dead(alert: Alert) -> None:
            if alert.kind == "feed_dead":
                rig.ws.resume()

        unsubscribe = rig.service.bus.subscribe(Alert, resume_when_declared_dead)
        rig.ws.stall(600)
        await wait_for(lambda: rig.alerts("feed_dead"), WAIT_S, "the stalled socket to be declared dead")
        unsubscribe()
        assert "no frame or PONG" in rig.alerts("feed_dead")[0].message
        await wait_for(lambda: rig.cleared("feed_dead"), WAIT_S, "the feed to reconnect after the stall")
        await rig.wait_books_ok()
        await rig.frames_advance(50)
        await rig.service.bus.drain()
        fault_record.alerts = rig.alert_summary("feed_dead")
        assert len(rig.alerts("feed_dead")) == 1
        assert len(rig.cleared("feed_dead")) == 1
        assert len(rig.tg_alerts("feed_dead")) == 1
        assert len(rig.tg_recovered("feed_dead")) == 1
        assert rig.service.feed.stats().dead == 1
        await _finish(rig, fault_record)


async def test_ws_sends_garbage(sqlite_url: str, monkeypatch: pytest.MonkeyPatch, fault_record: FaultRecord) -> None:
    fault_record.scenario = "market ws sends garbage frames"
    async with running_service(sqlite_url, monkeypatch) as rig:
        await rig.wait_books_ok()
        rig.ws.send_garbage()
        rig.ws.send_raw('{"event_type": "price_change", "price_changes": "not a list"}')
        rig.ws.send_raw(b"\xff\xfe binary, not utf-8")
        counters = rig.service.processor.counters
        await wait_for(lambda: counters.total >= 2, WAIT_S, "the bad frames to be counted")
        await rig.frames_advance(50)
        fault_record.alerts = "none (bad input is counted and logged, not alerted)"
        assert rig.service.feed.stats().dead == 0, "garbage must not cost the connection"
        assert rig.service.feed.stats().dropped.get("binary_not_utf8") == 1
        assert rig.books_ok()
        assert not rig.alerts("feed_dead")
        await _finish(rig, fault_record)


async def test_ws_frame_over_size_cap(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, fault_record: FaultRecord
) -> None:
    fault_record.scenario = "market ws frame over the size cap (soft cap, then past the hard limit)"
    async with running_service(sqlite_url, monkeypatch) as rig:
        await rig.wait_books_ok()
        cap = rig.service.settings.feed.max_frame_bytes
        # over the cap but under the library's hard limit (2x): skipped, socket kept
        rig.ws.send_raw(json.dumps({"event_type": "book", "pad": "x" * (cap + 100)}))
        await wait_for(lambda: rig.service.feed.stats().dropped.get("oversized") == 1, WAIT_S, "the oversized frame")
        await rig.frames_advance(30)
        assert rig.service.feed.stats().dead == 0
        # past the hard limit: the library closes the socket (1009); the feed reconnects
        rig.ws.send_raw("y" * (2 * cap + 100))
        await wait_for(lambda: rig.cleared("feed_dead"), WAIT_S, "the reconnect after the 1009 close")
        await rig.wait_books_ok()
        await rig.frames_advance(30)
        await rig.service.bus.drain()
        fault_record.alerts = rig.alert_summary("feed_dead")
        stats = rig.service.feed.stats()
        assert stats.dropped.get("oversized_disconnect") == 1
        assert len(rig.alerts("feed_dead")) == 1 and len(rig.cleared("feed_dead")) == 1
        await _finish(rig, fault_record)


async def test_ws_reconnects_after_the_market_moved(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, fault_record: FaultRecord
) -> None:
    fault_record.scenario = "market ws reconnects with a different book (market moved while away)"
    async with running_service(sqlite_url, monkeypatch, ws_proxy=True) as rig:
        await rig.wait_books_ok()
        before = {a: (b.bids(), b.asks()) for a, b in rig.service.processor.books.items()}
        proxy = rig.proxies["ws"]
        proxy.block(600)  # away, while the double keeps streaming to nobody, until the test lets it back
        streamed = rig.ws.frames_streamed
        assert proxy.cut() == 1
        await wait_for(lambda: proxy.refused >= 1, WAIT_S, "a reconnect attempt to be refused")
        await wait_for(lambda: rig.ws.frames_streamed >= streamed + 100, WAIT_S, "the market to move while away")
        proxy.block(0)
        await wait_for(lambda: rig.cleared("feed_dead"), WAIT_S, "the reconnect")
        await rig.wait_books_ok()
        # the snapshot after the reconnect is the book now, not the one we had
        after = {a: (b.bids(), b.asks()) for a, b in rig.service.processor.books.items()}
        assert any(after[a] != before[a] for a in before), "the market did not move while away"
        await rig.frames_advance(100)
        await rig.service.bus.drain()
        assert proxy.refused >= 1
        # every failed reconnect attempt re-publishes feed_dead on the bus; the user hears once
        fault_record.counters["feed_dead_published"] = len(rig.alerts("feed_dead"))
        fault_record.alerts = (
            f"feed_dead: Telegram x{len(rig.tg_alerts('feed_dead'))} (bus x{len(rig.alerts('feed_dead'))}, one per "
            f"failed reconnect) / recovered x{len(rig.tg_recovered('feed_dead'))}"
        )
        assert len(rig.tg_alerts("feed_dead")) == 1 and len(rig.tg_recovered("feed_dead")) == 1
        assert len(rig.cleared("feed_dead")) == 1
        assert not rig.alerts("book_inconsistent"), "a fresh snapshot must replace the book, not merge into it"
        assert rig.service.processor.faults.total == 0
        await _finish(rig, fault_record)


def _bids_since_last_snapshot(
    frames: list[str], asset: str
) -> tuple[dict[Decimal, Decimal], list[tuple[Decimal, Decimal]]]:
    """The bids of the last ``book`` event for ``asset`` in the received frames, and the BUY-side
    (price, size) changes to it received since, in order."""
    snapshot: dict[Decimal, Decimal] | None = None
    deltas: list[tuple[Decimal, Decimal]] = []
    for text in frames:
        try:
            data = json.loads(text)
        except ValueError:
            continue
        for ev in data if isinstance(data, list) else [data]:
            if not isinstance(ev, dict):
                continue
            if ev.get("event_type") == "book" and ev.get("asset_id") == asset:
                snapshot = {Decimal(lv["price"]): Decimal(lv["size"]) for lv in ev.get("bids") or ()}
                deltas = []
            elif ev.get("event_type") == "price_change":
                for c in ev.get("price_changes") or ():
                    if c.get("asset_id") == asset and c.get("side") == "BUY":
                        deltas.append((Decimal(c["price"]), Decimal(c["size"])))
    assert snapshot is not None, f"no book for {asset} received"
    return snapshot, deltas


def _apply_bid_deltas(
    snapshot: dict[Decimal, Decimal], deltas: list[tuple[Decimal, Decimal]]
) -> dict[Decimal, Decimal]:
    book = {p: s for p, s in snapshot.items() if s != 0}
    for price, size in deltas:
        if size == 0:
            book.pop(price, None)
        else:
            book[price] = size
    return book


async def test_ws_reconnects_with_a_different_book(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, fault_record: FaultRecord
) -> None:
    fault_record.scenario = "market ws reconnects with a different book (levels added/removed)"
    async with running_service(sqlite_url, monkeypatch, rate_hz=20.0) as rig:
        await rig.wait_books_ok()
        asset = rig.ws.asset_ids[0]
        server_book = rig.ws.book(asset)
        bids = sorted(server_book.bids.items())  # ascending: the deepest bid first
        removed = bids[0][0]
        extra = Decimal("0.01") if Decimal("0.01") not in server_book.bids else Decimal("0.02")
        new_bids = [(p, s) for p, (_, s) in bids[1:]] + [(str(extra), "123")]
        new_asks = [(p, s) for p, (_, s) in server_book.asks.items()]
        rig.ws.set_book(asset, new_bids, new_asks)
        rig.ws.drop_connections()
        await wait_for(lambda: rig.cleared("feed_dead"), WAIT_S, "the reconnect")
        await rig.wait_books_ok()
        # read together (no await between): the book, and the frames it was built from
        local = dict(rig.service.processor.books[asset].bids())
        snapshot, deltas = _bids_since_last_snapshot(rig.frames, asset)
        assert removed not in snapshot and snapshot.get(extra) == Decimal(123), "the double sent another book"
        # the snapshot replaced the book (levels removed, levels added); the deltas since then applied
        assert local == _apply_bid_deltas(snapshot, deltas), (removed, extra)
        await rig.frames_advance(20)
        await rig.service.bus.drain()
        fault_record.alerts = rig.alert_summary("feed_dead", "book_inconsistent")
        assert rig.service.processor.books[asset].status is BookStatus.OK
        assert len(rig.alerts("feed_dead")) == 1
        assert not rig.alerts("book_inconsistent")
        assert TRADER in rig.service.bot.notifier.chats
        await _finish(rig, fault_record)


async def test_a_feed_that_keeps_disagreeing_is_reseeded_at_a_bounded_rate(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, fault_record: FaultRecord
) -> None:
    """One lost delta, then a venue whose GET /book (the CLOB double keeps its own books) never
    matches the stream: every burst is a new mismatch. Re-seeds stay at one per asset per
    RESEED_COOLDOWN_S instead of one per fault (that storm starved the loop and hung the demo)."""
    from core.app.reseed import RESEED_COOLDOWN_S
    from core.feed.frames import change, price_change_frame

    fault_record.scenario = "feed keeps disagreeing with its books: re-seeds rate-bounded"
    async with running_service(sqlite_url, monkeypatch, feed="demo", rate_hz=250.0, live=True) as rig:
        await rig.wait_books_ok()
        asset = sorted(rig.assets)[0]

        def gets() -> list[object]:
            return [r for r in rig.clob.requests_to("GET", "/book") if r.query.get("token_id") == [asset]]

        bad = price_change_frame([change(asset, "BUY", "0.01", "1", "0.02", "0.99")], ts_ms=1)
        assert rig.ws.send_raw(bad) == 1
        # three re-seeds take two cooldowns; without the bound they would come one per burst, and
        # with a fault inside the cooldown dropped instead of deferred there would be only one
        await wait_for(lambda: len(gets()) >= 3, WAIT_S + 2 * RESEED_COOLDOWN_S, "three re-seeds")
        faults = rig.service.processor.faults["mismatch"]
        at = [r.at for r in gets()]
        gaps = [round(b - a, 3) for a, b in itertools.pairwise(at)]
        # seen at the double, a gap can shrink by how late the earlier request arrived (a loaded
        # machine): half the cooldown still tells "one per cooldown" from "one per fault" (ms apart)
        assert all(g >= RESEED_COOLDOWN_S / 2 for g in gaps), f"re-seeds {gaps}s apart"
        # each re-seed answered a new mismatch, found inside the cooldown of the one before (the next
        # burst disagrees at once): a fault there is deferred to the cooldown's end, not dropped
        assert faults >= len(at), f"{faults} mismatches for {len(at)} re-seeds"
        fault_record.counters["get_book"] = len(at)
        fault_record.counters["get_book_gaps_s"] = gaps
        fault_record.counters["mismatch_faults"] = faults
        await rig.frames_advance(20)
        await _finish(rig, fault_record)

"""The feed's C kernel (core/feed/_kernel.c) against the pure-Python path, which is the reference.

Every stream goes through two processors, one with the kernel and one without; their events,
books (every level, status, burst state), rejection counters and faults must be identical.
Streams: the synthetic market (bursts, crossed-mid-burst trades, Dutch-book dislocations), the
real captures, hand-made edge cases and hypothesis-generated streams full of bad input.

CI sets POLYBOT_REQUIRE_KERNEL=1: there a kernel that did not build is a failure, not a skip.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import sys
import sysconfig
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.feed import kernel
from core.feed.book import Book
from core.feed.processor import FeedProcessor
from core.feed.synth import FrameGenerator, book_frame, change, price_change_frame
from tests.conftest import REPO_ROOT

APPLY_MSG, STATUS = kernel.load()
needs_kernel = pytest.mark.skipif(
    APPLY_MSG is None and os.environ.get("POLYBOT_REQUIRE_KERNEL") != "1", reason=f"feed kernel: {STATUS}"
)

A, B, C = "1111", "2222", "3333"  # C is never subscribed
MS = 1_000_000


def test_the_kernel_is_built_where_it_is_required() -> None:
    if os.environ.get("POLYBOT_REQUIRE_KERNEL") != "1":
        pytest.skip("POLYBOT_REQUIRE_KERNEL is not set (CI sets it)")
    assert APPLY_MSG is not None, STATUS
    assert FeedProcessor().kernel_status == STATUS == "C kernel (core/feed/_kernel.c)"


def _book_state(book: Book) -> tuple[Any, ...]:
    return (
        book._bid_px,
        book._bid_sz,
        book._ask_px,
        book._ask_sz,
        book.raw_status,
        book.seeded,
        book.epoch,
        book.faults,
        book._pend_ts,
        book._pend,
        book._moved,
        book._ok_bid,
        book._ok_ask,
        book.last_update_ns,
        book.tick_size,
    )


def _run(frames: Iterable[tuple[str, int]], *, use_kernel: bool, **kw: Any) -> dict[str, Any]:
    processor = FeedProcessor(use_kernel=use_kernel, **kw)
    events: list[Any] = []
    last = 0
    for frame, recv_ns in frames:
        events += processor.process(frame, recv_ns)
        last = recv_ns
    events += processor.finish(last + 1)
    return {
        "events": events,
        "books": {a: _book_state(b) for a, b in sorted(processor.books.items())},
        "rejected": processor.counters.as_dict(),
        "faults": processor.faults.as_dict(),
        "frames": processor.frames,
    }


def _same_with_and_without_kernel(frames: Sequence[tuple[str, int]], **kw: Any) -> dict[str, Any]:
    with_kernel = _run(frames, use_kernel=True, **kw)
    reference = _run(frames, use_kernel=False, **kw)
    assert with_kernel["books"] == reference["books"]
    assert with_kernel["rejected"] == reference["rejected"]
    assert with_kernel["faults"] == reference["faults"]
    assert with_kernel["events"] == reference["events"]
    assert with_kernel["frames"] == reference["frames"]
    return reference


@needs_kernel
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_synthetic_market_streams_match_the_reference(seed: int) -> None:
    assets = [str(10**76 + i * 7919) for i in range(8)]
    gen = FrameGenerator(assets, seed, levels=6, trade_prob=0.3, dislocation_prob=0.05)
    frames = [(f, 1) for f in gen.snapshot_frames(ts_ms=1)]
    frames += [(f, (i + 2) * MS) for i, f in enumerate(gen.frames(4_000, 2, 1))]
    result = _same_with_and_without_kernel(frames, known_assets=set(gen.asset_ids))
    assert result["faults"] == {} and result["rejected"] == {}  # a clean stream: the fast path ran
    assert sum(len(b[0]) + len(b[2]) for b in result["books"].values()) > 0


@needs_kernel
def test_a_faulty_stream_matches_the_reference() -> None:
    # a lost delta makes the carried best prices disagree; tick change mid-stream; a book
    # snapshot recovers it; an unsubscribed asset, bad numbers and a legacy frame in between
    frames = [
        book_frame(A, [("0.47", "10"), ("0.45", "50")], [("0.52", "15"), ("0.55", "20")], ts_ms=1),
        book_frame(B, [("0.40", "10")], [("0.60", "10")], ts_ms=1),
        price_change_frame([change(A, "BUY", "0.48", "5", "0.48", "0.52"), change(B, "SELL", "0.59", "3", "0.4", "0.59")], ts_ms=2),
        price_change_frame([change(A, "BUY", "0.49", "5", "0.48", "0.52")], ts_ms=3),  # mismatch: says 0.48
        price_change_frame([change(A, "SELL", "0.52", "0", "0.49", "0.55")], ts_ms=4),
        price_change_frame([change(C, "BUY", "0.30", "1", "0.3", "0.7"), change(B, "BUY", "0.41", "1e3", "0.41", "0.59")], ts_ms=5),
        price_change_frame([change(B, "BUY", "0.405", "1", "0.41", "0.59"), change(B, "SELL", "0.58", "-2", "0.41", "0.59")], ts_ms=6),
        price_change_frame([change(B, "SELL", "0.58", "12.", "0.41", "0.58"), change(B, "SELL", "0.57", ".5", "0.41", "0.57")], ts_ms=7),
        price_change_frame([change(B, "BUY", "0.42", "1.1234567", "0.42", "0.57"), change(B, "BUY", "0.42", "٣", "0.42", "0.57")], ts_ms=8),
        price_change_frame([change(B, "BUY", "0.43", "1234567890123.5", "0.43", "0.57")], ts_ms=9),
        json.dumps({"event_type": "price_change", "asset_id": B, "market": "m", "timestamp": "10",
                    "changes": [{"price": "0.44", "side": "BUY", "size": "2"}]}),
        price_change_frame([change(B, "BUY", "0.45", "2", "0.45", "0.57")], ts_ms=11),
        json.dumps({"event_type": "tick_size_change", "asset_id": B, "market": "m", "old_tick_size": "0.01",
                    "new_tick_size": "0.001", "timestamp": "12"}),
        price_change_frame([change(B, "BUY", "0.451", "2", "0.451", "0.57")], ts_ms=13),  # before the new book
        book_frame(B, [("0.451", "10")], [("0.570", "10")], ts_ms=14, tick_size="0.001"),
        price_change_frame([change(B, "BUY", "0.452", "2", "0.452", "0.57")], ts_ms=15),
        book_frame(A, [("0.47", "10")], [("0.52", "15")], ts_ms=16),
        price_change_frame([change(A, "BUY", "0.50", "1", "0.5", "0.52"), change(A, "SELL", "0.49", "1", "0.5", "0.49")], ts_ms=17),
        price_change_frame([change(A, "SELL", "0.49", "0", "0.50", "0.52")], ts_ms=17),  # crossed mid-burst only
        price_change_frame([change(A, "BUY", "0.5", "0", "", "0.52"), change(A, "BUY", "0.47", "0", "0", "0.52")], ts_ms=18),
        price_change_frame([change(A, "SELL", "0.52", "0", "0", "1")], ts_ms=19),
        price_change_frame([change(A, "SELL", "0.60", "4")], ts_ms=20),  # no carried prices
        price_change_frame([change(A, "SELL", "0.61", "4", "0", "0.60")], ts_ms=21),
        "PONG",
        "{not json",
    ]  # fmt: skip
    result = _same_with_and_without_kernel([(f, (i + 1) * MS) for i, f in enumerate(frames)], known_assets={A, B})
    assert result["faults"] and result["rejected"]  # the slow paths really ran


@needs_kernel
def test_real_captures_match_the_reference(shared_fixtures: Path) -> None:
    files = sorted((shared_fixtures / "ws_market").glob("*.json"))
    frames = [(p.read_text(), (i + 1) * MS) for i, p in enumerate(files)]
    # the current-format capture after a seed of its own assets, so its entries reach the books
    current = json.loads((shared_fixtures / "ws_market" / "price_change_current_format.json").read_text())
    entries = current["price_changes"] if isinstance(current, dict) else current[0]["price_changes"]
    for entry in entries:
        frames.insert(0, (book_frame(entry["asset_id"], [("0.01", "1")], [("0.99", "1")]), 1))
    _same_with_and_without_kernel(frames)


_PRICES = ["0.3", "0.30", "0.31", "0.35", "0.4", "0.45", "0.5", "0.500", "0.55", "0.6", "0.65", "0.7", "0.305"]
_BAD_PRICES = ["1.5", "0", "-0.1", "abc", "0.3000001", ""]
_SIZES = ["0", "0", "10", "12.5", "100.123456", "3", "0.000001", "250"]
_BAD_SIZES = ["1e3", "12.", ".5", "-1", "1.1234567", "٣", "99999999999999", " 5", "5_0", "NaN"]
_CARRIED = ["", "0", "1", "0.3", "0.35", "0.4", "0.45", "0.5", "0.55", "0.6", "0.65", "0.7", "0.50"]


@st.composite
def _entries(draw: st.DrawFn) -> dict[str, str]:
    price = (
        draw(st.sampled_from(_PRICES) | st.sampled_from(_BAD_PRICES))
        if draw(st.integers(0, 9)) == 0
        else draw(st.sampled_from(_PRICES))
    )
    size = draw(st.sampled_from(_BAD_SIZES)) if draw(st.integers(0, 9)) == 0 else draw(st.sampled_from(_SIZES))
    carried = draw(st.integers(0, 9))
    bid = None if carried == 0 else draw(st.sampled_from(_CARRIED))
    ask = None if carried == 0 else draw(st.sampled_from(_CARRIED))
    return change(draw(st.sampled_from([A, A, B, C])), draw(st.sampled_from(["BUY", "SELL"])), price, size, bid, ask)


@st.composite
def _streams(draw: st.DrawFn) -> list[tuple[str, int]]:
    frames = [
        (book_frame(A, [("0.45", "10"), ("0.4", "5")], [("0.55", "10"), ("0.6", "5")], ts_ms=1), 1),
        (book_frame(B, [("0.3", "1")], [("0.7", "1")], ts_ms=1), 1),
    ]
    ts = 2
    for i in range(draw(st.integers(1, 60))):
        ts += draw(st.sampled_from([0, 0, 1, 1, 2]))
        kind = draw(st.integers(0, 30))
        if kind == 0:
            frame = book_frame(draw(st.sampled_from([A, B])), [("0.45", "10")], [("0.55", "10")], ts_ms=ts)
        elif kind == 1:
            frame = json.dumps(
                {"event_type": "price_change", "asset_id": A, "market": "m", "timestamp": str(ts),
                 "changes": [{"price": draw(st.sampled_from(_PRICES)), "side": "SELL", "size": "1"}]}
            )  # fmt: skip
        else:
            frame = price_change_frame(draw(st.lists(_entries(), min_size=1, max_size=4)), ts_ms=ts)
        frames.append((frame, (i + 2) * 7 * MS))  # 7 ms apart: some bursts also close by quietness
    return frames


@needs_kernel
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_streams())
def test_random_streams_with_bad_input_match_the_reference(frames: list[tuple[str, int]]) -> None:
    _same_with_and_without_kernel(frames, known_assets={A, B})


# ---------------------------------------------------------------------- loading and building


def test_kernel_can_be_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(kernel.ENV_SWITCH, "0")
    apply_msg, status = kernel._load()
    assert apply_msg is None and status == "pure Python (POLYBOT_FEED_KERNEL=0)"
    assert FeedProcessor(use_kernel=False).kernel_status == "pure Python (use_kernel=False)"


@needs_kernel
def test_a_kernel_built_from_other_source_is_not_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    edited = tmp_path / "_kernel.c"
    edited.write_text(kernel.SOURCE.read_text() + "\n/* edited after the build */\n")
    monkeypatch.setattr(kernel, "SOURCE", edited)
    apply_msg, status = kernel._load()
    assert apply_msg is None
    assert "older _kernel.c" in status and kernel.REBUILD_HINT in status


@needs_kernel
def test_the_kernel_refuses_types_it_cannot_read() -> None:
    from core.feed import _kernel  # type: ignore[attr-defined]

    class NoSlots:
        pass

    # a Book whose fields became plain class attributes, and a type without them at all
    plain = type("PlainBook", (), {name: None for name in Book.__slots__})
    with pytest.raises(TypeError, match="not a writable object slot"):
        _kernel.configure(plain, NoSlots, NoSlots, NoSlots, "BUY", 1_000_000)
    with pytest.raises(AttributeError):
        _kernel.configure(NoSlots, NoSlots, NoSlots, NoSlots, "BUY", 1_000_000)
    # refused as a whole: the configuration in use is untouched
    test_synthetic_market_streams_match_the_reference(4)


def test_use_kernel_true_without_a_kernel_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kernel, "_loaded", (None, "pure Python (C kernel not built: test)"))
    with pytest.raises(RuntimeError, match="C kernel is not available: pure Python"):
        FeedProcessor(use_kernel=True)


def test_the_build_hook_compiles_the_kernel_from_this_source(tmp_path: Path) -> None:
    if shutil.which(os.environ.get("CC") or (sysconfig.get_config_var("CC") or "cc").split()[0]) is None:
        pytest.skip("no C compiler on this machine: the build hook would skip the kernel too")
    sys.path.insert(0, str(REPO_ROOT))
    try:
        import hatch_build
    finally:
        sys.path.remove(str(REPO_ROOT))
    (tmp_path / "core" / "feed").mkdir(parents=True)
    shutil.copy(kernel.SOURCE, tmp_path / "core" / "feed" / "_kernel.c")
    target = hatch_build.compile_kernel(tmp_path)
    spec = importlib.util.spec_from_file_location("_kernel", target)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.SOURCE_SHA256 == hashlib.sha256(kernel.SOURCE.read_bytes()).hexdigest()
    assert not list(target.parent.glob("*.tmp"))

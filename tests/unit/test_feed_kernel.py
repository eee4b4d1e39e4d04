"""The feed's compiled hot path (book.py and integrity.py built by mypyc) against the same files
run as plain Python.

They are one source, but mypyc enforces the type hints at run time and compiles arithmetic and
containers natively, so every stream goes through two processors in one process: the modules in
use (compiled when built) and a twin loaded from source (``kernel.source_twin``). Their events,
books (every level, status, burst state), rejection counters and faults must be identical.
Streams: the synthetic market (bursts, crossed-mid-burst trades, Dutch-book dislocations), the
real captures, hand-made edge cases and hypothesis-generated streams full of bad input. The
other feed test files also run once more on the pure-Python path (a subprocess with
POLYBOT_FEED_KERNEL=0).

CI sets POLYBOT_REQUIRE_KERNEL=1: there a hot path that did not compile is a failure, not a skip.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import core.feed.book
from core.feed import kernel
from core.feed.book import Book
from core.feed.frames import book_frame, change, price_change_frame
from core.feed.processor import FeedProcessor
from core.feed.synth import FrameGenerator
from tests.conftest import REPO_ROOT, hatch_build_module

COMPILED = kernel.is_compiled(core.feed.book)
STATUS = kernel.status()
needs_kernel = pytest.mark.skipif(
    not COMPILED and os.environ.get("POLYBOT_REQUIRE_KERNEL") != "1", reason=f"feed hot path: {STATUS}"
)
SOURCE: ModuleType = kernel.source_twin()  # core.feed.processor with book.py and integrity.py from source

A, B, C = "1111", "2222", "3333"  # C is never subscribed
MS = 1_000_000


def test_the_kernel_is_built_where_it_is_required() -> None:
    if os.environ.get("POLYBOT_REQUIRE_KERNEL") != "1":
        pytest.skip("POLYBOT_REQUIRE_KERNEL is not set (CI sets it)")
    assert COMPILED, STATUS
    assert FeedProcessor().kernel_status == STATUS == kernel.COMPILED_STATUS


def test_the_source_twin_is_the_source() -> None:
    pure = SOURCE.FeedProcessor(known_assets={A})
    assert not kernel.is_compiled(sys.modules[type(pure.books[A]).__module__]) or COMPILED
    assert type(pure.books[A]).__module__ == "core.feed.book"
    assert SOURCE is not sys.modules["core.feed.processor"]
    assert sys.modules["core.feed.book"] is core.feed.book  # the modules in use are untouched
    assert type(FeedProcessor(known_assets={A}).books[A]) is Book
    if COMPILED:
        assert type(pure.books[A]) is not Book


def _book_state(book: Book) -> tuple[Any, ...]:
    # the best prices the book keeps apart are those of its levels
    assert book.best_bid_units() == (book._bid_px[-1] if book._bid_px else None)
    assert book.best_ask_units() == (book._ask_px[-1] if book._ask_px else None)
    assert len(book._bid_px) == len(book._bid_sz) and len(book._ask_px) == len(book._ask_sz)
    # each side's prices strictly ordered with the best last (bids ascending, asks descending)
    assert book._bid_px == sorted(set(book._bid_px)) and book._ask_px == sorted(set(book._ask_px), reverse=True)
    return (
        book._bid_px,
        list(book._bid_sz),
        book._ask_px,
        list(book._ask_sz),
        book.raw_status,
        book.seeded,
        book.epoch,
        book.faults,
        book.burst_open,
        book._pend_ts if book.burst_open else None,
        book._want if book.burst_open else None,  # both carried best prices
        book._odd_bid,
        book._odd_ask,
        book.last_update_ns,
        book.tick_size,
    )


def _run(frames: Iterable[tuple[str, int]], *, compiled: bool, **kw: Any) -> dict[str, Any]:
    processor = FeedProcessor(**kw) if compiled else SOURCE.FeedProcessor(**kw)
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
    with_kernel = _run(frames, compiled=True, **kw)
    reference = _run(frames, compiled=False, **kw)
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

FEED_TESTS = [
    "tests/unit/test_book_numbers.py",
    "tests/unit/test_book_ops.py",
    "tests/unit/test_book_properties.py",
    "tests/unit/test_feed_decoders.py",
    "tests/unit/test_integrity_rules.py",
    "tests/unit/test_processor_bad_input.py",
    "tests/unit/test_wire_captures.py",
    "tests/unit/test_replay_synth.py",
]


@needs_kernel
@pytest.mark.slow
def test_the_feed_tests_pass_on_the_pure_python_path_too() -> None:
    env = {**os.environ, kernel.ENV_SWITCH: "0"}
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-o",
        "addopts=",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "tests.fewer_examples",
    ]
    cmd += FEED_TESTS
    done = subprocess.run(
        cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600, start_new_session=True
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and " failed" not in done.stdout


def _feed_copy(tmp_path: Path, *, built: bool) -> Path:
    folder = tmp_path / "feed"
    folder.mkdir()
    for name in {*kernel.COMPILED, "wire", "counters", "events"}:
        shutil.copy(kernel.HERE / f"{name}.py", folder / f"{name}.py")
    if built:
        for name in kernel.COMPILED:
            (folder / f"{name}.cpython-311-x86_64-linux-gnu.so").write_bytes(b"")
    return folder


def _manifest(folder: Path, names: Iterable[str]) -> None:
    (folder / kernel.MANIFEST).write_text(json.dumps({n: kernel.source_digest(n, folder) for n in names}))


def test_the_compiled_modules_are_used_only_while_their_sources_are_current(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(kernel.ENV_SWITCH, raising=False)
    folder = _feed_copy(tmp_path, built=True)
    assert kernel._decide(folder)[0] is False  # no record of what was compiled
    _manifest(folder, [*kernel.COMPILED, "wire"])
    assert kernel._decide(folder) == (True, kernel.COMPILED_STATUS)
    # an edit after the build, to a compiled module or to one it imports
    for name in ("book", "wire"):
        original = (folder / f"{name}.py").read_text()
        (folder / f"{name}.py").write_text(original + "\n# edited after the build\n")
        use, status = kernel._decide(folder)
        assert use is False and "other sources" in status and kernel.REBUILD_HINT in status
        (folder / f"{name}.py").write_text(original)
    assert kernel._decide(folder)[0] is True
    _manifest(folder, ["book"])  # a record that misses a compiled module
    assert kernel._decide(folder)[0] is False
    (folder / kernel.MANIFEST).write_text("not json")
    assert kernel._decide(folder)[0] is False


def test_without_a_build_the_feed_runs_its_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(kernel.ENV_SWITCH, raising=False)
    folder = _feed_copy(tmp_path, built=False)
    _manifest(folder, kernel.COMPILED)
    use, status = kernel._decide(folder)
    assert use is False and "not built" in status and kernel.REBUILD_HINT in status


def test_kernel_can_be_switched_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _feed_copy(tmp_path, built=True)
    _manifest(folder, kernel.COMPILED)
    monkeypatch.setenv(kernel.ENV_SWITCH, "0")
    assert kernel._decide(folder) == (False, "pure Python (POLYBOT_FEED_KERNEL=0)")
    done = subprocess.run(
        [sys.executable, "-c", "import core.feed.book as b; from core.feed import kernel; print(b.__file__, kernel.status())"],
        cwd=REPO_ROOT, env={**os.environ, kernel.ENV_SWITCH: "0"}, capture_output=True, text=True, timeout=120,
        start_new_session=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0].endswith("core/feed/book.py")
    assert "pure Python (POLYBOT_FEED_KERNEL=0)" in done.stdout


def test_the_build_compiles_what_the_loader_expects() -> None:
    hatch_build = hatch_build_module()
    assert hatch_build.COMPILED == kernel.COMPILED
    assert hatch_build.MANIFEST.name == kernel.MANIFEST
    # uv rebuilds when any file the build vouches for changes
    keys = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["uv"]["cache-keys"]
    files = {key["file"] for key in keys}
    assert {f"core/feed/{name}.py" for name in hatch_build.DIGESTED} <= files


def test_a_failed_build_leaves_no_compiled_module_behind(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    hatch_build = hatch_build_module()
    feed = tmp_path / "core" / "feed"
    feed.mkdir(parents=True)
    for name in hatch_build.DIGESTED:
        shutil.copy(kernel.HERE / f"{name}.py", feed / f"{name}.py")
    shutil.copy(REPO_ROOT / "core" / "types.py", tmp_path / "core" / "types.py")
    (tmp_path / "core" / "__init__.py").write_text("")
    (feed / "__init__.py").write_text("")
    # leftovers of an earlier build, and a source mypyc refuses (a type error)
    (feed / "book.cpython-311-x86_64-linux-gnu.so").write_bytes(b"old")
    (feed / "_kernel_build.json").write_text("{}")
    (feed / "integrity.py").write_text((feed / "integrity.py").read_text() + "\n\nWRONG: int = 'text'\n")
    has_setuptools = importlib.util.find_spec("setuptools") is not None  # the build env has it; a dev env may not
    with pytest.raises(SystemExit if has_setuptools else ImportError):
        hatch_build.compile_feed(tmp_path)
    assert hatch_build.artifacts(tmp_path) == []
    if has_setuptools:
        assert "integrity.py" in capfd.readouterr().out

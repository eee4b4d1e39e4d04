"""The CLI's argument types (polybot/cli/common.py) and the database URL's port rule."""

from __future__ import annotations

import argparse
import asyncio
import time
from decimal import Decimal
from pathlib import Path

import pytest

from core.errors import UsageError
from core.store.db import parse_db_url
from polybot.cli import common


@pytest.mark.parametrize("text", ["nan", "NaN", "inf", "-inf", "Infinity", "1e3", "1_0", "١", "０.５", "", "0x10", " "])
def test_numbers_follow_the_plain_decimal_rule(text: str) -> None:
    for parse in (common.timeout_s, common.rate_hz, common.count, common.tcp_port, common.price, common.order_shares):
        with pytest.raises(argparse.ArgumentTypeError, match="plain digits"):
            parse(text)


@pytest.mark.parametrize(
    ("parse", "bad", "good"),
    [
        (common.timeout_s, ["0", "-1", "86400.5", "1000000"], [("0.1", 0.1), ("86400", 86400.0)]),
        (common.delay_s, ["-0.1", "86401"], [("0", 0.0), ("2.5", 2.5)]),
        (common.duration_s, ["0", "604801"], [("604800", 604800.0)]),
        (common.rate_hz, ["-5", "1000001"], [("0", 0.0), ("50", 50.0)]),
        (common.count, ["0", "-1", "1000000001", "1.5", "10."], [("1", 1), ("1000000000", 1000000000)]),
        (common.count_or_zero, ["-1"], [("0", 0)]),
        (common.staleness_ms, ["0", "-5", "86400001"], [("1", 1), ("60000", 60000)]),
        (common.tcp_port, ["-5", "65536", "99999", "80.0"], [("0", 0), ("65535", 65535)]),
        (common.price, ["0", "1", "1.5", "-0.1"], [("0.45", Decimal("0.45")), (".5", Decimal("0.5"))]),
        (
            common.order_shares,
            ["0", "-10", "1000000000000.01", "1" + "0" * 30],
            [("10", Decimal(10)), ("1000000000000", Decimal(10**12))],
        ),
    ],
)
def test_ranges(parse: object, bad: list[str], good: list[tuple[str, object]]) -> None:
    assert callable(parse)
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError, match="must be"):
            parse(text)
    for text, value in good:
        assert parse(text) == value
        assert type(parse(text)) is type(value)


def test_error_says_the_rule_and_shows_a_long_value_cut() -> None:
    with pytest.raises(argparse.ArgumentTypeError) as err:
        common.timeout_s("-1")
    assert str(err.value) == "must be a number of seconds greater than 0 and at most 86400, got '-1'"
    with pytest.raises(argparse.ArgumentTypeError) as err:
        common.count("9" * 200)
    assert len(str(err.value)) < 160


@pytest.mark.parametrize(
    "text", ["", "   ", "mysql://u@h/db", "postgresql://u:hunter2@h:abc/db", "postgresql://u:hunter2@h:99999/db"]
)
def test_db_url_refuses_empty_and_unusable_urls_without_showing_the_password(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as err:
        common.db_url(text)
    assert "hunter2" not in str(err.value)


def test_db_url_keeps_a_good_url() -> None:
    assert common.db_url(" sqlite:///x.db ") == "sqlite:///x.db"


@pytest.mark.parametrize("port", ["abc", "99999", "0"])
def test_database_url_with_a_bad_port_is_a_usage_error(port: str) -> None:
    with pytest.raises(UsageError, match="port must be a number") as err:
        parse_db_url(f"postgresql://u:hunter2@127.0.0.1:{port}/db")
    assert "hunter2" not in str(err.value)
    assert "int()" not in str(err.value)


@pytest.mark.parametrize(
    ("parse", "bad", "good"),
    [
        (common.ws_url, ["http://x/ws", "not-a-url", "ws://", "ws://h:abc/ws", "ws://h:70000/ws"], ["ws://h:1/ws"]),
        (common.http_url, ["ftp://x", "127.0.0.1:8080", "https://"], ["https://clob.example", "http://127.0.0.1:9"]),
    ],
)
def test_urls(parse: object, bad: list[str], good: list[str]) -> None:
    assert callable(parse)
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError):
            parse(text)
    for text in good:
        assert parse(text) == text


def test_output_file(tmp_path: Path) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="is a directory"):
        common.output_file(str(tmp_path))
    with pytest.raises(argparse.ArgumentTypeError, match="output directory does not exist"):
        common.output_file(str(tmp_path / "no" / "out.jsonl"))
    assert common.output_file(str(tmp_path / "out.jsonl")) == tmp_path / "out.jsonl"


def test_input_file(tmp_path: Path) -> None:
    parse = common.input_file("recording")
    with pytest.raises(argparse.ArgumentTypeError, match="recording not found"):
        parse(str(tmp_path / "none.jsonl"))
    with pytest.raises(argparse.ArgumentTypeError, match="recording is a directory"):
        parse(str(tmp_path))
    (tmp_path / "r.jsonl").write_text("")
    assert parse(str(tmp_path / "r.jsonl")) == tmp_path / "r.jsonl"


async def test_first_frames_stops_a_run_when_nothing_came() -> None:
    watch = common.FirstFrames(["a", "b"], timeout_s=0.2)
    stop = asyncio.Event()
    warned: list[str] = []
    await asyncio.wait_for(watch.watch(stop, warned.append), 30)
    assert stop.is_set() and watch.timed_out and not warned
    assert watch.message() == "no frames for a, b after 0.2s"


async def test_first_frames_warns_about_the_silent_assets_and_lets_the_run_go_on() -> None:
    watch = common.FirstFrames(["a", "b"], timeout_s=0.2)
    watch.note(["a"])
    stop = asyncio.Event()
    warned: list[str] = []
    await asyncio.wait_for(watch.watch(stop, warned.append), 30)
    assert not stop.is_set() and not watch.timed_out
    assert len(warned) == 1 and warned[0].startswith("no frames for b after 0.2s")


async def test_first_frames_is_quiet_once_the_run_stopped() -> None:
    watch = common.FirstFrames(["a"], timeout_s=30)
    stop = asyncio.Event()
    task = asyncio.create_task(watch.watch(stop, lambda _: None))
    stop.set()
    await asyncio.wait_for(task, 30)
    assert not watch.timed_out


def test_first_frames_notes_the_assets_of_real_feed_events() -> None:
    """ingest-ws feeds the processor's events to the watchdog: snapshots name one asset, a burst of
    price changes several; an asset the feed never served stays missing."""
    from core.feed.processor import FeedProcessor
    from core.feed.synth import FrameGenerator

    gen = FrameGenerator(["11", "22"], seed=3, levels=3)
    processor = FeedProcessor(known_assets=set(gen.asset_ids))
    snapshots = common.FirstFrames(["11", "22", "33"], timeout_s=30)
    now_ns = time.time_ns()
    for frame in gen.snapshot_frames(ts_ms=now_ns // 1_000_000):
        snapshots.note_events(processor.process(frame, now_ns))
    assert snapshots.missing() == ["33"]

    changes = common.FirstFrames(["11", "22"], timeout_s=30)
    for n in range(20):
        changes.note_events(
            e for e in processor.process(gen.next_frame(now_ns // 1_000_000 + n), now_ns) if not hasattr(e, "asset_id")
        )
    assert changes.missing() == []  # the bursts alone named both assets

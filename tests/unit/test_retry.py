"""core.retry: exact delays from a seeded random source and a recording sleep (no real waiting)."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Iterator

import pytest

from core.retry import (
    EQUAL_JITTER,
    NO_JITTER,
    Backoff,
    Jitter,
    Outcome,
    Retry,
    RetryAfter,
    reconnect_forever,
    retry_after_seconds,
    retry_call,
    symmetric_jitter,
    upward_jitter,
)


class Transient(Exception):
    pass


class Permanent(Exception):
    pass


class Sleeps:
    """The injected clock: records every wait and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


class Script:
    """An attempt that raises or returns the scripted items in turn."""

    def __init__(self, *items: object) -> None:
        self.items = list(items)
        self.calls = 0

    async def __call__(self) -> object:
        self.calls += 1
        item = self.items.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item


# -- delays ------------------------------------------------------------------------------------


def test_backoff_grows_from_initial_and_holds_at_the_cap() -> None:
    b = Backoff(0.05, 1.0)
    assert [b.base(n) for n in range(7)] == [0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert b.base(5000) == 1.0  # 2.0**5000 overflows a float: the cap, not an error
    assert [Backoff.fixed(0.2).base(n) for n in (0, 1, 50)] == [0.2, 0.2, 0.2]
    with pytest.raises(ValueError):
        b.base(-1)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial_s": 2.0, "max_s": 1.0},
        {"initial_s": -1.0, "max_s": 1.0},
        {"initial_s": 0.1, "max_s": float("inf")},
        {"initial_s": float("nan"), "max_s": 1.0},
        {"initial_s": 0.1, "max_s": 1.0, "multiplier": 0.5},
    ],
)
def test_backoff_refuses_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(kwargs["initial_s"], kwargs["max_s"], kwargs.get("multiplier", 2.0))


def test_jitter_refuses_nonsense() -> None:
    for bad in ((1.2, 1.0), (-0.1, 1.0), (0.5, float("inf"))):
        with pytest.raises(ValueError):
            Jitter(*bad)
    with pytest.raises(ValueError):
        symmetric_jitter(1.0)
    with pytest.raises(ValueError):
        upward_jitter(-0.1)


def test_equal_jitter_is_the_writers_formula_draw_for_draw() -> None:
    b = Backoff(0.05, 5.0, jitter=EQUAL_JITTER)
    ours, ref = random.Random(7), random.Random(7)
    got = [b.delay(n, ours) for n in range(12)]
    want = [min(5.0, 0.05 * 2**n) * (0.5 + ref.random() / 2) for n in range(12)]
    assert got == want


def test_symmetric_jitter_stays_within_the_fraction_and_the_cap() -> None:
    b = Backoff(0.5, 30.0, jitter=symmetric_jitter(0.2))
    rng = random.Random(1)
    at3 = [b.delay(3, rng) for _ in range(300)]
    assert min(at3) >= 4.0 * 0.8 and max(at3) <= 4.0 * 1.2
    assert min(at3) < 3.4 and max(at3) > 4.6  # really spread, not constant
    assert all(b.delay(60, rng) <= 30.0 for _ in range(100))


def test_upward_jitter_may_pass_the_cap() -> None:
    b = Backoff(0.5, 8.0, jitter=upward_jitter(0.1))
    rng = random.Random(3)
    top = [b.delay(10, rng) for _ in range(200)]
    assert all(8.0 <= d <= 8.8 for d in top) and max(top) > 8.0


def test_no_jitter_draws_nothing_from_the_random_source() -> None:
    rng = random.Random(5)
    before = rng.getstate()
    assert Backoff(0.1, 1.0, jitter=NO_JITTER).delay(2, rng) == 0.4
    assert rng.getstate() == before


# -- retry_call --------------------------------------------------------------------------------


async def test_transient_errors_are_retried_with_exact_delays_until_success() -> None:
    sleeps, events = Sleeps(), list[Retry[object]]()
    attempt = Script(Transient("a"), Transient("b"), Transient("c"), "ok")
    b = Backoff(0.05, 5.0, jitter=EQUAL_JITTER)
    got = await retry_call(
        attempt,
        backoff=b,
        retry_error=lambda e: isinstance(e, Transient),
        on_retry=events.append,
        rng=random.Random(11),
        sleep=sleeps,
    )
    assert got == "ok" and attempt.calls == 4
    ref = random.Random(11)
    assert sleeps.delays == [b.delay(n, ref) for n in range(3)]
    assert [e.attempt for e in events] == [1, 2, 3]
    assert [e.delay_s for e in events] == sleeps.delays
    assert [str(e.outcome.error) for e in events] == ["a", "b", "c"]


async def test_an_error_that_retrying_cannot_fix_propagates_at_once() -> None:
    sleeps = Sleeps()
    attempt = Script(Transient("t"), Permanent("bad row"), "never")
    with pytest.raises(Permanent, match="bad row"):
        await retry_call(
            attempt, backoff=Backoff(0.1, 1.0), retry_error=lambda e: isinstance(e, Transient), sleep=sleeps
        )
    assert attempt.calls == 2 and sleeps.delays == [0.1]


async def test_bounded_retries_raise_the_last_error() -> None:
    sleeps = Sleeps()
    attempt = Script(*(Transient(f"#{i}") for i in range(10)))
    with pytest.raises(Transient, match="#3"):
        await retry_call(attempt, backoff=Backoff(0.5, 8.0), max_retries=3, retry_error=lambda e: True, sleep=sleeps)
    assert attempt.calls == 4 and sleeps.delays == [0.5, 1.0, 2.0]


async def test_zero_retries_is_one_attempt() -> None:
    sleeps = Sleeps()
    attempt = Script(Transient("only"), "never")
    with pytest.raises(Transient):
        await retry_call(attempt, backoff=Backoff(0.5, 8.0), max_retries=0, retry_error=lambda e: True, sleep=sleeps)
    assert attempt.calls == 1 and sleeps.delays == []
    with pytest.raises(ValueError):
        await retry_call(attempt, backoff=Backoff(0.5, 8.0), max_retries=-1)


async def test_unbounded_retries_go_on_until_it_works() -> None:
    sleeps = Sleeps()
    attempt = Script(*([Transient("locked")] * 40), "committed")
    got = await retry_call(attempt, backoff=Backoff(0.05, 5.0), retry_error=lambda e: True, sleep=sleeps)
    assert got == "committed" and len(sleeps.delays) == 40 and sleeps.delays[-1] == 5.0


async def test_retried_results_give_back_the_last_one_when_retries_run_out() -> None:
    sleeps = Sleeps()
    attempt = Script("retryable-1", "retryable-2", "retryable-3", "final")
    got = await retry_call(
        attempt,
        backoff=Backoff.fixed(0.2),
        max_retries=2,
        retry_result=lambda r: str(r).startswith("retryable"),
        sleep=sleeps,
    )
    assert got == "retryable-3" and attempt.calls == 3 and sleeps.delays == [0.2, 0.2]


async def test_a_final_result_ends_the_loop() -> None:
    attempt = Script("retryable", "final", "never")
    got = await retry_call(
        attempt, backoff=Backoff.fixed(0.2), max_retries=5, retry_result=lambda r: r == "retryable", sleep=Sleeps()
    )
    assert got == "final" and attempt.calls == 2


def _hint(o: Outcome[object]) -> float | None:
    return o.result if isinstance(o.result, float | int) else None


async def test_retry_after_replaces_the_backoff_clamped_to_its_cap() -> None:
    sleeps = Sleeps()
    attempt = Script(3.0, None, 100.0, -5.0, float("nan"), 0)
    got = await retry_call(
        attempt,
        backoff=Backoff(0.5, 8.0),
        retry_result=lambda r: r != 0,
        retry_after=RetryAfter(_hint, cap_s=30.0),
        sleep=sleeps,
    )
    # hint 3, no hint (backoff 1.0), hint above the cap, a negative hint, NaN (backoff 8.0)
    assert got == 0 and sleeps.delays == [3.0, 1.0, 30.0, 0.0, 8.0]


async def test_retry_after_as_a_floor_under_the_backoff() -> None:
    sleeps = Sleeps()
    attempt = Script(0.1, 3.0, None, 0)
    await retry_call(
        attempt,
        backoff=Backoff.fixed(1.0),
        retry_result=lambda r: r != 0,
        retry_after=RetryAfter(_hint, replaces_backoff=False),
        sleep=sleeps,
    )
    assert sleeps.delays == [1.0, 3.0, 1.0]


async def test_cancellation_is_never_retried() -> None:
    sleeps = Sleeps()
    attempt = Script(asyncio.CancelledError(), "never")
    with pytest.raises(asyncio.CancelledError):
        await retry_call(attempt, backoff=Backoff(0.1, 1.0), retry_error=lambda e: True, sleep=sleeps)
    assert attempt.calls == 1 and sleeps.delays == []


async def test_default_sleep_really_waits() -> None:
    attempt = Script(Transient("x"), "ok")
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    assert await retry_call(attempt, backoff=Backoff.fixed(0.05), retry_error=lambda e: True) == "ok"
    assert loop.time() - t0 >= 0.04


# -- reconnect_forever ----------------------------------------------------------------------------


class Sessions:
    """Scripted sessions: True healthy, False unhealthy, an exception raised; stop when done."""

    def __init__(self, *items: object) -> None:
        self.items = list(items)
        self.calls = 0

    def stopped(self) -> bool:
        return not self.items

    async def __call__(self) -> bool:
        self.calls += 1
        item = self.items.pop(0)
        if isinstance(item, BaseException):
            raise item
        assert isinstance(item, bool)
        return item


async def test_reconnect_grows_while_failing_and_starts_over_after_a_healthy_session() -> None:
    sleeps, events = Sleeps(), list[Retry[bool]]()
    sessions = Sessions(False, False, False, True, False, OSError("refused"), True, True, False)
    b = Backoff(0.25, 30.0, jitter=EQUAL_JITTER)
    await reconnect_forever(
        sessions, backoff=b, stopped=sessions.stopped, on_retry=events.append, rng=random.Random(2), sleep=sleeps
    )
    assert sessions.calls == 9
    ref = random.Random(2)
    # the last session's wait is drawn too (then the stop is seen), so compare the ones slept
    want = [b.delay(n, ref) for n in (0, 1, 2, 0, 1, 2, 0, 0)]
    assert sleeps.delays == want
    assert [e.attempt for e in events] == list(range(1, 9))
    assert isinstance(events[5].outcome.error, OSError)
    assert [e.outcome.result for e in events[:4]] == [False, False, False, True]


async def test_reconnect_stops_during_a_wait_without_starting_another_session() -> None:
    stop = asyncio.Event()
    calls = 0

    async def session() -> bool:
        nonlocal calls
        calls += 1
        return False

    async def sleep_unless_stopped(delay: float) -> None:
        stop.set()  # the stop arrives while waiting

    await reconnect_forever(session, backoff=Backoff.fixed(60.0), stopped=stop.is_set, sleep=sleep_unless_stopped)
    assert calls == 1


async def test_reconnect_logs_a_failing_session_when_nobody_listens(caplog: pytest.LogCaptureFixture) -> None:
    sessions = Sessions(ConnectionResetError("peer gone"), False)
    with caplog.at_level(logging.WARNING, logger="core.retry"):
        await reconnect_forever(sessions, backoff=Backoff.fixed(0.1), stopped=sessions.stopped, sleep=Sleeps())
    assert sessions.calls == 2
    assert any("peer gone" in r.getMessage() for r in caplog.records)


async def test_reconnect_ends_on_cancellation() -> None:
    sessions = Sessions(False, asyncio.CancelledError(), False, False)
    sleeps = Sleeps()
    with pytest.raises(asyncio.CancelledError):
        await reconnect_forever(sessions, backoff=Backoff.fixed(0.1), stopped=sessions.stopped, sleep=sleeps)
    assert sessions.calls == 2 and sleeps.delays == [0.1]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("3", 3.0),
        (" 0.5 ", 0.5),
        ("-2", 0.0),
        ("", None),
        ("   ", None),
        (None, None),
        ("soon", None),
        ("nan", None),
        ("inf", None),
        ("1e400", None),
        ("Wed, 32 Oct 2015 07:28:10 GMT", None),
    ],
)
def test_retry_after_seconds_delta_and_unusable_hints(header: str | None, expected: float | None) -> None:
    assert retry_after_seconds(header) == expected


@pytest.fixture
def far_from_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process's local time zone is 5 hours from UTC for the test (a CI machine is often UTC)."""
    monkeypatch.setenv("TZ", "EST+05")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("far_from_utc")
@pytest.mark.parametrize("zone", ["GMT", "+0000", "-0000", "UTC"])
def test_retry_after_http_date_is_gmt_whatever_the_machine_zone(zone: str) -> None:
    # -0000 makes email.utils return a naive datetime: read as UTC, not as local time
    header = f"Wed, 21 Oct 2015 07:28:10 {zone}"
    assert retry_after_seconds(header, now=1445412480.0) == pytest.approx(10.0)
    assert retry_after_seconds(header, now=1445412500.0) == 0.0  # already past: no wait

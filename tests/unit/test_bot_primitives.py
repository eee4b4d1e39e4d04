"""Rendering, splitting, confirmations, authorisation and alert dedup — the bot's building blocks."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from bot.auth import Authoriser, Role, UserRateLimiter
from bot.commands import UsageProblem, parse_duration
from bot.confirm import ConfirmationStore, TapResult
from bot.render import TELEGRAM_MAX_CHARS, esc, split_message, table


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_escape_market_titles() -> None:
    assert esc("Will <Trump> & _Co_ win?") == "Will &lt;Trump&gt; &amp; _Co_ win?"
    assert esc(None) == ""
    assert esc(Decimal("0.53")) == "0.53"


def test_table_escapes_cells() -> None:
    out = table([("a<b", "1")], ["k", "v"])
    assert out.startswith("<pre>") and "a&lt;b" in out and "<b" not in out.replace("<pre>", "").replace("</pre>", "")


def test_split_respects_limit_and_keeps_everything() -> None:
    text = "\n".join(f"line {i} " + "x" * 50 for i in range(400))
    parts = split_message(text)
    assert len(parts) > 1
    assert all(len(p) <= TELEGRAM_MAX_CHARS for p in parts)
    assert "\n".join(parts).replace("\n", "") == text.replace("\n", "")


def test_split_does_not_cut_an_entity_and_rebalances_pre() -> None:
    text = "<pre>" + "\n".join("&amp;" * 30 for _ in range(200)) + "</pre>"
    parts = split_message(text)
    assert all(len(p) <= TELEGRAM_MAX_CHARS for p in parts)
    for p in parts:
        assert p.count("<pre>") == p.count("</pre>"), "each part must be valid HTML on its own"
        assert "&am\n" not in p
    long_line = "&amp;" * 2000
    for p in split_message(long_line):
        assert not p.endswith("&") and not p.endswith("&am")


def test_confirmation_single_use_bound_and_expiring() -> None:
    clock = Clock()
    store = ConfirmationStore(ttl_s=30, clock=clock)
    p = store.create(user_id=1, chat_id=1, payload="order")
    assert len(f"c:{p.nonce}".encode()) <= 64
    assert store.take(p.nonce, user_id=2)[0] is TapResult.WRONG_USER
    assert store.take(p.nonce, user_id=1)[0] is TapResult.OK
    assert store.take(p.nonce, user_id=1)[0] is TapResult.UNKNOWN  # second tap
    q = store.create(user_id=1, chat_id=1, payload="order2")
    clock.t += 30.5
    assert store.take(q.nonce, user_id=1)[0] is TapResult.EXPIRED
    assert store.take(q.nonce, user_id=1)[0] is TapResult.EXPIRED  # stays expired, never OK
    r = store.create(user_id=1, chat_id=1, payload="order3")
    clock.t += 31
    assert [x.nonce for x in store.expire_due()] == [r.nonce]
    assert store.take("forged", user_id=1)[0] is TapResult.UNKNOWN


def test_nonces_are_unpredictable_and_distinct() -> None:
    store = ConfirmationStore()
    nonces = {store.create(1, 1, None).nonce for _ in range(200)}
    assert len(nonces) == 200


def test_authoriser_is_deny_by_default() -> None:
    auth = Authoriser.from_entries([(10, "viewer"), (20, "operator"), (30, "admin")])
    assert auth.role_of(99) is None and auth.role_of(None) is None
    assert not auth.allows(99, Role.VIEWER)
    assert auth.allows(10, Role.VIEWER) and not auth.allows(10, Role.OPERATOR)
    assert auth.allows(20, Role.OPERATOR) and not auth.allows(20, Role.ADMIN)
    assert auth.allows(30, Role.OPERATOR)
    assert Authoriser({}).role_of(10) is None


def test_user_rate_limiter_window() -> None:
    clock = Clock()
    limiter = UserRateLimiter(per_minute=3, clock=clock)
    assert [limiter.check(1).allowed for _ in range(4)] == [True, True, True, False]
    assert limiter.check(2).allowed
    clock.t += 60
    assert limiter.check(1).allowed


def test_rate_limiter_tells_once_per_window_and_says_how_long_to_wait() -> None:
    clock = Clock()
    limiter = UserRateLimiter(per_minute=2, clock=clock)
    assert limiter.check(1).allowed
    clock.t += 10
    assert limiter.check(1).allowed
    clock.t += 5  # 15 s after the first command: it leaves the window in 45 s
    first, second = limiter.check(1), limiter.check(1)
    assert (first.allowed, first.tell, first.retry_after_s) == (False, True, 45)
    assert (second.allowed, second.tell) == (False, False)  # the rest of the window: refused, not answered
    clock.t += 44.5
    assert limiter.check(1).retry_after_s == 1  # rounded up, never "wait 0 s"
    assert not limiter.check(1).tell
    clock.t += 0.5
    assert limiter.check(1).allowed  # refusals did not count: the first command simply aged out
    again = limiter.check(1)
    assert (again.allowed, again.tell) == (False, False)  # over again 45 s after the notice: not answered
    clock.t += 60
    assert limiter.check(1).allowed
    assert limiter.check(1).allowed
    third = limiter.check(1)
    assert (third.allowed, third.tell) == (False, True)  # a new window: told again
    assert limiter.check(2).allowed, "one user's refusals do not touch another's"


@pytest.mark.parametrize(
    ("text", "seconds"), [("1h", 3600), ("30m", 1800), ("2h30m", 9000), ("90s", 90), ("1d", 86400)]
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "10", "-1h", "1y", "8d", "1h;rm"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(UsageProblem):
        parse_duration(text)


def test_a_scripted_clock_lands_exactly_on_the_window_boundary(monkeypatch: pytest.MonkeyPatch) -> None:
    """The offline runner's clock starts where time.monotonic() is; from a fractional origin, 15 s
    then 45 s could come to 59.999… and keep a command the script means to have aged out."""
    from bot.offline import ManualClock

    monkeypatch.setattr(time, "monotonic", lambda: 985.568389657)  # (t + 15 + 45) - t < 60 in floats
    clock = ManualClock()
    limiter = UserRateLimiter(per_minute=1, clock=clock)
    assert limiter.check(7).allowed
    clock.advance(15)
    assert not limiter.check(7).allowed
    clock.advance(45)
    assert limiter.check(7).allowed

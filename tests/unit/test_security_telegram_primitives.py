"""Security properties of the Telegram front end's building blocks (docs/security.md).

Authorisation is deny-by-default by numeric id; confirmation nonces are single use, bound to one
user, expire, and are unguessable; the command rate limit is per user and never holds back /disarm
or /kill; numeric arguments are plain ASCII decimals (no NaN, exponent, underscore or Unicode
digit); every dynamic value is HTML-escaped; secrets are masked in any text that leaves.
"""

from __future__ import annotations

import html
import re
from decimal import Decimal

import pytest

from bot.auth import Authoriser, Role, UserRateLimiter
from bot.commands import COMMANDS, UsageProblem, decimal_arg, parse_duration
from bot.confirm import ConfirmationStore, TapResult
from bot.render import esc, table
from core.redact import clear_secrets, redact, register_secret


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_empty_user_table_authorises_nobody() -> None:
    auth = Authoriser({})
    for uid in (None, 0, 1, 1001, -1001, 2**62):
        assert auth.role_of(uid) is None
        assert not auth.allows(uid, Role.VIEWER)


def test_roles_are_ranked_and_ids_are_numeric() -> None:
    auth = Authoriser.from_entries([(1001, "admin"), (1002, "viewer"), (1003, "operator")])
    assert auth.allows(1001, Role.OPERATOR) and auth.allows(1003, Role.OPERATOR)
    assert not auth.allows(1002, Role.OPERATOR)
    assert auth.allows(1002, Role.VIEWER)
    assert auth.role_of(1004) is None
    with pytest.raises(KeyError):
        Authoriser.from_entries([(1, "root")])


def test_every_trading_command_needs_the_operator_role() -> None:
    trading = {"arm", "disarm", "order", "cancel", "cancelall", "kill"}
    assert trading <= set(COMMANDS)
    for name in trading:
        assert COMMANDS[name].role >= Role.OPERATOR, name
    # read-only commands only: a viewer can change nothing
    viewer = {n for n, spec in COMMANDS.items() if spec.role is Role.VIEWER}
    assert viewer.isdisjoint(trading)


def test_confirmation_is_single_use() -> None:
    store = ConfirmationStore(ttl_s=30, clock=FakeClock())
    pending = store.create(1001, 1001, "ticket")
    assert store.take(pending.nonce, 1001) == (TapResult.OK, pending)
    assert store.take(pending.nonce, 1001) == (TapResult.UNKNOWN, None)


def test_confirmation_cannot_be_used_by_another_user_and_survives_the_attempt() -> None:
    store = ConfirmationStore(ttl_s=30, clock=FakeClock())
    pending = store.create(1001, 1001, "ticket")
    result, _ = store.take(pending.nonce, 1003)
    assert result is TapResult.WRONG_USER
    assert store.take(pending.nonce, 1001)[0] is TapResult.OK  # the owner still can, once


def test_confirmation_expires_and_stays_expired() -> None:
    clock = FakeClock()
    store = ConfirmationStore(ttl_s=30, clock=clock)
    pending = store.create(1001, 1001, "ticket")
    clock.now += 30
    assert store.take(pending.nonce, 1001)[0] is TapResult.EXPIRED
    assert store.take(pending.nonce, 1001)[0] is TapResult.EXPIRED
    assert len(store) == 0


def test_expire_due_reports_each_card_once() -> None:
    clock = FakeClock()
    store = ConfirmationStore(ttl_s=5, clock=clock)
    a = store.create(1, 1, "a")
    store.create(1, 1, "b")
    clock.now += 5
    assert {p.payload for p in store.expire_due()} == {"a", "b"}
    assert store.expire_due() == []
    assert store.take(a.nonce, 1)[0] is TapResult.EXPIRED


def test_cancel_button_consumes_the_confirmation() -> None:
    store = ConfirmationStore(ttl_s=30, clock=FakeClock())
    pending = store.create(1001, 1001, "ticket")
    assert store.cancel(pending.nonce, 1001)[0] is TapResult.OK
    assert store.take(pending.nonce, 1001)[0] is TapResult.UNKNOWN


def test_nonces_are_unguessable_and_fit_callback_data() -> None:
    store = ConfirmationStore(ttl_s=30, clock=FakeClock())
    nonces = [store.create(1, 1, i).nonce for i in range(2000)]
    assert len(set(nonces)) == len(nonces)
    for nonce in nonces[:50]:
        assert re.fullmatch(r"[A-Za-z0-9_-]{12}", nonce)  # 72 random bits
        assert len(f"c:{nonce}".encode()) <= 64
    forged = ["", "0", "c", "../", "%00", "A" * 12, nonces[0][:-1]]
    assert all(store.take(f, 1)[0] is TapResult.UNKNOWN for f in forged)


def test_rate_limit_is_per_user_and_slides() -> None:
    clock = FakeClock()
    limiter = UserRateLimiter(per_minute=5, clock=clock)
    assert all(limiter.check(1001).allowed for _ in range(5))
    assert not limiter.check(1001).allowed
    assert limiter.check(1002).allowed, "one user's flood must not lock out another"
    clock.now += 59.9
    assert not limiter.check(1001).allowed
    clock.now += 0.2
    assert limiter.check(1001).allowed


def test_the_safe_direction_is_never_rate_limited() -> None:
    assert {n for n, spec in COMMANDS.items() if not spec.rate_limited} == {"disarm", "kill"}


@pytest.mark.parametrize(
    "text",
    ["NaN", "nan", "sNaN", "-NaN", "Infinity", "-Infinity", "inf", "-inf", "1e9", "1E+1", "1_0", "١", "٠.٥", "０.５",
     "½", "²", "", "abc", "0x10", "1,5", "1e", "--1", "1.2.3", " ", "0.5\x00", "9" * 40],
)  # fmt: skip
def test_numeric_arguments_are_plain_ascii_decimals(text: str) -> None:
    with pytest.raises(UsageProblem, match=r"^SIZE (must be a plain decimal number|is too long)") as exc:
        decimal_arg(text, "SIZE")
    assert len(str(exc.value)) < 200  # one line, a long argument is not echoed in full


def test_numeric_arguments_keep_exact_decimals() -> None:
    assert decimal_arg("0.30", "PRICE") == Decimal("0.30")
    assert decimal_arg("10", "SIZE") == Decimal(10)
    assert decimal_arg("-0.5", "PRICE") == Decimal("-0.5")  # the sign is the risk gate's to refuse, with the range


@pytest.mark.parametrize(
    "text", ["0", "0m", "-1h", "1x", "h", "8d", "1h-", "999999999999d", "1 h", "١h", "１h", "1_0m"]
)
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(UsageProblem):
        parse_duration(text)


def test_good_durations() -> None:
    assert parse_duration("90s") == 90
    assert parse_duration("2h30m") == 9000
    assert parse_duration("7d") == 7 * 86400


@pytest.mark.parametrize(
    "payload", ["<b>bold</b>", "<a href='http://x'>x</a>", "a & b", "</pre><script>", "<code>", "&lt;"]
)
def test_dynamic_text_is_escaped(payload: str) -> None:
    out = esc(payload)
    assert "<" not in out and ">" not in out
    assert html.unescape(out) == payload
    rendered = table([[payload, "x"]], header=["market", "side"])
    assert rendered.startswith("<pre>") and rendered.endswith("</pre>")
    assert "<" not in rendered[len("<pre>") : -len("</pre>")]


def test_registered_and_shaped_secrets_are_masked() -> None:
    key = "0x" + "ab" * 32
    token = "7412589630:AAH3kL9mQ2xR7vT1yU5wE8oP4iS6dF0gJ2c"
    secret = "c2VjcmV0LWFwaS1zZWNyZXQtdmFsdWU="
    try:
        register_secret(secret)
        text = f"token {token} private_key={key} secret {secret} raw key {key[2:]}"
        masked = redact(text)
        assert token not in masked and secret not in masked
        assert f"private_key={key}" not in masked
        # a bare 64-hex string is a condition id as often as a key: only a registered key is masked
        register_secret(key)
        register_secret(key[2:])
        masked = redact(text)
        assert key[2:] not in masked and key not in masked
    finally:
        clear_secrets()

"""Secret shapes: what :func:`redact` masks in every output, what :func:`redact_typed` masks in typed text,
and the operator's identifiers that both leave readable."""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Iterator

import pytest

from core.redact import MASK, clear_secrets, redact, redact_typed
from tests.secret_shapes import API_PASSPHRASE as PASSPHRASE
from tests.secret_shapes import API_SECRET, leaked_fragments
from tests.secret_shapes import BOT_TOKEN as TOKEN
from tests.secret_shapes import DB_PASSWORD as PASSWORD
from tests.secret_shapes import PRIVATE_KEY as KEY
from tests.secret_shapes import TOKEN_HALF as HALF

CONDITION_ID = "0x" + "cd" * 32
ORDER_HASH = "0x" + "5e" * 32
TOKEN_ID = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
ADDRESS = "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"
SLUG = "will-the-fed-cut-rates-in-december-2026-after-the-jobs-report"


@pytest.fixture(autouse=True)
def no_registered_secrets() -> Iterator[None]:
    clear_secrets()  # shapes only: nothing here may pass because a value happened to be registered
    yield
    clear_secrets()


def assert_no_fragment(secret: str, text: str) -> None:
    leaked = leaked_fragments(secret, text)
    assert not leaked, f"fragments of a secret leaked: {leaked[:3]} in {text!r}"


TYPED = {
    "0x private key": KEY,
    "private key without 0x": KEY[2:],
    "private key, upper case": KEY.upper().replace("0X", "0x"),
    "private key one digit short": KEY[:-1],
    "private key one digit long": KEY + "7",
    "telegram token": TOKEN,
    "token's secret half": HALF,
    "api secret (base64url, padded)": API_SECRET,
    "api secret (unpadded)": API_SECRET.rstrip("="),
    "api passphrase (64 hex)": PASSPHRASE,
}


@pytest.mark.parametrize("secret", list(TYPED.values()), ids=list(TYPED))
@pytest.mark.parametrize("template", ["{}", "/order {} Yes BUY 0.5 10", "/nosuch {}", "key: {}!", '"{}"'])
def test_every_typed_shape_is_masked_whole(secret: str, template: str) -> None:
    out = redact_typed(template.format(secret))
    assert MASK in out
    assert_no_fragment(secret, out)


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://polybot:{PASSWORD}@127.0.0.1:5432/polybot",
        f"postgresq://polybot:{PASSWORD}@127.0.0.1:5432/polybot",  # scheme typo
        f"postgresql+asyncpgg://polybot:{PASSWORD}@db.internal/polybot",
        f"postgresql//polybot:{PASSWORD}@127.0.0.1/polybot",  # no colon after the scheme
        f"polybot:{PASSWORD}@127.0.0.1/polybot",  # no scheme at all
        f"postgresql://polybot:{PASSWORD}@p@ss@127.0.0.1/polybot",  # an unencoded @ in the password
    ],
)
def test_a_password_in_a_url_is_masked_even_with_a_broken_scheme(url: str) -> None:
    out = redact_typed(url)
    assert_no_fragment(PASSWORD, out)
    assert "polybot:***@" in out and ("127.0.0.1" in out or "db.internal" in out)


def test_redact_masks_proper_urls_and_keeps_the_rest() -> None:
    out = redact(f"cannot connect to postgresql://polybot:{PASSWORD}@127.0.0.1:5432/polybot: refused")
    assert out == "cannot connect to postgresql://polybot:***@127.0.0.1:5432/polybot: refused"
    assert redact("GET https://gamma-api.polymarket.com/markets?limit=100") == (
        "GET https://gamma-api.polymarket.com/markets?limit=100"
    )


def test_a_known_condition_id_typed_as_an_argument_stays_readable() -> None:
    text = f"/order {CONDITION_ID} Yes BUY 0.45 10"
    assert redact_typed(text, keep={CONDITION_ID}) == text
    assert redact_typed(text.upper().replace("/ORDER", "/order"), keep={CONDITION_ID}).count(MASK) == 0
    # not in keep: a bare 0x + 64 hex typed by a person may be a private key
    assert redact_typed(text) == f"/order {MASK} Yes BUY 0.45 10"
    assert redact_typed(f"/cancel {ORDER_HASH}", keep={CONDITION_ID}) == f"/cancel {MASK}"


@pytest.mark.parametrize(
    "text",
    [
        f"/order {SLUG} Yes BUY 0.45 10",
        f"/order {TOKEN_ID} No SELL 0.55 12.5",
        f"/positions {ADDRESS}",
        "/alerts mute 1h",
        "/cancel dry-0f3a9c2b7d1e4a56",
        "/quotes will-it-rain",
        "relayer.signature_type: 2",
        "https://clob.polymarket.com",
        "ws://127.0.0.1:8765/ws/market",
        "sqlite:///./var/polybot.db",
        "postgresql://polybot@127.0.0.1:5432/polybot",
        "polybot@example.com",
        "1001:admin,1002:viewer",
        "",
    ],
)
def test_what_traders_type_is_not_mistaken_for_a_secret(text: str) -> None:
    assert redact_typed(text) == text


@pytest.mark.parametrize(
    "line",
    [
        f"market {CONDITION_ID} book inconsistent; re-seeding",
        f"order {ORDER_HASH} filled tx {ORDER_HASH}",
        f"subscribed token {TOKEN_ID} ({SLUG})",
        f"token: {TOKEN_ID}",
        f"maker {ADDRESS} signer {ADDRESS}",
        "2026-05-01 12:00:00.123Z INFO core.feed.ws: connected in 35 ms (200 assets)",
        "re-seed of 7132104567… in 1.5s (one per 2s)",
        "group dutch-0f3a9c2b7d1e4a56b7c8d9e0 placed 3 legs",
        "limit=100 offset=200 key=value",
        "confirm nonce c:AbCdEfGhIjKl expired",
    ],
)
def test_normal_log_lines_stay_readable(line: str) -> None:
    assert redact(line) == line


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        (f"POST https://api.telegram.org/bot{TOKEN}/getUpdates", TOKEN),
        (f"unknown command, args {HALF}", HALF),
        (f"L2 secret {API_SECRET} rejected", API_SECRET),
        (f"private_key={KEY}", KEY),
        (f"api_passphrase: {PASSPHRASE}", PASSPHRASE),
        (f'{{"secret": "{API_SECRET.rstrip("=")}"}}', API_SECRET.rstrip("=")),
        (f"--private-key {KEY[2:]}", KEY),
        (f"token={HALF}", HALF),
    ],
)
def test_redact_masks_shapes_that_never_occur_in_normal_output(line: str, secret: str) -> None:
    out = redact(line)
    assert MASK in out
    assert_no_fragment(secret.removeprefix("0x"), out)


def test_a_chat_message_in_a_log_line_is_treated_as_typed_text() -> None:
    # python-telegram-bot's DEBUG lines: the raw getUpdates result, the Update repr, and JSON
    raw = {"update_id": 7, "message": {"message_id": 3, "text": f"/nosuch {KEY}", "chat": {"id": 1}}}
    lines = [
        f"Call to Bot API endpoint `getUpdates` finished with return value `[{raw}]`",
        f"Processing update Update(message=Message(chat=Chat(id=1), text='/order {PASSPHRASE} Yes'), update_id=7)",
        json.dumps({"msg": "update", "text": f"pasted {KEY[2:]} and {CONDITION_ID}"}),
        f"""{{'caption': "it's {HALF.replace("AA", "Ab", 1)}"}}""",
        f"InlineQuery(query='{API_SECRET.rstrip('=')}')",
    ]
    for line, secret in zip(lines, [KEY, PASSPHRASE, KEY, HALF.replace("AA", "Ab", 1), API_SECRET], strict=True):
        out = redact(line)
        assert_no_fragment(secret.removeprefix("0x").rstrip("="), out)
    # outside a chat text, a condition id is an identifier and stays
    assert CONDITION_ID in redact(f"{lines[2]} market {CONDITION_ID}")


def test_random_secrets_of_every_shape_are_always_masked() -> None:
    """Many draws, so a rule that only catches the examples above (or most draws) fails."""
    rng = random.Random(20260501)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
    for _ in range(500):
        key = "0x" + rng.randbytes(32).hex()
        half = "AA" + "".join(rng.choice(alphabet) for _ in range(33))
        token = f"{rng.randrange(10**9, 10**10)}:{half}"
        secret = base64.urlsafe_b64encode(rng.randbytes(32)).decode()
        passphrase = rng.randbytes(32).hex()
        for value in (key, key[2:], half, token, secret, secret.rstrip("="), passphrase):
            out = redact_typed(f"/order {value} Yes BUY 0.5 10")
            assert_no_fragment(value, out)
        for value in (token, half, secret):
            assert_no_fragment(value, redact(f"log line with {value} inside"))

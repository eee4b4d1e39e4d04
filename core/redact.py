"""Secret redaction for anything that leaves the process as text (logs, errors, replies, tables).

Two kinds of text, two functions:

:func:`redact` is for everything Polybot writes: log lines, CLI output, chat replies, audit
details. It masks

- **registered values**: settings loading registers every configured secret (private key, API
  credentials, Telegram token, database password); code that receives a secret some other way
  (a ``--private-key`` argument) calls :func:`register_secret` itself;
- **shapes that never occur in normal output**, registered or not:

  * a Telegram bot token, ``<5-16 digits>:<35 chars of A-Za-z0-9_->``, anywhere;
  * a token's secret half alone: 35 such characters starting with ``AA`` (as every real one does);
  * a base64 secret of 32 bytes with its padding (the CLOB API secret): 43 characters + ``=``;
  * the password of a URL: ``//user:PASSWORD@host`` -> ``//user:***@host``;
  * a 64-hex value (0x optional) or a long random-looking value *named as a secret*:
    ``private_key=0x…``, ``"secret": "…"``, ``--api-passphrase …``, ``token: AAH…``;
  * inside the text of a chat message as a log line shows it (``'text': '…'``,
    ``"text": "…"``, ``text='…'``, and ``caption``/``query``), everything :func:`redact_typed`
    masks: that text was typed by a person (python-telegram-bot logs whole updates at DEBUG).

  A bare ``0x`` + 64-hex string elsewhere is kept: condition ids, order hashes and transaction
  hashes share the shape and are what an operator greps logs for; so are 77-digit token ids,
  40-hex addresses and slugs. A configured key is masked anyway because it is registered.

:func:`redact_typed` is for text a *person typed*, where any secret-looking value is a mistake to
mask (chat command arguments before they are audited, configuration values echoed in errors).
On top of :func:`redact` it masks

- a hex run of 48 digits or more (0x optional): a private key (also one digit short or long), a
  64-hex API passphrase; a bare condition id or order hash too, unless the caller lists it in
  ``keep`` (addresses, 40 hex, stay readable);
- a random-looking run of 32 or more characters of ``A-Za-z0-9_+/-`` (``=`` padding included)
  with both upper- and lower-case letters: a token's secret half, an API secret with or without
  padding. Slugs (lower case), token ids (digits) and checksummed addresses (hex) are kept;
- ``user:PASSWORD@host`` even without a URL scheme (a scheme typo must not reveal it).

docs/security.md states the same rule for operators.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Container
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
"""What a secret becomes in logs and error text."""

DISPLAY_MASK = "**********"
"""What a set secret looks like in ``config show`` (the same as pydantic's SecretStr)."""

MIN_SECRET_LENGTH = 4
"""Shorter values are not registered: masking every "abc" would shred log lines, and a
three-character value protects nothing anyway."""

TELEGRAM_TOKEN_PATTERN = r"[0-9]{5,16}:[A-Za-z0-9_-]{35}"
"""A Telegram bot token: the bot's numeric id, a colon, 35 characters (settings check this shape)."""

TELEGRAM_TOKEN_RE = re.compile(rf"(?<![0-9]){TELEGRAM_TOKEN_PATTERN}(?![A-Za-z0-9_-])")
_TOKEN_HALF_RE = re.compile(r"(?<![A-Za-z0-9_-])AA[A-Za-z0-9_-]{33}(?![A-Za-z0-9_-])")
_BASE64_32_BYTES_RE = re.compile(r"(?<![A-Za-z0-9+/_=-])[A-Za-z0-9+/_-]{43}=(?![A-Za-z0-9+/_=-])")
_URL_CREDENTIALS_RE = re.compile(r"(//[^\s/:@'\"]*:)([^\s/'\"]+)@")
_NAMED_SECRET_RE = re.compile(
    r"(?i)((?:key|secret|private|passphrase|password|mnemonic|seed|token)[\"'\s:=]{1,6})"
    r"((?:0x)?[0-9a-f]{64}|[A-Za-z0-9_+/-]{32,}={0,2})(?![A-Za-z0-9_+/=-])"
)
# The text of a chat message inside a logged dict, JSON object or python-telegram-bot repr.
_CHAT_TEXT_RE = re.compile(
    r"((?<![A-Za-z0-9_])['\"]?(?:text|caption|query)['\"]?\s*[:=]\s*)(['\"])((?:\\.|(?!\2).)*)\2"
)

_TYPED_HEX_RE = re.compile(r"(?<![0-9A-Za-z])(?:0[xX])?[0-9a-fA-F]{48,}(?![0-9A-Za-z])")
_TYPED_RANDOM_RE = re.compile(r"(?<![A-Za-z0-9_+/=-])[A-Za-z0-9_+/-]{32,}={0,2}(?![A-Za-z0-9_+/=-])")
_TYPED_CREDENTIALS_RE = re.compile(r"(?:(?<=/)|(?<![^\s'\"=(\[,<]))([^\s/:@'\"]*:)([^\s/'\"]+)@")
_HEX_ONLY_RE = re.compile(r"(?:0[xX])?[0-9a-fA-F]+")

_lock = threading.Lock()
_secrets: set[str] = set()
# Longest first so a secret that contains another is masked whole.
_secrets_sorted: tuple[str, ...] = ()


def register_secret(value: str | None) -> None:
    """Mask ``value`` wherever it appears in redacted text from now on."""
    global _secrets_sorted
    if not value or len(value) < MIN_SECRET_LENGTH:
        return
    with _lock:
        if value in _secrets:
            return
        _secrets.add(value)
        _secrets_sorted = tuple(sorted(_secrets, key=len, reverse=True))


def clear_secrets() -> None:
    """Forget every registered secret (tests use this to stay independent)."""
    global _secrets_sorted
    with _lock:
        _secrets.clear()
        _secrets_sorted = ()


def registered_secret_count() -> int:
    return len(_secrets_sorted)


def _is_random(value: str) -> bool:
    """Mixed-case and not hex: what a random base64/token string looks like and a slug does not."""
    core = value.rstrip("=")
    if _HEX_ONLY_RE.fullmatch(core):
        return False
    return any(c.isupper() for c in core) and any(c.islower() for c in core)


def _mask_named(match: re.Match[str]) -> str:
    value = match.group(2)
    if _HEX_ONLY_RE.fullmatch(value) and len(value.removeprefix("0x").removeprefix("0X")) == 64:
        return match.group(1) + MASK
    return match.group(1) + MASK if _is_random(value) else match.group(0)


def _mask_chat_text(match: re.Match[str]) -> str:
    return match.group(1) + match.group(2) + _mask_typed_shapes(match.group(3), ()) + match.group(2)


def redact(text: str) -> str:
    """Return ``text`` with every registered secret and secret-shaped value replaced by ``***``."""
    if not text:
        return text
    for secret in _secrets_sorted:
        if secret in text:
            text = text.replace(secret, MASK)
    if ":" in text:
        text = TELEGRAM_TOKEN_RE.sub(MASK, text)
    if "AA" in text:
        text = _TOKEN_HALF_RE.sub(MASK, text)
    if "=" in text:
        text = _BASE64_32_BYTES_RE.sub(MASK, text)
    if "//" in text and "@" in text:
        text = _URL_CREDENTIALS_RE.sub(lambda m: m.group(1) + MASK + "@", text)
    text = _NAMED_SECRET_RE.sub(_mask_named, text)
    if "text" in text or "caption" in text or "query" in text:
        text = _CHAT_TEXT_RE.sub(_mask_chat_text, text)
    return text


def _mask_typed_shapes(text: str, keep: Container[str]) -> str:
    def hex_run(match: re.Match[str]) -> str:
        value = match.group(0)
        has_prefix = value[:2] in ("0x", "0X")
        if not has_prefix and value.isdigit():
            return value  # a decimal number (a token id), not hex
        if value in keep or value.lower() in keep:
            return value
        return MASK

    def random_run(match: re.Match[str]) -> str:
        return MASK if _is_random(match.group(0)) else match.group(0)

    if "@" in text:
        text = _TYPED_CREDENTIALS_RE.sub(lambda m: m.group(1) + MASK + "@", text)
    text = _TYPED_HEX_RE.sub(hex_run, text)
    return _TYPED_RANDOM_RE.sub(random_run, text)


def redact_typed(text: str, keep: Container[str] = ()) -> str:
    """:func:`redact`, then every secret shape a person may have typed by mistake (module docstring).

    ``keep`` lists values to leave readable although they have a secret's shape, typically the
    condition ids (and order ids) the bot knows: a trader types them as command arguments.
    """
    if not text:
        return text
    return _mask_typed_shapes(redact(text), keep)


def url_password(url: str) -> str | None:
    """The password embedded in a URL (``scheme://user:PASSWORD@host/...``), if any."""
    try:
        return urlsplit(url).password or None
    except ValueError:
        return None


def mask_url_password(url: str, mask: str = DISPLAY_MASK) -> str:
    """``postgresql://u:secret@h/db`` -> ``postgresql://u:**********@h/db``; other URLs unchanged."""
    try:
        parts = urlsplit(url)
        password = parts.password
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        return url
    if not password:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal lost its brackets in .hostname
        host = f"[{host}]"
    netloc = f"{user}:{mask}@{host}{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))

"""Secret redaction for anything that leaves the process as text (logs, errors, CLI output).

Two mechanisms, applied together by :func:`redact`:

- **Registered values.** Settings loading registers every configured secret (private key,
  API credentials, Telegram token, database password); code that receives a secret some other
  way (a ``--private-key`` argument) calls :func:`register_secret` itself.
- **Shapes.** Values that look like secrets even when nobody registered them: a Telegram bot
  token (``<digits>:<35 chars>``) anywhere, and a 0x-prefixed 64-hex string *named as a key*
  (``private_key=0x…``, ``"key": "0x…"``, ``--private-key 0x…``). Condition ids and transaction
  hashes share the 64-hex shape and are what an operator greps logs for, so a bare one is kept;
  a configured key is always masked because settings loading registers it.
"""

from __future__ import annotations

import re
import threading
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
"""What a secret becomes in logs and error text."""

DISPLAY_MASK = "**********"
"""What a set secret looks like in ``config show`` (the same as pydantic's SecretStr)."""

MIN_SECRET_LENGTH = 4
"""Shorter values are not registered: masking every "abc" would shred log lines, and a
three-character value protects nothing anyway."""

HEX_PRIVATE_KEY_RE = re.compile(
    r"(?i)((?:key|secret|private|passphrase|mnemonic|seed)[\"'\s:=]{1,6})0x[0-9a-f]{64}(?![0-9a-z])"
)
TELEGRAM_TOKEN_RE = re.compile(r"(?<![0-9])[0-9]{5,16}:[A-Za-z0-9_-]{35}(?![A-Za-z0-9_-])")

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


def redact(text: str) -> str:
    """Return ``text`` with every registered secret and secret-shaped value replaced by ``***``."""
    if not text:
        return text
    for secret in _secrets_sorted:
        if secret in text:
            text = text.replace(secret, MASK)
    if "0x" in text or "0X" in text:
        text = HEX_PRIVATE_KEY_RE.sub(r"\1" + MASK, text)
    if ":" in text:
        text = TELEGRAM_TOKEN_RE.sub(MASK, text)
    return text


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

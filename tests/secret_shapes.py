"""Secrets of every shape an operator may mistype somewhere, and the leak check the tests share.

A leak is any run of :data:`FRAGMENT` consecutive characters of a secret (case-insensitive) in
an output: a secret shortened to "0x4c0883a6…" or cut in half is still a leak.
"""

from __future__ import annotations

FRAGMENT = 8

PRIVATE_KEY = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
BOT_TOKEN = "7412589630:AAH3kL9mQ2xR7vT1yU5wE8oP4iS6dF0gJ2c"
TOKEN_HALF = BOT_TOKEN.split(":", 1)[1]
API_SECRET = "kF3q9ZpVb2Lr7XwN0sYtM4cHj8GdUe1AaRo6BiQn5Tk="
"""The CLOB API secret: base64url of 32 bytes, padded."""
API_PASSPHRASE = "9f2c4e7a1b3d5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8"
"""The CLOB API passphrase: 64 hex digits, no 0x."""
DB_PASSWORD = "Xq7pLm2vRt9sKw4z"
DB_URL_WITH_TYPO = f"postgresq://polybot:{DB_PASSWORD}@127.0.0.1:5432/polybot"
"""A PostgreSQL URL whose scheme is misspelt: refused, and the refusal must not show the password."""

SECRETS: dict[str, str] = {
    "private key": PRIVATE_KEY,
    "private key as a number": str(int(PRIVATE_KEY, 16)),  # what TOML reads from it unquoted
    "bot token": BOT_TOKEN,
    "token secret half": TOKEN_HALF,
    "api secret": API_SECRET,
    "api passphrase": API_PASSPHRASE,
    "database password": DB_PASSWORD,
}
"""What must never appear; the bot token's public half (the bot id) is part of it on purpose."""


# Every shape under a key where it does not belong (or malformed under its own key): each is
# refused, and the refusal echoes "(got …)" for ordinary values only. The TOML writes the key
# once more as a bare hex integer, whose 77 decimal digits are the key too.
MISPLACED_TOML = f"""
[service]
mode = "{TOKEN_HALF}"
daily_summary_utc = "{API_PASSPHRASE}"
[relayer]
signature_type = "{PRIVATE_KEY}"
privat_key = "{PRIVATE_KEY}"
private_key = "{PRIVATE_KEY[:-1]}"
heartbeat_s = {PRIVATE_KEY}
[risk]
one_leg_policy = "{API_SECRET}"
[telegram]
users = ["{BOT_TOKEN}"]
token = "{TOKEN_HALF}"
[db]
url = "{DB_URL_WITH_TYPO}"
"""
MISPLACED_ENV = {
    "POLYBOT_SERVICE__MODE": TOKEN_HALF,
    "POLYBOT_SERVICE__DAILY_SUMMARY_UTC": API_PASSPHRASE,
    "POLYBOT_RELAYER__SIGNATURE_TYPE": PRIVATE_KEY,
    "POLYBOT_RELAYER__PRIVAT_KEY": PRIVATE_KEY,
    "POLYBOT_RELAYER__PRIVATE_KEY": PRIVATE_KEY[:-1],
    "POLYBOT_RELAYER__HEARTBEAT_S": PRIVATE_KEY,
    "POLYBOT_RISK__ONE_LEG_POLICY": API_SECRET,
    "POLYBOT_TELEGRAM__USERS": BOT_TOKEN,
    "POLYBOT_TELEGRAM__TOKEN": TOKEN_HALF,
    "POLYBOT_DB__URL": DB_URL_WITH_TYPO,
}
MISPLACED_KEYS = (
    "service.mode",
    "service.daily_summary_utc",
    "relayer.signature_type",
    "relayer.privat_key",
    "relayer.private_key",
    "relayer.heartbeat_s",
    "risk.one_leg_policy",
    "telegram.users[0].role",
    "telegram.token",
    "db.url",
)


def leaked_fragments(secret: str, text: str) -> list[str]:
    lowered = text.lower()
    secret = secret.lower()
    found = {secret[i : i + FRAGMENT] for i in range(len(secret) - FRAGMENT + 1)}
    return sorted(f for f in found if f in lowered)


def assert_no_secret(text: str, secrets: dict[str, str] = SECRETS) -> None:
    """Fail naming the secret and the fragments found when any secret shows through ``text``."""
    leaks = {name: frags[:3] for name, value in secrets.items() if (frags := leaked_fragments(value, text))}
    assert not leaks, f"secrets leaked: {leaks}"

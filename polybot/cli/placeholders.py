"""``<YOUR_…>``: a value in the docs that only the user can supply (their key, their funder, a market
they chose). A command given one as written stops before it does anything and says what goes there
(exit 2), instead of failing later on a value that looks malformed.

Written in a shell command, a placeholder is quoted (``"<YOUR_MARKET_SLUG>"``): bare, ``<`` and
``>`` are redirections and bash would fail before polybot runs. ``tests/e2e/test_help_examples.py``
holds README.md and docs/*.md to both rules.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

PLACEHOLDER = re.compile(r"<YOUR_[A-Z0-9_]+>")

WHAT_GOES_THERE: dict[str, str] = {
    "<YOUR_MARKET_SLUG>": (
        "the slug (or condition id) of a market you chose: polybot markets FILTER lists the stored ones"
    ),
    "<YOUR_FUNDER_ADDRESS>": (
        "the address that holds your funds, 0x and 40 hex digits: relayer.funder, or your key's own address "
        "for signature type 0 (--config FILE reads it from your configuration)"
    ),
    "<YOUR_POLYGON_RPC_URL>": "your Polygon JSON-RPC URL, https://… (chain.rpc_url in your configuration)",
    "<YOUR_PRIVATE_KEY>": (
        "your wallet's private key, 0x and 64 hex digits; keep it in secrets.local.toml (relayer.private_key) "
        "rather than on a command line"
    ),
    "<YOUR_TELEGRAM_USER_ID>": "your numeric Telegram user id (from @userinfobot)",
    "<YOUR_REPOSITORY_URL>": "the URL of your clone of this repository (git clone)",
}
"""What each placeholder the docs use stands for; a test checks the docs use no other."""


def placeholder_problem(argv: Sequence[str]) -> str | None:
    """The first placeholder left in ``argv`` and what to put there, or None."""
    for arg in argv:
        found = PLACEHOLDER.search(arg)
        if found:
            name = found.group(0)
            what = WHAT_GOES_THERE.get(name, "a value of your own")
            return f"{name} is a placeholder: replace it with {what}"
    return None

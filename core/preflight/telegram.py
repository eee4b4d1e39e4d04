"""The Telegram row of the preflight: the settings (token present, users listed), then the token
checked with Telegram itself (Bot API ``getMe``), which names the bot (``@username``).

A running service that hosts its bot on a Bot API double (the demo, the sandbox, the offline
runner) passes ``identity``: the same question put to that double through the bot's own
transport, so nothing leaves the machine. Without it the probe asks ``telegram.base_url`` over
HTTP. The token is never shown: URLs are reduced to their origin and every detail is redacted.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from core.control.types import PreflightCheck
from core.preflight.local import check_telegram, telegram_users
from core.preflight.report import TELEGRAM, failed, one_line, origin_of, passed, skipped
from core.settings import Settings

if TYPE_CHECKING:  # httpx loads only when getMe goes on the network (not with --offline)
    import httpx

BotIdentity = Callable[[], Awaitable[str]]
"""Asks the Bot API who the bot is (``getMe``); returns its username, raises when it cannot."""

ADVICE = "the token @BotFather gave you, in secrets.local.toml as telegram.token"


async def check_telegram_api(
    settings: Settings,
    *,
    offline: bool,
    timeout_s: float,
    transport: httpx.AsyncBaseTransport | None = None,
    identity: BotIdentity | None = None,
) -> PreflightCheck:
    local = check_telegram(settings)
    if not local.ok:  # disabled (SKIP) or no token / no users (FAIL): nothing to ask Telegram
        return local
    users = telegram_users(settings)
    if offline:
        return skipped(TELEGRAM, f"token set (not shown), {users}; not checked with Telegram (--offline)")
    started = time.perf_counter()
    if identity is not None:
        try:
            name = await identity()
        except Exception as exc:
            return failed(TELEGRAM, f"the bot's Bot API did not answer getMe ({one_line(exc)})")
        return passed(TELEGRAM, f"bot @{name} (getMe answered by the local Bot API double); {users}")
    answer = await _get_me(settings, timeout_s=timeout_s, transport=transport)
    if isinstance(answer, PreflightCheck):
        return answer
    ms = (time.perf_counter() - started) * 1000
    where = origin_of(settings.telegram.base_url)
    return passed(TELEGRAM, f"token accepted by Telegram: bot @{answer} (getMe at {where}, {ms:.0f} ms); {users}")


async def _get_me(
    settings: Settings, *, timeout_s: float, transport: httpx.AsyncBaseTransport | None
) -> str | PreflightCheck:
    """The bot's username, or the failed check saying why there is none."""
    import httpx

    telegram = settings.telegram
    assert telegram.token is not None  # check_telegram passed
    token = telegram.token.get_secret_value()
    where = origin_of(telegram.base_url)
    url = f"{telegram.base_url}{token}/getMe"
    try:
        async with httpx.AsyncClient(timeout=timeout_s, transport=transport) as client:
            resp = await client.get(url)
    except httpx.HTTPError as exc:
        detail = one_line(exc).replace(token, "***")
        return failed(
            TELEGRAM,
            f"Telegram's Bot API at {where} is unreachable ({detail}); run-service would start without "
            "chat, disarmed, and retry until it answers",
        )
    if resp.status_code in (401, 404):  # Telegram answers a wrong token 401, a malformed one 404
        return failed(
            TELEGRAM, f"Telegram rejected telegram.token (getMe at {where}: HTTP {resp.status_code}); use {ADVICE}"
        )
    try:
        payload = resp.json()
    except ValueError:
        payload = None
    result = payload.get("result") if isinstance(payload, dict) and payload.get("ok") is True else None
    if resp.status_code != 200 or not isinstance(result, dict) or not result.get("username"):
        return failed(TELEGRAM, f"Telegram's getMe at {where} answered HTTP {resp.status_code} without a bot")
    return str(result["username"])

"""The whole preflight: every check in report order, the network probes concurrently, each bounded."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from core.control.types import PreflightCheck, PreflightReport
from core.preflight.local import (
    check_config,
    check_creds,
    check_key,
    check_mode,
    check_risk,
    check_secrets,
    maker_address,
)
from core.preflight.probes import (
    DEFAULT_TIMEOUT_S,
    MAX_CLOCK_SKEW_S,
    check_allowances,
    check_balance,
    check_clob,
    check_database,
    check_feed,
)
from core.preflight.report import (
    ALLOWANCES,
    BALANCE,
    CLOB,
    CLOCK,
    DATABASE,
    FEED,
    TELEGRAM,
    failed,
    guard,
    one_line,
    ready,
    skipped,
)
from core.preflight.telegram import BotIdentity, check_telegram_api
from core.settings import LoadedSettings, Settings
from core.types import Mode

if TYPE_CHECKING:  # httpx loads only when a probe goes on the network (not with --offline)
    import httpx

log = logging.getLogger(__name__)


class _Probes:
    """The network checks of one run: skipped offline or when there is nothing to probe."""

    def __init__(
        self,
        settings: Settings,
        *,
        offline: bool,
        timeout_s: float,
        max_skew_s: float,
        transport: httpx.AsyncBaseTransport | None,
        identity: BotIdentity | None = None,
    ) -> None:
        self.settings = settings
        self.offline = offline
        self.timeout_s = timeout_s
        self.max_skew_s = max_skew_s
        self.transport = transport
        self.identity = identity
        self.limit_s = timeout_s + 1.0
        """A probe's ceiling: its own timeout, plus a second to say so."""

    def database(self) -> Awaitable[PreflightCheck]:
        return guard(DATABASE, check_database(self.settings, timeout_s=self.timeout_s), self.limit_s)

    def feed(self) -> Awaitable[PreflightCheck]:
        if self.offline:
            return ready(skipped(FEED, "--offline"))
        return guard(FEED, check_feed(self.settings, timeout_s=self.timeout_s), self.limit_s)

    async def clob_and_clock(self) -> tuple[PreflightCheck, PreflightCheck]:
        if self.offline:
            return skipped(CLOB, "--offline"), skipped(CLOCK, "--offline")
        probe = check_clob(
            self.settings, timeout_s=self.timeout_s, max_skew_s=self.max_skew_s, transport=self.transport
        )
        try:
            return await asyncio.wait_for(probe, 2 * self.limit_s)  # two calls: /time, /version
        except TimeoutError:
            return failed(CLOB, f"no answer within {2 * self.limit_s:g} s"), skipped(CLOCK, "not measured")
        except Exception as exc:
            return failed(CLOB, f"error: {one_line(exc)}"), skipped(CLOCK, "not measured")

    def telegram(self) -> Awaitable[PreflightCheck]:
        probe = check_telegram_api(
            self.settings,
            offline=self.offline,
            timeout_s=self.timeout_s,
            transport=self.transport,
            identity=self.identity,
        )
        return guard(TELEGRAM, probe, self.limit_s)

    def allowances(self) -> Awaitable[PreflightCheck]:
        if self.settings.chain.rpc_url is None:
            return ready(skipped(ALLOWANCES, "chain.rpc_url is not set: on-chain approvals not checked"))
        if self.offline:
            return ready(skipped(ALLOWANCES, "--offline"))
        owner = maker_address(self.settings)  # eth_account: only when there is an address to check
        if owner is None:
            return ready(skipped(ALLOWANCES, "no key or funder configured: no address to check"))
        probe = check_allowances(self.settings, owner, timeout_s=self.timeout_s, transport=self.transport)
        return guard(ALLOWANCES, probe, 6 * self.limit_s)  # six eth_calls, one after another

    def balance(self) -> Awaitable[PreflightCheck]:
        settings, relayer = self.settings, self.settings.relayer
        if settings.mode is Mode.PAPER:
            return ready(skipped(BALANCE, f"paper mode: a bankroll of {settings.risk.paper_bankroll} pUSD"))
        if self.offline:
            return ready(skipped(BALANCE, "--offline"))
        if relayer.private_key is None or not (relayer.api_key and relayer.api_secret and relayer.api_passphrase):
            return ready(skipped(BALANCE, "no API credentials: the venue balance cannot be read"))
        probe = check_balance(settings, timeout_s=self.timeout_s, transport=self.transport)
        return guard(BALANCE, probe, 2 * self.timeout_s + 1)


async def run_preflight(
    loaded: LoadedSettings,
    *,
    offline: bool,
    http_transport: httpx.AsyncBaseTransport | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_skew_s: float = MAX_CLOCK_SKEW_S,
    telegram_identity: BotIdentity | None = None,
) -> PreflightReport:
    """Every check (see :mod:`core.preflight`); network probes run concurrently, each bounded.

    ``offline`` skips the feed, CLOB, clock, allowance and balance probes. ``http_transport``
    replaces the network for the CLOB, JSON-RPC and Telegram calls (tests). ``telegram_identity``
    answers Telegram's ``getMe`` instead of ``telegram.base_url`` (a bot on a Bot API double).
    """
    settings = loaded.settings
    probes = _Probes(
        settings,
        offline=offline,
        timeout_s=timeout_s,
        max_skew_s=max_skew_s,
        transport=http_transport,
        identity=telegram_identity,
    )
    (
        db_check,
        feed_check,
        (clob_check, clock_check),
        allowance_check,
        balance_check,
        telegram_check,
    ) = await asyncio.gather(
        probes.database(),
        probes.feed(),
        probes.clob_and_clock(),
        probes.allowances(),
        probes.balance(),
        probes.telegram(),
    )
    report = PreflightReport(
        [
            check_config(loaded),
            check_mode(settings),
            db_check,
            feed_check,
            clob_check,
            clock_check,
            check_key(settings),
            check_creds(settings),
            check_secrets(loaded),
            allowance_check,
            balance_check,
            check_risk(settings),
            telegram_check,
        ]
    )
    log.info("preflight %s (failed: %s)", "passed" if report.ok else "FAILED", ", ".join(report.failed) or "none")
    return report

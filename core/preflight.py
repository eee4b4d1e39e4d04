"""Pre-trade checks: is this configuration fit to trade, and is everything it needs reachable?

:func:`run_preflight` returns a :class:`~core.control.types.PreflightReport` of
:class:`~core.control.types.PreflightCheck` rows, each with a one-line detail, in this order:

=============  ==============================================================================
config         the settings loaded, and every cross-field rule still holds
mode           paper / dry-run / LIVE, stated (always passes)
database       reachable and migrated to head (a missing SQLite file is not created)
market feed    a websocket to ``feed.ws_url`` opens, takes the subscribe message and answers
               ``PING`` with ``PONG`` (or a frame) within the timeout        [skipped offline]
clob           ``GET /time`` and ``GET /version`` on ``clob.url`` answer; version 2 [skipped offline]
clock skew     local clock vs the CLOB's ``/time`` within ``max_skew_s``     [skipped offline]
key & funder   key -> address -> funder -> signature type consistent (relayer.type = "real")
api creds      key, secret and passphrase present (live mode only)
secrets        no secret (key, API credentials, bot token, database password) comes from the main
               service file: FAIL in dry-run and live mode, SKIP with the advice in paper mode
allowances     pUSD and ConditionalTokens approvals of the maker for the V2 exchanges and the
               neg-risk adapter, read over JSON-RPC (only with relayer.rpc_url) [skipped offline]
balance        the pUSD collateral the venue holds for the account (``GET /balance-allowance``):
               FAIL in live mode when it is below ``risk.max_order_notional`` (orders the gate
               allows would be refused by the venue); shown in dry-run; the bankroll in paper
                                                                            [skipped offline]
risk limits    :meth:`core.risk.RiskLimits.problems` of the configured limits
telegram       token and at least one authorised user (only when telegram.enabled)
=============  ==============================================================================

A skipped check has ``ok=False, skipped=True`` so that every renderer (CLI, Telegram) that tests
``ok`` first shows it as SKIP, while :attr:`PreflightReport.ok` still counts it as passing.
Details never contain a secret: the private key, API secrets, the Telegram token and URL
passwords are never formatted, and every detail goes through :func:`core.redact.redact` too.

The service wires it into the control facade as ``lambda offline: run_preflight(loaded, offline=offline)``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ValidationError

from core.control.types import PreflightCheck, PreflightReport
from core.errors import PolybotError
from core.redact import redact
from core.risk import RiskLimits
from core.settings import (
    CrossFieldProblems,
    LoadedSettings,
    RiskSettings,
    Settings,
    secret_location_advice,
    secrets_in_main_file,
    set_secret_keys,
)
from core.types import Mode

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 5.0
"""Bound on each network probe (websocket open + PONG, each REST call, the database)."""
MAX_CLOCK_SKEW_S = 2.0
"""L2 auth headers carry our timestamp; a clock this far off gets requests refused."""

SIGNATURE_TYPE_NAMES = {0: "EOA", 1: "POLY_PROXY", 2: "POLY_GNOSIS_SAFE", 3: "POLY_1271 (deposit wallet)"}
_FUNDER_KIND = {1: "proxy", 2: "safe", 3: "deposit"}
_CRED_FIELDS = ("api_key", "api_secret", "api_passphrase")

# Check names, in report order (also what the Telegram /preflight table shows).
CONFIG = "config"
MODE = "mode"
DATABASE = "database"
FEED = "market feed"
CLOB = "clob"
CLOCK = "clock skew"
KEY = "key & funder"
CREDS = "api creds"
SECRETS = "secrets"
ALLOWANCES = "allowances"
BALANCE = "balance"
RISK = "risk limits"
TELEGRAM = "telegram"


# --------------------------------------------------------------------------- result helpers


def _pass(name: str, detail: str) -> PreflightCheck:
    return PreflightCheck(name, True, redact(detail))


def _fail(name: str, detail: str) -> PreflightCheck:
    return PreflightCheck(name, False, redact(detail))


def _skip(name: str, detail: str) -> PreflightCheck:
    return PreflightCheck(name, False, redact(detail), skipped=True)


def status_of(check: PreflightCheck) -> str:
    """``PASS``, ``FAIL`` or ``SKIP``."""
    if check.skipped:
        return "SKIP"
    return "PASS" if check.ok else "FAIL"


def failed_names(report: PreflightReport) -> list[str]:
    return [c.name for c in report.checks if not c.ok and not c.skipped]


def report_as_dict(report: PreflightReport) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "failed": failed_names(report),
        "checks": [
            {"name": c.name, "status": status_of(c), "ok": c.ok, "skipped": c.skipped, "detail": c.detail}
            for c in report.checks
        ],
    }


def report_lines(report: PreflightReport) -> list[str]:
    """The PASS/FAIL/SKIP table and a verdict line, for a terminal."""
    width = max((len(c.name) for c in report.checks), default=0)
    lines = [f"{status_of(c):<4}  {c.name:<{width}}  {c.detail}" for c in report.checks]
    failed = failed_names(report)
    skipped = sum(1 for c in report.checks if c.skipped)
    if failed:
        lines.append(f"preflight FAILED: {len(failed)} of {len(report.checks)} checks failed ({', '.join(failed)})")
    else:
        lines.append(f"preflight passed ({len(report.checks) - skipped} passed, {skipped} skipped)")
    return lines


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text and text[0] else type(exc).__name__


def _origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL: RPC URLs often carry an API key in their path or query."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "the configured URL"
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


async def _guard(name: str, coro: Awaitable[PreflightCheck], limit_s: float) -> PreflightCheck:
    """Run one check; an overrun or an unexpected error is that check's failure, never a crash."""
    try:
        return await asyncio.wait_for(coro, limit_s)
    except TimeoutError:
        return _fail(name, f"no answer within {limit_s:g} s")
    except Exception as exc:  # one broken check must not hide the others
        log.warning("preflight check %s raised %s", name, type(exc).__name__)
        return _fail(name, f"error: {_one_line(exc)}")


# --------------------------------------------------------------------------- config, mode


def _raw(model: BaseModel) -> dict[str, Any]:
    """The field values of a model as plain dicts (nested models too), for re-validation.

    Not ``model_dump``: it masks the database password and would not round-trip.
    """
    out: dict[str, Any] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            value = _raw(value)
        elif isinstance(value, list):
            value = [_raw(v) if isinstance(v, BaseModel) else v for v in value]
        out[name] = value
    return out


def check_config(loaded: LoadedSettings) -> PreflightCheck:
    where = str(loaded.config_path) if loaded.config_path else "defaults + environment"
    if loaded.secrets_path is not None:
        where += f" + {loaded.secrets_path.name}"
    try:
        # Settings may have been changed after loading (the service, tests): every rule again.
        Settings.model_validate(_raw(loaded.settings))
    except ValidationError as exc:
        problems = []
        for err in exc.errors():  # loc and message only: the input may be a secret
            loc = ".".join(str(p) for p in err["loc"])
            cause = (err.get("ctx") or {}).get("error")
            if isinstance(cause, CrossFieldProblems):
                problems += [f"{loc + '.' if loc else ''}{key}: {reason}" for key, reason, _ in cause.items]
            else:
                problems.append(f"{loc or 'settings'}: {str(err['msg']).removeprefix('Value error, ')}")
        return _fail(CONFIG, f"{where}: " + "; ".join(problems))
    return _pass(CONFIG, f"{where} loaded; every cross-check holds")


def check_mode(settings: Settings) -> PreflightCheck:
    mode = settings.mode
    if mode is Mode.PAPER:
        text = 'paper: relayer.type = "fake", orders are simulated locally, nothing reaches the venue'
    elif mode is Mode.DRY_RUN:
        text = f"dry-run: orders are signed for {settings.clob.url} and never posted"
    else:
        text = f"LIVE: orders are posted to {settings.clob.url} (after arm + per-order confirmation)"
    return _pass(MODE, text)


# --------------------------------------------------------------------------- database


async def check_database(settings: Settings, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> PreflightCheck:
    from core.store.db import connect_error, create_engine, mask_url, parse_db_url, sqlite_path
    from core.store.migrate import current_revision, head_revision

    url = settings.db.url
    shown = mask_url(url)
    try:
        parsed = parse_db_url(url)
    except PolybotError as exc:
        return _fail(DATABASE, str(exc))
    path = sqlite_path(parsed) if parsed.get_backend_name() == "sqlite" else None
    if path is not None and not path.expanduser().is_file():
        # Connecting would create an empty file; a check must not change anything.
        return _fail(DATABASE, f"{shown}: no such database file; run: polybot migrate --db-url URL --apply")
    engine = create_engine(parsed)
    try:
        try:
            revision = await asyncio.wait_for(current_revision(engine), timeout_s)
        except TimeoutError:
            return _fail(DATABASE, f"{shown}: no answer within {timeout_s:g} s")
        except Exception as exc:
            return _fail(DATABASE, str(connect_error(parsed, exc)))
    finally:
        await engine.dispose()
    head = head_revision()
    if revision != head:
        state = "has no schema" if revision is None else f"is at revision {revision}, not head {head}"
        return _fail(DATABASE, f"{shown} {state}; run: polybot migrate --db-url URL --apply")
    return _pass(DATABASE, f"{shown} reachable, migrated to head ({head})")


# --------------------------------------------------------------------------- market feed


async def check_feed(settings: Settings, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> PreflightCheck:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

    from core.feed.ws import subscribe_message

    url = settings.feed.ws_url
    assets = list(dict.fromkeys(settings.feed.assets))[: settings.feed.max_assets_per_connection]
    started = time.perf_counter()
    frames = 0
    try:
        async with asyncio.timeout(timeout_s):
            async with connect(
                url,
                open_timeout=timeout_s,
                close_timeout=1.0,
                ping_interval=None,  # the venue wants the text PING
                max_size=settings.feed.max_frame_bytes,
                proxy=None,
            ) as ws:
                await ws.send(subscribe_message(assets))
                await ws.send("PING")
                while True:
                    message = await ws.recv()
                    if message == "PONG":
                        break
                    frames += 1
                    if assets:
                        break  # a book for a subscribed asset: as good as a PONG
    except TimeoutError:
        return _fail(FEED, f"{url}: no PONG or frame within {timeout_s:g} s")
    except ConnectionClosed as exc:
        return _fail(FEED, f"{url}: closed by the server after subscribe ({_one_line(exc)})")
    except (OSError, InvalidHandshake, InvalidURI) as exc:
        return _fail(FEED, f"{url}: cannot connect ({_one_line(exc)})")
    ms = (time.perf_counter() - started) * 1000
    what = f"{frames} frame(s)" if frames else "PONG"
    subscribed = f"{len(assets)} asset(s)" if assets else "no assets configured"
    return _pass(FEED, f"{url}: connected, subscribed ({subscribed}), {what} in {ms:.0f} ms")


# --------------------------------------------------------------------------- CLOB and clock


def _server_seconds(payload: Any) -> float:
    """``/time`` answers unix seconds (the official client also accepts {"time"|"timestamp": ...})."""
    if isinstance(payload, dict):
        payload = payload.get("time") or payload.get("timestamp")
    if isinstance(payload, bool) or payload is None:
        raise ValueError("no time in the answer")
    value = float(Decimal(str(payload).strip()))
    if value > 1e11:  # milliseconds
        value /= 1000.0
    return value


async def check_clob(
    settings: Settings,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_skew_s: float = MAX_CLOCK_SKEW_S,
    transport: httpx.AsyncBaseTransport | None = None,
) -> tuple[PreflightCheck, PreflightCheck]:
    """(clob reachable, clock skew): both from one ``/time`` call, plus ``/version``."""
    base = settings.clob.url.rstrip("/")
    limit = min(settings.clob.timeout_s, timeout_s)
    not_measured = "not measured: the CLOB /time did not answer"
    async with httpx.AsyncClient(timeout=limit, transport=transport) as client:
        try:
            local_before = time.time()
            started = time.perf_counter()
            resp = await client.get(f"{base}/time")
            rtt = time.perf_counter() - started
            local_after = time.time()
        except httpx.HTTPError as exc:
            return _fail(CLOB, f"{base}/time unreachable ({_one_line(exc)})"), _skip(CLOCK, not_measured)
        if resp.status_code != 200:
            return _fail(CLOB, f"{base}/time answered HTTP {resp.status_code}"), _skip(CLOCK, not_measured)
        try:
            server = _server_seconds(resp.json())
        except (ValueError, ArithmeticError) as exc:
            return _fail(CLOB, f"{base}/time answered no time ({_one_line(exc)})"), _skip(CLOCK, not_measured)
        try:
            vresp = await client.get(f"{base}/version")
        except httpx.HTTPError as exc:
            clob = _fail(CLOB, f"{base}/version unreachable ({_one_line(exc)})")
        else:
            clob = _version_check(base, vresp, rtt)
    # /time is whole seconds, truncated: the server's clock lies in [server, server + 1).
    whole = server == int(server)
    estimate = server + (0.5 if whole else 0.0) - (local_before + local_after) / 2
    margin = (0.5 if whole else 0.0) + rtt / 2
    text = f"server clock {estimate:+.1f} s vs local (±{margin:.1f} s), limit {max_skew_s:g} s"
    if abs(estimate) > max_skew_s:
        skew = _fail(CLOCK, text + "; sync the clock (NTP): signed requests carry our timestamp")
    else:
        skew = _pass(CLOCK, text)
    return clob, skew


def _version_check(base: str, resp: httpx.Response, rtt: float) -> PreflightCheck:
    if resp.status_code != 200:
        return _fail(CLOB, f"{base}/version answered HTTP {resp.status_code}")
    try:
        payload = resp.json()
    except ValueError:
        return _fail(CLOB, f"{base}/version answered something that is not JSON")
    version = payload.get("version") if isinstance(payload, dict) else payload
    if version is not None and str(version) != "2":
        return _fail(CLOB, f"{base} reports version {version}; this build signs CLOB V2 orders")
    return _pass(CLOB, f"{base}: /time and /version answer (version {version or 2}), {rtt * 1000:.0f} ms")


# --------------------------------------------------------------------------- key, creds


def key_address(settings: Settings) -> str | None:
    """The address of ``relayer.private_key`` (None when unset or invalid). Never the key."""
    from eth_account import Account

    key = settings.relayer.private_key
    if key is None:
        return None
    try:
        return str(Account.from_key(key.get_secret_value()).address)
    except Exception:
        return None


def maker_address(settings: Settings) -> str | None:
    """The address that holds the funds: the funder (signature types 1-3), else the key's."""
    relayer = settings.relayer
    if relayer.signature_type != 0 and relayer.funder:
        return relayer.funder
    return key_address(settings) or relayer.funder


def check_key(settings: Settings) -> PreflightCheck:
    from eth_utils import is_checksum_address, is_hex_address, to_checksum_address

    from core.execution.relayers.clob_signing import OrderSigner

    relayer = settings.relayer
    if relayer.type != "real":
        return _skip(KEY, 'paper mode (relayer.type = "fake"): no key signs anything')
    if relayer.private_key is None:
        return _fail(KEY, 'relayer.private_key is not set (required when relayer.type = "real")')
    address = key_address(settings)
    if address is None:
        return _fail(KEY, "relayer.private_key is not a valid secp256k1 private key (value not shown)")
    sig = relayer.signature_type
    name = SIGNATURE_TYPE_NAMES.get(sig, "?")
    funder = (relayer.funder or "").strip() or None
    if funder is not None:
        if not is_hex_address(funder):
            return _fail(KEY, f"relayer.funder {funder} is not an address (0x + 40 hex digits)")
        if funder != funder.lower() and funder != funder.upper() and not is_checksum_address(funder):
            return _fail(
                KEY,
                f"relayer.funder {funder} fails its EIP-55 checksum (a mistyped digit?); "
                f"compare it with your wallet's address ({to_checksum_address(funder)} if only the case is off)",
            )
    if sig == 0:
        if funder is not None and funder.lower() != address.lower():
            return _fail(
                KEY,
                f"signature_type 0 (EOA) trades from the key's own address {address}, but relayer.funder is "
                f"{to_checksum_address(funder)}: remove funder, or set the signature type of that wallet "
                "(1 proxy, 2 safe, 3 deposit wallet)",
            )
    else:
        if funder is None:
            return _fail(KEY, f"signature_type {sig} ({name}) needs relayer.funder, the {_FUNDER_KIND[sig]} wallet")
        if funder.lower() == address.lower():
            return _fail(
                KEY,
                f"relayer.funder is the key's own address {address}; with signature_type {sig} ({name}) the "
                f"funder is the {_FUNDER_KIND[sig]} wallet that holds the funds (or use signature_type 0)",
            )
    try:
        signer = OrderSigner(
            relayer.private_key.get_secret_value(), chain_id=relayer.chain_id, signature_type=sig, funder=funder
        )
    except PolybotError as exc:  # its messages never contain the key
        return _fail(KEY, str(exc))
    if signer.address.lower() != address.lower():  # pragma: no cover - would be an SDK bug
        return _fail(KEY, f"the signing library derives {signer.address}, eth_account {address}")
    if sig == 0:
        return _pass(KEY, f"key -> {address}; signature_type 0 (EOA): maker = signer = {signer.maker}")
    return _pass(
        KEY,
        f"key -> {address} signs for funder {signer.maker}; signature_type {sig} ({name}), chain {relayer.chain_id}",
    )


def check_creds(settings: Settings) -> PreflightCheck:
    mode = settings.mode
    if mode is not Mode.LIVE:
        return _skip(CREDS, f"{mode.value} mode: nothing is posted, API credentials are not needed")
    missing = [f"relayer.{n}" for n in _CRED_FIELDS if getattr(settings.relayer, n) is None]
    if missing:
        return _fail(
            CREDS,
            f"live mode needs {', '.join(missing)} (derive them with L1 auth: GET /auth/derive-api-key)",
        )
    return _pass(CREDS, "api_key, api_secret and api_passphrase are set (values not shown)")


def check_secrets(loaded: LoadedSettings) -> PreflightCheck:
    """Secrets belong in secrets.local.toml (chmod 600) or the environment, never the main file:
    that one is copied, shared, pasted into tickets, and often readable by every user."""
    misplaced = secrets_in_main_file(loaded)
    mode = loaded.settings.mode
    if not misplaced:
        set_keys = set_secret_keys(loaded.settings)
        if not set_keys:
            return _pass(SECRETS, "no secret is configured")
        origins = sorted({loaded.sources.get(k, "default").partition(":")[0] for k in set_keys})
        named = {"secrets": "secrets.local.toml", "env": "the environment"}
        return _pass(SECRETS, f"{len(set_keys)} secret(s), from {' and '.join(named.get(o, o) for o in origins)}")
    advice = secret_location_advice(loaded, misplaced)
    if mode is Mode.PAPER:
        return _skip(SECRETS, f"paper mode, not enforced yet: {advice}")
    return _fail(SECRETS, advice)


# --------------------------------------------------------------------------- allowances


async def check_allowances(
    settings: Settings,
    owner: str,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    transport: httpx.AsyncBaseTransport | None = None,
) -> PreflightCheck:
    """Every pUSD and ConditionalTokens approval of ``owner``, read over ``relayer.rpc_url``."""
    from core.execution.approvals import JsonRpc, outcome_approvals, read_approvals, usdc_approvals

    url = settings.relayer.rpc_url
    assert url is not None
    where = _origin(url)
    rpc = JsonRpc(url, timeout_s=timeout_s, transport=transport)
    try:
        states = await read_approvals(rpc, owner, usdc_approvals() + outcome_approvals())
    except PolybotError as exc:
        # JsonRpc names the URL in its errors; show only its origin (the path may hold an API key).
        return _fail(ALLOWANCES, f"cannot read allowances via {where}: {str(exc).replace(url, where)}")
    finally:
        await rpc.aclose()
    missing = [f"{s.tx.kind.value} -> {s.tx.spender_name}" for s in states if not s.approved]
    if missing:
        return _fail(
            ALLOWANCES,
            f"{owner} is missing {len(missing)} of {len(states)} approvals: {', '.join(missing)}; "
            "see polybot relayer-approve-usdc / relayer-approve-outcome",
        )
    return _pass(ALLOWANCES, f"{owner}: all {len(states)} approvals present (read via {where})")


# --------------------------------------------------------------------------- balance


async def check_balance(
    settings: Settings, *, timeout_s: float = DEFAULT_TIMEOUT_S, transport: httpx.AsyncBaseTransport | None = None
) -> PreflightCheck:
    """What the venue says the account can spend, against the largest order the gate allows."""
    from core.execution.relayers.clob_config import clob_relayer

    # reads only: dry-run; every read bounded by the shorter of the two timeouts
    relayer = clob_relayer(
        settings, dry_run=True, transport=transport, timeout_s=min(settings.clob.timeout_s, timeout_s)
    )
    try:
        balance = await relayer.collateral_balance()
    except PolybotError as exc:
        return _fail(BALANCE, f"cannot read the pUSD balance from {_origin(settings.clob.url)}: {_one_line(exc)}")
    finally:
        await relayer.close()
    need = settings.risk.max_order_notional
    text = f"{balance.normalize():f} pUSD at the venue for {relayer.maker}"
    if balance < need and settings.mode is Mode.LIVE:
        return _fail(
            BALANCE,
            f"{text}, below risk.max_order_notional {need}: the venue would refuse orders the risk gate "
            "allows; fund the account or lower the limit",
        )
    return _pass(BALANCE, f"{text} (largest order allowed: {need})")


def _balance_check(settings: Settings, offline: bool, timeout_s: float, transport: Any) -> Awaitable[PreflightCheck]:
    r = settings.relayer
    if settings.mode is Mode.PAPER:
        return _skipped(_skip(BALANCE, f"paper mode: a bankroll of {settings.risk.paper_bankroll} pUSD"))
    if offline:
        return _skipped(_skip(BALANCE, "--offline"))
    if r.private_key is None or not (r.api_key and r.api_secret and r.api_passphrase):
        return _skipped(_skip(BALANCE, "no API credentials: the venue balance cannot be read"))
    return _guard(BALANCE, check_balance(settings, timeout_s=timeout_s, transport=transport), 2 * timeout_s + 1)


# --------------------------------------------------------------------------- limits, telegram


def risk_limits_from_settings(risk: RiskSettings) -> RiskLimits:
    """The risk gate's limits as configured in ``[risk]``."""
    return RiskLimits(
        max_order_notional=risk.max_order_notional,
        max_market_notional=risk.max_market_notional,
        max_event_notional=risk.max_event_notional,
        max_total_exposure=risk.max_total_exposure,
        daily_loss_limit=risk.max_daily_loss,
        error_breaker_max_errors=risk.error_rate_max,
        error_breaker_window_s=float(risk.error_rate_window_s),
        orders_per_s=float(risk.orders_per_s),
        order_burst=risk.orders_burst,
        cancels_per_s=float(risk.cancels_per_s),
        cancel_burst=risk.cancels_burst,
    )


def check_risk(settings: Settings) -> PreflightCheck:
    try:
        limits = risk_limits_from_settings(settings.risk)
    except (TypeError, ValueError) as exc:
        return _fail(RISK, f"cannot build the limits: {_one_line(exc)}")
    problems = limits.problems()
    if problems:
        return _fail(RISK, "; ".join(problems))
    return _pass(
        RISK,
        f"order {limits.max_order_notional}, market {limits.max_market_notional}, event {limits.max_event_notional}, "
        f"total {limits.max_total_exposure}, daily loss {limits.daily_loss_limit} pUSD; "
        f"{limits.orders_per_s:g} orders/s burst {limits.order_burst}",
    )


def check_telegram(settings: Settings) -> PreflightCheck:
    telegram = settings.telegram
    if not telegram.enabled:
        return _skip(TELEGRAM, "telegram.enabled = false")
    problems = []
    if telegram.token is None:
        problems.append("telegram.token is not set")
    if not telegram.users:
        problems.append("no authorised users (telegram.users is empty)")
    if problems:
        return _fail(TELEGRAM, "; ".join(problems))
    roles: dict[str, int] = {}
    for user in telegram.users:
        roles[user.role] = roles.get(user.role, 0) + 1
    listed = ", ".join(f"{n} {role}" for role, n in sorted(roles.items()))
    return _pass(TELEGRAM, f"token set (not shown), {len(telegram.users)} authorised user(s): {listed}")


# --------------------------------------------------------------------------- the report


async def _skipped(check: PreflightCheck) -> PreflightCheck:
    return check


async def run_preflight(
    loaded: LoadedSettings,
    *,
    offline: bool,
    http_transport: httpx.AsyncBaseTransport | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_skew_s: float = MAX_CLOCK_SKEW_S,
) -> PreflightReport:
    """Every check (see the module docstring); network probes run concurrently, each bounded.

    ``offline`` skips the feed, CLOB, clock and allowance probes. ``http_transport`` replaces the
    network for the CLOB and JSON-RPC calls (tests).
    """
    settings = loaded.settings
    limit = timeout_s + 1.0
    database = _guard(DATABASE, check_database(settings, timeout_s=timeout_s), limit)
    if offline:
        feed: Awaitable[PreflightCheck] = _skipped(_skip(FEED, "--offline"))
    else:
        feed = _guard(FEED, check_feed(settings, timeout_s=timeout_s), limit)

    async def clob_and_clock() -> tuple[PreflightCheck, PreflightCheck]:
        if offline:
            return _skip(CLOB, "--offline"), _skip(CLOCK, "--offline")
        try:
            return await asyncio.wait_for(
                check_clob(settings, timeout_s=timeout_s, max_skew_s=max_skew_s, transport=http_transport),
                2 * limit,
            )
        except TimeoutError:
            return _fail(CLOB, f"no answer within {2 * limit:g} s"), _skip(CLOCK, "not measured")
        except Exception as exc:
            return _fail(CLOB, f"error: {_one_line(exc)}"), _skip(CLOCK, "not measured")

    owner = maker_address(settings)
    if settings.relayer.rpc_url is None:
        allowances: Awaitable[PreflightCheck] = _skipped(
            _skip(ALLOWANCES, "relayer.rpc_url is not set: on-chain approvals not checked")
        )
    elif offline:
        allowances = _skipped(_skip(ALLOWANCES, "--offline"))
    elif owner is None:
        allowances = _skipped(_skip(ALLOWANCES, "no key or funder configured: no address to check"))
    else:
        allowances = _guard(
            ALLOWANCES,
            check_allowances(settings, owner, timeout_s=timeout_s, transport=http_transport),
            6 * limit,  # six eth_calls, one after another
        )

    balance = _balance_check(settings, offline, timeout_s, http_transport)
    db_check, feed_check, (clob_check, clock_check), allowance_check, balance_check = await asyncio.gather(
        database, feed, clob_and_clock(), allowances, balance
    )
    checks = [
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
        check_telegram(settings),
    ]
    report = PreflightReport(checks)
    log.info(
        "preflight %s (failed: %s)", "passed" if report.ok else "FAILED", ", ".join(failed_names(report)) or "none"
    )
    return report

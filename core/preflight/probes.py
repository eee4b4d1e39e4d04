"""The checks that reach a service: the database, the market feed, the CLOB and its clock, the
on-chain allowances, the venue balance. Each is bounded by ``timeout_s``; ``transport`` replaces
the network for HTTP and JSON-RPC (tests)."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import TYPE_CHECKING

from core.control.types import PreflightCheck
from core.errors import PolybotError
from core.preflight.report import (
    ALLOWANCES,
    BALANCE,
    CLOB,
    CLOCK,
    DATABASE,
    FEED,
    failed,
    one_line,
    origin_of,
    passed,
    skipped,
)
from core.settings import Settings
from core.types import Mode

if TYPE_CHECKING:  # httpx loads only when a probe goes on the network (not with --offline)
    import httpx

DEFAULT_TIMEOUT_S = 5.0
"""Bound on each network probe (websocket open + PONG, each REST call, the database)."""
MAX_CLOCK_SKEW_S = 2.0
"""L2 auth headers carry our timestamp; a clock this far off gets requests refused."""


async def check_database(settings: Settings, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> PreflightCheck:
    from core.store.db import connect_error, create_engine, mask_url, parse_db_url, sqlite_path
    from core.store.migrate import current_revision, head_revision

    url = settings.db.url
    shown = mask_url(url)
    try:
        parsed = parse_db_url(url)
    except PolybotError as exc:
        return failed(DATABASE, str(exc))
    path = sqlite_path(parsed) if parsed.get_backend_name() == "sqlite" else None
    if path is not None and not path.expanduser().is_file():
        # Connecting would create an empty file; a check must not change anything.
        return failed(DATABASE, f"{shown}: no such database file; run: polybot migrate --db-url URL --apply")
    engine = create_engine(parsed)
    try:
        try:
            revision = await asyncio.wait_for(current_revision(engine), timeout_s)
        except TimeoutError:
            return failed(DATABASE, f"{shown}: no answer within {timeout_s:g} s")
        except Exception as exc:
            return failed(DATABASE, str(connect_error(parsed, exc)))
    finally:
        await engine.dispose()
    head = head_revision()
    if revision != head:
        state = "has no schema" if revision is None else f"is at revision {revision}, not head {head}"
        return failed(DATABASE, f"{shown} {state}; run: polybot migrate --db-url URL --apply")
    return passed(DATABASE, f"{shown} reachable, migrated to head ({head})")


# --------------------------------------------------------------------------- market feed


def named_markets(settings: Settings) -> list[str]:
    """The market references the service resolves at start: [feed] markets and the strategies' markets."""
    s = settings.strategies
    return list(dict.fromkeys([*settings.feed.markets, *s.dutch.markets, *s.spread.markets]))


async def _stored_tokens(settings: Settings, refs: list[str]) -> list[str]:
    """The outcome tokens of the named markets, looked up in the database as the service does at
    start. ``MarketLookupError`` for a name it does not know; ``LookupError`` when there is no
    database to look in (the database check says why)."""
    from core.markets import resolve_market
    from core.store.db import create_engine, parse_db_url, sqlite_path

    parsed = parse_db_url(settings.db.url)
    path = sqlite_path(parsed) if parsed.get_backend_name() == "sqlite" else None
    if path is not None and not path.expanduser().is_file():  # connecting would create the file
        raise LookupError("no database file")
    engine = create_engine(parsed)
    try:
        tokens: list[str] = []
        for ref in refs:
            tokens += [t.token_id for t in (await resolve_market(engine, ref)).tokens]
        return tokens
    finally:
        await engine.dispose()


async def feed_subscription(settings: Settings) -> tuple[list[str], str]:
    """What the feed check subscribes (the named markets' outcomes, then [feed] assets), and what
    the configuration names, in words. Raises ``MarketLookupError`` for an unknown market name."""
    from core.markets import MarketLookupError

    refs, raw = named_markets(settings), list(dict.fromkeys(settings.feed.assets))
    tokens: list[str] = []
    named: list[str] = []
    if refs:
        try:
            tokens = await _stored_tokens(settings, refs)
            named.append(f"{len(refs)} market(s) named, {len(tokens)} outcome(s)")
        except MarketLookupError:
            raise
        except Exception as exc:  # the database check reports the database's problem
            named.append(f"{len(refs)} market(s) named, not looked up ({one_line(exc)})")
    if raw:
        named.append(f"{len(raw)} asset(s) in feed.assets")
    if not named:
        rules = " (the [[feed.watch]] rules select at start)" if settings.feed.watch else ""
        named.append(f"no market named in [feed] markets or the strategies, no feed.assets{rules}")
    return list(dict.fromkeys(tokens + raw)), "; ".join(named)


async def check_feed(settings: Settings, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> PreflightCheck:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

    from core.feed.connection import subscribe_message
    from core.markets import MarketLookupError

    url = settings.feed.ws_url
    try:
        wanted, configured = await asyncio.wait_for(feed_subscription(settings), timeout_s)
    except MarketLookupError as exc:
        return failed(FEED, f"{exc}: run-service would stop at start (polybot markets lists what is stored)")
    assets = wanted[: settings.feed.max_assets_per_connection]
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
        return failed(FEED, f"{url}: no PONG or frame within {timeout_s:g} s")
    except ConnectionClosed as exc:
        return failed(FEED, f"{url}: closed by the server after subscribe ({one_line(exc)})")
    except (OSError, InvalidHandshake, InvalidURI) as exc:
        return failed(FEED, f"{url}: cannot connect ({one_line(exc)})")
    ms = (time.perf_counter() - started) * 1000
    what = f"{frames} frame(s)" if frames else "PONG"
    cut = f" (the first {len(assets)} of {len(wanted)}: one connection's worth)" if len(assets) < len(wanted) else ""
    subscribed = f"subscribed to {len(assets)} asset(s){cut}" if assets else "subscribed to nothing"
    return passed(FEED, f"{url}: connected, {subscribed}, {what} in {ms:.0f} ms; config: {configured}")


# --------------------------------------------------------------------------- CLOB and clock


def _server_seconds(payload: object) -> float:
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
    import httpx

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
            return failed(CLOB, f"{base}/time unreachable ({one_line(exc)})"), skipped(CLOCK, not_measured)
        if resp.status_code != 200:
            return failed(CLOB, f"{base}/time answered HTTP {resp.status_code}"), skipped(CLOCK, not_measured)
        try:
            server = _server_seconds(resp.json())
        except (ValueError, ArithmeticError) as exc:
            return failed(CLOB, f"{base}/time answered no time ({one_line(exc)})"), skipped(CLOCK, not_measured)
        try:
            vresp = await client.get(f"{base}/version")
        except httpx.HTTPError as exc:
            clob = failed(CLOB, f"{base}/version unreachable ({one_line(exc)})")
        else:
            clob = _version_check(base, vresp, rtt)
    # /time is whole seconds, truncated: the server's clock lies in [server, server + 1).
    whole = server == int(server)
    estimate = server + (0.5 if whole else 0.0) - (local_before + local_after) / 2
    margin = (0.5 if whole else 0.0) + rtt / 2
    text = f"server clock {estimate:+.1f} s vs local (±{margin:.1f} s), limit {max_skew_s:g} s"
    if abs(estimate) > max_skew_s:
        skew = failed(CLOCK, text + "; sync the clock (NTP): signed requests carry our timestamp")
    else:
        skew = passed(CLOCK, text)
    return clob, skew


def _version_check(base: str, resp: httpx.Response, rtt: float) -> PreflightCheck:
    if resp.status_code != 200:
        return failed(CLOB, f"{base}/version answered HTTP {resp.status_code}")
    try:
        payload = resp.json()
    except ValueError:
        return failed(CLOB, f"{base}/version answered something that is not JSON")
    version = payload.get("version") if isinstance(payload, dict) else payload
    if version is not None and str(version) != "2":
        return failed(CLOB, f"{base} reports version {version}; this build signs CLOB V2 orders")
    return passed(CLOB, f"{base}: /time and /version answer (version {version or 2}), {rtt * 1000:.0f} ms")


# --------------------------------------------------------------------------- allowances


async def check_allowances(
    settings: Settings,
    owner: str,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    transport: httpx.AsyncBaseTransport | None = None,
) -> PreflightCheck:
    """Every pUSD and ConditionalTokens approval of ``owner``, read over ``chain.rpc_url``."""
    from core.chain.rpc import JsonRpc
    from core.execution.approvals import outcome_approvals, read_approvals, usdc_approvals

    url = settings.chain.rpc_url
    assert url is not None
    where = origin_of(url)
    rpc = JsonRpc(url, timeout_s=timeout_s, transport=transport)
    try:
        states = await read_approvals(rpc, owner, usdc_approvals() + outcome_approvals())
    except PolybotError as exc:
        # JsonRpc names the URL in its errors; show only its origin (the path may hold an API key).
        return failed(ALLOWANCES, f"cannot read allowances via {where}: {str(exc).replace(url, where)}")
    finally:
        await rpc.aclose()
    missing = [f"{s.tx.kind.value} -> {s.tx.spender_name}" for s in states if not s.approved]
    if missing:
        return failed(
            ALLOWANCES,
            f"{owner} is missing {len(missing)} of {len(states)} approvals: {', '.join(missing)}; "
            "see polybot relayer-approve-usdc / relayer-approve-outcome",
        )
    return passed(ALLOWANCES, f"{owner}: all {len(states)} approvals present (read via {where})")


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
        return failed(BALANCE, f"cannot read the pUSD balance from {origin_of(settings.clob.url)}: {one_line(exc)}")
    finally:
        await relayer.close()
    need = settings.risk.max_order_notional
    text = f"{balance.normalize():f} pUSD at the venue for {relayer.maker}"
    if balance < need and settings.mode is Mode.LIVE:
        return failed(
            BALANCE,
            f"{text}, below risk.max_order_notional {need}: the venue would refuse orders the risk gate "
            "allows; fund the account or lower the limit",
        )
    return passed(BALANCE, f"{text} (largest order allowed: {need})")

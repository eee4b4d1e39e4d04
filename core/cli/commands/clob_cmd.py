"""CLOB commands: ``relayer-dry-run``, ``relayer-approve-usdc``, ``relayer-approve-outcome``, ``mock-clob``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import uuid
from decimal import Decimal, InvalidOperation
from typing import Any

from core.cli.main import add_command
from core.errors import PolybotError, UsageError
from core.execution.relayers.clob_signing import MarketParams

PRIVATE_KEY_ENV = "POLYBOT_PRIVATE_KEY"
DEFAULT_CLOB_URL = "https://clob.polymarket.com"
SIGNATURE_TYPE_NAMES = {0: "EOA", 1: "POLY_PROXY", 2: "POLY_GNOSIS_SAFE", 3: "POLY_1271 (deposit wallet)"}


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = add_command(
        sub,
        "relayer-dry-run",
        help="build and sign a CLOB V2 order with the real client and print it (never posted)",
        example=(
            "polybot relayer-dry-run 0xabc...condition Yes BUY 0.45 10 --base-url http://127.0.0.1:8081 "
            "--private-key env:POLYBOT_PRIVATE_KEY --json"
        ),
        description=(
            "Build and sign a CLOB V2 order exactly as live mode would, print it, and never post it. "
            "MARKET is a token id, or a condition id (or, with --db-url, a slug) whose OUTCOME (name or token "
            "id) picks the token. Tick size and neg-risk come from the markets table (--db-url) or from "
            "--base-url unless given. With --db-url the signed order is stored in the orders table."
        ),
    )
    p.add_argument("market", metavar="MARKET", help="token id, or condition id (0x...)")
    p.add_argument("outcome", metavar="OUTCOME", help="outcome name (Yes/No/...) or token id; ignored for a token id")
    p.add_argument("side", metavar="SIDE", type=str.upper, choices=["BUY", "SELL"])
    p.add_argument("price", metavar="PRICE", help="limit price on the market's tick grid, e.g. 0.45")
    p.add_argument("size", metavar="SIZE", help="shares, at most 2 decimals")
    p.add_argument("--base-url", default=DEFAULT_CLOB_URL, help=f"CLOB REST URL (default {DEFAULT_CLOB_URL})")
    p.add_argument(
        "--private-key",
        default=None,
        help=f"hex key, or env:NAME to read it from an environment variable (default: ${PRIVATE_KEY_ENV})",
    )
    p.add_argument(
        "--db-url",
        default=None,
        help="migrated database: MARKET may then be a slug, markets are read from it, and the order is stored",
    )
    p.add_argument(
        "--signature-type", type=int, choices=[0, 1, 2, 3], default=0, help="0 EOA, 1 proxy, 2 safe, 3 deposit wallet"
    )
    p.add_argument("--funder", default=None, help="address holding the funds (required for signature types 1-3)")
    p.add_argument(
        "--neg-risk", action=argparse.BooleanOptionalAction, default=None, help="sign for the neg-risk exchange"
    )
    p.add_argument("--tick-size", default=None, help="market tick size (e.g. 0.01); read from --base-url when absent")
    p.add_argument("--order-type", type=str.upper, choices=["GTC", "GTD", "FOK", "FAK"], default="GTC")
    p.add_argument("--post-only", action="store_true")
    p.add_argument("--expiration", type=int, default=0, help="GTD expiry, unix seconds")
    p.add_argument("--chain-id", type=int, default=137)
    p.add_argument("--api-key", default="", help="API key (public id) to fill the body's owner field")
    p.add_argument("--client-order-id", default=None, help="idempotency key (default: random)")
    p.add_argument("--timeout", type=float, default=10.0, help="REST timeout in seconds")
    p.add_argument("--json", action="store_true", help="print exactly the body the client would POST /order")
    p.set_defaults(func=cmd_relayer_dry_run)

    for name, kind, what in (
        ("relayer-approve-usdc", "usdc", "pUSD approve(spender, max)"),
        ("relayer-approve-outcome", "outcome", "ConditionalTokens setApprovalForAll(spender, true)"),
    ):
        p = add_command(
            sub,
            name,
            help=f"print the {what} transactions for the V2 exchanges and the neg-risk adapter",
            example=f"polybot {name} --address 0xYourFunder --rpc-url https://polygon-rpc.example --json",
            description=(
                f"Print the exact {what} transactions (target contract, calldata) needed by the CTF "
                "Exchange V2, the NegRisk Exchange V2 and the NegRisk Adapter. With --rpc-url, read the "
                "current allowances of --address over JSON-RPC eth_call and exit 1 when any is missing."
            ),
        )
        p.add_argument("--address", default=None, help="the funder address that holds the funds")
        p.add_argument("--rpc-url", default=None, help="Polygon JSON-RPC URL to read current allowances")
        p.add_argument("--timeout", type=float, default=10.0, help="RPC timeout in seconds")
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=cmd_approve, approval_kind=kind)

    p = add_command(
        sub,
        "mock-clob",
        help="run the local CLOB V2 double (REST + /ws/user) until interrupted",
        example="polybot mock-clob --port 0",
        description=(
            "Run the local CLOB double on 127.0.0.1. The first line printed is the REST URL (with --port 0 a "
            "free port is picked), the second the user-channel websocket URL; then the demo markets."
        ),
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8081, help="REST port (0 = pick a free one)")
    p.add_argument("--ws-port", type=int, default=0, help="user-channel websocket port (0 = pick a free one)")
    p.add_argument("--confirm-delay", type=float, default=2.0, help="seconds from MATCHED to CONFIRMED")
    p.add_argument("--settlement", choices=["confirm", "fail"], default="confirm", help="how trades settle")
    p.add_argument(
        "--heartbeat-timeout", type=float, default=10.0, help="cancel a key's orders after this long without heartbeats"
    )
    p.set_defaults(func=cmd_mock_clob)


# --------------------------------------------------------------------------- relayer-dry-run


def resolve_private_key(value: str | None) -> str:
    if value is None:
        value = os.environ.get(PRIVATE_KEY_ENV, "")
        if not value:
            raise UsageError(f"no private key: pass --private-key or set ${PRIVATE_KEY_ENV}")
        return value
    if value.startswith("env:"):
        name = value[4:]
        key = os.environ.get(name, "")
        if not key:
            raise UsageError(f"environment variable {name} is empty or unset")
        return key
    return value


def _decimal(value: str, what: str) -> Decimal:
    try:
        result = Decimal(value)
    except InvalidOperation:
        raise UsageError(f"{what} must be a decimal number, got {value!r}") from None
    if not result.is_finite():
        raise UsageError(f"{what} must be finite, got {value!r}")
    return result


def _params_from_info(info: Any, outcome: str) -> tuple[str, str, MarketParams]:
    """(condition id, token id, params) of a stored market's outcome (name or token id)."""
    try:
        token = info.token(outcome)
    except KeyError as exc:
        names = ", ".join(t.outcome for t in info.tokens) or "none"
        raise UsageError(f"{exc.args[0]} (outcomes: {names})") from None
    return (
        info.condition_id,
        token.token_id,
        MarketParams(
            token_id=token.token_id,
            tick_size=info.tick_size,
            neg_risk=info.neg_risk,
            condition_id=info.condition_id,
            outcome=token.outcome,
            min_order_size=info.min_order_size,
            fee_rate=info.fee_rate,
        ),
    )


async def _resolve_from_db(args: argparse.Namespace, engine: Any) -> tuple[str, str, MarketParams] | None:
    """The market from the markets table, or None when it is not stored there."""
    from core.markets import MarketLookupError, market_for_token, resolve_market

    market: str = args.market.strip()
    if market.isdigit():
        info = await market_for_token(engine, market)
        return None if info is None else _params_from_info(info, market)
    try:
        info = await resolve_market(engine, market)
    except MarketLookupError:
        if market.startswith("0x"):
            return None  # not stored: ask the venue
        raise
    return _params_from_info(info, args.outcome.strip())


async def _resolve_from_venue(args: argparse.Namespace, relayer: Any) -> tuple[str, str, MarketParams | None]:
    """(condition id or "", token id, params from the venue or None when flags say it all)."""
    from core.execution.relayers.clob import market_params_from_market
    from core.execution.relayers.clob_http import VenueError
    from core.execution.relayers.clob_signing import MarketParams

    market: str = args.market.strip()
    if market.isdigit():
        token = market
        if args.tick_size is not None and args.neg_risk is not None:
            return "", token, None
        try:
            tick = await relayer.get_public("/tick-size", {"token_id": token})
            neg = await relayer.get_public("/neg-risk", {"token_id": token})
        except VenueError as err:
            raise PolybotError(
                f"cannot read tick size / neg-risk of token {token} from {args.base_url}: {err}"
            ) from None
        return (
            "",
            token,
            MarketParams(
                token_id=token,
                tick_size=_decimal(str(tick["minimum_tick_size"]), "tick size"),
                neg_risk=bool(neg["neg_risk"]),
            ),
        )
    if not market.startswith("0x"):
        raise UsageError(
            f"MARKET must be a token id (digits) or a condition id (0x...), got {market!r} (slugs need --db-url)"
        )
    try:
        payload = await relayer.get_public(f"/markets/{market}")
        params = market_params_from_market(payload)
    except (VenueError, ValueError, TypeError, AttributeError) as err:
        raise PolybotError(f"cannot read market {market} from {args.base_url}: {err}") from None
    want = args.outcome.strip().lower()
    for p in params:
        if p.outcome.lower() == want or p.token_id == args.outcome.strip():
            return market, p.token_id, p
    names = ", ".join(p.outcome for p in params) or "none"
    raise UsageError(f"market {market} has no outcome {args.outcome!r} (outcomes: {names})")


async def _open_db(db_url: str) -> Any:
    """An engine on a migrated database (refuses an unmigrated one: no silent schema changes)."""
    from core.store.db import connect_error, create_engine
    from core.store.migrate import current_revision, head_revision

    engine = create_engine(db_url)
    try:
        revision = await current_revision(engine)
    except Exception as exc:
        await engine.dispose()
        raise connect_error(db_url, exc) from None
    if revision != head_revision():
        await engine.dispose()
        raise PolybotError(
            f"the database is not migrated (revision {revision or 'none'}); run: polybot migrate --db-url URL --apply"
        )
    return engine


async def _store_dry_run(engine: Any, order: Any, result: Any) -> None:
    """Store the signed dry-run order in the orders table (status dry_run, mode dry-run)."""
    import time

    from core.execution.store import OrderRecord, SqlExecutionStore
    from core.store.db import session_factory
    from core.types import Mode

    rec = OrderRecord.from_request(
        order, mode=Mode.DRY_RUN.value, group_id=None, reason="relayer-dry-run", ts=time.time()
    )
    rec.status = result.status
    rec.order_hash = result.order_hash
    rec.signed_order = result.signed_order
    if not await SqlExecutionStore(session_factory(engine)).save_order(rec):
        raise PolybotError(f"an order with client order id {order.client_order_id} is already stored")


async def _dry_run(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    from core.execution.relayers.clob import ClobRelayer
    from core.execution.types import OrderRequest, Outcome
    from core.types import OrderType, Side

    key = resolve_private_key(args.private_key)
    price = _decimal(args.price, "PRICE")
    size = _decimal(args.size, "SIZE")
    creds = (args.api_key, "", "") if args.api_key else None
    relayer = ClobRelayer(
        args.base_url,
        args.chain_id,
        key,
        signature_type=args.signature_type,
        funder=args.funder,
        api_creds=creds,
        dry_run=True,
        timeout_s=args.timeout,
    )
    engine = await _open_db(args.db_url) if args.db_url else None
    try:
        resolved = await _resolve_from_db(args, engine) if engine is not None else None
        condition_id, token, params = resolved or await _resolve_from_venue(args, relayer)
        tick = _decimal(args.tick_size, "--tick-size") if args.tick_size is not None else None
        neg_risk = args.neg_risk
        if params is not None:
            if tick is not None and tick < params.tick_size:
                raise UsageError(f"--tick-size {tick} is finer than the market's minimum {params.tick_size}")
            if neg_risk is not None and neg_risk != params.neg_risk:
                raise UsageError(f"--neg-risk={neg_risk} contradicts the market (neg_risk={params.neg_risk})")
            relayer.prewarm_token(
                token,
                tick or params.tick_size,
                params.neg_risk,
                condition_id=params.condition_id,
                min_order_size=params.min_order_size,
                fee_rate=params.fee_rate,
            )
        order = OrderRequest(
            client_order_id=args.client_order_id or f"dry-{uuid.uuid4().hex[:16]}",
            market=condition_id,
            token_id=token,
            side=Side(args.side),
            price=price,
            size=size,
            order_type=OrderType(args.order_type),
            post_only=args.post_only,
            tick_size=tick or (params.tick_size if params else Decimal("0.01")),
            neg_risk=bool(neg_risk) if params is None else params.neg_risk,
            fee_rate=params.fee_rate if params else Decimal(0),
            expiration=args.expiration,
        )
        result = await relayer.place(order)
        if result.outcome is not Outcome.ACCEPTED or result.signed_order is None:
            raise PolybotError(f"order refused: {result.error}")
        if engine is not None:
            await _store_dry_run(engine, order, result)
        return relayer, order, result
    finally:
        await relayer.close()
        if engine is not None:
            await engine.dispose()


def cmd_relayer_dry_run(args: argparse.Namespace) -> int:
    from core.execution.relayers.clob_signing import serialize_body
    from core.money import from_units

    relayer, order, result = asyncio.run(_dry_run(args))
    if args.json:
        print(serialize_body(result.signed_order))
        return 0
    body = result.signed_order
    signed = body["order"]
    maker_amount, taker_amount = int(signed["makerAmount"]), int(signed["takerAmount"])
    pay, get = ("pUSD", "shares") if signed["side"] == "BUY" else ("shares", "pUSD")
    signed_order = relayer.signed_order(order.client_order_id)
    exchange = signed_order.exchange if signed_order else ""
    exchange_name = "NegRisk CTF Exchange V2" if exchange == relayer.signer.neg_risk_exchange else "CTF Exchange V2"
    rows = [
        ("mode", "DRY RUN: signed, NOT posted" + (" (stored)" if args.db_url else "")),
        ("client order id", order.client_order_id),
        ("exchange", f"{exchange} ({exchange_name})"),
        ("order hash", result.order_hash or ""),
        ("maker", signed["maker"]),
        ("signer", signed["signer"]),
        ("token id", signed["tokenId"]),
        ("side", signed["side"]),
        ("price", str(order.price)),
        ("size", str(order.size)),
        ("maker amount", f"{maker_amount} ({from_units(maker_amount).normalize():f} {pay})"),
        ("taker amount", f"{taker_amount} ({from_units(taker_amount).normalize():f} {get})"),
        ("order type", f"{body['orderType']}{' post-only' if body['postOnly'] else ''}"),
        ("signature type", f"{signed['signatureType']} ({SIGNATURE_TYPE_NAMES[int(signed['signatureType'])]})"),
        ("salt", str(signed["salt"])),
        ("timestamp", str(signed["timestamp"])),
        ("signature", signed["signature"]),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    return 0


# --------------------------------------------------------------------------- approvals


async def _approvals(args: argparse.Namespace) -> tuple[list[Any], list[Any] | None]:
    from core.execution.approvals import JsonRpc, outcome_approvals, read_approvals, usdc_approvals

    txs = usdc_approvals() if args.approval_kind == "usdc" else outcome_approvals()
    if not args.rpc_url:
        return txs, None
    if not args.address:
        raise UsageError("--rpc-url needs --address (the funder address whose allowances to read)")
    rpc = JsonRpc(args.rpc_url, timeout_s=args.timeout)
    try:
        return txs, await read_approvals(rpc, args.address, txs)
    finally:
        await rpc.aclose()


def cmd_approve(args: argparse.Namespace) -> int:
    from eth_utils import to_checksum_address

    if args.address:
        try:
            args.address = to_checksum_address(args.address)
        except (ValueError, TypeError):
            raise UsageError(f"--address is not an address: {args.address!r}") from None
    txs, states = asyncio.run(_approvals(args))
    missing = [s for s in states or [] if not s.approved]
    if args.json:
        out: dict[str, Any] = {
            "kind": "pUSD" if args.approval_kind == "usdc" else "ConditionalTokens",
            "address": args.address,
            "checked": states is not None,
            "transactions": [
                {**(s.as_dict() if states else t.as_dict()), **({"from": args.address} if args.address else {})}
                for t, s in zip(txs, states or txs, strict=True)
            ],
            "missing": [s.tx.spender_name for s in missing],
        }
        print(json.dumps(out, indent=2))
    else:
        token = txs[0].token
        title = (
            "pUSD (collateral) approvals" if args.approval_kind == "usdc" else "ConditionalTokens (outcome) approvals"
        )
        sender = args.address or "the funder address"
        print(f"{title}: send each transaction to {token} from {sender}, value 0")
        for i, tx in enumerate(txs):
            print(f"\n{tx.spender_name}")
            print(f"  spender   {tx.spender}")
            print(f"  to        {tx.token}")
            print(f"  function  {tx.function}")
            print(f"  data      {tx.data}")
            if states is not None:
                print(f"  current   {states[i].describe()}")
        if states is not None:
            print(
                f"\n{len(missing)} of {len(txs)} approvals missing"
                + (": " + ", ".join(s.tx.spender_name for s in missing) if missing else "")
            )
    return 1 if missing else 0


# --------------------------------------------------------------------------- mock-clob


async def _run_mock(args: argparse.Namespace) -> None:
    from core.sim.mock_clob import MockClobServer

    server = MockClobServer(
        args.host,
        args.port,
        ws_port=args.ws_port,
        confirm_delay_s=args.confirm_delay,
        settlement=args.settlement,
        heartbeat_timeout_s=args.heartbeat_timeout,
    )
    try:
        await server.start()
    except OSError as exc:
        raise PolybotError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    print(server.url, flush=True)
    print(f"user channel: {server.ws_url}")
    for market in server.markets.values():
        kind = "neg-risk" if market.neg_risk else "binary"
        print(f"market {market.condition_id} ({kind}, tick {market.tick_size}): {market.question}")
        for token, outcome in market.tokens:
            print(f"  {outcome:<4} {token}")
    print("API keys: derive with L1 auth (GET /auth/derive-api-key); Ctrl-C to stop", flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop()
        print("mock-clob stopped", file=sys.stderr, flush=True)


def cmd_mock_clob(args: argparse.Namespace) -> int:
    asyncio.run(_run_mock(args))
    return 0

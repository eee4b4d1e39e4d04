"""CLOB commands: ``relayer-dry-run``, ``relayer-approve-usdc``, ``relayer-approve-outcome``, ``mock-clob``."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import TYPE_CHECKING, Any

from core.defaults import DEFAULT_CLOB_URL
from core.errors import PolybotError, UsageError
from polybot.cli import common
from polybot.cli.common import stop_on_signals
from polybot.cli.main import add_command
from polybot.cli.tools.from_config import add_config, settings_of

if TYPE_CHECKING:
    from polybot.cli.main import Subcommands

PRIVATE_KEY_ENV = "POLYBOT_RELAYER__PRIVATE_KEY"
"""The settings' ``relayer.private_key`` as an environment variable: the one name everywhere."""
DEFAULT_CHAIN_ID = 137
_UNIX_SECONDS = common.int_arg(0, 253_402_300_799, unit="unix seconds")  # up to the year 9999
_CHAIN_ID = common.int_arg(1, 2**53)


def register(sub: Subcommands) -> None:
    p = add_command(
        sub,
        "relayer-dry-run",
        help="build and sign a CLOB V2 order with the real client and print it (never posted)",
        example=(
            "polybot relayer-dry-run --config var/sandbox/service.toml demo-btc-above-150k-2026 Yes BUY 0.45 10"
            "  # while polybot sandbox runs"
        ),
        description=(
            "Build and sign a CLOB V2 order exactly as live mode would, print it, and never post it. "
            "MARKET is a token id, or a condition id (or, with --db-url, a slug) whose OUTCOME (name or token "
            "id) picks the token. Tick size and neg-risk come from the markets table (--db-url) or from "
            "--base-url unless given. With --db-url the signed order is stored in the orders table. "
            "--config FILE takes the CLOB URL, the key, signature type, funder, chain id, API key and "
            "database from a service TOML (and the secrets.local.toml beside it), as smoke-live signs."
        ),
    )
    common.order_arguments(
        p,
        market_help="token id, or condition id (0x...)",
        outcome_help="outcome name (Yes/No/...) or token id; ignored for a token id",
    )
    p.add_argument("--base-url", type=common.http_url, default=None, help=f"CLOB REST URL (default {DEFAULT_CLOB_URL})")
    p.add_argument(
        "--private-key",
        default=None,
        help=f"hex key, or env:NAME to read it from an environment variable (default: ${PRIVATE_KEY_ENV})",
    )
    add_config(p, "clob.url, relayer.private_key, signature_type, funder, chain_id, api_key and db.url")
    p.add_argument(
        "--db-url",
        type=common.db_url,
        default=None,
        help="migrated database: MARKET may then be a slug, markets are read from it, and the order is stored",
    )
    p.add_argument(
        "--signature-type",
        type=int,
        choices=[0, 1, 2, 3],
        default=None,
        help="0 EOA (default), 1 proxy, 2 safe, 3 deposit wallet",
    )
    p.add_argument("--funder", default=None, help="address holding the funds (required for signature types 1-3)")
    p.add_argument(
        "--neg-risk", action=argparse.BooleanOptionalAction, default=None, help="sign for the neg-risk exchange"
    )
    p.add_argument(
        "--tick-size",
        type=common.tick_size,
        default=None,
        help="market tick size (e.g. 0.01); read from --base-url when absent",
    )
    p.add_argument("--order-type", type=str.upper, choices=["GTC", "GTD", "FOK", "FAK"], default="GTC")
    p.add_argument("--post-only", action="store_true")
    p.add_argument("--expiration", type=_UNIX_SECONDS, default=0, help="GTD expiry, unix seconds")
    p.add_argument("--chain-id", type=_CHAIN_ID, default=None, help=f"default {DEFAULT_CHAIN_ID} (Polygon)")
    p.add_argument("--api-key", default=None, help="API key (public id) to fill the body's owner field")
    p.add_argument("--client-order-id", default=None, help="idempotency key (default: random)")
    p.add_argument("--timeout", type=common.timeout_s, default=10.0, help="REST timeout in seconds")
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
            example=f"polybot {name} --config var/sandbox/service.toml  # while polybot sandbox runs",
            description=(
                f"Print the exact {what} transactions (target contract, calldata) needed by the CTF "
                "Exchange V2, the NegRisk Exchange V2 and the NegRisk Adapter. With --rpc-url, read the "
                "current allowances of --address over JSON-RPC eth_call and exit 1 when any is missing. "
                "--config FILE takes both from a service TOML: the funder (relayer.funder, or the key's own "
                "address for signature type 0) and chain.rpc_url when it is set."
            ),
        )
        p.add_argument("--address", default=None, help="the funder address that holds the funds")
        p.add_argument(
            "--rpc-url", type=common.http_url, default=None, help="Polygon JSON-RPC URL to read current allowances"
        )
        add_config(p, "the funder address and chain.rpc_url")
        p.add_argument("--timeout", type=common.timeout_s, default=10.0, help="RPC timeout in seconds")
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
    p.add_argument("--port", type=common.tcp_port, default=8081, help="REST port (0 = pick a free one)")
    p.add_argument(
        "--ws-port",
        type=common.tcp_port,
        default=0,
        help="user-channel websocket port (0 = the REST port: one app serves both)",
    )
    p.add_argument("--confirm-delay", type=common.delay_s, default=2.0, help="seconds from MATCHED to CONFIRMED")
    p.add_argument("--settlement", choices=["confirm", "fail"], default="confirm", help="how trades settle")
    p.add_argument(
        "--heartbeat-timeout",
        type=common.timeout_s,
        default=10.0,
        help="cancel a key's orders after this long without heartbeats",
    )
    p.set_defaults(func=cmd_mock_clob)


# --------------------------------------------------------------------------- relayer-dry-run


def resolve_private_key(value: str | None) -> str:
    if value is None:
        value = os.environ.get(PRIVATE_KEY_ENV, "")
        if not value:
            raise UsageError(
                f"no private key: pass --private-key, --config FILE (relayer.private_key) or set ${PRIVATE_KEY_ENV}"
            )
        return value
    if value.startswith("env:"):
        name = value[4:]
        key = os.environ.get(name, "")
        if not key:
            raise UsageError(f"environment variable {name} is empty or unset")
        return key
    return value


async def _dry_run(args: argparse.Namespace) -> tuple[Any, Any]:
    from core.execution.dry_run import DryRunSpec, build_dry_run_order, open_migrated_db
    from core.execution.relayers.clob import ClobRelayer
    from core.types import OrderType, Side

    _from_config(args)
    key = resolve_private_key(args.private_key)
    spec = DryRunSpec(
        market=args.market,
        outcome=args.outcome,
        side=Side(args.side),
        price=args.price,
        size=args.size,
        order_type=OrderType(args.order_type),
        post_only=args.post_only,
        expiration=args.expiration,
        tick_size=args.tick_size,
        neg_risk=args.neg_risk,
        client_order_id=args.client_order_id,
    )
    creds = (args.api_key, "", "") if args.api_key else None
    relayer = ClobRelayer(
        args.base_url or DEFAULT_CLOB_URL,
        args.chain_id or DEFAULT_CHAIN_ID,
        key,
        signature_type=args.signature_type or 0,
        funder=args.funder,
        api_creds=creds,
        dry_run=True,
        timeout_s=args.timeout,
    )
    engine = await open_migrated_db(args.db_url) if args.db_url else None
    try:
        return relayer, await build_dry_run_order(relayer, spec, engine=engine)
    finally:
        await relayer.close()
        if engine is not None:
            await engine.dispose()


def _from_config(args: argparse.Namespace) -> None:
    """What the command line leaves out, from ``--config``'s settings (relayer, clob, db)."""
    config = settings_of(args)
    if config is None:
        return
    relayer = config.relayer
    key, api_key = relayer.private_key, relayer.api_key
    if args.private_key is None and key is not None:
        args.private_key = key.get_secret_value()
    if args.api_key is None and api_key is not None:
        args.api_key = api_key.get_secret_value()
    args.base_url = args.base_url or config.clob.url
    args.db_url = args.db_url or config.db.url
    args.funder = args.funder or relayer.funder
    args.chain_id = args.chain_id or relayer.chain_id
    if args.signature_type is None:
        args.signature_type = relayer.signature_type


def cmd_relayer_dry_run(args: argparse.Namespace) -> int:
    from core.execution.relayers.clob_signing import serialize_body

    _relayer, dry = asyncio.run(_dry_run(args))
    if args.json:
        print(serialize_body(dry.body))
        return 0
    rows = dry.rows()
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    return 0


# --------------------------------------------------------------------------- approvals


async def _approvals(args: argparse.Namespace) -> tuple[list[Any], list[Any] | None]:
    from core.chain.rpc import JsonRpc
    from core.execution.approvals import outcome_approvals, read_approvals, usdc_approvals

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


def _approvals_from_config(args: argparse.Namespace) -> None:
    """The funder and the RPC URL the command line leaves out, from ``--config``'s settings."""
    config = settings_of(args)
    if config is not None:
        from core.preflight.local import maker_address

        args.address = args.address or maker_address(config)
        args.rpc_url = args.rpc_url or config.chain.rpc_url


def cmd_approve(args: argparse.Namespace) -> int:
    from eth_utils.address import to_checksum_address

    _approvals_from_config(args)

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
    try:
        with stop_on_signals(stop):  # before the URL is printed: whoever reads it may stop us at once
            print(server.url, flush=True)
            print(f"user channel: {server.ws_url}")
            for market in server.markets.values():
                kind = "neg-risk" if market.neg_risk else "binary"
                print(f"market {market.condition_id} ({kind}, tick {market.tick_size}): {market.question}")
                for token, outcome in market.tokens:
                    print(f"  {outcome:<4} {token}")
            print("API keys: derive with L1 auth (GET /auth/derive-api-key); Ctrl-C to stop", flush=True)
            await stop.wait()
    finally:
        await server.stop()
        print("mock-clob stopped", file=sys.stderr, flush=True)


def cmd_mock_clob(args: argparse.Namespace) -> int:
    asyncio.run(_run_mock(args))
    return 0

"""``polybot preflight`` (pre-trade checks) and ``polybot smoke-live`` (preflight, then a dry-run order)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import TYPE_CHECKING

from polybot.cli import common
from polybot.cli.main import add_command

if TYPE_CHECKING:
    from core.control.types import DryRunRequest, DryRunResult, PreflightReport
    from polybot.cli.main import Subcommands

_EXAMPLE_CONFIG = "var/sandbox/service.toml"


def register(sub: Subcommands) -> None:
    p = add_command(
        sub,
        "preflight",
        help="run the pre-trade checks and print a PASS/FAIL/SKIP table (exit 1 when any fails)",
        example=f"polybot preflight --config {_EXAMPLE_CONFIG}  # while polybot sandbox runs",
        description=(
            "Check that the configuration is fit to trade: config valid, mode, database reachable and "
            "migrated, market feed and CLOB reachable, clock skew vs the CLOB, key <-> address <-> funder <-> "
            "signature type consistent, API credentials (live), on-chain allowances (with chain.rpc_url), "
            "risk limits sane, Telegram token and users (when enabled). Exit 0 when every check passes "
            "(skips allowed), 1 when any fails, 2 on an invalid configuration. Secrets are never printed."
        ),
    )
    _common(p)
    p.set_defaults(func=cmd_preflight)

    p = add_command(
        sub,
        "smoke-live",
        help="preflight, then (only if it passed) sign a dry-run order with the configured key; never posted",
        example=(
            "polybot smoke-live --config var/dry-run/service.toml demo-btc-above-150k-2026 Yes BUY 0.45 5"
            "  # while polybot sandbox --mode dry-run --var-dir var/dry-run runs"
        ),
        description=(
            "Run the preflight; when it passes, build and sign one order exactly as live mode would, with "
            "the configured key, signature type and funder for the configured CLOB host, and NEVER post it. "
            "The order is stored in the configured database (status dry_run). MARKET is a token id, a "
            "condition id, or a slug stored in the markets table; OUTCOME picks the token (name or token "
            "id). Exit 1 (and no order) when the preflight fails; 2 on an invalid configuration or a "
            'configuration without relayer.type = "real".'
        ),
    )
    common.order_arguments(
        p,
        market_help="token id, condition id (0x...) or stored slug",
        outcome_help="outcome name (Yes/No/...) or token id",
    )
    _common(p)
    p.add_argument(
        "--tick-size",
        type=common.tick_size,
        default=None,
        help="market tick size; needed with --offline for a market not in the database",
    )
    p.add_argument(
        "--neg-risk", action=argparse.BooleanOptionalAction, default=None, help="sign for the neg-risk exchange"
    )
    p.add_argument("--order-type", type=str.upper, choices=["GTC", "GTD", "FOK", "FAK"], default="GTC")
    p.add_argument("--client-order-id", default=None, help="idempotency key (default: random)")
    p.set_defaults(func=cmd_smoke_live)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        metavar="FILE",
        required=True,
        help="service TOML (secrets.local.toml beside it is overlaid; POLYBOT_<SECTION>__<KEY> env wins)",
    )
    p.add_argument(
        "--offline", action="store_true", help="skip the network checks (feed, CLOB, clock skew, allowances)"
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _print_report(report: PreflightReport) -> None:
    for line in report.lines():
        print(line)


# --------------------------------------------------------------------------- preflight


def cmd_preflight(args: argparse.Namespace) -> int:
    from core.control.facade import Control

    control = Control.from_config(args.config)  # ConfigError: exit 2 with every problem listed
    config = control.configuration()
    report = asyncio.run(control.preflight(offline=args.offline))
    if args.json:
        sys.stdout.write(json.dumps({"mode": config.mode, **report.as_dict()}, indent=2) + "\n")
    else:
        print(f"preflight of {config.config_path} ({config.mode} mode)")
        _print_report(report)
    return 0 if report.ok else 1


# --------------------------------------------------------------------------- smoke-live


def _request(args: argparse.Namespace) -> DryRunRequest:
    from core.control.types import DryRunRequest
    from core.types import OrderType, Side

    return DryRunRequest(
        market=args.market,
        outcome=args.outcome,
        side=Side(args.side),
        price=args.price,
        size=args.size,
        order_type=OrderType(args.order_type),
        tick_size=args.tick_size,
        neg_risk=args.neg_risk,
        client_order_id=args.client_order_id,
    )


def _print_order(order: DryRunResult) -> None:
    width = max(len(k) for k, _ in order.rows)
    for k, v in order.rows:
        print(f"{k:<{width}}  {v}")


def cmd_smoke_live(args: argparse.Namespace) -> int:
    from core.control.facade import Control

    control = Control.from_config(args.config)
    result = asyncio.run(control.smoke(_request(args), offline=args.offline))
    if args.json:
        payload = {
            "mode": result.mode,
            "preflight": result.preflight.as_dict(),
            "order": result.order.record if result.order is not None else None,
        }
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
    else:
        print(f"smoke-live of {result.config_path} ({result.mode} mode)")
        _print_report(result.preflight)
        if result.order is None:
            print("no order built: the preflight failed")
        else:
            print()
            _print_order(result.order)
    return 0 if result.order is not None else 1

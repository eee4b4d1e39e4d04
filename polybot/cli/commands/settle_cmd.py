"""``polybot merge``, ``polybot redeem`` and ``polybot balance``: settlement from a shell.

The shell has no socket into the running service: each command is a control request through the
database the service writes to (as ``polybot disarm``), claimed and run by the service with the
same facade the bot uses, within a few seconds. ``--dry-run`` asks only what would be settled and
the exact transactions; in live mode a merge or redeem runs only with ``--yes``.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
from typing import TYPE_CHECKING

from core.errors import PolybotError
from polybot.cli import common
from polybot.cli.main import add_command

if TYPE_CHECKING:
    from polybot.cli.main import Subcommands

MAX_WAIT_S = 3600
WAIT_HELP = "seconds the running service has to take the request (default 30; it expires unrun after that)"


def register(sub: Subcommands) -> None:
    merge = add_command(
        sub,
        "merge",
        help="merge complete YES+NO sets of a market (or of each question of a neg-risk event) into pUSD",
        example=(
            "polybot merge demo-btc-above-150k-2026 --sets 5 --dry-run --db-url sqlite:///var/sandbox/sandbox.db"
            "  # while polybot sandbox runs"
        ),
        description=(
            "Merge complete YES+NO sets back into pUSD through the V2 collateral adapter, run by the\n"
            "running service (through its database). Paper: the paper ledger; dry-run mode: the exact\n"
            "transaction, nothing sent; live: needs --yes. A neg-risk event's sets (YES of every member)\n"
            "cannot be merged: they are held to resolution and redeemed."
        ),
    )
    merge.add_argument("market", help="market slug, unique slug prefix, or neg-risk event id")
    merge.add_argument(
        "--sets",
        type=common.decimal_arg(0, 10**9, low_open=True),
        default=None,
        help="at most this many (default: all)",
    )
    _common(merge, settle=True)
    merge.set_defaults(func=_run, action="merge")

    redeem = add_command(
        sub,
        "redeem",
        help="redeem the shares of resolved markets (winners pay 1 pUSD each)",
        example="polybot redeem --json --db-url sqlite:///var/sandbox/sandbox.db  # while polybot sandbox runs",
    )
    redeem.add_argument("market", nargs="?", default=None, help="one market (default: every resolved market held)")
    _common(redeem, settle=True)
    redeem.set_defaults(func=_run, action="redeem", sets=None)

    balance = add_command(
        sub,
        "balance",
        help="pUSD balance and allowance, positions with value, sets mergeable, shares redeemable",
        example="polybot balance --json --db-url sqlite:///var/sandbox/sandbox.db  # while polybot sandbox runs",
    )
    _common(balance, settle=False)
    balance.set_defaults(func=_run, action="balance", market=None, sets=None, dry_run=False, yes=False)


def _common(p: argparse.ArgumentParser, *, settle: bool) -> None:
    p.add_argument("--db-url", type=common.db_url, default=None, help=common.DB_URL_HELP)
    p.add_argument("--json", action="store_true", help="print the service's answer as JSON")
    p.add_argument(
        "--wait", type=common.float_arg(0, MAX_WAIT_S, low_open=True, unit="seconds"), default=30.0, help=WAIT_HELP
    )
    if settle:
        p.add_argument("--dry-run", action="store_true", help="show what would be settled and the transactions only")
        p.add_argument(
            "--yes", action="store_true", help="confirm a live merge/redeem (nothing is asked interactively)"
        )


def _run(args: argparse.Namespace) -> int:
    from core.control.facade import Control
    from core.control.settlement import request_args

    control = Control.over_database(args.db_url, request_wait_s=args.wait)
    text = request_args(args.market, args.sets, dry_run=args.dry_run, yes=args.yes)
    answer = asyncio.run(control.settlement_request(args.action, text, by=f"cli:{getpass.getuser()}"))
    if args.json:
        common.print_json(answer)
        return 0 if answer.get("ok", True) else 1
    if answer.get("reason_code") in ("expired", "claimed"):
        raise PolybotError(f"{answer['error']} (is run-service using this database?)")
    for line in _lines(args.action, answer):
        print(line)
    return 0 if answer.get("ok", True) else 1


def _lines(action: str, answer: dict[str, object]) -> list[str]:
    if "error" in answer:
        return [f"{action}: refused: {answer['error']}", *[f"  {x}" for x in _list(answer.get("lines"))]]
    if action == "balance":
        return _balance_lines(answer)
    if answer.get("dry_run"):
        return [f"{action} [{answer.get('mode')}] dry run, nothing sent:", *[f"  {x}" for x in _list(answer["lines"])]]
    out = [f"{action} [{answer.get('mode')}]: {answer.get('amount')} settled, {answer.get('pusd')} pUSD returned"]
    for row in _list(answer.get("rows")):
        if isinstance(row, dict):
            out.append(f"  {row.get('status')}: {row.get('message')}")
    if answer.get("note"):
        out.append(f"  note: {answer['note']}")
    return out


def _balance_lines(b: dict[str, object]) -> list[str]:
    out = [
        f"mode: {b.get('mode')}",
        f"pUSD: {b.get('collateral')} ({b.get('source')})",
        f"allowance: {b.get('allowance')}",
    ]
    for p in _list(b.get("positions")):
        if isinstance(p, dict):
            out.append(f"  {p.get('label')}: {p.get('shares')} shares, mark {p.get('mark')}, value {p.get('value')}")
    out.append("sets mergeable: " + (", ".join(f"{m}: {n}" for m, n in _pairs(b.get("mergeable"))) or "none"))
    held = ", ".join(f"{e}: {n}" for e, n in _pairs(b.get("event_sets")))
    if held:
        out.append(f"neg-risk event sets held to resolution: {held}")
    redeem = ", ".join(f"{r[0]} {r[1]}: {r[2]} pUSD" for r in _list(b.get("redeemable")) if isinstance(r, list))
    out.append(f"redeemable: {redeem or 'none'}")
    return out


def _list(value: object) -> list[object]:
    return list(value) if isinstance(value, list) else []


def _pairs(value: object) -> list[tuple[object, object]]:
    return [(x[0], x[1]) for x in _list(value) if isinstance(x, list) and len(x) == 2]

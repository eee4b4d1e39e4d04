"""``polybot disarm`` and ``polybot kill``: stop a running service from a shell (through its database)."""

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


def register(sub: Subcommands) -> None:
    for action, summary in (
        ("disarm", "ask the running service to disarm (no new orders); open orders stay"),
        ("kill", "ask the running service to disarm AND cancel every open order"),
    ):
        p = add_command(
            sub,
            action,
            help=summary,
            example=(
                f"polybot {action} --db-url sqlite:///var/sandbox/sandbox.db --reason 'feed looks wrong'"
                "  # while polybot sandbox runs"
            ),
            description=(
                f"{summary[0].upper()}{summary[1:]}.\n"
                "The request goes through the database the service writes to; one running service claims\n"
                "it within a few seconds (its staleness job), acts and records the result. Exit 0 when it\n"
                "succeeded. When no service claims it within --wait seconds the request expires: it will\n"
                "never run later (not even when a service starts afterwards); exit 1. Arming is only\n"
                "possible from Telegram, by an operator."
            ),
        )
        p.add_argument("--db-url", type=common.db_url, default=None, help=common.DB_URL_HELP)
        p.add_argument("--reason", default="requested from the CLI", help="recorded in the audit trail")
        p.add_argument(
            "--wait",
            type=common.float_arg(0, MAX_WAIT_S, low_open=True, unit="seconds"),
            default=15.0,
            help=f"seconds a service has to claim the request before it expires unrun (default 15, at most {MAX_WAIT_S})",
        )
        p.set_defaults(func=_run, action=action)


def _run(args: argparse.Namespace) -> int:
    from core.control.facade import Control
    from core.control.requests import EXPIRED

    control = Control.over_database(args.db_url, request_wait_s=args.wait)
    by = f"cli:{getpass.getuser()}"
    ask = control.kill if args.action == "kill" else control.disarm
    result = asyncio.run(ask(by, args.reason))
    if result.reason_code:  # no service ran it: expired (never will) or claimed without an answer
        hint = " (is run-service using this database?)" if result.reason_code == EXPIRED else ""
        raise PolybotError(f"{args.action} {result.message}{hint}")
    print(f"{args.action}: {result.message}")
    return 0 if result.ok else 1

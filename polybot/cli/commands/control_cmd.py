"""``polybot disarm`` and ``polybot kill``: stop a running service from a shell (through its database)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys

from core.errors import PolybotError
from polybot.cli import common
from polybot.cli.main import add_command

MAX_WAIT_S = 3600


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    for action, summary in (
        ("disarm", "ask the running service to disarm (no new orders); open orders stay"),
        ("kill", "ask the running service to disarm AND cancel every open order"),
    ):
        p = add_command(
            sub,
            action,
            help=summary,
            example=f"polybot {action} --db-url sqlite:///./var/polybot.db --reason 'feed looks wrong'",
            description=(
                f"{summary[0].upper()}{summary[1:]}.\n"
                "The request goes through the database the service writes to; one running service claims\n"
                "it within a few seconds (its staleness job), acts and records the result. Exit 0 when it\n"
                "succeeded. When no service claims it within --wait seconds the request expires: it will\n"
                "never run later (not even when a service starts afterwards); exit 1. Arming is only\n"
                "possible from Telegram, by an operator."
            ),
        )
        p.add_argument(
            "--db-url",
            type=common.db_url,
            default=None,
            help="the service's database (default sqlite:///./var/polybot.db)",
        )
        p.add_argument("--reason", default="requested from the CLI", help="recorded in the audit trail")
        p.add_argument(
            "--wait",
            type=common.float_arg(0, MAX_WAIT_S, low_open=True, unit="seconds"),
            default=15.0,
            help=f"seconds a service has to claim the request before it expires unrun (default 15, at most {MAX_WAIT_S})",
        )
        p.set_defaults(func=_run, action=action)


def _run(args: argparse.Namespace) -> int:
    ok, message = asyncio.run(_request(args, args.wait))
    print(message)
    return 0 if ok else 1


async def _request(args: argparse.Namespace, wait_s: float) -> tuple[bool, str]:
    from core.control.requests import DONE, EXPIRED, await_outcome, post_request
    from core.store.db import create_engine, session_factory
    from core.store.migrate import ensure_schema
    from core.store.models import CommandAudit
    from polybot.cli.common import db_url_arg

    url = db_url_arg(args)
    engine = create_engine(url)
    try:
        await ensure_schema(engine, url, migrate=False)
        sessions = session_factory(engine)
        by = f"cli:{getpass.getuser()}"
        request = await post_request(sessions, args.action, by, args.reason, wait_s)
        async with sessions() as s, s.begin():
            s.add(
                CommandAudit(
                    front_end="cli",
                    user_id=by[4:],
                    command=args.action,
                    arguments=args.reason[:500],
                    result="requested",
                    detail=f"control request {request.id}",
                )
            )
        outcome = await await_outcome(sessions, request.id, wait_s=wait_s, by=by)
        if outcome.status == DONE:
            return outcome.ok, f"{args.action}: {outcome.message}"
        hint = " (is run-service using this database?)" if outcome.status == EXPIRED else ""
        raise PolybotError(f"{args.action} request {request.id} {outcome.message}{hint}")
    finally:
        await engine.dispose()
        sys.stdout.flush()

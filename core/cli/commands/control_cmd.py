"""``polybot disarm`` and ``polybot kill``: stop a running service from a shell (through its database)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
import time

from core.cli.main import add_command
from core.errors import PolybotError, UsageError


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
                "The request goes through the database the service writes to; the service acts on it within\n"
                "a few seconds (its staleness job) and acknowledges. Exit 0 when acknowledged, 1 when no\n"
                "service answered within --wait seconds (is it running on this database?). Arming is only\n"
                "possible from Telegram, by an operator."
            ),
        )
        p.add_argument("--db-url", default=None, help="the service's database (default sqlite:///./var/polybot.db)")
        p.add_argument("--reason", default="requested from the CLI", help="recorded in the audit trail")
        p.add_argument("--wait", type=float, default=15.0, help="seconds to wait for the acknowledgement (default 15)")
        p.set_defaults(func=_run, action=action)


def _run(args: argparse.Namespace) -> int:
    if args.wait < 0:
        raise UsageError("--wait must be >= 0")
    ok, message = asyncio.run(_request(args))
    print(message)
    return 0 if ok else 1


async def _request(args: argparse.Namespace) -> tuple[bool, str]:
    from core.cli.common import db_url_arg, ensure_schema
    from core.control_requests import post_request, read_ack
    from core.store.db import create_engine, session_factory
    from core.store.models import CommandAudit

    url = db_url_arg(args)
    engine = create_engine(url)
    try:
        await ensure_schema(engine, url, migrate=False)
        sessions = session_factory(engine)
        by = f"cli:{getpass.getuser()}"
        request_id = await post_request(sessions, args.action, by, args.reason)
        async with sessions() as s, s.begin():
            s.add(
                CommandAudit(
                    front_end="cli",
                    user_id=by[4:],
                    command=args.action,
                    arguments=args.reason[:500],
                    result="requested",
                    detail=f"request {request_id}",
                )
            )
        deadline = time.monotonic() + args.wait
        while True:
            ack = await read_ack(sessions, request_id)
            if ack is not None:
                return bool(ack.get("ok")), f"{args.action}: {ack.get('message', 'done')}"
            if time.monotonic() >= deadline:
                raise PolybotError(
                    f"{args.action} requested (id {request_id}) but no running service acknowledged it within "
                    f"{args.wait:g}s; is run-service using this database?"
                )
            await asyncio.sleep(0.25)
    finally:
        await engine.dispose()
        sys.stdout.flush()

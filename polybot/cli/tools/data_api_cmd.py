"""``mock-data-api``: the local Data API double (``GET /positions``), alone or with the CLOB double."""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

from core.errors import PolybotError
from polybot.cli import common
from polybot.cli.common import stop_on_signals
from polybot.cli.main import add_command

if TYPE_CHECKING:
    from polybot.cli.main import Subcommands


def _position(text: str) -> tuple[str, str, Decimal]:
    parts = text.split(":")
    if len(parts) != 3:
        raise argparse.ArgumentTypeError("expected ADDRESS:TOKEN_ID:SIZE")
    if not re.fullmatch(r"0x[0-9a-fA-F]{40}", parts[0]):
        raise argparse.ArgumentTypeError(f"address {parts[0]!r} is not 0x and 40 hex digits")
    if not parts[1].isdigit():
        raise argparse.ArgumentTypeError(f"token id {parts[1]!r} is not a number (a token id is decimal digits)")
    try:
        size = Decimal(parts[2])
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"size {parts[2]!r} is not a number") from None
    return parts[0], parts[1], size


def register(sub: Subcommands) -> None:
    p = add_command(
        sub,
        "mock-data-api",
        help="run the local Data API double (GET /positions) until interrupted",
        example=(
            "polybot mock-data-api --port 0 --position 0x2c7536E3605D9C16a7a3D7b1898e529396a65c23:"
            "85340618498478621833534248351896817610926793683691994886858411077179692770002:10"
        ),
        description=(
            "Run the local Data API double on 127.0.0.1; the first line printed is its URL. With\n"
            "--clob-port the CLOB double (REST + /ws/user) runs in the same process on the same ledger,\n"
            "so trades made there show up in /positions (the second line is the CLOB URL); without it\n"
            "the double has the demo markets and only the positions given with --position."
        ),
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=common.tcp_port, default=8083, help="Data API port (0 = pick a free one)")
    p.add_argument("--clob-port", type=common.tcp_port, default=None, help="also serve the CLOB double on this port")
    p.add_argument(
        "--position",
        type=_position,
        action="append",
        default=[],
        metavar="ADDRESS:TOKEN_ID:SIZE",
        help="a position held at the venue (e.g. opened on the website); repeatable",
    )
    p.set_defaults(func=cmd_mock_data_api)


async def _run(args: argparse.Namespace) -> None:
    from core.sim.mock_clob import MockClobServer
    from core.sim.mock_data_api import MockDataApiServer

    clob = MockClobServer(args.host, args.clob_port) if args.clob_port is not None else None
    api = MockDataApiServer.over(clob, args.host, args.port) if clob else MockDataApiServer(None, args.host, args.port)
    for address, token, size in args.position:
        api.set_position(address, token, size)
    try:
        if clob is not None:
            await clob.start()
        await api.start()
    except OSError as exc:
        if clob is not None:
            await clob.stop()
        raise PolybotError(f"cannot listen on {args.host}: {exc.strerror or exc}") from None
    stop = asyncio.Event()
    try:
        with stop_on_signals(stop):  # before the URL is printed: whoever reads it may stop us at once
            print(api.url, flush=True)
            if clob is not None:
                print(f"clob: {clob.url} (user channel {clob.ws_url})", flush=True)
            print("GET /positions?user=ADDRESS; Ctrl-C to stop", flush=True)
            await stop.wait()
    finally:
        await api.stop()
        if clob is not None:
            await clob.stop()
        print("mock-data-api stopped", file=sys.stderr, flush=True)


def cmd_mock_data_api(args: argparse.Namespace) -> int:
    asyncio.run(_run(args))
    return 0

"""``polybot sandbox``: the real service on local doubles of Polymarket and Telegram, with a chat in
the terminal (:mod:`polybot.sandbox_session`)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from polybot.cli import common
from polybot.cli.main import add_command
from polybot.cli.tools.demo_cmd import _var_dir

if TYPE_CHECKING:
    from polybot.cli.main import Subcommands

ROLES = ("viewer", "operator", "admin")
MODES = ("paper", "dry-run", "live")


def _user_id(text: str) -> int:
    """A Telegram user id: a whole number from 1 to the largest id Telegram issues."""
    from core.settings import MAX_TELEGRAM_ID

    return common.int_arg(1, MAX_TELEGRAM_ID)(text)


_DESCRIPTION = """\
Start local doubles of Polymarket (Gamma, the market websocket, the CLOB, a Polygon node) and
of Telegram's Bot API on free 127.0.0.1 ports, all over one market universe (the markets of
fixtures/gamma/markets.json, the feed of fixtures/recordings/demo_feed.jsonl played in a loop,
the CLOB double's books following the feed), write a ready VAR_DIR/service.toml with its
THROWAWAY secrets in VAR_DIR/secrets.local.toml (an example private key that holds nothing, the
API credentials the CLOB double derived for it, a placeholder bot token), and run the real
service from that file with a Telegram chat in this terminal. No token, no network.

Type what you would type in Telegram: /status, /quotes, /arm, /order MARKET OUTCOME SIDE PRICE
SIZE, /orders, /kill, /help. Buttons are shown numbered, [1 Confirm] [2 Cancel]: type 1 (or
tap 1) to tap one. Lines starting with ':' talk to the sandbox: ':mode live' rewrites the
config in another mode (paper, dry-run, live) and starts the service again over the same doubles
(it starts disarmed, as always: /arm again; live mode's /arm runs the preflight); ':wait 2'
lets two seconds pass; ':help'; ':quit'. Ctrl-C, or the end of the input (Ctrl-D), stops
everything. The start lines say where each double listens, the config path, and an /order to
try on a real market of the universe.

While it runs, other commands work against the same files, e.g.
  polybot preflight --config var/sandbox/service.toml
  polybot status --db-url sqlite:///var/sandbox/sandbox.db

Each run starts from an empty database (VAR_DIR/sandbox.db); the service's log goes to
VAR_DIR/sandbox.log. --script FILE types the file's lines (then stops), e.g. for a demo:
  /arm
  /order demo-btc-above-150k-2026 Yes BUY 0.40 5
  :mode live
  /arm
  /order demo-btc-above-150k-2026 Yes BUY 0.40 5
  1
  /orders
  /kill

Exit status: 0; 1 when a bot handler raised (the chat shows "Internal error"); 2 for a bad
argument."""


def register(sub: Subcommands) -> None:
    p = add_command(
        sub,
        "sandbox",
        help="the real service on local doubles of Polymarket and Telegram, with a chat in this terminal",
        description=_DESCRIPTION,
        example="polybot sandbox",
    )
    p.add_argument(
        "--var-dir",
        type=_var_dir,
        default=Path("var/sandbox"),
        help="where the config, secrets, database and log go (default var/sandbox)",
    )
    p.add_argument("--mode", choices=MODES, default="paper", help="the mode the service starts in (default paper)")
    p.add_argument(
        "--user-id",
        type=_user_id,
        default=1001,
        metavar="ID",
        help="your numeric Telegram user id in the chat (default 1001)",
    )
    p.add_argument("--role", choices=ROLES, default="admin", help="your role in the chat (default admin)")
    p.add_argument(
        "--script",
        type=common.input_file("script"),
        default=None,
        metavar="FILE",
        help="type the lines of FILE instead of reading the terminal, then stop",
    )
    p.set_defaults(func=_run)


def _logging(var_dir: Path, verbosity: int) -> Path:
    """The service's log in a file (INFO); the terminal shows warnings only (with -v, info)."""
    from core.logsetup import setup_logging

    path = var_dir / "sandbox.log"
    setup_logging("DEBUG" if verbosity > 1 else "INFO", json=False, file=str(path))
    for handler in logging.getLogger().handlers:
        if not isinstance(handler, logging.FileHandler):
            handler.setLevel(logging.INFO if verbosity else logging.WARNING)
    return path


def _run(args: argparse.Namespace) -> int:
    from core.types import Mode
    from polybot.sandbox_session import SandboxArgs, run_sandbox

    _logging(args.var_dir, args.verbose)
    options = SandboxArgs(
        var_dir=args.var_dir, mode=Mode(args.mode), user_id=args.user_id, role=args.role, script=args.script
    )
    return asyncio.run(run_sandbox(options, sys.stdout))

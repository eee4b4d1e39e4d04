"""``polybot demo``: the whole service on bundled data with local exchange doubles; no network."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from polybot.cli import common
from polybot.cli.main import add_command

if TYPE_CHECKING:
    from polybot.cli.main import Subcommands

_DEMO_SECONDS = common.float_arg(0, 600, low_open=True, unit="seconds")


def _var_dir(text: str) -> Path:
    """A directory for the demo database: may not exist yet, may not be a file."""
    path = Path(text)
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty: give a directory")
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"is not a directory: {text}")
    return path


def register(sub: Subcommands) -> None:
    p = add_command(
        sub,
        "demo",
        help="run the real service on bundled data with local doubles of Polymarket and Telegram (no network)",
        example="polybot demo --duration 2",
        description=(
            "Starts a mock market websocket (the books of fixtures/recordings/demo_feed.jsonl), a mock Gamma\n"
            "and a mock CLOB on 127.0.0.1, stores everything in ./var/demo.db, and drives the real service\n"
            "through a scripted Telegram chat: paper trading (arm, Dutch-book fills, a manual order), a\n"
            "dry-run order (signed, not posted) and a live order confirmed in chat against the CLOB double.\n"
            "Prints the chat transcript as a person reads it, the summary (the same counts on every run)\n"
            "and the charts it saved under VAR_DIR/charts."
        ),
    )
    p.add_argument(
        "--duration",
        type=_DEMO_SECONDS,
        default=6.0,
        help="armed paper trading: this many seconds of the recording at 250 frames/s (default 6, at most 600)",
    )
    p.add_argument("--var-dir", type=_var_dir, default="./var", help="where the demo database goes (default ./var)")
    p.add_argument("--json", action="store_true", help="print the summary (with transcripts) as JSON")
    p.add_argument("--quiet", action="store_true", help="summary only, no transcript")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from bot.offline import format_transcript
    from core.logsetup import setup_logging
    from polybot.demo import run_demo, summary_dict

    setup_logging("ERROR" if not args.verbose else "INFO")
    summary = asyncio.run(
        run_demo(duration_s=args.duration, var_dir=args.var_dir, log=None if args.json else sys.stderr)
    )
    if args.json:
        sys.stdout.write(json.dumps(summary_dict(summary), indent=2, default=str) + "\n")
        return 0
    if not args.quiet:
        for phase in summary.phases:
            print(f"\n===== {phase.mode} mode: Telegram transcript =====")
            print(format_transcript(phase.transcript, plain=True))  # as the person reads it
    print("\n===== summary =====")
    print(f"frames ingested     {summary.frames_ingested}")
    print(f"opportunities       {summary.opportunities} (Dutch book)")
    for phase in summary.phases:
        missed = ", ".join(f"{k} {v}" for k, v in sorted(phase.missed.items())) or "none"
        print(
            f"  {phase.mode:8} frames {phase.frames}, opportunities {phase.opportunities}, "
            f"groups sent {phase.groups.sent}, missed: {missed}"
        )
    for phase in summary.phases:  # each phase's Dutch groups, complete sets and locked edge
        for line in phase.lines():
            print(line)
    print(f"orders              {summary.orders} " + json.dumps(summary.orders_by_mode, sort_keys=True))
    print(f"fills               {summary.fills}")
    print(f"alerts              {summary.alerts}")
    print(f"commands audited    {summary.commands_audited}")
    print(f"live orders posted to the CLOB double: {summary.live_orders_at_venue}")
    print(
        f"merge transactions sent to the chain double: {summary.chain_transactions} "
        f"(confirmed {summary.chain_confirmed})"
    )
    for path in summary.charts:
        print(f"chart saved         {path}")
    print(f"took {summary.seconds}s; database {args.var_dir / 'demo.db'}")
    return 0

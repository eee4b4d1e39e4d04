"""The bad-input table: every CLI command and every Telegram command tried with malformed arguments.

CLI: each case runs the venv's ``polybot`` console script as a subprocess leading its own process
group (tests/procs.py), with no network: every URL is a closed loopback port, a local ``polybot
mock-ws`` started for the run, or a nonexistent file. It records the exit code and the one line
the user reads. Telegram: a real paper-mode Service with the bot on the in-process Bot API double
gets each command from an authorised operator and records the reply.

Coverage is not hand-picked: the commands come from the real argparse parser and from
``bot.handlers.COMMANDS``, and a command without a case stops the run (exit 1) before anything runs,
so a new command cannot ship without bad-input cases.

A case is flagged when it crashes (a traceback, an unhandled exception's class name, an exit code
other than 1/2, "Internal error"), when a malformed input is accepted silently (exit 0 / no reply),
or when nothing is answered. Writes ``docs/bad-input.md`` (``--out``), prints the flags and exits 1 when any.

    uv run python bench/bad_input.py [--out docs/bad-input.md] [--jobs 3] [--only-telegram]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import html
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

NOWHERE = "http://127.0.0.1:9"  # discard port: nothing listens, connects fail at once
WS_NOWHERE = "ws://127.0.0.1:9/ws/market"
MISSING = "/proc/nonexistent/polybot"  # never exists, and cannot be created even by root
KEY = "0x" + "11" * 32
FEED = "$FEED"
"""Stands for the URL of the local ``polybot mock-ws`` the run starts (a feed that answers)."""
CASE_TIMEOUT_S = 30
"""A case still running after this was accepted (a server that took its bad option). Generous: on a
loaded machine (load 4-5 on 2 cores) a command's start-up alone can take several seconds."""
UNHANDLED = "(use --debug for details)"
"""The tail polybot.cli.main puts on an exception no command handled: its class name reached the user."""

Case = tuple[str, list[str]]


def cli_cases(tmp: Path) -> list[Case]:
    bad_toml = tmp / "bad.toml"
    bad_toml.write_text("[service\nmode = 'paper'\n")
    wrong_toml = tmp / "wrong.toml"
    wrong_toml.write_text(
        "[service]\nmode = 'sideways'\n[feed]\nping_interval_s = -1\n[risk]\nmax_order_notional = 'lots'\n"
    )
    bad_retention = tmp / "retention.toml"
    bad_retention.write_text(
        "[db.retention]\nbook_deltas_days = -1\nbook_snapshots_days = 30\nbook_snapshots_thinned_days = 10\n"
    )
    keyless_toml = tmp / "keyless.toml"  # valid, with no relayer.private_key
    keyless_toml.write_text("[service]\nmode = 'paper'\n")
    unreachable_toml = tmp / "unreachable.toml"
    unreachable_toml.write_text(f"[relayer]\nprivate_key = '{KEY}'\n[clob]\nurl = '{NOWHERE}'\n")
    watch_toml = tmp / "watch.toml"  # valid rules: what --watch-preview says of a database without a schema
    watch_toml.write_text('[[feed.watch]]\ntag = "crypto"\nmax_assets = 10\n')
    bad_jsonl = tmp / "bad.jsonl"
    bad_jsonl.write_text('not json\n{"recv_ns": 1}\n')
    db = f"sqlite:///{tmp / 'x.db'}"  # never migrated: commands that need a schema say so
    no_bus = tmp / "no_bus.toml"  # a database to migrate and no NATS server (port 9 answers nothing)
    no_bus.write_text(f'[db]\nurl = "sqlite:///{tmp / "rec.db"}"\n[bus]\nurl = "nats://127.0.0.1:9"\n')
    feed_db = f"sqlite:///{tmp / 'feed.db'}"
    order = ["0xabc", "Yes", "BUY"]
    offline = ["--private-key", KEY, "--base-url", NOWHERE]
    return [
        ("(no command)", []),
        ("(unknown command)", ["frobnicate"]),
        ("relayer-dry-run", []),
        ("relayer-dry-run", [*order, "0.5", "10", "--private-key", "not-a-key"]),
        ("relayer-dry-run", ["0xabc", "Yes", "HOLD", "0.5", "10", "--signature-type", "9"]),
        ("relayer-dry-run", [*order, "1.5", "-10", *offline]),
        ("relayer-dry-run", ["123456", "Yes", "BUY", "0.45", "1e30", "--tick-size", "0.01", "--no-neg-risk", *offline]),
        ("relayer-dry-run", [*order, "٠.٥", "10", *offline]),
        ("relayer-dry-run", [*order, "0.5", "10", "--tick-size", "NaN", *offline]),
        ("relayer-dry-run", [*order, "0.5", "10", "--timeout", "-1", *offline]),
        ("relayer-dry-run", [*order, "0.5", "10", "--timeout", "nan", *offline]),
        ("relayer-dry-run", [*order, "0.5", "10", "--config", str(keyless_toml), "--base-url", NOWHERE]),
        ("relayer-dry-run", [*order, "0.5", "10", "--config", MISSING]),
        ("relayer-api-creds", []),
        ("relayer-api-creds", ["--config", MISSING]),
        ("relayer-api-creds", ["--config", str(bad_toml)]),
        ("relayer-api-creds", ["--config", str(keyless_toml)]),
        ("relayer-api-creds", ["--config", str(unreachable_toml)]),
        ("relayer-approve-usdc", ["--address", "nope"]),
        ("relayer-approve-usdc", ["--timeout", "-1"]),
        ("relayer-approve-usdc", ["--timeout", "nan"]),
        ("relayer-approve-outcome", ["--rpc-url", "ftp://x"]),
        ("relayer-approve-outcome", ["--rpc-url", NOWHERE, "--timeout", "inf", "--address", "0x" + "ab" * 20]),
        ("relayer-approve-outcome", ["--address", "<YOUR_FUNDER_ADDRESS>", "--rpc-url", "<YOUR_POLYGON_RPC_URL>"]),
        ("relayer-approve-usdc", ["--config", str(bad_toml)]),
        ("mock-clob", ["--port", "-5"]),
        ("mock-clob", ["--port", "abc"]),
        ("mock-clob", ["--settlement", "maybe"]),
        ("mock-clob", ["--confirm-delay", "abc"]),
        ("mock-clob", ["--port", "0", "--heartbeat-timeout", "0"]),
        ("config", []),
        ("config", ["frobnicate"]),
        ("config", ["show", "--config", MISSING]),
        ("config", ["show", "--config", str(bad_toml)]),
        ("config", ["check", "--config", str(bad_toml)]),
        ("config", ["check", "--config", str(wrong_toml)]),
        ("disarm", ["--wait", "nan", "--db-url", db]),
        ("disarm", ["--db-url", "mysql://x/y"]),
        ("kill", ["--wait", "0", "--db-url", db]),
        ("kill", ["--wait", "99999", "--db-url", db]),
        ("migrate", []),
        ("migrate", ["--apply", "--db-url", "mysql://x/y"]),
        ("migrate", ["--print-sql", "--db-url", ""]),
        ("migrate", ["--current", "--db-url", "postgresql://u:secretpw@127.0.0.1:9/db"]),
        ("migrate", ["--current", "--db-url", "postgresql://u:secretpw@127.0.0.1:abc/db"]),
        ("prune", ["--dry-run", "--db-url", db]),
        ("prune", ["--db-url", "mysql://x/y"]),
        ("prune", ["--dry-run", "--db-url", "postgresql://u:secretpw@127.0.0.1:9/db"]),
        ("prune", ["--config", MISSING]),
        ("prune", ["--config", str(bad_retention), "--dry-run"]),
        ("status", ["--db-url", "sqlite://somehost/x.db"]),
        ("status", ["--db-url", "postgresql://u@127.0.0.1:99999/db"]),
        ("status", ["--limit", "-3", "--db-url", db]),
        ("demo", ["--duration", "-1"]),
        ("demo", ["--duration", "abc"]),
        ("demo", ["--duration", "nan"]),
        ("demo", ["--var-dir", str(bad_toml)]),
        ("sandbox", ["--mode", "sideways"]),
        ("sandbox", ["--user-id", "0"]),
        ("sandbox", ["--user-id", "abc"]),
        ("sandbox", ["--role", "god"]),
        ("sandbox", ["--var-dir", str(bad_toml)]),
        ("sandbox", ["--script", MISSING]),
        ("replay-book", []),
        ("replay-book", [MISSING]),
        ("replay-book", [str(bad_jsonl)]),
        ("replay-book", [str(bad_jsonl), "--speed", "-2"]),
        ("replay-book", [str(bad_jsonl), "--speed", "nan"]),
        ("replay-book", [str(bad_jsonl), "--staleness-ms", "0"]),
        ("record-ws", ["not-a-url", str(tmp / "out.jsonl")]),
        ("record-ws", [str(tmp / "out.jsonl"), "--max-messages", "1"]),
        ("record-ws", ["--config", str(keyless_toml), str(tmp / "out.jsonl"), "--max-messages", "1"]),
        ("record-ws", [WS_NOWHERE, str(tmp / "out.jsonl"), "--duration", "1"]),
        ("record-ws", [WS_NOWHERE, "/proc/forbidden/out.jsonl", "--max-messages", "-1"]),
        ("record-ws", [WS_NOWHERE, str(tmp), "--subscribe", "1"]),
        ("record-ws", [WS_NOWHERE, str(tmp / "out.jsonl"), "--subscribe", "1", "--duration", "inf"]),
        (
            "record-ws",
            [
                FEED,
                str(tmp / "unserved.jsonl"),
                "--subscribe",
                "abc",
                "--max-messages",
                "3",
                "--first-frame-timeout",
                "3",
            ],
        ),
        ("mock-ws", []),
        ("mock-ws", ["--port", "abc"]),
        ("mock-ws", ["--port", "0", "--recording", MISSING]),
        ("mock-ws", ["--port", "0", "--rate", "-5", "--duration", "1"]),
        ("mock-ws", ["--port", "0", "--rate", "nan", "--duration", "1"]),
        ("status-top", ["--limit", "0", "--db-url", db]),
        ("status-top", ["--limit", "abc", "--db-url", db]),
        ("health", ["--staleness-ms", "-1", "--db-url", db]),
        ("health", ["--staleness-ms", "nan", "--db-url", db]),
        ("health", ["--db-url", "nonsense"]),
        ("ingest-ws", [WS_NOWHERE]),
        ("ingest-ws", ["--max-messages", "1"]),
        ("ingest-ws", ["--config", str(keyless_toml), "--db-url", db, "--max-messages", "1"]),
        ("ingest-ws", ["not-a-url", "123"]),
        ("ingest-ws", [WS_NOWHERE, "123", "--max-frame-bytes", "0", "--db-url", db]),
        ("ingest-ws", [WS_NOWHERE, "123", "--staleness-ms", "-5", "--db-url", db]),
        ("ingest-ws", [WS_NOWHERE, "123", "--staleness-ms", "0", "--db-url", db]),
        ("ingest-ws", [WS_NOWHERE, "123", "--duration", "nan", "--db-url", db]),
        (
            "ingest-ws",
            [FEED, "abc", "--max-messages", "3", "--first-frame-timeout", "3", "--db-url", feed_db, "--migrate"],
        ),
        ("recorder", []),
        ("recorder", ["--config", MISSING]),
        ("recorder", ["--config", str(wrong_toml)]),
        ("recorder", ["--config", str(no_bus), "--batch", "0"]),
        ("recorder", ["--config", str(no_bus), "--durable", "no.dots"]),
        ("recorder", ["--config", str(no_bus), "--ack-wait", "nan"]),
        ("recorder", ["--config", str(no_bus), "--metrics-port", "99999"]),
        ("recorder", ["--config", str(no_bus), "--duration", "1"]),
        ("feed-worker", []),
        ("feed-worker", ["--config", MISSING, "--shard", "0/2"]),
        ("feed-worker", ["--config", str(wrong_toml), "--shard", "0/2"]),
        ("feed-worker", ["--config", str(no_bus)]),
        ("feed-worker", ["--config", str(no_bus), "--shard", "2/2"]),
        ("feed-worker", ["--config", str(no_bus), "--shard", "half"]),
        ("feed-worker", ["--config", str(no_bus), "--assets", "abc,12"]),
        ("feed-worker", ["--config", str(no_bus), "--shard", "0/1", "--assets", "12"]),
        ("feed-worker", ["--config", str(no_bus), "--assets", "12", "--duration", "nan"]),
        ("feed-worker", ["--config", str(no_bus), "--assets", "12", "--duration", "1"]),
        ("refresh-markets", [NOWHERE, "--db-url", db, "--timeout", "1", "--retries", "0"]),
        ("refresh-markets", ["--limit", "-1", "--db-url", db]),
        ("refresh-markets", ["--timeout", "nan", "--db-url", db]),
        ("refresh-markets", ["ftp://gamma", "--db-url", db]),
        ("refresh-markets", ["--config", str(wrong_toml)]),
        ("markets", ["--db-url", db]),
        ("markets", ["--limit", "abc"]),
        ("markets", ["--db-url", ""]),
        ("markets", ["--watch-preview"]),
        ("markets", ["--watch-preview", "--config", MISSING]),
        ("markets", ["--watch-preview", "--config", str(wrong_toml)]),
        ("markets", ["--watch-preview", "--config", str(watch_toml), "--db-url", db]),
        ("markets", ["--watch-preview", "--config", str(bad_toml), "--limit", "3"]),
        ("markets", ["--config", str(wrong_toml), "cup"]),
        ("merge", []),
        ("merge", ["demo-btc-above-150k-2026", "--sets", "-1", "--db-url", db]),
        ("merge", ["demo-btc-above-150k-2026", "--sets", "nan", "--db-url", db]),
        ("merge", ["demo-btc-above-150k-2026", "--wait", "0", "--db-url", db]),
        ("redeem", ["--wait", "nan", "--db-url", db]),
        ("redeem", ["--db-url", "mysql://x/y"]),
        ("balance", ["--db-url", "mysql://x/y"]),
        ("balance", ["--wait", "-1", "--db-url", db]),
        ("mock-chain", ["--port", "abc"]),
        ("mock-chain", ["--blocks-per-second", "nan", "--port", "0"]),
        ("mock-data-api", ["--port", "abc"]),
        ("mock-data-api", ["--position", "bad", "--port", "0"]),
        ("mock-gamma", ["--port", "0", "--markets", MISSING]),
        ("mock-gamma", ["--port", "0", "--synthetic", "-3"]),
        ("mock-gamma", ["--port", "0", "--retry-after", "nan"]),
        ("metrics", ["--replay", MISSING]),
        ("metrics", ["--replay", str(tmp)]),
        ("metrics", ["--config", MISSING]),
        ("metrics-export", ["--out", "/proc/forbidden/metrics.prom"]),
        ("metrics-export", ["--no-replay", "--out", str(tmp)]),
        ("metrics-serve", ["--port", "99999"]),
        ("metrics-serve", ["--ws-url", "not-a-url", "--duration", "1"]),
        ("metrics-serve", ["--port", "0", "--rate", "nan", "--duration", "1"]),
        ("preflight", []),
        ("preflight", ["--config", MISSING]),
        ("preflight", ["--config", str(wrong_toml)]),
        ("smoke-live", ["--config", MISSING, "m", "Yes", "BUY", "0.5", "10"]),
        ("smoke-live", ["--config", str(keyless_toml), "<YOUR_MARKET_SLUG>", "Yes", "BUY", "0.45", "5"]),
        ("smoke-live", ["--config", str(wrong_toml), "m", "Maybe", "HOLD", "NaN", "-1"]),
        ("smoke-live", ["--config", str(wrong_toml), "m", "Yes", "BUY", "0.45", "1e30"]),
        ("run-service", []),
        ("run-service", ["--config", MISSING]),
        ("run-service", ["--config", str(bad_toml)]),
        ("run-service", ["--config", str(wrong_toml), "--duration", "-5"]),
        ("run-service", ["--config", str(wrong_toml), "--duration", "nan"]),
        ("dutch-run-replay", [MISSING, "some-market"]),
        ("dutch-run-replay", [str(bad_jsonl), "some-market", "--max-sets", "NaN", "--db-url", db]),
        ("dutch-run-replay", [str(bad_jsonl), "some-market", "--fee-bps", "١٠", "--db-url", db]),
        ("quoter-run-replay", [str(bad_jsonl), "m", "Yes", "--size", "-5", "--db-url", db]),
        ("quoter-run-replay", [str(bad_jsonl), "m", "Yes", "--size", "1e3", "--db-url", db]),
        ("quoter-run-replay", [MISSING, "m", "Yes"]),
        ("quoter-run-ws", ["not-a-url", "m", "Yes"]),
        ("quoter-run-ws", ["m", "Yes", "--duration", "1", "--db-url", db]),
        ("quoter-run-ws", ["--config", MISSING, "m", "Yes", "--duration", "1"]),
        ("quoter-run-ws", [WS_NOWHERE, "m", "Yes", "--size", "Infinity", "--db-url", db]),
        ("quoter-run-ws", [WS_NOWHERE, "m", "Yes", "--duration", "nan", "--db-url", db]),
        ("tgbot-run-local", []),
        ("tgbot-run-local", [MISSING, "--db-url", db]),
        ("tgbot-run-local", [str(bad_jsonl), "--db-url", db]),
    ]


# --------------------------------------------------------------------------- coverage


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


@functools.cache
def _command_tree() -> dict[str, tuple[str, ...]]:
    """Each command of the real ``polybot`` parser with its sub-commands (most have none)."""
    from polybot.cli.main import build_parser

    return {name: tuple(_subcommands(parser)) for name, parser in _subcommands(build_parser()).items()}


def cli_commands() -> list[str]:
    """Every command of the real ``polybot`` parser; a nested one as "config show"."""
    names: list[str] = []
    for name, subs in _command_tree().items():
        names += [name, *(f"{name} {sub}" for sub in subs)]
    return names


def case_command(case: Case) -> str:
    """The command a case tries: its name, plus the sub-command when its first argument is one."""
    name, args = case
    if args and args[0] in _command_tree().get(name, ()):
        return f"{name} {args[0]}"
    return name


def cli_gaps(cases: Sequence[Case]) -> list[str]:
    """Commands of the parser that no case tries."""
    tried = {case_command(c) for c in cases}
    return [name for name in cli_commands() if name not in tried]


def telegram_gaps(cases: Sequence[str]) -> list[str]:
    """Commands of ``bot.handlers.COMMANDS`` that no Telegram case sends."""
    from bot.handlers import COMMANDS

    sent = {text.split()[0].lstrip("/").split("@")[0] for text in cases if text.startswith("/")}
    return [name for name in COMMANDS if name not in sent]


@dataclass
class Result:
    surface: str
    command: str
    given: str
    answer: str
    code: str
    flag: str


def _one_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if not lines:
        return ""
    errors = [
        i for i, ln in enumerate(lines) if ln.startswith(("polybot: error", "polybot ", "error:")) or ": error:" in ln
    ]
    i = errors[-1] if errors else len(lines) - 1
    line = lines[i]
    if line.endswith(":") and i + 1 < len(lines):  # "invalid configuration:" + the first problem
        line += " " + lines[i + 1]
    return line[:220]


def run_cli(case: Case, env: dict[str, str], feed_url: str = WS_NOWHERE) -> Result:
    """Run one case in its own process group (killed as a whole when it overstays)."""
    from tests.procs import console_script, run

    name, args = case
    argv = ([] if name.startswith("(") else [name]) + args
    shown = "polybot " + " ".join(argv)
    try:
        done = run(
            [console_script("polybot"), *(feed_url if a == FEED else a for a in argv)],
            cwd=REPO_ROOT,
            env=env,
            text=True,
            timeout_s=CASE_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return Result(
            "cli",
            name,
            shown,
            f"(accepted: still running, killed after {CASE_TIMEOUT_S} s)",
            "-",
            "accepted (kept running)",
        )
    stdout, stderr = done.stdout, done.stderr
    out = stderr + "\n" + stdout
    answer = (_one_line(stderr) or _one_line(stdout)).replace(feed_url, FEED)
    flag = ""
    if "Traceback (most recent call last)" in out:
        flag = "CRASH (traceback)"
    elif UNHANDLED in out:  # polybot.cli.main's last line of defence: an exception nobody turned into words
        flag = "CRASH (unhandled exception)"
    elif done.returncode == 0:
        flag = "accepted (exit 0)"
    elif done.returncode not in (1, 2):
        flag = f"exit {done.returncode}"
    elif not answer:
        flag = "no message"
    return Result("cli", name, shown, answer, str(done.returncode), flag)


@contextlib.contextmanager
def mock_feed(env: dict[str, str]) -> Iterator[str]:
    """A local ``polybot mock-ws`` for the cases that need a feed that answers: its URL."""
    from tests.procs import Lines, console_script, running

    argv = [console_script("polybot"), "mock-ws", "--port", "0", "--assets", "2", "--rate", "20"]
    with running(
        argv,
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as proc:
        (url,) = Lines(proc, proc.stdout).wait_lines(1, 30)
        if not url.startswith("ws://"):
            raise RuntimeError(f"polybot mock-ws did not start (printed {url!r})")
        yield url


def run_cli_cases(cases: Sequence[Case], env: dict[str, str], jobs: int) -> list[Result]:
    with contextlib.ExitStack() as stack:
        feed = stack.enter_context(mock_feed(env)) if any(FEED in args for _, args in cases) else WS_NOWHERE
        with ThreadPoolExecutor(max(1, jobs)) as pool:
            return list(pool.map(lambda c: run_cli(c, env, feed), cases))


def cli_env() -> dict[str, str]:
    """This environment without POLYBOT_* settings, and a default database that cannot exist."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLYBOT_")}
    env["POLYBOT_DB__URL"] = "sqlite:///" + MISSING + "/none.db"
    return env


TELEGRAM_CASES = [
    "/start now",
    "/help me",
    "/status please",
    "/quotes a b",
    "/quotes no-such-market",
    "/markets <b>bold</b>",
    "/arm now",
    "/disarm x",
    "/preflight x",
    "/order",
    "/order demo-btc-above-150k-2026",
    "/order no-such-market Yes BUY 0.5 10",
    "/order demo-btc-above-150k-2026 Maybe BUY 0.5 10",
    "/order demo-btc-above-150k-2026 Yes HOLD 0.5 10",
    "/order demo-btc-above-150k-2026 Yes BUY abc 10",
    "/order demo-btc-above-150k-2026 Yes BUY NaN 10",
    "/order demo-btc-above-150k-2026 Yes BUY Infinity 10",
    "/order demo-btc-above-150k-2026 Yes BUY 1.5 10",
    "/order demo-btc-above-150k-2026 Yes BUY 0 10",
    "/order demo-btc-above-150k-2026 Yes BUY 0.505 10",
    "/order demo-btc-above-150k-2026 Yes BUY 0.5 -1",
    "/order demo-btc-above-150k-2026 Yes BUY 0.5 1e9",
    "/order demo-btc-above-150k-2026 Yes BUY 0.5 10.001",
    "/order demo-btc-above-150k-2026 Yes BUY 0.5 1",
    "/order demo-btc-above-150k-2026 Yes BUY 0.5 10 extra",
    "/orders x",
    "/watch a b",
    "/watch no-such-market",
    "/unwatch",
    "/unwatch no-such-market",
    "/order demo-btc-above-150k-2026 Yes BUY 0.5 10 gtd",
    "/order demo-btc-above-150k-2026 Yes BUY 0.5 10 gtd forever",
    "/order demo-btc-above-150k-2026 Yes BUY 0.5 10 gtd 30d",
    "/order demo-btc-above-150k-2026 Yes BUY 0.5 10 fok postonly",
    "/order demo-btc-above-150k-2026 Yes BUY 0.5 10 gtc fak",
    "/order demo-btc-above-150k-2026 Yes BUY 0.5 10 postonly postonly",
    "/close",
    "/close demo-btc-above-150k-2026",
    "/close no-such-market Yes",
    "/close demo-btc-above-150k-2026 Maybe",
    "/close demo-btc-above-150k-2026 Yes",
    "/close demo-btc-above-150k-2026 Yes abc",
    "/close demo-btc-above-150k-2026 Yes 0.5 extra",
    "/fills 0",
    "/fills abc",
    "/fills 99999999999999999999",
    "/fills 1 2",
    "/cancel",
    "/cancel no-such-order",
    "/cancel pb-1",
    "/cancel a b",
    "/cancelall x",
    "/positions x",
    "/pnl x",
    "/health x",
    "/alerts",
    "/alerts maybe",
    "/alerts mute",
    "/alerts mute 0",
    "/alerts mute 99d",
    "/alerts mute 1x",
    "/alerts on x",
    "/merge",
    "/merge no-such-market",
    "/merge demo-btc-above-150k-2026 -5",
    "/merge demo-btc-above-150k-2026 abc",
    "/redeem no-such-market",
    "/redeem a b",
    "/balance x",
    "/strategy dutch",
    "/strategy martingale on",
    "/strategy dutch sideways",
    "/strategy dutch off no-such-market",
    "/strategy dutch off a b",
    "/params x",
    "/set",
    "/set risk.max_order_notional",
    "/set no.such.key 1",
    "/set risk.max_order_notional -5",
    "/set risk.max_order_notional 1e9",
    "/set dutch.slippage_ticks 1.5",
    "/set risk.max_order_notional NaN",
    "/chart",
    "/chart no-such-market",
    "/chart pnl 9d",
    "/chart demo-btc-above-150k-2026 extra",
    "/kill now",
    "/nosuchcommand",
    "hello",
]


def _plain(text: str) -> str:
    text = html.unescape(re.sub(r"<[^>]+>", "", text))
    return " / ".join(ln.strip() for ln in text.splitlines() if ln.strip())[:220]


async def run_telegram() -> list[Result]:
    import pytest

    from tests.faults.fault_harness import TRADER, running_service

    results: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as mp:
        db_url = f"sqlite:///{Path(tmp) / 'bad-input.db'}"
        env = {"telegram__commands_per_minute": "10000"}
        async with running_service(db_url, mp, feed="demo", rate_hz=50.0, env=env) as rig:
            await rig.wait_books_ok()
            await rig.telegram_feed([rig.updates.msg(TRADER, "/arm")])
            for text in TELEGRAM_CASES:
                start = len(rig.api.calls)
                await asyncio.wait_for(rig.telegram_feed([rig.updates.msg(TRADER, text)]), 30)
                replies = [c.text or "" for c in rig.api.calls[start:] if c.method == "sendMessage"]
                answer = " // ".join(_plain(r) for r in replies)
                flag = ""
                if not replies:
                    flag = "no answer"
                elif any("Internal error" in r for r in replies):
                    flag = "CRASH (internal error)"
                elif text.startswith("/order") and any(r.startswith(("✅", "❓")) for r in replies):
                    flag = "accepted"
                elif any(r.startswith("Too many commands") for r in replies):
                    flag = "rate-limited (case not tested)"
                results.append(Result("telegram", text.split()[0], text, answer, "-", flag))
            await rig.telegram_feed([rig.updates.msg(TRADER, "/disarm")])
    return results


def render(cli: list[Result], telegram: list[Result], seconds: float) -> str:
    def esc(s: str) -> str:
        return s.replace("|", "\\|").replace("\n", " ")

    out = [
        "# Bad input: what every command answers",
        "",
        "Generated by `uv run python bench/bad_input.py` (do not edit by hand). Every CLI command and",
        "every Telegram command is tried with malformed arguments; the answer column is the one line",
        "the user reads (CLI: the error line on stderr; Telegram: the reply, tags stripped). A case is",
        "flagged when it crashes (traceback, an unhandled exception's class name, exit code other than",
        "1/2, 'Internal error'), when malformed input is accepted, or when nothing is answered.",
        "",
        "The commands are not a hand-picked list: they are read from the real argument parser and from",
        "the bot's command table, and the generator refuses to run while one of them has no case.",
        "`$FEED` is a local `polybot mock-ws` started for the run (a feed that answers, but not for `abc`);",
        "`$TMP` is the run's scratch directory.",
        "",
        f"{len(cli)} CLI cases, {len(telegram)} Telegram cases, {sum(1 for r in cli + telegram if r.flag)} flagged; "
        f"generated in {seconds:.0f} s.",
        "",
        "## CLI (`polybot ...`)",
        "",
        "| command | tried | exit | answer | flag |",
        "|---|---|---|---|---|",
    ]
    for r in cli:
        out.append(f"| {r.command} | `{esc(r.given)}` | {r.code} | {esc(r.answer)} | {r.flag or 'ok'} |")
    out += [
        "",
        "## Telegram (an authorised operator, paper mode, armed)",
        "",
        "| command | sent | answer | flag |",
        "|---|---|---|---|",
    ]
    for r in telegram:
        out.append(f"| {r.command} | `{esc(r.given)}` | {esc(r.answer)} | {r.flag or 'ok'} |")
    flagged = [r for r in cli + telegram if r.flag]
    out += ["", "## Flagged", ""]
    out += [f"- {r.surface} `{esc(r.given)}`: {r.flag} — {esc(r.answer)}" for r in flagged] or ["- none"]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "bad-input.md")
    parser.add_argument("--jobs", type=int, default=3)
    parser.add_argument("--only-telegram", action="store_true")
    args = parser.parse_args(argv)

    started = time.monotonic()
    cli: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp:
        cases = cli_cases(Path(tmp))
        gaps = [f"polybot {name}" for name in cli_gaps(cases)] + [f"/{name}" for name in telegram_gaps(TELEGRAM_CASES)]
        if gaps:
            sys.stderr.write(
                f"bench/bad_input.py: no bad-input case for {', '.join(gaps)}: "
                "add cases to cli_cases() / TELEGRAM_CASES before anything runs\n"
            )
            return 1
        if not args.only_telegram:
            cli = run_cli_cases(cases, cli_env(), args.jobs)
            for r in cli:  # the same table on every run: the scratch directory is $TMP
                r.given, r.answer = r.given.replace(tmp, "$TMP"), r.answer.replace(tmp, "$TMP")
    telegram = asyncio.run(run_telegram())
    text = render(cli, telegram, time.monotonic() - started)
    args.out.write_text(text)
    flagged = [r for r in cli + telegram if r.flag]
    sys.stdout.write(f"wrote {args.out}: {len(cli)} CLI + {len(telegram)} Telegram cases, {len(flagged)} flagged\n")
    for r in flagged:
        sys.stdout.write(f"  {r.surface}: {r.given} -> {r.flag}: {r.answer}\n")
    return 1 if flagged else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The bad-input table: every CLI command and every Telegram command tried with malformed arguments.

CLI: each case runs ``python -m core.cli.main ...`` as a subprocess (no network: every URL is a
closed loopback port or a nonexistent file) and records the exit code and the one line the user
reads. Telegram: a real paper-mode Service with the bot on the in-process Bot API double gets each
command from an authorised operator and records the reply.

A case is flagged when it crashes (a traceback, an exit code other than 1/2, "Internal error"),
when a malformed input is accepted silently (exit 0 / no reply), or when the answer is not one
clear line. Writes ``docs/bad-input.md`` (``--out``) and prints the flags.

    uv run python bench/bad_input.py [--out docs/bad-input.md] [--jobs 3] [--only-telegram]
"""

from __future__ import annotations

import argparse
import asyncio
import html
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

NOWHERE = "http://127.0.0.1:9"  # discard port: nothing listens, connects fail at once
WS_NOWHERE = "ws://127.0.0.1:9/ws/market"
MISSING = "/nonexistent/polybot/file"


def cli_cases(tmp: Path) -> list[tuple[str, list[str]]]:
    bad_toml = tmp / "bad.toml"
    bad_toml.write_text("[service\nmode = 'paper'\n")
    wrong_toml = tmp / "wrong.toml"
    wrong_toml.write_text(
        "[service]\nmode = 'sideways'\n[feed]\nping_interval_s = -1\n[risk]\nmax_order_notional = 'lots'\n"
    )
    bad_jsonl = tmp / "bad.jsonl"
    bad_jsonl.write_text('not json\n{"recv_ns": 1}\n')
    db = f"sqlite:///{tmp / 'x.db'}"
    return [
        ("(no command)", []),
        ("(unknown command)", ["frobnicate"]),
        ("relayer-dry-run", []),
        ("relayer-dry-run", ["0xabc", "Yes", "BUY", "0.5", "10", "--private-key", "not-a-key"]),
        ("relayer-dry-run", ["0xabc", "Yes", "HOLD", "0.5", "10", "--signature-type", "9"]),
        (
            "relayer-dry-run",
            ["0xabc", "Yes", "BUY", "1.5", "-10", "--private-key", "0x" + "11" * 32, "--base-url", NOWHERE],
        ),
        (
            "relayer-dry-run",
            ["0xabc", "Yes", "BUY", "0.5", "10", "--tick-size", "NaN", "--private-key", "0x" + "11" * 32],
        ),
        ("relayer-approve-usdc", ["--address", "nope"]),
        ("relayer-approve-usdc", ["--timeout", "-1"]),
        ("relayer-approve-outcome", ["--rpc-url", "ftp://x"]),
        ("mock-clob", ["--port", "-5"]),
        ("mock-clob", ["--settlement", "maybe"]),
        ("mock-clob", ["--confirm-delay", "abc"]),
        ("config", []),
        ("config", ["show", "--config", MISSING]),
        ("config", ["check", "--config", str(bad_toml)]),
        ("config", ["check", "--config", str(wrong_toml)]),
        ("migrate", []),
        ("migrate", ["--apply", "--db-url", "mysql://x/y"]),
        ("migrate", ["--current", "--db-url", "postgresql://u:secretpw@127.0.0.1:9/db"]),
        ("status", ["--db-url", "sqlite:///" + MISSING + "/x.db"]),
        ("status", ["--limit", "-3", "--db-url", db]),
        ("demo", ["--duration", "-1"]),
        ("demo", ["--duration", "abc"]),
        ("replay-book", []),
        ("replay-book", [MISSING]),
        ("replay-book", [str(bad_jsonl)]),
        ("replay-book", [str(bad_jsonl), "--speed", "-2"]),
        ("record-ws", ["not-a-url", str(tmp / "out.jsonl")]),
        ("record-ws", [WS_NOWHERE, str(tmp / "out.jsonl"), "--duration", "1"]),
        ("record-ws", [WS_NOWHERE, "/proc/forbidden/out.jsonl", "--max-messages", "-1"]),
        ("mock-ws", []),
        ("mock-ws", ["--port", "0", "--recording", MISSING]),
        ("mock-ws", ["--port", "0", "--rate", "-5", "--duration", "1"]),
        ("status-top", ["--limit", "0", "--db-url", db]),
        ("health", ["--staleness-ms", "-1", "--db-url", db]),
        ("health", ["--db-url", "nonsense"]),
        ("ingest-ws", [WS_NOWHERE]),
        ("ingest-ws", ["not-a-url", "123"]),
        ("ingest-ws", [WS_NOWHERE, "123", "--max-frame-bytes", "0", "--db-url", db]),
        ("refresh-markets", [NOWHERE, "--db-url", db, "--timeout", "1", "--retries", "0"]),
        ("refresh-markets", ["--limit", "-1", "--db-url", db]),
        ("markets", ["--db-url", db]),
        ("markets", ["--limit", "abc"]),
        ("mock-gamma", ["--port", "0", "--markets", MISSING]),
        ("mock-gamma", ["--port", "0", "--synthetic", "-3"]),
        ("metrics", ["--replay", MISSING]),
        ("metrics-export", ["--out", "/proc/forbidden/metrics.prom"]),
        ("metrics-serve", ["--port", "99999"]),
        ("metrics-serve", ["--ws-url", "not-a-url", "--duration", "1"]),
        ("preflight", []),
        ("preflight", ["--config", MISSING]),
        ("preflight", ["--config", str(wrong_toml)]),
        ("smoke-live", ["--config", MISSING, "m", "Yes", "BUY", "0.5", "10"]),
        ("smoke-live", ["--config", str(wrong_toml), "m", "Maybe", "HOLD", "NaN", "-1"]),
        ("run-service", []),
        ("run-service", ["--config", MISSING]),
        ("run-service", ["--config", str(bad_toml)]),
        ("run-service", ["--config", str(wrong_toml), "--duration", "-5"]),
        ("dutch-run-replay", [MISSING, "some-market"]),
        ("dutch-run-replay", [str(bad_jsonl), "some-market", "--max-sets", "NaN", "--db-url", db]),
        ("quoter-run-replay", [str(bad_jsonl), "m", "Yes", "--size", "-5", "--db-url", db]),
        ("quoter-run-replay", [MISSING, "m", "Yes"]),
        ("quoter-run-ws", ["not-a-url", "m", "Yes"]),
        ("quoter-run-ws", [WS_NOWHERE, "m", "Yes", "--size", "Infinity", "--db-url", db]),
        ("tgbot-run-local", []),
        ("tgbot-run-local", [MISSING, "--db-url", db]),
        ("tgbot-run-local", [str(bad_jsonl), "--db-url", db]),
    ]


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


def run_cli(case: tuple[str, list[str]], env: dict[str, str]) -> Result:
    name, args = case
    argv = ([] if name.startswith("(") else [name]) + args
    shown = "polybot " + " ".join(argv)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "core.cli.main", *argv],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=15,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return Result(
            "cli", name, shown, "(accepted: still running, killed after 15 s)", "-", "accepted (kept running)"
        )
    out = proc.stderr + "\n" + proc.stdout
    answer = _one_line(proc.stderr) or _one_line(proc.stdout)
    flag = ""
    if "Traceback (most recent call last)" in out:
        flag = "CRASH (traceback)"
    elif proc.returncode == 0:
        flag = "accepted (exit 0)"
    elif proc.returncode not in (1, 2):
        flag = f"exit {proc.returncode}"
    elif not answer:
        flag = "no message"
    return Result("cli", name, shown, answer, str(proc.returncode), flag)


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
    "/cancel",
    "/cancel no-such-order",
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
        "flagged when it crashes (traceback, exit code other than 1/2, 'Internal error'), when malformed",
        "input is accepted, or when nothing is answered.",
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
    import os

    started = time.monotonic()
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLYBOT_")}
    env["POLYBOT_DB__URL"] = "sqlite:///" + MISSING + "/none.db"
    cli: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp:
        if not args.only_telegram:
            cases = cli_cases(Path(tmp))
            with ThreadPoolExecutor(max(1, args.jobs)) as pool:
                cli = list(pool.map(lambda c: run_cli(c, env), cases))
            for r in cli:  # the same table on every run: the scratch directory is $TMP
                r.given, r.answer = r.given.replace(tmp, "$TMP"), r.answer.replace(tmp, "$TMP")
    telegram = asyncio.run(run_telegram())
    text = render(cli, telegram, time.monotonic() - started)
    args.out.write_text(text)
    flagged = [r for r in cli + telegram if r.flag]
    sys.stdout.write(f"wrote {args.out}: {len(cli)} CLI + {len(telegram)} Telegram cases, {len(flagged)} flagged\n")
    for r in flagged:
        sys.stdout.write(f"  {r.surface}: {r.given} -> {r.flag}: {r.answer}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

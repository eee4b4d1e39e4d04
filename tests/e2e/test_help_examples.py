"""Every ``polybot COMMAND --help`` example runs as written, and so does README's "Going live"
(issue 19 point 3).

The examples are read from the parser itself (:func:`polybot.cli.main.build_parser`: the line
after ``example:`` in each sub-command's epilog), so a new command is covered the day it is
registered. An example that needs something running says so in a trailing shell comment,
``# while polybot sandbox runs`` (or ``# while A and B run``); this module starts each such
``polybot sandbox …`` once, exactly as written, in a scratch directory holding copies of
``config/`` and ``fixtures/`` (its own process group, its terminal chat's stdin kept open, ready
once it prints its ``try:`` line), and ends it as a person does, with the end of the input.
``nats-server -js`` is the NATS server every bus command defaults to (127.0.0.1:4222): examples
needing it are skipped when none answers, as the bus tests are (``POLYBOT_REQUIRE_NATS`` makes
that a failure).

Each example then runs with bash in that directory, two at a time: a one-shot command must exit 0
(or the code :data:`EXPECTED` gives, with the text that explains it) and print what shows that it
did its work (:data:`SHOWS`); a server (the ``mock-*`` doubles, ``metrics-serve``) must print its
URL first, answer on it, and exit 0 on SIGTERM. Nothing may print a traceback. A placeholder
``<YOUR_…>`` is allowed only where the value must be the user's own; run as written, the command
must name it and say what goes there (exit 2).

README's "Going live" runs in the same pool, line by line (its bash blocks and its inline
``uv run polybot …``), in a fresh copy of the project with the venue's URLs pointed at the
sandbox's doubles through the environment (what a user reaches on the internet); its lines about
``var/sandbox/`` run where the sandbox runs. Every other ``polybot …`` line in a code block of
README.md and docs/*.md must parse with the real parser (the acceptance walkthrough, which runs,
is ``test_docs_walkthrough.py``), and every ``POLYBOT_*`` name must be the one the settings
loader reads.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import shlex
import subprocess
import sys
import threading
import time
import tomllib
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from polybot.cli.main import build_parser
from polybot.cli.placeholders import PLACEHOLDER, WHAT_GOES_THERE
from tests.conftest import REPO_ROOT
from tests.e2e.docs_markdown import README
from tests.e2e.help_examples_world import (
    SERVERS,
    World,
    bad_signs,
    needs_of,
    run_line,
    serve_line,
    start_world,
    tail,
)

WORKERS = 2
NATS = "nats-server -js"
SANDBOX = "polybot sandbox"
BOUNDED = {  # long-running commands: their example carries the bound that ends it
    "run-service": "--duration",
    "feed-worker": "--duration",
    "recorder": "--duration",
    "quoter-run-ws": "--duration",
    "record-ws": "--max-messages",
    "ingest-ws": "--max-messages",
}
EXPECTED = {  # (exit code, the text that says why) where the example's honest answer is not 0
    "merge": (1, "no complete YES+NO set held"),  # a fresh sandbox holds no sets: the refusal is the answer
    "redeem": (1, "nothing to redeem"),  # nor resolved markets
}
SHOWS = {  # what an example's output must contain: it did its work, not merely exit 0
    "disarm": "disarmed",
    "kill": "killed: disarmed",
    "status-top": "demo-",
    "health": "healthy",
    "markets": "demo-cup-2026-aurora",
    "preflight": "preflight passed",
    "smoke-live": "DRY RUN: signed, NOT posted",
    "balance": '"collateral"',
    "status": '"assets_tracked"',
    "feed-worker": "stopped cleanly",
    "relayer-dry-run": "DRY RUN: signed, NOT posted",
    "relayer-approve-usdc": "approve(",
    "relayer-approve-outcome": "setApprovalForAll(",
    "config": "relayer.type",
    "config show": "relayer.type",
    "config check": "config OK",
    "relayer-api-creds": "wrote relayer.api_key",
    "mock-data-api": "GET /positions",
    "demo": "===== summary =====",
    "replay-book": '"status": "ok"',
    "record-ws": "recorded 200 messages",
    "refresh-markets": "9 inserted",
    "ingest-ws": "rows: ",
    "metrics": "replayed",
    "metrics-export": "wrote",
    "migrate": "(head)",
    "prune": "dry run: nothing removed",
    "recorder": "recorded ",
    "run-service": "stopped cleanly",
    "dutch-run-replay": "opportunities 1",
    "quoter-run-replay": "summary: frames 1503",
    "quoter-run-ws": "summary: frames",
    "tgbot-run-local": "/order demo-btc-above-150k-2026 Yes BUY",
}
SERIAL = {"relayer-api-creds"}
"""Rewrites the sandbox's secrets.local.toml in place, which the others load: run alone, last."""
SLOW_FIRST = (
    "smoke-live",
    "demo",
    "tgbot-run-local",
    "run-service",
    "quoter-run-ws",
    "feed-worker",
    "recorder",
    "ingest-ws",
)
"""Started first, so that two workers finish together (smoke-live: the only user of the dry-run
sandbox, which then stops)."""


@dataclass(frozen=True)
class Example:
    command: str
    """The sub-command as typed: ``status``, ``config show``."""
    line: str

    @property
    def needs(self) -> tuple[str, ...]:
        return needs_of(self.line)


@dataclass
class Report:
    failures: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    timings: list[tuple[float, str]] = field(default_factory=list)
    users: Counter[str] = field(default_factory=Counter)
    """How many examples still to run need each sandbox; at 0 it is stopped."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def done_with(self, ex: Example, world: World) -> None:
        for need in ex.needs:
            with self.lock:
                self.users[need] -= 1
                last = self.users[need] == 0 and need in world.sandboxes and need != SANDBOX
            if last and (problem := world.stop(need)) is not None:  # SANDBOX: Going live uses it too
                self.failures.append(problem)


def help_examples() -> list[Example]:
    found: list[Example] = []

    def walk(parser: argparse.ArgumentParser, words: list[str]) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    _, marker, example = (sub.epilog or "").partition("example:\n")
                    found.append(Example(" ".join([*words, name]), example.strip() if marker else ""))
                    walk(sub, [*words, name])

    walk(build_parser(), [])
    return found


# --------------------------------------------------------------------------------------------
# what every example must be, read without running anything
# --------------------------------------------------------------------------------------------


def test_every_example_is_one_runnable_line_of_known_prerequisites() -> None:
    examples = help_examples()
    assert len(examples) >= 40, "the parser walk found almost no example"
    bad: list[str] = []
    for ex in examples:
        name = ex.command.split()[0]
        if not ex.line.startswith("polybot ") or not re.search(rf"(^|&& )polybot {ex.command}\b", ex.line):
            bad.append(f"{ex.command}: the example does not run polybot {ex.command}: {ex.line!r}")
        if "\n" in ex.line or re.search(r"\.\.\.|…|0xabc|0xYour|://[^ ]*\.example\b", ex.line):
            bad.append(f"{ex.command}: the example is not one line of real values: {ex.line!r}")
        unknown = [n for n in ex.needs if not (n.startswith(SANDBOX) or n == NATS)]
        if unknown:
            bad.append(f"{ex.command}: this module cannot start {unknown} for {ex.line!r}")
        flag = BOUNDED.get(name)
        if flag is not None and flag not in ex.line:
            bad.append(f"{ex.command}: a long-running command's example must carry {flag}: {ex.line!r}")
        if re.search(r"(?<![\"'])<YOUR_", ex.line):
            bad.append(f"{ex.command}: a placeholder must be quoted (bare < is a redirection): {ex.line!r}")
    assert not bad, "\n".join(bad)
    assert any(ex.command == "sandbox" and ex.line == SANDBOX for ex in examples), "sandbox's own example"


def test_every_placeholder_in_the_docs_is_quoted_and_says_what_goes_there() -> None:
    from tests.e2e.docs_markdown import DOCS_DIR, load_doc

    seen: set[str] = set()
    bad: list[str] = []
    for path in [README, *sorted(DOCS_DIR.glob("*.md"))]:
        doc = load_doc(path)
        if doc.generated:  # the bad-input table quotes a placeholder as a malformed argument, on purpose
            continue
        lines = [(b.line + i + 1, line) for b in doc.blocks for i, line in enumerate(b.text.splitlines())]
        lines += [(n, code) for n, code in doc.inline_code()]
        for lineno, text in lines:
            for found in PLACEHOLDER.finditer(text):
                seen.add(found.group(0))
                if found.group(0) not in WHAT_GOES_THERE:
                    bad.append(f"{doc.name}:{lineno}: {found.group(0)} is not in polybot.cli.placeholders")
                quoted = found.start() > 0 and text[found.start() - 1] in "\"'"
                if "polybot " in text and not quoted:
                    bad.append(f"{doc.name}:{lineno}: quote {found.group(0)} in a shell command: {text.strip()}")
    assert not bad, "\n".join(bad)
    assert {"<YOUR_MARKET_SLUG>", "<YOUR_PRIVATE_KEY>"} <= seen, "the extractor found no placeholder"


_DOC_COMMAND = re.compile(r"(?:^|[\s;&|(=])(?:[\w./-]*/)?polybot\s+(?P<args>(?P<first>[\w-]+)\b.*)$")
_SHELL_END = {"&&", "||", "|", "&", ";", ">", ">>", "2>&1", "<"}


def docs_command_lines() -> list[tuple[str, list[str]]]:
    """(where, argv) of every ``polybot …`` line in a fenced block of README.md and docs/*.md."""
    from tests.e2e.docs_markdown import DOCS_DIR, GLOBAL_OPTIONS, load_doc, registered_commands

    first_words = set(registered_commands()) | GLOBAL_OPTIONS
    found: list[tuple[str, list[str]]] = []
    for path in [README, *sorted(DOCS_DIR.glob("*.md"))]:
        doc = load_doc(path)
        if doc.generated:
            continue
        for block in doc.blocks:
            text = block.text.replace("\\\n", " ")  # continuation lines are one command
            for n, line in enumerate(text.splitlines()):
                command = _DOC_COMMAND.search(line.split(" #", 1)[0])
                if command is None or command.group("first") not in first_words:
                    continue  # prose, a path, a user name
                if "$" in command.group("args"):
                    continue  # a command substitution or variable: the walkthrough test runs those
                words: list[str] = []
                for word in shlex.split(command.group("args")):
                    if word in _SHELL_END or word.startswith(">"):
                        break
                    words.append(word)
                found.append((f"{doc.name}:{block.line + n + 1}", words))
    return found


def test_every_polybot_command_in_the_docs_parses(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each ``polybot …`` line the docs show is accepted by the real parser: the options exist and the
    values have their types (a placeholder is answered by its own message, checked above). Parsed
    where a reader runs them: a checkout with its config/ and fixtures/ and a var/ directory (a fresh
    clone has none; an option naming a file in it checks the directory exists)."""
    for name in ("config", "fixtures"):
        (tmp_path / name).symlink_to(REPO_ROOT / name)
    (tmp_path / "var").mkdir()
    monkeypatch.chdir(tmp_path)
    lines = docs_command_lines()
    assert len(lines) >= 30, "the docs' command extractor found almost nothing"
    bad: list[str] = []
    for where, argv in lines:
        if any(PLACEHOLDER.search(word) for word in argv):
            continue
        try:
            build_parser().parse_args(argv)
        except SystemExit as exc:
            if exc.code != 0:
                bad.append(f"{where}: polybot {shlex.join(argv)}: {capsys.readouterr().err.strip()}")
    assert not bad, "\n".join(bad)


NOT_SETTINGS = {  # POLYBOT_* names that are not settings, each with its one meaning
    "POLYBOT_REQUIRE_PG": "the test suite: PostgreSQL tests fail instead of skipping",
    "POLYBOT_REQUIRE_NATS": "the test suite: NATS tests fail instead of skipping",
    "POLYBOT_REQUIRE_KERNEL": "the test suite: the compiled feed kernel must be built and current",
    "POLYBOT_FEED_KERNEL": "0 turns the compiled feed path off",
    "POLYBOT_BUILD_KERNEL": "0 skips building the compiled feed path",
    "POLYBOT_MD": "not a variable: the default JetStream stream name ([bus] stream)",
}
_POLYBOT_NAME = re.compile(r"\bPOLYBOT_[A-Z0-9_]+\b")


def test_one_name_for_each_environment_variable() -> None:
    """Every ``POLYBOT_*`` name the docs, the configuration examples and the code use is the settings
    loader's name of a real key (``POLYBOT_<SECTION>__<KEY>``) or one of the few switches above:
    no second spelling of a setting (``POLYBOT_PRIVATE_KEY`` beside ``POLYBOT_RELAYER__PRIVATE_KEY``)."""
    from tests.e2e.docs_markdown import config_paths, env_to_key

    leaves, sections = config_paths()
    tracked = subprocess.run(
        ["git", "ls-files", "README.md", "docs", "config", "polybot", "core", "bot", "deploy", ".ci"],
        cwd=README.parent, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    bad: list[str] = []
    seen = 0
    for name in tracked:
        if name == "docs/bad-input.md":  # generated: it quotes malformed input on purpose
            continue
        for lineno, text in enumerate((README.parent / name).read_text(errors="replace").splitlines(), 1):
            for found in _POLYBOT_NAME.finditer(text):
                seen += 1
                var = found.group(0)
                if "__" in var:
                    if env_to_key(var) not in leaves | sections:
                        bad.append(f"{name}:{lineno}: {var} sets no setting ({env_to_key(var)})")
                elif var not in NOT_SETTINGS:
                    bad.append(f"{name}:{lineno}: {var} is not a setting's name (POLYBOT_<SECTION>__<KEY>)")
    assert seen > 30, "the scan found almost no POLYBOT_* name"
    assert not bad, "\n".join(bad)


def test_the_private_key_variable_is_the_settings_name() -> None:
    from core.settings import env_name
    from polybot.cli.tools.clob_cmd import PRIVATE_KEY_ENV

    assert PRIVATE_KEY_ENV == env_name("relayer.private_key")


# --------------------------------------------------------------------------------------------
# running them
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    examples = help_examples()
    wanted = sorted({n for ex in examples for n in ex.needs if n.startswith(SANDBOX)})
    with start_world(tmp_path_factory.mktemp("examples"), wanted) as started:
        yield started


def _check(ex: Example, rc: int, out: str, report: Report) -> None:
    name = ex.command if ex.command in SHOWS else ex.command.split()[0]
    code, why = EXPECTED.get(name, (0, ""))
    where = f"polybot {ex.command} --help example\n  {ex.line}\n"
    if rc != code:
        report.failures.append(f"{where}exit {rc}, expected {code}:\n{tail(out)}")
    for text in filter(None, (why, SHOWS.get(name, ""))):
        if text not in out:
            report.failures.append(f"{where}output lacks {text!r}:\n{tail(out)}")
    if signs := bad_signs(out):
        report.failures.append(f"{where}output shows {signs}:\n{tail(out)}")


def _one(ex: Example, world: World, report: Report) -> None:
    started = time.monotonic()
    name = ex.command.split()[0]
    if NATS in ex.needs and not world.nats:
        report.skipped.append(f"{ex.command} (no NATS server at 127.0.0.1:4222)")
        return
    try:
        if name in SERVERS:
            rc, out = serve_line(ex.line, world.cwd, world.env, ready=SERVERS[name])
        else:
            rc, out = run_line(ex.line, world.cwd, world.env)
    except (AssertionError, subprocess.TimeoutExpired) as exc:
        report.failures.append(f"polybot {ex.command} --help example\n  {ex.line}\n{exc}")
        return
    finally:
        report.timings.append((time.monotonic() - started, ex.command))
        report.done_with(ex, world)
    _check(ex, rc, out, report)


def _order(examples: list[Example]) -> list[Example]:
    weight = {name: i for i, name in enumerate(SLOW_FIRST)}
    return sorted(examples, key=lambda ex: weight.get(ex.command.split()[0], len(SLOW_FIRST)))


@pytest.mark.slow(seconds=80)  # two sandboxes and ~45 commands: a minute or two on two loaded cores
def test_every_help_example_and_the_readme_going_live_run_as_written(world: World) -> None:
    """One pool over one world: the examples and, as one more item, README's Going live in order."""
    examples = [ex for ex in help_examples() if ex.line not in world.sandboxes]  # those run as the world
    if not world.nats and os.environ.get("POLYBOT_REQUIRE_NATS"):
        pytest.fail("POLYBOT_REQUIRE_NATS is set but no NATS server answers at 127.0.0.1:4222")
    report = Report(users=Counter(need for ex in examples for need in ex.needs))
    started = time.monotonic()
    jobs: list[Callable[[], None]] = [functools.partial(_going_live, world, report)]
    jobs += [functools.partial(_one, ex, world, report) for ex in _order(examples) if ex.command not in SERIAL]
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        list(pool.map(lambda job: job(), jobs))
    for ex in examples:
        if ex.command in SERIAL:
            _one(ex, world, report)
    _readme_on_the_sandbox(world, report)
    slowest = "; ".join(f"{c} {t:.1f}s" for t, c in sorted(report.timings, reverse=True)[:5])
    skipped = f"; skipped: {', '.join(report.skipped)}" if report.skipped else ""
    sys.stderr.write(
        f"help examples: {len(report.timings)} run in {time.monotonic() - started:.1f}s with {WORKERS} workers "
        f"(after {world.start_s:.1f}s starting {world.started} sandboxes); slowest: {slowest}{skipped}\n"
    )
    assert not report.failures, f"{len(report.failures)} failure(s):\n\n" + "\n\n".join(report.failures)


# --------------------------------------------------------------------------------------------
# README: "Going live, step by step", as written, with the venue's URLs pointed at the doubles
# --------------------------------------------------------------------------------------------

GOING_LIVE_EXPECTED = {  # line (without `uv run `) -> (exit code, text the output must contain)
    "polybot migrate --db-url sqlite:///./var/polybot.db --apply": (0, "(head)"),
    "polybot refresh-markets --config config/service.toml": (0, "9 inserted"),
    "polybot markets election --db-url sqlite:///./var/polybot.db": (0, "demo-city-mayor-2026-alice"),
    "polybot preflight --config config/service.toml": (0, "preflight passed"),
    'polybot smoke-live --config config/service.toml "<YOUR_MARKET_SLUG>" Yes BUY 0.45 5': (
        2,
        "<YOUR_MARKET_SLUG> is a placeholder: replace it with the slug",
    ),
    "polybot relayer-approve-usdc --config config/service.toml": (0, "approve("),
    "polybot relayer-approve-outcome --config config/service.toml": (0, "setApprovalForAll("),
    # the example secrets hold no key: refused with the file and what to put there, nothing sent
    "polybot relayer-api-creds --config config/service.toml": (2, '"<YOUR_PRIVATE_KEY>"'),
}
GOING_LIVE_SERVERS = {"polybot run-service --config config/service.toml": "polybot: running in paper mode"}
"""Runs until stopped: ready at this line, then SIGTERM, as systemd stops it."""
VENUE_KEYS = ("gamma.url", "feed.ws_url", "feed.user_ws_url", "clob.url", "data_api.url", "telegram.base_url")


def going_live_lines() -> list[str]:
    """The commands of README's Going live in reading order: each line of its bash blocks and each
    inline ``uv run polybot …`` of its text."""
    from tests.e2e.docs_markdown import load_doc

    text = README.read_text()
    start = text.index("## Going live")
    end = text.index("\n## ", start + 1)
    first, last = text[:start].count("\n"), text[:end].count("\n")
    doc = load_doc(README)
    found = [
        (block.line + i, line.strip())
        for block in doc.blocks
        if block.lang == "bash" and first < block.line < last
        for i, line in enumerate(block.text.splitlines(), 1)
        if line.strip()
    ]
    found += [(n, code) for n, code in doc.inline_code() if first < n < last and code.startswith("uv run polybot ")]
    return [line for _, line in sorted(found)]


def _on_the_sandbox(line: str) -> bool:
    """A README line about the files the running sandbox wrote: it runs where that sandbox runs."""
    return "var/sandbox/" in line


def _going_live(world: World, report: Report) -> None:
    """README's Going live, every line in order, in its own copy of the project."""
    started = time.monotonic()
    cwd = world.copy_of_the_project(world.cwd.parent / "going-live")
    venue = tomllib.loads((world.cwd / "var" / "sandbox" / "service.toml").read_text())
    env = dict(world.env)  # what a user's machine would reach on the internet: the sandbox's doubles
    for key in VENUE_KEYS:
        section, name = key.split(".")
        env[f"POLYBOT_{section.upper()}__{name.upper()}"] = venue[section][name]
    lines = going_live_lines()
    if len(lines) < 15:
        report.failures.append(f"README's Going live lost its commands: {lines}")
    for raw in lines:
        line = raw.removeprefix("uv run ")  # the venv's polybot is first on PATH
        if line in world.sandboxes or _on_the_sandbox(line):  # step 1's sandbox, started as written;
            continue  # the lines about its files run in its directory, after the pool (readme_on_the_sandbox)
        try:
            if line in GOING_LIVE_SERVERS:
                rc, out = serve_line(line, cwd, env, ready=GOING_LIVE_SERVERS[line], url_first=False)
                code, text = 0, "stopped cleanly"
            else:
                rc, out = run_line(line, cwd, env)
                code, text = GOING_LIVE_EXPECTED.get(line, (0, ""))
        except (AssertionError, subprocess.TimeoutExpired) as exc:
            report.failures.append(f"README: {raw}\n{exc}")
            continue
        if rc != code or text not in out or bad_signs(out):
            report.failures.append(f"README: {raw}\nexit {rc} (expected {code}), expected {text!r}:\n{tail(out)}")
    report.timings.append((time.monotonic() - started, "README Going live"))


def _readme_on_the_sandbox(world: World, report: Report) -> None:
    """The README lines about the running sandbox's files (``preflight --config
    var/sandbox/service.toml``, ``relayer-api-creds`` on it), where it runs; alone, as they may
    rewrite its secrets."""
    for line in [raw.removeprefix("uv run ") for raw in going_live_lines() if _on_the_sandbox(raw)]:
        rc, out = run_line(line, world.cwd, world.env)
        if rc != 0 or bad_signs(out):
            report.failures.append(f"README: {line}\nexit {rc}:\n{tail(out)}")

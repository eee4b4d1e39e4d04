"""Every name the docs use exists in the code: commands, config keys, Telegram commands, paths, metrics.

Checked in README.md and every docs/*.md (pages added later are covered automatically):

- ``polybot COMMAND`` in code (fenced blocks and inline code) is a registered command, and the
  word after a command with sub-commands (``polybot config show``) is one of them;
- config keys — ``section.key`` and ``[section]`` in inline code, ``POLYBOT_SECTION__KEY``
  anywhere, every key of a ```toml block — exist in ``core/settings.py``'s models;
- ``/command`` in inline code is a Telegram command in ``bot/handlers.py``;
- repository paths in inline code and relative links exist;
- ``polybot_*`` metric names are exported by the code (``core/metrics_catalog.py``).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.e2e.test_docs_markdown import (
    USER_CREATED_FILES,
    Doc,
    Mention,
    all_docs,
    command_mentions,
    config_mentions,
    link_targets,
    looks_like_file,
    path_mentions,
    telegram_mentions,
)

_METRIC = re.compile(r"\bpolybot_[a-z0-9_]+\b")


@cache
def registered_commands() -> dict[str, frozenset[str]]:
    """Command name -> its sub-command names (empty for a plain command)."""
    from core.cli.main import build_parser

    parser = build_parser()
    out: dict[str, frozenset[str]] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                subs: set[str] = set()
                for inner in sub._actions:
                    if isinstance(inner, argparse._SubParsersAction):
                        subs |= set(inner.choices)
                out[name] = frozenset(subs)
    return out


@cache
def config_paths() -> tuple[frozenset[str], frozenset[str]]:
    """(every dotted leaf key, every dotted section) of the settings models."""
    from core.settings import Settings, leaf_keys

    leaves = frozenset(leaf_keys(Settings()))
    sections = frozenset(".".join(key.split(".")[:n]) for key in leaves for n in range(1, key.count(".") + 1))
    return leaves, sections


@cache
def telegram_commands() -> frozenset[str]:
    from bot.handlers import COMMANDS

    return frozenset(COMMANDS)


@cache
def exported_metrics() -> frozenset[str]:
    from core.metrics_catalog import BY_NAME, exported_sample_names

    # Sample names (``…_bucket``) and family names (a histogram's ``…_seconds``) both count.
    return frozenset(exported_sample_names()) | frozenset(BY_NAME)


@cache
def docs() -> tuple[Doc, ...]:
    return tuple(all_docs())


def _report(bad: list[str], what: str) -> None:
    assert not bad, f"{len(bad)} {what}:\n  " + "\n  ".join(bad)


def test_the_docs_set_is_there() -> None:
    names = {d.path.name for d in docs()}
    required = {
        "README.md",
        "prd.md",
        "technical-plan.md",
        "roadmap.md",
        "deployment.md",
        "runbook.md",
        "acceptance-checklist.md",
        "acceptance-walkthrough.md",
    }
    assert required <= names, f"missing: {sorted(required - names)}"


def test_every_polybot_command_named_in_the_docs_exists() -> None:
    commands = registered_commands()
    bad: list[str] = []
    seen = 0
    for doc in docs():
        for m in command_mentions(doc):
            seen += 1
            if m.name not in commands:
                bad.append(f"{m.where()}: polybot {m.name} (not a command)")
            elif commands[m.name] and m.sub is not None and m.sub not in commands[m.name]:
                bad.append(f"{m.where()}: polybot {m.name} {m.sub} (sub-commands: {sorted(commands[m.name])})")
    assert seen > 50, "the command extractor found almost nothing: is it still reading the docs?"
    _report(bad, "unknown commands in the docs")


def test_every_config_key_named_in_the_docs_exists() -> None:
    leaves, sections = config_paths()
    top = frozenset(s for s in sections if "." not in s)
    bad: list[str] = []
    seen = 0
    for doc in docs():
        for m in config_mentions(doc, top):
            seen += 1
            if m.name not in leaves and m.name not in sections and not looks_like_file(m.name):
                bad.append(f"{m.where()}: {m.name}")
    assert seen > 100, "the config-key extractor found almost nothing"
    _report(bad, "config keys in the docs that core/settings.py does not have")


def test_every_telegram_command_named_in_the_docs_exists() -> None:
    known = telegram_commands()
    bad: list[str] = []
    seen = 0
    for doc in docs():
        for m in telegram_mentions(doc):
            seen += 1
            if m.name not in known:
                bad.append(f"{m.where()}: /{m.name}")
    assert seen > 20
    _report(bad, "Telegram commands in the docs that bot/handlers.py does not have")


def test_every_repository_path_and_link_in_the_docs_exists() -> None:
    bad: list[str] = []
    for doc in docs():
        for m in path_mentions(doc):
            if m.name not in USER_CREATED_FILES and not (REPO_ROOT / m.name).exists():
                bad.append(f"{m.where()}: {m.name}")
        for m in link_targets(doc):
            if m.name and not (doc.path.parent / m.name).exists():
                bad.append(f"{m.where()}: link to {m.name}")
    _report(bad, "paths or links in the docs that do not exist")


def _metric_mentions(doc: Doc) -> list[Mention]:
    out: list[Mention] = []
    lines = [(n, t) for n, t in doc.prose] + [(n, line) for n, _lang, line in doc.code_lines()]
    for lineno, text in lines:
        out += [Mention(doc.name, lineno, m.group(0)) for m in _METRIC.finditer(text)]
    return out


def test_every_metric_named_in_the_docs_is_exported() -> None:
    exported = exported_metrics()
    bad = [f"{m.where()}: {m.name}" for doc in docs() for m in _metric_mentions(doc) if m.name not in exported]
    _report(bad, "metric names in the docs that the code does not export")


def test_prometheus_rules_in_the_docs_pass_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package 'prometheus'; .ci/run installs it)")
    blocks = [(d, b) for d in docs() for b in d.blocks if b.lang in ("yaml", "yml") and "rules:" in b.text]
    assert blocks, "docs/deployment.md should ship the alert rules as a ```yaml block"
    for doc, block in blocks:
        path = tmp_path / "rules.yml"
        path.write_text(block.text + "\n")
        done = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, (
            f"{doc.name}:{block.line}: promtool check rules failed:\n{done.stdout}{done.stderr}"
        )

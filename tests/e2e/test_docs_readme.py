"""The README and the docs set are complete with respect to the code.

The other direction of ``test_docs_names.py``: not only must every name in the docs exist, every
command, Telegram command, config section and key the code has must be documented, the quick
start must be the one CI runs, and each page must cover the topics it exists for.
"""

from __future__ import annotations

import re

import pytest

from polybot.cli.main import main
from tests.conftest import REPO_ROOT
from tests.e2e.docs_markdown import (
    DOCS_DIR,
    README,
    command_mentions,
    config_mentions,
    config_paths,
    load_doc,
    registered_commands,
    telegram_commands,
)

QUICK_START = ("pip install uv", "uv run polybot demo", "uv run pytest")


def _headings(path_name: str) -> list[str]:
    doc = load_doc(DOCS_DIR / path_name)
    return [text.lstrip("#").strip().lower() for _, text in doc.prose if text.startswith("#")]


def test_quick_start_is_the_first_code_block_and_ci_runs_its_test_command() -> None:
    first = load_doc(README).blocks[0]
    for command in QUICK_START:
        assert command in first.text, f"the README's first code block must contain {command!r}"
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    ci_commands = [line.strip() for line in ci.splitlines() if line.strip().startswith("uv run")]
    assert ci_commands == ["uv run pytest"], ".ci/run must run exactly the README's test command"


def test_readme_lists_every_cli_command() -> None:
    commands = registered_commands()
    mentioned = {(m.name, m.sub) for m in command_mentions(load_doc(README))}
    names = {name for name, _ in mentioned}
    missing = sorted(set(commands) - names)
    missing += sorted(
        f"{name} {sub}" for name, subs in commands.items() for sub in subs if (name, sub) not in mentioned
    )
    assert not missing, f"README.md does not document: {missing}"


def test_readme_lists_every_telegram_command() -> None:
    doc = load_doc(README)
    spans = {code.split()[0].lstrip("/") for _, code in doc.inline_code() if code.startswith("/")}
    missing = sorted(telegram_commands() - spans)
    assert not missing, f"README.md does not document the Telegram commands {missing}"


def test_readme_describes_every_config_section_and_the_guide_every_key() -> None:
    leaves, sections = config_paths()
    top = frozenset(s for s in sections if "." not in s)
    tables = {
        s
        for s in sections
        if not any(leaf.startswith(s + ".") and leaf.count(".") > s.count(".") + 1 for leaf in leaves)
    }
    readme = {m.name for m in config_mentions(load_doc(README), top)}
    missing_sections = sorted(s for s in tables if s not in readme)
    assert not missing_sections, f"README.md's configuration guide lacks [{'], ['.join(missing_sections)}]"
    guide = {m.name for m in config_mentions(load_doc(DOCS_DIR / "config-guide.md"), top)}
    missing_keys = sorted(leaves - guide)
    assert not missing_keys, f"docs/config-guide.md does not describe {missing_keys}"
    text = README.read_text()
    for topic in ("secrets.local.toml", "POLYBOT_<SECTION>__<KEY>", "config show"):
        assert topic in text, f"README.md's configuration guide should explain {topic}"


def test_readme_architecture_diagram_names_real_modules() -> None:
    doc = load_doc(README)
    diagrams = [b for b in doc.blocks if b.lang == "mermaid"]
    assert len(diagrams) == 1, "README.md should hold one mermaid architecture diagram"
    paths = set(re.findall(r"\b(?:core|bot)(?:/[\w.]+)+", diagrams[0].text))
    assert len(paths) >= 10, "the diagram should name the modules it draws"
    missing = sorted(p for p in paths if not (REPO_ROOT / p).exists())
    assert not missing, f"the architecture diagram names modules that do not exist: {missing}"


def test_readme_walks_through_going_live() -> None:
    text = README.read_text()
    steps = [
        "cp config/service.example.toml config/service.toml",
        "config/secrets.local.toml",
        "polybot migrate",
        "polybot preflight --config",
        "polybot relayer-approve-usdc",
        "polybot relayer-approve-outcome",
        "polybot run-service --config",
    ]
    start = text.index("## Going live")
    for step in steps:
        found = text.find(step, start)
        assert found >= 0, f"README.md's going-live section lacks {step!r} (after the previous step)"
        start = found + len(step)


@pytest.mark.parametrize(
    ("page", "topics"),
    [
        ("prd.md", ["users", "problems", "goals", "non-goals", "success measures"]),
        (
            "technical-plan.md",
            ["data flow", "clob v2", "exact money", "book integrity", "unknown outcome"],
        ),
        (
            "deployment.md",
            ["systemd", "postgresql", "sizing", "prometheus", "grafana", "secrets", "own host", "backups"],
        ),
        (
            "runbook.md",
            [
                "kill everything",
                "feed dead",
                "book inconsistent",
                "425",
                "429",
                "one-legged",
                "auto-disarm",
                "database",
                "telegram",
            ],
        ),
        ("roadmap.md", ["next", "later", "not planned"]),
    ],
)
def test_each_page_covers_its_topics(page: str, topics: list[str]) -> None:
    headings = " | ".join(_headings(page))
    missing = [t for t in topics if t not in headings]
    assert not missing, f"docs/{page} has no section about {missing} (headings: {headings})"


def test_deployment_ships_a_systemd_unit_that_runs_the_service() -> None:
    doc = load_doc(DOCS_DIR / "deployment.md")
    units = [b.text for b in doc.blocks if "[Service]" in b.text]
    assert units, "docs/deployment.md should contain a systemd unit"
    exec_start = [line for line in units[0].splitlines() if line.startswith("ExecStart=")]
    assert exec_start and "polybot run-service --config" in exec_start[0]
    assert "KillSignal=SIGTERM" in units[0]


def test_every_command_has_help_with_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    for name, subs in registered_commands().items():
        for argv in [[name]] + [[name, sub] for sub in sorted(subs)]:
            with pytest.raises(SystemExit) as info:
                main([*argv, "--help"])
            out = capsys.readouterr().out
            assert info.value.code == 0, f"polybot {' '.join(argv)} --help exited {info.value.code}"
            assert "example:\n  polybot " in out, f"polybot {' '.join(argv)} --help has no example"

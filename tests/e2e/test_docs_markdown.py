"""Reading the docs as data: fenced blocks, inline code, and the names they mention.

The other ``test_docs_*`` files import these helpers to hold README.md and docs/*.md to the code:
every ``polybot COMMAND`` they name is registered, every config key exists, every Telegram
``/command`` is a handler, every repository path exists, and the acceptance walkthrough runs.
The tests at the bottom pin the helpers themselves on small inputs, so a parser that silently
finds nothing cannot make those checks pass vacuously.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import REPO_ROOT

DOCS_DIR = REPO_ROOT / "docs"
README = REPO_ROOT / "README.md"

# Files a trader creates from the shipped examples; the docs name them although git does not hold them.
USER_CREATED_FILES = frozenset({"config/service.toml", "config/secrets.local.toml"})
# Top-level directories whose paths the docs may name in inline code; each one must exist.
REPO_DIRS = ("core", "bot", "tests", "config", "fixtures", "docs", "bench", "observability", ".ci")
# The root's global options may sit between `polybot` and the command.
GLOBAL_OPTIONS = frozenset({"--debug", "-v", "-vv", "-vvv", "--verbose"})
# The last part of a dotted name that is a file or a host, not a config key (`service.toml`, `metrics.prom`).
FILE_SUFFIXES = frozenset(
    {"toml", "py", "md", "db", "json", "jsonl", "yml", "yaml", "prom", "service", "txt", "log", "sql", "example"}
    | {"com", "org", "net", "io"}  # host names: `clob.polymarket.com`
)

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*([\w+-]*)")
_INLINE = re.compile(r"(`+)(.+?)\1")
_ENV = re.compile(r"\bPOLYBOT_([A-Z0-9_]*?__[A-Z0-9_]+)\b")
_DOTTED = re.compile(r"^([a-z_]+(?:\.[a-z_]+)+)(?:\s*=.*)?$")
_SECTION = re.compile(r"^\[([a-z_]+(?:\.[a-z_]+)*)\]$")
_TELEGRAM = re.compile(r"^/([a-z_]+)(?:@\w+)?(?:\s.*)?$")
_COMMAND_WORD = re.compile(r"^[a-z][a-z0-9-]*$")
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
_TOKEN_SPLIT = re.compile(r"[\s;&|()`'\"]+")


@dataclass(frozen=True)
class Block:
    lang: str
    text: str
    line: int  # 1-based line of the opening fence


@dataclass
class Doc:
    path: Path
    blocks: list[Block] = field(default_factory=list)
    prose: list[tuple[int, str]] = field(default_factory=list)  # (line number, text) outside fences

    @property
    def name(self) -> str:
        try:
            return str(self.path.relative_to(REPO_ROOT))
        except ValueError:
            return str(self.path)

    def inline_code(self) -> Iterator[tuple[int, str]]:
        for lineno, text in self.prose:
            for match in _INLINE.finditer(text):
                yield lineno, match.group(2).strip()

    def code_lines(self) -> Iterator[tuple[int, str, str]]:
        """(line number, language, line) for every line inside a fenced block."""
        for block in self.blocks:
            for offset, line in enumerate(block.text.splitlines(), start=1):
                yield block.line + offset, block.lang, line


def parse_markdown(text: str, path: Path = Path("<text>")) -> Doc:
    doc = Doc(path)
    fence: str | None = None
    lang = ""
    start = 0
    body: list[str] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if fence is None:
            match = _FENCE.match(line)
            if match:
                fence, lang, start, body = match.group(1), match.group(2).lower(), lineno, []
            else:
                doc.prose.append((lineno, line))
        elif line.strip().startswith(fence[0] * len(fence)) and not line.strip().strip(fence[0]):
            doc.blocks.append(Block(lang, "\n".join(body), start))
            fence = None
        else:
            body.append(line)
    if fence is not None:
        raise AssertionError(f"{path}:{start}: unclosed code fence")
    return doc


def load_doc(path: Path) -> Doc:
    return parse_markdown(path.read_text(encoding="utf-8"), path)


def all_docs() -> list[Doc]:
    """README.md and every docs/*.md (including pages other parts of the project add)."""
    return [load_doc(README)] + [load_doc(p) for p in sorted(DOCS_DIR.glob("*.md"))]


# --------------------------------------------------------------------------- mentions


@dataclass(frozen=True)
class Mention:
    doc: str
    line: int
    name: str
    sub: str | None = None  # the word after the command (a sub-command of `polybot config`)

    def where(self) -> str:
        return f"{self.doc}:{self.line}"


def commands_in_line(line: str) -> list[tuple[str, str | None]]:
    """``polybot COMMAND [WORD]`` occurrences in one line of code (also `.venv/bin/polybot ...`).

    Shell comments are prose (``# puts polybot on PATH``), so they are left out.
    """
    if line.lstrip().startswith("#"):
        return []
    line = line.split(" # ", 1)[0]
    tokens = [t for t in _TOKEN_SPLIT.split(line) if t]
    found: list[tuple[str, str | None]] = []
    for i, token in enumerate(tokens):
        if token != "polybot" and not token.endswith("/bin/polybot"):
            continue
        j = i + 1
        while j < len(tokens) and tokens[j] in GLOBAL_OPTIONS:
            j += 1
        if j < len(tokens) and _COMMAND_WORD.match(tokens[j]):
            sub = tokens[j + 1] if j + 1 < len(tokens) and _COMMAND_WORD.match(tokens[j + 1]) else None
            found.append((tokens[j], sub))
    return found


def command_mentions(doc: Doc) -> list[Mention]:
    out: list[Mention] = []
    for lineno, _lang, line in doc.code_lines():
        out += [Mention(doc.name, lineno, name, sub) for name, sub in commands_in_line(line)]
    for lineno, code in doc.inline_code():
        out += [Mention(doc.name, lineno, name, sub) for name, sub in commands_in_line(code)]
    return out


def config_mentions(doc: Doc, sections: frozenset[str]) -> list[Mention]:
    """Config keys named in the doc, as dotted paths: ``section.key``, ``[section]``,
    ``POLYBOT_SECTION__KEY`` (anywhere) and the keys of every ```toml block."""
    out: list[Mention] = []
    for lineno, code in doc.inline_code():
        header = _SECTION.match(code)
        if header:
            out.append(Mention(doc.name, lineno, header.group(1)))
            continue
        dotted = _DOTTED.match(code)
        if dotted and dotted.group(1).split(".")[0] in sections:
            out.append(Mention(doc.name, lineno, dotted.group(1)))
    for lineno, text in doc.prose:
        out += [Mention(doc.name, lineno, env_to_key(m.group(0))) for m in _ENV.finditer(text)]
    for lineno, _lang, line in doc.code_lines():
        out += [Mention(doc.name, lineno, env_to_key(m.group(0))) for m in _ENV.finditer(line)]
    for block in doc.blocks:
        if block.lang != "toml":
            continue
        try:
            data = tomllib.loads(block.text)
        except tomllib.TOMLDecodeError as exc:
            raise AssertionError(f"{doc.name}:{block.line}: invalid TOML in a ```toml block: {exc}") from None
        out += [Mention(doc.name, block.line, key) for key in toml_keys(data)]
    return out


def looks_like_file(dotted: str) -> bool:
    """`service.toml`, `metrics.prom`, `clob.polymarket.com`: a file or host, unless it is a real key."""
    return dotted.rsplit(".", 1)[-1] in FILE_SUFFIXES


def env_to_key(name: str) -> str:
    return ".".join(part.lower() for part in name.removeprefix("POLYBOT_").split("__"))


def toml_keys(data: dict[str, Any], prefix: str = "") -> list[str]:
    keys: list[str] = []
    for key, value in data.items():
        dotted = prefix + key
        if isinstance(value, dict):
            keys.append(dotted)
            keys += toml_keys(value, dotted + ".")
        else:
            keys.append(dotted)
    return keys


def telegram_mentions(doc: Doc) -> list[Mention]:
    """Inline code that starts with ``/word`` (HTTP paths are written with their method or host)."""
    out: list[Mention] = []
    for lineno, code in doc.inline_code():
        match = _TELEGRAM.match(code)
        if match:
            out.append(Mention(doc.name, lineno, match.group(1)))
    return out


def path_mentions(doc: Doc) -> list[Mention]:
    """Inline code that is a repository path (``core/feed/book.py``, ``config/demo.toml``)."""
    pattern = re.compile(r"^(?:\./)?((?:" + "|".join(re.escape(d) for d in REPO_DIRS) + r")/[\w.\-/]*[\w/])$")
    out: list[Mention] = []
    for lineno, code in doc.inline_code():
        match = pattern.match(code)
        if match:
            out.append(Mention(doc.name, lineno, match.group(1).rstrip("/")))
    return out


def link_targets(doc: Doc) -> list[Mention]:
    """Relative markdown links (external URLs and pure anchors are left alone)."""
    out: list[Mention] = []
    for lineno, text in doc.prose:
        for match in _LINK.finditer(text):
            target = match.group(1)
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue
            out.append(Mention(doc.name, lineno, target.split("#", 1)[0]))
    return out


# --------------------------------------------------------------------------- walkthrough steps


@dataclass
class Step:
    command: str
    line: int
    exit_code: int = 0
    contains: list[str] = field(default_factory=list)
    lacks: list[str] = field(default_factory=list)
    background: bool = False
    ready_file: str | None = None  # a background step is ready when this file has a whole line


_EXPECT = re.compile(r"^#\s*expect:\s*(.*)$")
_CLAUSE = re.compile(r'(exit)\s+(\d+)|(contains|lacks)\s+"((?:[^"\\]|\\.)*)"')


def parse_expect(text: str) -> tuple[int | None, list[str], list[str]]:
    """``exit N; contains "..."; lacks "..."`` -> (exit code or None, contains, lacks)."""
    exit_code: int | None = None
    contains: list[str] = []
    lacks: list[str] = []
    rest = text
    for match in _CLAUSE.finditer(text):
        if match.group(1):
            exit_code = int(match.group(2))
        else:
            value = match.group(4).replace('\\"', '"').replace("\\\\", "\\")
            (contains if match.group(3) == "contains" else lacks).append(value)
        rest = rest.replace(match.group(0), "", 1)
    if rest.strip(" ;,"):
        raise AssertionError(f"cannot read the expectation {text!r} (left over: {rest.strip()!r})")
    return exit_code, contains, lacks


def walkthrough_steps(doc: Doc) -> list[Step]:
    """Every command of every ```bash block, with the ``# expect:`` lines written above it.

    One command per line. A line ending in `` &`` starts a background process (a local double);
    it must redirect its output to a file (``> var/gamma.url``), and it is ready when that file
    holds its first whole line.
    """
    steps: list[Step] = []
    for block in doc.blocks:
        if block.lang not in ("bash", "sh", "shell"):
            continue
        pending: list[str] = []
        for offset, raw in enumerate(block.text.splitlines(), start=1):
            line = raw.strip()
            lineno = block.line + offset
            if not line:
                continue
            expect = _EXPECT.match(line)
            if expect:
                pending.append(expect.group(1))
                continue
            if line.startswith("#"):
                continue
            if line.endswith("\\"):
                raise AssertionError(f"{doc.name}:{lineno}: one command per line (no continuation lines)")
            step = Step(command=line, line=lineno)
            for text in pending:
                code, contains, lacks = parse_expect(text)
                if code is not None:
                    step.exit_code = code
                step.contains += contains
                step.lacks += lacks
            pending = []
            if line.endswith("&") and not line.endswith("&&"):
                step.background = True
                step.command = line[:-1].rstrip()
                words = shlex.split(step.command)
                if ">" not in words or words.index(">") + 1 >= len(words):
                    raise AssertionError(f"{doc.name}:{lineno}: a background command must redirect to a file")
                step.ready_file = words[words.index(">") + 1]
                if step.contains or step.lacks or step.exit_code:
                    raise AssertionError(f"{doc.name}:{lineno}: a background command takes no expectation")
            steps.append(step)
        if pending:
            raise AssertionError(f"{doc.name}:{block.line}: an '# expect:' line with no command after it")
    return steps


# --------------------------------------------------------------------------- tests of the helpers


SAMPLE = """# Title
Run `polybot demo` or `uv run polybot config show --config X`; set `risk.max_order_notional = 25`,
`[strategies.dutch]`, `POLYBOT_TELEGRAM__TOKEN`, `service.toml`, `/order MARKET ...`, `core/feed/book.py`.
See [the runbook](docs/runbook.md#feed) and [site](https://example.com).

```bash
mkdir -p var
# expect: exit 1; contains "FAIL  database"
# expect: lacks "0xdead"
.venv/bin/polybot -v preflight --config config/demo.toml --offline
polybot mock-gamma --port 0 > var/gamma.url &
```

```toml
[relayer]
type = "real"
[strategies.spread]
size = 5
```

```text
>> user 1: /status
```
"""


def test_parse_markdown_splits_fences_from_prose() -> None:
    doc = parse_markdown(SAMPLE)
    assert [b.lang for b in doc.blocks] == ["bash", "toml", "text"]
    assert doc.blocks[0].line == 6
    assert all("mkdir" not in text for _, text in doc.prose)


def test_command_mentions_see_code_and_inline_code() -> None:
    names = {(m.name, m.sub) for m in command_mentions(parse_markdown(SAMPLE))}
    assert names == {("demo", None), ("config", "show"), ("preflight", None), ("mock-gamma", None)}
    assert commands_in_line("sudo -iu polybot /opt/x/.venv/bin/polybot migrate --apply") == [("migrate", None)]
    assert commands_in_line("CREATE DATABASE polybot OWNER polybot;") == []
    assert commands_in_line("source .venv/bin/activate   # puts polybot on PATH") == []


def test_config_mentions_cover_all_forms_and_skip_file_names() -> None:
    sections = frozenset({"risk", "strategies", "telegram", "relayer", "service"})
    names = {m.name for m in config_mentions(parse_markdown(SAMPLE), sections) if not looks_like_file(m.name)}
    assert looks_like_file("service.toml") and looks_like_file("clob.polymarket.com")
    assert names == {
        "risk.max_order_notional",
        "strategies.dutch",
        "telegram.token",
        "relayer",
        "relayer.type",
        "strategies",
        "strategies.spread",
        "strategies.spread.size",
    }


def test_telegram_paths_and_links() -> None:
    doc = parse_markdown(SAMPLE)
    assert [m.name for m in telegram_mentions(doc)] == ["order"]
    assert [m.name for m in path_mentions(doc)] == ["core/feed/book.py"]
    assert [m.name for m in link_targets(doc)] == ["docs/runbook.md"]


def test_walkthrough_steps_and_expectations() -> None:
    steps = walkthrough_steps(parse_markdown(SAMPLE))
    assert [s.command.split()[0] for s in steps] == ["mkdir", ".venv/bin/polybot", "polybot"]
    assert (steps[0].exit_code, steps[0].contains) == (0, [])
    assert steps[1].exit_code == 1
    assert steps[1].contains == ["FAIL  database"] and steps[1].lacks == ["0xdead"]
    assert steps[2].background and steps[2].ready_file == "var/gamma.url"
    assert steps[2].command == "polybot mock-gamma --port 0 > var/gamma.url"


def test_bad_expectations_are_errors_not_ignored() -> None:
    for text in ("exits 0", "contains unquoted", 'exit 0; maybe "x"'):
        try:
            parse_expect(text)
        except AssertionError:
            continue
        raise AssertionError(f"{text!r} was accepted")
    assert parse_expect(r'contains "say \"hi\""') == (None, ['say "hi"'], [])

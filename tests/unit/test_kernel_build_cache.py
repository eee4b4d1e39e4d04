"""The feed build's cache (hatch_build.py): a fresh clone or venv with the same sources and toolchain
copies the extensions the last build made instead of compiling them again (~9 CPU-s of every fresh
``uv sync``); a changed source, or a damaged entry, means a build. The compile itself is replaced
here by one that writes marked files, so that what is tested is the cache."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import REPO_ROOT, hatch_build_module

SUFFIX = ".cpython-311-x86_64-linux-gnu.so"


def _checkout(where: Path) -> Path:
    """The files the build reads, as a fresh clone has them (no extension, no record)."""
    (where / "core" / "feed").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "core" / "types.py", where / "core" / "types.py")
    for source in (REPO_ROOT / "core" / "feed").glob("*.py"):
        shutil.copy(source, where / "core" / "feed" / source.name)
    return where


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[ModuleType, list[Path]]:
    """hatch_build with its cache under tmp_path and a compile that records each root it built."""
    hb = hatch_build_module()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    built: list[Path] = []

    def fake_build(root: Path, digests: dict[str, str]) -> list[Path]:
        built.append(root)
        for name in (*hb.COMPILED, "_kernel__mypyc"):
            (root / hb.FEED / f"{name}{SUFFIX}").write_bytes(f"{name} built in {root.name}".encode())
        (root / hb.MANIFEST).write_text(json.dumps(digests))
        return list(hb.artifacts(root))

    monkeypatch.setattr(hb, "_build", fake_build)
    return hb, built


def test_a_second_checkout_of_the_same_sources_copies_the_first_build(
    builds: tuple[ModuleType, list[Path]], tmp_path: Path
) -> None:
    hb, built = builds
    first = _checkout(tmp_path / "one")
    hb.compile_feed(first)
    assert built == [first]
    second = _checkout(tmp_path / "two")
    placed = hb.compile_feed(second)
    assert built == [first], "the second checkout compiled again"
    names = sorted(p.name for p in placed)
    assert names == sorted(p.name for p in hb.artifacts(first))
    for name in [n for n in names if n != hb.MANIFEST.name]:
        assert (second / hb.FEED / name).read_bytes() == (first / hb.FEED / name).read_bytes()
    # the record the loader checks (core.feed.kernel) is this checkout's sources' digests
    assert json.loads((second / hb.MANIFEST).read_text()) == hb._digests(second)


def test_a_changed_source_is_built_again(builds: tuple[ModuleType, list[Path]], tmp_path: Path) -> None:
    hb, built = builds
    first = _checkout(tmp_path / "one")
    hb.compile_feed(first)
    changed = _checkout(tmp_path / "two")
    (changed / "core" / "types.py").write_text((changed / "core" / "types.py").read_text() + "\n# changed\n")
    hb.compile_feed(changed)
    assert built == [first, changed]


def test_a_damaged_entry_is_built_again_and_replaced(builds: tuple[ModuleType, list[Path]], tmp_path: Path) -> None:
    hb, built = builds
    first = _checkout(tmp_path / "one")
    hb.compile_feed(first)
    entry = hb.kernel_cache(first)
    assert entry is not None and entry.is_dir()
    with open(entry / f"book{SUFFIX}", "ab") as damaged:
        damaged.write(b"!")
    second = _checkout(tmp_path / "two")
    hb.compile_feed(second)
    assert built == [first, second], "a damaged entry was used"
    assert (second / hb.FEED / f"book{SUFFIX}").read_bytes() == b"book built in two"
    third = _checkout(tmp_path / "three")
    hb.compile_feed(third)
    assert built == [first, second], "the rebuilt entry did not replace the damaged one"
    assert (third / hb.FEED / f"book{SUFFIX}").read_bytes() == b"book built in two"


def test_only_the_newest_builds_are_kept(
    builds: tuple[ModuleType, list[Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hb, built = builds
    monkeypatch.setattr(hb, "KEEP_BUILDS", 2)
    entries = []
    for n in range(3):  # three versions of the sources, as while one edits the feed
        root = _checkout(tmp_path / f"v{n}")
        (root / "core" / "types.py").write_text((root / "core" / "types.py").read_text() + f"\n# v{n}\n")
        hb.compile_feed(root)
        entries.append(hb.kernel_cache(root))
    assert len(built) == 3
    assert sorted(p.name for p in entries[0].parent.iterdir()) == sorted(e.name for e in entries[1:])

"""Which build of the feed's hot path runs: book.py, integrity.py, numbers.py and processor.py
compiled by mypyc, or the same files as plain Python.

The build (``hatch_build.py``, when uv installs the project and a C compiler is present)
compiles :data:`COMPILED` with mypyc and records in ``_kernel_build.json`` the SHA-256 of their
sources and of the feed modules they import. The compiled modules are used only while every source still matches
what was compiled: after an edit, or with ``POLYBOT_FEED_KERNEL=0``, a finder installed by
``core/feed/__init__.py`` loads the ``.py`` files instead, so a stale build never runs. Nothing
else differs between the two paths: they are one source.

:func:`status` says which path the feed runs and why, in words a trader can act on
(``FeedProcessor.kernel_status`` carries it; the service logs it at start).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType
from typing import Final

PACKAGE: Final = "core.feed"
HERE: Final = Path(__file__).resolve().parent
COMPILED: Final = ("book", "integrity", "numbers", "processor")
"""The modules mypyc compiles (hatch_build.py reads this list)."""
MANIFEST: Final = "_kernel_build.json"
ENV_SWITCH: Final = "POLYBOT_FEED_KERNEL"
REBUILD_HINT: Final = "uv sync --reinstall-package polybot"
COMPILED_STATUS: Final = f"compiled (mypyc: core/feed/{{{','.join(COMPILED)}}}.py)"


def source_digest(name: str, folder: Path = HERE) -> str:
    """SHA-256 of a feed module's source."""
    return hashlib.sha256((folder / f"{name}.py").read_bytes()).hexdigest()


def _built(folder: Path) -> bool:
    suffixes = importlib.machinery.EXTENSION_SUFFIXES
    return all(any((folder / f"{name}{suffix}").exists() for suffix in suffixes) for name in COMPILED)


def _decide(folder: Path) -> tuple[bool, str]:
    """(use the compiled modules?, status text)."""
    if os.environ.get(ENV_SWITCH, "1").strip().lower() in {"0", "false", "no", "off"}:
        return False, f"pure Python ({ENV_SWITCH}=0)"
    if not _built(folder):
        return False, f"pure Python (compiled feed not built; build it with `{REBUILD_HINT}`)"
    try:
        recorded = json.loads((folder / MANIFEST).read_text())
        current = isinstance(recorded, dict) and all(name in recorded for name in COMPILED)
        # the compiled modules and the feed modules they import, as they were compiled
        current = current and all(source_digest(name, folder) == digest for name, digest in recorded.items())
    except (OSError, ValueError, TypeError):
        current = False
    if not current:
        return False, f"pure Python (compiled from other sources than these; rebuild with `{REBUILD_HINT}`)"
    return True, COMPILED_STATUS


class SourceFinder(MetaPathFinder):
    """Loads the compiled modules from their ``.py`` files (the pure-Python path)."""

    def __init__(self, folder: Path = HERE) -> None:
        self.folder = folder

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        package, _, name = fullname.rpartition(".")
        if package != PACKAGE or name not in COMPILED:
            return None
        return importlib.util.spec_from_file_location(fullname, self.folder / f"{name}.py")


_status: str | None = None


def install() -> str:
    """Decide once, before the feed's modules are imported; returns the status."""
    global _status
    if _status is None:
        compiled, _status = _decide(HERE)
        if compiled:
            try:
                for name in COMPILED:
                    importlib.import_module(f"{PACKAGE}.{name}")
            except ImportError as exc:  # e.g. built for another interpreter: safe, only slower
                for name in COMPILED:
                    sys.modules.pop(f"{PACKAGE}.{name}", None)
                compiled, _status = False, f"pure Python (compiled feed failed to load: {exc})"
        if not compiled:
            sys.meta_path.insert(0, SourceFinder())
    return _status


def status() -> str:
    """Which path the feed runs, and why."""
    return install()


def is_compiled(module: ModuleType) -> bool:
    """Is this module the mypyc build (an extension module) rather than its source?"""
    return not (module.__file__ or "").endswith(".py")


def source_twin(module: str = f"{PACKAGE}.processor") -> ModuleType:
    """A second copy of ``module`` (and of the compiled modules it imports) loaded from source,
    beside the modules in use, which stay as they are: the tests and ``bench/ingest.py`` run
    both paths on the same stream in one process."""
    names = [f"{PACKAGE}.{name}" for name in COMPILED]
    if module not in names:
        names.append(module)
    package = sys.modules[PACKAGE]
    saved = {name: sys.modules.pop(name, None) for name in names}
    finder = SourceFinder()
    sys.meta_path.insert(0, finder)
    try:
        return importlib.import_module(module)
    finally:
        sys.meta_path.remove(finder)
        for name, previous in saved.items():
            short = name.rpartition(".")[2]
            if previous is None:
                sys.modules.pop(name, None)
                if hasattr(package, short):
                    delattr(package, short)
            else:
                sys.modules[name] = previous
                setattr(package, short, previous)

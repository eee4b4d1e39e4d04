"""Build hook: compile the feed's hot path (core/feed/book.py, integrity.py, numbers.py) with mypyc.

uv runs this when it installs the project (editable or not). mypyc compiles the very same
``.py`` files the pure-Python path runs, using the type hints they already carry; the
extensions land next to their sources (``core/feed/*.so``, git-ignored) and, for a regular
wheel, inside the wheel. ``core/feed/_kernel_build.json`` records the SHA-256 of the sources
they were compiled from, so a build older than its sources is never used
(:mod:`core.feed.kernel`).

It is optional: without a C compiler (or if mypyc refuses the code) the build goes on without
it and the feed runs its pure-Python path, which is complete, only slower. POLYBOT_BUILD_KERNEL=0
skips it.

Why not the ``hatch-mypyc`` plugin: it renames pyproject.toml while it builds (a shared working
tree, or an interrupted build, is left without one) and fails the whole install when there is no
compiler. This hook drives the same two maintained pieces directly: mypyc's ``mypycify`` and
setuptools' ``build_ext``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

try:
    # a build requirement, not installed in the project's environment (mypy runs there)
    from hatchling.builders.hooks.plugin.interface import BuildHookInterface  # type: ignore[import-not-found]
except ImportError:  # imported outside a build (the tests call compile_feed directly)
    BuildHookInterface = object

FEED = Path("core", "feed")
COMPILED = ("book", "integrity", "numbers", "processor")  # keep in step with core.feed.kernel.COMPILED (a test checks)
DIGESTED = (*COMPILED, "wire", "counters", "events", "translate")  # and the feed modules they import
GROUP = "core.feed._kernel"  # mypyc's shared library: core/feed/_kernel__mypyc.<abi>.so
MANIFEST = FEED / "_kernel_build.json"
# the type check mypyc runs: strict, as in CI, without the project's plugins (not installed here)
MYPY_CONFIG = "[mypy]\npython_version = 3.11\nstrict = True\nfollow_imports = silent\nignore_missing_imports = True\n"


def _digests(root: Path) -> dict[str, str]:
    import hashlib

    return {name: hashlib.sha256((root / FEED / f"{name}.py").read_bytes()).hexdigest() for name in DIGESTED}


def artifacts(root: Path) -> list[Path]:
    """Everything a build leaves in the tree (to clean before building and to ship in a wheel)."""
    folder = root / FEED
    found = [p for name in (*COMPILED, "_kernel__mypyc") for p in folder.glob(f"{name}.*.so")]
    found += [p for name in (*COMPILED, "_kernel__mypyc") for p in folder.glob(f"{name}.*.pyd")]
    return found + ([root / MANIFEST] if (root / MANIFEST).exists() else [])


def clean(root: Path) -> None:
    for path in artifacts(root):
        path.unlink()


def compile_feed(root: Path) -> list[Path]:
    """Compile the feed modules next to their sources; returns the files written. Raises on
    failure, leaving no compiled module behind. Until the new build is in place an earlier one
    stays, used only while it matches the sources (core.feed.kernel checks)."""
    try:
        return _compile(root)
    except BaseException:
        clean(root)
        raise


def _compile(root: Path) -> list[Path]:
    from mypyc.build import mypycify
    from setuptools import Distribution  # type: ignore[import-untyped]  # a build requirement, without stubs

    digests = _digests(root)
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="polybot-mypyc-") as tmp:
        config = Path(tmp, "mypy.ini")
        config.write_text(MYPY_CONFIG)
        built = Path(tmp, "lib")
        os.chdir(root)  # mypyc names modules by their paths from here
        try:
            sources = [(FEED / f"{name}.py").as_posix() for name in COMPILED]
            extensions = mypycify(
                ["--config-file", str(config), *sources], group_name=GROUP, target_dir=str(Path(tmp, "c"))
            )
            dist = Distribution({"name": "polybot-feed-kernel", "ext_modules": extensions})
            build = dist.get_command_obj("build_ext")
            build.build_lib = str(built)
            build.build_temp = str(Path(tmp, "build"))
            dist.run_command("build_ext")
        finally:
            os.chdir(cwd)
        if _digests(root) != digests:  # a source changed while it compiled: do not vouch for it
            raise RuntimeError("the feed's sources changed during the build")
        for output in built.rglob("*"):
            if output.is_file():
                _install(output, root / output.relative_to(built))
        record = Path(tmp, MANIFEST.name)
        record.write_text(json.dumps(digests, indent=1) + "\n")
        _install(record, root / MANIFEST)  # last: it vouches for the extensions now in place
    return artifacts(root)


def _install(built: Path, target: Path) -> None:
    """Copy then rename: a process importing the feed meanwhile sees the old file or the new one,
    never half of one (and a failed build left no old one)."""
    partial = target.with_name(target.name + ".partial")
    shutil.copyfile(built, partial)
    os.replace(partial, target)


class CustomBuildHook(BuildHookInterface):  # type: ignore[misc]  # a plain object outside a build
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        root = Path(self.root)
        if os.environ.get("POLYBOT_BUILD_KERNEL", "1") == "0":
            clean(root)
            return
        try:
            built = compile_feed(root)
        except (Exception, SystemExit) as exc:  # mypyc reports a type error with SystemExit
            # optional: the pure-Python path is complete, only slower
            print(f"polybot: feed not compiled ({exc!r}); the feed uses its pure-Python path", file=sys.stderr)
            return
        if version != "editable":
            for path in built:
                build_data["force_include"][str(path)] = path.relative_to(root).as_posix()
            build_data["pure_python"] = False
            build_data["infer_tag"] = True

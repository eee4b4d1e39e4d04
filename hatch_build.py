"""Build hook: compile the feed's hot path (core/feed/book.py, integrity.py, numbers.py) with mypyc.

uv runs this when it installs the project (editable or not). mypyc compiles the very same
``.py`` files the pure-Python path runs, using the type hints they already carry; the
extensions land next to their sources (``core/feed/*.so``, git-ignored) and, for a regular
wheel, inside the wheel. ``core/feed/_kernel_build.json`` records the SHA-256 of the sources
they were compiled from, so a build older than its sources is never used
(:mod:`core.feed.kernel`).

A build is kept in the user's cache (``~/.cache/polybot/kernel/<key>``, ``$XDG_CACHE_HOME`` if set),
keyed by everything the compile reads (the feed package's and ``core/types.py``'s sources, this
file, the interpreter's version and extension suffix, mypy's version): a fresh clone or venv on a
machine that built the same sources before copies the extensions instead of compiling them again
(~9 CPU-s, most of a fresh ``uv sync``). Each cached file's SHA-256 is checked before it is used;
any problem with the cache only means a build.

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
KEEP_BUILDS = 8
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
    digests = _digests(root)
    cache = kernel_cache(root)
    if cache is not None and _from_cache(cache, root, digests):
        return artifacts(root)
    built = _build(root, digests)
    if cache is not None:
        _keep(cache, root, built)
    return built


def cache_home() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "polybot" / "kernel"


def kernel_cache(root: Path, home: Path | None = None) -> Path | None:
    """Where a build of these sources with this toolchain is kept; None when it cannot be keyed."""
    import hashlib
    import sysconfig

    try:
        import mypy.version

        key = hashlib.sha256()
        for text in (sys.version, str(sysconfig.get_config_var("EXT_SUFFIX")), mypy.version.__version__):
            key.update(text.encode() + b"\0")
        key.update(Path(__file__).read_bytes() + b"\0")
        for source in [root / "core" / "types.py", *sorted((root / FEED).glob("*.py"))]:
            key.update(source.relative_to(root).as_posix().encode() + b"\0" + source.read_bytes() + b"\0")
    except (ImportError, OSError, ValueError):
        return None
    return (home or cache_home()) / key.hexdigest()[:32]


def _file_digest(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _from_cache(cache: Path, root: Path, digests: dict[str, str]) -> bool:
    """Put a cached build in place (extensions first, the record of sources last); False on a miss
    or a damaged entry, which is then built afresh."""
    try:
        index = json.loads((cache / "index.json").read_text())
        files = {name: cache / name for name in index["files"]}
        if (
            not files
            or index["sources"] != digests
            or any(_file_digest(path) != index["files"][name] for name, path in files.items())
        ):
            raise ValueError("damaged")
    except FileNotFoundError:
        return False
    except (OSError, ValueError, KeyError, TypeError):
        shutil.rmtree(cache, ignore_errors=True)  # damaged: the build about to run takes its place
        return False
    for name, path in files.items():
        _install(path, root / FEED / name)
    with tempfile.TemporaryDirectory(prefix="polybot-kernel-") as tmp:
        record = Path(tmp, MANIFEST.name)
        record.write_text(json.dumps(digests, indent=1) + "\n")
        _install(record, root / MANIFEST)
    os.utime(cache)  # the newest in use stay when old builds are pruned
    return True


def _keep(cache: Path, root: Path, built: list[Path]) -> None:
    """Store a build for the next install (whole or not at all: written aside, then renamed)."""
    if cache.exists():
        return
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache.parent, prefix=".partial-") as tmp:
            entry = Path(tmp, "entry")
            entry.mkdir()
            files: dict[str, str] = {}
            for path in built:
                if path.name != MANIFEST.name:
                    shutil.copyfile(path, entry / path.name)
                    files[path.name] = _file_digest(entry / path.name)
            sources = json.loads((root / MANIFEST).read_text())
            (entry / "index.json").write_text(json.dumps({"sources": sources, "files": files}, indent=1) + "\n")
            os.replace(entry, cache)
        _prune(cache.parent, keep=KEEP_BUILDS)
    except OSError as exc:  # another install stored it first, or no cache can be written: no matter
        print(f"polybot: the feed build was not cached ({exc})", file=sys.stderr)


def _prune(home: Path, keep: int) -> None:
    """The ``keep`` newest builds stay (each ~1 MB; every edit of a feed source makes one)."""
    entries = sorted((p for p in home.iterdir() if not p.name.startswith(".")), key=lambda p: p.stat().st_mtime)
    for old in entries[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def _build(root: Path, digests: dict[str, str]) -> list[Path]:
    from mypyc.build import mypycify
    from setuptools import Distribution  # type: ignore[import-untyped]  # a build requirement, without stubs

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

"""Build hook: compile the feed's C accelerator (core/feed/_kernel.c) when the project is built.

uv runs this when it installs the project (editable or not). The extension lands next to its
source (core/feed/_kernel.<abi>.so, git-ignored) and, for a regular wheel, inside the wheel.
It is optional: with no C compiler or Python headers the build goes on without it and the feed
runs its pure-Python path (``FeedProcessor.kernel_status`` and ``bench/ingest.py`` say which).

POLYBOT_BUILD_KERNEL=0 skips it.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

try:
    from hatchling.builders.hooks.plugin.interface import BuildHookInterface
except ImportError:  # imported outside a build (the tests call compile_kernel directly)
    BuildHookInterface = object  # type: ignore[assignment,misc]

SOURCE = Path("core", "feed", "_kernel.c")


def _compiler() -> list[str]:
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    return shlex.split(cc)


def compile_kernel(root: Path) -> Path:
    """Compile the kernel in place; returns the extension's path. Raises on failure."""
    source = root / SOURCE
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    target = source.with_name("_kernel" + suffix)
    sha = hashlib.sha256(source.read_bytes()).hexdigest()
    include = sysconfig.get_paths()["include"]
    if not Path(include, "Python.h").exists():
        raise RuntimeError(f"no Python headers in {include}")
    cmd = [*_compiler(), "-O2", "-fPIC", "-shared", "-fno-strict-aliasing", "-Wall", f"-I{include}"]
    cmd += [f'-DPOLYBOT_KERNEL_SHA="{sha}"', str(source), "-o", str(target) + ".tmp"]
    if sys.platform == "darwin":
        cmd[1:1] = ["-undefined", "dynamic_lookup"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:1])} failed: {(done.stderr or done.stdout).strip()[-2000:]}")
    os.replace(str(target) + ".tmp", target)  # never leave a half-written extension behind
    return target


class CustomBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or os.environ.get("POLYBOT_BUILD_KERNEL", "1") == "0":
            return
        try:
            target = compile_kernel(Path(self.root))
        except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
            # optional: the pure-Python path is complete, only slower
            print(f"polybot: feed C kernel not built ({exc}); the feed uses its pure-Python path", file=sys.stderr)
            return
        if version != "editable":
            build_data["force_include"][str(target)] = target.relative_to(self.root).as_posix()
            build_data["pure_python"] = False
            build_data["infer_tag"] = True

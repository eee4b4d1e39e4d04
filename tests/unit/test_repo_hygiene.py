"""Reproducibility without registry addresses: uv.lock stays local, requirements.lock has no URL."""

from __future__ import annotations

import re

from tests.conftest import REPO_ROOT
from tests.procs import run


def _tracked() -> list[str]:
    out = run(["git", "ls-files"], cwd=REPO_ROOT, text=True, check=True, timeout_s=60)
    return out.stdout.split()


def test_uv_lock_is_not_tracked() -> None:
    assert "uv.lock" not in _tracked()


def test_requirements_lock_has_hashes_and_no_url() -> None:
    text = (REPO_ROOT / "requirements.lock").read_text()
    assert "://" not in text, "requirements.lock must not name any URL"
    assert re.search(r"^python-telegram-bot==", text, re.M)
    assert "--hash=sha256:" in text


def test_direct_dependencies_are_pinned_exactly() -> None:
    import tomllib

    data = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    deps = data["project"]["dependencies"] + data["dependency-groups"]["dev"]
    loose = [d for d in deps if "==" not in d]
    assert not loose, f"direct dependencies must be pinned with ==: {loose}"
    assert data["tool"]["uv"]["exclude-newer"]

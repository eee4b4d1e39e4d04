"""Secrets files are replaced in one step, owner-only (polybot.settings_files.write_private)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from polybot.settings_files import write_private


def test_the_file_is_replaced_whole_and_stays_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "secrets.local.toml"
    path.write_text("old = 1\n")
    os.chmod(path, 0o644)  # a file someone loosened: the new one is 600 whatever the old was
    write_private(path, "new = 2\n")
    assert path.read_text() == "new = 2\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secrets.local.toml"]


def test_a_failure_before_the_rename_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "secrets.local.toml"
    path.write_text("old = 1\n")

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        write_private(path, "new = 2\n")
    assert path.read_text() == "old = 1\n"
    assert [p.name for p in tmp_path.iterdir()] == ["secrets.local.toml"]

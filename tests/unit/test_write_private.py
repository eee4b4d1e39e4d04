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


def test_a_symlinked_secrets_file_is_written_through_its_link(tmp_path: Path) -> None:
    """A secrets file kept elsewhere behind a link stays there: its target is replaced, the link
    stays a link (no copy of the private key left beside the config)."""
    vault = tmp_path / "vault"
    vault.mkdir()
    target = vault / "secrets.toml"
    target.write_text("old = 1\n")
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    link = config_dir / "secrets.local.toml"
    link.symlink_to(target)
    write_private(link, "new = 2\n")
    assert link.is_symlink()
    assert target.read_text() == "new = 2\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in vault.iterdir()) == ["secrets.toml"]
    assert sorted(p.name for p in config_dir.iterdir()) == ["secrets.local.toml"]


def _creds_run(config: Path, monkeypatch: pytest.MonkeyPatch, *, reload_fails: bool) -> None:
    """``polybot relayer-api-creds`` on ``config`` with the derivation faked (no CLOB)."""
    import argparse

    import core.settings
    from polybot.cli.tools import creds_cmd

    async def derive(loaded: object) -> tuple[str, dict[str, str]]:
        return "0xabc", {"api_key": "k", "api_secret": "s", "api_passphrase": "p"}

    real = core.settings.load_settings
    calls: list[object] = []

    def load(*args: object, **kwargs: object) -> object:
        calls.append(args)
        if reload_fails and len(calls) > 1:
            raise ValueError("the file no longer loads")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(creds_cmd, "_derive", derive)
    monkeypatch.setattr(core.settings, "load_settings", load)
    creds_cmd._run(argparse.Namespace(config=str(config), print=False))


KEY = "0x" + "11" * 32


def test_relayer_api_creds_writes_through_a_symlinked_secrets_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault = tmp_path / "vault"
    vault.mkdir()
    target = vault / "secrets.toml"
    target.write_text(f'[relayer]\nprivate_key = "{KEY}"\n')
    config = tmp_path / "service.toml"
    config.write_text("")
    (tmp_path / "secrets.local.toml").symlink_to(target)
    _creds_run(config, monkeypatch, reload_fails=False)
    assert (tmp_path / "secrets.local.toml").is_symlink()
    assert 'api_key = "k"' in target.read_text() and KEY in target.read_text()


def test_relayer_api_creds_leaves_a_dangling_link_as_it_was_when_the_result_does_not_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLYBOT_RELAYER__PRIVATE_KEY", KEY)
    vault = tmp_path / "vault"
    vault.mkdir()
    config = tmp_path / "service.toml"
    config.write_text("")
    link = tmp_path / "secrets.local.toml"
    link.symlink_to(vault / "secrets.toml")
    with pytest.raises(ValueError, match="no longer loads"):
        _creds_run(config, monkeypatch, reload_fails=True)
    assert link.is_symlink() and not link.exists()
    assert list(vault.iterdir()) == []

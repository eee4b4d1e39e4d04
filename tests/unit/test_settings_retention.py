"""``[db.retention]``: defaults, bounds, the snapshot windows' cross-field rule, the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import ConfigError
from core.settings import load_settings
from core.settings.retention import RetentionSettings
from core.store.partitions import DAY_NS
from core.store.retention import delete_before

NOW = 1_800_000_000 * 10**9


def test_defaults_bound_every_feed_table() -> None:
    r = load_settings(None, env={}).settings.db.retention
    assert (r.book_deltas_days, r.trades_days, r.book_snapshots_days) == (7, 90, 7)
    assert delete_before(r, "book_deltas", NOW) == NOW - 7 * DAY_NS
    assert delete_before(r, "book_snapshots", NOW) == NOW - 90 * DAY_NS  # thinned ones kept 90 days


def test_zero_days_keeps_a_table_forever() -> None:
    r = RetentionSettings(trades_days=0, book_snapshots_every_minutes=5, book_snapshots_thinned_days=0)
    assert delete_before(r, "trades", NOW) is None
    assert delete_before(r, "book_snapshots", NOW) is None
    assert delete_before(RetentionSettings(book_snapshots_every_minutes=0), "book_snapshots", NOW) == NOW - 7 * DAY_NS


def test_thinned_window_must_outlast_the_raw_one(tmp_path: Path) -> None:
    path = tmp_path / "service.toml"
    path.write_text("[db.retention]\nbook_snapshots_days = 30\nbook_snapshots_thinned_days = 10\nbatch_rows = 5\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path, env={})
    text = str(err.value)
    assert "db.retention.batch_rows" in text
    path.write_text("[db.retention]\nbook_snapshots_days = 30\nbook_snapshots_thinned_days = 10\n")
    with pytest.raises(ConfigError, match="book_snapshots_thinned_days"):
        load_settings(path, env={})


def test_the_environment_sets_a_window() -> None:
    env = {"POLYBOT_DB__RETENTION__BOOK_DELTAS_DAYS": "2", "POLYBOT_DB__RETENTION__ENABLED": "false"}
    r = load_settings(None, env=env).settings.db.retention
    assert r.book_deltas_days == 2 and not r.enabled

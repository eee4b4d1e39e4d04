"""The charts' start-up warm-up: a real drawing (so matplotlib and its fonts are ready before the
first /chart), and a failure that only logs (nothing else waits on it)."""

from __future__ import annotations

import gc
import logging

import pytest

from bot import app
from core.control import chart_draw


def test_the_warm_up_draws_a_real_png() -> None:
    png = chart_draw.warm()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000


async def test_a_warm_up_that_fails_is_logged_and_swallowed(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> bytes:
        raise RuntimeError("no fonts here")

    monkeypatch.setattr(chart_draw, "warm", broken)
    with caplog.at_level(logging.WARNING, logger="bot.app"):
        await app._warm_charts()
    assert "first /chart will be slower" in caplog.text and "no fonts here" in caplog.text


async def test_what_the_warm_up_loaded_is_frozen_out_of_the_collector() -> None:
    from core.control.charts import warm_up

    gc.unfreeze()
    try:
        await warm_up()
        frozen = gc.get_freeze_count()
        assert frozen > 0
        assert not any(type(o).__name__ == "FontManager" for o in gc.get_objects(generation=2))  # frozen, not rescanned
    finally:
        gc.unfreeze()  # as the service's stop does: this test process runs other tests after

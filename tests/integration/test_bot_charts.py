"""/chart through the real service and bot (offline runner, Bot API double): a PNG sent with
sendPhoto, decoded (signature, IHDR size), saved where the double was told, named in the transcript;
drawn in a worker thread, never on the event loop."""

from __future__ import annotations

import asyncio
import threading
import zlib
from decimal import Decimal
from pathlib import Path

import pytest

from bot.fake_api import PNG_SIGNATURE, png_size
from bot.offline import format_transcript
from core.control import chart_draw
from polybot.cli.tools.tgbot_cmd import LocalOptions, local_session
from polybot.updates import Updates

BINARY = "demo-btc-above-150k-2026"
VIEWER, OPERATOR = 1002, 1003


def decode(png: bytes) -> tuple[int, int]:
    """Walk every chunk (CRC checked) and inflate the image data: a PNG a phone can open."""
    assert png.startswith(PNG_SIGNATURE)
    pos, idat, kinds = 8, b"", []
    while pos < len(png):
        length = int.from_bytes(png[pos : pos + 4], "big")
        kind, body = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        crc = int.from_bytes(png[pos + 8 + length : pos + 12 + length], "big")
        assert zlib.crc32(kind + body) == crc, kind
        kinds.append(kind)
        idat += body if kind == b"IDAT" else b""
        pos += 12 + length
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND"
    size = png_size(png)
    assert size is not None
    width, height = size
    assert len(zlib.decompress(idat)) >= width * height  # at least one byte per pixel
    return width, height


async def test_chart_of_a_market_and_of_pnl_are_pngs_sent_with_send_photo(
    markets_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop_thread = threading.get_ident()
    drawn_in: list[int] = []
    original = chart_draw.market_png

    def spy(data: chart_draw.MarketChartData) -> bytes:
        drawn_in.append(threading.get_ident())
        return original(data)

    monkeypatch.setattr(chart_draw, "market_png", spy)
    u = Updates()
    async with local_session(LocalOptions(db_url=markets_db, market=BINARY, outcome="Yes")) as session:
        session.api.photo_dir = tmp_path / "photos"
        t = await session.feed(
            [
                u.msg(OPERATOR, "/arm"),
                u.msg(OPERATOR, f"/order {BINARY} Yes BUY 0.6 10"),
                u.msg(VIEWER, f"/chart {BINARY}"),
                u.msg(VIEWER, "/chart pnl 30d"),
                u.msg(VIEWER, "/chart pnl 9d"),
                u.msg(VIEWER, "/chart"),
            ]
        )
        assert session.errors == []
    photos = [c for e in t for c in e.calls if c["method"] == "sendPhoto"]
    assert len(photos) == 2 and all(c["chat_id"] == VIEWER for c in photos)
    assert photos[0]["text"].startswith(f"{BINARY}: depth now and the last 6 h of best bid/ask")
    assert photos[1]["text"].startswith("PnL over 30 days from 1 fills")
    for call in photos:
        png = await asyncio.to_thread(Path(call["photo"]["photo_path"]).read_bytes)
        assert decode(png) == (900, 1000) == tuple(call["photo"]["photo_size"])
        assert len(png) == call["photo"]["photo_bytes"] > 20_000
    assert drawn_in and drawn_in[0] != loop_thread  # a worker thread, never the loop
    said = [c["text"] for c in t[-2].calls + t[-1].calls]
    assert "period must be 7d or 30d" in said[0] and "Usage: <code>/chart MARKET" in said[1]
    text = format_transcript(t[2:4])
    assert f"saved to {tmp_path / 'photos'}/chart-{BINARY}.png]" in text and "[photo 900x1000, " in text
    assert (tmp_path / "photos" / "chart-pnl-30d.png").is_file()
    print(text)


async def test_a_chart_being_drawn_does_not_hold_the_loop(markets_db: str) -> None:
    """While matplotlib works in its thread, the loop keeps turning (ticks counted meanwhile)."""
    from core.control import charts

    async with local_session(LocalOptions(db_url=markets_db, market=BINARY, outcome="Yes")) as session:
        ticks = 0
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0.001)

        task = asyncio.create_task(ticker())
        image = await charts.market_chart(session.service.control, BINARY)
        done.set()
        await task
    assert image.png.startswith(PNG_SIGNATURE) and ticks >= 5
    assert Decimal(len(image.png)) > 0

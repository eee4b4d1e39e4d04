"""Replay source: recorded websocket frames back into the same pipeline, deterministically.

Two inputs are accepted:

- JSONL recordings (written by :mod:`core.feed.recorder`): one object per line,
  ``{"recv_ns": <int>, "frame": "<raw frame text>"}``;
- a JSON document like the shared captures: an array of frames, or a single event. Array items
  that are strings are taken as raw frame text; objects/arrays are re-encoded as a frame each.
  These carry no receive time, so one is derived: the event's ``timestamp`` (ms) when it has
  one, else the previous frame's time plus 1 ms — never going backwards.

A line that cannot be read (e.g. the truncated last line of a recorder that was killed) is
reported to ``on_bad_line`` (default: logged) and skipped, never silently.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from pathlib import Path

import msgspec

from core.errors import PolybotError

log = logging.getLogger("core.feed.replay")

FrameCallback = Callable[[int, str], Awaitable[None] | None]
BadLineCallback = Callable[[int, str], None]


class RecordedFrame(msgspec.Struct, gc=False):
    recv_ns: int
    frame: str


_LINE_DECODER = msgspec.json.Decoder(RecordedFrame)
_NS_PER_MS = 1_000_000


def _log_bad_line(line_no: int, reason: str) -> None:
    log.warning("replay: line %d skipped: %s", line_no, reason)


def iter_frames(path: str | Path, *, on_bad_line: BadLineCallback | None = None) -> Iterator[tuple[int, str]]:
    """Yield ``(recv_ns, frame_text)`` from a JSONL recording or a JSON capture, in file order.

    JSONL recordings are streamed line by line (recordings can be large); a JSON document is
    read whole.
    """
    path = Path(path)
    report = on_bad_line or _log_bad_line
    try:
        with path.open("r", encoding="utf-8") as fh:
            first = ""
            for line in fh:
                if line.strip():
                    first = line
                    break
            try:
                rec = _LINE_DECODER.decode(first)
            except msgspec.DecodeError:
                text = first + fh.read()
            else:
                yield rec.recv_ns, rec.frame
                yield from _iter_jsonl(fh, report, first_line_no=2)
                return
    except FileNotFoundError:
        raise PolybotError(f"recording not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolybotError(f"cannot read recording {path}: {exc}") from None
    yield from _iter_json_document(text, path, report)


def _iter_jsonl(lines: Iterable[str], report: BadLineCallback, first_line_no: int = 1) -> Iterator[tuple[int, str]]:
    decode = _LINE_DECODER.decode
    for line_no, line in enumerate(lines, start=first_line_no):
        if not line.strip():
            continue
        try:
            rec = decode(line)
        except msgspec.DecodeError as exc:
            report(line_no, str(exc))
            continue
        yield rec.recv_ns, rec.frame


def _iter_json_document(text: str, path: Path, report: BadLineCallback) -> Iterator[tuple[int, str]]:
    if not text.strip():
        return  # an empty recording has no frames
    try:
        doc = msgspec.json.decode(text)
    except msgspec.DecodeError as exc:
        # a JSONL recording whose first line is damaged is still a recording
        lines = text.splitlines()
        if any(_is_record(line) for line in lines[1:50]):
            yield from _iter_jsonl(lines, report)
            return
        raise PolybotError(f"{path} is neither a JSONL recording nor a JSON document: {exc}") from None
    items = doc if isinstance(doc, list) else [doc]
    last_ns = 0
    for item in items:
        frame = item if isinstance(item, str) else msgspec.json.encode(item).decode()
        recv_ns = _event_time_ns(item)
        recv_ns = last_ns + _NS_PER_MS if recv_ns is None or recv_ns < last_ns else recv_ns
        last_ns = recv_ns
        yield recv_ns, frame


def _is_record(line: str) -> bool:
    try:
        _LINE_DECODER.decode(line)
    except msgspec.DecodeError:
        return False
    return True


def _event_time_ns(item: object) -> int | None:
    event = item[0] if isinstance(item, list) and item else item
    if not isinstance(event, dict):
        return None
    ts = event.get("timestamp")
    try:
        return int(ts) * _NS_PER_MS if ts is not None and ts != "" else None
    except (TypeError, ValueError):
        return None


async def replay(
    path: str | Path,
    on_frame: FrameCallback,
    speed: float | None = None,
    *,
    on_bad_line: BadLineCallback | None = None,
    yield_every: int = 1000,
) -> int:
    """Feed every frame to ``on_frame(recv_ns, frame)`` (sync or async); returns the frame count.

    ``speed`` None or 0: as fast as possible (yielding to the loop every ``yield_every`` frames);
    1.0: the recorded pace; 2.0 twice as fast. Frame order and content never depend on timing.
    """
    if speed is not None and speed < 0:
        raise ValueError("speed must be >= 0")
    pace = speed or 0.0  # 0: as fast as possible
    count = 0
    first_ns: int | None = None
    start = time.monotonic()
    for recv_ns, frame in iter_frames(path, on_bad_line=on_bad_line):
        if pace:
            if first_ns is None:
                first_ns = recv_ns
            due = start + (recv_ns - first_ns) / 1e9 / pace
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        elif count % yield_every == 0:
            await asyncio.sleep(0)
        result = on_frame(recv_ns, frame)
        if inspect.isawaitable(result):
            await result
        count += 1
    return count

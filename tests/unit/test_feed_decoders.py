"""The one-pass price_change decoder (core.feed.wire.PRICE_CHANGE_DECODER) is only a shortcut: it
accepts exactly the frames the union decoder reads as one PriceChangeMsg, with the same fields,
so the processor decides every frame as it did with the union alone."""

from __future__ import annotations

import json
from collections.abc import Callable

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.feed.processor import FeedProcessor
from core.feed.wire import FRAME_DECODER, PRICE_CHANGE_DECODER, PriceChangeFrame, PriceChangeMsg

A = "1" * 77
_ENTRY = {
    "asset_id": A,
    "price": "0.5",
    "size": "10",
    "side": "BUY",
    "hash": "ab",
    "best_bid": "0.5",
    "best_ask": "0.6",
}

# each field: values of the right type and values that are not
_VALUES: dict[str, list[object]] = {
    "event_type": ["price_change", "price_change", "book", "last_trade_price", "nope", 5, None, ""],
    "market": ["0xm", "", 7, None],
    "timestamp": ["1757908893124", 1757908893124, "x", 1.5, None],
    "price_changes": [[_ENTRY], [_ENTRY, {**_ENTRY, "side": "SELL", "size": "0"}], [], None, [{"price": "0.5"}], "x"],
    "changes": [[{"price": "0.5", "size": "1", "side": "SELL"}], None, [{"side": "UP"}]],
    "asset_id": [A, "", 5],
    "price": ["0.5", None, 0.5],
    "size": ["1", None, 1],
    "side": ["BUY", "SELL", None, "UP"],
    "hash": ["ab", 3],
    "bids": [[], [{"price": "0.4", "size": "1"}]],
}


@st.composite
def _frames(draw: st.DrawFn) -> str:
    # (key, value) pairs in any order, some keys missing, some repeated: the JSON text is built by
    # hand so that a repeated key really is repeated
    keys = draw(st.lists(st.sampled_from(sorted(_VALUES)), max_size=12))
    pairs = [(k, draw(st.sampled_from(_VALUES[k]))) for k in keys]
    body = "{" + ",".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in pairs) + "}"
    wrap = draw(st.integers(0, 9))
    return f"[{body}]" if wrap == 0 else body


def _decode(decode: Callable[[str], object], frame: str) -> object:
    try:
        return decode(frame)
    except msgspec.DecodeError:
        return None


def _fields(msg: msgspec.Struct) -> dict[str, object]:
    fields = msgspec.structs.asdict(msg)
    fields.pop("event_type", None)
    return fields


@settings(max_examples=2_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_frames())
def test_the_one_pass_decoder_accepts_what_the_union_reads_as_one_price_change(frame: str) -> None:
    fast = _decode(PRICE_CHANGE_DECODER.decode, frame)
    union = _decode(FRAME_DECODER.decode, frame)
    if fast is None:
        assert type(union) is not PriceChangeMsg
    else:
        assert isinstance(fast, PriceChangeFrame) and type(union) is PriceChangeMsg
        assert _fields(fast) == _fields(union)


def test_a_price_change_without_its_tag_is_still_an_unknown_event() -> None:
    # every field of a price_change has a default: only the required tag keeps {} out
    processor = FeedProcessor()
    for frame in ('{"price_changes": []}', "{}", '{"event_type": "price_change", "timestamp": "x"}'):
        assert processor.process(frame, 1) == []
    assert processor.counters.as_dict() == {"unknown_event": 2, "wrong_type": 1}


def test_the_hot_path_reads_fields_by_position_in_this_order() -> None:
    # the compiled feed reads a price_change's and an entry's fields with msgspec.structs.astuple
    # (core.feed.processor._price_change, core.feed.integrity.BookSet.apply_changes)
    from core.feed.wire import PriceChangeEntry

    for struct in (PriceChangeFrame, PriceChangeMsg):
        assert struct.__struct_fields__[:3] == ("market", "timestamp", "price_changes")
    assert PriceChangeEntry.__struct_fields__ == ("asset_id", "price", "size", "side", "best_bid", "best_ask")

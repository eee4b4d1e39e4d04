"""The subscription planner: which socket gets which asset when the followed set changes."""

from __future__ import annotations

import json

import pytest

from core.feed.subscriptions import operation_message, plan


def test_new_assets_fill_sockets_with_room_then_open_new_ones() -> None:
    p = plan({0: ["a", "b"], 1: ["c"]}, ["a", "b", "c", "d", "e", "f", "g"], 3)
    assert p.remove == {}
    assert p.add == {0: ["d"], 1: ["e", "f"]}
    assert p.new == [("g",)]
    assert p.close == []


def test_removed_assets_leave_their_socket_and_an_empty_socket_closes() -> None:
    p = plan({0: ["a", "b"], 1: ["c"]}, ["a"], 3)
    assert p.remove == {0: ["b"], 1: ["c"]}
    assert p.add == {} and p.new == []
    assert p.close == [1]


def test_assets_that_stay_never_move_and_no_change_is_empty() -> None:
    assert plan({0: ["a", "b"], 1: ["c"]}, ["c", "b", "a"], 2).empty
    p = plan({0: ["a", "b"], 1: ["c"]}, ["c", "x"], 2)
    assert p.remove == {0: ["a", "b"]}
    assert p.add == {0: ["x"]}  # the emptied socket is reused rather than closed and another opened
    assert p.close == []
    assert plan({0: ["a"], 1: ["c"]}, ["c"], 2).close == [0]


def test_a_large_set_is_cut_at_the_cap() -> None:
    assets = [f"t{i}" for i in range(1001)]
    p = plan({}, assets, 500)
    assert [len(g) for g in p.new] == [500, 500, 1]
    with pytest.raises(ValueError):
        plan({}, assets, 0)


def test_operation_messages_are_the_venue_shape() -> None:
    assert json.loads(operation_message("subscribe", ["1"])) == {
        "operation": "subscribe",
        "assets_ids": ["1"],
        "custom_feature_enabled": True,
    }
    assert json.loads(operation_message("unsubscribe", ["1", "2"])) == {
        "operation": "unsubscribe",
        "assets_ids": ["1", "2"],
    }

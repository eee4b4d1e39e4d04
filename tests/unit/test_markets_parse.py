"""Gamma item parsing: real captures, the project's own fixture, and every kind of bad item."""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest

from core.markets import BadReason, GammaParseError, parse_events, parse_market, parse_markets
from core.markets.queries import plain_decimal
from core.markets.wire import GammaMarketItem, TokenIds, decode_market
from core.sim.mock_gamma import load_markets_file, make_market, token_ids
from tests.conftest import PROJECT_FIXTURES, load_shared

GAMMA_MARKET_FILES = [
    "gamma_market.json",
    "gamma_market_live.json",
    "gamma_market_closed_binary_accepting_false.json",
    "gamma_market_closed_binary_accepting_true.json",
    "gamma_market_closed_nonbinary_legacy.json",
    "gamma_market_closed_zero_zero_legacy.json",
    "gamma_market_sports_market_map_handicap.json",
    "gamma_market_sports_market_money_line.json",
]


def test_every_shared_gamma_market_file_is_listed(shared_fixtures: Path) -> None:
    # a new capture dropped into the shared folder must be covered by the parametrised test below
    on_disk = {p.name for p in (shared_fixtures / "gamma").glob("gamma_market*.json")}
    assert on_disk == set(GAMMA_MARKET_FILES)


@pytest.mark.parametrize("name", GAMMA_MARKET_FILES)
def test_real_gamma_market_captures_parse(name: str) -> None:
    item = load_shared(f"gamma/{name}")
    markets, stats = parse_markets([item])
    assert stats.bad_total == 0 and stats.parsed == 1
    m = markets[0]
    assert m.condition_id == item["conditionId"]
    assert [t.token_id for t in m.info.tokens] == json.loads(item["clobTokenIds"])
    assert [t.outcome for t in m.info.tokens] == json.loads(item["outcomes"])
    assert m.outcome_prices == tuple(Decimal(p) for p in json.loads(item["outcomePrices"]))
    assert m.info.slug == item["slug"] and m.info.question == item["question"]
    assert m.info.active is item["active"] and m.info.closed is item["closed"]
    assert m.end_date is not None and m.end_date.tzinfo is not None
    assert msgspec.json.decode(m.raw) == item  # kept verbatim for the raw column
    if "orderPriceMinTickSize" in item:
        assert m.info.tick_size == Decimal(str(item["orderPriceMinTickSize"]))
        assert m.info.min_order_size == Decimal(str(item["orderMinSize"]))


def test_live_neg_risk_market_fields() -> None:
    item = load_shared("gamma/gamma_market_live.json")
    m = parse_market(item)
    assert m.info.neg_risk is True
    assert m.info.neg_risk_market_id == "0x2c3d7e0eee6f058be3006baabf0d54a07da254ba47fe6e3e095e7990c7814700"
    # negRiskAugmented is absent on the market itself: it comes from the embedded event
    assert "negRiskAugmented" not in item
    assert m.info.neg_risk_augmented is True
    assert m.info.tick_size == Decimal("0.001")
    assert m.info.fee_rate == Decimal("0.04")
    assert m.fee_schedule == {"exponent": 1, "rate": 0.04, "takerOnly": True, "rebateRate": 0.25}
    assert m.event_id == "30829" and m.event_slug == "democratic-presidential-nominee-2028"


def test_sports_fee_rate_and_plain_binary() -> None:
    m = parse_market(load_shared("gamma/gamma_market_sports_market_money_line.json"))
    assert m.info.fee_rate == Decimal("0.03")
    assert m.info.neg_risk is False and m.info.neg_risk_market_id is None and m.info.neg_risk_augmented is False


def test_fees_enabled_without_schedule_assumes_the_highest_rate_and_is_counted() -> None:
    item = load_shared("gamma/gamma_market.json")
    assert item["feesEnabled"] is True and "feeSchedule" not in item
    markets, stats = parse_markets([item])
    assert markets[0].info.fee_rate == Decimal("0.07")  # never understate a fee
    assert markets[0].fees_enabled is True
    assert stats.warnings["fees_enabled_without_schedule"] == 1


def test_legacy_market_without_tick_gets_defaults_and_a_warning() -> None:
    markets, stats = parse_markets([load_shared("gamma/gamma_market_closed_zero_zero_legacy.json")])
    assert markets[0].info.tick_size == Decimal("0.01") and markets[0].info.min_order_size == Decimal("5")
    assert stats.warnings["default_tick_size"] == 1


def test_real_event_markets_inherit_event_flags() -> None:
    events = load_shared("gamma/gamma_event.json")
    markets, stats = parse_events(events)
    assert stats.bad_total == 0 and len(markets) == len(events[0]["markets"]) == 2
    for m in markets:
        assert m.info.neg_risk and m.info.neg_risk_augmented
        assert m.info.neg_risk_market_id == events[0]["negRiskMarketID"]
        assert m.event_id == events[0]["id"]


def test_shared_gamma_tags_file_is_not_markets(shared_fixtures: Path) -> None:
    tags = json.loads((shared_fixtures / "gamma" / "gamma_tags.json").read_text())
    markets, stats = parse_markets(tags)
    assert markets == [] and stats.bad[BadReason.MISSING_CONDITION_ID] == len(tags)


# ---- the project's own fixture ------------------------------------------------------------


def test_project_fixture_structure() -> None:
    items = load_markets_file(PROJECT_FIXTURES / "gamma" / "markets.json")
    markets, stats = parse_markets(items)
    assert stats.bad_total == 0 and stats.warnings == {}
    by_slug = {m.info.slug: m.info for m in markets}
    binary = by_slug["demo-btc-above-150k-2026"]
    assert [t.outcome for t in binary.tokens] == ["Yes", "No"] and not binary.neg_risk
    assert binary.fee_rate == Decimal("0.07")

    groups: dict[str | None, list[Any]] = {}
    for m in markets:
        groups.setdefault(m.info.neg_risk_market_id, []).append(m.info)
    neg_groups = {k: v for k, v in groups.items() if k is not None}
    sizes = sorted((len(v), v[0].neg_risk_augmented) for v in neg_groups.values())
    assert sizes == [(4, False), (4, True)]  # one plain 4-outcome event, one augmented event
    for members in neg_groups.values():
        assert all(m.neg_risk for m in members)
        assert len({m.neg_risk_augmented for m in members}) == 1
    closed = [m for m in markets if m.info.closed]
    assert len(closed) == 1
    # token ids are unique across the whole fixture and shaped like real ones (uint256 decimals)
    tokens = [t.token_id for m in markets for t in m.info.tokens]
    assert len(tokens) == len(set(tokens)) and all(t.isdigit() and int(t) < 2**256 for t in tokens)
    # the list fields are JSON-encoded strings, as on the real Gamma
    assert all(isinstance(i["clobTokenIds"], str) and isinstance(i["outcomes"], str) for i in items)


# ---- bad items ----------------------------------------------------------------------------


def _good(**overrides: Any) -> dict[str, Any]:
    item = make_market("unit-test-market", "Unit test market?", fee_rate="0.05")
    item.update(overrides)
    return item


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"conditionId": None}, BadReason.MISSING_CONDITION_ID),
        ({"conditionId": "  "}, BadReason.MISSING_CONDITION_ID),
        ({"clobTokenIds": None}, BadReason.MISSING_TOKEN_IDS),
        ({"clobTokenIds": "[not json"}, BadReason.BAD_TOKEN_IDS),
        ({"clobTokenIds": '{"a": 1}'}, BadReason.BAD_TOKEN_IDS),
        ({"clobTokenIds": '["12", "0xab"]'}, BadReason.BAD_TOKEN_IDS),
        ({"clobTokenIds": '["12", "12"]'}, BadReason.BAD_TOKEN_IDS),
        ({"clobTokenIds": 17}, BadReason.BAD_TOKEN_IDS),
        ({"outcomes": "Yes,No"}, BadReason.BAD_OUTCOMES),
        ({"outcomes": '["Yes", ""]'}, BadReason.BAD_OUTCOMES),
        ({"outcomes": '["Yes", "No", "Maybe"]'}, BadReason.LENGTH_MISMATCH),
        ({"orderPriceMinTickSize": "abc"}, BadReason.BAD_NUMBER),
        ({"orderPriceMinTickSize": 1.5}, BadReason.BAD_NUMBER),
        ({"orderPriceMinTickSize": 0.00000001}, BadReason.BAD_NUMBER),
        ({"orderMinSize": -1}, BadReason.BAD_NUMBER),
        ({"orderMinSize": True}, BadReason.BAD_NUMBER),
        ({"feeSchedule": {"rate": 2}}, BadReason.BAD_NUMBER),
        ({"feeSchedule": {"exponent": 1}}, BadReason.BAD_NUMBER),
        ({"feeSchedule": "0.04"}, BadReason.BAD_NUMBER),
        ({"clobTokenIds": ""}, BadReason.MISSING_TOKEN_IDS),
        ({"clobTokenIds": "[12, 13]"}, BadReason.BAD_TOKEN_IDS),  # numbers: ids are decimal strings
        ({"clobTokenIds": "[]"}, BadReason.BAD_TOKEN_IDS),
        ({"outcomes": None}, BadReason.BAD_OUTCOMES),
        ({"outcomes": "[1, 2]"}, BadReason.BAD_OUTCOMES),
        ({"orderMinSize": "NaN"}, BadReason.BAD_NUMBER),
        ({"orderMinSize": "0.0000001"}, BadReason.BAD_NUMBER),  # finer than the 10^-6 money unit
        ({"orderPriceMinTickSize": "Infinity"}, BadReason.BAD_NUMBER),
        ({"question": 42}, BadReason.BAD_FIELD),
        ({"events": [1]}, BadReason.BAD_FIELD),
        ({"negRisk": 0.5}, BadReason.BAD_FIELD),
    ],
)
def test_bad_item_is_rejected_with_its_reason(overrides: dict[str, Any], reason: BadReason) -> None:
    with pytest.raises(GammaParseError) as err:
        parse_market(_good(**overrides))
    assert err.value.reason == reason


def test_the_translation_knows_no_column_widths() -> None:
    # how long a column is belongs to the repository (tests/integration/test_gamma_refresh.py)
    m = parse_market(
        _good(
            slug="s" * 300,
            clobTokenIds=json.dumps(["1" * 101, "2"]),
            outcomes=json.dumps(["x" * 256, "No"]),
            negRiskMarketID="0x" + "ab" * 50,
        )
    )
    assert len(m.info.slug) == 300 and len(m.info.tokens[0].token_id) == 101


def test_json_text_and_decoded_object_translate_alike() -> None:
    # the client hands over JSON text, a file an object: one decoding path for both
    for name in GAMMA_MARKET_FILES:
        item = load_shared(f"gamma/{name}")
        from_text, from_object = parse_market(json.dumps(item).encode()), parse_market(item)
        assert from_text == from_object
        assert msgspec.json.decode(from_text.raw) == msgspec.json.decode(from_object.raw) == item


def test_wire_structs_are_frozen_and_lists_decoded_at_the_edge() -> None:
    wire = decode_market(json.dumps(_good()).encode())
    assert isinstance(wire.clob_token_ids, TokenIds) and all(t.isdigit() for t in wire.clob_token_ids)
    assert wire.outcomes == ("Yes", "No")
    with pytest.raises(AttributeError):
        wire.slug = "changed"  # type: ignore[misc]  # frozen: the point of the test
    assert not dataclasses.is_dataclass(wire) and isinstance(wire, GammaMarketItem)


def test_bad_items_are_counted_and_logged_and_the_page_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    page = [
        _good(),
        "not an object",
        _good(conditionId=None),
        _good(clobTokenIds="[oops"),
        _good(outcomes='["A", "B", "C"]'),
        make_market("another-good-one", "Another?"),
        b'{"id": "77", "conditionId": 5}',
        b"[not json",
    ]
    with caplog.at_level("WARNING", logger="core.markets"):
        markets, stats = parse_markets(page)
    assert [m.info.slug for m in markets] == ["unit-test-market", "another-good-one"]
    assert stats.seen == 8 and stats.parsed == 2 and stats.bad_total == 6
    assert stats.bad == {
        BadReason.NOT_AN_OBJECT: 2,
        BadReason.MISSING_CONDITION_ID: 2,
        BadReason.BAD_TOKEN_IDS: 1,
        BadReason.LENGTH_MISMATCH: 1,
    }
    skipped = [r.getMessage() for r in caplog.records if "skipped market" in r.getMessage()]
    assert len(skipped) == 5  # at most five lines per page, then one summary
    assert any("id=77" in line for line in skipped)


def test_bad_item_logging_is_bounded_per_page(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="core.markets"):
        _, stats = parse_markets([_good(conditionId=None) for _ in range(50)])
    assert stats.bad_total == 50
    assert len(caplog.records) <= 6


def test_already_decoded_lists_and_string_numbers_are_tolerated() -> None:
    m = parse_market(
        _good(
            outcomes=["Up", "Down"],
            clobTokenIds=["1", "2"],
            outcomePrices=["0.5", "0.5"],
            orderPriceMinTickSize="0.001",
            orderMinSize="15",
            active="true",
            closed="false",
        )
    )
    assert [t.outcome for t in m.info.tokens] == ["Up", "Down"]
    assert m.info.tick_size == Decimal("0.001") and m.info.min_order_size == Decimal("15")
    assert m.info.active is True and m.info.closed is False


@pytest.mark.parametrize("prices", ["[garbage", '["x", "0.5"]', '["NaN", "0.5"]', 7])
def test_bad_outcome_prices_only_warn(prices: object) -> None:
    markets, stats = parse_markets([_good(outcomePrices=prices)])
    assert len(markets) == 1 and markets[0].outcome_prices == ()
    assert stats.warnings["bad_outcome_prices"] == 1


def test_outcome_prices_of_the_wrong_length_only_warn() -> None:
    markets, stats = parse_markets([_good(outcomePrices='["1"]')])
    assert len(markets) == 1 and markets[0].outcome_prices == ()
    assert stats.warnings == {"outcome_prices_length_mismatch": 1}


def test_market_level_augmented_flag_wins_over_event() -> None:
    ev = {"id": "1", "slug": "e", "negRisk": True, "negRiskMarketID": "0xgroup", "negRiskAugmented": True}
    m = parse_market(_good(negRisk=True, negRiskMarketID="0xgroup", negRiskAugmented=False, events=[ev]))
    assert m.info.neg_risk_augmented is False
    m2 = parse_market(_good(), event=ev)
    assert m2.info.neg_risk and m2.info.neg_risk_market_id == "0xgroup" and m2.info.neg_risk_augmented


def test_fee_schedule_wins_even_when_fees_disabled() -> None:
    m = parse_market(_good(feesEnabled=False))
    assert m.info.fee_rate == Decimal("0.05")
    assert parse_market(_good(feesEnabled=False, feeSchedule=None)).info.fee_rate == 0


@pytest.mark.parametrize(
    ("stored", "shown"),
    [("0.010000", "0.01"), ("5.000000", "5"), ("10.000000", "10"), ("0.000000", "0"), ("0.001000", "0.001")],
)
def test_stored_decimals_are_shown_as_written(stored: str, shown: str) -> None:
    assert str(plain_decimal(Decimal(stored))) == shown


def test_fixture_readme_lists_every_token_id() -> None:
    items = load_markets_file(PROJECT_FIXTURES / "gamma" / "markets.json")
    ids = token_ids(items)
    assert ids == [t.token_id for m in parse_markets(items)[0] for t in m.info.tokens]
    readme = (PROJECT_FIXTURES / "gamma" / "README.md").read_text()
    assert all(f"`{t}`" in readme for t in ids)

"""[bus] and feed.source: defaults that need no NATS, bounds, and the URL's password kept secret."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.bus.shard import Shard, shard_of
from core.settings import BusSettings, Settings, iter_secret_values


def test_the_default_service_reads_its_own_websockets() -> None:
    s = Settings()
    assert s.feed.source == "ws"
    assert s.bus.servers == ["nats://127.0.0.1:4222"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("url", "http://127.0.0.1:4222"),
        ("url", "nats://a:4222, 127.0.0.1"),
        ("prefix", "poly bot"),
        ("prefix", "polybot.>"),
        ("stream", "md.stream"),
        ("shard", "2/2"),
        ("shard", "1"),
        ("lease_ttl_s", 0.5),
        ("max_bytes", 10),
    ],
)
def test_bad_values_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValidationError):
        BusSettings.model_validate({field: value})


def test_a_password_in_the_bus_url_is_a_secret() -> None:
    s = Settings.model_validate({"bus": {"url": "nats://md:hunter2bus@nats-1:4222,nats://nats-2:4222"}})
    assert "hunter2bus" in set(iter_secret_values(s))
    assert s.bus.servers == ["nats://md:hunter2bus@nats-1:4222", "nats://nats-2:4222"]


def test_shards_are_stable_and_cover_every_key() -> None:
    assert Shard.parse(" 1 / 3 ") == Shard(1, 3) and Shard(1, 3).label == "1of3"
    # CRC-32: the same on every host and run (a salted hash() would move markets between workers)
    assert [shard_of(k, 7) for k in ("0xabc", "0xabd", "0xabe")] == [3, 1, 5]
    keys = [f"0x{i:064x}" for i in range(400)]
    counts = [sum(1 for k in keys if Shard(i, 4).owns(k)) for i in range(4)]
    assert sum(counts) == 400 and min(counts) > 60

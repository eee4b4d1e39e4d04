"""The service's own lifecycle: a start that fails half-way leaves nothing running or open once
stopped (supervised feed, writer, relayer, database), a service that never started says so when
its parts are asked for, and stopping twice is stopping once."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from core.errors import UsageError
from core.events import Alert
from core.service import Service, ServiceOptions
from core.settings import load_settings


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def settings(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        "POLYBOT_DB__URL": f"sqlite:///{tmp_path / 'start.db'}",
        "POLYBOT_TELEGRAM__ENABLED": "false",
        "POLYBOT_METRICS__ENABLED": "false",
        # a feed with nothing listening: the supervised feed keeps reconnecting until stopped
        "POLYBOT_FEED__WS_URL": f"ws://127.0.0.1:{closed_port()}/ws/market",
        "POLYBOT_FEED__ASSETS": '["1234567890"]',
    }
    env.update(extra)
    return env


async def test_a_start_failing_after_everything_opened_is_stopped_cleanly(tmp_path: Path) -> None:
    async def broken_front_end(service: Service) -> object:
        raise ConnectionError("telegram unreachable")

    service = Service(
        load_settings(None, env=settings(tmp_path)),
        ServiceOptions(migrate=True, with_bot=True, frontend=broken_front_end),  # type: ignore[arg-type]
    )
    with pytest.raises(ConnectionError, match="telegram unreachable"):
        await service.start()
    feed = service.supervisor.components["feed"]
    writer, db = service.writer, service.db
    assert feed.task is not None and not feed.task.done() and writer.running
    assert db.pool.checkedin() > 0  # type: ignore[attr-defined]  # idle connections of the open database
    assert not service.started and service.bot is None and service.scheduler is None
    await asyncio.wait_for(service.stop(), 30)
    assert feed.task.done() and not writer.running
    assert db.pool.checkedin() == 0  # type: ignore[attr-defined]  # disposed: no connection left open
    # no "Polybot stopping" for a service that never said it started
    assert not [a for a in service.startup_alerts if a.key in ("start", "stop")]


async def test_a_start_refused_before_anything_ran_stops_cleanly(tmp_path: Path) -> None:
    env = settings(tmp_path, POLYBOT_FEED__MARKETS='["no-such-market"]')
    service = Service(load_settings(None, env=env), ServiceOptions(migrate=True))
    alerts: list[Alert] = []
    service.bus.subscribe(Alert, alerts.append)
    with pytest.raises(UsageError, match="unknown market 'no-such-market'"):
        await service.start()
    await asyncio.wait_for(service.stop(), 30)
    assert service.supervisor.components == {} and alerts == []


async def test_a_service_not_started_says_so_and_stops_as_a_no_op(tmp_path: Path) -> None:
    service = Service(load_settings(None, env=settings(tmp_path)))
    for part in ("engine", "control", "registry", "processor", "writer", "db", "feed", "jobs"):
        with pytest.raises(RuntimeError, match="the service is not started"):
            getattr(service, part)
    with pytest.raises(RuntimeError, match="the service is not started"):
        await service.job_staleness()
    await service.stop()
    await service.stop()
    assert service.lifecycle.stopping

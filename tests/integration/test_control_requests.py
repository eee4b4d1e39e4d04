"""``polybot disarm`` / ``polybot kill`` reach a running service through its database."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from core.cli.main import main
from core.service import Service, ServiceOptions
from core.settings import load_settings


async def _service(url: str) -> Service:
    env = {"POLYBOT_DB__URL": url, "POLYBOT_TELEGRAM__ENABLED": "false", "POLYBOT_METRICS__ENABLED": "false"}
    service = Service(load_settings(None, env=env), ServiceOptions(migrate=True, staleness_tick_s=0.1))
    await service.start()
    return service


@pytest.mark.parametrize("action", ["disarm", "kill"])
async def test_cli_request_disarms_the_running_service(
    tmp_path: Path, action: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'svc.db'}"
    service = await _service(url)
    try:
        assert (await service.control.arm("test")).ok and service.risk.armed
        code = await asyncio.to_thread(main, [action, "--db-url", url, "--wait", "10", "--reason", "drill"])
        assert code == 0
        assert not service.risk.armed
        out = capsys.readouterr().out
        assert out.startswith(f"{action}: ") and ("killed" in out if action == "kill" else "disarmed" in out)
        # handled once: a second poll does nothing more
        await service.job_staleness()
        assert len(service._handled_requests) == 1
    finally:
        await service.stop()


def test_cli_request_without_a_running_service_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'idle.db'}"
    assert main(["migrate", "--db-url", url, "--apply"]) == 0
    capsys.readouterr()
    assert main(["kill", "--db-url", url, "--wait", "0.3"]) == 1
    assert "no running service acknowledged" in capsys.readouterr().err
    assert main(["disarm", "--db-url", url, "--wait", "-1"]) == 2

"""A recovery message measures the outage from its first sign, not from the alert.

Was: "recovered … after 0s" for a longer outage — the duration counted from the moment the alert
was sent, which comes only once the outage has lasted long enough to be declared. A market socket
that goes silent is declared dead ``feed.dead_after_s`` (the rig's 4 s) after its last frame; the
recovery must count from that last frame.
"""

from __future__ import annotations

import re
import time

import pytest

from core.events import Alert
from tests.faults.fault_harness import WAIT_S, FaultRecord, running_service, wait_for


async def test_feed_recovery_counts_from_the_last_frame(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, fault_record: FaultRecord
) -> None:
    fault_record.scenario = "market ws silent until declared dead, then back at once"
    async with running_service(sqlite_url, monkeypatch) as rig:
        await rig.wait_books_ok()
        await rig.frames_advance(20)
        declared: list[float] = []

        def on_dead(alert: Alert) -> None:
            if alert.kind == "feed_dead" and not declared:
                declared.append(time.monotonic())
                rig.ws.resume()  # back the moment it is declared dead: the alert itself is ~0 s old

        rig.service.bus.subscribe(Alert, on_dead)
        silent_from = time.monotonic()
        rig.ws.stall(600)
        await wait_for(lambda: rig.cleared("feed_dead"), WAIT_S, "the feed to reconnect")
        outage = time.monotonic() - silent_from
        since_alert = time.monotonic() - declared[0]
        await rig.service.bus.drain()
        [note] = rig.tg_recovered("feed_dead")
        lasted = rig.cleared("feed_dead")[0].duration_s
        dead_after = rig.service.settings.feed.dead_after_s
        assert lasted is not None and lasted >= dead_after and lasted > since_alert + 1.0, (lasted, since_alert)
        assert lasted <= outage + 0.5, (lasted, outage)
        said = re.search(r"after (\d+)s", note)
        assert said is not None and int(said.group(1)) >= int(dead_after), note
        fault_record.counters = {"outage_s": round(outage, 1), "reported_s": round(lasted, 1)}

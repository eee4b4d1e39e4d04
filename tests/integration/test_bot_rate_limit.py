"""The per-user command limit through the real bot (PTB Application, Bot API double, manual clock).

Over the limit a command is refused and audited every time, but answered once per window with how
long to wait; /disarm and /kill, for someone allowed to run them, are never refused and never use
up the limit, so a trader can always stop trading.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from bot.offline import TranscriptEntry
from polybot.cli.tools.tgbot_cmd import LocalOptions, LocalSession, local_session
from polybot.updates import Updates
from tests.integration.bot_world import audit_rows

ADMIN, VIEWER, OPERATOR = 1001, 1002, 1003
SLOW_DOWN = re.compile(
    r"Too many commands \(over 3 a minute\): this one was not run\. Wait (\d+) s\. For the next minute, "
    r"commands over the limit are refused without another reply\. /disarm and /kill are never limited\."
)


def options(tmp_path: Path) -> LocalOptions:
    return LocalOptions(
        db_url=f"sqlite:///{tmp_path / 'bot.db'}",
        migrate=True,
        no_replay=True,
        env={"POLYBOT_TELEGRAM__COMMANDS_PER_MINUTE": "3"},
    )


def replies(entry: TranscriptEntry, chat: int) -> list[str]:
    """What the user's own chat got (a /kill also pushes an alert to the alert chat)."""
    return [c["text"] for c in entry.calls if c["method"] == "sendMessage" and c["chat_id"] == chat]


class Chat:
    def __init__(self, session: LocalSession) -> None:
        self.session = session
        self.updates = Updates()

    async def say(self, user: int, *texts: str) -> list[list[str]]:
        before = len(self.session.runner.transcript)
        transcript = await self.session.feed([self.updates.msg(user, t) for t in texts])
        return [replies(e, user) for e in transcript[before:]]

    async def wait(self, seconds: float) -> None:
        await self.session.feed([{"_advance_s": seconds}])


def waits(reply: list[str]) -> int:
    assert len(reply) == 1, reply
    match = SLOW_DOWN.fullmatch(reply[0])
    assert match, reply[0]
    return int(match.group(1))


async def test_over_the_limit_one_reply_per_window_and_the_safe_direction_always_runs(tmp_path: Path) -> None:
    async with local_session(options(tmp_path)) as session:
        chat = Chat(session)
        assert await chat.say(OPERATOR, "/arm") == [["✅ armed (paper mode)"]]
        await chat.wait(15)
        answered = await chat.say(OPERATOR, "/status", "/pnl")
        assert all(len(r) == 1 for r in answered)  # 3 commands: the limit
        refused = await chat.say(OPERATOR, "/status", "/orders", "hello", "/frobnicate", "/arm")
        assert waits(refused[0]) == 45  # the /arm at t=0 leaves the 60 s window at t=60
        assert refused[1:] == [[], [], [], []], "one slow-down reply, the rest refused without one"
        # over the limit, still armed: the trader stops trading at once
        assert await chat.say(OPERATOR, "/disarm") == [["🛑 disarmed: no new orders will be placed"]]
        assert not session.service.risk.armed
        assert await chat.say(OPERATOR, "/kill") == [["🛑 killed: disarmed, 0 order(s) canceled"]]
        await chat.wait(45)  # the /arm has aged out: one command fits
        later = await chat.say(OPERATOR, "/status", "/pnl")
        assert len(later[0]) == 1 and later[0][0].startswith("<b>Polybot</b>")
        assert later[1] == [], "told 45 s ago: still the same window"
        await chat.wait(15)  # 60 s after the slow-down reply: a new window, told again
        again = await chat.say(OPERATOR, "/pnl", "/pnl", "/pnl")
        assert [len(r) for r in again[:2]] == [1, 1]
        assert waits(again[2]) == 45
        assert not session.service.risk.armed

    rows = await audit_rows(options(tmp_path).db_url)
    limited = [(r.command, r.detail) for r in rows if r.result == "rate_limited"]
    assert [c for c, _ in limited] == ["status", "orders", "message", "frobnicate", "arm", "pnl", "pnl"]
    assert limited[0][1] == "over 3/min; next accepted in 45 s; answered"
    assert limited[1][1] == "over 3/min; next accepted in 45 s; not answered (already told this minute)"
    assert [r.detail.endswith("; answered") for r in rows if r.result == "rate_limited"] == [
        True, False, False, False, False, False, True
    ]  # fmt: skip
    safe = [(r.command, r.result) for r in rows if r.command in ("disarm", "kill")]
    assert safe == [("disarm", "ok"), ("kill", "ok")]
    assert len(rows) == 1 + 2 + 5 + 2 + 2 + 3  # every message on record, refused or not


async def test_disarm_and_kill_do_not_use_up_the_limit(tmp_path: Path) -> None:
    async with local_session(options(tmp_path)) as session:
        chat = Chat(session)
        safe = await chat.say(OPERATOR, "/kill", "/disarm", "/kill", "/disarm", "/kill")
        assert all(len(r) == 1 and r[0].startswith("🛑 ") for r in safe)
        after = await chat.say(OPERATOR, "/status", "/pnl", "/orders")
        assert all(len(r) == 1 and not r[0].startswith("Too many") for r in after), after
        assert waits((await chat.say(OPERATOR, "/status"))[0]) == 60


async def test_the_exemption_needs_the_role(tmp_path: Path) -> None:
    """A viewer's /kill is refused by role; over the limit it is throttled like anything else."""
    async with local_session(options(tmp_path)) as session:
        chat = Chat(session)
        out = await chat.say(VIEWER, "/kill", "/kill", "/kill", "/kill", "/kill")
        assert out[:3] == [["/kill needs the operator role."]] * 3
        assert waits(out[3]) == 60 and out[4] == []
        # the viewer's flood does not touch the admin
        assert (await chat.say(ADMIN, "/pnl"))[0][0].startswith("<b>PnL</b>")
    rows: list[Any] = await audit_rows(options(tmp_path).db_url)
    assert [r.result for r in rows if r.user_id == str(VIEWER)] == ["forbidden"] * 3 + ["rate_limited"] * 2

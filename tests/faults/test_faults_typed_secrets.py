"""A secret typed into the chat by mistake never lands in the audit table or a reply.

Was: a bot token's secret half sent alone (``/nosuch AAHx…``) was stored whole in
``command_audit.arguments``. Every secret shape goes through the real bot (offline Bot API
double) as the argument of an unknown command, of a real command and as plain text; the
table and every reply are then searched for any 8-character fragment of it. A condition id the
bot knows stays readable: traders type those.
"""

from __future__ import annotations

import pytest

from tests.faults.fault_harness import BINARY, TRADER, FaultRecord, query, running_service
from tests.secret_shapes import API_PASSPHRASE, API_SECRET, BOT_TOKEN, PRIVATE_KEY, TOKEN_HALF, leaked_fragments

TYPED = {
    "private key": PRIVATE_KEY,
    "bot token": BOT_TOKEN,
    "token secret half": TOKEN_HALF,
    "api secret": API_SECRET,
    "api passphrase": API_PASSPHRASE,
}


async def test_secrets_typed_in_chat_are_masked_in_the_audit_table_and_replies(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, fault_record: FaultRecord
) -> None:
    fault_record.scenario = "secrets typed in chat: unknown command, real command, plain text"
    async with running_service(sqlite_url, monkeypatch, feed="demo", rate_hz=20.0) as rig:
        await rig.wait_books_ok()
        condition_id = rig.service.registry.resolve(BINARY).condition_id
        texts = []
        for secret in TYPED.values():
            texts += [f"/nosuch {secret}", f"/quotes {secret}", secret]
        texts.append(f"/quotes {condition_id}")
        await rig.telegram_feed([rig.updates.msg(TRADER, t) for t in texts])
        await rig.service.writer.flush()
        rows = await query(rig.db_url, "SELECT command, arguments, detail FROM command_audit")
        stored = "\n".join(f"{r[0]} {r[1]} {r[2]}" for r in rows)
        replies = "\n".join(c.text or "" for c in rig.api.calls if c.method == "sendMessage")
        assert len(rows) >= len(texts)
        for name, secret in TYPED.items():
            assert not leaked_fragments(secret, stored), f"{name} stored in command_audit"
            assert not leaked_fragments(secret, replies), f"{name} echoed in a reply"
        assert condition_id in stored  # the market a trader named stays readable

"""Logging: one setup, human or JSON lines, levels, and secrets redacted everywhere."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from telegram import Update

from core.logsetup import (
    JsonFormatter,
    RedactingFilter,
    setup_cli_logging,
    setup_logging,
    setup_logging_from_settings,
)
from core.redact import clear_secrets, mask_url_password, redact, register_secret
from core.settings import LoggingSettings, load_settings
from tests.secret_shapes import API_PASSPHRASE, API_SECRET, PRIVATE_KEY, assert_no_secret

HEX_KEY = "0x" + "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
BOT_TOKEN = "7012345678:AAF1abcdefghijklmnopqrstuvwxyz01234"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


def ours() -> list[logging.Handler]:
    return [h for h in logging.getLogger().handlers if getattr(h, "_polybot_handler", False)]


def test_registered_secret_is_redacted_in_message_args_and_exception() -> None:
    stream = io.StringIO()
    register_secret("hunter2-registered-secret")
    setup_logging("INFO", json=False, stream=stream)
    log = logging.getLogger("polybot.test")
    log.info("password is %s", "hunter2-registered-secret")
    try:
        raise RuntimeError("failed with hunter2-registered-secret")
    except RuntimeError:
        log.exception("boom %d", 1)
    out = stream.getvalue()
    assert "hunter2-registered-secret" not in out
    assert "password is ***" in out
    assert "boom 1" in out and "RuntimeError: failed with ***" in out


def test_secret_shapes_are_redacted_without_registration() -> None:
    stream = io.StringIO()
    setup_logging(logging.DEBUG, json=False, stream=stream)
    log = logging.getLogger("httpx")  # third-party logger: the handler filter still applies
    log.warning("POST https://api.telegram.org/bot%s/sendMessage key=%s", BOT_TOKEN, HEX_KEY)
    out = stream.getvalue()
    assert BOT_TOKEN not in out and HEX_KEY not in out
    assert "https://api.telegram.org/bot***/sendMessage key=***" in out
    # not secrets: short hex, a 40-hex address, a price with a colon-free number
    assert redact("addr 0x" + "a" * 40 + " price 0.51") == "addr 0x" + "a" * 40 + " price 0.51"
    # a bare condition id / tx hash (same 64-hex shape, not named as a key) stays readable
    cid = "0x" + "cd" * 32
    assert redact(f"market {cid} inconsistent") == f"market {cid} inconsistent"


def test_json_lines_are_parseable_and_redacted() -> None:
    register_secret(HEX_KEY)  # a configured key is registered by settings loading
    stream = io.StringIO()
    register_secret('quote"and\\slash-secret')
    setup_logging("DEBUG", json=True, stream=stream)
    log = logging.getLogger("core.test")
    log.debug("order %s placed", "abc", extra={"client_order_id": "c-1", "size": 5, "note": 'quote"and\\slash-secret'})
    try:
        raise ValueError(HEX_KEY)
    except ValueError:
        log.error("signing failed", exc_info=True)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 2
    first, second = lines
    assert first["level"] == "DEBUG" and first["logger"] == "core.test"
    assert first["msg"] == "order abc placed"
    assert first["client_order_id"] == "c-1" and first["size"] == 5 and first["note"] == "***"
    assert first["ts"].endswith("Z")
    assert second["msg"] == "signing failed" and "ValueError: ***" in second["exc"]
    assert HEX_KEY not in stream.getvalue()


def test_levels_and_repeated_setup_replace_handlers() -> None:
    stream = io.StringIO()
    setup_logging("WARNING", json=False, stream=stream)
    setup_logging("WARNING", json=False, stream=stream)
    assert len(ours()) == 1
    log = logging.getLogger("core.level")
    log.info("hidden")
    log.warning("shown")
    assert "hidden" not in stream.getvalue() and "shown" in stream.getvalue()
    assert logging.getLogger("httpx").level == logging.WARNING  # chatty libraries quieted
    with pytest.raises(ValueError):
        setup_logging("LOUD", json=False, stream=stream)


def test_cli_verbosity() -> None:
    setup_cli_logging(0)
    assert logging.getLogger().level == logging.WARNING
    setup_cli_logging(1)
    assert logging.getLogger().level == logging.INFO
    setup_cli_logging(2)
    assert logging.getLogger().level == logging.DEBUG
    assert len(ours()) == 1


def test_settings_level_and_verbose_override(tmp_path: Path) -> None:
    register_secret(HEX_KEY)  # a configured key is registered by settings loading
    log_file = tmp_path / "nested" / "dir" / "polybot.log"
    cfg = LoggingSettings(level="error", json=True, file=str(log_file))
    setup_logging_from_settings(cfg)
    assert logging.getLogger().level == logging.ERROR
    assert len(ours()) == 2
    logging.getLogger("core.file").error("to the file %s", HEX_KEY)
    for handler in ours():
        handler.flush()
    record = json.loads(log_file.read_text().splitlines()[-1])
    assert record["msg"] == "to the file ***"
    setup_logging_from_settings(cfg, verbosity=2)
    assert logging.getLogger().level == logging.DEBUG


def test_settings_secrets_never_reach_a_log_line(tmp_path: Path) -> None:
    (tmp_path / "service.toml").write_text('[relayer]\ntype = "real"\n')
    (tmp_path / "secrets.local.toml").write_text(
        '[relayer]\nprivate_key = "' + "1f" * 32 + '"\napi_passphrase = "pass-phrase-77"\n'
    )
    settings = load_settings(tmp_path / "service.toml", env={}).settings
    stream = io.StringIO()
    setup_logging("INFO", json=False, stream=stream)
    log = logging.getLogger("core.execution")
    assert settings.relayer.private_key is not None and settings.relayer.api_passphrase is not None
    log.info("using key %s", settings.relayer.private_key.get_secret_value())
    log.info("bare key %s and passphrase %s", "1f" * 32, settings.relayer.api_passphrase.get_secret_value())
    log.info("settings: %r", settings.relayer)
    out = stream.getvalue()
    assert "1f" * 32 not in out and "pass-phrase-77" not in out
    assert out.count("***") >= 3
    assert "**********" in out  # the repr of SecretStr


def test_filter_survives_bad_arguments() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "count %d", ("nope",), None)
    assert RedactingFilter().filter(record) is True
    assert record.args is None and "unformattable" in record.getMessage()


def test_url_password_masking() -> None:
    assert mask_url_password("postgresql://u:secret@h:5432/db") == "postgresql://u:**********@h:5432/db"
    assert mask_url_password("sqlite:///./var/x.db") == "sqlite:///./var/x.db"


def test_handlers_polybot_did_not_install_see_redacted_records() -> None:
    register_secret(HEX_KEY)  # a configured key is registered by settings loading
    setup_logging("INFO", json=False, stream=io.StringIO())
    foreign_stream = io.StringIO()
    foreign = logging.StreamHandler(foreign_stream)
    log = logging.getLogger("operator.own")
    log.addHandler(foreign)
    try:
        log.warning("leaked? %s", HEX_KEY)
    finally:
        log.removeHandler(foreign)
    assert foreign_stream.getvalue() == "leaked? ***\n"


def test_a_chat_message_logged_by_the_telegram_library_is_masked_as_typed_text() -> None:
    """python-telegram-bot logs whole updates at DEBUG: what a person typed is typed text there."""
    clear_secrets()  # the shapes must do it: nothing here is registered
    stream = io.StringIO()
    setup_logging(logging.DEBUG, json=False, stream=stream)
    json_stream = io.StringIO()
    json_handler = logging.StreamHandler(json_stream)
    json_handler.setFormatter(JsonFormatter())
    logging.getLogger().addHandler(json_handler)
    cid = "0x" + "cd" * 32
    update = Update.de_json(
        {
            "update_id": 9,
            "message": {
                "message_id": 1,
                "date": 1_780_000_000,
                "chat": {"id": 5, "type": "private"},
                "from": {"id": 5, "is_bot": False, "first_name": "T"},
                "text": f"/nosuch {API_PASSPHRASE} {PRIVATE_KEY}",
            },
        },
        None,
    )
    raw = [{"update_id": 10, "message": {"message_id": 2, "text": f"{PRIVATE_KEY[2:]} {API_SECRET.rstrip('=')}"}}]
    try:
        # the library's own logger names and format strings (telegram/ext/_application.py, telegram/_bot.py)
        logging.getLogger("telegram.ext.Application").debug("Processing update %s", update)
        logging.getLogger("telegram.Bot").debug(
            "Call to Bot API endpoint `%s` finished with return value `%s`", "getUpdates", raw
        )
        logging.getLogger("core.service").info("market %s re-seeded", cid)
    finally:
        logging.getLogger().removeHandler(json_handler)
    for out in (stream.getvalue(), json_stream.getvalue()):
        assert "Processing update" in out and "getUpdates" in out
        assert_no_secret(out)
        assert f"market {cid} re-seeded" in out  # an identifier in an ordinary line stays readable
    assert "text='/nosuch *** ***'" in stream.getvalue()

"""The one logging setup: human lines (coloured on a TTY) or JSON lines, secrets redacted.

- :func:`setup_logging` installs Polybot's handlers on the root logger (stderr, plus an
  optional file) and is safe to call again: it replaces what it installed before.
- :func:`setup_cli_logging` is what ``polybot`` calls before any command (``-v``/``-vv``).
- :func:`setup_logging_from_settings` applies the ``[logging]`` section; ``--verbose`` wins.
- :class:`RedactingFilter` sits on every handler (not on loggers, so records propagated from
  third-party loggers such as httpx, whose request URLs carry the Telegram token, are covered)
  and masks registered secrets and secret-shaped values in the message, its arguments, the
  exception text and the stack (:func:`core.redact.redact`: the text of a chat message, as
  python-telegram-bot logs whole updates at DEBUG, is masked as typed text, so a key pasted into
  the chat does not reach the log). The formatters redact their output once more as a backstop.
- :func:`setup_logging` also wraps the log-record factory so records are redacted when they are
  created: handlers Polybot did not install (an operator's own, a test runner's) see masked
  text as well.
"""

from __future__ import annotations

import json as jsonlib
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from core.redact import redact, register_secret

if TYPE_CHECKING:
    from core.settings import LoggingSettings

__all__ = [
    "HumanFormatter",
    "JsonFormatter",
    "RedactingFilter",
    "register_secret",
    "setup_cli_logging",
    "setup_logging",
    "setup_logging_from_settings",
]

_MARK = "_polybot_handler"
# Libraries that log every request at INFO; their detail is only worth it when debugging.
# Alembic's plugin set-up says seven times that it loaded a plugin of its own whenever a migration
# runs; the migration's own lines (alembic.runtime.migration: "Running upgrade ...") stay.
_CHATTY = ("httpx", "httpcore", "websockets", "apscheduler", "alembic.runtime.plugins")

# Attributes every LogRecord has; anything else was passed with ``extra=`` and goes into JSON.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


class RedactingFilter(logging.Filter):
    """Replace secrets in a record before any handler formats it (never drops a record)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # bad %-args: keep the template, never the raw args
            message = f"{record.msg!s} (unformattable log arguments)"
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key, value in list(vars(record).items()):
            if key not in _STANDARD_ATTRS and isinstance(value, str):
                setattr(record, key, redact(value))
        return True


_LEVEL_COLOURS = {
    logging.DEBUG: "\x1b[2m",
    logging.INFO: "\x1b[32m",
    logging.WARNING: "\x1b[33m",
    logging.ERROR: "\x1b[31m",
    logging.CRITICAL: "\x1b[1;31m",
}
_RESET = "\x1b[0m"


class HumanFormatter(logging.Formatter):
    """``2026-05-01 12:00:00.123Z INFO    core.feed.ws: message`` (UTC, level coloured on a TTY)."""

    def __init__(self, *, colour: bool = False) -> None:
        super().__init__()
        self.colour = colour

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%d %H:%M:%S")
        level = f"{record.levelname:<8}"
        if self.colour:
            level = f"{_LEVEL_COLOURS.get(record.levelno, '')}{level}{_RESET}"
        line = f"{stamp}.{int(record.msecs):03d}Z {level} {record.name}: {record.getMessage()}"
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return redact(line)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (UTC ISO-8601), level, logger, msg, extras, exc."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key in _STANDARD_ATTRS or key.startswith("_") or key in out:
                continue
            out[key] = _json_value(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = redact(record.exc_text)
        if record.stack_info:
            out["stack"] = redact(record.stack_info)
        # Values were redacted before encoding: JSON escaping could hide a secret from a text match.
        return jsonlib.dumps(out, ensure_ascii=False, default=str)


class _StderrHandler(logging.StreamHandler[IO[str]]):
    """Writes to whatever ``sys.stderr`` is at emit time (test runners swap it per test)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, value: IO[str]) -> None:
        pass


def _json_value(value: object) -> object:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return redact(value)
    return redact(str(value))


def _to_level(level: str | int) -> int:
    if isinstance(level, int):
        return level
    resolved = logging.getLevelName(level.strip().upper())
    if not isinstance(resolved, int):
        raise ValueError(f"unknown log level {level!r}")
    return resolved


def _is_tty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


_redacting_factory_installed = False


def _install_redacting_record_factory() -> None:
    global _redacting_factory_installed
    if _redacting_factory_installed:
        return
    base = logging.getLogRecordFactory()
    redactor = RedactingFilter()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = base(*args, **kwargs)
        redactor.filter(record)
        return record

    logging.setLogRecordFactory(factory)
    _redacting_factory_installed = True


def setup_logging(
    level: str | int = "INFO",
    json: bool = False,
    file: str | None = None,
    *,
    stream: IO[str] | None = None,
) -> None:
    """Install Polybot's handlers on the root logger, replacing any it installed before.

    Human lines go to ``stream`` (stderr by default, so ``--json`` output on stdout stays
    clean), coloured only when it is a TTY; ``json=True`` writes JSON lines instead. ``file``
    appends the same records to a file (JSON lines when ``json``), creating its directory.
    """
    numeric = _to_level(level)
    _install_redacting_record_factory()
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _MARK, False):
            root.removeHandler(handler)
            handler.close()

    target = stream if stream is not None else sys.stderr
    console: logging.Handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    console.setFormatter(JsonFormatter() if json else HumanFormatter(colour=_is_tty(target)))
    handlers: list[logging.Handler] = [console]
    if file:
        path = Path(file)
        path.parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(path, encoding="utf-8", delay=True)
        file_handler.setFormatter(JsonFormatter() if json else HumanFormatter(colour=False))
        handlers.append(file_handler)

    redactor = RedactingFilter()
    for handler in handlers:
        handler.addFilter(redactor)
        setattr(handler, _MARK, True)
        root.addHandler(handler)
    root.setLevel(numeric)
    chatty_level = logging.NOTSET if numeric <= logging.DEBUG else logging.WARNING
    for name in _CHATTY:
        logging.getLogger(name).setLevel(chatty_level)


def _verbosity_level(verbosity: int) -> int:
    return logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG


def setup_cli_logging(verbosity: int = 0) -> None:
    """Human lines on stderr: warnings by default, ``-v`` info, ``-vv`` debug."""
    setup_logging(_verbosity_level(verbosity), json=False, file=None)


def setup_logging_from_settings(settings: LoggingSettings, verbosity: int = 0) -> None:
    """Apply ``[logging]``; a ``--verbose`` flag (``verbosity > 0``) overrides its level."""
    level: str | int = _verbosity_level(verbosity) if verbosity > 0 else settings.level
    setup_logging(level, json=settings.json, file=settings.file)

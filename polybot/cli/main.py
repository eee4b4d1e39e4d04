"""Entry point of the ``polybot`` console script.

Where a command lives says what it may import:

- ``polybot/cli/commands/``: the **faces** of the service — commands that ask the running system
  or its data something (status, status-top, health, disarm, kill, markets, preflight,
  smoke-live). They go through :class:`core.control.facade.Control` only: they import
  ``core.control.*`` and the domain types (``core.types``, ``core.money``, ``core.errors``),
  never ``core.store``, ``core.feed``, ``core.strategies``, ``core.markets`` or ``core.execution``.
- ``polybot/cli/tools/``: the **tools** — commands that are not a face of the service but build,
  feed, replay or stand in for parts of it (migrate, refresh-markets, the mock-* doubles,
  replay-book, record-ws, ingest-ws, the strategy replays, relayer-dry-run and the approvals,
  metrics*, config, run-service, tgbot-run-local, demo). They may use the lower layers.

Each module has ``register(subparsers)``, which adds its sub-commands with
``set_defaults(func=handler)``; both packages are discovered automatically. A handler takes the
parsed ``argparse.Namespace`` and returns an exit code (0 ok, 1 failure, 2 usage/config error).
Errors are raised as :class:`core.errors.PolybotError` and shown as one line on stderr;
a traceback appears only with ``--debug``.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NoReturn

from core.errors import PolybotError

COMMAND_PACKAGES = ("polybot.cli.commands", "polybot.cli.tools")

if TYPE_CHECKING:  # argparse's action is generic for the type checker only
    Subcommands = argparse._SubParsersAction[argparse.ArgumentParser]
    Register = Callable[[Subcommands], None]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class _UsageExit(SystemExit):
    """argparse's usage error: :func:`main` returns its exit code, other callers see a SystemExit."""


class _Parser(argparse.ArgumentParser):
    """argparse that exits 2 with a single readable line on bad usage.

    The usage block is left out: for a command with many options it is a dozen lines that bury
    the one that says what is wrong; the line points at ``--help`` instead."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        raise _UsageExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="polybot",
        description="Polybot: a Polymarket CLOB V2 trading bot you run and control from Telegram.",
        epilog="Run 'polybot COMMAND --help' for a command's options and an example.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub: Subcommands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for package in COMMAND_PACKAGES:
        for info in sorted(pkgutil.iter_modules(importlib.import_module(package).__path__)):
            module = importlib.import_module(f"{package}.{info.name}")
            register: Register | None = getattr(module, "register", None)  # a helper module has none
            if register is not None:
                register(sub)
    return parser


def add_command(
    sub: Subcommands,
    name: str,
    *,
    help: str,
    example: str,
    description: str | None = None,
) -> argparse.ArgumentParser:
    """Add a sub-command whose ``--help`` ends with an example line."""
    return sub.add_parser(
        name,
        help=help,
        description=description or help,
        epilog=f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def main(argv: Sequence[str] | None = None) -> int:
    # httpx loads its own command-line tool (click, rich, pygments: ~0.05-0.1 s) whenever those are
    # installed, as the dev tools install them; polybot never runs it. A None entry makes that
    # import fail, which httpx expects (it then leaves its ``main`` as a stub).
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]  # None blocks an import (importlib's documented use)
    words = list(sys.argv[1:] if argv is None else argv)
    if any("<YOUR_" in word for word in words):  # a docs placeholder left as written: say what goes there
        from polybot.cli.placeholders import placeholder_problem

        if (problem := placeholder_problem(words)) is not None:
            command = next((w for w in words if not w.startswith("-")), "")
            sys.stderr.write(f"polybot {command}: {problem}\n")
            return EXIT_USAGE
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageExit:  # already reported in one line; --help still exits through SystemExit(0)
        return EXIT_USAGE
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        from core.logsetup import setup_cli_logging

        setup_cli_logging(args.verbose)
        result = args.func(args)
        return int(result or 0)
    except PolybotError as exc:
        if args.debug:
            traceback.print_exc()
        sys.stderr.write(f"polybot {args.command}: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write(f"polybot {args.command}: interrupted\n")
        return 130
    except Exception as exc:  # the last line of defence: one line, never a raw traceback
        if args.debug:
            traceback.print_exc()
        else:
            sys.stderr.write(f"polybot {args.command}: error: {type(exc).__name__}: {exc} (use --debug for details)\n")
        return EXIT_FAILURE


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

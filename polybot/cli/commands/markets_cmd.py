"""``polybot markets``: the markets refresh-markets stored, from the service's database."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import TYPE_CHECKING

from core.errors import UsageError
from polybot.cli import common
from polybot.cli.main import add_command

if TYPE_CHECKING:
    from core.control.types import ListedMarket
    from core.control.watch_preview import PreviewRule, WatchPreview
    from polybot.cli.main import Subcommands

QUESTION_CHARS = 60


def register(sub: Subcommands) -> None:
    p = add_command(
        sub,
        "markets",
        help="list stored markets (slug, question, outcomes, tick, neg-risk, fee rate)",
        description=(
            "List the markets stored by refresh-markets. FILTER matches a slug or question substring\n"
            "(case-insensitive), or a condition id, neg-risk group id or event id exactly.\n"
            "--watch-preview --config FILE shows what the file's [[feed.watch]] rules select from the\n"
            "stored markets instead (as the running service does after each refresh)."
        ),
        example="polybot markets cup --db-url sqlite:///var/sandbox/sandbox.db --json  # while polybot sandbox runs",
    )
    p.add_argument("filter", nargs="?", default=None, metavar="FILTER", help="text to match")
    p.add_argument("--db-url", type=common.db_url, default=None, help=common.DB_URL_HELP)
    p.add_argument("--open", action="store_true", help="only active markets that are not closed")
    p.add_argument("--limit", type=common.count, default=None, metavar="N", help="at most N markets")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--watch-preview", action="store_true", help="what the [[feed.watch]] rules of --config select (no FILTER)"
    )
    p.add_argument("--config", metavar="FILE", default=None, help="service TOML whose rules --watch-preview applies")
    p.set_defaults(func=_markets_cmd)


def _short_id(value: str | None) -> str:
    if not value:
        return "-"
    return value if len(value) <= 14 else f"{value[:8]}…{value[-4:]}"


def _render_table(rows: list[ListedMarket]) -> str:
    header = ("SLUG", "OUTCOMES", "TICK", "MIN", "NEG-RISK", "FEE", "STATE", "QUESTION")
    lines: list[tuple[str, ...]] = [header]
    for r in rows:
        i = r.info
        neg = _short_id(i.neg_risk_market_id) if i.neg_risk else "-"
        if i.neg_risk and i.neg_risk_augmented:
            neg += " augmented"
        state = "closed" if i.closed else ("open" if i.active else "inactive")
        question = i.question if len(i.question) <= QUESTION_CHARS else i.question[: QUESTION_CHARS - 1] + "…"
        lines.append(
            (
                i.slug or i.condition_id,
                "/".join(t.outcome for t in i.tokens),
                str(i.tick_size),
                str(i.min_order_size),
                neg,
                str(i.fee_rate),
                state,
                question,
            )
        )
    widths = [max(len(line[c]) for line in lines) for c in range(len(header) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line[:-1], widths, strict=True)) + "  " + line[-1] for line in lines
    )


def _markets_cmd(args: argparse.Namespace) -> int:
    if args.watch_preview:
        return _watch_preview(args)
    if args.config is not None:
        raise UsageError("--config is only read by --watch-preview")
    from core.control.facade import Control

    control = Control.over_database(args.db_url)
    listing = asyncio.run(control.stored_markets(args.filter, open_only=args.open, limit=args.limit))
    rows = listing.markets
    if args.json:
        print(json.dumps({"count": len(rows), "markets": [r.as_dict() for r in rows]}))
        return 0
    if not rows:
        if not listing.any_stored:
            print("no markets stored: run polybot refresh-markets first")
        else:
            print(f"no stored market matches {args.filter!r}" if args.filter else "no stored market matches")
        return 0
    print(_render_table(rows))
    print(f"{len(rows)} market(s)")
    return 0


# --------------------------------------------------------------------------- --watch-preview


def _watch_preview(args: argparse.Namespace) -> int:
    if args.config is None:
        raise UsageError("--watch-preview needs --config FILE (the [[feed.watch]] rules to apply)")
    if args.filter is not None or args.open or args.limit is not None:
        raise UsageError("FILTER, --open and --limit do not apply to --watch-preview")
    from core.control.facade import Control

    control = Control.from_config(args.config)  # ConfigError: exit 2 with every problem listed
    result = asyncio.run(control.watch_preview(args.db_url))
    if args.json:
        print(json.dumps(result.as_dict()))
        return 0
    print(_render_preview(result, args.config))
    return 0


def _render_preview(result: WatchPreview, config: str) -> str:
    if not result.rules:
        return f"no [[feed.watch]] rules in {config}: nothing is selected"
    lines = []
    for rule in result.rules:
        cut = f"; max_assets cut {rule.truncated} more matching market(s)" if rule.truncated else " (nothing cut)"
        lines.append(
            f"rule {rule.index} ({rule.conditions}): {rule.matched} matched, {len(rule.markets)} kept, "
            f"{rule.assets} of max_assets {rule.max_assets} assets{cut}"
        )
        if rule.markets:
            lines.append(_indent(_preview_table(rule)))
    lines.append(
        f"total: {result.markets} market(s), {result.assets} asset(s) followed "
        f"(of {result.stored} open stored market(s))"
    )
    return "\n".join(lines)


def _preview_table(rule: PreviewRule) -> str:
    header = ("SLUG", "VOLUME 24H", "LIQUIDITY", "ENDS", "ASSETS", "QUESTION")
    rows: list[tuple[str, ...]] = [header]
    for m in rule.markets:
        question = m.question if len(m.question) <= QUESTION_CHARS else m.question[: QUESTION_CHARS - 1] + "…"
        ends = "-" if m.end_date is None else m.end_date.strftime("%Y-%m-%d %H:%M")
        rows.append((m.slug or m.condition_id, str(m.volume_24h), str(m.liquidity), ends, str(len(m.assets)), question))
    widths = [max(len(r[c]) for r in rows) for c in range(len(header) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1] for r in rows)


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())

"""``polybot markets``: the markets refresh-markets stored, from the service's database."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import TYPE_CHECKING

from core.control.facade import Control
from polybot.cli import common
from polybot.cli.main import add_command

if TYPE_CHECKING:
    from core.control.types import ListedMarket
    from polybot.cli.main import Subcommands

QUESTION_CHARS = 60


def register(sub: Subcommands) -> None:
    p = add_command(
        sub,
        "markets",
        help="list stored markets (slug, question, outcomes, tick, neg-risk, fee rate)",
        description=(
            "List the markets stored by refresh-markets. FILTER matches a slug or question substring\n"
            "(case-insensitive), or a condition id, neg-risk group id or event id exactly."
        ),
        example="polybot markets cup --db-url sqlite:///var/polybot.db --json",
    )
    p.add_argument("filter", nargs="?", default=None, metavar="FILTER", help="text to match")
    p.add_argument("--db-url", type=common.db_url, default=None, help=common.DB_URL_HELP)
    p.add_argument("--open", action="store_true", help="only active markets that are not closed")
    p.add_argument("--limit", type=common.count, default=None, metavar="N", help="at most N markets")
    p.add_argument("--json", action="store_true", help="print JSON")
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

"""``polybot status-top`` and ``polybot health``: read-only views of the stored feed state."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from polybot.cli import common
from polybot.cli.main import add_command


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = add_command(
        sub,
        "status-top",
        help="the N most recently updated assets: top of book, spread, age",
        example="polybot status-top --limit 10 --db-url sqlite:///./var/polybot.db",
    )
    p.add_argument("--limit", type=common.count, default=10, help="how many assets (default 10)")
    p.add_argument(
        "--db-url", type=common.db_url, default=None, help="database URL (default sqlite:///./var/polybot.db)"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_status_top)

    h = add_command(
        sub,
        "health",
        help="health of the stored feed: exit 0 healthy, 1 unhealthy (with reasons)",
        example="polybot health --staleness-ms 30000 --db-url sqlite:///./var/polybot.db",
        description=(
            "Unhealthy when: the database is unreachable or not migrated, no asset is tracked, an asset's\n"
            "last update is older than --staleness-ms, a stored book is crossed, or a warning/critical alert\n"
            "is still open in the alerts table. Exit 0 healthy, 1 unhealthy, 2 usage."
        ),
    )
    h.add_argument(
        "--staleness-ms",
        type=common.staleness_ms,
        default=60_000,
        help="max age of an asset's last update (default 60000)",
    )
    h.add_argument(
        "--db-url", type=common.db_url, default=None, help="database URL (default sqlite:///./var/polybot.db)"
    )
    h.add_argument("--json", action="store_true")
    h.set_defaults(func=_health)


def _gather(args: argparse.Namespace, max_assets: int) -> dict[str, Any]:
    from core.store.status import gather_status
    from polybot.cli.common import db_url_arg

    return asyncio.run(gather_status(db_url_arg(args), max_assets=max_assets))


def _status_top(args: argparse.Namespace) -> int:
    data = _gather(args, max_assets=max(args.limit, 1))
    assets = sorted(
        data.get("assets", []),
        key=lambda a: a.get("last_update_age_s") if a.get("last_update_age_s") is not None else 1e18,
    )[: args.limit]
    if args.json:
        sys.stdout.write(json.dumps(assets, indent=2) + "\n")
        return 0
    if data.get("empty"):
        print("empty database (no schema): run polybot migrate --apply, then ingest")
        return 0
    if not assets:
        print("no tracked assets yet")
        return 0
    print(f"{'asset':22} {'bid':>8} {'ask':>8} {'spread':>7} {'age':>9}")
    for a in assets:
        age = a.get("last_update_age_s")
        print(
            f"{a['asset_id'][:20] + '…':22} {a.get('best_bid') or '-':>8} {a.get('best_ask') or '-':>8} "
            f"{a.get('spread') or '-':>7} {'-' if age is None else f'{age:.1f}s':>9}"
        )
    return 0


async def _open_alerts(url: str) -> list[str]:
    from sqlalchemy import select

    from core.control.facade import EVENT_ALERT_KINDS
    from core.store.db import create_engine
    from core.store.models import Alert

    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(Alert.kind, Alert.key, Alert.message)
                    .where(
                        Alert.resolved_at.is_(None),
                        Alert.severity.in_(("warning", "critical")),
                        Alert.kind.not_in(sorted(EVENT_ALERT_KINDS)),
                    )
                    .order_by(Alert.ts.desc())
                    .limit(20)
                )
            ).all()
    finally:
        await engine.dispose()
    return [f"open alert {kind} {key}: {message}" for kind, key, message in rows]


def _health(args: argparse.Namespace) -> int:
    from polybot.cli.common import db_url_arg

    data = _gather(args, max_assets=1000)
    reasons: list[str] = []
    if data.get("empty"):
        reasons.append("database has no schema (run polybot migrate --apply)")
    elif not data.get("schema", {}).get("at_head", False):
        reasons.append("database schema is not at head (run polybot migrate --apply)")
    else:
        assets = data.get("assets", [])
        if not assets:
            reasons.append("no asset tracked yet (nothing ingested)")
        limit_s = args.staleness_ms / 1000
        stale = [a for a in assets if a.get("last_update_age_s") is None or a["last_update_age_s"] > limit_s]
        if stale:
            reasons.append(f"{len(stale)} of {len(assets)} asset(s) not updated within {args.staleness_ms} ms")
        crossed = [a for a in assets if a.get("crossed")]
        if crossed:
            reasons.append(f"{len(crossed)} stored book(s) crossed")
        reasons += asyncio.run(_open_alerts(db_url_arg(args)))
    ok = not reasons
    if args.json:
        sys.stdout.write(json.dumps({"healthy": ok, "reasons": reasons}, indent=2) + "\n")
    else:
        print("healthy" if ok else "unhealthy:")
        for r in reasons:
            print(f"  - {r}")
    return 0 if ok else 1

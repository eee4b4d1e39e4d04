"""The configuration side of a process outside the service: what a face can check before it runs.

``polybot preflight`` and ``polybot smoke-live`` ask the same questions the running service asks
at ``/arm``, from the same configuration file, without starting it: the pre-trade checks, and one
order signed exactly as live mode would sign it (never posted).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from core.control.types import DryRunRequest, DryRunResult, PreflightReport, SmokeResult
from core.errors import UsageError

if TYPE_CHECKING:
    from core.settings import LoadedSettings


class ConfigLink:
    """One loaded configuration (``ConfigError`` lists every problem when it is invalid)."""

    def __init__(self, loaded: LoadedSettings) -> None:
        self.loaded = loaded

    @classmethod
    def load(cls, path: str | Path | None) -> ConfigLink:
        from core.settings import load_settings

        return cls(load_settings(path))

    @property
    def mode(self) -> str:
        return self.loaded.settings.mode.value

    @property
    def config_path(self) -> str | None:
        return None if self.loaded.config_path is None else str(self.loaded.config_path)

    @property
    def db_url(self) -> str:
        return self.loaded.settings.db.url

    async def preflight(self, offline: bool) -> PreflightReport:
        from core.preflight import run_preflight

        return await run_preflight(self.loaded, offline=offline)

    async def smoke(self, request: DryRunRequest, *, offline: bool) -> SmokeResult:
        """The preflight, then (only when it passed) one dry-run order stored in the configured database."""
        settings = self.loaded.settings
        if settings.relayer.type != "real":
            raise UsageError(
                'smoke-live signs with the configured key: set [relayer] type = "real" and private_key '
                "(in secrets.local.toml); the order is never posted"
            )
        report = await self.preflight(offline)
        order = await self._dry_run(request, offline=offline) if report.ok else None
        return SmokeResult(mode=self.mode, config_path=self.config_path, preflight=report, order=order)

    async def _dry_run(self, request: DryRunRequest, *, offline: bool) -> DryRunResult:
        from core.execution.dry_run import DryRunSpec, build_dry_run_order, open_migrated_db
        from core.execution.relayers.clob_config import clob_relayer

        settings = self.loaded.settings
        if settings.relayer.private_key is None:  # the key check fails first; kept for a clear line regardless
            raise UsageError("relayer.private_key is not set")
        spec = DryRunSpec(
            market=request.market,
            outcome=request.outcome,
            side=request.side,
            price=request.price,
            size=request.size,
            order_type=request.order_type,
            tick_size=request.tick_size,
            neg_risk=request.neg_risk,
            client_order_id=request.client_order_id,
            reason="smoke-live",
            max_order_notional=settings.risk.max_order_notional,  # what the service would refuse
        )
        # No API credentials: signing does not need them, and the body's "owner" (the API key, a
        # secret in our settings) must not be printed or stored. The signature does not cover it.
        # dry_run: smoke-live never posts, whatever relayer.dry_run says.
        relayer = clob_relayer(settings, dry_run=True, with_creds=False)
        engine = None
        try:
            # The database check passed, so it is reachable and migrated: the order is stored.
            engine = await open_migrated_db(settings.db.url)
            order = await build_dry_run_order(relayer, spec, engine=engine, allow_venue=not offline)
        finally:
            await relayer.close()
            if engine is not None:
                await engine.dispose()
        return DryRunResult(rows=order.rows(), record=order.as_dict())

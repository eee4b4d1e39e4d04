"""Cancels: one order or all of them, through the cancel rate bucket, each request on record.

Unlike a post, a cancel is idempotent, so a request that failed or whose fate is unknown is sent
again (up to the relayer retry bound, on :func:`core.retry.retry_call`). An order the venue says
it no longer has is reconciled (filled, canceled or expired there) instead of being left "live".
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from core.execution.context import EngineContext, ms_since
from core.execution.holdings import ExposureTracker
from core.execution.order_table import OrderTable, Tracked
from core.execution.reconciler import Reconciler
from core.execution.records import FINAL_STATUSES, OPEN_STATUSES
from core.execution.risk_gate import RiskGate
from core.execution.types import CancelResult, ErrorClass, OrderStatus, Outcome, Relayer
from core.retry import Backoff, retry_call

OrderChanged = Callable[[Tracked], Awaitable[None]]
_AGAIN = (Outcome.RETRYABLE, Outcome.UNKNOWN)


class Canceller:
    def __init__(
        self,
        ctx: EngineContext,
        relayer: Relayer,
        risk: RiskGate,
        orders: OrderTable,
        exposure: ExposureTracker,
        reconciler: Reconciler,
        order_changed: OrderChanged,
        *,
        max_retries: int,
        retry_sleep_s: float,
    ) -> None:
        self._ctx = ctx
        self._relayer = relayer
        self._risk = risk
        self._orders = orders
        self._exposure = exposure
        self._reconciler = reconciler
        self._order_changed = order_changed
        self._max_retries = max_retries
        self._backoff = Backoff.fixed(retry_sleep_s)

    async def cancel(self, client_order_id: str) -> CancelResult:
        """Cancel one order. The result names client order ids."""
        t = self._orders.get(client_order_id)
        if t is None:
            rec = await self._ctx.store.get_order(client_order_id)
            if rec is None:
                return CancelResult(not_canceled={client_order_id: "unknown order"})
            market = self._exposure.market(rec.market)
            t = self._orders.track(rec, rec.request(market), market)
        if t.status is OrderStatus.SUBMITTED_UNKNOWN:
            await self._reconciler.resolve_unknown(t)
        if t.status in FINAL_STATUSES:
            return CancelResult(not_canceled={t.coid: f"already {t.status}"})
        venue_id = t.rec.venue_order_id
        if not venue_id:
            return CancelResult(not_canceled={t.coid: f"not at the venue yet ({t.status})"})
        res = await self._call(lambda: self._relayer.cancel(venue_id), "cancel", t.coid, {"venue_order_id": venue_id})
        if venue_id in res.canceled:
            await self._orders.set_status(t, OrderStatus.CANCELED)
            await self._order_changed(t)
            return CancelResult(canceled=(t.coid,))
        reason = res.not_canceled.get(venue_id) or res.error or "not canceled"
        if res.outcome is Outcome.ACCEPTED:
            await self._reconciler.reconcile_one(t)  # "not found", "already matched": the venue decides
            if t.status in FINAL_STATUSES:
                return CancelResult(gone=(t.coid,))
        return CancelResult(
            not_canceled={t.coid: reason}, outcome=res.outcome, error_class=res.error_class, error=res.error
        )

    async def cancel_all(self) -> CancelResult:
        """Cancel every open order at the venue (one request). The result names client order ids where known."""
        open_now = self._orders.open_orders()
        before = [t for t in open_now if t.coid not in self._orders.inflight]
        request: dict[str, object] = {"open_orders": len(open_now)}
        res = await self._call(self._relayer.cancel_all, "cancel_all", None, request)
        canceled = await self._mark_canceled(res.canceled)
        not_canceled = {self._orders.coid_of(v) or v: why for v, why in res.not_canceled.items()}
        gone: list[str] = []
        if res.outcome is Outcome.ACCEPTED:
            # open in our books, yet neither canceled nor refused by the venue: it no longer had them
            for t in before:
                if t.status in OPEN_STATUSES and t.coid not in not_canceled and t.coid not in canceled:
                    await self._reconciler.reconcile_one(t)
                    if t.status in FINAL_STATUSES:
                        gone.append(t.coid)
                    elif t.status is not OrderStatus.SUBMITTED_UNKNOWN:
                        not_canceled[t.coid] = f"still {t.status} at the venue after cancel-all"
        return CancelResult(
            canceled=tuple(canceled),
            not_canceled=not_canceled,
            outcome=res.outcome,
            error_class=res.error_class,
            error=res.error,
            gone=tuple(gone),
        )

    async def _mark_canceled(self, venue_ids: tuple[str, ...]) -> list[str]:
        """Our orders the venue canceled become canceled (their groups re-evaluated after all of them)."""
        canceled: list[str] = []
        touched: list[Tracked] = []
        for venue_id in venue_ids:
            coid = self._orders.coid_of(venue_id)
            t = self._orders.get(coid)
            if t is not None and t.status in OPEN_STATUSES:
                await self._orders.set_status(t, OrderStatus.CANCELED)
                touched.append(t)
            canceled.append(coid or venue_id)
        for t in touched:
            await self._order_changed(t)
        return canceled

    async def _call(
        self,
        call: Callable[[], Awaitable[CancelResult]],
        action: str,
        coid: str | None,
        request: dict[str, object],
    ) -> CancelResult:
        """One cancel request, sent again while it failed or its fate is unknown (within the bound)."""
        attempts = 0

        async def once() -> CancelResult:
            nonlocal attempts
            attempts += 1
            while (wait := self._risk.take_cancel_token()) > 0:
                await self._ctx.sleep(wait)
            started = time.perf_counter()
            try:
                res = await call()
            except Exception as exc:
                res = CancelResult(
                    outcome=Outcome.UNKNOWN, error_class=ErrorClass.NETWORK, error=f"{type(exc).__name__}: {exc}"
                )
            detail = res.error or (f"not canceled: {res.not_canceled}" if res.not_canceled else None)
            audit = self._ctx.audit(
                action,
                str(res.outcome),
                client_order_id=coid,
                attempt=attempts,
                request={**request, "canceled": len(res.canceled)},
                error_class=str(res.error_class),
                error=detail,
                latency_ms=ms_since(started),
            )
            await self._ctx.store.add_audit(audit)
            return res

        return await retry_call(
            once,
            backoff=self._backoff,
            max_retries=self._max_retries,
            retry_result=lambda res: res.outcome in _AGAIN,
            sleep=self._ctx.sleep,
        )

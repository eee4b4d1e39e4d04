"""Faults the CLOB double injects into its REST answers, for the fault suite.

Each fault is consumed by the next ``remaining`` requests matching its method and path (None =
any). Status faults answer at once with the venue's status and message; ``hang`` never answers;
``timeout_after_accept`` processes the request and answers after a delay longer than the client's
timeout; ``drop_after_accept`` processes it and closes the connection with no answer.

A :class:`BatchRejection` refuses chosen orders inside an otherwise accepted ``POST /orders``
batch (by token id and/or position in the batch), the way the venue reports a refused order
there: ``success`` true, an empty ``orderID`` and the reason in ``errorMsg``.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.sim.http_double import HttpResponse

FAULTS = ("400", "425", "429", "500", "502", "503", "hang", "timeout_after_accept", "drop_after_accept")
HANG = "hang"
TIMEOUT_AFTER_ACCEPT = "timeout_after_accept"
DROP_AFTER_ACCEPT = "drop_after_accept"

_MESSAGES = {
    "400": "injected venue error",
    "425": "the matching engine is restarting, try again later",
    "429": "Too Many Requests",
    "500": "Internal server error",
    "502": "Bad gateway",
    "503": "trading is currently in cancel-only mode",
}


@dataclass(slots=True)
class Fault:
    kind: str
    remaining: int
    method: str | None
    path: str | None
    message: str | None
    retry_after: str | None
    delay_s: float

    def matches(self, method: str, path: str) -> bool:
        return self.remaining > 0 and self.method in (None, method) and self.path in (None, path)

    def status_answer(self) -> HttpResponse | None:
        """The venue's error answer for a status fault (None for the faults that hold or drop)."""
        if self.kind not in _MESSAGES:
            return None
        headers = {"Retry-After": self.retry_after} if self.retry_after is not None else {}
        return HttpResponse.error(int(self.kind), self.message or _MESSAGES[self.kind], headers)


def make_fault(
    kind: str,
    *,
    count: int,
    method: str | None,
    path: str | None,
    message: str | None,
    retry_after: str | float | None,
    delay_s: float,
) -> Fault:
    if kind not in FAULTS:
        raise ValueError(f"unknown fault {kind!r} (known: {', '.join(FAULTS)})")
    return Fault(kind, count, method, path, message, None if retry_after is None else str(retry_after), delay_s)


def take_fault(faults: list[Fault], method: str, path: str) -> Fault | None:
    """Consume one use of the first fault matching the request (spent faults leave the list)."""
    for fault in faults:
        if fault.matches(method, path):
            fault.remaining -= 1
            if fault.remaining == 0:
                faults.remove(fault)
            return fault
    return None


@dataclass(slots=True)
class BatchRejection:
    """Refuse the next ``remaining`` batch orders for ``token_id`` and/or at ``position`` (None = any)."""

    message: str
    token_id: str | None
    position: int | None
    remaining: int

    def matches(self, position: int, payload: object) -> bool:
        if self.remaining <= 0 or self.position not in (None, position):
            return False
        if self.token_id is None:
            return True
        order = payload.get("order") if isinstance(payload, dict) else None
        return isinstance(order, dict) and str(order.get("tokenId", "")) == self.token_id


def take_rejection(rejections: list[BatchRejection], position: int, payload: object) -> str | None:
    """The injected refusal of the order at ``position`` of a batch, if any (one use consumed)."""
    for rejection in rejections:
        if rejection.matches(position, payload):
            rejection.remaining -= 1
            if rejection.remaining == 0:
                rejections.remove(rejection)
            return rejection.message
    return None

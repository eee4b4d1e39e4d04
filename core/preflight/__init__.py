"""Pre-trade checks: is this configuration fit to trade, and is everything it needs reachable?

:func:`run_preflight` returns a :class:`~core.control.types.PreflightReport` of
:class:`~core.control.types.PreflightCheck` rows, each with a one-line detail, in this order:

=============  ==============================================================================
config         the settings loaded, and every cross-field rule still holds
mode           paper / dry-run / LIVE, stated (always passes)
database       reachable and migrated to head (a missing SQLite file is not created)
market feed    a websocket to ``feed.ws_url`` opens, takes the subscribe message and answers
               ``PING`` with ``PONG`` (or a frame) within the timeout        [skipped offline]
clob           ``GET /time`` and ``GET /version`` on ``clob.url`` answer; version 2 [skipped offline]
clock skew     local clock vs the CLOB's ``/time`` within ``max_skew_s``     [skipped offline]
key & funder   key -> address -> funder -> signature type consistent (relayer.type = "real")
api creds      key, secret and passphrase present (live mode only)
secrets        no secret (key, API credentials, bot token, database password) comes from the main
               service file: FAIL in dry-run and live mode, SKIP with the advice in paper mode
allowances     pUSD and ConditionalTokens approvals of the maker for the V2 exchanges and the
               neg-risk adapter, read over JSON-RPC (only with chain.rpc_url) [skipped offline]
balance        the pUSD collateral the venue holds for the account (``GET /balance-allowance``):
               FAIL in live mode when it is below ``risk.max_order_notional`` (orders the gate
               allows would be refused by the venue); shown in dry-run; the bankroll in paper
                                                                            [skipped offline]
risk limits    :meth:`core.execution.risk_gate.RiskLimits.problems` of the configured limits
telegram       token and at least one authorised user, then the token checked with Telegram
               (``getMe``: the bot's @username); only when telegram.enabled     [skipped offline]
=============  ==============================================================================

A skipped check has ``ok=False, skipped=True`` so that every renderer (CLI, Telegram) that tests
``ok`` first shows it as SKIP, while :attr:`PreflightReport.ok` still counts it as passing.
Details never contain a secret: the private key, API secrets, the Telegram token and URL
passwords are never formatted, and every detail goes through :func:`core.redact.redact` too.

The service wires it into the control facade as ``lambda offline: run_preflight(loaded, offline=offline)``.

The modules: ``report`` (check names, rows with redacted details, the guard; the table and JSON
forms are :class:`~core.control.types.PreflightReport`'s), ``local``
(the checks without network), ``probes`` (the checks that reach a service), ``telegram`` (the
Telegram row: settings, then ``getMe``), ``run`` (the whole report).
"""

from __future__ import annotations

from core.preflight.run import run_preflight

__all__ = ["run_preflight"]

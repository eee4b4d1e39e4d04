"""The checks that need no network: configuration, mode, key and funder, credentials, where the
secrets are, risk limits, Telegram. Details never contain a secret (the key, API secrets, the
bot token are never formatted; every detail is redacted as well)."""

from __future__ import annotations

from core.control.types import PreflightCheck
from core.errors import PolybotError
from core.execution.risk_gate import RiskLimits
from core.preflight.report import (
    CONFIG,
    CREDS,
    KEY,
    MODE,
    RISK,
    SECRETS,
    TELEGRAM,
    failed,
    one_line,
    passed,
    skipped,
)
from core.settings import (
    LoadedSettings,
    Settings,
    secret_location_advice,
    secrets_in_main_file,
    set_secret_keys,
)
from core.settings.problems import recheck
from core.types import Mode

_FUNDER_KIND = {1: "proxy", 2: "safe", 3: "deposit"}


def check_config(loaded: LoadedSettings) -> PreflightCheck:
    where = str(loaded.config_path) if loaded.config_path else "defaults + environment"
    if loaded.secrets_path is not None:
        where += f" + {loaded.secrets_path.name}"
    problems = recheck(loaded.settings)
    if problems:
        return failed(CONFIG, f"{where}: " + "; ".join(problems))
    return passed(CONFIG, f"{where} loaded; every cross-check holds")


def check_mode(settings: Settings) -> PreflightCheck:
    mode = settings.mode
    if mode is Mode.PAPER:
        text = 'paper: relayer.type = "fake", orders are simulated locally, nothing reaches the venue'
    elif mode is Mode.DRY_RUN:
        text = f"dry-run: orders are signed for {settings.clob.url} and never posted"
    else:
        text = f"LIVE: orders are posted to {settings.clob.url} (after arm + per-order confirmation)"
    return passed(MODE, text)


# --------------------------------------------------------------------------- key, creds


def key_address(settings: Settings) -> str | None:
    """The address of ``relayer.private_key`` (None when unset or invalid). Never the key."""
    from eth_account import Account

    key = settings.relayer.private_key
    if key is None:
        return None
    try:
        return str(Account.from_key(key.get_secret_value()).address)
    except Exception:
        return None


def maker_address(settings: Settings) -> str | None:
    """The address that holds the funds: the funder (signature types 1-3), else the key's."""
    relayer = settings.relayer
    if relayer.signature_type != 0 and relayer.funder:
        return relayer.funder
    return key_address(settings) or relayer.funder


def _funder_shape_problem(funder: str) -> str | None:
    from eth_utils.address import is_checksum_address, is_hex_address, to_checksum_address

    if not is_hex_address(funder):
        return f"relayer.funder {funder} is not an address (0x + 40 hex digits)"
    if funder != funder.lower() and funder != funder.upper() and not is_checksum_address(funder):
        return (
            f"relayer.funder {funder} fails its EIP-55 checksum (a mistyped digit?); "
            f"compare it with your wallet's address ({to_checksum_address(funder)} if only the case is off)"
        )
    return None


def _pairing_problem(sig: int, name: str, funder: str | None, address: str) -> str | None:
    """Whether the funder fits the signature type: EOA trades from the key's own address, the
    proxy types (1 proxy, 2 safe, 3 deposit wallet) from a wallet that is not the key's."""
    from eth_utils.address import to_checksum_address

    if sig == 0:
        if funder is not None and funder.lower() != address.lower():
            return (
                f"signature_type 0 (EOA) trades from the key's own address {address}, but relayer.funder is "
                f"{to_checksum_address(funder)}: remove funder, or set the signature type of that wallet "
                "(1 proxy, 2 safe, 3 deposit wallet)"
            )
        return None
    if funder is None:
        return f"signature_type {sig} ({name}) needs relayer.funder, the {_FUNDER_KIND[sig]} wallet"
    if funder.lower() == address.lower():
        return (
            f"relayer.funder is the key's own address {address}; with signature_type {sig} ({name}) the "
            f"funder is the {_FUNDER_KIND[sig]} wallet that holds the funds (or use signature_type 0)"
        )
    return None


def check_key(settings: Settings) -> PreflightCheck:
    relayer = settings.relayer
    if relayer.type != "real":
        return skipped(KEY, 'paper mode (relayer.type = "fake"): no key signs anything')
    from core.execution.dry_run import SIGNATURE_TYPE_NAMES  # the CLOB client: only when a key signs
    from core.execution.relayers.clob_signing import OrderSigner

    if relayer.private_key is None:
        return failed(KEY, 'relayer.private_key is not set (required when relayer.type = "real")')
    address = key_address(settings)
    if address is None:
        return failed(KEY, "relayer.private_key is not a valid secp256k1 private key (value not shown)")
    sig = relayer.signature_type
    name = SIGNATURE_TYPE_NAMES.get(sig, "?")
    funder = (relayer.funder or "").strip() or None
    problem = (_funder_shape_problem(funder) if funder else None) or _pairing_problem(sig, name, funder, address)
    if problem is not None:
        return failed(KEY, problem)
    try:
        signer = OrderSigner(
            relayer.private_key.get_secret_value(), chain_id=relayer.chain_id, signature_type=sig, funder=funder
        )
    except PolybotError as exc:  # its messages never contain the key
        return failed(KEY, str(exc))
    if signer.address.lower() != address.lower():  # pragma: no cover - would be an SDK bug
        return failed(KEY, f"the signing library derives {signer.address}, eth_account {address}")
    if sig == 0:
        return passed(KEY, f"key -> {address}; signature_type 0 (EOA): maker = signer = {signer.maker}")
    return passed(
        KEY,
        f"key -> {address} signs for funder {signer.maker}; signature_type {sig} ({name}), chain {relayer.chain_id}",
    )


def check_creds(settings: Settings) -> PreflightCheck:
    mode = settings.mode
    if mode is not Mode.LIVE:
        return skipped(CREDS, f"{mode.value} mode: nothing is posted, API credentials are not needed")
    relayer = settings.relayer
    creds = {
        "relayer.api_key": relayer.api_key,
        "relayer.api_secret": relayer.api_secret,
        "relayer.api_passphrase": relayer.api_passphrase,
    }
    missing = [key for key, value in creds.items() if value is None]
    if missing:
        return failed(
            CREDS,
            f"live mode needs {', '.join(missing)} (derive them with L1 auth: GET /auth/derive-api-key)",
        )
    return passed(CREDS, "api_key, api_secret and api_passphrase are set (values not shown)")


def check_secrets(loaded: LoadedSettings) -> PreflightCheck:
    """Secrets belong in secrets.local.toml (chmod 600) or the environment, never the main file:
    that one is copied, shared, pasted into tickets, and often readable by every user."""
    misplaced = secrets_in_main_file(loaded)
    if not misplaced:
        set_keys = set_secret_keys(loaded.settings)
        if not set_keys:
            return passed(SECRETS, "no secret is configured")
        origins = sorted({loaded.sources.get(k, "default").partition(":")[0] for k in set_keys})
        named = {"secrets": "secrets.local.toml", "env": "the environment"}
        return passed(SECRETS, f"{len(set_keys)} secret(s), from {' and '.join(named.get(o, o) for o in origins)}")
    advice = secret_location_advice(loaded, misplaced)
    if loaded.settings.mode is Mode.PAPER:
        return skipped(SECRETS, f"paper mode, not enforced yet: {advice}")
    return failed(SECRETS, advice)


# --------------------------------------------------------------------------- limits, telegram


def check_risk(settings: Settings) -> PreflightCheck:
    try:
        limits = RiskLimits.configured(settings.risk)
    except (TypeError, ValueError) as exc:
        return failed(RISK, f"cannot build the limits: {one_line(exc)}")
    problems = limits.problems()
    if problems:
        return failed(RISK, "; ".join(problems))
    return passed(
        RISK,
        f"order {limits.max_order_notional}, market {limits.max_market_notional}, event {limits.max_event_notional}, "
        f"total {limits.max_total_exposure}, daily loss {limits.daily_loss_limit} pUSD; "
        f"{limits.orders_per_s:g} orders/s burst {limits.order_burst}",
    )


def check_telegram(settings: Settings) -> PreflightCheck:
    """The Telegram settings alone (token present, users listed); the token itself is checked with
    Telegram by :func:`core.preflight.telegram.check_telegram_api`."""
    telegram = settings.telegram
    if not telegram.enabled:
        return skipped(TELEGRAM, "telegram.enabled = false")
    problems = []
    if telegram.token is None:
        problems.append("telegram.token is not set")
    if not telegram.users:
        problems.append("no authorised users (telegram.users is empty)")
    if problems:
        return failed(TELEGRAM, "; ".join(problems))
    return passed(TELEGRAM, f"token set (not shown), {telegram_users(settings)}")


def telegram_users(settings: Settings) -> str:
    """``3 authorised user(s): 1 admin, 2 viewer``."""
    users = settings.telegram.users
    roles: dict[str, int] = {}
    for user in users:
        roles[user.role] = roles.get(user.role, 0) + 1
    listed = ", ".join(f"{n} {role}" for role, n in sorted(roles.items()))
    return f"{len(users)} authorised user(s): {listed}"

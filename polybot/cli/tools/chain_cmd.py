"""``mock-chain``: the local Polygon JSON-RPC double (:mod:`core.sim.mock_chain`)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from decimal import Decimal
from typing import TYPE_CHECKING

from core.errors import PolybotError
from polybot.cli import common
from polybot.cli.common import stop_on_signals
from polybot.cli.main import add_command

if TYPE_CHECKING:
    from polybot.cli.main import Subcommands

_CHAIN_ID = common.int_arg(1, 2**53)
_BLOCKS_PER_SECOND = common.float_arg(0, 100, unit="blocks per second")
_BLOCKS_PER_POLL = common.int_arg(0, 1000, unit="blocks")
FUND_SHARES = 100


def register(sub: Subcommands) -> None:
    p = add_command(
        sub,
        "mock-chain",
        help="run the local Polygon JSON-RPC double (merge/redeem through the collateral adapters) until interrupted",
        example="polybot mock-chain --port 0 --blocks-per-second 2",
        description=(
            "Run a local Polygon JSON-RPC node double on loopback. The first line printed is its URL (with\n"
            "--port 0 a free port is picked). It answers eth_chainId, blocks and fees, nonces, eth_call and\n"
            "eth_estimateGas (pUSD, ConditionalTokens, the CtfCollateralAdapter and the\n"
            "NegRiskCtfCollateralAdapter), and eth_sendRawTransaction: it decodes each signed transaction,\n"
            "recovers the signer, applies geth's pool rules (nonce too low, gaps held, already known,\n"
            "replacement needs +10% fees) and mines every executable transaction at once into its own block.\n\n"
            "Confirmations: --blocks-per-second adds empty blocks on a timer (default 1), and\n"
            "--blocks-per-receipt-poll adds that many on each eth_getTransactionReceipt (default 0); with\n"
            "both at 0 the chain grows only by the transactions sent to it.\n\n"
            "The demo markets of mock-clob are registered (merge and redeem know their tokens), but run as\n"
            "separate processes the two doubles keep separate ledgers: shares bought on mock-clob are not\n"
            "held here. The shared ledger is for in-process use (the demo and the tests: MockChain.beside)."
        ),
    )
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=common.tcp_port, default=8545, help="TCP port (default 8545; 0 = pick a free one)")
    p.add_argument("--chain-id", type=_CHAIN_ID, default=137, help="chain id to answer and require (default 137)")
    p.add_argument(
        "--blocks-per-second",
        type=_BLOCKS_PER_SECOND,
        default=1.0,
        metavar="N",
        help="empty blocks added per second, so confirmations arrive (default 1; 0 = none)",
    )
    p.add_argument(
        "--blocks-per-receipt-poll",
        type=_BLOCKS_PER_POLL,
        default=0,
        metavar="N",
        help="empty blocks added on each eth_getTransactionReceipt (default 0)",
    )
    p.add_argument(
        "--no-approvals",
        action="store_true",
        help="start with no pUSD allowance and no ConditionalTokens operator approval (default: all approved)",
    )
    p.add_argument(
        "--fund",
        action="append",
        default=[],
        type=_address,
        metavar="ADDRESS",
        help=f"give ADDRESS {FUND_SHARES} YES and NO shares of every demo market, to try merges (repeatable)",
    )
    p.add_argument(
        "--resolve",
        choices=["yes", "no"],
        default=None,
        help="start with every demo market resolved to this outcome, to try redeems (default: unresolved)",
    )
    p.set_defaults(func=cmd_mock_chain)


def _address(text: str) -> str:
    from eth_utils.address import is_address, to_checksum_address

    if not is_address(text):
        raise argparse.ArgumentTypeError(f"not an address: {text!r}")
    return str(to_checksum_address(text))


async def _run(args: argparse.Namespace) -> None:
    from core.sim.mock_chain import CTF, PUSD, MockChain
    from core.sim.mock_chain_abi import ADAPTERS
    from core.sim.mock_clob_venue import demo_markets

    chain = MockChain(
        chain_id=args.chain_id,
        markets=[market for market, _books in demo_markets()],
        blocks_per_receipt_poll=args.blocks_per_receipt_poll,
        block_interval_s=1 / args.blocks_per_second if args.blocks_per_second > 0 else None,
        default_approved=not args.no_approvals,
    )
    for address in args.fund:
        for market in chain.markets.values():
            chain.ledger.give(address, market.yes_token, Decimal(FUND_SHARES))
            chain.ledger.give(address, market.no_token, Decimal(FUND_SHARES))
    if args.resolve is not None:
        for market in chain.markets.values():
            chain.resolve(market.condition_id, market.yes_token if args.resolve == "yes" else market.no_token)
    try:
        url = await chain.start(args.host, args.port)
    except OSError as exc:
        raise PolybotError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    stop = asyncio.Event()
    try:
        with stop_on_signals(stop):  # before the URL is printed: whoever reads it may stop us at once
            print(url, flush=True)
            print(f"chain id {chain.chain_id}; pUSD {PUSD}; ConditionalTokens {CTF}")
            for address, name in ADAPTERS.items():
                print(f"{name} {address}")
            for market in chain.markets.values():
                kind = "neg-risk" if market.neg_risk else "binary"
                won = f", resolved: {'YES' if market.winner == market.yes_token else 'NO'} won" if market.winner else ""
                print(f"market {market.condition_id} ({kind}{won}): YES {market.yes_token} NO {market.no_token}")
            print("ledger: its own (not mock-clob's, in another process); Ctrl-C to stop", flush=True)
            await stop.wait()
    finally:
        await chain.close()
        print("mock-chain stopped", file=sys.stderr, flush=True)


def cmd_mock_chain(args: argparse.Namespace) -> int:
    asyncio.run(_run(args))
    return 0

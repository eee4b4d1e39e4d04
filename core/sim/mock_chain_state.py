"""The chain double's blocks, transaction pool and nonces: pure bookkeeping, no I/O.

Pool rules follow geth (Polygon's bor is geth): a nonce below the account's is refused ("nonce
too low"); a nonce above it is held until the gap fills; the same hash twice is "already known";
another transaction with a pending nonce replaces it only with both fee caps at least 10% higher
("replacement transaction underpriced" otherwise), and the replaced one is forgotten. A tip
below the node's floor is "transaction underpriced"; a fee cap below the base fee waits in the
pool until the base fee drops. Every executable transaction is mined at once into its own block.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields

from eth_utils.crypto import keccak

from core.sim.mock_chain_abi import Revert
from core.sim.mock_chain_exec import BASE_GAS, ChainWorld
from core.sim.mock_chain_tx import SERVER_ERROR, MinedTx, PendingTx, RpcError, decode_raw

GWEI = 10**9
INJECTED_REVERT = "mock chain: injected revert"


@dataclass(slots=True)
class Block:
    number: int
    hash: str
    parent_hash: str
    timestamp: int
    base_fee: int
    tx_hashes: list[str] = field(default_factory=list)
    gas_used: int = 0


def _block_hash(number: int, parent: str, salt: str) -> str:
    return "0x" + bytes(keccak(text=f"{number}:{parent}:{salt}")).hex()


class ChainState:
    def __init__(
        self,
        world: ChainWorld,
        chain_id: int,
        *,
        base_fee: int = 30 * GWEI,
        min_tip: int = 25 * GWEI,
        gas_limit: int = 30_000_000,
    ) -> None:
        self.world = world
        self.chain_id = chain_id
        self.base_fee = base_fee
        self.min_tip = min_tip
        self.gas_limit = gas_limit
        self.salt = str(time.time_ns())  # block hashes differ between runs, like different chains
        self.blocks: list[Block] = [
            Block(0, _block_hash(0, "0x" + "00" * 32, self.salt), "0x" + "00" * 32, int(time.time()), base_fee)
        ]
        self.txs: dict[str, PendingTx | MinedTx] = {}
        self.pool: dict[tuple[str, int], PendingTx] = {}
        self.nonces: dict[str, int] = {}
        self.replaced: dict[str, PendingTx] = {}  # hash -> the transaction a replacement pushed out
        self.dropped: dict[str, PendingTx] = {}  # hash -> accepted, then lost by the drop fault

    # ------------------------------------------------------------------ reads

    @property
    def head(self) -> Block:
        return self.blocks[-1]

    def nonce_of(self, address: str, pending: bool = False) -> int:
        nonce = self.nonces.get(address, 0)
        if pending:
            while (address, nonce) in self.pool:
                nonce += 1
        return nonce

    # ------------------------------------------------------------------ accepting

    def check(self, tx: PendingTx) -> PendingTx | None:
        """Refuse ``tx`` like the node's pool would; returns the pending transaction it replaces."""
        if tx.chain_id is None:
            raise RpcError(SERVER_ERROR, "only replay-protected (EIP-155) transactions allowed over RPC")
        if tx.chain_id != self.chain_id:
            raise RpcError(SERVER_ERROR, f"invalid chain id for signer: have {tx.chain_id} want {self.chain_id}")
        known = self.txs.get(tx.hash)
        if known is not None and known.status is None:
            raise RpcError(SERVER_ERROR, "already known")
        state = self.nonces.get(tx.sender, 0)
        if tx.nonce < state:
            raise RpcError(SERVER_ERROR, f"nonce too low: address {tx.sender}, tx: {tx.nonce} state: {state}")
        if tx.gas < BASE_GAS:
            raise RpcError(SERVER_ERROR, f"intrinsic gas too low: have {tx.gas}, want {BASE_GAS}")
        if tx.gas > self.gas_limit:
            raise RpcError(SERVER_ERROR, "exceeds block gas limit")
        if tx.max_priority_fee > tx.max_fee:
            raise RpcError(SERVER_ERROR, "max priority fee per gas higher than max fee per gas")
        if tx.max_priority_fee < self.min_tip:
            raise RpcError(
                SERVER_ERROR,
                f"transaction underpriced: gas tip cap {tx.max_priority_fee}, minimum needed {self.min_tip}",
            )
        cost = tx.gas * tx.max_fee + tx.value
        balance = self.world.balance(tx.sender)
        if balance < cost:
            raise RpcError(
                SERVER_ERROR,
                f"insufficient funds for gas * price + value: balance {balance}, tx cost {cost}, overshot {cost - balance}",
            )
        old = self.pool.get((tx.sender, tx.nonce))
        if old is not None and not old.replaceable_by(tx):
            raise RpcError(SERVER_ERROR, "replacement transaction underpriced")
        return old

    def decode_and_check(self, raw: bytes) -> tuple[PendingTx, PendingTx | None]:
        tx = decode_raw(raw)
        return tx, self.check(tx)

    def accept(self, tx: PendingTx, replaces: PendingTx | None) -> None:
        """Put a checked transaction in the pool and mine whatever became executable."""
        if replaces is not None:
            del self.txs[replaces.hash]
            self.replaced[replaces.hash] = replaces
        self.pool[(tx.sender, tx.nonce)] = tx
        self.txs[tx.hash] = tx
        self.mine_ready()

    def drop(self, tx: PendingTx) -> None:
        """The drop fault: the sender got a hash, the transaction went nowhere."""
        self.dropped[tx.hash] = tx

    def release(self) -> int:
        """Un-stick every held transaction and mine what can be; returns how many were stuck."""
        stuck = [tx for tx in self.pool.values() if tx.stuck]
        for tx in stuck:
            tx.stuck = False
        self.mine_ready()
        return len(stuck)

    def set_base_fee(self, wei: int) -> None:
        self.base_fee = wei
        self.mine_ready()

    # ------------------------------------------------------------------ mining

    def mine(self, n: int = 1) -> Block:
        """``n`` empty blocks on top (a transaction that became executable is mined after them)."""
        for _ in range(n):
            self._new_block()
        self.mine_ready()
        return self.head

    def mine_ready(self) -> None:
        progress = True
        while progress:
            progress = False
            for sender, nonce in list(self.pool):
                if nonce != self.nonces.get(sender, 0):
                    continue
                tx = self.pool[(sender, nonce)]
                if not tx.stuck and tx.max_fee >= self.base_fee:
                    self._mine_tx(tx)
                    progress = True

    def _new_block(self) -> Block:
        parent = self.head
        number = parent.number + 1
        block = Block(
            number,
            _block_hash(number, parent.hash, self.salt),
            parent.hash,
            max(parent.timestamp, int(time.time())),
            self.base_fee,
        )
        self.blocks.append(block)
        return block

    def _mine_tx(self, tx: PendingTx) -> None:
        block = self._new_block()
        price = min(tx.max_fee, self.base_fee + tx.max_priority_fee)
        status, gas_used, reason = self._run(tx)
        mined = MinedTx(**{f.name: getattr(tx, f.name) for f in fields(PendingTx)})
        mined.status, mined.block, mined.gas_used, mined.effective_gas_price, mined.revert_reason = (
            status,
            block.number,
            gas_used,
            price,
            reason,
        )
        world = self.world
        world.native[tx.sender] = world.balance(tx.sender) - gas_used * price
        block.tx_hashes.append(tx.hash)
        block.gas_used = gas_used
        del self.pool[(tx.sender, tx.nonce)]
        self.nonces[tx.sender] = tx.nonce + 1
        self.txs[tx.hash] = mined

    def _run(self, tx: PendingTx) -> tuple[int, int, str | None]:
        """(status, gas used, revert reason): checked first, applied only when it fits in its gas."""
        if tx.force_revert:
            return 0, min(tx.gas, BASE_GAS * 2), INJECTED_REVERT
        try:
            needed = self.world.execute(tx.sender, tx.to, tx.value, tx.data, apply=False).gas_used
        except Revert as exc:
            return 0, min(tx.gas, BASE_GAS * 2), exc.reason or None
        if needed > tx.gas:
            return 0, tx.gas, "out of gas"
        self.world.execute(tx.sender, tx.to, tx.value, tx.data, apply=True)
        return 1, needed, None

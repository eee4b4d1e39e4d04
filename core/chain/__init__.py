"""On-chain settlement: the collateral adapters' calls (merge, redeem, convert), JSON-RPC, and
EIP-1559 transactions sent once and followed to their receipt."""

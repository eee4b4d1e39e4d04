"""Relayers: paper (simulated), CLOB V2 dry-run and live."""

"""Execution: engine and relayers."""

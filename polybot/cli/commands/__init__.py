"""Command modules. Each exposes ``register(subparsers)`` and is discovered automatically."""

"""Market data: wire decode, books, websocket ingestion, record/replay."""

from core.feed import kernel

# before anything imports book.py or integrity.py: their compiled build, or their source
kernel.install()

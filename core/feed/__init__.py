"""Market data: wire decode, books, websocket ingestion, record/replay."""

"""Local doubles of Polymarket (market websocket, Gamma, CLOB) speaking the real wire formats."""

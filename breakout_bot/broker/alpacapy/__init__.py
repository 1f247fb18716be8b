"""The alpaca-py (0.44) SDK under the Alpaca adapter (`--sdk alpaca-py`, `pip install -e '.[alpaca-py]'`).

Only the SDK's role is here (sdk.py: its REST clients and websocket handshakes, and the only place that
touches alpaca-py's privates). The adapter's other roles (convert, rest, streams, broker, marketdata,
factory) speak Alpaca's JSON, which is the same whichever SDK carries it: they are broker/alpaca/'s,
shared, so a fix there (outcome resolution, reconnects, pagination guards) holds for both SDKs.

Nothing outside this package imports alpaca (alpaca-py's module).
"""

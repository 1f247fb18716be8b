"""The Alpaca adapter (REST v2, market data v2, both websockets), over alpaca-trade-api 3.2 (the default
SDK) or alpaca-py (broker/alpacapy/), chosen by name in broker/sdks.py.

One role per file, the same roles for every adapter:

    convert.py     Alpaca JSON <-> the core's types (pure)
    binding.py     what an SDK provides (its REST client, its websockets' handshakes): the seam
    sdk.py         alpaca-trade-api's binding: the only place that touches alpaca-trade-api's privates
    rest.py        HTTP: the shared throttle, timeouts, bounded retries, secrets kept out of messages
    streams.py     websockets on a daemon thread: reconnect with backoff, report every transition
    broker.py      AlpacaBroker: the Broker protocol (trading)
    marketdata.py  AlpacaMarketData: the MarketData protocol (bars)
    factory.py     both, from the settings' keys, URLs and SDK

Nothing outside sdk.py imports alpaca_trade_api; nothing here but sdk.py imports an SDK.
"""

"""The broker adapter over alpaca-trade-api 3.2 (REST v2, market data v2, both websockets).

One role per file, the same roles for every adapter:

    convert.py     Alpaca JSON <-> the core's types (pure)
    sdk.py         the only place that touches alpaca-trade-api's privates
    rest.py        HTTP: the shared throttle, timeouts, bounded retries, secrets kept out of messages
    streams.py     websockets on a daemon thread: reconnect with backoff, report every transition
    broker.py      AlpacaBroker: the Broker protocol (trading)
    marketdata.py  AlpacaMarketData: the MarketData protocol (bars)
    factory.py     both, from the settings' keys and URLs

Nothing outside this package imports alpaca_trade_api.
"""

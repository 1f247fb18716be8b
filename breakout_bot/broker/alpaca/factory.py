"""The Alpaca adapter for a configuration: the settings' keys and URLs (paper or live)."""

from __future__ import annotations

from typing import Any

from ...config.settings import Settings
from ...errors import BrokerAuthError
from .broker import AlpacaBroker


def broker_from_settings(settings: Settings, **options: Any) -> AlpacaBroker:
    """The adapter for the keys and URLs in `settings`; `options` go to AlpacaBroker. Its market data
    (the same account's bars) is `.market_data`."""
    if settings.key_id is None or settings.secret_key is None:
        raise BrokerAuthError("no Alpaca keys configured")
    return AlpacaBroker(
        settings.key_id,
        settings.secret_key,
        base_url=settings.base_url,
        data_url=settings.data_url,
        data_stream_url=settings.stream_url,
        feed=settings.feed,
        sdk=settings.sdk,
        **options,
    )

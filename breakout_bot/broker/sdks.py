"""The SDKs that can carry the Alpaca adapter, by the name `--sdk` / `BREAKOUT_SDK` gives them
(config/settings.py lists the names; alpaca-trade-api is the default).

Nothing here imports an SDK until one is asked for, so the bot runs with either installed alone; the one
that is chosen and missing is one line saying how to install it (a ConfigError, exit 2).
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..config.settings import DEFAULT_SDK, SDKS
from ..errors import ConfigError

if TYPE_CHECKING:
    from .alpaca.binding import SdkBinding

__all__ = ["DEFAULT_SDK", "SDKS", "installed", "sdk_binding"]


@dataclass(frozen=True)
class _Sdk:
    package: str  # the top-level module the SDK installs
    binding: str  # our module holding its SDK_BINDING
    install: str  # how a user gets it


_SDKS: dict[str, _Sdk] = {
    "alpaca-trade-api": _Sdk("alpaca_trade_api", "breakout_bot.broker.alpaca.sdk", "pip install -e ."),
    "alpaca-py": _Sdk("alpaca", "breakout_bot.broker.alpacapy.sdk", "pip install -e '.[alpaca-py]'"),
}


def _sdk(name: str) -> _Sdk:
    try:
        return _SDKS[name]
    except KeyError:
        raise ConfigError(f"unknown SDK {name!r}: expected one of {', '.join(SDKS)}") from None


def installed(name: str) -> bool:
    """Is this SDK importable here (without importing it)?"""
    try:
        return importlib.util.find_spec(_sdk(name).package) is not None
    except (ImportError, ValueError):  # ValueError: sys.modules holds None for it (import blocked)
        return False


def sdk_binding(name: str) -> SdkBinding:
    """The SDK's part of the adapter; ConfigError (one line, with the install command) if it is missing."""
    sdk = _sdk(name)
    try:
        module = importlib.import_module(sdk.binding)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing != sdk.package and not missing.startswith(sdk.package + "."):
            raise  # something the SDK needs is broken: not "not installed"
        raise ConfigError(
            f"the {name} SDK is not installed: install it with `{sdk.install}`, "
            f"or choose another with --sdk / BREAKOUT_SDK ({', '.join(SDKS)})"
        ) from None
    binding: SdkBinding = module.SDK_BINDING
    return binding

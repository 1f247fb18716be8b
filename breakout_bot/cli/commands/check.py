"""`breakout-bot check`: keys, account, market clock, assets and data feed, one ✔/✘ line each.

Nothing is traded, so live keys are checked read-only without --live. Exit 0 when every check
passes, 1 otherwise (also when no keys are configured: then `run` would trade the built-in simulator,
which is said plainly). Retries are logged to the log file; the terminal shows one line per check, and
a connection failure says what failed (DNS, refused, timed out, TLS) and where.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from ...core.model import NEW_YORK
from ...errors import BrokerAuthError, BrokerError, BrokerNotFound, FeedNotPermitted
from ...logging_setup import setup_logging
from ...redaction import mask_key_id
from ..args import add_connection_arguments, add_symbol_argument, settings_from_args

if TYPE_CHECKING:
    from ...broker.alpaca.broker import AlpacaBroker

OK = "✔"
FAIL = "✘"
DEFAULT_SYMBOL = "AAPL"


def configure(parser: argparse.ArgumentParser) -> None:
    add_symbol_argument(parser)
    add_connection_arguments(parser)


def _et(ts: datetime) -> str:
    return ts.astimezone(NEW_YORK).strftime("%a %Y-%m-%d %H:%M ET")


def _money(x: object) -> str:
    try:
        return f"${float(str(x)):,.2f}"
    except ValueError:
        return str(x)


class _Report:
    def __init__(self, out: Callable[[str], None] = print) -> None:
        self.failed = 0
        self._out = out

    def line(self, ok: bool, what: str, detail: str) -> None:
        if not ok:
            self.failed += 1
        self._out(f"{OK if ok else FAIL} {what}: {detail}")


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args, trading=False)
    # Retry lines and library warnings belong in the log file, not between the check lines.
    setup_logging(settings.log_dir, settings.log_file, settings.json_logs, args.verbose, settings.secrets)
    report = _Report()
    if not settings.has_keys:
        report.line(
            False,
            "keys",
            "no Alpaca API keys configured (set APCA_API_KEY_ID and APCA_API_SECRET_KEY, or put them in .env)",
        )
        print(
            "  without keys, `breakout-bot run` trades the built-in simulator (virtual money, loopback only);"
            " get paper keys at https://app.alpaca.markets to trade Alpaca's paper account"
        )
        return 1
    from ...broker.alpaca.factory import broker_from_settings

    broker = broker_from_settings(settings, max_attempts=2)
    symbols = settings.symbols or (DEFAULT_SYMBOL,)
    try:
        _checks(broker, report, settings.mode, mask_key_id(settings.key_id) or "", symbols, settings.feed)
    finally:
        broker.close()
    print(f"{'all checks passed' if not report.failed else f'{report.failed} check(s) failed'}")
    return 1 if report.failed else 0


def _checks(
    broker: AlpacaBroker, report: _Report, mode: str, key_hint: str, symbols: tuple[str, ...], feed: str
) -> None:
    # 1. keys (and reachability): an account read
    try:
        account = broker.get_account()
    except BrokerAuthError as exc:
        report.line(False, "keys", f"{broker.base_url} refused key {key_hint} ({exc})")
        return
    except BrokerError as exc:
        report.line(False, "keys", f"cannot reach {broker.base_url}: {exc}")
        return
    sdk = f"{broker.sdk} {broker.binding.version}"
    report.line(True, "keys", f"accepted by {broker.base_url} ({mode}, key {key_hint}, SDK {sdk})")

    # 2. account
    usable = account.status.upper() == "ACTIVE" and not account.trading_blocked
    detail = (
        f"{account.status}, buying power {_money(account.buying_power)}, equity {_money(account.equity)}"
        + ("" if account.shorting_enabled else ", shorting DISABLED (the strategy sells short)")
        + (", trading BLOCKED" if account.trading_blocked else "")
    )
    report.line(usable and account.shorting_enabled, "account", detail)

    # 3. market clock
    try:
        clock = broker.get_clock()
        if clock.is_open:
            report.line(True, "market clock", f"open now; closes {_et(clock.next_close)}")
        else:
            report.line(
                True, "market clock", f"closed now ({_et(clock.timestamp)}); opens {_et(clock.next_open)}"
            )
    except BrokerError as exc:
        report.line(False, "market clock", str(exc))

    # 4. assets
    for symbol in symbols:
        try:
            asset = broker.get_asset(symbol)
        except BrokerNotFound:
            report.line(False, f"asset {symbol}", "unknown at Alpaca")
            continue
        except BrokerError as exc:
            report.line(False, f"asset {symbol}", str(exc))
            continue
        flags = [
            asset.status,
            "tradable" if asset.tradable else "NOT tradable",
            "shortable" if asset.shortable else "NOT shortable",
            "easy to borrow" if asset.easy_to_borrow else "hard to borrow",
            "fractionable" if asset.fractionable else "not fractionable",
        ]
        ok = asset.status == "active" and asset.tradable and asset.shortable
        report.line(ok, f"asset {symbol}", ", ".join(flags))

    # 5. market data feed
    for symbol in symbols:
        try:
            bar = broker.market_data.get_latest_bar(symbol)
        except FeedNotPermitted:
            report.line(
                False,
                f"data feed {feed}",
                "your Alpaca data plan does not include recent SIP data: use --feed iex (the free feed)",
            )
            continue
        except BrokerError as exc:
            hint = " (free plans: use --feed iex)" if feed == "sip" else ""
            report.line(False, f"data feed {feed}", f"{symbol}: {exc}{hint}")
            continue
        if bar is None:
            report.line(False, f"data feed {feed}", f"{symbol}: no bars from {broker.data_url}")
        else:
            report.line(
                True,
                f"data feed {feed}",
                f"{symbol}: latest bar {_et(bar.t)} close {bar.close:g} volume {bar.volume:g} ({broker.data_url})",
            )

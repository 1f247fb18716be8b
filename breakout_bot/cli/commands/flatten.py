"""`breakout-bot flatten`: the kill switch. Cancel every order, close every position, halt entries today.

Cancels are requests at Alpaca (processed a few hundred ms later; forum t/18156): until they are, the
orders still hold the shares and the close meets 403 "insufficient qty available" (held_for_orders), so
the close is tried again every half second for up to CLOSE_WAIT_S."""

from __future__ import annotations

import argparse
import datetime as dt
import time

from ...broker.base import Broker
from ...core.model import NEW_YORK
from ...errors import BrokerAuthError, BrokerError, ConfigError, InsufficientQty
from ...live.halt import engage, halt_path
from ..args import add_connection_arguments, add_symbol_argument, settings_from_args


def configure(parser: argparse.ArgumentParser) -> None:
    add_symbol_argument(parser)
    add_connection_arguments(parser)
    parser.add_argument("--reason", default="manual flatten", help="recorded in the kill switch file")


CLOSE_WAIT_S = 15.0
CLOSE_RETRY_S = 0.5


def _close_when_released(broker: Broker, symbol: str) -> None:
    """Close the position once the canceled orders have let go of its shares."""
    deadline = time.monotonic() + CLOSE_WAIT_S
    while True:
        try:
            broker.close_position(symbol)
            return
        except InsufficientQty:
            if time.monotonic() >= deadline:
                raise
            time.sleep(CLOSE_RETRY_S)


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    if not settings.has_keys:
        raise ConfigError(
            "no Alpaca keys configured: nothing to flatten (the built-in simulator lives inside `breakout-bot run`)"
        )
    from ...broker.alpaca.factory import broker_from_settings

    broker = broker_from_settings(settings)
    today = dt.datetime.now(NEW_YORK).date()
    path = halt_path(settings.journal_path)
    engage(path, today, args.reason)  # first: a bot running right now stops entering at once
    print(f"kill switch engaged for {today} ({path}): no new entries today")
    try:
        symbols = list(settings.symbols) or sorted({o.symbol for o in broker.list_open_orders()})
        held = list(broker.list_positions()) if not settings.symbols else list(settings.symbols)
        for symbol in sorted(set(symbols) | set(held)):
            broker.cancel_orders(symbol)
            _close_when_released(broker, symbol)
            print(f"{symbol}: orders canceled, position closed")
        remaining = {s: broker.get_position_qty(s) for s in sorted(set(symbols) | set(held))}
    except BrokerAuthError:
        raise  # the CLI says which keys to check
    except BrokerError as exc:
        raise BrokerError(f"flatten incomplete: {exc}; run it again", exit_code=4) from None
    finally:
        broker.close()
    open_left = {s: q for s, q in remaining.items() if q != 0}
    if open_left:
        print(f"still open (market closes are working): {open_left}")
        return 1
    print("flat")
    return 0

"""`breakout-bot flatten`: the kill switch. Cancel every order, close every position, halt entries today.

The switch is engaged first (a bot running right now stops entering at once), then every order is
canceled and every position closed, and the command waits (bounded, `--wait`) for the closing fills.
It says in words what is still working when it stops waiting, and exits 0 once every position is
flat or has its closing order working (a market close sent while the market is shut fills at the
open); 1 when a position is left with no close working. `--clear` lifts today's switch.

Cancels are requests at Alpaca (processed a few hundred ms later; forum t/18156): until they are, the
orders still hold the shares and the close meets 403 "insufficient qty available" (held_for_orders),
so a refused close is tried again every POLL_SECONDS while the command waits.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from decimal import Decimal
from urllib.parse import urlsplit

from ...broker.base import Broker
from ...config.settings import LOOPBACK_HOSTS
from ...core.model import NEW_YORK, OrderSnapshot
from ...errors import BrokerAuthError, BrokerError, BrokerRejected, ConfigError
from ...live.halt import clear, engage, halt_path
from ..args import add_connection_arguments, add_symbol_argument, settings_from_args

POLL_SECONDS = 0.5


def configure(parser: argparse.ArgumentParser) -> None:
    add_symbol_argument(parser)
    add_connection_arguments(parser)
    parser.add_argument("--reason", default="manual flatten", help="recorded in the kill switch file")
    parser.add_argument(
        "--wait",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="wait this long for the closing fills (default 30)",
    )
    parser.add_argument(
        "--clear", action="store_true", help="lift today's kill switch (sends nothing to the broker)"
    )


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    path = halt_path(settings.journal_path)
    if args.clear:
        if clear(path):
            print(f"kill switch lifted ({path}): new entries are allowed again")
        else:
            print(f"the kill switch was not engaged ({path})")
        return 0
    if args.wait < 0:
        raise ConfigError(f"--wait: expected seconds >= 0, got {args.wait:g}")
    if not settings.has_keys:
        raise ConfigError(
            "no Alpaca keys configured: nothing to flatten (the built-in simulator lives inside `breakout-bot run`)"
        )
    from ...broker.alpaca.factory import broker_from_settings

    broker = broker_from_settings(settings)
    today = dt.datetime.now(NEW_YORK).date()
    mode = "simulator" if urlsplit(settings.base_url).hostname in LOOPBACK_HOSTS else settings.mode
    engage(path, today, args.reason, mode)  # first: a bot running right now stops entering at once
    print(
        f"kill switch engaged for {today} ({path}): no new entries today; `breakout-bot flatten --clear` lifts it"
    )
    try:
        return _flatten(broker, list(settings.symbols), args.wait)
    except BrokerAuthError:
        raise  # the CLI says which keys to check
    except BrokerError as exc:
        raise BrokerError(f"flatten incomplete: {exc}; run it again", exit_code=4) from None
    finally:
        broker.close()


def _flatten(broker: Broker, only: list[str], wait: float) -> int:
    held = {s: q for s, q in broker.list_positions().items() if q != 0 and (not only or s in only)}
    symbols = sorted(set(only) | set(held) | {o.symbol for o in broker.list_open_orders() if not only})
    if not symbols:
        print("nothing to do: no open orders, no positions")
        return 0
    refused: dict[str, str] = {}
    for symbol in symbols:
        broker.cancel_orders(symbol)
        qty = held.get(symbol, Decimal(0))
        if qty == 0:
            print(f"{symbol}: orders canceled; no position")
            continue
        refused.pop(symbol, None)
        _close(broker, symbol, qty, refused)
    deadline = time.monotonic() + wait
    while True:
        held = {s: q for s, q in broker.list_positions().items() if q != 0 and s in symbols}
        if not held:
            print("flat: every position is closed")
            return 0
        if time.monotonic() >= deadline:
            break
        time.sleep(POLL_SECONDS)
        for symbol, qty in held.items():
            if symbol in refused:  # the legs' cancels may have been pending: try again
                refused.pop(symbol)
                _close(broker, symbol, qty, refused, quiet=True)
    return _report(broker, held, refused, wait)


def _close(broker: Broker, symbol: str, qty: Decimal, refused: dict[str, str], quiet: bool = False) -> None:
    try:
        order = broker.close_position(symbol)
    except BrokerRejected as exc:
        refused[symbol] = str(exc)
        return
    if not quiet:
        what = "sell" if qty > 0 else "buy to cover"
        sent = f" (order {order.id})" if order is not None else ""
        print(f"{symbol}: orders canceled; closing {_side(qty)} {abs(qty):f}: market {what} sent{sent}")


def _report(broker: Broker, held: dict[str, Decimal], refused: dict[str, str], wait: float) -> int:
    """After the wait: each position still held, and whether its close is working, in words."""
    try:
        market_open = broker.get_clock().is_open
    except BrokerError:
        market_open = True
    left_unclosed = 0
    for symbol, qty in sorted(held.items()):
        closing = [o for o in broker.list_open_orders(symbol) if _closes(o, qty)]
        if closing:
            working = sum((o.qty - o.filled_qty for o in closing), Decimal(0))
            when = "at the next trade" if market_open else "when the market opens"
            print(
                f"{symbol}: still {_side(qty)} {abs(qty):f} after {wait:g} s; the closing order for "
                f"{working:f} is working and fills {when}"
            )
        else:
            left_unclosed += 1
            why = f": {refused[symbol]}" if symbol in refused else ""
            print(f"{symbol}: still {_side(qty)} {abs(qty):f} and no closing order is working{why}")
    if left_unclosed:
        print("run `breakout-bot flatten` again, or close the position in Alpaca's dashboard")
        return 1
    print("the closes are working; the kill switch stays engaged for today")
    return 0


def _closes(order: OrderSnapshot, qty: Decimal) -> bool:
    return order.is_open and order.side == ("sell" if qty > 0 else "buy")


def _side(qty: Decimal) -> str:
    return "long" if qty > 0 else "short"

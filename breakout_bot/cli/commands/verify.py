"""`breakout-bot verify`: check what the bot assumes about Alpaca on your own paper account.

Paper only (a live URL is refused before anything is sent). One line per assumption, "expected →
observed", ✔ or ✘, and a JSON report to attach to a bug report. Exit 0 when every assumption the bot
relies on holds, 1 otherwise. Whatever happens (Ctrl-C and SIGTERM included) the orders it sent are
canceled and the shares it bought are sold. The probes: cli/verify_probes.py.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ...errors import BrokerError, ConfigError
from ...redaction import Redactor
from ..args import add_connection_arguments, add_symbol_argument, settings_from_args
from ..stop_signals import Terminated, signals_stop_the_run, stop_caught
from ..verify_probes import Check, Verifier

DEFAULT_SYMBOL = "AAPL"


def configure(parser: argparse.ArgumentParser) -> None:
    add_symbol_argument(parser)
    add_connection_arguments(parser)
    parser.add_argument(
        "--report",
        type=Path,
        default=Path("verify-report.json"),
        help="JSON report (default verify-report.json)",
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, metavar="S", help="seconds to wait for a fill (default 60)"
    )


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    if not settings.has_keys:
        raise ConfigError(
            "verify checks your Alpaca paper account: set APCA_API_KEY_ID and APCA_API_SECRET_KEY (paper keys)"
        )
    if settings.mode == "live":
        raise ConfigError(f"verify runs on a paper account only; {settings.base_url} is live trading")
    if args.timeout <= 0:
        raise ConfigError(f"--timeout: expected seconds > 0, got {args.timeout}")
    from ...broker.alpaca.factory import broker_from_settings

    assert settings.key_id is not None and settings.secret_key is not None
    broker = broker_from_settings(settings, max_attempts=3)
    symbol = (settings.symbols or (DEFAULT_SYMBOL,))[0]
    verifier = Verifier(
        broker.rest,
        settings.base_url,
        settings.stream_url,
        settings.key_id,
        settings.secret_key,
        symbol,
        settings.feed,
        args.timeout,
    )
    redact = Redactor([settings.secret_key, settings.key_id])
    print(f"verify: {settings.base_url} (paper), {symbol}, feed {settings.feed}")
    interrupted = False
    try:
        with signals_stop_the_run():
            try:
                verifier.run()
            except (KeyboardInterrupt, Terminated):  # SIGTERM ends verify as Ctrl-C does: through its cleanup
                stop_caught()
                interrupted = True
                print("interrupted: cleaning up")
            except BrokerError as exc:
                print(f"✘ stopped: {redact(str(exc))}")
                verifier.checks.append(
                    Check("verify ran to the end", "no broker error", redact(str(exc)), False)
                )
            finally:
                for note in verifier.cleanup():
                    print(f"cleanup: {note}")
    finally:
        broker.close()
        report = verifier.report()
        report["interrupted"] = interrupted
        args.report.write_text(redact(json.dumps(report, indent=1, default=str)))
        print(f"report: {args.report}")
    failed = [c for c in verifier.checks if not c.ok and c.critical]
    print(
        f"{len(verifier.checks) - len(failed)} of {len(verifier.checks)} checks as expected"
        + (f"; {len(failed)} the bot relies on failed" if failed else "")
    )
    if interrupted:
        return 130
    return 1 if failed else 0

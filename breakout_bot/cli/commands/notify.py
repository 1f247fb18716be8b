"""`breakout-bot notify --test URL`: send one test message through apprise, to check a notification URL
before a run relies on it. Without a URL, the configured ones (BREAKOUT_NOTIFY, .env). Exit 0 when
every message was delivered; 1 (one line, no token) when one was not."""

from __future__ import annotations

import argparse
import datetime as dt
import socket

from ...errors import ConfigError
from ...live.notify import Notifier, apprise_sender
from ...redaction import Redactor, url_scheme, url_secrets
from ..args import settings_from_args


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--test",
        dest="notify",
        action="append",
        metavar="URL",
        required=False,
        help="the apprise URL to send a test message to; repeat for several (default: BREAKOUT_NOTIFY)",
    )
    parser.add_argument("--env-file", metavar="PATH", help="read settings from this file instead of ./.env")


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args, trading=False)
    urls = settings.notify
    if not urls:
        raise ConfigError(
            "notify: give --test URL (an apprise URL such as ntfy://topic), or set BREAKOUT_NOTIFY"
        )
    failures = 0
    for url in urls:
        notifier = Notifier(
            apprise_sender([url]), Redactor([*settings.secrets, *url_secrets(urls)]), attempts=2, backoff=0.5
        )
        notifier.post(
            "breakout-bot test",
            f"a test message from breakout-bot on {socket.gethostname()} at "
            f"{dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}: notifications reach you",
        )
        notifier.close(timeout=30)
        if notifier.sent == 1:
            print(f"sent a test message to {url_scheme(url)}")
        else:
            failures += 1
            print(f"could not send to {url_scheme(url)} (details in the log file)")
    return 1 if failures else 0

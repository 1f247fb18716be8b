"""`breakout-bot schedule --systemd|--cron`: print deployment units for this install's paths."""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
from pathlib import Path

from ...errors import ConfigError

# 09:00 New York on weekdays; the bot itself reads Alpaca's calendar and sleeps through holidays.
TIMER_CALENDAR = "Mon..Fri *-*-* 09:00:00 America/New_York"


def configure(parser: argparse.ArgumentParser) -> None:
    kind = parser.add_mutually_exclusive_group(required=True)
    kind.add_argument("--systemd", action="store_true", help="print a systemd service and timer")
    kind.add_argument("--cron", action="store_true", help="print a crontab line")
    parser.add_argument("--symbol", dest="symbols", action="append", required=True, metavar="SYMBOL")
    parser.add_argument("--workdir", type=Path, default=Path.cwd(), help="where the journal and logs live")
    parser.add_argument("--env-file", type=Path, default=None, help="file with the API keys (chmod 600)")
    parser.add_argument("--user", default=None, help="systemd User= (default: the current user)")
    parser.add_argument(
        "--output-dir", type=Path, default=None, help="write the unit files here instead of printing"
    )


def _executable() -> Path:
    """The console script of the environment running this command (a venv's), else the one on PATH."""
    beside = Path(sys.executable).parent / "breakout-bot"
    if beside.exists():
        return beside.absolute()
    found = shutil.which("breakout-bot")
    return Path(found).absolute() if found else beside.absolute()


def run(args: argparse.Namespace) -> int:
    workdir = args.workdir.resolve()
    env_file = (args.env_file or workdir / ".env").resolve()
    symbols = ",".join(s.upper() for s in args.symbols)
    if not symbols.replace(",", "").replace(".", "").isalnum():
        raise ConfigError(f"--symbol: invalid symbol list {symbols!r}")
    exe = _executable()
    command = (
        f"{shlex.quote(str(exe))} run --symbols {symbols} --once --env-file {shlex.quote(str(env_file))}"
    )
    if args.cron:
        # Cron runs in the machine's timezone: CRON_TZ pins New York where cron supports it.
        print("CRON_TZ=America/New_York")
        print(f"0 9 * * 1-5 cd {shlex.quote(str(workdir))} && {command} >> logs/cron.log 2>&1")
        return 0
    user = args.user or _current_user()
    units = {
        "breakout-bot.service": SERVICE.format(
            workdir=workdir, command=command, user=user, env_file=env_file
        ),
        "breakout-bot.timer": TIMER.format(calendar=TIMER_CALENDAR),
    }
    if args.output_dir is not None:
        args.output_dir.mkdir(parents=True, exist_ok=True)
        for name, text in units.items():
            (args.output_dir / name).write_text(text.lstrip())
            print(f"wrote {args.output_dir / name}")
        return 0
    for name, text in units.items():
        print(f"# ---- {name} ----")
        print(text.strip() + "\n")
    return 0


def _current_user() -> str:
    import getpass

    return getpass.getuser()


SERVICE = """
# Install: save this part as /etc/systemd/system/breakout-bot.service and the timer part as
# /etc/systemd/system/breakout-bot.timer, then: systemctl daemon-reload && systemctl enable --now breakout-bot.timer
# Keys live in {env_file} (chmod 600); logs go to journald and to {workdir}/logs.
[Unit]
Description=breakout-bot: intraday breakout trading on Alpaca
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
User={user}
WorkingDirectory={workdir}
ExecStart={command}
Restart=on-failure
RestartSec=30
# A restart reconciles with the broker: it never doubles an order.
StandardOutput=journal
StandardError=journal
NoNewPrivileges=true
PrivateTmp=true
"""

TIMER = """
[Unit]
Description=Start breakout-bot before the US market opens

[Timer]
OnCalendar={calendar}
Persistent=true

[Install]
WantedBy=timers.target
"""

"""python -m breakout_bot.sim [flags]: the simulator standalone, as `breakout-bot sim [flags]`."""

import sys

from ..cli.main import main

raise SystemExit(main(["sim", *sys.argv[1:]]))

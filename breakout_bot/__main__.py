"""``python -m breakout_bot``: same as the ``breakout-bot`` console script."""

import sys

from breakout_bot.cli.main import main

sys.exit(main())

"""``python -m breakout_bot``: same as the ``breakout-bot`` console script."""

from breakout_bot.cli.main import console

console()

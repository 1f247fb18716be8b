"""python -m breakout_bot.sim [flags]: the simulator standalone (same flags as `breakout-bot sim`)."""

from .cli import main

raise SystemExit(main())

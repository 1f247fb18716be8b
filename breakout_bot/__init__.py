"""breakout-bot: the Alpaca breakout guide strategy, ported faithfully and hardened."""

__version__ = "0.1.0"

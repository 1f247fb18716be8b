"""Market data and the market's rules, neutral ground for the bot, the backtester and the simulator:
the NYSE calendar, bar files and the bar cache, synthetic bars, and how orders fill against prices."""

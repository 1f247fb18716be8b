"""Backtests: the live machine.step replayed over bars (event path) and a compiled kernel for sweeps."""

"""The simulator's asset universe: the configured symbols plus three built-in oddities.

NOSHORT is tradable but not shortable, HTB is shortable but hard to borrow (Alpaca "only supports
opening short positions in easy-to-borrow ("ETB") securities", support: short-selling fees; the flag
can change overnight), HALTD is not tradable: they exist so that bad-input tests have something real to
hit. Asset ids are UUIDs derived from the symbol (stable across runs).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

_NAMESPACE = uuid.UUID("6f1d7c3e-2b7a-4c55-9d2e-5b1f3f0a7e11")

NOSHORT = "NOSHORT"
HARD_TO_BORROW = "HTB"
HALTED = "HALTD"
WITH_TAPE = (NOSHORT, HARD_TO_BORROW)  # built-ins that trade (a synthetic tape)


@dataclass(frozen=True)
class Asset:
    symbol: str
    tradable: bool = True
    shortable: bool = True
    easy_to_borrow: bool = True
    name: str = ""

    @property
    def id(self) -> str:
        return str(uuid.uuid5(_NAMESPACE, self.symbol))

    @property
    def borrow_status(self) -> str:
        """The current docs' field beside the boolean (2026 compilation of docs.alpaca.markets)."""
        return "easy_to_borrow" if self.easy_to_borrow else "hard_to_borrow"


def build_universe(symbols: tuple[str, ...]) -> dict[str, Asset]:
    """Configured symbols are active/tradable/shortable/easy_to_borrow; the built-ins keep their flags
    even when listed among the symbols (so NOSHORT can be given a tape and still refuse shorts)."""
    assets = {s: Asset(s, name=f"{s} (simulated)") for s in symbols}
    assets[NOSHORT] = Asset(NOSHORT, shortable=False, easy_to_borrow=False, name="Not shortable (sim)")
    assets[HARD_TO_BORROW] = Asset(HARD_TO_BORROW, easy_to_borrow=False, name="Hard to borrow (sim)")
    assets[HALTED] = Asset(
        HALTED, tradable=False, shortable=False, easy_to_borrow=False, name="Not tradable (sim)"
    )
    return assets

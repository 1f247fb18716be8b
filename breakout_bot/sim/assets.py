"""The simulator's asset universe: the configured symbols plus two built-in oddities.

NOSHORT is tradable but not shortable, HALTD is not tradable: they exist so that bad-input tests
have something real to hit. Asset ids are UUIDs derived from the symbol (stable across runs).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

_NAMESPACE = uuid.UUID("6f1d7c3e-2b7a-4c55-9d2e-5b1f3f0a7e11")

NOSHORT = "NOSHORT"
HALTED = "HALTD"


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


def build_universe(symbols: tuple[str, ...]) -> dict[str, Asset]:
    """Configured symbols are active/tradable/shortable/easy_to_borrow; the built-ins keep their flags
    even when listed among the symbols (so NOSHORT can be given a tape and still refuse shorts)."""
    assets = {s: Asset(s, name=f"{s} (simulated)") for s in symbols}
    assets[NOSHORT] = Asset(NOSHORT, shortable=False, easy_to_borrow=False, name="Not shortable (sim)")
    assets[HALTED] = Asset(
        HALTED, tradable=False, shortable=False, easy_to_borrow=False, name="Not tradable (sim)"
    )
    return assets

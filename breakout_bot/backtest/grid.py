"""Parameter grids for `--sweep`: the specs (`lookback=5:20 min_range=0.1:0.5:0.05`) and their combinations.

Specs (`--sweep`, one or more):
    name=V            one value               qty=100
    name=A:B          inclusive int range     lookback=5:20
    name=A:B:STEP     inclusive range by step min_range=0.1:0.5:0.05
    name=V1,V2,...    a list                  flatten=5,10
Names: lookback, min_range(_pct), qty, no_entry(_minutes), flatten(_minutes), max_trades, max_daily_loss.
Unswept fields come from the base Params (the backtest command's flags). Pure Python (no numpy): the
command's --help reads FIELDS without importing the kernel.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from ..core.params import Params
from ..errors import UserError

# Sweep name -> Params field. Ints stay ints.
FIELDS: dict[str, str] = {
    "lookback": "lookback",
    "min_range": "min_range_pct",
    "min_range_pct": "min_range_pct",
    "qty": "qty",
    "no_entry": "no_entry_minutes",
    "no_entry_minutes": "no_entry_minutes",
    "flatten": "flatten_minutes",
    "flatten_minutes": "flatten_minutes",
    "max_trades": "max_trades",
    "max_daily_loss": "max_daily_loss",
}
INT_FIELDS = frozenset({"lookback", "qty", "no_entry_minutes", "flatten_minutes", "max_trades"})
MAX_COMBINATIONS = 1_000_000


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    name: str  # as typed
    field: str  # the Params field
    values: tuple[float, ...] | tuple[int, ...]


def _number(text: str, spec: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise UserError(f"--sweep {spec}: {text.strip()!r} is not a number") from None
    if not value.is_finite():
        raise UserError(f"--sweep {spec}: {text.strip()!r} is not a finite number")
    return value


def parse_spec(spec: str) -> SweepSpec:
    """`name=value`, `name=a:b`, `name=a:b:step` or `name=v1,v2`; UserError (one line) when malformed."""
    name, sep, rhs = spec.partition("=")
    name = name.strip().lower().replace("-", "_")
    if not sep or not name or not rhs.strip():
        raise UserError(f"--sweep {spec}: expected name=value, name=start:stop[:step] or name=v1,v2")
    field = FIELDS.get(name)
    if field is None:
        raise UserError(f"--sweep {spec}: unknown parameter {name!r} (one of {', '.join(sorted(FIELDS))})")
    is_int = field in INT_FIELDS
    values: list[Decimal]
    if ":" in rhs:
        parts = rhs.split(":")
        if len(parts) not in (2, 3):
            raise UserError(f"--sweep {spec}: a range is start:stop or start:stop:step")
        start, stop = _number(parts[0], spec), _number(parts[1], spec)
        if len(parts) == 3:
            step = _number(parts[2], spec)
        elif is_int or (start == start.to_integral_value() and stop == stop.to_integral_value()):
            step = Decimal(1)
        else:
            raise UserError(f"--sweep {spec}: a float range needs a step (start:stop:step)")
        if step <= 0:
            raise UserError(f"--sweep {spec}: the step must be > 0")
        if stop < start:
            raise UserError(f"--sweep {spec}: stop {stop} is below start {start}")
        count = int((stop - start) / step) + 1
        if count > MAX_COMBINATIONS:
            raise UserError(f"--sweep {spec}: {count} values is too many")
        values = [start + i * step for i in range(count)]  # exact decimals: 0.1:0.5:0.05 has 9 values
    else:
        values = [_number(v, spec) for v in rhs.split(",")]
    if is_int:
        if any(v != v.to_integral_value() for v in values):
            raise UserError(f"--sweep {spec}: {field} takes whole numbers")
        ints = tuple(dict.fromkeys(int(v) for v in values))
        _check_range(spec, field, ints)
        return SweepSpec(name, field, ints)
    floats = tuple(dict.fromkeys(float(v) for v in values))
    _check_range(spec, field, floats)
    return SweepSpec(name, field, floats)


def _check_range(spec: str, field: str, values: Sequence[float]) -> None:
    low = {"lookback": 1, "qty": 1}.get(field, 0)
    bad = [v for v in values if v < low]
    if bad:
        raise UserError(f"--sweep {spec}: {field} must be >= {low} (got {bad[0]})")


def parse_specs(specs: Sequence[str]) -> list[SweepSpec]:
    parsed = [parse_spec(s) for s in specs]
    seen: dict[str, str] = {}
    for p in parsed:
        if p.field in seen:
            raise UserError(f"--sweep: {p.field} given twice ({seen[p.field]}= and {p.name}=)")
        seen[p.field] = p.name
    total = math.prod(len(p.values) for p in parsed)
    if total > MAX_COMBINATIONS:
        raise UserError(f"--sweep: {total:,} combinations is too many (at most {MAX_COMBINATIONS:,})")
    return parsed


def grid(specs: Sequence[SweepSpec], base: Params) -> list[Params]:
    """Every combination, the first spec varying slowest."""
    fields = [s.field for s in specs]
    combos: list[dict[str, Any]] = [
        dict(zip(fields, combo, strict=True)) for combo in itertools.product(*(s.values for s in specs))
    ]
    return [dataclasses.replace(base, **combo) for combo in combos]

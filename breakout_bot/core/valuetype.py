"""`@value_type`: the trading core's immutable values (bars, boxes, orders, events, actions, fills,
trades, and the broker interface's records); `IdentityEnum`: the core's vocabularies (order events,
statuses and types).

Frozen for the type checker: `dataclass_transform(frozen_default=True)` (PEP 681) makes mypy reject any
assignment to a field, and CI runs mypy over the whole package. At run time a plain slotted dataclass,
with a frozen dataclass's equality, field hash, repr, `replace` and pickling.

Why not `frozen=True` at run time as well: a frozen dataclass's `__init__` sets each field through
`object.__setattr__` (its own `__setattr__` refuses), which costs ~2.5x the plain slot stores, and a
backtest builds millions of these values; they were ~15 % of a replay's instructions. Nothing in the
package assigns to them (mypy proves it), so the run-time guard only cost time. Records built a few
times per run (options, retry failures) stay ordinary frozen dataclasses: there the guard is free.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from typing import dataclass_transform
else:  # typing.dataclass_transform is Python 3.11+; it only informs type checkers

    def dataclass_transform(**_: Any) -> Any:
        return lambda decorator: decorator


T = TypeVar("T")


@dataclass_transform(frozen_default=True)
def value_type(cls: type[T]) -> type[T]:
    """Decorate an immutable value class (fields as for a dataclass; no default factories needed)."""
    return dataclasses.dataclass(slots=True, unsafe_hash=True)(cls)


class IdentityEnum(enum.Enum):
    """An Enum hashed by identity. Enum's own `__hash__` is a Python function (`hash(self._name_)`,
    ~60 ns), and the machine looks order events and statuses up in sets on every order update; an
    Enum's equality is identity already, so identity hashing is consistent with it."""

    __hash__ = object.__hash__

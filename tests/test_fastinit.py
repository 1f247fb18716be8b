"""fast_init: the swapped-in __init__ behaves exactly like the dataclass's own."""

from __future__ import annotations

import dataclasses
import pickle
from dataclasses import dataclass, field
from decimal import Decimal

import pytest

from breakout_bot import machine, strategy
from breakout_bot.backtest import trades
from breakout_bot.broker import base
from breakout_bot.fastinit import fast_init


@dataclass(frozen=True, slots=True)
class Plain:
    a: int
    b: str = "x"
    c: Decimal | None = None


@fast_init
@dataclass(frozen=True, slots=True)
class Fast:
    a: int
    b: str = "x"
    c: Decimal | None = None


def test_same_values_defaults_and_errors_as_the_dataclass_init() -> None:
    for args, kwargs in [((1,), {}), ((1, "y"), {}), ((1,), {"c": Decimal(2)}), ((), {"a": 3, "b": "z"})]:
        plain, fast = Plain(*args, **kwargs), Fast(*args, **kwargs)
        assert dataclasses.astuple(plain) == dataclasses.astuple(fast)
        assert repr(fast) == repr(plain).replace("Plain", "Fast")
    assert Fast(1) == Fast(1) and hash(Fast(1)) == hash(Fast(1)) and Fast(1) != Fast(2)
    with pytest.raises(TypeError):
        Fast()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Fast(1, "y", None, 4)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Fast(1, d=2)  # type: ignore[call-arg]
    with pytest.raises(dataclasses.FrozenInstanceError):
        Fast(1).a = 2  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(Fast(1, "q"))) == Fast(1, "q")
    assert dataclasses.replace(Fast(1), b="r") == Fast(1, "r")
    assert Fast.__init__.__qualname__ == "Fast.__init__"


def test_refuses_what_it_cannot_reproduce() -> None:
    @dataclass(frozen=True)
    class NoSlots:
        a: int

    @dataclass(slots=True)
    class NotFrozen:
        a: int

    @dataclass(frozen=True, slots=True)
    class Factory:
        a: list[int] = field(default_factory=list)

    @dataclass(frozen=True, slots=True)
    class PostInit:
        a: int

        def __post_init__(self) -> None:
            pass

    for cls in (NoSlots, NotFrozen, Factory, PostInit):
        with pytest.raises(TypeError):
            fast_init(cls)


def test_the_projects_hot_path_classes_use_it() -> None:
    classes = [strategy.Bar, strategy.Box, machine.OrderSnapshot, machine.OrderUpdate, machine.Fill]
    classes += [machine.Log, machine.SubmitBracket, machine.BarClosed, base.FillActivity, trades.Trade]
    for cls in classes:
        assert cls.__init__.__module__ == cls.__module__
        assert "__dataclass_builtins_object__" not in cls.__init__.__globals__

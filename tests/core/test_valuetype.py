"""value_type: immutable for the type checker, a plain slotted dataclass at run time."""

from __future__ import annotations

import dataclasses
import pickle
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest

from breakout_bot.backtest import trades
from breakout_bot.broker import base
from breakout_bot.core import events, model
from breakout_bot.core.params import Params
from breakout_bot.core.valuetype import value_type


@value_type
class Value:
    a: int
    b: str = "x"
    c: Decimal | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Frozen:
    a: int
    b: str = "x"
    c: Decimal | None = None


def test_behaves_as_a_frozen_dataclass_apart_from_the_run_time_guard() -> None:
    for args, kwargs in [((1,), {}), ((1, "y"), {}), ((1,), {"c": Decimal(2)}), ((), {"a": 3, "b": "z"})]:
        value, frozen = Value(*args, **kwargs), Frozen(*args, **kwargs)
        assert dataclasses.astuple(value) == dataclasses.astuple(frozen)
        assert repr(value) == repr(frozen).replace("Frozen", "Value")
        assert hash(value) == hash(frozen)  # both hash the tuple of the fields
    assert Value(1) == Value(1) and hash(Value(1)) == hash(Value(1)) and Value(1) != Value(2)
    assert Value(1) != Frozen(1)
    with pytest.raises(TypeError):
        Value()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Value(1, d=2)  # type: ignore[call-arg]
    assert pickle.loads(pickle.dumps(Value(1, "q"))) == Value(1, "q")
    assert dataclasses.replace(Value(1), b="r") == Value(1, "r")
    assert not hasattr(Value(1), "__dict__")  # slotted: no stray attributes either
    with pytest.raises(AttributeError):
        Value(1).d = 2  # type: ignore[attr-defined]


def test_the_type_checker_refuses_assignments(tmp_path: Path) -> None:
    """The guarantee frozen=True gave at run time, now given by mypy (which CI runs over the package)."""
    api = pytest.importorskip("mypy.api")
    snippet = tmp_path / "mutate.py"
    snippet.write_text(
        textwrap.dedent(
            """
            from breakout_bot.core.valuetype import value_type

            @value_type
            class Price:
                value: float

            p = Price(1.0)
            p.value = 2.0
            """
        )
    )
    out, _, status = api.run([str(snippet), "--no-incremental", "--follow-imports=silent"])
    assert status == 1 and 'Property "value" defined in "Price" is read-only' in out, out


def test_the_projects_values_use_it() -> None:
    classes = [model.Bar, model.Box, model.Bracket, Params, model.Session]
    classes += [model.OrderSnapshot, events.OrderUpdate, model.Fill, events.Reconciled, events.Tick]
    classes += [events.BarClosed, events.Log, events.SubmitBracket, events.RecordFill, events.CloseAll]
    classes += [events.CancelOrder]
    classes += [base.FillActivity, trades.Trade]
    for cls in classes:
        params = cls.__dataclass_params__  # type: ignore[attr-defined]
        assert params.unsafe_hash and params.eq and "__slots__" in cls.__dict__, cls

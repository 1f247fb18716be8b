"""Parameter sweeps on the fast kernel: `breakout-bot backtest --sweep lookback=5:20 min_range=0.1:0.5:0.05`.

Specs (`--sweep`, one or more):
    name=V            one value               qty=100
    name=A:B          inclusive int range     lookback=5:20
    name=A:B:STEP     inclusive range by step min_range=0.1:0.5:0.05
    name=V1,V2,...    a list                  flatten=5,10
Names: lookback, min_range(_pct), qty, no_entry(_minutes), flatten(_minutes), max_trades, max_daily_loss.
Every combination runs (the kernel: ~ms per run over a year of minute bars); unswept fields come from
the base Params (the backtest command's flags). Results: a table of the best by net P&L, a CSV
(`--sweep-out`), a heatmap over the first two swept parameters (`--heatmap x.html|x.png`). The
command's flags and its run are cli/sweep.py's.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import pathlib
import sys
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
import pandas as pd

from ..core.params import Params
from ..errors import UserError
from . import kernel

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
RESULT_COLUMNS = ("trades", "win_rate", "net_pnl", "profit_factor", "max_drawdown")


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


def results_frame(
    specs: Sequence[SweepSpec], param_sets: Sequence[Params], stats: np.ndarray
) -> pd.DataFrame:
    """One row per combination: the swept values, then trades, win rate, net P&L, profit factor,
    max drawdown (and gross profit/loss)."""
    n, wins, net, gross_profit, gross_loss, max_dd = (stats[:, i] for i in range(6))
    with np.errstate(divide="ignore", invalid="ignore"):
        win_rate = np.where(n > 0, wins / np.maximum(n, 1), np.nan)
        pf = np.where(gross_loss > 0, gross_profit / gross_loss, np.where(gross_profit > 0, np.inf, np.nan))
    data: dict[str, Any] = {s.name: [getattr(p, s.field) for p in param_sets] for s in specs}
    data.update(
        trades=n.astype(np.int64),
        win_rate=win_rate,
        net_pnl=net,
        profit_factor=pf,
        max_drawdown=max_dd,
        gross_profit=gross_profit,
        gross_loss=gross_loss,
    )
    return pd.DataFrame(data)


def _chunks(n: int, parts: int) -> list[tuple[int, int]]:
    step = math.ceil(n / parts)
    return [(i, min(n, i + step)) for i in range(0, n, step)]


_WORKER_BARS: kernel.PreparedBars | None = None


def _worker_init(prepared: kernel.PreparedBars) -> None:
    global _WORKER_BARS
    _WORKER_BARS = prepared


def _worker_run(job: tuple[list[Params], float, float]) -> np.ndarray:
    assert _WORKER_BARS is not None
    sets, commission, slippage = job
    return kernel.sweep_stats(
        _WORKER_BARS, sets, commission_per_share=commission, slippage_per_share=slippage
    )


def sweep(
    prepared: kernel.PreparedBars,
    param_sets: list[Params],
    *,
    commission_per_share: float = 0.0,
    slippage_per_share: float = 0.0,
    jobs: int = 0,
) -> np.ndarray:
    """Stats (kernel.STAT_COLUMNS) for every parameter set. Large grids use 2 processes when the
    machine has the cores (the kernel is single-threaded; a process pool roughly halves the wall time
    once the grid costs more than the pool's start-up, ~1-2 s)."""
    if not param_sets:
        return np.zeros((0, len(kernel.STAT_COLUMNS)))
    cores = os.cpu_count() or 1
    if jobs <= 0:
        # Worth it when the work (bars x runs) is well above a pool start (~1 s of kernel time).
        work = len(prepared) * len(param_sets)
        jobs = 2 if cores >= 2 and work >= 300_000_000 and len(param_sets) >= 4 else 1
    jobs = max(1, min(jobs, cores, len(param_sets)))
    if jobs == 1:
        return kernel.sweep_stats(
            prepared,
            param_sets,
            commission_per_share=commission_per_share,
            slippage_per_share=slippage_per_share,
        )
    import multiprocessing as mp

    ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    chunks = [param_sets[a:b] for a, b in _chunks(len(param_sets), jobs * 4)]
    with ctx.Pool(jobs, initializer=_worker_init, initargs=(prepared,)) as pool:
        parts = pool.map(_worker_run, [(c, commission_per_share, slippage_per_share) for c in chunks])
    return np.vstack(parts)


def format_table(frame: pd.DataFrame, spec_names: Sequence[str], top: int) -> str:
    best = frame.sort_values("net_pnl", ascending=False, kind="stable").head(top)
    headers = [*spec_names, "trades", "win rate", "net P&L", "profit factor", "max drawdown"]
    rows = []
    for _, r in best.iterrows():
        cells = [_fmt_value(r[n]) for n in spec_names]
        cells += [
            f"{int(r['trades'])}",
            "-" if pd.isna(r["win_rate"]) else f"{r['win_rate'] * 100:.1f}%",
            f"{r['net_pnl']:,.2f}",
            "-"
            if pd.isna(r["profit_factor"])
            else ("inf" if np.isinf(r["profit_factor"]) else f"{r['profit_factor']:.2f}"),
            f"{r['max_drawdown']:,.2f}",
        ]
        rows.append(cells)
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def _fmt_value(v: Any) -> str:
    if isinstance(v, float | np.floating) and float(v) != int(v):
        return f"{float(v):g}"
    return str(int(v))


def write_heatmap(frame: pd.DataFrame, specs: Sequence[SweepSpec], path: pathlib.Path, title: str) -> None:
    """Net P&L over the first two swept parameters (the best over any other swept parameter);
    one swept parameter gives a one-row map. .html: plotly, self-contained; .png: matplotlib."""
    x = specs[0].name
    y = specs[1].name if len(specs) > 1 else None
    if y is None:
        table = frame.groupby(x)["net_pnl"].max().to_frame().T
        table.index = ["net P&L"]
    else:
        table = frame.pivot_table(index=y, columns=x, values="net_pnl", aggfunc="max")
    suffix = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix in (".html", ".htm"):
        import plotly.graph_objects as go

        fig = go.Figure(
            go.Heatmap(
                z=table.to_numpy(),
                x=[_fmt_value(v) for v in table.columns],
                y=[str(v) if y is None else _fmt_value(v) for v in table.index],
                colorscale="RdYlGn",
                zmid=0.0,
                colorbar={"title": "net P&L"},
                hovertemplate=f"{x}=%{{x}}<br>{y or ''}=%{{y}}<br>net P&L=%{{z:,.2f}}<extra></extra>",
            )
        )
        fig.update_layout(
            title=title, xaxis_title=x, yaxis_title=y or "", xaxis_type="category", yaxis_type="category"
        )
        fig.write_html(str(path), include_plotlyjs=True, full_html=True)
    elif suffix == ".png":
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.colors import TwoSlopeNorm

        z = table.to_numpy(dtype=float)
        finite = z[np.isfinite(z)]
        lo = float(finite.min()) if finite.size else -1.0
        hi = float(finite.max()) if finite.size else 1.0
        norm = TwoSlopeNorm(vcenter=0.0, vmin=min(lo, -1e-9), vmax=max(hi, 1e-9))
        fig, ax = plt.subplots(figsize=(max(6.0, 0.5 * z.shape[1] + 3), max(3.0, 0.4 * z.shape[0] + 2)))
        im = ax.imshow(z, cmap="RdYlGn", norm=norm, aspect="auto", origin="lower")
        ax.set_xticks(range(z.shape[1]), [_fmt_value(v) for v in table.columns], rotation=45, ha="right")
        ax.set_yticks(range(z.shape[0]), [str(v) if y is None else _fmt_value(v) for v in table.index])
        ax.set_xlabel(x)
        ax.set_ylabel(y or "")
        ax.set_title(title)
        fig.colorbar(im, ax=ax, label="net P&L")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
    else:
        raise UserError(f"--heatmap {path}: use a .html or .png file name")


__all__ = [
    "FIELDS",
    "SweepSpec",
    "format_table",
    "grid",
    "parse_spec",
    "parse_specs",
    "results_frame",
    "sweep",
    "write_heatmap",
]

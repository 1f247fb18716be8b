"""A sweep's results as a table, a CSV frame and a heatmap (in-sample and out-of-sample side by side)."""

from __future__ import annotations

import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..core.params import Params
from ..errors import UserError
from .grid import SweepSpec

STAT_NAMES = ("trades", "win_rate", "net_pnl", "profit_factor", "max_drawdown", "gross_profit", "gross_loss")


def stat_columns(stats: Mapping[str, np.ndarray], prefix: str = "") -> dict[str, np.ndarray]:
    """window_stats' figures as the CSV's columns (win rate and profit factor derived)."""
    n = stats["trades"]
    gp, gl = stats["gross_profit"], stats["gross_loss"]
    with np.errstate(divide="ignore", invalid="ignore"):
        win_rate = np.where(n > 0, stats["wins"] / np.maximum(n, 1), np.nan)
        pf = np.where(gl > 0, gp / gl, np.where(gp > 0, np.inf, np.nan))
    values = {
        "trades": n.astype(np.int64),
        "win_rate": win_rate,
        "net_pnl": stats["net_pnl"],
        "profit_factor": pf,
        "max_drawdown": stats["max_drawdown"],
        "gross_profit": gp,
        "gross_loss": gl,
    }
    return {prefix + name: values[name] for name in STAT_NAMES}


def results_frame(
    specs: Sequence[SweepSpec],
    param_sets: Sequence[Params],
    stats: Mapping[str, np.ndarray],
    out_of_sample: Mapping[str, np.ndarray] | None = None,
) -> pd.DataFrame:
    """One row per combination: the swept values, then its figures (and, beside them, the
    out-of-sample ones, prefixed oos_)."""
    data: dict[str, Any] = {s.name: [getattr(p, s.field) for p in param_sets] for s in specs}
    data.update(stat_columns(stats))
    if out_of_sample is not None:
        data.update(stat_columns(out_of_sample, "oos_"))
    return pd.DataFrame(data)


def fmt_value(v: Any) -> str:
    if isinstance(v, float | np.floating) and float(v) != int(v):
        return f"{float(v):g}"
    return str(int(v))


def _pct(x: float) -> str:
    return "-" if pd.isna(x) else f"{x * 100:.1f}%"


def _pf(x: float) -> str:
    return "-" if pd.isna(x) else ("inf" if np.isinf(x) else f"{x:.2f}")


def _figures(r: Any, prefix: str = "") -> list[str]:
    return [
        f"{int(r[prefix + 'trades'])}",
        _pct(r[prefix + "win_rate"]),
        f"{r[prefix + 'net_pnl']:,.2f}",
        _pf(r[prefix + "profit_factor"]),
        f"{r[prefix + 'max_drawdown']:,.2f}",
    ]


FIGURE_HEADERS = ["trades", "win rate", "net P&L", "profit factor", "max drawdown"]


def aligned(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Right-aligned columns under a dashed rule."""
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def format_table(frame: pd.DataFrame, spec_names: Sequence[str], top: int) -> str:
    """The best `top` rows by net P&L (in-sample when the frame has out-of-sample columns beside)."""
    best = frame.sort_values("net_pnl", ascending=False, kind="stable").head(top)
    oos = "oos_net_pnl" in frame.columns
    headers = [*spec_names, *FIGURE_HEADERS]
    if oos:
        headers += [f"oos {h}" for h in FIGURE_HEADERS]
    rows = []
    for _, r in best.iterrows():
        cells = [fmt_value(r[n]) for n in spec_names] + _figures(r)
        if oos:
            cells += _figures(r, "oos_")
        rows.append(cells)
    return aligned(headers, rows)


def _grid(
    frame: pd.DataFrame, specs: Sequence[SweepSpec], column: str
) -> tuple[pd.DataFrame, str, str | None]:
    x = specs[0].name
    y = specs[1].name if len(specs) > 1 else None
    if y is None:
        table = frame.groupby(x)[column].max().to_frame().T
        table.index = pd.Index(["net P&L"])
    else:
        table = frame.pivot_table(index=y, columns=x, values=column, aggfunc="max")
    return table, x, y


def write_heatmap(
    frame: pd.DataFrame,
    specs: Sequence[SweepSpec],
    path: pathlib.Path,
    title: str,
    panels: Sequence[tuple[str, str]] = (("net_pnl", "net P&L"),),
) -> None:
    """Net P&L over the first two swept parameters (the best over any other swept parameter), one
    panel per (column, title) in `panels` side by side (in-sample and out-of-sample); one swept
    parameter gives one-row maps. .html: plotly, self-contained; .png: matplotlib."""
    grids = [(_grid(frame, specs, column), name) for column, name in panels]
    (first, x, y), _ = grids[0]
    suffix = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    xs = [fmt_value(v) for v in first.columns]
    ys = [str(v) if y is None else fmt_value(v) for v in first.index]
    if suffix in (".html", ".htm"):
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        fig = make_subplots(rows=1, cols=len(grids), subplot_titles=[name for _, name in grids])
        for i, ((table, _, _), name) in enumerate(grids, start=1):
            fig.add_trace(
                go.Heatmap(
                    z=table.to_numpy(),
                    x=xs,
                    y=ys,
                    colorscale="RdYlGn",
                    zmid=0.0,
                    coloraxis=None,
                    colorbar={"title": name, "x": i / len(grids) - 0.02}
                    if len(grids) > 1
                    else {"title": name},
                    hovertemplate=f"{x}=%{{x}}<br>{y or ''}=%{{y}}<br>{name}=%{{z:,.2f}}<extra></extra>",
                ),
                row=1,
                col=i,
            )
            fig.update_xaxes(title_text=x, type="category", row=1, col=i)
            fig.update_yaxes(title_text=y or "", type="category", row=1, col=i)
        fig.update_layout(title=title)
        fig.write_html(str(path), include_plotlyjs=True, full_html=True)
    elif suffix == ".png":
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.colors import TwoSlopeNorm

        z0 = first.to_numpy(dtype=float)
        width = max(6.0, 0.5 * z0.shape[1] + 3)
        fig, axes = plt.subplots(
            1, len(grids), figsize=(width * len(grids), max(3.0, 0.4 * z0.shape[0] + 2)), squeeze=False
        )
        for ax, ((table, _, _), name) in zip(axes[0], grids, strict=True):
            z = table.to_numpy(dtype=float)
            finite = z[np.isfinite(z)]
            lo = float(finite.min()) if finite.size else -1.0
            hi = float(finite.max()) if finite.size else 1.0
            norm = TwoSlopeNorm(vcenter=0.0, vmin=min(lo, -1e-9), vmax=max(hi, 1e-9))
            im = ax.imshow(z, cmap="RdYlGn", norm=norm, aspect="auto", origin="lower")
            ax.set_xticks(range(z.shape[1]), xs, rotation=45, ha="right")
            ax.set_yticks(range(z.shape[0]), ys)
            ax.set_xlabel(x)
            ax.set_ylabel(y or "")
            ax.set_title(name)
            fig.colorbar(im, ax=ax, label=name)
        fig.suptitle(title)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
    else:
        raise UserError(f"--heatmap {path}: use a .html or .png file name")

"""Figures from saved runs: reads results only, never trains.

The two figures of the Cross Validated question "Truncated Back Propagation of LSTM with
K2 > K1" (https://stats.stackexchange.com/q/278806): online training loss against training
time and against time steps, sliding window in blue, single forward pass in red. Each
configuration is drawn as the median over its seeds with the interquartile range as a band,
after resampling every seed onto a common grid (see `bpttbench.results.median_band`); the
validation loss gets the same two figures when the runs evaluated it. The training loss is
smoothed exactly as `bpttbench report` smooths it (`bpttbench.results.smooth_curve`), so a
figure and the report's numbers come from the same curves.

Figures are drawn on matplotlib's Agg canvas directly, without pyplot, so nothing needs a
display and no global backend is switched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from bpttbench.defaults import OTHER_COLORS, SCHEME_COLORS, SMOOTH, TIME_UNITS
from bpttbench.errors import ResultsError
from bpttbench.files import atomic_write
from bpttbench.results import (
    aggregation_rows,
    complete_runs,
    corpus_facts,
    early_divergences,
    group_curves,
    median_band,
    nothing_to_show,
    ordered_groups,
    seed_curves,
)

LINESTYLES = ("-", "--", ":", "-.", (0, (5, 1, 1, 1)), (0, (1, 1)), (0, (8, 2)))

# x column: (axis label, what it is in words). train_s is each run's own clock (TrainConfig.clock): a
# figure over time holds runs of one clock, and its axis names it.
X_AXES = {
    "train_s": ("training time ({unit})", "training time"),
    "step": ("time steps", "time steps"),
}
METRICS = {
    "train_bpc": ("online training loss (bits/char)", "Online training loss", "loss"),
    "val_bpc": ("validation loss (bits/char)", "Validation loss", "val_loss"),
}
FILE_X = {"train_s": "time", "step": "iter"}


class PlotResult(list):
    """The written paths (a list), plus `skipped`: (path, reason) for every run or unit left out."""

    def __init__(self, paths: Iterable[Path] = (), skipped: Iterable[tuple[Path, str]] = ()):
        super().__init__(paths)
        self.skipped: list[tuple[Path, str]] = list(skipped)


def scheme_color(scheme: str, others: Sequence[str] = ()) -> str:
    if scheme in SCHEME_COLORS:
        return SCHEME_COLORS[scheme]
    others = sorted(set(others) - set(SCHEME_COLORS)) or [scheme]
    index = others.index(scheme) if scheme in others else 0
    return OTHER_COLORS[index % len(OTHER_COLORS)]


def _styles(groups: list[tuple[str, pd.DataFrame]]) -> dict[str, tuple[str, object]]:
    """(colour, line style) per label: colour by scheme, line style by rank within the scheme."""
    schemes = [rows["scheme"].iloc[0] for _, rows in groups]
    rank: dict[str, int] = {}
    out = {}
    for label, rows in groups:
        scheme = rows["scheme"].iloc[0]
        i = rank.get(scheme, 0)
        rank[scheme] = i + 1
        out[label] = (scheme_color(scheme, schemes), LINESTYLES[i % len(LINESTYLES)])
    return out


def _count_note(rows: pd.DataFrame) -> str:
    n_curves = rows["curve"].nunique()
    n_seeds = rows["seed"].nunique()
    text = f"{n_seeds} seed{'s' if n_seeds != 1 else ''}"
    if n_curves != n_seeds:
        text = f"{n_curves} runs of {text}"
    n_div = rows.loc[rows["diverged"], "curve"].nunique()
    if n_div == n_curves:
        text += ", diverged"
    elif n_div:
        text += f", {n_div} diverged"
    return f"({text})"


def _draw(ax, data: pd.DataFrame, *, x: str, smooth: int, logx: bool, optimum: float | None = None,
          levels: dict | None = None) -> bool:
    """Draw every configuration's median and band on ax (and the corpus's optimum, if known, as a
    dashed line; the n-gram reference levels, if given, as dotted ones); False if nothing could be drawn."""
    if optimum is not None:
        ax.axhline(optimum, color="0.25", linestyle="--", linewidth=1.2, label=f"optimum: entropy rate {optimum:.3f}")
    for (level, bpc), shade in zip((levels or {}).items(), ("0.75", "0.6", "0.45")):
        if bpc is not None and np.isfinite(bpc):
            ax.axhline(bpc, color=shade, linestyle=":", linewidth=1.2, label=f"{level} on this split: {bpc:.3f}")
    groups = ordered_groups(data)
    styles = _styles(groups)
    drawn = False
    any_diverged = False
    ends: list[tuple[float, float, str]] = []  # (x, y, colour) where a diverged seed's curve stops
    for label, rows in groups:
        color, ls = styles[label]
        curves = [(xs, ys) for xs, ys in seed_curves(aggregation_rows(rows), x, smooth) if len(xs)]
        if not curves:
            continue
        # Common grid: every seed's own x, from 0 to where the shortest seed ends.
        end = min(xs[-1] for xs, _ in curves)
        grid = np.unique(np.concatenate([xs for xs, _ in curves]))
        grid = grid[(grid >= 0) & (grid <= end)]
        med, q25, q75 = median_band(curves, grid)
        ok = np.isfinite(med)
        if logx:
            ok &= grid > 0
        if not ok.any():
            continue
        marker = "o" if ok.sum() <= 30 and data["metric"].iloc[0] == "val_bpc" else None
        ax.plot(grid[ok], med[ok], color=color, linestyle=ls, linewidth=1.8, marker=marker, markersize=3.5,
                label=f"{label} {_count_note(rows)}")
        if len(curves) > 1:
            ax.fill_between(grid[ok], q25[ok], q75[ok], color=color, alpha=0.18, linewidth=0)
        drawn = True
        ends.extend((xs[-1], ys[-1], color) for xs, ys in seed_curves(rows[rows["diverged"]], x, smooth) if len(xs))
    if ends:
        # Diverged seeds: an 'x' where each one's curve ends, never the garbage after it. A loss
        # already blowing up there would squash the other curves, so it sits on the top edge.
        bottom, top = ax.get_ylim()
        for xe, ye, color in ends:
            if logx and xe <= 0:
                continue
            ax.plot([xe], [min(ye, top)], linestyle="none", marker="x", markersize=9, markeredgewidth=2,
                    color=color, clip_on=False)
        ax.set_ylim(bottom, top)
        any_diverged = True
    if any_diverged:
        handles, labels = ax.get_legend_handles_labels()
        handles.append(Line2D([], [], linestyle="none", marker="x", markersize=8, markeredgewidth=2, color="0.3"))
        labels.append("where a seed diverged")
        ax.legend(handles, labels, fontsize="small", loc="upper right", framealpha=0.85)
    elif drawn:
        ax.legend(fontsize="small", loc="upper right", framealpha=0.85)
    return drawn


def _figure(data: pd.DataFrame, *, metric: str, x: str, smooth: int, logx: bool,
            optima: dict[str, float] | None = None, reference: dict[str, dict] | None = None) -> Figure | None:
    ylabel, what, _ = METRICS[metric]
    xlabel, xwhat = X_AXES[x]
    xlabel = xlabel.format(unit=TIME_UNITS.get(str(data["clock"].iloc[0]), "s"))
    fig = Figure(figsize=(8.5, 5.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    corpora = sorted(data["corpus"].astype(str).unique())
    # A generated corpus's entropy rate is the floor for every curve; drawn when the figure has one corpus.
    optimum = (optima or {}).get(corpora[0]) if len(corpora) == 1 else None
    # The n-gram levels are the validation split's: drawn on validation figures of one corpus.
    levels = (reference or {}).get(corpora[0]) if len(corpora) == 1 and metric == "val_bpc" else None
    if not _draw(ax, data, x=x, smooth=smooth if metric == "train_bpc" else 1, logx=logx, optimum=optimum,
                 levels=levels):
        return None
    corpus = f"corpus {corpora[0]}" if len(corpora) == 1 else f"corpora {', '.join(corpora)}"
    fig.suptitle(f"{what} vs {xwhat} — {corpus}")
    note = "median over seeds, band: interquartile range"
    if metric == "train_bpc" and smooth > 1:
        note += f"; step-weighted moving average over {smooth} log points"
    ax.set_title(note, fontsize="small", color="0.35")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logx:
        ax.set_xscale("log", nonpositive="mask")
    else:
        ax.set_xlim(left=0)
    ax.grid(True, alpha=0.3)
    return fig


def truncation_figure(data: pd.DataFrame) -> Figure | None:
    """k2_vs_iter: the truncation each run chose (metric `k2`, written by `adaptive`) against time
    steps, one line per seed, held between log points; None when no run recorded it."""
    rows = data[data["metric"] == "k2"]
    if rows.empty:
        return None
    fig = Figure(figsize=(8.5, 5.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    groups = ordered_groups(rows)
    styles = _styles(groups)
    for label, group in groups:
        color, ls = styles[label]
        for i, (xs, ys) in enumerate(seed_curves(group, "step")):
            ax.plot(xs, ys, drawstyle="steps-post", color=color, linestyle=ls, linewidth=1.4, alpha=0.85,
                    label=f"{label} {_count_note(group)}" if i == 0 else None)
    corpora = sorted(rows["corpus"].astype(str).unique())
    fig.suptitle(f"Chosen truncation vs time steps — corpus{'' if len(corpora) == 1 else 'a'} {', '.join(corpora)}")
    ax.set_title("the truncation in force at each log point, one line per seed", fontsize="small", color="0.35")
    ax.set_xlabel(X_AXES["step"][0])
    ax.set_ylabel("truncation k2 (steps)")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", loc="lower right", framealpha=0.85)
    return fig


def plot_runs(
    *paths: Path,
    out: Path | None = None,
    logx: bool = False,
    smooth: int | None = None,
    formats: Sequence[str] = ("png", "svg"),
) -> PlotResult:
    """Plot every complete run under any of paths (run, sweep or any folder of runs) in the same
    figures; returns the written files (a list) with `.skipped`.

    Writes loss_vs_time, loss_vs_iter and, when validation was recorded, val_loss_vs_time and
    val_loss_vs_iter, once per format, into out (default: the first path, or its folder if that
    is a manifest file). A run reached through several paths is drawn once.
    """
    paths = tuple(Path(p) for p in paths)
    where = ", ".join(str(p) for p in paths)
    smooth = SMOOTH if smooth is None else smooth
    if isinstance(smooth, bool) or not isinstance(smooth, int) or smooth < 1:
        raise ResultsError(f"smoothing must be a whole number of log points >= 1 (1 = none), got {smooth!r}")
    supported = FigureCanvasAgg(Figure()).get_supported_filetypes()
    formats = tuple(dict.fromkeys(f.lower().lstrip(".") for f in formats))
    bad = [f for f in formats if f not in supported]
    if bad or not formats:
        raise ResultsError(f"cannot write plot format(s) {', '.join(bad) or '(none)'}; choose from {', '.join(sorted(supported))}")

    complete, skipped = complete_runs(*paths)
    if not complete:
        raise ResultsError(f"no complete runs under {where} ({len(skipped)} skipped, e.g. {skipped[0][0]}: "
                           f"{skipped[0][1]}); plot a run that finished")

    data = group_curves(complete)
    corpora = corpus_facts(complete)
    optima = {name: c["optimum_bpc"] for name, c in corpora.items() if c.get("optimum_bpc") is not None}
    reference = {name: c["reference_bpc"] for name, c in corpora.items() if c.get("reference_bpc")}
    early = early_divergences(complete, data)
    skipped.extend((where, f"diverged at step {step} before its first log point, nothing to draw") for where, step in early)
    if not (data["metric"] == "train_bpc").any():
        raise nothing_to_show(where, early)

    if out is None:
        out = paths[0].parent if paths[0].is_file() else paths[0]
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ResultsError(f"could not create {out}: {exc.strerror or exc}; choose --out elsewhere") from exc

    written = PlotResult(skipped=skipped)
    for metric in ("train_bpc", "val_bpc"):
        rows = data[data["metric"] == metric]
        if rows.empty:
            continue
        clocks = sorted(rows["clock"].astype(str).unique())
        # Runs on different clocks never share a time axis: with both, one figure per clock.
        panels = [("step", rows, "")] + [("train_s", rows[rows["clock"] == c], f"_{c}" if len(clocks) > 1 else "")
                                         for c in clocks]
        for x, panel, suffix in sorted(panels, key=lambda p: p[0] != "train_s"):
            fig = _figure(panel, metric=metric, x=x, smooth=smooth, logx=logx, optima=optima, reference=reference)
            stem = f"{METRICS[metric][2]}_vs_{FILE_X[x]}{suffix}"
            if fig is None:  # say so: a figure missing without a word looks like a crash
                written.skipped.append((out / stem, f"nothing to draw: no configuration's seeds share a range of "
                                                    f"{X_AXES[x][1]}{' above 0' if logx else ''} (runs too short?)"))
                continue
            for fmt in formats:
                target = out / f"{stem}.{fmt}"
                meta = {"Date": None} if fmt == "svg" else None  # reproducible svg text
                # Text stays text in SVG: searchable and editable afterwards.
                with matplotlib.rc_context({"svg.fonttype": "none"}):
                    atomic_write(target, lambda f, fmt=fmt, meta=meta: fig.savefig(f, format=fmt, dpi=130, metadata=meta), binary=True)
                written.append(target)
    k2_fig = truncation_figure(data)
    if k2_fig is not None:
        written.extend(_save_figure(k2_fig, out, "k2_vs_iter", formats))
    return written


def _save_figure(fig: Figure, out: Path, stem: str, formats: Sequence[str]) -> list[Path]:
    """Write fig as out/stem.<format> for every format (svg text kept as text, without a date)."""
    paths = []
    for fmt in formats:
        target = out / f"{stem}.{fmt}"
        meta = {"Date": None} if fmt == "svg" else None
        with matplotlib.rc_context({"svg.fonttype": "none"}):
            atomic_write(target, lambda f, fmt=fmt, meta=meta: fig.savefig(f, format=fmt, dpi=130, metadata=meta), binary=True)
        paths.append(target)
    return paths

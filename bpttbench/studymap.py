"""The study's map: where does the answer change? single against sliding over k2, H and k1.

For every cell (k1, k2, H) of the map sweeps, paired by seed (same seed, same initial weights,
same text):
- time ratio: single's training time to a target validation loss over sliding's; below 1 single
  gets there first. The target is the highest of the lowest validation losses the cell's curves
  reach (every curve reaches it), so no time is extrapolated;
- per-step difference: single's online loss minus sliding's, averaged over the log points both
  reached after the burn-in (defaults.BURN_IN_FRACTION of them); below 0 single learns more per step.
Each is the median over seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bpttbench.defaults import BURN_IN_FRACTION, SMOOTH
from bpttbench.report.paired import common_steps_difference
from bpttbench.report.stats import first_crossing


@dataclass(frozen=True)
class MapCell:
    k1: int
    k2: int
    hidden: int
    seeds: int
    time_ratio: float  # median over seeds of single's time to target / sliding's; nan if unreached
    step_difference: float  # median over seeds of mean(single - sliding) online loss, bits/char
    target_bpc: float

    @property
    def k1_label(self) -> str:
        return "k1 = 1" if self.k1 == 1 else "k1 = k2 / 2"


def map_cells(data: pd.DataFrame, smooth: int = SMOOTH) -> list[MapCell]:
    """The map from tidy curves (results.group_curves) of single and sliding runs."""
    from bpttbench.results import smooth_curve

    cells = []
    data = data[data["scheme"].isin(("single", "sliding"))]
    for (k1, k2, hidden), cell in data.groupby(["k1", "k2", "hidden"]):
        val = cell[cell["metric"] == "val_bpc"]
        train = cell[cell["metric"] == "train_bpc"]
        curves = {}
        for (scheme, seed), rows in val.groupby(["scheme", "seed"]):
            rows = rows.sort_values("train_s")
            curves[scheme, seed] = (rows["train_s"].to_numpy(float), rows["value"].to_numpy(float))
        if not curves:
            continue
        target = max(float(np.min(y)) for _, y in curves.values())
        ratios, diffs = [], []
        for seed in sorted({s for _, s in curves}):
            if ("single", seed) in curves and ("sliding", seed) in curves:
                t_single = first_crossing(*curves["single", seed], target)
                t_sliding = first_crossing(*curves["sliding", seed], target)
                ratios.append(t_single / t_sliding if t_sliding > 0 else math.nan)
            pair = [train[(train["scheme"] == s) & (train["seed"] == seed)].sort_values("step") for s in ("single", "sliding")]
            if all(len(p) for p in pair):
                steps = [p["step"].to_numpy(float) for p in pair]
                smoothed = [smooth_curve(x, p["value"].to_numpy(float), smooth) for x, p in zip(steps, pair)]
                diffs.append(common_steps_difference(steps[0], smoothed[0], steps[1], smoothed[1], BURN_IN_FRACTION)[0])
        cells.append(MapCell(int(k1), int(k2), int(hidden), len(ratios),
                             float(np.median(ratios)) if ratios else math.nan,
                             float(np.median(diffs)) if diffs else math.nan, target))
    return cells


def cell_text(c: MapCell, between: str) -> str:
    """A cell's time ratio and per-step difference; "–" for what could not be measured (no common
    target, or no common log points after the burn-in)."""
    ratio = f"{c.time_ratio:.2f}×" if np.isfinite(c.time_ratio) else "–"
    diff = f"{c.step_difference:+.3f}" if np.isfinite(c.step_difference) else "–"
    return f"{ratio}{between}{diff}"


def map_table(cells: list[MapCell]) -> list[str]:
    """Markdown: one row per (k1, H), one column per k2, each cell `time ratio / per-step difference`."""
    k2s = sorted({c.k2 for c in cells})
    lines = ["| k1 | H | " + " | ".join(f"k2 = {k}" for k in k2s) + " |", "|---|---|" + "---|" * len(k2s)]
    by = {(c.k1_label, c.hidden, c.k2): c for c in cells}
    for k1_label in sorted({c.k1_label for c in cells}, key=lambda s: s != "k1 = 1"):
        for hidden in sorted({c.hidden for c in cells}):
            row = [k1_label.replace("k1 = ", ""), str(hidden)]
            for k2 in k2s:
                c = by.get((k1_label, hidden, k2))
                row.append("–" if c is None else cell_text(c, " / "))
            lines.append("| " + " | ".join(row) + " |")
    return lines


def plot_map(cells: list[MapCell], path: Path) -> Path:
    """Heat maps of log2(time ratio), one panel per k1 rule; each cell annotated with both numbers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bpttbench.files import atomic_write

    rules = sorted({c.k1_label for c in cells}, key=lambda s: s != "k1 = 1")
    k2s = sorted({c.k2 for c in cells})
    hs = sorted({c.hidden for c in cells})
    # constrained layout keeps the right panel's tick labels off the left panel and the colour bar
    fig, axes = plt.subplots(1, len(rules), figsize=(4.2 * len(rules) + 1.5, 3.8), squeeze=False, layout="constrained")
    by = {(c.k1_label, c.hidden, c.k2): c for c in cells}
    image = None
    for ax, rule in zip(axes[0], rules):
        grid = np.full((len(hs), len(k2s)), np.nan)
        for i, h in enumerate(hs):
            for j, k2 in enumerate(k2s):
                c = by.get((rule, h, k2))
                if c is not None and np.isfinite(c.time_ratio) and c.time_ratio > 0:
                    grid[i, j] = np.log2(c.time_ratio)
                    ax.text(j, i, cell_text(c, "\n"), ha="center", va="center", fontsize=8)
        image = ax.imshow(grid, cmap="RdBu_r", vmin=-2, vmax=2, origin="lower", aspect="auto")
        ax.set_xticks(range(len(k2s)), [str(k) for k in k2s])
        ax.set_yticks(range(len(hs)), [str(h) for h in hs])
        ax.set_xlabel("k2")
        if ax is axes[0][0]:
            ax.set_ylabel("hidden units H")
        ax.set_title(rule)
    fig.colorbar(image, ax=axes[0].tolist(), label="log2(single's time / sliding's time) to target")
    fig.suptitle("single vs sliding: time to a target validation loss (ratio) and per-step loss difference (bits/char)",
                 fontsize=9)
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=130), binary=True)
    plt.close(fig)
    return path

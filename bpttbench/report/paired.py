"""Whole curves compared seed by seed: the paired differences claims 1-3 are decided on.

A single point of a curve is noisy; the mean of a paired difference over a whole stretch of the
curve is not, and a seed of one scheme is a fair partner for the same seed of another (the same
initial weights, and the same text at the same step). Per shared seed:
- over the steps: the mean over the log points both curves recorded, after a burn-in of the first
  defaults.BURN_IN_FRACTION of them (early on every scheme is near the initial loss), of first's
  smoothed online loss minus second's;
- over time: the mean, over TIME_POINTS equally spaced training times, of first's curve minus
  second's, each linearly interpolated (never extrapolated). The times span the range every seed of
  both configurations covers, from its start or the end of the burn-in (the first BURN_IN_FRACTION
  of its end time), whichever is later, to its end; the same times for every seed. Read on the
  validation curves, and on the smoothed online curves for runs that recorded no validation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from bpttbench.config import LEGACY_VALUES
from bpttbench.defaults import TIME_UNITS
from bpttbench.report.stats import format_setting, value_at
from bpttbench.results import Run

LATE_FRACTION = 0.75  # "still improving": the smoothed loss fell by more than delta after this fraction of the steps


@dataclass
class Curve:
    """One (configuration, seed) unit's curves, and the numbers the report reads off them (`values`)."""

    id: str
    run: Run | None
    unit: dict
    label: str
    group: tuple  # its values of GROUP_KEY
    family: tuple  # its values of FAMILY_KEY
    scheme: str
    k1: int
    seed: int
    diverged: bool
    step: np.ndarray
    time: np.ndarray  # training seconds on the run's clock (TrainConfig.clock)
    raw: np.ndarray
    smooth: np.ndarray
    val_step: np.ndarray
    val_time: np.ndarray
    val: np.ndarray
    values: dict = field(default_factory=dict)

    @property
    def late_drop(self) -> float:
        """How much the loss fell over the last quarter of the steps: still improving if large."""
        if len(self.step) < 2:
            return math.nan
        return value_at(self.step, self.smooth, LATE_FRACTION * self.step[-1]) - self.values["final_train"]

    @property
    def val_late_drop(self) -> float:
        """The same on the validation curve, when it has at least 3 evaluations; NaN otherwise."""
        if len(self.val) < 3:
            return math.nan
        return value_at(self.val_step, self.val, LATE_FRACTION * self.val_step[-1]) - float(self.val[-1])

    @property
    def steps_per_s(self) -> float:
        clock = (self.unit.get("config") or {}).get("clock", LEGACY_VALUES["clock"])
        steps, seconds = self.unit.get("steps"), self.unit.get("cpu_s" if clock == "cpu" else "wall_s")
        if isinstance(steps, (int, float)) and isinstance(seconds, (int, float)) and seconds > 0 and steps > 0:
            return float(steps) / float(seconds)
        return float(self.step[-1] / self.time[-1]) if self.time[-1] > 0 else math.nan

    @property
    def budget(self) -> str:
        cfg = self.unit.get("config") or {}
        if cfg.get("budget_seconds") is not None:
            unit = TIME_UNITS[cfg.get("clock") or LEGACY_VALUES["clock"]]
            return f"{format_setting(float(cfg['budget_seconds']))} {unit}"
        if cfg.get("budget_steps") is not None:
            return f"{int(cfg['budget_steps']):,} steps"
        return "unknown"


# Training times the curves are compared at over time. Dense, because a validation curve jitters by
# 0.1-0.2 bits/char between evaluations a few seconds apart: the mean over 25 times approximates the
# time-average of the difference, which 5 samples of the jitter did not (on the first quiet claims
# run, 13 seeds of stdlib-docs, claim 3's interval went from [-0.072, +0.029] to [-0.055, -0.021]).
TIME_POINTS = 25

# name: (column title, unit, how pairs compare); every one is first minus second
PAIR_METRICS = {
    "steps_curve": ("online loss over the steps", "bits/char", "diff"),
    "val_time_curve": ("validation loss over time", "bits/char", "diff"),
    "time_curve": ("online loss over time", "bits/char", "diff"),
}


@dataclass(frozen=True)
class StepWindow:
    """The log points one seed's steps-curve difference was averaged over."""

    points: int  # log points kept after the burn-in
    skipped: int  # log points dropped as burn-in
    first: float  # first step kept
    last: float  # last step kept


def steps_difference(a: Curve, b: Curve, burn_in: float) -> tuple[float, StepWindow | None]:
    """(mean of a − b smoothed online loss over their common log points after the burn-in, where)."""
    return common_steps_difference(a.step, a.smooth, b.step, b.smooth, burn_in)


def common_steps_difference(steps_a: np.ndarray, values_a: np.ndarray, steps_b: np.ndarray, values_b: np.ndarray,
                            burn_in: float) -> tuple[float, StepWindow | None]:
    """(mean of values_a − values_b over the steps both have, after dropping the first burn_in
    fraction of them; where it was read), or (NaN, None) when they share no step."""
    common, ia, ib = np.intersect1d(steps_a, steps_b, return_indices=True)
    if not len(common):
        return math.nan, None
    skip = int(len(common) * burn_in)
    diff = np.asarray(values_a)[ia][skip:] - np.asarray(values_b)[ib][skip:]
    return float(np.mean(diff)), StepWindow(len(diff), skip, float(common[skip]), float(common[-1]))


def common_times(curves: list[tuple[np.ndarray, np.ndarray]], burn_in: float, n: int = TIME_POINTS) -> np.ndarray:
    """n equally spaced times that every (times, values) curve covers, after the burn-in; empty if
    the curves share no time. One time when they share exactly one."""
    spans = [(float(x[0]), float(x[-1])) for x, _ in curves if len(x)]
    if not spans:
        return np.empty(0)
    lo, hi = max(s for s, _ in spans), min(e for _, e in spans)
    if lo > hi:
        return np.empty(0)
    start = min(max(lo, burn_in * hi), hi)
    return np.array([hi]) if start == hi else np.linspace(start, hi, n)


def time_difference(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], times: np.ndarray) -> float:
    """Mean over times of curve a − curve b, each interpolated; NaN without times."""
    if not len(times) or not len(a[0]) or not len(b[0]):
        return math.nan
    return float(np.mean(np.interp(times, *a) - np.interp(times, *b)))


@dataclass
class PairedCurves:
    """The whole-curve differences of one comparison: per metric, seed -> value; and where they were read."""

    values: dict[str, dict[int, float]]
    step_windows: dict[int, StepWindow]  # per seed
    times: dict[str, np.ndarray]  # "val_time_curve" / "time_curve": the times the curves were read at


def _pairs(a: list[Curve], b: list[Curve], seed: int) -> list[tuple[Curve, Curve]]:
    """Every pairing of seed's curves (one each, unless a seed was run more than once)."""
    return [(x, y) for x in a if x.seed == seed for y in b if y.seed == seed]


def paired_curves(a: list[Curve], b: list[Curve], seeds: list[int], burn_in: float) -> PairedCurves:
    """First (a) minus second (b) over whole curves, per shared seed; a seed run more than once
    counts as the median over its pairings."""
    chosen = [c for c in a + b if c.seed in seeds]
    val = {id(c): (c.val_time, c.val) for c in chosen}
    online = {id(c): (c.time, c.smooth) for c in chosen}
    times = {"val_time_curve": common_times([v for v in val.values() if len(v[0])], burn_in),
             "time_curve": common_times(list(online.values()), burn_in)}
    values: dict[str, dict[int, float]] = {m: {} for m in PAIR_METRICS}
    windows: dict[int, StepWindow] = {}
    for seed in seeds:
        per: dict[str, list[float]] = {m: [] for m in PAIR_METRICS}
        for x, y in _pairs(a, b, seed):
            d, window = steps_difference(x, y, burn_in)
            per["steps_curve"].append(d)
            if window is not None:
                windows.setdefault(seed, window)
            per["val_time_curve"].append(time_difference(val[id(x)], val[id(y)], times["val_time_curve"]))
            per["time_curve"].append(time_difference(online[id(x)], online[id(y)], times["time_curve"]))
        for m, vs in per.items():
            kept = [v for v in vs if not math.isnan(v)]
            values[m][seed] = float(np.median(kept)) if kept else math.nan
    return PairedCurves(values, windows, times)


def describe_steps(windows: dict[int, StepWindow], burn_in: float) -> str:
    """Where the steps-curve differences were read, in words."""
    if not windows:
        return "no log points in common"
    ws = list(windows.values())
    points = sorted({w.points for w in ws})
    count = f"{points[0]:,}" if len(points) == 1 else f"{points[0]:,}–{points[-1]:,}"
    return (f"mean over the {count} common log points from step {min(w.first for w in ws):,.0f} to "
            f"{max(w.last for w in ws):,.0f}, after a burn-in of the first {burn_in:.0%} of them")


def describe_times(times: np.ndarray) -> str:
    """The training times the time curves were read at, in words."""
    if not len(times):
        return "the curves share no training time"
    if len(times) == 1:
        return f"at {times[0]:.3g} s, the only time every seed's curve covers"
    return f"mean over {len(times)} equally spaced times from {times[0]:.3g} s to {times[-1]:.3g} s"

"""Seed curves read from run directories, and the families of configurations compared with each other.

A curve is one (configuration, seed) unit's online and validation loss; a configuration is
results.GROUP_KEY; a family is every configuration that differs only in scheme and k1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bpttbench.config import LEGACY_VALUES, UNTRUNCATED_SCHEMES
from bpttbench.defaults import TIME_UNITS
from bpttbench.report.paired import PAIR_METRICS, Curve, PairedCurves, paired_curves
from bpttbench.report.stats import (
    Interval,
    interval_for,
    mean_interval,
    median_interval,
    first_crossing,
    format_seeds,
    format_setting,
    median_or_nan,
    paired,
    trailing_mean,
    value_at,
)
from bpttbench.results import GROUP_KEY, Run, config_sort_key, smooth_curve
from bpttbench.scheme_names import effective_k2

FAMILY_KEY = tuple(c for c in GROUP_KEY if c not in ("scheme", "k1"))
# The final validation loss is the mean of this last fraction of the evaluations (at least 1). Half, not
# a quarter: consecutive evaluations jitter by 0.1-0.2 bits/char, so the mean needs many of them (on the
# first quiet claims run the per-seed spread of claim 4 fell from 0.050 to 0.033); whether the loss was
# still falling is checked separately, over the last quarter of the steps (LATE_FRACTION).
VAL_TAIL_FRACTION = 0.5
FIGURE_STEMS = ("loss_vs_time", "loss_vs_iter", "val_loss_vs_time", "val_loss_vs_iter")  # what `plot` draws

# name: (column title, unit, how pairs compare: "diff" first minus second, or "ratio" first / second)
METRICS = {
    "final_train": ("final online loss", "bits/char", "diff"),
    "final_val": ("final validation loss", "bits/char", "diff"),
    "at_time": ("online loss at T", "bits/char", "diff"),
    "val_at_time": ("validation loss at T", "bits/char", "diff"),
    "at_steps": ("online loss at N", "bits/char", "diff"),
    "time_to_target": ("time to target", "s", "diff"),
    "steps_to_target": ("steps to target", "steps", "diff"),
    "steps_per_s": ("steps/s", "steps/s", "ratio"),
}
ALL_METRICS = {**METRICS, **PAIR_METRICS}  # a comparison has both: METRICS paired by seed, and the whole curves


@dataclass
class GroupSummary:
    """One configuration (GROUP_KEY) within a family: its seeds and their statistics."""

    label: str
    scheme: str
    k1: int
    config: dict
    seeds: list[int]
    diverged: list[int]  # seeds left out because they diverged
    stats: dict[str, Interval]
    compile_s: float  # median over seeds, when the manifest has it
    late_drop: float  # median over seeds of the smoothed loss's fall over the last quarter of the steps
    val_late_drop: float  # the same for the validation loss (NaN with fewer than 3 evaluations)


@dataclass
class Comparison:
    """First minus second (ratio first/second for steps/s), paired by seed."""

    first: GroupSummary
    second: GroupSummary
    seeds: list[int]
    stats: dict[str, Interval]  # ALL_METRICS
    max_abs_step_diff: dict[int, float]  # per seed: largest |Δ online loss| at the log steps both have
    curves: PairedCurves | None = None  # where the whole-curve differences (PAIR_METRICS) were read

    @property
    def name(self) -> str:
        return f"{self.first.label} − {self.second.label}"


@dataclass
class Family:
    """Configurations compared with each other: the same configuration but for scheme and k1."""

    key: dict
    label: str
    at_time: float
    at_time_source: str
    at_steps: float
    at_steps_source: str
    val_at_time_source: str
    target: float
    target_source: str
    budgets: list[str] = field(default_factory=list)  # the units' budgets, e.g. ['120 s']
    optimum: float | None = None  # the corpus's entropy rate, bits/char, when it is generated with one known
    groups: list[GroupSummary] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)

    @property
    def time_unit(self) -> str:
        """The unit of this family's training times: 'CPU s' or 'wall s' (its configurations' clock)."""
        return TIME_UNITS[self.key.get("clock") or LEGACY_VALUES["clock"]]

    def comparison(self, first: str, second: str) -> list[Comparison]:
        """Comparisons of scheme `first` against scheme `second` at the same k1."""
        return [c for c in self.comparisons if c.first.scheme == first and c.second.scheme == second
                and c.first.k1 == c.second.k1]


# ----------------------------------------------------------------------------- reading curves


def tail_evaluations(val: np.ndarray, fraction: float = VAL_TAIL_FRACTION) -> float:
    """Mean of the last ceil(fraction · n) of n evaluations (at least the last one); NaN without any."""
    if not len(val):
        return math.nan
    return float(np.mean(val[-max(1, math.ceil(fraction * len(val))):]))


def plain_value(v: Any) -> Any:
    """numpy scalars as Python ones, so keys compare, print and serialise plainly."""
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


def _sorted_metric(rows: pd.DataFrame, metric: str) -> pd.DataFrame:
    rows = rows[rows["metric"] == metric].sort_values("step", kind="stable")
    return rows.drop_duplicates("step", keep="last")


def read_curves(runs: list[Run], data: pd.DataFrame, smooth: int) -> list[Curve]:
    """Every seed curve of results.group_curves' data, smoothed over `smooth` log points."""
    units = {f"{run.path}#{u.get('key')}": (run, u) for run in runs for u in run.units}
    out = []
    for cid, rows in data.groupby("curve", sort=False):
        run, unit = units.get(cid, (None, {}))
        first = rows.iloc[0]
        train = _sorted_metric(rows, "train_bpc")
        if train.empty:
            continue
        val = _sorted_metric(rows, "val_bpc")
        step = train["step"].to_numpy(dtype=float)
        raw = train["value"].to_numpy(dtype=float)
        config = {c: plain_value(first[c]) for c in GROUP_KEY}
        config["k2"] = effective_k2(config["scheme"], config["k2"])  # untruncated runs differing only in k2 are one
        out.append(Curve(
            id=cid, run=run, unit=unit or {}, label=str(first["label"]), group=tuple(config[c] for c in GROUP_KEY),
            family=tuple(config[c] for c in FAMILY_KEY),
            scheme=str(first["scheme"]), k1=int(first["k1"]), seed=int(first["seed"]),
            diverged=bool(rows["diverged"].any()),
            step=step, time=train["train_s"].to_numpy(dtype=float), raw=raw, smooth=smooth_curve(step, raw, smooth),
            val_step=val["step"].to_numpy(dtype=float), val_time=val["train_s"].to_numpy(dtype=float),
            val=val["value"].to_numpy(dtype=float),
        ))
    return out


def per_seed(curves: list[Curve], metric: str) -> dict[int, float]:
    """Seed -> value (the median over that seed's repeats, when a seed was run more than once)."""
    by_seed: dict[int, list[float]] = {}
    for c in curves:
        by_seed.setdefault(c.seed, []).append(c.values[metric])
    out = {}
    for seed, vals in sorted(by_seed.items()):
        finite_or_inf = [v for v in vals if not math.isnan(v)]
        out[seed] = float(np.median(finite_or_inf)) if finite_or_inf else math.nan
    return out


def sort_key(v: Any) -> tuple:
    """Numbers before text, numbers by value: the order families and tables are listed in."""
    if isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v)):
        return (0, float(v), "")
    return (1, 0.0, str(v))


def by_key(curves: list[Curve], key) -> dict[tuple, list[Curve]]:
    """The curves grouped by key(curve), in the order they first appear."""
    out: dict[tuple, list[Curve]] = {}
    for c in curves:
        out.setdefault(key(c), []).append(c)
    return out


def family_label(key: dict, *, online_only: bool = False) -> str:
    """The family's corpus and settings; k2 is left out when only rtrl/uoro (which do not use it) are in it."""
    k2 = "no truncation" if online_only else f"k2={format_setting(key['k2'])}"
    return (f"{key['corpus']} · {k2} · inject {key['inject']} · hidden {format_setting(key['hidden'])} · "
            f"batch {format_setting(key['batch'])} · {key['optimizer']} lr={format_setting(key['lr'])} · "
            f"{key.get('clock', LEGACY_VALUES['clock'])} clock")


# ----------------------------------------------------------------------------- one family


def build_families(curves: list[Curve], settings: dict, warnings: list[str]) -> dict[tuple, Family]:
    """Family key -> Family, in the report's order (by corpus, then k2, ...)."""
    grouped = by_key(curves, lambda c: c.family)
    return {k: build_family(dict(zip(FAMILY_KEY, k)), grouped[k], settings, warnings)
            for k in sorted(grouped, key=lambda k: tuple(sort_key(v) for v in k))}


def build_family(key: dict, curves: list[Curve], settings: dict, warnings: list[str]) -> Family:
    label = family_label(key, online_only=all(c.scheme in UNTRUNCATED_SCHEMES for c in curves))
    live = [c for c in curves if not c.diverged]
    for c in curves:
        if c.diverged:
            at = c.unit.get("diverged_at_step")
            warnings.append(f"{c.label} seed {c.seed} diverged" + (f" at step {at:,}" if isinstance(at, int) else "")
                            + f" ({c.run.path if c.run else '?'}); it is left out of the statistics")
    fam = _reference_points(key, label, curves, live, settings)
    corpora = [c.run.manifest.get("corpus") for c in curves if c.run is not None]
    fam.optimum = next((c.get("optimum_bpc") for c in corpora if isinstance(c, dict) and c.get("optimum_bpc")), None)
    equal_time = _equal_time_budgets(settings, fam.budgets)
    for c in curves:
        c.values["final_train"] = trailing_mean(c.step, c.raw, settings["smooth"])
        c.values["final_val"] = tail_evaluations(c.val)
        c.values["at_time"] = value_at(c.time, c.smooth, fam.at_time)
        last_val = float(c.val[-1]) if len(c.val) else math.nan
        c.values["val_at_time"] = last_val if equal_time else value_at(c.val_time, c.val, fam.at_time)
        c.values["at_steps"] = value_at(c.step, c.smooth, fam.at_steps)
        c.values["steps_per_s"] = c.steps_per_s
        c.values["time_to_target"] = first_crossing(c.time, c.smooth, fam.target)
        c.values["steps_to_target"] = first_crossing(c.step, c.smooth, fam.target)
    for what, x, src in (("time", fam.at_time, fam.at_time_source), ("steps", fam.at_steps, fam.at_steps_source)):
        missing = [c for c in live if math.isnan(c.values["at_time" if what == "time" else "at_steps"])]
        if missing and src == "given":
            warnings.append(f"{label}: {len(missing)} seed(s) do not cover {what} {x:g} (never extrapolated), e.g. "
                            f"{missing[0].label} seed {missing[0].seed}; they are left out of the loss at equal {what}")
    live_by_group = _summarize_groups(fam, curves, settings, warnings)
    _compare_groups(fam, live_by_group, settings, warnings)
    return fam


def _equal_time_budgets(settings: dict, budgets: list[str]) -> bool:
    """Every unit had the same time budget and no T was given: T is then where they all stopped."""
    return settings["at_time"] is None and len(budgets) == 1 and budgets[0].endswith(" s")


def _reference_points(key: dict, label: str, curves: list[Curve], live: list[Curve], settings: dict) -> Family:
    """The family with its equal time T, equal steps N and target loss: given, or read off every live seed."""
    if settings["at_time"] is not None:
        T, T_src = float(settings["at_time"]), "given"
    else:
        T = min((float(c.time[-1]) for c in live), default=math.nan)
        T_src = "the smallest training time every seed reached"
    if settings["at_steps"] is not None:
        N, N_src = float(settings["at_steps"]), "given"
    else:
        N = min((float(c.step[-1]) for c in live), default=math.nan)
        N_src = "the smallest step count every seed reached"
    budgets = sorted({c.budget for c in curves})
    if _equal_time_budgets(settings, budgets):
        val_src = f"the last evaluation, at the end of the equal {budgets[0]} budgets"
    else:
        val_src = "interpolated between evaluations, never extrapolated"
    if settings["target_loss"] is not None:
        target, target_src = float(settings["target_loss"]), "given"
    else:
        # The worst seed's best: the highest over seeds of the lowest smoothed loss each reached.
        worst = max(live, key=lambda c: float(np.min(c.smooth)), default=None)
        target = float(np.min(worst.smooth)) if worst else math.nan
        target_src = (f"the highest, over every seed, of the lowest smoothed loss it reached ({worst.label} seed "
                      f"{worst.seed}), so every seed reaches it" if worst else "no live seed")
    return Family(key=key, label=label, at_time=T, at_time_source=T_src, at_steps=N, at_steps_source=N_src,
                  val_at_time_source=val_src, target=target, target_source=target_src, budgets=budgets)


def _summarize_groups(fam: Family, curves: list[Curve], settings: dict, warnings: list[str]) -> dict[str, list[Curve]]:
    """Fill fam.groups, one GroupSummary per configuration; returns each one's live curves by label."""
    grouped = by_key(curves, lambda c: c.group)
    live_by_group: dict[str, list[Curve]] = {}
    for g in sorted(grouped, key=lambda g: config_sort_key(*g)):
        cs = grouped[g]
        ok = [c for c in cs if not c.diverged]
        compile_s = [c.unit.get("compile_s") for c in ok if isinstance(c.unit.get("compile_s"), (int, float))]
        summary = GroupSummary(
            label=cs[0].label, scheme=cs[0].scheme, k1=cs[0].k1, config=dict(zip(GROUP_KEY, g)),
            seeds=sorted({c.seed for c in ok}), diverged=sorted({c.seed for c in cs if c.diverged}),
            stats={m: median_interval(per_seed(ok, m).values()) for m in METRICS},
            compile_s=median_or_nan(compile_s),
            late_drop=median_or_nan([c.late_drop for c in ok if not math.isnan(c.late_drop)]),
            val_late_drop=median_or_nan([c.val_late_drop for c in ok if not math.isnan(c.val_late_drop)]))
        fam.groups.append(summary)
        live_by_group[summary.label] = ok
        if len(summary.seeds) == 1:
            warnings.append(f"{summary.label} ({fam.label}) rests on a single seed: it has no interval, and no verdict "
                            "rests on it alone; run more with --seeds")
        repeats = [s for s in summary.seeds if sum(c.seed == s for c in ok) > 1]
        if repeats:
            warnings.append(f"{summary.label} ({fam.label}): {format_seeds(repeats)} appear in more than one run; "
                            "each seed counts once, as the median of its repeats")
    return live_by_group


def _largest_step_difference(a: Curve, b: Curve) -> float:
    """The largest |a − b| online loss at the log steps both recorded; NaN if they share none."""
    common, ia, ib = np.intersect1d(a.step, b.step, return_indices=True)
    return float(np.max(np.abs(a.raw[ia] - b.raw[ib]))) if len(common) else math.nan


def _compare_groups(fam: Family, live: dict[str, list[Curve]], settings: dict, warnings: list[str]) -> None:
    """Fill fam.comparisons: pairs of configurations that differ in scheme or in k1, not both (later in the scheme
    order minus earlier), paired by seed."""
    for j, second in enumerate(fam.groups):
        for first in fam.groups[j + 1:]:
            # A paired comparison varies one thing: the scheme at equal k1 (what the claims read), or k1
            # within a scheme. chunked (k1 = k2) against an online scheme at k1 = 1 varies both.
            if first.k1 != second.k1 and first.scheme != second.scheme:
                continue
            a, b = live[first.label], live[second.label]
            shared = sorted(set(first.seeds) & set(second.seeds))
            if not shared:
                continue
            # a seed that diverged in one of the two was warned about already, as its own line
            diverged = set(first.diverged) | set(second.diverged)
            unpaired = sorted(s for s in set(first.seeds) ^ set(second.seeds) if s not in diverged)
            if unpaired:
                verb = "has no partner and is" if len(unpaired) == 1 else "have no partner and are"
                warnings.append(f"{first.label} vs {second.label} ({fam.label}): {format_seeds(unpaired)} {verb} "
                                "left out of the paired comparison")
            stats = {m: interval_for(paired(per_seed(a, m), per_seed(b, m), shared, kind), kind)
                     for m, (_, _, kind) in METRICS.items()}
            whole = paired_curves(a, b, shared, settings["burn_in"])
            stats.update({m: mean_interval([whole.values[m][s] for s in shared]) for m in PAIR_METRICS})
            step_diff = {s: _largest_step_difference(next(c for c in a if c.seed == s), next(c for c in b if c.seed == s))
                         for s in shared}
            comp = Comparison(first=first, second=second, seeds=shared, stats=stats, max_abs_step_diff=step_diff,
                              curves=whole)
            fam.comparisons.append(comp)
            if len(shared) == 1:
                warnings.append(f"the comparison {comp.name} ({fam.label}) rests on a single seed; run more with --seeds")


# ----------------------------------------------------------------------------- the runs behind the curves


def machine_and_software(run: Run) -> tuple[str, str]:
    """(machine, software) descriptions of a run; 'unknown' parts where the manifest lacks them."""
    m = run.manifest.get("machine")
    m = m if isinstance(m, dict) else {}

    def get(k):
        v = m.get(k)
        return "unknown" if v in (None, "") else str(v)

    machine = f"{get('cpu')} ({get('cores')} cores, host {get('hostname')})"
    version = run.manifest.get("bpttbench_version") or m.get("bpttbench") or "unknown"
    software = f"bpttbench {version}, Python {get('python')}, numpy {get('numpy')}, numba {get('numba')}"
    return machine, software


def _family_run_warnings(label: str, curves: list[Curve]) -> list[str]:
    out = []
    runs = {c.run.path: c.run for c in curves if c.run is not None}
    machines: dict[str, list[str]] = {}
    software: dict[str, list[str]] = {}
    for run in runs.values():
        mach, soft = machine_and_software(run)
        machines.setdefault(mach, []).append(run.path.name)
        software.setdefault(soft, []).append(run.path.name)
    if any("unknown" in m for m in machines):
        out.append(f"{label}: the machine of some runs is unknown (no 'machine' in their manifest), so timings "
                   "may not be comparable")
    if len(machines) > 1:
        what = "; ".join(f"{m}: {', '.join(sorted(r))}" for m, r in sorted(machines.items()))
        out.append(f"{label}: runs were made on different machines ({what}); comparisons in time mix machines")
    if len(software) > 1:
        what = "; ".join(f"{s}: {', '.join(sorted(r))}" for s, r in sorted(software.items()))
        out.append(f"{label}: runs were made with different software versions ({what})")
    budgets: dict[str, set[str]] = {}
    for c in curves:
        budgets.setdefault(c.budget, set()).add(c.label)
    if len(budgets) > 1:
        what = "; ".join(f"{b}: {', '.join(sorted(ls))}" for b, ls in sorted(budgets.items()))
        out.append(f"{label}: the budgets differ ({what}); compare at equal time/steps, not final losses")
    elif "steps" in next(iter(budgets)):
        out.append(f"{label}: the runs had step budgets, so faster schemes stopped earlier in time: the final losses "
                   "are at equal steps, and loss at equal time is at the slowest scheme's end")
    dtypes = {str((c.unit.get('config') or {}).get('dtype', 'unknown')) for c in curves}
    if len(dtypes) > 1:
        out.append(f"{label}: seeds were run in different dtypes ({', '.join(sorted(dtypes))}) and are pooled")
    return out


def run_warnings(curves: list[Curve], families: dict[tuple, Family]) -> list[str]:
    """Per family: runs from different machines, software or budgets, unknown machines, mixed dtypes."""
    grouped = by_key(curves, lambda c: c.family)
    return [w for fkey, cs in grouped.items() for w in _family_run_warnings(families[fkey].label, cs)]


def notes(runs: list[Run], curves: list[Curve]) -> list[str]:
    """Facts about the runs for the report's first line: how many, which corpora, machines and software."""
    corpora = sorted({str(c.family[FAMILY_KEY.index('corpus')]) for c in curves})
    machines = sorted({machine_and_software(r)[0] for r in runs})
    software = sorted({machine_and_software(r)[1] for r in runs})
    n_units = len(curves)
    return [
        f"{len(runs)} complete run{'s' if len(runs) != 1 else ''}, {n_units} seed curve{'s' if n_units != 1 else ''}; "
        f"corpus {', '.join(corpora)}",
        f"machine: {'; '.join(machines)}",
        f"software: {'; '.join(software)}",
    ]


def figures(paths: list[Path], runs: list[Run]) -> list[Path]:
    """The figures `plot` leaves next to the runs (or in the folders the report was asked for)."""
    folders = [p.parent if p.is_file() else p for p in paths] + [r.path for r in runs]
    out: list[Path] = []
    for folder in dict.fromkeys(folders):
        for stem in FIGURE_STEMS:
            p = folder / f"{stem}.png"
            if p.is_file() and p not in out:
                out.append(p)
    return out

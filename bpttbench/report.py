"""The report: what saved runs say about the question's claims, with numbers and uncertainty.

Reads run directories the way `plot` does (results.load_runs / split_complete / group_curves)
and, per configuration, summarises every seed's curve by a few numbers: final online loss,
final validation loss, loss at equal wall-clock time, loss at equal steps, time and steps to a
target loss, steps per second. Each is a median over seeds with a 95% percentile-bootstrap
interval (resampling seeds, a fixed RNG seed, so the same runs give the same report).

Schemes run with the same seed start from the same initial weights on the same stream, so they
are compared in pairs: per seed, the difference first-minus-second, then the median of the
differences and its interval. The claims of the Cross Validated question "Truncated Back
Propagation of LSTM with K2 > K1" (https://stats.stackexchange.com/q/278806) are then judged by
stated rules on those paired differences, and on `gradcheck.csv` for the gradient claims.

Definitions used throughout (they are also written into report.md):
- the online loss curve is smoothed by a step-weighted centred moving average over `smooth`
  log points that narrows symmetrically near the ends (so it never lags where a curve stops);
  the final online loss is the mean over the last `smooth` log points;
- a family is the set of configurations compared with each other: same corpus, k2, inject,
  hidden, batch, optimizer and lr, any scheme and k1;
- equal time T / equal steps N default to the smallest training time / step count reached by
  every seed of the family (so nothing is extrapolated); the target loss defaults to the
  highest, over the family's seeds, of the lowest smoothed loss each reached, so every seed
  reaches it (the worst final loss, read so that noise cannot put it out of reach);
- online losses are compared at equal steps (same seed = same text at the same step), never
  as the verdict at equal time: there the schemes are at different places in the stream, and
  text whose difficulty varies along the stream would decide instead of the models; "ahead per
  second" and "same minimum" are judged on the validation loss (the same held-out text for
  every model) whenever the runs recorded it;
- diverged seeds are left out of the statistics (and listed in the warnings);
- rtrl and uoro do not use k2: their runs are grouped under k2 = 1 whatever k2 they recorded.

On a generated corpus (synthetic.py) the manifest carries the process's entropy rate, the best
loss any predictor reaches in the long run. The report then gives each configuration's gap to it:
the final online loss, as the step-weighted mean over the last GAP_FRACTION of the run's steps,
minus the optimum (online loss, because the validation loss is read from a zero state, which on
lag:L was found misleading). With several k2 it tabulates scheme x k2, and on lag:L, where a
predictor that forgets the cue loses log2(M)/(L+1) bits/char (from the manifest's generator
parameters), it says from which k2 on each truncated scheme's gap is below that cost: where it
stops learning the dependency.

References:
- R. J. Williams and J. Peng, "An efficient gradient-based algorithm for on-line training of
  recurrent network trajectories", Neural Computation 2(4), 1990.
- B. Efron and R. Tibshirani, "An Introduction to the Bootstrap", 1993 (percentile intervals).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from bpttbench.config import ONLINE_SCHEMES
from bpttbench.errors import ResultsError
from bpttbench.results import (
    complete_runs,
    step_weights,
    smooth_curve,
    GROUP_KEY,
    ONLINE_K2,
    Run,
    atomic_write,
    config_sort_key,
    early_divergences,
    group_curves,
    nothing_to_show,
)

REPORT = "report.md"
GRADCHECK = "gradcheck.csv"
GRADCHECK_MANIFEST = "gradcheck.json"
GRADCHECK_COLUMNS = ("scheme", "k1", "k2", "lr", "optimizer", "seed", "step", "updates", "tensor", "estimator",
                     "cosine", "rel_error")
# Columns of gradcheck.csv that tell configurations apart, when present (bpttbench.fidelity.COLUMNS).
GRADCHECK_CONFIG = ("corpus", "scheme", "k1", "k2", "inject", "hidden", "batch", "dtype", "optimizer", "lr", "clip")
GRADCHECK_FIGURES = ("gradcheck_error_vs_step.png", "gradcheck_error_vs_k2.png")

# Defaults, in one place.
DEFAULT_DELTA = 0.05  # bits/char: "about the same" means the paired difference stays within ±delta
DEFAULT_BOOTSTRAP = 2000  # resamples of the seeds
DEFAULT_SMOOTH = 5  # log points in the moving average, as in the figures (plot.DEFAULT_SMOOTH)
IDENTICAL_TOL = 1e-6  # bits/char: "identical" curves differ by no more than this at any log point
COSINE_MIN = 0.99  # a "very good approximation" has cosine similarity at least this with the exact gradient
EXACT_TOL = 1e-6  # relative error below which a gradient counts as exact (the gradcheck's own fd tolerance)
LATE_FRACTION = 0.75  # "still improving": the smoothed loss fell by more than delta after this fraction of the steps
GAP_FRACTION = 0.1  # the gap to the optimum reads the mean online loss over this last fraction of each run's steps

FAMILY_KEY = tuple(c for c in GROUP_KEY if c not in ("scheme", "k1"))

SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_MEASURED, MIXED = (
    "supported", "contradicted", "inconclusive", "not measured", "mixed")

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


# ----------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class Interval:
    """A median over n values with its 95% bootstrap interval (lo, hi); NaN where undefined
    (no values; or one value, which has no interval). inf means "not reached"."""

    median: float
    lo: float
    hi: float
    n: int
    values: tuple = ()  # the values the median is over, in seed order

    def to_dict(self) -> dict:
        return {"median": self.median, "lo": self.lo, "hi": self.hi, "n": self.n, "values": list(self.values)}


def quantile(values: np.ndarray, q: float) -> float:
    """Linear-interpolation quantile (numpy's default) that also copes with +inf: numpy's own
    gives NaN when it interpolates with weight 0 towards an infinite neighbour."""
    x = np.sort(np.asarray(values, dtype=float))
    pos = q * (len(x) - 1)
    i = int(math.floor(pos))
    frac = pos - i
    a, b = x[i], x[min(i + 1, len(x) - 1)]
    if frac == 0 or a == b:
        return float(a)
    return float(a + (b - a) * frac)


def bootstrap_median(values: Iterable[float], *, n_boot: int = DEFAULT_BOOTSTRAP, seed: int = 0) -> Interval:
    """Median of the finite-or-infinite values (NaN ones are dropped) and its 95% percentile
    bootstrap interval: n_boot resamples with replacement, the 2.5th and 97.5th percentiles of
    their medians. A fresh generator per call, so a statistic never depends on which others
    were computed before it."""
    kept = tuple(float(v) for v in values if not (isinstance(v, float) and math.isnan(v)) and v is not None)
    v = np.asarray(kept, dtype=float)
    n = len(v)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0, kept)
    med = float(np.median(v))
    if n == 1:
        return Interval(med, math.nan, math.nan, 1, kept)
    rng = np.random.default_rng(seed)
    medians = np.median(v[rng.integers(0, n, size=(n_boot, n))], axis=1)
    return Interval(med, quantile(medians, 0.025), quantile(medians, 0.975), n, kept)


def trailing_mean(steps: np.ndarray, values: np.ndarray, window: int) -> float:
    """Mean online loss over the steps of the last `window` log points (step-weighted)."""
    values = np.asarray(values, dtype=float)[-max(window, 1):]
    w = step_weights(steps)[-max(window, 1):]
    return float(np.sum(values * w) / np.sum(w)) if np.sum(w) > 0 else float(values[-1])


def value_at(xs: np.ndarray, ys: np.ndarray, x: float) -> float:
    """Linear interpolation of the curve at x; NaN outside the curve's own x range."""
    if not len(xs) or x < xs[0] or x > xs[-1]:
        return math.nan
    return float(np.interp(x, xs, ys))


def first_crossing(xs: np.ndarray, ys: np.ndarray, target: float) -> float:
    """The first x at which the curve is at or below target, linearly interpolated between the
    two log points around the crossing; the first x if it starts there; inf if never."""
    below = np.flatnonzero(np.asarray(ys) <= target)
    if not len(below):
        return math.inf
    i = int(below[0])
    if i == 0:
        return float(xs[0])
    y0, y1 = ys[i - 1], ys[i]
    return float(xs[i - 1] + (y0 - target) / (y0 - y1) * (xs[i] - xs[i - 1]))


# ----------------------------------------------------------------------------- report structure


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
    stats: dict[str, Interval]
    max_abs_step_diff: dict[int, float]  # per seed: largest |Δ online loss| at the log steps both have

    @property
    def name(self) -> str:
        return f"{self.first.label} − {self.second.label}"


@dataclass
class Family:
    """Configurations compared with each other: same corpus, k2, inject, hidden, batch, optimizer, lr."""

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
    groups: list[GroupSummary] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)

    def comparison(self, first: str, second: str) -> list[Comparison]:
        """Comparisons of scheme `first` against scheme `second` at the same k1."""
        return [c for c in self.comparisons if c.first.scheme == first and c.second.scheme == second
                and c.first.k1 == c.second.k1]


@dataclass
class Claim:
    number: str
    text: str
    verdict: str
    rule: str
    evidence: list[str]  # one line per family or configuration, with the numbers
    deciding: str  # the short version for a table cell


@dataclass
class GapRow:
    """One configuration's final online loss and its gap to the optimum, medians over seeds."""

    label: str
    scheme: str
    k1: int
    k2: int | None  # None for the online schemes, which do not use it
    row: str  # its row in the scheme x k2 table, e.g. 'single', 'chunked (k1 = k2)'
    config: dict
    seeds: list[int]
    final: Interval  # online loss over the last GAP_FRACTION of the steps
    gap: Interval  # final - optimum
    from_step: float  # median over seeds of the first step the final online loss covers
    us_per_step: Interval  # training time per step (compilation and evaluation excluded), microseconds


@dataclass
class GapTable:
    """Every configuration on one generated corpus with one setting (inject, hidden, batch,
    optimizer, lr): gaps per configuration, and on lag:L the k2 from which each truncated scheme
    learns the dependency."""

    corpus: str
    optimum: float
    setting: dict
    label: str
    rows: list[GapRow]
    k2s: list[int]  # the truncated configurations' k2 values, ascending
    dependency: str | None  # what forgetting the long-range dependency costs, in words; None when unknown
    cost: float  # bits/char; NaN when unknown
    findings: list[str]  # one sentence per scheme

    def cell(self, row: str, k2: int | None) -> GapRow | None:
        return next((r for r in self.rows if r.row == row and r.k2 == k2), None)

    @property
    def row_names(self) -> list[str]:
        return list(dict.fromkeys(r.row for r in self.rows))


@dataclass
class GradSummary:
    """gradcheck.csv, per configuration and estimator: cosine and relative error over checkpoints."""

    config: dict
    estimator: str
    cosine: Interval
    rel_error: Interval
    tensors: str  # which tensor rows were used


@dataclass
class Report:
    path: Path
    settings: dict
    runs: list[Path]
    families: list[Family]
    claims: list[Claim]
    warnings: list[str]
    skipped: list[tuple[Path, str]]
    figures: list[Path]
    gradcheck_files: list[Path]
    gradcheck: list[GradSummary]
    notes: list[str] = field(default_factory=list)  # facts about the runs for the header
    gaps: list[GapTable] = field(default_factory=list)  # on corpora with a known optimum

    @property
    def summary_rows(self) -> list[dict]:
        """One row per configuration, every cell a string, for a table (rich or markdown)."""
        rows = []
        for fam in self.families:
            for g in fam.groups:
                row = {"family": fam.label, "configuration": g.label, "seeds": _seed_note(g)}
                for name, (title, unit, _) in METRICS.items():
                    row[name] = format_interval(g.stats[name], unit)
                rows.append(row)
        return rows

    @property
    def comparison_rows(self) -> list[dict]:
        rows = []
        for fam in self.families:
            for c in fam.comparisons:
                row = {"family": fam.label, "comparison": c.name, "seeds": str(len(c.seeds))}
                for name, (title, unit, kind) in METRICS.items():
                    row[name] = format_interval(c.stats[name], "×" if kind == "ratio" else unit, signed=kind == "diff")
                rows.append(row)
        return rows

    def to_dict(self) -> dict:
        """Everything as strict JSON types: NaN (undefined) becomes null, inf ("not reached") the string "inf"."""
        return _jsonable({
            "path": str(self.path),
            "settings": self.settings,
            "runs": [str(p) for p in self.runs],
            "claims": [{"number": c.number, "claim": c.text, "verdict": c.verdict, "rule": c.rule,
                        "evidence": c.evidence} for c in self.claims],
            "warnings": self.warnings,
            "skipped": [{"path": str(p), "reason": r} for p, r in self.skipped],
            "families": [{
                "key": f.key, "label": f.label, "at_time": f.at_time, "at_steps": f.at_steps, "target": f.target,
                "groups": [{"label": g.label, "config": g.config, "seeds": g.seeds, "diverged": g.diverged,
                            "stats": {k: v.to_dict() for k, v in g.stats.items()}} for g in f.groups],
                "comparisons": [{"first": c.first.label, "second": c.second.label, "seeds": c.seeds,
                                 "stats": {k: v.to_dict() for k, v in c.stats.items()}} for c in f.comparisons],
            } for f in self.families],
            "figures": [str(p) for p in self.figures],
            "gradcheck_files": [str(p) for p in self.gradcheck_files],
            "gradcheck": [{"config": g.config, "estimator": g.estimator, "cosine": g.cosine.to_dict(),
                           "rel_error": g.rel_error.to_dict()} for g in self.gradcheck],
            "gaps": [{"corpus": t.corpus, "optimum_bpc": t.optimum, "setting": t.setting, "label": t.label,
                      "final_fraction": self.settings.get("gap_fraction", GAP_FRACTION),
                      "dependency": t.dependency, "dependency_cost_bpc": t.cost, "k2": t.k2s, "findings": t.findings,
                      "rows": [{"label": r.label, "scheme": r.scheme, "k1": r.k1, "k2": r.k2, "row": r.row,
                                "config": r.config, "seeds": r.seeds, "final_online": r.final.to_dict(),
                                "gap": r.gap.to_dict(), "us_per_step": r.us_per_step.to_dict()}
                               for r in t.rows]} for t in self.gaps],
        })


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return None if math.isnan(f) else ("inf" if f > 0 else "-inf") if math.isinf(f) else f
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


# ----------------------------------------------------------------------------- formatting


def _num(x: float, unit: str) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if math.isinf(x):
        return "not reached" if x > 0 else "−∞"
    if unit in ("steps", "steps/s"):
        return f"{x:,.0f}"
    if unit == "s":
        return f"{x:.3g}" if abs(x) < 100 else f"{x:,.0f}"
    if unit == "×":
        return f"{x:.2f}×"
    if unit == "cos":
        return f"{x:.4f}"
    if unit == "us":
        return f"{x:.3g}" if abs(x) < 100 else f"{x:,.0f}"
    return f"{x:.3f}"


def _signed(x: float, unit: str) -> str:
    """A difference with its sign (typographic minus); none when it rounds to zero."""
    text = _num(x, unit).lstrip("-")
    if not isinstance(x, (int, float)) or not math.isfinite(x) or not any(ch in "123456789" for ch in text):
        return text if not (isinstance(x, float) and x == -math.inf) else "−∞"
    return ("+" if x > 0 else "−") + text


def format_interval(iv: Interval, unit: str = "bits/char", *, signed: bool = False) -> str:
    """'2.310 [2.281, 2.350]'; '2.310 (1 seed)'; '–' when there is nothing."""
    fmt = _signed if signed else _num
    if iv.n == 0:
        return "–"
    if iv.n == 1:
        return f"{fmt(iv.median, unit)} (1 seed)"
    return f"{fmt(iv.median, unit)} [{fmt(iv.lo, unit)}, {fmt(iv.hi, unit)}]"


def _seed_note(g: GroupSummary) -> str:
    text = str(len(g.seeds))
    if g.diverged:
        text += f" (+{len(g.diverged)} diverged)"
    return text


def _g(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:g}"
    return str(x)


def _family_label(key: dict, *, online_only: bool = False) -> str:
    """The family's corpus and settings; k2 is left out when only rtrl/uoro (which do not use it) are in it."""
    k2 = "no truncation" if online_only else f"k2={_g(key['k2'])}"
    return (f"{key['corpus']} · {k2} · inject {key['inject']} · hidden {_g(key['hidden'])} · "
            f"batch {_g(key['batch'])} · {key['optimizer']} lr={_g(key['lr'])}")


def _seeds_text(seeds: Iterable[int]) -> str:
    seeds = list(seeds)
    return f"seed{'s' if len(seeds) != 1 else ''} {', '.join(str(s) for s in seeds)}"


# ----------------------------------------------------------------------------- reading curves


@dataclass
class _Curve:
    id: str
    run: Run
    unit: dict
    label: str
    group: tuple
    family: tuple
    scheme: str
    k1: int
    seed: int
    diverged: bool
    step: np.ndarray
    wall: np.ndarray
    raw: np.ndarray
    smooth: np.ndarray
    val_step: np.ndarray
    val_wall: np.ndarray
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


def _plain(v: Any) -> Any:
    """numpy scalars as Python ones, so keys compare, print and serialise plainly."""
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


def _curves(runs: list[Run], data: pd.DataFrame, smooth: int) -> list[_Curve]:
    units = {f"{run.path}#{u.get('key')}": (run, u) for run in runs for u in run.units}
    out = []
    for cid, rows in data.groupby("curve", sort=False):
        run, unit = units.get(cid, (None, {}))
        first = rows.iloc[0]
        train = rows[rows["metric"] == "train_bpc"].sort_values("step", kind="stable").drop_duplicates("step", keep="last")
        if train.empty:
            continue
        val = rows[rows["metric"] == "val_bpc"].sort_values("step", kind="stable").drop_duplicates("step", keep="last")
        step = train["step"].to_numpy(dtype=float)
        raw = train["value"].to_numpy(dtype=float)
        config = {c: _plain(first[c]) for c in GROUP_KEY}
        if config["scheme"] in ONLINE_SCHEMES:  # k2 unused: runs that differ only in it are one configuration
            config["k2"] = ONLINE_K2
        out.append(_Curve(
            id=cid, run=run, unit=unit or {}, label=str(first["label"]), group=tuple(config[c] for c in GROUP_KEY),
            family=tuple(config[c] for c in FAMILY_KEY),
            scheme=str(first["scheme"]), k1=int(first["k1"]), seed=int(first["seed"]),
            diverged=bool(rows["diverged"].any()),
            step=step, wall=train["wall_s"].to_numpy(dtype=float), raw=raw, smooth=smooth_curve(step, raw, smooth),
            val_step=val["step"].to_numpy(dtype=float), val_wall=val["wall_s"].to_numpy(dtype=float),
            val=val["value"].to_numpy(dtype=float),
        ))
    return out


def _steps_per_s(c: _Curve) -> float:
    steps, wall = c.unit.get("steps"), c.unit.get("wall_s")
    if isinstance(steps, (int, float)) and isinstance(wall, (int, float)) and wall > 0 and steps > 0:
        return float(steps) / float(wall)
    return float(c.step[-1] / c.wall[-1]) if c.wall[-1] > 0 else math.nan


def _per_seed(curves: list[_Curve], metric: str) -> dict[int, float]:
    """Seed -> value (the median over that seed's repeats, when a seed was run more than once)."""
    by_seed: dict[int, list[float]] = {}
    for c in curves:
        by_seed.setdefault(c.seed, []).append(c.values[metric])
    out = {}
    for seed, vals in sorted(by_seed.items()):
        finite_or_inf = [v for v in vals if not math.isnan(v)]
        out[seed] = float(np.median(finite_or_inf)) if finite_or_inf else math.nan
    return out


# ----------------------------------------------------------------------------- building


def build_report(
    path: Path,
    *,
    target_loss: float | None = None,
    at_time: float | None = None,
    at_steps: float | None = None,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    delta: float = DEFAULT_DELTA,
    smooth: int = DEFAULT_SMOOTH,
    identical_tol: float = IDENTICAL_TOL,
    cosine_min: float = COSINE_MIN,
    exact_tol: float = EXACT_TOL,
) -> Report:
    """Read every run under path and compute the report (see the module docstring)."""
    path = Path(path)
    _check_settings(target_loss=target_loss, at_time=at_time, at_steps=at_steps, bootstrap=bootstrap, delta=delta,
                    smooth=smooth, identical_tol=identical_tol, cosine_min=cosine_min, exact_tol=exact_tol)
    complete, skipped = complete_runs(path)
    if not complete:
        example = f", e.g. {skipped[0][0]}: {skipped[0][1]}" if skipped else ""
        raise ResultsError(f"no complete runs under {path} ({len(skipped)} skipped{example}); report on a run that finished")
    data = group_curves(complete)
    early = early_divergences(complete, data)
    skipped.extend((where, f"diverged at step {step} before its first log point") for where, step in early)
    if not (data["metric"] == "train_bpc").any():
        raise nothing_to_show(path, early)

    settings = {"delta": delta, "bootstrap": bootstrap, "seed": seed, "smooth": smooth, "target_loss": target_loss,
                "at_time": at_time, "at_steps": at_steps, "identical_tol": identical_tol, "cosine_min": cosine_min,
                "exact_tol": exact_tol, "gap_fraction": GAP_FRACTION}
    warnings: list[str] = []
    curves = _curves(complete, data, smooth)
    families = []
    by_family: dict[tuple, list[_Curve]] = {}
    for c in curves:
        by_family.setdefault(c.family, []).append(c)
    for fkey in sorted(by_family, key=lambda k: tuple(_sort(v) for v in k)):
        families.append(_family(dict(zip(FAMILY_KEY, fkey)), by_family[fkey], settings, warnings))

    warnings = _run_warnings(by_family, families) + warnings
    grad_files = _find_gradcheck(path)
    grad, grad_problem = _read_gradcheck(grad_files, settings, warnings)
    claims = _claims(families, grad, grad_problem, settings)
    notes = _notes(complete, curves)
    gaps = _gaps(curves, settings, warnings)
    return Report(path=path, settings=settings, runs=[r.path for r in complete], families=families, claims=claims,
                  warnings=warnings, skipped=skipped, figures=_figures(path, complete) + _gradcheck_figures(grad_files),
                  gradcheck_files=grad_files,
                  gradcheck=grad, notes=notes, gaps=gaps)


def _sort(v: Any) -> tuple:
    if isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v)):
        return (0, float(v), "")
    return (1, 0.0, str(v))


def _check_settings(**kw) -> None:
    def positive(name, allow_none=True):
        v = kw[name]
        if v is None and allow_none:
            return
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise ResultsError(f"{name.replace('_', ' ')} must be a positive number, got {v!r}")

    for name in ("target_loss", "at_time", "at_steps"):
        positive(name)
    for name in ("delta", "identical_tol", "exact_tol"):
        positive(name, allow_none=False)
    b = kw["bootstrap"]
    if isinstance(b, bool) or not isinstance(b, int) or b < 100:
        raise ResultsError(f"bootstrap must be a whole number of resamples >= 100, got {b!r}")
    s = kw["smooth"]
    if isinstance(s, bool) or not isinstance(s, int) or s < 1:
        raise ResultsError(f"smoothing must be a whole number of log points >= 1 (1 = none), got {s!r}")
    c = kw["cosine_min"]
    if isinstance(c, bool) or not isinstance(c, (int, float)) or not -1 <= c <= 1:
        raise ResultsError(f"the cosine threshold must be between -1 and 1, got {c!r}")


def _family(key: dict, curves: list[_Curve], settings: dict, warnings: list[str]) -> Family:
    label = _family_label(key, online_only=all(c.scheme in ONLINE_SCHEMES for c in curves))
    live = [c for c in curves if not c.diverged]
    for c in curves:
        if c.diverged:
            at = c.unit.get("diverged_at_step")
            warnings.append(f"{c.label} seed {c.seed} diverged" + (f" at step {at:,}" if isinstance(at, int) else "")
                            + f" ({c.run.path if c.run else '?'}); it is left out of the statistics")

    # Equal time, equal steps and the target: over every live seed of the family.
    if settings["at_time"] is not None:
        T, T_src = float(settings["at_time"]), "given"
    else:
        T = min((float(c.wall[-1]) for c in live), default=math.nan)
        T_src = "the smallest training time every seed reached"
    if settings["at_steps"] is not None:
        N, N_src = float(settings["at_steps"]), "given"
    else:
        N = min((float(c.step[-1]) for c in live), default=math.nan)
        N_src = "the smallest step count every seed reached"
    budgets = sorted({_budget(c) for c in curves})
    equal_time = settings["at_time"] is None and len(budgets) == 1 and budgets[0].endswith(" s")
    if equal_time:
        val_src = f"the last evaluation, at the end of the equal {budgets[0]} budgets"
    else:
        val_src = "interpolated between evaluations, never extrapolated"
    for c in curves:
        c.values["final_train"] = trailing_mean(c.step, c.raw, settings["smooth"])
        c.values["final_val"] = float(c.val[-1]) if len(c.val) else math.nan
        c.values["at_time"] = value_at(c.wall, c.smooth, T)
        c.values["val_at_time"] = c.values["final_val"] if equal_time else value_at(c.val_wall, c.val, T)
        c.values["at_steps"] = value_at(c.step, c.smooth, N)
        c.values["steps_per_s"] = _steps_per_s(c)
    if settings["target_loss"] is not None:
        target, target_src = float(settings["target_loss"]), "given"
    else:
        # The worst seed's best: the highest over seeds of the lowest smoothed loss each reached.
        worst = max(live, key=lambda c: float(np.min(c.smooth)), default=None)
        target = float(np.min(worst.smooth)) if worst else math.nan
        target_src = (f"the highest, over every seed, of the lowest smoothed loss it reached ({worst.label} seed "
                      f"{worst.seed}), so every seed reaches it" if worst else "no live seed")
    for c in curves:
        c.values["time_to_target"] = first_crossing(c.wall, c.smooth, target)
        c.values["steps_to_target"] = first_crossing(c.step, c.smooth, target)
    for what, x, src in (("time", T, T_src), ("steps", N, N_src)):
        missing = [c for c in live if math.isnan(c.values["at_time" if what == "time" else "at_steps"])]
        if missing and src == "given":
            warnings.append(f"{label}: {len(missing)} seed(s) do not cover {what} {x:g} (never extrapolated), e.g. "
                            f"{missing[0].label} seed {missing[0].seed}; they are left out of the loss at equal {what}")

    fam = Family(key=key, label=label, at_time=T, at_time_source=T_src, at_steps=N, at_steps_source=N_src,
                 val_at_time_source=val_src, target=target, target_source=target_src, budgets=budgets)

    by_group: dict[tuple, list[_Curve]] = {}
    for c in curves:
        by_group.setdefault(c.group, []).append(c)
    order = sorted(by_group, key=lambda g: config_sort_key(*g))
    rng = dict(n_boot=settings["bootstrap"], seed=settings["seed"])
    group_live: dict[str, list[_Curve]] = {}
    for g in order:
        cs = by_group[g]
        ok = [c for c in cs if not c.diverged]
        stats = {m: bootstrap_median(_per_seed(ok, m).values(), **rng) for m in METRICS}
        compile_s = [c.unit.get("compile_s") for c in ok if isinstance(c.unit.get("compile_s"), (int, float))]
        late = [c.late_drop for c in ok if not math.isnan(c.late_drop)]
        val_late = [c.val_late_drop for c in ok if not math.isnan(c.val_late_drop)]
        summary = GroupSummary(
            label=cs[0].label, scheme=cs[0].scheme, k1=cs[0].k1, config=dict(zip(GROUP_KEY, g)),
            seeds=sorted({c.seed for c in ok}), diverged=sorted({c.seed for c in cs if c.diverged}), stats=stats,
            compile_s=float(np.median(compile_s)) if compile_s else math.nan,
            late_drop=float(np.median(late)) if late else math.nan,
            val_late_drop=float(np.median(val_late)) if val_late else math.nan)
        fam.groups.append(summary)
        group_live[summary.label] = ok
        if len(summary.seeds) == 1:
            warnings.append(f"{summary.label} ({label}) rests on a single seed: it has no interval, and no verdict "
                            "rests on it alone; run more with --seeds")
        repeats = [s for s in summary.seeds if sum(c.seed == s for c in ok) > 1]
        if repeats:
            warnings.append(f"{summary.label} ({label}): {_seeds_text(repeats)} appear in more than one run; "
                            "each seed counts once, as the median of its repeats")

    # Paired comparisons: every pair of configurations in the family, later in the scheme order minus earlier.
    for j, second in enumerate(fam.groups):
        for first in fam.groups[j + 1:]:
            a, b = group_live[first.label], group_live[second.label]
            shared = sorted(set(first.seeds) & set(second.seeds))
            if not shared:
                continue
            unpaired = sorted(set(first.seeds) ^ set(second.seeds))
            if unpaired:
                warnings.append(f"{first.label} vs {second.label} ({label}): {_seeds_text(unpaired)} have no partner "
                                f"and are left out of the paired comparison")
            stats = {}
            for m, (_, _, kind) in METRICS.items():
                va, vb = _per_seed(a, m), _per_seed(b, m)
                with np.errstate(invalid="ignore", divide="ignore"):
                    d = [va[s] / vb[s] if kind == "ratio" else va[s] - vb[s] for s in shared]
                stats[m] = bootstrap_median(d, **rng)
            step_diff = {}
            for s in shared:
                ca = next(c for c in a if c.seed == s)
                cb = next(c for c in b if c.seed == s)
                common, ia, ib = np.intersect1d(ca.step, cb.step, return_indices=True)
                step_diff[s] = float(np.max(np.abs(ca.raw[ia] - cb.raw[ib]))) if len(common) else math.nan
            comp = Comparison(first=first, second=second, seeds=shared, stats=stats, max_abs_step_diff=step_diff)
            fam.comparisons.append(comp)
            if len(shared) == 1:
                warnings.append(f"the comparison {comp.name} ({label}) rests on a single seed; run more with --seeds")
    return fam


# ----------------------------------------------------------------------------- gap to the optimum


def tail_mean(steps: np.ndarray, values: np.ndarray, fraction: float) -> tuple[float, float]:
    """(step-weighted mean online loss over the last `fraction` of the steps, the step it starts
    after): the log points whose whole interval lies in that stretch, at least the last one."""
    steps = np.asarray(steps, dtype=float)
    values = np.asarray(values, dtype=float)
    w = step_weights(steps)
    begins = steps - w  # each log point's mean covers the steps (begins, step]
    keep = begins >= (1.0 - fraction) * steps[-1]
    keep[-1] = True
    wk = w[keep]
    mean = float(np.sum(values[keep] * wk) / np.sum(wk)) if np.sum(wk) > 0 else float(values[-1])
    return mean, float(begins[keep][0])


def dependency_cost(generator: dict | None) -> tuple[float, str] | None:
    """(bits/char, in words) that a predictor loses by forgetting the corpus's long-range
    dependency, from the generator parameters a generated corpus records in the manifest; None
    when the process has no single such dependency. For lag:L (bpttbench/synthetic.py) the repeat
    of the cue, once per episode of L + 1 characters, is one of M equally likely symbols to a
    predictor without the cue and certain to one with it: log2(M) / (L + 1)."""
    if not isinstance(generator, dict) or generator.get("kind") != "lag":
        return None
    try:
        L, M = int(generator["lag"]), int(generator["symbols"])
    except (KeyError, TypeError, ValueError):
        return None
    if L < 1 or M < 1:
        return None
    cost = math.log2(M) / (L + 1)
    return cost, (f"forgetting the cue, L = {L} steps back, costs log2(M)/(L+1) = log2({M})/{L + 1} = {cost:.4f} "
                  f"bits/char (the repeat is one of M = {M} equally likely symbols, once per episode of {L + 1} "
                  "characters)")


def _gap_row_name(scheme: str, k1: int, k2: int) -> str:
    if scheme in ONLINE_SCHEMES:
        return f"{scheme} (no truncation)" if k1 == 1 else f"{scheme} k1={k1} (no truncation)"
    if scheme == "chunked" and k1 == k2:
        return "chunked (k1 = k2)"
    if k1 == 1:
        return scheme
    return f"{scheme} (k1 = k2)" if k1 == k2 else f"{scheme} k1={k1}"


def _corpus_facts(c: _Curve) -> tuple[float | None, dict | None]:
    corpus = c.run.manifest.get("corpus") if c.run is not None else None
    if not isinstance(corpus, dict):
        return None, None
    optimum = corpus.get("optimum_bpc")
    ok = isinstance(optimum, (int, float)) and not isinstance(optimum, bool) and math.isfinite(optimum)
    return (float(optimum) if ok else None), corpus.get("generator")


def _gaps(curves: list[_Curve], settings: dict, warnings: list[str]) -> list[GapTable]:
    """Per generated corpus and setting: every configuration's gap to the optimum (see the module docstring)."""
    fraction = settings["gap_fraction"]
    rng = dict(n_boot=settings["bootstrap"], seed=settings["seed"])
    setting_keys = [k for k in FAMILY_KEY if k not in ("corpus", "k2")]
    by_setting: dict[tuple, list[_Curve]] = {}
    facts: dict[str, tuple[float, dict | None]] = {}
    for c in curves:
        corpus = str(c.family[FAMILY_KEY.index("corpus")])
        optimum, generator = _corpus_facts(c)
        if optimum is None:
            continue
        if corpus in facts and not math.isclose(facts[corpus][0], optimum, rel_tol=1e-9):
            warnings.append(f"runs on {corpus} record different optima ({facts[corpus][0]:.6g} and {optimum:.6g}): "
                            "were they generated with different parameters? the first is used")
        facts.setdefault(corpus, (optimum, generator))
        cfg = dict(zip(GROUP_KEY, c.group))
        by_setting.setdefault((corpus, *(cfg[k] for k in setting_keys)), []).append(c)
    tables = []
    for key in sorted(by_setting, key=lambda k: tuple(_sort(v) for v in k)):
        corpus, setting = key[0], dict(zip(setting_keys, key[1:]))
        optimum, generator = facts[corpus]
        dep = dependency_cost(generator)
        by_group: dict[tuple, list[_Curve]] = {}
        for c in by_setting[key]:
            by_group.setdefault(c.group, []).append(c)
        rows = []
        for g in sorted(by_group, key=lambda g: config_sort_key(*g)):
            live = [c for c in by_group[g] if not c.diverged]
            for c in live:
                c.values["gap_final"], c.values["gap_from"] = tail_mean(c.step, c.raw, fraction)
                c.values["gap"] = c.values["gap_final"] - optimum
                rate = _steps_per_s(c)
                c.values["us_per_step"] = 1e6 / rate if rate > 0 else math.nan
            cfg = dict(zip(GROUP_KEY, g))
            first = by_group[g][0]
            online = first.scheme in ONLINE_SCHEMES
            starts = list(_per_seed(live, "gap_from").values())
            rows.append(GapRow(
                label=first.label, scheme=first.scheme, k1=int(cfg["k1"]), k2=None if online else int(cfg["k2"]),
                row=_gap_row_name(first.scheme, int(cfg["k1"]), int(cfg["k2"])), config=cfg,
                seeds=sorted({c.seed for c in live}),
                final=bootstrap_median(_per_seed(live, "gap_final").values(), **rng),
                gap=bootstrap_median(_per_seed(live, "gap").values(), **rng),
                from_step=float(np.median(starts)) if starts else math.nan,
                us_per_step=bootstrap_median(_per_seed(live, "us_per_step").values(), **rng)))
        k2s = sorted({r.k2 for r in rows if r.k2 is not None})
        table = GapTable(corpus=corpus, optimum=optimum, setting=setting,
                         label=f"{corpus} · inject {setting['inject']} · hidden {_g(setting['hidden'])} · batch "
                               f"{_g(setting['batch'])} · {setting['optimizer']} lr={_g(setting['lr'])}",
                         rows=rows, k2s=k2s, dependency=dep[1] if dep else None, cost=dep[0] if dep else math.nan,
                         findings=[])
        if dep:
            table.findings = _gap_findings(table)
        tables.append(table)
    return tables


def _gap_cell(r: GapRow) -> str:
    return format_interval(r.gap, "bits/char", signed=True)


def _gap_findings(t: GapTable) -> list[str]:
    """Per row of the table: from which k2 on its median gap is below the cost of forgetting the
    dependency (truncated schemes), or whether it is below at all (online schemes)."""
    cost = t.cost
    out = []

    def below(r: GapRow) -> bool:
        return r.gap.n > 0 and r.gap.median < cost

    def disagree(r: GapRow) -> str:
        return (f" its seeds disagree (the interval contains the cost {cost:.3f})"
                if r.gap.n > 1 and r.gap.lo < cost < r.gap.hi else "")

    for name in t.row_names:
        cells = [r for r in t.rows if r.row == name and r.gap.n > 0]
        if not cells:
            out.append(f"{name}: no seed left to measure (every one diverged)")
            continue
        if cells[0].k2 is None:
            r = cells[0]
            verdict = ("below the cost: it learns the dependency" if below(r)
                       else "not below the cost: it does not learn the dependency within these runs")
            unsure = disagree(r)
            out.append(f"{name}: gap {_gap_cell(r)} bits/char, {verdict}{';' + unsure if unsure else ''}.")
            continue
        cells.sort(key=lambda r: r.k2)
        by_k2 = "; ".join(f"k2 = {r.k2}: {_gap_cell(r)}" for r in cells)
        start = None
        for i in range(len(cells)):
            if all(below(r) for r in cells[i:]):
                start = i
                break
        odd = [r for r in cells[: len(cells) if start is None else start] if below(r)]
        also = f" (though its gap is below the cost at k2 = {', '.join(str(r.k2) for r in odd)})" if odd else ""
        if start is None:
            text = (f"{name}: its gap stays at or above the cost at every k2 swept, up to k2 = {cells[-1].k2}: it does "
                    f"not learn the dependency{also}")
            edge = [cells[-1]]
        elif start == 0:
            text = (f"{name}: its gap is below the cost at every k2 swept, from k2 = {cells[0].k2} on: it learns the "
                    "dependency throughout")
            edge = [cells[0]]
        else:
            text = (f"{name}: stops learning the dependency below k2 = {cells[start].k2}: its gap is below the cost "
                    f"from k2 = {cells[start].k2} on, not at k2 = {cells[start - 1].k2}{also}")
            edge = [cells[start - 1], cells[start]]
        unsure = "".join(f" at k2 = {r.k2}" + disagree(r) for r in edge if disagree(r))
        out.append(f"{text} (gap by k2: {by_k2}){';' + unsure if unsure else ''}.")
    return out

# ----------------------------------------------------------------------------- warnings about the runs


def _machine(run: Run) -> tuple[str, str]:
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


def _budget(c: _Curve) -> str:
    cfg = c.unit.get("config") or {}
    if cfg.get("budget_seconds") is not None:
        return f"{_g(float(cfg['budget_seconds']))} s"
    if cfg.get("budget_steps") is not None:
        return f"{int(cfg['budget_steps']):,} steps"
    return "unknown"


def _run_warnings(by_family: dict[tuple, list[_Curve]], families: list[Family]) -> list[str]:
    out = []
    labels = {tuple(f.key[k] for k in FAMILY_KEY): f.label for f in families}
    for fkey, curves in by_family.items():
        label = labels[fkey]
        runs = {c.run.path: c.run for c in curves if c.run is not None}
        machines: dict[str, list[str]] = {}
        software: dict[str, list[str]] = {}
        for run in runs.values():
            mach, soft = _machine(run)
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
            budgets.setdefault(_budget(c), set()).add(c.label)
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


def _notes(runs: list[Run], curves: list[_Curve]) -> list[str]:
    corpora = sorted({str(c.family[FAMILY_KEY.index('corpus')]) for c in curves})
    machines = sorted({_machine(r)[0] for r in runs})
    software = sorted({_machine(r)[1] for r in runs})
    n_units = len(curves)
    return [
        f"{len(runs)} complete run{'s' if len(runs) != 1 else ''}, {n_units} seed curve{'s' if n_units != 1 else ''}; "
        f"corpus {', '.join(corpora)}",
        f"machine: {'; '.join(machines)}",
        f"software: {'; '.join(software)}",
    ]


def _figures(path: Path, runs: list[Run]) -> list[Path]:
    """The figures `plot` leaves next to the runs (or in the folder the report was asked for)."""
    names = [f"{stem}.png" for stem in ("loss_vs_time", "loss_vs_iter", "val_loss_vs_time", "val_loss_vs_iter")]
    folders = [path.parent if path.is_file() else path] + [r.path for r in runs]
    out: list[Path] = []
    for folder in dict.fromkeys(folders):
        for name in names:
            p = folder / name
            if p.is_file() and p not in out:
                out.append(p)
    return out


# ----------------------------------------------------------------------------- gradcheck


def _gradcheck_figures(files: list[Path]) -> list[Path]:
    return [f.parent / name for f in files for name in GRADCHECK_FIGURES if (f.parent / name).is_file()]


def _find_gradcheck(path: Path) -> list[Path]:
    root = path.parent if path.is_file() else path
    try:
        return sorted(p for p in root.rglob(GRADCHECK) if p.is_file())
    except OSError:
        return []


def _read_gradcheck(files: list[Path], settings: dict, warnings: list[str]) -> tuple[list[GradSummary], str | None]:
    """Per configuration and estimator: the cosine and relative error against the exact gradient
    (single_vs_stored: of single against stored), median over checkpoints with a bootstrap
    interval over checkpoints. The second value says why the gradient claims cannot be judged,
    or None. Uses the whole-gradient rows (tensor 'all') when there are any, as gradcheck does."""
    if not files:
        return [], None
    frames = []
    for f in files:
        try:
            df = pd.read_csv(f)
        except (OSError, ValueError, pd.errors.ParserError) as exc:
            warnings.append(f"could not read {f}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}; "
                            "it is ignored")
            continue
        missing = [c for c in GRADCHECK_COLUMNS if c not in df.columns]
        if missing:
            warnings.append(f"{f} lacks column(s) {', '.join(missing)}; it is ignored")
            continue
        status = _gradcheck_status(f.parent / GRADCHECK_MANIFEST)
        if status not in ("complete", None):
            warnings.append(f"the gradcheck in {f.parent} has status {status!r}: its checkpoints so far are used")
        frames.append(df)
    if not frames:
        return [], "no readable gradcheck.csv"
    df = pd.concat(frames, ignore_index=True)
    for c in ("cosine", "rel_error"):
        df[c] = pd.to_numeric(df[c], errors="coerce")
    df["estimator"] = df["estimator"].astype(str)
    df["tensor"] = df["tensor"].astype(str)
    whole = "all" in set(df["tensor"])
    if whole:
        df = df[df["tensor"] == "all"]
    tensors = "the whole gradient" if whole else "median over tensors " + ", ".join(sorted(set(df["tensor"])))
    problem = None
    fd = df[df["estimator"] == "exact_vs_fd"]["rel_error"]
    if len(fd) and not (fd.fillna(math.inf) <= settings["exact_tol"]).all():
        worst = fd.fillna(math.inf).max()
        problem = (f"the exact gradient disagrees with finite differences (largest relative error {worst:.2g} > "
                   f"{settings['exact_tol']:g})")
        warnings.append(f"gradcheck: {problem}; the gradient claims are not judged")
    elif not len(fd):
        warnings.append("gradcheck.csv has no exact_vs_fd rows: the exact gradient itself was not checked")
    config_cols = [c for c in GRADCHECK_CONFIG if c in df.columns]
    out = []
    rng = dict(n_boot=settings["bootstrap"], seed=settings["seed"])
    rows = df[df["estimator"].isin(["single", "stored", "single_vs_stored"])]
    for keys, part in rows.groupby(config_cols + ["estimator"], sort=True, dropna=False):
        per_point = part.groupby(["seed", "step"], sort=True)[["cosine", "rel_error"]].median()
        out.append(GradSummary(config=dict(zip(config_cols, (_plain(k) for k in keys[:-1]))), estimator=str(keys[-1]),
                               cosine=bootstrap_median(per_point["cosine"].tolist(), **rng),
                               rel_error=bootstrap_median(per_point["rel_error"].tolist(), **rng), tensors=tensors))
    return out, problem


def _gradcheck_status(path: Path) -> str | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return str(data.get("status")) if isinstance(data, dict) and data.get("status") is not None else None


# ----------------------------------------------------------------------------- claims


def verdict_within(iv: Interval, delta: float) -> str:
    """'About the same': supported when the interval lies within ±delta, contradicted when it lies
    wholly outside, inconclusive otherwise or with one seed."""
    if iv.n == 0:
        return NOT_MEASURED
    if iv.n < 2:
        return INCONCLUSIVE
    if -delta <= iv.lo and iv.hi <= delta:
        return SUPPORTED
    if iv.lo > delta or iv.hi < -delta:
        return CONTRADICTED
    return INCONCLUSIVE


def verdict_below(iv: Interval, bound: float = 0.0) -> str:
    """'First is lower': supported when the interval lies below bound, contradicted when above."""
    if iv.n == 0:
        return NOT_MEASURED
    if iv.n < 2:
        return INCONCLUSIVE
    if iv.hi < bound:
        return SUPPORTED
    if iv.lo > bound:
        return CONTRADICTED
    return INCONCLUSIVE


def verdict_above(iv: Interval, bound: float, *, strict: bool) -> str:
    """'At least bound' (strict=False: supported when lo >= bound, contradicted when hi < bound) or
    'more than bound' (strict=True: supported when lo > bound, contradicted when hi <= bound)."""
    if iv.n == 0:
        return NOT_MEASURED
    if iv.n < 2:
        return INCONCLUSIVE
    if (iv.lo > bound) if strict else (iv.lo >= bound):
        return SUPPORTED
    if (iv.hi <= bound) if strict else (iv.hi < bound):
        return CONTRADICTED
    return INCONCLUSIVE


def combine(verdicts: list[str]) -> str:
    """One verdict over several families: theirs if they agree, else mixed; not measured if none."""
    measured = [v for v in verdicts if v != NOT_MEASURED]
    if not measured:
        return NOT_MEASURED
    return measured[0] if len(set(measured)) == 1 else MIXED


def _per_seed_text(iv: Interval, unit: str) -> str:
    if iv.n <= 1 or iv.n > 10:
        return ""
    return " (per seed: " + ", ".join(_signed(v, unit) for v in iv.values) + ")"


def _evidence(fam: Family, comp: Comparison, metric: str, verdict: str, where: str) -> str:
    unit = METRICS[metric][1]
    iv = comp.stats[metric]
    return (f"{fam.label}: {comp.first.scheme} − {comp.second.scheme} (k1={comp.first.k1}) in {where}: "
            f"{format_interval(iv, unit, signed=True)} {unit}, {len(comp.seeds)} paired seed"
            f"{'s' if len(comp.seeds) != 1 else ''}{_per_seed_text(iv, unit)} → {verdict}")


def _truncating(fam: Family, comps: list[Comparison]) -> list[Comparison]:
    """Comparisons where k2 > k1: the question's setting (at k1 = k2 the schemes coincide)."""
    return [c for c in comps if c.first.k1 < fam.key["k2"]]


def _claims(families: list[Family], grad: list[GradSummary], grad_problem: str | None, s: dict) -> list[Claim]:
    delta = s["delta"]
    claims = []

    def pair_claim(number, text, rule, first, second, choose, decide, missing, extra=None, tail=()):
        """One claim over every family's comparisons of scheme first with scheme second (k1 < k2);
        choose(fam, comp) -> (metric, words saying where it is read)."""
        verdicts, evidence, short = [], [], []
        for fam in families:
            for comp in _truncating(fam, fam.comparison(first, second)):
                metric, where = choose(fam, comp)
                v = decide(comp.stats[metric], fam, comp)
                verdicts.append(v)
                evidence.append(_evidence(fam, comp, metric, v, where))
                short.append(f"{format_interval(comp.stats[metric], METRICS[metric][1], signed=True)} "
                             f"({METRICS[metric][0]}, {fam.key['corpus']}, k2={_g(fam.key['k2'])})")
                if extra:
                    evidence.extend(extra(fam, comp))
        claims.append(Claim(number, text, combine(verdicts), rule, (evidence or [missing]) + list(tail),
                            "; ".join(short) if short else missing))

    def at_n(fam, comp):
        return "at_steps", f"online loss at equal steps (N = {_num(fam.at_steps, 'steps')})"

    no_pair = "not measured: no run pairs {} with {} at k2 > k1 on the same seeds"
    pair_claim(
        "1", "Storing past weights makes almost no difference (stored vs single).",
        f"supported when the 95% interval of stored − single in online loss at equal steps (the same text for both) "
        f"lies within ±{delta:g} bits/char; contradicted when it lies wholly outside; inconclusive otherwise.",
        "stored", "single", at_n, lambda iv, f, c: verdict_within(iv, delta), no_pair.format("stored", "single"),
        tail=[f"gradcheck, {_grad_where(g.config)}: single's gradient against stored's: relative difference "
              f"{_rel(g.rel_error)}, cosine {format_interval(g.cosine, 'cos')} (not part of the verdict)"
              for g in grad if g.estimator == "single_vs_stored" and grad_problem is None])
    pair_claim(
        "2", "Per iteration, single and sliding perform about the same.",
        f"supported when the 95% interval of single − sliding in online loss at equal steps (the same text for both) "
        f"lies within ±{delta:g} bits/char; contradicted when it lies wholly outside; inconclusive otherwise.",
        "single", "sliding", at_n, lambda iv, f, c: verdict_within(iv, delta), no_pair.format("single", "sliding"))

    def at_t(fam, comp):
        if comp.stats["val_at_time"].n:
            return "val_at_time", f"validation loss at equal time (T = {_num(fam.at_time, 's')} s; {fam.val_at_time_source})"
        return "at_time", (f"online loss at equal time (T = {_num(fam.at_time, 's')} s; no validation loss at T, and "
                           "the online loss also reflects how hard each scheme's current stretch of text is)")

    def time_extra(fam, comp):
        tt, sp, on = comp.stats["time_to_target"], comp.stats["steps_per_s"], comp.stats["at_time"]
        lines = [f"{fam.label}: also, time to reach {fam.target:.3f} bits/char (smoothed online loss), single − "
                 f"sliding: {format_interval(tt, 's', signed=True)} s; steps/s single / sliding: {format_interval(sp, '×')}"]
        if at_t(fam, comp)[0] == "val_at_time":
            lines.append(f"{fam.label}: also, online loss at T, single − sliding: {format_interval(on, 'bits/char', signed=True)} "
                         "bits/char (not the verdict: at equal time the schemes are at different places in the stream, "
                         "so this mixes model quality with how hard the text there is)")
        return lines

    pair_claim(
        "3", "Per second, the single forward pass is ahead.",
        "supported when the 95% interval of single − sliding in validation loss at equal time T lies below 0 "
        "(every model read on the same held-out text; without validation loss at T, the online loss at T); "
        "contradicted when it lies above 0; inconclusive otherwise.",
        "single", "sliding", at_t, lambda iv, f, c: verdict_below(iv), no_pair.format("single", "sliding"),
        extra=time_extra)

    def final(fam, comp):
        if comp.stats["final_val"].n:
            return "final_val", "final validation loss"
        return "final_train", "final online loss (no validation loss recorded)"

    def still_improving(g: GroupSummary, metric: str) -> float:
        """How much g's loss fell over its last quarter: validation curve when it has 3 evaluations, else online."""
        if metric == "final_val" and not math.isnan(g.val_late_drop):
            return g.val_late_drop
        return g.late_drop

    def minimum(iv, fam, comp):
        v = verdict_within(iv, delta)
        if v == CONTRADICTED:
            behind = comp.first if iv.median > 0 else comp.second
            drop = still_improving(behind, final(fam, comp)[0])
            if not math.isnan(drop) and drop > delta:
                return INCONCLUSIVE
        return v

    def minimum_extra(fam, comp):
        lines = []
        metric = final(fam, comp)[0]
        for g in (comp.first, comp.second):
            drop = still_improving(g, metric)
            if not math.isnan(drop) and drop > delta:
                which = ("validation loss" if metric == "final_val" and not math.isnan(g.val_late_drop)
                         else "smoothed online loss")
                lines.append(f"{fam.label}: {g.label} was still improving (its {which} fell {drop:.3f} bits/char over "
                             f"the last {1 - LATE_FRACTION:.0%} of its steps): a gap in final loss may only mean it "
                             "needed more time; run longer")
        return lines

    pair_claim(
        "4", "Both reach about the same minimum.",
        f"supported when the 95% interval of single − sliding in final validation loss (without validation, final "
        f"online loss) lies within ±{delta:g} bits/char; contradicted when it lies wholly outside and the scheme behind "
        f"was no longer improving (its loss fell by at most {delta:g} over the last {1 - LATE_FRACTION:.0%} of its "
        "steps: on the validation curve when it has 3 or more evaluations, else the smoothed online loss); "
        "inconclusive otherwise.",
        "single", "sliding", final, minimum, no_pair.format("single", "sliding"), extra=minimum_extra)

    # (5) k2 = 1: identical curves.
    tol = s["identical_tol"]
    verdicts, evidence = [], []
    for fam in families:
        if fam.key["k2"] != 1:
            continue
        for first, second in (("single", "sliding"), ("stored", "single"), ("stored", "sliding")):
            for comp in fam.comparison(first, second):
                worst = max(comp.max_abs_step_diff.values(), default=math.nan)
                v = NOT_MEASURED if math.isnan(worst) else SUPPORTED if worst <= tol else CONTRADICTED
                verdicts.append(v)
                evidence.append(f"{fam.label}: largest |{first} − {second}| online loss at any common log step over "
                                f"{_seeds_text(comp.seeds)}: {worst:.3g} bits/char → {v}")
    claims.append(Claim(
        "5", "With k2 = 1, single and sliding (and stored) are identical.", combine(verdicts),
        f"supported when, for every paired seed, the online losses at every log step both recorded differ by at most "
        f"{tol:g} bits/char; contradicted otherwise. Needs runs with k2 = 1.",
        evidence or ["not measured: no runs with k2 = 1 pair these schemes"],
        "; ".join(e.split(": ", 1)[1].rsplit(" → ", 1)[0] for e in evidence) if evidence
        else "not measured: no k2 = 1 runs"))

    # (6) gradients, from gradcheck.csv.
    cmin, etol = s["cosine_min"], s["exact_tol"]
    for number, text, estimator, rule, decide, metric in (
        ("6a", "The single-forward gradient is a very good approximation of the exact one.", "single",
         f"supported when the 95% interval of the median cosine similarity between single's gradient and the exact "
         f"window gradient lies at or above {cmin:g}; contradicted when it lies below; from gradcheck.csv.",
         lambda g: verdict_above(g.cosine, cmin, strict=False), "cosine"),
        ("6b", "Even with stored past weights the gradient is not the exact one.", "stored",
         f"supported when the 95% interval of the median relative error of stored's gradient against the exact window "
         f"gradient lies above {etol:g}; contradicted when it lies at or below; from gradcheck.csv.",
         lambda g: verdict_above(g.rel_error, etol, strict=True), "rel_error"),
    ):
        rows = [g for g in grad if g.estimator == estimator]
        if grad_problem is not None:
            claims.append(Claim(number, text, NOT_MEASURED, rule, [f"not measured: {grad_problem}"],
                                f"not measured: {grad_problem}"))
            continue
        if not rows:
            why = "no gradcheck.csv under the path (run `bpttbench gradcheck`)" if not grad else \
                f"gradcheck.csv has no {estimator} rows"
            claims.append(Claim(number, text, NOT_MEASURED, rule, [f"not measured: {why}"], f"not measured: {why}"))
            continue
        verdicts, evidence, short = [], [], []
        for g in rows:
            v = decide(g)
            verdicts.append(v)
            cfg = g.config
            where = _grad_where(cfg)
            evidence.append(f"{where}: cosine {format_interval(g.cosine, 'cos')}, relative error "
                            f"{_rel(g.rel_error)} over {g.cosine.n} checkpoints ({g.tensors}) → {v}")
            short.append(f"{'cos ' + _num(g.cosine.median, 'cos') if metric == 'cosine' else 'rel err ' + _sci(g.rel_error.median)}"
                         f" (k2={_g(cfg['k2'])}, lr={_g(cfg['lr'])})")
        claims.append(Claim(number, text, combine(verdicts), rule, evidence, "; ".join(short)))
    return claims


def _grad_where(cfg: dict) -> str:
    text = f"k1={_g(cfg['k1'])} k2={_g(cfg['k2'])} {cfg['optimizer']} lr={_g(cfg['lr'])}"
    if "corpus" in cfg:
        text = f"{cfg['corpus']}, {text}"
    return f"{text} (trained with {cfg['scheme']})"


def _sci(x: float) -> str:
    return "–" if math.isnan(x) else f"{x:.2g}"


def _rel(iv: Interval) -> str:
    if iv.n == 0:
        return "–"
    if iv.n == 1:
        return f"{_sci(iv.median)} (1 checkpoint)"
    return f"{_sci(iv.median)} [{_sci(iv.lo)}, {_sci(iv.hi)}]"


# ----------------------------------------------------------------------------- report.md


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    esc = lambda t: str(t).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(esc(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return lines


def render_markdown(report: Report, out_dir: Path) -> str:
    s = report.settings
    lines = ["# bpttbench report", ""]
    lines.append(f"Runs under `{report.path}`: " + "; ".join(report.notes) + ".")
    lines.append("")
    lines.append(f"Medians over seeds with 95% percentile-bootstrap intervals ({s['bootstrap']} resamples of the seeds, "
                 f"RNG seed {s['seed']}); \"about the same\" means within ±{s['delta']:g} bits/char. Losses are in bits "
                 "per character.")
    lines += ["", "## The question's claims", ""]
    lines += _md_table(["#", "claim", "verdict", "deciding numbers"],
                       [[c.number, c.text, f"**{c.verdict}**", c.deciding] for c in report.claims])
    for c in report.claims:
        lines += ["", f"**{c.number}. {c.text}** — {c.verdict}.", "", f"Rule: {c.rule}", ""]
        lines += [f"- {e}" for e in c.evidence]
    if report.gaps:
        lines += ["", "## Gap to the optimum", ""] + _md_gaps(report)
    lines += ["", "## Warnings", ""]
    lines += [f"- {w}" for w in report.warnings] or ["- none"]

    for fam in report.families:
        lines += ["", f"## {fam.label}", ""]
        lines.append(f"Equal time T = {_num(fam.at_time, 's')} s ({fam.at_time_source}); equal steps N = "
                     f"{_num(fam.at_steps, 'steps')} ({fam.at_steps_source}); target loss {_num(fam.target, 'bits/char')} "
                     f"bits/char ({fam.target_source}). Budget per seed: {', '.join(fam.budgets)}.")
        lines.append("")
        header = ["configuration", "seeds"] + [f"{t} ({u})" for t, u, _ in METRICS.values()] + ["compile (s)"]
        rows = []
        for g in fam.groups:
            rows.append([g.label, _seed_note(g)] + [format_interval(g.stats[m], u) for m, (_, u, _) in METRICS.items()]
                        + ["–" if math.isnan(g.compile_s) else f"{g.compile_s:.2f}"])
        lines += _md_table(header, rows)
        if fam.comparisons:
            lines += ["", "Paired by seed (same seed = same initial weights and stream): first minus second, so "
                      "negative means the first has the lower loss or reaches the target sooner; steps/s as the "
                      "ratio first / second.", ""]
            header = ["comparison", "paired seeds"] + [f"{t}" for t, _, _ in METRICS.values()]
            rows = [[c.name, str(len(c.seeds))] + [
                format_interval(c.stats[m], "×" if k == "ratio" else u, signed=k == "diff") for m, (_, u, k) in METRICS.items()]
                for c in fam.comparisons]
            lines += _md_table(header, rows)

    if report.gradcheck:
        lines += ["", "## Gradient fidelity (gradcheck)", "",
                  f"From {', '.join(f'`{_rel_path(p, out_dir)}`' for p in report.gradcheck_files)}: median over "
                  "checkpoints (seed × step) with a bootstrap interval over checkpoints, which along one trajectory "
                  "are not independent.", ""]
        rows = [[g.config["scheme"], _g(g.config["k1"]), _g(g.config["k2"]), f"{g.config['optimizer']} {_g(g.config['lr'])}",
                 g.estimator, str(g.cosine.n), format_interval(g.cosine, "cos"), _rel(g.rel_error)] for g in report.gradcheck]
        lines += _md_table(["trained", "k1", "k2", "optimizer lr", "estimator", "checkpoints", "cosine vs exact",
                            "relative error vs exact"], rows)

    lines += ["", "## Figures", ""]
    if report.figures:
        for p in report.figures:
            rel = _rel_path(p, out_dir)
            lines.append(f"![{p.stem.replace('_', ' ')}]({rel})")
            lines.append("")
    else:
        lines.append(f"None found next to the runs; draw them with `bpttbench plot {report.path}`.")

    lines += ["", "## How the numbers are made", ""]
    lines += [
        f"- Online loss curves are smoothed by a centred moving average over {s['smooth']} log points, each weighted "
        "by the steps it covers, narrowed symmetrically near the ends so it never lags where a curve stops (the first "
        "and last points keep their own value); losses at T and N and the times to target are read off that curve.",
        f"- Final online loss: the mean online loss over the last {s['smooth']} log points. Final validation loss: "
        "the last evaluation.",
        "- Loss at equal time / steps: the smoothed curve, linearly interpolated at T seconds / N steps, never "
        "extrapolated. By default T and N are the smallest training time / step count every seed of the family reached.",
        "- Time / steps to target: the first point where the smoothed curve is at or below the target, linearly "
        "interpolated between the log points around the crossing; 'not reached' if it never is. The default target "
        "is the highest, over the family's seeds, of the lowest smoothed loss each reached.",
        "- Validation loss at T: with equal time budgets, each seed's last evaluation; otherwise the validation curve "
        "interpolated at T. It reads every model on the same held-out text, which the online loss at T does not: at "
        "equal time the schemes are at different places in the stream, and how hard the text is there varies. So "
        "claims about equal time and the minimum use validation loss whenever the runs recorded it.",
        "- Steps per second: the unit's steps over its training time (compilation and evaluation excluded).",
        "- A family is every configuration with the same corpus, k2, inject, hidden, batch, optimizer and lr; "
        "claims 1–4 use its configurations with k1 < k2, claim 5 those with k2 = 1.",
        f"- Intervals: {s['bootstrap']} resamples of the seeds with replacement, the 2.5th and 97.5th percentiles of "
        "the resampled medians. With 3 seeds the interval of a median is the range of the seeds; with one seed there "
        "is none, and no verdict rests on one seed.",
        "- Diverged seeds are left out of the statistics and listed in the warnings.",
    ]
    if report.skipped:
        lines += ["", "## Skipped", ""]
        lines += [f"- `{_rel_path(p, out_dir)}`: {why}" for p, why in report.skipped]
    return "\n".join(lines) + "\n"


def _gap_intro(report: Report) -> str:
    frac = report.settings["gap_fraction"]
    return (f"On a generated corpus the optimum is the generating process's entropy rate, the lowest loss any predictor "
            f"reaches in the long run. Gap = final online loss − optimum, where the final online loss is the step-weighted "
            f"mean online loss over the last {frac:.0%} of each run's steps; medians over seeds with 95% bootstrap "
            "intervals, in bits/char. The online loss, not the validation loss: validation is read from a zero state, "
            "which on lag:L was found misleading.")


def _gap_pivot(t: GapTable) -> tuple[list[str], list[list[str]]]:
    """The scheme x k2 table: truncated schemes by k2, the online ones in a column of their own."""
    online = any(r.k2 is None for r in t.rows)
    header = ["scheme"] + [f"k2 = {k}" for k in t.k2s] + (["no truncation"] if online else [])
    rows = []
    for name in t.row_names:
        cells = [t.cell(name, k) for k in t.k2s] + ([t.cell(name, None)] if online else [])
        rows.append([name] + ["–" if r is None else _gap_cell(r) for r in cells])
    return header, rows


def _md_gaps(report: Report) -> list[str]:
    lines = [_gap_intro(report)]
    for t in report.gaps:
        lines += ["", f"### {t.label}", "", f"Optimum {t.optimum:.4f} bits/char." + (
            f" On this corpus {t.dependency}." if t.dependency else "")]
        lines += [""] + _md_table(
            ["configuration", "seeds", "final online loss", "gap", "mean over the steps after", "µs per step"],
            [[r.label, str(len(r.seeds)), format_interval(r.final), _gap_cell(r),
              "–" if math.isnan(r.from_step) else f"{r.from_step:,.0f}", format_interval(r.us_per_step, "us")]
             for r in t.rows])
        if len(t.k2s) >= 2:
            lines += ["", "Gap by scheme and k2:", ""] + _md_table(*_gap_pivot(t))
        if t.findings:
            lines += ["", f"Where each scheme stops learning the dependency: a configuration learns it when its median "
                      f"gap is below the cost of forgetting it, {t.cost:.4f} bits/char.", ""]
            lines += [f"- {f}" for f in t.findings]
    return lines


def _rel_path(p: Path, out_dir: Path) -> str:
    try:
        return Path(os.path.relpath(Path(p).resolve(), Path(out_dir).resolve())).as_posix()
    except ValueError:  # another drive on Windows
        return Path(p).resolve().as_posix()


def write_report(report: Report, out_dir: Path | None = None) -> Path:
    """Write report.md into out_dir (default: the folder the report was built from); returns its path."""
    if out_dir is None:
        out_dir = report.path.parent if report.path.is_file() else report.path
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ResultsError(f"could not create {out_dir}: {exc.strerror or exc}; choose --out elsewhere") from exc
    target = out_dir / REPORT
    text = render_markdown(report, out_dir)
    atomic_write(target, lambda f: f.write(text))
    return target


# ----------------------------------------------------------------------------- rich


def terminal_metrics(fam: Family) -> list[str]:
    """The columns worth a terminal's width: validation numbers when recorded, else the online ones."""
    has = lambda m: any(g.stats[m].n for g in fam.groups)  # noqa: E731
    names = ["final_val" if has("final_val") else "final_train",
             "val_at_time" if has("val_at_time") else "at_time",
             "at_steps", "time_to_target", "steps_per_s"]
    return names


def rich_renderables(report: Report) -> list:
    """Tables for a terminal (the CLI prints them to stdout): the claims, then per family its
    configurations and paired differences on the columns of `terminal_metrics` (report.md has all)."""
    from rich.table import Table
    from rich.text import Text

    styles = {SUPPORTED: "green", CONTRADICTED: "red", INCONCLUSIVE: "yellow", MIXED: "yellow", NOT_MEASURED: "dim"}
    out = []
    claims = Table(title="the question's claims")
    for name in ("#", "claim", "verdict", "deciding numbers"):
        claims.add_column(name, overflow="fold")
    for c in report.claims:
        claims.add_row(c.number, c.text, f"[{styles.get(c.verdict, '')}]{c.verdict}[/]", c.deciding)
    out.append(claims)
    for t in report.gaps:
        g = Table(title=f"gap to the optimum ({t.optimum:.4f} bits/char), {t.label}\nfinal online loss over the last "
                        f"{report.settings['gap_fraction']:.0%} of the steps − optimum; medians [95% interval]")
        header, rows = _gap_pivot(t) if len(t.k2s) >= 2 else (
            ["configuration", "seeds", "gap"], [[r.label, str(len(r.seeds)), _gap_cell(r)] for r in t.rows])
        for i, name in enumerate(header):
            g.add_column(name, justify="left" if i == 0 else "right")
        for row in rows:
            g.add_row(*row)
        out.append(g)
        if t.findings:  # Text, not markup: the findings hold intervals in brackets
            out.append(Text(f"where each scheme stops learning the dependency (learned: median gap < {t.cost:.4f} "
                            "bits/char):"))
            out.extend(Text(f"  {f.split(' (gap by k2: ')[0]}") for f in t.findings)  # the table has the gaps
    for fam in report.families:
        names = terminal_metrics(fam)
        t = Table(title=f"{fam.label}: medians over seeds [95% interval]\nT = {_num(fam.at_time, 's')} s, "
                        f"N = {_num(fam.at_steps, 'steps')} steps, target {_num(fam.target, 'bits/char')} bits/char")
        t.add_column("configuration")
        t.add_column("seeds", justify="right")
        for m in names:
            t.add_column(METRICS[m][0], justify="right")
        for g in fam.groups:
            t.add_row(g.label, _seed_note(g), *[format_interval(g.stats[m], METRICS[m][1]) for m in names])
        out.append(t)
        if fam.comparisons:
            p = Table(title="paired by seed: first − second (steps/s: first / second)")
            p.add_column("comparison")
            p.add_column("seeds", justify="right")
            for m in names:
                p.add_column(METRICS[m][0], justify="right")
            for c in fam.comparisons:
                p.add_row(c.name, str(len(c.seeds)), *[
                    format_interval(c.stats[m], "×" if METRICS[m][2] == "ratio" else METRICS[m][1],
                                    signed=METRICS[m][2] == "diff") for m in names])
            out.append(p)
    return out

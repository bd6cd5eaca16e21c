"""Statistics over seeds: estimates with 95% intervals from SciPy, reading a curve at a point, the
verdict rules that turn an interval into supported / contradicted / inconclusive, and how many seeds
would turn an inconclusive one into a decision.

Estimators, each with an interval that holds its 95% (tests/test_coverage.py checks it by simulation),
and why each:
- a paired difference (claims 1-4, every comparison): the MEAN of the per-seed differences with its
  Student-t interval (mean_interval). Each per-seed difference is itself an average over a whole curve,
  so the differences are close to normal: there the t interval's coverage is exact, and the mean is the
  more efficient estimate: the median's standard error is sqrt(pi/2) ~ 1.25 times the mean's, so the
  mean reaches a given width with 2/pi ~ 64% of the seeds;
- a ratio (steps/s, first / second): the geometric mean, the t interval of the logarithms, exponentiated,
  because a ratio's scatter is multiplicative (x2 and x0.5 lie equally far from 1 on a log scale);
- a sample holding +inf ("not reached", a time to target): the median, as no mean exists;
- a configuration's own numbers (losses, times, us/step) and gradient cosines / relative errors over
  checkpoints: the median with its distribution-free interval from the binomial order statistics
  (median_interval), since cosines crowd against 1 and relative errors span orders of magnitude: no
  shape is assumed, and a slow or odd seed does not move it.
Below MIN_SAMPLE values no interval is given and the estimate is reported alone ("3 seeds: no 95%
interval below 5 seeds"): with 3 seeds the t interval reaches 2.5 standard deviations either side of
the mean and its 95% rests wholly on a normality three values cannot check, while the order statistics
have no 95% interval at all (the range of 3 values covers 75%). A verdict never rests on an estimate
alone: without an interval it is inconclusive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np
from scipy import stats as scipy_stats

from bpttbench.results import step_weights

SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_MEASURED, MIXED = (
    "supported", "contradicted", "inconclusive", "not measured", "mixed")
LEVEL = 0.95
MIN_SAMPLE = 5  # the fewest values that get a 95% interval: the one place this number is set
# A median's interval needs more: the widest one, the range of n values, covers 1 - 2 * 0.5**n, which
# reaches 95% at n = 6.
MEDIAN_MIN_SAMPLE = max(MIN_SAMPLE, math.ceil(math.log2(2 / (1 - LEVEL))))


@dataclass(frozen=True)
class Interval:
    """An estimate over n values with its 95% interval (lo, hi): NaN where there is none (no values,
    or fewer than fewest_values(estimator)). inf means "not reached". `estimator` says which estimate
    it is: "mean", "geometric mean" or "median"."""

    estimate: float
    lo: float
    hi: float
    n: int
    values: tuple = ()  # the values it is over, in seed order
    estimator: str = "mean"

    @property
    def fewest(self) -> int:
        """The fewest values for which this estimator gets a 95% interval."""
        return fewest_values(self.estimator)

    @property
    def has_interval(self) -> bool:
        return not (math.isnan(self.lo) or math.isnan(self.hi))

    def to_dict(self) -> dict:
        return {"estimate": self.estimate, "estimator": self.estimator, "lo": self.lo, "hi": self.hi, "n": self.n,
                "values": list(self.values)}


def fewest_values(estimator: str) -> int:
    """The fewest values that get a 95% interval: MIN_SAMPLE, or MEDIAN_MIN_SAMPLE for a median."""
    return MEDIAN_MIN_SAMPLE if estimator == "median" else MIN_SAMPLE


def _kept(values: Iterable[float]) -> tuple:
    return tuple(float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v)))


def mean_interval(values: Iterable[float]) -> Interval:
    """The mean of the values (NaN dropped) and its 95% Student-t interval; a sample holding an
    infinite value ("not reached") has no mean and gets median_interval instead."""
    kept = _kept(values)
    v = np.asarray(kept, dtype=float)
    if not np.isfinite(v).all():
        return median_interval(kept)
    n = len(v)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0, kept)
    mean = float(np.mean(v))
    if n < MIN_SAMPLE:
        return Interval(mean, math.nan, math.nan, n, kept)
    if np.ptp(v) <= 1e-12 * max(1.0, abs(mean)):  # no spread but rounding: the interval is the point
        return Interval(mean, mean, mean, n, kept)
    lo, hi = scipy_stats.ttest_1samp(v, 0.0).confidence_interval(LEVEL)
    return Interval(mean, float(lo), float(hi), n, kept)


def ratio_interval(values: Iterable[float]) -> Interval:
    """The geometric mean of positive ratios and the t interval of their logarithms, exponentiated."""
    kept = _kept(values)
    v = np.asarray(kept, dtype=float)
    if len(v) and not (np.all(v > 0) and np.isfinite(v).all()):
        return median_interval(kept)
    logs = mean_interval(np.log(v))
    return Interval(math.exp(logs.estimate) if logs.n else math.nan, math.exp(logs.lo) if logs.has_interval else math.nan,
                    math.exp(logs.hi) if logs.has_interval else math.nan, logs.n, kept, "geometric mean")


def median_interval(values: Iterable[float]) -> Interval:
    """The median of the values (NaN dropped; inf allowed) and its distribution-free 95% interval:
    the order statistics [x_(l), x_(n-1-l)] (0-based, sorted) with l the largest index at which
    P(B <= l) <= 2.5% for B ~ Binomial(n, 1/2). That interval misses the median only when at most l
    values fall on one side of it, so it covers with probability 1 - 2 P(B <= l) >= 95% whatever the
    values' distribution (the interval of scipy.stats.quantile_test, SciPy >= 1.12)."""
    kept = _kept(values)
    v = np.sort(np.asarray(kept, dtype=float))
    n = len(v)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0, kept, "median")
    med = float(np.median(v)) if np.isfinite(v).all() else float(v[(n - 1) // 2] if n % 2 else
                                                                  (v[n // 2 - 1] + v[n // 2]) / 2)
    tail = (1 - LEVEL) / 2
    lower = int(scipy_stats.binom.ppf(tail, n, 0.5))  # the smallest l with P(B <= l) >= 2.5% ...
    lower -= bool(scipy_stats.binom.cdf(lower, n, 0.5) > tail)  # ... one less unless it is exactly 2.5%
    if n < MEDIAN_MIN_SAMPLE or lower < 0:  # even the range covers less than 95% (94% for 5 values)
        return Interval(med, math.nan, math.nan, n, kept, "median")
    return Interval(med, float(v[lower]), float(v[n - 1 - lower]), n, kept, "median")


def interval_for(values: Iterable[float], kind: str) -> Interval:
    """A paired comparison's interval: 'diff' mean_interval, 'ratio' ratio_interval."""
    return ratio_interval(values) if kind == "ratio" else mean_interval(values)


def paired(first: dict[int, float], second: dict[int, float], seeds: Iterable[int], kind: str) -> list[float]:
    """Per shared seed: first − second (kind 'diff') or first / second (kind 'ratio')."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return [first[s] / second[s] if kind == "ratio" else first[s] - second[s] for s in seeds]


def median_or_nan(values: list[float]) -> float:
    return float(np.median(values)) if values else math.nan


def trailing_mean(steps: np.ndarray, values: np.ndarray, window: int) -> float:
    """Mean online loss over the steps of the last `window` log points (step-weighted)."""
    values = np.asarray(values, dtype=float)[-max(window, 1):]
    w = step_weights(steps)[-max(window, 1):]
    return float(np.sum(values * w) / np.sum(w)) if np.sum(w) > 0 else float(values[-1])


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


# ----------------------------------------------------------------------------- verdicts


def verdict_within(iv: Interval, delta: float) -> str:
    """'About the same': supported when the interval lies within ±delta, contradicted when it lies
    wholly outside, inconclusive otherwise or without an interval."""
    if iv.n == 0:
        return NOT_MEASURED
    if not iv.has_interval:  # fewer than MIN_SAMPLE values: no interval to decide on
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
    if not iv.has_interval:  # fewer than MIN_SAMPLE values: no interval to decide on
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
    if not iv.has_interval:  # fewer than MIN_SAMPLE values: no interval to decide on
        return INCONCLUSIVE
    if (iv.lo > bound) if strict else (iv.lo >= bound):
        return SUPPORTED
    if (iv.hi <= bound) if strict else (iv.hi < bound):
        return CONTRADICTED
    return INCONCLUSIVE


# ----------------------------------------------------------------------------- seeds a decision needs

EDGE_FRACTION = 0.1  # an estimate closer than this fraction of delta to an edge of the band lies on the edge
MAX_SEEDS = 10_000  # past this many seeds the estimate says "more than" rather than a number


@dataclass(frozen=True)
class SeedsNeeded:
    """How many seeds would decide an inconclusive claim; seeds is None when no count would."""

    seeds: int | None
    spread: float  # sample standard deviation of the per-seed values (NaN with one seed)
    gap: float  # distance from the estimate to the nearest edge
    text: str

    @property
    def short(self) -> str:
        """The verdict part of text, without the numbers behind it."""
        return self.text.split(" (")[0]

    def to_dict(self) -> dict:
        return {"seeds": self.seeds, "spread": self.spread, "gap": self.gap, "text": self.text}


def half_width(spread: float, n: np.ndarray | int) -> np.ndarray | float:
    """Half-width of the 95% t interval of the mean of n values with standard deviation spread:
    t_{0.975, n-1} · spread / sqrt(n) (what mean_interval gives)."""
    n = np.asarray(n, dtype=float)
    return scipy_stats.t.ppf(0.5 + LEVEL / 2, n - 1) * spread / np.sqrt(n)


def seeds_needed(values: Iterable[float], edges: tuple[float, ...], margin: float) -> SeedsNeeded:
    """How many seeds would put the 95% interval of the mean wholly on one side of every edge.

    With the per-seed values d_1..d_n (sample standard deviation s) and their mean m, the distance
    g = min over edges e of |m − e| is what the interval's half-width must fall below: then
    [m − h, m + h] lies entirely inside the band (or entirely outside it, or on one side of a bound).
    The answer is the smallest n' >= MIN_SAMPLE with half_width(s, n') < g, and at least n + 1. It
    assumes the mean and spread stay as observed. When g <= margin the mean lies on the edge and no
    count is given: more seeds would only pin it there.
    """
    v = np.asarray([x for x in values if not math.isnan(x)], dtype=float)
    n = len(v)
    if n == 0:
        return SeedsNeeded(None, math.nan, math.nan, "no seeds to estimate from")
    m = float(np.mean(v))
    gap = min(abs(m - e) for e in edges)
    nearest = min(edges, key=lambda e: abs(m - e))
    if gap <= margin:
        return SeedsNeeded(None, float(np.std(v, ddof=1)) if n > 1 else math.nan, gap,
                           f"not decidable at any seed count: the difference lies on the band's edge (mean "
                           f"{format_signed(m, 'bits/char')}, within {margin:g} of the edge at "
                           f"{format_signed(nearest, 'bits/char')})")
    if n == 1:
        return SeedsNeeded(None, math.nan, gap, "more seeds needed: one seed has no spread to estimate how many from")
    s = float(np.std(v, ddof=1))
    counts = np.arange(MIN_SAMPLE, MAX_SEEDS + 1)
    enough = np.flatnonzero(half_width(s, counts) < gap)
    why = (f"from the spread of the paired differences, s = {s:.3f} over {n} seeds, and the mean's distance "
           f"{gap:.3f} from the edge at {format_signed(nearest, 'bits/char')}")
    if not len(enough):
        return SeedsNeeded(None, s, gap, f"more than {MAX_SEEDS:,} seeds would be needed ({why})")
    need = max(int(counts[enough[0]]), n + 1)
    return SeedsNeeded(need, s, gap, f"≈ {need} seeds would decide it ({why})")


def combine(verdicts: list[str]) -> str:
    """One verdict over several families: theirs if they agree, else mixed; not measured if none."""
    measured = [v for v in verdicts if v != NOT_MEASURED]
    if not measured:
        return NOT_MEASURED
    return measured[0] if len(set(measured)) == 1 else MIXED


# ----------------------------------------------------------------------------- numbers as text


def format_number(x: float, unit: str) -> str:
    """x as the report prints a value in unit; '–' when undefined, 'not reached' for +inf."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if math.isinf(x):
        return "not reached" if x > 0 else "−∞"
    if unit in ("steps", "steps/s"):
        return f"{x:,.0f}"
    if unit in ("s", "us"):
        return f"{x:.3g}" if abs(x) < 100 else f"{x:,.0f}"
    if unit == "×":
        return f"{x:.2f}×"
    if unit == "cos":
        return f"{x:.4f}"
    return f"{x:.3f}"


def format_signed(x: float, unit: str) -> str:
    """A difference with its sign (typographic minus); none when it rounds to zero."""
    text = format_number(x, unit).lstrip("-")
    if not isinstance(x, (int, float)) or not math.isfinite(x) or not any(ch in "123456789" for ch in text):
        return text if not (isinstance(x, float) and x == -math.inf) else "−∞"
    return ("+" if x > 0 else "−") + text


def _no_interval(iv: Interval, of: str) -> str:
    """'3 seeds: no 95% interval below 5 seeds'."""
    noun = of[:-1] if iv.n == 1 and of.endswith("s") else of
    return f"{iv.n} {noun}: no 95% interval below {iv.fewest} {of}"


def format_interval(iv: Interval, unit: str = "bits/char", *, signed: bool = False, of: str = "seeds") -> str:
    """'2.310 [2.281, 2.350]'; '2.310 (3 seeds: no 95% interval below 5 seeds)'; '–' when there is
    nothing. `of` names what the values are over (seeds, checkpoints)."""
    fmt = format_signed if signed else format_number
    if iv.n == 0:
        return "–"
    if not iv.has_interval:
        return f"{fmt(iv.estimate, unit)} ({_no_interval(iv, of)})"
    return f"{fmt(iv.estimate, unit)} [{fmt(iv.lo, unit)}, {fmt(iv.hi, unit)}]"


def format_per_seed(iv: Interval, unit: str) -> str:
    """' (per seed: +0.037, −0.006)' for 2 to 10 values; '' otherwise."""
    if iv.n <= 1 or iv.n > 10:
        return ""
    return " (per seed: " + ", ".join(format_signed(v, unit) for v in iv.values) + ")"


def format_setting(x) -> str:
    """A configuration value as few characters as it takes: 0.002, 16, adam."""
    if isinstance(x, float):
        return f"{x:g}"
    return str(x)


def format_small(x: float) -> str:
    """Two significant digits, for relative errors that span orders of magnitude."""
    return "–" if math.isnan(x) else f"{x:.2g}"


def format_small_interval(iv: Interval) -> str:
    """A relative error's estimate and interval over checkpoints, two significant digits each."""
    if iv.n == 0:
        return "–"
    if not iv.has_interval:
        return f"{format_small(iv.estimate)} ({_no_interval(iv, 'checkpoints')})"
    return f"{format_small(iv.estimate)} [{format_small(iv.lo)}, {format_small(iv.hi)}]"


def format_seeds(seeds: Iterable[int]) -> str:
    """'seed 3' or 'seeds 0, 2'."""
    seeds = list(seeds)
    return f"seed{'s' if len(seeds) != 1 else ''} {', '.join(str(s) for s in seeds)}"

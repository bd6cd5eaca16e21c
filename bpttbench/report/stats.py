"""Statistics over seeds: medians with percentile-bootstrap intervals, reading a curve at a point,
the verdict rules that turn an interval into supported / contradicted / inconclusive, and how many
seeds would turn an inconclusive one into a decision."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np
from scipy import stats as scipy_stats

from bpttbench import defaults
from bpttbench.results import step_weights

SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_MEASURED, MIXED = (
    "supported", "contradicted", "inconclusive", "not measured", "mixed")


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


def bootstrap_median(values: Iterable[float], *, n_boot: int = defaults.BOOTSTRAP,
                     seed: int = defaults.BOOTSTRAP_SEED) -> Interval:
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


# ----------------------------------------------------------------------------- seeds a decision needs

EDGE_FRACTION = 0.1  # a median closer than this fraction of delta to an edge of the band lies on the edge
MAX_SEEDS = 10_000  # past this many seeds the estimate says "more than" rather than a number
MEDIAN_EFFICIENCY = math.sqrt(math.pi / 2)  # standard error of a median / that of a mean, for normal data


@dataclass(frozen=True)
class SeedsNeeded:
    """How many seeds would decide an inconclusive claim; seeds is None when no count would."""

    seeds: int | None
    spread: float  # sample standard deviation of the per-seed values (NaN with one seed)
    gap: float  # distance from the median to the nearest edge
    text: str

    @property
    def short(self) -> str:
        """The verdict part of text, without the numbers behind it."""
        return self.text.split(" (")[0]

    def to_dict(self) -> dict:
        return {"seeds": self.seeds, "spread": self.spread, "gap": self.gap, "text": self.text}


def half_width(spread: float, n: np.ndarray | int) -> np.ndarray | float:
    """Half-width of a 95% interval of the median of n values with standard deviation spread:
    t_{0.975, n-1} · sqrt(pi/2) · spread / sqrt(n), the normal-theory width of a median (what the
    percentile bootstrap approaches as n grows), with Student's t for small n."""
    n = np.asarray(n, dtype=float)
    return scipy_stats.t.ppf(0.975, n - 1) * MEDIAN_EFFICIENCY * spread / np.sqrt(n)


def seeds_needed(values: Iterable[float], edges: tuple[float, ...], margin: float) -> SeedsNeeded:
    """How many seeds would put the 95% interval of the median wholly on one side of every edge.

    With the per-seed values d_1..d_n (sample standard deviation s) and their median m, the
    distance g = min over edges e of |m − e| is what the interval's half-width must fall below:
    then [m − h, m + h] lies entirely inside the band (or entirely outside it, or on one side of
    a bound). The answer is the smallest n' with half_width(s, n') < g, and at least n + 1 (at
    small n the percentile bootstrap is wider than this normal approximation: with 3 seeds its
    interval is their range). It assumes the median and spread stay as observed. When g <= margin
    the median lies on the edge and no count is given: more seeds would only pin it there.
    """
    v = np.asarray([x for x in values if not math.isnan(x)], dtype=float)
    n = len(v)
    if n == 0:
        return SeedsNeeded(None, math.nan, math.nan, "no seeds to estimate from")
    m = float(np.median(v))
    gap = min(abs(m - e) for e in edges)
    nearest = min(edges, key=lambda e: abs(m - e))
    if gap <= margin:
        return SeedsNeeded(None, float(np.std(v, ddof=1)) if n > 1 else math.nan, gap,
                           f"not decidable at any seed count: the difference lies on the band's edge (median "
                           f"{format_signed(m, 'bits/char')}, within {margin:g} of the edge at "
                           f"{format_signed(nearest, 'bits/char')})")
    if n == 1:
        return SeedsNeeded(None, math.nan, gap, "more seeds needed: one seed has no spread to estimate how many from")
    s = float(np.std(v, ddof=1))
    counts = np.arange(2, MAX_SEEDS + 1)
    enough = np.flatnonzero(half_width(s, counts) < gap)
    why = (f"from the spread of the paired differences, s = {s:.3f} over {n} seeds, and the median's distance "
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


def format_interval(iv: Interval, unit: str = "bits/char", *, signed: bool = False) -> str:
    """'2.310 [2.281, 2.350]'; '2.310 (1 seed)'; '–' when there is nothing."""
    fmt = format_signed if signed else format_number
    if iv.n == 0:
        return "–"
    if iv.n == 1:
        return f"{fmt(iv.median, unit)} (1 seed)"
    return f"{fmt(iv.median, unit)} [{fmt(iv.lo, unit)}, {fmt(iv.hi, unit)}]"


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
    """A relative error's median and interval over checkpoints, two significant digits each."""
    if iv.n == 0:
        return "–"
    if iv.n == 1:
        return f"{format_small(iv.median)} (1 checkpoint)"
    return f"{format_small(iv.median)} [{format_small(iv.lo)}, {format_small(iv.hi)}]"


def format_seeds(seeds: Iterable[int]) -> str:
    """'seed 3' or 'seeds 0, 2'."""
    seeds = list(seeds)
    return f"seed{'s' if len(seeds) != 1 else ''} {', '.join(str(s) for s in seeds)}"

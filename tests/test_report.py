"""The report's statistics and verdicts on synthetic runs whose answers are known by construction.

Curves are written with results.RunWriter exactly as `bpttbench run` writes them. Every verdict
is checked on a set of runs that supports it and on one that contradicts it (or leaves it
unmeasured), so a rule that says the same thing whatever the input fails here.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bpttbench.fidelity import gradcheck, gradients as fidelity
from bpttbench.config import TrainConfig
from bpttbench.errors import ResultsError
from bpttbench.results.records import Record, RunOutcome
from bpttbench.report import (
    CONTRADICTED,
    INCONCLUSIVE,
    MIXED,
    NOT_MEASURED,
    SUPPORTED,
    Interval,
    mean_interval,
    median_interval,
    ratio_interval,
    build_report,
    combine,
    first_crossing,
    trailing_mean,
    value_at,
    verdict_below,
    verdict_within,
    write_report,
)
from bpttbench.report.stats import MEDIAN_MIN_SAMPLE, format_interval, seeds_needed
from bpttbench.results import RunWriter, smooth_curve
from conftest import invoke

MACHINE = {"cpu": "Test CPU 3000", "cores": 2, "hostname": "box", "python": "3.11.0", "numpy": "1.26.0",
           "numba": "0.59.0", "bpttbench": "0.1.0"}
SEEDS = (0, 1, 2, 3, 4, 5)  # 6: the fewest seeds with a 95% interval of a median (5 for a mean)


def f_fast(step):
    """A loss that has levelled off well before 2,500 steps."""
    return 2.0 + 2.0 * math.exp(-step / 400)


def f_slow(step):
    """A loss still falling at 2,500 steps."""
    return 2.0 + 2.0 * math.exp(-step / 4000)


def points(loss, speed, budget_s=10.0, log=500, val=0.1):
    """[(step, wall_s, train_bpc, val_bpc)] every `log` steps at `speed` steps/s until budget_s;
    val_bpc = train_bpc + val on the last point only."""
    n = int(round(budget_s * speed / log))
    out = []
    for i in range(1, n + 1):
        step = i * log
        out.append((step, step / speed, loss(step), None))
    step, wall, bpc, _ = out[-1]
    out[-1] = (step, wall, bpc, bpc + val)
    return out


def unit(scheme, seed, pts, *, k1=1, k2=20, status="complete", budget_seconds=10.0, budget_steps=None, **cfg):
    return {"cfg": TrainConfig(scheme=scheme, seed=seed, k1=k1, k2=k2, clock="wall", budget_seconds=None if budget_steps else budget_seconds,
                               budget_steps=budget_steps, log_every=500, **cfg),
            "points": pts, "status": status}


def write_run(out: Path, units, *, machine=MACHINE, status="complete", corpus="synthetic") -> Path:
    manifest = {"run_id": out.name, "corpus": {"name": corpus}}
    if machine is not None:
        manifest["machine"] = machine
    w = RunWriter(out, force=False, manifest=manifest)
    for u in units:
        key = w.start_unit(u["cfg"], corpus)
        pts = u["points"]
        for step, wall, bpc, val in pts:
            w.add_record(key, Record(step=step, updates=step, wall_s=wall, train_bpc=bpc, val_bpc=val))
        last = pts[-1]
        diverged = u["status"] == "diverged"
        w.finish_unit(key, RunOutcome(status=u["status"], steps=last[0], updates=last[0], wall_s=last[1], compile_s=1.5,
                                      final_train_bpc=last[2], final_val_bpc=last[3],
                                      diverged_at_step=last[0] + 500 if diverged else None))
    if status is not None:
        w.close(status)
    return out


def question_units(*, single_offset=0.0, stored_offset=0.002, loss=f_fast, seeds=SEEDS, stored=True):
    """Single and sliding equal per step (plus single_offset), single 4× faster; stored as single
    per step plus stored_offset, a little slower. Seed s adds 0.01·s to every loss."""
    units = []
    for s in seeds:
        units.append(unit("sliding", s, points(lambda t, s=s: loss(t) + 0.01 * s, 250)))
        units.append(unit("single", s, points(lambda t, s=s: loss(t) + 0.01 * s + single_offset, 1000)))
        if stored:
            units.append(unit("stored", s, points(lambda t, s=s: loss(t) + 0.01 * s + stored_offset, 800)))
    return units


def claim(report, number):
    return next(c for c in report.claims if c.number == number)


def group(report, scheme, family=0):
    return next(g for g in report.families[family].groups if g.scheme == scheme)


def comparison(report, first, second, family=0):
    (c,) = report.families[family].comparison(first, second)
    return c


# ----------------------------------------------------------------------------- statistics


def test_a_mean_has_its_t_interval_and_none_below_five_values():
    values = [0.01, -0.02, 0.03, 0.00, 0.05, 0.02]
    iv = mean_interval(values)
    half = stats.t.ppf(0.975, 5) * np.std(values, ddof=1) / math.sqrt(6)  # the textbook formula, by hand
    assert (iv.estimate, iv.lo, iv.hi, iv.n) == pytest.approx((np.mean(values), np.mean(values) - half,
                                                               np.mean(values) + half, 6))
    few = mean_interval([0.007, 0.007, 0.018])  # the case: three seeds are no 95% interval
    assert few.estimate == pytest.approx(0.032 / 3) and few.n == 3 and not few.has_interval
    assert format_interval(few, signed=True) == "+0.011 (3 seeds: no 95% interval below 5 seeds)"
    assert verdict_within(few, 0.05) == INCONCLUSIVE
    assert mean_interval([math.nan]).n == 0 and mean_interval([1.0, 2.0, math.inf, 3.0, 4.0]).estimator == "median"


def test_a_median_has_its_order_statistic_interval():
    """For n values the interval [x_(l), x_(n-1-l)] (0-based) misses the median only when at most l of
    them lie on one side: it covers with probability 1 - 2 P(B <= l), B ~ Binomial(n, 1/2). l is the
    largest index with at least 95%, for every n (8 and 16 were once given 93% and 92%)."""
    for n in range(MEDIAN_MIN_SAMPLE, 201):
        iv = median_interval(np.arange(n, dtype=float)[::-1])
        lower = int(iv.lo)
        cover = 1 - 2 * stats.binom.cdf(lower, n, 0.5)
        narrower = 1 - 2 * stats.binom.cdf(lower + 1, n, 0.5)
        assert iv.hi == n - 1 - lower and cover >= 0.95 > narrower, (n, lower, cover)
    assert median_interval([1.0, 2.0, math.inf, math.inf, math.inf, math.inf, 3.0]).hi == math.inf
    assert not median_interval(range(5)).has_interval  # the range of 5 values covers 94%
    assert format_interval(median_interval(range(5)), "s") == "2 (5 seeds: no 95% interval below 6 seeds)"


@pytest.mark.skipif(not hasattr(stats, "quantile_test"), reason="scipy.stats.quantile_test needs SciPy >= 1.12")
def test_a_median_interval_is_scipys_quantile_test_interval():
    rng = np.random.default_rng(11)
    for n in range(1, 120):
        x = rng.standard_normal(n)
        ours = median_interval(x)
        theirs = stats.quantile_test(x, q=float(np.median(x)), p=0.5).confidence_interval(0.95)
        assert (ours.lo, ours.hi) == pytest.approx((theirs.low, theirs.high), nan_ok=True), n


def test_a_ratio_is_a_geometric_mean():
    iv = ratio_interval([1.1, 1.2, 1.3, 1.15, 1.25])
    assert iv.estimate == pytest.approx(math.exp(np.mean(np.log([1.1, 1.2, 1.3, 1.15, 1.25]))))
    assert iv.lo < iv.estimate < iv.hi and iv.estimator == "geometric mean"


def test_step_weighted_smoothing_by_hand():
    steps = np.array([1000.0, 2000.0, 3000.0, 4000.0, 4500.0])
    values = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    got = smooth_curve(steps, values, 5)
    # weights = steps covered: 1000, 1000, 1000, 1000, 500; the window narrows symmetrically at the ends
    expect = [5.0, (5 + 4 + 3) / 3, (5000 + 4000 + 3000 + 2000 + 500) / 4500, (3000 + 2000 + 500) / 2500, 1.0]
    np.testing.assert_allclose(got, expect)
    np.testing.assert_array_equal(smooth_curve(steps, values, 1), values)
    assert trailing_mean(steps, values, 2) == pytest.approx((2 * 1000 + 1 * 500) / 1500)
    assert trailing_mean(steps, values, 1) == 1.0


def test_smoothing_does_not_lag_where_a_curve_stops(tmp_path):
    """Equal per-step curves, steeply falling where sliding stops (N = 2,500): a window that only
    shrank on one side read sliding 0.13 bits/char high there and 'contradicted' claim 2."""
    report = build_report(write_run(tmp_path / "run", question_units(loss=f_slow)))  # default smoothing
    d = comparison(report, "single", "sliding").stats["at_steps"].estimate
    assert abs(d) < 0.02  # what is left is the curvature of a symmetric window, the same for every scheme
    assert claim(report, "2").verdict == SUPPORTED


def test_interpolation_and_first_crossing_by_hand():
    xs, ys = np.array([1.0, 2.0, 3.0, 4.0]), np.array([5.0, 4.0, 3.0, 3.5])
    assert value_at(xs, ys, 2.5) == 3.5
    assert value_at(xs, ys, 3.5) == 3.25
    assert math.isnan(value_at(xs, ys, 0.5)) and math.isnan(value_at(xs, ys, 4.5))  # never extrapolated
    assert first_crossing(xs, ys, 3.25) == 2.75
    assert first_crossing(xs, ys, 3.0) == 3.0
    assert first_crossing(xs, ys, 6.0) == 1.0  # already below at the first point
    assert first_crossing(xs, ys, 2.0) == math.inf


def test_verdict_rules_cover_every_outcome():
    iv = lambda lo, hi, n=3: Interval((lo + hi) / 2, lo, hi, n)  # noqa: E731
    assert verdict_within(iv(-0.01, 0.02), 0.05) == SUPPORTED
    assert verdict_within(iv(0.06, 0.2), 0.05) == CONTRADICTED
    assert verdict_within(iv(-0.3, -0.06), 0.05) == CONTRADICTED
    assert verdict_within(iv(-0.01, 0.2), 0.05) == INCONCLUSIVE
    assert verdict_within(Interval(0.0, math.nan, math.nan, 1), 0.05) == INCONCLUSIVE  # one seed decides nothing
    assert verdict_within(Interval(math.nan, math.nan, math.nan, 0), 0.05) == NOT_MEASURED
    assert verdict_below(iv(-0.2, -0.01)) == SUPPORTED
    assert verdict_below(iv(0.01, 0.2)) == CONTRADICTED
    assert verdict_below(iv(-0.01, 0.2)) == INCONCLUSIVE
    assert combine([SUPPORTED, NOT_MEASURED, SUPPORTED]) == SUPPORTED
    assert combine([SUPPORTED, CONTRADICTED]) == MIXED
    assert combine([NOT_MEASURED]) == combine([]) == NOT_MEASURED


def smallest_n(values, gap):
    """The smallest n > len(values), at least 5, with t(0.975, n-1)·s/sqrt(n) < gap, by brute force."""
    s = np.std(values, ddof=1)
    return next(n for n in range(max(len(values) + 1, 5), 100_000)
                if stats.t.ppf(0.975, n - 1) * s / math.sqrt(n) < gap)


def test_seeds_needed_grows_with_the_spread_and_gives_up_on_the_edge():
    band = (-0.05, 0.05)
    small = seeds_needed([0.01, 0.02, 0.03], band, 0.005)  # mean 0.02, 0.03 from the edge, s = 0.01
    assert small.seeds == smallest_n([0.01, 0.02, 0.03], 0.03) == 5  # 5: the fewest with an interval
    large = seeds_needed([-0.1, 0.0, 0.1], band, 0.005)  # mean 0, 0.05 from either edge, s = 0.1
    assert large.seeds == smallest_n([-0.1, 0.0, 0.1], 0.05) and large.seeds > 15
    assert large.text.startswith(f"≈ {large.seeds} seeds") and "s = 0.100" in large.text
    # Outside the band the distance to the edge counts the same way: 0.08 − 0.05 = 0.03.
    assert seeds_needed([0.07, 0.08, 0.09], band, 0.005).seeds == smallest_n([0.07, 0.08, 0.09], 0.03)
    # A mean within the margin of an edge: no count of seeds decides it.
    edge = seeds_needed([0.0, 0.048, 0.096], band, 0.005)
    assert edge.seeds is None and edge.text.startswith("not decidable at any seed count: the difference lies on the band")
    assert seeds_needed([0.0, 0.056, 0.112], band, 0.005).seeds is not None  # just beyond the margin it is decidable
    # Against a bound (claim 3: below 0), the one edge is 0.
    below = [-0.03, -0.02, 0.01]  # mean −0.0133: its distance to the bound
    assert seeds_needed(below, (0.0,), 0.005).seeds == smallest_n(below, abs(np.mean(below)))
    assert seeds_needed([-0.03, 0.011, 0.022], (0.0,), 0.005).seeds is None
    # Already tight: at least one seed more than there are. One seed: no spread to go on.
    assert seeds_needed([0.0, 0.001, 0.002, 0.003, 0.004], band, 0.005).seeds == 6
    assert seeds_needed([0.02], band, 0.005).seeds is None


# ----------------------------------------------------------------------------- numbers on synthetic runs


def test_medians_intervals_and_equal_time_and_steps_by_hand(tmp_path):
    report = build_report(write_run(tmp_path / "run", question_units()), smooth=1)
    (fam,) = report.families
    # Every unit ends at 10 s; sliding reaches only 2,500 steps.
    assert fam.at_time == 10.0 and fam.at_steps == 2500.0
    single, sliding, stored = group(report, "single"), group(report, "sliding"), group(report, "stored")
    assert [g.scheme for g in fam.groups] == ["sliding", "single", "stored"]
    assert single.seeds == list(SEEDS) and single.diverged == []
    fin = single.stats["final_train"]
    assert fin.estimate == pytest.approx(f_fast(10000) + 0.025)  # the median of seeds' offsets 0, 0.01, ... 0.05
    assert (fin.lo, fin.hi) == pytest.approx((f_fast(10000), f_fast(10000) + 0.05))  # 6 values: the range covers 97%
    assert single.stats["final_val"].estimate == pytest.approx(f_fast(10000) + 0.025 + 0.1)
    assert sliding.stats["at_time"].estimate == pytest.approx(f_fast(2500) + 0.025)
    assert single.stats["at_time"].estimate == pytest.approx(f_fast(10000) + 0.025)
    assert single.stats["at_steps"].estimate == pytest.approx(f_fast(2500) + 0.025)
    assert stored.stats["at_steps"].estimate == pytest.approx(f_fast(2500) + 0.027)
    assert single.stats["steps_per_s"].estimate == pytest.approx(1000)
    assert sliding.stats["steps_per_s"].estimate == pytest.approx(250)
    assert single.compile_s == 1.5

    c = comparison(report, "single", "sliding")
    assert c.seeds == list(SEEDS)
    d = f_fast(10000) - f_fast(2500)
    assert c.stats["at_time"].estimate == pytest.approx(d) and c.stats["at_time"].hi == pytest.approx(d)
    assert c.stats["at_steps"].estimate == pytest.approx(0.0, abs=1e-12)
    assert c.stats["steps_per_s"].estimate == pytest.approx(4.0)
    s = comparison(report, "stored", "single")
    assert s.stats["at_steps"].estimate == pytest.approx(0.002)


def test_equal_time_lies_between_log_points_and_can_be_given(tmp_path):
    units = [unit("single", s, [(1000, 1.0, 4.0 + s, None), (2000, 2.0, 3.0 + s, None), (3000, 3.0, 2.0 + s, 2.5 + s)])
             for s in (0, 1)]
    units += [unit("sliding", s, [(1000, 2.0, 5.0 + s, None), (2000, 4.0, 4.0 + s, 4.2 + s)]) for s in (0, 1)]
    run = write_run(tmp_path / "run", units)
    report = build_report(run, smooth=1, at_time=2.5, at_steps=1500)
    fam = report.families[0]
    assert (fam.at_time, fam.at_steps) == (2.5, 1500)
    # single at 2.5 s: halfway between 3.0 and 2.0 → 2.5 (+seed); sliding: a quarter from 5.0 to 4.0 → 4.75 (+seed)
    assert group(report, "single").stats["at_time"].values == pytest.approx((2.5, 3.5))
    assert group(report, "sliding").stats["at_time"].values == pytest.approx((4.75, 5.75))
    assert comparison(report, "single", "sliding").stats["at_time"].values == pytest.approx((-2.25, -2.25))
    assert comparison(report, "single", "sliding").stats["at_steps"].values == pytest.approx((-1.0, -1.0))
    # Defaults: T = smallest common time is 3.0 (single ends there), N = 2000 (sliding ends there).
    default = build_report(run, smooth=1).families[0]
    assert (default.at_time, default.at_steps) == (3.0, 2000.0)
    # Beyond a curve's end nothing is extrapolated: that seed drops out, with a warning.
    late = build_report(run, smooth=1, at_time=3.5)
    assert group(late, "single").stats["at_time"].n == 0
    assert any("do not cover time 3.5" in w for w in late.warnings)


def test_time_and_steps_to_target(tmp_path):
    line = lambda t: 5.0 - t / 1000  # noqa: E731  loss 2.25 at step 2750
    units = [unit("single", s, points(line, 1000, budget_s=4.0)) for s in SEEDS]
    units += [unit("sliding", s, points(line, 250, budget_s=16.0)) for s in SEEDS]
    run = write_run(tmp_path / "run", units)
    report = build_report(run, smooth=1, target_loss=2.25)
    single, sliding = group(report, "single"), group(report, "sliding")
    assert single.stats["steps_to_target"].estimate == pytest.approx(2750)
    assert single.stats["time_to_target"].estimate == pytest.approx(2.75)
    assert sliding.stats["time_to_target"].estimate == pytest.approx(11.0)
    assert comparison(report, "single", "sliding").stats["time_to_target"].estimate == pytest.approx(-8.25)
    never = build_report(run, smooth=1, target_loss=0.5)
    assert group(never, "single").stats["time_to_target"].estimate == math.inf
    # Default target: the highest over seeds of the lowest loss each reached (all end at 1.0 here).
    default = build_report(run, smooth=1)
    assert default.families[0].target == pytest.approx(1.0)
    assert group(default, "single").stats["steps_to_target"].estimate == pytest.approx(4000)


def test_smoothing_is_applied_to_the_curves(tmp_path):
    # One seed alternating 3, 1, 3, 1 (equal steps): smoothing over 2 points reads ~2, none reads the last point.
    pts = [(i * 500, i * 0.5, 3.0 if i % 2 else 1.0, None) for i in range(1, 9)]
    run = write_run(tmp_path / "run", [unit("single", 0, pts)])
    assert group(build_report(run, smooth=1), "single").stats["final_train"].estimate == 1.0
    assert group(build_report(run, smooth=2), "single").stats["final_train"].estimate == pytest.approx(2.0)


# ----------------------------------------------------------------------------- claims


def test_claims_supported_when_the_question_holds(tmp_path):
    report = build_report(write_run(tmp_path / "run", question_units()), smooth=1)
    assert claim(report, "1").verdict == SUPPORTED
    assert claim(report, "2").verdict == SUPPORTED
    assert claim(report, "3").verdict == SUPPORTED
    assert claim(report, "4").verdict == SUPPORTED
    assert claim(report, "5").verdict == NOT_MEASURED  # no k2 = 1 runs
    assert claim(report, "6a").verdict == NOT_MEASURED  # no gradcheck.csv
    assert claim(report, "6b").verdict == NOT_MEASURED
    assert "0.000 [0.000, 0.000]" in claim(report, "2").deciding
    # The rule printed is the rule applied: with delta 0.001 the same numbers are no longer 'within'.
    strict = build_report(write_run(tmp_path / "strict", question_units(stored_offset=0.002)), smooth=1, delta=0.001)
    assert "0.05" in claim(report, "1").rule and "0.001" in claim(strict, "1").rule
    assert claim(strict, "1").verdict == CONTRADICTED


def test_claims_contradicted_when_single_is_worse_per_step(tmp_path):
    # single 0.2 bits/char worse at every step; stored as good as sliding: everything the question says fails.
    report = build_report(write_run(tmp_path / "run", question_units(single_offset=0.2, stored_offset=0.0)), smooth=1)
    assert claim(report, "1").verdict == CONTRADICTED
    assert claim(report, "2").verdict == CONTRADICTED
    assert claim(report, "3").verdict == CONTRADICTED
    assert claim(report, "4").verdict == CONTRADICTED


def test_claims_inconclusive_when_seeds_disagree_or_training_is_unfinished(tmp_path):
    # Seeds disagree on single − sliding per step (−0.1, 0, +0.1): neither within nor outside ±0.05.
    units = []
    for s, off in zip(SEEDS, (-0.1, 0.0, 0.1)):
        units.append(unit("sliding", s, points(f_fast, 250)))
        units.append(unit("single", s, points(lambda t, o=off: f_fast(t) + o, 1000)))
    report = build_report(write_run(tmp_path / "a", units), smooth=1)
    assert claim(report, "2").verdict == INCONCLUSIVE
    assert claim(report, "1").verdict == NOT_MEASURED  # no stored runs
    # How many seeds would decide it, from the spread of (−0.1, 0, +0.1): said in the evidence, the table and the JSON.
    (need,) = claim(report, "2").needs
    assert need["seeds"] == smallest_n([-0.1, 0.0, 0.1], 0.05) and need["spread"] == pytest.approx(0.1)
    assert f"≈ {need['seeds']} seeds would decide it" in claim(report, "2").evidence[0]
    assert f"≈ {need['seeds']} seeds" in claim(report, "2").deciding
    # (0, +0.05, +0.1): the median sits on the band's edge, where no count of seeds decides.
    edge_units = [{**u, "cfg": u["cfg"]} for u in units if u["cfg"].scheme == "sliding"]
    edge_units += [unit("single", s, points(lambda t, o=off: f_fast(t) + o, 1000)) for s, off in zip(SEEDS, (0.0, 0.05, 0.1))]
    edge = build_report(write_run(tmp_path / "edge", edge_units), smooth=1)
    assert claim(edge, "2").verdict == INCONCLUSIVE and claim(edge, "2").needs[0]["seeds"] is None
    assert "not decidable at any seed count: the difference lies on the band's edge" in claim(edge, "2").evidence[0]
    # Slow loss: sliding, at 2,500 steps, is still falling, so a gap in final loss is not a contradiction.
    slow = build_report(write_run(tmp_path / "b", question_units(loss=f_slow)), smooth=1)
    assert comparison(slow, "single", "sliding").stats["final_train"].estimate == pytest.approx(f_slow(10000) - f_slow(2500))
    assert claim(slow, "4").verdict == INCONCLUSIVE
    drop = group(slow, "sliding").late_drop  # how much sliding's loss still fell over its last quarter
    assert drop > 0.05 and any(f"{drop:.3f}" in e for e in claim(slow, "4").evidence[1:])
    assert claim(slow, "4").needs == []  # more seeds would not help there: more time would


def test_the_same_minimum_is_not_decided_before_a_plateau(tmp_path):
    """Two schemes level at every step but both still falling: equal final losses say where they stopped,
    not where they converge, so claim 4 waits; the same curves flattened out decide it."""
    falling = [unit(scheme, s, points(f_slow, 1000)) for scheme in ("single", "sliding") for s in SEEDS]
    report = build_report(write_run(tmp_path / "falling", falling), smooth=1)
    assert comparison(report, "single", "sliding").stats["final_train"].estimate == pytest.approx(0.0)
    assert claim(report, "4").verdict == INCONCLUSIVE
    assert any("not decidable yet" in e and "had not reached a plateau" in e for e in claim(report, "4").evidence)
    level = [unit(scheme, s, points(f_fast, 1000)) for scheme in ("single", "sliding") for s in SEEDS]
    assert claim(build_report(write_run(tmp_path / "level", level), smooth=1), "4").verdict == SUPPORTED


def noisy_units(offset, *, noise=0.2, seeds=range(5), n=400):
    """single and sliding over the same n log points (every 500 steps), single 4× faster and offset
    higher; every log point of every curve carries independent Gaussian noise of sd `noise`."""
    rng = np.random.default_rng(7)
    units = []
    for s in seeds:
        for scheme, speed, off in (("sliding", 250, 0.0), ("single", 1000, offset)):
            pts = [(i * 500, i * 500 / speed, f_fast(i * 500) + 0.01 * s + off + rng.normal(0, noise), None)
                   for i in range(1, n + 1)]
            units.append(unit(scheme, s, pts, budget_steps=n * 500))
    return units


def test_whole_curves_decide_where_one_point_cannot(tmp_path):
    units = noisy_units(0.0)
    same = build_report(write_run(tmp_path / "same", units))  # default smoothing, 5 log points
    c = comparison(same, "single", "sliding")
    point, whole = c.stats["at_steps"], c.stats["steps_curve"]
    assert point.hi - point.lo > 0.2 and verdict_within(point, 0.05) == INCONCLUSIVE  # one point: hopeless
    assert whole.hi - whole.lo < 0.03 and -0.05 < whole.lo and whole.hi < 0.05  # the whole curve: narrow, inside
    assert claim(same, "2").verdict == SUPPORTED and "online loss over the steps" in claim(same, "2").evidence[0]
    # Seed 0 by hand: smoothed curves, the 400 common log points less a burn-in of the first 40.
    single, sliding = ([u for u in units if u["cfg"].scheme == scheme and u["cfg"].seed == 0][0]["points"]
                       for scheme in ("single", "sliding"))
    steps = np.array([p[0] for p in single], dtype=float)
    smooth = lambda pts: smooth_curve(steps, np.array([p[2] for p in pts]), 5)  # noqa: E731
    assert whole.values[0] == pytest.approx(np.mean((smooth(single) - smooth(sliding))[40:]))
    window = c.curves.step_windows[0]
    assert (window.points, window.skipped, window.first, window.last) == (360, 40, 20_500, 200_000)

    worse = build_report(write_run(tmp_path / "worse", noisy_units(0.15)))
    assert comparison(worse, "single", "sliding").stats["steps_curve"].estimate == pytest.approx(0.15, abs=0.02)
    assert claim(worse, "2").verdict == CONTRADICTED


def test_tail_of_the_validation_evaluations():
    from bpttbench.report.families import tail_evaluations

    assert tail_evaluations(np.arange(1.0, 9.0)) == 6.5  # 8 evaluations: the last 4
    assert tail_evaluations(np.arange(1.0, 6.0)) == 4.0  # 5: the last ceil(2.5) = 3
    assert tail_evaluations(np.array([1.0, 2.0, 3.0])) == 2.5  # 3: the last ceil(1.5) = 2
    assert tail_evaluations(np.array([4.0])) == 4.0  # at least one
    assert math.isnan(tail_evaluations(np.array([])))


def test_minimum_and_equal_time_read_the_validation_curves_not_one_evaluation(tmp_path):
    """Validation at every log point over 40 s: single's falls faster (e-folding 1 s against 4 s),
    both level at 2.5 (+0.01 × seed); sliding's last evaluation is an outlier 0.2 too high."""
    def pts(speed, tau, s):
        out = []
        for i in range(1, int(40 * speed / 500) + 1):
            wall = i * 500 / speed
            out.append((i * 500, wall, f_fast(i * 500) + 0.01 * s, 2.5 + math.exp(-wall / tau) + 0.01 * s))
        if tau == 4:
            out[-1] = out[-1][:3] + (out[-1][3] + 0.2,)
        return out

    units = [unit(scheme, s, pts(speed, tau, s), budget_seconds=40.0)
             for s in SEEDS for scheme, speed, tau in (("sliding", 250, 4), ("single", 1000, 1))]
    report = build_report(write_run(tmp_path / "run", units), smooth=1)
    c = comparison(report, "single", "sliding")
    # Claim 4: the last evaluation alone says −0.2 (outside the band); the mean of the last half of the
    # evaluations (40 of single's 80, 10 of sliding's 20) puts the outlier at a tenth of its weight.
    assert c.stats["val_at_time"].estimate == pytest.approx(-0.2, abs=1e-3)
    sliding_tail = np.mean([2.5 + math.exp(-w / 4) for w in range(22, 41, 2)]) + 0.2 / 10
    single_tail = np.mean([2.5 + math.exp(-(i * 0.5) / 1) for i in range(41, 81)])
    assert c.stats["final_val"].estimate == pytest.approx(single_tail - sliding_tail)
    assert c.stats["final_val"].estimate == pytest.approx(-0.021, abs=1e-3)
    assert claim(report, "4").verdict == SUPPORTED
    # Claim 3: the validation curves at 25 times from 4 s (10% of 40 s; both curves start before) to 40 s.
    times = c.curves.times["val_time_curve"]
    np.testing.assert_allclose(times, np.arange(4, 40.1, 1.5))
    single_val = lambda t: 2.5 + math.exp(-t)  # noqa: E731  every time is one of single's evaluations
    sliding_at = [np.interp(t, [w for _, w, _, _ in pts(250, 4, 0)], [v for *_, v in pts(250, 4, 0)]) for t in times]
    expect = np.mean([single_val(t) - v for t, v in zip(times, sliding_at)])
    assert c.stats["val_time_curve"].values == pytest.approx((expect,) * len(SEEDS))
    assert claim(report, "3").verdict == SUPPORTED


def test_equal_time_is_judged_on_validation_loss_when_the_text_gets_harder(tmp_path):
    """The stream gets 1.5 bits/char harder after step 5,000, for any model. At T = 10 s single has
    read into the hard part and sliding has not, so the online loss at T says sliding is far ahead;
    the validation loss, the same held-out text for both, says single is (slightly) ahead."""
    def pts(speed, s):
        out = [(i * 500, i * 500 / speed, f_fast(i * 500) + (1.5 if i * 500 > 5000 else 0.0) + 0.01 * s, None)
               for i in range(1, int(10 * speed / 500) + 1)]
        step, wall, bpc, _ = out[-1]
        out[-1] = (step, wall, bpc, f_fast(step) + 0.3 + 0.01 * s)
        return out

    units = [unit(scheme, s, pts(speed, s)) for s in SEEDS for scheme, speed in (("sliding", 250), ("single", 1000))]
    report = build_report(write_run(tmp_path / "run", units), smooth=1)
    c = comparison(report, "single", "sliding")
    assert c.stats["at_time"].estimate == pytest.approx(1.5 + f_fast(10000) - f_fast(2500))
    assert c.stats["val_at_time"].estimate == pytest.approx(f_fast(10000) - f_fast(2500))
    # One evaluation each, both at 10 s: the validation curves share that one time.
    assert list(c.curves.times["val_time_curve"]) == [10.0]
    assert c.stats["val_time_curve"].estimate == pytest.approx(f_fast(10000) - f_fast(2500))
    assert claim(report, "3").verdict == SUPPORTED
    decided, *context = claim(report, "3").evidence
    assert "validation loss over time" in decided and \
        format_interval(c.stats["val_time_curve"], signed=True) in decided  # the validation loss decides
    assert any(format_interval(c.stats["at_time"], signed=True) in e for e in context)  # the online one is shown
    # Without validation loss the online curves over time decide, and say so: the common range is
    # 2-10 s (sliding's first log point is at 2 s), read at 25 times a third of a second apart, between
    # sliding's log points (every 2 s) interpolated.
    no_val = [{**u, "points": [(a, b, c_, None) for a, b, c_, _ in u["points"]]} for u in units]
    online = build_report(write_run(tmp_path / "no_val", no_val), smooth=1)
    c = comparison(online, "single", "sliding")
    times = np.linspace(2, 10, 25)
    np.testing.assert_allclose(c.curves.times["time_curve"], times)
    harder = lambda step: f_fast(step) + (1.5 if step > 5000 else 0.0)  # noqa: E731
    walls = {speed: [w for _, w, _, _ in pts(speed, 0)] for speed in (250, 1000)}
    online_at = {speed: np.interp(times, walls[speed], [harder(speed * w) for w in walls[speed]]) for speed in walls}
    expect = np.mean(online_at[1000] - online_at[250])
    assert c.stats["time_curve"].estimate == pytest.approx(expect)
    assert claim(online, "3").verdict == CONTRADICTED
    assert format_interval(c.stats["time_curve"], signed=True) in claim(online, "3").evidence[0]
    assert claim(online, "4").verdict == CONTRADICTED  # final online loss, 1.5 apart, both level


def test_validation_at_equal_time_is_interpolated_between_evaluations_under_step_budgets(tmp_path):
    line = lambda t: 4.0 - t / 1000  # noqa: E731
    def pts(speed):
        return [(i * 500, i * 500 / speed, line(i * 500), line(i * 500)) for i in range(1, 6)]

    units = [unit(scheme, s, pts(speed), budget_steps=2500) for s in (0, 1) for scheme, speed in (("sliding", 250), ("single", 1000))]
    report = build_report(write_run(tmp_path / "run", units), smooth=1)
    fam = report.families[0]
    assert fam.at_time == 2.5 and "interpolated" in fam.val_at_time_source
    # sliding at 2.5 s is at step 625 → 3.375; single at 2.5 s is at its end, step 2500 → 1.5
    assert group(report, "sliding").stats["val_at_time"].estimate == pytest.approx(3.375)
    assert group(report, "single").stats["val_at_time"].estimate == pytest.approx(1.5)
    assert any("step budgets" in w for w in report.warnings)


def test_one_seed_decides_no_claim_and_is_warned_about(tmp_path):
    report = build_report(write_run(tmp_path / "run", question_units(seeds=(0,))), smooth=1)
    assert claim(report, "2").verdict == INCONCLUSIVE
    assert claim(report, "3").verdict == INCONCLUSIVE
    assert any("single seed" in w and w.startswith("single (") for w in report.warnings)
    many = build_report(write_run(tmp_path / "many", question_units()), smooth=1)
    assert not any("single seed" in w for w in many.warnings)


def test_k2_of_one_identical_or_not(tmp_path):
    def k2_one(offset):
        units = []
        for s in SEEDS:
            units.append(unit("sliding", s, points(lambda t, s=s: f_fast(t) + 0.01 * s, 1000), k2=1))
            pts = points(lambda t, s=s: f_fast(t) + 0.01 * s, 1000)
            step, wall, bpc, val = pts[3]
            pts[3] = (step, wall, bpc + offset, val)  # one log point off by offset
            units.append(unit("single", s, pts, k2=1))
        return units

    same = build_report(write_run(tmp_path / "same", k2_one(0.0)), smooth=1)
    assert claim(same, "5").verdict == SUPPORTED
    # k2 = 1 runs say nothing about claims 1-4, which concern k2 > k1.
    assert claim(same, "2").verdict == NOT_MEASURED
    differ = build_report(write_run(tmp_path / "differ", k2_one(1e-3)), smooth=1)
    assert claim(differ, "5").verdict == CONTRADICTED
    assert "0.001" in claim(differ, "5").evidence[0]
    # the table cell: one phrase per corpus, naming the schemes compared and the largest difference
    assert claim(differ, "5").deciding.startswith("single/sliding at most 0.001 bits/char apart (")


def write_gradcheck(path: Path, *, single_cos=0.999, stored_rel=1e-3, fd_rel=1e-9, fd_tensor_rel=1e-4,
                    tensors=fidelity.TENSORS) -> None:
    """gradcheck.csv as `bpttbench gradcheck` writes it (gradcheck.COLUMNS), 2 seeds × 3 checkpoints.
    Per-tensor finite-difference rows are off by fd_tensor_rel: only the whole-gradient row decides, as in
    gradcheck.GradcheckResult.fd_passed."""
    rows = []
    values = {"single": lambda w: (single_cos - w, 0.05 + w), "stored": lambda w: (0.9999, stored_rel * (1 + w)),
              "single_vs_stored": lambda w: (0.9995, 0.03), "exact_vs_fd": lambda w: (1.0, fd_rel)}
    assert set(values) == set(fidelity.WINDOW_ESTIMATORS)
    for seed in (0, 1):
        for step in (1000, 2000, 3000):
            wiggle = 1e-4 * (step / 1000)
            base = dict(corpus="synthetic", scheme="single", k1=1, k2=20, inject="new", hidden=16, batch=1, dtype="float32",
                        optimizer="adam", lr=0.002, clip=0.0, seed=seed, step=step, updates=step, train_bpc=3.0, drift=0.01)
            for estimator, value in values.items():
                for tensor in tensors:
                    cosine, rel = value(wiggle)
                    if estimator == "exact_vs_fd" and tensor != "all":
                        rel = fd_tensor_rel
                    rows.append({**base, "tensor": tensor, "estimator": estimator, "cosine": cosine, "rel_error": rel})
    pd.DataFrame(rows, columns=gradcheck.COLUMNS).to_csv(path, index=False)


def test_gradient_claims_from_gradcheck_csv(tmp_path):
    root = tmp_path / "results"
    write_run(root / "run", question_units())
    write_gradcheck(root / "gradcheck.csv")
    good = build_report(root, smooth=1)
    assert claim(good, "6a").verdict == SUPPORTED and claim(good, "6b").verdict == SUPPORTED
    assert "(synthetic, k2=20, lr=" in claim(good, "6a").deciding  # the table cell names its corpus
    (single,) = [g for g in good.gradcheck if g.estimator == "single"]
    assert single.cosine.n == 6 and single.cosine.estimate == pytest.approx(0.999 - 2e-4)
    assert single.tensors == "the whole gradient"
    assert any("single's gradient against stored's" in e and "0.03" in e for e in claim(good, "1").evidence)
    # Estimators the report does not judge (rows gradcheck may add, e.g. against rtrl) are summarised, not judged.
    df = pd.read_csv(root / "gradcheck.csv")
    extra = df[df["estimator"] == "single"].assign(estimator="snap1_vs_rtrl", cosine=0.5, rel_error=0.9)
    pd.concat([df, extra]).to_csv(root / "gradcheck.csv", index=False)
    more = build_report(root, smooth=1)
    (snap1,) = [g for g in more.gradcheck if g.estimator == "snap1_vs_rtrl"]
    assert snap1.cosine.estimate == 0.5 and snap1.rel_error.estimate == 0.9
    assert [(c.verdict, c.deciding) for c in more.claims] == [(c.verdict, c.deciding) for c in good.claims]
    assert "| snap1_vs_rtrl |" in write_report(more, tmp_path / "md").read_text()

    write_gradcheck(root / "gradcheck.csv", single_cos=0.8, stored_rel=1e-9)
    bad = build_report(root, smooth=1)
    assert claim(bad, "6a").verdict == CONTRADICTED and claim(bad, "6b").verdict == CONTRADICTED

    write_gradcheck(root / "gradcheck.csv", fd_rel=1e-3)
    broken = build_report(root, smooth=1)
    assert claim(broken, "6a").verdict == NOT_MEASURED and claim(broken, "6b").verdict == NOT_MEASURED
    assert any("finite differences" in w for w in broken.warnings)

    # Without whole-gradient rows the per-tensor rows are all there is, and they decide.
    write_gradcheck(root / "gradcheck.csv", tensors=("weight_hh_l0", "decoder.weight"), fd_tensor_rel=1e-9)
    per_tensor = build_report(root, smooth=1)
    assert claim(per_tensor, "6a").verdict == SUPPORTED
    assert "median over tensors" in per_tensor.gradcheck[0].tensors


# ----------------------------------------------------------------------------- warnings and skips


def test_warns_about_different_machines_versions_and_budgets(tmp_path):
    root = tmp_path / "results"
    units = question_units(stored=False)
    write_run(root / "a", [u for u in units if u["cfg"].scheme == "single"])
    write_run(root / "b", [u for u in units if u["cfg"].scheme == "sliding"])
    same = build_report(root, smooth=1)
    assert not any("different machines" in w or "budgets differ" in w or "unknown" in w for w in same.warnings)
    assert comparison(same, "single", "sliding").seeds == list(SEEDS)  # paired across runs

    other = tmp_path / "other"
    write_run(other / "a", [u for u in units if u["cfg"].scheme == "single"])
    write_run(other / "b", [u for u in units if u["cfg"].scheme == "sliding"],
              machine={**MACHINE, "cpu": "Other CPU", "numba": "0.60.0"})
    report = build_report(other, smooth=1)
    assert any("different machines" in w and "Other CPU" in w for w in report.warnings)
    assert any("different software versions" in w and "numba 0.60.0" in w for w in report.warnings)

    unknown = tmp_path / "unknown"
    write_run(unknown / "a", units, machine=None)
    assert any("machine of some runs is unknown" in w for w in build_report(unknown, smooth=1).warnings)

    budgets = tmp_path / "budgets"
    write_run(budgets / "a", [unit("single", s, points(f_fast, 1000), budget_seconds=10.0) for s in SEEDS]
              + [unit("sliding", s, points(f_fast, 250), budget_seconds=20.0) for s in SEEDS])
    # A budget is part of a configuration (issue 11): runs with different budgets are never pooled
    # or set against each other; each budget is its own family.
    by_budget = {f.key["budget_seconds"]: f for f in build_report(budgets, smooth=1).families}
    assert sorted(by_budget) == [10.0, 20.0]
    assert [g.scheme for g in by_budget[10.0].groups] == ["single"] and [g.scheme for g in by_budget[20.0].groups] == ["sliding"]


def test_diverged_and_incomplete_units_are_left_out_and_said(tmp_path):
    root = tmp_path / "results"
    units = question_units(stored=False)
    bad = unit("single", 6, points(f_fast, 1000)[:4], status="diverged")
    write_run(root / "done", units + [bad])
    write_run(root / "stopped", question_units(stored=False), status="interrupted")
    report = build_report(root, smooth=1)
    single = group(report, "single")
    assert single.seeds == list(SEEDS) and single.diverged == [6]
    assert any("seed 6 diverged" in w for w in report.warnings)
    # sliding's seed 6 lost its partner to the divergence, said once above; seed 7 never had one
    write_run(root / "more", [unit("sliding", s, points(f_fast, 1000)) for s in (6, 7)])
    report = build_report(root, smooth=1)
    (unpartnered,) = [w for w in report.warnings if "has no partner" in w]
    assert "seed 7 " in unpartnered and "seed 6" not in unpartnered, unpartnered
    assert [(p.name, why) for p, why in report.skipped] == [("stopped", "status is 'interrupted': it was stopped before the end")]
    assert report.runs == [root / "done", root / "more"]


def test_report_over_several_paths(tmp_path, capsys):
    units = question_units(stored=False)
    a = write_run(tmp_path / "a", [u for u in units if u["cfg"].scheme == "single"])
    elsewhere = tmp_path / "elsewhere"
    b = write_run(elsewhere / "b", [u for u in units if u["cfg"].scheme == "sliding"])
    write_gradcheck(elsewhere / "gradcheck.csv")
    report = build_report(a, elsewhere, smooth=1)
    assert report.path == a and report.paths == [a, elsewhere]
    assert sorted(report.runs) == [a, b]
    assert comparison(report, "single", "sliding").seeds == list(SEEDS)  # paired across the paths
    assert claim(report, "2").verdict == SUPPORTED and claim(report, "6a").verdict == SUPPORTED
    # Overlapping paths read each run once: the same numbers as their common parent alone.
    twice = build_report(tmp_path, a, smooth=1)
    one = build_report(tmp_path, smooth=1)
    assert len(twice.runs) == 2 and group(twice, "single").seeds == list(SEEDS)
    assert not any("more than one run" in w for w in twice.warnings)
    assert [(c.verdict, c.deciding) for c in twice.claims] == [(c.verdict, c.deciding) for c in one.claims]
    # report.md goes to the first path by default and names every path.
    text = write_report(report).read_text()
    assert (a / "report.md").is_file() and f"`{a}`" in text and f"`{elsewhere}`" in text
    # The command takes several paths; --out defaults to the first.
    code, out, err = invoke(["report", a, elsewhere, "--json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    assert data["report"] == str(a / "report.md") and data["paths"] == [str(a), str(elsewhere)]
    code, out, err = invoke(["report", a, tmp_path / "nothing"], capsys)
    assert code == 2 and "does not exist" in err


def test_paths_without_complete_runs_are_refused(tmp_path):
    with pytest.raises(ResultsError, match="no bpttbench runs"):
        build_report(tmp_path)
    write_run(tmp_path / "run", question_units(), status="interrupted")
    with pytest.raises(ResultsError, match="no complete runs"):
        build_report(tmp_path)


# ----------------------------------------------------------------------------- report.md


def md_tables(text: str) -> list[list[dict]]:
    """Every markdown table in text, each as a list of rows {header: cell}."""
    tables, lines = [], text.splitlines()
    for i in range(len(lines) - 1):
        if lines[i].startswith("| ") and lines[i + 1].startswith("|---") and not lines[i - 1].startswith("|"):
            cells = lambda line: [c.strip() for c in line.strip().strip("|").split(" | ")]  # noqa: E731
            header, rows = cells(lines[i]), []
            for line in lines[i + 2:]:
                if not line.startswith("|"):
                    break
                rows.append(dict(zip(header, cells(line))))
            tables.append(rows)
    return tables


def test_report_md_holds_the_verdicts_and_numbers_and_links_figures(tmp_path):
    run = write_run(tmp_path / "run", question_units())
    report = build_report(run)
    path = write_report(report, tmp_path / "out")
    text = path.read_text()
    assert path == tmp_path / "out" / "report.md"
    claims, configurations, comparisons = md_tables(text)
    assert {r["#"]: r["verdict"] for r in claims} == {c.number: f"**{c.verdict}**" for c in report.claims}
    assert {r["#"]: r["verdict"] for r in claims}["2"] == f"**{SUPPORTED}**"
    by_label = {r["configuration"]: r for r in configurations}
    assert by_label["single"]["steps/s (steps/s)"] == "1,000 [1,000, 1,000]"
    assert by_label["sliding"]["steps/s (steps/s)"] == "250 [250, 250]"
    assert by_label["single"]["compile (s)"] == "1.50"
    single_sliding = {r["comparison"]: r for r in comparisons}["single − sliding"]
    assert single_sliding["steps/s"] == "4.00× [4.00×, 4.00×]" and single_sliding["paired seeds"] == str(len(SEEDS))
    assert f"T = {report.families[0].at_time:g} wall s" in text  # the equal time the numbers were read at
    assert "![" not in text
    (run / "loss_vs_time.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (run / "val_loss_vs_iter.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    text = write_report(build_report(run), tmp_path / "out").read_text()
    assert "](../run/loss_vs_time.png)" in text and "](../run/val_loss_vs_iter.png)" in text
    # The same runs give the same report.
    assert write_report(build_report(run), tmp_path / "again").read_text().replace("../run", "") == \
        text.replace("../run", "")
    # Default place: the folder the report was built from.
    assert write_report(report) == run / "report.md"


def test_the_terminal_tables_show_the_markdown_rows(tmp_path):
    from rich.console import Console

    from bpttbench.report import rich_renderables

    report = build_report(write_run(tmp_path / "run", question_units()), smooth=1)
    console = Console(record=True, width=250)
    for r in rich_renderables(report):
        console.print(r)
    shown = console.export_text()
    _, configurations, comparisons = md_tables(write_report(report, tmp_path / "out").read_text())
    for row in configurations:  # the terminal has fewer columns, with the same cells
        for column in ("configuration", "steps/s (steps/s)", "final validation loss (bits/char)"):
            assert row[column] in shown, column
    for row in comparisons:
        assert row["steps/s"] in shown and row["online loss over the steps"] in shown
    assert shown.count(SUPPORTED) == sum(c.verdict == SUPPORTED for c in report.claims)


def test_report_json_is_strict_with_null_where_a_target_is_not_reached(tmp_path):
    run = write_run(tmp_path / "run", question_units(seeds=(0,)))
    report = build_report(run, smooth=1, target_loss=0.5)  # never reached: inf; one seed: no interval
    write_report(report, tmp_path / "out")
    text = (tmp_path / "out" / "report.json").read_text()
    data = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in report.json"))
    assert data == report.to_dict()
    group0 = data["families"][0]["groups"][0]["stats"]
    assert group(report, "single").stats["time_to_target"].estimate == math.inf
    assert group0["time_to_target"]["estimate"] is None and group0["final_train"]["lo"] is None
    assert group0["final_train"]["estimate"] == pytest.approx(report.families[0].groups[0].stats["final_train"].estimate)
    assert "inf" not in text.replace("info", "") and "NaN" not in text
    assert data["claims"][1]["verdict"] == INCONCLUSIVE  # one seed decides nothing


RESULT_KEYS = {"corpus", "k2", "metric", "unit", "estimator", "estimate", "lo", "hi", "n", "values", "verdict"}


def test_every_claim_carries_its_deciding_rows_into_report_json(tmp_path):
    """Claim.results, for a replication table: one row per comparison, family or gradcheck configuration,
    with the keys Claim's docstring documents, in report.json as in the report."""
    root = tmp_path / "results"
    write_run(root / "run", question_units())
    write_run(root / "k2one", [unit(scheme, s, points(f_fast, 1000), k2=1) for scheme in ("single", "sliding")
                               for s in SEEDS])
    write_gradcheck(root / "gradcheck.csv")
    report = build_report(root, smooth=1)
    write_report(report, tmp_path / "out")
    data = json.loads((tmp_path / "out" / "report.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    by_number = {c["number"]: c["results"] for c in data["claims"]}
    assert set(by_number) == {"1", "2", "3", "4", "5", "6a", "6b"}
    for number, rows in by_number.items():
        assert rows and all(set(r) == RESULT_KEYS for r in rows), number
        assert rows == [json.loads(json.dumps(r)) for r in claim(report, number).results]
    (two,) = by_number["2"]
    c = comparison(report, "single", "sliding")
    assert (two["metric"], two["unit"], two["estimator"], two["n"]) == ("steps_curve", "bits/char", "mean", len(SEEDS))
    assert two["values"] == [c.stats["steps_curve"].values[i] for i in range(len(SEEDS))]  # per seed, in seed order
    assert two["estimate"] == pytest.approx(np.mean(two["values"])) and two["lo"] <= two["estimate"] <= two["hi"]
    assert two["verdict"] == claim(report, "2").verdict and two["corpus"] == "synthetic" and two["k2"] == 20
    (five,) = by_number["5"]
    assert (five["estimator"], five["estimate"], five["lo"], five["hi"], five["values"]) == ("largest", 0.0, None, None, [])
    (cos,) = by_number["6a"]
    assert (cos["metric"], cos["estimator"], cos["n"]) == ("cosine", "median", 6) and cos["lo"] <= cos["estimate"] <= cos["hi"]
    assert by_number["6b"][0]["metric"] == "relative error"


def test_three_seeds_get_no_interval_and_no_verdict(tmp_path):
    """study --quick once printed "+0.007 [+0.007, +0.018]" as a 95% interval over 3 seeds."""
    report = build_report(write_run(tmp_path / "run", question_units(seeds=(0, 1, 2))), smooth=1)
    for number in ("1", "2", "3", "4"):
        c = claim(report, number)
        assert c.verdict == INCONCLUSIVE, number
        assert "(3 seeds: no 95% interval below 5 seeds)" in c.evidence[0] and "[" not in c.deciding.split("(")[0]
        (row,) = c.results
        assert row["n"] == 3 and row["lo"] is None and row["hi"] is None and len(row["values"]) == 3
        assert "With fewer than 5 paired seeds there is no interval" in c.rule


def test_the_command_and_the_library_share_their_defaults():
    import inspect

    from bpttbench import defaults
    from bpttbench.cli import report as command

    options = {p.name: p.default for p in command.params}
    library = inspect.signature(build_report).parameters
    for option, parameter, value in (("delta", "delta", defaults.DELTA), ("smooth", "smooth", defaults.SMOOTH)):
        assert options[option] == library[parameter].default == value, option

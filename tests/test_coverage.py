"""Intervals that keep their promise: simulated studies with a known truth, at the presets' seed counts
and the spreads the reference study saw, through the same functions the report uses (stats.mean_interval
for claims 1-4, stats.verdict_* for their verdicts, stats.median_interval for claims 6a/6b, stats.ratio_interval
for steps/s, stats.seeds_needed for the advice)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from bpttbench import study
from bpttbench.report.stats import (CONTRADICTED, INCONCLUSIVE, MEDIAN_MIN_SAMPLE, MIN_SAMPLE, SUPPORTED,
                                    format_interval, half_width, mean_interval, median_interval, ratio_interval,
                                    seeds_needed, verdict_below, verdict_within)

STUDIES = 2000  # per case: a 95% coverage's standard error is then 0.49%
# Per-seed spreads of paired differences, bits/char: the largest the previous full study implied
# (claim 3 on stdlib-docs, see the arithmetic beside study.FULL) and a typical small one.
SPREADS = (0.036, 0.01)
DELTA = 0.05
TRUE = 0.02  # a true difference inside the band, off centre
PRESET_SEEDS = {study.FULL.seeds, study.QUICK.seeds, study.LONG.convergence_seeds, study.LONG.text_seeds}
# The seed counts a study decides claims at (5 for --quick, 8 for --long's convergence, 16 for the full
# preset), and the fewest-seed cases (3: what --quick once ran, and --long's text runs), which must say
# that no interval is available.
WITH_INTERVAL = sorted({5, 8, 16} | {n for n in PRESET_SEEDS if n >= MIN_SAMPLE})
WITHOUT_INTERVAL = sorted({3} | {n for n in PRESET_SEEDS if n < MIN_SAMPLE})


def simulate(true: float, spread: float, seeds: int, rng: np.random.Generator, studies: int = STUDIES):
    """The per-seed paired differences of `studies` simulated studies, normal around the truth."""
    return true + spread * rng.standard_normal((studies, seeds))


def coverage(true: float, spread: float, seeds: int, rng: np.random.Generator) -> tuple[float, int]:
    """(share of simulated studies whose 95% interval holds the truth, how many had an interval)."""
    intervals = [mean_interval(d) for d in simulate(true, spread, seeds, rng)]
    with_interval = [iv for iv in intervals if iv.has_interval]
    hits = sum(iv.lo <= true <= iv.hi for iv in with_interval)
    return hits / max(len(with_interval), 1), len(with_interval)


@pytest.mark.parametrize("spread", SPREADS)
@pytest.mark.parametrize("seeds", WITH_INTERVAL)
def test_a_95_percent_interval_covers_the_truth_in_93_to_97_percent_of_studies(seeds, spread):
    rng = np.random.default_rng([seeds, int(spread * 1000)])
    share, with_interval = coverage(TRUE, spread, seeds, rng)
    assert with_interval == STUDIES
    assert 0.93 <= share <= 0.97, f"{seeds} seeds, spread {spread}: covered {share:.1%}"


@pytest.mark.parametrize("seeds", WITHOUT_INTERVAL)
def test_below_five_seeds_no_interval_is_claimed_and_no_verdict_given(seeds):
    rng = np.random.default_rng(seeds)
    for d in simulate(TRUE, 0.036, seeds, rng, 200):
        iv = mean_interval(d)
        assert not iv.has_interval and iv.n == seeds
        assert format_interval(iv, signed=True).endswith(f"({seeds} seeds: no 95% interval below {MIN_SAMPLE} seeds)")
        assert verdict_within(iv, DELTA) == verdict_below(iv) == INCONCLUSIVE


@pytest.mark.parametrize("checkpoints", [MEDIAN_MIN_SAMPLE, 8, 10, 16, 20, 50])
def test_a_median_interval_over_checkpoints_covers_at_least_95_percent(checkpoints):
    """Claims 6a/6b: the order-statistic interval covers the median at least 95% whatever the shape
    (here skewed, as relative errors are); simulated coverage matches the binomial's exact figure."""
    rng = np.random.default_rng(checkpoints)
    true_median = 1.0  # of a lognormal(0, 1)
    hits = 0
    for x in rng.lognormal(0.0, 1.0, (STUDIES, checkpoints)):
        iv = median_interval(x)
        hits += iv.lo <= true_median <= iv.hi
    ranked = median_interval(np.arange(checkpoints, dtype=float))
    exact = 1 - 2 * scipy_stats.binom.cdf(int(ranked.lo), checkpoints, 0.5)
    assert exact >= 0.95
    assert abs(hits / STUDIES - exact) < 0.015 and hits / STUDIES >= 0.94, (hits / STUDIES, exact)


@pytest.mark.parametrize("seeds", [5, 16])
def test_a_ratio_interval_covers_the_true_ratio(seeds):
    """steps/s single / sliding: lognormal scatter around a true ratio of 4."""
    rng = np.random.default_rng([seeds, 7])
    hits = sum(iv.lo <= 4.0 <= iv.hi for iv in (ratio_interval(4.0 * np.exp(0.1 * z))
                                               for z in rng.standard_normal((STUDIES, seeds))))
    assert 0.93 <= hits / STUDIES <= 0.97


@pytest.mark.parametrize("true,spread,seeds,expected", [
    (0.1, 0.036, study.FULL.seeds, CONTRADICTED),  # the truth well outside the band
    (0.0, 0.036, study.FULL.seeds, SUPPORTED),  # at its centre, at the largest spread seen
    (0.0, 0.01, study.QUICK.seeds, SUPPORTED),  # at its centre with a small spread, at --quick's seeds
])
def test_the_verdict_follows_the_truth(true, spread, seeds, expected):
    """In at least 95% of simulated studies, and the opposite verdict in under 1%."""
    rng = np.random.default_rng([int(true * 100), seeds, 5])
    verdicts = [verdict_within(mean_interval(d), DELTA) for d in simulate(true, spread, seeds, rng)]
    assert verdicts.count(expected) / STUDIES >= 0.95
    assert verdicts.count(SUPPORTED if expected == CONTRADICTED else CONTRADICTED) / STUDIES < 0.01


def test_a_truth_on_the_edge_of_the_band_is_mostly_left_undecided():
    rng = np.random.default_rng(6)
    verdicts = [verdict_within(mean_interval(d), DELTA) for d in simulate(DELTA, 0.036, study.FULL.seeds, rng)]
    assert verdicts.count(INCONCLUSIVE) / STUDIES > 0.9  # each side wrong at most 2.5% of the time
    assert verdicts.count(SUPPORTED) / STUDIES <= 0.03 and verdicts.count(CONTRADICTED) / STUDIES <= 0.03


def test_the_seeds_advice_uses_the_intervals_own_half_width():
    """seeds_needed's half-width is mean_interval's, and at the count it names the interval (same mean and
    spread) clears the edge, one seed fewer it does not."""
    rng = np.random.default_rng(8)
    for d in simulate(0.03, 0.036, 6, rng, 50):
        iv = mean_interval(d)
        assert (iv.hi - iv.lo) / 2 == pytest.approx(half_width(float(np.std(d, ddof=1)), len(d)))
        need = seeds_needed(d, (-DELTA, DELTA), 0.1 * DELTA)
        if need.seeds is None or need.seeds == len(d) + 1:
            continue
        assert half_width(need.spread, need.seeds) < need.gap <= half_width(need.spread, need.seeds - 1)
        # need.seeds values with the same mean and the observed spread decide the claim:
        z = scipy_stats.norm.ppf((np.arange(need.seeds) + 0.5) / need.seeds)
        stretched = np.mean(d) + need.spread * (z - z.mean()) / np.std(z, ddof=1)
        assert verdict_within(mean_interval(stretched), DELTA) != INCONCLUSIVE
        assert math.isclose(float(np.std(stretched, ddof=1)), need.spread)

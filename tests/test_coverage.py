"""Intervals that keep their promise: simulated studies with a known true difference, at the presets'
seed counts and the spread the reference study saw, through the same functions the report uses."""

from __future__ import annotations

import numpy as np
import pytest

from bpttbench import study
from bpttbench.report.stats import (CONTRADICTED, INCONCLUSIVE, SUPPORTED, mean_interval, median_interval,
                                    verdict_within)

STUDIES = 2000  # per case: the coverage's standard error is about 0.5%
# Per-seed spreads of paired differences, bits/char: the largest the previous full study implied
# (claim 3 on stdlib-docs, see study.FULL's arithmetic) and a typical small one.
SPREADS = (0.036, 0.01)
DELTA = 0.05


def covered(true: float, spread: float, seeds: int, rng: np.random.Generator) -> tuple[float, int]:
    """(share of simulated studies whose 95% interval holds the truth, how many had an interval)."""
    hits = with_interval = 0
    for _ in range(STUDIES):
        iv = mean_interval(true + spread * rng.standard_normal(seeds))
        if iv.has_interval:
            with_interval += 1
            hits += iv.lo <= true <= iv.hi
    return hits / max(with_interval, 1), with_interval


@pytest.mark.parametrize("spread", SPREADS)
@pytest.mark.parametrize("seeds", sorted({5, 8, study.FULL.seeds, study.QUICK.seeds}))
def test_a_95_percent_interval_covers_the_truth_in_93_to_97_percent_of_studies(seeds, spread):
    rng = np.random.default_rng([seeds, int(spread * 1000)])
    share, with_interval = covered(0.02, spread, seeds, rng)
    assert with_interval == STUDIES
    assert 0.93 <= share <= 0.97, f"{seeds} seeds, spread {spread}: covered {share:.1%}"


def test_below_five_seeds_there_is_no_interval_to_cover_anything():
    rng = np.random.default_rng(3)
    share, with_interval = covered(0.0, 0.036, 3, rng)
    assert with_interval == 0


def test_a_median_interval_of_checkpoints_keeps_its_promise_too():
    rng = np.random.default_rng(4)
    hits = 0
    for _ in range(STUDIES):
        iv = median_interval(rng.standard_normal(20))  # the true median is 0
        hits += iv.lo <= 0.0 <= iv.hi
    assert 0.95 <= hits / STUDIES <= 0.99  # order statistics cover at least 95% (98.8% at n = 20)


@pytest.mark.parametrize("true,expected", [(0.1, CONTRADICTED), (0.0, SUPPORTED)])
def test_the_verdict_follows_the_truth_at_the_full_presets_seeds(true, expected):
    """A truth well outside the band (0.1 against ±0.05) is contradicted, one at its centre supported, in
    at least 95% of simulated full studies at the spread the reference study saw."""
    rng = np.random.default_rng(5)
    verdicts = [verdict_within(mean_interval(true + 0.036 * rng.standard_normal(study.FULL.seeds)), DELTA)
                for _ in range(STUDIES)]
    assert verdicts.count(expected) / STUDIES >= 0.95
    assert verdicts.count(SUPPORTED if expected == CONTRADICTED else CONTRADICTED) / STUDIES < 0.01


def test_a_truth_on_the_edge_of_the_band_is_mostly_left_undecided():
    rng = np.random.default_rng(6)
    verdicts = [verdict_within(mean_interval(DELTA + 0.036 * rng.standard_normal(study.FULL.seeds)), DELTA)
                for _ in range(STUDIES)]
    assert verdicts.count(INCONCLUSIVE) / STUDIES > 0.9  # each side wrong at most 2.5% of the time
    assert verdicts.count(SUPPORTED) / STUDIES <= 0.03 and verdicts.count(CONTRADICTED) / STUDIES <= 0.03

"""The n-gram reference levels: against a plain-Python count, and on texts whose answer is known."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from bpttbench.data.ngram import WEIGHTS, reference_levels


def slow_levels(train, val, V):
    """The same models written out with Counters, one character at a time."""
    uni, bi, tri = Counter(train), Counter(zip(train, train[1:])), Counter(zip(train, train[1:], train[2:]))
    ctx1, ctx2 = Counter(train[:-1]), Counter(zip(train, train[1:-1]))
    out = {k: 0.0 for k in WEIGHTS}
    for a, b, y in zip(val, val[1:], val[2:]):
        p_uni = uni[y] / len(train)
        p_bi = bi[b, y] / ctx1[b] if ctx1[b] else p_uni
        p_tri = tri[a, b, y] / ctx2[a, b] if ctx2[a, b] else p_bi
        for level, ps in (("unigram", (p_uni,)), ("bigram", (p_bi, p_uni)), ("trigram", (p_tri, p_bi, p_uni))):
            w = WEIGHTS[level]
            out[level] -= math.log2(sum(wi * pi for wi, pi in zip(w, ps)) + w[-1] / V)
    return {k: v / (len(val) - 2) for k, v in out.items()}


def test_levels_equal_a_plain_count():
    rng = np.random.default_rng(0)
    ids = np.where(rng.random(3000) < 0.3, rng.integers(0, 6, 3000), np.arange(3000) % 5)
    train, val = ids[:2500], ids[2500:]
    fast = reference_levels(train, val, 7)  # symbol 6 never occurs: unseen contexts fall back
    slow = slow_levels(train.tolist(), val.tolist(), 7)
    assert fast == pytest.approx(slow, rel=1e-12)


def test_a_cycle_is_predictable_and_noise_is_not():
    cycle = np.tile([0, 0, 1, 2], 5000)  # after a 0 the next is 0 or 1: a bigram cannot tell, a trigram can
    levels = reference_levels(cycle[:18_000], cycle[18_000:], 3)
    assert levels["trigram"] < 0.5 < levels["bigram"] < levels["unigram"] <= math.log2(3)
    noise = np.random.default_rng(1).integers(0, 7, 60_000)
    levels = reference_levels(noise[:50_000], noise[50_000:], 7)
    assert all(abs(v - math.log2(7)) < 0.05 for v in levels.values()), levels


def test_the_report_and_the_validation_figures_show_the_levels(tmp_path):
    from bpttbench.config import TrainConfig
    from bpttbench.plot import plot_runs
    from bpttbench.results.records import Record, RunOutcome
    from bpttbench.report import build_report, write_report
    from bpttbench.results import RunWriter

    levels = {"unigram": 4.5, "bigram": 3.75, "trigram": 3.25}
    run = tmp_path / "run"
    w = RunWriter(run, force=False, manifest={"run_id": "r", "corpus": {"name": "text", "reference_bpc": levels}})
    for scheme in ("single", "sliding"):
        for seed in (0, 1):
            key = w.start_unit(TrainConfig(scheme=scheme, seed=seed, budget_steps=4000, clock="wall"), "text")
            for i in range(1, 5):
                w.add_record(key, Record(step=i * 1000, updates=i * 1000, wall_s=float(i), train_bpc=4.0 - 0.1 * i,
                                         val_bpc=4.0 - 0.2 * i - 0.01 * seed))
            w.finish_unit(key, RunOutcome(status="complete", steps=4000, updates=4000, wall_s=4.0))
    w.close("complete")
    text = write_report(build_report(run), tmp_path / "report").read_text()
    assert "## Reference levels" in text
    assert "| text | 4.500 | 3.750 | 3.250 | 3.295 | −0.455 |" in text  # final: the mean of the last half of evaluations
    plot_runs(run, out=tmp_path / "figs", formats=("svg",))
    svg = (tmp_path / "figs" / "val_loss_vs_time.svg").read_text()
    assert "bigram on this split: 3.750" in svg and "bigram" not in (tmp_path / "figs" / "loss_vs_time.svg").read_text()

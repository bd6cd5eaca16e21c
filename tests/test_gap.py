"""The report's gap to the optimum, and labels for the online schemes, on synthetic run directories
whose answers are known by construction.

Every curve is flat over the last 10% of its steps (the stretch the gap reads), at the optimum plus a
chosen gap plus 0.01 x seed, so each configuration's median gap is known exactly; one sweep closes
the gap of some schemes from some k2 on, the other closes nobody's.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from bpttbench.data import synthetic
from bpttbench.config import TrainConfig
from bpttbench.results.records import Record, RunOutcome
from bpttbench.report import GAP_FRACTION, build_report, dependency_cost, tail_mean, write_report
from bpttbench.results import RunWriter, add_labels

from test_report import md_tables

L, M, K = 20, 4, 4
OPTIMUM = (math.log2(M) + (L - 2) * math.log2(K)) / (L + 1)  # synthetic.py's lag:L entropy rate
COST = math.log2(M) / (L + 1)  # 0.0952: a predictor that forgets the cue
GENERATOR = {"kind": "lag", "lag": L, "symbols": M, "noise": K, "seed": 0, "n": 1_000_000}
MACHINE = {"cpu": "Test CPU", "cores": 2, "hostname": "box", "python": "3.11.0", "numpy": "1.26.0", "numba": "0.59.0",
           "bpttbench": "0.1.0"}
STEPS, LOG = 10_000, 500
SEEDS = (0, 1, 2, 3, 4, 5)  # 6: the fewest values with a median's 95% interval
K2S = (5, 10, 20, 40)


def loss(gap: float, seed: int):
    """High early, then flat from step 5,000 on at optimum + gap + 0.004 x seed."""
    return lambda step: OPTIMUM + gap + 0.004 * seed + (1.0 if step <= STEPS // 2 else 0.0)


def write_run(out: Path, units, *, corpus="lag:20", optimum=OPTIMUM, generator=GENERATOR) -> Path:
    info = {"name": corpus}
    if optimum is not None:
        info.update(optimum_bpc=optimum, generator=generator)
    w = RunWriter(out, force=False, manifest={"run_id": out.name, "corpus": info, "machine": MACHINE})
    for cfg, f in units:
        key = w.start_unit(cfg, corpus)
        for step in range(LOG, STEPS + 1, LOG):
            w.add_record(key, Record(step=step, updates=step, wall_s=step / 1000, train_bpc=f(step),
                                     val_bpc=f(step) + 0.3 if step == STEPS else None))
        w.finish_unit(key, RunOutcome(status="complete", steps=STEPS, updates=STEPS, wall_s=STEPS / 1000, compile_s=1.0,
                                      final_train_bpc=f(STEPS), final_val_bpc=f(STEPS) + 0.3))
    w.close("complete")
    return out


def cfg(scheme, seed, k2, k1=None):
    k1 = k1 if k1 is not None else (k2 if scheme == "chunked" else 1)
    return TrainConfig(scheme=scheme, k1=k1, k2=k2, seed=seed, hidden=16, budget_steps=STEPS, log_every=LOG, clock="wall")


def sweep(tmp_path: Path, gaps: dict, online: dict) -> Path:
    """One run directory per point, as a sweep writes them: gaps[scheme][k2] for the truncated
    schemes, online[scheme] for rtrl/uoro (seeds 0, 1 recorded at k2 = 5 and seed 2 at k2 = 20,
    which must pool into one configuration: k2 is unused)."""
    root = tmp_path / "sweep"
    for scheme, by_k2 in gaps.items():
        for k2, gap in by_k2.items():
            for s in SEEDS:
                write_run(root / f"{scheme}-{k2}-{s}", [(cfg(scheme, s, k2), loss(gap, s))])
    for scheme, gap in online.items():
        for s in SEEDS:
            write_run(root / f"{scheme}-{s}", [(cfg(scheme, s, 5 if s < 2 else 20), loss(gap, s))])
    return root


CLOSES = {
    "single": {5: 0.30, 10: 0.20, 20: 0.02, 40: 0.01},  # learns from k2 = 20 on
    "sliding": {5: 0.30, 10: 0.03, 20: 0.02, 40: 0.01},  # from k2 = 10 on
    "chunked": {5: 0.30, 10: 0.25, 20: 0.12, 40: 0.05},  # only at k2 = 40
}
NEVER = {s: {5: 0.30, 10: 0.25, 20: 0.15, 40: 0.12} for s in ("single", "sliding", "chunked")}


def test_tail_mean_reads_the_last_fraction_of_the_steps():
    steps = [100, 200, 300, 400, 500, 600, 700, 800, 900, 1000]
    values = [9, 9, 9, 9, 9, 9, 9, 9, 3, 1]
    # The last 20% are the points at 900 (steps 800-900) and 1000 (900-1000).
    assert tail_mean(steps, values, 0.2) == (2.0, 800.0)
    # Unequal intervals are weighted by the steps they cover; a point straddling the start is left out.
    assert tail_mean([500, 900, 1000], [9, 4, 1], 0.3) == (1.0, 900.0)
    assert tail_mean([500, 900, 1000], [9, 4, 1], 0.5) == (pytest.approx((4 * 400 + 1 * 100) / 500), 500.0)
    assert tail_mean([1000], [7.0], 0.1) == (7.0, 0.0)  # at least the last point


def test_dependency_cost_from_the_generator_agrees_with_synthetic_entropy_rates():
    cost, words = dependency_cost(GENERATOR)
    assert cost == pytest.approx(COST) and "log2(4)/21" in words and "L = 20" in words
    # Independent check: the cue's entropy, per character, is the rate with M cues minus the rate with one.
    for lag, symbols in ((20, 4), (7, 3)):
        gen = {"kind": "lag", "lag": lag, "symbols": symbols}
        diff = synthetic.entropy_rate(f"lag:{lag}:symbols={symbols}") - synthetic.entropy_rate(f"lag:{lag}:symbols=1")
        assert dependency_cost(gen)[0] == pytest.approx(diff, abs=1e-12)
    assert synthetic.entropy_rate("lag:20") == pytest.approx(OPTIMUM, abs=1e-12)
    assert dependency_cost({"kind": "reber", "seed": 0}) is None
    assert dependency_cost(None) is None and dependency_cost({"kind": "lag"}) is None


def test_online_schemes_are_labelled_without_k2():
    rows = pd.DataFrame([
        {"scheme": s, "k1": k1, "k2": k2, "inject": "new", "hidden": 16, "batch": 1, "corpus": "lag:20",
         "optimizer": "adam", "lr": 2e-3}
        for s, k1, k2 in (("rtrl", 1, 20), ("rtrl", 1, 5), ("uoro", 2, 20), ("single", 1, 20), ("chunked", 20, 20))])
    # Only what differs is named: k1 (among the schemes that choose it: chunked's is its k2), not k2.
    assert list(add_labels(rows)["label"]) == ["rtrl k1=1", "rtrl k1=1", "uoro k1=2", "single k1=1", "chunked"]


def test_gap_closes_from_a_k2_on_per_scheme(tmp_path):
    root = sweep(tmp_path, CLOSES, {"rtrl": 0.005, "uoro": 0.15})
    report = build_report(root)
    (t,) = report.gaps
    assert t.optimum == pytest.approx(OPTIMUM) and t.cost == pytest.approx(COST) and t.k2s == list(K2S)
    # Where the optimum is known, "the same minimum" compares the schemes' gaps: their final online losses.
    (minimum,) = [c for c in report.claims if c.number == "4"]
    assert minimum.results and {r["metric"] for r in minimum.results} == {"final_train"}
    # Median over seeds 0..5 of gap + 0.004 x seed is gap + 0.01; with 6 seeds the 95% interval is the range.
    for scheme, by_k2 in CLOSES.items():
        for k2, gap in by_k2.items():
            row = t.cell(scheme if scheme != "chunked" else "chunked (k1 = k2)", k2)
            assert (row.gap.estimate, row.gap.lo, row.gap.hi, row.gap.n) == pytest.approx((gap + 0.01, gap, gap + 0.02, 6))
            assert row.final.estimate == pytest.approx(OPTIMUM + gap + 0.01)
            assert row.from_step == STEPS * (1 - GAP_FRACTION)
            assert row.us_per_step.estimate == pytest.approx(1000.0)  # STEPS in STEPS / 1000 s
    rtrl = t.cell("rtrl (no truncation)", None)  # seeds recorded at k2 = 5 and 20 pool into one row
    assert rtrl.seeds == list(SEEDS) and rtrl.gap.estimate == pytest.approx(0.015) and rtrl.label == "rtrl"
    assert [r.row for r in t.rows if r.k2 is None] == ["rtrl (no truncation)", "uoro (no truncation)"]

    findings = {f.row: f for f in t.findings}
    # single learns from k2 = 20 on, sliding from 10, chunked only at 40 (CLOSES); rtrl learns, uoro does not.
    assert {name: f.learns_from for name, f in findings.items()} == {
        "single": 20, "sliding": 10, "chunked (k1 = k2)": 40, "rtrl (no truncation)": None, "uoro (no truncation)": None}
    assert {name: f.learns for name, f in findings.items()} == {
        "single": True, "sliding": True, "chunked (k1 = k2)": True, "rtrl (no truncation)": True,
        "uoro (no truncation)": False}
    assert all(f.disagree == [] for f in t.findings)  # every seed interval lies on one side of the cost
    assert "+0.310 [+0.300, +0.320]" in findings["chunked (k1 = k2)"].text  # the sentence gives the gaps by k2

    md = write_report(report).read_text(encoding="utf-8")
    section = md.split("## Gap to the optimum", 1)[1].split("\n## ", 1)[0]
    assert f"{OPTIMUM:.4f}" in section and f"{COST:.4f}" in section and f"{GAP_FRACTION:.0%}" in section
    configurations, pivot = md_tables(section)
    rtrl = {r["configuration"]: r for r in configurations}["rtrl"]  # labelled without a k2
    assert (rtrl["seeds"], rtrl["final online loss"], rtrl["gap"], rtrl["mean over the steps after"],
            rtrl["µs per step"]) == ("6", "1.825 [1.815, 1.835]", "+0.015 [+0.005, +0.025]", "9,000",
                                     "1,000 [1,000, 1,000]")
    rows = {r["scheme"]: r for r in pivot}
    assert list(pivot[0]) == ["scheme", "k2 = 5", "k2 = 10", "k2 = 20", "k2 = 40", "no truncation"]
    assert [rows["single"][f"k2 = {k}"] for k in K2S] + [rows["single"]["no truncation"]] == [
        "+0.310 [+0.300, +0.320]", "+0.210 [+0.200, +0.220]", "+0.030 [+0.020, +0.040]", "+0.020 [+0.010, +0.030]", "–"]
    assert [rows["rtrl (no truncation)"][c] for c in pivot[0] if c != "scheme"] == ["–"] * 4 + ["+0.015 [+0.005, +0.025]"]
    data = json.loads((root / "report.json").read_text(encoding="utf-8"))
    assert data["gaps"][0]["dependency_cost_bpc"] == pytest.approx(COST)
    assert data["gaps"][0]["rows"][0]["gap"]["estimate"] == pytest.approx(CLOSES["sliding"][5] + 0.01)
    assert {d["row"]: d["from_k2"] for d in data["gaps"][0]["learns_dependency"]}["single"] == 20
    # rtrl's own family is labelled without a k2.
    assert any(f.label.startswith("lag:20 · no truncation") for f in report.families)


def test_gap_never_closes(tmp_path):
    root = sweep(tmp_path, NEVER, {"rtrl": 0.2})
    (t,) = build_report(root).gaps
    assert {f.row: (f.learns, f.learns_from) for f in t.findings} == {
        name: (False, None) for name in ("single", "sliding", "chunked (k1 = k2)", "rtrl (no truncation)")}


def test_seeds_on_both_sides_of_the_cost_are_said(tmp_path):
    gaps = {"single": {10: 0.20, 20: COST - 0.015}}  # seeds at cost - 0.015, ... cost + 0.005: median below it
    (t,) = build_report(sweep(tmp_path, gaps, {})).gaps
    (finding,) = t.findings
    assert (finding.learns_from, finding.disagree) == (20, [20])


def test_no_gap_section_without_a_known_optimum(tmp_path):
    root = tmp_path / "runs"
    for s in SEEDS:
        write_run(root / f"single-{s}", [(cfg("single", s, 20), loss(0.1, s))], corpus="stdlib-docs", optimum=None)
    report = build_report(root)
    assert report.gaps == []
    assert "Gap to the optimum" not in write_report(report).read_text(encoding="utf-8")


def test_gap_without_a_dependency_has_no_findings(tmp_path):
    root = tmp_path / "runs"
    for s in SEEDS:
        write_run(root / f"single-{s}", [(cfg("single", s, 20), loss(0.1, s))], corpus="reber", optimum=7 / 12,
                  generator={"kind": "reber", "seed": 0, "n": 1000})
    (t,) = build_report(root).gaps
    assert t.findings == [] and math.isnan(t.cost)
    assert t.rows[0].gap.estimate == pytest.approx(OPTIMUM + 0.11 - 7 / 12)

"""The report's table of online learning rules: cosines read from gradcheck.csv along rtrl's
trajectory, matched to run configurations; µs per step and resident memory from the manifests;
the gap from gaps.py. Runs and gradcheck rows are written by hand with known numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from bpttbench.config import TrainConfig
from bpttbench.fidelity.gradcheck import COLUMNS
from bpttbench.results.records import Record, RunOutcome
from bpttbench.report import build_report, write_report
from bpttbench.report.online import estimator_for, format_bytes
from bpttbench.results import RunWriter

from test_gap import GENERATOR, LOG, MACHINE, OPTIMUM, STEPS
from test_report import md_tables

SEEDS = (0, 1, 2)
BASE = TrainConfig(budget_steps=1)
# scheme, k1, k2 -> (gap, seconds per 10,000 steps, resident bytes)
RUNS = {
    ("chunked", 5, 5): (0.40, 5.0, 1000),
    ("single", 1, 5): (0.30, 20.0, 2000),
    ("single", 1, 20): (0.05, 50.0, 3000),
    ("adaptive", 5, 5): (0.20, 8.0, 4000),
    ("rtrl", 1, 1): (0.01, 400.0, 3 * 2**20),
    ("uoro", 1, 1): (0.50, 30.0, 5000),
    ("snap1", 1, 1): (0.03, 40.0, 6000),
    ("eprop", 1, 1): (0.04, 35.0, 7000),
}


def write_runs(root: Path) -> None:
    for (scheme, k1, k2), (gap, seconds, resident) in RUNS.items():
        for s in SEEDS:
            cfg = TrainConfig(scheme=scheme, k1=k1, k2=k2, seed=s, hidden=16, budget_steps=STEPS, log_every=LOG, clock="wall")
            out = root / f"{scheme}-{k2}-{s}"
            w = RunWriter(out, force=False, manifest={"run_id": out.name, "machine": MACHINE,
                                                      "corpus": {"name": "lag:20", "optimum_bpc": OPTIMUM,
                                                                 "generator": GENERATOR}})
            key = w.start_unit(cfg, "lag:20")
            for step in range(LOG, STEPS + 1, LOG):
                w.add_record(key, Record(step=step, updates=step // k1, wall_s=seconds * step / STEPS,
                                         train_bpc=OPTIMUM + gap + 0.01 * s))
            w.finish_unit(key, RunOutcome(status="complete", steps=STEPS, updates=STEPS // k1, wall_s=seconds,
                                          final_train_bpc=OPTIMUM + gap, resident_bytes=resident))
            w.close("complete")


def grad_rows(k1, k2, estimator, cosines, *, tensor="all", lr=BASE.lr, hidden=16):
    """Rows of one rtrl trajectory per seed, one checkpoint per cosine."""
    return [{"corpus": "lag:20", "scheme": "rtrl", "k1": k1, "k2": k2, "inject": "new", "hidden": hidden, "batch": 1,
             "dtype": "float64", "optimizer": BASE.optimizer, "lr": lr, "clip": BASE.clip, "seed": s,
             "step": 100 * (i + 1), "updates": 100 * (i + 1) // k1, "train_bpc": 2.0, "drift": 0.0, "tensor": tensor,
             "estimator": estimator, "cosine": c + 0.001 * s, "rel_error": 1 - c}
            for s in SEEDS for i, c in enumerate(cosines)]


def write_gradcheck(path: Path) -> None:
    rows = []
    for k2 in (5, 20):  # the online rules' rows repeat in every k2's trajectory: one value per point
        rows += grad_rows(1, k2, "snap1_vs_rtrl", [0.90, 0.80, 0.70])
        rows += grad_rows(1, k2, "eprop_vs_rtrl", [0.60, 0.65, 0.70])
        rows += grad_rows(1, k2, "uoro_vs_rtrl", [0.10, 0.20, 0.30])
        rows += grad_rows(1, k2, "snap1_vs_rtrl", [0.50, 0.40, 0.30], tensor="weight_hh_l0")
    rows += grad_rows(1, 5, "single_vs_rtrl", [0.95, 0.96, 0.97])
    rows += grad_rows(1, 20, "single_vs_rtrl", [0.99, 0.99, 0.99])
    rows += grad_rows(1, 5, "exact_vs_rtrl", [0.1, 0.1, 0.1])  # sliding's at k1 = 1: no sliding run here
    rows += grad_rows(5, 5, "exact_vs_rtrl", [0.85, 0.86, 0.87])  # chunked k2 = 5
    rows += grad_rows(1, 5, "snap1_vs_rtrl", [-0.5] * 3, lr=0.02)  # another lr: not these runs'
    rows += grad_rows(1, 5, "snap1_vs_rtrl", [-0.5] * 3, hidden=32)  # another hidden: not these runs'
    path.mkdir(parents=True)
    pd.DataFrame(rows, columns=COLUMNS).to_csv(path / "gradcheck.csv", index=False)


@pytest.fixture
def report(tmp_path):
    write_runs(tmp_path / "runs")
    write_gradcheck(tmp_path / "runs" / "gc")
    return build_report(tmp_path / "runs")


def test_each_rule_gets_its_cosine_cost_memory_and_gap(report):
    (table,) = report.online
    assert table.corpus == "lag:20" and table.optimum == pytest.approx(OPTIMUM)
    rows = {r.label: r for r in table.rows}
    assert list(rows) == ["chunked k2=5", "single k1=1 k2=5", "single k1=1 k2=20", "adaptive k2=5", "rtrl", "uoro",
                          "snap1", "eprop"]
    assert rows["snap1"].cosine["all"].estimate == pytest.approx(0.801)
    assert rows["snap1"].cosine["all"].n == 9  # 3 seeds x 3 checkpoints; the k2 = 20 repeats and other lr/H left out
    assert rows["snap1"].cosine["weight_hh_l0"].estimate == pytest.approx(0.401)
    assert rows["eprop"].cosine["all"].estimate == pytest.approx(0.651)
    assert rows["uoro"].cosine["all"].estimate == pytest.approx(0.201)
    assert rows["single k1=1 k2=5"].cosine["all"].estimate == pytest.approx(0.961)
    assert rows["single k1=1 k2=20"].cosine["all"].estimate == pytest.approx(0.991)
    assert rows["chunked k2=5"].cosine["all"].estimate == pytest.approx(0.861)
    assert rows["adaptive k2=5"].cosine["all"].n == 0 and rows["rtrl"].cosine["all"].n == 0
    assert rows["rtrl"].us_per_step.estimate == pytest.approx(40_000)
    assert rows["single k1=1 k2=5"].us_per_step.estimate == pytest.approx(2_000)
    assert rows["rtrl"].resident_bytes == 3 * 2**20
    assert rows["uoro"].gap.estimate == pytest.approx(0.51, abs=1e-9)
    assert rows["chunked k2=5"].gap.estimate == pytest.approx(0.41, abs=1e-9)
    # the final online loss itself, shown on every corpus (the gap is only where the optimum is known)
    assert rows["snap1"].final_loss.estimate == pytest.approx(OPTIMUM + 0.04, abs=1e-9)
    assert rows["rtrl"].final_loss.estimate == pytest.approx(OPTIMUM + 0.02, abs=1e-9)


def test_report_md_and_json_show_the_table(report, tmp_path):
    md = write_report(report, tmp_path / "out")
    text = md.read_text(encoding="utf-8")
    assert "## Online learning rules" in text
    table = next(t for t in md_tables(text) if t and "cosine with rtrl (all)" in t[0])
    cells = {r["rule"]: r for r in table}
    assert cells["rtrl"]["cosine with rtrl (all)"] == "1 (reference)"
    assert cells["uoro"]["cosine with rtrl (all)"].startswith("0.2010 [") and "(one sample)" in cells["uoro"]["cosine with rtrl (all)"]
    assert cells["snap1"]["cosine (W_hh)"].startswith("0.4010 [")
    assert cells["adaptive k2=5"]["cosine with rtrl (all)"] == "–"
    assert cells["rtrl"]["resident memory"] == "3 MiB"
    assert cells["rtrl"]["µs per step"] == "40,000 (3 seeds: no 95% interval below 6 seeds)"  # 3 seeds: an estimate alone
    assert cells["eprop"]["gap to the optimum"].startswith("+0.050")
    assert cells["eprop"]["final online loss"] == f"{OPTIMUM + 0.05:.3f} (3 seeds: no 95% interval below 6 seeds)"
    data = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))
    (online,) = data["online"]
    snap1 = next(r for r in online["rows"] if r["scheme"] == "snap1")
    assert snap1["cosine"]["all"]["estimate"] == pytest.approx(0.801) and snap1["resident_bytes"] == 6000
    assert snap1["k2"] is None and snap1["hidden"] == 16
    assert snap1["final_loss"]["estimate"] == pytest.approx(OPTIMUM + 0.04, abs=1e-9)


def test_without_gradcheck_the_cosines_are_empty(tmp_path):
    write_runs(tmp_path / "runs")
    (table,) = build_report(tmp_path / "runs").online
    assert all(r.cosine["all"].n == 0 for r in table.rows)
    assert len(table.rows) == len(RUNS)


def test_truncated_schemes_alone_get_no_table(tmp_path):
    write_runs(tmp_path / "runs")
    for path in (tmp_path / "runs").iterdir():
        if path.name.split("-")[0] in ("rtrl", "uoro", "snap1", "eprop"):
            for f in path.iterdir():
                f.unlink()
            path.rmdir()
    report = build_report(tmp_path / "runs")
    assert report.online == [] and len(report.gaps) == 1


def test_which_estimator_measures_which_rule():
    assert estimator_for("sliding", 1, 5) == "exact_vs_rtrl"
    assert estimator_for("sliding", 5, 5) is None  # that is chunked
    assert estimator_for("chunked", 5, 5) == "exact_vs_rtrl"
    assert estimator_for("stored", 1, 5) == "stored_vs_rtrl"
    assert estimator_for("adaptive", 5, 5) is None and estimator_for("rtrl", 1, 1) is None
    assert [format_bytes(n) for n in (512, 2048, 999.7 * 2**10, 1020 * 2**10, 3 * 2**20, 2**31)] == \
        ["512 B", "2 KiB", "1000 KiB", "1020 KiB", "3 MiB", "2 GiB"]


def test_corpora_are_listed_with_their_numbers_in_order():
    from bpttbench.report.online import _natural

    assert sorted(["lag:20:n=9", "reber", "lag:5:n=9", "lag:10:n=9"], key=_natural) == \
        ["lag:5:n=9", "lag:10:n=9", "lag:20:n=9", "reber"]

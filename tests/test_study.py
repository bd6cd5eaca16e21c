"""`bpttbench study`: the whole pipeline (sweeps on Dask, gradcheck, report, map) on a generated corpus."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from bpttbench import study
from bpttbench.study import Preset

from conftest import invoke

# The quick preset shrunk further, so the pipeline runs in well under a minute.
TINY = Preset(seeds=2, chunked_seeds=2, budget="1s", hidden=8, identity_steps=400, gradcheck_steps=300,
              gradcheck_every=100, map_k2=(4, 8), map_hidden=(4, 8), map_seeds=2, map_seconds=(0.1, 0.1),
              map_eval_chars=(500, 500), map_evals=6, map_logs=12, eval_every=500,
              chunked_eval_every=5000, identity_eval_every=200)


@pytest.mark.slow
def test_study_quick_runs_every_part_writes_the_report_and_resumes(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(study, "QUICK", TINY)
    out = tmp_path / "study"
    argv = ["study", "--quick", "--corpus", "lag:3:n=20000", "--out", str(out), "--workers", "1", "--json"]
    code, stdout, err = invoke(argv, capsys)
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["status"] == "complete" and summary["out"] == str(out)
    parts = summary["parts"]
    cells = {f"map/k1-{rule}-k2-{k2}-h{h}" for rule in ("1", "half") for k2 in (4, 8) for h in (4, 8)}
    assert set(parts) == {"claims/lag-3-n=20000", "claims/chunked-lag-3-n=20000", "claims/identity-lag-3-n=20000",
                          "claims/gradcheck-lag-3-n=20000"} | cells
    assert set(parts.values()) == {"complete"}
    manifest = json.loads((out / "study.json").read_text())
    assert manifest["status"] == "complete" and manifest["parts"] == parts
    # Registered before the first run: the preset's seed counts, the corpora and the clock.
    assert manifest["registered"]["settings"]["seeds"] == TINY.seeds and manifest["registered"]["clock"] == "cpu"
    assert manifest["registered_at"] <= manifest["started_at"]
    # Every run of the study counts CPU time.
    configs = [p["config"] for part in out.glob("**/sweep.json") for p in json.loads(part.read_text())["points"]]
    assert configs and {c["clock"] for c in configs} == {"cpu"}
    # It ends with its summary and a replication of the shipped quick reference, which studied other corpora.
    assert summary["replication"] and {r["agree"] for r in summary["replication"]} == {None}
    saved = json.loads((out / "summary.json").read_text())
    assert saved["preset"] == "quick" and saved["clock"] == "cpu" and saved["seeds"] == TINY.seeds
    assert {r["claim"] for r in saved["claims"]} >= {"1", "2", "3", "4", "5"}

    report = (out / "report.md").read_text()
    assert "## The question's claims" in report and "## The map" in report and (out / "map.png").stat().st_size > 0
    # One row per (k1 rule, H), one column per k2: every cell measured.
    the_map = report.split("## The map")[1].split("\n## ")[0]
    rows = [line for line in the_map.splitlines() if line.startswith("| 1 |") or line.startswith("| k2 / 2 |")]
    assert len(rows) == 4 and all(line.count("×") == 2 for line in rows), rows
    claims = (out / "claims" / "lag-3-n=20000" / "sweep.json")
    points = json.loads(claims.read_text())["points"]
    assert {p["config"]["scheme"] for p in points} == {"single", "stored", "sliding"}
    assert len(points) == 3 * TINY.seeds
    # Chunked, swept apart and evaluated less often, is reported in the same family as the others.
    family = [part for part in report.split("\n## ") if part.startswith("lag:3:n=20000 · k2=20")]
    assert len(family) == 1 and "| chunked k2=20 budget=1s" in family[0], family

    # A rerun resumes: nothing is run again, every run directory is left as it was.
    manifests = sorted(out.glob("**/manifest.json"))
    before = {p: p.stat().st_mtime_ns for p in manifests}
    code, stdout, err = invoke(argv, capsys)
    assert code == 0, err
    assert {p: p.stat().st_mtime_ns for p in manifests} == before

    # Its seeds are registered: the same directory refuses other settings instead of adding runs.
    code, _, err = invoke(argv[:-1] + ["--clock", "wall"], capsys)
    assert code == 2 and "registered with other clock" in err and len(err.strip().splitlines()) == 1
    monkeypatch.setattr(study, "QUICK", replace(TINY, seeds=3))
    code, _, err = invoke(argv, capsys)
    assert code == 2 and "registered with other settings" in err
    assert {p: p.stat().st_mtime_ns for p in manifests} == before


def test_map_cells_get_step_budgets_that_follow_the_cost_per_step_and_evaluate_several_times():
    sweeps = dict(study.FULL.sweeps(("stdlib-docs", "stdlib-source")))
    slow, fast = sweeps["map/k1-1-k2-100-h512"], sweeps["map/k1-1-k2-5-h32"]
    assert "steps = 324\n" in slow and "[parameters.eval_every]\nvalue = 27\n" in slow
    assert "steps = 17200\n" in fast and "[parameters.eval_every]\nvalue = 1433\n" in fast
    assert study.map_steps_per_s("1", 16, 5) == study.MAP_STEPS_PER_S["1", 32, 5]  # nearest measured cell


def test_study_refuses_an_unknown_corpus_before_running_anything(tmp_path, capsys):
    code, _, err = invoke(["study", "--quick", "--corpus", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "s")],
                          capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s" / "study.json").exists()


def test_the_full_preset_meets_its_registered_target_at_the_spread_it_was_sized_for():
    """FULL's seed count: a 95% t-interval of the mean at most ±0.02 bits/char at the largest per-seed
    spread of the previous full study (s = 0.036, claim 3 on stdlib-docs), as the comment beside it works out."""
    from scipy import stats

    n = study.FULL.seeds
    assert stats.t.ppf(0.975, n - 1) * 0.036 / n ** 0.5 <= 0.02
    assert stats.t.ppf(0.975, n - 2) * 0.036 / (n - 1) ** 0.5 > 0.0195  # and not many more than it needs


def test_every_part_of_a_study_runs_on_its_clock():
    for clock in ("cpu", "wall"):
        for part, spec in study.QUICK.sweeps(("stdlib-docs",), clock):
            assert f'[parameters.clock]\nvalue = "{clock}"\n' in spec, part


def test_the_long_part_runs_to_a_plateau_on_corpora_with_a_known_optimum(tmp_path, capsys):
    from bpttbench.data import synthetic

    sweeps = dict(study.LONG.sweeps(("stdlib-docs",)))
    convergence = [part for part in sweeps if part.startswith("convergence/")]
    assert convergence and all(synthetic.is_generated(study._corpus_of(sweeps[p])) for p in convergence)
    assert 'schemes = ["single", "stored", "sliding"]' in sweeps[convergence[0]]
    assert 'budget = "5m"' in sweeps["long/stdlib-docs"]
    code, _, err = invoke(["study", "--quick", "--long", "--out", str(tmp_path / "s")], capsys)
    assert code == 2 and "either --quick or --long" in err and not (tmp_path / "s").exists()


@pytest.mark.parametrize("cell", ["gru", "rnn"])
def test_a_study_of_another_cell_is_the_claims_part_with_every_run_on_that_cell(cell):
    from bpttbench.sweep import parse_spec

    parts = study.QUICK.sweeps(("stdlib-docs",), "cpu", cell)
    assert parts and not any(part.startswith("map/") for part, _ in parts)
    for part, text in parts:
        spec = parse_spec(text, source=part)
        assert tuple(spec.parameters["cell"]) == (cell,), part
    lstm_parts = [part for part, _ in study.QUICK.sweeps(("stdlib-docs",), "cpu")]
    assert any(part.startswith("map/") for part in lstm_parts)


def test_a_study_registered_before_cells_resumes_as_the_lstm_and_refuses_another_cell(tmp_path):
    registered = study.registration("quick", ("stdlib-docs",), "cpu")
    old = {k: v for k, v in registered.items() if k != "cell"}  # a study.json from before the field
    (tmp_path / "study.json").write_text(json.dumps({"registered": old}), encoding="utf-8")
    assert study._check_registration(tmp_path / "study.json", registered)["registered"] == old
    with pytest.raises(study.ConfigError, match="cell"):
        study._check_registration(tmp_path / "study.json", study.registration("quick", ("stdlib-docs",), "cpu", "gru"))


@pytest.mark.parametrize("setting,message", [(dict(clock="gpu"), "unknown clock 'gpu'; choose cpu"),
                                             (dict(cell="lstmm"), "unknown cell 'lstmm'; choose one of lstm, gru, rnn")])
def test_a_bad_clock_or_cell_is_refused_as_a_runs_is_before_anything_is_written(tmp_path, setting, message):
    with pytest.raises(study.ConfigError, match=message):
        study.run_study(tmp_path / "study", **setting)
    assert not (tmp_path / "study").exists()

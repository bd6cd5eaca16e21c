"""examples/online.sh end to end, shrunk: sweeps of every online rule, gradcheck along rtrl's
trajectory, and the report's table of online rules, on a generated corpus."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bpttbench.report.online import ONLINE_RULES
from bpttbench.sweep import load_spec

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "examples" / "online.sh"


def test_the_spec_runs_every_online_rule_with_three_seeds():
    spec = load_spec(ROOT / "examples" / "online.toml")
    assert set(spec.schemes) == set(ONLINE_RULES) and len(spec.seeds) >= 3
    assert spec.budget_seconds is not None  # a time budget: rtrl at H = 64 would take hours of steps


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_example_pipeline_produces_the_online_table(tmp_path):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "PYTHONPATH": str(ROOT), "ONLINE_CORPORA": "lag:3:n=250000@4", "ONLINE_HIDDEN": "4", "ONLINE_SEEDS": "1",
           "ONLINE_BUDGET": "0.5s", "ONLINE_GC_STEPS_SMALL": "80", "ONLINE_GC_CHECKPOINTS": "2", "ONLINE_FD_WEIGHTS": "2"}
    out = tmp_path / "online"
    done = subprocess.run(["bash", str(SCRIPT), str(out)], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(list((out / "gradcheck").glob("*/gradcheck.csv"))) == 2  # k1 = 1 and k1 = k2 = 4
    (table,) = json.loads((out / "report.json").read_text(encoding="utf-8"))["online"]
    assert table["corpus"] == "lag:3:n=250000" and table["optimum_bpc"] > 0
    rows = {r["scheme"]: r for r in table["rows"]}
    assert set(rows) == set(ONLINE_RULES)
    for scheme, r in rows.items():
        assert r["us_per_step"]["estimate"] > 0 and r["resident_bytes"] > 0 and r["gap"]["n"] == 1, scheme
        measured = r["cosine"]["all"]
        if scheme in ("rtrl", "adaptive"):
            assert measured["n"] == 0, scheme
        else:  # 1 seed x 2 checkpoints
            assert measured["n"] == 2 and -1 <= measured["estimate"] <= 1, scheme
    assert rows["rtrl"]["resident_bytes"] > rows["snap1"]["resident_bytes"]  # the influence matrix against its diagonal
    assert rows["single"]["cosine"]["all"]["estimate"] > 0.5  # a 4-step window on a 3-step lag, early in training
    assert "## Online learning rules" in (out / "report.md").read_text(encoding="utf-8")

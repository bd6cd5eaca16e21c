"""The Python API as a notebook meets it: documented names, a cheap import, silent runs, one DataFrame."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bpttbench
from bpttbench.errors import ConfigError, ResultsError
from bpttbench.results.records import Record
from bpttbench.results import CONFIG_FIELDS, MANIFEST
from conftest import tiny_corpus

TINY = dict(k2=4, hidden=8, steps=400, log_every=100, eval_every=0, eval_chars=200)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two finished runs under one folder: single and sliding with seeds 0, 1 (weights saved), chunked seed 3."""
    root = tmp_path_factory.mktemp("runs")
    corpus = tiny_corpus()
    first = bpttbench.run(["single", "sliding"], seeds=2, corpus=corpus, out=root / "a", save_weights=True, **TINY)
    second = bpttbench.run("chunked", seeds=[3], corpus=corpus, out=root / "b", **TINY)
    return root, first, second


@pytest.mark.parametrize("name", bpttbench.__all__)
def test_every_public_name_imports_and_is_documented(name):
    value = getattr(bpttbench, name)
    assert inspect.getdoc(value) and len(inspect.getdoc(value)) > 20
    assert name in bpttbench.__doc__  # the module docstring lists it
    assert name in dir(bpttbench)


def test_import_is_cheap():
    """Numba, pandas and matplotlib load only when a function needs them."""
    code = "import sys, bpttbench; bpttbench.__version__; print(sorted({'numba', 'pandas', 'matplotlib'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_train_is_the_function_whatever_is_imported():
    import bpttbench.training.loop  # noqa: F401 (the loop's module: no longer named like the API's function)

    assert inspect.isgeneratorfunction(bpttbench.train)
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        bpttbench.nonsense


def test_train_yields_records_to_the_budget():
    cfg = bpttbench.TrainConfig(scheme="sliding", k2=4, hidden=8, budget_steps=300, log_every=100, eval_every=0,
                                eval_chars=200)
    records = list(bpttbench.train(cfg, tiny_corpus()))
    assert all(isinstance(r, Record) for r in records)
    assert [r.step for r in records] == [100, 200, 300]


def test_run_is_silent_and_its_curves_are_load_runs(tmp_path, capsys):
    result = bpttbench.run(["single", "sliding"], seeds=2, corpus=tiny_corpus(), out=tmp_path / "run", **TINY)
    assert capsys.readouterr() == ("", "")
    assert result.path == tmp_path / "run" and (result.path / MANIFEST).is_file()
    assert result.status == "complete"
    assert [(u.cfg.scheme, u.cfg.seed, u.outcome.status, u.outcome.steps) for u in result.units] == [
        ("single", 0, "complete", 400), ("single", 1, "complete", 400),
        ("sliding", 0, "complete", 400), ("sliding", 1, "complete", 400)]
    curves = result.curves
    assert isinstance(curves, pd.DataFrame)
    assert curves.equals(bpttbench.load_runs(result.path))
    assert set(CONFIG_FIELDS) <= set(curves.columns)
    train_rows = curves[curves["metric"] == "train_bpc"]
    assert len(train_rows) == 4 * 4  # 4 units × 4 log points
    assert set(train_rows["hidden"]) == {8} and set(train_rows["k2"]) == {4}
    assert train_rows.groupby(["scheme", "seed"]).size().to_dict() == {
        ("single", 0): 4, ("single", 1): 4, ("sliding", 0): 4, ("sliding", 1): 4}
    assert set(curves.loc[curves["metric"] == "val_bpc", "step"]) == {400}  # eval_every=0: once at the end
    summary = result.summary()
    assert list(summary["scheme"]) == ["single", "sliding"] and list(summary["seeds"]) == [2, 2]


def test_load_runs_joins_paths_and_counts_each_run_once(two_runs):
    root, first, second = two_runs
    both = bpttbench.load_runs(first.path, second.path)
    assert len(both) == len(first.curves) + len(second.curves)
    assert set(both["scheme"]) == {"single", "sliding", "chunked"}
    assert set(both.loc[both["scheme"] == "chunked", "seed"]) == {3}
    # The folder reaches both runs; naming one of them again adds nothing.
    again = bpttbench.load_runs(root, first.path)
    assert len(again) == len(both)
    assert set(again["run_id"]) == set(both["run_id"]) and again["run_id"].nunique() == 2


def test_load_runs_refuses_what_holds_no_complete_run(tmp_path):
    with pytest.raises(ResultsError, match="does not exist"):
        bpttbench.load_runs(tmp_path / "nowhere")
    (tmp_path / "crashed").mkdir()
    (tmp_path / "crashed" / MANIFEST).write_text('{"status": "running", "units": []}')
    with pytest.raises(ResultsError, match="no complete runs under .*crashed.*status is 'running'"):
        bpttbench.load_runs(tmp_path / "crashed")
    with pytest.raises(ResultsError, match="no path given"):
        bpttbench.load_runs()


def test_load_weights_is_the_saved_state_dict(two_runs):
    _, first, _ = two_runs
    final = bpttbench.load_weights(first.path, "sliding", 1)
    corpus = tiny_corpus()
    saved = np.load(first.path / "weights" / "sliding-seed1-final.npz")
    assert sorted(final) == sorted(saved.files) and "lstm.weight_ih_l0" in final
    for key in final:
        assert np.array_equal(final[key], saved[key])
    assert final["lstm.weight_ih_l0"].shape == (4 * 8, corpus.vocab_size)
    initial = bpttbench.load_weights(first.path, "sliding", 1, stage="init")
    assert not np.array_equal(initial["lstm.weight_ih_l0"], final["lstm.weight_ih_l0"])  # it trained
    with pytest.raises(ResultsError, match="choose one"):
        bpttbench.load_weights(first.path)  # four (scheme, seed) to choose from


@pytest.mark.parametrize("kwargs, message", [
    (dict(budget=5, steps=100), "either budget"),
    (dict(seeds=0), "seeds must be at least 1"),
    (dict(seeds=[]), "seeds is empty"),
    (dict(schemes="nope"), "unknown scheme 'nope'"),
    (dict(budget="soon"), "cannot read 'soon' as a duration"),
    (dict(k2=0), "k2"),
])
def test_bad_settings_raise_before_anything_is_written(tmp_path, kwargs, message):
    settings = {**TINY, "corpus": tiny_corpus(), "out": tmp_path / "run", **kwargs}
    if "budget" in kwargs:
        settings["steps"] = kwargs.get("steps")
    with pytest.raises(ConfigError, match=message):
        bpttbench.run(**settings)
    assert not Path(tmp_path / "run").exists()

"""Compiling a run's kernels in a child process while the run gets ready (bpttbench.precompile)."""

from __future__ import annotations

import importlib
import threading

import pytest

from bpttbench.config import TrainConfig
from bpttbench.precompile import compiling_in_background, corpus_needs_building, warm_up_configs
from bpttbench.runner import execute
from bpttbench.train import warm_up_config


def unit(**kw):
    base = dict(scheme="single", k1=1, k2=4, hidden=6, optimizer="adam", lr=0.01, budget_steps=100, log_every=50,
                eval_chars=100)
    return TrainConfig(**{**base, **kw})


def test_one_warm_up_per_distinct_set_of_kernels():
    seeds_and_budgets = [unit(seed=s, budget_steps=b) for s in (0, 1, 2) for b in (100, 200)]
    assert warm_up_configs(seeds_and_budgets) == [warm_up_config(unit())]
    # what changes the compiled types: the scheme, the dtype, fused SGD (its W_ih mirror), a size of 1
    kinds = [unit(), unit(scheme="sliding"), unit(dtype="float64"), unit(optimizer="sgd", clip=0.0), unit(hidden=1)]
    assert len(warm_up_configs(kinds + kinds)) == len(kinds)
    assert warm_up_configs(kinds) == [warm_up_config(cfg) for cfg in kinds]  # in unit order


def test_the_child_fills_the_cache_and_a_failing_block_stops_it():
    with compiling_in_background([unit()]) as background:
        assert background.child is not None and background.child.is_alive()
    assert background.child.exitcode == 0
    with pytest.raises(RuntimeError, match="boom"):
        with compiling_in_background([unit()]) as background:
            raise RuntimeError("boom")
    assert not background.child.is_alive()


def test_no_child_while_other_threads_run():
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        with compiling_in_background([unit()]) as background:
            assert background.child is None
        background.wait()  # nothing to wait for
    finally:
        stop.set()
        other.join()


def test_execute_waits_for_the_kernels_before_each_unit_compiles(tmp_path, corpus, monkeypatch):
    train = importlib.import_module("bpttbench.train")  # the module: bpttbench.train is also the API's function
    events = []
    original = train.warm_up
    monkeypatch.setattr(train, "warm_up", lambda *args: events.append("warm_up") or original(*args))
    result = execute([unit(), unit(scheme="sliding")], corpus, tmp_path / "run", kernels_ready=lambda: events.append("ready"))
    assert result.status == "complete"
    assert events == ["ready", "warm_up", "ready", "warm_up"]


def test_a_child_only_when_the_corpus_is_built(tmp_path, monkeypatch):
    monkeypatch.setenv("BPTTBENCH_CACHE_DIR", str(tmp_path / "empty"))
    assert corpus_needs_building(None) and corpus_needs_building("stdlib-docs")
    text = tmp_path / "text.txt"
    text.write_text("abc " * 100)
    assert not corpus_needs_building(str(text))  # a file, or a generated corpus: nothing slow to overlap
    with compiling_in_background([unit()], enabled=False) as background:
        assert background.child is None

"""Compiling a run's kernels in a child process while the run gets ready (bpttbench.training.precompile)."""

from __future__ import annotations

import importlib
import multiprocessing
import threading

import pytest

from bpttbench.config import TrainConfig
from bpttbench.training.precompile import (CALLEES_COMPILED, _Claims, callees_compiled_listener, compiling_in_background,
                                  corpus_needs_building, kernels_never_compiled, warm_up_configs)
from bpttbench.training.runner import execute
from bpttbench.training.loop import warm_up_config


UNIT = dict(scheme="single", k1=1, k2=4, hidden=6, optimizer="adam", lr=0.01, budget_steps=100, log_every=50,
            eval_chars=100)


def unit(**kw):
    return TrainConfig(**{**UNIT, **kw})


def test_one_warm_up_per_distinct_set_of_kernels():
    seeds_and_budgets = [unit(seed=s, budget_steps=b) for s in (0, 1, 2) for b in (100, 200)]
    assert warm_up_configs(seeds_and_budgets) == [warm_up_config(unit())]
    # what changes the compiled types: the scheme, the dtype, fused SGD (its W_ih mirror), a size of 1
    kinds = [unit(), unit(scheme="sliding"), unit(dtype="float64"), unit(optimizer="sgd", clip=0.0), unit(hidden=1)]
    assert len(warm_up_configs(kinds + kinds)) == len(kinds)
    assert warm_up_configs(kinds) == [warm_up_config(cfg) for cfg in kinds]  # in unit order


def in_fresh_process(body: str, tmp_path, **inputs) -> dict:
    """Run `body` in a new interpreter and return the dict it prints as JSON. A child is forked only
    where no other thread runs, and a test process may still hold one some earlier test left winding
    down (a progress bar's refresh thread): what a child does is tested where none can be."""
    import json
    import pickle
    import subprocess
    import sys

    (tmp_path / "inputs.pkl").write_bytes(pickle.dumps({"base": UNIT, **inputs}))
    script = ("import json, pickle, sys\n"
              "from bpttbench.config import TrainConfig\n"
              "from bpttbench.training.precompile import compiling_in_background\n"
              "inputs = pickle.loads(open(sys.argv[1], 'rb').read())\n"
              "def unit(**kw):\n"
              "    return TrainConfig(**{**inputs['base'], **kw})\n"
              f"{body}\n"
              "print(json.dumps(result))\n")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "inputs.pkl")], capture_output=True, text=True,
                          timeout=900, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


CHILD_AND_STOP = """
with compiling_in_background([unit()]) as background:
    forked = background.child is not None and background.child.is_alive()
result = {"forked": forked, "exitcode": background.child.exitcode if forked else None}
try:
    with compiling_in_background([unit()]) as background:
        raise RuntimeError("boom")
except RuntimeError as error:
    result.update(raised=str(error), alive_after=background.child.is_alive())
"""


@pytest.mark.slow
def test_the_child_fills_the_cache_and_a_failing_block_stops_it(tmp_path):
    result = in_fresh_process(CHILD_AND_STOP, tmp_path)
    assert result == {"forked": True, "exitcode": 0, "raised": "boom", "alive_after": False}


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
    train = importlib.import_module("bpttbench.training.loop")
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


def test_the_signal_comes_after_the_callees_compile_and_before_the_caller_is_lowered():
    from numba import njit
    from numba.core import event

    @njit
    def callee(x):
        return x + 1

    @njit
    def caller(x):
        return callee(x) * 2

    order = []

    class Compiles(event.Listener):
        def on_start(self, ev):
            pass

        def on_end(self, ev):
            order.append(ev.data["dispatcher"].py_func.__name__)

    announce = callees_compiled_listener(caller.py_func.__qualname__, order.append)
    with event.install_listener("numba:run_pass", announce), event.install_listener("numba:compile", Compiles()):
        assert caller(1) == 4
    assert order == ["callee", CALLEES_COMPILED, "caller"]


@pytest.mark.slow
def test_each_further_configuration_is_claimed_once_across_processes():
    context = multiprocessing.get_context("fork")
    claims = _Claims(40, context)
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=lambda: sender.send(list(claims)))
    child.start()
    mine = list(claims)
    theirs = receiver.recv()
    child.join()
    assert sorted(mine + theirs) == list(range(1, 40))


UPDATE_SPECIALISATIONS = """
import json, sys
from bpttbench.config import TrainConfig
from bpttbench.kernels.optim import apply_update_with_partial_sum
from bpttbench.training.loop import warm_up, warm_up_update

configs = [TrainConfig(scheme=scheme, dtype=dtype, k1=4 if scheme in ("chunked", "adaptive") else 1, k2=4, hidden=6,
                       lr=0.01, budget_steps=100, log_every=50, eval_chars=100)
           for scheme in ("single", "sliding", "stored", "chunked", "adaptive") for dtype in ("float32", "float64")]
for cfg in configs:
    warm_up_update(cfg)
head_start = set(apply_update_with_partial_sum.signatures)
for cfg in configs:
    warm_up(cfg)
print(json.dumps([len(head_start), len(set(apply_update_with_partial_sum.signatures) - head_start)]))
"""


@pytest.mark.slow
def test_the_update_warm_up_compiles_the_specialisation_the_block_kernels_call(tmp_path):
    """With an empty cache (a fresh process: Numba's signatures are per process, and kernels loaded from
    the cache compile no callee), the head start compiles the optimiser step first; the block kernels,
    compiled after it, must then need no other specialisation of it."""
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "BPTTBENCH_CACHE_DIR": str(tmp_path / "cache"), "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    done = subprocess.run([sys.executable, "-c", UPDATE_SPECIALISATIONS], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    head_start, more = json.loads(done.stdout.strip().splitlines()[-1])
    assert head_start >= 2 and more == 0  # float32 and float64 at least; the blocks added none


BOTH_SIDES = """
from pathlib import Path
from bpttbench.training.runner import execute
units = [unit(), unit(scheme="sliding"), unit(scheme="stored")]
with compiling_in_background(units) as background:
    both = execute(units, inputs["corpus"], Path("both"), kernels_ready=background.wait)
alone = execute(units, inputs["corpus"], Path("alone"))
result = {"forked": background.child is not None, "exitcode": background.child and background.child.exitcode,
          "shared": bool(background.shared), "status": [both.status, alone.status]}
"""


@pytest.mark.slow
def test_compiling_on_both_sides_trains_the_same_numbers(tmp_path, corpus):
    result = in_fresh_process(BOTH_SIDES, tmp_path, corpus=corpus)
    assert result == {"forked": True, "exitcode": 0, "shared": True, "status": ["complete", "complete"]}
    assert (tmp_path / "both" / "loss_vs_iter.csv").read_text() == (tmp_path / "alone" / "loss_vs_iter.csv").read_text()


def test_the_kernels_count_as_never_compiled_only_with_an_empty_cache(tmp_path, monkeypatch):
    from numba.core import config

    monkeypatch.setattr(config, "CACHE_DIR", str(tmp_path))
    assert kernels_never_compiled()
    (tmp_path / "bpttbench" / "kernels").mkdir(parents=True)
    (tmp_path / "bpttbench" / "kernels" / "network.dot-90.py311.nbi").write_bytes(b"")
    assert not kernels_never_compiled()


@pytest.mark.slow
def test_the_child_stops_compiling_once_its_parent_has_gone(tmp_path):
    """Killed outright, the parent cannot stop the child: the child ends at its next compiler pass.
    With the parent alive, the same child compiles."""
    import os
    import subprocess
    import sys
    import time

    script = tmp_path / "orphan.py"
    script.write_text(
        "import os, sys, time\n"
        "from numba import njit\n"
        "from numba.core import event\n"
        "from bpttbench.training.precompile import parent_watch_listener\n"
        "parent = os.getpid()\n"
        "pid = os.fork()\n"
        "if pid:\n"
        "    print(pid, flush=True)\n"
        "    if sys.argv[1] == 'orphan':\n"
        "        os._exit(0)  # gone at once\n"
        "    os.waitpid(pid, 0)\n"
        "    os._exit(0)\n"
        "time.sleep(0.5)  # the orphan outlives its parent, then compiles\n"
        "with event.install_listener('numba:run_pass', parent_watch_listener(parent)):\n"
        "    njit(lambda x: x + 1)(1)\n"
        "open(sys.argv[2], 'w').write('compiled')\n")
    for mode, compiles in (("orphan", False), ("kept", True)):
        marker = tmp_path / mode
        out = subprocess.run([sys.executable, str(script), mode, str(marker)], capture_output=True, text=True,
                             check=True)
        child = int(out.stdout.split()[0])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                os.kill(child, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        assert marker.exists() == compiles, mode

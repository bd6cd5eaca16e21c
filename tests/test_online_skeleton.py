"""The online rules' one block skeleton: every online rule runs rtrl.run_online_block with a state of its
own namedtuple class, the per-stream step is chosen by that class, and the skeleton's compiled code
comes from Numba's cache in a fresh process (what a function passed in would not allow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from bpttbench.config import TrainConfig
from bpttbench.model import init_theta
from bpttbench.scheme_names import UNTRUNCATED_SCHEMES, cells_of
from bpttbench.schemes import REGISTRY, make_scheme
from bpttbench.schemes.online import run_online_block, stream_step

from conftest import synthetic_ids

V, H, B = 6, 4, 2
IDS = synthetic_ids(V, 400, seed=1)


def make(rule, cell="lstm"):
    cfg = TrainConfig(scheme=rule, cell=cell, k1=1, k2=1, hidden=H, batch=B, dtype="float64", seed=1, budget_steps=1)
    return make_scheme(cfg, init_theta(V, H, 1, "float64", cell), V, IDS)


def test_every_online_rule_runs_the_one_skeleton_with_a_state_class_of_its_own():
    classes = set()
    for rule in UNTRUNCATED_SCHEMES:
        assert REGISTRY[rule].block_kernel is run_online_block, rule
        for cell in cells_of(rule):
            state = make(rule, cell).state()
            assert hasattr(type(state), "_fields") and all(isinstance(a, np.ndarray) for a in state), rule
            classes.add((rule, type(state)))
    assert len({cls for _, cls in classes}) == len(UNTRUNCATED_SCHEMES)  # one class per rule, shared by its cells


def test_the_stub_is_not_called_from_python():
    with pytest.raises(NotImplementedError, match="stream_step_of"):
        stream_step(None, 0, None, None, None, None, None, 0, 6, None, None)


PROBE = """
import json, numpy as np
from bpttbench.config import TrainConfig
from bpttbench.model import init_theta
from bpttbench.schemes import REGISTRY, make_scheme
ids = (np.arange(200) % 5).astype(np.int32)
for rule in ("rtrl", "snap1"):
    cfg = TrainConfig(scheme=rule, k1=1, k2=1, hidden=3, batch=1, dtype="float64", budget_steps=1)
    make_scheme(cfg, init_theta(5, 3, 1, "float64"), 5, ids).run(2, np.empty(2))
stats = REGISTRY["rtrl"].block_kernel.stats
print(json.dumps([sum(stats.cache_hits.values()), sum(stats.cache_misses.values())]))
"""


@pytest.mark.slow
def test_a_fresh_process_loads_the_skeleton_from_the_cache(tmp_path):
    """Two rules' skeletons compile in one process and are cache hits in the next: dispatch on the
    state's type is resolved at compile time, so the kernel stays cacheable."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))

    def hits_and_misses():
        done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
        return json.loads(done.stdout.strip().splitlines()[-1])

    assert hits_and_misses() == [0, 2]
    assert hits_and_misses() == [2, 0]

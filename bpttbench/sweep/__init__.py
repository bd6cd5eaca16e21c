"""Sweeps: a grid of runs from a TOML spec, one Dask task per (configuration, seed).

A spec, read with tomllib (keys as in W&B sweeps, `method = "grid"` only):

    method = "grid"
    corpus = "tinyshakespeare"        # a built-in name or a text file (default: stdlib-docs)
    budget = "30s"                    # seconds per run on the clock (parameter `clock`: cpu, the default, or wall), or `steps = 20000` instead (default: 60s)
    seeds = 3                         # a count (seeds 0, 1, 2) or a list [0, 4, 7] (default: 1)
    schemes = ["single", "sliding"]   # or "all" (default: single and sliding)

    [parameters.k2]
    values = [5, 10, 20, 50]
    [parameters.lr]
    value = 2e-3

`parameters` may set any TrainConfig field except scheme, seed and the budget. The grid is the
product of schemes, parameter values and seeds; as in `bpttbench run`, chunked takes k1 = k2 unless
k1 is a parameter. Combinations TrainConfig refuses (k1 > k2, say) are left out with a warning.
the untruncated schemes do not use k2: their k2 is set to 1 (scheme_names.UNTRUNCATED_K2), so a grid over k2 runs each
of their configurations once, not once per k2. Every point is checked against the schemes' size
limits (rtrl's memory) before anything runs, and a grid of more than defaults.MAX_GRID_POINTS
runs is refused from the lengths of its axes, before any point is built.

Layout, so that `bpttbench plot` and `report` read a sweep like any folder of runs:

    <sweep dir>/sweep.json        every grid point: id, configuration, state; rewritten atomically
    <sweep dir>/<point id>/       one run directory per point, written by runner.execute

A point's id is a hash of its configuration and the corpus checksum, so a task is idempotent: a
point whose run directory says `complete` is never run again nor rewritten, and one left behind
half-written (a killed worker, a killed sweep) is redone from scratch.

Execution is dask.distributed's: an embedded LocalCluster (one single-threaded worker process per
core) by default, or any scheduler by address. Numba's on-disk cache is filled before any task is
submitted, so workers load kernels instead of all compiling at once. Workers report progress with
`log_event`; results come back through `as_completed`. The sweep directory must be on a filesystem
every worker sees at the same path.

The package: spec.py reads and checks a spec; grid.py turns it into points and a plan; task.py is
what runs in a worker process; driver.py runs a plan on a cluster and keeps sweep.json.

References:
  W&B sweep configuration: https://docs.wandb.ai/guides/sweeps/define-sweep-configuration
  Dask distributed: https://distributed.dask.org (LocalCluster, as_completed, worker plugins, events)
"""

from bpttbench.sweep.driver import (POINT_STATES, SWEEP_MANIFEST, SweepDriver, SweepObserver, SweepResult,
                                    check_cluster, check_sweep_dir, count_complete, default_workers, disk_states, run_sweep)
from bpttbench.sweep.grid import GridPoint, SweepPlan, check_grid_size, configurations, expand_grid, plan_sweep, point_id
from bpttbench.sweep.spec import SpecError, SweepSpec, load_spec, parse_override, parse_spec
from bpttbench.sweep.task import SweepError, run_point

__all__ = [
    "POINT_STATES", "SWEEP_MANIFEST", "GridPoint", "SpecError", "SweepDriver", "SweepError", "SweepObserver",
    "SweepPlan", "SweepResult", "SweepSpec", "check_cluster", "check_grid_size", "check_sweep_dir", "configurations", "count_complete",
    "default_workers", "disk_states", "expand_grid", "load_spec", "parse_override", "parse_spec", "plan_sweep",
    "point_id", "run_point", "run_sweep",
]

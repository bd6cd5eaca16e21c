"""Sweeps: spec parsing and errors, grids, and Dask runs that survive killed workers, a killed driver and Ctrl-C.

The cluster tests are marked slow (a few seconds each: worker processes start, then tiny runs of
H = 8 on a synthetic text); they still run in CI.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import cloudpickle
import numpy as np
import pandas as pd
import pytest

from bpttbench.data.corpus import load_corpus
from bpttbench.defaults import MAX_GRID_POINTS
from bpttbench.training.runner import execute, expand_schemes
from bpttbench.sweep import SpecError, check_grid_size, driver, expand_grid, grid, load_spec, parse_spec, plan_sweep, run_sweep

from conftest import invoke

# The fault-injecting hook below runs inside Dask workers, which cannot import this test module.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

FAST = """
[parameters.hidden]
value = 8
[parameters.eval_chars]
value = 200
[parameters.log_every]
value = 500
[parameters.eval_every]
value = 1000
"""


def write_spec(tmp_path, text_file, body: str, name: str = "grid.toml") -> Path:
    path = tmp_path / name
    path.write_text(f'method = "grid"\ncorpus = "{text_file}"\n{body}\n{FAST}', encoding="utf-8")
    return path


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def same_curves(a: Path, b: Path) -> bool:
    """Same numbers apart from times. Validation losses are bit-equal (same weights); the mean online loss
    may differ in its last bit, since it is summed per block of steps and block sizes follow the clock."""
    x, y = pd.read_csv(a / "curves.csv"), pd.read_csv(b / "curves.csv")
    keys = ["step", "updates", "metric"]
    if x[keys].values.tolist() != y[keys].values.tolist():
        return False
    val = (x["metric"] == "val_bpc").to_numpy()
    return x["value"][val].tolist() == y["value"][val].tolist() and np.allclose(x["value"], y["value"], rtol=1e-12, atol=0)


# ----------------------------------------------------------------------------- specs and grids


def test_grid_ids_and_overrides(tmp_path, text_file):
    spec = parse_spec(f'corpus = "{text_file}"\nsteps = 100\nseeds = 2\nschemes = "all"\n'
                      "[parameters.k2]\nvalues = [4, 8]\n[parameters.lr]\nvalue = 1\n", "g.toml")
    points, refused = expand_grid(spec, "sha")
    assert len(points) == 5 * 2 * 2 and not refused  # chunked, single, stored, sliding, adaptive
    assert len({p.id for p in points}) == len(points)
    chunked = [p.cfg for p in points if p.cfg.scheme == "chunked"]
    assert all(c.k1 == c.k2 for c in chunked) and {c.lr for c in chunked} == {1.0}
    again, _ = expand_grid(spec, "sha")
    assert [p.id for p in again] == [p.id for p in points]  # ids are a function of the configuration
    assert {p.id for p in expand_grid(spec, "other corpus")[0]}.isdisjoint(p.id for p in points)

    spec = parse_spec(spec.text, "g.toml", overrides=["k2=5,10,20", "schemes=single", "seeds=0,7", "budget=2s"])
    points, _ = expand_grid(spec, "sha")
    assert [(p.cfg.k2, p.cfg.seed) for p in points] == [(5, 0), (5, 7), (10, 0), (10, 7), (20, 0), (20, 7)]
    assert points[0].cfg.budget_seconds == 2 and points[0].cfg.budget_steps is None

    # Combinations TrainConfig refuses are left out and said so; a grid of nothing but those is an error.
    spec = parse_spec("steps = 10\nschemes = \"single\"\n[parameters.k1]\nvalues = [1, 8]\n[parameters.k2]\nvalues = [4, 8]\n", "g.toml")
    points, refused = expand_grid(spec, "sha")
    assert [(p.cfg.k1, p.cfg.k2) for p in points] == [(1, 4), (1, 8), (8, 8)] and "k1=8 is larger than k2=4" in refused[0]


def test_online_schemes_run_once_however_many_k2(tmp_path, text_file):
    # rtrl and uoro do not use k2: points that differ only in k2 are one point, with k2 set to 1.
    spec = parse_spec('steps = 100\nseeds = 2\nschemes = ["single", "rtrl", "uoro"]\n[parameters.k2]\nvalues = [5, 10, 20]\n'
                      "[parameters.k1]\nvalues = [1, 2]\n", "g.toml")
    points, refused = expand_grid(spec, "sha")
    by_scheme = {s: sorted((p.cfg.k1, p.cfg.k2, p.cfg.seed) for p in points if p.cfg.scheme == s) for s in ("single", "rtrl", "uoro")}
    assert len(by_scheme["single"]) == 3 * 2 * 2 and not refused
    for online in ("rtrl", "uoro"):
        assert by_scheme[online] == [(1, 1, 0), (1, 1, 1), (2, 1, 0), (2, 1, 1)]
    assert len({p.id for p in points}) == len(points)


def test_a_grid_rtrl_cannot_fit_is_refused_before_it_runs(tmp_path, text_file, capsys):
    spec = write_spec(tmp_path, text_file, 'steps = 100\nschemes = ["single", "rtrl"]').replace(tmp_path / "big.toml")
    spec.write_text(spec.read_text(encoding="utf-8").replace("value = 8", "value = 1024", 1), encoding="utf-8")
    with pytest.raises(SpecError, match=r"big.toml: rtrl at hidden=1024.*GiB.*or uoro"):
        plan_sweep(load_spec(spec), load_corpus(str(text_file)))
    code, out, err = invoke(["sweep", spec, "--dry-run", "--out", tmp_path / "sweep"], capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "rtrl at hidden=1024" in err
    assert not (tmp_path / "sweep").exists()


@pytest.mark.parametrize("body,expected", [
    ('steps = 100\nbudgte = "5s"\n', ["budgte", "line 2", "unknown key"]),
    ('steps = 100\n\n[parameters.k3]\nvalues = [1]\n', ["parameters.k3", "line 3", "unknown parameter"]),
    ('steps = 100\n[parameters.k2]\nvalues = [5, "ten"]\n', ["parameters.k2.values", "line 3", "whole numbers"]),
    ('steps = 100\n[parameters.k2]\nvalues = []\n', ["parameters.k2.values", "line 3", "empty"]),
    ('steps = 100\n[parameters.lr]\nvalue = 1e-3\nvalues = [1e-2]\n', ["parameters.lr", "line 2", "exactly one"]),
    ('steps = 100\nseeds = -1\n', ["seeds", "line 2"]),
    ('steps = 100\nschemes = ["single", "slidin"]\n', ["schemes", "line 2", "slidin"]),
    ('steps = 100\n[parameters.seed]\nvalues = [1, 2]\n', ["parameters.seed", "line 2", "seeds"]),
    ('steps = 100\nbudget = "5s"\n', ["steps", "not both"]),
    ('steps = 100\n[parameters.k2\nvalues = [1]\n', ["line 2", "not valid TOML"]),
    ('steps = = 100\n', ["line 1", "not valid TOML"]),
])
def test_bad_spec_is_one_line_naming_key_and_line(tmp_path, body, expected, capsys):
    spec = tmp_path / "bad.toml"
    spec.write_text(body, encoding="utf-8")
    code, out, err = invoke(["sweep", spec, "--dry-run"], capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err
    for word in expected:
        assert word in err, (word, err)


def test_bad_override_names_the_set(tmp_path, text_file):
    spec = write_spec(tmp_path, text_file, "steps = 100")
    with pytest.raises(SpecError, match=r"--set k2: parameters.k2.values: must be whole numbers"):
        load_spec(spec, ["k2=5,x"])
    with pytest.raises(SpecError, match=r"--set bogus: unknown key"):
        load_spec(spec, ["bogus=1"])


def test_dry_run_lists_runs_and_budget_without_running(tmp_path, text_file, capsys):
    spec = write_spec(tmp_path, text_file, 'budget = "5s"\nseeds = 3\n[parameters.k2]\nvalues = [5, 10, 20, 50]')
    out = tmp_path / "sweep"
    code, stdout, err = invoke(["sweep", spec, "--dry-run", "--out", out, "--workers", "2"], capsys)
    assert code == 0, err
    assert "24 runs × 5s = 2m00s of training" in stdout and "≈ 1m00s on 2 local workers" in stdout
    assert stdout.count("pending") == 24 and "single-k1=1-k2=50-seed2-" in stdout
    assert not out.exists()


def test_spec_schemes_follow_the_runners_rule():
    # spec.py expands "all" itself (importing runner would import Numba); the two must agree.
    for names in (["all"], ["rtrl", "all", "single"], ["uoro", "sliding", "uoro"]):
        spec = parse_spec(f"steps = 1\nschemes = {json.dumps(names)}\n", "g.toml")
        assert spec.schemes == tuple(expand_schemes(names))


def test_oversized_grid_is_refused_from_its_axes_before_anything_is_built(tmp_path, text_file, capsys, monkeypatch):
    # Issue 11: 1,000,000 seeds x 10 k2 x 2 schemes once ran for minutes and took 1.5 GB before anything happened.
    assert MAX_GRID_POINTS == 100_000
    spec = write_spec(tmp_path, text_file, 'budget = "5s"\nseeds = 1000000\n[parameters.k2]\nvalues = [5, 10, 15, 20, 25, 30, 35, 40, 45, 50]')

    def no_points(*args):
        raise AssertionError("a point was built for a grid that is refused")

    monkeypatch.setattr(grid, "_iter_points", no_points)
    invoke(["sweep", "--help"], capsys)  # imports the CLI before memory is measured
    tracemalloc.start()
    try:
        code, out, err = invoke(["sweep", spec, "--dry-run", "--out", tmp_path / "sweep"], capsys)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert "the grid has 20,000,000 runs × 5s" in err and "(20 configurations × 1,000,000 seeds)" in err
    assert "more than the limit of 100,000 runs in one sweep" in err
    assert peak < 5_000_000, f"{peak:,} bytes at peak: the seeds or the grid were built"  # a million seeds alone: 36 MB
    assert not (tmp_path / "sweep").exists()


def test_grid_size_counts_refused_combinations_out_or_says_at_most(tmp_path, text_file):
    # k1 = 8 > k2 = 4 is refused: 3 configurations x 30,000 seeds = 90,000 runs, within the limit,
    # though the axes' product is 120,000. The plan is counted without building its points.
    spec = parse_spec(f'corpus = "{text_file}"\nsteps = 10\nschemes = "single"\nseeds = 30000\n'
                      "[parameters.k1]\nvalues = [1, 8]\n[parameters.k2]\nvalues = [4, 8]\n" + FAST, "g.toml")
    check_grid_size(spec)
    plan = plan_sweep(spec, load_corpus(str(text_file)))
    assert plan.count == 90_000 and "points" not in vars(plan)
    assert plan.total_budget() == "90,000 runs × 10 steps = 900,000 steps"

    # A list of seeds counts as its distinct seeds.
    seeds = json.dumps(list(range(150_000)) + [0, 1])
    with pytest.raises(SpecError, match=r"g.toml: the grid has 150,000 runs .*\(1 configuration × 150,000 seeds\)"):
        check_grid_size(parse_spec(f'steps = 10\nschemes = "single"\nseeds = {seeds}\n', "g.toml"))

    # Too many combinations to check one by one: the limit holds against their product, and says so.
    values = json.dumps(list(range(2, 12_002)))
    spec = parse_spec(f'steps = 10\nschemes = "single"\nseeds = 10\n[parameters.eval_chars]\nvalues = {values}\n', "g.toml")
    with pytest.raises(SpecError, match=r"has at most 120,000 runs .*\(at most 12,000 configurations × 10 seeds\)"):
        check_grid_size(spec)


def test_dry_run_of_a_large_grid_streams_its_points(tmp_path, text_file, capsys):
    spec = write_spec(tmp_path, text_file, "steps = 100\nseeds = 300")
    code, out, err = invoke(["sweep", spec, "--dry-run", "--out", tmp_path / "sweep"], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("600 runs × 100 steps = 60,000 steps; 600 to run")
    assert lines[1] == "id\tstate" and len(lines) == 2 + 600
    assert lines[2].startswith("single-k1=1-k2=20-seed0-") and lines[-1].startswith("sliding-k1=1-k2=20-seed299-")
    assert all(line.endswith("\tpending") for line in lines[2:])


@pytest.mark.parametrize("raised,status", [(RuntimeError("no compiler"), "failed"), (KeyboardInterrupt(), "interrupted")])
def test_sweep_json_says_how_the_driver_stopped(tmp_path, text_file, monkeypatch, raised, status):
    # Before any cluster starts: the kernels' warm-up fails, or Ctrl-C arrives during it.
    def warm_up(configs):
        raise raised

    monkeypatch.setattr(driver, "warm_up_kernels", warm_up)
    plan = plan_sweep(load_spec(write_spec(tmp_path, text_file, "steps = 100\nseeds = 2")), load_corpus(str(text_file)))
    with pytest.raises(type(raised)):
        run_sweep(plan, tmp_path / "sweep", workers=1)
    sweep = read_json(tmp_path / "sweep" / "sweep.json")
    assert sweep["status"] == status and sweep["finished_at"] and sweep["started_at"]
    assert sweep.get("error") == ("RuntimeError: no compiler" if status == "failed" else None)
    assert [p["state"] for p in sweep["points"]] == ["pending"] * 4 and sweep["counts"]["pending"] == 4


# ----------------------------------------------------------------------------- on a cluster

STEPS_SPEC = 'steps = 2000\nseeds = 2\nschemes = ["single", "sliding"]\n[parameters.k2]\nvalues = [4, 8]'


@pytest.mark.slow
def test_sweep_on_two_workers_equals_runs_one_by_one(tmp_path, text_file, capsys):
    spec = load_spec(write_spec(tmp_path, text_file, STEPS_SPEC))
    plan = plan_sweep(spec, load_corpus(str(text_file)))
    result = run_sweep(plan, tmp_path / "sweep", workers=2)
    assert result.status == "complete" and result.counts()["complete"] == 8
    sweep = read_json(tmp_path / "sweep" / "sweep.json")
    assert sweep["status"] == "complete" and [p["state"] for p in sweep["points"]] == ["complete"] * 8
    corpus = load_corpus(str(text_file))
    for point in plan.points:
        run_dir = tmp_path / "sweep" / point.id
        manifest = read_json(run_dir / "manifest.json")
        assert manifest["status"] == "complete" and manifest["concurrent_runs"] == 2
        assert manifest["configuration"] == [point.cfg.to_dict()]
        alone = execute([point.cfg], corpus, tmp_path / "alone" / point.id)
        assert alone.status == "complete"
        assert same_curves(run_dir, tmp_path / "alone" / point.id), point.id
    # A sweep directory is a folder of runs: plot reads it unchanged.
    code, out, err = invoke(["plot", tmp_path / "sweep", "--out", tmp_path / "figs", "--format", "png"], capsys)
    assert code == 0, err
    assert (tmp_path / "figs" / "loss_vs_iter.png").exists()


def fault_hook(marker_dir: str, kill_id: str, fail_id: str, event: str, point_id: str, record) -> None:
    """In the worker: SIGKILL the worker process the first time kill_id logs a record; always fail fail_id."""
    if point_id == fail_id and event == "started":
        raise RuntimeError("injected failure")
    marker = Path(marker_dir) / f"killed-{point_id}"
    if point_id == kill_id and event == "record" and not marker.exists():
        marker.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.slow
def test_killed_worker_and_failing_task(tmp_path, text_file):
    spec = load_spec(write_spec(tmp_path, text_file, STEPS_SPEC))
    plan = plan_sweep(spec, load_corpus(str(text_file)))
    kill, fail = plan.points[1].id, plan.points[2].id
    hook = functools.partial(fault_hook, str(tmp_path), kill, fail)
    result = run_sweep(plan, tmp_path / "sweep", workers=2, hook=hook)

    assert (tmp_path / f"killed-{kill}").exists()  # the worker really died mid-run
    states = {p["id"]: p for p in result.points}
    assert states[fail]["state"] == "failed" and "injected failure" in states[fail]["error"]
    assert result.status == "failed" and result.counts() == {"pending": 0, "running": 0, "complete": 7, "failed": 1,
                                                              "interrupted": 0}
    assert read_json(tmp_path / "sweep" / "sweep.json")["points"] == result.points
    assert read_json(tmp_path / "sweep" / fail / "manifest.json")["status"] == "failed"
    # The killed run was redone from scratch: one complete run, each log point once.
    killed = tmp_path / "sweep" / kill
    assert read_json(killed / "manifest.json")["status"] == "complete"
    curves = pd.read_csv(killed / "curves.csv")
    assert not curves.duplicated(["step", "metric"]).any() and curves["step"].max() == 2000

    # Resume: only the failed point runs; nothing complete is rewritten.
    before = {p.id: (tmp_path / "sweep" / p.id / "manifest.json").read_bytes() for p in plan.points if p.id != fail}
    again = run_sweep(plan, tmp_path / "sweep", workers=2)
    assert again.status == "complete"
    assert {p["id"] for p in again.points if not p["reused"]} == {fail}
    assert all((tmp_path / "sweep" / i / "manifest.json").read_bytes() == b for i, b in before.items())
    assert sorted(d.name for d in (tmp_path / "sweep").iterdir() if d.is_dir()) == sorted(p.id for p in plan.points)


# `bpttbench ARGS` in a Python whose SIGINT raises KeyboardInterrupt even when pytest was started with
# SIGINT ignored, as a non-interactive shell's background jobs are (the child inherits SIG_IGN, and
# Python then installs no handler): what a terminal's Ctrl-C does. As CHILD in test_faults.py.
CHILD = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
         "from bpttbench.cli import main; main(sys.argv[1:])")


def start_sweep(args, tmp_path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CHILD, "sweep", *map(str, args)], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_for(predicate, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def sweep_states(sweep_dir: Path) -> dict:
    try:
        return {p["id"]: p["state"] for p in read_json(sweep_dir / "sweep.json")["points"]}
    except (OSError, ValueError, KeyError):
        return {}


def stop_group(proc: subprocess.Popen) -> None:
    """Kill what is left of a sweep process we started (its own session), and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


@pytest.mark.slow
def test_ctrl_c_then_sigkill_then_resume(tmp_path, text_file, capsys):
    spec = write_spec(tmp_path, text_file, 'budget = 0.5\nseeds = 3\nschemes = ["single", "sliding"]\n[parameters.k2]\nvalue = 4')
    sweep_dir = tmp_path / "sweep"
    args = [spec, "--out", sweep_dir, "--workers", "2", "-q"]

    # Ctrl-C: the runs in flight close as interrupted, finished ones are kept, the sweep says interrupted.
    proc = start_sweep(args, tmp_path)
    try:
        wait_for(lambda: "running" in sweep_states(sweep_dir).values(), what="a run in flight")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130, proc.stderr.read()
    finally:
        stop_group(proc)
    sweep = read_json(sweep_dir / "sweep.json")
    assert sweep["status"] == "interrupted"
    interrupted = [p["id"] for p in sweep["points"] if p["state"] == "interrupted"]
    assert interrupted and all(read_json(sweep_dir / i / "manifest.json")["status"] == "interrupted" for i in interrupted)

    # SIGKILL of the whole driver once something completed: nothing to clean up, nothing lost.
    proc = start_sweep(args, tmp_path)
    try:
        wait_for(lambda: {"complete", "running"} <= set(sweep_states(sweep_dir).values()),
                 what="a complete run and one in flight")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        stop_group(proc)
    complete = {i for i, s in sweep_states(sweep_dir).items() if s == "complete"}
    assert 0 < len(complete) < 6
    before = {i: (sweep_dir / i / "manifest.json").read_bytes() for i in complete}

    code, out, err = invoke(["sweep", *args[:-1], "--json"], capsys)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["status"] == "complete" and summary["counts"]["complete"] == 6
    assert all((sweep_dir / i / "manifest.json").read_bytes() == b for i, b in before.items())
    runs = [d for d in sweep_dir.iterdir() if d.is_dir()]
    assert len(runs) == 6 and all(read_json(d / "manifest.json")["status"] == "complete" for d in runs)
    for d in runs:
        curves = pd.read_csv(d / "curves.csv")
        assert not curves.duplicated(["step", "metric"]).any()


@pytest.mark.slow
def test_real_scheduler_and_workers_by_address(tmp_path, text_file, capsys):
    scheduler_file = tmp_path / "scheduler.json"
    env = {**os.environ, "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    dask = [sys.executable, "-m", "dask"]
    procs = [subprocess.Popen([*dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                               "--scheduler-file", str(scheduler_file)], env=env, cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)]
    try:
        wait_for(lambda: scheduler_file.exists() and scheduler_file.stat().st_size > 0, what="the scheduler")
        address = read_json(scheduler_file)["address"]
        for _ in range(2):
            procs.append(subprocess.Popen([*dask, "worker", address, "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1"],
                                          env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                          start_new_session=True))
        from distributed import Client

        with Client(address, timeout="30s", set_as_default=False) as client:
            client.wait_for_workers(2, timeout=60)
        spec = write_spec(tmp_path, text_file, 'steps = 2000\nseeds = 2\nschemes = "single"\n[parameters.k2]\nvalues = [4, 8]')
        code, out, err = invoke(["sweep", spec, "--scheduler", address, "--out", tmp_path / "sweep", "--json"], capsys)
        assert code == 0, err
        summary = json.loads(out)
        assert summary["status"] == "complete" and summary["counts"]["complete"] == 4
        for d in (tmp_path / "sweep").iterdir():
            if d.is_dir():
                manifest = read_json(d / "manifest.json")
                assert manifest["status"] == "complete" and manifest["concurrent_runs"] == 2
                assert manifest["sweep"]["scheduler"] == address
                assert manifest["sweep"]["thread_env"]["NUMBA_NUM_THREADS"] == "1"
    finally:
        for proc in reversed(procs):
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for proc in reversed(procs):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def test_local_workers_drop_only_the_closing_clusters_heartbeat_failures():
    import logging
    import threading

    from bpttbench.sweep.task import HEARTBEAT_FAILURE, drop_heartbeat_failures, local_worker_plugin

    def record(message):
        return logging.LogRecord("distributed.worker", logging.ERROR, __file__, 1, message, None, None)

    assert not drop_heartbeat_failures(record(HEARTBEAT_FAILURE + "."))
    assert drop_heartbeat_failures(record("Compute Failed"))
    logger = logging.getLogger("distributed.worker")
    try:
        # off the main thread, so that this process keeps its Ctrl-C
        setup = threading.Thread(target=local_worker_plugin().setup, kwargs={"worker": None})
        setup.start()
        setup.join()
        assert drop_heartbeat_failures in logger.filters
    finally:
        logger.removeFilter(drop_heartbeat_failures)

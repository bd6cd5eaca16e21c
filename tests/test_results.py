"""Run directories: curves.csv rows and flushing, the manifest's atomic life cycle, refusals,
disk-full handling, the wide median CSVs against hand-computed values, and loading back."""

from __future__ import annotations

import csv
import errno
import json
import math
import os
import shutil
from dataclasses import fields
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bpttbench import files
from bpttbench.config import TrainConfig
from bpttbench.errors import ResultsError
from bpttbench.results.records import Record, RunOutcome
from bpttbench.results import (
    CURVE_COLUMNS,
    GROUP_KEY,
    RunWriter,
    config_labels,
    group_curves,
    group_key,
    read_runs,
    median_band,
    resample,
    seed_curves,
    smooth_curve,
    split_complete,
)

# Hand-made curves: (step, wall_s, train_bpc) per seed. Median by hand in test_wide_medians.
SINGLE = {0: [(10, 1.0, 4.0), (20, 2.0, 3.0), (30, 3.0, 2.0)],
          1: [(10, 1.5, 5.0), (20, 2.5, 4.0), (30, 3.5, 3.0)]}
SLIDING = {0: [(10, 2.0, 6.0), (20, 4.0, 5.0)],
           1: [(10, 2.0, 4.0), (20, 4.0, 3.0)]}


def cfg(scheme="single", seed=0, **kw) -> TrainConfig:
    return TrainConfig(scheme=scheme, seed=seed, budget_steps=1000, clock="wall", **kw)


def write_run(out: Path, curves=None, *, status="complete", run_id="r1", corpus="tiny", val_every=2, configs=None) -> Path:
    """A run of 2 schemes x 2 seeds from hand-made curves; val_bpc on every val_every-th record."""
    curves = curves or {"single": SINGLE, "sliding": SLIDING}
    configs = configs or {}
    w = RunWriter(out, force=False, manifest={"run_id": run_id, "corpus": {"name": corpus}, "seeds": [0, 1]})
    for scheme, seeds in curves.items():
        for seed, points in seeds.items():
            key = w.start_unit(configs.get(scheme, cfg(scheme, seed)).replace(seed=seed), corpus)
            for i, (step, wall, bpc) in enumerate(points, 1):
                w.add_record(key, Record(step=step, updates=step, wall_s=wall, train_bpc=bpc,
                                         val_bpc=bpc + 0.5 if i % val_every == 0 else None))
            w.finish_unit(key, RunOutcome(status="complete", steps=points[-1][0], updates=points[-1][0],
                                          wall_s=points[-1][1], final_train_bpc=points[-1][2]))
    if status is not None:
        w.close(status)
    return out


def manifest(run: Path) -> dict:
    def no_constants(name):
        raise AssertionError(f"manifest holds {name}, which strict JSON does not allow")

    return json.loads((run / "manifest.json").read_text(), parse_constant=no_constants)


def one_line(exc_info) -> str:
    text = str(exc_info.value)
    assert "\n" not in text and text
    return text


# ----------------------------------------------------------------------------- writing


def test_curves_csv_columns_and_rows(tmp_path):
    run = write_run(tmp_path / "run")
    with open(run / "curves.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == CURVE_COLUMNS
    assert sum(r == list(CURVE_COLUMNS) for r in rows) == 1  # header written once
    df = pd.read_csv(run / "curves.csv")
    n_records = sum(len(p) for s in (SINGLE, SLIDING) for p in s.values())
    n_val = sum(len(p) // 2 for s in (SINGLE, SLIDING) for p in s.values())
    assert (df.metric == "train_bpc").sum() == n_records
    assert (df.metric == "val_bpc").sum() == n_val
    first = df.iloc[0]
    assert (first.run_id, first.scheme, first.k1, first.k2, first.inject, first.hidden, first.batch, first["dtype"]) == (
        "r1", "single", 1, 20, "new", 128, 1, "float32")
    assert (first.corpus, first.optimizer, first.lr, first["clip"], first.budget_steps, first.eval_chars) == (
        "tiny", "adam", 0.002, 1.0, 1000, 0)  # eval_chars 0: the whole split
    assert math.isnan(first.budget_seconds) and math.isnan(first.corpus_sha256)  # None: an empty cell
    # values round-trip exactly
    s1 = df[(df.scheme == "single") & (df.seed == 1) & (df.metric == "train_bpc")]
    assert list(zip(s1.step, s1.wall_s, s1.value)) == SINGLE[1]
    val = df[(df.scheme == "single") & (df.seed == 1) & (df.metric == "val_bpc")]
    assert list(val.value) == [4.5] and list(val.step) == [20]


def test_records_are_on_disk_before_close(tmp_path):
    w = RunWriter(tmp_path / "run", force=False, manifest={"run_id": "r"})
    key = w.start_unit(cfg(), "tiny")
    w.add_record(key, Record(step=10, updates=10, wall_s=0.5, train_bpc=3.25))
    df = pd.read_csv(tmp_path / "run" / "curves.csv")
    assert len(df) == 1 and df.value.iloc[0] == 3.25
    w.add_record(key, Record(step=20, updates=20, wall_s=1.0, train_bpc=3.0, val_bpc=3.5))
    assert len(pd.read_csv(tmp_path / "run" / "curves.csv")) == 3
    w.close("complete")


def test_wide_medians_match_hand_computed(tmp_path):
    run = write_run(tmp_path / "run")
    it = pd.read_csv(run / "loss_vs_iter.csv")
    # One configuration per scheme: each column is named by its scheme alone.
    assert list(it.columns) == ["step", "sliding", "single"]
    assert list(it.step) == [10, 20, 30]
    assert list(it["single"]) == [4.5, 3.5, 2.5]
    assert list(it["sliding"][:2]) == [5.0, 4.0] and math.isnan(it["sliding"][2])

    tm = pd.read_csv(run / "loss_vs_time.csv")
    assert list(tm.train_s) == [1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0]  # the runs' clock: wall
    # single: seed 0 has x in [1, 3], seed 1 in [1.5, 3.5]; no extrapolation, median of both.
    # At 2.0: seed 0 = 3.0, seed 1 = interp(5, 4) halfway = 4.5 -> 3.75.
    expect_single = [np.nan, (3.5 + 5.0) / 2, (3.0 + 4.5) / 2, (2.5 + 4.0) / 2, (2.0 + 3.5) / 2, np.nan, np.nan]
    expect_sliding = [np.nan, np.nan, 5.0, (5.75 + 3.75) / 2, 4.5, (5.25 + 3.25) / 2, 4.0]
    np.testing.assert_allclose(tm["single"], expect_single, equal_nan=True)
    np.testing.assert_allclose(tm["sliding"], expect_sliding, equal_nan=True)


def test_manifest_life_cycle(tmp_path):
    out = tmp_path / "run"
    w = RunWriter(out, force=False, manifest={"run_id": "abc", "corpus": {"name": "tiny"}, "machine": {"cpu": "x"}})
    m = manifest(out)
    assert m["status"] == "running" and m["run_id"] == "abc" and m["machine"] == {"cpu": "x"}
    assert m["started_at"] and m["updated_at"] and m["finished_at"] is None and m["bpttbench_version"]
    assert m["units"] == []
    key = w.start_unit(cfg("stored", 3, lr=0.01, optimizer="sgd"), "tiny")
    unit = manifest(out)["units"][0]
    assert unit["key"] == key and unit["status"] == "running" and unit["corpus"] == "tiny"
    assert unit["config"]["lr"] == 0.01 and unit["config"]["optimizer"] == "sgd" and unit["config"]["seed"] == 3
    w.add_record(key, Record(step=10, updates=10, wall_s=1.0, train_bpc=3.0))
    w.finish_unit(key, RunOutcome(status="complete", steps=10, updates=10, wall_s=1.0, eval_s=0.25, compile_s=2.5,
                                  final_train_bpc=3.0, final_val_bpc=3.1))
    m = manifest(out)
    assert m["status"] == "running"
    unit = m["units"][0]
    assert (unit["status"], unit["steps"], unit["compile_s"], unit["eval_s"], unit["final_val_bpc"]) == ("complete", 10, 2.5, 0.25, 3.1)
    w.close("complete")
    m = manifest(out)
    assert m["status"] == "complete" and m["finished_at"]
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_crash_leaves_a_running_manifest_and_the_curve_so_far(tmp_path):
    out = tmp_path / "run"
    w = RunWriter(out, force=False, manifest={"run_id": "r"})
    key = w.start_unit(cfg(), "tiny")
    for i in range(1, 4):
        w.add_record(key, Record(step=i * 10, updates=i * 10, wall_s=float(i), train_bpc=3.0))
    del w  # the process dies here: no finish_unit, no close
    assert manifest(out)["status"] == "running"
    [run] = read_runs(out)
    assert not run.complete and len(run.curves) == 3
    complete, skipped = split_complete([run])
    assert complete == [] and "running" in skipped[0][1]


def test_context_manager_marks_failures(tmp_path):
    with pytest.raises(ValueError):
        with RunWriter(tmp_path / "a", force=False, manifest={}) as w:
            key = w.start_unit(cfg(), "tiny")
            w.add_record(key, Record(step=10, updates=10, wall_s=1.0, train_bpc=3.0))
            raise ValueError("numerics exploded")
    m = manifest(tmp_path / "a")
    assert m["status"] == "failed" and m["error"] == "numerics exploded"
    assert m["units"][0]["status"] == "failed"

    with pytest.raises(KeyboardInterrupt):
        with RunWriter(tmp_path / "b", force=False, manifest={}) as w:
            w.start_unit(cfg(), "tiny")
            raise KeyboardInterrupt
    m = manifest(tmp_path / "b")
    assert m["status"] == "interrupted" and m["units"][0]["status"] == "interrupted"

    with RunWriter(tmp_path / "c", force=False, manifest={}) as w:
        pass
    assert manifest(tmp_path / "c")["status"] == "complete"


def test_failed_unit_records_its_error(tmp_path):
    w = RunWriter(tmp_path / "run", force=False, manifest={})
    key = w.start_unit(cfg(), "tiny")
    w.finish_unit(key, RunOutcome(status="failed"), error="out of memory")
    w.close("complete")
    unit = manifest(tmp_path / "run")["units"][0]
    assert unit["status"] == "failed" and unit["error"] == "out of memory"


def test_refuses_non_empty_dir_unless_forced(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "old.txt").write_text("x")
    (out / "sub").mkdir()
    with pytest.raises(ResultsError) as e:
        RunWriter(out, force=False, manifest={})
    assert "--force" in one_line(e)
    assert (out / "old.txt").exists()
    RunWriter(out, force=True, manifest={}).close("complete")
    assert not (out / "old.txt").exists() and not (out / "sub").exists()
    assert manifest(out)["status"] == "complete"


def test_empty_existing_dir_is_fine(tmp_path):
    (tmp_path / "run").mkdir()
    RunWriter(tmp_path / "run", force=False, manifest={}).close("complete")
    m = manifest(tmp_path / "run")
    assert m["status"] == "complete" and m["units"] == [] and m["finished_at"]
    assert (tmp_path / "run" / "curves.csv").read_text() == ",".join(CURVE_COLUMNS) + "\n"
    assert (tmp_path / "run" / "loss_vs_iter.csv").read_text().strip() == "step"
    assert (tmp_path / "run" / "loss_vs_time.csv").read_text().strip() == "train_s"


def test_force_will_not_clear_the_current_directory(tmp_path, monkeypatch):
    (tmp_path / "precious").write_text("x")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ResultsError) as e:
        RunWriter(tmp_path, force=True, manifest={})
    assert "current directory" in one_line(e)
    assert (tmp_path / "precious").exists()


def test_refuses_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ResultsError) as e:
        RunWriter(tmp_path / "f", force=True, manifest={})
    assert "is a file" in one_line(e)
    with pytest.raises(ResultsError) as e:
        RunWriter(tmp_path / "f" / "run", force=False, manifest={})
    assert "could not create" in one_line(e)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through permission bits")
def test_refuses_unwritable_dir(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(ResultsError) as e:
            RunWriter(locked / "run", force=False, manifest={})
        assert "Permission denied" in one_line(e)
        with pytest.raises(ResultsError):
            RunWriter(locked, force=False, manifest={})
    finally:
        locked.chmod(0o700)


def test_unwritable_dir_injected(tmp_path, monkeypatch):
    """The same refusal when the OS says no, whoever we run as (root ignores chmod)."""

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(files.tempfile, "mkstemp", denied)
    with pytest.raises(ResultsError) as e:
        RunWriter(tmp_path / "run", force=False, manifest={})
    text = one_line(e)
    assert "manifest.json: Permission denied" in text and "--out" in text


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_disk_full_on_manifest_keeps_the_old_one(tmp_path, monkeypatch):
    out = tmp_path / "run"
    w = RunWriter(out, force=False, manifest={"run_id": "r"})
    key = w.start_unit(cfg(), "tiny")
    w.add_record(key, Record(step=10, updates=10, wall_s=1.0, train_bpc=3.0))
    monkeypatch.setattr(files.os, "fsync", _disk_full)
    with pytest.raises(ResultsError) as e:
        w.finish_unit(key, RunOutcome(status="complete", steps=10))
    assert one_line(e) == f"could not write {out / 'manifest.json'}: No space left on device; free space or choose --out elsewhere"
    m = manifest(out)
    assert m["status"] == "running" and m["units"][0]["status"] == "running"
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_disk_full_inside_context_manager_still_leaves_a_parseable_manifest(tmp_path, monkeypatch):
    out = tmp_path / "run"
    with pytest.raises(ResultsError, match="No space left on device"):
        with RunWriter(out, force=False, manifest={}) as w:
            key = w.start_unit(cfg(), "tiny")
            monkeypatch.setattr(files.os, "fsync", _disk_full)
            w.finish_unit(key, RunOutcome(status="complete"))
    assert manifest(out)["status"] == "running"


class _FullFile:
    """Stands in for curves.csv's file object once the disk is full."""

    def __init__(self, real):
        self.real = real

    def write(self, text):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def flush(self):
        pass

    def close(self):
        self.real.close()


def test_disk_full_on_curves(tmp_path):
    out = tmp_path / "run"
    w = RunWriter(out, force=False, manifest={})
    key = w.start_unit(cfg(), "tiny")
    w.add_record(key, Record(step=10, updates=10, wall_s=1.0, train_bpc=3.0))
    # Reaching into the writer is the only way to make a real file's write fail.
    w._curves_file = _FullFile(w._curves_file)
    w._csv = csv.writer(w._curves_file, lineterminator="\n")
    with pytest.raises(ResultsError) as e:
        w.add_record(key, Record(step=20, updates=20, wall_s=2.0, train_bpc=2.0))
    assert one_line(e).startswith(f"could not write {out / 'curves.csv'}: No space left on device")
    assert len(pd.read_csv(out / "curves.csv")) == 1
    assert manifest(out)["status"] == "running"


def test_weights_and_vocab(tmp_path):
    w = RunWriter(tmp_path / "run", force=False, manifest={})
    path = w.save_weights("000-single-seed0", {"weight_ih_l0": np.arange(6.0).reshape(2, 3), "bias": np.ones(2, np.float32)})
    assert path == tmp_path / "run" / "weights" / "000-single-seed0.npz"
    with np.load(path) as z:
        np.testing.assert_array_equal(z["weight_ih_l0"], np.arange(6.0).reshape(2, 3))
        assert z["bias"].dtype == np.float32
    vocab = w.save_vocab(["a", "\n", "é"])
    assert json.loads(vocab.read_text(encoding="utf-8")) == ["a", "\n", "é"]
    with pytest.raises(ResultsError):
        w.save_weights("../escape", {})
    w.close("complete")


def test_non_finite_losses_become_null_in_the_manifest(tmp_path):
    w = RunWriter(tmp_path / "run", force=False, manifest={})
    key = w.start_unit(cfg(), "tiny")
    w.add_record(key, Record(step=10, updates=10, wall_s=1.0, train_bpc=3.0))
    w.add_record(key, Record(step=20, updates=20, wall_s=2.0, train_bpc=float("inf")))
    w.finish_unit(key, RunOutcome(status="diverged", steps=20, diverged_at_step=20, final_train_bpc=float("nan")))
    w.close("complete")
    unit = manifest(tmp_path / "run")["units"][0]  # strict JSON, checked in manifest()
    assert unit["final_train_bpc"] is None and unit["diverged_at_step"] == 20


# ----------------------------------------------------------------------------- loading


def test_load_runs_finds_nested_runs(tmp_path):
    write_run(tmp_path / "sweep" / "a" / "run1", run_id="one")
    write_run(tmp_path / "sweep" / "b" / "deeper" / "run2", run_id="two")
    runs = read_runs(tmp_path / "sweep")
    assert sorted(r.run_id for r in runs) == ["one", "two"]
    assert all(r.complete and len(r.curves) and len(r.units) == 4 for r in runs)
    [one] = read_runs(tmp_path / "sweep" / "a" / "run1")
    assert one.run_id == "one" and one.path == tmp_path / "sweep" / "a" / "run1"


def test_load_runs_refusals(tmp_path):
    with pytest.raises(ResultsError) as e:
        read_runs(tmp_path / "nope")
    assert "does not exist" in one_line(e)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ResultsError) as e:
        read_runs(tmp_path / "empty")
    assert one_line(e) == f"no bpttbench runs under {tmp_path / 'empty'}; run `bpttbench run` first"

    run = write_run(tmp_path / "run")
    df = pd.read_csv(run / "curves.csv").drop(columns=["metric"])
    df.to_csv(run / "curves.csv", index=False)
    with pytest.raises(ResultsError) as e:
        read_runs(tmp_path / "run")
    assert "metric" in one_line(e)

    bad = write_run(tmp_path / "bad")
    (bad / "manifest.json").write_text('{"status": "comp')
    with pytest.raises(ResultsError) as e:
        read_runs(bad)
    assert "manifest.json" in one_line(e)


def test_incomplete_runs_are_flagged(tmp_path):
    write_run(tmp_path / "root" / "done")
    write_run(tmp_path / "root" / "stopped", status="interrupted")
    write_run(tmp_path / "root" / "crashed", status=None)
    runs = read_runs(tmp_path / "root")
    assert len(runs) == 3
    complete, skipped = split_complete(runs)
    assert [r.path.name for r in complete] == ["done"]
    reasons = {r.path.name: why for r, why in skipped}
    assert "interrupted" in reasons["stopped"] and "running" in reasons["crashed"]
    data = group_curves(runs)
    assert set(data.curve.str.split("#").str[0]) == {str(tmp_path / "root" / "done")}


def test_group_curves_columns_and_labels(tmp_path):
    write_run(tmp_path / "root" / "a", corpus="tiny")
    wide = {"single": cfg("single", hidden=64, inject="window", k1=2, k2=10)}
    write_run(tmp_path / "root" / "b", corpus="tiny", configs=wide, curves={"single": SINGLE})
    data = group_curves(read_runs(tmp_path / "root"))
    for c in CURVE_COLUMNS + ("label", "curve", "diverged", "status"):
        assert c in data.columns
    assert set(data.corpus) == {"tiny"} and set(data.optimizer) == {"adam"} and set(data.lr) == {0.002}
    assert set(data.label) == {
        "single k1=1 k2=20 inject=new hidden=128",
        "sliding k1=1 k2=20 inject=new hidden=128",
        "single k1=2 k2=10 inject=window hidden=64",
    }
    assert data.groupby("label").curve.nunique().to_dict()["single k1=1 k2=20 inject=new hidden=128"] == 2


def test_units_that_differ_only_in_lr_keep_their_own_lr(tmp_path):
    w = RunWriter(tmp_path / "run", force=False, manifest={"corpus": {"name": "tiny"}})
    for lr, bpc in ((0.01, 2.0), (0.001, 3.0)):
        key = w.start_unit(cfg(lr=lr), "tiny")
        w.add_record(key, Record(step=10, updates=10, wall_s=1.0, train_bpc=bpc))
        w.finish_unit(key, RunOutcome(status="complete"))
    w.close("complete")
    data = group_curves(read_runs(tmp_path / "run"))
    assert dict(zip(data.lr, data.value)) == {0.01: 2.0, 0.001: 3.0}
    assert set(data.label) == {"single lr=0.01", "single lr=0.001"}
    wide = pd.read_csv(tmp_path / "run" / "loss_vs_iter.csv")
    assert wide["single lr=0.01"].tolist() == [2.0]


def test_diverged_units_are_cut_and_flagged(tmp_path):
    w = RunWriter(tmp_path / "run", force=False, manifest={"corpus": {"name": "tiny"}})
    for seed, blowup in ((0, False), (1, True)):
        key = w.start_unit(cfg(seed=seed), "tiny")
        for step, bpc in ((10, 3.0), (20, 2.5), (30, 50.0 if blowup else 2.0), (40, float("nan") if blowup else 1.9)):
            w.add_record(key, Record(step=step, updates=step, wall_s=step / 10, train_bpc=bpc))
        w.finish_unit(key, RunOutcome(status="diverged" if blowup else "complete", steps=40, diverged_at_step=30 if blowup else None))
    w.close("complete")
    data = group_curves(read_runs(tmp_path / "run"))
    bad = data[data.seed == 1]
    assert bad.diverged.all() and bad.step.tolist() == [10, 20]
    assert not data[data.seed == 0].diverged.any() and len(data[data.seed == 0]) == 4
    # The median of a group leaves the diverged seed out, so it runs to the end.
    wide = pd.read_csv(tmp_path / "run" / "loss_vs_iter.csv")
    assert wide["single"].tolist() == [3.0, 2.5, 2.0, 1.9]


def copy_with(run: Path, to: Path, *, rewrite_curves=True, **changes) -> Path:
    """A copy of a run whose units differ from the original's only in `changes`, in the manifest
    and (unless the copy stands for an older run) in curves.csv."""
    shutil.copytree(run, to)
    m = manifest(to)
    m["run_id"] = to.name
    for unit in m["units"]:
        unit["config"].update(changes)
    (to / "manifest.json").write_text(json.dumps(m))
    if rewrite_curves:
        df = pd.read_csv(to / "curves.csv", keep_default_na=False)
        for c, v in changes.items():
            df[c] = v
        df.to_csv(to / "curves.csv", index=False)
    return to


def test_curves_csv_has_every_config_field(tmp_path):
    run = write_run(tmp_path / "run", configs={"single": cfg("single", clip=0.25, eval_every=500, log_every=10)},
                    curves={"single": SINGLE})
    df = pd.read_csv(run / "curves.csv")
    assert {f.name for f in fields(TrainConfig)} <= set(df.columns)
    assert {"corpus", "corpus_sha256", "run_id"} <= set(df.columns)
    assert set(df["clip"]) == {0.25} and set(df.eval_every) == {500} and set(df.log_every) == {10}
    # Every row describes its unit: the columns hold exactly the manifest's configuration.
    units = manifest(run)["units"]
    for unit in units:
        start, stop = unit["rows"]
        for f in fields(TrainConfig):
            want = unit["config"][f.name]
            got = df[f.name].iloc[start:stop]
            assert (got.isna().all() if want is None else (got == want).all()), f.name


def test_runs_that_differ_only_in_clip_are_two_configurations(tmp_path):
    """Issue 11: a copy of a run with another clip is another configuration, not more seeds."""
    run = write_run(tmp_path / "root" / "a", curves={"single": SINGLE})
    copy_with(run, tmp_path / "root" / "b", clip=0.5)
    data = group_curves(read_runs(tmp_path / "root"))
    assert set(data.label) == {"single clip=0.5", "single clip=1"}
    assert data.groupby("label").curve.nunique().to_dict() == {"single clip=0.5": 2, "single clip=1": 2}
    keys = {group_key(row) for _, row in data.iterrows()}
    assert len(keys) == 2 and {dict(zip(GROUP_KEY, k))["clip"] for k in keys} == {0.5, 1.0}


def test_runs_with_different_budgets_or_dtypes_are_not_pooled(tmp_path):
    run = write_run(tmp_path / "root" / "a", curves={"single": SINGLE})
    copy_with(run, tmp_path / "root" / "b", budget_steps=None, budget_seconds=60.0)
    copy_with(run, tmp_path / "root" / "c", dtype="float64")
    data = group_curves(read_runs(tmp_path / "root"))
    assert set(data.label) == {"single dtype=float32 budget=1000 steps", "single dtype=float32 budget=60s",
                               "single dtype=float64 budget=1000 steps"}


def test_old_curves_csv_takes_its_configuration_from_the_manifest(tmp_path):
    """A run written before curves.csv carried the whole configuration still reads, and a copy
    that differs only in the manifest's clip (the issue's case) is still its own configuration."""
    old_columns = ["run_id", "scheme", "k1", "k2", "inject", "hidden", "batch", "dtype", "seed",
                   "step", "updates", "wall_s", "metric", "value"]
    run = write_run(tmp_path / "root" / "a", curves={"single": SINGLE})
    df = pd.read_csv(run / "curves.csv")[old_columns]
    df.to_csv(run / "curves.csv", index=False)
    copy_with(run, tmp_path / "root" / "b", rewrite_curves=False, clip=0.5)
    data = group_curves(read_runs(tmp_path / "root"))
    assert set(data.label) == {"single clip=0.5", "single clip=1"}
    assert set(data.lr) == {0.002} and set(data.budget_steps) == {1000} and set(data.corpus) == {"tiny"}
    assert list(data.budget_seconds.unique()) == [None]
    assert len(data) == 2 * len(pd.read_csv(run / "curves.csv"))  # no row lost


def test_online_schemes_pool_whatever_k2_they_recorded(tmp_path):
    configs = {"rtrl": cfg("rtrl", k2=5)}
    run = write_run(tmp_path / "root" / "a", configs=configs, curves={"rtrl": SINGLE})
    copy_with(run, tmp_path / "root" / "b", k2=20)
    data = group_curves(read_runs(tmp_path / "root"))
    assert set(data.label) == {"rtrl"} and data.curve.nunique() == 4 and set(data.k2) == {5, 20}


def test_labels_name_only_the_fields_that_differ():
    base = dict(cfg().to_dict(), corpus="tiny", corpus_sha256="a" * 64)
    assert config_labels([base]) == ["single"]
    assert config_labels([base, dict(base, scheme="sliding")]) == ["single", "sliding"]
    assert config_labels([base, dict(base, clip=0.5)]) == ["single clip=1", "single clip=0.5"]
    assert config_labels([base, dict(base, scheme="sliding", k2=5, lr=0.01)]) == [
        "single k2=20 lr=0.002", "sliding k2=5 lr=0.01"]
    # rtrl ignores k2: it neither shows k2 nor makes k2 a difference.
    assert config_labels([dict(base, scheme="rtrl", k2=5), dict(base, scheme="rtrl", k2=40), base]) == [
        "rtrl", "rtrl", "single"]
    # Values are shown short, but two values never read alike.
    assert config_labels([base, dict(base, lr=0.0020000001)]) == ["single lr=0.002", "single lr=0.0020000001"]
    # chunked's k1 is its k2: a chunked length is a k2, not also a k1.
    assert config_labels([base, dict(base, scheme="chunked", k1=5, k2=5)]) == ["single k2=20", "chunked k2=5"]
    # Another corpus is named; its text's checksum only when one name stands for two texts.
    assert config_labels([base, dict(base, corpus="big", corpus_sha256="b" * 64)]) == [
        "single corpus=tiny", "single corpus=big"]
    assert config_labels([base, dict(base, corpus_sha256="b" * 64)]) == [
        "single corpus_sha256=aaaaaaaaaaaa", "single corpus_sha256=bbbbbbbbbbbb"]


# ----------------------------------------------------------------------------- aggregation


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(0.01, 10), min_size=2, max_size=8, unique=True),
    st.lists(st.floats(-5, 5), min_size=8, max_size=8),
    st.floats(-20, 20),
)
def test_resample_interpolates_and_never_extrapolates(xs, ys, probe):
    xs = np.sort(np.array(xs))
    ys = np.array(ys[: len(xs)])
    [row] = resample([(xs, ys)], np.concatenate([xs, [probe]]))
    np.testing.assert_allclose(row[:-1], ys)
    assert math.isnan(row[-1]) == (probe < xs[0] or probe > xs[-1])


def test_median_band_needs_every_seed():
    a = (np.array([0.0, 1.0, 2.0]), np.array([1.0, 2.0, 3.0]))
    b = (np.array([0.0, 1.0]), np.array([3.0, 4.0]))
    c = (np.array([0.0, 1.0, 2.0]), np.array([5.0, 9.0, 7.0]))
    med, q25, q75 = median_band([a, b, c], np.array([0.0, 0.5, 1.0, 2.0]))
    np.testing.assert_allclose(med, [3.0, 3.5, 4.0, np.nan])
    np.testing.assert_allclose(q25, [2.0, 2.5, 3.0, np.nan])  # at 0.5: 1.5, 3.5, 7
    np.testing.assert_allclose(q75, [4.0, 5.25, 6.5, np.nan])


def test_seed_curves_smooth_by_steps_whatever_the_x_axis():
    """Figures and reports smooth alike: each log point weighs the steps its mean covers."""
    steps = [100, 200, 1200, 1300, 1400]
    values = [5.0, 4.0, 1.0, 3.0, 2.0]
    rows = pd.DataFrame({"curve": "c", "step": steps, "wall_s": [s / 100 for s in steps], "value": values})
    [(xs, ys)] = seed_curves(rows, "wall_s", 3)
    np.testing.assert_allclose(xs, [1.0, 2.0, 12.0, 13.0, 14.0])
    # Point 2 (step 200) averages steps 100, 200 and 1200 with weights 100, 100 and 1000.
    assert ys[1] == pytest.approx((5.0 * 100 + 4.0 * 100 + 1.0 * 1000) / 1200)
    np.testing.assert_allclose(ys, smooth_curve(np.array(steps, float), np.array(values), 3))
    [(_, unsmoothed)] = seed_curves(rows, "step")
    np.testing.assert_allclose(unsmoothed, values)

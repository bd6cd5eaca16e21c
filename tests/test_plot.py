"""Figures from synthetic runs: which files appear, where, what they say, and what is skipped."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from bpttbench import plot
from bpttbench.config import TrainConfig
from bpttbench.defaults import SCHEME_COLORS, SMOOTH
from bpttbench.errors import ResultsError
from bpttbench.plot import plot_runs
from bpttbench.results.records import Record, RunOutcome
from bpttbench.results import RunWriter
from conftest import invoke

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TRAIN = ["loss_vs_time", "loss_vs_iter"]
VAL = ["val_loss_vs_time", "val_loss_vs_iter"]


def write_run(out: Path, *, schemes=(("sliding", 20, 3.0), ("single", 20, 1.0)), seeds=(0, 1, 2), val=True,
              status="complete", diverge=None, n=40) -> Path:
    """Loss curves like the question's: same per step, the sliding window slower per second.

    schemes: (scheme, k2, seconds per log point); diverge: (scheme, seed) that blows up halfway.
    """
    w = RunWriter(out, force=False, manifest={"run_id": out.name, "corpus": {"name": "tinyshakespeare"}})
    for scheme, k2, speed in schemes:
        for seed in seeds:
            rng = np.random.default_rng(seed * 100 + k2)
            key = w.start_unit(TrainConfig(scheme=scheme, k2=k2, seed=seed, budget_steps=n * 1000, clock="wall"), "tinyshakespeare")
            blowup = diverge == (scheme, seed)
            for i in range(1, n + 1):
                step = i * 1000
                bpc = 2.0 + 2.5 * np.exp(-i / 8) + 0.15 * rng.standard_normal()
                if blowup and i > n // 2:
                    bpc = float("inf") if i > n // 2 + 1 else 40.0
                w.add_record(key, Record(step=step, updates=step, wall_s=i * speed * (1 + 0.05 * rng.random()), train_bpc=bpc,
                                         val_bpc=bpc + 0.2 if val and i % 10 == 0 else None))
            outcome = RunOutcome(status="diverged" if blowup else "complete", steps=n * 1000,
                                 diverged_at_step=(n // 2 + 1) * 1000 if blowup else None)
            w.finish_unit(key, outcome)
    if status is not None:
        w.close(status)
    return out


def names(paths) -> set[str]:
    return {Path(p).name for p in paths}


def test_writes_train_and_val_figures(tmp_path):
    run = write_run(tmp_path / "run")
    written = plot_runs(run)
    assert names(written) == {f"{stem}.{ext}" for stem in TRAIN + VAL for ext in ("png", "svg")}
    assert all(Path(p).parent == run for p in written)
    assert written.skipped == []
    for p in written:
        data = Path(p).read_bytes()
        assert len(data) > 5000
        if p.suffix == ".png":
            assert data.startswith(PNG_MAGIC)
    svg = (run / "loss_vs_time.svg").read_text()
    for text in ("online training loss (bits/char)", "training time (wall s)", "tinyshakespeare",
                 "sliding (3 seeds)", "single (3 seeds)"):
        assert text in svg
    # The question's colours: sliding window blue, single forward pass red.
    assert SCHEME_COLORS["sliding"] in svg and SCHEME_COLORS["single"] in svg
    assert "time steps" in (run / "loss_vs_iter.svg").read_text()
    assert "validation loss (bits/char)" in (run / "val_loss_vs_iter.svg").read_text()


def test_no_validation_means_two_figures(tmp_path):
    run = write_run(tmp_path / "run", val=False)
    written = plot_runs(run, formats=("png",))
    assert names(written) == {"loss_vs_time.png", "loss_vs_iter.png"}
    assert not (run / "val_loss_vs_time.png").exists()


def test_root_with_nested_sweep_skips_incomplete_runs(tmp_path):
    root = tmp_path / "results"
    write_run(root / "sweep" / "k2_20" / "run", seeds=(0, 1))
    write_run(root / "sweep" / "k2_5" / "run", schemes=(("single", 5, 1.0), ("stored", 5, 1.2)), seeds=(0, 1))
    write_run(root / "broken", status=None, seeds=(0,))
    out = tmp_path / "figs"
    written = plot_runs(root, out=out, logx=True, smooth=1)
    assert names(written) == {f"{stem}.{ext}" for stem in TRAIN + VAL for ext in ("png", "svg")}
    assert all(Path(p).parent == out for p in written)
    assert [(p.name, "running" in why) for p, why in written.skipped] == [("broken", True)]
    svg = (out / "loss_vs_iter.svg").read_text()
    for label in ("single k2=5 (2 seeds)", "stored k2=5 (2 seeds)", "sliding k2=20 (2 seeds)", "single k2=20 (2 seeds)"):
        assert label in svg
    assert SCHEME_COLORS["stored"] in svg


def test_default_out_for_a_root_is_the_root(tmp_path):
    write_run(tmp_path / "root" / "a", seeds=(0,))
    written = plot_runs(tmp_path / "root", formats=("svg",))
    assert all(Path(p).parent == tmp_path / "root" for p in written)
    assert "(1 seed)" in (tmp_path / "root" / "loss_vs_time.svg").read_text()


def test_several_paths_share_the_figures_and_out_defaults_to_the_first(tmp_path):
    a = write_run(tmp_path / "a", schemes=(("sliding", 20, 3.0),), seeds=(0, 1))
    b = write_run(tmp_path / "b", schemes=(("single", 5, 1.0),), seeds=(0,))
    written = plot_runs(a, b, tmp_path / "a" / "manifest.json", formats=("svg",))  # a twice: drawn once
    assert names(written) == {f"{stem}.svg" for stem in TRAIN + VAL}
    assert all(Path(p).parent == a for p in written)
    assert not list(b.glob("*.svg"))
    svg = (a / "loss_vs_time.svg").read_text()
    assert "sliding k2=20 (2 seeds)" in svg and "single k2=5 (1 seed)" in svg


def test_the_plot_command_takes_several_paths_and_defaults_to_results(tmp_path, capsys, monkeypatch):
    a = write_run(tmp_path / "results" / "a", schemes=(("sliding", 20, 3.0),), seeds=(0,))
    b = write_run(tmp_path / "elsewhere" / "b", schemes=(("single", 20, 1.0),), seeds=(0,))
    code, stdout, stderr = invoke(["plot", a, b, "--out", tmp_path / "figs", "--format", "svg"], capsys)
    assert code == 0, stderr
    assert sorted(stdout.split()) == sorted(str(tmp_path / "figs" / f"{stem}.svg") for stem in TRAIN + VAL)
    svg = (tmp_path / "figs" / "loss_vs_iter.svg").read_text()
    assert "sliding (1 seed)" in svg and "single (1 seed)" in svg
    monkeypatch.chdir(tmp_path)
    code, stdout, stderr = invoke(["plot", "--format", "png"], capsys)
    assert code == 0, stderr
    assert sorted(Path(p).name for p in stdout.split()) == sorted(f"{stem}.png" for stem in TRAIN + VAL)
    assert (tmp_path / "results" / "loss_vs_time.png").is_file()
    code, _, stderr = invoke(["plot", a, tmp_path / "nowhere"], capsys)
    assert code == 2 and "nowhere does not exist" in stderr


def test_diverged_seed_is_marked_not_drawn(tmp_path):
    run = write_run(tmp_path / "run", diverge=("single", 1))
    plot_runs(run, formats=("svg",))
    svg = (run / "loss_vs_iter.svg").read_text()
    assert "single (3 seeds, 1 diverged)" in svg
    assert "where a seed diverged" in svg


def test_only_incomplete_runs_is_an_error(tmp_path):
    write_run(tmp_path / "root" / "a", status="interrupted", seeds=(0,))
    with pytest.raises(ResultsError) as e:
        plot_runs(tmp_path / "root")
    assert "no complete runs" in str(e.value) and "\n" not in str(e.value)


def test_bad_options_are_refused(tmp_path):
    run = write_run(tmp_path / "run", seeds=(0,), n=5)
    with pytest.raises(ResultsError, match="smoothing"):
        plot_runs(run, smooth=0)
    with pytest.raises(ResultsError, match="format"):
        plot_runs(run, formats=("bmpx",))


def test_a_copy_with_another_clip_is_another_line(tmp_path):
    """Issue 11, as reported: copy a run, change only clip in the copy's manifest (the record of what
    ran; its curves.csv still says clip 1), and the two are two configurations, not '2 runs of 1 seed'."""
    root = tmp_path / "root"
    run = write_run(root / "a", schemes=(("single", 20, 1.0),), seeds=(0,), n=10)
    shutil.copytree(run, root / "b")
    m = json.loads((root / "b" / "manifest.json").read_text())
    for unit in m["units"]:
        unit["config"]["clip"] = 0.5
    (root / "b" / "manifest.json").write_text(json.dumps(m))
    plot_runs(root, formats=("svg",))
    svg = (root / "loss_vs_iter.svg").read_text()
    assert "single clip=0.5 (1 seed)" in svg and "single clip=1 (1 seed)" in svg
    assert "runs of" not in svg


def test_plot_smooths_as_the_report_does(tmp_path, monkeypatch):
    """One smoothing for figures and reports: step-weighted, over defaults.SMOOTH log points."""
    calls = []
    real = plot.seed_curves

    def spy(rows, x, smooth=1):
        calls.append(smooth)
        return real(rows, x, smooth)

    monkeypatch.setattr(plot, "seed_curves", spy)
    run = write_run(tmp_path / "run", seeds=(0,), n=12, val=False)
    plot_runs(run, formats=("svg",))
    assert calls and set(calls) == {SMOOTH}
    assert f"step-weighted moving average over {SMOOTH} log points" in (run / "loss_vs_iter.svg").read_text()

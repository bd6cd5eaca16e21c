"""The command line as a user meets it: run, plot, corpus; outputs on disk; errors as one line."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from conftest import invoke


FAST = ["--hidden", "8", "--k2", "4", "--eval-chars", "200", "--log-every", "100", "--eval-every", "200"]


def test_run_writes_a_complete_run_directory(tmp_path, text_file, capsys):
    out = tmp_path / "run"
    code, stdout, stderr = invoke(["run", "--scheme", "all", "--steps", "400", "--seeds", "2", "--corpus", str(text_file),
                                   "--out", str(out), "--save-weights", "--json", *FAST], capsys)
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["status"] == "complete"
    assert [row["scheme"] for row in summary["summary"]] == ["chunked", "single", "stored", "sliding", "adaptive"]
    chunked = summary["summary"][0]
    assert (chunked["k1"], chunked["k2"], chunked["seeds"]) == (4, 4, 2)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["seeds"] == [0, 1]
    assert manifest["corpus"]["sha256"] and manifest["machine"]["numba"]
    assert [u["status"] for u in manifest["units"]] == ["complete"] * 10
    assert all(u["compile_s"] >= 0 and u["eval_s"] > 0 for u in manifest["units"])
    curves = pd.read_csv(out / "curves.csv")
    assert set(curves["metric"]) == {"train_bpc", "val_bpc", "k2"}
    assert curves.groupby(["scheme", "seed"])["step"].max().eq(400).all()
    for name in ("loss_vs_time.csv", "loss_vs_iter.csv", "vocab.json", "weights/single-seed1-final.npz",
                 "weights/sliding-seed0-init.npz"):
        assert (out / name).exists(), name


def test_same_seed_same_numbers_across_runs(tmp_path, text_file, capsys):
    curves = []
    for name in ("a", "b"):
        code, _, stderr = invoke(["run", "--scheme", "stored", "--steps", "300", "--corpus", str(text_file),
                                  "--out", str(tmp_path / name), "-q", *FAST], capsys)
        assert code == 0, stderr
        curves.append(pd.read_csv(tmp_path / name / "curves.csv"))
    assert curves[0]["value"].tolist() == curves[1]["value"].tolist()


def test_quiet_prints_only_the_run_directory_and_plot_writes_figures(tmp_path, text_file, capsys):
    out = tmp_path / "run"
    code, stdout, _ = invoke(["run", "--steps", "200", "--corpus", str(text_file), "--out", str(out), "-q", *FAST], capsys)
    assert code == 0 and stdout.strip() == str(out)
    code, stdout, stderr = invoke(["plot", str(tmp_path), "--out", str(tmp_path / "figs")], capsys)
    assert code == 0, stderr
    written = stdout.split()
    assert str(tmp_path / "figs" / "loss_vs_time.png") in written
    assert str(tmp_path / "figs" / "loss_vs_iter.svg") in written


def test_options_read_environment_variables(tmp_path, text_file, capsys, monkeypatch):
    monkeypatch.setenv("BPTTBENCH_K2", "3")
    monkeypatch.setenv("BPTTBENCH_SCHEME", "single")
    code, stdout, stderr = invoke(["run", "--steps", "100", "--corpus", str(text_file), "--out", str(tmp_path / "r"),
                                   "--json", "--hidden", "8", "--eval-chars", "100"], capsys)
    assert code == 0, stderr
    assert [(r["scheme"], r["k2"]) for r in json.loads(stdout)["summary"]] == [("single", 3)]


@pytest.mark.parametrize("args,message", [
    (["run", "--scheme", "bogus"], "'bogus' is not one of"),
    (["run", "--k1", "5", "--k2", "3"], "k1=5 is larger than k2=3"),
    (["run", "--k1", "0"], "k1 must be at least 1"),
    (["run", "--scheme", "chunked", "--k1", "2", "--k2", "4"], "chunked needs k1 == k2"),
    (["run", "--budget", "0"], "must be positive"),
    (["run", "--budget", "abc"], "cannot read 'abc' as a duration"),
    (["run", "--budget", "1m", "--steps", "5"], "either --budget"),
    (["run", "--seeds", "2", "--seed", "1"], "either --seeds"),
    (["run", "--corpus", "/no/such/file.txt", "--steps", "5"], "does not exist"),
    (["run", "--corpus", "no-such-corpus", "--steps", "5"], "unknown corpus"),
    (["run", "--hidden", "-3", "--steps", "5"], "hidden must be"),
    (["plot", "/no/such/dir"], "does not exist"),
    (["corpus", "info", "/no/such/file.txt"], "does not exist"),
])
def test_bad_input_is_one_line_exit_2(args, message, capsys):
    code, stdout, stderr = invoke(args, capsys)
    assert code == 2
    assert message in stderr
    assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr


def test_existing_output_needs_force(tmp_path, text_file, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, _, stderr = invoke(["run", "--steps", "100", "--corpus", str(text_file), "--out", str(out)], capsys)
    assert code == 2 and "--force" in stderr
    assert (out / "keep.txt").read_text() == "mine"
    code, _, stderr = invoke(["run", "--steps", "100", "--corpus", str(text_file), "--out", str(out), "--force", "-q", *FAST], capsys)
    assert code == 0, stderr
    assert not (out / "keep.txt").exists()


def test_strict_fails_on_divergence_and_other_schemes_still_run(tmp_path, text_file, capsys):
    out = tmp_path / "run"
    code, _, stderr = invoke(["run", "--scheme", "single", "--scheme", "sliding", "--steps", "300", "--corpus", str(text_file),
                              "--out", str(out), "--optimizer", "sgd", "--lr", "1e37", "--strict", "-q", *FAST], capsys)
    assert code == 1
    assert "diverged at step" in stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert [u["status"] for u in manifest["units"]] == ["diverged", "diverged"]
    assert all(u["diverged_at_step"] for u in manifest["units"])


def test_version_and_help(capsys):
    code, stdout, _ = invoke(["--version"], capsys)
    assert code == 0 and "bpttbench, version" in stdout
    code, stdout, _ = invoke(["run", "--help"], capsys)
    assert code == 0 and "--k2" in stdout and "BPTTBENCH_K2" in stdout and "Examples" in stdout


def test_corpus_list_and_info(text_file, capsys):
    code, stdout, _ = invoke(["corpus", "list"], capsys)
    assert code == 0 and "tinyshakespeare" in stdout and "stdlib-docs" in stdout
    code, stdout, _ = invoke(["corpus", "info", str(text_file)], capsys)
    assert code == 0 and "sha256" in stdout and "30,000" in stdout

"""The command line as a user meets it: run, plot, corpus; outputs on disk; errors as one line;
environment variables, list options, the JSON shape, tables on a pipe, the README's option list."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from bpttbench.cli import cli
from bpttbench.config import format_duration, parse_duration

from conftest import invoke

README = Path(__file__).resolve().parents[1] / "README.md"


FAST = ["--hidden", "8", "--k2", "4", "--eval-chars", "200", "--log-every", "100", "--eval-every", "200"]


def test_run_writes_a_complete_run_directory(tmp_path, text_file, capsys):
    out = tmp_path / "run"
    code, stdout, stderr = invoke(["run", "--scheme", "all", "--steps", "400", "--seeds", "2", "--corpus", str(text_file),
                                   "--out", str(out), "--save-weights", "--json", *FAST], capsys)
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert (summary["out"], summary["status"]) == (str(out), "complete")
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
    monkeypatch.setenv("BPTTBENCH_RUN_K2", "3")
    monkeypatch.setenv("BPTTBENCH_RUN_SCHEME", "single")
    monkeypatch.setenv("BPTTBENCH_GRADCHECK_K2", "7")  # another command's: no effect on run
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
    assert code == 0 and "--k2" in stdout and "BPTTBENCH_RUN_K2" in stdout and "Examples" in stdout


def test_corpus_list_and_info(text_file, capsys):
    code, stdout, _ = invoke(["corpus", "list"], capsys)
    assert code == 0 and "tinyshakespeare" in stdout and "stdlib-docs" in stdout
    code, stdout, _ = invoke(["corpus", "info", str(text_file)], capsys)
    assert code == 0 and "sha256" in stdout and "30,000" in stdout


# ----------------------------------------------------------------------------- environment variables


def test_one_commands_variable_does_not_reach_another(monkeypatch, capsys):
    monkeypatch.setenv("BPTTBENCH_SCHEME", "sliding")  # the old shared name: ignored now
    monkeypatch.setenv("BPTTBENCH_RUN_SCHEME", "sliding")  # run's, where sliding is valid
    code, _, stderr = invoke(["gradcheck", "--corpus", "/no/such/file.txt"], capsys)
    assert code == 2 and "does not exist" in stderr
    monkeypatch.setenv("BPTTBENCH_GRADCHECK_SCHEME", "sliding")  # gradcheck's own is read, and checked
    code, _, stderr = invoke(["gradcheck", "--corpus", "/no/such/file.txt"], capsys)
    assert code == 2 and "'sliding' is not one of" in stderr and "BPTTBENCH" not in stderr.split("(see")[1]


def test_a_typed_option_overrides_its_rival_from_the_environment(monkeypatch, capsys):
    monkeypatch.setenv("BPTTBENCH_RUN_SEED", "1")
    code, _, stderr = invoke(["run", "--seeds", "3", "--steps", "5", "--corpus", "/no/such/file.txt"], capsys)
    assert code == 2 and "does not exist" in stderr  # got past the --seeds/--seed check
    monkeypatch.setenv("BPTTBENCH_RUN_SEEDS", "3")  # both from the environment: ambiguous
    code, _, stderr = invoke(["run", "--steps", "5", "--corpus", "/no/such/file.txt"], capsys)
    assert code == 2 and "either --seeds" in stderr
    monkeypatch.delenv("BPTTBENCH_RUN_SEEDS")
    monkeypatch.setenv("BPTTBENCH_RUN_BUDGET", "2m")
    code, _, stderr = invoke(["run", "--steps", "5", "--corpus", "/no/such/file.txt"], capsys)
    assert code == 2 and "does not exist" in stderr


def test_speed_chooses_its_optimizer_like_the_other_commands(capsys):
    code, stdout, _ = invoke(["speed", "--help"], capsys)
    assert code == 0 and "--optimizer [sgd|adam]" in stdout and "BPTTBENCH_SPEED_OPTIMIZER" in stdout
    assert "--adam" not in stdout and "__NO_ADAM" not in stdout


def test_the_scheduler_variable_is_shared_by_sweep_and_study(monkeypatch, capsys):
    for command in ("sweep", "study"):
        code, stdout, _ = invoke([command, "--help"], capsys)
        assert code == 0 and "BPTTBENCH_SCHEDULER" in stdout
    monkeypatch.setenv("BPTTBENCH_SCHEDULER", "tcp://127.0.0.1:1")
    for argv in (["sweep", "no-such.toml"], ["study"]):
        code, _, stderr = invoke([*argv, "--workers", "2"], capsys)
        assert code == 2 and "with --scheduler the cluster's own workers are used" in stderr


# ----------------------------------------------------------------------------- list options, durations


@pytest.mark.parametrize("args,message", [
    (["run", "--scheme", "single,bogus"], "'bogus' is not one of"),
    (["gradcheck", "--k2", "5,x"], "'x' is not a valid integer"),
    (["speed", "--hidden", "8,,wide"], "'wide' is not a valid integer"),
    (["speed", "--dtype", "float32,float16"], "'float16' is not one of"),
])
def test_list_options_check_every_item(args, message, capsys):
    code, _, stderr = invoke(args, capsys)
    assert code == 2 and message in stderr and len(stderr.strip().splitlines()) == 1


def test_speed_takes_comma_lists_refuses_a_full_out_and_prints_plain_tables_on_a_pipe(tmp_path, capsys):
    small = ["speed", "--scheme", "chunked", "--hidden", "4", "--k2", "3", "--repeats", "1", "--min-time", "0.001",
             "--optimizer", "sgd"]
    out = tmp_path / "speed"
    code, stdout, stderr = invoke([*small, "--batch", "1,2", "--batch", "2", "--out", out, "--json"], capsys)
    assert code == 0, stderr
    data = json.loads(stdout)
    assert (data["out"], data["status"]) == (str(out), "complete")
    assert [(r["scheme"], r["batch"]) for r in data["rows"]] == [("chunked", 1), ("chunked", 2)]
    assert all(r["adam_extra_us"] is None for r in data["rows"])
    code, _, stderr = invoke([*small, "--out", out], capsys)
    assert code == 2 and "--force" in stderr and (out / "speed.csv").exists()
    code, stdout, stderr = invoke([*small, "--out", out, "--force"], capsys)
    assert code == 0, stderr
    assert "| scheme | cell | H | k2 | B | dtype | us/step |" in stdout and "…" not in stdout
    assert len(pd.read_csv(out / "speed.csv")) == 1


@settings(max_examples=300, deadline=None)
@given(seconds=st.floats(min_value=1, max_value=10 * 24 * 3600, allow_nan=False))
def test_every_printed_duration_reads_back(seconds):
    assert parse_duration(format_duration(seconds)) == round(seconds)


@pytest.mark.parametrize("text,seconds", [("1m30s", 90), ("1h02m03s", 3723), ("2h", 7200), ("1h30m", 5400),
                                          ("45", 45), ("1.5m", 90)])
def test_durations_read_compound_forms(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["1h30", "m30s", "1s30m", "1h-2m"])
def test_durations_refuse_what_they_cannot_read(text, capsys):
    code, _, stderr = invoke(["run", "--budget", text], capsys)
    assert code == 2 and "as a duration" in stderr


# ----------------------------------------------------------------------------- output, help, README


def test_bare_commands_print_their_help(capsys):
    code, stdout, stderr = invoke([], capsys)
    assert code == 0 and stdout.startswith("Usage: bpttbench") and "Commands:" in stdout and "run" in stdout
    assert "error" not in stderr
    code, stdout, _ = invoke(["corpus"], capsys)
    assert code == 0 and "Usage: bpttbench corpus" in stdout and "list" in stdout and "info" in stdout


def test_tables_on_a_pipe_are_markdown_and_json_has_one_shape(text_file, capsys):
    code, stdout, _ = invoke(["corpus", "list"], capsys)
    assert code == 0 and "| name | size | cached | description |" in stdout and "…" not in stdout
    code, stdout, _ = invoke(["corpus", "list", "--json"], capsys)
    data = json.loads(stdout)
    assert list(data)[:2] == ["out", "status"] and data["out"] is None
    assert "tinyshakespeare" in [row["name"] for row in data["corpora"]]
    code, stdout, _ = invoke(["corpus", "info", text_file, "--json"], capsys)
    data = json.loads(stdout)
    assert (data["out"], data["status"], data["corpus"]["n_chars"]) == (None, "complete", 30000)
    code, stdout, _ = invoke(["corpus", "info", text_file, "-q"], capsys)
    assert stdout.strip() == data["corpus"]["sha256"]


def _commands(group: click.Group, path=()):
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))
        else:
            yield " ".join((*path, name)), command


def _readme_rows() -> dict[str, str]:
    """The README's table of every command's options: command -> its row."""
    rows = re.findall(r"^\| `bpttbench ([a-z ]+)` \|(.*)\|$", README.read_text(), flags=re.M)
    return {name: row for name, row in rows}


@pytest.mark.parametrize("name,command", list(_commands(cli)), ids=lambda v: v if isinstance(v, str) else "")
def test_every_command_has_json_and_quiet_and_the_readme_lists_its_options(name, command):
    shown = {o for p in command.params if isinstance(p, click.Option) and not p.hidden
             for o in (*p.opts, *p.secondary_opts) if o.startswith("--")}
    assert {"--json", "--quiet"} <= shown
    row = _readme_rows().get(name)
    assert row is not None, f"README.md's table of options has no row for bpttbench {name}"
    missing = sorted(o for o in shown if not re.search(f"`{re.escape(o)}[` ]", row))
    assert not missing, f"README.md's row for bpttbench {name} does not list {missing}"


def test_shell_completion_completes_the_last_item_of_a_comma_list(monkeypatch, capsys):
    monkeypatch.setenv("_BPTTBENCH_COMPLETE", "bash_complete")
    monkeypatch.setenv("COMP_WORDS", "bpttbench run --scheme single,sl")
    monkeypatch.setenv("COMP_CWORD", "3")
    code, stdout, _ = invoke([], capsys)
    assert code == 0 and stdout.split() == ["plain,single,sliding"]

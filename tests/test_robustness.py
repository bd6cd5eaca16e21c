"""Every bad input, tried as a new user would: refused before any work, in one line on stderr that
names the problem and the fix, exit code 2 (1 when it is not the user's fault), no traceback, and
nothing left behind that claims to be complete.

One table, BAD_INPUTS, covers run, plot, report, gradcheck, corpus and sweep. Each row is the
command line (with {d} standing for the row's scratch directory, which `setup` fills), the exit
code and a fragment of the message. Rows for a command that does not exist yet are skipped and
say so. Everything runs in-process (`bpttbench.cli.main`), so the table costs about a second.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from bpttbench.cli import cli
from bpttbench.config import TrainConfig
from bpttbench.data.corpus import corpus_from_text
from bpttbench.results import CURVE_COLUMNS
from bpttbench.training.runner import execute

from conftest import serving, synthetic_ids
from test_cli import invoke

FAST = ["--hidden", "8", "--k2", "4", "--eval-chars", "200", "--log-every", "100"]
TS = "tinyshakespeare"


def good_text(n: int = 30000) -> str:
    return "".join("abcdefghijk "[i] for i in synthetic_ids(12, n, seed=5))


# ----------------------------------------------------------------------------- scratch material


def make_files(d: Path) -> None:
    """The corpora, specs and odd paths the rows point at."""
    (d / "good.txt").write_text(good_text(), encoding="utf-8")
    (d / "empty.txt").write_bytes(b"")
    (d / "binary.txt").write_bytes(bytes(range(256)) * 40)
    (d / "latin1.txt").write_bytes("café déjà vu, naïve façade. ".encode("latin-1") * 200)
    (d / "bom-only.txt").write_bytes(b"\xef\xbb\xbf")
    (d / "short.txt").write_text("to be or not to be", encoding="utf-8")
    (d / "a-dir").mkdir()
    os.mkfifo(d / "fifo")  # reading it would block forever
    (d / "a-file").write_text("not a directory\n")
    (d / "full").mkdir()
    (d / "full" / "mine.txt").write_text("someone's work\n")
    (d / "empty-folder").mkdir()
    (d / "bad.toml").write_text("method = 'grid\n[parameters\n")
    spec = f'method = "grid"\ncorpus = "{d / "good.txt"}"\nsteps = 100\nschemes = ["single"]\n'
    (d / "empty-grid.toml").write_text(spec + "[parameters.k1]\nvalue = 9\n[parameters.k2]\nvalue = 3\n")
    (d / "good.toml").write_text(spec + "[parameters.hidden]\nvalue = 8\n[parameters.eval_chars]\nvalue = 200\n")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A real, complete run directory (two units, 300 steps each) that rows copy and damage."""
    out = tmp_path_factory.mktemp("finished") / "run"
    base = TrainConfig(hidden=8, k2=4, budget_steps=300, log_every=100, eval_chars=200)
    units = [base.replace(scheme=s) for s in ("single", "sliding")]
    result = execute(units, corpus_from_text(good_text(), name="good"), out)
    assert result.status == "complete"
    return out


def copy_run(src: Path, dest: Path, *, status: str | None = None, drop_column: str | None = None,
             manifest_text: str | None = None) -> None:
    shutil.copytree(src, dest)
    manifest = dest / "manifest.json"
    if status is not None:
        data = json.loads(manifest.read_text())
        data["status"] = status
        data["finished_at"] = None
        manifest.write_text(json.dumps(data))
    if drop_column is not None:
        curves = pd.read_csv(dest / "curves.csv")
        curves.drop(columns=[drop_column]).to_csv(dest / "curves.csv", index=False)
    if manifest_text is not None:
        manifest.write_text(manifest_text)


def corrupt_mirror(d: Path) -> Path:
    """A directory that serves a tinyshakespeare.txt with the right size and the wrong bytes."""
    www = d / "www"
    www.mkdir()
    (www / f"{TS}.txt").write_bytes(b"x" * 1_115_394)
    return www


# ----------------------------------------------------------------------------- the table

# (id, argv, exit code, fragment of the message, setup)
# setup: None, or a name in SETUPS run on the scratch directory before the command.
BAD_INPUTS = [
    # corpora
    ("run-corpus-missing", ["run", "--corpus", "{d}/nope.txt", "--steps", "50"], 2, "does not exist", None),
    ("run-corpus-empty", ["run", "--corpus", "{d}/empty.txt", "--steps", "50"], 2, "is empty", None),
    ("run-corpus-binary", ["run", "--corpus", "{d}/binary.txt", "--steps", "50"], 2, "looks binary", None),
    ("run-corpus-not-utf8", ["run", "--corpus", "{d}/latin1.txt", "--steps", "50"], 2, "not valid UTF-8", None),
    ("run-corpus-bom-only", ["run", "--corpus", "{d}/bom-only.txt", "--steps", "50"], 2, "only a byte-order mark", None),
    ("run-corpus-too-short", ["run", "--corpus", "{d}/short.txt", "--steps", "50"], 2, "too few", None),
    ("run-corpus-directory", ["run", "--corpus", "{d}/a-dir", "--steps", "50"], 2, "is a directory", None),
    ("run-corpus-device", ["run", "--corpus", "/dev/zero", "--steps", "50"], 2, "not a regular file", None),
    ("run-corpus-fifo", ["run", "--corpus", "{d}/fifo", "--steps", "50"], 2, "not a regular file", None),
    ("run-corpus-unknown-name", ["run", "--corpus", "shakespear", "--steps", "50"], 2, "unknown corpus 'shakespear'", None),
    ("run-corpus-bad-checksum", ["run", "--corpus", TS, "--steps", "50"], 1, "checksum mismatch for tinyshakespeare", "mirror"),
    ("run-corpus-lag-absurd", ["run", "--corpus", "lag:100000000000", "--steps", "50"], 2, "lag x symbols must be at most", None),
    ("run-corpus-lag-words", ["run", "--corpus", "lag:x", "--steps", "50"], 2, "must be a whole number", None),
    ("run-corpus-generator-bad-param", ["run", "--corpus", "reber:depth=3", "--steps", "50"], 2, "no parameter 'depth'", None),
    ("run-eval-chars-beyond-validation", ["run", "--corpus", "{d}/good.txt", "--steps", "50", "--eval-chars", "5000"], 2,
     "lower --eval-chars", None),
    # sizes and numbers
    ("run-k1-above-k2", ["run", "--k1", "8", "--k2", "4", "--steps", "50"], 2, "k1=8 is larger than k2=4", None),
    ("run-k2-zero", ["run", "--k2", "0", "--steps", "50"], 2, "k2 must be at least 1", None),
    ("run-hidden-zero", ["run", "--hidden", "0", "--steps", "50"], 2, "hidden must be between 1 and", None),
    ("run-hidden-absurd", ["run", "--hidden", "100000", "--steps", "50"], 2, "hidden must be between 1 and", None),
    ("run-hidden-not-a-number", ["run", "--hidden", "lots", "--steps", "50"], 2, "'lots' is not a valid integer", None),
    ("run-batch-beyond-text", ["run", "--corpus", "{d}/good.txt", "--batch", "5000", "--steps", "50"], 2,
     "too few for 5000 stream(s)", None),
    ("run-batch-zero", ["run", "--batch", "0", "--steps", "50"], 2, "batch must be at least 1", None),
    ("run-lr-nan", ["run", "--lr", "nan", "--steps", "50"], 2, "learning rate must be a finite number", None),
    ("run-lr-negative", ["run", "--lr", "-0.1", "--steps", "50"], 2, "learning rate must be a finite number", None),
    ("run-clip-inf", ["run", "--clip", "inf", "--steps", "50"], 2, "clip must be a finite number", None),
    ("run-budget-zero", ["run", "--budget", "0"], 2, "must be positive", None),
    ("run-budget-negative", ["run", "--budget=-5"], 2, "must be positive", None),
    ("run-budget-words", ["run", "--budget", "abc"], 2, "cannot read 'abc' as a duration", None),
    ("run-budget-nan", ["run", "--budget", "nan"], 2, "must be positive", None),
    ("run-steps-negative", ["run", "--steps=-5"], 2, "step budget must be a positive whole number", None),
    ("run-seeds-zero", ["run", "--seeds", "0", "--steps", "50"], 2, "--seeds must be at least 1", None),
    # Refused from its size, before a list of 10^8 seeds is built (it used to take 8 GB).
    ("run-seeds-huge", ["run", "--seeds", "100000000", "--steps", "10", "--hidden", "4"], 2,
     "200,000,000 runs (2 schemes × 100,000,000 seeds), more than the limit of 10,000", None),
    ("run-unknown-scheme", ["run", "--scheme", "rtr", "--steps", "50"], 2, "'rtr' is not one of", None),
    # output directories
    ("run-out-exists", ["run", "--corpus", "{d}/good.txt", "--steps", "50", "--out", "{d}/full"], 2,
     "already holds files", None),
    ("run-out-is-a-file", ["run", "--corpus", "{d}/good.txt", "--steps", "50", "--out", "{d}/a-file"], 2,
     "is a file, not a directory", None),
    ("run-out-under-a-file", ["run", "--corpus", "{d}/good.txt", "--steps", "50", "--out", "{d}/a-file/run"], 2,
     "a-file is a file, not a directory", None),
    ("run-out-not-writable", ["run", "--corpus", "{d}/good.txt", "--steps", "50", "--out", "{d}/locked/run"], 2,
     "could not create", "locked"),
    ("run-force-on-current-dir", ["run", "--corpus", "{d}/good.txt", "--steps", "50", "--out", ".", "--force"], 2,
     "holds the current directory", None),
    # plot
    ("plot-missing-path", ["plot", "{d}/nowhere"], 2, "does not exist", None),
    ("plot-empty-folder", ["plot", "{d}/empty-folder"], 2, "no bpttbench runs", None),
    ("plot-run-still-running", ["plot", "{d}/running"], 2, "status is 'running'", "running"),
    ("plot-run-interrupted", ["plot", "{d}/interrupted"], 2, "status is 'interrupted'", "interrupted"),
    ("plot-csv-missing-column", ["plot", "{d}/no-value"], 2, "lacks column(s) value", "no-value"),
    ("plot-manifest-damaged", ["plot", "{d}/damaged"], 2, "could not parse", "damaged"),
    ("plot-only-diverged", ["plot", "{d}/diverged"], 2, "diverged before its first log point", "diverged"),
    ("plot-smooth-zero", ["plot", "{d}/ok", "--smooth", "0"], 2, "smoothing must be", "ok"),
    ("plot-out-is-a-file", ["plot", "{d}/ok", "--out", "{d}/a-file"], 2, "a-file", "ok"),
    # report
    ("report-empty-folder", ["report", "{d}/empty-folder"], 2, "no bpttbench runs", None),
    ("report-run-still-running", ["report", "{d}/running"], 2, "status is 'running'", "running"),
    ("report-only-diverged", ["report", "{d}/diverged"], 2, "diverged before its first log point", "diverged"),
    ("report-smooth-zero", ["report", "{d}/ok", "--smooth", "0"], 2, "smoothing must be", "ok"),
    ("report-at-time-words", ["report", "{d}/ok", "--at-time", "soon"], 2, "cannot read 'soon' as a duration", "ok"),
    ("report-csv-missing-column", ["report", "{d}/no-value"], 2, "lacks column(s) value", "no-value"),
    # corpus
    ("corpus-info-unknown-name", ["corpus", "info", "shakespear"], 2, "unknown corpus", None),
    ("corpus-info-directory", ["corpus", "info", "{d}/a-dir"], 2, "is a directory", None),
    ("corpus-info-not-utf8", ["corpus", "info", "{d}/latin1.txt"], 2, "not valid UTF-8", None),
    ("corpus-info-bad-checksum", ["corpus", "info", TS], 1, "checksum mismatch for tinyshakespeare", "mirror"),
    ("corpus-unknown-subcommand", ["corpus", "fetch", TS], 2, "No such command 'fetch'", None),
    # gradcheck
    ("gradcheck-k1-above-k2", ["gradcheck", "--k1", "8", "--k2", "4", "--corpus", "{d}/good.txt"], 2, "k1=8 is larger than k2=4", None),
    ("gradcheck-corpus-empty", ["gradcheck", "--corpus", "{d}/empty.txt"], 2, "is empty", None),
    ("gradcheck-hidden-zero", ["gradcheck", "--hidden", "0", "--corpus", "{d}/good.txt"], 2, "hidden must be between 1 and", None),
    ("gradcheck-batch-beyond-text", ["gradcheck", "--corpus", "{d}/good.txt", "--hidden", "8", "--batch", "5000",
                                     "--out", "{d}/gc"], 2, "too few for 5000 stream(s)", None),
    ("gradcheck-no-checkpoint", ["gradcheck", "--corpus", "{d}/good.txt", "--steps", "100", "--every", "1000",
                                 "--out", "{d}/gc"], 2, "no checkpoint", None),
    ("gradcheck-out-is-a-file", ["gradcheck", "--corpus", "{d}/good.txt", "--hidden", "8", "--out", "{d}/a-file"], 2,
     "is a file, not a directory", None),
    ("gradcheck-lr-nan", ["gradcheck", "--lr", "nan", "--corpus", "{d}/good.txt", "--out", "{d}/gc"], 2,
     "learning rate must be a finite number", None),
    # sweep
    ("sweep-spec-missing", ["sweep", "{d}/nope.toml", "--out", "{d}/sweep"], 2, "does not exist", None),
    ("sweep-spec-device", ["sweep", "/dev/zero", "--out", "{d}/sweep"], 2, "not a regular file", None),
    ("sweep-spec-directory", ["sweep", "{d}/a-dir", "--out", "{d}/sweep"], 2, "could not read sweep spec", None),
    ("sweep-spec-not-toml", ["sweep", "{d}/bad.toml", "--out", "{d}/sweep"], 2, "not valid TOML", None),
    ("sweep-grid-empty", ["sweep", "{d}/empty-grid.toml", "--out", "{d}/sweep"], 2, "the grid is empty", None),
    ("sweep-out-is-a-file", ["sweep", "{d}/good.toml", "--out", "{d}/a-file"], 2, "a-file is a file", None),
    ("sweep-workers-zero", ["sweep", "{d}/good.toml", "--workers", "0", "--out", "{d}/sweep"], 2,
     "--workers must be at least 1", None),
    ("sweep-set-unknown-key", ["sweep", "{d}/good.toml", "--set", "hiden=8", "--out", "{d}/sweep"], 2,
     "unknown key", None),
]


def setup_row(kind: str | None, d: Path, finished: Path, monkeypatch) -> None:
    if kind is None:
        return
    if kind == "mirror":
        monkeypatch.setenv("BPTTBENCH_CORPUS_MIRROR", "SERVER")  # replaced by the test once the server runs
    elif kind == "locked":
        locked = d / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        if os.access(locked, os.W_OK):  # root writes through permission bits: fail the probe instead
            real_mkdtemp = __import__("tempfile").mkdtemp

            def refuse(*args, dir=None, **kwargs):
                if dir is not None and Path(dir) == locked:
                    raise PermissionError(13, "Permission denied", str(dir))
                return real_mkdtemp(*args, dir=dir, **kwargs)

            monkeypatch.setattr("tempfile.mkdtemp", refuse)
    elif kind in ("running", "interrupted"):
        copy_run(finished, d / kind, status=kind)
    elif kind == "no-value":
        copy_run(finished, d / kind, drop_column="value")
    elif kind == "damaged":
        copy_run(finished, d / kind, manifest_text='{"status": "compl')
    elif kind == "ok":
        copy_run(finished, d / kind)
    elif kind == "diverged":
        copy_run(finished, d / kind)
        data = json.loads((d / kind / "manifest.json").read_text())
        for unit in data["units"]:
            unit.update(status="diverged", diverged_at_step=100)
        (d / kind / "manifest.json").write_text(json.dumps(data))
        (d / kind / "curves.csv").write_text(",".join(CURVE_COLUMNS) + "\n")
    else:
        raise AssertionError(kind)


def manifests_claiming_complete(root: Path, before: set[Path]) -> list[Path]:
    out = []
    for m in root.rglob("manifest.json"):
        if m in before:
            continue
        try:
            if json.loads(m.read_text()).get("status") == "complete":
                out.append(m)
        except ValueError:
            pass
    return out


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory) -> Path:
    """One cache for the module, so the built-in corpus is extracted at most once."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def scratch(tmp_path, monkeypatch, shared_cache):
    d = tmp_path / "scratch"
    d.mkdir()
    make_files(d)
    monkeypatch.chdir(d)
    monkeypatch.setenv("BPTTBENCH_CACHE_DIR", str(shared_cache))
    for name in list(os.environ):
        if name.startswith("BPTTBENCH_") and name != "BPTTBENCH_CACHE_DIR":
            monkeypatch.delenv(name)
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    yield d
    locked = d / "locked"
    if locked.exists():
        locked.chmod(0o700)


def _row_param(row):
    name, argv, code, fragment, setup = row
    command = argv[0]
    marks = []
    if command not in cli.commands:
        marks.append(pytest.mark.skip(reason=f"MISSING COMMAND: `bpttbench {command}` does not exist yet"))
    return pytest.param(argv, code, fragment, setup, id=name, marks=marks)


@pytest.mark.parametrize("argv,code,fragment,setup", [_row_param(r) for r in BAD_INPUTS])
def test_bad_input_is_refused_in_one_line(argv, code, fragment, setup, scratch, finished_run, capsys, monkeypatch):
    d = scratch
    setup_row(setup, d, finished_run, monkeypatch)
    before_entries = set(d.iterdir())
    before_manifests = set(d.rglob("manifest.json"))
    args = [a.replace("{d}", str(d)) for a in argv]

    if setup == "mirror":
        with serving(corrupt_mirror(d.parent)) as (url, hits):
            monkeypatch.setenv("BPTTBENCH_CORPUS_MIRROR", url)
            got, out, err = invoke(args, capsys)
        assert hits == [f"/{TS}.txt"]
        assert not any(Path(os.environ["BPTTBENCH_CACHE_DIR"]).glob(f"*{TS}*")), "a corpus that failed its checksum was cached"
    else:
        got, out, err = invoke(args, capsys)

    lines = [line for line in err.splitlines() if line.strip()]
    assert got == code, err
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    assert lines[0].startswith("error: ") and fragment in lines[0], lines[0]
    assert "Traceback" not in err and out == ""
    # The line says what to do, not only what went wrong.
    assert any(word in lines[0] for word in ("; ", "--help", "use ", "choose", "give", "must")), lines[0]
    # Refused before any work: no new run or sweep directory, and nothing that claims to be complete.
    assert not manifests_claiming_complete(d, before_manifests)
    new = {p.name for p in set(d.iterdir()) - before_entries}
    assert not new, f"left behind: {sorted(new)}"
    assert not (d / "results").exists()


def test_the_table_is_long_enough():
    assert len(BAD_INPUTS) >= 25
    covered = {argv[0] for _, argv, *_ in BAD_INPUTS}
    assert {"run", "plot", "report", "gradcheck", "corpus", "sweep"} <= covered


def test_every_command_the_table_exercises_exists():
    """A missing command would skip its rows above, not fail them: fail here instead."""
    missing = sorted({argv[0] for _, argv, *_ in BAD_INPUTS if argv[0] not in cli.commands})
    assert not missing, f"bpttbench has no command(s) {', '.join(missing)}; their rows in BAD_INPUTS are skipped"


def test_a_figure_with_nothing_to_draw_is_named_not_silently_missing(finished_run, tmp_path, capsys):
    """Two runs of one configuration whose training-time ranges do not meet: no median exists on the time axis."""
    copy_run(finished_run, tmp_path / "a")
    copy_run(finished_run, tmp_path / "b")
    curves = pd.read_csv(tmp_path / "b" / "curves.csv")
    curves[["wall_s", "cpu_s"]] += 1000.0
    curves.to_csv(tmp_path / "b" / "curves.csv", index=False)
    code, out, err = invoke(["plot", str(tmp_path), "--out", str(tmp_path / "figs"), "--format", "svg"], capsys)
    assert code == 0, err
    assert str(tmp_path / "figs" / "loss_vs_iter.svg") in out.split()
    assert f"skipped {tmp_path / 'figs' / 'loss_vs_time'}: nothing to draw" in err

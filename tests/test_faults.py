"""Faults a long benchmark meets, survived without losing a result or claiming one it does not have.

- Signals during a real `bpttbench run` subprocess: SIGINT (exit 130) and SIGTERM (exit 143) keep
  the curves written so far and mark the manifest `interrupted`; SIGKILL leaves a manifest that
  still parses and does not say `complete`; `plot` (and `report`) skip such runs and say so.
- Divergence: a (scheme, seed) whose loss or weights blow up stops, is recorded `diverged` with its
  step, the others still run, and plots flag it instead of drawing garbage.
- A full disk (a 64 KiB tmpfs when we may mount one, else a file-size limit, else an injected
  ENOSPC) ends with one clear line and a manifest that parses and does not claim completion.
- Numbers: float32 at large hidden sizes and saturating weights gives finite losses or a detected
  divergence, never garbage; an untrained model's validation loss is log2(V) bits within 1%.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bpttbench.config import TrainConfig
from bpttbench.data.corpus import corpus_from_text
from bpttbench.errors import ResultsError
from bpttbench.results import read_curves
from bpttbench.training.runner import execute
from bpttbench.training.loop import DIVERGED_FACTOR, Training

from conftest import synthetic_ids, tiny_corpus
from test_cli import invoke

TINY = ["--hidden", "8", "--k2", "4", "--eval-chars", "200", "--log-every", "100"]
# A subprocess whose SIGINT raises KeyboardInterrupt even when the test runner was started with
# SIGINT ignored (as background jobs of a non-interactive shell are): what a terminal's Ctrl-C does.
CHILD = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
         "from bpttbench.cli import main; main(sys.argv[1:])")


def text(n: int = 30000) -> str:
    return "".join("abcdefghijk "[i] for i in synthetic_ids(12, n, seed=5))


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "tiny.txt"
    path.write_text(text(), encoding="utf-8")
    return path


def manifest(run: Path) -> dict:
    return json.loads((run / "manifest.json").read_text())


def data_rows(run: Path) -> int:
    try:
        with open(run / "curves.csv", encoding="utf-8") as f:
            return max(0, sum(1 for _ in f) - 1)
    except FileNotFoundError:
        return 0


def start_run(out: Path, corpus: Path, *extra: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BPTTBENCH_")}
    args = [sys.executable, "-c", CHILD, "run", "--corpus", str(corpus), "--out", str(out), *TINY, *extra]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def wait_for_rows(proc: subprocess.Popen, run: Path, rows: int, timeout: float = 60.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n = data_rows(run)
        if n >= rows:
            return n
        if proc.poll() is not None:
            raise AssertionError(f"the run ended early ({proc.returncode}): {proc.stderr.read()}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"no {rows} curve rows within {timeout} s")


def finish(proc: subprocess.Popen, timeout: float = 30.0) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"the run did not stop within {timeout} s of the signal: {err}")
    return proc.returncode, out, err


# ----------------------------------------------------------------------------- signals


@pytest.mark.parametrize("sig,code,word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")],
                         ids=["SIGINT", "SIGTERM"])
@pytest.mark.slow
def test_signal_keeps_the_curves_and_marks_the_run_interrupted(sig, code, word, corpus_file, tmp_path, capsys):
    run = tmp_path / "run"
    proc = start_run(run, corpus_file, "--scheme", "single", "--scheme", "sliding", "--budget", "60")
    seen = wait_for_rows(proc, run, 4)
    proc.send_signal(sig)
    got, out, err = finish(proc)

    assert got == code, err
    assert err.strip().splitlines()[-1].startswith(f"{word}: the results so far are kept")
    assert "Traceback" not in err
    m = manifest(run)
    assert m["status"] == "interrupted" and m["finished_at"]
    assert [u["status"] for u in m["units"]] == ["interrupted"]  # the second scheme never started
    curves = read_curves(run / "curves.csv")
    assert len(curves) >= seen and curves["value"].notna().all()
    assert (curves["scheme"] == "single").all() and curves["step"].is_monotonic_increasing
    assert m["units"][0]["rows"] == [0, len(curves)]

    # plot refuses a folder of only incomplete runs, and names why
    code2, _, err2 = invoke(["plot", str(run)], capsys)
    assert code2 == 2 and "status is 'interrupted'" in err2 and len(err2.strip().splitlines()) == 1


@pytest.mark.slow
def test_sigkill_leaves_a_manifest_that_does_not_claim_complete(corpus_file, tmp_path, capsys):
    run = tmp_path / "killed"
    proc = start_run(run, corpus_file, "--scheme", "single", "--budget", "60")
    wait_for_rows(proc, run, 4)
    proc.kill()
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    m = manifest(run)  # parses: it is only ever replaced atomically
    assert m["status"] == "running" and m["units"][0]["status"] == "running"
    assert len(read_curves(run / "curves.csv")) >= 4  # flushed per record
    assert not list(run.glob(".*.tmp")), "a temporary manifest was left behind"

    # Beside a finished run, plot draws the finished one and says which it skipped and why.
    code, stdout, stderr = invoke(["run", "--scheme", "single", "--steps", "300", "--corpus", str(corpus_file),
                                   "--out", str(tmp_path / "done"), "-q", *TINY], capsys)
    assert code == 0, stderr
    code, stdout, stderr = invoke(["plot", str(tmp_path), "--out", str(tmp_path / "figs")], capsys)
    assert code == 0, stderr
    assert f"skipped {run}: status is 'running': it crashed or is still running" in stderr
    assert str(tmp_path / "figs" / "loss_vs_iter.png") in stdout.split()

    # report too: it reports on the finished run and names the crashed one
    code, stdout, stderr = invoke(["report", str(tmp_path), "--out", str(tmp_path / "report")], capsys)
    assert code == 0, stderr
    assert f"skipped {run}: status is 'running'" in stderr


# ----------------------------------------------------------------------------- divergence


def test_divergence_is_recorded_with_its_step_and_the_others_still_run(corpus_file, tmp_path, capsys):
    """SGD at lr 50 keeps the loss finite (saturating gates) but at ~40 times uniform guessing: diverged."""
    out = tmp_path / "run"
    code, stdout, stderr = invoke(["run", "--scheme", "single", "--scheme", "sliding", "--optimizer", "sgd", "--lr", "50",
                                   "--steps", "600", "--corpus", str(corpus_file), "--out", str(out), "--json",
                                   "--hidden", "8", "--k2", "4", "--eval-chars", "200", "--log-every", "20"], capsys)
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["status"] == "complete"  # the run finished; its units say how
    assert [(r["scheme"], r["diverged"]) for r in summary["summary"]] == [("single", 1), ("sliding", 1)]
    units = manifest(out)["units"]
    assert [u["status"] for u in units] == ["diverged", "diverged"]
    for unit in units:
        assert 0 < unit["diverged_at_step"] <= 600 and unit["steps"] == unit["diverged_at_step"]
        assert unit["final_train_bpc"] is None or math.isfinite(unit["final_train_bpc"])
    assert stderr.count("diverged at step") == 2 and "--lr" in stderr
    # No garbage in curves.csv: every value recorded is finite and below the divergence line.
    curves = read_curves(out / "curves.csv")
    assert np.isfinite(curves["value"]).all()
    assert (curves["value"] <= DIVERGED_FACTOR * math.log2(12) * 1.5).all()

    # plot says so, rather than drawing nothing without a word
    code, _, stderr = invoke(["plot", str(out)], capsys)
    assert code == 2 and "diverged before its first log point" in stderr and "--lr" in stderr


def test_a_diverged_unit_beside_a_healthy_one_is_flagged_in_the_plot(tmp_path, capsys):
    corpus = corpus_from_text(text(), name="tiny")
    base = TrainConfig(hidden=8, k2=4, budget_steps=400, log_every=50, eval_chars=200)
    units = [base.replace(optimizer="sgd", lr=50.0), base.replace(scheme="sliding")]
    result = execute(units, corpus, tmp_path / "run")
    assert [u.outcome.status for u in result.units] == ["diverged", "complete"]
    code, stdout, stderr = invoke(["plot", str(tmp_path / "run"), "--format", "svg"], capsys)
    assert code == 0, stderr
    assert "single" in stderr and "diverged at step" in stderr
    svg = (tmp_path / "run" / "loss_vs_iter.svg").read_text()
    assert "sliding (1 seed)" in svg  # single diverged before its first log point: nothing of it is drawn


def test_weights_that_overflow_are_a_divergence_not_a_finite_garbage_loss():
    """float32 SGD at lr 1e16: inf appears in the LSTM weights while saturated gates keep the loss finite."""
    corpus = tiny_corpus(12, 20000, 5)
    for scheme in ("single", "sliding", "stored", "chunked"):
        cfg = TrainConfig(scheme=scheme, k1=4 if scheme == "chunked" else 1, k2=4, hidden=8, optimizer="sgd", lr=1e16,
                          budget_steps=2000, log_every=100, eval_chars=200)
        training = Training(cfg, corpus)
        records = list(training.records())
        assert training.outcome.status == "diverged", scheme
        assert all(math.isfinite(r.train_bpc) for r in records)


# ----------------------------------------------------------------------------- a full disk


@contextlib.contextmanager
def small_filesystem(where: Path, size: str = "64k"):
    """A tmpfs of `size` mounted at `where`, or None if this process may not mount."""
    where.mkdir()
    mounted = False
    if os.geteuid() == 0:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                                 capture_output=True).returncode == 0
    try:
        yield where if mounted else None
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(where)], capture_output=True)


def check_full_disk_outcome(run: Path, code: int, err: str) -> None:
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert ("No space left on device" in lines[0] or "File too large" in lines[0]) and "--out" in lines[0], lines[0]
    assert "curves.csv" in lines[0]  # the write that failed first, not a later casualty of the same disk
    assert err.strip().splitlines()[-1] == lines[0]  # the error is the last word
    m = manifest(run)
    assert m["status"] != "complete" and all(u["status"] != "complete" or u is not m["units"][-1] for u in m["units"])
    with pytest.raises(ResultsError, match="no complete runs"):
        from bpttbench.plot import plot_runs

        plot_runs(run, out=run.parent / "figs")
    read_curves(run / "curves.csv")  # what was written still parses


def full_disk_args(corpus_file: Path, run: Path) -> list[str]:
    return [sys.executable, "-m", "bpttbench", "run", "--corpus", str(corpus_file), "--out", str(run), "--scheme", "single",
            "--steps", "20000", "--hidden", "8", "--k2", "4", "--eval-chars", "200", "--log-every", "5"]


def clean_env() -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith("BPTTBENCH_")}


@pytest.mark.slow
def test_full_disk_ends_with_one_line_and_no_complete_claim(corpus_file, tmp_path):
    """A real full filesystem: a 64 KiB tmpfs (root only), filled by curves.csv after a few hundred rows."""
    with small_filesystem(tmp_path / "small") as fs:
        if fs is None:
            pytest.skip("cannot mount a tmpfs here (not root, or no CAP_SYS_ADMIN); the file-size limit test stands in")
        run = fs / "run"
        proc = subprocess.run(full_disk_args(corpus_file, run), capture_output=True, text=True, timeout=120, env=clean_env())
        check_full_disk_outcome(run, proc.returncode, proc.stderr)


@pytest.mark.slow
def test_file_size_limit_ends_with_one_line_and_no_complete_claim(corpus_file, tmp_path):
    """RLIMIT_FSIZE of 64 KiB in the child: writes beyond it fail with EFBIG (works without root)."""
    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    run = tmp_path / "run"
    proc = subprocess.run(full_disk_args(corpus_file, run), capture_output=True, text=True, timeout=120, env=clean_env(),
                          preexec_fn=limit)
    check_full_disk_outcome(run, proc.returncode, proc.stderr)
    assert manifest(run)["status"] == "failed"  # here the manifest still fits: it says how the run ended


def test_injected_enospc_in_the_manifest_keeps_the_previous_one(corpus_file, tmp_path, capsys, monkeypatch):
    """The manifest is replaced atomically: a write that fails leaves the previous, parseable one."""
    import bpttbench.files as files

    real = files.atomic_write
    calls = {"n": 0}

    def failing(path, write, *, binary=False):
        calls["n"] += 1
        if Path(path).name == "manifest.json" and calls["n"] > 2:  # the first two: start, first unit
            raise files.write_error(Path(path), OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
        return real(path, write, binary=binary)

    monkeypatch.setattr(files, "atomic_write", failing)
    run = tmp_path / "run"
    code, _, err = invoke(["run", "--scheme", "single", "--steps", "300", "--corpus", str(corpus_file), "--out", str(run),
                           "-q", *TINY], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "No space left on device" in lines[0] and "free space" in lines[0], err
    m = manifest(run)
    assert m["status"] == "running" and m["units"][0]["status"] == "running"


# ----------------------------------------------------------------------------- numbers


def test_untrained_validation_loss_is_log2_vocab_within_one_percent():
    for vocab, hidden, dtype in ((65, 128, "float32"), (65, 512, "float32"), (100, 64, "float64"), (12, 32, "float32")):
        corpus = tiny_corpus(vocab, 20000, seed=vocab)
        cfg = TrainConfig(hidden=hidden, dtype=dtype, budget_steps=1, eval_chars=300 if hidden > 128 else 1500)
        bpc = Training(cfg, corpus).validation_bpc()
        assert bpc == pytest.approx(math.log2(vocab), rel=0.01), (vocab, hidden, dtype)


def test_large_hidden_float32_stays_finite():
    corpus = tiny_corpus(65, 20000, seed=1)
    cfg = TrainConfig(hidden=1536, dtype="float32", budget_steps=12, log_every=4, eval_chars=20, k2=4)
    training = Training(cfg, corpus)
    records = list(training.records())
    assert training.outcome.status == "complete"
    assert all(math.isfinite(r.train_bpc) for r in records) and math.isfinite(training.outcome.final_val_bpc)
    assert np.isfinite(training.theta).all()
    assert records[0].train_bpc == pytest.approx(math.log2(65), rel=0.05)


@pytest.mark.parametrize("scale", [30.0, 1e4, 1e30])
def test_saturating_weights_give_finite_losses_or_a_divergence(scale):
    """Weights scaled until every gate saturates (and, at 1e30, until float32 products overflow)."""
    corpus = tiny_corpus(12, 20000, seed=2)
    cfg = TrainConfig(hidden=32, dtype="float32", budget_steps=600, log_every=100, eval_chars=500, k2=4)
    training = Training(cfg, corpus)
    training.theta[:] = (training.theta * np.float32(scale)).astype(np.float32)
    training.initial_theta[:] = training.theta
    records = list(training.records())
    out = training.outcome
    assert out.status in ("complete", "diverged")
    limit = DIVERGED_FACTOR * math.log2(12)
    for r in records:
        assert math.isfinite(r.train_bpc) and 0 <= r.train_bpc <= limit * 1.5
        assert r.val_bpc is None or math.isfinite(r.val_bpc)
    if out.status == "complete":
        assert np.isfinite(training.theta).all() and math.isfinite(out.final_val_bpc)
    else:
        assert out.diverged_at_step is not None and out.diverged_at_step > 0


def test_saturating_input_long_run_of_one_character():
    """One character for thousands of steps pushes the cell state one way: nothing overflows."""
    corpus = corpus_from_text("a" * 30000 + "".join("abcdefghijk "[i] for i in synthetic_ids(12, 4000, seed=3)),
                              name="saturating")
    cfg = TrainConfig(hidden=16, dtype="float32", budget_steps=20000, log_every=2000, eval_chars=300, k2=8,
                      optimizer="sgd", lr=1.0)
    training = Training(cfg, corpus)
    records = list(training.records())
    assert training.outcome.status in ("complete", "diverged")
    assert all(math.isfinite(r.train_bpc) for r in records)
    assert np.isfinite(training.theta).all() or training.outcome.status == "diverged"


@pytest.mark.slow
def test_sigterm_during_gradcheck_marks_it_interrupted(corpus_file, tmp_path):
    out = tmp_path / "gc"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BPTTBENCH_")}
    args = [sys.executable, "-c", CHILD, "gradcheck", "--corpus", str(corpus_file), "--hidden", "8", "--k2", "4",
            "--lr", "0.002", "--steps", "2000000", "--every", "500", "--fd-weights", "2", "--out", str(out)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    while not (out / "gradcheck.json").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() is not None else "slow"
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    code, _, err = finish(proc)
    assert code == 143, err
    assert err.strip().splitlines()[-1].startswith("terminated:")
    assert json.loads((out / "gradcheck.json").read_text())["status"] == "interrupted"


def test_a_signal_between_writing_a_record_and_counting_it_keeps_the_row_ranges_true(tmp_path):
    """The manifest's row range of an interrupted unit matches curves.csv, whenever the signal lands."""
    from bpttbench.results.records import Record, RunOutcome
    from bpttbench.results import RunWriter

    cfg = TrainConfig(hidden=8, k2=4, budget_steps=100)
    writer = RunWriter(tmp_path / "run", force=False, manifest={})
    key = writer.start_unit(cfg, "tiny")
    writer.add_record(key, Record(10, 10, 0.1, 3.0, 3.1))

    class WritesThenInterrupted:
        def __init__(self, inner):
            self.inner = inner

        def writerows(self, rows):
            self.inner.writerows(rows)  # buffered, not yet flushed, not yet counted
            raise KeyboardInterrupt

    writer._csv = WritesThenInterrupted(writer._csv)
    with pytest.raises(KeyboardInterrupt):
        writer.add_record(key, Record(20, 20, 0.2, 2.9, 3.0))
    writer.finish_unit(key, RunOutcome(status="interrupted", steps=20))
    writer.close("interrupted")
    m = manifest(tmp_path / "run")
    assert m["units"][0]["rows"] == [0, len(read_curves(tmp_path / "run" / "curves.csv"))] == [0, 4]

"""What runs in a Dask worker process: one grid point per task, and the worker's own state.

Everything here crosses the process boundary by reference (Dask pickles these functions by module
and name), so a worker imports this module and keeps its globals: the corpus loaded once per
process, and the sweeps asked to stop. The driver (driver.py) only ever calls in through
`client.submit` and `client.run`.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from bpttbench.config import LEGACY_VALUES, TrainConfig
from bpttbench.errors import UserError

# One thread per run: a run is one JIT loop; BLAS threads would only fight the other workers.
WORKER_ENV = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
PROGRESS_EVERY_S = 0.5  # a worker sends a run's live loss at most this often

_STOPPED: set[str] = set()  # sweep tokens whose runs must stop (set in workers by Ctrl-C in the driver)
_CORPORA: dict[str, Any] = {}  # sha256 -> Corpus, loaded once per worker process
_CORPUS_LOCK = threading.Lock()


class SweepError(UserError):
    """A sweep directory, corpus or cluster that cannot be used."""


def run_manifest(run_dir: Path) -> Path:
    from bpttbench.results import MANIFEST  # here, not at the top: results imports pandas, slow for a dry run

    return Path(run_dir) / MANIFEST


def run_status(run_dir: Path) -> str | None:
    """The status in a run directory's manifest; None when there is none (or it is unreadable)."""
    try:
        return json.loads(run_manifest(run_dir).read_text(encoding="utf-8")).get("status")
    except (OSError, ValueError, AttributeError):
        return None


def unit_outcome(run_dir: Path) -> dict | None:
    """The figures of a run directory's one unit that the sweep manifest keeps; None if unreadable."""
    try:
        manifest = json.loads(run_manifest(run_dir).read_text(encoding="utf-8"))
        unit = manifest["units"][0]
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None
    keys = ("status", "steps", "updates", "wall_s", "cpu_s", "eval_s", "compile_s", "diverged_at_step", "final_train_bpc",
            "final_val_bpc")
    clock = (unit.get("config") or {}).get("clock", LEGACY_VALUES["clock"])
    return {**{k: unit.get(k) for k in keys}, "train_s": unit.get("cpu_s" if clock == "cpu" else "wall_s")}


def request_stop(token: str) -> None:
    """Run on every worker by the driver's Ctrl-C: the sweep's runs stop at their next record."""
    _STOPPED.add(token)


def _worker_corpus(ref: dict):
    """The sweep's corpus in this worker process: loaded once, checked against the driver's checksum."""
    from bpttbench.data.corpus import load_corpus

    with _CORPUS_LOCK:
        corpus = _CORPORA.get(ref["sha256"])
        if corpus is None:
            corpus = load_corpus(ref["spec"])
            if corpus.sha256 != ref["sha256"]:
                raise SweepError(
                    f"corpus {ref['name']} on {socket.gethostname()} has sha256 {corpus.sha256[:12]}…, not the driver's "
                    f"{ref['sha256'][:12]}…; use the same Python (stdlib-docs) or put the corpus file on shared storage")
            if corpus.name != ref["name"]:
                corpus = replace(corpus, name=ref["name"])
            _CORPORA[ref["sha256"]] = corpus
    return corpus


def worker_address() -> tuple[str, str]:
    """(host, worker address) of the worker running this task; (hostname, "") outside Dask."""
    try:
        from distributed import get_worker

        address = get_worker().address
    except (ImportError, ValueError):
        return socket.gethostname(), ""
    return host_of(address), address


def host_of(address: str) -> str:
    hostport = address.split("://", 1)[-1]
    return hostport.rsplit(":", 1)[0].strip("[]") if ":" in hostport else hostport


class _TaskObserver:
    """Runs inside a task: sends the live loss to the driver and stops the run when asked."""

    def __init__(self, point_id: str, ctx: dict, hook):
        self.id = point_id
        self.ctx = ctx
        self.hook = hook
        self.last = 0.0
        try:
            from distributed import get_worker

            self.worker = get_worker()
        except (ImportError, ValueError):
            self.worker = None

    def send(self, msg: dict) -> None:
        if self.worker is not None:
            self.worker.log_event(self.ctx["topic"], {"id": self.id, **msg})

    def check_stop(self) -> None:
        if self.ctx["token"] in _STOPPED:
            raise KeyboardInterrupt

    def unit_started(self, index, cfg) -> None:
        self.check_stop()
        self.send({"event": "started", "host": worker_address()[0]})
        if self.hook:
            self.hook("started", self.id, None)

    def compiled(self, index, cfg, seconds) -> None:
        self.check_stop()

    def record(self, index, cfg, record) -> None:
        if self.hook:
            self.hook("record", self.id, record)
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY_S:
            self.last = now
            self.send({"event": "record", "step": int(record.step), "time_s": float(record.time_s(cfg.clock)),
                       "train_bpc": float(record.train_bpc),
                       "val_bpc": None if record.val_bpc is None else float(record.val_bpc)})
        self.check_stop()

    def unit_finished(self, index, cfg, outcome) -> None: ...


def run_point(point: dict, corpus_ref: dict, ctx: dict, hook=None) -> dict:
    """The task: one grid point into its own run directory. Safe to run again: a complete run
    directory is left as it is, anything else there (a killed first attempt) is replaced."""
    from bpttbench.training.runner import execute

    run_dir = Path(ctx["sweep_dir"]) / point["id"]
    host, address = worker_address()
    base = {"id": point["id"], "host": host, "worker": address}
    if run_status(run_dir) == "complete":
        return {**base, "state": "complete", "outcome": unit_outcome(run_dir), "reused": True}
    cfg = TrainConfig.from_dict(point["config"])
    corpus = _worker_corpus(corpus_ref)
    slots = ctx["slots"].get(host)
    extra = {
        "run_id": point["id"],
        # How many runs shared this machine: contention slows wall-clock results (and CPU-clock ones a little).
        "concurrent_runs": slots if slots is not None else ctx.get("default_slots", 1),
        "command": ctx["command"],
        "sweep": {"dir": ctx["sweep_dir"], "name": ctx["name"], "point_id": point["id"], "scheduler": ctx["scheduler"],
                  "worker": address, "host": host, "pid": os.getpid(),
                  "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
                  "thread_env": {k: os.environ.get(k) for k in WORKER_ENV}},
    }
    observer = _TaskObserver(point["id"], ctx, hook)
    try:
        execute([cfg], corpus, run_dir, force=run_dir.exists(), observer=observer, extra_manifest=extra)
    except KeyboardInterrupt:
        return {**base, "state": "interrupted", "outcome": unit_outcome(run_dir)}
    return {**base, "state": "complete", "outcome": unit_outcome(run_dir)}


def warm_up_kernels(configs: list[dict]) -> float:
    """Compile (or load from Numba's cache) the kernels these configurations use; seconds spent."""
    from bpttbench.training.loop import warm_up

    return sum(warm_up(TrainConfig.from_dict(c)) for c in configs)


def host_facts(path: str) -> dict:
    """Run on every worker: its host's physical cores, its thread settings, whether it can write the sweep dir."""
    import psutil

    probe = Path(path) / f".probe-{socket.gethostname()}-{os.getpid()}"
    try:
        probe.write_text("ok", encoding="utf-8")
        probe.unlink()
        writable = True
    except OSError:
        writable = False
    return {"physical_cores": psutil.cpu_count(logical=False) or os.cpu_count(), "cores": os.cpu_count(),
            "hostname": socket.gethostname(), "writable": writable,
            "thread_env": {k: os.environ.get(k) for k in WORKER_ENV}}


HEARTBEAT_FAILURE = "Failed to communicate with scheduler during heartbeat"


def drop_heartbeat_failures(record: logging.LogRecord) -> bool:
    """A logging filter: False for a worker's failed heartbeat. When the embedded cluster closes, its
    scheduler can stop before a worker's last heartbeat, which logs a traceback on the terminal after
    the sweep has ended well; a scheduler lost mid-sweep reaches the driver as an error of its own."""
    return not record.getMessage().startswith(HEARTBEAT_FAILURE)


def local_worker_plugin():
    """A worker plugin for the embedded cluster's workers: they share the terminal's process group,
    and Ctrl-C is the driver's to handle, not theirs; and a closing cluster's heartbeat race is not
    printed (drop_heartbeat_failures). Built on demand, so that importing this module (which
    `bpttbench sweep --dry-run` does) does not import distributed, which takes a second."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class LocalWorkerSetup(WorkerPlugin):
        name = "bpttbench-local-worker"

        def setup(self, worker) -> None:
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, signal.SIG_IGN)
            logging.getLogger("distributed.worker").addFilter(drop_heartbeat_failures)

    return LocalWorkerSetup()

"""The driver: runs a plan's pending points on a Dask cluster and keeps sweep.json up to date.

It holds the sweep directory's lock, starts (or connects to) the cluster, fills Numba's cache
before submitting anything, submits one task per pending point (task.run_point), records each
result as it comes back, and on Ctrl-C asks the runs in flight to close their run directories.
sweep.json is a files.Manifest: `running` while the driver works, then `complete`, `failed`
(a point failed, or the driver did) or `interrupted`.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from statistics import median

from bpttbench.errors import ConfigError
from bpttbench.files import Manifest, make_dir, one_line
from bpttbench.sweep.grid import GridPoint, SweepPlan
from bpttbench.sweep.task import (WORKER_ENV, SweepError, host_facts, host_of, local_worker_plugin, request_stop,
                                  run_manifest, run_point, run_status, unit_outcome, warm_up_kernels)

SWEEP_MANIFEST = "sweep.json"
LOCK_FILE = ".sweep.lock"
POINT_STATES = ("pending", "running", "complete", "failed", "interrupted")
STOP_GRACE_S = 10.0  # after Ctrl-C, how long in-flight runs get to close their run directories


class SweepObserver:
    """What a sweep reports as it goes; the CLI shows it, tests record it. All methods optional."""

    def warn(self, message: str) -> None: ...

    def status(self, message: str) -> None: ...

    def start(self, points: list[GridPoint], states: dict[str, str]) -> None: ...

    def point_started(self, point: GridPoint, host: str) -> None: ...

    def point_record(self, point: GridPoint, msg: dict) -> None: ...

    def point_finished(self, point: GridPoint, state: str, entry: dict) -> None: ...


@dataclass
class SweepResult:
    path: Path
    status: str  # complete, failed (some points failed), interrupted
    points: list[dict]  # the sweep manifest's entries

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in POINT_STATES}
        for p in self.points:
            out[p["state"]] += 1
        return out

    def summary(self, swept: list[str] = ()) -> list[dict]:
        """One row per configuration (everything but the seed): medians over its complete seeds."""
        groups: dict[tuple, list[dict]] = {}
        columns = ["scheme", "k1", "k2", *[k for k in swept if k not in ("k1", "k2")]]
        for p in self.points:
            groups.setdefault(tuple(p["config"][c] for c in columns), []).append(p)
        rows = []
        for key, entries in groups.items():
            done = [e["outcome"] for e in entries if e["state"] == "complete" and e.get("outcome")]

            def med(values):
                values = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
                return median(values) if values else None

            rows.append({**dict(zip(columns, key)), "runs": len(entries), "complete": len(done),
                         "failed": sum(e["state"] == "failed" for e in entries),
                         "diverged": sum(o.get("status") == "diverged" for o in done),
                         "steps": med([o.get("steps") for o in done]),
                         "steps_per_s": med([o["steps"] / o["train_s"] for o in done if o.get("steps") and o.get("train_s")]),
                         "final_train_bpc": med([o.get("final_train_bpc") for o in done]),
                         "final_val_bpc": med([o.get("final_val_bpc") for o in done])})
        return rows


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def disk_states(sweep_dir: Path, points: list[GridPoint]) -> dict[str, str]:
    """complete when the point's run directory says so, pending otherwise."""
    return {p.id: "complete" if run_status(sweep_dir / p.id) == "complete" else "pending" for p in points}


def count_complete(sweep_dir: Path, plan: SweepPlan) -> int:
    """How many of plan's points are complete in sweep_dir; a directory without sweep.json has none,
    and answers without building the points."""
    if not (Path(sweep_dir) / SWEEP_MANIFEST).exists():
        return 0
    return sum(state == "complete" for state in disk_states(sweep_dir, plan.points).values())


def check_sweep_dir(sweep_dir: Path) -> None:
    sweep_dir = Path(sweep_dir)
    if sweep_dir.exists() and not sweep_dir.is_dir():
        raise SweepError(f"{sweep_dir} is a file, not a directory; choose another --out")
    if sweep_dir.is_dir() and not (sweep_dir / SWEEP_MANIFEST).exists():
        try:
            children = [c for c in sweep_dir.iterdir() if c.name != LOCK_FILE]
        except OSError as exc:
            raise SweepError(f"could not read {sweep_dir}: {exc.strerror or exc}; check its permissions") from None
        if children:
            raise SweepError(f"{sweep_dir} holds files but no {SWEEP_MANIFEST}, so it is not a sweep; choose another --out")


def corpus_ref(corpus) -> dict:
    """How a worker finds the corpus: by absolute path for a file, by name otherwise; checked by sha256."""
    source = Path(corpus.source) if corpus.source else None
    spec = str(source) if source is not None and source.is_absolute() and source.is_file() else corpus.name
    return {"spec": spec, "name": corpus.name, "sha256": corpus.sha256}


class _Lock:
    """An exclusive flock on <sweep dir>/.sweep.lock: one driver per sweep directory (released by the kernel if killed)."""

    def __init__(self, sweep_dir: Path):
        self.path = Path(sweep_dir) / LOCK_FILE
        self.fd = None

    def __enter__(self):
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            return self
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(self.fd, 64).decode(errors="replace").strip() or "?"
            os.close(self.fd)
            self.fd = None
            raise SweepError(f"another sweep (pid {holder}) is running in {self.path.parent}; wait for it or choose another --out") from None
        os.ftruncate(self.fd, 0)
        os.write(self.fd, str(os.getpid()).encode())
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class _Cluster:
    """A Dask client on an embedded LocalCluster or on a scheduler by address."""

    def __init__(self, workers: int | None, scheduler: str | None, observer: SweepObserver):
        self.workers, self.scheduler, self.observer = workers, scheduler, observer
        self.cluster = self.client = None

    def __enter__(self):
        from distributed import Client, LocalCluster

        if self.scheduler:
            try:
                self.client = Client(self.scheduler, timeout="20s", set_as_default=False)
            except (OSError, TimeoutError, ValueError) as exc:
                raise SweepError(f"could not reach the Dask scheduler at {self.scheduler}: {one_line(exc)}; "
                                 "start one with `dask scheduler` or check the address") from None
            try:
                self.client.wait_for_workers(1, timeout=60)
            except TimeoutError:
                raise SweepError(f"no Dask workers joined {self.scheduler} within 60 s; start some with "
                                 f"`dask worker {self.scheduler} --nthreads 1`") from None
        else:
            self.cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                        dashboard_address=None, env=dict(WORKER_ENV), host="127.0.0.1")
            self.client = Client(self.cluster, set_as_default=False)
            plugin = local_worker_plugin()
            self.client.register_plugin(plugin, name=plugin.name)
        return self

    def __exit__(self, *exc):
        for thing in (self.client, self.cluster):
            if thing is not None:
                try:
                    thing.close()
                except Exception:  # closing a broken cluster must not hide why it broke
                    pass

    @property
    def description(self) -> str:
        return self.scheduler or f"LocalCluster({self.workers} worker processes × 1 thread)"

    def one_worker_per_host(self) -> list[str]:
        one: dict[str, str] = {}
        for address in self.client.scheduler_info(n_workers=-1)["workers"]:
            one.setdefault(host_of(address), address)
        return list(one.values())


def _check_workers(cluster: _Cluster, sweep_dir: Path) -> dict[str, int]:
    """Per host: how many runs can share it (its workers' threads); warns about oversubscription."""
    client, observer = cluster.client, cluster.observer
    workers = client.scheduler_info(n_workers=-1)["workers"]
    facts = client.run(host_facts, str(sweep_dir))
    slots: dict[str, int] = {}
    per_host: dict[str, dict] = {}
    for address, info in workers.items():
        host = host_of(address)
        slots[host] = slots.get(host, 0) + int(info.get("nthreads", 1))
        fact = facts.get(address)
        if fact:
            per_host.setdefault(host, fact)
            if not fact["writable"]:
                raise SweepError(f"worker {address} ({fact['hostname']}) cannot write {sweep_dir}; put --out on a "
                                 "filesystem every worker mounts at the same path")
            if cluster.scheduler and any(v != "1" for v in fact["thread_env"].values()):
                observer.warn(f"worker {address} runs without NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1; "
                              "start workers with those set so runs do not fight over cores")
        if int(info.get("nthreads", 1)) > 1:
            observer.warn(f"worker {address} has {info['nthreads']} threads; runs hold a core each, start workers with "
                          "`--nthreads 1` (and `--nworkers N` for N per machine)")
    for host, n in slots.items():
        cores = per_host.get(host, {}).get("physical_cores")
        if cores and n > cores:
            observer.warn(f"{n} runs at once on {host}, which has {cores} physical cores: runs will share cores "
                          "and their wall-clock results will be slower than alone")
    return slots


def check_cluster(workers: int | None, scheduler: str | None) -> None:
    """Refuse --workers with --scheduler (the cluster has its own) and a worker count below 1."""
    if scheduler and workers:
        raise ConfigError("--workers sizes the local cluster; with --scheduler the cluster's own workers are used")
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")


def run_sweep(plan: SweepPlan, sweep_dir: Path, *, workers: int | None = None, scheduler: str | None = None,
              observer: SweepObserver | None = None, hook=None, stop_grace: float = STOP_GRACE_S) -> SweepResult:
    """Run every pending grid point of plan on Dask, writing sweep_dir as results come back.

    Points already complete on disk are kept as they are. A task that raises is recorded as
    failed and the sweep goes on. KeyboardInterrupt asks the running tasks to stop, waits up to
    stop_grace seconds for them to close their run directories, marks the sweep interrupted and
    propagates. `hook(event, point_id, record)` is called inside the task (tests use it to inject faults).
    """
    check_cluster(workers, scheduler)
    workers = workers or default_workers()
    sweep_dir = Path(sweep_dir).resolve()
    check_sweep_dir(sweep_dir)
    make_dir(sweep_dir)
    with _Lock(sweep_dir):
        driver = SweepDriver(plan, sweep_dir, workers=None if scheduler else workers, scheduler=scheduler,
                             observer=observer or SweepObserver(), hook=hook, stop_grace=stop_grace)
        return driver.run()


class SweepDriver:
    """One sweep over a locked sweep directory: the points' states, sweep.json, and the cluster while it runs."""

    def __init__(self, plan: SweepPlan, sweep_dir: Path, *, workers: int | None, scheduler: str | None,
                 observer: SweepObserver, hook=None, stop_grace: float = STOP_GRACE_S):
        self.plan, self.sweep_dir, self.observer, self.hook, self.stop_grace = plan, sweep_dir, observer, hook, stop_grace
        self.workers, self.scheduler = workers, scheduler
        self.by_id = {p.id: p for p in plan.points}
        self.states = disk_states(sweep_dir, plan.points)
        self.entries = {p.id: self._entry(p, self.states[p.id]) for p in plan.points}
        self.manifest = Manifest(sweep_dir / SWEEP_MANIFEST, {
            "name": plan.spec.name, "status": None, "spec": plan.spec.to_dict(), "spec_text": plan.spec.text,
            "corpus": plan.corpus.info(), "scheduler": scheduler or "local", "workers": workers,
            "command": sys.argv, "started_at": None, "updated_at": None, "finished_at": None,
            "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "refused_combinations": plan.refused, "counts": {}, "points": [],
        })
        self.token = uuid.uuid4().hex
        self.topic = f"bpttbench-sweep-{self.token}"
        self.events: list[dict] = []  # filled by the client's event thread, drained by the driver's
        self.events_lock = threading.Lock()
        self.futures: dict = {}  # future -> GridPoint

    def _entry(self, point: GridPoint, state: str) -> dict:
        complete = state == "complete"
        return {"id": point.id, "config": point.cfg.to_dict(), "state": state, "reused": complete,
                "outcome": unit_outcome(self.sweep_dir / point.id) if complete else None, "host": None, "error": None}

    def result(self) -> SweepResult:
        return SweepResult(self.sweep_dir, self.manifest.status, list(self.entries.values()))

    def _progress(self) -> dict:
        points = list(self.entries.values())
        return {"points": points, "counts": SweepResult(self.sweep_dir, self.manifest.status, points).counts()}

    def save(self, **changes) -> None:
        self.manifest.save(**self._progress(), **changes)

    def run(self) -> SweepResult:
        strays = [d.name for d in self.sweep_dir.iterdir()
                  if d.is_dir() and d.name not in self.by_id and run_manifest(d).exists()]
        if strays:
            self.observer.warn(f"{len(strays)} run directories in {self.sweep_dir} are not in this grid (an earlier spec?); "
                               "plot and report will include them")
        for reason in self.plan.refused:
            self.observer.warn(f"left out of the grid: {reason}")
        self.manifest.data.update(self._progress())
        with self.manifest:  # running now; interrupted or failed if an exception leaves this block
            self.observer.start(self.plan.points, dict(self.states))
            todo = [p for p in self.plan.points if self.states[p.id] != "complete"]
            if todo:
                try:
                    self._execute(todo)
                except BaseException:
                    for entry in self.entries.values():
                        if entry["state"] == "running":
                            entry["state"] = "interrupted"
                    self.manifest.data.update(self._progress())
                    raise
            failed = any(e["state"] != "complete" for e in self.entries.values())
            self.manifest.finish("failed" if failed else "complete", **self._progress())
        return self.result()

    def _execute(self, todo: list[GridPoint]) -> None:
        # Fill Numba's on-disk cache here, once, before any worker needs it.
        kinds = [c.to_dict() for c in {(p.cfg.scheme, p.cfg.inject, p.cfg.optimizer, p.cfg.dtype): p.cfg for p in todo}.values()]
        self.observer.status(f"compiling kernels for {len(kinds)} scheme/dtype combination(s)")
        warm_up_kernels(kinds)
        self.observer.status(f"starting {'a connection to ' + self.scheduler if self.scheduler else f'{self.workers} local workers'}")
        with _Cluster(self.workers, self.scheduler, self.observer) as cluster:
            try:
                slots = _check_workers(cluster, self.sweep_dir)
                if self.scheduler:
                    self._warm_up_workers(cluster, kinds)
                self.save(workers=sum(slots.values()), hosts=slots)
                cluster.client.subscribe_topic(self.topic, self._on_event)
                self._submit(cluster, todo, slots)
                self._collect_all(cluster)
            except KeyboardInterrupt:
                self._stop(cluster)
                # Marked before the cluster closes, which can take seconds (and meet a second Ctrl-C).
                self.manifest.finish("interrupted", **self._progress())
                raise
            finally:
                try:
                    cluster.client.unsubscribe_topic(self.topic)
                except Exception:
                    pass

    def _warm_up_workers(self, cluster: _Cluster, kinds: list[dict]) -> None:
        """Other machines have their own caches: warm each from one worker, before the grid floods them."""
        client = cluster.client
        warm = [client.submit(warm_up_kernels, kinds, workers=[a], pure=False, allow_other_workers=True,
                              key=f"bpttbench-warm-up-{host_of(a)}-{self.token}")
                for a in cluster.one_worker_per_host()]
        for future in warm:
            try:
                future.result()
            except Exception as exc:
                raise SweepError(f"compiling the kernels on a worker failed: {one_line(exc)}") from None

    def _submit(self, cluster: _Cluster, todo: list[GridPoint], slots: dict[str, int]) -> None:
        ctx = {"sweep_dir": str(self.sweep_dir), "token": self.token, "topic": self.topic, "slots": slots,
               "name": self.plan.spec.name, "default_slots": 1, "command": sys.argv,
               "scheduler": self.scheduler or "local"}
        ref = corpus_ref(self.plan.corpus)
        for p in todo:
            future = cluster.client.submit(run_point, {"id": p.id, "config": p.cfg.to_dict()}, ref, ctx, self.hook,
                                           key=f"bpttbench-{p.id}-{self.token[:8]}", pure=False)
            self.futures[future] = p
        self.observer.status(f"{len(todo)} runs submitted to {cluster.description}")

    def _on_event(self, event) -> None:
        with self.events_lock:
            self.events.append(event[1])

    def _drain(self) -> None:
        """Show the events the workers sent since the last drain; a run's first event marks it running."""
        with self.events_lock:
            batch, self.events[:] = list(self.events), []
        for msg in batch:
            point = self.by_id.get(msg.get("id"))
            if point is None:
                continue
            entry = self.entries[point.id]
            if msg.get("event") == "started":
                if entry["state"] == "pending":
                    entry["state"], entry["host"] = "running", msg.get("host")
                    self.save()
                self.observer.point_started(point, msg.get("host") or "?")
            elif msg.get("event") == "record":
                self.observer.point_record(point, msg)

    def _collect_all(self, cluster: _Cluster) -> None:
        from distributed import as_completed

        ac = as_completed(list(self.futures), loop=cluster.client.loop)
        while not ac.is_empty():
            self._drain()
            if not ac.has_ready():
                time.sleep(0.1)
                continue
            for future in ac.next_batch(block=False):
                self._drain()
                self._collect(future, self.futures[future])
                self.save()
        self._drain()

    def _collect(self, future, point: GridPoint) -> None:
        from distributed.client import FutureCancelledError

        entry = self.entries[point.id]
        try:
            result = future.result()
        except FutureCancelledError:
            entry["state"] = "interrupted" if entry["state"] == "running" else "pending"
            return
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            message = one_line(exc)
            if type(exc).__name__ == "KilledWorker":
                message = "its worker died each time it ran it (killed, or out of memory); see the worker logs"
            entry.update(state="failed", error=message)
            self.observer.point_finished(point, "failed", entry)
            return
        entry.update(state=result["state"], host=result.get("host"), outcome=result.get("outcome"),
                     reused=bool(result.get("reused")), error=None)
        self.observer.point_finished(point, result["state"], entry)

    def _stop(self, cluster: _Cluster) -> None:
        """Ctrl-C: ask running tasks to close their run directories, keep what finished, cancel the rest."""
        if not self.futures:
            return
        self.observer.status("stopping: the runs in flight close their run directories as interrupted")
        client = cluster.client
        try:
            client.run(request_stop, self.token)
            running = [f for f, p in self.futures.items() if self.entries[p.id]["state"] == "running"]
            queued = [f for f, p in self.futures.items() if self.entries[p.id]["state"] == "pending"]
            client.cancel(queued)
            deadline = time.monotonic() + self.stop_grace
            while time.monotonic() < deadline and not all(f.done() for f in running):
                time.sleep(0.05)
        except BaseException:  # a second Ctrl-C or a broken cluster: keep what is known
            pass
        for future, point in self.futures.items():
            entry = self.entries[point.id]
            if entry["state"] in ("complete", "failed"):
                continue
            if future.done() and future.status == "finished":
                try:
                    self._collect(future, point)
                except BaseException:
                    pass
            if entry["state"] == "running":
                entry["state"] = "interrupted"

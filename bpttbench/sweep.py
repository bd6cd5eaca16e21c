"""Sweeps: a grid of runs from a TOML spec, one Dask task per (configuration, seed).

A spec, read with tomllib (keys as in W&B sweeps, `method = "grid"` only):

    method = "grid"
    corpus = "tinyshakespeare"        # a built-in name or a text file (default: stdlib-docs)
    budget = "30s"                    # wall-clock seconds per run, or `steps = 20000` instead (default: 60s)
    seeds = 3                         # a count (seeds 0, 1, 2) or a list [0, 4, 7] (default: 1)
    schemes = ["single", "sliding"]   # or "all" (default: single and sliding)

    [parameters.k2]
    values = [5, 10, 20, 50]
    [parameters.lr]
    value = 2e-3

`parameters` may set any TrainConfig field except scheme, seed and the budget. The grid is the
product of schemes, parameter values and seeds; as in `bpttbench run`, chunked takes k1 = k2 unless
k1 is a parameter. Combinations TrainConfig refuses (k1 > k2, say) are left out with a warning.
rtrl and uoro do not use k2: their k2 is set to 1 (results.ONLINE_K2), so a grid over k2 runs each
of their configurations once, not once per k2. Every point is checked against the schemes' size
limits (rtrl's memory) before anything runs.

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

References:
  W&B sweep configuration: https://docs.wandb.ai/guides/sweeps/define-sweep-configuration
  Dask distributed: https://distributed.dask.org (LocalCluster, as_completed, worker plugins, events)
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import re
import signal
import socket
import sys
import threading
import time
import tomllib
import uuid
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from statistics import median
from typing import Any, Callable

from bpttbench.config import DTYPES, INJECTS, ONLINE_SCHEMES, OPTIMIZERS, TrainConfig, format_duration, parse_duration
from bpttbench.errors import ConfigError, ResultsError, UserError
from bpttbench.files import write_json as _write_json
from bpttbench.results import MANIFEST, ONLINE_K2

SWEEP_MANIFEST = "sweep.json"
LOCK_FILE = ".sweep.lock"
POINT_STATES = ("pending", "running", "complete", "failed", "interrupted")
DEFAULT_BUDGET = "60s"
DEFAULT_SCHEMES = ("single", "sliding")

TOP_KEYS = ("method", "name", "description", "corpus", "budget", "steps", "seeds", "schemes", "parameters")
# Set elsewhere in a spec than under [parameters]: where to set it instead.
NOT_PARAMETERS = {"scheme": "schemes", "seed": "seeds", "budget_seconds": "budget", "budget_steps": "steps"}
PARAMETER_TYPES: dict[str, Any] = {
    "k1": int, "k2": int, "hidden": int, "batch": int, "log_every": int, "eval_every": int, "eval_chars": int,
    "lr": float, "clip": float, "inject": INJECTS, "optimizer": OPTIMIZERS, "dtype": DTYPES,
}
assert set(PARAMETER_TYPES) | set(NOT_PARAMETERS) == {f.name for f in fields(TrainConfig)}

# One thread per run: a run is one JIT loop; BLAS threads would only fight the other workers.
WORKER_ENV = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
PROGRESS_EVERY_S = 0.5  # a worker sends a run's live loss at most this often
STOP_GRACE_S = 10.0  # after Ctrl-C, how long in-flight runs get to close their run directories


class SpecError(UserError):
    """A sweep spec that cannot be read or used; the message names the key and the line."""


class SweepError(UserError):
    """A sweep directory or cluster that cannot be used."""


# ----------------------------------------------------------------------------- spec


@dataclass(frozen=True)
class SweepSpec:
    name: str
    corpus: str | None
    budget_seconds: float | None
    budget_steps: int | None
    seeds: tuple[int, ...]
    schemes: tuple[str, ...]
    parameters: dict[str, tuple] = field(default_factory=dict)  # name -> values, spec order
    source: str = ""  # the spec file, for messages and the manifest
    text: str = ""  # the spec as written

    @property
    def swept(self) -> list[str]:
        """The parameters that take more than one value."""
        return [k for k, v in self.parameters.items() if len(v) > 1]

    def to_dict(self) -> dict:
        return {"name": self.name, "corpus": self.corpus, "budget_seconds": self.budget_seconds,
                "budget_steps": self.budget_steps, "seeds": list(self.seeds), "schemes": list(self.schemes),
                "parameters": {k: list(v) for k, v in self.parameters.items()}, "source": self.source}


def _key_lines(text: str) -> list[tuple[int, tuple[str, ...]]]:
    """(line number, dotted key path) for every table header and key assignment in TOML text."""
    out = []
    table: tuple[str, ...] = ()
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        header = re.match(r"^\[\[?\s*([^\[\]]+?)\s*\]\]?\s*(#.*)?$", stripped)
        if header:
            table = _split_key(header.group(1))
            out.append((number, table))
            continue
        key = re.match(r"^((?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*'))*)\s*=", stripped)
        if key:
            out.append((number, table + _split_key(key.group(1))))
    return out


def _split_key(dotted: str) -> tuple[str, ...]:
    parts = re.findall(r"\"[^\"]*\"|'[^']*'|[^.]+", dotted)
    return tuple(p.strip().strip("\"'") for p in parts if p.strip())


class _Where:
    """Says where a key was set: the spec's line, or the --set override."""

    def __init__(self, text: str, source: str, overridden: set[tuple[str, ...]]):
        self.lines = _key_lines(text)
        self.source = source
        self.overridden = overridden

    def __call__(self, *path: str) -> str:
        for n in range(len(path), 0, -1):
            if path[:n] in self.overridden:
                shown = path[1] if path[0] == "parameters" and len(path) > 1 else path[0]
                return f"--set {shown}"
        for n in range(len(path), 0, -1):
            for number, key in self.lines:
                if key == path[:n]:
                    return f"{self.source}, line {number}"
        return self.source

    def error(self, path: tuple[str, ...], problem: str) -> SpecError:
        return SpecError(f"{self(*path)}: {'.'.join(path)}: {problem}")


def parse_override(text: str) -> tuple[str, list]:
    """`k2=5,10,20` -> ('k2', [5, 10, 20]); numbers become int or float, anything else stays text."""
    if "=" not in text:
        raise SpecError(f"--set {text}: expected KEY=VALUE[,VALUE...], e.g. --set k2=5,10,20")
    key, _, raw = text.partition("=")
    key = key.strip()
    items = [item.strip() for item in raw.split(",")]
    if not key or not raw.strip() or any(not item for item in items):
        raise SpecError(f"--set {text}: expected KEY=VALUE[,VALUE...] with no empty values, e.g. --set k2=5,10,20")

    def number(item: str):
        for kind in (int, float):
            try:
                return kind(item)
            except ValueError:
                pass
        return item

    return key, [number(item) for item in items]


def _apply_overrides(raw: dict, overrides: list[tuple[str, list]]) -> set[tuple[str, ...]]:
    overridden: set[tuple[str, ...]] = set()
    for key, values in overrides:
        if key in NOT_PARAMETERS:
            raise SpecError(f"--set {key}: set `{NOT_PARAMETERS[key]}` instead, e.g. --set {NOT_PARAMETERS[key]}=...")
        if key in PARAMETER_TYPES:
            params = raw.setdefault("parameters", {})
            if not isinstance(params, dict):
                raise SpecError("--set: the spec's `parameters` is not a table; fix the spec first")
            params[key] = {"values": values}
            overridden.add(("parameters", key))
        elif key in ("seeds", "schemes"):
            raw[key] = values[0] if key == "seeds" and len(values) == 1 else values
            overridden.add((key,))
        elif key in ("budget", "steps", "corpus", "method", "name", "description"):
            if len(values) != 1:
                raise SpecError(f"--set {key}: takes one value, got {len(values)}")
            raw[key] = values[0] if key != "corpus" else str(values[0])
            if key in ("budget", "steps"):  # one replaces the other
                raw.pop("steps" if key == "budget" else "budget", None)
            overridden.add((key,))
        else:
            known = ", ".join([*(k for k in TOP_KEYS if k != "parameters"), *PARAMETER_TYPES])
            raise SpecError(f"--set {key}: unknown key; known keys are {known}")
    return overridden


def parse_spec(text: str, source: str = "spec", overrides=()) -> SweepSpec:
    """A SweepSpec from TOML text and `--set` overrides (strings KEY=V1,V2); SpecError naming key and line."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        where = re.search(r"\(at line (\d+), column (\d+)\)", message)
        problem = re.sub(r"\s*\(at line \d+, column \d+\)", "", message).strip() or "invalid TOML"
        at = f", line {where.group(1)}, column {where.group(2)}" if where else ""
        raise SpecError(f"{source}{at}: not valid TOML: {problem}; see https://toml.io for the syntax") from None
    overridden = _apply_overrides(raw, [parse_override(o) if isinstance(o, str) else o for o in overrides])
    where = _Where(text, source, overridden)

    for key in raw:
        if key not in TOP_KEYS:
            hint = f"; did you mean [parameters.{key}]?" if key in PARAMETER_TYPES else ""
            hint = f"; use `{NOT_PARAMETERS[key]}`" if key in NOT_PARAMETERS else hint
            raise where.error((key,), f"unknown key{hint or '; known keys are ' + ', '.join(TOP_KEYS)}")

    method = raw.get("method", "grid")
    if method != "grid":
        raise where.error(("method",), f"only \"grid\" is supported, got {method!r}")
    name = raw.get("name", Path(source).stem or "sweep")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._=+-]*", name):
        raise where.error(("name",), f"must be a name of letters, digits and . _ = + -, got {name!r}")
    if not isinstance(raw.get("description", ""), str):
        raise where.error(("description",), "must be a string")
    corpus = raw.get("corpus")
    if corpus is not None and (not isinstance(corpus, str) or not corpus.strip()):
        raise where.error(("corpus",), f"must be a corpus name or a file path (a string), got {corpus!r}")

    if "budget" in raw and "steps" in raw:
        raise where.error(("steps",), "give either `budget` (seconds) or `steps`, not both")
    budget_seconds = budget_steps = None
    if "steps" in raw:
        budget_steps = raw["steps"]
        if not isinstance(budget_steps, int) or isinstance(budget_steps, bool) or budget_steps < 1:
            raise where.error(("steps",), f"must be a positive whole number of steps, got {budget_steps!r}")
    else:
        budget = raw.get("budget", DEFAULT_BUDGET)
        if isinstance(budget, bool) or not isinstance(budget, (str, int, float)):
            raise where.error(("budget",), f"must be seconds or a duration like \"90s\" or \"2m\", got {budget!r}")
        try:
            budget_seconds = parse_duration(budget)
        except ConfigError as exc:
            raise where.error(("budget",), str(exc)) from None

    seeds = raw.get("seeds", 1)
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds < 1:
            raise where.error(("seeds",), f"a count must be at least 1, got {seeds}")
        seed_list = tuple(range(seeds))
    elif isinstance(seeds, list) and seeds and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        seed_list = tuple(dict.fromkeys(seeds))
    else:
        raise where.error(("seeds",), f"must be a count (3 = seeds 0, 1, 2) or a non-empty list of seeds >= 0, got {seeds!r}")

    from bpttbench.runner import expand_schemes

    schemes = raw.get("schemes", list(DEFAULT_SCHEMES))
    if isinstance(schemes, str):
        schemes = [schemes]
    if not isinstance(schemes, list) or not schemes or not all(isinstance(s, str) for s in schemes):
        raise where.error(("schemes",), f"must be a scheme name, \"all\", or a non-empty list of names, got {schemes!r}")
    try:
        scheme_list = tuple(expand_schemes(schemes))
    except ConfigError as exc:
        raise where.error(("schemes",), str(exc)) from None

    params = raw.get("parameters", {})
    if not isinstance(params, dict):
        raise where.error(("parameters",), "must be a table of [parameters.NAME] sections")
    parameters: dict[str, tuple] = {}
    for key, entry in params.items():
        path = ("parameters", key)
        if key in NOT_PARAMETERS:
            raise where.error(path, f"not a parameter; set the top-level `{NOT_PARAMETERS[key]}` instead")
        if key not in PARAMETER_TYPES:
            raise where.error(path, f"unknown parameter; known parameters are {', '.join(PARAMETER_TYPES)}")
        if not isinstance(entry, dict):
            raise where.error(path, f"must be a table with `value` or `values`, e.g. [parameters.{key}] values = [...]")
        for sub in entry:
            if sub not in ("value", "values"):
                raise where.error(path + (sub,), "unknown key; a grid parameter has `value` or `values` (distributions need method random, which is not supported)")
        if ("value" in entry) == ("values" in entry):
            raise where.error(path, "give exactly one of `value = x` or `values = [x, y, ...]`")
        if "values" in entry:
            values = entry["values"]
            if not isinstance(values, list):
                raise where.error(path + ("values",), f"must be a list, got {values!r}")
            if not values:
                raise where.error(path + ("values",), "is empty: the grid would have no points; give at least one value")
            sub = "values"
        else:
            values, sub = [entry["value"]], "value"
        parameters[key] = tuple(dict.fromkeys(_check_value(key, v, lambda p: where.error(path + (sub,), p)) for v in values))
    return SweepSpec(name=name, corpus=corpus, budget_seconds=budget_seconds, budget_steps=budget_steps,
                     seeds=seed_list, schemes=scheme_list, parameters=parameters, source=source, text=text)


def _check_value(key: str, value, error: Callable[[str], SpecError]):
    kind = PARAMETER_TYPES[key]
    if kind is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise error(f"must be whole numbers, got {value!r}")
        return value
    if kind is float:
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise error(f"must be finite numbers, got {value!r}")
        return float(value)
    if not isinstance(value, str) or value not in kind:
        raise error(f"must be one of {', '.join(kind)}, got {value!r}")
    return value


def load_spec(path: Path, overrides=()) -> SweepSpec:
    path = Path(path)
    if path.exists() and not (path.is_file() or path.is_dir()):  # /dev/zero or a pipe: read forever
        raise SpecError(f"sweep spec {path} is not a regular file (a device, pipe or socket); give the path of a TOML file")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SpecError(f"sweep spec {path} does not exist; give the path of a TOML file") from None
    except OSError as exc:
        raise SpecError(f"could not read sweep spec {path}: {exc.strerror or exc}; give the path of a readable TOML file") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SpecError(f"sweep spec {path} is not UTF-8 text; save it as UTF-8 TOML") from None
    return parse_spec(text, str(path), overrides)


# ----------------------------------------------------------------------------- grid


@dataclass(frozen=True)
class GridPoint:
    id: str
    cfg: TrainConfig


def point_id(cfg: TrainConfig, corpus_sha256: str) -> str:
    """A readable prefix, then a hash of everything that defines the run: configuration and corpus."""
    blob = json.dumps({"config": cfg.to_dict(), "corpus_sha256": corpus_sha256}, sort_keys=True)
    digest = hashlib.sha256(blob.encode("utf-8")).hexdigest()[:12]
    return f"{cfg.scheme}-k1={cfg.k1}-k2={cfg.k2}-seed{cfg.seed}-{digest}"


def expand_grid(spec: SweepSpec, corpus_sha256: str) -> tuple[list[GridPoint], list[str]]:
    """The grid points, schemes outermost and seeds innermost; and why left-out combinations were refused."""
    base = TrainConfig(budget_seconds=spec.budget_seconds, budget_steps=spec.budget_steps)
    names = list(spec.parameters)
    points: dict[str, GridPoint] = {}
    refused: dict[str, int] = {}
    for scheme in spec.schemes:
        for combo in itertools.product(*(spec.parameters[n] for n in names)):
            values = dict(zip(names, combo))
            if scheme == "chunked" and "k1" not in values:
                values["k1"] = values.get("k2", base.k2)
            if scheme in ONLINE_SCHEMES:  # k2 unused: one point however many k2 the grid has
                values["k2"] = ONLINE_K2
            for seed in spec.seeds:
                try:
                    cfg = base.replace(scheme=scheme, seed=seed, **values)
                except ConfigError as exc:
                    refused[str(exc)] = refused.get(str(exc), 0) + 1
                    continue
                pid = point_id(cfg, corpus_sha256)
                points.setdefault(pid, GridPoint(pid, cfg))
    reasons = [f"{n} × {reason}" if n > 1 else reason for reason, n in refused.items()]
    if not points:
        why = f": every combination is refused, e.g. {next(iter(refused))}" if refused else ""
        raise SpecError(f"{spec.source}: the grid is empty{why}")
    return list(points.values()), reasons


def run_status(run_dir: Path) -> str | None:
    """The status in a run directory's manifest; None when there is none (or it is unreadable)."""
    try:
        return json.loads((Path(run_dir) / MANIFEST).read_text(encoding="utf-8")).get("status")
    except (OSError, ValueError, AttributeError):
        return None


def _unit_outcome(run_dir: Path) -> dict | None:
    try:
        manifest = json.loads((Path(run_dir) / MANIFEST).read_text(encoding="utf-8"))
        unit = manifest["units"][0]
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None
    keys = ("status", "steps", "updates", "wall_s", "eval_s", "compile_s", "diverged_at_step", "final_train_bpc", "final_val_bpc")
    return {k: unit.get(k) for k in keys}


# ----------------------------------------------------------------------------- in the worker

_STOPPED: set[str] = set()  # sweep tokens whose runs must stop (set in workers by Ctrl-C in the driver)
_CORPORA: dict[str, Any] = {}  # sha256 -> Corpus, loaded once per worker process
_CORPUS_LOCK = threading.Lock()


def _request_stop(token: str) -> None:
    _STOPPED.add(token)


def _worker_corpus(ref: dict):
    """The sweep's corpus in this worker process: loaded once, checked against the driver's checksum."""
    from bpttbench.corpus import load_corpus

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


def _worker_address() -> tuple[str, str]:
    try:
        from distributed import get_worker

        address = get_worker().address
    except (ImportError, ValueError):
        return socket.gethostname(), ""
    return _host_of(address), address


def _host_of(address: str) -> str:
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
        self.send({"event": "started", "host": _worker_address()[0]})
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
            self.send({"event": "record", "step": int(record.step), "wall_s": float(record.wall_s),
                       "train_bpc": float(record.train_bpc),
                       "val_bpc": None if record.val_bpc is None else float(record.val_bpc)})
        self.check_stop()

    def unit_finished(self, index, cfg, outcome) -> None: ...


def run_point(point: dict, corpus_ref: dict, ctx: dict, hook=None) -> dict:
    """The task: one grid point into its own run directory. Safe to run again: a complete run
    directory is left as it is, anything else there (a killed first attempt) is replaced."""
    from bpttbench.runner import execute

    run_dir = Path(ctx["sweep_dir"]) / point["id"]
    host, address = _worker_address()
    base = {"id": point["id"], "host": host, "worker": address}
    if run_status(run_dir) == "complete":
        return {**base, "state": "complete", "outcome": _unit_outcome(run_dir), "reused": True}
    cfg = TrainConfig.from_dict(point["config"])
    corpus = _worker_corpus(corpus_ref)
    slots = ctx["slots"].get(host)
    extra = {
        "run_id": point["id"],
        # How many runs shared this machine: contention changes wall-clock results.
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
        return {**base, "state": "interrupted", "outcome": _unit_outcome(run_dir)}
    return {**base, "state": "complete", "outcome": _unit_outcome(run_dir)}


def _warm_up_kernels(configs: list[dict]) -> float:
    from bpttbench.train import warm_up

    return sum(warm_up(TrainConfig.from_dict(c)) for c in configs)


def _host_facts(path: str) -> dict:
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


try:
    from distributed.diagnostics.plugin import WorkerPlugin
except ImportError:  # pragma: no cover - distributed is a dependency
    WorkerPlugin = object


class IgnoreSigint(WorkerPlugin):
    """Local workers share the terminal's process group: Ctrl-C is the driver's to handle, not theirs."""

    name = "bpttbench-ignore-sigint"

    def setup(self, worker) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)


# ----------------------------------------------------------------------------- driver


class SweepObserver:
    """What a sweep reports as it goes; the CLI shows it, tests record it. All methods optional."""

    def warn(self, message: str) -> None: ...

    def status(self, message: str) -> None: ...

    def start(self, points: list[GridPoint], states: dict[str, str]) -> None: ...

    def point_started(self, point: GridPoint, host: str) -> None: ...

    def point_record(self, point: GridPoint, msg: dict) -> None: ...

    def point_finished(self, point: GridPoint, state: str, entry: dict) -> None: ...


@dataclass
class SweepPlan:
    spec: SweepSpec
    corpus: Any  # bpttbench.corpus.Corpus
    points: list[GridPoint]
    refused: list[str]

    def total_budget(self) -> str:
        n = len(self.points)
        if self.spec.budget_seconds is not None:
            return f"{n} runs × {format_duration(self.spec.budget_seconds)} = {format_duration(n * self.spec.budget_seconds)} of training"
        return f"{n} runs × {self.spec.budget_steps:,} steps = {n * self.spec.budget_steps:,} steps"


def plan_sweep(spec: SweepSpec, corpus) -> SweepPlan:
    """The grid on this corpus; refuses a corpus too short for any of its runs."""
    from bpttbench.corpus import check_corpus_fits

    from bpttbench.schemes import SCHEMES

    points, refused = expand_grid(spec, corpus.sha256)
    for p in points:
        check_corpus_fits(corpus, k2=p.cfg.k2, eval_chars=p.cfg.eval_chars, batch=p.cfg.batch)
        try:
            SCHEMES[p.cfg.scheme].check_fits(p.cfg, corpus.vocab_size)  # rtrl's memory: refuse the grid before any run starts
        except ConfigError as exc:
            raise SpecError(f"{spec.source}: {exc}") from None
    return SweepPlan(spec, corpus, points, refused)


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def physical_cores() -> int:
    import psutil

    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


def disk_states(sweep_dir: Path, points: list[GridPoint]) -> dict[str, str]:
    """complete when the point's run directory says so, pending otherwise."""
    return {p.id: "complete" if run_status(sweep_dir / p.id) == "complete" else "pending" for p in points}


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
                         "steps_per_s": med([o["steps"] / o["wall_s"] for o in done if o.get("steps") and o.get("wall_s")]),
                         "final_train_bpc": med([o.get("final_train_bpc") for o in done]),
                         "final_val_bpc": med([o.get("final_val_bpc") for o in done])})
        return rows


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _one_line(exc: BaseException) -> str:
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


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
                raise SweepError(f"could not reach the Dask scheduler at {self.scheduler}: {_one_line(exc)}; "
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
            self.client.register_plugin(IgnoreSigint(), name=IgnoreSigint.name)
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


def _check_workers(cluster: _Cluster, sweep_dir: Path) -> dict[str, int]:
    """Per host: how many runs can share it (its workers' threads); warns about oversubscription."""
    client, observer = cluster.client, cluster.observer
    workers = client.scheduler_info(n_workers=-1)["workers"]
    facts = client.run(_host_facts, str(sweep_dir))
    slots: dict[str, int] = {}
    per_host: dict[str, dict] = {}
    for address, info in workers.items():
        host = _host_of(address)
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


def run_sweep(plan: SweepPlan, sweep_dir: Path, *, workers: int | None = None, scheduler: str | None = None,
              observer: SweepObserver | None = None, hook=None, stop_grace: float = STOP_GRACE_S) -> SweepResult:
    """Run every pending grid point of plan on Dask, writing sweep_dir as results come back.

    Points already complete on disk are kept as they are. A task that raises is recorded as
    failed and the sweep goes on. KeyboardInterrupt asks the running tasks to stop, waits up to
    stop_grace seconds for them to close their run directories, marks the sweep interrupted and
    propagates. `hook(event, point_id, record)` is called inside the task (tests use it to inject faults).
    """
    observer = observer or SweepObserver()
    sweep_dir = Path(sweep_dir).resolve()
    if scheduler and workers:
        raise ConfigError("--workers sizes the local cluster; with --scheduler the cluster's own workers are used")
    workers = workers or default_workers()
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    check_sweep_dir(sweep_dir)
    try:
        sweep_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ResultsError(f"could not create {sweep_dir}: {exc.strerror or exc}; choose another --out") from None
    with _Lock(sweep_dir):
        return _drive(plan, sweep_dir, workers, scheduler, observer, hook, stop_grace)


def _drive(plan, sweep_dir, workers, scheduler, observer, hook, stop_grace) -> SweepResult:
    by_id = {p.id: p for p in plan.points}
    states = disk_states(sweep_dir, plan.points)
    entries = {p.id: {"id": p.id, "config": p.cfg.to_dict(), "state": states[p.id], "reused": states[p.id] == "complete",
                      "outcome": _unit_outcome(sweep_dir / p.id) if states[p.id] == "complete" else None,
                      "host": None, "error": None} for p in plan.points}
    manifest = {
        "name": plan.spec.name, "status": "running", "spec": plan.spec.to_dict(), "spec_text": plan.spec.text,
        "corpus": plan.corpus.info(), "scheduler": scheduler or "local", "workers": None if scheduler else workers,
        "command": sys.argv, "started_at": _now(), "updated_at": None, "finished_at": None,
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "refused_combinations": plan.refused, "counts": {}, "points": [],
    }

    def save(status: str | None = None) -> None:
        if status:
            manifest["status"] = status
        manifest["updated_at"] = _now()
        manifest["points"] = list(entries.values())
        manifest["counts"] = SweepResult(sweep_dir, manifest["status"], manifest["points"]).counts()
        _write_json(sweep_dir / SWEEP_MANIFEST, manifest)

    strays = [d.name for d in sweep_dir.iterdir() if d.is_dir() and d.name not in by_id and (d / MANIFEST).exists()]
    if strays:
        observer.warn(f"{len(strays)} run directories in {sweep_dir} are not in this grid (an earlier spec?); "
                      "plot and report will include them")
    for reason in plan.refused:
        observer.warn(f"left out of the grid: {reason}")
    save()
    observer.start(plan.points, dict(states))
    todo = [p for p in plan.points if states[p.id] != "complete"]

    def finish() -> SweepResult:
        failed = any(e["state"] != "complete" for e in entries.values())
        manifest["finished_at"] = _now()
        save("failed" if failed else "complete")
        return SweepResult(sweep_dir, manifest["status"], list(entries.values()))

    if not todo:
        return finish()

    from distributed import as_completed

    token = uuid.uuid4().hex
    topic = f"bpttbench-sweep-{token}"
    events: list[dict] = []  # filled by the client's event thread, drained by this one
    events_lock = threading.Lock()
    futures: dict = {}
    cluster = None
    try:
        # Fill Numba's on-disk cache here, once, before any worker needs it.
        kinds = {(p.cfg.scheme, p.cfg.inject, p.cfg.optimizer, p.cfg.dtype): p.cfg for p in todo}
        observer.status(f"compiling kernels for {len(kinds)} scheme/dtype combination(s)")
        _warm_up_kernels([c.to_dict() for c in kinds.values()])
        observer.status(f"starting {'a connection to ' + scheduler if scheduler else f'{workers} local workers'}")
        cluster = _Cluster(None if scheduler else workers, scheduler, observer).__enter__()
        client = cluster.client
        slots = _check_workers(cluster, sweep_dir)
        manifest["workers"] = sum(slots.values())
        manifest["hosts"] = slots
        if scheduler:
            # Other machines have their own caches: warm each from one worker, before the grid floods them.
            one_per_host = {}
            for address in client.scheduler_info(n_workers=-1)["workers"]:
                one_per_host.setdefault(_host_of(address), address)
            warm = [client.submit(_warm_up_kernels, [c.to_dict() for c in kinds.values()], workers=[a], pure=False,
                                  allow_other_workers=True, key=f"bpttbench-warm-up-{_host_of(a)}-{token}")
                    for a in one_per_host.values()]
            for f in warm:
                try:
                    f.result()
                except Exception as exc:
                    raise SweepError(f"compiling the kernels on a worker failed: {_one_line(exc)}") from None
        save()

        def on_event(event) -> None:
            with events_lock:
                events.append(event[1])

        client.subscribe_topic(topic, on_event)
        ctx = {"sweep_dir": str(sweep_dir), "token": token, "topic": topic, "slots": slots, "name": plan.spec.name,
               "default_slots": 1, "command": sys.argv, "scheduler": scheduler or "local"}
        ref = corpus_ref(plan.corpus)
        for p in todo:
            future = client.submit(run_point, {"id": p.id, "config": p.cfg.to_dict()}, ref, ctx, hook,
                                   key=f"bpttbench-{p.id}-{token[:8]}", pure=False)
            futures[future] = p
        observer.status(f"{len(todo)} runs submitted to {cluster.description}")
        ac = as_completed(list(futures), loop=client.loop)

        def drain() -> None:
            with events_lock:
                batch, events[:] = list(events), []
            for msg in batch:
                point = by_id.get(msg.get("id"))
                if point is None:
                    continue
                entry = entries[point.id]
                if msg.get("event") == "started":
                    if entry["state"] == "pending":
                        entry["state"], entry["host"] = "running", msg.get("host")
                        save()
                    observer.point_started(point, msg.get("host") or "?")
                elif msg.get("event") == "record":
                    observer.point_record(point, msg)

        while not ac.is_empty():
            drain()
            if not ac.has_ready():
                time.sleep(0.1)
                continue
            for future in ac.next_batch(block=False):
                drain()
                _collect(future, futures[future], entries, observer)
                save()
        drain()
        return finish()
    except KeyboardInterrupt:
        _stop(cluster, token, futures, entries, stop_grace, observer)
        manifest["finished_at"] = _now()
        save("interrupted")
        raise
    except BaseException as exc:
        for entry in entries.values():
            if entry["state"] == "running":
                entry["state"] = "interrupted"
        manifest["finished_at"] = _now()
        manifest["error"] = _one_line(exc)
        save("failed")
        raise
    finally:
        if cluster is not None:
            try:
                cluster.client.unsubscribe_topic(topic)
            except Exception:
                pass
            cluster.__exit__(None, None, None)


def corpus_ref(corpus) -> dict:
    """How a worker finds the corpus: by absolute path for a file, by name otherwise; checked by sha256."""
    source = Path(corpus.source) if corpus.source else None
    spec = str(source) if source is not None and source.is_absolute() and source.is_file() else corpus.name
    return {"spec": spec, "name": corpus.name, "sha256": corpus.sha256}


def _collect(future, point: GridPoint, entries: dict, observer: SweepObserver) -> None:
    from distributed.client import FutureCancelledError

    entry = entries[point.id]
    try:
        result = future.result()
    except FutureCancelledError:
        entry["state"] = "interrupted" if entry["state"] == "running" else "pending"
        return
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        message = _one_line(exc)
        if type(exc).__name__ == "KilledWorker":
            message = "its worker died each time it ran it (killed, or out of memory); see the worker logs"
        entry.update(state="failed", error=message)
        observer.point_finished(point, "failed", entry)
        return
    entry.update(state=result["state"], host=result.get("host"), outcome=result.get("outcome"),
                 reused=bool(result.get("reused")), error=None)
    observer.point_finished(point, result["state"], entry)


def _stop(cluster, token, futures, entries, grace, observer) -> None:
    """Ctrl-C: ask running tasks to close their run directories, keep what finished, cancel the rest."""
    if cluster is None or not futures:
        for entry in entries.values():
            if entry["state"] == "running":
                entry["state"] = "interrupted"
        return
    observer.status("stopping: the runs in flight close their run directories as interrupted")
    client = cluster.client
    try:
        client.run(_request_stop, token)
        running = [f for f, p in futures.items() if entries[p.id]["state"] == "running"]
        queued = [f for f, p in futures.items() if entries[p.id]["state"] == "pending"]
        client.cancel(queued)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and not all(f.done() for f in running):
            time.sleep(0.05)
    except BaseException:  # a second Ctrl-C or a broken cluster: keep what is known
        pass
    for future, point in futures.items():
        entry = entries[point.id]
        if entry["state"] in ("complete", "failed"):
            continue
        if future.done() and future.status == "finished":
            try:
                _collect(future, point, entries, observer)
            except BaseException:
                pass
        if entry["state"] == "running":
            entry["state"] = "interrupted"

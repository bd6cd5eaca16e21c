"""One benchmark run: every (scheme, seed) in turn on one corpus, each with the full budget, into one run directory.

The CLI and the sweep both call `execute`; neither prints from here. Progress reaches the
caller through an `Observer`, results reach the disk through results.RunWriter after every
record, so an interruption or a crash keeps everything measured so far.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from statistics import median
from typing import Callable

from bpttbench import __version__
from bpttbench.config import SCHEME_NAMES, TRUNCATED_SCHEMES, TrainConfig, config_from
from bpttbench.data.corpus import Corpus, check_corpus_fits
from bpttbench.defaults import MAX_RUN_UNITS, TRAIN
from bpttbench.errors import ConfigError
from bpttbench.model import state_dict
from bpttbench.results.records import Record, RunOutcome
from bpttbench.results import RunWriter
from bpttbench.schemes import REGISTRY
from bpttbench.scheme_names import resolve_k1
from bpttbench.training.loop import Training


def expand_schemes(names) -> list[str]:
    """Scheme names as given (`all` = every truncated scheme; the untruncated ones, rtrl's O(H^4)
    per step among them, are run only when named), duplicates dropped, order kept."""
    out: list[str] = []
    for name in names:
        for scheme in TRUNCATED_SCHEMES if name == "all" else (name,):
            if scheme not in SCHEME_NAMES:
                raise ConfigError(f"unknown scheme {scheme!r}; choose from {', '.join(SCHEME_NAMES)} or all")
            if scheme not in out:
                out.append(scheme)
    return out


def plan_units(settings: dict, schemes, seeds) -> list[TrainConfig]:
    """One config per (scheme, seed), schemes outermost; settings are every other TrainConfig field
    (k1 None: each scheme's own, see scheme_names.resolve_k1, so that `--scheme all` compares chunked
    at the same k2). `seeds` may be a range: an oversized plan is refused from its size, before
    anything is built. Each unit is validated on its own (the untruncated schemes accept a k1 above k2)."""
    schemes = expand_schemes(schemes)
    count = len(schemes) * len(seeds)
    if count > MAX_RUN_UNITS:
        raise ConfigError(f"the plan has {count:,} runs ({len(schemes)} schemes × {len(seeds):,} seeds), more than the "
                          f"limit of {MAX_RUN_UNITS:,} for one run; use fewer --seeds, or a sweep")
    k2 = settings.get("k2", TRAIN.k2)
    return [config_from({**settings, "scheme": scheme, "k1": resolve_k1(scheme, settings.get("k1"), k2, TRAIN.k1),
                         "seed": seed})
            for scheme in schemes for seed in seeds]


def git_revision() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    import numba
    import numpy
    import scipy

    from bpttbench.kernels.blas_backend import current as current_blas

    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "hostname": platform.node(),
        "python": sys.version.split()[0],
        "numpy": numpy.__version__,
        "numba": numba.__version__,
        "scipy": scipy.__version__,
        "bpttbench": __version__,
        "git_revision": git_revision(),
        "blas": current_blas().info(),  # the kernels' products: BPTTBENCH_BLAS, see blas_backend.py
    }


class Observer:
    """What a run reports as it goes; the CLI shows it, tests record it. All methods optional."""

    def unit_started(self, index: int, cfg: TrainConfig) -> None: ...

    def compiled(self, index: int, cfg: TrainConfig, seconds: float) -> None: ...

    def record(self, index: int, cfg: TrainConfig, record: Record) -> None: ...

    def unit_finished(self, index: int, cfg: TrainConfig, outcome: RunOutcome) -> None: ...


@dataclass
class UnitResult:
    cfg: TrainConfig
    outcome: RunOutcome


@dataclass
class RunResult:
    path: Path
    status: str
    units: list[UnitResult] = field(default_factory=list)

    def summary(self) -> list[dict]:
        """One row per scheme configuration: medians over its seeds."""
        groups: dict[tuple, list[UnitResult]] = {}
        for unit in self.units:
            c = unit.cfg
            groups.setdefault((c.scheme, c.k1, c.k2, c.inject), []).append(unit)
        rows = []
        for (scheme, k1, k2, inject), units in groups.items():
            outcomes = [u.outcome for u in units]

            def med(values):
                values = [v for v in values if v is not None]
                return median(values) if values else None

            rows.append({
                "scheme": scheme, "k1": k1, "k2": k2, "inject": inject, "cell": units[0].cfg.cell,
                "seeds": len(units),
                "diverged": sum(o.status == "diverged" for o in outcomes),
                "steps": med([o.steps for o in outcomes]),
                "updates": med([o.updates for o in outcomes]),
                "steps_per_s": med([o.steps / o.time_s(u.cfg.clock) if o.time_s(u.cfg.clock) > 0 else None
                                     for u, o in zip(units, outcomes)]),
                "final_train_bpc": med([o.final_train_bpc for o in outcomes]),
                "final_val_bpc": med([o.final_val_bpc for o in outcomes]),
            })
        return rows


def default_out_dir(root: Path = Path("results"), prefix: str = "run") -> Path:
    """results/<prefix>-<UTC time>, with a counter if that exists already."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    path = root / f"{prefix}-{stamp}"
    n = 1
    while path.exists():
        n += 1
        path = root / f"{prefix}-{stamp}-{n}"
    return path


def check_units_fit(units: list[TrainConfig], corpus: Corpus) -> None:
    """CorpusError unless the corpus is long enough for every unit (k2, batch, eval_chars)."""
    for cfg in units:
        check_corpus_fits(corpus, k2=cfg.k2, eval_chars=cfg.eval_chars, batch=cfg.batch)
        REGISTRY[cfg.scheme].check_fits(cfg, corpus.vocab_size)  # rtrl's memory limit, before any unit runs


def _finish_quietly(writer: RunWriter, key: str, outcome: RunOutcome, error: str | None = None) -> None:
    """Record how a unit ended while an exception is on its way out; if that write fails too (the
    same full disk, say), the exception on its way out is the one to report, not this one."""
    try:
        writer.finish_unit(key, outcome, error=error)
    except Exception:
        pass


def execute(units: list[TrainConfig], corpus: Corpus, out_dir: Path, *, force: bool = False,
            save_weights: bool = False, observer: Observer | None = None, extra_manifest: dict | None = None,
            kernels_ready: Callable[[], None] | None = None) -> RunResult:
    """Train every unit in turn, writing out_dir as it goes; returns how each ended.

    kernels_ready, if given, is called as each unit starts compiling (Training.compile): it waits for
    kernels being compiled elsewhere (precompile.compiling_in_background), so they are loaded, not compiled twice.

    The caller has checked that the units fit the corpus (check_units_fit), once: the CLI and the API
    before they print or start anything, a sweep when it plans its grid.

    A KeyboardInterrupt (Ctrl-C, or SIGTERM turned into one by the CLI) marks the run
    `interrupted` and propagates; any other exception marks it `failed` and propagates.
    """
    observer = observer or Observer()
    manifest = {
        "configuration": [cfg.to_dict() for cfg in units],
        "schemes": list(dict.fromkeys(cfg.scheme for cfg in units)),
        "seeds": sorted({cfg.seed for cfg in units}),
        "corpus": corpus.info(),
        "machine": machine_info(),
        "concurrent_runs": 1,
        "command": sys.argv,
        **(extra_manifest or {}),
    }
    result = RunResult(path=Path(out_dir), status="running")
    with RunWriter(out_dir, force=force, manifest=manifest) as writer:
        if save_weights:
            writer.save_vocab(corpus.vocab)
        for index, cfg in enumerate(units):
            observer.unit_started(index, cfg)
            training = Training(cfg, corpus)
            key = writer.start_unit(cfg, corpus.name)
            try:
                observer.compiled(index, cfg, training.compile(kernels_ready))
                if save_weights:
                    writer.save_weights(f"{cfg.scheme}-seed{cfg.seed}-init", state_dict(training.initial_theta, corpus.vocab_size, cfg.hidden))
                for record in training.records():
                    writer.add_record(key, record)
                    observer.record(index, cfg, record)
            except KeyboardInterrupt:
                training.outcome.status = "interrupted"
                _finish_quietly(writer, key, training.outcome)
                raise
            except Exception as exc:
                training.outcome.status = "failed"
                _finish_quietly(writer, key, training.outcome, error=(str(exc).splitlines() or [type(exc).__name__])[0])
                raise
            if save_weights:
                writer.save_weights(f"{cfg.scheme}-seed{cfg.seed}-final", state_dict(training.theta, corpus.vocab_size, cfg.hidden))
            writer.finish_unit(key, training.outcome)
            result.units.append(UnitResult(cfg, training.outcome))
            observer.unit_finished(index, cfg, training.outcome)
    result.status = writer.manifest["status"]
    return result

"""Reading run directories back: the manifest, curves.csv, and which runs and units are complete.

The file names and the columns of curves.csv are defined here, once, for the writer too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Iterable, get_type_hints

import pandas as pd

from bpttbench.config import TrainConfig
from bpttbench.errors import ResultsError

MANIFEST = "manifest.json"
CURVES = "curves.csv"
LOSS_VS_TIME = "loss_vs_time.csv"
LOSS_VS_ITER = "loss_vs_iter.csv"
VOCAB = "vocab.json"
WEIGHTS_DIR = "weights"

# Every field of a unit's configuration, in TrainConfig's order: derived, so a field added to
# TrainConfig is written, read, grouped on and labelled without touching this package.
CONFIG_FIELDS = tuple(f.name for f in fields(TrainConfig))
_STR_FIELDS = {name for name, kind in get_type_hints(TrainConfig).items() if kind is str}
CORPUS_COLUMNS = ("corpus", "corpus_sha256")  # the corpus's name and the sha256 of its text
# wall_s and cpu_s: training seconds on the wall clock and the training thread's CPU time (which of
# them a run's budget and time axes count is its configuration's `clock`).
MEASURE_COLUMNS = ("step", "updates", "wall_s", "cpu_s", "metric", "value")
CURVE_COLUMNS = ("run_id",) + CORPUS_COLUMNS + CONFIG_FIELDS + MEASURE_COLUMNS
# What every curves.csv has had; the other configuration columns of an older file are filled
# from its manifest (see curves.annotate_curves), and its missing cpu_s is NaN.
REQUIRED_COLUMNS = ("run_id", "scheme", "k1", "k2", "inject", "hidden", "batch", "dtype", "seed", "step", "updates",
                    "wall_s", "metric", "value")

RUN_STATUSES = ("complete", "interrupted", "failed")
UNIT_STATUSES = ("complete", "diverged", "interrupted", "failed")
# Units whose curves describe a finished piece of training; the others are partial.
PLOTTED_UNIT_STATUSES = ("complete", "diverged")

STR_COLUMNS = ("run_id", "metric") + CORPUS_COLUMNS + tuple(c for c in CONFIG_FIELDS if c in _STR_FIELDS)
NUMERIC_COLUMNS = tuple(c for c in CURVE_COLUMNS if c not in STR_COLUMNS)


@dataclass
class Run:
    """One run directory as read back: its manifest and its curves.csv (the file's own columns)."""

    path: Path
    manifest: dict = field(repr=False)
    curves: pd.DataFrame = field(repr=False)

    @property
    def complete(self) -> bool:
        return self.manifest.get("status") == "complete"

    @property
    def status(self) -> str:
        return str(self.manifest.get("status", "unknown"))

    @property
    def units(self) -> list[dict]:
        return list(self.manifest.get("units") or [])

    @property
    def run_id(self) -> str:
        return str(self.manifest.get("run_id", self.path.name))


def read_curves(path: Path) -> pd.DataFrame:
    """curves.csv as a DataFrame; an empty frame with every column if the file is missing or empty.

    An older file lacks some configuration columns (see REQUIRED_COLUMNS): they stay absent here."""
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return empty_curves()
    try:
        df = pd.read_csv(path, dtype={c: str for c in STR_COLUMNS}, keep_default_na=False, na_values=["", "nan", "NaN"])
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise ResultsError(f"could not read {path}: {_reason(exc)}; the file is damaged, move the run aside") from exc
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ResultsError(
            f"{path} lacks column(s) {', '.join(missing)}; it was not written by this bpttbench version, move the run aside"
        )
    for c in NUMERIC_COLUMNS:
        if c in df.columns:
            df[c] = pd.to_numeric(df[c], errors="coerce")
    return df


def _reason(exc: Exception) -> str:
    text = str(exc).splitlines()
    return text[0] if text else type(exc).__name__


def empty_curves() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=str if c in STR_COLUMNS else float) for c in CURVE_COLUMNS})


def _read_manifest(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsError(f"could not parse {path}: {_reason(exc)}; the run is damaged, move it aside") from exc
    if not isinstance(data, dict):
        raise ResultsError(f"could not parse {path}: not a JSON object; the run is damaged, move it aside")
    return data


def read_runs(path: Path) -> list[Run]:
    """Every run under path: a run directory, or a folder holding runs at any depth.

    Runs that are not complete are returned too; `split_complete` separates them.
    """
    path = Path(path)
    if not path.exists():
        raise ResultsError(f"{path} does not exist; give a run directory or a folder of runs")
    if path.is_file():
        if path.name != MANIFEST:
            raise ResultsError(f"{path} is a file; give a run directory or a folder of runs")
        manifests = [path]
    else:
        try:
            manifests = sorted(path.rglob(MANIFEST))
        except OSError as exc:
            raise ResultsError(f"could not read {path}: {exc.strerror or exc}; check its permissions") from exc
    manifests = [m for m in manifests if m.is_file()]
    if not manifests:
        raise ResultsError(f"no bpttbench runs under {path}; run `bpttbench run` first")
    return [Run(path=m.parent, manifest=_read_manifest(m), curves=read_curves(m.parent / CURVES)) for m in manifests]


_STATUS_REASONS = {
    "running": "status is 'running': it crashed or is still running",
    "interrupted": "status is 'interrupted': it was stopped before the end",
}


def split_complete(runs: Iterable[Run]) -> tuple[list[Run], list[tuple[Run, str]]]:
    """(complete runs, [(other run, why it is skipped)])."""
    complete, skipped = [], []
    for run in runs:
        if run.complete:
            complete.append(run)
            continue
        status = run.status
        reason = _STATUS_REASONS.get(status, f"status is {status!r}")
        if status == "failed":
            reason = "status is 'failed'" + (f": {run.manifest['error']}" if run.manifest.get("error") else "")
        skipped.append((run, reason))
    return complete, skipped


def corpus_facts(runs: Iterable[Run]) -> dict[str, dict]:
    """Per corpus name, what the runs' manifests record about it (corpus.Corpus.info: its optimum,
    its n-gram reference levels, ...); the first run naming a corpus speaks for it."""
    facts: dict[str, dict] = {}
    for run in runs:
        corpus = run.manifest.get("corpus")
        if isinstance(corpus, dict) and corpus.get("name") is not None:
            facts.setdefault(str(corpus["name"]), corpus)
    return facts


def complete_runs(*paths: Path | str) -> tuple[list[Run], list[tuple[Path, str]]]:
    """The complete runs under any of paths (each run once, however often it is reached: paths may
    overlap), and every run or unit that plots and reports leave out, with why. The one way commands
    and the API read several paths."""
    if not paths:
        raise ResultsError("no path given; give a run directory, a sweep directory or a folder of runs")
    runs: dict[Path, Run] = {}
    for path in paths:
        for run in read_runs(Path(path)):
            runs.setdefault(run.path.resolve(), run)
    complete, skipped_runs = split_complete(runs.values())
    skipped: list[tuple[Path, str]] = [(run.path, reason) for run, reason in skipped_runs]
    for run in complete:
        for unit in run.units:
            if unit.get("status") not in PLOTTED_UNIT_STATUSES:
                skipped.append((run.path / str(unit.get("key", "?")), f"unit status is {unit.get('status')!r}"))
    return complete, skipped

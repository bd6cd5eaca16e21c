"""Writing a run directory as the run goes.

A run holds several units, one per (configuration, seed), run one after the other. The manifest
goes through files.Manifest (every save atomic: a crash or a full disk leaves the previous one
intact); curves.csv is append-only and flushed after each record, so a crash keeps the curve so
far. Each curves.csv row carries its unit's whole configuration and corpus, so a concatenation of
many runs' files describes itself without the manifests.
"""

from __future__ import annotations

import csv
import os
import uuid
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from bpttbench import __version__
from bpttbench.config import TrainConfig
from bpttbench.errors import ResultsError
from bpttbench.files import Manifest, atomic_write, clear_dir, make_dir, now, write_error, write_json
from bpttbench.results.records import Record, RunOutcome
from bpttbench.results.curves import add_labels, annotate_curves, wide_median
from bpttbench.results.reader import (
    CONFIG_FIELDS,
    CURVE_COLUMNS,
    CURVES,
    LOSS_VS_ITER,
    LOSS_VS_TIME,
    MANIFEST,
    RUN_STATUSES,
    UNIT_STATUSES,
    VOCAB,
    WEIGHTS_DIR,
    Run,
    read_curves,
)

_NAME_RE = re.compile(r"^[A-Za-z0-9_=+-][A-Za-z0-9._=+-]*$")


def _cell(value: Any) -> str:
    """A curves.csv cell: floats exactly (repr round-trips), a missing value empty."""
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


class RunWriter:
    """Writes one run directory as the run goes (manifest.json, curves.csv, the wide CSVs, and
    weights and vocabulary when asked).

    Use as a context manager: an exception marks the run `failed` (`interrupted` for
    KeyboardInterrupt) before it propagates; leaving normally without close() closes it
    as `complete`.
    """

    def __init__(self, out_dir: Path, *, force: bool, manifest: dict):
        self.path = Path(out_dir)
        clear_dir(self.path, force=force)
        self._closed = False
        self._curves_file = None
        self._rows = 0
        data = dict(manifest)
        # Time and pid alone repeat when one process writes two runs within a second (the Python API).
        data.setdefault("run_id", f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{os.getpid()}-{uuid.uuid4().hex[:6]}")
        data.pop("started_at", None)  # a new directory: its clock starts now
        self._manifest = Manifest(self.path / MANIFEST, data).start(bpttbench_version=__version__, units=[])
        self._units: dict[str, dict] = {}
        self._cells: dict[str, list[str]] = {}  # each unit's leading curves.csv cells
        corpus = data.get("corpus")
        self._corpus_sha256 = corpus.get("sha256") if isinstance(corpus, dict) else None
        curves = self.path / CURVES
        try:
            self._curves_file = open(curves, "w", encoding="utf-8", newline="")
            self._csv = csv.writer(self._curves_file, lineterminator="\n")
            self._csv.writerow(CURVE_COLUMNS)
            self._curves_file.flush()
        except OSError as exc:
            raise write_error(curves, exc) from exc

    @property
    def manifest(self) -> dict:
        return self._manifest.data

    @property
    def run_id(self) -> str:
        return str(self.manifest["run_id"])

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"run {self.path} is already closed")

    def _unit(self, key: str) -> dict:
        try:
            return self._units[key]
        except KeyError:
            raise KeyError(f"unknown unit {key!r}; start_unit() returns the key to use") from None

    # -- units

    def start_unit(self, cfg: TrainConfig, corpus_name: str) -> str:
        """Register a (configuration, seed) unit; returns its key for add_record/finish_unit."""
        self._check_open()
        index = len(self.manifest["units"])
        key = f"{index:03d}-{cfg.scheme}-k1={cfg.k1}-k2={cfg.k2}-seed{cfg.seed}"
        config = cfg.to_dict()
        entry = {
            "key": key,
            "corpus": corpus_name,
            "config": config,
            "status": "running",
            "started_at": now(),
            "finished_at": None,
            "rows": [self._rows, None],  # data rows [start, stop) of curves.csv, 0-based
        }
        self.manifest["units"].append(entry)
        self._units[key] = entry
        self._cells[key] = [_cell(v) for v in (self.run_id, corpus_name, self._corpus_sha256)] + [
            _cell(config[c]) for c in CONFIG_FIELDS]
        self._manifest.save()
        return key

    def add_record(self, key: str, record: Record) -> None:
        """Append the record's rows to curves.csv and flush, so a crash keeps the curve so far."""
        self._check_open()
        self._unit(key)
        prefix = self._cells[key]
        head = [str(int(record.step)), str(int(record.updates)), _cell(float(record.wall_s)), _cell(float(record.cpu_s))]
        rows = [prefix + head + ["train_bpc", _cell(float(record.train_bpc))]]
        if record.val_bpc is not None:
            rows.append(prefix + head + ["val_bpc", _cell(float(record.val_bpc))])
        if record.k2 is not None:
            rows.append(prefix + head + ["k2", str(int(record.k2))])
        path = self.path / CURVES
        try:
            self._csv.writerows(rows)
            self._curves_file.flush()
        except OSError as exc:
            raise write_error(path, exc) from exc
        self._rows += len(rows)

    def finish_unit(self, key: str, outcome: RunOutcome, *, error: str | None = None) -> None:
        """Record how the unit ended in the manifest and rewrite it."""
        self._check_open()
        entry = self._unit(key)
        status = outcome.status
        if status not in UNIT_STATUSES:
            raise ValueError(f"unit status must be one of {', '.join(UNIT_STATUSES)}, got {status!r}")
        data = outcome.to_dict()
        data.pop("status", None)
        entry.update(data)
        entry["status"] = status
        entry["error"] = error if error is not None else getattr(outcome, "error", None)
        entry["finished_at"] = now()
        if status in ("interrupted", "failed"):
            self._recount_rows()
        entry["rows"] = [entry["rows"][0], self._rows]
        self._manifest.save()

    def _recount_rows(self) -> None:
        """Count the data rows curves.csv really holds. A signal that lands between a record's
        write and its count (or with rows still buffered) leaves the running count behind, and the
        manifest's row ranges must match the file."""
        try:
            self._curves_file.flush()
            with open(self.path / CURVES, "rb") as f:
                lines = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
        except (OSError, ValueError):
            return  # keep the running count: the ranges are checked against the file when read
        self._rows = max(0, lines - 1)

    # -- other files

    def save_weights(self, name: str, state_dict: dict) -> Path:
        """Save arrays as weights/<name>.npz; returns the path."""
        if not _NAME_RE.match(name) or name.endswith(".npz"):
            raise ResultsError(f"invalid weights name {name!r}; use letters, digits and . _ = + - without the .npz suffix")
        folder = make_dir(self.path / WEIGHTS_DIR)
        path = folder / f"{name}.npz"
        arrays = {str(k): np.asarray(v) for k, v in state_dict.items()}
        atomic_write(path, lambda f: np.savez(f, **arrays), binary=True)
        return path

    def save_vocab(self, chars: Iterable[str]) -> Path:
        """vocab.json: the vocabulary as a JSON list, character i at index i."""
        path = self.path / VOCAB
        write_json(path, list(chars))
        return path

    # -- closing

    def close(self, status: str = "complete", *, error: str | None = None) -> None:
        """Write the wide CSVs and the final manifest. Calling it again does nothing."""
        if self._closed:
            return
        if status not in RUN_STATUSES:
            raise ValueError(f"run status must be one of {', '.join(RUN_STATUSES)}, got {status!r}")
        if status != "complete":
            self._recount_rows()
        self._closed = True
        # A unit still running when the run ends did not finish: it shares the run's fate.
        for entry in self.manifest["units"]:
            if entry["status"] == "running":
                entry["status"] = status if status != "complete" else "interrupted"
                entry["rows"] = [entry["rows"][0], self._rows]
        problem: Exception | None = None
        try:
            self._curves_file.close()
        except OSError as exc:
            problem = write_error(self.path / CURVES, exc)
            if status == "complete":  # the curves may lack their end: do not let plots trust them
                status, error = "failed", str(problem)
        if problem is None:
            try:
                self._write_wide()
            except Exception as exc:  # derived files: the run stays usable, but say so
                problem = exc
                self.manifest["wide_csv_error"] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        self._manifest.finish(status, error=error)
        if problem is not None:
            raise problem

    def _write_wide(self) -> None:
        """loss_vs_time.csv and loss_vs_iter.csv: an x column, then the median over seeds of
        train_bpc per configuration (units stopped early included: the file describes this run)."""
        run = Run(path=self.path, manifest=self.manifest, curves=read_curves(self.path / CURVES))
        data = add_labels(annotate_curves(run, statuses=("complete", "diverged", "interrupted")))
        for name, x in ((LOSS_VS_TIME, "train_s"), (LOSS_VS_ITER, "step")):
            table = wide_median(data, x=x, metric="train_bpc")
            atomic_write(self.path / name, lambda f, t=table: t.to_csv(f, index=False, lineterminator="\n"))

    def __enter__(self) -> "RunWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if self._closed:
            return False
        if exc_type is None:
            self.close("complete")
            return False
        status = "interrupted" if issubclass(exc_type, KeyboardInterrupt) else "failed"
        message = None if status == "interrupted" else (str(exc).splitlines() or [exc_type.__name__])[0]
        try:
            self.close(status, error=message)
        except Exception as close_exc:  # the original exception matters more; keep going
            exc.add_note(f"(also: could not mark the run {status}: {close_exc})")
        return False

"""Run directories: writing them as a run goes, and reading them back for plots and reports.

One `bpttbench run` makes one directory:

    manifest.json       what ran, on what, how it ended; rewritten atomically after every unit
    curves.csv          tidy log points, one row per (unit, log point, metric); flushed per record
    loss_vs_time.csv    wide: wall_s, then the median over seeds of train_bpc per configuration
    loss_vs_iter.csv    wide: step, then the same
    vocab.json          the corpus vocabulary, when saved
    weights/<name>.npz  final parameters, when saved

A run holds several units, one per (scheme configuration, seed), run one after the other.
Every write that could leave a half-written file behind goes through a temp file in the same
directory, fsync and os.replace, so a crash or a full disk leaves the previous manifest intact;
curves.csv is append-only and flushed after each record, so a crash keeps the curve so far.

Seeds are aggregated by resampling each seed onto a common grid with linear interpolation, never
extrapolating beyond a seed's own range, and taking the median (and quartiles) only where every
seed of the group has data.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from bpttbench import __version__
from bpttbench.config import ONLINE_SCHEMES, TrainConfig
from bpttbench.errors import ResultsError
from bpttbench.files import atomic_write, clear_dir, make_dir, now as _now, write_error as _write_error, write_json as _write_json
from bpttbench.records import Record, RunOutcome

MANIFEST = "manifest.json"
CURVES = "curves.csv"
LOSS_VS_TIME = "loss_vs_time.csv"
LOSS_VS_ITER = "loss_vs_iter.csv"
VOCAB = "vocab.json"
WEIGHTS_DIR = "weights"

CURVE_COLUMNS = (
    "run_id", "scheme", "k1", "k2", "inject", "hidden", "batch", "dtype", "seed",
    "step", "updates", "wall_s", "metric", "value",
)
# Columns of curves.csv that come from the unit's configuration, in curves.csv order.
_CONFIG_COLUMNS = ("scheme", "k1", "k2", "inject", "hidden", "batch", "dtype", "seed")
GROUP_KEY = ("scheme", "k1", "k2", "inject", "hidden", "batch", "corpus", "optimizer", "lr")

RUN_STATUSES = ("complete", "interrupted", "failed")
UNIT_STATUSES = ("complete", "diverged", "interrupted", "failed")
# Units whose curves describe a finished piece of training; the others are partial.
PLOTTED_UNIT_STATUSES = ("complete", "diverged")

# The k2 under which an online scheme (rtrl, uoro: no truncation, k2 unused) is swept and grouped,
# so that runs differing only in k2 count as one configuration.
ONLINE_K2 = 1

# Sorting and colours follow the question: sliding window first (blue), single pass (red).
SCHEME_ORDER = ("sliding", "single", "stored", "chunked")

_NAME_RE = re.compile(r"^[A-Za-z0-9_=+-][A-Za-z0-9._=+-]*$")


# ----------------------------------------------------------------------------- helpers


def _format_float(x: float) -> str:
    return repr(float(x))


# ----------------------------------------------------------------------------- writing


class RunWriter:
    """Writes one run directory as the run goes; see the module docstring for its layout.

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
        now = _now()
        self.manifest: dict = dict(manifest)
        self.manifest.setdefault("run_id", f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{os.getpid()}")
        self.manifest.update(
            status="running",
            started_at=now,
            updated_at=now,
            finished_at=None,
            bpttbench_version=__version__,
            units=[],
        )
        self._units: dict[str, dict] = {}
        self._cells: dict[str, list[str]] = {}  # each unit's leading curves.csv cells
        self._write_manifest()
        curves = self.path / CURVES
        try:
            self._curves_file = open(curves, "w", encoding="utf-8", newline="")
            self._csv = csv.writer(self._curves_file, lineterminator="\n")
            self._csv.writerow(CURVE_COLUMNS)
            self._curves_file.flush()
        except OSError as exc:
            raise _write_error(curves, exc) from exc

    @property
    def run_id(self) -> str:
        return str(self.manifest["run_id"])

    def _write_manifest(self) -> None:
        self.manifest["updated_at"] = _now()
        _write_json(self.path / MANIFEST, self.manifest)

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
        entry = {
            "key": key,
            "corpus": corpus_name,
            "config": cfg.to_dict(),
            "status": "running",
            "started_at": _now(),
            "finished_at": None,
            "rows": [self._rows, None],  # data rows [start, stop) of curves.csv, 0-based
        }
        self.manifest["units"].append(entry)
        self._units[key] = entry
        self._cells[key] = [self.run_id] + [str(getattr(cfg, c)) for c in _CONFIG_COLUMNS]
        self._write_manifest()
        return key

    def add_record(self, key: str, record: Record) -> None:
        """Append the record's rows to curves.csv and flush, so a crash keeps the curve so far."""
        self._check_open()
        self._unit(key)
        prefix = self._cells[key]
        head = [str(int(record.step)), str(int(record.updates)), _format_float(record.wall_s)]
        rows = [prefix + head + ["train_bpc", _format_float(record.train_bpc)]]
        if record.val_bpc is not None:
            rows.append(prefix + head + ["val_bpc", _format_float(record.val_bpc)])
        path = self.path / CURVES
        try:
            self._csv.writerows(rows)
            self._curves_file.flush()
        except OSError as exc:
            raise _write_error(path, exc) from exc
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
        entry["finished_at"] = _now()
        if status in ("interrupted", "failed"):
            self._recount_rows()
        entry["rows"] = [entry["rows"][0], self._rows]
        self._write_manifest()

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
        path = self.path / VOCAB
        _write_json(path, list(chars))
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
            problem = _write_error(self.path / CURVES, exc)
            if status == "complete":  # the curves may lack their end: do not let plots trust them
                status, error = "failed", str(problem)
        if problem is None:
            try:
                self._write_wide()
            except Exception as exc:  # derived files: the run stays usable, but say so
                problem = exc
                self.manifest["wide_csv_error"] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        self.manifest["status"] = status
        self.manifest["finished_at"] = _now()
        if error is not None:
            self.manifest["error"] = error
        self._write_manifest()
        if problem is not None:
            raise problem

    def _write_wide(self) -> None:
        curves = read_curves(self.path / CURVES)
        run = Run(path=self.path, manifest=self.manifest, curves=curves)
        data = annotate_curves(run, statuses=("complete", "diverged", "interrupted"))
        data = add_labels(data)
        for name, x in ((LOSS_VS_TIME, "wall_s"), (LOSS_VS_ITER, "step")):
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
            if hasattr(exc, "add_note"):
                exc.add_note(f"(also: could not mark the run {status}: {close_exc})")
        return False


# ----------------------------------------------------------------------------- reading


@dataclass
class Run:
    """One run directory as read back: its manifest and its curves.csv."""

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


_CURVE_DTYPES = {"run_id": str, "scheme": str, "inject": str, "dtype": str, "metric": str}


def read_curves(path: Path) -> pd.DataFrame:
    """curves.csv as a DataFrame; an empty frame with the right columns if missing or empty."""
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return _empty_curves()
    try:
        df = pd.read_csv(path, dtype=_CURVE_DTYPES, keep_default_na=False, na_values=["", "nan", "NaN"])
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ResultsError(f"could not read {path}: {reason}; the file is damaged, move the run aside") from exc
    missing = [c for c in CURVE_COLUMNS if c not in df.columns]
    if missing:
        raise ResultsError(
            f"{path} lacks column(s) {', '.join(missing)}; it was not written by this bpttbench version, move the run aside"
        )
    for c in ("k1", "k2", "hidden", "batch", "seed", "step", "updates"):
        df[c] = pd.to_numeric(df[c], errors="coerce")
    for c in ("wall_s", "value"):
        df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
    return df


def _empty_curves() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=_CURVE_DTYPES.get(c, float)) for c in CURVE_COLUMNS})


def _read_manifest(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ResultsError(f"could not parse {path}: {reason}; the run is damaged, move it aside") from exc
    if not isinstance(data, dict):
        raise ResultsError(f"could not parse {path}: not a JSON object; the run is damaged, move it aside")
    return data


def load_runs(path: Path) -> list[Run]:
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
    runs = []
    for m in manifests:
        manifest = _read_manifest(m)
        runs.append(Run(path=m.parent, manifest=manifest, curves=read_curves(m.parent / CURVES)))
    return runs


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


# ----------------------------------------------------------------------------- grouping


def complete_runs(path: Path) -> tuple[list[Run], list[tuple[Path, str]]]:
    """The complete runs under path, and every run or unit that plots and reports leave out, with why."""
    complete, skipped_runs = split_complete(load_runs(path))
    skipped: list[tuple[Path, str]] = [(run.path, reason) for run, reason in skipped_runs]
    for run in complete:
        for unit in run.units:
            if unit.get("status") not in PLOTTED_UNIT_STATUSES:
                skipped.append((run.path / str(unit.get("key", "?")), f"unit status is {unit.get('status')!r}"))
    return complete, skipped


def _corpus_name(run: Run, unit: dict | None) -> str:
    if unit and unit.get("corpus"):
        return str(unit["corpus"])
    corpus = run.manifest.get("corpus")
    if isinstance(corpus, dict):
        corpus = corpus.get("name")
    if corpus:
        return str(corpus)
    return str(run.manifest.get("corpus_name", "?"))


def _assign_units(curves: pd.DataFrame, units: list[dict]) -> pd.Series:
    """Which unit (by key) each row of curves.csv belongs to: by the manifest's row ranges,
    checked against the configuration columns; by those columns alone if the ranges disagree."""
    n = len(curves)
    keys = pd.Series([None] * n, index=curves.index, dtype=object)

    def matches(unit: dict, rows: pd.DataFrame) -> pd.Series:
        cfg = unit.get("config") or {}
        ok = pd.Series(True, index=rows.index)
        for c in _CONFIG_COLUMNS:
            if c in cfg:
                ok &= rows[c].astype(str) == str(cfg[c])
        return ok

    consistent = True
    for unit in units:
        rows = unit.get("rows")
        if not (isinstance(rows, list) and len(rows) == 2 and isinstance(rows[0], int)):
            consistent = False
            break
        start, stop = rows[0], rows[1] if isinstance(rows[1], int) else n
        if start > n or stop > n or stop < start:
            consistent = False
            break
        block = curves.iloc[start:stop]
        if not matches(unit, block).all():
            consistent = False
            break
        keys.iloc[start:stop] = unit.get("key")
    if consistent:
        return keys
    keys[:] = None
    for unit in units:
        free = keys.isna() & matches(unit, curves)
        keys[free] = unit.get("key")
    return keys


def annotate_curves(run: Run, statuses: Iterable[str] | None = PLOTTED_UNIT_STATUSES) -> pd.DataFrame:
    """One run's curves with its units' corpus, optimizer, lr, status and divergence.

    Adds columns: unit, curve (an id unique across runs), corpus, optimizer, lr, status,
    diverged (bool), diverged_at_step. Non-finite values are dropped everywhere, and a
    diverged unit is cut at its divergence step, so nothing plots garbage. Only units whose
    status is in `statuses` are kept (None keeps all).
    """
    df = run.curves.copy()
    units = {u.get("key"): u for u in run.units}
    df["unit"] = _assign_units(df, run.units) if len(df) else pd.Series(dtype=object)
    rows = []
    for key in df["unit"].tolist():
        unit = units.get(key)
        cfg = (unit or {}).get("config") or {}
        status = (unit or {}).get("status", "unknown")
        div_at = (unit or {}).get("diverged_at_step")
        rows.append((
            _corpus_name(run, unit),
            str(cfg.get("optimizer", "?")),
            float(cfg["lr"]) if isinstance(cfg.get("lr"), (int, float)) else float("nan"),
            status,
            status == "diverged",
            float(div_at) if isinstance(div_at, (int, float)) else float("nan"),
        ))
    extra = pd.DataFrame(rows, columns=["corpus", "optimizer", "lr", "status", "diverged", "diverged_at_step"], index=df.index)
    df = pd.concat([df, extra], axis=1)
    df["diverged"] = df["diverged"].astype(bool)
    df["curve"] = str(run.path) + "#" + df["unit"].fillna("?").astype(str)
    if statuses is not None:
        df = df[df["status"].isin(tuple(statuses))]
    keep = np.isfinite(df["value"].to_numpy(dtype=float)) & np.isfinite(df["wall_s"].to_numpy(dtype=float))
    # The record at the divergence step already averages the blow-up: cut from there on.
    cut = df["diverged"].to_numpy() & (df["step"].to_numpy(dtype=float) >= df["diverged_at_step"].to_numpy(dtype=float))
    return df[keep & ~cut].reset_index(drop=True)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "?" if math.isnan(value) else f"{value:g}"
    return str(value)


def config_label(scheme: str, k1: Any, k2: Any) -> str:
    """'single k1=1 k2=20'; the online schemes (rtrl, uoro) do not use k2, so 'rtrl', or 'rtrl k1=5'."""
    if scheme in ONLINE_SCHEMES:
        return scheme if _fmt(k1) == "1" else f"{scheme} k1={_fmt(k1)}"
    return f"{scheme} k1={_fmt(k1)} k2={_fmt(k2)}"


def add_labels(data: pd.DataFrame) -> pd.DataFrame:
    """Add a `label` per configuration: scheme, k1, k2 (see `config_label`); inject when 'window';
    hidden, batch, optimizer, lr and corpus only when they differ between the groups present.
    Online-scheme configurations that differ only in k2 get one label: they are the same run."""
    data = data.copy()
    if data.empty:
        data["label"] = pd.Series(dtype=str)
        return data
    groups = data[list(GROUP_KEY)].drop_duplicates()
    varying = [c for c in ("hidden", "batch", "optimizer", "lr", "corpus") if groups[c].nunique(dropna=False) > 1]

    def label(row) -> str:
        text = config_label(row["scheme"], row["k1"], row["k2"])
        if row["inject"] == "window":
            text += " inject=window"
        for c in varying:
            text += f" {c}={_fmt(row[c])}"
        return text

    labels = {tuple(_fmt(v) for v in row): label(row) for _, row in groups.iterrows()}
    data["label"] = [labels[tuple(_fmt(v) for v in key)] for key in data[list(GROUP_KEY)].itertuples(index=False)]
    return data


def group_curves(runs: Iterable[Run]) -> pd.DataFrame:
    """All complete runs' curves, annotated (see `annotate_curves`) and labelled (see `add_labels`).

    Group seeds by GROUP_KEY (equivalently by `label`); each seed's curve is one `curve` id.
    """
    complete, _ = split_complete(runs)
    parts = [annotate_curves(run) for run in complete]
    parts = [p for p in parts if len(p)]
    if not parts:
        empty = annotate_curves(Run(Path("."), {}, _empty_curves()))
        return add_labels(empty)
    return add_labels(pd.concat(parts, ignore_index=True))


def early_divergences(runs: Iterable[Run], data: pd.DataFrame) -> list[tuple[Path, Any]]:
    """(unit path, divergence step) of every diverged unit with no curve in `data` (from
    group_curves): it diverged before its first log point, so figures and reports must say so
    rather than leave it out without a word."""
    drawn = set(data["curve"]) if "curve" in data else set()
    return [(run.path / str(u.get("key", "?")), u.get("diverged_at_step")) for run in runs for u in run.units
            if u.get("status") == "diverged" and f"{run.path}#{u.get('key')}" not in drawn]


def nothing_to_show(path: Path, early: list[tuple[Path, Any]]) -> ResultsError:
    """The error for complete runs without a single training record."""
    if early:
        return ResultsError(f"every unit under {path} diverged before its first log point (e.g. {early[0][0].name} at step "
                            f"{early[0][1]}); nothing to show: try a lower --lr or --clip 1")
    return ResultsError(f"the complete runs under {path} hold no training records; run longer than one log interval (--log-every)")


def config_sort_key(scheme: str, *rest) -> tuple:
    order = SCHEME_ORDER.index(scheme) if scheme in SCHEME_ORDER else len(SCHEME_ORDER)
    return (order, scheme, *(_sortable(v) for v in rest))


def _sortable(v: Any) -> tuple:
    if isinstance(v, (int, float, np.integer, np.floating)) and not (isinstance(v, float) and math.isnan(v)):
        return (0, float(v), "")
    return (1, 0.0, str(v))


def ordered_groups(data: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(label, rows) per configuration, sliding first, then single, stored, chunked, others."""
    out = []
    for label, rows in data.groupby("label", sort=False):
        first = rows.iloc[0]
        out.append((config_sort_key(*(first[c] for c in GROUP_KEY)), label, rows))
    out.sort(key=lambda t: t[0])
    return [(label, rows) for _, label, rows in out]


# ----------------------------------------------------------------------------- seed aggregation


def seed_curves(rows: pd.DataFrame, x: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """One (x, value) pair of arrays per curve, x increasing, duplicates of x dropped."""
    out = []
    for _, c in rows.groupby("curve", sort=True):
        c = c.sort_values(x, kind="stable").drop_duplicates(x, keep="last")
        out.append((c[x].to_numpy(dtype=float), c["value"].to_numpy(dtype=float)))
    return out


def resample(curves: list[tuple[np.ndarray, np.ndarray]], grid: np.ndarray) -> np.ndarray:
    """(n_curves, len(grid)) linear interpolation; NaN outside each curve's own x range."""
    out = np.full((len(curves), len(grid)), np.nan)
    for i, (xs, ys) in enumerate(curves):
        if len(xs):
            out[i] = np.interp(grid, xs, ys, left=np.nan, right=np.nan)
    return out


def median_band(curves: list[tuple[np.ndarray, np.ndarray]], grid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median, 25th and 75th percentile over curves at each grid point; NaN where any curve
    lacks data there (no extrapolation, and no median of a shrinking set of seeds)."""
    values = resample(curves, grid)
    nan = np.full(len(grid), np.nan)
    if not len(curves):
        return nan, nan.copy(), nan.copy()
    ok = np.all(np.isfinite(values), axis=0)
    med, q25, q75 = nan.copy(), nan.copy(), nan.copy()
    if ok.any():
        v = values[:, ok]
        med[ok] = np.median(v, axis=0)
        q25[ok] = np.percentile(v, 25, axis=0)
        q75[ok] = np.percentile(v, 75, axis=0)
    return med, q25, q75


def aggregation_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The curves a group's median is taken over: the seeds that did not diverge, or, when
    every seed diverged, all of them (each already cut at its divergence)."""
    if rows["diverged"].all():
        return rows
    return rows[~rows["diverged"]]


def wide_median(data: pd.DataFrame, *, x: str, metric: str = "train_bpc") -> pd.DataFrame:
    """x column, then one column per label: the median over seeds, on the union of all x."""
    data = data[data["metric"] == metric]
    grid = np.unique(data[x].to_numpy(dtype=float)) if len(data) else np.array([], dtype=float)
    table = {x: grid}
    for label, rows in ordered_groups(data) if len(data) else []:
        med, _, _ = median_band(seed_curves(aggregation_rows(rows), x), grid)
        table[label] = med
    frame = pd.DataFrame(table)
    if x == "step" and len(frame):
        frame[x] = frame[x].astype(np.int64)
    return frame


def step_weights(steps: np.ndarray) -> np.ndarray:
    """Steps each log point covers (its mean online loss is over the steps since the previous one)."""
    w = np.diff(np.asarray(steps, dtype=float), prepend=0.0)
    return np.where(w > 0, w, 0.0)


def smooth_curve(steps: np.ndarray | None, values: np.ndarray, window: int) -> np.ndarray:
    """Step-weighted centred moving average over `window` log points (an even window is rounded up
    to odd), narrowed symmetrically near the ends: the first and last points keep their own value.

    Symmetric on purpose: a window that only shrinks on one side at the end of a curve lags it, so
    a scheme whose curve ends at step N would read higher at N than one whose curve goes on."""
    values = np.asarray(values, dtype=float)
    half = window // 2
    n = len(values)
    if half < 1 or n < 3:
        return values.copy()
    w = np.ones(n) if steps is None else step_weights(steps)
    cw = np.concatenate([[0.0], np.cumsum(w)])
    cv = np.concatenate([[0.0], np.cumsum(values * w)])
    i = np.arange(n)
    h = np.minimum(half, np.minimum(i, n - 1 - i))
    num = cv[i + h + 1] - cv[i - h]
    den = cw[i + h + 1] - cw[i - h]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, values)

"""Runs exported for other tools: TensorBoard scalar event files, one TensorBoard run per curve.

Each (configuration, seed) of the complete runs under the given paths becomes the TensorBoard run
OUT/<configuration label>/seed<N>, holding `train_bpc` and `val_bpc` against the step. An event's
wall time is its unit's start plus the training seconds at that point (compilation and evaluation
left out, as in bpttbench's own figures), so TensorBoard's relative time axis reads training time.
Needs the [tensorboard] extra (tensorboardX: pure Python and protobuf, no TensorFlow).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Iterable

import pandas as pd

from bpttbench.errors import ResultsError, UserError
from bpttbench.files import check_out_dir, clear_dir
from bpttbench.results import add_labels, annotate_curves, complete_runs

METRICS = ("train_bpc", "val_bpc")
_UNSAFE = re.compile(r"[^A-Za-z0-9._=+-]+")


@dataclass
class Exported:
    out: Path
    runs: list[str] = field(default_factory=list)  # TensorBoard run names (paths under out)
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # runs and units left out, with why


def _summary_writer():
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        raise UserError("exporting to TensorBoard needs tensorboardX: pip install 'bpttbench[tensorboard]'") from None
    return SummaryWriter


def _epoch(stamp) -> float:
    """Seconds since 1970 of a manifest time (ISO 8601), 0 when it is missing or unreadable."""
    try:
        return datetime.fromisoformat(str(stamp)).timestamp()
    except ValueError:
        return 0.0


def labelled_curves(paths: Iterable[Path]) -> tuple[pd.DataFrame, list[tuple[Path, str]]]:
    """Every complete run's curves under paths, labelled by configuration, with each row's unit start
    (`unit_start`, seconds since 1970); and what was left out, with why."""
    parts = []
    runs, skipped = complete_runs(*paths)
    for run in runs:
        starts = {u.get("key"): _epoch(u.get("started_at") or run.manifest.get("started_at")) for u in run.units}
        curves = annotate_curves(run)
        parts.append(curves.assign(unit_start=curves["unit"].map(starts).fillna(0.0)))
    parts = [p for p in parts if len(p)]
    if not parts:
        where = ", ".join(str(p) for p in paths)
        raise ResultsError(f"no complete runs with curves under {where}; finish a run with `bpttbench run` first")
    return add_labels(pd.concat(parts, ignore_index=True)), skipped


def run_name(label: str, seed, taken: set[str], run_id: str) -> str:
    """OUT-relative name of a curve's TensorBoard run: <label>/seed<N>, made safe as a path; the
    same configuration and seed from another run directory gets that run's id appended."""
    name = f"{_UNSAFE.sub('_', label).strip('_.') or 'run'}/seed{seed}"
    if name in taken:
        name += "-" + _UNSAFE.sub("_", run_id)
    taken.add(name)
    return name


def export_tensorboard(paths: Iterable[Path], out: Path, *, force: bool = False) -> Exported:
    """Write the curves of the complete runs under paths as TensorBoard event files under out."""
    paths = list(paths)
    SummaryWriter = _summary_writer()
    check_out_dir(out, force=force)  # a bad OUT fails before anything is read
    data, skipped = labelled_curves(paths)
    clear_dir(out, force=force)
    exported = Exported(Path(out), skipped=skipped)
    taken: set[str] = set()
    for _, rows in data.groupby("curve", sort=False):
        first = rows.iloc[0]
        name = run_name(first["label"], first["seed"], taken, str(first.get("run_id", "")))
        writer = SummaryWriter(logdir=str(Path(out) / name), flush_secs=3600)
        try:
            for row in rows[rows["metric"].isin(METRICS)].sort_values(["step", "metric"]).itertuples(index=False):
                writer.add_scalar(row.metric, float(row.value), int(row.step), walltime=row.unit_start + float(row.wall_s))
        finally:
            writer.close()
        exported.runs.append(name)
    return exported

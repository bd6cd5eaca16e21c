"""gradcheck.csv as the report reads it: per configuration and estimator, the cosine and relative
error over checkpoints (of single and stored against the exact window gradient; of X_vs_Y, X
against Y). Every estimator the file holds is summarised, whatever its name, so rows gradcheck
adds later show in the report without a change here; the claims pick the ones they judge."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bpttbench.fidelity.gradcheck import COLUMNS, CONFIG_COLUMNS, CSV_NAME, FIGURE_STEMS, MANIFEST_NAME
from bpttbench.report.families import plain_value
from bpttbench.report.stats import Interval, median_interval

FD_CHECK = "exact_vs_fd"  # the check of the exact gradient itself, not an estimator to summarise


@dataclass
class GradSummary:
    """gradcheck.csv, per configuration and estimator: cosine and relative error over checkpoints."""

    config: dict
    estimator: str
    cosine: Interval
    rel_error: Interval
    tensors: str  # which tensor rows were used


def find_gradchecks(path: Path) -> list[Path]:
    """Every gradcheck.csv under path (or beside it, when path is a file)."""
    root = path.parent if path.is_file() else path
    try:
        return sorted(p for p in root.rglob(CSV_NAME) if p.is_file())
    except OSError:
        return []


def gradcheck_figures(files: list[Path]) -> list[Path]:
    return [f.parent / f"{stem}.png" for f in files for stem in FIGURE_STEMS if (f.parent / f"{stem}.png").is_file()]


def _status(path: Path) -> str | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return str(data.get("status")) if isinstance(data, dict) and data.get("status") is not None else None


def read_frames(files: list[Path], warnings: list[str]) -> list[pd.DataFrame]:
    frames = []
    for f in files:
        try:
            df = pd.read_csv(f)
        except (OSError, ValueError, pd.errors.ParserError) as exc:
            warnings.append(f"could not read {f}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}; it is ignored")
            continue
        missing = [c for c in COLUMNS if c not in df.columns]
        if missing:
            warnings.append(f"{f} lacks column(s) {', '.join(missing)}; it is ignored")
            continue
        status = _status(f.parent / MANIFEST_NAME)
        if status not in ("complete", None):
            warnings.append(f"the gradcheck in {f.parent} has status {status!r}: its checkpoints so far are used")
        frames.append(df)
    return frames


def read_gradchecks(files: list[Path], settings: dict, warnings: list[str]) -> tuple[list[GradSummary], str | None]:
    """Per configuration and estimator: the cosine and relative error against the exact gradient
    (single_vs_stored: of single against stored), median over checkpoints with a distribution-free
    interval over checkpoints. The second value says why the gradient claims cannot be judged,
    or None. Uses the whole-gradient rows (tensor 'all') when there are any, as gradcheck does."""
    if not files:
        return [], None
    frames = read_frames(files, warnings)
    if not frames:
        return [], "no readable gradcheck.csv"
    df = pd.concat(frames, ignore_index=True)
    for c in ("cosine", "rel_error"):
        df[c] = pd.to_numeric(df[c], errors="coerce")
    df["estimator"] = df["estimator"].astype(str)
    df["tensor"] = df["tensor"].astype(str)
    whole = "all" in set(df["tensor"])
    if whole:
        df = df[df["tensor"] == "all"]
    tensors = "the whole gradient" if whole else "median over tensors " + ", ".join(sorted(set(df["tensor"])))
    problem = None
    fd = df[df["estimator"] == FD_CHECK]["rel_error"]
    if len(fd) and not (fd.fillna(math.inf) <= settings["exact_tol"]).all():
        worst = fd.fillna(math.inf).max()
        problem = (f"the exact gradient disagrees with finite differences (largest relative error {worst:.2g} > "
                   f"{settings['exact_tol']:g})")
        warnings.append(f"gradcheck: {problem}; the gradient claims are not judged")
    elif not len(fd):
        warnings.append("gradcheck.csv has no exact_vs_fd rows: the exact gradient itself was not checked")
    out = []
    rows = df[df["estimator"] != FD_CHECK]
    for keys, part in rows.groupby(list(CONFIG_COLUMNS) + ["estimator"], sort=True, dropna=False):
        per_point = part.groupby(["seed", "step"], sort=True)[["cosine", "rel_error"]].median()
        out.append(GradSummary(config=dict(zip(CONFIG_COLUMNS, (plain_value(k) for k in keys[:-1]))), estimator=str(keys[-1]),
                               cosine=median_interval(per_point["cosine"].tolist()),
                               rel_error=median_interval(per_point["rel_error"].tolist()), tensors=tensors))
    return out, problem

"""Curve helpers that plots and reports share: annotating runs' curves with their configuration,
grouping seeds by configuration, labelling, smoothing, resampling and median bands.

A configuration is everything a unit's TrainConfig holds except the seed, plus the corpus (name
and sha256): units that differ in anything else, a clip or a budget included, are different
configurations and are never averaged together. The one exception: the untruncated schemes do not use k2,
so they are grouped under scheme_names.UNTRUNCATED_K2 whatever k2 they recorded.

Seeds are aggregated by resampling each seed onto a common grid with linear interpolation, never
extrapolating beyond a seed's own range, and taking the median (and quartiles) only where every
seed of the group has data.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from bpttbench.config import CHUNK_SCHEMES, LEGACY_VALUES, UNTRUNCATED_SCHEMES
from bpttbench.scheme_names import UNTRUNCATED_K2, effective_k2  # noqa: F401 (UNTRUNCATED_K2 re-exported)
from bpttbench.errors import ResultsError
from bpttbench.results.reader import (
    CONFIG_FIELDS,
    CORPUS_COLUMNS,
    PLOTTED_UNIT_STATUSES,
    Run,
    empty_curves,
    split_complete,
)

# What identifies a configuration: scheme first (config_sort_key orders by it), then every other
# configuration field but the seed and how often the run is measured (MEASURE_CADENCE: it changes
# where the points of a curve fall, not the training), then the corpus.
MEASURE_CADENCE = ("log_every", "eval_every")
GROUP_KEY = (("scheme",) + tuple(c for c in CONFIG_FIELDS if c not in ("scheme", "seed") + MEASURE_CADENCE)
             + CORPUS_COLUMNS)

# Sorting follows the question: sliding window first, then the single pass.
SCHEME_ORDER = ("sliding", "single", "stored", "chunked")

_BUDGET = ("budget_seconds", "budget_steps")
# A field a scheme does not choose: the untruncated schemes ignore k2, chunked's k1 is its k2. Labels never
# show it for that scheme, and it is no difference between configurations.
_NOT_CHOSEN = {**{s: "k2" for s in UNTRUNCATED_SCHEMES}, **{s: "k1" for s in CHUNK_SCHEMES}}


# ----------------------------------------------------------------------------- configurations


def plain(value: Any) -> Any:
    """A configuration value as a plain Python value: NumPy scalars unwrapped, NaN and '' as None
    (a missing value), so values compare, hash and print the same whichever file they came from."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA or value == "":
        return None
    return value


def group_key(config: Mapping[str, Any]) -> tuple:
    """The configuration's GROUP_KEY values (missing fields as None); an untruncated scheme's k2 is
    scheme_names.UNTRUNCATED_K2 whatever it recorded."""
    values = {c: plain(config.get(c, LEGACY_VALUES.get(c))) for c in GROUP_KEY}
    if values["k2"] is not None:
        values["k2"] = effective_k2(values["scheme"], values["k2"])
    return tuple(values[c] for c in GROUP_KEY)


def _fmt(value: Any) -> str:
    value = plain(value)
    if value is None:
        return "?"
    if isinstance(value, float):  # short, but never so short that two values read alike
        short = f"{value:g}"
        return short if float(short) == value else repr(value)
    return str(value)


def _budget_text(config: Mapping[str, Any]) -> str:
    seconds, steps = (plain(config.get(c)) for c in _BUDGET)
    parts = ([f"{_fmt(seconds)}s"] if seconds is not None else []) + ([f"{_fmt(steps)} steps"] if steps is not None else [])
    return "budget=" + ("/".join(parts) or "?")


def varying_fields(configs: Sequence[Mapping[str, Any]]) -> list[str]:
    """The GROUP_KEY fields (scheme aside) whose value differs between configs, in GROUP_KEY order.

    k2 counts only among schemes that use it, k1 only among schemes other than chunked (whose k1
    is its k2); the corpus's sha256 only where one corpus name stands for different texts
    (otherwise the name tells them apart)."""
    keys = [dict(zip(GROUP_KEY, group_key(c))) for c in configs]
    out = []
    for c in GROUP_KEY[1:]:
        among = [k for k in keys if _NOT_CHOSEN.get(k["scheme"]) != c]
        if len({k[c] for k in among}) > 1:
            out.append(c)
    if "corpus_sha256" in out:
        texts_per_name = {}
        for k in keys:
            texts_per_name.setdefault(k["corpus"], set()).add(k["corpus_sha256"])
        if all(len(texts) == 1 for texts in texts_per_name.values()):
            out.remove("corpus_sha256")
    return out


def config_labels(configs: Sequence[Mapping[str, Any]]) -> list[str]:
    """A label per configuration: its scheme, then the fields that differ between configs and only
    those ('single clip=0.5' beside 'single clip=1'; 'single' and 'sliding' when nothing else
    differs). A budget is shown as 'budget=60s' or 'budget=1000 steps'; untruncated schemes never show
    k2, chunked never k1."""
    varying = varying_fields(configs)
    labels = []
    for config in configs:
        parts = [_fmt(config.get("scheme"))]
        for c in varying:
            if _NOT_CHOSEN.get(config.get("scheme")) == c:
                continue
            if c in _BUDGET:
                text = _budget_text(config)
                if text not in parts:
                    parts.append(text)
            elif c == "corpus_sha256":
                parts.append(f"{c}={_fmt(config.get(c))[:12]}")
            else:
                parts.append(f"{c}={_fmt(config.get(c))}")
        labels.append(" ".join(parts))
    return labels


def add_labels(data: pd.DataFrame) -> pd.DataFrame:
    """Add a `label` per configuration (see `config_labels`) over the configurations in data.

    GROUP_KEY columns that data lacks count as the same for every row."""
    data = data.copy()
    if data.empty:
        data["label"] = pd.Series(dtype=str)
        return data
    present = [c for c in GROUP_KEY if c in data.columns]
    seen: dict[tuple, tuple] = {}  # rows repeat their unit's configuration: compute each key once
    keys = [seen.get(row) or seen.setdefault(row, group_key(dict(zip(present, row))))
            for row in data[present].itertuples(index=False, name=None)]
    distinct = list(dict.fromkeys(keys))
    labels = dict(zip(distinct, config_labels([dict(zip(GROUP_KEY, k)) for k in distinct])))
    data["label"] = [labels[k] for k in keys]
    return data


# ----------------------------------------------------------------------------- annotating


def _equals(column: pd.Series, value: Any) -> pd.Series:
    """Which cells of a curves.csv column hold a manifest's value (a number compared as a number)."""
    value = plain(value)
    if value is None:
        return column.isna()
    if pd.api.types.is_numeric_dtype(column.dtype):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return pd.Series(False, index=column.index)
        return column == float(value)
    return column.astype(str) == str(value)


# The columns that tell a unit's rows from another's in one run (curves.csv has always had them).
_IDENTITY = ("scheme", "k1", "k2", "inject", "hidden", "batch", "dtype", "seed")


def _matches(unit: dict, rows: pd.DataFrame, columns: Iterable[str] = CONFIG_FIELDS) -> pd.Series:
    cfg = unit.get("config") or {}
    ok = pd.Series(True, index=rows.index)
    for c in columns:
        if c in cfg and c in rows.columns:
            ok &= _equals(rows[c], cfg[c])
    return ok


def _assign_units(curves: pd.DataFrame, units: list[dict]) -> pd.Series:
    """Which unit (by key) each row of curves.csv belongs to: by the manifest's row ranges,
    checked against the columns that identify a unit; by every configuration column alone if
    the ranges disagree. Where the two files differ in another field, the manifest, the record of
    what ran, is what annotate_curves reports."""
    n = len(curves)
    keys = pd.Series([None] * n, index=curves.index, dtype=object)
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
        if not _matches(unit, block, _IDENTITY).all():
            consistent = False
            break
        keys.iloc[start:stop] = unit.get("key")
    if consistent:
        return keys
    keys[:] = None
    for unit in units:
        free = keys.isna() & _matches(unit, curves)
        keys[free] = unit.get("key")
    return keys


def _run_corpus(run: Run) -> tuple[Any, Any]:
    corpus = run.manifest.get("corpus")
    if isinstance(corpus, dict):
        return corpus.get("name"), corpus.get("sha256")
    return corpus or run.manifest.get("corpus_name"), None


def _config_columns(run: Run, df: pd.DataFrame) -> dict[str, pd.Series]:
    """Each configuration column: its unit's value from the manifest, else curves.csv's (an older
    file lacks columns; a row no unit claims has only the file's), None where neither knows."""
    name, sha = _run_corpus(run)
    out = {}
    for c in CORPUS_COLUMNS + CONFIG_FIELDS:
        cells = df[c] if c in df.columns else [None] * len(df)
        values = pd.Series([plain(v) for v in cells], index=df.index, dtype=object)
        for unit in run.units:
            known = {"corpus": unit.get("corpus") or name, "corpus_sha256": sha, **(unit.get("config") or {})}.get(c)
            if plain(known) is not None:
                values[df["unit"] == unit.get("key")] = plain(known)
        if c in CORPUS_COLUMNS:
            values[values.isna()] = plain(name if c == "corpus" else sha)
        elif c in LEGACY_VALUES:
            values[values.isna()] = LEGACY_VALUES[c]
        # A column with None stays object, so that equal configurations stay equal (NaN != NaN).
        out[c] = values if values.isna().any() else values.infer_objects()
    return out


def annotate_curves(run: Run, statuses: Iterable[str] | None = PLOTTED_UNIT_STATUSES) -> pd.DataFrame:
    """One run's curves with every configuration column, its unit's status and divergence.

    Columns: run_id, corpus, corpus_sha256, every TrainConfig field (None where unknown; `clock` from
    config.LEGACY_VALUES for runs older than it), step, updates, wall_s, cpu_s (NaN in older runs),
    train_s (the seconds on the unit's clock), metric, value, and unit, curve (an id unique across runs), status, diverged
    (bool), diverged_at_step. Non-finite values are dropped everywhere, and a diverged unit is cut
    at its divergence step, so nothing plots garbage. Only units whose status is in `statuses`
    are kept (None keeps all).
    """
    df = run.curves.reset_index(drop=True)
    units = {u.get("key"): u for u in run.units}
    df["unit"] = _assign_units(df, run.units) if len(df) else pd.Series(dtype=object)
    info = [units.get(key) or {} for key in df["unit"].tolist()]
    div_at = [u.get("diverged_at_step") for u in info]
    out = pd.DataFrame({
        "run_id": df["run_id"],
        **_config_columns(run, df),
        **{c: df[c] for c in ("step", "updates", "wall_s", "metric", "value", "unit")},
        "cpu_s": df["cpu_s"] if "cpu_s" in df else pd.Series(math.nan, index=df.index, dtype=float),
        "status": pd.Series([u.get("status", "unknown") for u in info], index=df.index, dtype=object),
        "diverged_at_step": pd.Series([float(d) if isinstance(d, (int, float)) else math.nan for d in div_at],
                                      index=df.index, dtype=float),
    })
    # train_s: training time on the unit's own clock, what every time axis and time budget counts.
    out["train_s"] = out["cpu_s"].where(out["clock"] == "cpu", out["wall_s"]).astype(float)
    out["diverged"] = (out["status"] == "diverged").astype(bool)
    out["curve"] = str(run.path) + "#" + out["unit"].fillna("?").astype(str)
    if statuses is not None:
        out = out[out["status"].isin(tuple(statuses))]
    keep = np.isfinite(out["value"].to_numpy(dtype=float)) & np.isfinite(out["train_s"].to_numpy(dtype=float))
    # The record at the divergence step already averages the blow-up: cut from there on.
    cut = out["diverged"].to_numpy() & (out["step"].to_numpy(dtype=float) >= out["diverged_at_step"].to_numpy(dtype=float))
    return out[keep & ~cut].reset_index(drop=True)


def group_curves(runs: Iterable[Run]) -> pd.DataFrame:
    """All complete runs' curves, annotated (see `annotate_curves`) and labelled (see `add_labels`).

    Seeds group by GROUP_KEY (`group_key` of a row; equivalently by `label`); each seed's curve
    is one `curve` id.
    """
    complete, _ = split_complete(runs)
    parts = [annotate_curves(run) for run in complete]
    parts = [p for p in parts if len(p)]
    if not parts:
        return add_labels(annotate_curves(Run(Path("."), {}, empty_curves())))
    data = pd.concat(parts, ignore_index=True)
    for c in CORPUS_COLUMNS + CONFIG_FIELDS:  # concatenation may have turned a run's None into NaN
        if data[c].isna().any():
            data[c] = pd.Series([plain(v) for v in data[c]], dtype=object)
    return add_labels(data)


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
    v = plain(v)
    if isinstance(v, (int, float)):
        return (0, float(v), "")
    return (1, 0.0, "" if v is None else str(v))


def ordered_groups(data: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(label, rows) per configuration, sliding first, then single, stored, chunked, others."""
    out = []
    for label, rows in data.groupby("label", sort=False):
        first = rows.iloc[0]
        out.append((config_sort_key(*group_key(first)), label, rows))
    out.sort(key=lambda t: t[0])
    return [(label, rows) for _, label, rows in out]


# ----------------------------------------------------------------------------- smoothing and seed aggregation


def step_weights(steps: np.ndarray) -> np.ndarray:
    """Steps each log point covers (its mean online loss is over the steps since the previous one)."""
    w = np.diff(np.asarray(steps, dtype=float), prepend=0.0)
    return np.where(w > 0, w, 0.0)


def smooth_curve(steps: np.ndarray | None, values: np.ndarray, window: int) -> np.ndarray:
    """Step-weighted centred moving average over `window` log points (an even window is rounded up
    to odd), narrowed symmetrically near the ends: the first and last points keep their own value.
    Without steps, every point weighs the same.

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


def seed_curves(rows: pd.DataFrame, x: str, smooth: int = 1) -> list[tuple[np.ndarray, np.ndarray]]:
    """One (x, value) pair of arrays per curve, x increasing, duplicates of x dropped (the last
    kept). With smooth > 1 each curve is first smoothed in step order (`smooth_curve`, weighted
    by the steps each log point covers), the same smoothing whatever x is."""
    out = []
    for _, c in rows.groupby("curve", sort=True):
        c = c.sort_values("step", kind="stable").drop_duplicates("step", keep="last")
        values = c["value"].to_numpy(dtype=float)
        if smooth > 1:
            values = smooth_curve(c["step"].to_numpy(dtype=float), values, smooth)
        xs = c[x].to_numpy(dtype=float)
        order = np.argsort(xs, kind="stable")
        xs, values = xs[order], values[order]
        last = np.append(xs[1:] != xs[:-1], True) if len(xs) else np.array([], dtype=bool)
        out.append((xs[last], values[last]))
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

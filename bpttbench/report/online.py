"""The online learning rules side by side, one table per corpus: how close each rule's gradient is
to the exact online one (rtrl's), what a step costs, what the rule keeps in memory, and on a
generated corpus its gap to the optimum.

The cosine comes from gradcheck.csv, along rtrl's own trajectory (gradcheck --scheme rtrl), where
rtrl's untruncated gradient is known: `<rule>_vs_rtrl` for snap1, eprop and uoro; single_vs_rtrl,
stored_vs_rtrl and exact_vs_rtrl for single, stored and sliding (the exact window gradient is
sliding's); exact_vs_rtrl on a trajectory with k1 = k2 is chunked's gradient. A run configuration
takes the rows of the gradcheck trajectories with its corpus, hidden, batch, inject, optimizer,
lr and clip (the dtype may differ: gradcheck runs float64), with its k1 and, for a truncated rule,
its k2. Per seed and checkpoint the rows are one value (an online rule's rows repeat across the
trajectories' k2, which changes nothing about them); the cell is their median with a distribution-free
interval over those points. uoro's cosine is of a single sample of its random projection.
adaptive has no row: its update is chunked's at the k2 it chose (curves.csv, metric k2), so read
chunked's row at that k2.

µs per step and resident memory come from the run manifests (wall_s / steps; Scheme.resident_bytes,
every array the rule keeps); the final online loss (the mean of the last log points, as in the
families) on every corpus, so a corpus without a known optimum still compares what the rules learnt;
the gap from report/gaps.py.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import pandas as pd

from bpttbench.config import CHUNK_SCHEMES, UNTRUNCATED_SCHEMES
from bpttbench.report.families import FAMILY_KEY, by_key, per_seed
from bpttbench.report.paired import Curve
from bpttbench.report.gaps import GapTable
from bpttbench.report.gradients import read_frames
from bpttbench.report.stats import Interval, format_interval, median_interval, median_or_nan
from bpttbench.results import GROUP_KEY

ONLINE_RULES = ("chunked", "single", "stored", "sliding", "adaptive", "rtrl", "uoro", "snap1", "eprop")
COSINE_TENSORS = ("all", "weight_hh_l0")
# What a run configuration and a gradcheck trajectory must share, besides k1 (and k2 for a truncated rule).
MATCH_COLUMNS = ("corpus", "hidden", "batch", "inject", "optimizer", "lr", "clip")
# Why a rule has no cosine of its own, or what its cosine is.
COSINE_NOTES = {
    "rtrl": "the reference: cosine 1 by definition",
    "uoro": "a single sample of its random projection",
    "adaptive": "no row: its update is chunked's at the k2 it chose (curves.csv metric k2)",
}


def estimator_for(scheme: str, k1: int, k2: int) -> str | None:
    """The gradcheck estimator (along rtrl's trajectory) that measures this rule's gradient, if any."""
    if scheme == "chunked" or (scheme == "sliding" and k1 < k2):  # sliding at k1 = k2 is chunked
        return "exact_vs_rtrl"
    if scheme in ("single", "stored", "snap1", "eprop", "uoro"):
        return f"{scheme}_vs_rtrl"
    return None


@dataclass
class OnlineRow:
    """One run configuration of an online rule: medians over its seeds, and its gradient's alignment."""

    scheme: str
    k1: int
    k2: int | None  # None for the untruncated rules, which do not use it
    hidden: int
    config: dict
    seeds: list[int]
    cosine: dict[str, Interval]  # tensor -> cosine with rtrl's gradient over checkpoints
    us_per_step: Interval
    resident_bytes: float  # median over seeds (NaN when the manifests do not record it)
    final_loss: Interval  # final online loss, bits/char
    gap: Interval | None  # generated corpora only
    note: str = ""

    @property
    def label(self) -> str:
        k = "" if self.k2 is None else f" k2={self.k2}" if self.scheme in CHUNK_SCHEMES else \
            f" k1={self.k1} k2={self.k2}"
        return f"{self.scheme}{k}"


@dataclass
class OnlineTable:
    corpus: str
    optimum: float | None  # the entropy rate, on a generated corpus
    rows: list[OnlineRow] = field(default_factory=list)


def _cosine_points(grad: pd.DataFrame, cfg: dict, tensor: str) -> list[float]:
    """The cosine at every (seed, checkpoint) of the matching rtrl trajectories, one value per point."""
    scheme, k1, k2 = cfg["scheme"], int(cfg["k1"]), int(cfg["k2"])
    estimator = estimator_for(scheme, k1, k2)
    if estimator is None or grad.empty:
        return []
    rows = grad[(grad["scheme"] == "rtrl") & (grad["estimator"] == estimator) & (grad["tensor"] == tensor)
                & (grad["k1"] == k1)]
    for c in MATCH_COLUMNS:
        rows = rows[rows[c] == cfg[c]]
    if scheme == "chunked":
        rows = rows[rows["k2"] == k1]  # chunked's window: k1 = k2
    elif scheme not in UNTRUNCATED_SCHEMES:
        rows = rows[rows["k2"] == k2]
    return rows.groupby(["seed", "step"], sort=True)["cosine"].median().dropna().tolist()


def _row(curves: list[Curve], grad: pd.DataFrame, gaps: dict[tuple, object], settings: dict) -> OnlineRow:
    live = [c for c in curves if not c.diverged]
    cfg = dict(zip(GROUP_KEY, curves[0].group))
    for c in live:
        rate = c.steps_per_s
        c.values["us_per_step"] = 1e6 / rate if rate > 0 else math.nan
        resident = c.unit.get("resident_bytes")
        c.values["resident_bytes"] = float(resident) if isinstance(resident, (int, float)) else math.nan
    gap = gaps.get(curves[0].group)
    scheme = str(cfg["scheme"])
    return OnlineRow(
        scheme=scheme, k1=int(cfg["k1"]), k2=None if scheme in UNTRUNCATED_SCHEMES else int(cfg["k2"]),
        hidden=int(cfg["hidden"]), config=cfg, seeds=sorted({c.seed for c in live}),
        cosine={t: median_interval(_cosine_points(grad, cfg, t)) for t in COSINE_TENSORS},
        us_per_step=median_interval(per_seed(live, "us_per_step").values()),
        resident_bytes=median_or_nan(list(per_seed(live, "resident_bytes").values())),
        final_loss=median_interval(per_seed(live, "final_train").values()),
        gap=None if gap is None else gap.gap, note=COSINE_NOTES.get(scheme, ""))


def online_tables(curves: list[Curve], grad: pd.DataFrame, gaps: list[GapTable], settings: dict) -> list[OnlineTable]:
    """Per corpus with a run of an untruncated rule (rtrl, uoro, snap1, eprop): a row per configuration
    (results.GROUP_KEY) of an online rule, ordered by hidden, rule, k2. Truncation alone gets no table."""
    gap_rows = {tuple(r.config[k] for k in GROUP_KEY): r for t in gaps for r in t.rows}
    optimum = {t.corpus: t.optimum for t in gaps}
    ours = [c for c in curves if c.scheme in ONLINE_RULES]
    by_corpus = by_key(ours, lambda c: str(c.family[FAMILY_KEY.index("corpus")]))
    tables = []
    for corpus in sorted(by_corpus, key=_natural):
        if not any(c.scheme in UNTRUNCATED_SCHEMES for c in by_corpus[corpus]):
            continue
        groups = by_key(by_corpus[corpus], lambda c: c.group)
        rows = [_row(g, grad, gap_rows, settings) for g in groups.values()]
        rows.sort(key=lambda r: (r.hidden, ONLINE_RULES.index(r.scheme), r.k2 or 0, r.k1, str(r.config)))
        tables.append(OnlineTable(corpus, optimum.get(corpus), rows))
    return tables


def _natural(name: str) -> list:
    """lag:5 before lag:10: the digits in a corpus name compared as numbers."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name)]


def read_gradcheck_rows(files, warnings: list[str]) -> pd.DataFrame:
    """Every gradcheck.csv's rows in one frame (empty when there are none), numbers as numbers."""
    frames = read_frames(list(files), warnings) if files else []
    if not frames:
        return pd.DataFrame()
    df = pd.concat(frames, ignore_index=True)
    for c in ("cosine", "lr", "clip"):
        df[c] = pd.to_numeric(df[c], errors="coerce")
    for c in ("scheme", "estimator", "tensor", "corpus", "inject", "optimizer"):
        df[c] = df[c].astype(str)
    return df


# ----------------------------------------------------------------------------- as text


def format_bytes(n: float) -> str:
    if n is None or math.isnan(n):
        return "–"
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            value = n / size
            return f"{value:.3g} {unit}" if value < 999.5 else f"{value:.0f} {unit}"  # not 1e+03
    return f"{n:.0f} B"


def cosine_cell(row: OnlineRow, tensor: str) -> str:
    if row.scheme == "rtrl":
        return "1 (reference)"
    iv = row.cosine[tensor]
    if iv.n == 0:
        return "–"
    text = format_interval(iv, "cos", of="checkpoints")
    return text + (" (one sample)" if row.scheme == "uoro" else "")


ONLINE_HEADER = ["rule", "H", "seeds", "cosine with rtrl (all)", "cosine (W_hh)", "µs per step", "resident memory",
                 "final online loss", "gap to the optimum"]


def online_cells(t: OnlineTable) -> list[list[str]]:
    return [[r.label, str(r.hidden), str(len(r.seeds)), cosine_cell(r, "all"), cosine_cell(r, "weight_hh_l0"),
             format_interval(r.us_per_step, "us"), format_bytes(r.resident_bytes),
             format_interval(r.final_loss, "bits/char"), "–" if r.gap is None else format_interval(r.gap, "bits/char", signed=True)] for r in t.rows]


def online_dict(t: OnlineTable) -> dict:
    return {"corpus": t.corpus, "optimum_bpc": t.optimum, "rows": [{
        "scheme": r.scheme, "k1": r.k1, "k2": r.k2, "hidden": r.hidden, "config": r.config, "seeds": r.seeds,
        "cosine": {k: v.to_dict() for k, v in r.cosine.items()}, "us_per_step": r.us_per_step.to_dict(),
        "resident_bytes": r.resident_bytes, "final_loss": r.final_loss.to_dict(), "gap": None if r.gap is None else r.gap.to_dict(), "note": r.note}
        for r in t.rows]}


def md_online(tables: list[OnlineTable], md_table) -> list[str]:
    lines = ["Each rule's gradient against the exact online one (rtrl's, untruncated), measured by gradcheck along "
             "rtrl's trajectory: cosine, median over seeds and checkpoints [95% distribution-free interval over them], for the "
             "whole gradient and for W_hh alone. uoro's is of one sample of its random projection; rtrl is the "
             "reference; adaptive's update is chunked's at the k2 it chose. µs per step: training time per step "
             "(medians over seeds); resident memory: every array the rule keeps; final online loss: the mean over the "
             "last log points, bits/char; gap: final online loss − optimum (generated corpora)."]
    for t in tables:
        optimum = f" (optimum {t.optimum:.4f} bits/char)" if t.optimum is not None else ""
        lines += ["", f"### {t.corpus}{optimum}", ""] + md_table(ONLINE_HEADER, online_cells(t))
    return lines

"""The gap to the optimum on generated corpora: each configuration's final online loss minus the
entropy rate its manifest records, and on lag:L the k2 from which each truncated scheme learns
the dependency (its median gap falls below what forgetting the cue costs)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from bpttbench.config import UNTRUNCATED_SCHEMES
from bpttbench.report.families import FAMILY_KEY, by_key, per_seed, sort_key
from bpttbench.report.paired import Curve
from bpttbench.report.stats import Interval, format_interval, median_interval, format_setting, median_or_nan, tail_mean
from bpttbench.results import GROUP_KEY, config_sort_key

GAP_FRACTION = 0.1  # the gap to the optimum reads the mean online loss over this last fraction of each run's steps
SETTING_KEY = tuple(k for k in FAMILY_KEY if k not in ("corpus", "k2"))  # one gap table per corpus and setting


@dataclass
class GapRow:
    """One configuration's final online loss and its gap to the optimum, medians over seeds."""

    label: str
    scheme: str
    k1: int
    k2: int | None  # None for the online schemes, which do not use it
    row: str  # its row in the scheme x k2 table, e.g. 'single', 'chunked (k1 = k2)'
    config: dict
    seeds: list[int]
    final: Interval  # online loss over the last GAP_FRACTION of the steps
    gap: Interval  # final - optimum
    from_step: float  # median over seeds of the first step the final online loss covers
    us_per_step: Interval  # training time per step (compilation and evaluation excluded), microseconds

    @property
    def cell(self) -> str:
        return format_interval(self.gap, "bits/char", signed=True)


@dataclass
class Finding:
    """Whether one row of a gap table learns the dependency, and from which k2 on."""

    row: str
    learns: bool  # online rows: the median gap is below the cost; truncated rows: it is from some k2 on
    learns_from: int | None  # truncated rows: the smallest k2 from which every larger k2 swept is below the cost
    disagree: list  # the deciding k2 values (None for an online row) where the seeds straddle the cost
    text: str  # the sentence report.md prints

    @property
    def short(self) -> str:
        """The sentence without the gaps by k2 (a table beside it has them)."""
        return self.text.split(" (gap by k2: ")[0]


@dataclass
class GapTable:
    """Every configuration on one generated corpus with one setting (inject, hidden, batch,
    optimizer, lr): gaps per configuration, and on lag:L the k2 from which each truncated scheme
    learns the dependency."""

    corpus: str
    optimum: float
    setting: dict
    label: str
    rows: list[GapRow]
    k2s: list[int]  # the truncated configurations' k2 values, ascending
    dependency: str | None  # what forgetting the long-range dependency costs, in words; None when unknown
    cost: float  # bits/char; NaN when unknown
    findings: list[Finding] = field(default_factory=list)  # one per row name

    def cell(self, row: str, k2: int | None) -> GapRow | None:
        return next((r for r in self.rows if r.row == row and r.k2 == k2), None)

    @property
    def row_names(self) -> list[str]:
        return list(dict.fromkeys(r.row for r in self.rows))


def dependency_cost(generator: dict | None) -> tuple[float, str] | None:
    """(bits/char, in words) that a predictor loses by forgetting the corpus's long-range
    dependency, from the generator parameters a generated corpus records in the manifest; None
    when the process has no single such dependency. For lag:L (bpttbench/data/synthetic.py) the repeat
    of the cue, once per episode of L + 1 characters, is one of M equally likely symbols to a
    predictor without the cue and certain to one with it: log2(M) / (L + 1)."""
    if not isinstance(generator, dict) or generator.get("kind") != "lag":
        return None
    try:
        L, M = int(generator["lag"]), int(generator["symbols"])
    except (KeyError, TypeError, ValueError):
        return None
    if L < 1 or M < 1:
        return None
    cost = math.log2(M) / (L + 1)
    return cost, (f"forgetting the cue, L = {L} steps back, costs log2(M)/(L+1) = log2({M})/{L + 1} = {cost:.4f} "
                  f"bits/char (the repeat is one of M = {M} equally likely symbols, once per episode of {L + 1} "
                  "characters)")


def _row_name(scheme: str, k1: int, k2: int) -> str:
    if scheme in UNTRUNCATED_SCHEMES:
        return f"{scheme} (no truncation)" if k1 == 1 else f"{scheme} k1={k1} (no truncation)"
    if scheme == "chunked" and k1 == k2:
        return "chunked (k1 = k2)"
    if k1 == 1:
        return scheme
    return f"{scheme} (k1 = k2)" if k1 == k2 else f"{scheme} k1={k1}"


def _corpus_facts(c: Curve) -> tuple[float | None, dict | None]:
    corpus = c.run.manifest.get("corpus") if c.run is not None else None
    if not isinstance(corpus, dict):
        return None, None
    optimum = corpus.get("optimum_bpc")
    ok = isinstance(optimum, (int, float)) and not isinstance(optimum, bool) and math.isfinite(optimum)
    return (float(optimum) if ok else None), corpus.get("generator")


def gap_tables(curves: list[Curve], settings: dict, warnings: list[str]) -> list[GapTable]:
    """Per generated corpus and setting: every configuration's gap to the optimum."""
    by_setting: dict[tuple, list[Curve]] = {}
    facts: dict[str, tuple[float, dict | None]] = {}
    for c in curves:
        corpus = str(c.family[FAMILY_KEY.index("corpus")])
        optimum, generator = _corpus_facts(c)
        if optimum is None:
            continue
        if corpus in facts and not math.isclose(facts[corpus][0], optimum, rel_tol=1e-9):
            warnings.append(f"runs on {corpus} record different optima ({facts[corpus][0]:.6g} and {optimum:.6g}): "
                            "were they generated with different parameters? the first is used")
        facts.setdefault(corpus, (optimum, generator))
        cfg = dict(zip(GROUP_KEY, c.group))
        by_setting.setdefault((corpus, *(cfg[k] for k in SETTING_KEY)), []).append(c)
    tables = []
    for key in sorted(by_setting, key=lambda k: tuple(sort_key(v) for v in k)):
        corpus, setting = key[0], dict(zip(SETTING_KEY, key[1:]))
        tables.append(_gap_table(corpus, setting, *facts[corpus], by_setting[key], settings))
    return tables


def _gap_table(corpus: str, setting: dict, optimum: float, generator: dict | None, curves: list[Curve],
               settings: dict) -> GapTable:
    grouped = by_key(curves, lambda c: c.group)
    rows = [_gap_row(grouped[g], optimum, settings) for g in sorted(grouped, key=lambda g: config_sort_key(*g))]
    dep = dependency_cost(generator)
    table = GapTable(corpus=corpus, optimum=optimum, setting=setting,
                     label=f"{corpus} · inject {setting['inject']} · hidden {format_setting(setting['hidden'])} · batch "
                           f"{format_setting(setting['batch'])} · {setting['optimizer']} lr={format_setting(setting['lr'])}",
                     rows=rows, k2s=sorted({r.k2 for r in rows if r.k2 is not None}),
                     dependency=dep[1] if dep else None, cost=dep[0] if dep else math.nan)
    if dep:
        table.findings = [_finding(table, name) for name in table.row_names]
    return table


def _gap_row(curves: list[Curve], optimum: float, settings: dict) -> GapRow:
    """One configuration's row: its live seeds' final online loss, gap and time per step."""
    live = [c for c in curves if not c.diverged]
    for c in live:
        c.values["gap_final"], c.values["gap_from"] = tail_mean(c.step, c.raw, settings["gap_fraction"])
        c.values["gap"] = c.values["gap_final"] - optimum
        rate = c.steps_per_s
        c.values["us_per_step"] = 1e6 / rate if rate > 0 else math.nan
    first = curves[0]
    cfg = dict(zip(GROUP_KEY, first.group))
    k1, k2 = int(cfg["k1"]), int(cfg["k2"])
    return GapRow(
        label=first.label, scheme=first.scheme, k1=k1, k2=None if first.scheme in UNTRUNCATED_SCHEMES else k2,
        row=_row_name(first.scheme, k1, k2), config=cfg, seeds=sorted({c.seed for c in live}),
        final=median_interval(per_seed(live, "gap_final").values()),
        gap=median_interval(per_seed(live, "gap").values()),
        from_step=median_or_nan(list(per_seed(live, "gap_from").values())),
        us_per_step=median_interval(per_seed(live, "us_per_step").values()))


def _finding(t: GapTable, name: str) -> Finding:
    """For one row of the table: from which k2 on its median gap is below the cost of forgetting the
    dependency (truncated schemes), or whether it is below at all (online schemes)."""
    cost = t.cost

    def below(r: GapRow) -> bool:
        return r.gap.n > 0 and r.gap.estimate < cost

    def straddles(r: GapRow) -> bool:
        return r.gap.n > 1 and r.gap.lo < cost < r.gap.hi

    def disagree(r: GapRow) -> str:
        return f" its seeds disagree (the interval contains the cost {cost:.3f})" if straddles(r) else ""

    cells = [r for r in t.rows if r.row == name and r.gap.n > 0]
    if not cells:
        return Finding(name, False, None, [], f"{name}: no seed left to measure (every one diverged)")
    if cells[0].k2 is None:
        r = cells[0]
        verdict = ("below the cost: it learns the dependency" if below(r)
                   else "not below the cost: it does not learn the dependency within these runs")
        unsure = disagree(r)
        return Finding(name, below(r), None, [None] if unsure else [],
                       f"{name}: gap {r.cell} bits/char, {verdict}{';' + unsure if unsure else ''}.")
    cells.sort(key=lambda r: r.k2)
    by_k2 = "; ".join(f"k2 = {r.k2}: {r.cell}" for r in cells)
    start = next((i for i in range(len(cells)) if all(below(r) for r in cells[i:])), None)
    odd = [r for r in cells[: len(cells) if start is None else start] if below(r)]
    also = f" (though its gap is below the cost at k2 = {', '.join(str(r.k2) for r in odd)})" if odd else ""
    if start is None:
        text = (f"{name}: its gap stays at or above the cost at every k2 swept, up to k2 = {cells[-1].k2}: it does "
                f"not learn the dependency{also}")
        edge = [cells[-1]]
    elif start == 0:
        text = (f"{name}: its gap is below the cost at every k2 swept, from k2 = {cells[0].k2} on: it learns the "
                "dependency throughout")
        edge = [cells[0]]
    else:
        text = (f"{name}: stops learning the dependency below k2 = {cells[start].k2}: its gap is below the cost "
                f"from k2 = {cells[start].k2} on, not at k2 = {cells[start - 1].k2}{also}")
        edge = [cells[start - 1], cells[start]]
    unsure = "".join(f" at k2 = {r.k2}" + disagree(r) for r in edge if straddles(r))
    return Finding(name, start is not None, None if start is None else cells[start].k2,
                   [r.k2 for r in edge if straddles(r)],
                   f"{text} (gap by k2: {by_k2}){';' + unsure if unsure else ''}.")

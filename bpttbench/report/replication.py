"""A study's summary, and its replication of the reference study shipped with bpttbench.

Every `bpttbench study` writes `summary.json`: per claim and corpus its verdict, estimate, 95%
interval and per-seed values, single's steps per second over sliding's, the preset, the clock and
the machine. The full study's summary from a quiet reference machine ships with the package
(bpttbench/reference_studies/full.json, and quick.json for `--quick`), and the README's headline table is
made from it (`headline_table`; tests/test_replication.py holds the README to it). A study ends
with a replication table: its own estimate and interval beside the reference's, and whether they
agree: the same verdict, and intervals that overlap (where a side has no interval, its estimate
must lie in the other's).
"""

from __future__ import annotations

import json
import math
from importlib import resources
from pathlib import Path

from bpttbench.report.stats import format_signed
from bpttbench.scheme_names import CELL_NAMES, DEFAULT_CELL

SUMMARY = "summary.json"
FORMAT = 1
REFERENCE_PACKAGE = "bpttbench.reference_studies"
# Claims 1-4 carry an interval of a paired difference; 5, 6a and 6b a measured value.
INTERVAL_CLAIMS = ("1", "2", "3", "4")


def study_summary(report, registered: dict, manifest: dict) -> dict:
    """The summary of a study from its claims report (report.build_report) and its study.json."""
    claims = []
    for claim in report.claims:
        for row in claim.results:
            claims.append({"claim": claim.number, "text": claim.text, **{k: _plain(v) for k, v in row.items()}})
    speeds = []
    for fam in report.families:
        for comp in fam.comparison("single", "sliding"):
            iv = comp.stats["steps_per_s"]
            speeds.append({"corpus": fam.key["corpus"], "k2": fam.key["k2"], "ratio": "single / sliding",
                           "estimate": _plain(iv.estimate), "lo": _plain(iv.lo), "hi": _plain(iv.hi), "n": iv.n})
    return {"format": FORMAT, "preset": registered.get("preset"), "corpora": registered.get("corpora"),
            "clock": registered.get("clock"), "cell": registered.get("cell", DEFAULT_CELL),
            "seeds": (registered.get("settings") or {}).get("seeds"),
            "command": manifest.get("command"), "registered_at": manifest.get("registered_at"),
            "started_at": manifest.get("started_at"), "finished_at": manifest.get("finished_at"),
            "machine": manifest.get("machine"), "claims": claims, "steps_per_s": speeds}


def _plain(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if hasattr(v, "item"):
        return _plain(v.item())
    return v


def reference(preset: str, cell: str = DEFAULT_CELL) -> dict | None:
    """The shipped reference study for a preset ('full' or 'quick') and cell (the LSTM's: <preset>.json,
    another's: <preset>-<cell>.json); None if none ships."""
    name = f"{preset}.json" if cell == DEFAULT_CELL else f"{preset}-{cell}.json"
    try:
        text = resources.files(REFERENCE_PACKAGE).joinpath(name).read_text(encoding="utf-8")
    except (FileNotFoundError, ModuleNotFoundError):
        return None
    return json.loads(text)


def _interval(row: dict) -> tuple[float, float] | None:
    lo, hi = row.get("lo"), row.get("hi")
    if isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and math.isfinite(lo) and math.isfinite(hi):
        return float(lo), float(hi)
    return None


def _estimate_in(row: dict, interval: tuple[float, float] | None) -> bool | None:
    est = row.get("estimate")
    if interval is None or not isinstance(est, (int, float)):
        return None
    return interval[0] <= est <= interval[1]


def agreement(this: dict, ref: dict) -> tuple[bool, str]:
    """(agree, why): the same verdict, and intervals that overlap (see the module's docstring)."""
    a, b = _interval(this), _interval(ref)
    if a is not None and b is not None:
        overlap: bool | None = a[0] <= b[1] and b[0] <= a[1]
        how = "intervals overlap" if overlap else "intervals do not overlap"
    elif a is None and b is not None:
        overlap = _estimate_in(this, b)
        how = "this estimate lies in the reference's interval" if overlap else "this estimate lies outside the reference's interval"
    elif b is None and a is not None:
        overlap = _estimate_in(ref, a)
        how = "the reference's estimate lies in this interval" if overlap else "the reference's estimate lies outside this interval"
    else:
        overlap, how = None, "no intervals to compare"
    same = this.get("verdict") == ref.get("verdict")
    agree = same and overlap is not False
    verdicts = "same verdict" if same else f"verdicts differ ({this.get('verdict')} vs {ref.get('verdict')})"
    return agree, f"{verdicts}; {how}"


def format_cell(row: dict | None) -> str:
    """'supported, −0.004 [−0.009, +0.002]' for an interval claim; the verdict and value otherwise."""
    if row is None:
        return "–"
    est = row.get("estimate")
    if row.get("claim") not in INTERVAL_CLAIMS:
        unit = row.get("unit") or ""
        value = f"{est:.4g}" if isinstance(est, (int, float)) else "–"
        return f"{row.get('verdict')}, {row.get('metric', '')} {value}{' ' + unit if unit else ''}".replace("  ", " ")
    text = format_signed(est, "bits/char") if isinstance(est, (int, float)) else "–"
    interval = _interval(row)
    if interval is not None:
        text += f" [{format_signed(interval[0], 'bits/char')}, {format_signed(interval[1], 'bits/char')}]"
    elif row.get("n"):
        text += f" ({row['n']} seeds, no interval)"
    return f"{row.get('verdict')}, {text}"


def _rows_by_key(summary: dict) -> dict[tuple[str, str], dict]:
    return {(r["claim"], str(r.get("corpus"))): r for r in summary.get("claims", [])}


def replication_rows(this: dict, ref: dict) -> list[dict]:
    """Per claim and corpus of this study: its cell, the reference's, and whether they agree."""
    theirs = _rows_by_key(ref)
    out = []
    for key, row in _rows_by_key(this).items():
        other = theirs.get(key)
        agree, why = agreement(row, other) if other is not None else (None, "the reference did not study this corpus")
        out.append({"claim": key[0], "corpus": key[1], "this": format_cell(row), "reference": format_cell(other),
                    "agree": agree, "why": why})
    return out


def replication_lines(this: dict, ref: dict | None) -> list[str]:
    """The replication section of a study's report.md."""
    lines = ["", "## Replication of the reference study", ""]
    if ref is None:
        return lines + [f"No reference study ships for the {this.get('preset')} preset with the "
                        f"{this.get('cell', DEFAULT_CELL)} cell.", ""]
    machine = ref.get("machine") or {}
    lines += [f"Beside the {ref.get('preset')} study shipped with bpttbench: {ref.get('seeds')} seeds, "
              f"{ref.get('clock')} clock, run on {machine.get('cpu', 'an unknown CPU')} ({machine.get('cores', '?')} "
              f"cores, load {_load(machine)}) with `{' '.join(ref.get('command') or [])}`. They agree when the "
              "verdicts are the same and the 95% intervals overlap (where a side has no interval, its estimate must "
              "lie in the other's interval)."]
    if this.get("clock") != ref.get("clock"):
        lines += ["", f"This study ran on the {this.get('clock')} clock, the reference on the {ref.get('clock')} "
                      "clock: the times behind claim 3 are not the same quantity."]
    rows = replication_rows(this, ref)
    lines += ["", "| claim | corpus | this study | reference | agree |", "|---|---|---|---|---|"]
    for r in rows:
        mark = "–" if r["agree"] is None else ("yes" if r["agree"] else "**no**")
        lines.append(f"| {r['claim']} | {r['corpus']} | {r['this']} | {r['reference']} | {mark}: {r['why']} |")
    judged = [r for r in rows if r["agree"] is not None]
    agreeing = sum(bool(r["agree"]) for r in judged)
    lines += ["", f"{agreeing} of {len(judged)} claims agree with the reference."]
    return lines + [""]


def _load(machine: dict) -> str:
    load = machine.get("load_average")
    return f"{load[0]:.2f}" if isinstance(load, list) and load else "unknown"


def headline_table(ref: dict) -> list[str]:
    """The README's table of the question's claims: one row per claim, one column per corpus."""
    corpora = list(ref.get("corpora") or [])
    by_key = _rows_by_key(ref)
    texts: dict[str, str] = {}
    for r in ref.get("claims", []):
        texts.setdefault(r["claim"], r.get("text", ""))
    lines = ["| # | claim | " + " | ".join(corpora) + " |", "|---|---|" + "---|" * len(corpora)]
    for number, text in texts.items():
        cells = [format_cell(by_key.get((number, c))) for c in corpora]
        lines.append(f"| {number} | {text} | " + " | ".join(cells) + " |")
    return lines


README_BEGIN = "<!-- study-table: generated from bpttbench/reference_studies/full.json by `python -m bpttbench.report.replication README.md` -->"
README_END = "<!-- /study-table -->"


def readme_block(ref: dict) -> str:
    return "\n".join([README_BEGIN, *headline_table(ref), README_END])


# The claims the per-cell table asks of every cell: the question's four.
CELL_CLAIMS = ("1", "2", "3", "4")
CELLS_BEGIN = ("<!-- cells-table: generated from bpttbench/reference_studies/quick.json and quick-<cell>.json by "
               "`python -m bpttbench.report.replication README.md` -->")
CELLS_END = "<!-- /cells-table -->"


def cells_table(refs: dict[str, dict | None]) -> list[str]:
    """The README's table of claims 1-4 for every cell: one row per (claim, corpus), one column per
    cell (refs: cell -> its shipped full study, None where none ships)."""
    cells = list(refs)
    corpora = list(dict.fromkeys(c for ref in refs.values() if ref for c in ref.get("corpora") or []))
    by_cell = {cell: _rows_by_key(ref) if ref else {} for cell, ref in refs.items()}
    texts: dict[str, str] = {}
    for ref in refs.values():
        for r in (ref or {}).get("claims", []):
            texts.setdefault(r["claim"], r.get("text", ""))
    lines = ["| # | claim | corpus | " + " | ".join(cells) + " |", "|---|---|---|" + "---|" * len(cells)]
    for number in CELL_CLAIMS:
        for corpus in corpora:
            row = [format_cell(by_cell[cell].get((number, corpus))) for cell in cells]
            text = texts.get(number, "") if corpus == corpora[0] else ""  # once per claim
            lines.append(f"| {number if text else ''} | {text} | {corpus} | " + " | ".join(row) + " |")
    return lines


def cells_block(refs: dict[str, dict | None]) -> str:
    return "\n".join([CELLS_BEGIN, *cells_table(refs), CELLS_END])


# The same table from the full preset, with a column for each cell whose full study ships.
FULL_CELLS_BEGIN = ("<!-- cells-full-table: generated from bpttbench/reference_studies/full.json and full-<cell>.json by "
                    "`python -m bpttbench.report.replication README.md` -->")
FULL_CELLS_END = "<!-- /cells-full-table -->"


def full_cells_block(refs: dict[str, dict | None]) -> str:
    shipped = {cell: ref for cell, ref in refs.items() if ref is not None}
    return "\n".join([FULL_CELLS_BEGIN, *cells_table(shipped), FULL_CELLS_END])


def cell_references(preset: str = "quick") -> dict[str, dict | None]:
    """Every cell's shipped study of a preset (None where none ships). The README's first per-cell
    table is the quick preset's, the one every cell has been run with; the second, the full preset's."""
    return {cell: reference(preset, cell) for cell in CELL_NAMES}


def rewrite_readme(path: Path) -> None:
    """Replace the README's study table and its per-cell tables with the ones made from the shipped references."""
    text = Path(path).read_text(encoding="utf-8")
    for begin, end_marker, block in ((README_BEGIN, README_END, readme_block(reference("full"))),
                                     (CELLS_BEGIN, CELLS_END, cells_block(cell_references())),
                                     (FULL_CELLS_BEGIN, FULL_CELLS_END, full_cells_block(cell_references("full")))):
        start, end = text.index(begin), text.index(end_marker) + len(end_marker)
        text = text[:start] + block + text[end:]
    Path(path).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    import sys

    rewrite_readme(Path(sys.argv[1]))

"""The report built from one or more paths of runs (and gradchecks), and written as report.md and report.json."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from bpttbench import defaults
from bpttbench.errors import ResultsError
from bpttbench.files import atomic_write, jsonable, make_dir, write_json
from bpttbench.report import families as fams
from bpttbench.report.claims import COSINE_MIN, EXACT_TOL, IDENTICAL_TOL, Claim, judge
from bpttbench.report.families import VAL_TAIL_FRACTION, Family
from bpttbench.report.gaps import GAP_FRACTION, GapTable, gap_tables
from bpttbench.report.gradients import GradSummary, find_gradchecks, gradcheck_figures, read_gradchecks
from bpttbench.report.online import OnlineTable, online_dict, online_tables, read_gradcheck_rows
from bpttbench.report.paired import TIME_POINTS
from bpttbench.report.render import render_markdown
from bpttbench.report.stats import EDGE_FRACTION
from bpttbench.results import Run, complete_runs, corpus_facts, early_divergences, group_curves, nothing_to_show

REPORT = "report.md"
REPORT_JSON = "report.json"


@dataclass
class Report:
    path: Path  # the first of paths: where report.md goes by default
    settings: dict
    runs: list[Path]
    families: list[Family]
    claims: list[Claim]
    warnings: list[str]
    skipped: list[tuple[Path, str]]
    figures: list[Path]
    gradcheck_files: list[Path]
    gradcheck: list[GradSummary]
    notes: list[str] = field(default_factory=list)  # facts about the runs for the header
    gaps: list[GapTable] = field(default_factory=list)  # on corpora with a known optimum
    paths: list[Path] = field(default_factory=list)  # every path the runs were read under
    online: list[OnlineTable] = field(default_factory=list)  # the online rules side by side, per corpus
    # Per corpus: what n-gram models fitted on its training split reach on its validation split (bpttbench.ngram).
    reference_bpc: dict[str, dict] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Everything as strict JSON data: null where a number is undefined or a target was not reached."""
        return jsonable({
            "path": self.path,
            "paths": self.paths,
            "settings": self.settings,
            "runs": self.runs,
            "claims": [{"number": c.number, "claim": c.text, "verdict": c.verdict, "rule": c.rule,
                        "evidence": c.evidence, "seeds_needed": c.needs, "results": c.results} for c in self.claims],
            "warnings": self.warnings,
            "reference_bpc": self.reference_bpc,
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
            "families": [{
                "key": f.key, "label": f.label, "at_time": f.at_time, "at_steps": f.at_steps, "target": f.target,
                "groups": [{"label": g.label, "config": g.config, "seeds": g.seeds, "diverged": g.diverged,
                            "stats": {k: v.to_dict() for k, v in g.stats.items()}} for g in f.groups],
                "comparisons": [{"first": c.first.label, "second": c.second.label, "seeds": c.seeds,
                                 "stats": {k: v.to_dict() for k, v in c.stats.items()}} for c in f.comparisons],
            } for f in self.families],
            "figures": self.figures,
            "gradcheck_files": self.gradcheck_files,
            "gradcheck": [{"config": g.config, "estimator": g.estimator, "cosine": g.cosine.to_dict(),
                           "rel_error": g.rel_error.to_dict()} for g in self.gradcheck],
            "gaps": [self._gap_dict(t) for t in self.gaps],
            "online": [online_dict(t) for t in self.online],
        })

    def _gap_dict(self, t: GapTable) -> dict:
        return {"corpus": t.corpus, "optimum_bpc": t.optimum, "setting": t.setting, "label": t.label,
                "final_fraction": self.settings.get("gap_fraction", GAP_FRACTION),
                "dependency": t.dependency, "dependency_cost_bpc": t.cost, "k2": t.k2s,
                "findings": [f.text for f in t.findings],
                "learns_dependency": [{"row": f.row, "learns": f.learns, "from_k2": f.learns_from} for f in t.findings],
                "rows": [{"label": r.label, "scheme": r.scheme, "k1": r.k1, "k2": r.k2, "row": r.row, "config": r.config,
                          "seeds": r.seeds, "final_online": r.final.to_dict(), "gap": r.gap.to_dict(),
                          "us_per_step": r.us_per_step.to_dict()} for r in t.rows]}


def _read_runs(paths: list[Path]) -> tuple[list[Run], list[tuple[Path, str]]]:
    """The complete runs under every path, each once (paths may overlap), and what is skipped, with why."""
    complete: dict[Path, Run] = {}
    skipped: dict[Path, tuple[Path, str]] = {}
    for path in paths:
        runs, skips = complete_runs(path)
        for run in runs:
            complete.setdefault(run.path.resolve(), run)
        for where, why in skips:
            skipped.setdefault(where.resolve(), (where, why))
    return list(complete.values()), list(skipped.values())


def build_report(
    *paths: Path | str,
    target_loss: float | None = None,
    at_time: float | None = None,
    at_steps: float | None = None,
    delta: float = defaults.DELTA,
    smooth: int = defaults.SMOOTH,
    identical_tol: float = IDENTICAL_TOL,
    cosine_min: float = COSINE_MIN,
    exact_tol: float = EXACT_TOL,
) -> Report:
    """Read every complete run under the paths (run directories or folders of runs, at any depth; a
    run under several of them counts once), and any gradcheck.csv there, and compute the report."""
    if not paths:
        raise ResultsError("no path given; give a run directory or a folder of runs")
    paths = tuple(Path(p) for p in paths)
    where = ", ".join(str(p) for p in paths)
    settings = {"delta": delta, "smooth": smooth, "target_loss": target_loss,
                "at_time": at_time, "at_steps": at_steps, "identical_tol": identical_tol, "cosine_min": cosine_min,
                "exact_tol": exact_tol, "gap_fraction": GAP_FRACTION, "burn_in": defaults.BURN_IN_FRACTION,
                "time_points": TIME_POINTS, "val_tail": VAL_TAIL_FRACTION, "edge_fraction": EDGE_FRACTION}
    check_settings(settings)
    complete, skipped = _read_runs(list(paths))
    if not complete:
        example = f", e.g. {skipped[0][0]}: {skipped[0][1]}" if skipped else ""
        raise ResultsError(f"no complete runs under {where} ({len(skipped)} skipped{example}); report on a run that finished")
    data = group_curves(complete)
    early = early_divergences(complete, data)
    skipped.extend((unit, f"diverged at step {step} before its first log point") for unit, step in early)
    if not (data["metric"] == "train_bpc").any():
        raise nothing_to_show(where, early)

    family_warnings: list[str] = []
    curves = fams.read_curves(complete, data, smooth)
    families = fams.build_families(curves, settings, family_warnings)
    settings["corpora"] = len({fam.key["corpus"] for fam in families.values()})  # for the multiplicity statement
    warnings = fams.run_warnings(curves, families) + family_warnings
    grad_files = list({f.resolve(): f for p in paths for f in find_gradchecks(p)}.values())
    grad, grad_problem = read_gradchecks(grad_files, settings, warnings)
    claims = judge(list(families.values()), grad, grad_problem, settings)
    gaps = gap_tables(curves, settings, warnings)
    online = online_tables(curves, read_gradcheck_rows(grad_files, []), gaps, settings)  # read_gradchecks warned
    return Report(path=paths[0], settings=settings, runs=[r.path for r in complete], families=list(families.values()),
                  claims=claims, warnings=warnings, skipped=skipped,
                  figures=fams.figures(list(paths), complete) + gradcheck_figures(grad_files), gradcheck_files=grad_files,
                  gradcheck=grad, notes=fams.notes(complete, curves), gaps=gaps, paths=list(paths),
                  online=online, reference_bpc={name: c["reference_bpc"] for name, c in corpus_facts(complete).items()
                                                if c.get("reference_bpc")})


def _is_number(v) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float))


def check_settings(s: dict) -> None:
    """A one-line ResultsError for a setting the report cannot use."""
    for name in ("target_loss", "at_time", "at_steps", "delta", "identical_tol", "exact_tol"):
        v = s[name]
        if v is None and name in ("target_loss", "at_time", "at_steps"):
            continue
        if not _is_number(v) or not math.isfinite(v) or v <= 0:
            raise ResultsError(f"{name.replace('_', ' ')} must be a positive number, got {v!r}")
    n = s["smooth"]
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ResultsError(f"smoothing must be a whole number of log points >= 1 (1 = none), got {n!r}")
    c = s["cosine_min"]
    if not _is_number(c) or not -1 <= c <= 1:
        raise ResultsError(f"the cosine threshold must be between -1 and 1, got {c!r}")


def write_report(report: Report, out_dir: Path | None = None) -> Path:
    """Write report.md and report.json into out_dir (default: the folder the report was built
    from, the first one when there were several); returns report.md's path."""
    if out_dir is None:
        out_dir = report.path.parent if report.path.is_file() else report.path
    out_dir = make_dir(Path(out_dir))
    target = out_dir / REPORT
    text = render_markdown(report, out_dir)
    atomic_write(target, lambda f: f.write(text))
    write_json(out_dir / REPORT_JSON, report.to_dict())
    return target

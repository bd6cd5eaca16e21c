"""The report built from one or more paths of runs (and gradchecks), and written as report.md and report.json."""

from __future__ import annotations

import math
from pathlib import Path

from bpttbench import defaults
from bpttbench.errors import ResultsError
from bpttbench.files import atomic_write, make_dir, write_json
from bpttbench.report import families as fams
from bpttbench.report.claims import COSINE_MIN, EXACT_TOL, IDENTICAL_TOL, judge
from bpttbench.report.document import Report
from bpttbench.report.families import VAL_TAIL_FRACTION
from bpttbench.report.gaps import GAP_FRACTION, gap_tables
from bpttbench.report.gradients import find_gradchecks, gradcheck_figures, read_gradchecks
from bpttbench.report.online import online_tables, read_gradcheck_rows
from bpttbench.report.paired import TIME_POINTS
from bpttbench.report.render import render_markdown
from bpttbench.report.stats import EDGE_FRACTION
from bpttbench.results import complete_runs, corpus_facts, early_divergences, group_curves, nothing_to_show

REPORT = "report.md"
REPORT_JSON = "report.json"


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
    complete, skipped = complete_runs(*paths)
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

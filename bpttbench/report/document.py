"""The report's data: what build.py computes from the runs and render.py writes, in one place both import."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bpttbench.files import jsonable
from bpttbench.report.claims import Claim
from bpttbench.report.families import Family
from bpttbench.report.gaps import GAP_FRACTION, GapTable
from bpttbench.report.gradients import GradSummary
from bpttbench.report.online import OnlineTable, online_dict


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
    # Per corpus: what n-gram models fitted on its training split reach on its validation split (bpttbench.data.ngram).
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

"""`bpttbench study`: the preset experiment that answers the question, run as sweeps on Dask.

A study directory holds one sweep per part, each resumable like any sweep, and the report:

    <study>/study.json                     the preset, the corpora, each part's state (a Manifest)
    <study>/claims/<corpus>/               single, stored, sliding (k1 = 1, k2 = 20) and chunked (k = 20)
    <study>/claims/identity-<corpus>/      single, stored, sliding at k2 = 1 (claim 5)
    <study>/claims/gradcheck-<corpus>/     gradient fidelity along single's trajectory (claim 6)
    <study>/map/<part>/                    single and sliding over k2 x H, at k1 = 1 and k1 = k2 / 2
    <study>/report.md, report.json         the claims' verdicts on both corpora, and the map

Running the same command again skips every finished run and gradcheck, as a sweep does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from bpttbench.errors import ConfigError

DEFAULT_CORPORA = ("stdlib-docs", "tinyshakespeare")


@dataclass(frozen=True)
class Preset:
    """Sizes of a study. The full preset fits 60 minutes of wall time with 2 workers on 2 cores."""

    seeds: int  # claims 1-4: seeds per scheme, enough for ±0.03 bits/char intervals
    budget: str  # claims 1-4: wall-clock budget per run
    hidden: int
    identity_steps: int  # claim 5: k2 = 1 runs
    gradcheck_steps: int  # claim 6
    gradcheck_every: int
    map_k2: tuple[int, ...]
    map_hidden: tuple[int, ...]
    map_seeds: int
    map_budget: str
    eval_every: int
    # The map evaluates often (a time to a target needs several evaluations even at H = 512, where a
    # run makes a few thousand steps) on the first map_eval_chars validation characters: at H = 512
    # the whole split costs seconds per evaluation.
    map_eval_every: int
    map_eval_chars: int

    def sweeps(self, corpora: tuple[str, ...]) -> list[tuple[str, str]]:
        """(relative directory, TOML spec) of every sweep of the study."""
        common = f"eval_every = {self.eval_every}\n"
        map_common = f"eval_every = {self.map_eval_every}\neval_chars = {self.map_eval_chars}\n"
        out = []
        for corpus in corpora:
            slug = corpus_slug(corpus)
            out.append((f"claims/{slug}", _spec(
                f"claims-{slug}", corpus, f'budget = "{self.budget}"', self.seeds, ["chunked", "single", "stored", "sliding"],
                {"k2": [20], "hidden": [self.hidden]}, common)))
            out.append((f"claims/identity-{slug}", _spec(
                f"identity-{slug}", corpus, f"steps = {self.identity_steps}", 2, ["single", "stored", "sliding"],
                {"k2": [1], "hidden": [self.hidden]}, common)))
        map_corpus = corpora[0]
        out.append(("map/k1-1", _spec("map-k1-1", map_corpus, f'budget = "{self.map_budget}"', self.map_seeds,
                                      ["single", "sliding"], {"k2": list(self.map_k2), "hidden": list(self.map_hidden)},
                                      map_common)))
        for k2 in self.map_k2:
            if k2 >= 2:
                out.append((f"map/k1-half-k2-{k2}", _spec(
                    f"map-k1-half-k2-{k2}", map_corpus, f'budget = "{self.map_budget}"', self.map_seeds,
                    ["single", "sliding"], {"k1": [k2 // 2], "k2": [k2], "hidden": list(self.map_hidden)}, map_common)))
        return out


FULL = Preset(seeds=8, budget="30s", hidden=128, identity_steps=20_000, gradcheck_steps=10_000, gradcheck_every=500,
              map_k2=(5, 20, 50, 100), map_hidden=(32, 128, 512), map_seeds=2, map_budget="12s", eval_every=10_000,
              map_eval_every=1000, map_eval_chars=20_000)
QUICK = Preset(seeds=3, budget="4s", hidden=32, identity_steps=2000, gradcheck_steps=1000, gradcheck_every=250,
               map_k2=(5, 20), map_hidden=(16, 32), map_seeds=2, map_budget="2s", eval_every=2000,
               map_eval_every=500, map_eval_chars=5000)


def corpus_slug(corpus: str) -> str:
    """A directory name for a corpus name or path."""
    name = Path(corpus).stem if ("/" in corpus or corpus.endswith(".txt")) else corpus
    return re.sub(r"[^A-Za-z0-9._=+-]+", "-", name).strip("-") or "corpus"


def _spec(name: str, corpus: str, budget: str, seeds: int, schemes: list[str], parameters: dict, extra: str) -> str:
    lines = ['method = "grid"', f'name = "{name}"', f"corpus = {_toml_string(corpus)}", budget, f"seeds = {seeds}",
             "schemes = [" + ", ".join(f'"{s}"' for s in schemes) + "]"]
    for key, values in parameters.items():
        lines += [f"[parameters.{key}]", f"values = {values!r}"]
    for setting in extra.strip().splitlines():
        key, value = (part.strip() for part in setting.split("=", 1))
        lines += [f"[parameters.{key}]", f"value = {value}"]
    return "\n".join(lines) + "\n"


def _toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class StudyResult:
    path: Path
    status: str
    parts: dict[str, str] = field(default_factory=dict)  # part -> state
    report: Path | None = None


def run_study(out: Path, *, quick: bool = False, corpora: tuple[str, ...] = DEFAULT_CORPORA, workers: int | None = None,
              scheduler: str | None = None, progress: Callable[[str], None] = lambda message: None,
              sweep_observer=None) -> StudyResult:
    """Run (or resume) every part of the study under out, then write its report."""
    from bpttbench.corpus import load_corpus
    from bpttbench.files import Manifest, make_dir
    from bpttbench.sweep import check_cluster, parse_spec, plan_sweep, run_sweep

    check_cluster(workers, scheduler)
    if not corpora:
        raise ConfigError("a study needs at least one corpus")
    preset = QUICK if quick else FULL
    out = make_dir(Path(out))
    texts = {c: load_corpus(c) for c in corpora}  # every corpus before the first run: a bad one fails at once
    sweeps = preset.sweeps(tuple(corpora))
    plans = [(part, plan_sweep(parse_spec(text, source=f"study part {part}"), texts[_corpus_of(text)]))
             for part, text in sweeps]
    result = StudyResult(path=out, status="running")
    manifest = Manifest(out / "study.json", {"preset": "quick" if quick else "full", "corpora": list(corpora),
                                            "parts": {part: "pending" for part, _ in plans}})
    with manifest:
        for part, plan in plans:
            progress(f"{part}: {plan.total_budget()}")
            swept = run_sweep(plan, out / part, workers=workers, scheduler=scheduler, observer=sweep_observer)
            result.parts[part] = swept.status
            manifest.save(parts={**manifest.data["parts"], part: swept.status})
        for corpus in corpora:
            part = f"claims/gradcheck-{corpus_slug(corpus)}"
            progress(f"{part}: following single for {preset.gradcheck_steps:,} steps")
            result.parts[part] = _gradcheck(texts[corpus], out / part, preset)
            manifest.save(parts={**manifest.data["parts"], part: result.parts[part]})
        progress("writing the report")
        result.report = write_study_report(out)
    result.status = "complete" if all(s == "complete" for s in result.parts.values()) else "failed"
    return result


def _corpus_of(spec_text: str) -> str:
    import tomllib

    return tomllib.loads(spec_text)["corpus"]


def _gradcheck(corpus, out_dir: Path, preset: Preset) -> str:
    """Claim 6's gradcheck, skipped when a complete one is already there."""
    import json

    from bpttbench.gradcheck import MANIFEST_NAME, gradcheck

    manifest = out_dir / MANIFEST_NAME
    try:
        if json.loads(manifest.read_text(encoding="utf-8")).get("status") == "complete":
            return "complete"
    except (OSError, ValueError):
        pass
    gradcheck(corpus, scheme="single", k2s=(20,), lrs=(2e-3,), hidden=preset.hidden, steps=preset.gradcheck_steps,
              every=preset.gradcheck_every, out_dir=out_dir, force=True)
    return "complete"


def write_study_report(out: Path) -> Path:
    """report.md of the study: the claims report over claims/, then the map over map/."""
    from bpttbench.files import atomic_write
    from bpttbench.report import build_report, write_report
    from bpttbench.results import complete_runs, group_curves
    from bpttbench.studymap import map_cells, map_table, plot_map

    out = Path(out)
    path = write_report(build_report(out / "claims"), out)
    lines = ["", "## The map: where does the answer change?", "",
             "single against sliding on the first corpus, paired by seed. Each cell: single's training time to a target "
             "validation loss over sliding's (below 1×: single gets there first), then single's online loss minus "
             "sliding's at equal steps, averaged over the log points after the burn-in (below 0: single learns more "
             "per step), medians over seeds. The target is the highest of the lowest validation losses the cell's "
             "curves reach.", ""]
    runs, _ = complete_runs(out / "map") if (out / "map").is_dir() else ([], [])
    cells = map_cells(group_curves(runs)) if runs else []
    if cells:
        figure = plot_map(cells, out / "map.png")
        lines += map_table(cells) + ["", f"![the map]({figure.name})", ""]
    else:
        lines += ["No complete map runs yet.", ""]
    text = path.read_text(encoding="utf-8") + "\n".join(lines)
    atomic_write(path, lambda f: f.write(text))
    return path

"""`bpttbench study`: the preset experiment that answers the question, run as sweeps on Dask.

A study directory holds one sweep per part, each resumable like any sweep, and the report:

    <study>/study.json                     the preset, the corpora, each part's state (a Manifest)
    <study>/claims/<corpus>/               single, stored, sliding (k1 = 1, k2 = 20)
    <study>/claims/chunked-<corpus>/       chunked (k = 20), fewer seeds: for the figures
    <study>/claims/identity-<corpus>/      single, stored, sliding at k2 = 1 (claim 5)
    <study>/claims/gradcheck-<corpus>/     gradient fidelity along single's trajectory (claim 6)
    <study>/map/k1-<rule>-k2-<k2>-h<H>/    single and sliding in one map cell (k1 = 1 or k2 / 2), a step budget each
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


# Steps per second of sliding (the slower of the map's two schemes) in the first full study (2 workers on
# 2 cores, stdlib-docs, training time only), by (k1 rule, H, k2). A map cell's step budget is this rate
# times its H's seconds, so every cell costs about the same time per H whatever k2 and k1 do to the cost
# per step, and every run evaluates map_evals times however few steps it makes.
MAP_STEPS_PER_S = {
    ("1", 32, 5): 4300, ("1", 32, 20): 4100, ("1", 32, 50): 2900, ("1", 32, 100): 2300,
    ("1", 128, 5): 1000, ("1", 128, 20): 910, ("1", 128, 50): 640, ("1", 128, 100): 490,
    ("1", 512, 5): 170, ("1", 512, 20): 84, ("1", 512, 50): 44, ("1", 512, 100): 27,
    ("half", 32, 5): 10_000, ("half", 32, 20): 45_000, ("half", 32, 50): 83_000, ("half", 32, 100): 109_000,
    ("half", 128, 5): 2200, ("half", 128, 20): 11_000, ("half", 128, 50): 20_000, ("half", 128, 100): 27_000,
    ("half", 512, 5): 330, ("half", 512, 20): 820, ("half", 512, 50): 1000, ("half", 512, 100): 900,
}


def map_steps_per_s(rule: str, hidden: int, k2: int) -> float:
    """MAP_STEPS_PER_S at the nearest measured H and k2 (on a log scale) for cells it does not list."""
    import math

    cells = [(h, k) for r, h, k in MAP_STEPS_PER_S if r == rule]
    h, k = min(cells, key=lambda c: (abs(math.log(c[0] / hidden)), abs(math.log(c[1] / k2))))
    return MAP_STEPS_PER_S[rule, h, k]


@dataclass(frozen=True)
class Preset:
    """Sizes of a study. The full preset fits 60 minutes of wall time with 2 workers on 2 cores."""

    seeds: int  # claims 1-4: seeds of single, stored and sliding, enough for ±0.03 bits/char intervals
    chunked_seeds: int  # chunked is in the claims' figures, not in a claim
    budget: str  # claims 1-4: wall-clock budget per run
    hidden: int
    identity_steps: int  # claim 5: k2 = 1 runs
    gradcheck_steps: int  # claim 6
    gradcheck_every: int
    map_k2: tuple[int, ...]
    map_hidden: tuple[int, ...]
    map_seeds: int
    map_seconds: tuple[float, ...]  # per map_hidden: sliding's training time per cell (see MAP_STEPS_PER_S)
    # Per map_hidden: the map evaluates on the first map_eval_chars validation characters, fewer at large H
    # where each costs more; map_evals evaluations and map_logs log points per run, from its step budget.
    map_eval_chars: tuple[int, ...]
    map_evals: int
    map_logs: int
    # Evaluations every eval_every steps: claim 4 averages each run's last half of them, so dense ones
    # make it less noisy (a model's validation loss moves by 0.1 bits/char within a few thousand steps).
    # chunked makes 20-30 times the steps per second: it evaluates every chunked_eval_every steps instead
    # (the cadence is not part of a configuration, so it is still reported with the others), and the
    # k2 = 1 runs, compared at every log step and not on validation, every identity_eval_every.
    eval_every: int
    chunked_eval_every: int
    identity_eval_every: int

    def sweeps(self, corpora: tuple[str, ...]) -> list[tuple[str, str]]:
        """(relative directory, TOML spec) of every sweep of the study."""
        out = []
        for corpus in corpora:
            slug = corpus_slug(corpus)
            claims = {"k2": [20], "hidden": [self.hidden]}
            out.append((f"claims/{slug}", _spec(f"claims-{slug}", corpus, f'budget = "{self.budget}"', self.seeds,
                                                ["single", "stored", "sliding"], claims,
                                                f"eval_every = {self.eval_every}")))
            # Its own part for its own seed count; same settings, so the report groups it with the others.
            out.append((f"claims/chunked-{slug}", _spec(f"chunked-{slug}", corpus, f'budget = "{self.budget}"',
                                                        self.chunked_seeds, ["chunked"], claims,
                                                        f"eval_every = {self.chunked_eval_every}")))
            out.append((f"claims/identity-{slug}", _spec(
                f"identity-{slug}", corpus, f"steps = {self.identity_steps}", 2, ["single", "stored", "sliding"],
                {"k2": [1], "hidden": [self.hidden]}, f"eval_every = {self.identity_eval_every}")))
        out += self._map_sweeps(corpora[0])
        return out

    def _map_sweeps(self, corpus: str) -> list[tuple[str, str]]:
        """One part per map cell (k1 rule, k2, H), each with its own step budget."""
        out = []
        for rule in ("1", "half"):
            for k2 in self.map_k2:
                if rule == "half" and k2 < 2:
                    continue
                k1 = 1 if rule == "1" else k2 // 2
                for hidden, seconds, chars in zip(self.map_hidden, self.map_seconds, self.map_eval_chars):
                    steps = max(self.map_evals, round(map_steps_per_s(rule, hidden, k2) * seconds))
                    name = f"k1-{rule}-k2-{k2}-h{hidden}"
                    settings = (f"eval_every = {max(1, steps // self.map_evals)}\neval_chars = {chars}\n"
                                f"log_every = {max(1, steps // self.map_logs)}\n")
                    out.append((f"map/{name}", _spec(f"map-{name}", corpus, f"steps = {steps}", self.map_seeds,
                                                     ["single", "sliding"], {"k1": [k1], "k2": [k2], "hidden": [hidden]},
                                                     settings)))
        return out


# Wall-time estimate of FULL with 2 workers on 2 cores, from the first full study's manifests (training
# seconds, steps per run) and this version's evaluation kernel (in a run, about 0.66 s per evaluation of
# stdlib-docs' whole split at H = 128 and 0.40 s of tinyshakespeare's), in worker-seconds:
#   claims, per seed, 3 runs of 30 s per corpus plus their evaluations, one per 1,000 steps (single,
#     sliding, stored make 25k, 25k, 20k steps on stdlib-docs; 41k, 32k, 31k on tinyshakespeare):
#     90 + 70 x 0.66 + 90 + 104 x 0.40 + 2 (start-up) = 270; 18 seeds                         = 4860
#     (the quiet 13-seed claims run on stdlib-docs alone took 14.4 min against 14.8 estimated so)
#   chunked, 2 seeds, one evaluation per 25,000 of its 600k-880k steps: 2 x (46 + 44)            =  180
#   identity (k2 = 1, 20,000 steps, 6 runs per corpus): 6 x 22 + 6 x 14                          =  216
#   map, 32 runs per H, single no longer than sliding: H = 32: 4 s + 12 x 0.03 s; H = 128: 6 s
#     + 12 x 0.1 s; H = 512: 12 s + 12 x 0.6 s (10,000 characters cost 0.9 of the whole split at
#     H = 128: 39 streams make a slower product); 32 x (4.4 + 7.2 + 19.2)                        =  986
#   6242 worker-seconds / 2 workers = 52 min; + gradcheck 0.4 min; + each of the 30 parts' last
#   round with one worker idle and its Dask start: about 58 minutes. Measured on a quiet machine:
#   49 min 57 s with 16 seeds, and 6 min 25 s to resume it with seeds 16 and 17: about 56 minutes.
#   18 seeds, because 13 left claims 3 and 4 undecided on stdlib-docs (per-seed spreads 0.03-0.07),
#   and 16 left claim 3 there with its interval's edge at exactly 0.
#   (--quick, measured: 3.7 min.)
FULL = Preset(seeds=18, chunked_seeds=2, budget="30s", hidden=128, identity_steps=20_000, gradcheck_steps=10_000,
              gradcheck_every=500, map_k2=(5, 20, 50, 100), map_hidden=(32, 128, 512), map_seeds=2,
              map_seconds=(4, 6, 12), map_eval_chars=(20_000, 20_000, 10_000), map_evals=12, map_logs=24,
              eval_every=1000, chunked_eval_every=25_000, identity_eval_every=5000)
QUICK = Preset(seeds=3, chunked_seeds=2, budget="4s", hidden=32, identity_steps=2000, gradcheck_steps=1000,
               gradcheck_every=250, map_k2=(5, 20), map_hidden=(16, 32), map_seeds=2, map_seconds=(1.5, 1.5),
               map_eval_chars=(5000, 5000), map_evals=8, map_logs=16, eval_every=1000, chunked_eval_every=10_000,
               identity_eval_every=1000)


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

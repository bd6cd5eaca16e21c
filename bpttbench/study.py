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
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from bpttbench import defaults
from bpttbench.errors import ConfigError
from bpttbench.files import now
from bpttbench.scheme_names import DEFAULT_CELL

DEFAULT_CORPORA = defaults.STUDY_CORPORA


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
    """Sizes of a study. The full preset fits about 60 minutes with 2 workers on 2 cores."""

    seeds: int  # claims 1-4: seeds of single, stored and sliding (FULL's: see the arithmetic beside it)
    chunked_seeds: int  # chunked is in the claims' figures, not in a claim
    budget: str  # claims 1-4: training time per run, on the study's clock
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

    def sweeps(self, corpora: tuple[str, ...], clock: str = "cpu", cell: str = DEFAULT_CELL) -> list[tuple[str, str]]:
        """(relative directory, TOML spec) of every sweep of the study; every run on `clock` with `cell`.
        The map is the LSTM's: for another cell the study is the claims part."""
        out = []
        shared = _shared_settings(clock, cell)
        for corpus in corpora:
            slug = corpus_slug(corpus)
            claims = {"k2": [20], "hidden": [self.hidden]}
            out.append((f"claims/{slug}", _spec(f"claims-{slug}", corpus, f'budget = "{self.budget}"', self.seeds,
                                                ["single", "stored", "sliding"], claims,
                                                shared + f"eval_every = {self.eval_every}")))
            # Its own part for its own seed count; same settings, so the report groups it with the others.
            out.append((f"claims/chunked-{slug}", _spec(f"chunked-{slug}", corpus, f'budget = "{self.budget}"',
                                                        self.chunked_seeds, ["chunked"], claims,
                                                        shared + f"eval_every = {self.chunked_eval_every}")))
            out.append((f"claims/identity-{slug}", _spec(
                f"identity-{slug}", corpus, f"steps = {self.identity_steps}", 2, ["single", "stored", "sliding"],
                {"k2": [1], "hidden": [self.hidden]}, shared + f"eval_every = {self.identity_eval_every}")))
        if cell == DEFAULT_CELL:
            out += self._map_sweeps(corpora[0], shared)
        return out

    def _map_sweeps(self, corpus: str, shared: str) -> list[tuple[str, str]]:
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
                    settings = (shared + f"eval_every = {max(1, steps // self.map_evals)}\neval_chars = {chars}\n"
                                f"log_every = {max(1, steps // self.map_logs)}\n")
                    out.append((f"map/{name}", _spec(f"map-{name}", corpus, f"steps = {steps}", self.map_seeds,
                                                     ["single", "sliding"], {"k1": [k1], "k2": [k2], "hidden": [hidden]},
                                                     settings)))
        return out


# What FULL's seed count aims at: a 95% interval of at most +-PRECISION bits/char for claims 1-4.
PRECISION = 0.02

# FULL's seed count, registered before its reference study ran (the study never adds seeds after its
# results are read; a claim it leaves undecided gets the seed count a future preset needs, in the report).
# Target: a 95% interval of at most +-0.02 bits/char for claims 1-4 on each corpus, with the report's
# estimator, the mean of the per-seed paired differences and its Student-t interval: half-width
# h(n) = t_{0.975, n-1} * s / sqrt(n) for per-seed spread s. The spreads come from the previous full study
# (18 seeds, 30-s wall-clock runs, stdlib-docs and tinyshakespeare; percentile-bootstrap intervals of the
# median, half-width ~ t_{0.975,17} * 1.2533 * s / sqrt(18), so s ~ 1.604 x its half-width):
#   claim 3 on stdlib-docs: [-0.053, -0.008], half-width 0.0225 -> s = 0.036 (the largest)
#   claim 4 on stdlib-docs and on tinyshakespeare: half-width 0.0175 -> s = 0.028
#   claims 1 and 2, claim 3 on tinyshakespeare: s <= 0.015
# h(15) = 2.145 * 0.036 / sqrt(15) = 0.0199; h(16) = 2.131 * 0.036 / 4 = 0.0192, which holds up to
# s = 0.0375: 16 seeds, one above the minimum for stdlib-source, whose spread nobody has measured yet.
#
# Cost of FULL with 2 workers on 2 cores, in worker-seconds (the budget is 30 CPU-seconds of training;
# a run also evaluates the whole validation split every 1,000 steps, about 0.66 s each at H = 128, and
# single, sliding and stored make about 25k, 25k and 20k steps):
#   claims, per seed and corpus: 90 + 70 x 0.66 + 1 (start-up) = 137; 16 seeds x 2 corpora       = 4384
#   chunked, 2 seeds x 2 corpora, one evaluation per 25,000 of its ~700k steps: 4 x 45            =  180
#   identity (k2 = 1, 20,000 steps, 6 runs per corpus): 12 x 18                                   =  216
#   map, 16 runs per H (one seed: it says where the answer changes, the claims say what it is):
#     16 x (4.4 + 7.2 + 19.2)                                                                      =  493
#   5273 worker-seconds / 2 = 44 min; + gradcheck 1 min; + each part's last round with one worker
#   idle and its Dask start: about 50 minutes. Cut to fit the hour: the map's second seed (the
#   previous preset's 2 seeds per cell cost 8 more minutes and still could not decide a cell).
FULL = Preset(seeds=16, chunked_seeds=2, budget="30s", hidden=128, identity_steps=20_000, gradcheck_steps=10_000,
              gradcheck_every=500, map_k2=(5, 20, 50, 100), map_hidden=(32, 128, 512), map_seeds=1,
              map_seconds=(4, 6, 12), map_eval_chars=(20_000, 20_000, 10_000), map_evals=12, map_logs=24,
              eval_every=1000, chunked_eval_every=25_000, identity_eval_every=5000)
# A first look in minutes; 5 seeds, the fewest for which the report gives a 95% interval.
QUICK = Preset(seeds=5, chunked_seeds=2, budget="4s", hidden=32, identity_steps=2000, gradcheck_steps=1000,
               gradcheck_every=100, map_k2=(5, 20), map_hidden=(16, 32), map_seeds=2, map_seconds=(1.5, 1.5),
               map_eval_chars=(5000, 5000), map_evals=8, map_logs=16, eval_every=1000, chunked_eval_every=10_000,
               identity_eval_every=1000)


def _shared_settings(clock: str, cell: str) -> str:
    """The TOML lines every part of a study has: its clock and its cell."""
    return f'clock = "{clock}"\ncell = "{cell}"\n'


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
    replication: list[dict] = field(default_factory=list)  # report.replication.replication_rows


@dataclass(frozen=True)
class LongPreset:
    """Claim 4 at convergence (`bpttbench study --long`): runs long enough to reach a plateau.

    - convergence/<corpus>: on generated corpora with a known optimum, single, stored and sliding for
      a step budget after which the best of them is within a few hundredths of a bit of the optimum
      (measured at H = 32, k2 = 20, Adam 2e-3, one seed: on lag:10 single's and sliding's validation gap
      was within 0.01 bits/char of the optimum from 200,000 steps on; on reber 0.03-0.04 at 300,000, its
      fall over the last quarter under 0.02); the report tables each scheme's gap to the optimum, and
      claim 4 compares the gaps, paired by seed.
    - long/<corpus>: single and sliding on the study's text corpora for `text_budget` of CPU time at
      the claims' H = 128, validated every `text_eval_every` steps: held-out loss on this text was flat
      between 20,000 and 150,000 steps of single, and 5 CPU-minutes is over a million steps.
    Cost with 2 workers: convergence, 8 seeds x (11 + 11 + 21 CPU-s) x 2 corpora = 11.5 CPU-min; long,
    3 seeds x 2 schemes x 5 min x 2 corpora = 60 CPU-min plus evaluations: about 40 minutes in all.
    """

    convergence_corpora: tuple[str, ...] = ("reber", "lag:10")
    convergence_seeds: int = 8
    convergence_steps: int = 300_000
    convergence_hidden: int = 32
    convergence_eval_every: int = 20_000
    text_seeds: int = 3
    text_budget: str = "5m"
    text_hidden: int = 128
    text_eval_every: int = 20_000

    def sweeps(self, corpora: tuple[str, ...], clock: str = "cpu", cell: str = DEFAULT_CELL) -> list[tuple[str, str]]:
        shared = _shared_settings(clock, cell)
        out = []
        for corpus in self.convergence_corpora:
            slug = corpus_slug(corpus)
            out.append((f"convergence/{slug}", _spec(
                f"convergence-{slug}", corpus, f"steps = {self.convergence_steps}", self.convergence_seeds,
                ["single", "stored", "sliding"], {"k2": [20], "hidden": [self.convergence_hidden]},
                shared + f"eval_every = {self.convergence_eval_every}\nlog_every = 5000")))
        for corpus in corpora:
            slug = corpus_slug(corpus)
            out.append((f"long/{slug}", _spec(
                f"long-{slug}", corpus, f'budget = "{self.text_budget}"', self.text_seeds, ["single", "sliding"],
                {"k2": [20], "hidden": [self.text_hidden]}, shared + f"eval_every = {self.text_eval_every}")))
        return out


LONG = LongPreset()


def preset_named(name: str) -> Preset | LongPreset:
    return {"full": FULL, "quick": QUICK, "long": LONG}[name]


def registration(preset_name: str, corpora: tuple[str, ...], clock: str, cell: str = DEFAULT_CELL) -> dict:
    """What a study directory is fixed to when it starts: its preset (seed counts included), corpora,
    clock and cell, as JSON reads it back."""
    import json

    settings = {"preset": preset_name, "settings": asdict(preset_named(preset_name)), "corpora": list(corpora),
                "clock": clock, "cell": cell}
    return json.loads(json.dumps(settings))


def _check_registration(path: Path, registered: dict) -> dict:
    """The study.json already in a study directory, if any; ConfigError if it was registered otherwise
    (a study resumes only what it started: more seeds or other settings would be read after results)."""
    import json

    try:
        existing = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"could not read {path} ({exc}); move the study directory aside or choose another --out") from None
    before = existing.get("registered")
    if before is not None:
        before = {"cell": DEFAULT_CELL, **before}  # registered before studies had a cell: the LSTM's
    if before is not None and before != registered:
        changed = sorted(k for k in set(before) | set(registered) if before.get(k) != registered.get(k))
        raise ConfigError(f"{path.parent} holds a study registered with other {', '.join(changed)} "
                          f"({before.get('preset')} preset, corpora {', '.join(before.get('corpora', []))}, "
                          f"{before.get('clock')} clock); its seeds and settings stay as registered: resume it with "
                          "the same options, or start a new study with another --out")
    return existing


def run_study(out: Path, *, quick: bool = False, long: bool = False, corpora: tuple[str, ...] = DEFAULT_CORPORA, workers: int | None = None,
              scheduler: str | None = None, clock: str = "cpu", cell: str = DEFAULT_CELL,
              progress: Callable[[str], None] = lambda message: None, sweep_observer=None) -> StudyResult:
    """Run (or resume) every part of the study under out, then write its report and its replication
    of the reference study shipped with bpttbench."""
    from bpttbench.config import config_from
    from bpttbench.data.corpus import load_corpus
    from bpttbench.files import Manifest, make_dir
    from bpttbench.sweep import check_cluster, parse_spec, plan_sweep, run_sweep

    check_cluster(workers, scheduler)
    if not corpora:
        raise ConfigError("a study needs at least one corpus")
    # The clock and the cell are checked as every run's are (the budget only completes a configuration),
    # before the registration compares them with a study being resumed.
    config_from({"clock": clock, "cell": cell, "budget_steps": 1})
    if quick and long:
        raise ConfigError("give either --quick or --long, not both")
    preset_name = "quick" if quick else "long" if long else "full"
    preset = preset_named(preset_name)
    registered = registration(preset_name, tuple(corpora), clock, cell)
    existing = _check_registration(Path(out) / "study.json", registered)
    out = make_dir(Path(out))
    sweeps = preset.sweeps(tuple(corpora), clock, cell)
    # Every corpus before the first run: a bad one fails at once.
    texts = {c: load_corpus(c) for c in dict.fromkeys([*corpora, *(_corpus_of(text) for _, text in sweeps)])}
    plans = [(part, plan_sweep(parse_spec(text, source=f"study part {part}"), texts[_corpus_of(text)]))
             for part, text in sweeps]
    result = StudyResult(path=out, status="running")
    manifest = Manifest(out / "study.json", {
        "preset": preset_name, "corpora": list(corpora), "registered": registered,
        "registered_at": existing.get("registered_at") or now(), "started_at": existing.get("started_at"),
        # A resumed study keeps the command and the machine it started with; machine_at_end is the last one's.
        "command": existing.get("command") or ["bpttbench", *sys.argv[1:]], "machine": existing.get("machine") or _machine(),
        "parts": {part: "pending" for part, _ in plans}})
    with manifest:
        for part, plan in plans:
            progress(f"{part}: {plan.total_budget()}")
            swept = run_sweep(plan, out / part, workers=workers, scheduler=scheduler, observer=sweep_observer)
            result.parts[part] = swept.status
            manifest.save(parts={**manifest.data["parts"], part: swept.status})
        for corpus in corpora if isinstance(preset, Preset) else ():  # claim 6's gradcheck
            part = f"claims/gradcheck-{corpus_slug(corpus)}"
            progress(f"{part}: following single for {preset.gradcheck_steps:,} steps")
            result.parts[part] = _gradcheck(texts[corpus], out / part, preset, cell)
            manifest.save(parts={**manifest.data["parts"], part: result.parts[part]})
        progress("writing the report")
        manifest.save(machine_at_end=_machine())
        result.report, result.replication = write_study_report(out, manifest.data)
    result.status = "complete" if all(s == "complete" for s in result.parts.values()) else "failed"
    return result


def precision_lines(summary: dict) -> list[str]:
    """How wide claims 1-4's intervals came out against PRECISION, and the seeds a future preset needs
    where they are wider (t-interval half-width t(0.975, n-1) s / sqrt(n) at the observed spread s)."""
    import numpy as np

    from bpttbench.report.stats import MIN_SAMPLE, half_width

    lines = ["", "## Precision of the registered preset", "",
             f"Claims 1–4 aim at 95% intervals no wider than ±{PRECISION:g} bits/char. Half-width of each interval, and "
             "where it is wider, the seeds a future preset would need at the spread observed here:", "",
             "| claim | corpus | seeds | half-width | a future preset needs |", "|---|---|---|---|---|"]
    for row in summary.get("claims", []):
        if row["claim"] not in ("1", "2", "3", "4") or not isinstance(row.get("lo"), (int, float)):
            continue
        half = (row["hi"] - row["lo"]) / 2
        need = "met"
        if half > PRECISION and len(row.get("values") or []) > 1:
            spread = float(np.std(row["values"], ddof=1))
            counts = np.arange(MIN_SAMPLE, 10_001)
            enough = counts[half_width(spread, counts) <= PRECISION]
            need = f"{int(enough[0])} seeds" if len(enough) else "more than 10,000 seeds"
        lines.append(f"| {row['claim']} | {row['corpus']} | {row['n']} | {half:.4f} | {need} |")
    return lines


def _machine() -> dict:
    """The machine and software, with the load beside the study (its figures say on what they ran)."""
    import os

    from bpttbench.training.runner import machine_info

    return {**machine_info(), "load_average": list(os.getloadavg()), "at": now()}


def _corpus_of(spec_text: str) -> str:
    import tomllib

    return tomllib.loads(spec_text)["corpus"]


def _gradcheck(corpus, out_dir: Path, preset: Preset, cell: str = DEFAULT_CELL) -> str:
    """Claim 6's gradcheck, skipped when a complete one is already there."""
    import json

    from bpttbench.fidelity.gradcheck import MANIFEST_NAME, gradcheck

    manifest = out_dir / MANIFEST_NAME
    try:
        if json.loads(manifest.read_text(encoding="utf-8")).get("status") == "complete":
            return "complete"
    except (OSError, ValueError):
        pass
    gradcheck(corpus, scheme="single", k2s=(20,), lrs=(2e-3,), hidden=preset.hidden, steps=preset.gradcheck_steps,
              every=preset.gradcheck_every, out_dir=out_dir, force=True, cell=cell)
    return "complete"


# The study's parts whose runs and gradchecks the claims report reads (map/ has a report of its own).
REPORTED_PARTS = ("claims", "convergence", "long")


def write_study_report(out: Path, manifest: dict) -> tuple[Path, list[dict]]:
    """report.md of the study: the claims report over claims/, the map over map/, and the replication
    of the shipped reference study; summary.json beside it. Returns (report.md, replication rows)."""
    from bpttbench.files import atomic_write, write_json
    from bpttbench.report import build_report, write_report
    from bpttbench.report.replication import SUMMARY, reference, replication_lines, replication_rows, study_summary
    from bpttbench.results import complete_runs, group_curves
    from bpttbench.studymap import map_cells, map_table, plot_map

    out = Path(out)
    report = build_report(*(out / part for part in REPORTED_PARTS if (out / part).is_dir()))
    path = write_report(report, out)
    registered = manifest.get("registered") or {}
    summary = study_summary(report, registered, {**manifest, "finished_at": now()})
    write_json(out / SUMMARY, summary)
    cell = registered.get("cell", DEFAULT_CELL)
    ref = reference(str(registered.get("preset")), cell)
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
    elif cell != DEFAULT_CELL:
        lines += [f"The map is the LSTM's: this study of the {cell} cell is the claims part.", ""]
    else:
        lines += ["No complete map runs yet.", ""]
    lines += precision_lines(summary) + replication_lines(summary, ref)
    text = path.read_text(encoding="utf-8") + "\n".join(lines)
    atomic_write(path, lambda f: f.write(text))
    return path, replication_rows(summary, ref) if ref is not None else []

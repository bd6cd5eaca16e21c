"""The question's claims, one function each: its rule, stated once as the text report.md prints
(a template over the report's settings), beside the code that applies it to the numbers."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from bpttbench.report.families import LATE_FRACTION, METRICS, Comparison, Family, GroupSummary
from bpttbench.report.gradients import GradSummary
from bpttbench.report.stats import (
    CONTRADICTED,
    INCONCLUSIVE,
    NOT_MEASURED,
    SUPPORTED,
    Interval,
    combine,
    format_interval,
    format_number,
    format_per_seed,
    format_seeds,
    format_setting,
    format_small,
    format_small_interval,
    verdict_above,
    verdict_below,
    verdict_within,
)

IDENTICAL_TOL = 1e-6  # bits/char: "identical" curves differ by no more than this at any log point
COSINE_MIN = 0.99  # a "very good approximation" has cosine similarity at least this with the exact gradient
EXACT_TOL = 1e-6  # relative error below which a gradient counts as exact (the gradcheck's own fd tolerance)


@dataclass
class Claim:
    number: str
    text: str
    verdict: str
    rule: str
    evidence: list[str]  # one line per family or configuration, with the numbers
    deciding: str  # the short version for a table cell


def judge(families: list[Family], grad: list[GradSummary], grad_problem: str | None, settings: dict) -> list[Claim]:
    """Every claim, in the question's order. settings: delta, identical_tol, cosine_min, exact_tol."""
    return [stored_claim(families, grad, grad_problem, settings), per_step_claim(families, settings),
            per_second_claim(families, settings), minimum_claim(families, settings), k2_one_claim(families, settings),
            single_gradient_claim(grad, grad_problem, settings), stored_gradient_claim(grad, grad_problem, settings)]


# ----------------------------------------------------------------------------- claims 1-4: paired runs

NO_PAIR = "not measured: no run pairs {} with {} at k2 > k1 on the same seeds"


def _truncating(fam: Family, comps: list[Comparison]) -> list[Comparison]:
    """Comparisons where k2 > k1: the question's setting (at k1 = k2 the schemes coincide)."""
    return [c for c in comps if c.first.k1 < fam.key["k2"]]


def _evidence(fam: Family, comp: Comparison, metric: str, verdict: str, where: str) -> str:
    unit = METRICS[metric][1]
    iv = comp.stats[metric]
    return (f"{fam.label}: {comp.first.scheme} − {comp.second.scheme} (k1={comp.first.k1}) in {where}: "
            f"{format_interval(iv, unit, signed=True)} {unit}, {len(comp.seeds)} paired seed"
            f"{'s' if len(comp.seeds) != 1 else ''}{format_per_seed(iv, unit)} → {verdict}")


Choose = Callable[[Family, Comparison], tuple[str, str]]  # -> (metric, words saying where it is read)
Decide = Callable[[Interval, Family, Comparison], str]


def _pair_claim(number: str, text: str, rule: str, families: list[Family], first: str, second: str, choose: Choose,
                decide: Decide, extra: Callable[[Family, Comparison], list[str]] | None = None,
                tail: list[str] = ()) -> Claim:
    """One claim over every family's comparisons of scheme first with scheme second (k1 < k2)."""
    verdicts, evidence, short = [], [], []
    for fam in families:
        for comp in _truncating(fam, fam.comparison(first, second)):
            metric, where = choose(fam, comp)
            v = decide(comp.stats[metric], fam, comp)
            verdicts.append(v)
            evidence.append(_evidence(fam, comp, metric, v, where))
            short.append(f"{format_interval(comp.stats[metric], METRICS[metric][1], signed=True)} "
                         f"({METRICS[metric][0]}, {fam.key['corpus']}, k2={format_setting(fam.key['k2'])})")
            if extra:
                evidence.extend(extra(fam, comp))
    missing = NO_PAIR.format(first, second)
    return Claim(number, text, combine(verdicts), rule, (evidence or [missing]) + list(tail),
                 "; ".join(short) if short else missing)


def _at_equal_steps(fam: Family, comp: Comparison) -> tuple[str, str]:
    return "at_steps", f"online loss at equal steps (N = {format_number(fam.at_steps, 'steps')})"


WITHIN_AT_STEPS = ("supported when the 95% interval of {first} − {second} in online loss at equal steps (the same text "
                   "for both) lies within ±{delta:g} bits/char; contradicted when it lies wholly outside; inconclusive "
                   "otherwise.")


def stored_claim(families: list[Family], grad: list[GradSummary], grad_problem: str | None, s: dict) -> Claim:
    """1: stored − single at equal steps within ±delta; gradcheck's single-vs-stored rows shown beside it."""
    tail = [f"gradcheck, {_grad_where(g.config)}: single's gradient against stored's: relative difference "
            f"{format_small_interval(g.rel_error)}, cosine {format_interval(g.cosine, 'cos')} (not part of the verdict)"
            for g in grad if g.estimator == "single_vs_stored" and grad_problem is None]
    return _pair_claim("1", "Storing past weights makes almost no difference (stored vs single).",
                       WITHIN_AT_STEPS.format(first="stored", second="single", delta=s["delta"]), families,
                       "stored", "single", _at_equal_steps, lambda iv, f, c: verdict_within(iv, s["delta"]), tail=tail)


def per_step_claim(families: list[Family], s: dict) -> Claim:
    """2: single − sliding at equal steps within ±delta."""
    return _pair_claim("2", "Per iteration, single and sliding perform about the same.",
                       WITHIN_AT_STEPS.format(first="single", second="sliding", delta=s["delta"]), families,
                       "single", "sliding", _at_equal_steps, lambda iv, f, c: verdict_within(iv, s["delta"]))


PER_SECOND_RULE = ("supported when the 95% interval of single − sliding in validation loss at equal time T lies below 0 "
                   "(every model read on the same held-out text; without validation loss at T, the online loss at T); "
                   "contradicted when it lies above 0; inconclusive otherwise.")


def _at_equal_time(fam: Family, comp: Comparison) -> tuple[str, str]:
    T = format_number(fam.at_time, 's')
    if comp.stats["val_at_time"].n:
        return "val_at_time", f"validation loss at equal time (T = {T} s; {fam.val_at_time_source})"
    return "at_time", (f"online loss at equal time (T = {T} s; no validation loss at T, and the online loss also "
                       "reflects how hard each scheme's current stretch of text is)")


def _per_second_context(fam: Family, comp: Comparison) -> list[str]:
    tt, sp, on = comp.stats["time_to_target"], comp.stats["steps_per_s"], comp.stats["at_time"]
    lines = [f"{fam.label}: also, time to reach {fam.target:.3f} bits/char (smoothed online loss), single − "
             f"sliding: {format_interval(tt, 's', signed=True)} s; steps/s single / sliding: {format_interval(sp, '×')}"]
    if _at_equal_time(fam, comp)[0] == "val_at_time":
        lines.append(f"{fam.label}: also, online loss at T, single − sliding: "
                     f"{format_interval(on, 'bits/char', signed=True)} bits/char (not the verdict: at equal time the "
                     "schemes are at different places in the stream, so this mixes model quality with how hard the "
                     "text there is)")
    return lines


def per_second_claim(families: list[Family], s: dict) -> Claim:
    """3: single − sliding at equal time below 0, on the validation loss when recorded."""
    return _pair_claim("3", "Per second, the single forward pass is ahead.", PER_SECOND_RULE, families,
                       "single", "sliding", _at_equal_time, lambda iv, f, c: verdict_below(iv),
                       extra=_per_second_context)


MINIMUM_RULE = ("supported when the 95% interval of single − sliding in final validation loss (without validation, final "
                "online loss) lies within ±{delta:g} bits/char; contradicted when it lies wholly outside and the scheme "
                "behind was no longer improving (its loss fell by at most {delta:g} over the last {late:.0%} of its "
                "steps: on the validation curve when it has 3 or more evaluations, else the smoothed online loss); "
                "inconclusive otherwise.")


def _final(fam: Family, comp: Comparison) -> tuple[str, str]:
    if comp.stats["final_val"].n:
        return "final_val", "final validation loss"
    return "final_train", "final online loss (no validation loss recorded)"


def _late_drop(g: GroupSummary, metric: str) -> float:
    """How much g's loss fell over its last quarter: validation curve when it has 3 evaluations, else online."""
    if metric == "final_val" and not math.isnan(g.val_late_drop):
        return g.val_late_drop
    return g.late_drop


def minimum_claim(families: list[Family], s: dict) -> Claim:
    """4: single − sliding in final loss within ±delta; a gap counts against it only once both stopped improving."""
    delta = s["delta"]

    def decide(iv: Interval, fam: Family, comp: Comparison) -> str:
        v = verdict_within(iv, delta)
        if v == CONTRADICTED:
            behind = comp.first if iv.median > 0 else comp.second
            drop = _late_drop(behind, _final(fam, comp)[0])
            if not math.isnan(drop) and drop > delta:
                return INCONCLUSIVE
        return v

    def still_improving(fam: Family, comp: Comparison) -> list[str]:
        lines = []
        metric = _final(fam, comp)[0]
        for g in (comp.first, comp.second):
            drop = _late_drop(g, metric)
            if not math.isnan(drop) and drop > delta:
                which = ("validation loss" if metric == "final_val" and not math.isnan(g.val_late_drop)
                         else "smoothed online loss")
                lines.append(f"{fam.label}: {g.label} was still improving (its {which} fell {drop:.3f} bits/char over "
                             f"the last {1 - LATE_FRACTION:.0%} of its steps): a gap in final loss may only mean it "
                             "needed more time; run longer")
        return lines

    return _pair_claim("4", "Both reach about the same minimum.",
                       MINIMUM_RULE.format(delta=delta, late=1 - LATE_FRACTION), families, "single", "sliding",
                       _final, decide, extra=still_improving)


# ----------------------------------------------------------------------------- claim 5: k2 = 1

K2_ONE_RULE = ("supported when, for every paired seed, the online losses at every log step both recorded differ by at "
               "most {tol:g} bits/char; contradicted otherwise. Needs runs with k2 = 1.")


def k2_one_claim(families: list[Family], s: dict) -> Claim:
    """5: at k2 = 1 the schemes' curves agree to identical_tol at every common log step, seed by seed."""
    tol = s["identical_tol"]
    verdicts, evidence = [], []
    for fam in families:
        if fam.key["k2"] != 1:
            continue
        for first, second in (("single", "sliding"), ("stored", "single"), ("stored", "sliding")):
            for comp in fam.comparison(first, second):
                worst = max(comp.max_abs_step_diff.values(), default=math.nan)
                v = NOT_MEASURED if math.isnan(worst) else SUPPORTED if worst <= tol else CONTRADICTED
                verdicts.append(v)
                evidence.append(f"{fam.label}: largest |{first} − {second}| online loss at any common log step over "
                                f"{format_seeds(comp.seeds)}: {worst:.3g} bits/char → {v}")
    return Claim(
        "5", "With k2 = 1, single and sliding (and stored) are identical.", combine(verdicts),
        K2_ONE_RULE.format(tol=tol), evidence or ["not measured: no runs with k2 = 1 pair these schemes"],
        "; ".join(e.split(": ", 1)[1].rsplit(" → ", 1)[0] for e in evidence) if evidence
        else "not measured: no k2 = 1 runs")


# ----------------------------------------------------------------------------- claims 6a, 6b: gradcheck.csv

SINGLE_GRADIENT_RULE = ("supported when the 95% interval of the median cosine similarity between single's gradient and "
                        "the exact window gradient lies at or above {cosine_min:g}; contradicted when it lies below; "
                        "from gradcheck.csv.")
STORED_GRADIENT_RULE = ("supported when the 95% interval of the median relative error of stored's gradient against the "
                        "exact window gradient lies above {exact_tol:g}; contradicted when it lies at or below; from "
                        "gradcheck.csv.")


def _grad_where(cfg: dict) -> str:
    text = f"k1={format_setting(cfg['k1'])} k2={format_setting(cfg['k2'])} {cfg['optimizer']} lr={format_setting(cfg['lr'])}"
    if "corpus" in cfg:
        text = f"{cfg['corpus']}, {text}"
    return f"{text} (trained with {cfg['scheme']})"


def _gradient_claim(number: str, text: str, rule: str, estimator: str, grad: list[GradSummary],
                    grad_problem: str | None, decide: Callable[[GradSummary], str], deciding: Callable[[GradSummary], str]
                    ) -> Claim:
    if grad_problem is not None:
        return Claim(number, text, NOT_MEASURED, rule, [f"not measured: {grad_problem}"], f"not measured: {grad_problem}")
    rows = [g for g in grad if g.estimator == estimator]
    if not rows:
        why = ("no gradcheck.csv under the path (run `bpttbench gradcheck`)" if not grad
               else f"gradcheck.csv has no {estimator} rows")
        return Claim(number, text, NOT_MEASURED, rule, [f"not measured: {why}"], f"not measured: {why}")
    verdicts, evidence, short = [], [], []
    for g in rows:
        v = decide(g)
        verdicts.append(v)
        evidence.append(f"{_grad_where(g.config)}: cosine {format_interval(g.cosine, 'cos')}, relative error "
                        f"{format_small_interval(g.rel_error)} over {g.cosine.n} checkpoints ({g.tensors}) → {v}")
        short.append(f"{deciding(g)} (k2={format_setting(g.config['k2'])}, lr={format_setting(g.config['lr'])})")
    return Claim(number, text, combine(verdicts), rule, evidence, "; ".join(short))


def single_gradient_claim(grad: list[GradSummary], grad_problem: str | None, s: dict) -> Claim:
    """6a: single's gradient has cosine at least cosine_min with the exact one."""
    return _gradient_claim("6a", "The single-forward gradient is a very good approximation of the exact one.",
                           SINGLE_GRADIENT_RULE.format(cosine_min=s["cosine_min"]), "single", grad, grad_problem,
                           lambda g: verdict_above(g.cosine, s["cosine_min"], strict=False),
                           lambda g: f"cos {format_number(g.cosine.median, 'cos')}")


def stored_gradient_claim(grad: list[GradSummary], grad_problem: str | None, s: dict) -> Claim:
    """6b: stored's gradient differs from the exact one by more than exact_tol."""
    return _gradient_claim("6b", "Even with stored past weights the gradient is not the exact one.",
                           STORED_GRADIENT_RULE.format(exact_tol=s["exact_tol"]), "stored", grad, grad_problem,
                           lambda g: verdict_above(g.rel_error, s["exact_tol"], strict=True),
                           lambda g: f"rel err {format_small(g.rel_error.median)}")

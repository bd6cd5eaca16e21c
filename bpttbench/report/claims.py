"""The question's claims, one function each: its rule, stated once as the text report.md prints
(a template over the report's settings), beside the code that applies it to the numbers.

Claims 1-4 are decided on what is least noisy: whole curves compared seed by seed (paired.py)
and, for the minimum, each seed's mean over its last validation evaluations, rather than one
point. An inconclusive one says how many seeds would decide it (stats.seeds_needed)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from bpttbench.report.families import ALL_METRICS, VAL_TAIL_FRACTION, Comparison, Family, GroupSummary
from bpttbench.report.gradients import GradSummary
from bpttbench.report.paired import LATE_FRACTION, TIME_POINTS, describe_steps, describe_times
from bpttbench.report.stats import (
    CONTRADICTED,
    EDGE_FRACTION,
    INCONCLUSIVE,
    MEDIAN_MIN_SAMPLE,
    MIN_SAMPLE,
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
    seeds_needed,
    verdict_above,
    verdict_below,
    verdict_within,
)

IDENTICAL_TOL = 1e-6  # bits/char: "identical" curves differ by no more than this at any log point
COSINE_MIN = 0.99  # a "very good approximation" has cosine similarity at least this with the exact gradient
EXACT_TOL = 1e-6  # relative error below which a gradient counts as exact (the gradcheck's own fd tolerance)


@dataclass
class Claim:
    """A claim of the question, its verdict and the numbers behind it.

    `results` holds one row per comparison (claims 1-4), family (5) or gradcheck configuration (6a, 6b)
    that decided it, for replication (report/replication.py, report.json, a study's summary.json). Its
    keys are stable:
      corpus    the corpus (None for a gradcheck that does not record one)
      k2        the truncation length k2 of the runs compared
      metric    what was measured: a metric of families.ALL_METRICS (claims 1-4, e.g. "steps_curve",
                "val_time_curve", "final_val"), "largest step difference" (5), "cosine" (6a) or
                "relative error" (6b)
      unit      "bits/char" (1-5); "" for the dimensionless cosine and relative error (6a, 6b)
      estimator "mean" (1-4: the mean of the per-seed paired differences, first − second), "median"
                (6a, 6b: over the gradcheck's checkpoints; a difference holding "not reached"),
                "largest" (5: the largest |difference| at any common log step of any pair and seed)
      estimate  the estimate that estimator gives
      lo, hi    its 95% interval: Student-t for a mean, binomial order statistics for a median; None
                where there is none (claim 5, or fewer than stats.MIN_SAMPLE seeds, or fewer than
                stats.MEDIAN_MIN_SAMPLE checkpoints)
      n         the number of values the estimate is over (seeds; checkpoints for 6a, 6b); None for 5
      values    those values: per seed in seed order (1-4); per checkpoint in (seed, step) order (6a,
                6b); [] for 5
      verdict   this row's verdict: supported, contradicted, inconclusive or not measured
    """

    number: str
    text: str
    verdict: str
    rule: str
    evidence: list[str]  # one line per family or configuration, with the numbers
    deciding: str  # the short version for a table cell
    needs: list[dict] = field(default_factory=list)  # per inconclusive comparison: the seeds that would decide it
    results: list[dict] = field(default_factory=list)  # the deciding rows, keys as in the docstring


def _result(corpus, k2, metric: str, unit: str, iv: Interval | None, verdict: str, estimate: float | None = None) -> dict:
    """A row of Claim.results (keys in Claim's docstring): the interval's numbers, or a bare largest value."""
    if iv is None:
        return {"corpus": corpus, "k2": k2, "metric": metric, "unit": unit, "estimator": "largest", "estimate": estimate,
                "lo": None, "hi": None, "n": None, "values": [], "verdict": verdict}
    lo, hi = (iv.lo, iv.hi) if iv.has_interval else (None, None)
    return {"corpus": corpus, "k2": k2, "metric": metric, "unit": unit, "estimator": iv.estimator, "estimate": iv.estimate,
            "lo": lo, "hi": hi, "n": iv.n, "values": list(iv.values), "verdict": verdict}


def judge(families: list[Family], grad: list[GradSummary], grad_problem: str | None, settings: dict) -> list[Claim]:
    """Every claim, in the question's order. settings: delta, burn_in, smooth, identical_tol, cosine_min, exact_tol."""
    return [stored_claim(families, grad, grad_problem, settings), per_step_claim(families, settings),
            per_second_claim(families, settings), minimum_claim(families, settings), k2_one_claim(families, settings),
            single_gradient_claim(grad, grad_problem, settings), stored_gradient_claim(grad, grad_problem, settings)]


# ----------------------------------------------------------------------------- claims 1-4: paired runs

NO_PAIR = "not measured: no run pairs {} with {} at k2 > k1 on the same seeds"
# What "the interval" of claims 1-4 is: stated once, in every rule that uses it.
MEAN_INTERVAL = "the 95% Student-t interval of the mean over paired seeds of {first} − {second}"
SEEDS_NOTE = (f" With fewer than {MIN_SAMPLE} paired seeds there is no interval and the claim is inconclusive. When "
              "inconclusive, the report estimates how many seeds would decide it from the spread of the per-seed "
              "differences (see How the numbers are made).")


def _truncating(fam: Family, comps: list[Comparison]) -> list[Comparison]:
    """Comparisons where k2 > k1: the question's setting (at k1 = k2 the schemes coincide)."""
    return [c for c in comps if c.first.k1 < fam.key["k2"]]


def _evidence(fam: Family, comp: Comparison, metric: str, verdict: str, where: str) -> str:
    unit = ALL_METRICS[metric][1]
    iv = comp.stats[metric]
    return (f"{fam.label}: {comp.first.scheme} − {comp.second.scheme} (k1={comp.first.k1}) in {where}: "
            f"{format_interval(iv, unit, signed=True)} {unit}, {len(comp.seeds)} paired seed"
            f"{'s' if len(comp.seeds) != 1 else ''}{format_per_seed(iv, unit)} → {verdict}")


Choose = Callable[[Family, Comparison], tuple[str, str]]  # -> (metric, words saying where it is read)
Undecidable = Callable[[Family, Comparison], "str | None"]  # why no interval can decide this pair yet, or None


@dataclass(frozen=True)
class PairRule:
    """How a claim over paired runs is decided: the interval's verdict (rule), the edges it is judged
    against (for the seeds a decision needs), and what can make a pair undecidable whatever its interval."""

    rule: Callable[[Interval], str]
    edges: tuple[float, ...]
    undecidable: Undecidable | None = None


def _pair_claim(number: str, text: str, rule_text: str, families: list[Family], first: str, second: str,
                choose: Choose, rule: PairRule, s: dict, extra: Callable[[Family, Comparison], list[str]] | None = None,
                tail: list[str] = ()) -> Claim:
    """One claim over every family's comparisons of scheme first with scheme second (k1 < k2)."""
    verdicts, evidence, short, needs, results = [], [], [], [], []
    for fam in families:
        for comp in _truncating(fam, fam.comparison(first, second)):
            metric, where = choose(fam, comp)
            iv = comp.stats[metric]
            blocked = rule.undecidable(fam, comp) if rule.undecidable else None
            v = INCONCLUSIVE if blocked else rule.rule(iv)
            verdicts.append(v)
            results.append(_result(fam.key["corpus"], fam.key["k2"], metric, ALL_METRICS[metric][1], iv, v))
            line = _evidence(fam, comp, metric, v, where)
            cell = (f"{format_interval(iv, ALL_METRICS[metric][1], signed=True)} "
                    f"({ALL_METRICS[metric][0]}, {fam.key['corpus']}, k2={format_setting(fam.key['k2'])})")
            if blocked:  # more seeds would not help: it needs what `blocked` says
                cell += f": {blocked}"
            elif v == INCONCLUSIVE and iv.n:  # more seeds can narrow an interval
                need = seeds_needed(iv.values, rule.edges, EDGE_FRACTION * s["delta"])
                needs.append({"family": fam.label, "comparison": comp.name, "metric": metric, **need.to_dict()})
                line += f"; {need.text}"
                cell += f": {need.short}"
            evidence.append(line)
            short.append(cell)
            if extra:
                evidence.extend(extra(fam, comp))
    missing = NO_PAIR.format(first, second)
    return Claim(number, text, combine(verdicts), rule_text, (evidence or [missing]) + list(tail),
                 "; ".join(short) if short else missing, needs, results)


def _within(s: dict, undecidable: Undecidable | None = None) -> PairRule:
    delta = s["delta"]
    return PairRule(lambda iv: verdict_within(iv, delta), (-delta, delta), undecidable)


def _over_steps(s: dict) -> Choose:
    def choose(fam: Family, comp: Comparison) -> tuple[str, str]:
        windows = comp.curves.step_windows if comp.curves else {}
        return "steps_curve", f"online loss over the steps ({describe_steps(windows, s['burn_in'])})"
    return choose


WITHIN_OVER_STEPS = (
    "supported when " + MEAN_INTERVAL + " lies within ±{delta:g} bits/char, where each seed's "
    "difference is the mean, over the log points both runs recorded after a burn-in of the first {burn_in:.0%} of "
    "them, of {first}'s smoothed online loss minus {second}'s (the same seed starts from the same weights and reads "
    "the same text at the same step); contradicted when it lies wholly outside; inconclusive otherwise." + SEEDS_NOTE)


def stored_claim(families: list[Family], grad: list[GradSummary], grad_problem: str | None, s: dict) -> Claim:
    """1: stored − single over the steps within ±delta; gradcheck's single-vs-stored rows shown beside it."""
    tail = [f"gradcheck, {_grad_where(g.config)}: single's gradient against stored's: relative difference "
            f"{format_small_interval(g.rel_error)}, cosine {format_interval(g.cosine, 'cos', of='checkpoints')} (not part of "
            "the verdict)"
            for g in grad if g.estimator == "single_vs_stored" and grad_problem is None]
    return _pair_claim("1", "Storing past weights makes almost no difference (stored vs single).",
                       WITHIN_OVER_STEPS.format(first="stored", second="single", delta=s["delta"], burn_in=s["burn_in"]),
                       families, "stored", "single", _over_steps(s), _within(s), s, tail=tail)


def per_step_claim(families: list[Family], s: dict) -> Claim:
    """2: single − sliding over the steps within ±delta."""
    return _pair_claim("2", "Per iteration, single and sliding perform about the same.",
                       WITHIN_OVER_STEPS.format(first="single", second="sliding", delta=s["delta"], burn_in=s["burn_in"]),
                       families, "single", "sliding", _over_steps(s), _within(s), s)


PER_SECOND_RULE = (
    "supported when " + MEAN_INTERVAL.format(first="single", second="sliding") + " lies below 0, where each seed's "
    "difference is the mean of "
    "single's validation loss minus sliding's (every model read on the same held-out text) at {points} equally "
    "spaced training times that every seed's validation curve covers, after the first {burn_in:.0%} of the time "
    "(without validation loss, the smoothed online loss, likewise); contradicted when it lies above 0; inconclusive "
    "otherwise." + SEEDS_NOTE)


def _over_time(fam: Family, comp: Comparison) -> tuple[str, str]:
    times = comp.curves.times if comp.curves else {}
    if comp.stats["val_time_curve"].n:
        return "val_time_curve", f"validation loss over time ({describe_times(times['val_time_curve'])})"
    return "time_curve", (f"online loss over time ({describe_times(times.get('time_curve', []))}; no validation loss "
                          "over a common time, and the online loss also reflects how hard each scheme's current "
                          "stretch of text is)")


def _per_second_context(fam: Family, comp: Comparison) -> list[str]:
    tt, sp, on, val = (comp.stats[m] for m in ("time_to_target", "steps_per_s", "at_time", "val_at_time"))
    T = format_number(fam.at_time, "s")
    lines = [f"{fam.label}: also, time to reach {fam.target:.3f} bits/char (smoothed online loss), single − "
             f"sliding: {format_interval(tt, 's', signed=True)} {fam.time_unit}; steps/s single / sliding: {format_interval(sp, '×')}"]
    at_t = f"online loss {format_interval(on, 'bits/char', signed=True)}"
    if val.n:
        at_t = f"validation loss {format_interval(val, 'bits/char', signed=True)}, {at_t}"
    lines.append(f"{fam.label}: also, at T = {T} {fam.time_unit} alone, single − sliding: {at_t} bits/char (not the verdict: one "
                 "point is noisier than a curve, and at equal time the schemes are at different places in the "
                 "stream, so the online loss mixes model quality with how hard the text there is)")
    return lines


def per_second_claim(families: list[Family], s: dict) -> Claim:
    """3: single − sliding over time below 0, on the validation curves when recorded."""
    return _pair_claim("3", "Per second, the single forward pass is ahead.",
                       PER_SECOND_RULE.format(points=TIME_POINTS, burn_in=s["burn_in"]), families, "single", "sliding",
                       _over_time, PairRule(verdict_below, (0.0,)), s, extra=_per_second_context)


# "The same minimum" is about where training ends: a pair is judged only once both schemes have
# plateaued, their loss (median over seeds) falling by at most this over the last quarter of their steps.
PLATEAU_DROP = 0.02  # bits/char

MINIMUM_RULE = (
    "judged only on runs that reached a plateau: both schemes' loss fell by at most {plateau:g} bits/char over the "
    "last {late:.0%} of their steps (median over seeds; on the validation curve when it has 3 or more evaluations, "
    "else the smoothed online loss); a pair still improving is not decidable, whatever its interval. Then supported "
    "when " + MEAN_INTERVAL.format(first="single", second="sliding") + " in final validation loss (each seed's mean "
    "over the last {tail:.0%} of its evaluations, at least one; without validation, the final online loss, the mean "
    "over the last {smooth} "
    "log points; on a corpus with a known optimum always the final online loss, so that the difference is that of "
    "the two schemes' gaps to it) lies within ±{delta:g} bits/char; contradicted when it lies wholly outside; "
    "inconclusive otherwise." + SEEDS_NOTE)


def _final(fam: Family, comp: Comparison) -> tuple[str, str]:
    if fam.optimum is not None:  # validation from a zero state misleads on lag:L; the gaps are online losses
        return "final_train", (f"final online loss, whose difference is that of the two gaps to the known optimum "
                               f"{fam.optimum:.4f}")
    if comp.stats["final_val"].n:
        return "final_val", f"final validation loss (the mean of each seed's last {VAL_TAIL_FRACTION:.0%} of evaluations)"
    return "final_train", "final online loss (no validation loss recorded)"


def _late_drop(g: GroupSummary, metric: str) -> float:
    """How much g's loss fell over its last quarter: validation curve when it has 3 evaluations, else online."""
    if metric == "final_val" and not math.isnan(g.val_late_drop):
        return g.val_late_drop
    return g.late_drop


def minimum_claim(families: list[Family], s: dict) -> Claim:
    """4: single − sliding in final loss within ±delta, judged only once both reached a plateau."""
    delta = s["delta"]

    def improving(fam: Family, comp: Comparison) -> list[tuple[GroupSummary, float, str]]:
        """(group, its late drop, on which curve) for each scheme of the pair not yet on a plateau."""
        metric = _final(fam, comp)[0]
        out = []
        for g in (comp.first, comp.second):
            drop = _late_drop(g, metric)
            if not math.isnan(drop) and drop > PLATEAU_DROP:
                which = ("validation loss" if metric == "final_val" and not math.isnan(g.val_late_drop)
                         else "smoothed online loss")
                out.append((g, drop, which))
        return out

    def not_plateaued(fam: Family, comp: Comparison) -> str | None:
        return "not decidable yet: still improving, run longer" if improving(fam, comp) else None

    def still_improving(fam: Family, comp: Comparison) -> list[str]:
        return [f"{fam.label}: not decidable yet: {g.label} had not reached a plateau (its {which} fell {drop:.3f} "
                f"bits/char over the last {1 - LATE_FRACTION:.0%} of its steps, more than {PLATEAU_DROP:g}): a gap "
                "or its absence in final loss says where the runs stopped, not where they converge; run longer"
                for g, drop, which in improving(fam, comp)]

    rule = MINIMUM_RULE.format(delta=delta, late=1 - LATE_FRACTION, tail=VAL_TAIL_FRACTION, smooth=s["smooth"],
                               plateau=PLATEAU_DROP)
    return _pair_claim("4", "Both reach about the same minimum.", rule, families, "single", "sliding", _final,
                       _within(s, not_plateaued), s, extra=still_improving)


# ----------------------------------------------------------------------------- claim 5: k2 = 1

K2_ONE_RULE = ("supported when, for every paired seed, the online losses at every log step both recorded differ by at "
               "most {tol:g} bits/char; contradicted otherwise. Needs runs with k2 = 1.")


def k2_one_claim(families: list[Family], s: dict) -> Claim:
    """5: at k2 = 1 the schemes' curves agree to identical_tol at every common log step, seed by seed."""
    tol = s["identical_tol"]
    verdicts, evidence, short, results = [], [], [], []
    for fam in families:
        if fam.key["k2"] != 1:
            continue
        worst_here, schemes, seeds, family_verdicts = [], set(), set(), []
        for first, second in (("single", "sliding"), ("stored", "single"), ("stored", "sliding")):
            for comp in fam.comparison(first, second):
                worst = max(comp.max_abs_step_diff.values(), default=math.nan)
                v = NOT_MEASURED if math.isnan(worst) else SUPPORTED if worst <= tol else CONTRADICTED
                verdicts.append(v)
                family_verdicts.append(v)
                evidence.append(f"{fam.label}: largest |{first} − {second}| online loss at any common log step over "
                                f"{format_seeds(comp.seeds)}: {worst:.3g} bits/char → {v}")
                worst_here.append(worst)
                schemes |= {first, second}
                seeds |= set(comp.seeds)
        measured = [w for w in worst_here if not math.isnan(w)]
        if measured:  # the table cell: one phrase per family, the largest difference of any pair in it
            names = "/".join(s for s in ("single", "stored", "sliding") if s in schemes)
            short.append(f"{names} at most {max(measured):.3g} bits/char apart ({fam.key['corpus']}, "
                         f"{format_seeds(sorted(seeds))})")
            results.append(_result(fam.key["corpus"], 1, "largest step difference", "bits/char", None,
                                   combine(family_verdicts), max(measured)))
    return Claim(
        "5", "With k2 = 1, single and sliding (and stored) are identical.", combine(verdicts),
        K2_ONE_RULE.format(tol=tol), evidence or ["not measured: no runs with k2 = 1 pair these schemes"],
        "; ".join(short) if short else "not measured: no k2 = 1 runs", results=results)


# ----------------------------------------------------------------------------- claims 6a, 6b: gradcheck.csv

# What "the interval" of claims 6a and 6b is: cosines crowd against 1 and relative errors span orders of
# magnitude, so the median with an interval that assumes no shape.
MEDIAN_INTERVAL = ("the distribution-free 95% interval (binomial order statistics, the checkpoints taken as "
                   "independent draws) of the median over the gradcheck's checkpoints of ")
GRADIENT_NOTE = (f"; inconclusive otherwise, and with fewer than {MEDIAN_MIN_SAMPLE} checkpoints, which get no "
                 "interval; from gradcheck.csv.")
SINGLE_GRADIENT_RULE = ("supported when " + MEDIAN_INTERVAL + "the cosine similarity between single's gradient and "
                        "the exact window gradient lies at or above {cosine_min:g}; contradicted when it lies below"
                        + GRADIENT_NOTE)
STORED_GRADIENT_RULE = ("supported when " + MEDIAN_INTERVAL + "the relative error of stored's gradient against the "
                        "exact window gradient lies above {exact_tol:g}; contradicted when it lies at or below"
                        + GRADIENT_NOTE)


def _grad_where(cfg: dict) -> str:
    text = f"k1={format_setting(cfg['k1'])} k2={format_setting(cfg['k2'])} {cfg['optimizer']} lr={format_setting(cfg['lr'])}"
    if "corpus" in cfg:
        text = f"{cfg['corpus']}, {text}"
    return f"{text} (trained with {cfg['scheme']})"


def _gradient_claim(number: str, text: str, rule: str, estimator: str, grad: list[GradSummary],
                    grad_problem: str | None, decide: Callable[[GradSummary], str], deciding: Callable[[GradSummary], str],
                    measure: Callable[[GradSummary], tuple[str, Interval]]) -> Claim:
    if grad_problem is not None:
        return Claim(number, text, NOT_MEASURED, rule, [f"not measured: {grad_problem}"], f"not measured: {grad_problem}")
    rows = [g for g in grad if g.estimator == estimator]
    if not rows:
        why = ("no gradcheck.csv where the runs were read (run `bpttbench gradcheck`)" if not grad
               else f"gradcheck.csv has no {estimator} rows")
        return Claim(number, text, NOT_MEASURED, rule, [f"not measured: {why}"], f"not measured: {why}")
    verdicts, evidence, short, results = [], [], [], []
    for g in rows:
        v = decide(g)
        verdicts.append(v)
        metric, iv = measure(g)
        results.append(_result(g.config.get("corpus"), g.config["k2"], metric, "", iv, v))
        evidence.append(f"{_grad_where(g.config)}: cosine {format_interval(g.cosine, 'cos', of='checkpoints')}, relative error "
                        f"{format_small_interval(g.rel_error)} over {g.cosine.n} checkpoints ({g.tensors}) → {v}")
        corpus = f"{g.config['corpus']}, " if "corpus" in g.config else ""
        short.append(f"{deciding(g)} ({corpus}k2={format_setting(g.config['k2'])}, lr={format_setting(g.config['lr'])})")
    return Claim(number, text, combine(verdicts), rule, evidence, "; ".join(short), results=results)


def single_gradient_claim(grad: list[GradSummary], grad_problem: str | None, s: dict) -> Claim:
    """6a: single's gradient has cosine at least cosine_min with the exact one."""
    return _gradient_claim("6a", "The single-forward gradient is a very good approximation of the exact one.",
                           SINGLE_GRADIENT_RULE.format(cosine_min=s["cosine_min"]), "single", grad, grad_problem,
                           lambda g: verdict_above(g.cosine, s["cosine_min"], strict=False),
                           lambda g: f"cos {format_number(g.cosine.estimate, 'cos')}", lambda g: ("cosine", g.cosine))


def stored_gradient_claim(grad: list[GradSummary], grad_problem: str | None, s: dict) -> Claim:
    """6b: stored's gradient differs from the exact one by more than exact_tol."""
    return _gradient_claim("6b", "Even with stored past weights the gradient is not the exact one.",
                           STORED_GRADIENT_RULE.format(exact_tol=s["exact_tol"]), "stored", grad, grad_problem,
                           lambda g: verdict_above(g.rel_error, s["exact_tol"], strict=True),
                           lambda g: f"rel err {format_small(g.rel_error.estimate)}",
                           lambda g: ("relative error", g.rel_error))

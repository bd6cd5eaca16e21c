"""The report as text: report.md, and rich tables for a terminal, built from the same rows."""

from __future__ import annotations

import math
import os
from pathlib import Path

from bpttbench.report.claims import Claim
from bpttbench.report.document import Report
from bpttbench.report.families import ALL_METRICS, METRICS, Comparison, Family, GroupSummary
from bpttbench.report.gaps import GapTable
from bpttbench.report.online import ONLINE_HEADER, md_online, online_cells
from bpttbench.report.stats import (
    CONTRADICTED,
    INCONCLUSIVE,
    MEDIAN_MIN_SAMPLE,
    MIN_SAMPLE,
    MIXED,
    NOT_MEASURED,
    SUPPORTED,
    format_interval,
    format_number,
    format_signed,
    format_setting,
    format_small_interval,
)

VERDICT_STYLES = {SUPPORTED: "green", CONTRADICTED: "red", INCONCLUSIVE: "yellow", MIXED: "yellow", NOT_MEASURED: "dim"}


# ----------------------------------------------------------------------------- rows, for both outputs


def claim_row(c: Claim, verdict: str) -> list[str]:
    return [c.number, c.text, verdict, c.deciding]


def metric_cell(stats: dict, metric: str, *, paired: bool = False) -> str:
    """One statistic as a table cell: differences signed, ratios as ×."""
    _, unit, kind = ALL_METRICS[metric]
    if not paired:
        return format_interval(stats[metric], unit)
    return format_interval(stats[metric], "×" if kind == "ratio" else unit, signed=kind == "diff")


def seed_note(g: GroupSummary) -> str:
    text = str(len(g.seeds))
    if g.diverged:
        text += f" (+{len(g.diverged)} diverged)"
    return text


def group_row(g: GroupSummary, metrics: list[str]) -> list[str]:
    return [g.label, seed_note(g)] + [metric_cell(g.stats, m) for m in metrics]


def comparison_row(c: Comparison, metrics: list[str]) -> list[str]:
    return [c.name, str(len(c.seeds))] + [metric_cell(c.stats, m, paired=True) for m in metrics]


def gap_pivot(t: GapTable) -> tuple[list[str], list[list[str]]]:
    """The scheme x k2 table: truncated schemes by k2, the online ones in a column of their own."""
    online = any(r.k2 is None for r in t.rows)
    header = ["scheme"] + [f"k2 = {k}" for k in t.k2s] + (["no truncation"] if online else [])
    rows = []
    for name in t.row_names:
        cells = [t.cell(name, k) for k in t.k2s] + ([t.cell(name, None)] if online else [])
        rows.append([name] + ["–" if r is None else r.cell for r in cells])
    return header, rows


def terminal_metrics(fam: Family) -> list[str]:
    """The columns worth a terminal's width: validation numbers when recorded, else the online ones."""
    has = lambda m: any(g.stats[m].n for g in fam.groups)  # noqa: E731
    return ["final_val" if has("final_val") else "final_train", "val_at_time" if has("val_at_time") else "at_time",
            "at_steps", "time_to_target", "steps_per_s"]


def terminal_pair_metrics(fam: Family) -> list[str]:
    """The comparisons' columns in a terminal: the whole-curve differences claims 1-3 are decided on first."""
    has = lambda m: any(c.stats[m].n for c in fam.comparisons)  # noqa: E731
    return ["steps_curve", "val_time_curve" if has("val_time_curve") else "time_curve",
            "final_val" if has("final_val") else "final_train", "time_to_target", "steps_per_s"]


# ----------------------------------------------------------------------------- report.md


def md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    esc = lambda t: str(t).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(esc(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return lines


def relative_path(p: Path, out_dir: Path) -> str:
    try:
        return Path(os.path.relpath(Path(p).resolve(), Path(out_dir).resolve())).as_posix()
    except ValueError:  # another drive on Windows
        return Path(p).resolve().as_posix()


def render_markdown(report: Report, out_dir: Path) -> str:
    s = report.settings
    under = ", ".join(f"`{p}`" for p in (report.paths or [report.path]))
    lines = ["# bpttbench report", "", f"Runs under {under}: " + "; ".join(report.notes) + ".", "",
             f"Paired differences are means over seeds with Student-t 95% intervals, a configuration's numbers medians "
             f"over seeds with distribution-free 95% intervals (none below {MIN_SAMPLE} seeds for a mean, "
             f"{MEDIAN_MIN_SAMPLE} values for a median); \"about the same\" "
             f"means within ±{s['delta']:g} bits/char. Losses are in bits per character."]
    lines += ["", "## The question's claims", ""]
    lines += md_table(["#", "claim", "verdict", "deciding numbers"],
                      [claim_row(c, f"**{c.verdict}**") for c in report.claims])
    for c in report.claims:
        lines += ["", f"**{c.number}. {c.text}** — {c.verdict}.", "", f"Rule: {c.rule}", ""]
        lines += [f"- {e}" for e in c.evidence]
    if report.reference_bpc:
        lines += ["", "## Reference levels", ""] + _md_reference(report)
    if report.gaps:
        lines += ["", "## Gap to the optimum", ""] + _md_gaps(report)
    if report.online:
        lines += ["", "## Online learning rules", ""] + md_online(report.online, md_table)
    lines += ["", "## Warnings", ""]
    lines += [f"- {w}" for w in report.warnings] or ["- none"]
    for fam in report.families:
        lines += _md_family(fam)
    if report.gradcheck:
        lines += _md_gradcheck(report, out_dir)
    lines += ["", "## Figures", ""]
    for p in report.figures:
        lines += [f"![{p.stem.replace('_', ' ')}]({relative_path(p, out_dir)})", ""]
    if not report.figures:
        lines.append(f"None found next to the runs; draw them with `bpttbench plot {report.path}`.")
    lines += ["", "## How the numbers are made", ""] + _md_definitions(s)
    if report.skipped:
        lines += ["", "## Skipped", ""]
        lines += [f"- `{relative_path(p, out_dir)}`: {why}" for p, why in report.skipped]
    return "\n".join(lines) + "\n"


def _md_reference(report: Report) -> list[str]:
    """Per corpus: the n-gram levels on its validation split beside the lowest final validation loss of
    any configuration, so a reader sees whether the networks learned more than character statistics."""
    lines = ["What character statistics alone reach on each corpus's validation split: unigram, bigram and "
             "interpolated trigram models fitted on the training split the runs read (bpttbench/data/ngram.py), beside "
             "the lowest final validation loss of any configuration here (median over its seeds).", ""]
    rows = []
    for corpus, levels in report.reference_bpc.items():
        finals = [g.stats["final_val"].estimate for fam in report.families if fam.key["corpus"] == corpus
                  for g in fam.groups if g.stats["final_val"].n]
        best = min(finals, default=math.nan)
        below = "–" if math.isnan(best) else format_signed(best - levels["bigram"], "bits/char")
        rows.append([corpus, *(format_number(levels[k], "bits/char") for k in ("unigram", "bigram", "trigram")),
                     format_number(best, "bits/char"), below])
    return lines + md_table(["corpus", "unigram", "bigram", "trigram", "lowest final validation", "minus bigram"], rows)


def _md_family(fam: Family) -> list[str]:
    lines = ["", f"## {fam.label}", "",
             f"Equal time T = {format_number(fam.at_time, 's')} {fam.time_unit} ({fam.at_time_source}); equal steps N = "
             f"{format_number(fam.at_steps, 'steps')} ({fam.at_steps_source}); target loss "
             f"{format_number(fam.target, 'bits/char')} bits/char ({fam.target_source}). Budget per seed: "
             f"{', '.join(fam.budgets)}.", ""]
    metrics = list(METRICS)
    header = ["configuration", "seeds"] + [f"{t} ({u})" for t, u, _ in METRICS.values()] + ["compile (s)"]
    lines += md_table(header, [group_row(g, metrics) + ["–" if math.isnan(g.compile_s) else f"{g.compile_s:.2f}"]
                               for g in fam.groups])
    if fam.comparisons:
        lines += ["", "Paired by seed (same seed = same initial weights and stream): first minus second, so "
                  "negative means the first has the lower loss or reaches the target sooner; steps/s as the "
                  "ratio first / second. The last three columns compare whole curves (see How the numbers are made).",
                  ""]
        header = ["comparison", "paired seeds"] + [t for t, _, _ in ALL_METRICS.values()]
        lines += md_table(header, [comparison_row(c, list(ALL_METRICS)) for c in fam.comparisons])
    return lines


def _md_gradcheck(report: Report, out_dir: Path) -> list[str]:
    lines = ["", "## Gradient fidelity (gradcheck)", "",
             f"From {', '.join(f'`{relative_path(p, out_dir)}`' for p in report.gradcheck_files)}: median over "
             "checkpoints (seed × step) with a distribution-free interval over checkpoints, which along one trajectory "
             "are not independent. single and stored are compared with the exact window gradient; X_vs_Y is X "
             "against Y.", ""]
    rows = [[g.config["scheme"], format_setting(g.config["k1"]), format_setting(g.config["k2"]),
             f"{g.config['optimizer']} {format_setting(g.config['lr'])}", g.estimator, str(g.cosine.n),
             format_interval(g.cosine, "cos", of="checkpoints"), format_small_interval(g.rel_error)] for g in report.gradcheck]
    return lines + md_table(["trained", "k1", "k2", "optimizer lr", "estimator", "checkpoints", "cosine",
                             "relative error"], rows)


def _md_definitions(s: dict) -> list[str]:
    margin = s["edge_fraction"] * s["delta"]
    return [
        f"- Online loss curves are smoothed by a centred moving average over {s['smooth']} log points, each weighted "
        "by the steps it covers, narrowed symmetrically near the ends so it never lags where a curve stops (the first "
        "and last points keep their own value); losses at T and N and the times to target are read off that curve.",
        f"- Final online loss: the mean online loss over the last {s['smooth']} log points. Final validation loss: "
        f"the mean of the last {s['val_tail']:.0%} of a seed's evaluations (the last ⌈n/4⌉ of n, at least one), less "
        "noisy than the last evaluation alone.",
        "- Loss at equal time / steps: the smoothed curve, linearly interpolated at T seconds / N steps, never "
        "extrapolated. By default T and N are the smallest training time / step count every seed of the family reached.",
        "- Time / steps to target: the first point where the smoothed curve is at or below the target, linearly "
        "interpolated between the log points around the crossing; 'not reached' if it never is. The default target "
        "is the highest, over the family's seeds, of the lowest smoothed loss each reached.",
        "- Validation loss at T: with equal time budgets, each seed's last evaluation; otherwise the validation curve "
        "interpolated at T. It reads every model on the same held-out text, which the online loss at T does not: at "
        "equal time the schemes are at different places in the stream, and how hard the text is there varies. So "
        "claims about equal time and the minimum use validation loss whenever the runs recorded it.",
        f"- Whole curves, paired by seed (claims 1-3 are decided on these, not on one point): online loss over the "
        f"steps is, per seed, the mean over the log points both runs recorded, after a burn-in of the first "
        f"{s['burn_in']:.0%} of them, of the first's smoothed online loss minus the second's (the same seed reads the "
        f"same text at the same step). Validation (online) loss over time is, per seed, the mean of the first's "
        f"validation curve (smoothed online curve) minus the second's at {s['time_points']} equally spaced training "
        "times, each curve linearly interpolated: the times span the range every seed's curve of both configurations "
        f"covers, from its start or {s['burn_in']:.0%} of its end, whichever is later, to its end. Each is then a "
        "mean over seeds with its Student-t interval.",
        "- Steps per second: the unit's steps over its training time (compilation and evaluation excluded).",
        "- A family is every configuration with the same corpus, k2, inject, hidden, batch, optimizer and lr; "
        "claims 1–4 use its configurations with k1 < k2, claim 5 those with k2 = 1.",
        "- Intervals (SciPy): a paired difference is the mean of the per-seed differences with its Student-t 95% "
        "interval (the differences of whole curves are close to normal, where the t interval's coverage is exact, and "
        "a mean needs fewer seeds than a median for the same width); a ratio the geometric mean, the t interval of "
        "the logarithms; a configuration's numbers and gradient cosines the median with its distribution-free "
        "interval from binomial order statistics (times may be \"not reached\"). Below "
        f"{MIN_SAMPLE} values ({MEDIAN_MIN_SAMPLE} for a median) no interval is given and no verdict rests on the "
        "estimate alone: with 3 seeds the t interval reaches 2.5 standard deviations either side of the mean, its 95% "
        "resting wholly on a normality three values cannot check, and a median has none (the range of 3 covers 75%).",
        f"- Seven claims on each corpus, each on its own 95% interval: no family-wise correction is applied, as each "
        "claim answers its own question and is read on its own (a Holm correction would widen every interval and need "
        "more seeds for each). Had every claim's truth sat exactly on its decision edge, each verdict would be wrong "
        f"with probability at most 2.5% (one-sided), and at least one of {7 * max(1, s.get('corpora', 1))} wrong with "
        f"probability 1 − 0.975^{7 * max(1, s.get('corpora', 1))} ≈ {1 - 0.975 ** (7 * max(1, s.get('corpora', 1))):.0%} "
        f"were their errors independent, at most {0.025 * 7 * max(1, s.get('corpora', 1)):.0%} whatever their "
        "dependence; for a truth well away from the edges it is far smaller. Read a verdict whose interval grazes an "
        "edge as weaker than one far from it.",
        "- Seeds that would decide an inconclusive claim: from the n per-seed paired differences (sample standard "
        "deviation s, mean m), the smallest n' (at least n + 1) at which the half-width of the 95% interval of the "
        "mean, t(0.975, n'−1) · s / √n', falls below the distance from m to the nearest edge (±delta, or 0 "
        "for claim 3), so that the interval would lie wholly inside or outside the band if m and s stayed as observed. "
        "When m lies within "
        f"{s['edge_fraction']:g} · delta = {margin:g} bits/char of an edge, no seed count is given: the difference lies "
        "on the band's edge.",
        "- Diverged seeds are left out of the statistics and listed in the warnings.",
    ]


def _md_gaps(report: Report) -> list[str]:
    frac = report.settings["gap_fraction"]
    lines = [f"On a generated corpus the optimum is the generating process's entropy rate, the lowest loss any "
             f"predictor reaches in the long run. Gap = final online loss − optimum, where the final online loss is the "
             f"step-weighted mean online loss over the last {frac:.0%} of each run's steps; medians over seeds with "
             "distribution-free 95% intervals, in bits/char. The online loss, not the validation loss: validation is read from a "
             "zero state, which on lag:L was found misleading."]
    for t in report.gaps:
        lines += ["", f"### {t.label}", "", f"Optimum {t.optimum:.4f} bits/char." + (
            f" On this corpus {t.dependency}." if t.dependency else "")]
        lines += [""] + md_table(
            ["configuration", "seeds", "final online loss", "gap", "mean over the steps after", "µs per step"],
            [[r.label, str(len(r.seeds)), format_interval(r.final), r.cell,
              "–" if math.isnan(r.from_step) else f"{r.from_step:,.0f}", format_interval(r.us_per_step, "us")]
             for r in t.rows])
        if len(t.k2s) >= 2:
            lines += ["", "Gap by scheme and k2:", ""] + md_table(*gap_pivot(t))
        if t.findings:
            lines += ["", f"Where each scheme stops learning the dependency: a configuration learns it when its median "
                      f"gap is below the cost of forgetting it, {t.cost:.4f} bits/char.", ""]
            lines += [f"- {f.text}" for f in t.findings]
    return lines


# ----------------------------------------------------------------------------- rich


def _rich_table(title: str, header: list[str], rows: list[list[str]], *, justify_first: str = "left"):
    from rich.table import Table

    table = Table(title=title)
    for i, name in enumerate(header):
        table.add_column(name, justify=justify_first if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    return table


def rich_renderables(report: Report) -> list:
    """Tables for a terminal (the CLI prints them to stdout): the claims, then per family its
    configurations and paired differences on the columns of `terminal_metrics` (report.md has all)."""
    from rich.table import Table
    from rich.text import Text

    claims = Table(title="the question's claims")
    for name in ("#", "claim", "verdict", "deciding numbers"):
        claims.add_column(name, overflow="fold")
    for c in report.claims:
        claims.add_row(*claim_row(c, f"[{VERDICT_STYLES.get(c.verdict, '')}]{c.verdict}[/]"))
    out = [claims]
    for t in report.gaps:
        header, rows = gap_pivot(t) if len(t.k2s) >= 2 else (
            ["configuration", "seeds", "gap"], [[r.label, str(len(r.seeds)), r.cell] for r in t.rows])
        out.append(_rich_table(f"gap to the optimum ({t.optimum:.4f} bits/char), {t.label}\nfinal online loss over the "
                               f"last {report.settings['gap_fraction']:.0%} of the steps − optimum; medians [95% interval]",
                               header, rows))
        if t.findings:  # Text, not markup: the findings hold intervals in brackets
            out.append(Text(f"where each scheme stops learning the dependency (learned: median gap < {t.cost:.4f} "
                            "bits/char):"))
            out.extend(Text(f"  {f.short}") for f in t.findings)  # the table has the gaps
    for t in report.online:
        out.append(_rich_table(f"online learning rules on {t.corpus}: cosine with rtrl's gradient, cost, memory, gap; "
                               "medians [95% interval]", ONLINE_HEADER, online_cells(t)))
    for fam in report.families:
        names = terminal_metrics(fam)
        header = [METRICS[m][0] for m in names]
        out.append(_rich_table(f"{fam.label}: medians over seeds [95% interval]\nT = {format_number(fam.at_time, 's')} "
                               f"{fam.time_unit}, N = {format_number(fam.at_steps, 'steps')} steps, target "
                               f"{format_number(fam.target, 'bits/char')} bits/char",
                               ["configuration", "seeds"] + header, [group_row(g, names) for g in fam.groups]))
        if fam.comparisons:
            pair_names = terminal_pair_metrics(fam)
            out.append(_rich_table("paired by seed: first − second (steps/s: first / second)",
                                   ["comparison", "seeds"] + [ALL_METRICS[m][0] for m in pair_names],
                                   [comparison_row(c, pair_names) for c in fam.comparisons]))
    return out

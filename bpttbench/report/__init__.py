"""The report: what saved runs say about the question's claims, with numbers and uncertainty.

The runs are read from one or more paths (each run once). Per configuration, every seed's curve
is summarised by a few numbers (final online and validation loss, loss at equal time and at equal
steps, time and steps to a target loss, steps per second); each is a median over seeds with its
distribution-free 95% interval. Schemes run with the same seed start from the same weights on the
same stream, so they are compared in pairs, seed by seed, at those points and over whole curves
(paired.py): a paired difference is the mean over seeds with its Student-t 95% interval, a ratio
the geometric mean (stats.py says why; below stats.MIN_SAMPLE values no interval is given). The claims of the Cross
Validated question "Truncated Back Propagation of LSTM with K2 > K1"
(https://stats.stackexchange.com/q/278806) are judged by stated rules on those paired differences
(claims.py) and on gradcheck.csv; an inconclusive one says how many seeds would decide it.

Definitions (report.md states them too):
- the online loss curve is smoothed by a step-weighted centred moving average over `smooth` log
  points that narrows symmetrically near the ends; the final online loss is the mean over the
  last `smooth` log points; the final validation loss is the mean of the last quarter of the
  evaluations (at least one);
- a family is every configuration (results.GROUP_KEY) that differs only in scheme and k1;
- equal time T / equal steps N default to the smallest training time / step count every seed of
  the family reached (nothing is extrapolated); the target loss defaults to the highest, over the
  family's seeds, of the lowest smoothed loss each reached, so every seed reaches it;
- claims 1 and 2 are judged on the online loss over the steps: per seed, the mean paired difference
  of the smoothed curves over their common log points after a burn-in (defaults.BURN_IN_FRACTION
  of them; same seed = same text at the same step); "ahead per second" on the validation curves
  at paired.TIME_POINTS common times, and "same minimum" on the final validation loss (the same
  held-out text for every model), whenever the runs recorded it, because at equal time the
  schemes are at different places in the stream;
- seeds that would decide an inconclusive claim: the smallest n' at which t(0.975, n'-1)·s/sqrt(n')
  falls below the mean's distance to the band's nearest edge, s the spread of the per-seed
  differences (stats.seeds_needed);
- diverged seeds are left out of the statistics (and listed in the warnings);
- the untruncated schemes (rtrl, uoro, snap1, eprop) do not use k2: their runs are grouped under k2 = 1 whatever k2 they recorded;
- on a generated corpus the gap to the optimum is the step-weighted mean online loss over the last
  GAP_FRACTION of the steps minus the entropy rate the manifest records; on lag:L a configuration
  learns the dependency when its median gap is below log2(M)/(L+1), what forgetting the cue costs;
- where an untruncated rule (rtrl, uoro, snap1, eprop) ran, a table per corpus puts every online
  rule side by side: its gradient's cosine with rtrl's along rtrl's trajectory (gradcheck.csv),
  µs per step, resident memory and gap (online.py).

References:
- R. J. Williams and J. Peng, "An efficient gradient-based algorithm for on-line training of
  recurrent network trajectories", Neural Computation 2(4), 1990.
- W. J. Conover, "Practical Nonparametric Statistics", 3rd ed., 1999 (the median's interval from
  binomial order statistics).
"""

from bpttbench.report.build import REPORT, REPORT_JSON, build_report, write_report
from bpttbench.report.document import Report
from bpttbench.report.claims import Claim
from bpttbench.report.families import ALL_METRICS, METRICS, Comparison, Family, GroupSummary
from bpttbench.report.paired import PAIR_METRICS, TIME_POINTS
from bpttbench.report.gaps import GAP_FRACTION, Finding, GapRow, GapTable, dependency_cost
from bpttbench.report.render import render_markdown, rich_renderables
from bpttbench.report.stats import (
    CONTRADICTED,
    INCONCLUSIVE,
    MIXED,
    NOT_MEASURED,
    SUPPORTED,
    Interval,
    SeedsNeeded,
    combine,
    first_crossing,
    interval_for,
    mean_interval,
    median_interval,
    ratio_interval,
    seeds_needed,
    tail_mean,
    trailing_mean,
    value_at,
    verdict_above,
    verdict_below,
    verdict_within,
)

__all__ = [
    "REPORT", "REPORT_JSON", "Report", "build_report", "write_report", "render_markdown", "rich_renderables",
    "Claim", "METRICS", "PAIR_METRICS", "ALL_METRICS", "TIME_POINTS", "Comparison", "Family", "GroupSummary", "GAP_FRACTION", "Finding", "GapRow", "GapTable",
    "dependency_cost", "SUPPORTED", "CONTRADICTED", "INCONCLUSIVE", "NOT_MEASURED", "MIXED", "Interval",
    "SeedsNeeded", "combine", "first_crossing", "interval_for", "mean_interval", "median_interval", "ratio_interval",
    "seeds_needed", "tail_mean", "trailing_mean", "value_at",
    "verdict_above", "verdict_below", "verdict_within",
]

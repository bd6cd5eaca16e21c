"""Run directories: writing them as a run goes, and reading them back for plots and reports.

One `bpttbench run` makes one directory:

    manifest.json       what ran, on what, how it ended; rewritten atomically after every unit
    curves.csv          tidy log points, one row per (unit, log point, metric), each with the
                        unit's whole configuration and corpus; flushed per record
    loss_vs_time.csv    wide: wall_s, then the median over seeds of train_bpc per configuration
    loss_vs_iter.csv    wide: step, then the same
    vocab.json          the corpus vocabulary (a list of characters), when saved
    weights/<name>.npz  initial and final parameters, when saved

writer.py writes it (RunWriter); reader.py reads it back (Run, read_runs, complete_runs);
curves.py holds what plots and reports share: configurations, labels, smoothing, seed medians.
"""

from bpttbench.files import atomic_write
from bpttbench.results.curves import (
    GROUP_KEY,
    UNTRUNCATED_K2,
    SCHEME_ORDER,
    add_labels,
    aggregation_rows,
    annotate_curves,
    config_labels,
    config_sort_key,
    early_divergences,
    group_curves,
    group_key,
    median_band,
    nothing_to_show,
    ordered_groups,
    resample,
    seed_curves,
    smooth_curve,
    step_weights,
    varying_fields,
    wide_median,
)
from bpttbench.results.reader import (
    CONFIG_FIELDS,
    CURVE_COLUMNS,
    CURVES,
    LOSS_VS_ITER,
    LOSS_VS_TIME,
    MANIFEST,
    PLOTTED_UNIT_STATUSES,
    RUN_STATUSES,
    UNIT_STATUSES,
    VOCAB,
    WEIGHTS_DIR,
    Run,
    complete_runs,
    corpus_facts,
    read_runs,
    read_curves,
    split_complete,
)
from bpttbench.results.writer import RunWriter

__all__ = [
    "CONFIG_FIELDS", "CURVE_COLUMNS", "CURVES", "GROUP_KEY", "LOSS_VS_ITER", "LOSS_VS_TIME", "MANIFEST", "UNTRUNCATED_K2",
    "PLOTTED_UNIT_STATUSES", "RUN_STATUSES", "Run", "RunWriter", "SCHEME_ORDER", "UNIT_STATUSES", "VOCAB", "WEIGHTS_DIR",
    "add_labels", "aggregation_rows", "annotate_curves", "atomic_write", "complete_runs", "config_labels", "corpus_facts",
    "config_sort_key", "early_divergences", "group_curves", "group_key", "read_runs", "median_band", "nothing_to_show",
    "ordered_groups", "read_curves", "resample", "seed_curves", "smooth_curve", "split_complete", "step_weights",
    "varying_fields", "wide_median",
]

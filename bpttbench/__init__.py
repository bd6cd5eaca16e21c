"""bpttbench: which truncated-BPTT scheme learns fastest online, and how exact is its gradient.

The Python API, for notebooks; every name does what a command does, without printing:

    TrainConfig               one training configuration (frozen, validated): scheme, k1, k2, ...
    load_corpus(name_or_path) a built-in corpus, a generated one ("lag:8") or a text file
    train(cfg, corpus)        compile, then yield a Record at every log point of one (scheme, seed)
    run(schemes, ..., seeds=, corpus=, out=)
                              `bpttbench run`: every scheme × seed into a run directory; returns
                              RunResults with .curves (DataFrame), .path, .status, .units, .summary()
    load_runs(*paths)         the tidy curves of runs or sweeps as one DataFrame, one row per
                              (unit, log point, metric), with every configuration column
    plot_runs(*paths, out=)   `bpttbench plot`: loss against time and steps, png and svg
    build_report(path)        `bpttbench report`, as a Report (see bpttbench.report.write_report)
    load_weights(run_dir, scheme, seed)
                              saved weights as a state dict of NumPy arrays

Example:

    import bpttbench
    res = bpttbench.run(["single", "sliding"], k2=20, steps=20_000, seeds=3, corpus="lag:8")
    res.curves.groupby(["label", "metric"])["value"].min()
    bpttbench.plot_runs(res.path)

The names are imported on first use (PEP 562), so `import bpttbench` stays cheap: Numba,
pandas and matplotlib load only when a function needing them is called. Bad input raises a
bpttbench.errors.UserError whose message names the problem and the fix.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# public name -> the module that defines it
_SOURCES = {
    "TrainConfig": "bpttbench.config",
    "load_corpus": "bpttbench.data.corpus",
    "train": "bpttbench.training.loop",
    "run": "bpttbench.api",
    "load_runs": "bpttbench.api",
    "plot_runs": "bpttbench.plot",
    "build_report": "bpttbench.report",
    "load_weights": "bpttbench.api",
}

__all__ = list(_SOURCES)

if TYPE_CHECKING:  # for type checkers and editors; at run time the names load lazily
    from bpttbench.api import load_runs, load_weights, run
    from bpttbench.config import TrainConfig
    from bpttbench.data.corpus import load_corpus
    from bpttbench.plot import plot_runs
    from bpttbench.report import build_report
    from bpttbench.training.loop import train


def __getattr__(name: str):
    """Import a public name from its module on first use (PEP 562)."""
    if name not in _SOURCES:
        raise AttributeError(f"module 'bpttbench' has no attribute {name!r}")
    value = getattr(importlib.import_module(_SOURCES[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public names too, before they are loaded."""
    return sorted(set(globals()) | set(__all__))

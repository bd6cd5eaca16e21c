"""The Python API behind `bpttbench/__init__.py`: run, load_runs, load_weights, for notebooks.

Each function is the library call a command makes, without the console: nothing prints, there
are no progress bars, and a problem is an exception (a `bpttbench.errors.UserError` for bad
input, with the same one-line message the command would print).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from bpttbench import defaults
from bpttbench.config import parse_duration
from bpttbench.data.corpus import Corpus, load_corpus
from bpttbench.errors import ConfigError, ResultsError
from bpttbench.results import complete_runs, group_curves

# The TrainConfig fields `run` sets through arguments of its own.
_OWN_ARGUMENT = {"scheme": "schemes", "seed": "seeds", "budget_seconds": "budget", "budget_steps": "steps"}


@dataclass
class RunResults:
    """What `run` returns: the run directory, how it ended, each unit's outcome and the curves.

    `units` holds one `runner.UnitResult` per (scheme, seed), in the order trained: its `cfg`
    (a TrainConfig) and `outcome` (status complete or diverged, steps, updates, wall_s, final
    losses). `curves` is `load_runs(path)`: the tidy curves with every configuration column.
    """

    path: Path
    status: str
    units: list = field(default_factory=list)
    curves: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)

    def summary(self) -> pd.DataFrame:
        """One row per configuration, medians over its seeds (the table `bpttbench run` prints)."""
        from bpttbench.training.runner import RunResult

        return pd.DataFrame(RunResult(self.path, self.status, self.units).summary())


def _seed_list(seeds) -> list[int]:
    if isinstance(seeds, numbers.Integral) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ConfigError(f"seeds must be at least 1 (a count) or a list of seeds, got {seeds}")
        return list(range(int(seeds)))
    try:
        chosen = [int(s) for s in seeds]
    except (TypeError, ValueError):
        raise ConfigError(f"seeds must be a count or a list of whole numbers, got {seeds!r}") from None
    if not chosen:
        raise ConfigError("seeds is empty; give a count (3 runs seeds 0, 1, 2) or a list of seeds")
    return list(dict.fromkeys(chosen))


def run(schemes: str | Iterable[str] = defaults.DEFAULT_SCHEMES, *, budget: float | str | None = None, steps: int | None = None,
        seeds: int | Iterable[int] = 1, corpus: str | Path | Corpus | None = None, out: str | Path | None = None,
        force: bool = False, save_weights: bool = False, **settings) -> RunResults:
    """Train every scheme × seed on one corpus, as `bpttbench run` does, and return the results.

    schemes: a name, several, or "all" (every truncated scheme). budget: seconds per (scheme, seed)
    on the configuration's `clock` (CPU time by default), a number or "90s", "2m"; or steps: time
    steps instead (default: a budget of defaults.BUDGET). seeds: a count (3 = seeds 0, 1, 2) or a
    list of seeds. corpus: a built-in name, a generated one ("lag:8"), a text file, or a Corpus
    (default: defaults.CORPUS). out: the run directory, default results/<run-UTC time> under
    the working directory, as on the command line, so `bpttbench plot` and `report` find it;
    pass a temporary directory for throwaway runs. force replaces what is in out already.
    settings: any other TrainConfig field by name (k2=50, clock="wall", delta=0.05, ...), its
    default otherwise; k1 defaults to 1 (chunked and adaptive: k2).

    Nothing is printed. Bad settings raise ConfigError before anything trains; a run interrupted
    (KeyboardInterrupt) or failing keeps its directory, marked as such, and the exception propagates.
    """
    from bpttbench.files import check_out_dir
    from bpttbench.training.runner import check_units_fit, default_out_dir, execute, plan_units

    if budget is not None and steps is not None:
        raise ConfigError("give either budget (seconds) or steps, not both")
    for name in ("scheme", "seed", "budget_seconds", "budget_steps"):
        if name in settings:
            raise ConfigError(f"{name} is set by run's own argument ({_OWN_ARGUMENT[name]}), not as a setting")
    budget_seconds = parse_duration(defaults.BUDGET if budget is None else budget) if steps is None else None
    units = plan_units({**settings, "budget_seconds": budget_seconds, "budget_steps": steps},
                       [schemes] if isinstance(schemes, str) else list(schemes), _seed_list(seeds))
    out_dir = Path(out) if out is not None else default_out_dir()
    check_out_dir(out_dir, force=force)
    text = corpus if isinstance(corpus, Corpus) else load_corpus(None if corpus is None else str(corpus))
    check_units_fit(units, text)
    result = execute(units, text, out_dir, force=force, save_weights=save_weights,
                     extra_manifest={"command": ["bpttbench.run (Python API)"]})
    return RunResults(path=result.path, status=result.status, units=result.units, curves=load_runs(result.path))


def load_runs(*paths: str | Path) -> pd.DataFrame:
    """The curves of every complete run under paths (run, sweep or any folder of runs) as one tidy
    DataFrame: the rows plots and reports use.

    One row per (unit, log point, metric): run_id, corpus, corpus_sha256, every TrainConfig field,
    step, updates, wall_s, metric ("train_bpc": the mean online loss since the previous log point;
    "val_bpc": the validation loss), value, then unit, status, diverged_at_step, diverged, curve
    (one id per seed's curve) and label (the configuration, as in figures). Runs that did not
    complete and units that were interrupted or failed are left out, as are non-finite values and
    anything after a divergence. ResultsError if no complete run is found.
    (For the run directories themselves, manifests included, see `bpttbench.results.read_runs`.)
    """
    complete, skipped = complete_runs(*paths)
    if not complete:
        where = ", ".join(str(p) for p in paths)
        why = f"; e.g. {skipped[0][0]}: {skipped[0][1]}" if skipped else ""
        raise ResultsError(f"no complete runs under {where}{why}; load a run that finished")
    return group_curves(complete)


def load_weights(run_dir: str | Path, scheme: str | None = None, seed: int | None = None,
                 stage: str = "final") -> dict[str, np.ndarray]:
    """A run's saved weights (`run(..., save_weights=True)`) as a state dict of NumPy arrays, keyed
    as saved: the keys of bpttbench.torch's model of the run's cell (CharLSTM: `lstm.weight_ih_l0`, ...,
    `decoder.weight`; CharGRU: `gru.…`; CharRNN: `rnn.…`), so its `load_state_dict({k: torch.from_numpy(v) ...})`
    takes them. scheme and seed may be left out
    when only one fits; stage is "final" or "init". ResultsError if they are missing or diverged."""
    from bpttbench.weights import choose_weights, read_arrays

    return read_arrays(choose_weights(Path(run_dir), scheme, seed, stage).path)

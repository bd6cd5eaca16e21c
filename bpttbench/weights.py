"""A run's saved weights: which (scheme, seed) a run directory has, and reading one with its vocabulary.

`bpttbench run --save-weights` writes weights/<scheme>-seed<N>-init.npz and -final.npz (state
dicts, model.py) and vocab.json (the characters, id order). `bpttbench sample` and
bpttbench.torch.CharModel.from_run (and CharLSTM, CharGRU, CharRNN) find their weights here, so they refuse the same way.
"""

from __future__ import annotations

import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bpttbench.errors import ResultsError
from bpttbench.results import VOCAB, WEIGHTS_DIR

STAGES = ("init", "final")
_NAME = re.compile(r"^(?P<scheme>.+)-seed(?P<seed>\d+)-(?P<stage>init|final)\.npz$")


@dataclass(frozen=True)
class SavedWeights:
    path: Path
    scheme: str
    seed: int
    stage: str  # init or final

    def describe(self) -> str:
        return f"{self.scheme} seed {self.seed}"


def saved_weights(run_dir: Path, stage: str = "final") -> list[SavedWeights]:
    """Every weights file of `stage` in run_dir, sorted by scheme and seed; a one-line error if none."""
    run_dir = Path(run_dir)
    if stage not in STAGES:
        raise ResultsError(f"weights stage must be one of {', '.join(STAGES)}, got {stage!r}")
    if not run_dir.is_dir():
        raise ResultsError(f"no run directory at {run_dir}; give a directory written by `bpttbench run`")
    found = []
    folder = run_dir / WEIGHTS_DIR
    for path in sorted(folder.glob("*.npz")) if folder.is_dir() else []:
        match = _NAME.match(path.name)
        if match and match["stage"] == stage:
            found.append(SavedWeights(path, match["scheme"], int(match["seed"]), stage))
    if not found:
        raise ResultsError(f"{run_dir} has no saved {stage} weights; run again with `bpttbench run --save-weights`")
    return sorted(found, key=lambda w: (w.scheme, w.seed))


def choose_weights(run_dir: Path, scheme: str | None = None, seed: int | None = None,
                   stage: str = "final") -> SavedWeights:
    """The one weights file matching scheme and seed (either may be left out when only one fits)."""
    available = saved_weights(run_dir, stage)
    fits = [w for w in available if (scheme is None or w.scheme == scheme) and (seed is None or w.seed == seed)]
    if len(fits) == 1:
        return fits[0]
    choices = ", ".join(w.describe() for w in available)
    if not fits:
        wanted = " ".join(part for part in (scheme and f"scheme {scheme}", seed is not None and f"seed {seed}") if part)
        raise ResultsError(f"{run_dir} has no {stage} weights for {wanted}; it has: {choices}")
    raise ResultsError(f"{run_dir} has {stage} weights for {choices}; choose one with --scheme and --seed")


def read_vocab(run_dir: Path) -> list[str]:
    """The run's vocabulary (characters in id order) from vocab.json."""
    path = Path(run_dir) / VOCAB
    try:
        chars = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResultsError(f"{run_dir} has no {VOCAB}; run again with `bpttbench run --save-weights`") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsError(f"could not read {path}: {exc}; run again with `bpttbench run --save-weights`") from None
    if not (isinstance(chars, list) and all(isinstance(c, str) and len(c) == 1 for c in chars)):
        raise ResultsError(f"{path} is not a list of characters; run again with `bpttbench run --save-weights`")
    return chars


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a weights .npz, by key; a one-line error if it cannot be read."""
    try:
        with np.load(path) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ResultsError(f"could not read weights {path}: {exc}") from None
    for key, array in arrays.items():
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise ResultsError(f"weights {path} hold non-finite values in {key} (the run diverged); "
                               "choose another scheme or seed")
    return arrays

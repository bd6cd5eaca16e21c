"""The grid: a spec's points (configuration × seed), their ids, and the plan a sweep runs.

The grid is the product of schemes, parameter values and seeds, built in two steps: first the
configurations (every field but the seed; as few as the product of the parameter axes), then
one point per configuration and seed. Everything that does not depend on the seed (TrainConfig's
checks, the corpus and memory checks, the size limit) is decided on the configurations, so a spec
with a million seeds is checked, counted and refused without a million of anything.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Iterator, Sequence

from bpttbench.config import TrainConfig, config_from, format_duration
from bpttbench.defaults import TRAIN
from bpttbench.scheme_names import UNTRUNCATED_SCHEMES, effective_k2, resolve_k1
from bpttbench.defaults import MAX_GRID_POINTS
from bpttbench.errors import ConfigError
from bpttbench.sweep.spec import SpecError, SweepSpec

# Up to this many parameter combinations, an oversized grid is counted exactly (each checked by
# TrainConfig, a few microseconds each); beyond it the limit is held against the plain product.
EXACT_COUNT_COMBINATIONS = 10_000


@dataclass(frozen=True)
class GridPoint:
    id: str
    cfg: TrainConfig


def point_id(cfg: TrainConfig, corpus_sha256: str) -> str:
    """A readable prefix, then a hash of everything that defines the run: configuration and corpus."""
    return _point_id(cfg, cfg.to_dict(), corpus_sha256)


def _point_id(cfg: TrainConfig, fields: dict, corpus_sha256: str) -> str:
    blob = json.dumps({"config": fields, "corpus_sha256": corpus_sha256}, sort_keys=True)
    digest = hashlib.sha256(blob.encode("utf-8")).hexdigest()[:12]
    return f"{cfg.scheme}-k1={cfg.k1}-k2={cfg.k2}-seed{cfg.seed}-{digest}"


def _combinations(spec: SweepSpec) -> Iterator[tuple[str, dict]]:
    """(scheme, parameter values) for every combination of the axes, schemes outermost."""
    names = list(spec.parameters)
    for scheme in spec.schemes:
        for combo in itertools.product(*(spec.parameters[n] for n in names)):
            yield scheme, dict(zip(names, combo))


def configurations(spec: SweepSpec) -> tuple[list[TrainConfig], list[str]]:
    """Every distinct configuration TrainConfig accepts, with the spec's first seed; and why the
    others were refused (counted per run, seeds included). SpecError when none is accepted."""
    base = {"budget_seconds": spec.budget_seconds, "budget_steps": spec.budget_steps, "seed": spec.seeds[0]}
    configs: dict[TrainConfig, None] = {}
    refused: dict[str, int] = {}
    for scheme, values in _combinations(spec):
        k2 = values.get("k2", TRAIN.k2)
        values["k1"] = resolve_k1(scheme, values.get("k1"), k2, TRAIN.k1)
        values["k2"] = effective_k2(scheme, k2)  # one configuration per untruncated scheme however many k2
        try:
            configs.setdefault(config_from({**base, **values, "scheme": scheme}))
        except ConfigError as exc:
            refused[str(exc)] = refused.get(str(exc), 0) + len(spec.seeds)
    if not configs:
        why = f": every combination is refused, e.g. {next(iter(refused))}" if refused else ""
        raise SpecError(f"{spec.source}: the grid is empty{why}")
    return list(configs), [f"{n} × {reason}" if n > 1 else reason for reason, n in refused.items()]


def budget_text(runs: int, spec: SweepSpec) -> str:
    """`24 runs × 5s = 2m00s of training`, or the same in steps."""
    if spec.budget_seconds is not None:
        return f"{runs:,} runs × {format_duration(spec.budget_seconds)} = {format_duration(runs * spec.budget_seconds)} of training"
    return f"{runs:,} runs × {spec.budget_steps:,} steps = {runs * spec.budget_steps:,} steps"


def check_grid_size(spec: SweepSpec) -> None:
    """SpecError if the grid has more than MAX_GRID_POINTS runs, decided from the axes' lengths.

    The count is the product of the axes (each untruncated scheme counted once across k2), less the
    combinations TrainConfig refuses when there are few enough to check; otherwise it is an
    upper bound and the message says "at most".
    """
    lengths = [len(v) for v in spec.parameters.values()]
    without_k2 = [len(v) for k, v in spec.parameters.items() if k != "k2"]
    upper = sum(math.prod(without_k2 if s in UNTRUNCATED_SCHEMES else lengths) for s in spec.schemes)
    seeds = len(spec.seeds)
    if upper * seeds <= MAX_GRID_POINTS:
        return
    exact = len(spec.schemes) * math.prod(lengths) <= EXACT_COUNT_COMBINATIONS
    count = len(configurations(spec)[0]) if exact else upper
    if count * seeds <= MAX_GRID_POINTS:
        return
    at_most = "" if exact else "at most "
    configurations_text = f"{count:,} configuration{'s' * (count != 1)} × {seeds:,} seed{'s' * (seeds != 1)}"
    raise SpecError(f"{spec.source}: the grid has {at_most}{budget_text(count * seeds, spec)} ({at_most}{configurations_text}), "
                    f"more than the limit of {MAX_GRID_POINTS:,} runs in one sweep; "
                    "use fewer seeds or parameter values, or split the grid into several sweeps")


def _iter_points(configs: list[TrainConfig], seeds: Sequence[int], corpus_sha256: str) -> Iterator[GridPoint]:
    """Configurations outermost, seeds innermost."""
    for cfg in configs:
        fields = cfg.to_dict()
        for seed in seeds:
            seeded = dataclasses.replace(cfg, seed=seed)
            fields["seed"] = seed
            yield GridPoint(_point_id(seeded, fields, corpus_sha256), seeded)


def expand_grid(spec: SweepSpec, corpus_sha256: str) -> tuple[list[GridPoint], list[str]]:
    """The grid points, schemes outermost and seeds innermost; and why left-out combinations were refused."""
    check_grid_size(spec)
    configs, refused = configurations(spec)
    return list(_iter_points(configs, spec.seeds, corpus_sha256)), refused


@dataclass
class SweepPlan:
    """A grid on a corpus, checked. Its points are built on first use: counting needs only the configurations."""

    spec: SweepSpec
    corpus: Any  # bpttbench.data.corpus.Corpus
    configs: list[TrainConfig]
    refused: list[str]

    @property
    def count(self) -> int:
        return len(self.configs) * len(self.spec.seeds)

    def iter_points(self) -> Iterator[GridPoint]:
        """The points one by one, for listing a large grid without holding it."""
        if "points" in self.__dict__:
            return iter(self.points)
        return _iter_points(self.configs, self.spec.seeds, self.corpus.sha256)

    @cached_property
    def points(self) -> list[GridPoint]:
        return list(self.iter_points())

    def total_budget(self) -> str:
        return budget_text(self.count, self.spec)


def plan_sweep(spec: SweepSpec, corpus) -> SweepPlan:
    """The grid on this corpus; refuses a grid past the size limit, and a corpus or memory too small for any run."""
    from bpttbench.training.runner import check_units_fit

    check_grid_size(spec)
    configs, refused = configurations(spec)
    try:  # the seed changes neither the corpus nor the memory a run needs: each configuration once
        check_units_fit(configs, corpus)
    except ConfigError as exc:  # rtrl's memory: refuse the grid before any run starts
        raise SpecError(f"{spec.source}: {exc}") from None
    return SweepPlan(spec, corpus, configs, refused)

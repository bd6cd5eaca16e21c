"""Training configuration: one frozen dataclass, its defaults in one place, validated on creation.

Every run's manifest records `TrainConfig.to_dict()`, and `TrainConfig.from_dict()` reads it back.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, fields

from bpttbench.errors import ConfigError
from bpttbench.scheme_names import CHUNK_SCHEMES, SCHEME_NAMES, TRUNCATED_SCHEMES, UNTRUNCATED_SCHEMES  # noqa: F401 (re-exported)
from bpttbench.scheme_names import CELL_NAMES, DEFAULT_CELL, cells_of

# UNTRUNCATED_SCHEMES have no truncation: the gradient of each step's loss through the whole past, exact
# (rtrl), an unbiased rank-one estimate (uoro), or a structurally sparse approximation (snap1,
# eprop). They update every k1 steps and do not use k2 (any k2 >= 1 is accepted, so grids over k2
# run them unchanged); inject must be `new`.

INJECTS = ("new", "window")
# What a time budget and every time axis count: the training thread's CPU time, which other load on the
# machine barely moves, or the wall clock, which shows what a user waits for but stretches under load.
CLOCKS = ("cpu", "wall")
# Fields a manifest written before they existed lacks, with the value such a run had in effect.
LEGACY_VALUES = {"clock": "wall", "cell": DEFAULT_CELL}
OPTIMIZERS = ("sgd", "adam")
DTYPES = ("float32", "float64")

# Beyond this the LSTM's weights alone no longer fit comfortably in this machine's memory.
MAX_HIDDEN = 8192


def setting(default, help: str, *, choices: tuple[str, ...] | None = None, option: bool = True):
    """A TrainConfig field: its default, its help, its choices, and whether commands offer it as an
    option named after it (`--k-max` for k_max). The CLI's options, the API's keywords and the sweep
    spec's parameters are all made from these fields (see `options`), so a new field is added here only."""
    return field(default=default, metadata={"help": help, "choices": choices, "option": option})


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of one training run (one scheme, one seed), each field once; `validate` checks them."""

    scheme: str = setting("single", "The learning rule.", choices=SCHEME_NAMES, option=False)
    cell: str = setting(DEFAULT_CELL, "The recurrent cell, as torch.nn's LSTM, GRU or (tanh) RNN.", choices=CELL_NAMES)
    k1: int = setting(1, "Steps between updates (chunked and adaptive: their chunk, k2).")
    k2: int = setting(20, "Steps each update backpropagates through.")
    inject: str = setting("new", "Losses backpropagated: the newest k1 (Williams & Peng) or the whole window (Sutskever).",
                          choices=INJECTS)
    hidden: int = setting(128, "Hidden units.")
    batch: int = setting(1, "Parallel streams (1 = online, the question's setting).")
    optimizer: str = setting("adam", "The optimiser.", choices=OPTIMIZERS)
    # Adam at 2e-3 is the char-rnn default; the same for every scheme, so comparisons are fair.
    lr: float = setting(2e-3, "Learning rate.")
    # Online updates at k2 = 50 diverged without it (Adam 2e-3 on stdlib-docs); the same for every scheme.
    clip: float = setting(1.0, "Global gradient-norm clip (0 = off).")
    dtype: str = setting("float32", "Floating-point type of weights and activations.", choices=DTYPES)
    seed: int = setting(0, "Seed of the initial weights (and of uoro's random signs).", option=False)
    budget_seconds: float | None = setting(None, "Seconds of training on `clock` (compile and eval excluded).",
                                           option=False)
    budget_steps: int | None = setting(None, "Or a number of time steps.", option=False)
    # cpu by default everywhere: a budget then buys the same work on a busy machine as on a quiet one, and
    # curves over time from two machines' loads compare (the wall time is recorded beside it).
    clock: str = setting("cpu", "What budgets and time axes count: the training thread's CPU time (steady under "
                                "other load) or wall time.", choices=CLOCKS)
    log_every: int = setting(1000, "Steps between log points of the mean online loss.")
    eval_every: int = setting(20000, "Steps between validation evaluations (0 = only at the end).")
    # Read as parallel streams from a zero state with a burn-in (kernels/evaluate.py; defaults.EVAL_*).
    eval_chars: int = setting(0, "Validation characters per evaluation (0 = the whole split).")
    # `adaptive` only (Aicher, Foti & Fox 2019). delta = 0.1 and k_max = 300 are the defaults of the
    # authors' language-model script (MAX_K there); the interval is ours: they re-estimate per training
    # epoch, a unit an online run does not have.
    delta: float = setting(0.1, "adaptive: tolerated relative gradient bias.")
    k_max: int = setting(300, "adaptive: longest truncation, and the estimate's length.")
    adapt_every: int = setting(100, "adaptive: updates between re-estimates of k2.")

    def __post_init__(self) -> None:
        validate(self)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        """A configuration as a manifest recorded it (fields it predates take LEGACY_VALUES)."""
        return config_from({**{k: v for k, v in LEGACY_VALUES.items() if k not in data}, **data},
                           what="configuration key")

    def replace(self, **changes) -> "TrainConfig":
        return TrainConfig(**{**self.to_dict(), **changes})

    @property
    def np_dtype(self):
        import numpy as np

        return np.dtype(self.dtype)


# The fields a command offers as options named after them (the others: scheme, seed and the budget,
# which each command sets its own way), in the table's order; and each one's kind.
OPTION_FIELDS = tuple(f.name for f in fields(TrainConfig) if f.metadata["option"])
FIELD_KINDS = {f.name: (f.metadata["choices"] or {"int": int, "float": float, "str": str}[str(f.type)])
               for f in fields(TrainConfig) if f.metadata["option"]}


def field_help(name: str) -> str:
    return next(f.metadata["help"] for f in fields(TrainConfig) if f.name == name)


def config_from(settings: dict, *, what: str = "setting") -> TrainConfig:
    """The one way every entry point builds a TrainConfig from a user's settings: unknown names are
    refused with the known ones, missing ones take the table's defaults, and the result is validated."""
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ConfigError(f"unknown {what}{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                          f"known: {', '.join(sorted(known))}")
    return TrainConfig(**settings)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def validate(cfg: TrainConfig) -> None:
    """Raise ConfigError naming the first problem with cfg and how to fix it."""
    if cfg.scheme not in SCHEME_NAMES:
        raise ConfigError(f"unknown scheme {cfg.scheme!r}; choose one of {', '.join(SCHEME_NAMES)}")
    if cfg.cell not in CELL_NAMES:
        raise ConfigError(f"unknown cell {cfg.cell!r}; choose one of {', '.join(CELL_NAMES)}")
    if cfg.cell not in cells_of(cfg.scheme):
        others = [name for name in SCHEME_NAMES if cfg.cell in cells_of(name)]
        raise ConfigError(f"{cfg.scheme} is derived for the {' and '.join(cells_of(cfg.scheme))} cell only, not {cfg.cell}; "
                          f"use --cell {cells_of(cfg.scheme)[0]}, or for a {cfg.cell} one of {', '.join(others)}")
    for name in ("k1", "k2", "hidden", "batch", "log_every", "eval_chars", "seed", "eval_every", "k_max",
                 "adapt_every"):
        if not _is_int(getattr(cfg, name)):
            raise ConfigError(f"{name} must be a whole number, got {getattr(cfg, name)!r}")
    if cfg.k2 < 1:
        raise ConfigError(f"k2 must be at least 1, got {cfg.k2}; it is how many steps each update backpropagates through")
    if cfg.k1 < 1:
        raise ConfigError(f"k1 must be at least 1, got {cfg.k1}; it is how many steps pass between updates")
    online = cfg.scheme in UNTRUNCATED_SCHEMES
    if cfg.k1 > cfg.k2 and not online:
        raise ConfigError(f"k1={cfg.k1} is larger than k2={cfg.k2}; steps between updates would get no gradient: use k1 <= k2")
    if cfg.scheme in CHUNK_SCHEMES and cfg.k1 != cfg.k2:
        raise ConfigError(f"{cfg.scheme} needs k1 == k2 (got k1={cfg.k1}, k2={cfg.k2}); set both to the chunk length")
    if not _is_real(cfg.delta) or not 0 < cfg.delta < 1:
        raise ConfigError(f"delta must be a number between 0 and 1 (the tolerated relative gradient bias), got {cfg.delta!r}")
    if cfg.adapt_every < 1:
        raise ConfigError(f"adapt_every must be at least 1 update, got {cfg.adapt_every}")
    if cfg.k_max < 2:
        raise ConfigError(f"k_max must be at least 2 (the longest truncation adaptive may choose), got {cfg.k_max}")
    if cfg.inject not in INJECTS:
        raise ConfigError(f"unknown inject {cfg.inject!r}; choose 'new' (the newest k1 losses) or 'window' (all k2)")
    if online and cfg.inject != "new":
        raise ConfigError(f"{cfg.scheme} has no window to inject losses from; use inject='new' (the newest k1 losses)")
    if not 1 <= cfg.hidden <= MAX_HIDDEN:
        raise ConfigError(f"hidden must be between 1 and {MAX_HIDDEN}, got {cfg.hidden}")
    if cfg.batch < 1:
        raise ConfigError(f"batch must be at least 1, got {cfg.batch}")
    if cfg.optimizer not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {cfg.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
    if not _is_real(cfg.lr) or not math.isfinite(cfg.lr) or cfg.lr < 0:
        raise ConfigError(f"learning rate must be a finite number >= 0, got {cfg.lr!r}")
    if not _is_real(cfg.clip) or not math.isfinite(cfg.clip) or cfg.clip < 0:
        raise ConfigError(f"clip must be a finite number >= 0 (0 turns clipping off), got {cfg.clip!r}")
    if cfg.dtype not in DTYPES:
        raise ConfigError(f"unknown dtype {cfg.dtype!r}; choose float32 or float64")
    if cfg.seed < 0:
        raise ConfigError(f"seed must be >= 0, got {cfg.seed}")
    if cfg.clock not in CLOCKS:
        raise ConfigError(f"unknown clock {cfg.clock!r}; choose cpu (the training thread's CPU time) or wall")
    if cfg.budget_seconds is None and cfg.budget_steps is None:
        raise ConfigError("no budget given: set budget_seconds or budget_steps")
    if cfg.budget_seconds is not None:
        if not _is_real(cfg.budget_seconds) or not math.isfinite(cfg.budget_seconds) or cfg.budget_seconds <= 0:
            raise ConfigError(f"the time budget must be a positive number of seconds, got {cfg.budget_seconds!r}")
    if cfg.budget_steps is not None:
        if not _is_int(cfg.budget_steps) or cfg.budget_steps <= 0:
            raise ConfigError(f"the step budget must be a positive whole number, got {cfg.budget_steps!r}")
    if cfg.log_every < 1:
        raise ConfigError(f"log_every must be at least 1 step, got {cfg.log_every}")
    if cfg.eval_every < 0:
        raise ConfigError(f"eval_every must be >= 0 steps (0 = evaluate only at the end), got {cfg.eval_every}")
    if cfg.eval_chars < 0 or cfg.eval_chars == 1:
        raise ConfigError(f"eval_chars must be 0 (the whole validation split) or at least 2, got {cfg.eval_chars}")


_DURATION_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}
# What format_duration prints (1h02m03s, 1m30s), and the like: hours, minutes, seconds, each optional.
_COMPOUND_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?")


def parse_duration(text) -> float:
    """Seconds from `90`, `90s`, `2m`, `1.5h`, `1m30s`, `1h02m03s`; ConfigError naming the accepted forms otherwise."""
    raw = str(text).strip().lower()
    number, unit = raw, ""
    if raw and raw[-1] in "smh":
        number, unit = raw[:-1], raw[-1]
    try:
        seconds = float(number) * _DURATION_UNITS[unit]
    except ValueError:
        parts = _COMPOUND_DURATION.fullmatch(raw)
        if not raw or not parts:
            raise ConfigError(f"cannot read {text!r} as a duration; write seconds like 90 or 90s, or 2m, 1m30s, 1h") from None
        hours, minutes, secs = (float(p) if p else 0.0 for p in parts.groups())
        seconds = hours * 3600 + minutes * 60 + secs
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"the time budget must be positive, got {text!r}; write e.g. 90s or 2m")
    return seconds


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"

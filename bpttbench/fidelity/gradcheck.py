"""gradcheck: follow one scheme's real trajectory and, every few updates, measure how far the
gradients single and stored would use are from the exact window gradient (bpttbench.fidelity.gradients).

The trajectory followed is one scheme's own (FOLLOWABLE): between checkpoints it advances in one
JIT call (scheme.run); only in the k2 steps before a checkpoint does Python step it one update
period at a time, copying W_hh and the decoder (the only weights a backward pass reads) after each
update, so that g_stored can be formed whichever scheme is followed.

Following rtrl, snap1 or eprop also compares every gradient with rtrl's untruncated one, and
measures how well each online rule (snap1, eprop, uoro) approximates it: the rules not followed
run as shadows (Shadows), which carry their own traces over the same inputs with the followed
scheme's weights, so that at a checkpoint each gives the gradient it would apply at that point of
the followed trajectory. The trajectory then advances one update period at a time throughout.

Writes, in its output folder, gradcheck.csv (tidy: one row per trajectory, checkpoint, estimator
and tensor; rewritten after every trajectory), gradcheck.json (settings, machine, status through
files.Manifest, the finite-difference verdict and a summary) and two figures.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from bpttbench import defaults
from bpttbench.config import TrainConfig, config_from
from bpttbench.data.corpus import check_corpus_fits
from bpttbench.errors import BpttbenchError, ConfigError
from bpttbench.fidelity.gradients import (
    ESTIMATORS,
    FD_STEP,
    FD_TOLERANCE,
    RTRL_APPROXIMATIONS,
    RTRL_ESTIMATORS,
    WindowGradients,
    central_differences,
    exact_gradient,
    fd_subset,
    metric_rows,
    next_window,
    truncated_gradients,
    weight_drift,
    window_objective,
)
from bpttbench.files import Manifest, atomic_write, clear_dir
from bpttbench.kernels.network import param_views
from bpttbench.model import init_theta
from bpttbench.schemes import make_scheme

FOLLOWABLE = defaults.GRADCHECK_FOLLOWS
# Followed, these run rtrl and the other online rules as shadows.
WITH_SHADOWS = ("rtrl", "snap1", "eprop")
LN2 = math.log(2.0)

CSV_NAME = "gradcheck.csv"
MANIFEST_NAME = "gradcheck.json"
FIGURE_STEMS = ("gradcheck_error_vs_step", "gradcheck_error_vs_k2")
# The trajectory's configuration, then what one checkpoint measured.
CONFIG_COLUMNS = ("corpus", "scheme", "k1", "k2", "inject", "hidden", "batch", "dtype", "optimizer", "lr", "clip")
COLUMNS = CONFIG_COLUMNS + ("seed", "step", "updates", "train_bpc", "drift", "tensor", "estimator", "cosine",
                            "rel_error")
_AGAINST_RTRL = (0, (5, 1.5, 1, 1.5))
_RULE_VS_RTRL = (0, (3, 1.2))
# (colour, line style, legend): each gradient in its scheme's colour (the exact one in sliding's, which
# computes it); against rtrl's gradient in a line style of its own.
ESTIMATOR_STYLE = {
    "single": (defaults.SCHEME_COLORS["single"], "-", "single vs exact"),
    "stored": (defaults.SCHEME_COLORS["stored"], "--", "stored vs exact"),
    "single_vs_stored": (defaults.OTHER_COLORS[1], "-.", "single vs stored"),
    "exact_vs_fd": (defaults.FD_COLOR, ":", "exact vs finite differences"),
    "single_vs_rtrl": (defaults.SCHEME_COLORS["single"], _AGAINST_RTRL, "single vs rtrl"),
    "stored_vs_rtrl": (defaults.SCHEME_COLORS["stored"], _AGAINST_RTRL, "stored vs rtrl"),
    "exact_vs_rtrl": (defaults.SCHEME_COLORS["sliding"], _AGAINST_RTRL, "exact (sliding) vs rtrl"),
    **{f"{rule}_vs_rtrl": (defaults.SCHEME_COLORS[rule], _RULE_VS_RTRL,
                           f"{rule} vs rtrl" + (" (one sample)" if rule == "uoro" else ""))
       for rule in RTRL_APPROXIMATIONS},
}
_NOT_FOLLOWABLE = f"gradcheck follows {', '.join(FOLLOWABLE[:-1])} or {FOLLOWABLE[-1]}"


class GradientCheckError(BpttbenchError):
    """The exact gradient disagreed with finite differences: a bug, not the user's fault (exit 1)."""


# ----------------------------------------------------------------------------- following a trajectory


@dataclass
class Checkpoint:
    """The followed trajectory after `updates` updates (`step` time steps), and its next window's gradients."""

    step: int
    updates: int
    train_bpc: float  # mean online loss since the previous checkpoint, bits/char
    gradients: WindowGradients
    scheme: object  # the followed scheme at this point (do not advance it)
    past_weights: dict  # update count u -> (W_hh, W_dec) that forwarded steps u*k1+1 .. (u+1)*k1


def _snapshot(scheme) -> tuple[np.ndarray, np.ndarray]:
    views = param_views(scheme.theta, scheme.V, scheme.H)
    return views[1].copy(), views[4].copy()


class Shadows:
    """Online rules that follow another scheme's trajectory: the same inputs, that scheme's weights.

    Each carries its own traces (sensitivities, eligibility traces, uoro's projections) but never
    its own weights: before every update period they hold the followed scheme's theta, and their
    updates change nothing (sgd at lr 0), so at a checkpoint gradient_for_next_update() is the
    gradient each rule would apply at that point of the followed trajectory.
    """

    def __init__(self, cfg: TrainConfig, theta: np.ndarray, vocab_size: int, train_ids: np.ndarray):
        names = [n for n in ("rtrl",) + RTRL_APPROXIMATIONS if n != cfg.scheme] if cfg.scheme in WITH_SHADOWS else []
        self.schemes = {n: make_scheme(cfg.replace(scheme=n, optimizer="sgd", lr=0.0, clip=0.0), theta, vocab_size,
                                       train_ids) for n in names}

    def __bool__(self) -> bool:
        return bool(self.schemes)

    def run(self, theta: np.ndarray, k1: int) -> None:
        """One update period of every shadow with these weights."""
        for shadow in self.schemes.values():
            shadow.theta[:] = theta
            shadow.run(k1, np.empty(k1))

    def gradients(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """name -> the gradient that rule would apply at its next update, with these weights."""
        out = {}
        for name, shadow in self.schemes.items():
            shadow.theta[:] = theta
            out[name] = shadow.gradient_for_next_update()
        return out


def _online_gradients(scheme, shadows: Shadows) -> tuple[np.ndarray | None, dict[str, np.ndarray]]:
    """(rtrl's gradient or None, rule -> its gradient) at the followed scheme's next update."""
    grads = shadows.gradients(scheme.theta)
    if scheme.name in WITH_SHADOWS:
        grads[scheme.name] = scheme.gradient_for_next_update()
    online = {rule: grads[rule] for rule in RTRL_APPROXIMATIONS if rule in grads}
    return grads.get("rtrl"), online


class Follower:
    """The followed trajectory: a Scheme (and its Shadows) plus the past weights its next window needs."""

    def __init__(self, cfg: TrainConfig, train_ids: np.ndarray, vocab_size: int, theta: np.ndarray | None = None):
        if cfg.scheme not in FOLLOWABLE:
            raise ConfigError(f"{_NOT_FOLLOWABLE}, not {cfg.scheme!r}; choose one of those with --scheme")
        theta = init_theta(vocab_size, cfg.hidden, cfg.seed, cfg.dtype, cfg.cell) if theta is None else theta.astype(cfg.dtype)
        self.scheme = make_scheme(cfg, theta, vocab_size, train_ids)
        self.shadows = Shadows(cfg, theta, vocab_size, train_ids)
        self.past_weights = {0: _snapshot(self.scheme)}  # update count -> (W_hh, W_dec) after it
        self.diverged_at: int | None = None
        self._loss_sum, self._loss_count = 0.0, 0

    def _run(self, n: int, losses: np.ndarray) -> int:
        """scheme.run, or with shadows one update period at a time, each shadow first with the weights of that period."""
        if not self.shadows:
            return self.scheme.run(n, losses)
        k1, done = self.scheme.k1, 0
        while done < n:
            self.shadows.run(self.scheme.theta, k1)
            period = self.scheme.run(k1, losses[done : done + k1])
            done += period
            if period < k1:
                break
        return done

    def _advance(self, n: int) -> bool:
        if n <= 0:
            return True
        losses = np.empty(n)
        done = self._run(n, losses)
        self._loss_sum += float(losses[:done].sum())
        self._loss_count += done
        if done < n:
            self.diverged_at = self.scheme.t
            return False
        return True

    def checkpoints(self, updates: Sequence[int]) -> Iterator[Checkpoint]:
        scheme = self.scheme
        k1, k2 = scheme.k1, scheme.k2
        for target in sorted(set(int(u) for u in updates)):
            if target < scheme.updates:
                continue
            first = max(1, target * k1 + k1 - k2 + 1)
            oldest = (first - 1) // k1  # the update whose weights forwarded the window's first step
            if scheme.updates < oldest:  # the hot path: one JIT call
                if not self._advance(oldest * k1 - scheme.t):
                    return
                self.past_weights = {scheme.updates: _snapshot(scheme)}
            while scheme.updates < target:  # the last k2 steps: one update period at a time
                if not self._advance(k1):
                    return
                self.past_weights[scheme.updates] = _snapshot(scheme)
            self.past_weights = {u: w for u, w in self.past_weights.items() if u >= oldest}
            window = next_window(scheme)
            single, stored = truncated_gradients(scheme, window, self.past_weights)
            exact = exact_gradient(scheme, window)
            rtrl, online = _online_gradients(scheme, self.shadows)
            grads = WindowGradients(window, single, stored, exact, scheme.theta.copy(),
                                    weight_drift(scheme, window, self.past_weights), rtrl, online)
            bpc = self._loss_sum / self._loss_count / LN2 if self._loss_count else float("nan")
            self._loss_sum, self._loss_count = 0.0, 0
            yield Checkpoint(scheme.t, scheme.updates, bpc, grads, scheme, self.past_weights)


# ----------------------------------------------------------------------------- the command's library side


@dataclass
class GradcheckResult:
    data: pd.DataFrame  # tidy: one row per (trajectory, checkpoint, estimator, tensor)
    paths: list[Path] = field(default_factory=list)
    fd_worst: float = float("nan")  # largest exact-vs-FD relative error (whole subset) over every checkpoint
    fd_worst_at: dict | None = None  # where it happened
    trajectories: list[dict] = field(default_factory=list)  # per (k2, lr): status, steps, diverged_at
    fd_requested: bool = True  # False when n_fd = 0
    fd_comparisons: int = 0  # checkpoints where the finite-difference check ran

    @property
    def fd_checked(self) -> bool:
        return self.fd_comparisons > 0

    @property
    def fd_passed(self) -> bool:
        """True when at every checkpoint g_exact agreed with finite differences to FD_TOLERANCE on the whole subset.

        The per-tensor rows are reported but do not decide: in a saturated network a tensor's
        sampled entries can be ~1e-10, where float64 rounding in the loss (~1e-13 / h) alone
        makes a relative error of 1e-4 without anything being wrong.
        """
        return self.fd_checked and self.fd_worst < FD_TOLERANCE

    def summary(self) -> pd.DataFrame:
        return summarize(self.data)

    def record_fd(self, rows: list[dict], where: dict) -> None:
        """Take in one checkpoint's whole-subset finite-difference row, if it has one (see fd_passed)."""
        for r in rows:
            if r["estimator"] != "exact_vs_fd" or r["tensor"] != "all":
                continue
            err = r["rel_error"] if np.isfinite(r["rel_error"]) else float("inf")  # never a pass
            self.fd_comparisons += 1
            if not err <= self.fd_worst:
                self.fd_worst = err
                self.fd_worst_at = where

    def raise_if_failed(self) -> None:
        """GradientCheckError if the finite-difference check was asked for and did not pass."""
        if not self.fd_requested:
            return
        if not self.fd_checked:
            raise GradientCheckError("the finite-difference check never ran: no trajectory reached a checkpoint "
                                     "(did they diverge?); lower --lr, raise --steps or lower --every")
        if not self.fd_passed:
            at = self.fd_worst_at or {}
            where = ", ".join(f"{k}={v}" for k, v in at.items())
            raise GradientCheckError(
                f"the exact window gradient disagrees with finite differences: relative error {self.fd_worst:.3g} "
                f"> {FD_TOLERANCE:g} at {where}; if that trajectory's loss blew up, lower --lr, "
                "otherwise the backward pass is wrong: report it")


def summarize(data: pd.DataFrame, tensor: str = "all") -> pd.DataFrame:
    """Median (and max) over checkpoints of each estimator's error, per trajectory."""
    keys = ["scheme", "k1", "k2", "optimizer", "lr", "estimator"]
    rows = data[data["tensor"] == tensor]
    if rows.empty:
        return pd.DataFrame(columns=keys + ["checkpoints", "rel_error_median", "rel_error_max", "cosine_median",
                                            "cosine_min", "drift_median"])
    grouped = rows.groupby(keys, sort=False)
    out = grouped.agg(
        checkpoints=("step", "size"),
        rel_error_median=("rel_error", "median"),
        rel_error_max=("rel_error", "max"),
        cosine_median=("cosine", "median"),
        cosine_min=("cosine", "min"),
        drift_median=("drift", "median"),
    ).reset_index()
    return out


def default_out_dir(root: Path = Path("results")) -> Path:
    """results/gradcheck-<UTC time>, with a suffix if that exists already."""
    from bpttbench.training.runner import default_out_dir as timestamped

    return timestamped(root, prefix="gradcheck")


def _write_csv(data: pd.DataFrame, path: Path) -> None:
    atomic_write(path, lambda f: data.to_csv(f, index=False, float_format="%.10g"))


class GradcheckObserver:
    """What gradcheck reports as it goes; every method optional."""

    def trajectory_started(self, index: int, total: int, cfg: TrainConfig) -> None: ...

    def checkpoint(self, index: int, cfg: TrainConfig, step: int, rows: list[dict]) -> None: ...

    def trajectory_finished(self, index: int, cfg: TrainConfig, info: dict) -> None: ...


def _plan(k2s: Sequence[int], lrs: Sequence[float], every: int, n_fd: int, fd_step: float, steps: int,
          settings: dict) -> tuple[list[TrainConfig], list[int]]:
    """(one validated TrainConfig per (k2, lr), the update counts to check at); ConfigError if unusable."""
    scheme = settings["scheme"]
    if scheme not in FOLLOWABLE:
        raise ConfigError(f"{_NOT_FOLLOWABLE}, not {scheme!r}; choose one of those with --scheme")
    k2s = list(dict.fromkeys(int(k) for k in k2s))
    lrs = list(dict.fromkeys(float(lr) for lr in lrs))
    if not k2s or not lrs:
        raise ConfigError("give at least one k2 and one learning rate")
    if not isinstance(every, int) or every < 1:
        raise ConfigError(f"--every must be a whole number of updates >= 1, got {every!r}")
    if not isinstance(n_fd, int) or n_fd < 0:
        raise ConfigError(f"--fd-weights must be a whole number >= 0, got {n_fd!r}")
    if not (isinstance(fd_step, (int, float)) and 0 < fd_step < 1):
        raise ConfigError(f"the finite-difference step must be in (0, 1), got {fd_step!r}")
    configs = [config_from({**settings, "k2": k2, "lr": lr, "budget_steps": steps})
               for k2 in k2s for lr in lrs]  # validates each
    n_updates = steps // configs[0].k1
    checkpoints = list(range(every, n_updates + 1, every))
    if not checkpoints:
        raise ConfigError(f"{steps} steps make {n_updates} updates, fewer than --every={every}: no checkpoint; "
                          "raise --steps or lower --every")
    return configs, checkpoints


def _finite_differences(cp: Checkpoint, n_fd: int, fd_step: float, rng: np.random.Generator):
    """(indices, g_exact in float64 at them, their finite-difference estimates), or None when n_fd = 0."""
    if not n_fd:
        return None
    window = cp.gradients.window
    indices = fd_subset(cp.scheme, window, n_fd, rng)
    exact64 = cp.gradients.exact if cp.gradients.exact.dtype == np.float64 else \
        exact_gradient(cp.scheme, window, np.float64)
    estimate = central_differences(window_objective(cp.scheme, window), cp.gradients.theta, indices, fd_step)
    return indices, exact64[indices], estimate


def _follow(index: int, cfg: TrainConfig, checkpoints: list[int], corpus, result: GradcheckResult, rows: list[dict],
            n_fd: int, fd_step: float, observer: GradcheckObserver) -> dict:
    """Follow one trajectory, appending its rows; returns how it went (status, steps, checkpoints, seconds)."""
    V, H = corpus.vocab_size, cfg.hidden
    follower = Follower(cfg, corpus.train_ids, V)
    rng = np.random.default_rng([cfg.seed, cfg.k2, index])
    t0 = time.perf_counter()
    n_done = 0
    for cp in follower.checkpoints(checkpoints):
        fd = _finite_differences(cp, n_fd, fd_step, rng)
        base = {"corpus": getattr(corpus, "name", "?"), "scheme": cfg.scheme, "k1": cfg.k1, "k2": cfg.k2,
                "inject": cfg.inject, "hidden": cfg.hidden, "batch": cfg.batch, "dtype": cfg.dtype,
                "optimizer": cfg.optimizer, "lr": cfg.lr, "clip": cfg.clip, "seed": cfg.seed, "step": cp.step,
                "updates": cp.updates, "train_bpc": cp.train_bpc, "drift": cp.gradients.drift}
        new = [{**base, **r} for r in metric_rows(cp.gradients, V, H, fd)]
        rows.extend(new)
        n_done += 1
        result.record_fd(new, {"k2": cfg.k2, "lr": cfg.lr, "step": cp.step})
        observer.checkpoint(index, cfg, cp.step, new)
    return {"k2": cfg.k2, "lr": cfg.lr, "status": "diverged" if follower.diverged_at is not None else "complete",
            "steps": follower.scheme.t, "diverged_at_step": follower.diverged_at, "checkpoints": n_done,
            "seconds": round(time.perf_counter() - t0, 3)}


def gradcheck(
    corpus,
    *,
    k2s: Sequence[int] = defaults.GRADCHECK_K2S,
    lrs: Sequence[float] = defaults.GRADCHECK_LRS,
    steps: int = defaults.GRADCHECK_STEPS,
    every: int = defaults.GRADCHECK_EVERY,
    n_fd: int = defaults.GRADCHECK_FD_WEIGHTS,
    fd_step: float = FD_STEP,
    out_dir: Path | None = None,
    force: bool = False,
    formats: Sequence[str] = ("png", "svg"),
    observer: GradcheckObserver | None = None,
    **settings,
) -> GradcheckResult:
    """Follow one trajectory per (k2, lr) for `steps` time steps and measure gradients every `every` updates.

    settings: any TrainConfig field but those in defaults.GRADCHECK_UNUSED (scheme, k1, hidden, dtype,
    ...), defaults.GRADCHECK_SETTINGS or training's default where not given.

    Every trajectory starts from the same weights (init_theta(seed)). n_fd = 0 skips the
    finite-difference check (the result then reports fd_checked False). With out_dir, writes
    gradcheck.csv (after every trajectory), gradcheck.json and the figures there.
    """
    unused = sorted(set(settings) & set(defaults.GRADCHECK_UNUSED))
    if unused:
        raise ConfigError(f"gradcheck does not take {', '.join(unused)}: {defaults.GRADCHECK_UNUSED[unused[0]]}")
    configs, checkpoints = _plan(k2s, lrs, every, n_fd, fd_step, steps, {**defaults.GRADCHECK_SETTINGS, **settings})
    # Before any output exists: a corpus too short for the streams is the user's to fix (no validation is read).
    check_corpus_fits(corpus, k2=max(c.k2 for c in configs), eval_chars=1, batch=configs[0].batch)
    observer = observer or GradcheckObserver()
    result = GradcheckResult(pd.DataFrame(columns=COLUMNS), fd_requested=n_fd > 0)
    rows: list[dict] = []
    manifest = None
    if out_dir is not None:
        from bpttbench.training.runner import machine_info

        out_dir = clear_dir(Path(out_dir), force=force)
        first = configs[0].to_dict()
        settings = {**{k: v for k, v in first.items() if k not in defaults.GRADCHECK_UNUSED},
                    "k2s": list(dict.fromkeys(c.k2 for c in configs)), "lrs": list(dict.fromkeys(c.lr for c in configs)),
                    "steps": steps, "every": every, "n_fd": n_fd, "fd_step": fd_step, "fd_tolerance": FD_TOLERANCE}
        manifest = Manifest(out_dir / MANIFEST_NAME, {
            "command": "gradcheck",
            "corpus": corpus.info() if hasattr(corpus, "info") else {"name": getattr(corpus, "name", "?")},
            "settings": settings, "machine": machine_info()}).start()
    started = time.perf_counter()
    with manifest or contextlib.nullcontext():
        for index, cfg in enumerate(configs):
            observer.trajectory_started(index, len(configs), cfg)
            info = _follow(index, cfg, checkpoints, corpus, result, rows, n_fd, fd_step, observer)
            result.trajectories.append(info)
            observer.trajectory_finished(index, cfg, info)
            result.data = pd.DataFrame(rows, columns=COLUMNS)
            if manifest is not None:
                _write_csv(result.data, out_dir / CSV_NAME)
                manifest.save(trajectories=result.trajectories)
        if manifest is not None:
            result.paths.append(out_dir / CSV_NAME)
            result.paths.extend(plot_gradcheck(result.data, out_dir, formats=formats))
            manifest.finish("complete", seconds=round(time.perf_counter() - started, 3),
                            fd_checked=result.fd_checked, fd_passed=result.fd_passed,
                            fd_worst_rel_error=result.fd_worst, fd_worst_at=result.fd_worst_at,
                            summary=summarize(result.data).to_dict(orient="records"))
            result.paths.append(manifest.path)
    return result


# ----------------------------------------------------------------------------- figures


def _save(fig: Figure, stem: Path, formats: Sequence[str]) -> list[Path]:
    written = []
    for fmt in formats:
        target = stem.with_suffix(f".{fmt}")
        meta = {"Date": None} if fmt == "svg" else None
        with matplotlib.rc_context({"svg.fonttype": "none"}):
            atomic_write(target, lambda f, fmt=fmt, meta=meta: fig.savefig(f, format=fmt, dpi=130, metadata=meta), binary=True)
        written.append(target)
    return written


def _positive(values: np.ndarray) -> np.ndarray:
    """Exact zeros (lr = 0, k2 = 1) have no place on a log axis: masked here, named in the panel instead."""
    return np.where(np.isfinite(values) & (values > 0), values, np.nan)


def plot_gradcheck(data: pd.DataFrame, out_dir: Path, *, tensor: str = "all",
                   formats: Sequence[str] = ("png", "svg")) -> list[Path]:
    """Relative error against training step, one panel per (lr, k2), one line per estimator; and error against k2.

    Returns the written files (none if data holds no checkpoint).
    """
    rows = data[data["tensor"] == tensor]
    if rows.empty:
        return []
    out_dir = Path(out_dir)
    corpus = ", ".join(sorted(rows["corpus"].astype(str).unique()))
    followed = ", ".join(sorted(rows["scheme"].astype(str).unique()))
    written = _save(_error_vs_step(rows, tensor, corpus, followed), out_dir / FIGURE_STEMS[0], formats)
    written += _save(_error_vs_k2(data, tensor, corpus, followed), out_dir / FIGURE_STEMS[1], formats)
    return written


def _error_vs_step(rows: pd.DataFrame, tensor: str, corpus: str, followed: str) -> Figure:
    """One panel per (lr, k2): each estimator's relative error at every checkpoint."""
    k2s = sorted(rows["k2"].unique())
    lrs = sorted(rows["lr"].unique())
    log_y = bool(np.isfinite(_positive(rows["rel_error"].to_numpy(float))).any())  # else nothing to draw on it
    fig = Figure(figsize=(3.4 * len(k2s) + 1.0, 2.7 * len(lrs) + 1.0), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(lrs), len(k2s), sharex=True, sharey=True, squeeze=False)
    for i, lr in enumerate(lrs):
        for j, k2 in enumerate(k2s):
            ax = axes[i][j]
            panel = rows[(rows["lr"] == lr) & (rows["k2"] == k2)]
            exact_zero = []
            for estimator in ESTIMATORS:
                color, ls, label = ESTIMATOR_STYLE[estimator]
                line = panel[panel["estimator"] == estimator].sort_values("step")
                if line.empty:
                    continue
                if (line["rel_error"] == 0).all():
                    exact_zero.append(label)
                ax.plot(line["step"], _positive(line["rel_error"].to_numpy(float)), color=color, linestyle=ls,
                        marker="o", markersize=2.5, linewidth=1.4, label=label)
            ax.axhline(FD_TOLERANCE, color="0.5", linewidth=0.8, linestyle=(0, (1, 3)))
            if exact_zero:  # a log axis cannot show them: say so rather than leave the panel looking empty
                ax.text(0.03, 0.95, "error exactly 0:\n" + "\n".join(exact_zero), transform=ax.transAxes,
                        va="top", fontsize="small", color="0.25")
            if log_y:
                ax.set_yscale("log")
            ax.grid(True, alpha=0.3)
            optimizer = ", ".join(sorted(panel["optimizer"].astype(str).unique()))
            ax.set_title(f"k2 = {k2}, {optimizer} lr = {lr:g}", fontsize="medium")
            if i == len(lrs) - 1:
                ax.set_xlabel("time steps")
            if j == 0:
                ax.set_ylabel("relative error ||g − g_ref|| / ||g_ref||")
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:  # as many legend columns as the figure's width holds (about 2.2 inches each)
        columns = max(1, min(len(handles), 4, int(fig.get_figwidth() // 2.2)))
        fig.legend(handles, labels, loc="outside lower center", ncols=columns, fontsize="small")
    fig.suptitle(f"Gradient error along a {followed} trajectory\ncorpus {corpus}, tensor: {tensor}\n"
                 f"dotted: FD tolerance {FD_TOLERANCE:g}", fontsize="medium")
    return fig


def _error_vs_k2(data: pd.DataFrame, tensor: str, corpus: str, followed: str) -> Figure:
    """The same numbers against truncation length: median over checkpoints, one line per (estimator, lr)."""
    rows = data[data["tensor"] == tensor]
    k2s = sorted(rows["k2"].unique())
    lrs = sorted(rows["lr"].unique())
    summary = summarize(data, tensor)
    summary = summary[summary["estimator"] != "exact_vs_fd"]
    fig = Figure(figsize=(7.5, 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    lr_styles = ("-", "--", ":", "-.")
    for estimator, lr in [(e, lr) for e in ESTIMATORS for lr in lrs]:
        line = summary[(summary["estimator"] == estimator) & (summary["lr"] == lr)].sort_values("k2")
        if line.empty:
            continue
        color, _, label = ESTIMATOR_STYLE[estimator]
        ax.plot(line["k2"], _positive(line["rel_error_median"].to_numpy(float)), color=color,
                linestyle=lr_styles[lrs.index(lr) % len(lr_styles)], label=f"{label}, lr = {lr:g}",
                marker="s" if estimator in RTRL_ESTIMATORS else "o", markersize=4)  # against rtrl: same colour, squares
    ax.set_xscale("log")
    if np.isfinite(_positive(summary["rel_error_median"].to_numpy(float))).any():
        ax.set_yscale("log")
    ax.set_xticks(k2s, [str(k) for k in k2s])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("k2 (steps backpropagated)")
    ax.set_ylabel("median relative error ||g − g_ref|| / ||g_ref||")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    fig.suptitle(f"Gradient error against truncation length — {followed} trajectory, corpus {corpus}")
    optimizers = ", ".join(sorted(rows["optimizer"].astype(str).unique()))
    ax.set_title(f"{optimizers}; median over checkpoints; tensor: {tensor}", fontsize="small", color="0.35")
    return fig

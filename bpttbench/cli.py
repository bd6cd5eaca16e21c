"""The bpttbench command line: parse, build a config, call the library, show the outcome.

Results go to stdout and everything else (progress, warnings, errors) to stderr. Every error
leaves through `main`: one line naming the problem and the fix, exit code 2 for the user's
mistakes, 1 for failures that are not, 130/143 for Ctrl-C/SIGTERM; never a traceback
(set BPTTBENCH_DEBUG=1 to see one).
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table

from bpttbench import __version__, defaults
from bpttbench.config import INJECTS, OPTIMIZERS, SCHEMES, TrainConfig, format_duration, parse_duration
from bpttbench.defaults import SAMPLE_CHARS, SAMPLE_TEMPERATURE
from bpttbench.errors import BpttbenchError, ConfigError, UserError

stdout = Console(highlight=False, soft_wrap=True)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)
DEFAULTS = TrainConfig(budget_steps=1)  # the one place defaults live
DEFAULT_BUDGET = "60s"


class Terminated(KeyboardInterrupt):
    """SIGTERM, delivered as an interruption so runs close their results the same way."""


def envvar(name: str) -> str:
    return f"BPTTBENCH_{name.upper().replace('-', '_')}"


def option(*names, **kw):
    """A click option that also reads BPTTBENCH_<NAME> from the environment."""
    long = next(n for n in names if n.startswith("--"))
    kw.setdefault("envvar", envvar(long[2:]))
    kw.setdefault("show_envvar", True)
    return click.option(*names, **kw)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="bpttbench")
def cli():
    """Which truncated-BPTT scheme learns fastest online, and how exact is its gradient?

    \b
    Examples:
      bpttbench run                                  # single vs sliding, 60 s each, built-in corpus
      bpttbench run --scheme single --k2 20
      bpttbench run --scheme all --steps 300 --strict     # a CI smoke run
      bpttbench plot results/
    """


# ----------------------------------------------------------------------------- run


class RunProgress:
    """Rich progress on stderr: one bar per (scheme, seed) with elapsed/budget, steps/s and the live loss."""

    def __init__(self, units: list[TrainConfig], enabled: bool):
        self.units = units
        self.progress = Progress(
            TextColumn("{task.description:<28}"),
            BarColumn(),
            TextColumn("{task.fields[where]:>16}"),
            TextColumn("{task.fields[rate]:>13}"),
            TextColumn("{task.fields[loss]:>20}"),
            console=stderr,
            disable=not enabled,
            transient=False,
        )
        self.tasks = []

    def __enter__(self):
        self.progress.__enter__()
        for cfg in self.units:
            total = cfg.budget_seconds if cfg.budget_seconds is not None else cfg.budget_steps
            desc = f"{cfg.scheme} k1={cfg.k1} k2={cfg.k2} seed {cfg.seed}"
            self.tasks.append(self.progress.add_task(desc, total=total, where="waiting", rate="", loss=""))
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def where(self, cfg, record) -> str:
        if cfg.budget_seconds is not None:
            return f"{record.wall_s:.0f}/{cfg.budget_seconds:.0f} s"
        return f"{record.step}/{cfg.budget_steps}"

    def unit_started(self, index, cfg):
        self.progress.update(self.tasks[index], where="compiling")

    def compiled(self, index, cfg, seconds):
        self.progress.update(self.tasks[index], where="training")

    def record(self, index, cfg, record):
        done = record.wall_s if cfg.budget_seconds is not None else record.step
        loss = f"{record.train_bpc:.3f} bpc"
        if record.val_bpc is not None:
            loss += f" val {record.val_bpc:.2f}"
        rate = f"{record.step / record.wall_s:,.0f} step/s" if record.wall_s > 0 else ""
        self.progress.update(self.tasks[index], completed=done, where=self.where(cfg, record), rate=rate, loss=loss)

    def unit_finished(self, index, cfg, outcome):
        total = self.progress.tasks[self.tasks[index]].total
        where = f"diverged @{outcome.diverged_at_step}" if outcome.status == "diverged" else "done"
        self.progress.update(self.tasks[index], completed=total, where=where)


def summary_table(rows: list[dict]) -> Table:
    table = Table(title="summary (medians over seeds; losses in bits/char)")
    for name in ("scheme", "k1", "k2", "seeds", "steps", "updates", "steps/s", "final online", "final val"):
        table.add_column(name, justify="left" if name == "scheme" else "right")

    def num(v, fmt):
        return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)

    for r in rows:
        scheme = r["scheme"] + (" (window)" if r["inject"] == "window" else "")
        seeds = f"{r['seeds']}" + (f" ({r['diverged']} diverged)" if r["diverged"] else "")
        table.add_row(scheme, str(r["k1"]), str(r["k2"]), seeds, num(r["steps"], ",.0f"), num(r["updates"], ",.0f"),
                      num(r["steps_per_s"], ",.0f"), num(r["final_train_bpc"], ".3f"), num(r["final_val_bpc"], ".3f"))
    return table


@contextmanager
def sigterm_as_interrupt():
    def handler(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@cli.command(context_settings={"show_default": True})
@option("--scheme", "schemes", multiple=True, type=click.Choice([*SCHEMES, "all"]),
        help="Scheme to run; repeat for several, or 'all'. [default: single and sliding]")
@option("--k1", type=int, default=None, help=f"Steps between updates. [default: {DEFAULTS.k1}; chunked: k2]")
@option("--k2", type=int, default=DEFAULTS.k2, help="Steps each update backpropagates through.")
@option("--inject", type=click.Choice(INJECTS), default=DEFAULTS.inject,
        help="Losses backpropagated: the newest k1 (Williams & Peng) or the whole window (Sutskever).")
@option("--hidden", type=int, default=DEFAULTS.hidden, help="LSTM hidden units.")
@option("--batch", type=int, default=DEFAULTS.batch, help="Parallel streams (1 = online).")
@option("--optimizer", type=click.Choice(OPTIMIZERS), default=DEFAULTS.optimizer)
@option("--lr", type=float, default=DEFAULTS.lr, help="Learning rate.")
@option("--clip", type=float, default=DEFAULTS.clip, help="Global gradient-norm clip (0 = off).")
@option("--dtype", type=click.Choice(["float32", "float64"]), default=DEFAULTS.dtype)
@option("--budget", default=None, help=f"Wall-clock training time per scheme and seed: 90, 90s, 2m, 1h. [default: {DEFAULT_BUDGET}]")
@option("--steps", type=int, default=None, help="A budget of time steps instead of seconds.")
@option("--seeds", type=int, default=None, help="Number of seeds: 3 runs seeds 0, 1, 2. [default: 1]")
@option("--seed", type=int, default=None, help="Run this one seed.")
@option("--corpus", default=None, help="A built-in corpus name (see `bpttbench corpus list`) or a text file. [default: stdlib-docs]")
@option("--eval-every", type=int, default=DEFAULTS.eval_every, help="Steps between validation evaluations (0 = only at the end).")
@option("--eval-chars", type=int, default=DEFAULTS.eval_chars, help="Validation characters per evaluation (0 = the whole split, read as parallel streams).")
@option("--log-every", type=int, default=DEFAULTS.log_every, help="Steps between log points.")
@option("--delta", type=float, default=DEFAULTS.delta, help="adaptive: tolerated relative gradient bias.")
@option("--k-max", type=int, default=DEFAULTS.k_max, help="adaptive: longest truncation, and the estimate's length.")
@option("--adapt-every", type=int, default=DEFAULTS.adapt_every, help="adaptive: updates between re-estimates of k2.")
@option("--out", type=click.Path(path_type=Path), default=None, help="Run directory. [default: results/run-<time>]")
@option("--force", is_flag=True, help="Replace what is already in --out.")
@option("--save-weights", is_flag=True, help="Save initial and final weights (PyTorch state_dict layout) and vocab.json.")
@option("--strict", is_flag=True, help="Exit 1 if any scheme diverged (for CI smoke runs).")
@option("--quiet", "-q", is_flag=True, help="Print only the run directory.")
@option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
def run(schemes, k1, k2, inject, hidden, batch, optimizer, lr, clip, dtype, budget, steps, seeds, seed, corpus,
        eval_every, eval_chars, log_every, delta, k_max, adapt_every, out, force, save_weights, strict, quiet, as_json):
    """Train each scheme on a corpus under a budget and write a run directory.

    \b
    Examples:
      bpttbench run --scheme single --k2 20
      bpttbench run --scheme single --scheme sliding --k2 20 --budget 2m --seeds 3 --corpus tinyshakespeare
      bpttbench run --scheme all --steps 300 --strict
    """
    from bpttbench.corpus import load_corpus
    from bpttbench.files import check_out_dir
    from bpttbench.runner import check_units_fit, default_out_dir, execute, plan_units

    if budget is not None and steps is not None:
        raise ConfigError("give either --budget (seconds) or --steps, not both")
    if seeds is not None and seed is not None:
        raise ConfigError("give either --seeds (a count) or --seed (one seed), not both")
    if seeds is not None and seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    budget_seconds = parse_duration(budget if budget is not None else DEFAULT_BUDGET) if steps is None else None
    settings = dict(k1=DEFAULTS.k1 if k1 is None else k1, k2=k2, inject=inject, hidden=hidden, batch=batch,
                    optimizer=optimizer, lr=lr, clip=clip, dtype=dtype, budget_seconds=budget_seconds,
                    budget_steps=steps, log_every=log_every, eval_every=eval_every, eval_chars=eval_chars, delta=delta,
                    k_max=k_max, adapt_every=adapt_every)
    seed_list = [seed] if seed is not None else range(seeds or 1)
    units = plan_units(settings, schemes or ("single", "sliding"), seed_list, k1_given=k1 is not None)
    out_dir = out or default_out_dir()
    check_out_dir(out_dir, force=force)
    text = load_corpus(corpus, progress=None if quiet or as_json else download_progress())
    check_units_fit(units, text)  # before the plan is printed, so a refusal is the only line
    chatty = not (quiet or as_json)
    if chatty:
        per_unit = f"{format_duration(budget_seconds)}" if budget_seconds else f"{steps:,} steps"
        total = f" = {format_duration(budget_seconds * len(units))} of training" if budget_seconds else ""
        stderr.print(f"{len(units)} runs × {per_unit}{total} (plus compilation and evaluation) "
                  f"on {text.name} ({text.n_chars:,} characters, {text.vocab_size} symbols) → {out_dir}")
    with sigterm_as_interrupt(), RunProgress(units, enabled=chatty) as progress:
        result = execute(units, text, out_dir, force=force, save_weights=save_weights, observer=progress)
    rows = result.summary()
    if as_json:
        stdout.print_json(json.dumps({"run_dir": str(result.path), "status": result.status, "summary": rows}))
    elif quiet:
        stdout.print(str(result.path))
    else:
        stdout.print(summary_table(rows))
        stdout.print(f"results in {result.path}; draw the figures with: bpttbench plot {result.path}")
    diverged = [u for u in result.units if u.outcome.status == "diverged"]
    for unit in diverged:
        stderr.print(f"warning: {unit.cfg.scheme} seed {unit.cfg.seed} diverged at step {unit.outcome.diverged_at_step}; "
                  "try a lower --lr or a smaller --clip")
    if strict and diverged:
        sys.exit(1)


def download_progress():
    """A progress callback for corpus downloads, drawing a rich bar on stderr once bytes flow."""
    state = {}

    def update(done: int, total: int) -> None:
        if "progress" not in state:
            state["progress"] = Progress(TextColumn("downloading corpus"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                                         console=stderr, transient=True)
            state["progress"].start()
            state["task"] = state["progress"].add_task("download", total=total)
        state["progress"].update(state["task"], completed=done)
        if done >= total:
            state["progress"].stop()

    return update


# ----------------------------------------------------------------------------- plot


@cli.command(context_settings={"show_default": True})
@click.argument("path", type=click.Path(path_type=Path), default=Path("results"))
@option("--out", type=click.Path(path_type=Path), default=None, help="Where the figures go. [default: PATH]")
@option("--logx", is_flag=True, help="Logarithmic x axis.")
@option("--smooth", type=int, default=None, help="Step-weighted moving average over this many log points, as in "
                                                      "`report` (1 = none). [default: 5]")
@option("--format", "formats", multiple=True, type=click.Choice(["png", "svg", "pdf"]), help="[default: png and svg]")
def plot(path, out, logx, smooth, formats):
    """Draw loss against time and against steps from a run directory or a folder of runs.

    \b
    Examples:
      bpttbench plot results/run-20261125-120000
      bpttbench plot results/ --logx --out figures/
    """
    from bpttbench.plot import plot_runs

    if smooth is not None and smooth < 1:
        raise ConfigError(f"--smooth must be at least 1 (1 = no smoothing), got {smooth}")
    written = plot_runs(path, out=out, logx=logx, smooth=smooth, formats=formats or ("png", "svg"))
    for skipped, reason in written.skipped:
        stderr.print(f"skipped {skipped}: {reason}")
    if not written:
        raise UserError(f"no complete runs to plot under {path}; finish a run with `bpttbench run` first")
    for figure in written:
        stdout.print(str(figure))


# ----------------------------------------------------------------------------- gradcheck


class GradcheckProgress:
    """One line on stderr per trajectory: which (k2, lr), then how it ended."""

    def __init__(self, enabled: bool):
        self.enabled = enabled

    def trajectory_started(self, index, total, cfg):
        if self.enabled:
            stderr.print(f"[{index + 1}/{total}] following {cfg.scheme} k1={cfg.k1} k2={cfg.k2} {cfg.optimizer} lr={cfg.lr:g} "
                         f"for {cfg.budget_steps:,} steps", markup=False)

    def checkpoint(self, index, cfg, step, rows):
        pass

    def trajectory_finished(self, index, cfg, info):
        if self.enabled and info.get("status") != "complete":
            stderr.print(f"      {info.get('status')} at step {info.get('diverged_at')}", markup=False)


@cli.command(context_settings={"show_default": True})
@option("--scheme", type=click.Choice(["single", "stored", "rtrl", "uoro"]), default="single",
        help="The scheme whose trajectory is followed; rtrl adds each gradient's error against rtrl's untruncated one (use a small --hidden).")
@option("--k1", type=int, default=1, help="Steps between updates.")
@option("--k2", "k2s", type=int, multiple=True, help=f"Truncation length; repeat for several. [default: {', '.join(map(str, defaults.GRADCHECK_K2S))}]")
@option("--lr", "lrs", type=float, multiple=True, help=f"Learning rate; repeat for several. [default: {', '.join(f'{lr:g}' for lr in defaults.GRADCHECK_LRS)}]")
@option("--inject", type=click.Choice(INJECTS), default=DEFAULTS.inject)
@option("--optimizer", type=click.Choice(OPTIMIZERS), default=DEFAULTS.optimizer)
@option("--clip", type=float, default=defaults.GRADCHECK_CLIP, help="Global gradient-norm clip (0 = off).")
@option("--hidden", type=int, default=DEFAULTS.hidden)
@option("--batch", type=int, default=DEFAULTS.batch)
@option("--dtype", type=click.Choice(["float64", "float32"]), default=defaults.GRADCHECK_DTYPE, help="float64 makes the finite-difference check meaningful.")
@option("--seed", type=int, default=0)
@option("--steps", type=int, default=defaults.GRADCHECK_STEPS, help="Time steps per trajectory.")
@option("--every", type=int, default=defaults.GRADCHECK_EVERY, help="Updates between checkpoints.")
@option("--fd-weights", type=int, default=defaults.GRADCHECK_FD_WEIGHTS, help="Weights in the finite-difference subset (0 skips the check).")
@option("--corpus", default=None, help="A built-in corpus name or a text file. [default: stdlib-docs]")
@option("--out", type=click.Path(path_type=Path), default=None, help="Output folder. [default: results/gradcheck-<time>]")
@option("--force", is_flag=True, help="Replace what is already in --out.")
@option("--format", "formats", multiple=True, type=click.Choice(["png", "svg", "pdf"]), help="[default: png and svg]")
@option("--quiet", "-q", is_flag=True, help="Print only the output folder.")
@option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
def gradcheck(scheme, k1, k2s, lrs, inject, optimizer, clip, hidden, batch, dtype, seed, steps, every, fd_weights, corpus,
              out, force, formats, quiet, as_json):
    """How far are single's and stored's gradients from the exact window gradient along a real trajectory?

    At checkpoints, for the same window and weights: the gradient single and stored would use,
    the exact one (what sliding computes), and finite differences of the exact one (float64).
    Exits 1 if the exact gradient disagrees with finite differences.

    \b
    Examples:
      bpttbench gradcheck --corpus tinyshakespeare
      bpttbench gradcheck --k2 20 --lr 0.1 --lr 1.0 --optimizer sgd --clip 1
    """
    from bpttbench import gradcheck as checker
    from bpttbench.corpus import load_corpus

    chatty = not (quiet or as_json)
    text = load_corpus(corpus, progress=download_progress() if chatty else None)
    out_dir = out or checker.default_out_dir()
    with sigterm_as_interrupt():
        result = checker.gradcheck(text, scheme=scheme, k1=k1, k2s=k2s or defaults.GRADCHECK_K2S,
                                   lrs=lrs or defaults.GRADCHECK_LRS, hidden=hidden, batch=batch, optimizer=optimizer,
                                   clip=clip, inject=inject, dtype=dtype, seed=seed, steps=steps, every=every,
                                   n_fd=fd_weights, out_dir=out_dir, force=force, formats=formats or ("png", "svg"),
                                   observer=GradcheckProgress(chatty))
    summary = result.summary()
    if as_json:
        stdout.print_json(json.dumps({"out": str(out_dir), "fd_passed": result.fd_passed, "fd_worst": result.fd_worst,
                                      "summary": json.loads(summary.to_json(orient="records"))}))
    elif quiet:
        stdout.print(str(out_dir))
    else:
        table = Table(title="relative error against the exact window gradient (whole gradient, over checkpoints)")
        for name in ("k2", "optimizer", "lr", "estimator", "checkpoints", "median", "max", "cosine median", "drift"):
            table.add_column(name, justify="left" if name in ("optimizer", "estimator") else "right")
        for row in summary.itertuples():
            table.add_row(str(row.k2), row.optimizer, f"{row.lr:g}", row.estimator, str(row.checkpoints),
                          f"{row.rel_error_median:.3g}", f"{row.rel_error_max:.3g}", f"{row.cosine_median:.5f}",
                          f"{row.drift_median:.3g}")
        stdout.print(table)
        if result.fd_checked:
            stdout.print(f"finite differences: worst relative error {result.fd_worst:.2g} "
                         f"({'passed' if result.fd_passed else 'FAILED'}, tolerance {checker.FD_TOLERANCE:g})")
        stdout.print(f"results in {out_dir}")
    result.raise_if_failed()


# ----------------------------------------------------------------------------- speed


def int_list(values, name: str) -> tuple[int, ...]:
    """Whole numbers from repeated options and comma lists (`--k2 5,10 --k2 20`), duplicates dropped."""
    out = []
    for value in values:
        for part in str(value).split(","):
            if part.strip():
                try:
                    out.append(int(part))
                except ValueError:
                    raise UserError(f"{name} takes whole numbers, e.g. {name} 5,10,20; got {part!r}") from None
    return tuple(dict.fromkeys(out))


@cli.command(context_settings={"show_default": True})
@option("--scheme", "schemes", multiple=True, type=click.Choice([*SCHEMES, "all"]),
        help="Repeatable; 'all' is the four truncated schemes (rtrl and uoro only when named, without a bound). [default: all]")
@option("--hidden", multiple=True, help="Hidden sizes; repeatable or a comma list. [default: 128]")
@option("--k2", multiple=True, help="Truncation lengths; repeatable or a comma list (chunked: k1 = k2). [default: 20]")
@option("--batch", multiple=True, help="Batch sizes; repeatable or a comma list. [default: 1]")
@option("--k1", type=int, default=1, help="Steps between updates (single, stored, sliding).")
@option("--dtype", "dtypes", multiple=True, type=click.Choice(["float32", "float64"]), help="[default: float32]")
@option("--repeats", type=int, default=7, help="Samples per timer; medians are reported.")
@option("--min-time", type=float, default=0.05, help="Seconds per sample.")
@option("--adam/--no-adam", default=True, help="Also time Adam and report its extra cost.")
@option("--against-torch", is_flag=True, help="Also time the PyTorch versions (pip install -e '.[torch]').")
@option("--out", type=click.Path(path_type=Path), default=None, help="Folder for speed.csv/.json/.png. [default: results/speed-<time>]")
@option("--json", "as_json", is_flag=True, help="Print the rows as JSON on stdout.")
def speed(schemes, hidden, k2, batch, k1, dtypes, repeats, min_time, adam, against_torch, out, as_json):
    """Microseconds per time step of each scheme beside its BLAS lower bound (and PyTorch).

    Plain SGD, one BLAS thread, medians of interleaved samples; ratios are taken within one run.

    \b
    Examples:
      bpttbench speed
      bpttbench speed --k2 5,20,50,200 --scheme single --scheme sliding
      bpttbench speed --against-torch --batch 1,32
    """
    from bpttbench.runner import default_out_dir
    from bpttbench.speed import SCHEMES as TIMED, measure_speed, speed_targets, write_speed

    names = list(dict.fromkeys(s for n in (schemes or ("all",)) for s in (TIMED if n == "all" else (n,))))
    grid = dict(hidden=int_list(hidden, "--hidden") or (128,), k2=int_list(k2, "--k2") or (20,),
                batch=int_list(batch, "--batch") or (1,))
    out_dir = out or default_out_dir(prefix="speed")
    with stderr.status("timing") as status:
        rows = measure_speed(names, grid["hidden"], grid["k2"], grid["batch"], k1=k1, dtypes=dtypes or ("float32",),
                             repeats=repeats, min_time=min_time, adam=adam, against_torch=against_torch,
                             progress=lambda message: status.update(f"timing {message}"))
    parameters = dict(schemes=names, k1=k1, dtypes=list(dtypes or ("float32",)), repeats=repeats, min_time=min_time,
                      adam=adam, against_torch=against_torch, **{k: list(v) for k, v in grid.items()})
    paths = write_speed(rows, out_dir, parameters=parameters)
    if as_json:
        stdout.print_json(rows.to_json(orient="records"))
        return
    table = Table(title="microseconds per time step (CPU, median; plain SGD, one BLAS thread)")
    columns = [("scheme", "scheme", "{}"), ("H", "hidden", "{}"), ("k2", "k2", "{}"), ("B", "batch", "{}"),
               ("dtype", "dtype", "{}"), ("us/step", "us_per_step", "{:.1f}"), ("bound", "bound_us", "{:.1f}"),
               ("ratio", "ratio", "{:.2f}"), ("Adam extra", "adam_extra_us", "{:+.0f}"),
               ("torch", "torch_us_per_step", "{:.0f}"), ("torch/ours", "torch_speedup", "{:.1f}x")]
    columns = [c for c in columns if c[1] in rows.columns]
    for title, _, _ in columns:
        table.add_column(title, justify="left" if title in ("scheme", "dtype") else "right")
    for row in rows.to_dict("records"):
        table.add_row(*("-" if row[key] is None or row[key] != row[key] else fmt.format(row[key]) for _, key, fmt in columns))
    stdout.print(table)
    targets = speed_targets(rows)
    if len(targets):
        check = Table(title="issue 5's targets")
        for name in targets.columns:
            check.add_column(str(name))
        for row in targets.itertuples(index=False):
            check.add_row(*("-" if v is None or v != v else f"{v:.3g}" if isinstance(v, float) else str(v) for v in row))
        stdout.print(check)
    stdout.print(f"results in {out_dir}: " + ", ".join(p.name for p in paths))


# ----------------------------------------------------------------------------- report


@cli.command(context_settings={"show_default": True})
@click.argument("path", type=click.Path(path_type=Path), default=Path("results"))
@option("--out", type=click.Path(path_type=Path), default=None, help="Folder for report.md and report.json. [default: PATH]")
@option("--delta", type=float, default=defaults.DELTA, help="Bits/char within which two schemes count as 'about the same'.")
@option("--target", type=float, default=None, help="Target loss for time/steps-to-target. [default: worst final loss]")
@option("--at-time", default=None, help="Compare at this training time (90s, 2m). [default: the common budget]")
@option("--at-steps", type=int, default=None, help="Compare at this many steps. [default: the smallest common count]")
@option("--smooth", type=int, default=defaults.SMOOTH, help="Moving average over this many log points.")
@option("--bootstrap", type=int, default=defaults.BOOTSTRAP, help="Bootstrap resamples for the 95% intervals.")
@option("--bootstrap-seed", type=int, default=defaults.BOOTSTRAP_SEED, help="Seed of the bootstrap (the report is deterministic).")
@option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
def report(path, out, delta, target, at_time, at_steps, smooth, bootstrap, bootstrap_seed, as_json):
    """Medians with bootstrap intervals, paired scheme comparisons, and verdicts on the question's claims.

    \b
    Examples:
      bpttbench report results/run-20261125-120000
      bpttbench report results/ --delta 0.02 --at-time 60s
    """
    from bpttbench.report import build_report, rich_renderables, write_report

    built = build_report(path, target_loss=target, at_time=parse_duration(at_time) if at_time else None,
                         at_steps=at_steps, bootstrap=bootstrap, seed=bootstrap_seed, delta=delta, smooth=smooth)
    written = write_report(built, out)
    for skipped, reason in built.skipped:
        stderr.print(f"skipped {skipped}: {reason}", markup=False)
    for warning in built.warnings:
        stderr.print(f"warning: {warning}", markup=False)
    if as_json:
        stdout.print_json(json.dumps({"report": str(written), **built.to_dict()}))
        return
    for renderable in rich_renderables(built):
        stdout.print(renderable)
    stdout.print(f"report in {written}")


# ----------------------------------------------------------------------------- corpus


@cli.group()
def corpus():
    """The corpora bpttbench knows: built-in and downloadable ones, or any text file."""


@corpus.command("list")
def corpus_list():
    """List the registered corpora and whether they are cached."""
    from bpttbench.corpus import list_corpora

    table = Table()
    for name in ("name", "size", "cached", "description"):
        table.add_column(name)
    for row in list_corpora():
        size = f"{row['size']:,}" if row.get("size") else "-"
        table.add_row(row["name"], size, "yes" if row.get("cached") else "no", row.get("description", ""))
    stdout.print(table)


@corpus.command("info")
@click.argument("spec")
def corpus_info(spec):
    """Size, vocabulary, checksum and split of a corpus name or file."""
    from bpttbench.corpus import load_corpus

    text = load_corpus(spec, progress=download_progress())
    info = text.info()
    table = Table(show_header=False)
    for key, value in info.items():
        table.add_row(key, f"{value:,}" if isinstance(value, int) else str(value))
    table.add_row("vocabulary", "".join(text.vocab).encode("unicode_escape").decode("ascii")[:200])
    stdout.print(table)


# ----------------------------------------------------------------------------- sweep


def _point_label(cfg, swept) -> str:
    extra = "".join(f" {k}={getattr(cfg, k)}" for k in swept if k not in ("k1", "k2"))
    return f"{cfg.scheme} k1={cfg.k1} k2={cfg.k2}{extra} seed {cfg.seed}"


class SweepProgress:
    """Rich progress on stderr: one bar for the whole grid, one row per run in flight with its live loss."""

    def __init__(self, swept, enabled: bool):
        self.swept = swept
        self.enabled = enabled
        self.progress = Progress(TextColumn("{task.description:<34}"), BarColumn(), TextColumn("{task.fields[where]:>18}"),
                                 TextColumn("{task.fields[loss]:>22}"), console=stderr, disable=not enabled)
        self.rows: dict[str, int] = {}
        self.counts = {"complete": 0, "failed": 0, "interrupted": 0}

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def warn(self, message):
        stderr.print(f"warning: {message}", markup=False)

    def status(self, message):
        if self.enabled:
            stderr.print(message, style="dim", markup=False)

    def _grid_text(self):
        done = ", ".join(f"{n} {state}" for state, n in self.counts.items() if n)
        return f"{done or 'none done'}, {len(self.rows)} running"

    def start(self, points, states):
        self.counts["complete"] = sum(s == "complete" for s in states.values())
        self.grid = self.progress.add_task(f"grid: {len(points)} runs", total=len(points), completed=self.counts["complete"],
                                           where="", loss=self._grid_text())

    def point_started(self, point, host):
        cfg = point.cfg
        total = cfg.budget_seconds if cfg.budget_seconds is not None else cfg.budget_steps
        self.rows[point.id] = self.progress.add_task(_point_label(cfg, self.swept), total=total, where=f"on {host}", loss="")
        self.progress.update(self.grid, loss=self._grid_text())

    def point_record(self, point, msg):
        if point.id not in self.rows:
            return
        cfg = point.cfg
        timed = cfg.budget_seconds is not None
        digits = 1 if timed and cfg.budget_seconds < 10 else 0
        where = f"{msg['wall_s']:.{digits}f}/{cfg.budget_seconds:.{digits}f} s" if timed else f"{msg['step']}/{cfg.budget_steps}"
        loss = f"{msg['train_bpc']:.3f} bpc" + (f" val {msg['val_bpc']:.2f}" if msg.get("val_bpc") is not None else "")
        self.progress.update(self.rows[point.id], completed=msg["wall_s"] if timed else msg["step"], where=where, loss=loss)

    def point_finished(self, point, state, entry):
        if point.id in self.rows:
            self.progress.remove_task(self.rows.pop(point.id))
        self.counts[state] = self.counts.get(state, 0) + 1
        self.progress.update(self.grid, advance=1, loss=self._grid_text())
        if state == "failed":
            stderr.print(f"failed: {_point_label(point.cfg, self.swept)}: {entry.get('error')}", markup=False)


def sweep_table(rows: list[dict], swept) -> Table:
    table = Table(title="sweep summary (medians over seeds; losses in bits/char)")
    extra = [k for k in swept if k not in ("k1", "k2")]
    for name in ("scheme", "k1", "k2", *extra, "seeds", "steps", "steps/s", "final online", "final val"):
        table.add_column(name, justify="left" if name == "scheme" else "right")

    def num(v, fmt):
        return "-" if v is None else format(v, fmt)

    for r in rows:
        seeds = f"{r['complete']}/{r['runs']}" + (f" ({r['failed']} failed)" if r["failed"] else "") + (
            f" ({r['diverged']} diverged)" if r["diverged"] else "")
        table.add_row(r["scheme"], str(r["k1"]), str(r["k2"]), *(f"{r[k]:g}" if isinstance(r[k], float) else str(r[k]) for k in extra),
                      seeds, num(r["steps"], ",.0f"), num(r["steps_per_s"], ",.0f"), num(r["final_train_bpc"], ".3f"),
                      num(r["final_val_bpc"], ".3f"))
    return table


def _sweep_headline(plan, out_dir: Path, complete: int, workers: int, scheduler: str | None) -> str:
    """The runs, their total budget, how long they take on the workers, and where they go."""
    todo = plan.count - complete
    where = scheduler or f"{workers} local workers"
    per_worker = f" ≈ {format_duration(plan.spec.budget_seconds * todo / workers)} on {where}" if (
        plan.spec.budget_seconds and not scheduler) else f" on {where}"
    return (f"{plan.total_budget()}; {todo:,} to run{per_worker} (plus compilation and evaluation), "
            f"{complete:,} already complete; corpus {plan.corpus.name} → {out_dir}")


def print_grid(plan, states: dict, swept) -> None:
    """The dry run's list of points with their states: a table for a small grid, streamed lines for a large one."""
    extra = [k for k in swept if k not in ("k1", "k2")]
    rows = ((point.id, *(str(getattr(point.cfg, k)) for k in extra), states.get(point.id, "pending"))
            for point in plan.iter_points())
    if plan.count > 500:  # a table costs milliseconds a row and holds every row until printed
        click.echo("\t".join(("id", *extra, "state")))
        for row in rows:
            click.echo("\t".join(row))
        return
    table = Table()
    for name in ("id", *extra, "state"):
        table.add_column(name)
    for row in rows:
        table.add_row(*row)
    stdout.print(table)


@cli.command(context_settings={"show_default": True})
@click.argument("spec_file", metavar="SPEC.toml", type=click.Path(path_type=Path))
@option("--set", "overrides", multiple=True, metavar="KEY=V1,V2",
        help="Override a spec key: a parameter (k2=5,10,20) or seeds, schemes, budget, steps, corpus. Repeatable.")
@option("--out", type=click.Path(path_type=Path), default=None,
        help="Sweep directory; rerunning with the same one resumes. [default: results/<spec name>]")
@option("--workers", type=int, default=None, help="Local worker processes, one thread each. [default: the machine's cores]")
@option("--scheduler", default=None, help="A running Dask scheduler (tcp://HOST:8786) to use instead of a local cluster.")
@option("--dry-run", is_flag=True, help="List the runs and the total budget; run nothing.")
@option("--quiet", "-q", is_flag=True, help="Print only the sweep directory.")
@option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
def sweep(spec_file, overrides, out, workers, scheduler, dry_run, quiet, as_json):
    """Run a grid of runs from a TOML spec on Dask: a local cluster, or a cluster by address.

    Each (configuration, seed) is a run directory under the sweep directory; a rerun skips
    the complete ones, so an interrupted sweep resumes where it stopped.

    \b
    Examples:
      bpttbench sweep k2.toml --dry-run
      bpttbench sweep k2.toml --set k2=5,10,20 --set seeds=2 --workers 2
      bpttbench sweep k2.toml --scheduler tcp://10.0.0.5:8786 --out /shared/results/k2
    """
    from bpttbench.corpus import load_corpus
    from bpttbench.sweep import (check_grid_size, check_sweep_dir, count_complete, default_workers, disk_states, load_spec,
                                 plan_sweep, run_sweep)

    if scheduler and workers:
        raise ConfigError("--workers sizes the local cluster; with --scheduler the cluster's own workers are used")
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    spec = load_spec(spec_file, overrides)
    check_grid_size(spec)  # from the axes' lengths, before the corpus loads or any point is built
    chatty = not (quiet or as_json)
    plan = plan_sweep(spec, load_corpus(spec.corpus, progress=download_progress() if chatty else None))
    out_dir = out or Path("results") / spec.name
    check_sweep_dir(out_dir)  # before the plan is printed, so a refusal is the only line
    complete = count_complete(out_dir, plan)
    headline = _sweep_headline(plan, out_dir, complete, workers or default_workers(), scheduler)
    if dry_run:
        stdout.print(headline, markup=False)  # first, on its own: listing a large grid takes a while
        print_grid(plan, disk_states(out_dir, plan.points) if complete else {}, spec.swept)
        for reason in plan.refused:
            stderr.print(f"warning: left out of the grid: {reason}", markup=False)
        return
    if chatty:
        stderr.print(headline, markup=False)
    with sigterm_as_interrupt(), SweepProgress(spec.swept, enabled=chatty) as progress:
        result = run_sweep(plan, out_dir, workers=workers, scheduler=scheduler, observer=progress)
    rows = result.summary(spec.swept)
    if as_json:
        stdout.print_json(json.dumps({"sweep_dir": str(result.path), "status": result.status, "counts": result.counts(),
                                      "summary": rows}))
    elif quiet:
        stdout.print(str(result.path))
    else:
        stdout.print(sweep_table(rows, spec.swept))
        stdout.print(f"results in {result.path}; draw the figures with: bpttbench plot {result.path}")
    failed = result.counts()["failed"]
    if failed:
        raise BpttbenchError(f"{failed} of {len(result.points)} runs failed (errors in {result.path / 'sweep.json'}); "
                             "rerun the same command to retry them")


@cli.command(context_settings={"show_default": True})
@option("--out", type=click.Path(path_type=Path), default=Path("results/study"),
        help="Study directory; rerunning with the same one resumes.")
@option("--workers", type=int, default=None, help="Local worker processes, one thread each. [default: the machine's cores]")
@option("--scheduler", default=None, help="A running Dask scheduler (tcp://HOST:8786) to use instead of a local cluster.")
@option("--quick", is_flag=True, help="A smaller study that takes a few minutes: a first look, and for CI.")
@option("--corpus", "corpora", multiple=True,
        help="Corpus to study, repeatable (the map uses the first). [default: stdlib-docs and tinyshakespeare]")
@option("--quiet", "-q", is_flag=True, help="Print only the study directory.")
@option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
def study(out, workers, scheduler, quick, corpora, quiet, as_json):
    """Run the preset experiment that answers the question, and write its report.

    single, stored and sliding at k1 = 1, k2 = 20 and chunked at k = 20, with enough seeds for a
    decision, on each corpus; k2 = 1 (claim 5); a gradcheck (claim 6); and the map of single
    against sliding over k2, H and k1. Runs as sweeps on Dask; a rerun resumes.

    \b
    Examples:
      bpttbench study --quick
      bpttbench study --out results/study --workers 2
    """
    from bpttbench.study import DEFAULT_CORPORA, run_study

    if scheduler and workers:
        raise ConfigError("--workers sizes the local cluster; with --scheduler the cluster's own workers are used")
    chatty = not (quiet or as_json)
    say = (lambda message: stderr.print(message, markup=False)) if chatty else (lambda message: None)
    with sigterm_as_interrupt():
        result = run_study(out, quick=quick, corpora=tuple(corpora) or DEFAULT_CORPORA, workers=workers,
                           scheduler=scheduler, progress=say)
    if as_json:
        stdout.print_json(json.dumps({"out": str(result.path), "status": result.status, "parts": result.parts,
                                      "report": str(result.report)}))
    elif quiet:
        stdout.print(str(result.path))
    else:
        stdout.print(f"report in {result.report}")
    if result.status != "complete":
        raise BpttbenchError(f"some parts of the study did not complete ({result.parts}); rerun the same command to retry them")


# ----------------------------------------------------------------------------- sample


@cli.command(context_settings={"show_default": True})
@click.argument("run_dir", type=click.Path(path_type=Path))
@option("--scheme", default=None, help="Whose weights, when the run trained several schemes.")
@option("--seed", type=int, default=None, help="Which seed's weights, when the run has several.")
@option("--chars", type=int, default=SAMPLE_CHARS, help="Characters to generate after the prime.")
@option("--temperature", type=float, default=SAMPLE_TEMPERATURE, help="Below 1 sharpens the model's odds, above 1 flattens them.")
@option("--prime", default="", help="Text the model reads before it generates (printed first).")
@option("--rng-seed", type=int, default=0, help="Seed of the draws: the same seed gives the same text.")
@option("--quiet", "-q", is_flag=True, help="Print only the text.")
@option("--json", "as_json", is_flag=True, help="Print the text as JSON on stdout.")
def sample(run_dir, scheme, seed, chars, temperature, prime, rng_seed, quiet, as_json):
    """Print text generated by a run's final weights (saved with `bpttbench run --save-weights`).

    \b
    Examples:
      bpttbench sample results/run-20261125-120000 --scheme single --prime "def "
      bpttbench sample results/run-20261125-120000 --seed 2 --temperature 0.5 --chars 2000
    """
    from bpttbench.sample import sample_run

    drawn = sample_run(run_dir, scheme=scheme, seed=seed, chars=chars, temperature=temperature, prime=prime,
                       rng_seed=rng_seed)
    if as_json:
        stdout.print_json(json.dumps({"out": str(drawn.weights.path), "status": "complete", "text": drawn.text}))
        return
    if not quiet:
        stderr.print(f"{drawn.weights.describe()}, {drawn.weights.path}, temperature {temperature:g}, "
                     f"rng seed {rng_seed}:", markup=False)
    click.echo(drawn.text)  # as generated: rich would expand tabs and read [brackets] as markup


# ----------------------------------------------------------------------------- export


@cli.command(context_settings={"show_default": True})
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@option("--to", "target", nargs=2, required=True, metavar="FORMAT OUT",
        type=(click.Choice(["tensorboard"]), click.Path(path_type=Path)),
        help="What to write and where: tensorboard and a log directory (pip install 'bpttbench[tensorboard]').")
@option("--force", is_flag=True, help="Replace what is already in OUT.")
@option("--quiet", "-q", is_flag=True, help="Print only OUT.")
@option("--json", "as_json", is_flag=True, help="Print what was written as JSON on stdout.")
def export(paths, target, force, quiet, as_json):
    """Write runs' curves for another tool: TensorBoard scalars, one TensorBoard run per configuration and seed.

    \b
    Examples:
      bpttbench export results/ --to tensorboard tb/
      tensorboard --logdir tb/
    """
    from bpttbench.export import export_tensorboard

    _, out = target
    exported = export_tensorboard(paths, out, force=force)
    for skipped, reason in exported.skipped:
        stderr.print(f"skipped {skipped}: {reason}", markup=False)
    if as_json:
        stdout.print_json(json.dumps({"out": str(out), "status": "complete", "runs": exported.runs}))
    elif quiet:
        stdout.print(str(out), markup=False)
    else:
        for name in exported.runs:
            stdout.print(str(out / name), markup=False)
        stderr.print(f"{len(exported.runs)} TensorBoard runs in {out}; view them with: tensorboard --logdir {out}", markup=False)


# ----------------------------------------------------------------------------- entry point


def one_line(message: str) -> str:
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    return " ".join(lines) if lines else "unknown error"


def main(argv=None) -> None:
    """Run the CLI; the one exit path for errors."""
    try:
        cli.main(args=argv, prog_name="bpttbench", standalone_mode=False)
    except (KeyboardInterrupt, click.exceptions.Abort) as exc:
        # click turns a KeyboardInterrupt (and so our Terminated) into Abort, keeping it as the cause.
        if isinstance(exc, Terminated) or isinstance(exc.__cause__, Terminated):
            stderr.print("terminated: the results so far are kept and marked interrupted")
            sys.exit(143)
        stderr.print("interrupted: the results so far are kept and marked interrupted")
        sys.exit(130)
    except click.exceptions.ClickException as exc:
        command = f" {exc.ctx.command_path.split(' ', 1)[1]}" if getattr(exc, "ctx", None) and " " in exc.ctx.command_path else ""
        stderr.print(f"error: {one_line(exc.format_message())} (see bpttbench{command} --help)", markup=False)
        sys.exit(2)
    except BpttbenchError as exc:
        if os.environ.get("BPTTBENCH_DEBUG"):
            raise
        stderr.print(f"error: {one_line(str(exc))}", markup=False)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # not the user's fault: say so in one line
        if os.environ.get("BPTTBENCH_DEBUG"):
            raise
        stderr.print(f"error: {type(exc).__name__}: {one_line(str(exc))} (a bpttbench bug or an environment problem; "
                  "rerun with BPTTBENCH_DEBUG=1 for the traceback)", markup=False)
        sys.exit(1)

"""bpttbench run: train each scheme on a corpus under a budget."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from bpttbench.cli.common import COMMAND, DEFAULT_BUDGET, DEFAULTS, emit_json, one_of, option, output_options, several, sigterm_as_interrupt
from bpttbench.config import CLOCKS, INJECTS, OPTIMIZERS, SCHEMES, format_duration, parse_duration
from bpttbench.console import RunProgress, download_progress, show, stderr, stdout, summary_table
from bpttbench.errors import ConfigError


@click.command(context_settings=COMMAND)
@several("--scheme", "schemes", type=click.Choice([*SCHEMES, "all"]),
         help="Scheme to run; repeat or give a comma list for several, or 'all'. [default: single and sliding]")
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
@option("--budget", default=None, help=f"Training time per scheme and seed, on --clock: 90, 90s, 2m, 1m30s, 1h. [default: {DEFAULT_BUDGET}]")
@option("--clock", type=click.Choice(CLOCKS), default=DEFAULTS.clock,
        help="What --budget and time axes count: the training thread's CPU time (steady under other load) or wall time.")
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
@output_options("the run directory", "Print out (the run directory), status and the summary as JSON on stdout.")
@click.pass_context
def run(ctx, schemes, k1, k2, inject, hidden, batch, optimizer, lr, clip, dtype, budget, clock, steps, seeds, seed, corpus,
        eval_every, eval_chars, log_every, delta, k_max, adapt_every, out, force, save_weights, strict, quiet, as_json):
    """Train each scheme on a corpus under a budget and write a run directory.

    \b
    Examples:
      bpttbench run --scheme single --k2 20
      bpttbench run --scheme single,sliding --k2 20 --budget 2m --seeds 3 --corpus tinyshakespeare
      bpttbench run --scheme all --steps 300 --strict
    """
    from bpttbench.corpus import load_corpus
    from bpttbench.files import check_out_dir
    from bpttbench.precompile import compiling_in_background, corpus_needs_building, kernels_never_compiled
    from bpttbench.runner import check_units_fit, default_out_dir, execute, plan_units

    budget, steps = one_of(ctx, "budget", "steps", "give either --budget (seconds) or --steps, not both")
    seeds, seed = one_of(ctx, "seeds", "seed", "give either --seeds (a count) or --seed (one seed), not both")
    if seeds is not None and seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    budget_seconds = parse_duration(budget if budget is not None else DEFAULT_BUDGET) if steps is None else None
    settings = dict(k1=DEFAULTS.k1 if k1 is None else k1, k2=k2, inject=inject, hidden=hidden, batch=batch,
                    optimizer=optimizer, lr=lr, clip=clip, dtype=dtype, budget_seconds=budget_seconds, clock=clock,
                    budget_steps=steps, log_every=log_every, eval_every=eval_every, eval_chars=eval_chars, delta=delta,
                    k_max=k_max, adapt_every=adapt_every)
    seed_list = [seed] if seed is not None else range(seeds or 1)
    units = plan_units(settings, schemes or ("single", "sliding"), seed_list, k1_given=k1 is not None)
    out_dir = out or default_out_dir()
    check_out_dir(out_dir, force=force)
    chatty = not (quiet or as_json)
    cold = corpus_needs_building(corpus) or kernels_never_compiled()
    with compiling_in_background(units, enabled=cold) as background:  # while the corpus is built
        text = load_corpus(corpus, progress=download_progress() if chatty else None)
        check_units_fit(units, text)  # before the plan is printed, so a refusal is the only line
        if chatty:
            per_unit = f"{format_duration(budget_seconds)}" if budget_seconds else f"{steps:,} steps"
            total = f" = {format_duration(budget_seconds * len(units))} of training" if budget_seconds else ""
            stderr.print(f"{len(units)} runs × {per_unit}{total} (plus compilation and evaluation) "
                         f"on {text.name} ({text.n_chars:,} characters, {text.vocab_size} symbols) → {out_dir}")
        with sigterm_as_interrupt(), RunProgress(units, enabled=chatty) as progress:
            result = execute(units, text, out_dir, force=force, save_weights=save_weights, observer=progress,
                             kernels_ready=background.wait)
    rows = result.summary()
    if as_json:
        emit_json(result.path, result.status, summary=rows)
    elif quiet:
        stdout.print(str(result.path))
    else:
        show(summary_table(rows))
        stdout.print(f"results in {result.path}; draw the figures with: bpttbench plot {result.path}")
    diverged = [u for u in result.units if u.outcome.status == "diverged"]
    for unit in diverged:
        stderr.print(f"warning: {unit.cfg.scheme} seed {unit.cfg.seed} diverged at step {unit.outcome.diverged_at_step}; "
                     "try a lower --lr or a smaller --clip")
    if strict and diverged:
        sys.exit(1)

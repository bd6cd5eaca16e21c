"""bpttbench run: train each scheme on a corpus under a budget."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from bpttbench.cli.common import (COMMAND, config_options, config_settings, emit_json, one_of, option, output_options,
                                  several, sigterm_as_interrupt)
from bpttbench.config import SCHEME_NAMES, field_help, format_duration, parse_duration
from bpttbench.defaults import BUDGET, CORPUS as DEFAULT_CORPUS, DEFAULT_SCHEMES, TRAIN
from bpttbench.console import RunProgress, download_progress, show, stderr, stdout, summary_table
from bpttbench.errors import ConfigError


@click.command(context_settings=COMMAND)
@several("--scheme", "schemes", type=click.Choice([*SCHEME_NAMES, "all"]),
         help="Scheme to run; repeat or give a comma list for several, or 'all'. [default: single and sliding]")
@config_options(defaults={"k1": None}, helps={"k1": f"{field_help('k1')} [default: {TRAIN.k1}; chunked, adaptive: k2]"})
@option("--budget", default=None, help=f"Training time per scheme and seed, on --clock: 90, 90s, 2m, 1m30s, 1h. [default: {BUDGET}]")
@option("--steps", type=int, default=None, help="A budget of time steps instead of seconds.")
@option("--seeds", type=int, default=None, help="Number of seeds: 3 runs seeds 0, 1, 2. [default: 1]")
@option("--seed", type=int, default=None, help="Run this one seed.")
@option("--corpus", default=None, help=f"A built-in corpus name (see `bpttbench corpus list`) or a text file. [default: {DEFAULT_CORPUS}]")
@option("--out", type=click.Path(path_type=Path), default=None, help="Run directory. [default: results/run-<time>]")
@option("--force", is_flag=True, help="Replace what is already in --out.")
@option("--save-weights", is_flag=True, help="Save initial and final weights (PyTorch state_dict layout) and vocab.json.")
@option("--strict", is_flag=True, help="Exit 1 if any scheme diverged (for CI smoke runs).")
@output_options("the run directory", "Print out (the run directory), status and the summary as JSON on stdout.")
@click.pass_context
def run(ctx, schemes, budget, steps, seeds, seed, corpus, out, force, save_weights, strict, quiet, as_json, **settings):
    """Train each scheme on a corpus under a budget and write a run directory.

    \b
    Examples:
      bpttbench run --scheme single --k2 20
      bpttbench run --scheme single,sliding --k2 20 --budget 2m --seeds 3 --corpus tinyshakespeare
      bpttbench run --scheme all --steps 300 --strict
    """
    from bpttbench.data.corpus import load_corpus
    from bpttbench.files import check_out_dir
    from bpttbench.training.precompile import compiling_in_background, corpus_needs_building, kernels_never_compiled
    from bpttbench.training.runner import check_units_fit, default_out_dir, execute, plan_units

    budget, steps = one_of(ctx, "budget", "steps", "give either --budget (seconds) or --steps, not both")
    seeds, seed = one_of(ctx, "seeds", "seed", "give either --seeds (a count) or --seed (one seed), not both")
    if seeds is not None and seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    budget_seconds = parse_duration(budget if budget is not None else BUDGET) if steps is None else None
    seed_list = [seed] if seed is not None else range(seeds or 1)
    units = plan_units({**config_settings(settings), "budget_seconds": budget_seconds, "budget_steps": steps},
                       schemes or DEFAULT_SCHEMES, seed_list)
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

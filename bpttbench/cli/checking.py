"""bpttbench gradcheck: how far truncated gradients are from the exact window gradient."""

from __future__ import annotations

import json
from pathlib import Path

import click

from bpttbench import defaults
from bpttbench.cli.common import (COMMAND, config_options, config_settings, emit_json, option, output_options, several,
                                  sigterm_as_interrupt)
from bpttbench.config import field_help
from bpttbench.defaults import GRADCHECK_FOLLOWS, GRADCHECK_SETTINGS, GRADCHECK_UNUSED, TRAIN
from bpttbench.console import GradcheckProgress, download_progress, gradcheck_table, show, stdout


@click.command(context_settings=COMMAND)
@option("--scheme", type=click.Choice(GRADCHECK_FOLLOWS), default=GRADCHECK_SETTINGS["scheme"],
        help="The scheme whose trajectory is followed; rtrl, snap1 and eprop add each gradient's error against rtrl's "
             "untruncated one, and snap1's, eprop's and uoro's (one sample) against it too (use a small --hidden).")
@several("--k2", "k2s", type=int, help=f"Truncation length; repeat or give a comma list for several. [default: {', '.join(map(str, defaults.GRADCHECK_K2S))}]")
@several("--lr", "lrs", type=float, help=f"Learning rate; repeat or give a comma list for several. [default: {', '.join(f'{lr:g}' for lr in defaults.GRADCHECK_LRS)}]")
@config_options(skip=tuple(GRADCHECK_UNUSED), defaults=GRADCHECK_SETTINGS,
                helps={"dtype": "float64 makes the finite-difference check meaningful."})
@option("--seed", type=int, default=TRAIN.seed, help=field_help("seed"))
@option("--steps", type=int, default=defaults.GRADCHECK_STEPS, help="Time steps per trajectory.")
@option("--every", type=int, default=defaults.GRADCHECK_EVERY, help="Updates between checkpoints.")
@option("--fd-weights", type=int, default=defaults.GRADCHECK_FD_WEIGHTS, help="Weights in the finite-difference subset (0 skips the check).")
@option("--corpus", default=None, help=f"A built-in corpus name or a text file. [default: {defaults.CORPUS}]")
@option("--out", type=click.Path(path_type=Path), default=None, help="Output folder. [default: results/gradcheck-<time>]")
@option("--force", is_flag=True, help="Replace what is already in --out.")
@option("--format", "formats", multiple=True, type=click.Choice(["png", "svg", "pdf"]), help="[default: png and svg]")
@output_options("the output folder", "Print out (the output folder), status, the finite-difference check and the summary as JSON on stdout.")
def gradcheck(scheme, k2s, lrs, seed, steps, every, fd_weights, corpus, out, force, formats, quiet, as_json, **settings):
    """How far are single's and stored's gradients from the exact window gradient along a real trajectory?

    At checkpoints, for the same window and weights: the gradient single and stored would use,
    the exact one (what sliding computes), and finite differences of the exact one (float64).
    Following rtrl, snap1 or eprop, also each of these and the online rules' gradients
    (snap1, eprop, uoro) against rtrl's. Exits 1 if the exact gradient disagrees with finite differences.

    \b
    Examples:
      bpttbench gradcheck --corpus tinyshakespeare
      bpttbench gradcheck --k2 20 --lr 0.1,1.0 --optimizer sgd --clip 1
      bpttbench gradcheck --scheme rtrl --hidden 16 --k2 20 --corpus reber
    """
    from bpttbench.fidelity import gradcheck as checker
    from bpttbench.data.corpus import load_corpus

    chatty = not (quiet or as_json)
    text = load_corpus(corpus, progress=download_progress() if chatty else None)
    out_dir = out or checker.default_out_dir()
    with sigterm_as_interrupt():
        result = checker.gradcheck(text, k2s=k2s or defaults.GRADCHECK_K2S, lrs=lrs or defaults.GRADCHECK_LRS,
                                   steps=steps, every=every, n_fd=fd_weights, out_dir=out_dir, force=force,
                                   formats=formats or ("png", "svg"), observer=GradcheckProgress(chatty),
                                   scheme=scheme, seed=seed, **config_settings(settings))
    summary = result.summary()
    if as_json:
        status = "failed" if result.fd_requested and not result.fd_passed else "complete"
        emit_json(out_dir, status, fd_passed=result.fd_passed, fd_worst=result.fd_worst,
                  summary=json.loads(summary.to_json(orient="records")))
    elif quiet:
        stdout.print(str(out_dir))
    else:
        show(gradcheck_table(summary))
        if result.fd_checked:
            stdout.print(f"finite differences: worst relative error {result.fd_worst:.2g} "
                         f"({'passed' if result.fd_passed else 'FAILED'}, tolerance {checker.FD_TOLERANCE:g})")
        stdout.print(f"results in {out_dir}")
    result.raise_if_failed()

"""bpttbench sweep and study: grids of runs on Dask, and the preset study built from them."""

from __future__ import annotations

from pathlib import Path

import click

from bpttbench.cli.common import COMMAND, emit_json, option, output_options, several, sigterm_as_interrupt
from bpttbench.config import CELL_NAMES, CLOCKS, field_help
from bpttbench.defaults import TRAIN
from bpttbench.console import (SweepProgress, download_progress, print_grid, replication_table, show, stderr, stdout,
                               sweep_headline, sweep_table)
from bpttbench.errors import BpttbenchError

SCHEDULER_ENV = "BPTTBENCH_SCHEDULER"  # shared by sweep and study: one cluster address for both


def scheduler_option(f):
    return option("--scheduler", default=None, envvar=SCHEDULER_ENV,
                  help="A running Dask scheduler (tcp://HOST:8786) to use instead of a local cluster.")(f)


@click.command(context_settings=COMMAND)
@click.argument("spec_file", metavar="SPEC.toml", type=click.Path(path_type=Path))
@option("--set", "overrides", multiple=True, metavar="KEY=V1,V2",
        help="Override a spec key: a parameter (k2=5,10,20) or seeds, schemes, budget, steps, corpus. Repeatable.")
@option("--out", type=click.Path(path_type=Path), default=None,
        help="Sweep directory; rerunning with the same one resumes. [default: results/<spec name>]")
@option("--workers", type=int, default=None, help="Local worker processes, one thread each. [default: the machine's cores]")
@scheduler_option
@option("--dry-run", is_flag=True, help="List the runs and the total budget; run nothing.")
@output_options("the sweep directory", "Print out (the sweep directory), status, the counts and the summary as JSON on stdout.")
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
    from bpttbench.data.corpus import load_corpus
    from bpttbench.sweep import (check_cluster, check_grid_size, check_sweep_dir, count_complete, default_workers,
                                 disk_states, load_spec, plan_sweep, run_sweep)

    check_cluster(workers, scheduler)  # run_sweep checks too; here it comes before the corpus loads
    spec = load_spec(spec_file, overrides)
    check_grid_size(spec)  # from the axes' lengths, before the corpus loads or any point is built
    chatty = not (quiet or as_json)
    plan = plan_sweep(spec, load_corpus(spec.corpus, progress=download_progress() if chatty else None))
    out_dir = out or Path("results") / spec.name
    check_sweep_dir(out_dir)  # before the plan is printed, so a refusal is the only line
    complete = count_complete(out_dir, plan)
    headline = sweep_headline(plan, out_dir, complete, workers or default_workers(), scheduler)
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
        emit_json(result.path, result.status, counts=result.counts(), summary=rows)
    elif quiet:
        stdout.print(str(result.path))
    else:
        show(sweep_table(rows, spec.swept))
        stdout.print(f"results in {result.path}; draw the figures with: bpttbench plot {result.path}")
    failed = result.counts()["failed"]
    if failed:
        raise BpttbenchError(f"{failed} of {len(result.points)} runs failed (errors in {result.path / 'sweep.json'}); "
                             "rerun the same command to retry them")


@click.command(context_settings=COMMAND)
@option("--out", type=click.Path(path_type=Path), default=Path("results/study"),
        help="Study directory; rerunning with the same one resumes.")
@option("--workers", type=int, default=None, help="Local worker processes, one thread each. [default: the machine's cores]")
@scheduler_option
@option("--quick", is_flag=True, help="A smaller study that takes a few minutes: a first look, and for CI.")
@option("--long", is_flag=True, help="Claim 4 at convergence: runs to a plateau on generated corpora with a known "
                                     "optimum and on the text corpora (about 40 minutes on 2 cores).")
@several("--corpus", "corpora",
         help="Corpus to study, repeatable or a comma list (the map uses the first). [default: stdlib-docs and stdlib-source, built in]")
@option("--clock", type=click.Choice(CLOCKS), default=TRAIN.clock, help=field_help("clock"))
@option("--cell", type=click.Choice(CELL_NAMES), default=TRAIN.cell,
        help="The recurrent cell; for gru and rnn the study is the claims part (the map is the LSTM's).")
@output_options("the study directory", "Print out (the study directory), status, the parts and the report as JSON on stdout.")
def study(out, workers, scheduler, quick, long, corpora, clock, cell, quiet, as_json):
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

    chatty = not (quiet or as_json)
    say = (lambda message: stderr.print(message, markup=False)) if chatty else (lambda message: None)
    with sigterm_as_interrupt():
        result = run_study(out, quick=quick, long=long, corpora=tuple(corpora) or DEFAULT_CORPORA, workers=workers,
                           scheduler=scheduler, clock=clock, cell=cell, progress=say)
    if as_json:
        emit_json(result.path, result.status, parts=result.parts, report=str(result.report),
                  replication=result.replication)
    elif quiet:
        stdout.print(str(result.path))
    else:
        if result.replication:
            show(replication_table(result.replication))
        stdout.print(f"report in {result.report}")
    if result.status != "complete":
        raise BpttbenchError(f"some parts of the study did not complete ({result.parts}); rerun the same command to retry them")

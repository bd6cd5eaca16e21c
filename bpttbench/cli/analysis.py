"""bpttbench plot, report and export: read finished runs and write figures, a report, other tools' files."""

from __future__ import annotations

from pathlib import Path

import click

from bpttbench import defaults
from bpttbench.cli.common import COMMAND, emit_json, option, output_options
from bpttbench.config import parse_duration
from bpttbench.console import show, stderr, stdout
from bpttbench.errors import UserError


@click.command(context_settings=COMMAND)
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path), metavar="[PATH]...")
@option("--out", type=click.Path(path_type=Path), default=None, help="Where the figures go. [default: the first PATH]")
@option("--logx", is_flag=True, help="Logarithmic x axis.")
@option("--smooth", type=int, default=None, help="Step-weighted moving average over this many log points, as in "
                                                 "`report` (1 = none). [default: 5]")
@option("--format", "formats", multiple=True, type=click.Choice(["png", "svg", "pdf"]), help="[default: png and svg]")
@output_options("the figures' paths (no notes on skipped runs)",
                "Print out (the figures' folder), status and the figures written as JSON on stdout.")
def plot(paths, out, logx, smooth, formats, quiet, as_json):
    """Draw loss against time and against steps from run directories, sweeps or folders of runs
    (default: results/), all in the same figures.

    \b
    Examples:
      bpttbench plot results/run-20261125-120000
      bpttbench plot results/run-A results/run-B --out figures/
      bpttbench plot results/ --logx --out figures/
    """
    from bpttbench.plot import plot_runs

    paths = paths or (Path("results"),)
    written = plot_runs(*paths, out=out, logx=logx, smooth=smooth, formats=formats or ("png", "svg"))
    if not (quiet or as_json):
        for skipped, reason in written.skipped:
            stderr.print(f"skipped {skipped}: {reason}", markup=False)
    if not written:
        raise UserError(f"no complete runs to plot under {', '.join(map(str, paths))}; "
                        "finish a run with `bpttbench run` first")
    if as_json:
        emit_json(Path(written[0]).parent, "complete", figures=[str(f) for f in written],
                  skipped=[{"path": str(p), "reason": r} for p, r in written.skipped])
        return
    for figure in written:
        stdout.print(str(figure), markup=False)


@click.command(context_settings=COMMAND)
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path), metavar="[PATH]...")
@option("--out", type=click.Path(path_type=Path), default=None,
        help="Folder for report.md and report.json. [default: PATH, the first PATH when there are several]")
@option("--delta", type=float, default=defaults.DELTA, help="Bits/char within which two schemes count as 'about the same'.")
@option("--target", type=float, default=None, help="Target loss for time/steps-to-target. [default: worst final loss]")
@option("--at-time", default=None, help="Compare at this training time (90s, 2m, 1m30s). [default: the common budget]")
@option("--at-steps", type=int, default=None, help="Compare at this many steps. [default: the smallest common count]")
@option("--smooth", type=int, default=defaults.SMOOTH, help="Moving average over this many log points.")
@output_options("the report's path", "Print out (report.md), status and the report as JSON on stdout.")
def report(paths, out, delta, target, at_time, at_steps, smooth, quiet, as_json):
    """Paired scheme comparisons with 95% intervals, and verdicts on the question's claims.

    PATH... are run directories or folders of runs (default: results); the report reads every
    complete run and gradcheck under all of them, each run once.

    \b
    Examples:
      bpttbench report results/run-20261125-120000
      bpttbench report results/ --delta 0.02 --at-time 60s
      bpttbench report results/k2 results/gradcheck --out results/k2
    """
    from bpttbench.report import build_report, rich_renderables, write_report

    built = build_report(*(paths or (Path("results"),)), target_loss=target, at_time=parse_duration(at_time) if at_time else None,
                         at_steps=at_steps, delta=delta, smooth=smooth)
    written = write_report(built, out)
    if not quiet:
        for skipped, reason in built.skipped:
            stderr.print(f"skipped {skipped}: {reason}", markup=False)
        for warning in built.warnings:
            stderr.print(f"warning: {warning}", markup=False)
    if as_json:
        emit_json(written, "complete", report=str(written), **built.to_dict())
    elif quiet:
        stdout.print(str(written), markup=False)
    else:
        for renderable in rich_renderables(built):
            show(renderable)
        stdout.print(f"report in {written}")


@click.command(context_settings=COMMAND)
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@option("--to", "target", nargs=2, required=True, metavar="FORMAT OUT",
        type=(click.Choice(["tensorboard"]), click.Path(path_type=Path)),
        help="What to write and where: tensorboard and a log directory (pip install 'bpttbench[tensorboard]').")
@option("--force", is_flag=True, help="Replace what is already in OUT.")
@output_options("OUT", "Print out (OUT), status and the runs written as JSON on stdout.")
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
        emit_json(out, "complete", runs=exported.runs)
    elif quiet:
        stdout.print(str(out), markup=False)
    else:
        for name in exported.runs:
            stdout.print(str(out / name), markup=False)
        stderr.print(f"{len(exported.runs)} TensorBoard runs in {out}; view them with: tensorboard --logdir {out}", markup=False)

"""bpttbench speed: microseconds per time step of each scheme, beside its bound and its peers."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import click

from bpttbench.cli.common import COMMAND, emit_json, option, output_options, several
from bpttbench.config import CELL_NAMES, DTYPES, OPTIMIZERS, SCHEME_NAMES
from bpttbench.defaults import SPEED_MIN_TIME, SPEED_REPEATS, TRAIN
from bpttbench.console import show, speed_table, stderr, stdout, targets_table
from bpttbench.errors import UserError


@click.command(context_settings=COMMAND)
@several("--scheme", "schemes", type=click.Choice([*SCHEME_NAMES, "all"]),
         help="Repeatable or a comma list; 'all' is the truncated schemes (the untruncated ones only when named, without a bound). [default: all]")
@several("--cell", "cells", type=click.Choice(CELL_NAMES), help=f"Cells; repeatable or a comma list. [default: {TRAIN.cell}]")
@several("--hidden", type=int, help=f"Hidden sizes; repeatable or a comma list. [default: {TRAIN.hidden}]")
@several("--k2", type=int, help=f"Truncation lengths; repeatable or a comma list (chunked: k1 = k2). [default: {TRAIN.k2}]")
@several("--batch", type=int, help=f"Batch sizes; repeatable or a comma list. [default: {TRAIN.batch}]")
@option("--k1", type=int, default=TRAIN.k1, help="Steps between updates (single, stored, sliding).")
@several("--dtype", "dtypes", type=click.Choice(DTYPES), help=f"Repeatable or a comma list. [default: {TRAIN.dtype}]")
@option("--repeats", type=int, default=SPEED_REPEATS, help="Samples per timer; medians are reported.")
@option("--min-time", type=float, default=SPEED_MIN_TIME, help="Seconds per sample.")
@option("--optimizer", type=click.Choice(OPTIMIZERS), default=TRAIN.optimizer,
        help="sgd times plain SGD only; adam also times Adam's update and reports its extra cost over SGD.")
@several("--against",
         help="Also time peers: torch, jax; repeatable or a comma list (pip install 'bpttbench[torch,jax]'). "
              "Speed-ups are against the faster peer of each row.")
@option("--against-torch", is_flag=True, help="Same as --against torch.")
@option("--out", type=click.Path(path_type=Path), default=None, help="Folder for speed.csv/.json/.png. [default: results/speed-<time>]")
@option("--force", is_flag=True, help="Replace what is already in --out.")
@output_options("the output folder", "Print out (the output folder), status and the rows as JSON on stdout.")
def speed(schemes, cells, hidden, k2, batch, k1, dtypes, repeats, min_time, optimizer, against, against_torch, out, force,
          quiet, as_json):
    """Microseconds per time step of each scheme beside its BLAS lower bound (and PyTorch, JAX).

    Plain SGD, one BLAS thread, medians of interleaved samples; ratios are taken within one run.

    \b
    Examples:
      bpttbench speed
      bpttbench speed --k2 5,20,50,200 --scheme single,sliding
      bpttbench speed --against torch,jax --batch 1,32
    """
    from bpttbench.files import check_out_dir, clear_dir
    from bpttbench.training.runner import default_out_dir
    from bpttbench.speed import PEERS, TIMED_SCHEMES as TIMED, measure_speed, speed_targets, write_speed

    names = list(dict.fromkeys(s for n in (schemes or ("all",)) for s in (TIMED if n == "all" else (n,))))
    grid = dict(hidden=hidden or (TRAIN.hidden,), k2=k2 or (TRAIN.k2,), batch=batch or (TRAIN.batch,))
    peers = list(dict.fromkeys([*against, *(["torch"] if against_torch else [])]))
    for peer in peers:
        if peer not in PEERS:
            raise UserError(f"--against takes {', '.join(PEERS)} (a comma list), got {peer!r}")
    out_dir = out or default_out_dir(prefix="speed")
    check_out_dir(out_dir, force=force)  # before the timing, so a refusal comes at once
    chatty = not (quiet or as_json)
    with stderr.status("timing") if chatty else nullcontext() as status:
        rows = measure_speed(names, grid["hidden"], grid["k2"], grid["batch"], k1=k1, dtypes=dtypes or (TRAIN.dtype,),
                             repeats=repeats, min_time=min_time, adam=optimizer == "adam", against=peers,
                             cells=cells or (TRAIN.cell,), progress=(lambda message: status.update(f"timing {message}")) if chatty else None)
    parameters = dict(schemes=names, cells=list(cells or (TRAIN.cell,)), k1=k1, dtypes=list(dtypes or (TRAIN.dtype,)), repeats=repeats, min_time=min_time,
                      adam=optimizer == "adam", against=peers, **{k: list(v) for k, v in grid.items()})
    paths = write_speed(rows, clear_dir(out_dir, force=force), parameters=parameters)
    if as_json:
        emit_json(out_dir, "complete", rows=rows.to_dict(orient="records"))
    elif quiet:
        stdout.print(str(out_dir), markup=False)
    else:
        show(speed_table(rows, peers))
        targets = speed_targets(rows)
        if len(targets):
            show(targets_table(targets))
        stdout.print(f"results in {out_dir}: " + ", ".join(p.name for p in paths))

"""What the command line shows: the consoles, progress observers and result tables.

Results go to `stdout`, everything else (progress, warnings, errors) to `stderr`. Tables go
through `show`: a rich table on a terminal, plain markdown when stdout is a pipe or a file,
so that `bpttbench speed | cat` keeps whole column names and a script can read the rows.
"""

from __future__ import annotations

import math
from pathlib import Path

import click
from rich.console import Console
from rich.errors import MarkupError
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from bpttbench.config import TrainConfig, format_duration
from bpttbench.defaults import TIME_UNITS

stdout = Console(highlight=False, soft_wrap=True)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)


# ----------------------------------------------------------------------------- tables


def _plain(cell) -> str:
    """A cell's text as a terminal would show it (rich reads str cells as markup), on one line."""
    if isinstance(cell, Text):
        text = cell.plain
    else:
        try:
            text = Text.from_markup(str(cell)).plain
        except MarkupError:
            text = str(cell)
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(table: Table) -> str:
    """A rich table as a markdown table (title as a line above, no header row for a headerless table)."""
    columns = table.columns
    cells = [[_plain(c) for c in column.cells] for column in columns]
    rows = [[column[i] for column in cells] for i in range(table.row_count)]
    header = [_plain(c.header) for c in columns] if table.show_header else [""] * len(columns)
    rule = [":--" if c.justify == "left" or c.justify == "default" else "--:" for c in columns]
    lines = [f"{_plain(table.title)}", ""] if table.title else []
    lines += ["| " + " | ".join(line) + " |" for line in (header, rule, *rows)]
    return "\n".join(lines) + "\n"


def show(renderable) -> None:
    """Print a table or other renderable on stdout: rich on a terminal, markdown on a pipe."""
    if isinstance(renderable, Table) and not stdout.is_terminal:
        click.echo(markdown(renderable))
    else:
        stdout.print(renderable)


def new_table(title: str | None, columns, *, left=("scheme",), show_header: bool = True) -> Table:
    table = Table(title=title, show_header=show_header)
    for name in columns:
        table.add_column(name, justify="left" if name in left else "right")
    return table


def number(value, fmt: str) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, fmt)


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
            return f"{record.time_s(cfg.clock):.0f}/{cfg.budget_seconds:.0f} {TIME_UNITS[cfg.clock]}"
        return f"{record.step}/{cfg.budget_steps}"

    def unit_started(self, index, cfg):
        self.progress.update(self.tasks[index], where="compiling")

    def compiled(self, index, cfg, seconds):
        self.progress.update(self.tasks[index], where="training")

    def record(self, index, cfg, record):
        seconds = record.time_s(cfg.clock)
        done = seconds if cfg.budget_seconds is not None else record.step
        loss = f"{record.train_bpc:.3f} bpc"
        if record.val_bpc is not None:
            loss += f" val {record.val_bpc:.2f}"
        rate = f"{record.step / seconds:,.0f} step/{TIME_UNITS[cfg.clock]}" if seconds > 0 else ""
        self.progress.update(self.tasks[index], completed=done, where=self.where(cfg, record), rate=rate, loss=loss)

    def unit_finished(self, index, cfg, outcome):
        total = self.progress.tasks[self.tasks[index]].total
        where = f"diverged @{outcome.diverged_at_step}" if outcome.status == "diverged" else "done"
        self.progress.update(self.tasks[index], completed=total, where=where)


def summary_table(rows: list[dict]) -> Table:
    cells = ", ".join(dict.fromkeys(str(r.get("cell", "lstm")) for r in rows))
    table = new_table(f"summary ({cells}; medians over seeds; losses in bits/char)",
                      ("scheme", "k1", "k2", "seeds", "steps", "updates", "steps/s", "final online", "final val"))
    for r in rows:
        scheme = r["scheme"] + (" (window)" if r["inject"] == "window" else "")
        seeds = f"{r['seeds']}" + (f" ({r['diverged']} diverged)" if r["diverged"] else "")
        table.add_row(scheme, str(r["k1"]), str(r["k2"]), seeds, number(r["steps"], ",.0f"), number(r["updates"], ",.0f"),
                      number(r["steps_per_s"], ",.0f"), number(r["final_train_bpc"], ".3f"), number(r["final_val_bpc"], ".3f"))
    return table


def replication_table(rows: list[dict]) -> Table:
    """This study's claims beside the shipped reference study's (report.replication.replication_rows)."""
    table = new_table("replication of the shipped reference study (bits/char; 95% intervals)",
                      ("claim", "corpus", "this study", "reference", "agree"))
    for r in rows:
        agree = "–" if r["agree"] is None else ("yes" if r["agree"] else "no")
        table.add_row(r["claim"], r["corpus"], r["this"], r["reference"], f"{agree}: {r['why']}")
    return table


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


def gradcheck_table(summary) -> Table:
    table = new_table("relative error against the exact window gradient (whole gradient, over checkpoints)",
                      ("k2", "optimizer", "lr", "estimator", "checkpoints", "median", "max", "cosine median", "drift"),
                      left=("optimizer", "estimator"))
    for row in summary.itertuples():
        table.add_row(str(row.k2), row.optimizer, f"{row.lr:g}", row.estimator, str(row.checkpoints),
                      f"{row.rel_error_median:.3g}", f"{row.rel_error_max:.3g}", f"{row.cosine_median:.5f}",
                      f"{row.drift_median:.3g}")
    return table


# ----------------------------------------------------------------------------- speed


def speed_table(rows, peers) -> Table:
    """Microseconds per step of each row, its bound and ratio, Adam's extra cost (Adam with clip 1,
    the default optimizer) beside the optimizer bound, and the peers'."""
    columns = [("scheme", "scheme", "{}"), ("cell", "cell", "{}"), ("H", "hidden", "{}"), ("k2", "k2", "{}"),
               ("B", "batch", "{}"),
               ("dtype", "dtype", "{}"), ("us/step", "us_per_step", "{:.1f}"), ("bound", "bound_us", "{:.1f}"),
               ("ratio", "ratio", "{:.2f}"), ("Adam extra", "adam_extra_us", "{:+.0f}"),
               ("Adam / SGD", "adam_ratio", "{:.2f}"), ("optimizer bound", "optimizer_bound_us", "{:.0f}"),
               *((peer, f"{peer}_us_per_step", "{:.0f}") for peer in peers),
               ("fastest peer / ours", "peer_speedup", "{:.1f}x")]
    columns = [c for c in columns if c[1] in rows.columns and (peers or not c[1].startswith("peer"))]

    def cell(row, key, fmt):
        if row[key] is None or row[key] != row[key]:
            return "-"
        return fmt.format(row[key]) + (f" ({row['peer']})" if key == "peer_speedup" else "")

    backend = rows.attrs.get("blas_backend")
    blas = f"{backend['name']} BLAS ({backend['version']}, from {backend['source']})" if backend else "BLAS"
    table = new_table(f"microseconds per time step (CPU, median; plain SGD, {blas} on one thread)",
                      [title for title, _, _ in columns], left=("scheme", "cell", "dtype"))
    for row in rows.to_dict("records"):
        table.add_row(*(cell(row, key, fmt) for _, key, fmt in columns))
    return table


def targets_table(targets) -> Table:
    table = new_table("speed targets", [str(name) for name in targets.columns], left=tuple(map(str, targets.columns)))
    for row in targets.itertuples(index=False):
        table.add_row(*("-" if v is None or v != v else f"{v:.3g}" if isinstance(v, float) else str(v) for v in row))
    return table


# ----------------------------------------------------------------------------- corpus


def corpora_table(rows: list[dict]) -> Table:
    table = new_table(None, ("name", "size", "cached", "description"), left=("name", "size", "cached", "description"))
    for row in rows:
        size = f"{row['size']:,}" if row.get("size") else "-"
        table.add_row(row["name"], size, "yes" if row.get("cached") else "no", row.get("description", ""))
    return table


def corpus_table(info: dict, vocab: str) -> Table:
    table = new_table(None, ("key", "value"), left=("key", "value"), show_header=False)
    for key, value in info.items():
        table.add_row(key, f"{value:,}" if isinstance(value, int) else str(value))
    table.add_row("vocabulary", vocab)
    return table


# ----------------------------------------------------------------------------- sweep


def point_label(cfg, swept) -> str:
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
        self.rows[point.id] = self.progress.add_task(point_label(cfg, self.swept), total=total, where=f"on {host}", loss="")
        self.progress.update(self.grid, loss=self._grid_text())

    def point_record(self, point, msg):
        if point.id not in self.rows:
            return
        cfg = point.cfg
        timed = cfg.budget_seconds is not None
        digits = 1 if timed and cfg.budget_seconds < 10 else 0
        where = (f"{msg['time_s']:.{digits}f}/{cfg.budget_seconds:.{digits}f} {TIME_UNITS[cfg.clock]}" if timed
                 else f"{msg['step']}/{cfg.budget_steps}")
        loss = f"{msg['train_bpc']:.3f} bpc" + (f" val {msg['val_bpc']:.2f}" if msg.get("val_bpc") is not None else "")
        self.progress.update(self.rows[point.id], completed=msg["time_s"] if timed else msg["step"], where=where, loss=loss)

    def point_finished(self, point, state, entry):
        if point.id in self.rows:
            self.progress.remove_task(self.rows.pop(point.id))
        self.counts[state] = self.counts.get(state, 0) + 1
        self.progress.update(self.grid, advance=1, loss=self._grid_text())
        if state == "failed":
            stderr.print(f"failed: {point_label(point.cfg, self.swept)}: {entry.get('error')}", markup=False)


def sweep_table(rows: list[dict], swept) -> Table:
    extra = [k for k in swept if k not in ("k1", "k2")]
    table = new_table("sweep summary (medians over seeds; losses in bits/char)",
                      ("scheme", "k1", "k2", *extra, "seeds", "steps", "steps/s", "final online", "final val"))
    for r in rows:
        seeds = f"{r['complete']}/{r['runs']}" + (f" ({r['failed']} failed)" if r["failed"] else "") + (
            f" ({r['diverged']} diverged)" if r["diverged"] else "")
        table.add_row(r["scheme"], str(r["k1"]), str(r["k2"]), *(f"{r[k]:g}" if isinstance(r[k], float) else str(r[k]) for k in extra),
                      seeds, number(r["steps"], ",.0f"), number(r["steps_per_s"], ",.0f"), number(r["final_train_bpc"], ".3f"),
                      number(r["final_val_bpc"], ".3f"))
    return table


def sweep_headline(plan, out_dir: Path, complete: int, workers: int, scheduler: str | None) -> str:
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
    table = new_table(None, ("id", *extra, "state"), left=("id", *extra, "state"))
    for row in rows:
        table.add_row(*row)
    show(table)

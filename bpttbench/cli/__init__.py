"""The bpttbench command line: parse, call the library, show the outcome.

One module per command family; what they show lives in bpttbench.console. Results go to stdout
and everything else (progress, warnings, errors) to stderr. Every error leaves through `main`:
one line naming the problem and the fix, exit code 2 for the user's mistakes, 1 for failures
that are not, 130/143 for Ctrl-C/SIGTERM; never a traceback (set BPTTBENCH_DEBUG=1 to see one).
Options read BPTTBENCH_<COMMAND>_<OPTION> from the environment (see bpttbench.cli.common).
"""

from __future__ import annotations

import os
import sys

import click

from bpttbench import __version__
from bpttbench.cli.analysis import export, plot, report
from bpttbench.cli.checking import gradcheck
from bpttbench.cli.common import Terminated, option
from bpttbench.cli.corpora import corpus
from bpttbench.cli.grids import study, sweep
from bpttbench.cli.running import run
from bpttbench.cli.sampling import sample
from bpttbench.cli.timing import speed
from bpttbench.console import stderr
from bpttbench.errors import BpttbenchError
from bpttbench.files import one_line

ENV_PREFIX = "BPTTBENCH"


@click.group(invoke_without_command=True,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100,
                               "auto_envvar_prefix": ENV_PREFIX})
@click.version_option(__version__, prog_name="bpttbench")
@click.pass_context
def cli(ctx):
    """Which truncated-BPTT scheme learns fastest online, and how exact is its gradient?

    \b
    Examples:
      bpttbench run                                  # single vs sliding, 60 s each, built-in corpus
      bpttbench run --scheme single --k2 20
      bpttbench run --scheme all --steps 300 --strict     # a CI smoke run
      bpttbench plot results/
    """
    if ctx.invoked_subcommand is None:  # a bare `bpttbench` asks what there is: the help, exit 0
        click.echo(ctx.get_help())


for command in (run, plot, gradcheck, speed, report, corpus, sweep, study, sample, export):
    cli.add_command(command)


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


__all__ = ["cli", "export", "gradcheck", "main", "option", "plot", "report", "run", "sample", "speed", "study", "sweep", "corpus"]

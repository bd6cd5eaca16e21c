"""bpttbench corpus list and info."""

from __future__ import annotations

import click

from bpttbench.cli.common import emit_json, output_options
from bpttbench.console import corpora_table, corpus_table, download_progress, show, stdout


@click.group(invoke_without_command=True)
@click.pass_context
def corpus(ctx):
    """The corpora bpttbench knows: built-in and downloadable ones, or any text file."""
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


@corpus.command("list")
@output_options("the names, one a line", "Print out (null), status and the corpora as JSON on stdout.")
def corpus_list(quiet, as_json):
    """List the built-in, generated and registered corpora, and whether they are cached."""
    from bpttbench.data.corpus import list_corpora

    rows = list_corpora()
    if as_json:
        emit_json(None, "complete", corpora=rows)
    elif quiet:
        for row in rows:
            stdout.print(row["name"], markup=False)
    else:
        show(corpora_table(rows))


@corpus.command("info")
@click.argument("spec")
@output_options("the corpus's sha256", "Print out (null), status and the corpus's facts as JSON on stdout.")
def corpus_info(spec, quiet, as_json):
    """Size, vocabulary, checksum and split of a corpus name or file."""
    from bpttbench.data.corpus import load_corpus

    text = load_corpus(spec, progress=None if quiet or as_json else download_progress())
    info = text.info()
    vocab = "".join(text.vocab)
    if as_json:
        emit_json(None, "complete", corpus={**info, "vocabulary": vocab})
    elif quiet:
        stdout.print(str(info.get("sha256")), markup=False)
    else:
        show(corpus_table(info, vocab.encode("unicode_escape").decode("ascii")[:200]))

"""The second built-in corpus's text: the standard library's source code, in a seeded order.

Made like stdlib-docs (bpttbench.data.stdlib_docs) from this Python's source files: nothing imported,
nothing downloaded, the same standard library gives the same text on every machine. Docstrings are
English prose; this is code, a text of a different character, so a study can compare the schemes
on two kinds of text with no network. bpttbench.data.corpus caches it as the `stdlib-source` corpus.
"""

from __future__ import annotations

import ast
import io
import os
import sysconfig
import tokenize
import warnings
from pathlib import Path

from bpttbench.data.stdlib_docs import _order_key, _stdlib_sources, _utf8_encodable

# Bump when the extraction rule changes, so that texts cached under an older rule are not reused.
STDLIB_SOURCE_RULE = 1
# The chunks are put in an order drawn from this seed (part of the corpus's definition), for the
# reason stdlib-docs is shuffled: any stretch of the text is then a sample of the whole library.
STDLIB_SOURCE_ORDER_SEED = "bpttbench-stdlib-source-1"
# About stdlib-docs' 1.69 M characters, so a whole-split validation costs the same on both built-in corpora.
STDLIB_SOURCE_CHARS = 1_700_000
# A longer statement is nearly always a data table, not code (CPython 3.11: 87 of the 98 between 10,000
# and 17,000 characters are codecs' tables; above, pydoc's 756,000-character topics dict), one long
# easy stretch: left out, the spread of a trigram's loss over 10,000-character windows fell 0.18 -> 0.12.
STDLIB_SOURCE_MAX_CHUNK = 10_000


def stdlib_source_text(root: str | os.PathLike | None = None, *, shuffled: bool = True,
                       max_chars: int | None = STDLIB_SOURCE_CHARS) -> str:
    """The source code of the standard library's files under `root` (default: this Python's), in chunks.

    Deterministic for a given standard library: files sorted by relative path, the same directories
    skipped as for stdlib-docs, files that fail to decode or parse skipped; each file cut into chunks
    (see _chunks), each keyed by (file, position in the file); chunks holding a NUL, a character
    UTF-8 cannot encode, or more than STDLIB_SOURCE_MAX_CHUNK characters left out; then ordered by a
    seeded hash of the key (STDLIB_SOURCE_ORDER_SEED), joined by blank lines, and cut after the last
    chunk that keeps the text within `max_chars` characters (None: no cap). `shuffled=False` gives
    source order.
    """
    root = Path(sysconfig.get_paths()["stdlib"] if root is None else root)
    keyed = []
    for rel in _stdlib_sources(root):
        try:
            chunks = _chunks((root / rel).read_bytes(), rel)
        except (OSError, SyntaxError, ValueError, UnicodeError, RecursionError, LookupError):
            continue
        keyed.extend((_order_key(rel, i, STDLIB_SOURCE_ORDER_SEED), chunk)
                     for i, chunk in enumerate(chunks) if _usable(chunk))
    if shuffled:
        keyed.sort(key=lambda pair: pair[0])
    taken, size = [], 0
    for _, chunk in keyed:
        grown = size + len(chunk) + (2 if taken else 0)  # "\n\n" between chunks
        if max_chars is not None and grown > max_chars:
            break
        taken.append(chunk)
        size = grown
    return "\n\n".join(taken)


def _chunks(source: bytes, rel: str) -> list[str]:
    """The file's text cut after each top-level statement and after each statement of a top-level
    class's body, each chunk verbatim less the blank lines at its two ends.

    The comments and blank lines before a statement go with it, what follows the last one with the
    last chunk: in source order the chunks hold every non-blank line of the file.
    """
    encoding, _ = tokenize.detect_encoding(io.BytesIO(source).readline)  # PEP 263 coding lines, a BOM
    # Universal newlines, as the parser counts lines (a form feed is not a line break to it, nor here).
    text = source.decode(encoding).replace("\r\n", "\n").replace("\r", "\n")
    with warnings.catch_warnings():  # invalid escapes and the like in old sources
        warnings.simplefilter("ignore")
        tree = ast.parse(text, filename=rel)
    lines = text.split("\n")
    # Statements, not blank-line blocks: a blank line inside a string or a function is no boundary, and
    # a class's members are cut apart because one class (_pydecimal's Decimal, 119,000 characters) would
    # otherwise be a long stretch of one module.
    ends = []
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            ends.extend(member.end_lineno for member in node.body)
        ends.append(node.end_lineno)
    cuts = sorted(set(ends))[:-1] + [len(lines)]  # two statements on one line stay together
    chunks, start = [], 0
    for cut in cuts:
        piece = lines[start:cut]
        start = cut
        while piece and not piece[0].strip():
            piece.pop(0)
        while piece and not piece[-1].strip():
            piece.pop()
        if piece:
            chunks.append("\n".join(piece))
    return chunks


def _usable(chunk: str) -> bool:
    return len(chunk) <= STDLIB_SOURCE_MAX_CHUNK and "\0" not in chunk and _utf8_encodable(chunk)

"""The built-in default corpus's text: the standard library's docstrings, in a seeded order.

Read with `ast` from this Python's source files: nothing is imported, nothing is downloaded, and
the same standard library gives the same text on every machine. bpttbench.data.corpus caches it and
turns it into the `stdlib-docs` corpus.
"""

from __future__ import annotations

import ast
import hashlib
import os
import sysconfig
import warnings
from pathlib import Path
from typing import Iterator

# Bump when the extraction rule changes, so that texts cached under an older rule are not reused.
STDLIB_DOCS_RULE = 2
# The docstrings are put in an order drawn from this seed (part of the corpus's definition). In
# source order the text was not stationary: 32,000 characters of the decimal module's near-identical
# doctests made every model's loss dive to 1 bit/char and jump back, so a figure showed the text
# rather than the schemes. Shuffled, any stretch of the text is a sample of the whole library.
STDLIB_DOCS_ORDER_SEED = "bpttbench-stdlib-docs-1"
# Tests, the IDE and third-party packages are not the library's own prose.
STDLIB_SKIP_DIRS = frozenset({"test", "tests", "idlelib", "site-packages", "dist-packages", "__pycache__"})


def stdlib_docs_text(root: str | os.PathLike | None = None, *, shuffled: bool = True) -> str:
    """The docstrings of the standard library's source files under `root` (default: this Python's).

    Deterministic for a given standard library: files sorted by relative path, test and IDE
    directories skipped, files that fail to decode or parse skipped; the module, class and function
    docstrings (`ast.get_docstring(clean=True)`), each keyed by (file, position in the file); then
    ordered by a seeded hash of that key (see STDLIB_DOCS_ORDER_SEED), joined by blank lines. The
    hash, not a random generator, fixes the order, so it is the same on every NumPy and Python.
    `shuffled=False` gives source order, the text before the shuffle (benchmarks/stationarity.py).
    """
    root = Path(sysconfig.get_paths()["stdlib"] if root is None else root)
    keyed = []
    for rel in _stdlib_sources(root):
        try:
            source = (root / rel).read_bytes()
            with warnings.catch_warnings():  # invalid escapes and the like in old sources
                warnings.simplefilter("ignore")
                tree = ast.parse(source, filename=rel)  # bytes: honours PEP 263 coding lines
            docs = list(_docstrings(tree))
        except (OSError, SyntaxError, ValueError, UnicodeError, RecursionError):
            continue
        keyed.extend((_order_key(rel, i), doc) for i, doc in enumerate(docs))
    if shuffled:
        keyed.sort(key=lambda pair: pair[0])
    return "\n\n".join(doc for _, doc in keyed)


def _order_key(rel: str, index: int, seed: str = STDLIB_DOCS_ORDER_SEED) -> bytes:
    """The sort key of the index-th piece of the file `rel` in the order drawn from `seed`."""
    return hashlib.sha256(f"{seed}\0{rel}\0{index}".encode("utf-8", "surrogateescape")).digest()


def _stdlib_sources(root: Path) -> list[str]:
    found = []
    for top, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in STDLIB_SKIP_DIRS]
        rel = Path(top).relative_to(root)
        found.extend((rel / f).as_posix() for f in files if f.endswith(".py"))
    return sorted(found)


def _docstrings(tree: ast.AST) -> Iterator[str]:
    stack = [tree]
    while stack:  # depth first, children in order: source order
        node = stack.pop()
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=True)
            if doc and doc.strip() and "\0" not in doc and _utf8_encodable(doc):
                yield doc
        stack.extend(reversed(list(ast.iter_child_nodes(node))))


def _utf8_encodable(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate written as an escape
        return False
    return True

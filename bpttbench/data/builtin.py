"""The built-in corpora, made from this Python's standard library (no network): their table, and their
text, extracted once and cached per Python version and standard library (bpttbench.data.corpus turns
it into a Corpus)."""

from __future__ import annotations

import hashlib
import platform
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from bpttbench import defaults
from bpttbench.data.stdlib_docs import STDLIB_DOCS_RULE, stdlib_docs_text
from bpttbench.data.stdlib_source import STDLIB_SOURCE_RULE, stdlib_source_text
from bpttbench.errors import CorpusError
from bpttbench.files import cache_dir


@dataclass(frozen=True)
class BuiltinCorpus:
    name: str
    text: Callable[[], str]  # builds the text from this Python's standard library (seconds)
    rule: int  # the extraction rule's version: part of the cache file's name
    what: str  # what the text is made of, for the error when none is found
    description: str
    licence: str

    @property
    def source(self) -> str:
        return f"builtin:{self.name}"


# The text functions are looked up when called (lambdas, not the functions themselves), so that a
# test can replace bpttbench.data.builtin.stdlib_docs_text. The default comes first.
BUILTIN_CORPORA = {
    b.name: b
    for b in (
        BuiltinCorpus(defaults.CORPUS, lambda: stdlib_docs_text(), STDLIB_DOCS_RULE, "docstrings",
                      "Docstrings of this Python's standard library (the default; no network, extracted on first "
                      "use in a few seconds)",
                      "Python Software Foundation License (Python's own documentation)"),
        BuiltinCorpus("stdlib-source", lambda: stdlib_source_text(), STDLIB_SOURCE_RULE, "source files",
                      "Source code of this Python's standard library, 1.7 M characters (no network, extracted on "
                      "first use in a few seconds)",
                      "Python Software Foundation License (Python's own source code)"),
    )
}


def builtin_cache(builtin: BuiltinCorpus) -> Path:
    stdlib = sysconfig.get_paths()["stdlib"]
    where = hashlib.sha256(stdlib.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    version = f"{sys.implementation.name}-{platform.python_version()}"
    return cache_dir() / f"{builtin.name}-r{builtin.rule}-{version}-{where}.txt"


def cached_builtin(builtin: BuiltinCorpus) -> bytes | None:
    """The cached extraction, if present and matching the checksum stored beside it."""
    text_file = builtin_cache(builtin)
    try:
        data = text_file.read_bytes()
        expected = text_file.with_suffix(".sha256").read_text(encoding="ascii").strip()
    except (OSError, UnicodeError):
        return None
    return data if data and hashlib.sha256(data).hexdigest() == expected else None


def builtin_text(builtin: BuiltinCorpus, write: Callable[[Path, bytes], None]) -> str:
    """The corpus's text: from the cache, else extracted and cached with write(path, bytes)."""
    data = cached_builtin(builtin)
    if data is not None:
        text = data.decode("utf-8")
    else:
        text = builtin.text()
        if not text:
            raise CorpusError(
                f"found no {builtin.what} under {sysconfig.get_paths()['stdlib']} for the built-in corpus {builtin.name} "
                "(is the standard library zipped?); use --corpus tinyshakespeare or a path to a text file"
            )
        text_file = builtin_cache(builtin)
        data = text.encode("utf-8")
        try:  # a cache is a convenience: without a writable one the corpus is extracted each time
            text_file.parent.mkdir(parents=True, exist_ok=True)
            write(text_file, data)
            write(text_file.with_suffix(".sha256"), hashlib.sha256(data).hexdigest().encode("ascii") + b"\n")
        except OSError:
            pass
    return text

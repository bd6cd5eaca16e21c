"""Corpora: where a text comes from, its vocabulary and ids, and the train/validation split.

A corpus is named one of four ways:
- a built-in corpus (BUILTIN_CORPORA), made from this Python's standard library with `ast` (nothing
  imported, no network), put in a seeded shuffled order so that the text's difficulty is the same
  all along it, and cached per Python version: the default `stdlib-docs`, its docstrings (prose),
  and `stdlib-source`, 1.7 M characters of its source code (bpttbench/data/stdlib_source.py);
- a name in the registry `corpora/registry.json` (installed as the package data `bpttbench.corpora`):
  downloaded on first use into the cache, checked against its sha256 and size, and checked again
  on every later use;
- a path to a UTF-8 text file, used as is apart from a leading byte-order mark;
- a generated corpus with a known optimum, `reber`, `lag:L` or `brackets`, with optional parameters
  such as `lag:20:seed=3:n=200000` (see bpttbench/data/synthetic.py): made from its seed on every load,
  and carrying the generating process's exact entropy rate as `optimum_bpc`.

The cache is $BPTTBENCH_CACHE_DIR, else $XDG_CACHE_HOME/bpttbench, else ~/.cache/bpttbench.
$BPTTBENCH_CORPUS_MIRROR stands in for the registry's URLs: either a URL base, to which `<name>.txt`
is appended, or a local directory holding `<name>.txt` (copied and verified, no network).

The vocabulary is the text's distinct characters sorted by code point; ids index into it (int32).
The first int(0.9 * n_chars) characters train, the rest validate.

References:
  A. Karpathy, char-rnn (2015): the tinyshakespeare corpus and the character-level LSTM setting.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from bpttbench import defaults
from bpttbench.errors import CorpusError, DownloadError
from bpttbench.files import cache_dir
from bpttbench.data.builtin import BUILTIN_CORPORA, builtin_text, cached_builtin

DEFAULT_CORPUS = defaults.CORPUS
BUILTIN_SOURCE = "builtin:stdlib-docs"  # the default's source; a built-in corpus's is builtin:<name>
TRAIN_FRACTION = 0.9

DOWNLOAD_TIMEOUT_S = 30
CHUNK_BYTES = 1 << 16
CACHE_FILE_MODE = 0o644  # mkstemp's 0o600 would hide a shared cache from its other users
_URL_SCHEMES = ("http", "https", "ftp", "file")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

Progress = Callable[[int, int], None]

GENERATED_DESCRIPTIONS = {
    "reber": "Generated: embedded Reber grammar strings; optimum 7/12 bit/char (reber[:seed=S][:n=N])",
    "lag:L": "Generated: a cue to repeat L steps later among noise, with its exact optimum "
             "(lag:L[:symbols=M][:noise=K][:seed=S][:n=N], e.g. lag:20)",
    "brackets": "Generated: balanced brackets of bounded depth, with its exact optimum "
                "(brackets[:depth=D][:types=T][:p=P][:seed=S][:n=N])",
}


@dataclass(frozen=True, eq=False)
class Corpus:
    name: str  # registry name, or the path as given
    source: str  # file path, URL, or builtin:<name> (BUILTIN_SOURCE for the default)
    sha256: str  # of the UTF-8 bytes of the text
    n_chars: int
    vocab: tuple[str, ...]  # distinct characters, sorted by code point
    ids: np.ndarray = field(repr=False)  # int32 index into vocab per character; read-only, shared by the splits
    # Generated corpora only: the generating process's entropy rate (bits/char), the lowest loss any
    # predictor reaches in the long run, and the generator's parameters (kind, seed, n, ...).
    optimum_bpc: float | None = None
    generator: dict | None = field(default=None, repr=False)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @property
    def n_train(self) -> int:
        return int(TRAIN_FRACTION * self.n_chars)

    @property
    def n_val(self) -> int:
        return self.n_chars - self.n_train

    @property
    def train_ids(self) -> np.ndarray:
        return self.ids[: self.n_train]

    @property
    def val_ids(self) -> np.ndarray:
        return self.ids[self.n_train :]

    def info(self) -> dict:
        """What a run's manifest records about its corpus (JSON-able; the vocabulary is in vocab_json()).

        `reference_bpc`: what unigram, bigram and trigram models fitted on the training split reach on
        the validation split (bpttbench.data.ngram). Generated corpora add `optimum_bpc` (the entropy rate,
        bits/char) and `generator` (its parameters).
        """
        from bpttbench.data.ngram import reference_levels

        info = {
            "name": self.name,
            "source": self.source,
            "sha256": self.sha256,
            "n_chars": self.n_chars,
            "vocab_size": self.vocab_size,
            "n_train": self.n_train,
            "n_val": self.n_val,
            "reference_bpc": reference_levels(self.train_ids, self.val_ids, self.vocab_size),
        }
        if self.optimum_bpc is not None:
            info["optimum_bpc"] = self.optimum_bpc
            info["generator"] = dict(self.generator or {})
        return info

    def vocab_json(self) -> dict[str, str]:
        """The vocabulary as a JSON object: index (as a string, JSON keys are strings) -> character.

        A run's vocab.json is not this: it is the plain list `vocab`, character i at index i."""
        return {str(i): ch for i, ch in enumerate(self.vocab)}

    def decode(self, ids) -> str:
        """The text that a sequence of ids stands for."""
        return "".join(self.vocab[int(i)] for i in ids)


def corpus_from_text(text: str, name: str = "text", source: str = "") -> Corpus:
    """The corpus of `text` exactly as given (no normalisation)."""
    if not isinstance(text, str):
        raise TypeError(f"corpus_from_text needs a str, got {type(text).__name__}")
    if not text:
        raise CorpusError(f"corpus {name} is empty; give a text with at least one character")
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise CorpusError(
            f"corpus {name} holds a character UTF-8 cannot encode (a lone surrogate at index {e.start}); remove it"
        ) from None
    codes = np.frombuffer(text.encode("utf-32-le"), dtype="<u4")
    # A lookup table over code points: linear time, and sorted by code point for free.
    present = np.zeros(int(codes.max()) + 1, dtype=bool)
    present[codes] = True
    points = np.flatnonzero(present)
    table = np.zeros(present.size, dtype=np.int32)
    table[points] = np.arange(points.size, dtype=np.int32)
    ids = table[codes]
    ids.flags.writeable = False
    return Corpus(
        name=name,
        source=source,
        sha256=hashlib.sha256(data).hexdigest(),
        n_chars=len(text),
        vocab=tuple(chr(p) for p in points.tolist()),
        ids=ids,
    )


def load_corpus(spec: str | None = None, *, progress: Progress | None = None) -> Corpus:
    """The corpus named by `spec`: None for DEFAULT_CORPUS, a built-in or registered name, a generated
    corpus (`reber`, `lag:L`, `brackets`, with parameters), or a file path.

    Registered and generated names win over files of the same name. `progress(done_bytes, total_bytes)`,
    if given, is called while a registered corpus downloads.
    """
    spec = DEFAULT_CORPUS if spec is None else spec
    if not isinstance(spec, str) or not spec.strip():
        raise CorpusError(f"no corpus given; use one of {_known_names()} or a path to a UTF-8 text file")
    if spec in BUILTIN_CORPORA:
        builtin = BUILTIN_CORPORA[spec]
        return corpus_from_text(builtin_text(builtin, _write_atomically), name=builtin.name, source=builtin.source)
    from bpttbench.data import synthetic  # here: it compiles Numba kernels, which `corpus list` does not need

    if synthetic.is_generated(spec):
        made = synthetic.generate(spec)
        corpus = corpus_from_text(made.text, name=made.name, source=made.source)
        return replace(corpus, optimum_bpc=made.entropy_rate_bpc, generator=made.params)
    registry = _registry()
    if spec in registry:
        entry = registry[spec]
        text = _decode(_registered_bytes(entry, progress), f"{entry.name} (cached in {cache_dir()})")
        return corpus_from_text(text, name=entry.name, source=entry.source)
    path = Path(spec).expanduser()
    if not _exists(path, spec) and not _looks_like_path(spec):
        raise CorpusError(
            f"unknown corpus {spec!r}: neither a known name ({_known_names()}) nor an existing file; "
            "use one of those names or a path to a UTF-8 text file"
        )
    return corpus_from_text(_read_text_file(path, spec), name=spec, source=str(path.resolve()))


def list_corpora() -> list[dict]:
    """The built-in corpora (the default first), the generated kinds and every registered corpus: name,
    description, source, licence, size (bytes; None when not known without work), sha256 (likewise),
    cached (usable without fetching or building)."""
    rows = []
    for builtin in BUILTIN_CORPORA.values():
        cached = cached_builtin(builtin)
        rows.append(
            {
                "name": builtin.name,
                "description": builtin.description,
                "source": builtin.source,
                "licence": builtin.licence,
                "size": None if cached is None else len(cached),
                "sha256": None if cached is None else hashlib.sha256(cached).hexdigest(),
                "cached": cached is not None,
            }
        )
    for kind, description in GENERATED_DESCRIPTIONS.items():
        rows.append({"name": kind, "description": description, "source": "generated", "licence": "generated (no licence needed)",
                     "size": None, "sha256": None, "cached": True})
    for entry in _registry().values():
        try:
            cached = _matches(_cache_file(entry).read_bytes(), entry)
        except OSError:
            cached = False
        rows.append(
            {
                "name": entry.name,
                "description": entry.description,
                "source": entry.source,
                "licence": entry.licence,
                "size": entry.size,
                "sha256": entry.sha256,
                "cached": cached,
            }
        )
    return rows


def check_corpus_fits(corpus: Corpus, *, k2: int, eval_chars: int, batch: int) -> None:
    """Raise CorpusError unless the training split feeds `batch` streams of at least k2 + 2
    characters each, and the validation split holds at least eval_chars + 1 characters (2 when
    eval_chars is 0, the whole split)."""
    per_stream = k2 + 2
    if corpus.n_train < batch * per_stream:
        raise CorpusError(
            f"corpus {corpus.name} has {corpus.n_train} training characters, too few for {batch} stream(s) "
            f"of at least k2 + 2 = {per_stream} characters each (needs {batch * per_stream}); "
            "lower --batch or --k2, or use a longer corpus"
        )
    if corpus.n_val < max(eval_chars, 1) + 1:
        fix = "use a longer corpus"
        if corpus.n_val >= 2:
            fix = f"lower --eval-chars to at most {corpus.n_val - 1}, or {fix}"
        raise CorpusError(
            f"corpus {corpus.name} has {corpus.n_val} validation characters, fewer than --eval-chars + 1 = "
            f"{eval_chars + 1}; {fix}"
        )


# ---------------------------------------------------------------- files


def _exists(path: Path, shown: str) -> bool:
    try:
        path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return False
    except (OSError, ValueError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else _one_line(e)
        raise CorpusError(f"cannot use {shown!r} as a corpus path: {reason}; give a path to a UTF-8 text file") from None
    return True


def _looks_like_path(spec: str) -> bool:
    seps = {"/", os.sep} | ({os.altsep} if os.altsep else set())
    return any(s in spec for s in seps) or spec.startswith(("~", ".")) or bool(Path(spec).suffix)


def _read_text_file(path: Path, shown: str) -> str:
    if not _exists(path, shown):
        raise CorpusError(f"corpus file {shown} does not exist; check the path, or use a known name ({_known_names()})")
    if path.is_dir():
        raise CorpusError(f"corpus path {shown} is a directory; give a UTF-8 text file inside it")
    if not path.is_file():  # /dev/zero or a pipe would be read until memory runs out, or forever
        raise CorpusError(f"corpus path {shown} is not a regular file (a device, pipe or socket); "
                          "save the text to a file and give its path")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CorpusError(f"cannot read corpus file {shown}: {e.strerror or _one_line(e)}; check its permissions") from None
    return _decode(data, f"corpus file {shown}")


def _decode(data: bytes, shown: str) -> str:
    """Strict UTF-8 text of `data`, less a leading byte-order mark; CorpusError if it is not text."""
    if not data:
        raise CorpusError(f"{shown} is empty; give a text with at least one character")
    nul = data.find(b"\0")
    if nul >= 0:
        raise CorpusError(
            f"{shown} looks binary (a NUL byte at byte offset {nul}); give a UTF-8 text file "
            "(convert UTF-16 with iconv -f utf-16 -t utf-8)"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CorpusError(
            f"{shown} is not valid UTF-8: byte 0x{data[e.start]:02x} at byte offset {e.start} ({e.reason}); "
            "convert it to UTF-8, e.g. iconv -f latin1 -t utf-8"
        ) from None
    text = text.removeprefix("\ufeff")
    if not text:
        raise CorpusError(f"{shown} holds only a byte-order mark; give a text with at least one character")
    return text


def _one_line(e: BaseException | str) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def _write_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), CACHE_FILE_MODE)
            out.write(data)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _make_cache_dir() -> Path:
    where = cache_dir()
    try:
        where.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CorpusError(
            f"cannot create the cache directory {where}: {e.strerror or _one_line(e)}; "
            "set BPTTBENCH_CACHE_DIR to a writable directory"
        ) from None
    return where


# ---------------------------------------------------------------- the registry


@dataclass(frozen=True)
class RegistryEntry:
    name: str
    source: str  # URL
    sha256: str  # of the file's bytes
    size: int  # bytes
    licence: str
    description: str


def _registry_file():
    try:
        from importlib.resources import files

        return files("bpttbench.corpora").joinpath("registry.json")
    except ModuleNotFoundError:
        # An editable install made before setup.cfg mapped `bpttbench.corpora`, or a bare checkout.
        return Path(__file__).resolve().parents[2] / "corpora" / "registry.json"


def _registry() -> dict[str, RegistryEntry]:
    where = _registry_file()

    def bad(what: str) -> CorpusError:
        return CorpusError(f"the corpus registry {where} is malformed: {what}; fix it or reinstall bpttbench")

    try:
        raw = json.loads(where.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise bad(_one_line(e)) from None
    if not isinstance(raw, dict) or not isinstance(raw.get("corpora"), list):
        raise bad('expected {"format": 1, "corpora": [...]}')
    entries: dict[str, RegistryEntry] = {}
    for item in raw["corpora"]:
        try:
            entry = RegistryEntry(**{k: item[k] for k in RegistryEntry.__dataclass_fields__})
        except KeyError as e:
            raise bad(f"an entry lacks the key {e}") from None
        except TypeError:
            raise bad(f"an entry is not an object: {item!r:.60}") from None
        if not isinstance(entry.name, str) or not _NAME_RE.fullmatch(entry.name) or entry.name in BUILTIN_CORPORA:
            raise bad(f"bad corpus name {entry.name!r}")
        if entry.name in entries:
            raise bad(f"{entry.name} is listed twice")
        if not (isinstance(entry.sha256, str) and re.fullmatch(r"[0-9a-f]{64}", entry.sha256)):
            raise bad(f"{entry.name} has no valid lower-case hex sha256")
        if not isinstance(entry.size, int) or isinstance(entry.size, bool) or entry.size <= 0:
            raise bad(f"{entry.name} has no positive size")
        entries[entry.name] = entry
    return entries


def _known_names() -> str:
    return ", ".join([*BUILTIN_CORPORA, *_registry()])


def _cache_file(entry: RegistryEntry) -> Path:
    return cache_dir() / f"{entry.name}.txt"


def _matches(data: bytes, entry: RegistryEntry) -> bool:
    return len(data) == entry.size and hashlib.sha256(data).hexdigest() == entry.sha256


def _registered_bytes(entry: RegistryEntry, progress: Progress | None) -> bytes:
    """The verified bytes of a registered corpus: from the cache, else fetched into it."""
    where = _make_cache_dir()
    cached = where / f"{entry.name}.txt"
    try:
        data = cached.read_bytes()
    except FileNotFoundError:
        data = None
    except OSError as e:
        raise CorpusError(
            f"cannot read the cached {cached}: {e.strerror or _one_line(e)}; delete it, or set BPTTBENCH_CACHE_DIR elsewhere"
        ) from None
    if data is not None:
        if _matches(data, entry):
            return data
        try:  # corrupt, truncated or from an older registry: never used, fetched again
            cached.unlink()
        except OSError as e:
            raise CorpusError(
                f"the cached {cached} fails its checksum and cannot be deleted ({e.strerror or _one_line(e)}); "
                "delete it by hand, or set BPTTBENCH_CACHE_DIR elsewhere"
            ) from None
    mirror = os.environ.get("BPTTBENCH_CORPUS_MIRROR", "").strip()
    if mirror and urllib.parse.urlsplit(mirror).scheme.lower() not in _URL_SCHEMES:
        return _copy_from_directory(Path(mirror).expanduser(), cached, entry, progress)
    url = f"{mirror.rstrip('/')}/{entry.name}.txt" if mirror else entry.source
    return _download(url, cached, entry, progress)


def _download(url: str, dest: Path, entry: RegistryEntry, progress: Progress | None) -> bytes:
    def failed(e: BaseException | str) -> CorpusError:
        if isinstance(e, urllib.error.HTTPError):
            reason = f"HTTP {e.code} {e.reason}"
        elif isinstance(e, urllib.error.URLError):
            reason = _one_line(e.reason)
        else:
            reason = _one_line(e)
        return DownloadError(
            f"could not download {entry.name} from {url}: {reason}; check the network or set "
            f"BPTTBENCH_CORPUS_MIRROR to a directory holding {entry.name}.txt"
        )

    try:
        response = urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S)
    except urllib.error.HTTPError as e:
        e.close()
        raise failed(e) from None
    except (OSError, http.client.HTTPException, ValueError) as e:
        raise failed(e) from None

    with response:
        try:
            announced = int(response.headers["Content-Length"])
        except (KeyError, TypeError, ValueError):
            announced = None
        done = 0

        def read(n: int) -> bytes:
            nonlocal done
            try:
                chunk = response.read(n)
            except (OSError, http.client.HTTPException) as e:
                raise failed(e) from None
            # http.client returns b"" rather than raising when a sized body is cut short.
            if not chunk and announced is not None and done < announced:
                raise failed(f"the connection closed after {done} of {announced} bytes")
            done += len(chunk)
            return chunk

        total = entry.size if announced is None else announced
        return _fetch_into_cache(read, total, dest, entry, url, progress)


def _copy_from_directory(mirror: Path, dest: Path, entry: RegistryEntry, progress: Progress | None) -> bytes:
    if not mirror.is_dir():
        raise CorpusError(
            f"BPTTBENCH_CORPUS_MIRROR={mirror} is neither a URL nor an existing directory; set it to a URL base "
            f"or to a directory holding {entry.name}.txt"
        )
    src = mirror / f"{entry.name}.txt"
    try:
        f = open(src, "rb")
    except OSError as e:
        raise CorpusError(
            f"cannot read {src} from BPTTBENCH_CORPUS_MIRROR: {e.strerror or _one_line(e)}; put {entry.name}.txt "
            "there or unset BPTTBENCH_CORPUS_MIRROR"
        ) from None
    with f:
        return _fetch_into_cache(f.read, entry.size, dest, entry, str(src), progress)


def _fetch_into_cache(
    read: Callable[[int], bytes], total: int, dest: Path, entry: RegistryEntry, origin: str, progress: Progress | None
) -> bytes:
    """Stream `read` into a temporary file beside `dest`, verify size and sha256, then rename it
    into place; whatever fails, no partial or wrong file is left behind."""
    try:
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{entry.name}.", suffix=".part")
    except OSError as e:
        raise CorpusError(
            f"cannot write to the cache directory {dest.parent}: {e.strerror or _one_line(e)}; "
            "set BPTTBENCH_CACHE_DIR to a writable directory"
        ) from None
    try:
        data = bytearray()
        try:
            with os.fdopen(fd, "wb") as out:
                os.fchmod(out.fileno(), CACHE_FILE_MODE)
                if progress is not None:
                    progress(0, total)
                while chunk := read(CHUNK_BYTES):
                    data += chunk
                    out.write(chunk)
                    if progress is not None:
                        progress(len(data), total)
                    if len(data) > entry.size:  # already wrong; do not let a bad server fill the disk
                        break
                out.flush()
                os.fsync(out.fileno())
        except OSError as e:  # reads raise CorpusError; this is the cache's disk
            raise CorpusError(
                f"cannot write {entry.name} into {dest.parent}: {e.strerror or _one_line(e)}; free some space "
                "or set BPTTBENCH_CACHE_DIR elsewhere"
            ) from None
        retry = f"it was discarded; try again, or set BPTTBENCH_CORPUS_MIRROR to a directory holding a good {entry.name}.txt"
        if len(data) != entry.size:
            got = f"more than {entry.size}" if len(data) > entry.size else str(len(data))
            raise DownloadError(
                f"checksum mismatch for {entry.name} from {origin}: got {got} bytes, expected {entry.size}; {retry}"
            )
        digest = hashlib.sha256(data).hexdigest()
        if digest != entry.sha256:
            raise DownloadError(
                f"checksum mismatch for {entry.name} from {origin}: sha256 {digest[:16]}..., "
                f"expected {entry.sha256[:16]}...; {retry}"
            )
        os.replace(tmp, dest)
        return bytes(data)
    finally:
        Path(tmp).unlink(missing_ok=True)

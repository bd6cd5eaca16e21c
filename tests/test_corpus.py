"""Corpus loading: vocabulary and split, every refusal, downloads against a local HTTP server, the
built-in stdlib-docs and stdlib-source corpora, and the packaging that ships the registry."""

from __future__ import annotations

import configparser
import hashlib
import json
import socket
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import bpttbench.data.builtin as builtin_mod
from bpttbench.data import stdlib_docs, stdlib_source
from bpttbench.data.corpus import (
    BUILTIN_CORPORA,
    BUILTIN_SOURCE,
    DEFAULT_CORPUS,
    Corpus,
    check_corpus_fits,
    corpus_from_text,
    list_corpora,
    load_corpus,
)
from bpttbench.data.stdlib_docs import stdlib_docs_text
from bpttbench.errors import CorpusError

from bpttbench.data.stdlib_source import STDLIB_SOURCE_CHARS, STDLIB_SOURCE_MAX_CHUNK, stdlib_source_text

from conftest import invoke, serving

REPO = Path(__file__).resolve().parents[1]
SHARED_CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"
TS_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
TS_SIZE = 1_115_394


def one_line_error(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message and message.strip() == message
    return message


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    where = tmp_path / "cache"
    monkeypatch.setenv("BPTTBENCH_CACHE_DIR", str(where))
    monkeypatch.delenv("BPTTBENCH_CORPUS_MIRROR", raising=False)
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    return where


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("this test must not touch the network")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="session")
def shakespeare() -> Path:
    path = SHARED_CORPORA / "tinyshakespeare.txt"
    if not path.is_file():
        pytest.skip(f"{path} not found: the shared corpora are expected beside the checkout")
    return path


def cache_files(where: Path) -> list[str]:
    return sorted(p.name for p in where.iterdir()) if where.exists() else []


# ---------------------------------------------------------------- text -> corpus


def test_corpus_from_text_vocab_ids_and_split():
    text = "hello, wörld 😀\nhello again\n" * 5
    c = corpus_from_text(text, name="greeting", source="here")
    assert c.vocab == tuple(sorted(set(text)))
    assert [ord(ch) for ch in c.vocab] == sorted(ord(ch) for ch in c.vocab)
    assert c.vocab_size == len(set(text))
    assert c.ids.dtype == np.int32 and c.ids.shape == (len(text),) == (c.n_chars,)
    assert c.decode(c.ids) == text
    assert "".join(c.vocab[i] for i in c.ids) == text
    n_train = int(0.9 * len(text))
    assert len(c.train_ids) == n_train == c.n_train
    assert len(c.val_ids) == len(text) - n_train == c.n_val
    assert np.shares_memory(c.train_ids, c.ids) and np.shares_memory(c.val_ids, c.ids)
    assert not c.ids.flags.writeable
    assert c.sha256 == hashlib.sha256(text.encode("utf-8")).hexdigest()

    info = c.info()
    assert set(info.pop("reference_bpc")) == {"unigram", "bigram", "trigram"}  # tests/test_ngram.py checks their values
    assert info == {
        "name": "greeting",
        "source": "here",
        "sha256": c.sha256,
        "n_chars": len(text),
        "vocab_size": c.vocab_size,
        "n_train": n_train,
        "n_val": len(text) - n_train,
    }
    json.dumps(info)
    vocab = json.loads(json.dumps(c.vocab_json()))
    assert [vocab[str(i)] for i in range(c.vocab_size)] == list(c.vocab)


def test_corpus_from_text_refuses_empty_and_unencodable():
    with pytest.raises(CorpusError, match="empty") as e:
        corpus_from_text("")
    one_line_error(e)
    with pytest.raises(CorpusError, match="surrogate") as e:
        corpus_from_text("ab\ud800c")
    one_line_error(e)


def test_text_file_is_used_as_is_less_a_leading_bom(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes("\ufeffline one\r\nligne deux\r\n\ufeff".encode("utf-8"))
    c = load_corpus(str(path))
    assert c.decode(c.ids) == "line one\r\nligne deux\r\n\ufeff"
    assert c.name == str(path) and c.source == str(path.resolve())


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    "name, content, expect",
    [
        ("missing.txt", None, "does not exist"),
        ("folder", "DIR", "is a directory"),
        ("empty.txt", b"", "is empty"),
        ("bom.txt", b"\xef\xbb\xbf", "only a byte-order mark"),
        ("bin.dat", b"abc\0def", "binary.*byte offset 3"),
        ("utf16.txt", "hi".encode("utf-16"), "binary"),
        ("latin.txt", "caf\xe9 ok".encode("latin-1"), "not valid UTF-8: byte 0xe9 at byte offset 3"),
    ],
)
def test_bad_files_are_refused_in_one_line(tmp_path, name, content, expect):
    path = tmp_path / name
    if content == "DIR":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(CorpusError, match=expect) as e:
        load_corpus(str(path))
    one_line_error(e)


def test_unreadable_file_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "locked.txt"
    path.write_text("secret")

    def refuse(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", refuse)  # chmod 000 does not stop root
    with pytest.raises(CorpusError, match="cannot read.*Permission denied.*permissions") as e:
        load_corpus(str(path))
    one_line_error(e)


def test_unknown_name_lists_the_known_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CorpusError, match="unknown corpus 'shakespear'.*stdlib-docs, stdlib-source, tinyshakespeare") as e:
        load_corpus("shakespear")
    one_line_error(e)


def test_check_corpus_fits():
    c = corpus_from_text("x" * 1000)  # 900 train, 100 val
    check_corpus_fits(c, k2=20, eval_chars=99, batch=40)  # 40 * 22 = 880 <= 900
    with pytest.raises(CorpusError, match="too few for 41 stream.*--batch or --k2.*longer corpus") as e:
        check_corpus_fits(c, k2=20, eval_chars=99, batch=41)
    one_line_error(e)
    with pytest.raises(CorpusError, match="k2 \\+ 2 = 901"):
        check_corpus_fits(c, k2=899, eval_chars=10, batch=1)
    with pytest.raises(CorpusError, match="100 validation characters.*--eval-chars to at most 99") as e:
        check_corpus_fits(c, k2=20, eval_chars=100, batch=1)
    one_line_error(e)
    with pytest.raises(CorpusError, match="use a longer corpus"):
        check_corpus_fits(corpus_from_text("abcdefghij"), k2=1, eval_chars=1, batch=1)  # 1 validation char


# ---------------------------------------------------------------- registry and downloads


def test_list_corpora_names_the_default_and_the_registry(cache):
    rows = {row["name"]: row for row in list_corpora()}
    assert list(rows)[:2] == [DEFAULT_CORPUS, "stdlib-source"] == list(BUILTIN_CORPORA)
    for name in BUILTIN_CORPORA:
        assert rows[name]["source"] == f"builtin:{name}" and rows[name]["cached"] is False
        assert rows[name]["size"] is None and rows[name]["licence"].startswith("Python Software Foundation")
    assert rows[DEFAULT_CORPUS]["source"] == BUILTIN_SOURCE
    ts = rows["tinyshakespeare"]
    assert ts["sha256"] == TS_SHA256 and ts["size"] == TS_SIZE and ts["cached"] is False
    assert ts["source"].startswith("https://") and ts["licence"] and ts["description"]
    for row in rows.values():
        assert {"name", "description", "size", "sha256", "cached"} <= set(row)
    json.dumps(list(rows.values()))


def test_download_verifies_then_serves_from_the_cache(cache, shakespeare, monkeypatch):
    with serving(shakespeare.parent) as (url, hits):
        monkeypatch.setenv("BPTTBENCH_CORPUS_MIRROR", url + "/")
        seen = []
        c = load_corpus("tinyshakespeare", progress=lambda done, total: seen.append((done, total)))
        assert hits == ["/tinyshakespeare.txt"]
        assert c.sha256 == TS_SHA256 and c.n_chars == TS_SIZE and c.vocab_size == 65
        assert c.name == "tinyshakespeare" and c.source.startswith("https://")
        assert seen[0] == (0, TS_SIZE) and seen[-1] == (TS_SIZE, TS_SIZE)
        assert cache_files(cache) == ["tinyshakespeare.txt"]  # no temporary file left

        again = load_corpus("tinyshakespeare")
        assert hits == ["/tinyshakespeare.txt"]  # the cache, not the server
        assert again.sha256 == TS_SHA256 and np.array_equal(again.ids, c.ids)
    assert {r["name"]: r["cached"] for r in list_corpora()}["tinyshakespeare"] is True


@pytest.mark.parametrize("damage", ["flip", "truncate", "extend"])
def test_wrong_bytes_are_refused_and_not_cached(cache, shakespeare, tmp_path, monkeypatch, damage):
    bad = bytearray(shakespeare.read_bytes())
    if damage == "flip":
        bad[1000] ^= 0x20
    elif damage == "truncate":
        del bad[-10:]
    else:
        bad += b"more"
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "tinyshakespeare.txt").write_bytes(bad)
    with serving(tmp_path / "www") as (url, hits):
        monkeypatch.setenv("BPTTBENCH_CORPUS_MIRROR", url)
        with pytest.raises(CorpusError, match="checksum mismatch for tinyshakespeare.*discarded") as e:
            load_corpus("tinyshakespeare")
    one_line_error(e)
    assert hits == ["/tinyshakespeare.txt"]
    assert cache_files(cache) == []


def test_transfer_cut_short_is_refused_and_not_cached(cache, shakespeare, monkeypatch):
    with serving(shakespeare.parent, truncate=True) as (url, _):
        monkeypatch.setenv("BPTTBENCH_CORPUS_MIRROR", url)
        with pytest.raises(CorpusError, match="could not download tinyshakespeare") as e:
            load_corpus("tinyshakespeare")
    one_line_error(e)
    assert cache_files(cache) == []


def test_corrupted_cache_is_detected_and_fetched_again(cache, shakespeare, monkeypatch):
    with serving(shakespeare.parent) as (url, hits):
        monkeypatch.setenv("BPTTBENCH_CORPUS_MIRROR", url)
        load_corpus("tinyshakespeare")
        cached = cache / "tinyshakespeare.txt"
        data = bytearray(cached.read_bytes())
        data[500] ^= 0x01
        cached.write_bytes(data)
        assert {r["name"]: r["cached"] for r in list_corpora()}["tinyshakespeare"] is False

        c = load_corpus("tinyshakespeare")
        assert len(hits) == 2 and c.sha256 == TS_SHA256
        assert hashlib.sha256(cached.read_bytes()).hexdigest() == TS_SHA256

        cached.write_bytes(data)  # corrupt again, and now the server is gone
    with pytest.raises(CorpusError, match="could not download"):
        load_corpus("tinyshakespeare")
    assert cache_files(cache) == []  # the bad copy was not kept


def test_network_failures_are_one_line_with_the_fix(cache, tmp_path, monkeypatch):
    with socket.socket() as s:  # a port on which nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("BPTTBENCH_CORPUS_MIRROR", f"http://127.0.0.1:{port}")
    with pytest.raises(CorpusError) as e:
        load_corpus("tinyshakespeare")
    assert one_line_error(e).startswith(
        f"could not download tinyshakespeare from http://127.0.0.1:{port}/tinyshakespeare.txt: "
    )
    assert str(e.value).endswith(
        "; check the network or set BPTTBENCH_CORPUS_MIRROR to a directory holding tinyshakespeare.txt"
    )

    (tmp_path / "empty").mkdir()
    with serving(tmp_path / "empty") as (url, _):
        monkeypatch.setenv("BPTTBENCH_CORPUS_MIRROR", url)
        with pytest.raises(CorpusError, match="could not download tinyshakespeare.*HTTP 404") as e:
            load_corpus("tinyshakespeare")
    one_line_error(e)
    assert cache_files(cache) == []


def test_local_directory_mirror_copies_and_verifies(cache, shakespeare, tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("BPTTBENCH_CORPUS_MIRROR", str(shakespeare.parent))
    assert load_corpus("tinyshakespeare").sha256 == TS_SHA256
    assert cache_files(cache) == ["tinyshakespeare.txt"]

    (cache / "tinyshakespeare.txt").unlink()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "tinyshakespeare.txt").write_bytes(b"not shakespeare")
    monkeypatch.setenv("BPTTBENCH_CORPUS_MIRROR", str(tmp_path / "bad"))
    with pytest.raises(CorpusError, match="checksum mismatch"):
        load_corpus("tinyshakespeare")
    assert cache_files(cache) == []

    monkeypatch.setenv("BPTTBENCH_CORPUS_MIRROR", str(tmp_path))
    with pytest.raises(CorpusError, match="cannot read .*tinyshakespeare.txt from BPTTBENCH_CORPUS_MIRROR") as e:
        load_corpus("tinyshakespeare")
    one_line_error(e)
    monkeypatch.setenv("BPTTBENCH_CORPUS_MIRROR", str(tmp_path / "nowhere"))
    with pytest.raises(CorpusError, match="neither a URL nor an existing directory") as e:
        load_corpus("tinyshakespeare")
    one_line_error(e)


# ---------------------------------------------------------------- the built-in default


@pytest.mark.slow
def test_stdlib_docs_is_large_deterministic_and_offline(cache, no_network, monkeypatch):
    c = load_corpus()
    assert c.name == DEFAULT_CORPUS and c.source == BUILTIN_SOURCE
    text = c.decode(c.ids)
    assert len(text.encode("utf-8")) >= 1_000_000
    assert "\0" not in text and not text.startswith("\n")
    assert stdlib_docs_text() == text  # a second, independent extraction

    def must_not_extract(root=None):
        raise AssertionError("extracted again despite the cache")

    monkeypatch.setattr(builtin_mod, "stdlib_docs_text", must_not_extract)
    cached = load_corpus(DEFAULT_CORPUS)
    assert cached.sha256 == c.sha256 and np.array_equal(cached.ids, c.ids)
    row = list_corpora()[0]
    assert row["cached"] is True and row["sha256"] == c.sha256 and row["size"] == len(text.encode("utf-8"))


@pytest.mark.parametrize("name,function", [(DEFAULT_CORPUS, "stdlib_docs_text"), ("stdlib-source", "stdlib_source_text")])
def test_builtin_cache_that_fails_its_checksum_is_rebuilt(name, function, cache, monkeypatch):
    docs = "Return the answer.\n\nA module."
    calls = []

    def fake_extract(root=None):
        calls.append(root)
        return docs

    monkeypatch.setattr(builtin_mod, function, fake_extract)
    assert load_corpus(name).n_chars == len(docs) and len(calls) == 1
    load_corpus(name)
    assert len(calls) == 1
    (text_file,) = cache.glob(f"{name}-r{BUILTIN_CORPORA[name].rule}-*.txt")
    text_file.write_text(docs[:-3])
    c = load_corpus(name)
    assert len(calls) == 2 and c.decode(c.ids) == docs and c.source == f"builtin:{name}"


@pytest.mark.parametrize("name,function", [(DEFAULT_CORPUS, "stdlib_docs_text"), ("stdlib-source", "stdlib_source_text")])
def test_builtin_that_finds_nothing_says_so(name, function, cache, monkeypatch):
    monkeypatch.setattr(builtin_mod, function, lambda root=None: "")
    with pytest.raises(CorpusError, match=f"found no .* for the built-in corpus {name} .*tinyshakespeare") as e:
        load_corpus(name)
    one_line_error(e)
    assert cache_files(cache) == []


def test_stdlib_docs_extraction_rules(tmp_path):
    def put(rel, source):
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(source.encode("utf-8") if isinstance(source, str) else source)

    put("b.py", '"""Module b."""\n\nclass C:\n    """Class C.\n\n    Indented detail.\n    """\n\n'
        '    def m(self):\n        """Method m."""\n\n    async def a(self):\n        "Async a."\n\n'
        'def f():\n    x = "not a docstring"\n\n    def inner():\n        """Inner."""\n')
    put("a.py", '"""Module a."""\n')
    put("pkg/__init__.py", "# no docstring\n")
    put("pkg/mod.py", "def g():\n    '''Function g.'''\n")
    put("latin.py", b'# -*- coding: latin-1 -*-\n"""Caf\xe9."""\n')
    put("broken.py", 'def (:\n    """Never seen."""\n')
    put("undecodable.py", b'"""Bad \xff byte."""\n')
    put("notes.txt", '"""Not Python."""\n')
    for skipped in ("test/t.py", "pkg/tests/t.py", "idlelib/i.py", "site-packages/s.py", "lib2to3/tests/l.py"):
        put(skipped, '"""Skipped."""\n')

    # Each docstring is keyed by (file, position in the file); the text orders them by the seeded key.
    expected = [("Module a.", "a.py", 0), ("Module b.", "b.py", 0), ("Class C.\n\nIndented detail.", "b.py", 1),
                ("Method m.", "b.py", 2), ("Async a.", "b.py", 3), ("Inner.", "b.py", 4), ("Café.", "latin.py", 0),
                ("Function g.", "pkg/mod.py", 0)]
    expected.sort(key=lambda row: stdlib_docs._order_key(row[1], row[2]))
    assert stdlib_docs_text(tmp_path) == "\n\n".join(doc for doc, _, _ in expected)


def test_stdlib_docs_order_is_shuffled_not_source_order(tmp_path):
    """Source order put one module's near-identical docstrings side by side (the decimal doctests):
    the seeded order must spread a file's docstrings over the text."""
    (tmp_path / "m.py").write_text("".join(f'def f{i}():\n    """Doc {i:03d}."""\n' for i in range(200)))
    docs = stdlib_docs_text(tmp_path).split("\n\n")
    positions = [int(d[4:7]) for d in docs]
    assert sorted(positions) == list(range(200))
    assert positions != list(range(200))
    # Far from source order: a rank correlation near 0, not 1.
    assert abs(np.corrcoef(positions, np.arange(200))[0, 1]) < 0.3


# ---------------------------------------------------------------- the built-in stdlib-source


@pytest.mark.slow
def test_stdlib_source_is_built_in_capped_deterministic_and_offline(cache, no_network, monkeypatch, capsys):
    c = load_corpus("stdlib-source")
    assert c.name == "stdlib-source" and c.source == "builtin:stdlib-source"
    text = c.decode(c.ids)
    # The first chunks of the seeded order up to the cap: within one chunk (and its separator) of it.
    assert STDLIB_SOURCE_CHARS - STDLIB_SOURCE_MAX_CHUNK - 2 < c.n_chars <= STDLIB_SOURCE_CHARS
    assert "\0" not in text and not text.startswith("\n") and not text.endswith("\n")
    assert "def " in text and "class " in text and "import " in text
    assert 60 <= c.vocab_size <= 300
    assert stdlib_source_text() == text  # a second, independent extraction
    assert c.sha256 != load_corpus(DEFAULT_CORPUS).sha256
    (cached_file,) = cache.glob("stdlib-source-r*.txt")
    assert cached_file.name.startswith(f"stdlib-source-r{stdlib_source.STDLIB_SOURCE_RULE}-")

    def must_not_extract(root=None):
        raise AssertionError("extracted again despite the cache")

    monkeypatch.setattr(builtin_mod, "stdlib_source_text", must_not_extract)
    cached = load_corpus("stdlib-source")
    assert cached.sha256 == c.sha256 and np.array_equal(cached.ids, c.ids)
    row = {r["name"]: r for r in list_corpora()}["stdlib-source"]
    assert row["cached"] is True and row["sha256"] == c.sha256 and row["size"] == len(text.encode("utf-8"))

    code, out, _ = invoke(["corpus", "list", "--json"], capsys)
    rows = {r["name"]: r for r in json.loads(out)["corpora"]}
    assert code == 0 and rows["stdlib-source"]["source"] == "builtin:stdlib-source" and rows["stdlib-source"]["cached"]
    code, out, _ = invoke(["corpus", "list", "-q"], capsys)
    assert code == 0 and out.split()[:2] == [DEFAULT_CORPUS, "stdlib-source"]


def put(root: Path, rel: str, source) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(source.encode("utf-8") if isinstance(source, str) else source)


def test_stdlib_source_extraction_rules(tmp_path):
    # Cut after each top-level statement and each statement of a top-level class's body; the
    # comments and blank lines before a statement go with it; blank lines at a chunk's ends go.
    put(tmp_path, "b.py", '"""Module b."""\n\nimport os  # why\nx = 1; y = 2\n\n\n# About C.\n@decorated\n'
        'class C:\n    """Class C."""\n\n    z = 3\n\n    def m(self):\n\n        return 1\n\n\n'
        'def f():\n    s = """\n\nnot a boundary\n"""\n    class Inner:\n        pass\n# trailing comment\n\n')
    put(tmp_path, "a.py", "A = 1\r\nB = 2\r\n")
    put(tmp_path, "pkg/__init__.py", "# only a comment\n")
    put(tmp_path, "pkg/empty.py", "\n\n")
    put(tmp_path, "latin.py", b'# -*- coding: latin-1 -*-\nCAFE = "Caf\xe9"\n')
    put(tmp_path, "broken.py", "def (:\n    pass\n")
    put(tmp_path, "undecodable.py", b'X = "\xff"\n')
    put(tmp_path, "nul.py", 'A = "\0"\nB = 1\n')  # a NUL byte: the parser refuses the file
    put(tmp_path, "table.py", "T = (\n" + "    1,\n" * (STDLIB_SOURCE_MAX_CHUNK // 7) + ")\nU = 2\n")
    put(tmp_path, "notes.txt", "N = 1\n")
    for skipped in ("test/t.py", "pkg/tests/t.py", "idlelib/i.py", "site-packages/s.py", "lib2to3/tests/l.py"):
        put(tmp_path, skipped, "S = 1\n")

    expected = [
        ("A = 1", "a.py", 0), ("B = 2", "a.py", 1),
        ('"""Module b."""', "b.py", 0), ("import os  # why", "b.py", 1), ("x = 1; y = 2", "b.py", 2),
        ('# About C.\n@decorated\nclass C:\n    """Class C."""', "b.py", 3), ("    z = 3", "b.py", 4),
        ("    def m(self):\n\n        return 1", "b.py", 5),
        ('def f():\n    s = """\n\nnot a boundary\n"""\n    class Inner:\n        pass\n# trailing comment', "b.py", 6),
        ('# -*- coding: latin-1 -*-\nCAFE = "Café"', "latin.py", 0),
        ("# only a comment", "pkg/__init__.py", 0),
        ("U = 2", "table.py", 1),
    ]
    in_source_order = "\n\n".join(chunk for chunk, _, _ in expected)
    assert stdlib_source_text(tmp_path, shuffled=False, max_chars=None) == in_source_order
    key = lambda row: stdlib_docs._order_key(row[1], row[2], stdlib_source.STDLIB_SOURCE_ORDER_SEED)  # noqa: E731
    shuffled = "\n\n".join(chunk for chunk, _, _ in sorted(expected, key=key))
    assert stdlib_source_text(tmp_path, max_chars=None) == shuffled != in_source_order
    assert stdlib_source_text(tmp_path, max_chars=None) == stdlib_source_text(tmp_path, max_chars=None)

    # The cap cuts at a chunk boundary: the longest prefix of the seeded order that fits.
    assert stdlib_source_text(tmp_path, max_chars=len(shuffled)) == shuffled
    cut = stdlib_source_text(tmp_path, max_chars=len(shuffled) - 1)
    assert shuffled.startswith(cut + "\n\n") and len(cut) < len(shuffled) - 1
    assert stdlib_source_text(tmp_path, max_chars=0) == ""


def test_stdlib_source_order_is_shuffled_not_source_order(tmp_path):
    (tmp_path / "m.py").write_text("".join(f"def f{i:03d}():\n    return {i}\n\n" for i in range(200)))
    chunks = stdlib_source_text(tmp_path).split("\n\n")
    positions = [int(c[5:8]) for c in chunks]
    assert sorted(positions) == list(range(200)) and positions != list(range(200))
    assert abs(np.corrcoef(positions, np.arange(200))[0, 1]) < 0.3
    # A different seed from stdlib-docs': the two built-in corpora are not shuffled alike.
    assert stdlib_source.STDLIB_SOURCE_ORDER_SEED != stdlib_docs.STDLIB_DOCS_ORDER_SEED


# ---------------------------------------------------------------- packaging


def test_setup_cfg_ships_every_package_and_the_registry():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    listed = set(cfg["options"]["packages"].split())
    mapping = dict(
        (part.strip() for part in line.split("=", 1))
        for line in cfg["options"]["package_dir"].strip().splitlines()
    )
    assert mapping == {"bpttbench.corpora": "corpora"}
    on_disk = {"bpttbench.corpora"} | {
        ".".join(init.parent.relative_to(REPO).parts) for init in (REPO / "bpttbench").rglob("__init__.py")
    }
    missing = sorted(on_disk - listed)
    assert not missing, f"add {', '.join(missing)} to [options] packages in setup.cfg, or a plain pip install misses them"
    absent = sorted(p for p in listed - {"bpttbench.corpora"} if not (REPO / p.replace(".", "/")).is_dir())
    assert not absent, f"setup.cfg lists packages with no directory: {', '.join(absent)}"
    assert cfg["options.package_data"]["bpttbench.corpora"].strip() == "*.json"
    assert (REPO / "corpora" / "__init__.py").is_file()
    registry = json.loads((REPO / "corpora" / "registry.json").read_text(encoding="utf-8"))
    assert [e["name"] for e in registry["corpora"]] == ["tinyshakespeare"]
    assert not list((REPO / "corpora").glob("*.txt")), "corpus texts are downloaded into the cache, never committed"


def test_corpus_is_frozen():
    c = corpus_from_text("abc")
    assert isinstance(c, Corpus)
    with pytest.raises(AttributeError):
        c.name = "other"

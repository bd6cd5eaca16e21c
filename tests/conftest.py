"""Shared test fixtures: small synthetic corpora made here (nothing from elsewhere is committed)."""

from __future__ import annotations

import contextlib
import http.server
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from bpttbench.data.corpus import Corpus, corpus_from_text

# The JAX peer pins its process to one CPU by default (jax_peer.ONE_THREAD), the lowest it may use:
# every test worker that imports JAX would pin itself to the same one. Tests time nothing.
os.environ.setdefault("BPTTBENCH_JAX_ONE_THREAD", "flags")


def synthetic_ids(vocab_size: int, n: int, seed: int = 0) -> np.ndarray:
    """A stream with some structure (a noisy cycle), so training has something to learn."""
    rng = np.random.default_rng(seed)
    cycle = np.arange(n) % vocab_size
    noise = rng.integers(0, vocab_size, size=n)
    return np.where(rng.random(n) < 0.3, noise, cycle).astype(np.int32)


def tiny_corpus(vocab_size: int = 7, n: int = 4000, seed: int = 0) -> Corpus:
    """A Corpus whose ids are synthetic_ids (characters 'a', 'b', ... in code-point order)."""
    ids = synthetic_ids(vocab_size, n, seed)
    corpus = corpus_from_text("".join(chr(ord("a") + i) for i in ids), name=f"synthetic-{vocab_size}-{n}-{seed}")
    assert corpus.vocab_size == vocab_size and np.array_equal(corpus.ids, ids)
    return corpus


def skip_without_jax():
    """Skip unless JAX is installed, without importing it: the JAX peer must set XLA's threading
    before JAX starts in this process (pytest.importorskip would start it)."""
    import importlib.util

    if importlib.util.find_spec("jax") is None:
        pytest.skip("jax is not installed: pip install 'bpttbench[jax]'")


def run_steps(scheme, n):
    """Advance a scheme n steps, asserting it did all of them; returns the per-step losses."""
    losses = np.full(n, -1.0)
    assert scheme.run(n, losses) == n
    return losses


@pytest.fixture
def corpus():
    return tiny_corpus()


def central_differences(f, theta, indices=None, eps=1e-5) -> np.ndarray:
    """Central finite differences of f at theta (all entries, or those at indices); theta is restored."""
    indices = np.arange(theta.size) if indices is None else indices
    estimate = np.zeros(len(indices))
    for n, i in enumerate(indices):
        saved = theta[i]
        theta[i] = saved + eps
        up = f(theta)
        theta[i] = saved - eps
        down = f(theta)
        theta[i] = saved
        estimate[n] = (up - down) / (2 * eps)
    return estimate


@contextlib.contextmanager
def serving(directory: Path, *, truncate: bool = False):
    """An HTTP server on 127.0.0.1 (ephemeral port) serving `directory`; yields (base URL, paths requested)."""
    hits: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(directory), **kwargs)

        def log_message(self, *args):
            pass

        def do_GET(self):
            hits.append(self.path)
            if not truncate:
                return super().do_GET()
            body = (directory / self.path.lstrip("/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))  # promises all, sends half
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def invoke(args, capsys):
    """Run `bpttbench ARGS` in-process; returns (exit code, stdout, stderr)."""
    from bpttbench.cli import main

    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def text_file(tmp_path):
    """A 30,000-character synthetic text file (12 symbols) for runs through the CLI."""
    ids = synthetic_ids(12, 30000, seed=5)
    path = tmp_path / "tiny.txt"
    path.write_text("".join("abcdefghijk "[i] for i in ids), encoding="utf-8")
    return path

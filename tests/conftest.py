"""Shared test fixtures: small synthetic corpora made here (nothing from elsewhere is committed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bpttbench.corpus import Corpus, corpus_from_text

SHARED_CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"


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


@pytest.fixture
def corpus():
    return tiny_corpus()


@pytest.fixture(scope="session")
def shakespeare_path() -> Path:
    path = SHARED_CORPORA / "tinyshakespeare.txt"
    if not path.exists():
        pytest.skip(f"{path} not found (the shared corpora sit beside the checkout)")
    return path

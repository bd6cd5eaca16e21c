"""Reference levels: what character statistics alone reach on a corpus's validation split.

Unigram, bigram and trigram models fitted on the training split (the text the runs read), scored
on the validation split in bits/char, so a reader sees whether a network has learned more than
character statistics. Each model interpolates its maximum-likelihood estimate with the lower
orders and the uniform distribution (Jelinek-Mercer, fixed weights), so every validation
character has a finite cost; an unseen context falls back to the next lower order.
"""

from __future__ import annotations

import math

import numpy as np

# Interpolation weights, highest order first, the last on the uniform distribution.
WEIGHTS = {"unigram": (0.95, 0.05), "bigram": (0.85, 0.10, 0.05), "trigram": (0.6, 0.25, 0.10, 0.05)}
LEVELS = tuple(WEIGHTS)


def _counts(codes: np.ndarray, size: int) -> np.ndarray:
    return np.bincount(codes, minlength=size).astype(np.float64)


def reference_levels(train_ids: np.ndarray, val_ids: np.ndarray, vocab_size: int) -> dict[str, float]:
    """Bits/char of the unigram, bigram and trigram models fitted on train_ids, on val_ids[2:]
    (each validation character from the third on, predicted from the two before it)."""
    V = int(vocab_size)
    train = np.asarray(train_ids, dtype=np.int64)
    val = np.asarray(val_ids, dtype=np.int64)
    if len(train) < 3 or len(val) < 3:
        return {level: math.nan for level in LEVELS}
    a, b, y = val[:-2], val[1:-1], val[2:]
    uni = _counts(train, V)
    p_uni = uni[y] / uni.sum()
    bi_ctx = _counts(train[:-1], V)
    bi = _sparse_counts(train[:-1] * V + train[1:])
    p_bi = np.where(bi_ctx[b] > 0, bi(b * V + y) / np.maximum(bi_ctx[b], 1), p_uni)
    tri_ctx = _sparse_counts(train[:-2] * V + train[1:-1])
    tri = _sparse_counts((train[:-2] * V + train[1:-1]) * V + train[2:])
    ctx = tri_ctx(a * V + b)
    p_tri = np.where(ctx > 0, tri((a * V + b) * V + y) / np.maximum(ctx, 1), p_bi)
    orders = {"unigram": (p_uni,), "bigram": (p_bi, p_uni), "trigram": (p_tri, p_bi, p_uni)}
    out = {}
    for level, ps in orders.items():
        w = WEIGHTS[level]
        p = sum(wi * pi for wi, pi in zip(w, ps)) + w[-1] / V
        out[level] = float(np.mean(-np.log2(p)))
    return out


def _sparse_counts(codes: np.ndarray):
    """A lookup of how often each code occurs in codes (0 for codes it never saw), without a dense
    table: a trigram's codes run to V**3."""
    keys, counts = np.unique(codes, return_counts=True)

    def lookup(query: np.ndarray) -> np.ndarray:
        i = np.clip(np.searchsorted(keys, query), 0, len(keys) - 1)
        return np.where(keys[i] == query, counts[i], 0).astype(np.float64)

    return lookup

"""How stationary is a corpus's difficulty? The spread of one fixed model's loss over consecutive
windows of the training text, for the default corpus in source order (before the seeded shuffle)
and as built now, and for any other corpus named.

The fixed model is an interpolated character trigram fitted on the whole text, so the same model
judges both orders (a shuffle changes the counts only where two docstrings meet). A stationary
text gives every window about the same loss; a text with long easy or hard stretches gives a wide
spread and long runs of windows on one side of the median.

    python benchmarks/stationarity.py                       # stdlib-docs before and after
    python benchmarks/stationarity.py --corpus tinyshakespeare --window 10000
"""

from __future__ import annotations

import argparse

import numpy as np

from bpttbench.data.corpus import DEFAULT_CORPUS, TRAIN_FRACTION, corpus_from_text, load_corpus
from bpttbench.data.stdlib_docs import stdlib_docs_text

WEIGHTS = (0.6, 0.25, 0.1, 0.05)  # trigram, bigram, unigram, uniform


def trigram_bits(ids: np.ndarray, vocab_size: int) -> np.ndarray:
    """Bits to predict ids[t] from ids[t-2], ids[t-1], for t >= 2, under the interpolated trigram fitted on ids."""
    V = np.int64(vocab_size)
    a, b, y = ids[:-2].astype(np.int64), ids[1:-1].astype(np.int64), ids[2:].astype(np.int64)

    def lookup(codes: np.ndarray) -> np.ndarray:
        keys, inverse, counts = np.unique(codes, return_inverse=True, return_counts=True)
        return counts[inverse].astype(np.float64)

    tri, ctx2 = lookup((a * V + b) * V + y), lookup(a * V + b)
    bi, ctx1 = lookup(b * V + y), lookup(b)
    uni = lookup(y)
    p = (WEIGHTS[0] * tri / ctx2 + WEIGHTS[1] * bi / ctx1 + WEIGHTS[2] * uni / len(y) + WEIGHTS[3] / vocab_size)
    return -np.log2(p)


def window_spread(ids: np.ndarray, vocab_size: int, window: int) -> dict:
    bits = trigram_bits(ids, vocab_size)
    n_train = int(TRAIN_FRACTION * len(ids)) - 2
    per_window = bits[: n_train // window * window].reshape(-1, window).mean(axis=1)
    above = per_window > np.median(per_window)
    runs = np.diff(np.flatnonzero(np.diff(np.r_[-1, above.astype(int), -1]) != 0))
    return {
        "windows": len(per_window),
        "mean": per_window.mean(),
        "std": per_window.std(),
        "p5_p95": np.percentile(per_window, 95) - np.percentile(per_window, 5),
        "min_max": per_window.max() - per_window.min(),
        "lag1_autocorr": np.corrcoef(per_window[:-1], per_window[1:])[0, 1],
        "longest_run": int(runs.max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", action="append", help="also measure this corpus (name or path)")
    parser.add_argument("--window", type=int, default=10_000, help="characters per window")
    args = parser.parse_args()
    texts = {f"{DEFAULT_CORPUS} (source order, before)": corpus_from_text(stdlib_docs_text(shuffled=False)),
             f"{DEFAULT_CORPUS} (seeded order, now)": load_corpus(DEFAULT_CORPUS)}
    for name in args.corpus or ():
        texts[name] = load_corpus(name)
    print(f"loss of a fixed interpolated trigram over consecutive {args.window:,}-character windows of the training text "
          "(bits/char)")
    print(f"{'corpus':<40} {'windows':>7} {'mean':>6} {'std':>6} {'p95-p5':>7} {'max-min':>7} {'lag-1 r':>7} {'longest run':>11}")
    for name, corpus in texts.items():
        s = window_spread(np.asarray(corpus.ids), corpus.vocab_size, args.window)
        print(f"{name:<40} {s['windows']:>7} {s['mean']:>6.3f} {s['std']:>6.3f} {s['p5_p95']:>7.3f} {s['min_max']:>7.3f} "
              f"{s['lag1_autocorr']:>7.2f} {s['longest_run']:>11}")


if __name__ == "__main__":
    main()

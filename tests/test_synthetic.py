"""Generated corpora: exact entropy rates against closed forms and brute force, the generators against
their definitions (the ideal code length of generated text), determinism, and loading by name.

The processes are written here a second time, straight from the docstring of bpttbench/data/synthetic.py,
as `step(state) -> [(probability, character, next state)]` functions sharing no code with the module.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pytest

from bpttbench.data import synthetic
from bpttbench.data.corpus import list_corpora, load_corpus
from bpttbench.errors import CorpusError

# ---------------------------------------------------------------- the processes, from their definitions

REBER_GRAPH = {1: [("T", 2), ("P", 3)], 2: [("S", 2), ("X", 4)], 3: [("T", 3), ("V", 5)],
               4: [("X", 3), ("S", 6)], 5: [("P", 4), ("V", 6)]}


def reber_step(state):
    """state: ('start',) | ('outer',) | ('inner_B', b) | ('node', b, k) | ('repeat', b) | ('end',)."""
    kind = state[0]
    if kind == "start":
        return [(1.0, "B", ("outer",))]
    if kind == "outer":
        return [(0.5, b, ("inner_B", b)) for b in "TP"]
    if kind == "inner_B":
        return [(1.0, "B", ("node", state[1], 1))]
    if kind == "node":
        b, k = state[1], state[2]
        if k == 6:
            return [(1.0, "E", ("repeat", b))]
        return [(0.5, c, ("node", b, t)) for c, t in REBER_GRAPH[k]]
    if kind == "repeat":
        return [(1.0, state[1], ("end",))]
    return [(1.0, "E", ("start",))]


def lag_step(L, M, K):
    cues = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[:M]
    noise = "abcdefghijklmnopqrstuvwxyz"[:K]

    def step(state):
        position, cue = state  # position in the episode of the next character
        if position == 0:
            return [(1 / M, c, (1, c)) for c in cues]
        if position <= L - 2:
            return [(1 / K, c, (position + 1, cue)) for c in noise]
        if position == L - 1:
            return [(1.0, "?", (L, cue))]
        return [(1.0, cue, (0, None))]

    return step, (0, None)


def brackets_step(D, T, p):
    opens, closes = "([{<"[:T], ")]}>"[:T]

    def step(stack):
        out = []
        if len(stack) < D:
            w = 1.0 if not stack else p
            out += [(w / T, opens[t], stack + (t,)) for t in range(T)]
        if stack:
            out.append((1.0 if len(stack) == D else 1.0 - p, closes[stack[-1]], stack[:-1]))
        return out

    return step, ()


def block_entropies(step, start, n_max):
    """H(X_1..X_n) in bits for n = 0..n_max, by enumerating every string of positive probability."""
    layer = {("", start): 1.0}
    out = [0.0]
    for _ in range(n_max):
        nxt = defaultdict(float)
        for (text, state), prob in layer.items():
            for q, ch, new in step(state):
                nxt[(text + ch, new)] += prob * q
        layer = nxt
        by_text = defaultdict(float)
        for (text, _), prob in layer.items():
            by_text[text] += prob
        out.append(-sum(p * math.log2(p) for p in by_text.values()))
    return np.array(out)


def ideal_code_length(step, start, text):
    """Per-character -log2 probability of text under the true process, tracking its state (unifilar)."""
    state, bits = start, np.empty(len(text))
    for i, ch in enumerate(text):
        arcs = {c: (q, new) for q, c, new in step(state)}
        assert ch in arcs, f"character {i} ({ch!r}) is impossible in state {state}: the generator breaks its definition"
        q, state = arcs[ch]
        bits[i] = -math.log2(q)
    return bits


def stationary_rate_by_power_iteration(step, start):
    """The rate sum_s pi(s) H(next | s) on the full state space, pi by power iteration on the lazy chain."""
    states, frontier = {start: 0}, [start]
    while frontier:
        s = frontier.pop()
        for _, _, new in step(s):
            if new not in states:
                states[new] = len(states)
                frontier.append(new)
    P = np.zeros((len(states), len(states)))
    H = np.zeros(len(states))
    for s, i in states.items():
        for q, _, new in step(s):
            P[i, states[new]] += q
            H[i] -= q * math.log2(q)
    lazy = 0.5 * (P + np.eye(len(states)))
    pi = np.full(len(states), 1.0 / len(states))
    for _ in range(20000):
        pi = pi @ lazy
    return float(pi @ H)


# ---------------------------------------------------------------- exact rates


def test_closed_forms():
    assert synthetic.entropy_rate("reber") == pytest.approx(7 / 12, abs=1e-12)
    for L, M, K in [(2, 4, 4), (5, 3, 2), (20, 4, 4), (50, 26, 1)]:
        expected = (math.log2(M) + (L - 2) * math.log2(K)) / (L + 1)
        assert synthetic.entropy_rate(f"lag:{L}:symbols={M}:noise={K}") == pytest.approx(expected, abs=1e-12)
    for D, T in [(1, 2), (2, 3), (8, 3), (5, 4)]:
        # p = 1/2: pi(0) = pi(D) = 1/(2D), pi(d) = 1/D inside; H = log2 T at 0, 1 + log2(T)/2 inside, 0 at D
        expected = math.log2(T) / (2 * D) + (D - 1) / D * (1 + math.log2(T) / 2)
        assert synthetic.entropy_rate(f"brackets:depth={D}:types={T}") == pytest.approx(expected, abs=1e-12)


def test_lag_rate_equals_brute_force_block_entropy():
    L, M, K = 4, 2, 3
    step, start = lag_step(L, M, K)
    H = block_entropies(step, start, 3 * (L + 1))
    h = np.diff(H)  # h[n-1] = H(X_n | X_1..X_{n-1})
    per_period = h[-(L + 1):].mean()  # one whole episode after the first
    assert per_period == pytest.approx(synthetic.entropy_rate(f"lag:{L}:symbols={M}:noise={K}"), abs=1e-12)


def test_brackets_rate_equals_brute_force_block_entropy():
    D, T, p = 2, 2, 0.3
    step, start = brackets_step(D, T, p)
    h = np.diff(block_entropies(step, start, 12))
    # depth changes by 1 every step (period 2): average two consecutive conditional entropies
    assert h[-2:].mean() == pytest.approx(synthetic.entropy_rate(f"brackets:depth={D}:types={T}:p={p}"), abs=1e-12)


@pytest.mark.parametrize("D,T,p", [(3, 2, 0.3), (4, 3, 0.7), (6, 1, 0.45)])
def test_brackets_depth_chain_equals_full_stack_automaton(D, T, p):
    """The module lumps stacks by depth; the full stack automaton (T^D states) gives the same rate."""
    step, start = brackets_step(D, T, p)
    full = stationary_rate_by_power_iteration(step, start)
    assert synthetic.entropy_rate(f"brackets:depth={D}:types={T}:p={p}") == pytest.approx(full, abs=1e-10)


def test_reber_rate_equals_the_full_automaton_by_power_iteration():
    # (block entropies from the start state converge too slowly here: the chain is nearly periodic)
    assert stationary_rate_by_power_iteration(reber_step, ("start",)) == pytest.approx(
        synthetic.entropy_rate("reber"), abs=1e-10)


def test_automaton_stationary_solver_on_a_periodic_chain():
    P = np.array([[0.0, 1.0, 0.0], [0.5, 0.0, 0.5], [0.0, 1.0, 0.0]])
    assert synthetic.stationary_distribution(P) == pytest.approx([0.25, 0.5, 0.25], abs=1e-14)


# ---------------------------------------------------------------- the generators against their definitions


@pytest.mark.parametrize("spec,step_start", [
    ("reber:n=150000", (reber_step, ("start",))),
    ("lag:7:symbols=3:noise=2:n=150000", lag_step(7, 3, 2)),
    ("lag:20:n=150000", lag_step(20, 4, 4)),
    ("brackets:depth=5:types=3:p=0.4:n=150000", brackets_step(5, 3, 0.4)),
])
def test_generated_text_follows_its_definition_at_the_entropy_rate(spec, step_start):
    made = synthetic.generate(spec)
    bits = ideal_code_length(*step_start, made.text)  # fails on any character the definition forbids
    # the mean ideal code length estimates the entropy rate; blocks of 1000 characters are nearly
    # independent, so their means give an honest standard error
    blocks = bits[: len(bits) // 1000 * 1000].reshape(-1, 1000).mean(axis=1)
    se = blocks.std(ddof=1) / math.sqrt(len(blocks))
    assert abs(bits.mean() - made.entropy_rate_bpc) < 5 * se + 1e-3
    assert abs(bits.mean() - made.entropy_rate_bpc) < 0.02


def test_lag_recall_is_the_cue_from_lag_steps_back():
    L = 9
    text = synthetic.generate(f"lag:{L}:n=5000").text
    for start in range(0, len(text) - L, L + 1):
        episode = text[start : start + L + 1]
        assert episode[0].isupper() and episode[-1] == episode[0] and episode[-2] == "?"
        assert all(c.islower() for c in episode[1:-2])


def test_brackets_are_balanced_and_bounded():
    text = synthetic.generate("brackets:depth=4:types=4:n=20000").text
    stack, deepest = [], 0
    for ch in text:
        if ch in "([{<":
            stack.append(")]}>"["([{<".index(ch)])
            deepest = max(deepest, len(stack))
        else:
            assert stack.pop() == ch
    assert deepest == 4


# ---------------------------------------------------------------- determinism and names


@pytest.mark.parametrize("kind", ["reber", "lag:12", "brackets"])
def test_determinism_seeds_and_prefixes(kind):
    a = synthetic.generate(f"{kind}:n=3000")
    assert a.text == synthetic.generate(f"{kind}:n=3000:seed=0").text
    assert a.text != synthetic.generate(f"{kind}:n=3000:seed=1").text
    longer = synthetic.generate(f"{kind}:n=5000").text
    assert len(a.text) == 3000 and longer.startswith(a.text)


def test_load_corpus_carries_the_optimum():
    c = load_corpus("lag:20:seed=3:n=200000")
    assert c.name == "lag:20:seed=3:n=200000" and c.n_chars == 200000
    assert c.source == "generated:lag:20:symbols=4:noise=4:seed=3:n=200000"
    info = c.info()
    assert info["optimum_bpc"] == pytest.approx((2 + 18 * 2) / 21)
    assert info["generator"] == {"kind": "lag", "lag": 20, "symbols": 4, "noise": 4, "seed": 3, "n": 200000}
    assert c.vocab == tuple("?ABCDabcd")
    assert load_corpus("lag:20:seed=0:noise=4").name == "lag:20"  # defaults left out of the name
    assert load_corpus("reber:n=2000").info()["optimum_bpc"] == pytest.approx(7 / 12)
    assert load_corpus("brackets:n=2000").vocab == tuple("()[]{}")
    names = [row["name"] for row in list_corpora()]
    assert {"reber", "lag:L", "brackets"} <= set(names)


@pytest.mark.parametrize("spec,words", [
    ("lag", "needs the lag"),
    ("lag:x", "whole number"),
    ("lag:1", "at least 2"),
    ("lag:20:colour=3", "no parameter 'colour'"),
    ("lag:20:seed=1:seed=2", "twice"),
    ("reber:seed", "key=value"),
    ("reber:n=1", "between 2"),
    ("brackets:p=1", "strictly between 0 and 1"),
    ("brackets:types=5", "types must be between 1 and 4"),
    ("brackets:depth=0", "depth must be at least 1"),
    ("brackets:p=nan", "must be a number"),
])
def test_bad_specs_are_one_line_errors(spec, words):
    with pytest.raises(CorpusError, match=words) as e:
        load_corpus(spec)
    assert "\n" not in str(e.value)


def test_run_manifest_and_figures_carry_the_optimum(tmp_path):
    from bpttbench.config import TrainConfig
    from bpttbench.plot import plot_runs
    from bpttbench.training.runner import execute

    corpus = load_corpus("lag:3:n=3000")
    cfg = TrainConfig(scheme="single", k2=4, hidden=4, budget_steps=200, log_every=100, eval_every=0, eval_chars=100)
    execute([cfg], corpus, tmp_path / "run")
    import json

    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["corpus"]["optimum_bpc"] == pytest.approx(1.0)  # (log2 4 cue + log2 4 noise) / 4 characters
    assert manifest["corpus"]["generator"]["lag"] == 3
    written = plot_runs(tmp_path / "run", formats=("svg",))
    svg = next(p for p in written if p.name == "loss_vs_iter.svg").read_text()
    assert "optimum: entropy rate 1.000" in svg

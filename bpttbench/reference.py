"""The same math as the Numba kernels and schemes, in plain NumPy: slow, obvious, the thing tests believe.

Parameters are dicts by PyTorch name (see model.py). Forward functions return (out, cache),
backward functions take (dout, cache) and return gradients. Each scheme is written literally
from its definition, with Python lists of past activations and (for `stored`) deep copies of
past weights, and shares no code with the kernels.

Three cells, torch.nn's equations: the LSTM (gates i, f, g, o), the GRU (r, z, n, the reset gate
applied to W_hn h + b_hn) and the tanh Elman RNN. The cell is read off the parameters (W_hh's rows
over its columns: scheme_names.CELLS), so nothing else takes it. The state is (h, c) for every cell:
the GRU and the RNN have no cell state, and their c is 0 wide, (B, 0), so the same tuples carry it.

References:
- R. J. Williams and J. Peng, "An efficient gradient-based algorithm for on-line training of
  recurrent network trajectories", Neural Computation 2(4), 1990 (BPTT(h; h')).
- I. Sutskever, "Training Recurrent Neural Networks", PhD thesis, Toronto, 2013, section 2.8.6
  (TBPTT(k1, k2)).
- R. J. Williams and D. Zipser, "A learning algorithm for continually running fully recurrent
  neural networks", Neural Computation 1(2), 1989 (RTRL).
- C. Tallec and Y. Ollivier, "Unbiased online recurrent optimization", ICLR 2018 (UORO, Algorithm 1).
- S. Vigna, splitmix64 (public-domain reference code, 2015), for uoro's random signs.
"""

from __future__ import annotations

import numpy as np

from bpttbench.scheme_names import cell_of_blocks, cells_of

LN2 = np.log(2.0)
REFERENCE_SCHEMES = ("chunked", "single", "stored", "sliding", "adaptive", "rtrl", "uoro")  # those `train` runs


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def lstm_forward(p, x, h_prev, c_prev):
    """x: (B,) character ids; h_prev, c_prev: (B, H). Returns (h, c), cache."""
    H = h_prev.shape[1]
    z = p["weight_ih_l0"][:, x].T + h_prev @ p["weight_hh_l0"].T + p["bias_ih_l0"] + p["bias_hh_l0"]  # B,4H
    i, f = sigmoid(z[:, :H]), sigmoid(z[:, H : 2 * H])
    g, o = np.tanh(z[:, 2 * H : 3 * H]), sigmoid(z[:, 3 * H :])
    c = f * c_prev + i * g
    h = o * np.tanh(c)
    return (h, c), (x, h_prev, c_prev, i, f, g, o, c)


def lstm_backward(dh, dc, cache, p):
    """Gradients of the loss w.r.t. h_prev, c_prev and the LSTM weights, given dL/dh and dL/dc."""
    x, h_prev, c_prev, i, f, g, o, c = cache
    tc = np.tanh(c)
    do = dh * tc
    dc = dc + dh * o * (1 - tc**2)
    di, df, dg = dc * g, dc * c_prev, dc * i
    dz = np.concatenate([di * i * (1 - i), df * f * (1 - f), dg * (1 - g**2), do * o * (1 - o)], axis=1)  # B,4H
    grads = {name: np.zeros_like(p[name]) for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")}
    np.add.at(grads["weight_ih_l0"].T, x, dz)
    grads["weight_hh_l0"] = dz.T @ h_prev
    grads["bias_ih_l0"] = dz.sum(axis=0)
    grads["bias_hh_l0"] = dz.sum(axis=0)
    return dz @ p["weight_hh_l0"], dc * f, grads


def cell_of(p):
    """The cell of parameters p: lstm, gru or rnn, by W_hh's gate blocks."""
    G, H = p["weight_hh_l0"].shape
    return cell_of_blocks(G // H)


def c_width(p):
    """The width of the cell state c: H for the LSTM, 0 for the cells without one."""
    return p["weight_hh_l0"].shape[1] if cell_of(p) == "lstm" else 0


def zero_state(p, B):
    """(h, c) of zeros for B streams, in the parameters' dtype."""
    dtype = p["weight_hh_l0"].dtype
    return np.zeros((B, p["weight_hh_l0"].shape[1]), dtype=dtype), np.zeros((B, c_width(p)), dtype=dtype)


def gru_forward(p, x, h_prev):
    """torch.nn.GRU's step. x: (B,) character ids; h_prev: (B, H). Returns h, cache."""
    H = h_prev.shape[1]
    gi = p["weight_ih_l0"][:, x].T + p["bias_ih_l0"]  # B,3H: the input's part
    gh = h_prev @ p["weight_hh_l0"].T + p["bias_hh_l0"]  # B,3H: the recurrent part
    r = sigmoid(gi[:, :H] + gh[:, :H])
    z = sigmoid(gi[:, H : 2 * H] + gh[:, H : 2 * H])
    hn = gh[:, 2 * H :]  # W_hn h_prev + b_hn, which r gates
    n = np.tanh(gi[:, 2 * H :] + r * hn)
    h = (1 - z) * n + z * h_prev
    return h, (x, h_prev, r, z, n, hn)


def gru_backward(dh, cache, p):
    """Gradients of the loss w.r.t. h_prev and the GRU weights, given dL/dh.

    The n block's recurrent pre-activation is multiplied by r, so W_hh's and b_hh's n rows get
    r times the gradient W_ih's and b_ih's n rows get.
    """
    x, h_prev, r, z, n, hn = cache
    dn = dh * (1 - z) * (1 - n**2)  # wrt n's pre-activation
    dr = dn * hn * r * (1 - r)
    dzg = dh * (h_prev - n) * z * (1 - z)
    dgi = np.concatenate([dr, dzg, dn], axis=1)  # B,3H: wrt W_ih x + b_ih
    dgh = np.concatenate([dr, dzg, dn * r], axis=1)  # B,3H: wrt W_hh h_prev + b_hh
    grads = {name: np.zeros_like(p[name]) for name in LSTM_NAMES}
    np.add.at(grads["weight_ih_l0"].T, x, dgi)
    grads["weight_hh_l0"] = dgh.T @ h_prev
    grads["bias_ih_l0"] = dgi.sum(axis=0)
    grads["bias_hh_l0"] = dgh.sum(axis=0)
    return dh * z + dgh @ p["weight_hh_l0"], grads


def rnn_forward(p, x, h_prev):
    """torch.nn.RNN's step (tanh). x: (B,) character ids; h_prev: (B, H). Returns h, cache."""
    a = p["weight_ih_l0"][:, x].T + h_prev @ p["weight_hh_l0"].T + p["bias_ih_l0"] + p["bias_hh_l0"]  # B,H
    h = np.tanh(a)
    return h, (x, h_prev, h)


def rnn_backward(dh, cache, p):
    """Gradients of the loss w.r.t. h_prev and the RNN weights, given dL/dh."""
    x, h_prev, h = cache
    da = dh * (1 - h**2)
    grads = {name: np.zeros_like(p[name]) for name in LSTM_NAMES}
    np.add.at(grads["weight_ih_l0"].T, x, da)
    grads["weight_hh_l0"] = da.T @ h_prev
    grads["bias_ih_l0"] = da.sum(axis=0)
    grads["bias_hh_l0"] = da.sum(axis=0)
    return da @ p["weight_hh_l0"], grads


def cell_forward(p, x, h_prev, c_prev):
    """The step of p's cell: ((h, c), cache), c (B, 0) for the cells without a cell state."""
    cell = cell_of(p)
    if cell == "lstm":
        return lstm_forward(p, x, h_prev, c_prev)
    h, cache = (gru_forward if cell == "gru" else rnn_forward)(p, x, h_prev)
    return (h, c_prev[:, :0]), cache


def cell_backward(dh, dc, cache, p):
    """(dL/dh_prev, dL/dc_prev, weight gradients) of p's cell; dc and dc_prev (B, 0) without a cell state."""
    cell = cell_of(p)
    if cell == "lstm":
        return lstm_backward(dh, dc, cache, p)
    dh_prev, grads = (gru_backward if cell == "gru" else rnn_backward)(dh, cache, p)
    return dh_prev, dc, grads


def head_forward(p, h, y):
    """Per-stream cross-entropy (nats) of the decoder's softmax against targets y."""
    logits = h @ p["decoder.weight"].T + p["decoder.bias"]  # B,V
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -log_probs[np.arange(len(y)), y]
    return loss, (h, np.exp(log_probs), y)


def head_backward(dloss, cache, p):
    """dloss: (B,) weight of each stream's loss. Returns dL/dh and the decoder's gradients."""
    h, probs, y = cache
    dlogits = probs.copy()
    dlogits[np.arange(len(y)), y] -= 1
    dlogits *= dloss[:, None]
    return dlogits @ p["decoder.weight"], {"decoder.weight": dlogits.T @ h, "decoder.bias": dlogits.sum(axis=0)}


def add_grads(total, part):
    for name, value in part.items():
        total[name] = total[name] + value


def zero_grads(p):
    return {name: np.zeros_like(value) for name, value in p.items()}


def step(p, x, y, h_prev, c_prev):
    """One full time step: returns (h, c), per-stream losses, and a cache for `backward_window`."""
    (h, c), cell_cache = cell_forward(p, x, h_prev, c_prev)
    loss, head_cache = head_forward(p, h, y)
    return (h, c), loss, (cell_cache, head_cache)


def backward_window(caches, weights, injected, scale):
    """Backprop through a window of steps, oldest first in `caches`.

    weights[k] are the parameters whose Jacobians step k's backward pass uses; injected[k]
    says whether step k's loss is in the objective; every injected per-stream loss is weighted
    by `scale`. The gradient stops at the state before the window.
    """
    grads = zero_grads(weights[-1])
    B, H = caches[-1][0][1].shape  # every cell's cache holds (x, h_prev, ...)
    dh, dc = np.zeros((B, H)), np.zeros((B, c_width(weights[-1])))
    for k in range(len(caches) - 1, -1, -1):
        cell_cache, head_cache = caches[k]
        if injected[k]:
            dh_head, head_grads = head_backward(np.full(B, scale), head_cache, weights[k])
            dh = dh + dh_head
            add_grads(grads, head_grads)
        dh, dc, cell_grads = cell_backward(dh, dc, cell_cache, weights[k])
        add_grads(grads, cell_grads)
    return grads


def window_loss(p, xs, ys, h0, c0, injected):
    """Mean over injected steps and streams of the loss of running xs from (h0, c0) with weights p."""
    h, c = h0, c0
    total, count = 0.0, 0
    for x, y, inj in zip(xs, ys, injected):
        (h, c), loss, _ = step(p, x, y, h, c)
        if inj:
            total += loss.sum()
            count += len(loss)
    return total / count


class Optimizer:
    """SGD or Adam (bias-corrected, as torch.optim.Adam) with optional global-norm clipping."""

    def __init__(self, p, kind, lr, clip, beta1=0.9, beta2=0.999, eps=1e-8):
        self.kind, self.lr, self.clip = kind, lr, clip
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.m, self.v, self.count = zero_grads(p), zero_grads(p), 0

    def step(self, p, grads):
        if self.clip > 0:
            norm = np.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in grads.values()))
            if norm > self.clip:
                grads = {k: g * (self.clip / norm) for k, g in grads.items()}
        if self.kind == "sgd":
            return {k: p[k] - self.lr * grads[k] for k in p}
        self.count += 1
        new = {}
        for k in p:
            self.m[k] = self.beta1 * self.m[k] + (1 - self.beta1) * grads[k]
            self.v[k] = self.beta2 * self.v[k] + (1 - self.beta2) * grads[k] ** 2
            m_hat = self.m[k] / (1 - self.beta1**self.count)
            v_hat = self.v[k] / (1 - self.beta2**self.count)
            new[k] = p[k] - self.lr * m_hat / (np.sqrt(v_hat) + self.eps)
        return new


def stream_inputs(train_ids, batch, t):
    """(x, y) of step t (1-based) for every stream; tracks wrap around at their end."""
    track_len = len(train_ids) // batch
    pos = (t - 1) % (track_len - 1)
    starts = np.arange(batch) * track_len
    return train_ids[starts + pos], train_ids[starts + pos + 1]


def train(scheme, p, train_ids, *, batch, k1, k2, n_steps, inject="new", optimizer="sgd", lr=0.1, clip=0.0,
          seed=0, k_max=None, adapt_every=None, delta=None):
    """Run a scheme for n_steps online from the zero state; returns (per-step mean losses in nats, final p).

    Written straight from each scheme's definition; `scheme` is chunked, single, stored, sliding,
    adaptive (k2 its first truncation; k_max, adapt_every and delta its settings), rtrl or uoro
    (these two ignore k2 and inject; seed picks uoro's signs).
    """
    if scheme not in REFERENCE_SCHEMES:
        raise ValueError(f"the reference has no scheme {scheme!r}; it has {', '.join(REFERENCE_SCHEMES)}")
    if scheme in ("rtrl", "uoro"):
        return train_online(scheme, p, train_ids, batch=batch, k1=k1, n_steps=n_steps, optimizer=optimizer, lr=lr,
                            clip=clip, seed=seed)
    if scheme == "adaptive":
        if None in (k_max, adapt_every, delta):
            raise ValueError("adaptive's reference needs k_max, adapt_every and delta")
        return train_adaptive(p, train_ids, batch=batch, k2=k2, n_steps=n_steps, k_max=k_max, adapt_every=adapt_every,
                              delta=delta, opt=Optimizer(p, optimizer, lr, clip))
    opt = Optimizer(p, optimizer, lr, clip)
    B = batch
    zero = zero_state(p, B)
    losses = np.zeros(n_steps)

    if scheme == "chunked":
        state = zero
        for start in range(0, n_steps, k1):
            end = min(start + k1, n_steps)  # a last, partial chunk runs forward only: its update is not due
            caches = []
            h, c = state
            for t in range(start + 1, end + 1):
                (h, c), loss, cache = step(p, *stream_inputs(train_ids, B, t), h, c)
                losses[t - 1] = loss.mean()
                caches.append(cache)
            if end - start == k1:
                grads = backward_window(caches, [p] * k1, [True] * k1, 1.0 / (k1 * B))
                p = opt.step(p, grads)
            state = (h, c)
        return losses, p

    # states[t] = (h_t, c_t) as most recently computed; caches[t], weights_used[t] for step t
    states, caches, weights_used, inputs = {0: zero}, {}, {}, {}
    for t in range(1, n_steps + 1):
        inputs[t] = stream_inputs(train_ids, B, t)
        if scheme in ("single", "stored"):
            weights_used[t] = {k: v.copy() for k, v in p.items()}
            states[t], loss, caches[t] = step(p, *inputs[t], *states[t - 1])
            losses[t - 1] = loss.mean()
        if t % k1:
            continue
        first = max(1, t - k2 + 1)
        window = range(first, t + 1)
        injected = [inject == "window" or tau > t - k1 for tau in window]
        if scheme == "sliding":
            for tau in window:  # recompute with the current weights from the stored state
                states[tau], loss, caches[tau] = step(p, *inputs[tau], *states[tau - 1])
                if tau > t - k1:
                    losses[tau - 1] = loss.mean()
        weights = [weights_used[tau] if scheme == "stored" else p for tau in window]
        scale = 1.0 / (sum(injected) * B)
        grads = backward_window([caches[tau] for tau in window], weights, injected, scale)
        p = opt.step(p, grads)
    return losses, p


def train_adaptive(p, train_ids, *, batch, k2, n_steps, k_max, adapt_every, delta, opt):
    """`adaptive` (Aicher, Foti & Fox 2019; schemes/adaptive.py): chunked at the truncation k in force,
    k2 at first. Just before every adapt_every-th update, the decay of the newest loss's gradient
    over the last min(k_max, t) steps (when that is at least 4), at the current weights, gives the
    truncation that holds from the next chunk on."""
    losses = np.zeros(n_steps)
    state = zero_state(p, batch)
    caches = []  # every step's, oldest first
    k, chunk_start, updates = k2, 0, 0
    for t in range(1, n_steps + 1):
        state, loss, cache = step(p, *stream_inputs(train_ids, batch, t), *state)
        losses[t - 1] = loss.mean()
        caches.append(cache)
        if t - chunk_start < k:
            continue
        next_k = k
        lags = min(k_max, t)
        if (updates + 1) % adapt_every == 0 and lags >= 4:
            next_k = adaptive_truncation(decay_norms(caches[-lags:], p), delta, k_max)
        p = opt.step(p, backward_window(caches[-k:], [p] * k, [True] * k, 1.0 / (k * batch)))
        updates, chunk_start, k = updates + 1, t, next_k
    return losses, p


# The recurrent cell's parameters, in theta's order (the same names for every cell).
LSTM_NAMES = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
UORO_EPS = 1e-7  # Tallec & Ollivier's eps0 = eps1: keeps the scalings finite when a factor is zero
_MASK = (1 << 64) - 1


def decay_norms(caches, p):
    """`adaptive`'s decay estimate: norms[l] = mean over streams of ||dL/d(h, c)|| l steps before
    the last step, L the last step's loss, for l = 0 .. len(caches) - 1 (caches from `step`,
    oldest first; Jacobians at p). Without a cell state (GRU, RNN) the norm is ||dL/dh||."""
    head_cache = caches[-1][1]
    B = len(head_cache[2])
    dh, _ = head_backward(np.ones(B), head_cache, p)
    dc = np.zeros((B, c_width(p)), dtype=dh.dtype)
    norms = []
    for k in range(len(caches) - 1, -1, -1):
        squares = dh**2 + dc**2 if dc.shape[1] else dh**2
        norms.append(np.sqrt(squares.sum(axis=1)).mean())
        if k:
            dh, dc, _ = cell_backward(dh, dc, caches[k][0], p)
    return np.array(norms)


def adaptive_truncation(norms, delta, k_max):
    """The smallest k in [1, k_max] with tail(k) <= delta * tail(0), where tail(k) sums the norms of
    the lags k, k+1, ...: measured below tau = n // 2, beyond it the geometric sequence fitted by
    least squares to log norms[tau:] (its zeros left out; none if fewer than two are left; see
    schemes/adaptive.py); k_max if the fit does not decay."""
    norms = np.asarray(norms, dtype=float)
    tau = len(norms) // 2
    lags = np.arange(tau, len(norms))[norms[tau:] > 0]  # an underflowed norm has no log
    at_tau, beta = 0.0, 0.0
    if len(lags) >= 2:
        logs = np.log(norms[lags])
        dx = lags - lags.mean()
        log_beta = (dx * (logs - logs.mean())).sum() / (dx**2).sum()
        if log_beta >= 0:
            return k_max
        beta = np.exp(log_beta)
        at_tau = np.exp(logs.mean() + log_beta * (tau - lags.mean()))
    ks = np.arange(1, k_max + 1)
    measured = np.array([norms[k:tau].sum() for k in ks])
    tail = measured + at_tau * beta ** (np.maximum(ks, tau) - tau) / (1 - beta)
    below = tail <= delta * (norms[:tau].sum() + at_tau / (1 - beta))
    return int(ks[below][0]) if below.any() else k_max


def state_jacobians(p, cache):
    """d(h, c)/d(h_prev, c_prev) (S x S) and d(h, c)/d theta_cell (S x P, LSTM_NAMES order) of one
    stream's step (cache from cell_forward), one row per state unit: the backward pass of each unit
    vector. S = 2H for the LSTM, H for the cells whose state is h alone."""
    H, Hc = p["weight_hh_l0"].shape[1], c_width(p)
    J_s = np.zeros((H + Hc, H + Hc))
    J_theta = np.zeros((H + Hc, sum(p[name].size for name in LSTM_NAMES)))
    for r in range(H + Hc):
        dh, dc = np.zeros((1, H)), np.zeros((1, Hc))
        (dh if r < H else dc)[0, r % H] = 1.0
        dh_prev, dc_prev, grads = cell_backward(dh, dc, cache, p)
        J_s[r] = np.concatenate([dh_prev[0], dc_prev[0]])
        J_theta[r] = np.concatenate([grads[name].ravel() for name in LSTM_NAMES])
    return J_s, J_theta


class SignStream:
    """uoro's random signs: splitmix64 from the state seed * 0x9E3779B97F4A7C15 + 0x243F6A8885A308D3
    (mod 2^64); a draw of n signs takes a fresh 64-bit output per 64 signs, bit r giving sign r (1: +1)."""

    def __init__(self, seed):
        self.state = (seed * 0x9E3779B97F4A7C15 + 0x243F6A8885A308D3) & _MASK

    def next64(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & _MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return z ^ (z >> 31)

    def draw(self, n):
        signs = np.empty(n)
        for i in range(n):
            if i % 64 == 0:
                bits = self.next64()
            signs[i] = 1.0 if (bits >> (i % 64)) & 1 else -1.0
        return signs


def train_online(kind, p, train_ids, *, batch, k1, n_steps, optimizer="sgd", lr=0.1, clip=0.0, seed=0):
    """rtrl (carry S = d(h, c)/d theta_cell: S = J_s S + J_theta; any cell) or uoro (Tallec & Ollivier's
    Algorithm 1: a rank-one s~ theta~^T in place of S; the LSTM only), each stream on its own; every
    k1 steps the mean over the k1 newest losses and the streams. Returns (per-step mean losses in
    nats, final p)."""
    cell = cell_of(p)
    if kind == "uoro" and cell not in cells_of("uoro"):
        raise ValueError(f"uoro's reference runs the {', '.join(cells_of('uoro'))} cell only, not the {cell}")
    opt = Optimizer(p, optimizer, lr, clip)
    H, Hc = p["weight_hh_l0"].shape[1], c_width(p)
    n_lstm = sum(p[name].size for name in LSTM_NAMES)
    state = [(np.zeros((1, H)), np.zeros((1, Hc))) for _ in range(batch)]
    S = [np.zeros((H + Hc, n_lstm)) for _ in range(batch)]
    s_tilde = [np.zeros(2 * H) for _ in range(batch)]
    theta_tilde = [np.zeros(n_lstm) for _ in range(batch)]
    signs = SignStream(seed)
    losses = np.zeros(n_steps)
    for t in range(1, n_steps + 1):
        if (t - 1) % k1 == 0:
            grads = zero_grads(p)
        xs, ys = stream_inputs(train_ids, batch, t)
        for b in range(batch):
            (h, c), cache = cell_forward(p, xs[b : b + 1], *state[b])
            loss, head_cache = head_forward(p, h, ys[b : b + 1])
            dh, head_grads = head_backward(np.array([1.0 / (k1 * batch)]), head_cache, p)
            J_s, J_theta = state_jacobians(p, cache)
            if kind == "rtrl":
                S[b] = J_s @ S[b] + J_theta
                g_lstm = dh[0] @ S[b][:H]
            else:
                tangent = J_s @ s_tilde[b]
                nu = signs.draw(2 * H)
                v = nu @ J_theta
                rho0 = np.sqrt(np.linalg.norm(theta_tilde[b]) / (np.linalg.norm(tangent) + UORO_EPS)) + UORO_EPS
                rho1 = np.sqrt(np.linalg.norm(v) / (np.linalg.norm(nu) + UORO_EPS)) + UORO_EPS
                s_tilde[b] = rho0 * tangent + rho1 * nu
                theta_tilde[b] = theta_tilde[b] / rho0 + v / rho1
                g_lstm = (dh[0] @ s_tilde[b][:H]) * theta_tilde[b]
            offset = 0
            for name in LSTM_NAMES:
                size = p[name].size
                grads[name] = grads[name] + g_lstm[offset : offset + size].reshape(p[name].shape)
                offset += size
            add_grads(grads, head_grads)
            state[b] = (h, c)
            losses[t - 1] += loss[0] / batch
        if t % k1 == 0:
            p = opt.step(p, grads)
    return losses, p


def evaluate_streams(p, ids, starts, lengths, burn_in):
    """(summed loss in nats, predictions scored): each stream read alone from the zero state,
    `burn_in` unscored steps, then lengths[s] scored predictions (kernels/evaluate.py's plan)."""
    total, count = 0.0, 0
    for start, length in zip(starts, lengths):
        h, c = zero_state(p, 1)
        for q in range(start, start + burn_in + length):
            (h, c), loss, _ = step(p, ids[q : q + 1], ids[q + 1 : q + 2], h, c)
            if q >= start + burn_in:
                total += loss[0]
                count += 1
    return total, count

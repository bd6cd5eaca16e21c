"""RTRL, SnAp-1 and e-prop in plain NumPy, written from their papers' equations: slow, dense, obvious.

The state of the LSTM is s_t = (h_t, c_t) (2H numbers). For one stream's step, with the previous
state held fixed, `step_jacobians` gives
    D_t = d s_t / d s_{t-1}                         (2H x 2H, the state's own Jacobian)
    I_t = d s_t / d theta  (previous state fixed)   (2H x P, the immediate Jacobian)
over the P = 4H(V+H+2) LSTM parameters in theta's order (weight_ih_l0, weight_hh_l0, bias_ih_l0,
bias_hh_l0). The three rules carry a 2H x P influence matrix J (or H x P eligibility) forward:

    rtrl    J_t = I_t + D_t J_{t-1}                          exact (Williams & Zipser)
    snap1   J_t = (I_t + D_t J_{t-1}) * M                    M keeps, for a parameter feeding unit k,
                                                             only the rows h_k and c_k (Menick et al.)
    eprop   eps_t = diag(f_t) eps_{t-1} + dc_t/dtheta        the cell's own recurrence, h_{t-1} fixed
            e_t   = diag(dh_t/dc_t) eps_t + dh_t/dtheta|c_t  plus the output gate's direct term (Bellec et al.)

and step t's loss contributes (dL_t/dh_t) J_t[:H] (rtrl, snap1) or (dL_t/dh_t) e_t (eprop) to the
LSTM's gradient; the decoder's gradient is the ordinary local one. Updates every k1 steps apply the
mean of the k1 newest losses' gradients over the B streams, as bpttbench/schemes/rtrl.py does.

Everything here is dense (2H x P per stream) and shares no code with the Numba kernels in
bpttbench/schemes/{snap1,eprop}.py, which the tests compare against it.

References:
- R. J. Williams and D. Zipser, "A learning algorithm for continually running fully recurrent
  neural networks", Neural Computation 1(2), 1989.
- J. Menick, E. Elsen, U. Evci, S. Osindero, K. Simonyan and A. Graves, "Practical real time
  recurrent learning with a sparse approximation", ICLR 2021.
- G. Bellec, F. Scherr, A. Subramoney, E. Hajek, D. Salaj, R. Legenstein and W. Maass, "A solution
  to the learning dilemma for recurrent networks of spiking neurons", Nature Communications 11,
  3625, 2020 (the LSTM version of e-prop is in its supplementary material).
"""

from __future__ import annotations

import numpy as np

from bpttbench import reference as ref

RULES = ("rtrl", "snap1", "eprop")
LSTM_NAMES = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")


def gate_input_jacobian(p, x, h_prev):
    """dz/dtheta (4H x P): pre-activation z_j = W_ih[j, x] + W_hh[j] . h_prev + b_ih[j] + b_hh[j]."""
    G = p["weight_ih_l0"].shape[0]
    blocks = {name: np.zeros((G,) + p[name].shape) for name in LSTM_NAMES}
    for j in range(G):
        blocks["weight_ih_l0"][j, j, x] = 1.0
        blocks["weight_hh_l0"][j, j, :] = h_prev
        blocks["bias_ih_l0"][j, j] = 1.0
        blocks["bias_hh_l0"][j, j] = 1.0
    return np.concatenate([blocks[name].reshape(G, -1) for name in LSTM_NAMES], axis=1)


def step_jacobians(p, cache):
    """(D, I, parts) of one stream's step; cache is reference.lstm_forward's for a batch of one.

    parts holds the pieces e-prop reads: dc_dz (H x 4H), dh_dc (H,), dh_dz_direct (H x 4H, through
    the output gate only) and dz_dtheta (4H x P).
    """
    x, h_prev, c_prev, i, f, g, o, c = (a[0] for a in cache)  # the one stream's row of each
    H = h_prev.size
    tc = np.tanh(c)
    eye = np.eye(H)
    # c = f c_prev + i g: its slopes in each gate's pre-activation (the output gate does not enter)
    dc_dz = np.concatenate([eye * (g * i * (1 - i)), eye * (c_prev * f * (1 - f)), eye * (i * (1 - g**2)),
                            np.zeros((H, H))], axis=1)  # H,4H
    dh_dc = o * (1 - tc**2)  # H
    dh_dz_direct = np.concatenate([np.zeros((H, 3 * H)), eye * (tc * o * (1 - o))], axis=1)  # H,4H
    dh_dz = dh_dc[:, None] * dc_dz + dh_dz_direct
    W_hh = p["weight_hh_l0"]
    D = np.block([[dh_dz @ W_hh, np.diag(dh_dc * f)], [dc_dz @ W_hh, np.diag(f)]])  # 2H,2H
    dz_dtheta = gate_input_jacobian(p, x, h_prev)
    I = np.concatenate([dh_dz @ dz_dtheta, dc_dz @ dz_dtheta])  # 2H,P
    parts = {"dc_dz": dc_dz, "dh_dc": dh_dc, "dh_dz_direct": dh_dz_direct, "dz_dtheta": dz_dtheta}
    return D, I, parts


def unit_mask(V, H):
    """M (2H x P): 1 where state row (h_k or c_k) belongs to the unit k the parameter feeds."""
    G = 4 * H
    unit_of_row = np.arange(G) % H  # gate row j = gate * H + k feeds unit k
    unit = np.concatenate([np.repeat(unit_of_row, V), np.repeat(unit_of_row, H), unit_of_row, unit_of_row])
    rows = np.concatenate([np.arange(H), np.arange(H)])
    return (rows[:, None] == unit[None, :]).astype(float)


def train_online(rule, p, ids, *, batch, k1, n_steps, optimizer="sgd", lr=0.0, clip=0.0):
    """Run `rule` online for n_steps from the zero state.

    Returns (per-step mean losses in nats, final parameters, the flat gradient of every update).
    """
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; choose one of {', '.join(RULES)}")
    opt = ref.Optimizer(p, optimizer, lr, clip)
    G, V = p["weight_ih_l0"].shape
    H = G // 4
    n_lstm = sum(p[name].size for name in LSTM_NAMES)
    mask = unit_mask(V, H)
    state = [(np.zeros((1, H)), np.zeros((1, H))) for _ in range(batch)]
    J = [np.zeros((2 * H, n_lstm)) for _ in range(batch)]  # eprop keeps eps in J[b][H:]
    losses, applied = np.zeros(n_steps), []
    for t in range(1, n_steps + 1):
        if (t - 1) % k1 == 0:
            acc = np.zeros(sum(v.size for v in p.values()))
        xs, ys = ref.stream_inputs(ids, batch, t)
        for b in range(batch):
            (h, c), cache = ref.lstm_forward(p, xs[b : b + 1], *state[b])
            loss, head_cache = ref.head_forward(p, h, ys[b : b + 1])
            dh, head_grads = ref.head_backward(np.array([1.0 / (k1 * batch)]), head_cache, p)
            D, I, parts = step_jacobians(p, cache)
            acc[:n_lstm] += dh[0] @ _advance(rule, J, b, D, I, parts, mask)
            acc[n_lstm:] += np.concatenate([head_grads["decoder.weight"].ravel(), head_grads["decoder.bias"]])
            state[b] = (h, c)
            losses[t - 1] += loss[0] / batch
        if t % k1 == 0:
            applied.append(acc.copy())
            p = opt.step(p, _unflat(acc, p))
    return losses, p, applied


def _advance(rule, J, b, D, I, parts, mask):
    """Carry stream b's influence (or eligibility) one step; returns the H x P matrix dh . _ multiplies."""
    H = D.shape[0] // 2
    if rule == "rtrl":
        J[b] = I + D @ J[b]
        return J[b][:H]
    if rule == "snap1":
        J[b] = (I + D @ J[b]) * mask
        return J[b][:H]
    f = np.diag(D[H:, H:])  # dc_t/dc_{t-1}: the forget gate
    eps = f[:, None] * J[b][H:] + parts["dc_dz"] @ parts["dz_dtheta"]
    J[b][H:] = eps
    return parts["dh_dc"][:, None] * eps + parts["dh_dz_direct"] @ parts["dz_dtheta"]


def _unflat(vector, like):
    out, offset = {}, 0
    for name, value in like.items():
        out[name] = vector[offset : offset + value.size].reshape(value.shape)
        offset += value.size
    return out

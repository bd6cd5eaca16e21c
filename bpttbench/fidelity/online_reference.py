"""RTRL, SnAp-1 and e-prop in plain NumPy, written from their papers' equations: slow, dense, obvious.

The state of the LSTM is s_t = (h_t, c_t) (S = 2H numbers); the GRU's and the tanh RNN's is h_t alone
(S = H). For one stream's step, with the previous state held fixed, `step_jacobians` gives
    D_t = d s_t / d s_{t-1}                         (S x S, the state's own Jacobian)
    I_t = d s_t / d theta  (previous state fixed)   (S x P, the immediate Jacobian)
over the P = G(V+H+2) cell parameters in theta's order (weight_ih_l0, weight_hh_l0, bias_ih_l0,
bias_hh_l0; G = 4H, 3H or H gate rows). The three rules carry an S x P influence matrix J (or H x P
eligibility) forward:

    rtrl    J_t = I_t + D_t J_{t-1}                          exact (Williams & Zipser)
    snap1   J_t = (I_t + D_t J_{t-1}) * M                    M keeps, for a parameter feeding unit k,
                                                             only the rows h_k (and c_k) (Menick et al.)
    eprop   eps_t = diag(f_t) eps_{t-1} + dc_t/dtheta        the cell's own recurrence, h_{t-1} fixed
            e_t   = diag(dh_t/dc_t) eps_t + dh_t/dtheta|c_t  plus the output gate's direct term (Bellec et al.)

and step t's loss contributes (dL_t/dh_t) J_t[:H] (rtrl, snap1) or (dL_t/dh_t) e_t (eprop) to the
cell's gradient; the decoder's gradient is the ordinary local one. Updates every k1 steps apply the
mean of the k1 newest losses' gradients over the B streams, as bpttbench/schemes/rtrl.py does.

rtrl and snap1 run every cell; eprop's recurrence is the LSTM's cell state, so it runs the LSTM only.

Everything here is dense (S x P per stream) and shares no code with the Numba kernels in
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
from bpttbench.scheme_names import CELLS

RULES = ("rtrl", "snap1", "eprop")
LSTM_NAMES = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")


def gate_input_jacobian(p, x, h_prev):
    """dz/dtheta (G x P): pre-activation z_j = W_ih[j, x] + W_hh[j] . h_prev + b_ih[j] + b_hh[j]."""
    G = p["weight_ih_l0"].shape[0]
    blocks = {name: np.zeros((G,) + p[name].shape) for name in LSTM_NAMES}
    for j in range(G):
        blocks["weight_ih_l0"][j, j, x] = 1.0
        blocks["weight_hh_l0"][j, j, :] = h_prev
        blocks["bias_ih_l0"][j, j] = 1.0
        blocks["bias_hh_l0"][j, j] = 1.0
    return np.concatenate([blocks[name].reshape(G, -1) for name in LSTM_NAMES], axis=1)


def step_jacobians(p, cache):
    """(D, I, parts) of one stream's step; cache is reference.cell_forward's for a batch of one.

    For the LSTM, parts holds the pieces e-prop reads: dc_dz (H x 4H), dh_dc (H,), dh_dz_direct
    (H x 4H, through the output gate only) and dz_dtheta (4H x P); for the other cells it is empty.
    """
    cell = ref.cell_of(p)
    if cell == "gru":
        return gru_step_jacobians(p, cache)
    if cell == "rnn":
        return rnn_step_jacobians(p, cache)
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


def gru_step_jacobians(p, cache):
    """(D, I, {}) of a GRU step (torch.nn.GRU; cache from reference.gru_forward, a batch of one).

    h = (1 - z) n + z h_prev with n = tanh(a_n + r * hn), hn = W_hn h_prev + b_hn: r, z and the input
    side of n see the pre-activations W_ih x + b_ih + W_hh h_prev + b_hh, the recurrent side of n sees
    r * (W_hn h_prev + b_hn), so the recurrent parameters of the n block carry a factor r.
    """
    x, h_prev, r, z, n, hn = (a[0] for a in cache)
    H = h_prev.size
    dh_dan = (1 - z) * (1 - n**2)  # through n's pre-activation
    dh_input = np.concatenate([np.diag(dh_dan * hn * r * (1 - r)), np.diag((h_prev - n) * z * (1 - z)),
                               np.diag(dh_dan)], axis=1)  # H,3H: wrt W_ih x + b_ih
    dh_recurrent = dh_input.copy()
    dh_recurrent[:, 2 * H :] *= r  # H,3H: wrt W_hh h_prev + b_hh
    D = np.diag(z) + dh_recurrent @ p["weight_hh_l0"]
    dz_dtheta = gate_input_jacobian(p, x, h_prev)
    sizes = [p[name].size for name in LSTM_NAMES]
    recurrent = np.zeros(sum(sizes), dtype=bool)  # weight_hh_l0's and bias_hh_l0's columns
    recurrent[sizes[0] : sizes[0] + sizes[1]] = True
    recurrent[sum(sizes[:3]) :] = True
    I = dh_input @ (dz_dtheta * ~recurrent) + dh_recurrent @ (dz_dtheta * recurrent)
    return D, I, {}


def rnn_step_jacobians(p, cache):
    """(D, I, {}) of a tanh RNN step (cache from reference.rnn_forward, a batch of one): h = tanh(a)."""
    x, h_prev, h = (a[0] for a in cache)
    dh_da = np.diag(1 - h**2)
    return dh_da @ p["weight_hh_l0"], dh_da @ gate_input_jacobian(p, x, h_prev), {}


def unit_mask(V, H, cell="lstm"):
    """M (S x P): 1 where state row (h_k, or the LSTM's c_k) belongs to the unit k the parameter feeds."""
    G = CELLS[cell] * H
    unit_of_row = np.arange(G) % H  # gate row j = gate * H + k feeds unit k
    unit = np.concatenate([np.repeat(unit_of_row, V), np.repeat(unit_of_row, H), unit_of_row, unit_of_row])
    rows = np.concatenate([np.arange(H), np.arange(H)]) if cell == "lstm" else np.arange(H)
    return (rows[:, None] == unit[None, :]).astype(float)


def train_online(rule, p, ids, *, batch, k1, n_steps, optimizer="sgd", lr=0.0, clip=0.0):
    """Run `rule` online for n_steps from the zero state.

    Returns (per-step mean losses in nats, final parameters, the flat gradient of every update).
    """
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; choose one of {', '.join(RULES)}")
    cell = ref.cell_of(p)
    if rule == "eprop" and cell != "lstm":
        raise ValueError(f"eprop's reference runs the lstm cell only (its trace is the cell state), not the {cell}")
    opt = ref.Optimizer(p, optimizer, lr, clip)
    V, H, Hc = p["weight_ih_l0"].shape[1], p["weight_hh_l0"].shape[1], ref.c_width(p)
    n_lstm = sum(p[name].size for name in LSTM_NAMES)
    mask = unit_mask(V, H, cell)
    state = [(np.zeros((1, H)), np.zeros((1, Hc))) for _ in range(batch)]
    J = [np.zeros((H + Hc, n_lstm)) for _ in range(batch)]  # eprop keeps eps in J[b][H:]
    losses, applied = np.zeros(n_steps), []
    for t in range(1, n_steps + 1):
        if (t - 1) % k1 == 0:
            acc = np.zeros(sum(v.size for v in p.values()))
        xs, ys = ref.stream_inputs(ids, batch, t)
        for b in range(batch):
            (h, c), cache = ref.cell_forward(p, xs[b : b + 1], *state[b])
            loss, head_cache = ref.head_forward(p, h, ys[b : b + 1])
            dh, head_grads = ref.head_backward(np.array([1.0 / (k1 * batch)]), head_cache, p)
            D, I, parts = step_jacobians(p, cache)
            acc[:n_lstm] += dh[0] @ _advance(rule, J, b, D, I, parts, mask, H)
            acc[n_lstm:] += np.concatenate([head_grads["decoder.weight"].ravel(), head_grads["decoder.bias"]])
            state[b] = (h, c)
            losses[t - 1] += loss[0] / batch
        if t % k1 == 0:
            applied.append(acc.copy())
            p = opt.step(p, _unflat(acc, p))
    return losses, p, applied


def _advance(rule, J, b, D, I, parts, mask, H):
    """Carry stream b's influence (or eligibility) one step; returns the H x P matrix dh . _ multiplies."""
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

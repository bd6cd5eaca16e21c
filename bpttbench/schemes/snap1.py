"""`snap1`: SnAp-1 — RTRL's influence matrix kept only where one step can make it non-zero.

RTRL (bpttbench/schemes/rtrl.py) carries J_t = d(h_t, c_t)/d theta through J_t = I_t + D_t J_{t-1},
I_t the step's immediate Jacobian and D_t = d(h_t, c_t)/d(h_{t-1}, c_{t-1}). A parameter feeding unit
k (row gate*H + k of weight_ih_l0, weight_hh_l0 or the biases) moves only h_k and c_k within one
step, so SnAp-1 (Menick et al. 2021, n = 1) applies the recursion under that mask and keeps two
numbers per parameter, per stream:
    sh[p] ~ d h_t[k] / d theta_p,   sc[p] ~ d c_t[k] / d theta_p     (k the unit p feeds)
Only D_t's per-unit diagonal blocks survive the mask: d c_k/d c_{t-1,k} = f_k, and the paths from
h_{t-1,k} through unit k's own gates, weighted by W_hh[gate*H + k, k]. With gate slopes
    a_i = g i(1-i), a_f = c_{t-1} f(1-f), a_g = i(1-g^2), a_o = tanh(c) o(1-o), a_c = o(1-tanh(c)^2)
and u_p the immediate d z_j / d theta_p (1 at W_ih[j, x_t] and b[j], h_{t-1}[m] at W_hh[j, m]), one step is
    sc' = f sc + (a_i W_hh[i_k, k] + a_f W_hh[f_k, k] + a_g W_hh[g_k, k]) sh + a_gate(p) u_p
    sh' = a_c sc' + a_o W_hh[o_k, k] sh + [p feeds the output gate] a_o u_p
(a_gate(p) is a_i, a_f or a_g for the input, forget and cell gates, 0 for the output gate), and step
t's loss adds dL_t/dh_t[k] sh'[p] to the gradient of p. The decoder's gradient is the exact local
one, as in rtrl. bias_hh_l0 has bias_ih_l0's sensitivities and is not stored twice.

The GRU (the SnAp paper's main case; torch.nn.GRU, h' = (1-z) n + z h, n = tanh(a_n + r hn),
hn = W_hn h_{t-1} + b_hn) has no cell state: one number per parameter, sh. With the slopes of h_k in
its gates' pre-activations
    a_n = (1-z)(1-n^2),  a_r = a_n hn r(1-r),  a_z = (h_{t-1} - n) z(1-z),  a_hn = r a_n
(a_hn for n's recurrent side, which r scales), D_t's diagonal is
    d_k = z + a_r W_hh[r_k, k] + a_z W_hh[z_k, k] + a_hn W_hh[n_k, k]
and one step is sh' = d_k sh + b(p) u_p, b(p) = a_r, a_z or a_n for the input side of r, z, n (and
r's and z's biases, b_hh's copied from b_ih's), a_hn for W_hn and b_hn. r scales b_hn, so its H
columns are its own and come last, as in rtrl.

Exact cases (the tests check both): with H = 1 the mask keeps everything and snap1 is rtrl; with
W_hh = 0 (and lr = 0, so it stays 0) D_t is diagonal per unit and snap1's gradient is rtrl's.

k1, k2 and inject mean what they mean for rtrl: an update every k1 steps applies the mean over the
k1 newest losses and the B streams; k2 is not used (any k2 >= 1 is accepted); inject must be `new`.

Cost: memory 2 x 4H(V+H+1) numbers per stream (the GRU: 3H(V+H+1) + H) and time O(4H(V+H)) per stream per step, i.e. O(number
of parameters), the same order as one step of backpropagation; no size limit is needed.

References:
- J. Menick, E. Elsen, U. Evci, S. Osindero, K. Simonyan and A. Graves, "Practical real time
  recurrent learning with a sparse approximation", ICLR 2021.
- R. J. Williams and D. Zipser, "A learning algorithm for continually running fully recurrent
  neural networks", Neural Computation 1(2), 1989.
"""

from __future__ import annotations

from collections import namedtuple

from numba import njit

from bpttbench.kernels.cells import LSTM, gate_blocks
from bpttbench.kernels.network import JIT
from bpttbench.schemes.base import aligned_zeros
from bpttbench.schemes.online import OnlineScheme, stream_step_of
from bpttbench.schemes.rtrl import sensitivity_columns


@njit(**JIT)
def _carry(sh, sc, g, lo, hi, f, rec_c, rec_o, a_c, dh_k):
    """Columns lo..hi-1 through the masked recursion without their immediate term; gradient into g."""
    for p in range(lo, hi):
        s = sh[p]
        c = f * sc[p] + rec_c * s
        h = a_c * c + rec_o * s
        sc[p] = c
        sh[p] = h
        g[p] += dh_k * h


@njit(**JIT)
def _kick(sh, sc, g, p, u, b_c, b_h, dh_k):
    """Add column p's immediate term u (d z / d theta_p), which moves c by b_c u and h by b_h u."""
    sc[p] += b_c * u
    d = b_h * u
    sh[p] += d
    g[p] += dh_k * d


Snap1State = namedtuple("Snap1State", ["sh", "sc"])


@stream_step_of(Snap1State)
@njit(**JIT)
def snap1_stream_step(state, b, W_hh, gates, c_prev, aux, h_prev, x, V, dh, grad):
    """Advance stream b's sensitivities (sh, and the LSTM's sc) through one step in place and add
    dh . sh' to the gradient (the GRU's b_hn columns into bias_hh_l0's n block)."""
    H = h_prev.shape[0]
    n_tied = W_hh.shape[0] * (V + H + 1)  # the columns theta's order shares with sh
    g_cell = grad[:n_tied]
    if gate_blocks(W_hh) == LSTM:
        _lstm_stream_step(W_hh, gates, c_prev, aux, h_prev, x, V, dh, state.sh[b], state.sc[b], g_cell)
    else:
        g_bhn = grad[n_tied + 2 * H : n_tied + 3 * H]
        _gru_stream_step(W_hh, gates, aux, h_prev, x, V, dh, state.sh[b], g_cell, g_bhn)


@njit(**JIT)
def _lstm_stream_step(W_hh, gates, c_prev, tanh_c, h_prev, x, V, dh, sh, sc, g_lstm):
    H = h_prev.shape[0]
    o_hh = 4 * H * V
    o_b = 4 * H * (V + H)
    one = sh.dtype.type(1.0)  # coefficients in the arrays' precision: float32 loops stay float32
    zero = sh.dtype.type(0.0)
    for k in range(H):
        i = gates[k]
        f = gates[H + k]
        g = gates[2 * H + k]
        o = gates[3 * H + k]
        tc = tanh_c[k]
        a_c = o * (one - tc * tc)
        a_o = tc * o * (one - o)
        slopes = (g * i * (one - i), c_prev[k] * f * (one - f), i * (one - g * g), zero)
        rec_c = slopes[0] * W_hh[k, k] + slopes[1] * W_hh[H + k, k] + slopes[2] * W_hh[2 * H + k, k]
        rec_o = a_o * W_hh[3 * H + k, k]
        dh_k = dh[k]
        for gate in range(4):
            j = gate * H + k
            b_c = slopes[gate]
            b_h = a_c * b_c + (a_o if gate == 3 else zero)
            _carry(sh, sc, g_lstm, j * V, j * V + V, f, rec_c, rec_o, a_c, dh_k)
            _kick(sh, sc, g_lstm, j * V + x, one, b_c, b_h, dh_k)
            row = o_hh + j * H
            _carry(sh, sc, g_lstm, row, row + H, f, rec_c, rec_o, a_c, dh_k)
            for m in range(H):
                _kick(sh, sc, g_lstm, row + m, h_prev[m], b_c, b_h, dh_k)
            _carry(sh, sc, g_lstm, o_b + j, o_b + j + 1, f, rec_c, rec_o, a_c, dh_k)
            _kick(sh, sc, g_lstm, o_b + j, one, b_c, b_h, dh_k)


@njit(**JIT)
def _scale(sh, g, lo, hi, d, dh_k):
    """sh *= d on columns lo..hi-1 (the GRU's masked recursion) and add their gradient dh_k sh."""
    for p in range(lo, hi):
        s = d * sh[p]
        sh[p] = s
        g[p] += dh_k * s


@njit(**JIT)
def _gru_stream_step(W_hh, gates, hn, h_prev, x, V, dh, sh, g_cell, g_bhn):
    H = h_prev.shape[0]
    G = 3 * H
    o_hh = G * V
    o_b = G * (V + H)
    o_bhn = G * (V + H + 1)
    one = sh.dtype.type(1.0)
    for k in range(H):
        r = gates[k]
        z = gates[H + k]
        n = gates[2 * H + k]
        a_n = (one - z) * (one - n * n)  # dh_k / d(n's input pre-activation)
        a_r = a_n * hn[k] * r * (one - r)
        a_z = (h_prev[k] - n) * z * (one - z)
        a_hn = a_n * r  # dh_k / d(n's recurrent pre-activation): r scales it
        d = z + a_r * W_hh[k, k] + a_z * W_hh[H + k, k] + a_hn * W_hh[2 * H + k, k]
        dh_k = dh[k]
        for gate in range(3):
            j = gate * H + k
            b_in = a_r if gate == 0 else (a_z if gate == 1 else a_n)
            b_rec = a_hn if gate == 2 else b_in
            _scale(sh, g_cell, j * V, j * V + V, d, dh_k)
            sh[j * V + x] += b_in
            g_cell[j * V + x] += dh_k * b_in
            row = o_hh + j * H
            _scale(sh, g_cell, row, row + H, d, dh_k)
            for m in range(H):
                u = b_rec * h_prev[m]
                sh[row + m] += u
                g_cell[row + m] += dh_k * u
            s = d * sh[o_b + j] + b_in  # b_ih[j], and b_hh[j] for r and z (the tie copies it)
            sh[o_b + j] = s
            g_cell[o_b + j] += dh_k * s
        s = d * sh[o_bhn + k] + a_hn  # b_hn[k]: a column of its own
        sh[o_bhn + k] = s
        g_bhn[k] += dh_k * s


class Snap1(OnlineScheme):
    name = "snap1"

    def __init__(self, cfg, theta, vocab_size, train_ids):
        super().__init__(cfg, theta, vocab_size, train_ids)
        n_cols = sensitivity_columns(self.V, self.H, self.cell)
        self.sh = aligned_zeros((self.B, n_cols), theta.dtype)  # d h[unit of p] / d theta_p
        # d c[unit of p] / d theta_p: the LSTM's alone (the GRU has no cell state)
        self.sc = aligned_zeros((self.B, n_cols if self.cell == "lstm" else 0), theta.dtype)

    def state(self) -> Snap1State:
        return Snap1State(self.sh, self.sc)

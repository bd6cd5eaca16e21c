"""`eprop`: e-prop for the LSTM — eligibility traces through each cell's own memory, times the step's learning signal.

Bellec et al. (2020) factor the gradient of step t's loss into a learning signal, dL_t/dh_t
(the current step's loss only, nothing from the future), and per-parameter eligibility traces that
follow each unit's internal state c alone, with the previous outputs h_{t-1} held fixed as inputs.
For a parameter p feeding unit k (row gate*H + k of weight_ih_l0, weight_hh_l0 or the biases), with
u_p the immediate d z_j / d theta_p (1 at W_ih[j, x_t] and b[j], h_{t-1}[m] at W_hh[j, m]) and the
gate slopes a_i = g i(1-i), a_f = c_{t-1} f(1-f), a_g = i(1-g^2), a_o = tanh(c) o(1-o), a_c = o(1-tanh(c)^2):
    eps_t[p] = f_k eps_{t-1}[p] + a_gate(p) u_p          eligibility vector: d c_k / d theta_p along c only
    e_t[p]   = a_c eps_t[p] + [p feeds the output gate] a_o u_p
and step t's loss adds dL_t/dh_t[k] e_t[p] to the gradient of p (a_gate(p) is a_i, a_f or a_g, 0 for
the output gate, whose eligibility is its direct term alone). The decoder's gradient is the ordinary
local one. bias_hh_l0 has bias_ih_l0's traces and is not stored twice.

Compared with SnAp-1 (bpttbench/schemes/snap1.py) e-prop also drops the paths from h_{t-1,k} through
unit k's own gates. With W_hh = 0 (and lr = 0, so it stays 0) no path runs through h_{t-1} at all,
and e-prop's gradient is rtrl's exactly; the tests check it.

k1, k2 and inject mean what they mean for rtrl (bpttbench/schemes/rtrl.py): an update every k1 steps
applies the mean over the k1 newest losses and the B streams; k2 is not used (any k2 >= 1 is
accepted); inject must be `new`.

Cost: memory 4H(V+H+1) numbers per stream (the output gate's rows of eps stay 0: they are kept so
that eps shares theta's layout), time O(4H(V+H)) per stream per step.

References:
- G. Bellec, F. Scherr, A. Subramoney, E. Hajek, D. Salaj, R. Legenstein and W. Maass, "A solution
  to the learning dilemma for recurrent networks of spiking neurons", Nature Communications 11,
  3625, 2020 (e-prop for LSTMs in its supplementary material).
"""

from __future__ import annotations

from collections import namedtuple

from numba import njit

from bpttbench.kernels.network import JIT
from bpttbench.schemes.base import aligned_zeros
from bpttbench.schemes.online import OnlineScheme, stream_step_of
from bpttbench.schemes.rtrl import sensitivity_columns


@njit(**JIT)
def _decay(eps, g, lo, hi, f, ga):
    """eps *= f on columns lo..hi-1 and add their trace's gradient ga * eps (ga = dL/dh_k a_c)."""
    for p in range(lo, hi):
        e = f * eps[p]
        eps[p] = e
        g[p] += ga * e


EpropState = namedtuple("EpropState", ["eps"])


@stream_step_of(EpropState)
@njit(**JIT)
def eprop_stream_step(state, b, W_hh, gates, c_prev, tanh_c, h_prev, x, V, dh, grad):
    """Advance stream b's eligibility vectors eps through one step in place; add dh . e_t to the gradient."""
    eps = state.eps[b]
    g_lstm = grad[: eps.size]
    H = h_prev.shape[0]
    o_hh = 4 * H * V
    o_b = 4 * H * (V + H)
    one = eps.dtype.type(1.0)  # coefficients in the arrays' precision: float32 loops stay float32
    for k in range(H):
        i = gates[k]
        f = gates[H + k]
        g = gates[2 * H + k]
        o = gates[3 * H + k]
        tc = tanh_c[k]
        a_c = o * (one - tc * tc)
        slopes = (g * i * (one - i), c_prev[k] * f * (one - f), i * (one - g * g), tc * o * (one - o))
        ga = dh[k] * a_c
        for gate in range(3):  # input, forget, cell: through c
            j = gate * H + k
            a = slopes[gate]
            row = o_hh + j * H
            _decay(eps, g_lstm, j * V, j * V + V, f, ga)
            _decay(eps, g_lstm, row, row + H, f, ga)
            _decay(eps, g_lstm, o_b + j, o_b + j + 1, f, ga)
            eps[j * V + x] += a  # immediate term 1 at W_ih[j, x] and b[j]
            g_lstm[j * V + x] += ga * a
            eps[o_b + j] += a
            g_lstm[o_b + j] += ga * a
            for m in range(H):
                eps[row + m] += a * h_prev[m]
                g_lstm[row + m] += ga * a * h_prev[m]
        j = 3 * H + k  # output gate: its direct term only
        d = dh[k] * slopes[3]
        g_lstm[j * V + x] += d
        g_lstm[o_b + j] += d
        for m in range(H):
            g_lstm[o_hh + j * H + m] += d * h_prev[m]


class Eprop(OnlineScheme):
    name = "eprop"

    def __init__(self, cfg, theta, vocab_size, train_ids):
        super().__init__(cfg, theta, vocab_size, train_ids)
        # d c[unit of p] / d theta_p along c alone
        self.eps = aligned_zeros((self.B, sensitivity_columns(self.V, self.H)), theta.dtype)

    def state(self) -> EpropState:
        return EpropState(self.eps)

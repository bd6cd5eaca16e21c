"""`rtrl`: real-time recurrent learning — the gradient of every step's loss with no truncation.

Each stream carries the sensitivities of its state to the cell's parameters, forward in time:
    S_h[k, p] = d h_t[k] / d theta_p,   S_c[k, p] = d c_t[k] / d theta_p (the LSTM's cell state)
for p over weight_ih_l0, weight_hh_l0 and bias_ih_l0 (bias_hh_l0 enters every gate exactly as
bias_ih_l0 does, so its sensitivities are the same columns and are not stored twice; except the
GRU's n block, which r scales: its H columns come last). One LSTM step is
    Dz  = W_hh S_h(t-1) + dz/dtheta (immediate: 1 at W_ih[j, x_t] and b[j], h_{t-1}[k] at W_hh[j, k])
    S_c = f * S_c(t-1) + c_{t-1} f(1-f) Dz_f + g i(1-i) Dz_i + i (1-g^2) Dz_g
    S_h = o (1-tanh(c)^2) S_c + tanh(c) o(1-o) Dz_o
one GRU step, with Dz the recurrent pre-activations' sensitivities (W_hh S_h + their immediate
parts) and Dx the input ones' (1 at W_ih[j, x_t] and b_ih[j]; r's and z's biases counted here:
two columns a row, so S_h takes them as six additions per unit, not as a matrix),
    Dr = r(1-r) (Dz_r + Dx_r),  Du = z(1-z) (Dz_z + Dx_z),  Dn = (1-n^2) (Dx_n + r Dz_n + hn Dr)
    S_h = (1-z) Dn + (h_{t-1} - n) Du + z S_h(t-1)        (hn = W_hn h_{t-1} + b_hn)
and one tanh RNN step S_h = (1-h^2) Dz. The gradient of step t's loss is (dL_t/dh_t) S_h for the
cell and the local outer product for the decoder (which does not feed the state, so it needs no
sensitivities).

k1, k2 and inject for this scheme:
- k1: an update every k1 steps applies the mean of the gradients of the k1 losses since the last
  update (the same objective as the truncated schemes with inject=new), each computed through the
  whole past: no window, no truncation.
- k2 is not used (there is no window); any k2 >= 1 is accepted so that a grid over k2 runs rtrl
  unchanged, as a flat reference line. inject must be `new`.

With k1 = 1 and a learning rate > 0 the sensitivities are carried across weight changes, so the
gradient is that of the standard online RTRL approximation (Williams & Zipser 1989): exact for
weights held fixed (the tests check it against full backpropagation from step 1 at lr = 0), and
drifting from it as the weights move. The stream's gradient is the mean over the B streams.

rtrl runs in the online rules' shared block kernel (schemes/online.py), which calls rtrl_stream_step
for every stream and step.

Cost (LSTM): memory 6 H x 4H(V+H+1) numbers per stream (S_h, S_c and the 4H-row Dz), i.e. O(H^3);
time per step is dominated by the product W_hh S_h, 16 H^3 (V+H+1) flops per stream, i.e. O(H^4).
The scheme refuses configurations whose arrays would exceed RTRL_MAX_BYTES, and is meant for small H.

References:
- R. J. Williams and D. Zipser, "A learning algorithm for continually running fully recurrent
  neural networks", Neural Computation 1(2), 1989.
- T. Marschall, K. Cho and C. Savin, "A unified framework of online learning algorithms for
  training recurrent neural networks", JMLR 21, 2020.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np
from numba import njit

from bpttbench.errors import ConfigError
from bpttbench.kernels.blas import dot
from bpttbench.kernels.cells import GRU, LSTM, gate_blocks
from bpttbench.kernels.network import JIT, param_views
from bpttbench.scheme_names import CELLS
from bpttbench.schemes.base import aligned_zeros
from bpttbench.schemes.online import OnlineScheme, stream_step_of

# The sensitivity arrays of all streams together may not exceed this (a shared machine).
RTRL_MAX_BYTES = 2 << 30


def sensitivity_columns(V: int, H: int, cell: str = "lstm") -> int:
    """Parameters whose sensitivities rtrl carries: weight_ih_l0, weight_hh_l0, bias_ih_l0 (and the
    GRU's bias_hh_l0 n block)."""
    G = CELLS[cell] * H
    return G * (V + H + 1) + (H if cell == "gru" else 0)


def rtrl_bytes(V: int, H: int, B: int, dtype, cell: str = "lstm") -> int:
    """Bytes of rtrl's sensitivity arrays: S_h (and the LSTM's S_c) per stream, one shared Dz."""
    per_stream = 2 * H if cell == "lstm" else H
    return (B * per_stream + CELLS[cell] * H) * sensitivity_columns(V, H, cell) * np.dtype(dtype).itemsize


def max_hidden_that_fits(V: int, B: int, dtype, cell: str = "lstm", limit: int = RTRL_MAX_BYTES) -> int:
    H = 1
    while rtrl_bytes(V, H + 1, B, dtype, cell) <= limit:
        H += 1
    return H


@njit(**JIT)
def rtrl_sensitivities(W_hh, gates, c_prev, aux, h_prev, x, V, S_h, S_c, Dz):
    """Advance one stream's sensitivities (S_h, and the LSTM's S_c: H x P') through one step, in place.
    Dz (G x P'): scratch."""
    blocks = gate_blocks(W_hh)
    if blocks == LSTM:
        _lstm_sensitivities(W_hh, gates, c_prev, aux, h_prev, x, V, S_h, S_c, Dz)
    elif blocks == GRU:
        _gru_sensitivities(W_hh, gates, aux, h_prev, x, V, S_h, Dz)
    else:
        _rnn_sensitivities(W_hh, gates, h_prev, x, V, S_h, Dz)


@njit(**JIT)
def _recurrent_immediates(Dz, h_prev, x, V, input_too):
    """Dz = W_hh S_h's rows plus the pre-activations' own derivatives: h_{t-1}[k] at W_hh[j, k];
    with input_too, 1 at W_ih[j, x] and at b[j] (the cells whose input and recurrent parts add)."""
    G, H = Dz.shape[0], h_prev.shape[0]
    o_hh = G * V
    o_b = G * (V + H)
    one = Dz.dtype.type(1.0)
    for j in range(G):
        if input_too:
            Dz[j, j * V + x] += one
            Dz[j, o_b + j] += one
        base = o_hh + j * H
        for k in range(H):
            Dz[j, base + k] += h_prev[k]


@njit(**JIT)
def _lstm_sensitivities(W_hh, gates, c_prev, tanh_c, h_prev, x, V, S_h, S_c, Dz):
    H = S_h.shape[0]
    n_cols = S_h.shape[1]
    one = S_h.dtype.type(1.0)  # coefficients in the arrays' precision: float32 loops stay float32
    dot(W_hh, S_h, Dz)  # G,P'
    _recurrent_immediates(Dz, h_prev, x, V, True)
    for k in range(H):
        i = gates[k]
        f = gates[H + k]
        g = gates[2 * H + k]
        o = gates[3 * H + k]
        tc = tanh_c[k]
        a_i = g * i * (one - i)
        a_f = c_prev[k] * f * (one - f)
        a_g = i * (one - g * g)
        a_o = tc * o * (one - o)
        a_c = o * (one - tc * tc)
        Sc = S_c[k]
        Sh = S_h[k]
        Di = Dz[k]
        Df = Dz[H + k]
        Dg = Dz[2 * H + k]
        Do = Dz[3 * H + k]
        for p in range(n_cols):
            v = f * Sc[p] + a_i * Di[p] + a_f * Df[p] + a_g * Dg[p]
            Sc[p] = v
            Sh[p] = a_c * v + a_o * Do[p]


@njit(**JIT)
def _gru_sensitivities(W_hh, gates, hn, h_prev, x, V, S_h, Dz):
    H = S_h.shape[0]
    G = 3 * H
    n_cols = S_h.shape[1]
    o_b = G * (V + H)
    o_bhn = G * (V + H + 1)
    one = S_h.dtype.type(1.0)
    dot(W_hh, S_h, Dz)  # G,P'
    _recurrent_immediates(Dz, h_prev, x, V, False)
    for k in range(H):
        Dz[2 * H + k, o_bhn + k] += one
    for k in range(H):
        r = gates[k]
        z = gates[H + k]
        n = gates[2 * H + k]
        a_r = r * (one - r)
        a_z = z * (one - z)
        a_n = one - n * n
        c_n = one - z
        c_z = (h_prev[k] - n) * a_z
        hk = hn[k]
        Sh = S_h[k]
        Zr, Zz, Zn = Dz[k], Dz[H + k], Dz[2 * H + k]
        for p in range(n_cols):
            dr = a_r * Zr[p]
            dn = a_n * (r * Zn[p] + hk * dr)
            Sh[p] = c_n * dn + c_z * Zz[p] + z * Sh[p]
        # The input side: 1 at W_ih[j, x] and b_ih[j] of the unit's rows j (r's and z's biases are
        # b_hh's too), which S_h takes linearly: through r, z and n in turn.
        for j, coefficient in ((k, c_n * a_n * hk * a_r), (H + k, c_z), (2 * H + k, c_n * a_n)):
            Sh[j * V + x] += coefficient
            Sh[o_b + j] += coefficient


@njit(**JIT)
def _rnn_sensitivities(W_hh, h, h_prev, x, V, S_h, Dz):
    H = S_h.shape[0]
    n_cols = S_h.shape[1]
    one = S_h.dtype.type(1.0)
    dot(W_hh, S_h, Dz)  # H,P'
    _recurrent_immediates(Dz, h_prev, x, V, True)
    for k in range(H):
        a = one - h[k] * h[k]
        Sh, Dk = S_h[k], Dz[k]
        for p in range(n_cols):
            Sh[p] = a * Dk[p]


RtrlState = namedtuple("RtrlState", ["S_h", "S_c", "Dz"])


@stream_step_of(RtrlState)
@njit(**JIT)
def rtrl_stream_step(state, b, W_hh, gates, c_prev, aux, h_prev, x, V, dh, grad):
    """rtrl_sensitivities for stream b, then dh . S_h into the gradient (the GRU's b_hn columns into its own rows)."""
    S_h = state.S_h[b]
    S_c = state.S_c[b]
    rtrl_sensitivities(W_hh, gates, c_prev, aux, h_prev, x, V, S_h, S_c, state.Dz)
    H = S_h.shape[0]
    n_cols = S_h.shape[1]
    n_tied = W_hh.shape[0] * (V + H + 1)  # the columns that are theta's first; the GRU's b_hn ones are its own
    g_cell = grad[:n_tied]
    g_bhn = grad[n_tied + 2 * H : n_tied + 2 * H + n_cols - n_tied]  # bias_hh_l0's n block (GRU only)
    for k in range(H):
        a = dh[k]
        row = S_h[k]
        for p in range(n_tied):
            g_cell[p] += a * row[p]
        for p in range(n_cols - n_tied):
            g_bhn[p] += a * row[n_tied + p]


class Rtrl(OnlineScheme):
    name = "rtrl"
    # OpenBLAS threads the W_hh S_h product; on a shared 2-core machine each threaded call waited
    # for a busy core (H = 16: 4.7 ms per step threaded against 59 us on one thread).
    single_threaded_blas = True

    def __init__(self, cfg, theta, vocab_size, train_ids):
        self.check_fits(cfg, vocab_size)
        super().__init__(cfg, theta, vocab_size, train_ids)
        B, H, V, G, cell = self.B, self.H, self.V, self.G, self.cell
        n_cols = sensitivity_columns(V, H, cell)
        dtype = theta.dtype
        self.S_h = aligned_zeros((B, H, n_cols), dtype)
        self.S_c = aligned_zeros((B, H if cell == "lstm" else 0, n_cols), dtype)
        self.Dz = aligned_zeros((G, n_cols), dtype)

    @classmethod
    def check_fits(cls, cfg, vocab_size: int) -> None:
        """ConfigError (one line, with the estimate and the fix) if rtrl's arrays would not fit."""
        need = rtrl_bytes(vocab_size, cfg.hidden, cfg.batch, cfg.dtype, cfg.cell)
        if need > RTRL_MAX_BYTES:
            best = max_hidden_that_fits(vocab_size, cfg.batch, cfg.dtype, cfg.cell)
            raise ConfigError(
                f"rtrl at hidden={cfg.hidden}, batch={cfg.batch}, {cfg.dtype}, {vocab_size} symbols needs "
                f"{need / 2**30:.1f} GiB of sensitivities (limit {RTRL_MAX_BYTES / 2**30:.0f} GiB); "
                f"use --hidden {best} or less, or uoro"
            )

    def state(self) -> RtrlState:
        return RtrlState(self.S_h, self.S_c, self.Dz)

"""`uoro`: unbiased online recurrent optimisation — a rank-one, unbiased estimate of RTRL's gradient.

Each stream keeps a state tangent s~ (2H: the h and c parts) and a parameter vector theta~ (the
LSTM's 4H(V+H+2) parameters, in theta's order) whose outer product s~ theta~^T is an unbiased
estimate of d(h_t, c_t)/d theta, the matrix `rtrl` carries exactly. One step t (Tallec & Ollivier
2018, Algorithm 1, with the loss of step t read from the state after the step):
    s~'   = (d s_t / d s_{t-1}) s~                     forward-mode product through the step
    nu    = 2H independent random signs (+1 or -1)
    v     = nu^T (d s_t / d theta)                      one backward step of nu, the immediate term
    rho0  = sqrt(|theta~| / (|s~'| + eps)) + eps,  rho1 = sqrt(|v| / (|nu| + eps)) + eps
    s~    = rho0 s~' + rho1 nu,   theta~ = theta~ / rho0 + v / rho1
    gradient of loss t:  (dL_t/dh_t . s~_h) theta~  for the LSTM,  the local outer product for the decoder.
E[s~ theta~^T] is the exact sensitivity for weights held fixed (the cross terms are odd in nu), and
rho0, rho1 balance the two factors' norms, which minimises the variance among such scalings.

k1, k2 and inject mean what they mean for `rtrl` (bpttbench/schemes/rtrl.py): an update every k1
steps applies the mean of the k1 newest per-step estimates; k2 is not used (no truncation) and any
k2 >= 1 is accepted; inject must be `new`. The gradient is the mean over the B streams, each with
its own signs.

The signs come from a splitmix64 stream whose 64-bit state is an explicit array seeded from the
configuration's seed (and distinct from the weight initialisation's stream): the same seed gives
the same signs, and a clone continues the same stream. Cost per step is O(H^2 + H V) per stream,
a few times a forward step.

References:
- C. Tallec and Y. Ollivier, "Unbiased online recurrent optimization", ICLR 2018.
- S. Vigna, splitmix64 (public-domain reference code, 2015), for the sign stream.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np
from numba import njit

from bpttbench.kernels.blas import dot
from bpttbench.kernels.network import JIT
from bpttbench.schemes.base import aligned_copy, aligned_zeros
from bpttbench.schemes.online import OnlineScheme, stream_step_of

UORO_EPS = 1e-7  # eps0 = eps1 of the paper: keeps the scalings finite when a factor is zero
_GOLDEN = 0x9E3779B97F4A7C15
_SALT = 0x243F6A8885A308D3  # so that seed s does not give the signs the initialisation's stream


def rng_state(seed: int) -> np.ndarray:
    """The sign stream's state for a seed: one uint64 in an array (Numba updates it in place)."""
    return np.array([(int(seed) * _GOLDEN + _SALT) % (1 << 64)], dtype=np.uint64)


@njit(**JIT)
def splitmix64(state):
    """The next 64 random bits of the stream; advances state[0]."""
    state[0] += np.uint64(0x9E3779B97F4A7C15)
    z = state[0]
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(**JIT)
def random_signs(state, out):
    """Fill out with independent +1/-1, one bit of the stream each."""
    bits = np.uint64(0)
    for i in range(out.size):
        r = i % 64
        if r == 0:
            bits = splitmix64(state)
        out[i] = 1.0 if (bits >> np.uint64(r)) & np.uint64(1) else -1.0


@njit(**JIT)
def advance_tangents(W_hh, gates, c_prev, tanh_c, h_prev, x, V, st_h, st_c, tt, nu, zdot, dz, rng):
    """Advance one stream's (s~, theta~) = ((st_h, st_c), tt) through one step, in place."""
    H = st_h.shape[0]
    G = 4 * H
    # |theta~| before the step
    sq = 0.0
    for p in range(tt.size):
        sq += tt[p] * tt[p]
    norm_tt = np.sqrt(sq)
    # s~' = J_s s~ (forward mode), written into st_h, st_c; dh of the tangent first
    dot(W_hh, st_h, zdot)  # G
    sq = 0.0
    for k in range(H):
        i = gates[k]
        f = gates[H + k]
        g = gates[2 * H + k]
        o = gates[3 * H + k]
        tc = tanh_c[k]
        cdot = f * st_c[k] + g * i * (1.0 - i) * zdot[k] + c_prev[k] * f * (1.0 - f) * zdot[H + k] \
            + i * (1.0 - g * g) * zdot[2 * H + k]
        hdot = o * (1.0 - tc * tc) * cdot + tc * o * (1.0 - o) * zdot[3 * H + k]
        st_c[k] = cdot
        st_h[k] = hdot
        sq += cdot * cdot + hdot * hdot
    norm_st = np.sqrt(sq)
    # v = nu^T ds_t/dtheta: the gate-preactivation cotangent dz of (dh, dc) = (nu_h, nu_c)
    random_signs(rng, nu)
    dz_sq = 0.0
    for k in range(H):
        i = gates[k]
        f = gates[H + k]
        g = gates[2 * H + k]
        o = gates[3 * H + k]
        tc = tanh_c[k]
        dc = nu[H + k] + nu[k] * o * (1.0 - tc * tc)
        dz[k] = dc * g * i * (1.0 - i)
        dz[H + k] = dc * c_prev[k] * f * (1.0 - f)
        dz[2 * H + k] = dc * i * (1.0 - g * g)
        dz[3 * H + k] = nu[k] * tc * o * (1.0 - o)
    for j in range(G):
        dz_sq += dz[j] * dz[j]
    h_sq = 0.0
    for k in range(H):
        h_sq += h_prev[k] * h_prev[k]
    # v has dz in W_ih's column x, dz (x) h_prev in W_hh, dz in each bias
    norm_v = np.sqrt(dz_sq * (3.0 + h_sq))
    rho0 = np.sqrt(norm_tt / (norm_st + UORO_EPS)) + UORO_EPS
    rho1 = np.sqrt(norm_v / (np.sqrt(2.0 * H) + UORO_EPS)) + UORO_EPS
    r0 = st_h.dtype.type(rho0)
    r1 = st_h.dtype.type(rho1)
    for k in range(H):
        st_h[k] = r0 * st_h[k] + r1 * nu[k]
        st_c[k] = r0 * st_c[k] + r1 * nu[H + k]
    inv0 = tt.dtype.type(1.0 / rho0)  # in theta~'s precision: float32 loops stay float32
    inv1 = tt.dtype.type(1.0 / rho1)
    for p in range(tt.size):
        tt[p] *= inv0
    o_hh = G * V
    o_bih = G * (V + H)
    o_bhh = o_bih + G
    for j in range(G):
        d = dz[j] * inv1
        tt[j * V + x] += d
        tt[o_bih + j] += d
        tt[o_bhh + j] += d
        base = o_hh + j * H
        for k in range(H):
            tt[base + k] += d * h_prev[k]


UoroState = namedtuple("UoroState", ["st_h", "st_c", "tt", "nu", "zdot", "dz", "rng"])


@stream_step_of(UoroState)
@njit(**JIT)
def uoro_stream_step(state, b, W_hh, gates, c_prev, tanh_c, h_prev, x, V, dh, grad):
    """advance_tangents for stream b, then (dh . s~_h) theta~ into the gradient."""
    st_h, tt = state.st_h[b], state.tt[b]
    advance_tangents(W_hh, gates, c_prev, tanh_c, h_prev, x, V, st_h, state.st_c[b], tt, state.nu, state.zdot,
                     state.dz, state.rng)
    a = 0.0
    for k in range(st_h.shape[0]):
        a += dh[k] * st_h[k]
    a = grad.dtype.type(a)
    for p in range(tt.size):
        grad[p] += a * tt[p]


class Uoro(OnlineScheme):
    name = "uoro"
    tie_biases = False  # theta~ has bias_hh_l0's own entries
    single_threaded_blas = True  # W_hh s~ is a GEMV OpenBLAS threads from H = 48 on

    def __init__(self, cfg, theta, vocab_size, train_ids):
        super().__init__(cfg, theta, vocab_size, train_ids)
        B, H, V = self.B, self.H, self.V
        dtype = theta.dtype
        self.st_h = aligned_zeros((B, H), dtype)  # s~, h part
        self.st_c = aligned_zeros((B, H), dtype)  # s~, c part
        self.tt = aligned_zeros((B, 4 * H * (V + H + 2)), dtype)  # theta~ over the LSTM's parameters
        self.nu = aligned_zeros(2 * H, dtype)
        self.zdot = aligned_zeros(4 * H, dtype)
        self.dz = aligned_zeros(4 * H, dtype)
        self.rng = aligned_copy(rng_state(cfg.seed))

    def state(self) -> UoroState:
        return UoroState(self.st_h, self.st_c, self.tt, self.nu, self.zdot, self.dz, self.rng)

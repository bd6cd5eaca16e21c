"""The recurrent cells: one forward step and one backward step each, behind one interface.

    cell_forward(W_in, W_hh, b_ih, b_hh, x, h_prev, c_prev, gates, c, h, aux)
    cell_backward_gates(gates, c_prev, aux, h_prev, dh, dc, dz, dzh)
    cell_backward(W_hh, gates, c_prev, aux, h_prev, dh, dc, dz, dzh, dh_prev)

A cell is told by its number of gate blocks (scheme_names.CELLS), which the kernels read off W_hh's
shape (G, H): 4 the LSTM (i, f, g, o), 3 the GRU (r, z, n), 1 the tanh Elman RNN, each with
torch.nn's equations. An integer read off a shape rather than a function passed in, because Numba
caches no kernel that takes a function or closes over one (tried: every process recompiled). Per
stream and step the cell keeps
    gates (G)  post-activations: i, f, g, o (LSTM); r, z, n (GRU); h itself (RNN)
    c (H)      the LSTM's cell state; the others have none (their c arrays are 0 wide)
    aux (H)    tanh(c) (LSTM); W_hn h_prev + b_hn, the recurrent part r gates (GRU); 0 wide (RNN)
The backward writes dz, the gradient wrt the input pre-activations (W_ih x + b_ih), and dzh, wrt
the recurrent ones (W_hh h_prev + b_hh). They differ only in the GRU's n block (r scales the
recurrent part); for the LSTM and the RNN the caller passes one array as both.

W_in is (V, G): row x is character x's input weights (W_ih.T, or a row-major mirror of it).
Each nonlinearity has a loop of its own over contiguous memory so that LLVM vectorises it.
The math is bpttbench/reference.py's; tests compare the two.
"""

from __future__ import annotations

from numba import njit

from bpttbench.kernels.blas import dot
from bpttbench.kernels.vecmath import JIT, vsigmoid, vtanh

LSTM, GRU, RNN = 4, 3, 1  # gate blocks: scheme_names.CELLS


@njit(**JIT)
def gate_blocks(W_hh):
    """The cell of these recurrent weights (G, H): LSTM, GRU or RNN."""
    return W_hh.shape[0] // W_hh.shape[1]


@njit(**JIT)
def cell_forward(W_in, W_hh, b_ih, b_hh, x, h_prev, c_prev, gates, c, h, aux):
    """One step of the cell for all B streams: gates, c, h and aux from x (B,) and h_prev, c_prev."""
    blocks = gate_blocks(W_hh)
    if blocks == LSTM:
        lstm_forward(W_in, W_hh, b_ih, b_hh, x, h_prev, c_prev, gates, c, h, aux)
    elif blocks == GRU:
        gru_forward(W_in, W_hh, b_ih, b_hh, x, h_prev, gates, h, aux)
    else:
        rnn_forward(W_in, W_hh, b_ih, b_hh, x, h_prev, gates, h)


@njit(**JIT)
def cell_backward_gates(gates, c_prev, aux, h_prev, dh, dc, dz, dzh):
    """dz and dzh from dh (the loss's gradient wrt this step's h); the LSTM's dc becomes dc_prev in
    place. Without dh_prev: what the window's first step needs (the gradient stops there)."""
    blocks = gates.shape[1] // dh.shape[1]
    if blocks == LSTM:
        lstm_backward_gates(gates, c_prev, aux, dh, dc, dz)
    elif blocks == GRU:
        gru_backward_gates(gates, aux, h_prev, dh, dz, dzh)
    else:
        rnn_backward_gates(gates, dh, dz)


@njit(**JIT)
def cell_backward(W_hh, gates, c_prev, aux, h_prev, dh, dc, dz, dzh, dh_prev):
    """Backward through one step: dz, dzh and dh_prev (and the LSTM's dc_prev, in dc)."""
    cell_backward_gates(gates, c_prev, aux, h_prev, dh, dc, dz, dzh)
    dot(dzh, W_hh, dh_prev)  # B,G @ G,H
    if gate_blocks(W_hh) == GRU:  # h' = ... + z h: the direct path
        B, H = dh.shape
        for b in range(B):
            zb, db, pb = gates[b, H : 2 * H], dh[b], dh_prev[b]
            for j in range(H):
                pb[j] += db[j] * zb[j]


@njit(**JIT)
def _add_input(z, w_x, b_ih, b_hh):
    """z += w_x + b_ih + b_hh: a stream's recurrent products plus its input's weights and both biases."""
    for j in range(z.size):
        z[j] = z[j] + w_x[j] + b_ih[j] + b_hh[j]


@njit(**JIT)
def _sigmoid_inplace(z):
    for j in range(z.size):
        z[j] = vsigmoid(z[j])


@njit(**JIT)
def _tanh_inplace(z):
    for j in range(z.size):
        z[j] = vtanh(z[j])


# ----------------------------------------------------------------------------- LSTM


@njit(**JIT)
def lstm_forward(W_in, W_hh, b_ih, b_hh, x, h_prev, c_prev, gates, c, h, tanh_c):
    """One LSTM step (torch.nn.LSTM): gates (post-activation i, f, g, o), c, h, tanh(c)."""
    B, H = h_prev.shape
    dot(h_prev, W_hh.T, gates)  # B,4H
    for b in range(B):
        z = gates[b]
        _add_input(z, W_in[x[b]], b_ih, b_hh)
        # 0-based loops over slices: LLVM then knows every index is in range and vectorises
        zi, zf, zg, zo = z[:H], z[H : 2 * H], z[2 * H : 3 * H], z[3 * H :]
        _sigmoid_inplace(z[: 2 * H])
        _tanh_inplace(zg)
        _sigmoid_inplace(zo)
        cb, hb, tb, cpb = c[b], h[b], tanh_c[b], c_prev[b]
        for j in range(H):
            cb[j] = zf[j] * cpb[j] + zi[j] * zg[j]
        for j in range(H):
            tb[j] = vtanh(cb[j])
        for j in range(H):
            hb[j] = zo[j] * tb[j]


@njit(**JIT)
def lstm_backward_gates(gates, c_prev, tanh_c, dh, dc, dz):
    B, H = dh.shape
    one = dz.dtype.type(1.0)
    for b in range(B):
        gb, dzb, dcb, dhb, cpb, tcb = gates[b], dz[b], dc[b], dh[b], c_prev[b], tanh_c[b]
        gi, gf, gg, go = gb[:H], gb[H : 2 * H], gb[2 * H : 3 * H], gb[3 * H :]
        di, df, dg, do = dzb[:H], dzb[H : 2 * H], dzb[2 * H : 3 * H], dzb[3 * H :]
        for j in range(H):
            i = gi[j]
            f = gf[j]
            g = gg[j]
            o = go[j]
            tc = tcb[j]
            dcj = dcb[j] + dhb[j] * o * (one - tc * tc)
            di[j] = dcj * g * i * (one - i)
            df[j] = dcj * cpb[j] * f * (one - f)
            dg[j] = dcj * i * (one - g * g)
            do[j] = dhb[j] * tc * o * (one - o)
            dcb[j] = dcj * f


# ----------------------------------------------------------------------------- GRU


@njit(**JIT)
def gru_forward(W_in, W_hh, b_ih, b_hh, x, h_prev, gates, h, hn):
    """One GRU step (torch.nn.GRU): gates (post-activation r, z, n), h, and hn = W_hn h_prev + b_hn.

        r = s(W_ir x + b_ir + W_hr h + b_hr), z = s(W_iz x + b_iz + W_hz h + b_hz),
        n = tanh(W_in x + b_in + r (W_hn h + b_hn)), h' = (1 - z) n + z h
    """
    B, H = h_prev.shape
    dot(h_prev, W_hh.T, gates)  # B,3H: the recurrent products, without bias
    one = gates.dtype.type(1.0)
    for b in range(B):
        w_x = W_in[x[b]]
        g = gates[b]
        rz, n, hnb = g[: 2 * H], g[2 * H :], hn[b]
        bi_n, bh_n, wx_n = b_ih[2 * H :], b_hh[2 * H :], w_x[2 * H :]
        for j in range(H):
            hnb[j] = n[j] + bh_n[j]
        _add_input(rz, w_x[: 2 * H], b_ih[: 2 * H], b_hh[: 2 * H])
        _sigmoid_inplace(rz)
        r = g[:H]
        for j in range(H):
            n[j] = wx_n[j] + bi_n[j] + r[j] * hnb[j]
        _tanh_inplace(n)
        z, hb, hpb = g[H : 2 * H], h[b], h_prev[b]
        for j in range(H):
            hb[j] = (one - z[j]) * n[j] + z[j] * hpb[j]


@njit(**JIT)
def gru_backward_gates(gates, hn, h_prev, dh, dz, dzh):
    """dz: wrt the input pre-activations of r, z, n; dzh: wrt the recurrent ones (r scales n's)."""
    B, H = dh.shape
    one = dz.dtype.type(1.0)
    for b in range(B):
        gb, dzb, dzhb, dhb, hnb, hpb = gates[b], dz[b], dzh[b], dh[b], hn[b], h_prev[b]
        for j in range(H):
            r = gb[j]
            z = gb[H + j]
            n = gb[2 * H + j]
            d = dhb[j]
            dn = d * (one - z) * (one - n * n)
            dr = dn * hnb[j] * r * (one - r)
            dzz = d * (hpb[j] - n) * z * (one - z)
            dzb[j] = dr
            dzb[H + j] = dzz
            dzb[2 * H + j] = dn
            dzhb[j] = dr
            dzhb[H + j] = dzz
            dzhb[2 * H + j] = dn * r


# ----------------------------------------------------------------------------- RNN


@njit(**JIT)
def rnn_forward(W_in, W_hh, b_ih, b_hh, x, h_prev, gates, h):
    """One tanh Elman step (torch.nn.RNN): h' = tanh(W_ih x + b_ih + W_hh h + b_hh), kept in gates and h."""
    B, H = h_prev.shape
    dot(h_prev, W_hh.T, gates)  # B,H
    for b in range(B):
        g = gates[b]
        _add_input(g, W_in[x[b]], b_ih, b_hh)
        _tanh_inplace(g)
        hb = h[b]
        for j in range(H):
            hb[j] = g[j]


@njit(**JIT)
def rnn_backward_gates(gates, dh, dz):
    B, H = dh.shape
    one = dz.dtype.type(1.0)
    for b in range(B):
        gb, dzb, dhb = gates[b], dz[b], dh[b]
        for j in range(H):
            dzb[j] = dhb[j] * (one - gb[j] * gb[j])

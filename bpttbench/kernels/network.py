"""The network: a recurrent cell (kernels/cells.py) + softmax head; one forward step into a ring of
past steps, and the window backward every truncated scheme shares (evaluation: kernels/evaluate.py).

Shapes: B streams, H hidden units, V characters, G = blocks * H gate pre-activations (the cell's
gate blocks: 4 LSTM, 3 GRU, 1 RNN; param_views reads them off theta's length).
Activations of past steps live in rings indexed by `t % R` (R = k2 + 1, slot 0 = the zero state
before step 1); a ring is the tuple
    (x, y, gates, c, h, aux, probs)  with shapes (R,B) (R,B) (R,B,G) (R,B,Hc) (R,B,H) (R,B,Ha) (R,B,V)
where gates holds each step's post-activations, and c and aux what the cell keeps beside them
(kernels/cells.py: for the LSTM c and tanh(c), Hc = Ha = H; for the GRU aux only, Hc = 0).

The math is bpttbench/reference.py's; tests compare the two.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from bpttbench.kernels.blas import dot, gemm_tn
from bpttbench.kernels.cells import GRU, cell_backward, cell_backward_gates, cell_forward
from bpttbench.kernels.optim import sum_of_squares
from bpttbench.kernels.vecmath import JIT, flush_subnormals, restore_subnormals, vexp


@njit(**JIT)
def param_views(theta, V, H):
    """Cut the flat parameter vector into PyTorch-layout tensors (views, no copies).

    G, the gate rows, is what theta's length leaves: theta = G (V + H + 2) + V (H + 1).
    """
    G = (theta.size - V * (H + 1)) // (V + H + 2)
    o = 0
    W_ih = theta[o : o + G * V].reshape((G, V))
    o += G * V
    W_hh = theta[o : o + G * H].reshape((G, H))
    o += G * H
    b_ih = theta[o : o + G]
    o += G
    b_hh = theta[o : o + G]
    o += G
    W_dec = theta[o : o + V * H].reshape((V, H))
    o += V * H
    b_dec = theta[o : o + V]
    return W_ih, W_hh, b_ih, b_hh, W_dec, b_dec


@njit(**JIT)
def read_inputs(ids, track_len, t, x, y):
    """Step t (1-based) of every stream: input = character t, target = character t + 1 of its track.

    Stream b reads track b = ids[b*track_len : (b+1)*track_len]; past the end it wraps around
    (the state carries over), so any budget can run on any corpus.
    """
    p = (t - 1) % (track_len - 1)
    for b in range(x.shape[0]):
        x[b] = ids[b * track_len + p]
        y[b] = ids[b * track_len + p + 1]


@njit(**JIT)
def head_forward(W_dec, b_dec, h, y, probs):
    """Softmax over the decoder's logits into probs; returns the summed cross-entropy (nats)."""
    B, V = probs.shape
    dot(h, W_dec.T, probs)  # B,V logits
    total = 0.0
    for b in range(B):
        p = probs[b]
        for v in range(V):
            p[v] += b_dec[v]
        peak = p[0]
        for v in range(V):
            if p[v] > peak:
                peak = p[v]
        target_logit = p[y[b]]
        for v in range(V):
            p[v] = vexp(p[v] - peak)
        norm = 0.0
        for v in range(V):
            norm += p[v]
        # log-sum-exp form: exact even when the target's probability underflows
        total += np.log(norm) + peak - target_logit
        norm_t = p.dtype.type(norm)
        for v in range(V):
            p[v] = p[v] / norm_t
    return total


@njit(**JIT)
def forward_step(theta, V, H, ring, t, prev_slot):
    """Forward step t into ring slot t % R from the state in prev_slot; returns the summed loss (nats)."""
    return forward_step_with_input_weights(theta, V, H, ring, t, prev_slot, param_views(theta, V, H)[0].T, True)


@njit(**JIT)
def forward_step_with_input_weights(theta, V, H, ring, t, prev_slot, W_in, with_head):
    """forward_step reading the input weights from W_in (V, G: row x is character x's column of
    W_ih; W_ih.T, a strided view, or a row-major mirror of it, whose rows are contiguous);
    without the head (returning 0) when with_head is False, for steps whose loss and softmax
    nobody reads."""
    x_r, y_r, gates_r, c_r, h_r, aux_r, probs_r = ring
    W_ih, W_hh, b_ih, b_hh, W_dec, b_dec = param_views(theta, V, H)
    s = t % x_r.shape[0]
    cell_forward(W_in, W_hh, b_ih, b_hh, x_r[s], h_r[prev_slot], c_r[prev_slot], gates_r[s], c_r[s], h_r[s], aux_r[s])
    if not with_head:
        return 0.0
    return head_forward(W_dec, b_dec, h_r[s], y_r[s], probs_r[s])


@njit(**JIT)
def mirror_input_weights(theta, V, H, W_in):
    """W_in (V, G) = W_ih.T, row-major: the fused SGD path reads and updates W_ih through it."""
    _transpose(param_views(theta, V, H)[0], W_in)


@njit(**JIT)
def unmirror_input_weights(theta, V, H, W_in):
    """Write the mirror back into theta's W_ih."""
    _transpose(W_in, param_views(theta, V, H)[0])


TRANSPOSE_TILE = 16  # a tile's rows and columns stay in L1 while both are walked


@njit(**JIT)
def _transpose(src, dst):
    """dst = src.T, tile by tile (column by column, every write of a G x V transpose missed a line)."""
    rows, cols = src.shape
    for i0 in range(0, rows, TRANSPOSE_TILE):
        i1 = min(i0 + TRANSPOSE_TILE, rows)
        for j0 in range(0, cols, TRANSPOSE_TILE):
            j1 = min(j0 + TRANSPOSE_TILE, cols)
            for i in range(i0, i1):
                s = src[i]
                for j in range(j0, j1):
                    dst[j, i] = s[j]


@njit(**JIT)
def transpose_input_block(a, V, H, scratch, to_rows):
    """Transpose the W_ih block of the flat vector a in place (scratch: a (V, G) array), to_rows:
    from PyTorch's (G, V) to (V, G), whose row v is character v's column, contiguous; else back.

    Outside fused SGD a truncated scheme's block runs with theta's, grad's and Adam's moments'
    blocks transposed (schemes/base.py): the forward then reads a character's input weights as a
    contiguous row of theta, the backward writes its gradient as a contiguous row of grad, and
    the optimiser's element-wise pass is the same on either layout.
    """
    n = scratch.size
    flat = scratch.reshape(n)
    if to_rows:
        mirror_input_weights(a, V, H, scratch)
        for i in range(n):
            a[i] = flat[i]
    else:
        for i in range(n):
            flat[i] = a[i]
        unmirror_input_weights(a, V, H, scratch)


SMALL_GEMM_ROWS = 8  # below this many rows a hand loop beats BLAS's packing for the decoder's gradient


@njit(**JIT)
def window_backward(theta, grad, V, H, ring, t, first, first_injected, scale, W_hh_stack, W_dec_stack, work):
    """Gradient of scale * (sum of losses of steps first_injected..t) through steps first..t into grad.

    The gradient stops at the state before step `first`. Step tau's Jacobians use
    W_hh_stack[tau % len] and W_dec_stack[tau % len]: a stack of one (the current weights) for
    `single`, a ring of per-step snapshots for `stored`. Every element of grad is written (its
    previous contents do not matter). dW_hh and dW_dec are written by one GEMM each over the
    window, not summed per step; dW_ih's few nonzero columns (the window's characters) are
    summed row by row, then scattered.
    """
    index_work = np.full((4, max(work[4].shape[0], V)), -1, np.int64)
    window_gradient_or_sgd_step(theta, grad, V, H, ring, t, first, first_injected, scale, W_hh_stack, W_dec_stack,
                                work, index_work, 0.0, param_views(theta, V, H)[0].T, param_views(grad, V, H)[0].T)


@njit(**JIT)
def window_gradient_or_sgd_step(theta, grad, V, H, ring, t, first, first_injected, scale, W_hh_stack, W_dec_stack,
                                work, index_work, lr, W_in, G_in):
    """With lr = 0, window_backward: the window's gradient into grad, and returns the sum of
    squares (float64) of its W_ih block. With lr > 0, the SGD step theta -= lr * gradient
    instead, fused into the backward pass (grad is then scratch), and returns 0.

    W_in, G_in: the (V, G) matrices whose row v is character v's input weights, gradient: views
    of W_ih.T in theta and grad, or their rows where the W_ih blocks are held transposed
    (transpose_input_block); under fused SGD, W_in is a row-major mirror instead.
    index_work: int64 scratch from index_scratch(k2, B, V) (window_backward allocates its own);
    its row 3 marks the rows of G_in that may be nonzero (see _write_input_gradient).

    With lr > 0 the step goes straight into the weights: W_hh by a GEMM that accumulates into
    it (alpha = -lr, beta = 1); W_ih through W_in, its (V, G) row-major mirror (see
    mirror_input_weights: the caller writes it back into theta), and only in the window's
    characters' rows (elsewhere the gradient is 0 and x - lr * 0 = x); the rest element by
    element. Each element gets theta - lr * g, the same arithmetic as apply_update's SGD.
    With lr = 0, W_in is not used; with lr > 0, G_in is not.

    Subnormals are flushed to zero meanwhile (kernels/vecmath.py says why).
    """
    control = flush_subnormals()
    x_r, y_r, gates_r, c_r, h_r, aux_r, probs_r = ring
    dh, dc, dh_prev, dh_head, dz_all, hprev_all, dlog_all, hinj_all, dzh_rows = work
    _, g_hh, g_bih, g_bhh, g_dec, g_bdec = param_views(grad, V, H)
    R = x_r.shape[0]
    n_stack = W_hh_stack.shape[0]
    B = dh.shape[0]
    G = gates_r.shape[2]
    gru = G == GRU * H
    # the gradient wrt the recurrent pre-activations: the GRU's own rows, else dz's (kernels/cells.py)
    dzh_all = dzh_rows if gru else dz_all
    dh[:] = 0.0
    dc[:] = 0.0
    scale_t = dh.dtype.type(scale)
    # The head's gradients wrt h do not depend on the recurrence: every injected step's dlogits
    # first, then their products with the decoder in one GEMM (one per step for stored's snapshots).
    n_injected = t - first_injected + 1
    for k in range(n_injected):
        s = (t - k) % R
        for b in range(B):
            db, pb = dlog_all[k * B + b], probs_r[s, b]
            for v in range(V):
                db[v] = pb[v] * scale_t
            db[y_r[s, b]] -= scale_t
            src, dst = h_r[s, b], hinj_all[k * B + b]
            for j in range(H):
                dst[j] = src[j]
    if n_stack == 1:
        dot(dlog_all[: n_injected * B], W_dec_stack[0], dh_head[: n_injected * B])
    else:
        for k in range(n_injected):
            dot(dlog_all[k * B : (k + 1) * B], W_dec_stack[(t - k) % n_stack], dh_head[k * B : (k + 1) * B])
    for tau in range(t, first - 1, -1):
        s = tau % R
        k = t - tau  # row block of this step in the window matrices
        w = tau % n_stack
        if tau >= first_injected:
            for b in range(B):
                dhb, headb = dh[b], dh_head[k * B + b]
                for j in range(H):
                    dhb[j] += headb[j]
        dz = dz_all[k * B : (k + 1) * B]
        dzh = dzh_all[k * B : (k + 1) * B]
        ps = (tau - 1) % R
        if tau > first:
            cell_backward(W_hh_stack[w], gates_r[s], c_r[ps], aux_r[s], h_r[ps], dh, dc, dz, dzh, dh_prev)
            dh, dh_prev = dh_prev, dh  # the next step's dh is this step's dh_prev: swap, not copy
        else:  # nothing reads the gradient into the state before the window: skip its product
            cell_backward_gates(gates_r[s], c_r[ps], aux_r[s], h_r[ps], dh, dc, dz, dzh)
        for b in range(B):
            src, dst = h_r[ps, b], hprev_all[k * B + b]
            for j in range(H):
                dst[j] = src[j]
    # The Jacobians are done: from here on theta may change.
    fused = lr > 0.0
    lr_t = theta.dtype.type(lr)
    W_ih, W_hh, b_ih, b_hh, W_dec, b_dec = param_views(theta, V, H)
    rows = (t - first + 1) * B
    if fused:
        gemm_tn(-lr, dzh_all[:rows], hprev_all[:rows], 1.0, W_hh)
    else:
        dot(dzh_all[:rows].T, hprev_all[:rows], g_hh)
    if gru:  # b_hh's gradient is dzh's column sums (before _sum_rows_by_character clobbers dz, not dzh)
        g_bhh[:] = 0.0
        for r in range(rows):
            _add_row(g_bhh, dzh_all[r])
    # dW_ih's nonzero columns are the window's distinct characters: sum their rows (contiguous).
    n_chars = _sum_rows_by_character(dz_all, x_r, t, rows, B, R, index_work)
    # biases: the column sums of dz, as the sum of the per-character sums (n_chars rows, not all)
    g_bih[:] = 0.0
    for u in range(n_chars):
        _add_row(g_bih, dz_all[index_work[0, u]])
    if not gru:  # b_hh enters every pre-activation as b_ih does
        for j in range(G):
            g_bhh[j] = g_bih[j]
    if fused:
        for j in range(G):
            b_ih[j] -= lr_t * g_bih[j]
        for j in range(G):
            b_hh[j] -= lr_t * g_bhh[j]
    # Each character's summed row becomes its row of G_in or, fused, updates its row of W_in.
    sum_sq_in = 0.0
    if fused:
        for u in range(n_chars):
            w_c, acc = W_in[index_work[1, u]], dz_all[index_work[0, u]]
            for j in range(G):
                w_c[j] -= lr_t * acc[j]
    else:
        sum_sq_in = _write_input_gradient(G_in, dz_all, index_work, n_chars)
    rows_injected = (t - first_injected + 1) * B
    if rows_injected < SMALL_GEMM_ROWS:
        for v in range(V):
            gv = g_dec[v]
            d = dlog_all[0, v]
            h0 = hinj_all[0]
            for j in range(H):
                gv[j] = d * h0[j]
            for r in range(1, rows_injected):
                d = dlog_all[r, v]
                hr = hinj_all[r]
                for j in range(H):
                    gv[j] += d * hr[j]
            if fused:
                Wv = W_dec[v]
                for j in range(H):
                    Wv[j] -= lr_t * gv[j]
    else:
        dot(dlog_all[:rows_injected].T, hinj_all[:rows_injected], g_dec)
        if fused:
            for v in range(V):
                Wv, gv = W_dec[v], g_dec[v]
                for j in range(H):
                    Wv[j] -= lr_t * gv[j]
    g_bdec[:] = 0.0
    for r in range(rows_injected):
        dr = dlog_all[r]
        for v in range(V):
            g_bdec[v] += dr[v]
    if fused:
        for v in range(V):
            b_dec[v] -= lr_t * g_bdec[v]
    restore_subnormals(control)
    return sum_sq_in


def index_scratch(k2, B, V):
    """The int64 scratch window_gradient_or_sgd_step needs: (4, max(k2 * B, V)), -1 everywhere
    (row 3: any row of the input gradient may be nonzero)."""
    return np.full((4, max(k2 * B, V)), -1, np.int64)


@njit(**JIT)
def _write_input_gradient(G_in, dz_all, index_work, n_chars):
    """W_ih's gradient into G_in (V, G): row index_work[1, u] = dz_all[index_work[0, u]] for
    u < n_chars, every other row 0; returns its sum of squares (float64).

    Only the rows index_work[3] marks (written by an earlier call, or not known to be zero) are
    zeroed: a window writes at most k2 * B of the V rows, and the others stay 0 from one update
    to the next, so the gradient is neither zeroed nor normed whole.
    """
    maybe_nonzero = index_work[3]
    zero = G_in.dtype.type(0.0)
    for c in range(G_in.shape[0]):
        if maybe_nonzero[c] != 0:
            row = G_in[c]
            for j in range(row.size):
                row[j] = zero
            maybe_nonzero[c] = 0
    total = 0.0
    for u in range(n_chars):
        c = index_work[1, u]
        row, acc = G_in[c], dz_all[index_work[0, u]]
        for j in range(row.size):
            row[j] = acc[j]
        maybe_nonzero[c] = 1
        total += sum_of_squares(acc)
    return total


@njit(**JIT)
def _add_row(acc, add):
    """acc += add. A function of its own: written inline in _sum_rows_by_character's loop over rows,
    this loop made that function 3.5-4.5 times slower (B = 32: 640 rows of 512, 120-200 us against
    36-45 us); compiled alone it is vectorised, and stays so when LLVM inlines it there. Moving the
    window backward's other row loops (copies of h and dlogits, SGD on rows) into such functions
    too was tried: no gain measurable at B = 32, and chunked's steps got slower at B = 1."""
    for j in range(acc.shape[0]):
        acc[j] += add[j]


@njit(**JIT)
def _sum_rows_by_character(dz_all, x_r, t, rows, B, R, index_work):
    """Add every dz row into the first row with the same input character, in row order (so each
    sum equals a plain accumulation from zero); returns the number of distinct characters n and
    writes their first rows to index_work[0, :n] and the characters to index_work[1, :n].

    Row r is step t - r // B, stream r % B. index_work[2, c] maps character c to its slot (-1:
    not seen); it is -1 everywhere on entry and on exit. dz_all is clobbered: call this after
    dz's last reader.
    """
    first_rows, chars, slot = index_work[0], index_work[1], index_work[2]
    n = 0
    for r in range(rows):
        c = x_r[(t - r // B) % R, r % B]
        u = slot[c]
        if u < 0:
            slot[c] = n
            first_rows[n] = r
            chars[n] = c
            n += 1
        else:
            _add_row(dz_all[first_rows[u]], dz_all[r])
    for u in range(n):
        slot[chars[u]] = -1
    return n

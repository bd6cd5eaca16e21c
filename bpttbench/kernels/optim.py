"""Optimisers and gradient clipping on the flat parameter vector, in JIT code.

opt_state = (m, v, count): Adam's first and second moments and a one-element step counter
(unused by SGD). Adam follows Kingma & Ba (2015) with bias correction, as torch.optim.Adam.

An update is one pass over the arrays: clipping does not rescale the gradient in place but
hands the step its factor (1 when the norm is within the clip), which multiplies each element
as it is read, the same product as a rescaled copy would hold. The norm itself is one more
pass over the gradient (sum_of_squares), or a part of one where its producer summed the squares
of what it wrote (apply_update_with_partial_sum: the window backward's few W_ih rows), or none
(apply_update_with_sum_of_squares).

Every loop here runs in theta's precision: the constants are cast to theta's dtype once per
call, so a float32 run does float32 arithmetic (a float64 literal in the loop would widen every
element to float64 and back), and each loop is a plain element-wise pass that LLVM vectorises.
Adam's pass is then bound by its square root and division per element (both go through the
divider), not by memory. (Dividing float32 by a Newton reciprocal instead, bit-trick estimate
and three steps, leaves the divider the square root alone but was slower: 96-107 us a pass
against 62-69 at 108,225 parameters, and 85-93 with 512-bit vectors.)
"""

from __future__ import annotations

import numpy as np
from numba import njit

from bpttbench.kernels.vecmath import JIT

SGD, ADAM = 0, 1
OPTIMIZER_CODES = {"sgd": SGD, "adam": ADAM}
ADAM_BETA1, ADAM_BETA2, ADAM_EPS = 0.9, 0.999, 1e-8
# Adam's moments below float32's smallest normal number are set to zero (in float64 too). A parameter
# whose gradient stays zero (the input weights of a character not seen for a while) has its first
# moment decay by beta1 a step into the subnormal range, where every operation on it takes a
# microcode assist on x86: on text, a run's Adam steps then cost far more than `speed`'s, which
# start from fresh moments. Zeroing them cannot move theta: an update from |m| < ADAM_FLUSH is
# below lr / (1 - beta1) * ADAM_FLUSH / ADAM_EPS (2e-32 at lr 2e-3), under half an ulp of any
# float32 weight above 1e-24; and v < ADAM_FLUSH moves sqrt(v_hat) + eps by under 1e-17.
ADAM_FLUSH = 2.0**-126
SUM_LANES = 256  # partial sums of sum_of_squares: a power of two, a few vectors' worth per pass


@njit(**JIT)
def sum_of_squares(a):
    """sum(a**2) accumulated in float64 in SUM_LANES partial sums (element i goes to lane
    i % SUM_LANES), folded pairwise: the same order on every machine, and the loop over the
    lanes is element-wise, so LLVM vectorises it (eight scalar partial sums it did not)."""
    return _sum_of_squares_in_lanes(a, SUM_LANES)


@njit(**JIT)
def _sum_of_squares_in_lanes(a, lanes):
    # lanes is an argument, not the constant: with a constant trip count LLVM unrolls the lane
    # loop whole, and its straight-line code stays scalar
    acc = np.zeros(lanes)
    n = a.size - a.size % lanes
    for i in range(0, n, lanes):
        block = a[i : i + lanes]
        for j in range(lanes):
            x = np.float64(block[j])
            acc[j] += x * x
    tail = 0.0
    for i in range(n, a.size):
        x = np.float64(a[i])
        tail += x * x
    width = lanes // 2
    while width >= 1:
        for j in range(width):
            acc[j] += acc[j + width]
        width //= 2
    return acc[0] + tail


@njit(**JIT)
def clip_factor(sum_sq, clip):
    """The factor global-norm clipping multiplies the gradient by: clip / norm when clip > 0 and
    the norm sqrt(sum_sq) exceeds it, else 1."""
    if clip > 0.0:
        norm = np.sqrt(sum_sq)
        if norm > clip:
            return clip / norm
    return 1.0


@njit(**JIT)
def apply_update(theta, grad, opt_state, optimizer, lr, clip):
    """Clip grad by global norm (clip > 0), then one optimiser step on theta in place; grad is
    only read (it keeps the unclipped gradient)."""
    sum_sq = sum_of_squares(grad) if clip > 0.0 else 0.0
    apply_update_with_sum_of_squares(theta, grad, opt_state, optimizer, lr, clip, sum_sq)


@njit(**JIT)
def apply_update_with_partial_sum(theta, grad, opt_state, optimizer, lr, clip, n_known, sum_sq_known):
    """apply_update for a gradient whose first n_known elements' sum of squares (float64) is known
    (the window backward sums W_ih's block from the few rows it writes): the norm reads the rest."""
    sum_sq = sum_sq_known + sum_of_squares(grad[n_known:]) if clip > 0.0 else 0.0
    apply_update_with_sum_of_squares(theta, grad, opt_state, optimizer, lr, clip, sum_sq)


@njit(**JIT)
def apply_update_with_sum_of_squares(theta, grad, opt_state, optimizer, lr, clip, sum_sq):
    """apply_update for a gradient whose sum of squares (float64) is known already."""
    shrink = clip_factor(sum_sq, clip)
    if optimizer == SGD:
        sgd_step(theta, grad, lr, shrink)
        return
    m, v, count = opt_state
    count[0] += 1
    adam_step(theta, grad, m, v, lr, count[0], shrink)


@njit(**JIT)
def sgd_step(theta, grad, lr, shrink=1.0):
    """theta -= lr * (shrink * grad), in one pass."""
    lr_t, s = theta.dtype.type(lr), theta.dtype.type(shrink)
    for i in range(theta.size):
        theta[i] -= lr_t * (grad[i] * s)


@njit(**JIT)
def adam_step(theta, grad, m, v, lr, count, shrink=1.0):
    """One Adam step on the gradient shrink * grad, in one pass: m, v updated in place (a moment
    below ADAM_FLUSH becomes 0); theta -= lr m_hat / (sqrt(v_hat) + eps)."""
    dt = theta.dtype.type
    b1, b2 = dt(ADAM_BETA1), dt(ADAM_BETA2)
    c1, c2 = dt(1.0 - ADAM_BETA1), dt(1.0 - ADAM_BETA2)
    eps = dt(ADAM_EPS)
    step = dt(lr / (1.0 - ADAM_BETA1**count))  # lr / bias1
    inv_bias2 = dt(1.0 / (1.0 - ADAM_BETA2**count))
    s = dt(shrink)
    tiny = dt(ADAM_FLUSH)
    zero = dt(0.0)
    for i in range(theta.size):
        g = grad[i] * s
        mi = b1 * m[i] + c1 * g
        vi = b2 * v[i] + c2 * g * g
        mi = mi if abs(mi) >= tiny else zero  # a select: the loop still vectorises
        vi = vi if vi >= tiny else zero
        m[i] = mi
        v[i] = vi
        theta[i] -= step * mi / (np.sqrt(vi * inv_bias2) + eps)

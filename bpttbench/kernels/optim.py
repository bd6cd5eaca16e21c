"""Optimisers and gradient clipping on the flat parameter vector, in JIT code.

opt_state = (m, v, count): Adam's first and second moments and a one-element step counter
(unused by SGD). Adam follows Kingma & Ba (2015) with bias correction, as torch.optim.Adam.

Every loop here runs in theta's precision: the constants are cast to theta's dtype once per
call, so a float32 run does float32 arithmetic (a float64 literal in the loop would widen every
element to float64 and back), and each loop is a plain element-wise pass that LLVM vectorises.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from bpttbench.kernels.vecmath import JIT

SGD, ADAM = 0, 1
OPTIMIZER_CODES = {"sgd": SGD, "adam": ADAM}
ADAM_BETA1, ADAM_BETA2, ADAM_EPS = 0.9, 0.999, 1e-8


@njit(**JIT)
def sum_of_squares(a):
    """sum(a**2) accumulated in float64 over eight interleaved partial sums (vectorisable, and
    the same order on every machine)."""
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
    n8 = a.size - a.size % 8
    for i in range(0, n8, 8):
        x0, x1, x2, x3 = np.float64(a[i]), np.float64(a[i + 1]), np.float64(a[i + 2]), np.float64(a[i + 3])
        x4, x5, x6, x7 = np.float64(a[i + 4]), np.float64(a[i + 5]), np.float64(a[i + 6]), np.float64(a[i + 7])
        s0 += x0 * x0
        s1 += x1 * x1
        s2 += x2 * x2
        s3 += x3 * x3
        s4 += x4 * x4
        s5 += x5 * x5
        s6 += x6 * x6
        s7 += x7 * x7
    for i in range(n8, a.size):
        x = np.float64(a[i])
        s0 += x * x
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


@njit(**JIT)
def apply_update(theta, grad, opt_state, optimizer, lr, clip):
    """Clip grad by global norm (clip > 0), then one optimiser step on theta in place."""
    if clip > 0.0:
        norm = np.sqrt(sum_of_squares(grad))
        if norm > clip:
            shrink = grad.dtype.type(clip / norm)
            for i in range(grad.size):
                grad[i] *= shrink
    if optimizer == SGD:
        sgd_step(theta, grad, lr)
        return
    m, v, count = opt_state
    count[0] += 1
    adam_step(theta, grad, m, v, lr, count[0])


@njit(**JIT)
def sgd_step(theta, grad, lr):
    lr_t = theta.dtype.type(lr)
    for i in range(theta.size):
        theta[i] -= lr_t * grad[i]


@njit(**JIT)
def adam_step(theta, grad, m, v, lr, count):
    """One Adam step: m, v updated in place; theta -= lr m_hat / (sqrt(v_hat) + eps)."""
    dt = theta.dtype.type
    b1, b2 = dt(ADAM_BETA1), dt(ADAM_BETA2)
    c1, c2 = dt(1.0 - ADAM_BETA1), dt(1.0 - ADAM_BETA2)
    eps = dt(ADAM_EPS)
    step = dt(lr / (1.0 - ADAM_BETA1**count))  # lr / bias1
    inv_bias2 = dt(1.0 / (1.0 - ADAM_BETA2**count))
    for i in range(theta.size):
        g = grad[i]
        mi = b1 * m[i] + c1 * g
        vi = b2 * v[i] + c2 * g * g
        m[i] = mi
        v[i] = vi
        theta[i] -= step * mi / (np.sqrt(vi * inv_bias2) + eps)

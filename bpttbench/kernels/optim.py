"""Optimisers and gradient clipping on the flat parameter vector, in JIT code.

opt_state = (m, v, count): Adam's first and second moments and a one-element step counter
(unused by SGD). Adam follows Kingma & Ba (2015) with bias correction, as torch.optim.Adam.
"""

from __future__ import annotations

import numpy as np
from numba import njit

SGD, ADAM = 0, 1
OPTIMIZER_CODES = {"sgd": SGD, "adam": ADAM}
ADAM_BETA1, ADAM_BETA2, ADAM_EPS = 0.9, 0.999, 1e-8


@njit(cache=True, nogil=True)
def apply_update(theta, grad, opt_state, optimizer, lr, clip):
    """Clip grad by global norm (clip > 0), then one optimiser step on theta in place."""
    if clip > 0.0:
        sq = 0.0
        for i in range(grad.size):
            sq += grad[i] * grad[i]
        norm = np.sqrt(sq)
        if norm > clip:
            grad *= clip / norm
    if optimizer == SGD:
        for i in range(theta.size):
            theta[i] -= lr * grad[i]
        return
    m, v, count = opt_state
    count[0] += 1
    bias1 = 1.0 - ADAM_BETA1 ** count[0]
    bias2 = 1.0 - ADAM_BETA2 ** count[0]
    for i in range(theta.size):
        m[i] = ADAM_BETA1 * m[i] + (1.0 - ADAM_BETA1) * grad[i]
        v[i] = ADAM_BETA2 * v[i] + (1.0 - ADAM_BETA2) * grad[i] * grad[i]
        theta[i] -= lr * (m[i] / bias1) / (np.sqrt(v[i] / bias2) + ADAM_EPS)

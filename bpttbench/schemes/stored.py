"""`stored`: as `single`, but the backward pass through step tau uses the weights that computed
step tau's forward ("keep track of the weights as they were", Williams & Peng's O(n^2 h) variant).

Only what the backward pass needs is kept: a ring of k2 snapshots of W_hh and the decoder.
"""

from __future__ import annotations

from bpttbench.schemes.base import aligned_zeros
from bpttbench.schemes.single import Single


class Stored(Single):
    name = "stored"
    snapshot = True

    def __init__(self, cfg, theta, vocab_size, train_ids):
        super().__init__(cfg, theta, vocab_size, train_ids)
        H, V, k2 = self.H, self.V, self.k2
        self.W_hh_snapshots = aligned_zeros((k2, self.G, H), theta.dtype)
        self.W_dec_snapshots = aligned_zeros((k2, V, H), theta.dtype)

    def weight_stacks(self):
        return self.W_hh_snapshots, self.W_dec_snapshots

    def own_arrays(self) -> tuple:
        return (*super().own_arrays(), self.W_hh_snapshots, self.W_dec_snapshots)

"""`chunked`: the usual TBPTT of PyTorch/Keras/char-rnn recipes (k1 = k2 = k).

Run k steps from the carried state with the current weights, backprop the mean of those k
losses to the chunk start (no gradient into the carried state), update, carry the state on.
The weights do not change inside a chunk, so this is `single` with k1 = k2; the tests check
it against the reference's literal chunk-by-chunk implementation.
"""

from __future__ import annotations

from bpttbench.schemes.single import Single


class Chunked(Single):
    name = "chunked"


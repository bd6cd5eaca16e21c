"""Learning rules, one module each, behind the `Scheme` interface; `REGISTRY` maps names to classes.

The registry: a scheme listed here (and named in bpttbench/scheme_names.py) can be run, swept,
timed and checked, and tests/test_contract.py holds it to the interface.
"""

from bpttbench import scheme_names
from bpttbench.schemes.adaptive import Adaptive
from bpttbench.schemes.base import Scheme
from bpttbench.schemes.chunked import Chunked
from bpttbench.schemes.eprop import Eprop
from bpttbench.schemes.rtrl import Rtrl
from bpttbench.schemes.single import Single
from bpttbench.schemes.sliding import Sliding
from bpttbench.schemes.snap1 import Snap1
from bpttbench.schemes.stored import Stored
from bpttbench.schemes.uoro import Uoro

REGISTRY: dict[str, type[Scheme]] = {cls.name: cls for cls in (Chunked, Single, Stored, Sliding, Adaptive, Rtrl, Uoro, Snap1, Eprop)}
if tuple(REGISTRY) != scheme_names.SCHEME_NAMES:
    raise ImportError(f"the registry {tuple(REGISTRY)} and bpttbench/scheme_names.py {scheme_names.SCHEME_NAMES} "
                      "disagree: list each scheme in both, in the same order")


def make_scheme(cfg, theta, vocab_size, train_ids) -> Scheme:
    return REGISTRY[cfg.scheme](cfg, theta, vocab_size, train_ids)


__all__ = ["REGISTRY", "Scheme", "make_scheme"]

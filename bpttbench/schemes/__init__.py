"""Truncation schemes, one module each, behind the `Scheme` interface; `SCHEMES` maps names to classes."""

from bpttbench.schemes.base import Scheme
from bpttbench.schemes.chunked import Chunked
from bpttbench.schemes.single import Single
from bpttbench.schemes.sliding import Sliding
from bpttbench.schemes.stored import Stored

SCHEMES: dict[str, type[Scheme]] = {cls.name: cls for cls in (Chunked, Single, Stored, Sliding)}


def make_scheme(cfg, theta, vocab_size, train_ids) -> Scheme:
    return SCHEMES[cfg.scheme](cfg, theta, vocab_size, train_ids)


__all__ = ["SCHEMES", "Scheme", "make_scheme"]

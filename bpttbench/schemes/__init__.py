"""Truncation schemes, one module each, behind the `Scheme` interface; `SCHEMES` maps names to classes."""

from bpttbench.schemes import rtrl
from bpttbench.schemes.base import Scheme
from bpttbench.schemes.chunked import Chunked
from bpttbench.schemes.eprop import Eprop
from bpttbench.schemes.rtrl import Rtrl
from bpttbench.schemes.single import Single
from bpttbench.schemes.sliding import Sliding
from bpttbench.schemes.snap1 import Snap1
from bpttbench.schemes.stored import Stored
from bpttbench.schemes.uoro import Uoro

SCHEMES: dict[str, type[Scheme]] = {cls.name: cls for cls in (Chunked, Single, Stored, Sliding, Rtrl, Uoro, Snap1, Eprop)}


def make_scheme(cfg, theta, vocab_size, train_ids) -> Scheme:
    return SCHEMES[cfg.scheme](cfg, theta, vocab_size, train_ids)


def check_fits(cfg, vocab_size: int) -> None:
    """ConfigError if cfg's scheme cannot run at this size on this vocabulary (rtrl's memory limit);
    call it before starting a run, so that a grid fails before its first unit rather than midway."""
    if cfg.scheme == "rtrl":
        rtrl.check_fits(cfg, vocab_size)


__all__ = ["SCHEMES", "Scheme", "check_fits", "make_scheme"]

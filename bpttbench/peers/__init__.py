"""The peers of `bpttbench speed --against`: bpttbench's schemes written for speed by a user of
another framework, to time ours against (and to check, in tests, that they follow our trajectory).

    PEERS              peer name (also the name of its optional extra) -> Peer (module, class, framework)
    load_peer(name)    the peer's module, its framework imported; a missing framework is a one-line
                       UserError naming the extra to install (pip install 'bpttbench[jax]')
    peer_class(name)   its scheme class: cls(scheme, theta, vocab_size, hidden, ids, k1=, k2=, batch=,
                       lr=, variant=None, cell="lstm"); .run(n) returns the online losses, .state_dict() the weights
    peer_schemes(name, cell)  the schemes it implements for a cell

Each peer module (torch_peer, jax_peer) holds SCHEMES (what it implements), CELL_SCHEMES (per cell), VARIANTS (the forms
of chunked and sliding that benchmarks/peer_variants.py times against each other),
DEFAULT_VARIANTS (the form `bpttbench speed` times) and require() (imports its framework).

Importing this package, or a peer module, imports neither PyTorch nor JAX: require() does, when a
peer is built. The peers ship in the package, so `--against` works from a wheel as from a checkout.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from bpttbench.errors import UserError


@dataclass(frozen=True)
class Peer:
    name: str  # --against's name, and the optional extra that installs its framework
    module: str  # bpttbench.peers.<module>
    cls: str  # its scheme class
    framework: str  # as people call it, for messages

    @property
    def install(self) -> str:
        return f"pip install 'bpttbench[{self.name}]'"


PEERS = {
    "torch": Peer("torch", "torch_peer", "TorchScheme", "PyTorch"),
    "jax": Peer("jax", "jax_peer", "JaxScheme", "JAX"),
}


def missing_framework(name: str) -> UserError:
    """The one-line error for a peer whose framework is not installed."""
    peer = PEERS[name]
    return UserError(f"--against {name} needs {peer.framework}, which is not installed: {peer.install} "
                     f"(from a checkout: pip install -e '.[{name}]'; the CPU build is enough)")


def peer_module(name: str):
    """The peer's module, without importing its framework (for its SCHEMES, VARIANTS, defaults)."""
    if name not in PEERS:
        raise UserError(f"unknown peer {name!r}; --against takes {', '.join(PEERS)}")
    return importlib.import_module(f"{__name__}.{PEERS[name].module}")


def peer_schemes(name: str, cell: str) -> tuple[str, ...]:
    """The schemes the peer implements for this cell (its module's CELL_SCHEMES)."""
    return peer_module(name).CELL_SCHEMES.get(cell, ())


def load_peer(name: str):
    """The peer's module with its framework imported (UserError if it is not installed)."""
    module = peer_module(name)
    module.require()
    return module


def peer_class(name: str):
    """The peer's scheme class, its framework imported."""
    return getattr(load_peer(name), PEERS[name].cls)

"""The schemes' and the cells' names, listed once, in a module that imports nothing.

`bpttbench.schemes.SCHEME_NAMES` registers one class per name here (and refuses to import if the two
disagree); `config` validates against these names without importing the schemes (and Numba), so
that reading results stays fast. To add a scheme: write its class (see schemes/base.py), add its
name here, and add the class to the registry in schemes/__init__.py.
"""

# name -> whether it truncates: True for the windowed schemes (k2 is the window they backprop
# through), False for those whose gradient reaches through the whole past (k2 unused, inject 'new').
TRUNCATES: dict[str, bool] = {
    "chunked": True,
    "single": True,
    "stored": True,
    "sliding": True,
    "adaptive": True,
    "rtrl": False,
    "uoro": False,
    "snap1": False,
    "eprop": False,
}

SCHEME_NAMES = tuple(TRUNCATES)
TRUNCATED_SCHEMES = tuple(name for name, truncates in TRUNCATES.items() if truncates)
UNTRUNCATED_SCHEMES = tuple(name for name, truncates in TRUNCATES.items() if not truncates)
# Chunk by definition: they update once per chunk of k2 steps, so k1 = k2 (the default whenever k1 is not given).
CHUNK_SCHEMES = ("chunked", "adaptive")
# The k2 under which an untruncated scheme (k2 unused) is swept and grouped, so that runs differing only in
# k2 count as one configuration.
UNTRUNCATED_K2 = 1


def resolve_k1(scheme: str, k1: int | None, k2: int, default: int) -> int:
    """The k1 a scheme runs at when the user gave k1 (or None): a chunking scheme's chunk is its k2."""
    if k1 is not None:
        return k1
    return k2 if scheme in CHUNK_SCHEMES else default


def effective_k2(scheme: str, k2: int) -> int:
    """The k2 that tells configurations apart: an untruncated scheme does not use it (UNTRUNCATED_K2)."""
    return UNTRUNCATED_K2 if scheme in UNTRUNCATED_SCHEMES else k2


# The recurrent cells, as torch.nn names them (lowercase), -> gate blocks: the rows of weight_ih_l0 and
# weight_hh_l0 are blocks * hidden. The count tells the cells apart, so a kernel reads its cell off W_hh's shape.
CELLS: dict[str, int] = {"lstm": 4, "gru": 3, "rnn": 1}
CELL_NAMES = tuple(CELLS)
DEFAULT_CELL = "lstm"  # TrainConfig.cell's default: the question's network
# The rules derived for some cells only (every other scheme runs every cell): uoro's and e-prop's
# per-stream steps are written out for the LSTM's gates; SnAp-1's for the LSTM's and the GRU's.
SCHEME_CELLS: dict[str, tuple[str, ...]] = {"uoro": ("lstm",), "eprop": ("lstm",), "snap1": ("lstm", "gru")}


def cells_of(scheme: str) -> tuple[str, ...]:
    """The cells `scheme` runs."""
    return SCHEME_CELLS.get(scheme, CELL_NAMES)


def cell_of_blocks(blocks: int) -> str:
    """The cell with this many gate blocks (ValueError for any other count)."""
    for name, count in CELLS.items():
        if count == blocks:
            return name
    raise ValueError(f"no cell has {blocks} gate blocks; the cells are {', '.join(f'{n} ({c})' for n, c in CELLS.items())}")

"""Which BLAS the kernels' products call: SciPy's (OpenBLAS) or Intel's MKL, chosen by BPTTBENCH_BLAS.

Every GEMM and GEMV the kernels make goes through bpttbench/kernels/blas.py, which calls the
function pointers of one process-wide table, the symbol `bpttbench_blas` (sgemm, dgemm, sgemv,
dgemv, Fortran calling convention). Compiled code names the symbol, never an address, so
Numba's on-disk cache stays valid across processes and backends; this module registers the
symbol with llvmlite and fills the table (`install`, run when bpttbench.kernels is imported,
before any kernel can run) and can refill it in-process (`use_blas`: tests, benchmarks).

Why MKL: at B = 32 on one thread the products are the floor of every scheme's cost, and MKL
runs them up to twice as fast as OpenBLAS 0.3.30 (benchmarks/blas_backends.py measures it).
Where MKL comes from, in this order:
- PyTorch's libtorch_cpu.so, which links MKL statically and exports sgemm_/dgemm_/sgemv_/dgemv_:
  the `torch` extra that CI installs, so CI needs no 221 MB wheel. It is loaded with ctypes,
  without importing torch. Its MKL threads through OpenMP; threads.py keeps it on one thread.
- else the `mkl` wheel's libmkl_rt (pip install mkl), switched to its sequential layer: one
  thread, no OpenMP runtime.
Never both in one process: libmkl_rt loads MKL's libraries into the global symbol scope, where
they take over the MKL internals of a libtorch_cpu.so loaded after them (seen: its version
string became the wheel's), and PyTorch, once there, would call its own MKL anyway.
BPTTBENCH_BLAS=auto (defaults.BLAS) takes MKL when either is there, else SciPy's BLAS.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.metadata
import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path

from bpttbench.defaults import BLAS as DEFAULT_BLAS
from bpttbench.errors import ConfigError

ENV = "BPTTBENCH_BLAS"
CHOICES = ("auto", "openblas", "mkl")
TABLE_SYMBOL = "bpttbench_blas"
# kernels/blas.py compiles this order into numba code (so the kernels' cache digest covers this file)
SLOTS = ("sgemm", "dgemm", "sgemv", "dgemv")
_LP64, _SEQUENTIAL = 0, 1  # MKL_INTERFACE_LP64, MKL_THREADING_SEQUENTIAL


@dataclass(frozen=True, eq=False)
class Backend:
    """One BLAS: its name (openblas or mkl), where it came from, and its functions' addresses."""

    name: str
    source: str  # "scipy", "mkl wheel" or "torch"
    library: str
    version: str
    addresses: tuple[int, ...]  # in SLOTS order
    set_local_threads: object = None  # MKL's mkl_set_num_threads_local (threads.py)
    max_threads: object = None  # MKL's mkl_get_max_threads: the threads its next call may use

    def info(self) -> dict:
        """What a run's manifest and `bpttbench speed` record."""
        return {"name": self.name, "source": self.source, "library": self.library, "version": self.version}


_TABLE = (ctypes.c_void_p * len(SLOTS))()
_installed: Backend | None = None
_cache: dict[str, Backend | None] = {}


def install() -> Backend:
    """Register the table's symbol and fill it with the backend BPTTBENCH_BLAS names (once per process)."""
    global _installed
    if _installed is None:
        import llvmlite.binding as ll

        ll.add_symbol(TABLE_SYMBOL, ctypes.addressof(_TABLE))
        _fill(resolve(os.environ.get(ENV, "").strip() or DEFAULT_BLAS))
    return _installed


def current() -> Backend:
    """The backend the kernels call now."""
    return install()


def use_blas(backend: str | Backend) -> Backend:
    """Point the kernels at another backend (a BPTTBENCH_BLAS value or a Backend) from now on:
    compiled code reads the table at each call. Returns the one it replaces. Not while a kernel
    runs on another thread."""
    previous = install()
    _fill(resolve(backend) if isinstance(backend, str) else backend)
    return previous


@contextlib.contextmanager
def blas(backend: str | Backend):
    """The kernels call `backend` inside the block (see use_blas)."""
    previous = use_blas(backend)
    try:
        yield _installed
    finally:
        _fill(previous)


def _fill(backend: Backend) -> None:
    global _installed
    for i, address in enumerate(backend.addresses):
        _TABLE[i] = address
    _installed = backend


def resolve(name: str) -> Backend:
    """The backend for a BPTTBENCH_BLAS value; ConfigError naming the fix if it is unknown or missing."""
    if name not in CHOICES:
        raise ConfigError(f"{ENV}={name!r} is not a BLAS backend; set it to one of {', '.join(CHOICES)}, or unset it")
    if name != "openblas":
        mkl = find_mkl()
        if mkl is not None:
            return mkl
        if name == "mkl":
            raise ConfigError(f"{ENV}=mkl but no MKL was found (neither the mkl wheel's libmkl_rt nor PyTorch's "
                              f"libtorch_cpu.so); pip install mkl or torch, or set {ENV}=openblas")
    return scipy_blas()


def scipy_blas() -> Backend:
    """SciPy's BLAS, the one Numba's np.dot calls (OpenBLAS in SciPy's wheels)."""
    if "scipy" not in _cache:
        import scipy
        import scipy.linalg.cython_blas as cython_blas

        get_name = ctypes.pythonapi.PyCapsule_GetName
        get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
        get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
        get_pointer.restype, get_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
        capsules = [cython_blas.__pyx_capi__[slot] for slot in SLOTS]
        addresses = tuple(get_pointer(c, get_name(c)) for c in capsules)
        try:
            built = scipy.show_config(mode="dicts")["Build Dependencies"]["blas"]
            version = f"{built.get('name', '?')} {built.get('version', '?')}"
        except Exception:  # an unusual SciPy build: the version is only informative
            version = "unknown"
        _cache["scipy"] = Backend("openblas", "scipy", cython_blas.__file__, version, addresses)
    return _cache["scipy"]


def find_mkl() -> Backend | None:
    """MKL from PyTorch's libtorch_cpu.so, else from the mkl wheel; None if neither is installed."""
    if "mkl" not in _cache:
        _cache["mkl"] = _load_mkl(_torch_library(), "torch") or _load_mkl(_mkl_wheel_library(), "mkl wheel")
    return _cache["mkl"]


def mkl_from(source: str) -> Backend | None:
    """MKL from one source, "torch" or "mkl wheel" (benchmarks compare them, one per process)."""
    return _load_mkl(_torch_library() if source == "torch" else _mkl_wheel_library(), source)


def _mkl_wheel_library() -> Path | None:
    try:
        files = importlib.metadata.files("mkl") or []
    except importlib.metadata.PackageNotFoundError:
        return None
    found = sorted(Path(f.locate()).resolve() for f in files if f.name.startswith("libmkl_rt.so"))
    return found[-1] if found else None


def _torch_library() -> Path | None:
    """torch/lib/libtorch_cpu.so, found without importing torch (a second or more)."""
    try:
        spec = importlib.util.find_spec("torch")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    path = Path(spec.origin).parent / "lib" / "libtorch_cpu.so"
    return path if path.is_file() else None


def _load_mkl(path: Path | None, source: str) -> Backend | None:
    if path is None:
        return None
    try:
        lib = ctypes.CDLL(str(path))
        functions = [getattr(lib, f"{slot}_") for slot in SLOTS]
        set_local, max_threads = lib.MKL_Set_Num_Threads_Local, lib.MKL_Get_Max_Threads  # C names (lower case: Fortran)
    except (OSError, AttributeError):  # not loadable here, or a build without MKL: not an MKL
        return None
    set_local.restype, set_local.argtypes = ctypes.c_int, [ctypes.c_int]
    max_threads.restype, max_threads.argtypes = ctypes.c_int, []
    if source == "mkl wheel":
        # Before MKL's first call: 32-bit integers (the kernels pass LP64 ones, whatever
        # MKL_INTERFACE_LAYER says), and the sequential layer, which never starts a thread (a
        # no-op if an earlier user of this libmkl_rt chose one: threads.py then limits it).
        lib.MKL_Set_Interface_Layer.argtypes = lib.MKL_Set_Threading_Layer.argtypes = [ctypes.c_int]
        lib.MKL_Set_Interface_Layer(_LP64)
        lib.MKL_Set_Threading_Layer(_SEQUENTIAL)
    addresses = tuple(ctypes.cast(f, ctypes.c_void_p).value for f in functions)
    return Backend("mkl", source, str(path), _mkl_version(lib), addresses, set_local, max_threads)


def _mkl_version(lib) -> str:
    buffer = ctypes.create_string_buffer(256)
    try:
        lib.MKL_Get_Version_String(buffer, ctypes.c_int(len(buffer)))
    except AttributeError:
        return "unknown"
    text = buffer.value.decode(errors="replace").strip()  # "Intel(R) oneAPI ... Version 2026.2-Product Build 2026..."
    version = re.search(r"Version (\S+?)(?:-Product)? Build (\d+)", text)
    return f"oneMKL {version[1]} (build {version[2]})" if version else text

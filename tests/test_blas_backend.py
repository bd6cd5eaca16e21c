"""The BLAS the kernels call (bpttbench/kernels/blas_backend.py): kernels/blas.py's products on every
backend against NumPy, the kernels under MKL against OpenBLAS, the selection and its errors."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from bpttbench.kernels import blas_backend
from bpttbench.kernels.blas_backend import blas, current, find_mkl, resolve, scipy_blas
from bpttbench.config import CHUNK_SCHEMES, TrainConfig
from bpttbench.errors import ConfigError
from bpttbench.kernels.blas import dot, gemm_tn
from bpttbench.kernels.evaluate import evaluate_streams, stream_plan, stream_scratch
from bpttbench.model import init_theta
from bpttbench.schemes import make_scheme
from bpttbench.kernels.threads import single_threaded_blas

from conftest import synthetic_ids

# One MKL per process (blas_backend.py says why): the one auto takes
BACKENDS = {"openblas": scipy_blas(), **({"mkl": find_mkl()} if find_mkl() else {})}
MKL = [label for label in BACKENDS if label != "openblas"]
needs_mkl = pytest.mark.skipif(not MKL, reason="no MKL here (neither the mkl wheel nor torch)")
# MKL against OpenBLAS: the same products, summed in another order
TOL = {"float64": 1e-12, "float32": 1e-5}


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30)


def _operand(rng, shape, dtype, layout):
    """A C-contiguous array of `shape`, or (layout F) the transposed view of a C-contiguous one."""
    if layout == "F":
        return np.ascontiguousarray(rng.normal(size=shape[::-1]).astype(dtype)).T
    return rng.normal(size=shape).astype(dtype)


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("m,k,n", [(7, 5, 9), (1, 5, 9), (7, 5, 1), (1, 5, 1), (7, 0, 3)])
@pytest.mark.parametrize("layouts", ["CC", "CF", "FC", "FF"])
def test_dot_is_numpys_product_on_every_backend(backend, dtype, m, k, n, layouts):
    rng = np.random.default_rng(m * 100 + k * 10 + n)
    a, b = _operand(rng, (m, k), dtype, layouts[0]), _operand(rng, (k, n), dtype, layouts[1])
    out = np.full((m, n), np.nan, dtype)
    with blas(BACKENDS[backend]):
        dot(a, b, out)
    np.testing.assert_allclose(out, a.astype(np.float64) @ b, rtol=1e-5 if dtype == "float32" else 1e-12, atol=1e-5)


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_dot_of_a_matrix_and_a_vector_and_gemm_tn(backend):
    rng = np.random.default_rng(1)
    A, v, w = rng.normal(size=(6, 4)), rng.normal(size=4), rng.normal(size=6)
    out_mv, out_vm = np.zeros(6), np.zeros(4)
    X, Y, C = rng.normal(size=(7, 12)), rng.normal(size=(7, 5)), rng.normal(size=(12, 5))
    expected = 0.5 * C - 0.25 * X.T @ Y
    with blas(BACKENDS[backend]):
        dot(A, v, out_mv)
        dot(w, A, out_vm)
        gemm_tn(-0.25, X, Y, 0.5, C)
    np.testing.assert_allclose(out_mv, A @ v, rtol=1e-12)
    np.testing.assert_allclose(out_vm, w @ A, rtol=1e-12)
    np.testing.assert_allclose(C, expected, rtol=1e-12)


def _run_scheme(name, dtype, backend, batch, steps):
    V, H = 11, 16
    k1 = 4 if name in CHUNK_SCHEMES else 1
    cfg = TrainConfig(scheme=name, k1=k1, k2=4, hidden=H, batch=batch, optimizer="sgd", lr=0.1, clip=0.0,
                      dtype=dtype, seed=2, budget_steps=1)
    with blas(backend):
        scheme = make_scheme(cfg, init_theta(V, H, 2, dtype), V, synthetic_ids(V, 3000, seed=4))
        losses = np.zeros(steps * k1)
        assert scheme.run(steps * k1, losses) == steps * k1
        val = synthetic_ids(V, 600, seed=5)
        starts, lengths, burn_in = stream_plan(val.size, max_streams=8, burn_in=10, min_scored=20)
        total, _ = evaluate_streams(scheme.theta, V, H, val, starts, lengths, burn_in,
                                    stream_scratch(starts.size, H, V, dtype))
    return losses, scheme.theta, total


@needs_mkl
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name,batch", [("single", 32), ("chunked", 32), ("sliding", 32), ("stored", 3),
                                        ("single", 1), ("uoro", 2), ("rtrl", 1), ("adaptive", 2)])
def test_kernels_under_mkl_are_openblass(dtype, name, batch):
    """A few updates of each scheme (and the validation kernel after them) give OpenBLAS's results."""
    steps = 3
    base = _run_scheme(name, dtype, BACKENDS["openblas"], batch, steps)
    for label in MKL:
        other = _run_scheme(name, dtype, BACKENDS[label], batch, steps)
        for got, want in zip(other, base):
            assert rel_err(got, want) < TOL[dtype], (label, name)


def test_selection_and_its_errors(monkeypatch):
    assert resolve("openblas").name == "openblas"
    with pytest.raises(ConfigError, match=r"BPTTBENCH_BLAS='fast' is not a BLAS backend; set it to one of auto, "
                                          r"openblas, mkl"):
        resolve("fast")
    monkeypatch.setattr(blas_backend, "find_mkl", lambda: None)
    assert resolve("auto").name == "openblas"  # auto: MKL if there is one, else OpenBLAS
    with pytest.raises(ConfigError, match=r"no MKL was found .*pip install mkl or torch, or set BPTTBENCH_BLAS=openblas"):
        resolve("mkl")


@needs_mkl
def test_auto_takes_mkl_and_the_manifest_records_the_backend():
    from bpttbench.training.runner import machine_info

    assert resolve("auto").name == resolve("mkl").name == "mkl"
    assert machine_info()["blas"] == current().info() and current().info()["name"] in ("openblas", "mkl")
    with blas("openblas"):
        assert machine_info()["blas"]["name"] == "openblas"


@needs_mkl
def test_mkl_runs_on_one_thread_while_training():
    backend = resolve("mkl")
    with blas(backend), single_threaded_blas():
        assert backend.max_threads() == 1


def _python(code, **env):
    return subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True)


@pytest.mark.slow
def test_a_bad_value_is_a_one_line_error_from_the_cli():
    done = _python("from bpttbench.cli import main; main(['speed', '--scheme', 'single'])", BPTTBENCH_BLAS="fastest")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: BPTTBENCH_BLAS='fastest' is not a BLAS backend; set it to one of auto, openblas, mkl, or unset it"]


@pytest.mark.slow
@needs_mkl
def test_kernels_compiled_under_one_backend_load_from_cache_under_the_other(tmp_path):
    """The table's symbol, not an address, is in the compiled code: Numba's cache holds across backends."""
    code = ("import numpy as np; from bpttbench.kernels.blas import gemm_tn; from bpttbench.kernels.blas_backend import current\n"
            "X, Y, C = np.ones((3, 4)), np.ones((3, 2)), np.zeros((4, 2)); gemm_tn(1.0, X, Y, 0.0, C)\n"
            "print(current().name, gemm_tn.stats.cache_hits.most_common(1)[0][1] if gemm_tn.stats.cache_hits else 0,"
            " C.sum())")
    first = _python(code, NUMBA_CACHE_DIR=str(tmp_path), BPTTBENCH_BLAS="openblas")
    second = _python(code, NUMBA_CACHE_DIR=str(tmp_path), BPTTBENCH_BLAS="mkl")
    assert first.stdout.split() == ["openblas", "0", "24.0"], first.stderr
    assert second.stdout.split() == ["mkl", "1", "24.0"], second.stderr

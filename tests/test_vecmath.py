"""The vectorisable exp/sigmoid/tanh of kernels/vecmath.py against NumPy, over the whole range; the
subnormal flush the window backward runs under."""

from __future__ import annotations

import platform

import numpy as np
import pytest
from numba import njit

from bpttbench.kernels.vecmath import flush_subnormals, restore_subnormals, vexp, vsigmoid, vtanh


@njit
def _map_exp(x, out):
    for i in range(x.size):
        out[i] = vexp(x[i])


@njit
def _map_sigmoid(x, out):
    for i in range(x.size):
        out[i] = vsigmoid(x[i])


@njit
def _map_tanh(x, out):
    for i in range(x.size):
        out[i] = vtanh(x[i])


def _exact_sigmoid(x):
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


CASES = [(_map_exp, np.exp, 2), (_map_sigmoid, _exact_sigmoid, 3), (_map_tanh, np.tanh, 3)]
LIMITS = {"float32": (-87.3, 88.3), "float64": (-708.0, 709.0)}  # exp flushes below, overflows above


def ulps(got, exact, dtype):
    exact_t = exact.astype(dtype)
    keep = np.abs(exact_t) >= np.finfo(dtype).tiny
    return np.abs(got[keep].astype(np.float64) - exact[keep]) / np.spacing(np.abs(exact_t[keep])).astype(np.float64)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kernel,exact,max_ulps", CASES)
def test_within_a_few_ulps_of_numpy(kernel, exact, max_ulps, dtype):
    lo, hi = LIMITS[dtype]
    rng = np.random.default_rng(0)
    x = np.concatenate([np.linspace(lo, hi, 200001), rng.normal(size=20000), rng.normal(size=20000) * 1e-4])
    x = x.astype(dtype)
    got = np.empty_like(x)
    kernel(x, got)
    assert got.dtype == np.dtype(dtype)
    assert ulps(got, exact(x.astype(np.float64)), dtype).max() <= max_ulps


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kernel,exact,max_ulps", CASES)
def test_special_values_match_numpy(kernel, exact, max_ulps, dtype):
    x = np.array([0.0, np.inf, -np.inf, np.nan, 1e4, -1e4, 1e-30, -1e-30, 30.0, -30.0], dtype)
    got = np.empty_like(x)
    kernel(x, got)
    with np.errstate(over="ignore"):
        expected = exact(x)
    np.testing.assert_allclose(got, expected, rtol=4 * np.finfo(dtype).eps, atol=0)


@njit
def _products(a, b, out):
    for i in range(a.size):
        out[i] = a[i] * b[i]


@njit
def _products_flushed_then_not(a, b, flushed, plain):
    control = flush_subnormals()
    _products(a, b, flushed)
    restore_subnormals(control)
    _products(a, b, plain)


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="the flush is x86's MXCSR")
@pytest.mark.parametrize("dtype,tiny_factor", [("float32", 1e-20), ("float64", 1e-160)])
def test_flush_subnormals_zeroes_them_until_restored(dtype, tiny_factor):
    a = np.array([tiny_factor, tiny_factor, 1.5, -tiny_factor], dtype)  # squares: subnormal, subnormal, 2.25, subnormal
    subnormal = np.array([True, True, False, True])
    flushed, plain = np.zeros_like(a), np.zeros_like(a)
    _products_flushed_then_not(a, a, flushed, plain)
    np.testing.assert_array_equal(plain, a * a)  # restored: gradual underflow again
    assert np.all(plain[subnormal] != 0) and np.all(flushed[subnormal] == 0)
    assert flushed[2] == plain[2] == np.asarray(2.25, dtype)  # normal numbers are untouched

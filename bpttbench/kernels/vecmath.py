"""exp, expm1, sigmoid and tanh written so that LLVM vectorises loops that call them.

Numba lowers np.exp/np.tanh to scalar libm calls (no vector math library without Intel's
SVML), which left the LSTM's gate nonlinearities at about 6 ns each, more than the W_hh
product of a step at H = 128. These versions are branch-free (range reduction, a Taylor
polynomial, the power of two built from its bits), keep the argument's precision (float32
stays float32: no float64 literal in the arithmetic) and agree with NumPy to a few units in
the last place; tests/test_kernels.py checks them over the whole range, including inf and NaN.

exp(x) = 2^n * P(r), n = round(x / ln 2), r = x - n ln 2 (Cody-Waite: ln 2 in two parts so
that n ln2_hi is exact), |r| <= ln(2)/2, P the Taylor series of degree 7 (float32) or 13
(float64), whose truncation error is below half an ulp there. expm1 uses the same reduction
with P(r) - 1 summed without its constant term, so it keeps full relative precision near 0,
which tanh(x) = expm1(2x) / (expm1(2x) + 2) needs for small x.

References:
- W. J. Cody and W. Waite, "Software Manual for the Elementary Functions", 1980 (the
  two-constant argument reduction); Cephes' expf constants for float32.
"""

from __future__ import annotations

import platform

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

# error_model="numpy": IEEE division (no zero-division branch), which LLVM can vectorise.
JIT = dict(cache=True, nogil=True, error_model="numpy")
# The elementary functions also let LLVM fuse a * b + c into one FMA (one rounding instead of
# two: never less accurate); their polynomials are chains of them.
ELEMENTARY = dict(JIT, fastmath={"contract"})
# Kernels copy arrays with loops, not `a[:] = b` or `a.max()`: each of those compiles Numba's
# error-message formatting (shape strings, `str.join`), several seconds of a first, cold run.


@intrinsic
def _bits_to_float(typingctx, bits):
    """Reinterpret an int32 (int64) as the float32 (float64) with those bits."""
    if bits == types.int32:
        result = types.float32
    elif bits == types.int64:
        result = types.float64
    else:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], context.get_value_type(sig.return_type))

    return result(bits), codegen


# ---- float32 ------------------------------------------------------------------------------
F32 = np.float32
_LOG2E_32, _LN2_HI_32, _LN2_LO_32 = F32(1.44269504088896341), F32(0.693359375), F32(-2.12194440e-4)
_HI_32, _LO_32, _INF_32 = F32(88.3), F32(-87.3), F32(np.inf)  # exp(88.3) < float32 max; 2^-126 is the smallest normal
_C32 = tuple(F32(1.0 / np.prod(np.arange(1, k + 1, dtype=np.float64))) for k in range(8))  # 1/k!


@njit(**ELEMENTARY)
def _reduce32(x):
    """(2^n, r) with x = n ln2 + r; n from the argument clamped into range, NaN read as 0."""
    xs = x
    xs = _LO_32 if xs < _LO_32 else xs
    xs = _HI_32 if xs > _HI_32 else xs
    xs = F32(0.0) if xs != xs else xs
    n = np.floor(xs * _LOG2E_32 + F32(0.5))
    r = (x - n * _LN2_HI_32) - n * _LN2_LO_32
    scale = _bits_to_float(np.int32((np.int64(n) + 127) << 23))  # numba widens int32 arithmetic
    return scale, r


@njit(**ELEMENTARY)
def _exp32(x):
    scale, r = _reduce32(x)
    c = _C32
    p = c[7]
    p = p * r + c[6]
    p = p * r + c[5]
    p = p * r + c[4]
    p = p * r + c[3]
    p = p * r + c[2]
    p = p * r + c[1]
    p = p * r + c[0]
    e = scale * p
    e = _INF_32 if x > _HI_32 else e
    e = F32(0.0) if x < _LO_32 else e
    return F32(e)


@njit(**ELEMENTARY)
def _expm1_32(x):
    """exp(x) - 1 for x in [-87, 88]: 2^n (P(r) - 1) + (2^n - 1), with P(r) - 1 = r (1 + r/2 + ...)."""
    scale, r = _reduce32(x)
    c = _C32
    q = c[7]
    q = q * r + c[6]
    q = q * r + c[5]
    q = q * r + c[4]
    q = q * r + c[3]
    q = q * r + c[2]
    q = q * r + c[1]
    q = q * r
    return F32(scale * q + (scale - F32(1.0)))


# ---- float64 ------------------------------------------------------------------------------
_LOG2E_64 = 1.4426950408889634
_LN2_HI_64, _LN2_LO_64 = 6.93147180369123816490e-01, 1.90821492927058770002e-10  # fdlibm
_HI_64, _LO_64 = 709.0, -708.0
_C64 = tuple(1.0 / float(np.prod(np.arange(1, k + 1, dtype=np.float64))) for k in range(14))


@njit(**ELEMENTARY)
def _reduce64(x):
    xs = x
    xs = _LO_64 if xs < _LO_64 else xs
    xs = _HI_64 if xs > _HI_64 else xs
    xs = 0.0 if xs != xs else xs
    n = np.floor(xs * _LOG2E_64 + 0.5)
    r = (x - n * _LN2_HI_64) - n * _LN2_LO_64
    scale = _bits_to_float((np.int64(n) + np.int64(1023)) << np.int64(52))
    return scale, r


@njit(**ELEMENTARY)
def _exp64(x):
    scale, r = _reduce64(x)
    c = _C64
    p = c[13]
    p = p * r + c[12]
    p = p * r + c[11]
    p = p * r + c[10]
    p = p * r + c[9]
    p = p * r + c[8]
    p = p * r + c[7]
    p = p * r + c[6]
    p = p * r + c[5]
    p = p * r + c[4]
    p = p * r + c[3]
    p = p * r + c[2]
    p = p * r + c[1]
    p = p * r + c[0]
    e = scale * p
    e = np.inf if x > _HI_64 else e
    e = 0.0 if x < _LO_64 else e
    return e


@njit(**ELEMENTARY)
def _expm1_64(x):
    scale, r = _reduce64(x)
    c = _C64
    q = c[13]
    q = q * r + c[12]
    q = q * r + c[11]
    q = q * r + c[10]
    q = q * r + c[9]
    q = q * r + c[8]
    q = q * r + c[7]
    q = q * r + c[6]
    q = q * r + c[5]
    q = q * r + c[4]
    q = q * r + c[3]
    q = q * r + c[2]
    q = q * r + c[1]
    q = q * r
    return scale * q + (scale - 1.0)


# ---- the public, dtype-generic functions ----------------------------------------------------
def vexp(x):
    """exp(x), vectorisable; float32 in, float32 arithmetic and result."""
    return np.exp(x)


def vsigmoid(x):
    """1 / (1 + exp(-x))."""
    return 1.0 / (1.0 + np.exp(-x))


def vtanh(x):
    """tanh(x) = sign(x) expm1(2|x|) / (expm1(2|x|) + 2), |x| clamped at 20 (where tanh is 1 in float64)."""
    return np.tanh(x)


@overload(vexp, jit_options=ELEMENTARY)
def _vexp(x):
    if x == types.float32:
        return lambda x: _exp32(x)
    if x == types.float64:
        return lambda x: _exp64(x)


@overload(vsigmoid, jit_options=ELEMENTARY)
def _vsigmoid(x):
    if x == types.float32:
        return lambda x: F32(1.0) / (F32(1.0) + _exp32(-x))
    if x == types.float64:
        return lambda x: 1.0 / (1.0 + _exp64(-x))


@overload(vtanh, jit_options=ELEMENTARY)
def _vtanh(x):
    if x == types.float32:
        def tanh32(x):
            a = np.abs(x)
            a = F32(20.0) if a > F32(20.0) else a
            e = _expm1_32(a + a)
            t = e / (e + F32(2.0))
            return -t if x < F32(0.0) else t

        return tanh32
    if x == types.float64:
        def tanh64(x):
            a = np.abs(x)
            a = 20.0 if a > 20.0 else a
            e = _expm1_64(a + a)
            t = e / (e + 2.0)
            return -t if x < 0.0 else t

        return tanh64


# ---- subnormals -------------------------------------------------------------------------------
# A gradient backpropagated through a long window decays geometrically; past about 100 steps its
# float32 values fall below 2^-126 into the subnormal range, where every x86 multiply or add
# that reads or writes one takes a microcode assist of about a hundred cycles: at k2 = 200 that
# made the backward pass 25 times slower than its products. Flushing them to zero (MXCSR's FTZ
# and DAZ bits) changes only values below 1.2e-38 (2.2e-308 in float64), far under any
# tolerance: the same choice XLA makes on its CPU threads.
_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")
MXCSR_FLUSH = 0x8040  # FTZ (bit 15): subnormal results become 0; DAZ (bit 6): subnormal inputs read as 0


def _mxcsr_call(builder, name, slot):
    fnty = ir.FunctionType(ir.VoidType(), [ir.IntType(8).as_pointer()])
    fn = cgutils.get_or_insert_function(builder.module, fnty, name)
    builder.call(fn, [builder.bitcast(slot, ir.IntType(8).as_pointer())])


@intrinsic
def _read_mxcsr(typingctx):
    """The SSE control and status register (x86; 0 elsewhere)."""
    def codegen(context, builder, signature, args):
        if not _X86:
            return ir.Constant(ir.IntType(64), 0)
        slot = cgutils.alloca_once(builder, ir.IntType(32))
        _mxcsr_call(builder, "llvm.x86.sse.stmxcsr", slot)
        return builder.zext(builder.load(slot), ir.IntType(64))

    return types.int64(), codegen


@intrinsic
def _write_mxcsr(typingctx, value):
    """Load value into the SSE control and status register (x86; a no-op elsewhere)."""
    if value != types.int64:
        return None

    def codegen(context, builder, signature, args):
        if _X86:
            slot = cgutils.alloca_once(builder, ir.IntType(32))
            builder.store(builder.trunc(args[0], ir.IntType(32)), slot)
            _mxcsr_call(builder, "llvm.x86.sse.ldmxcsr", slot)
        return context.get_dummy_value()

    return types.none(types.int64), codegen


@njit(**JIT)
def flush_subnormals():
    """Treat subnormals as zero on this thread from now on; returns the control word to give
    restore_subnormals (pair them, as a `with` would)."""
    old = _read_mxcsr()
    _write_mxcsr(old | MXCSR_FLUSH)
    return old


@njit(**JIT)
def restore_subnormals(old):
    _write_mxcsr(old)

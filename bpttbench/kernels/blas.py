"""Every BLAS product of the kernels, in one place: `dot` (np.dot's out= form) and `gemm_tn`.

Both call the function pointers of the table bpttbench/kernels/blas_backend.py fills (SciPy's OpenBLAS
or MKL, chosen by BPTTBENCH_BLAS): compiled code names the table's symbol, not an address, so
Numba's cache holds across processes and backends. Calls use BLAS's Fortran convention (every
argument by reference, column-major).

`dot(a, b, out)` makes the call Numba's np.dot(a, b, out) makes (xGEMV when a side is a vector,
else xGEMM, the same operand order), so its results are np.dot's under SciPy's BLAS. `gemm_tn`
adds alpha and beta: np.dot always calls xGEMM with alpha = 1, beta = 0, so a gradient would have
to be written out and then applied in a second pass over the weights; with beta = 1 and
alpha = -lr the same GEMM adds the SGD step straight into the weights (the update is fused into
the gradient GEMM, one of the speed targets).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic, overload

from bpttbench.kernels.blas_backend import SLOTS, TABLE_SYMBOL, install
from bpttbench.kernels.vecmath import JIT

# Before any kernel that calls the table is compiled or loaded from the cache (its code names the
# table's symbol): the table filled from BPTTBENCH_BLAS's backend (a bad value stops here).
install()

_CHAR, _INT = ir.IntType(8), ir.IntType(32)  # Fortran character and LP64 integer
_VOIDP = ir.IntType(8).as_pointer()
_NO_TRANSPOSE, _TRANSPOSE = ord("n"), ord("t")  # constants to JIT code: ord() there compiles string code
_FLOATS = (types.float32, types.float64)


def _blas_function(context, builder, routine, dtype, n_args):
    """The table's pointer to s<routine> or d<routine>, typed void(void*, ... n_args)."""
    slot = SLOTS.index(("s" if dtype == types.float32 else "d") + routine)
    table = context.get_c_value(builder, ir.ArrayType(_VOIDP, len(SLOTS)), TABLE_SYMBOL)
    pointer = builder.load(cgutils.gep_inbounds(builder, table, 0, slot))
    return builder.bitcast(pointer, ir.FunctionType(ir.VoidType(), [_VOIDP] * n_args).as_pointer())


def _by_reference(context, builder, dtype, signature, args, kinds):
    """Each argument as a pointer: 'c' a character, 'i' an integer, 'f' a scalar of dtype, 'a' an array's data."""
    out = []
    for kind, ty, value in zip(kinds, signature.args, args):
        if kind == "a":
            pointer = context.make_array(ty)(context, builder, value).data
        else:
            llty = {"c": _CHAR, "i": _INT, "f": context.get_value_type(dtype)}[kind]
            if kind == "f":
                value = context.cast(builder, value, ty, dtype)
            else:
                value = builder.trunc(context.cast(builder, value, ty, types.int64), llty)
            pointer = cgutils.alloca_once_value(builder, value)
        out.append(builder.bitcast(pointer, _VOIDP))
    return out


def _check_arrays(dtype, *arrays):
    return dtype in _FLOATS and all(isinstance(a, types.Array) and a.dtype == dtype for a in arrays)


@intrinsic
def _xxgemm(typingctx, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    """Column-major C(m,n) = alpha op(A) op(B) + beta C; trans* are ord('n') or ord('t')."""
    if not (isinstance(c, types.Array) and _check_arrays(c.dtype, a, b, c)):
        return None

    def codegen(context, builder, signature, args):
        fn = _blas_function(context, builder, "gemm", c.dtype, 13)
        builder.call(fn, _by_reference(context, builder, c.dtype, signature, args, "cciiifaiaifai"))
        return context.get_dummy_value()

    return types.none(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc), codegen


@intrinsic
def _xxgemv(typingctx, trans, m, n, alpha, a, lda, x, incx, beta, y, incy):
    """Column-major y = alpha op(A) x + beta y, A (m, n)."""
    if not (isinstance(y, types.Array) and _check_arrays(y.dtype, a, x, y)):
        return None

    def codegen(context, builder, signature, args):
        fn = _blas_function(context, builder, "gemv", y.dtype, 11)
        builder.call(fn, _by_reference(context, builder, y.dtype, signature, args, "ciifaiaifai"))
        return context.get_dummy_value()

    return types.none(trans, m, n, alpha, a, lda, x, incx, beta, y, incy), codegen


def dot(a, b, out):
    """out = a @ b, as np.dot(a, b, out): 2-D x 2-D, 2-D x 1-D or 1-D x 2-D; a and b C- or
    F-contiguous (a transposed view is F), out C-contiguous; float32 or float64."""
    return np.dot(a, b, out)


@overload(dot, jit_options=JIT)
def _dot(a, b, out):
    if not (isinstance(a, types.Array) and _check_arrays(a.dtype, a, b, out)):
        return None
    if a.layout not in "CF" or b.layout not in "CF" or out.layout != "C":
        raise TypingError(f"dot needs contiguous operands and a C-contiguous out, got {a}, {b}, {out}")
    # A row-major product is the column-major product of the transposes: out^T = b^T a^T. A
    # C-contiguous (r, s) array is a column-major (s, r) one: its transpose at no cost.
    b_trans = _NO_TRANSPOSE if b.layout == "C" else _TRANSPOSE
    a_trans = _NO_TRANSPOSE if a.layout == "C" else _TRANSPOSE
    a_gemv = _TRANSPOSE if a.layout == "C" else _NO_TRANSPOSE  # for a matrix a times a vector
    if (a.ndim, b.ndim, out.ndim) == (2, 2, 2):
        def impl(a, b, out):
            m, k = a.shape
            n = b.shape[1]
            if b.shape[0] != k or out.shape[0] != m or out.shape[1] != n:
                raise ValueError("dot: shapes do not match")
            _product(a, b, out, m, n, k, a_trans, b_trans, a_gemv)
        return impl
    if (a.ndim, b.ndim, out.ndim) == (2, 1, 1):
        def impl(a, b, out):
            m, k = a.shape
            if b.shape[0] != k or out.shape[0] != m:
                raise ValueError("dot: shapes do not match")
            _product(a, b, out, m, 1, k, a_trans, b_trans, a_gemv)
        return impl
    if (a.ndim, b.ndim, out.ndim) == (1, 2, 1):
        def impl(a, b, out):
            k, n = b.shape
            if a.shape[0] != k or out.shape[0] != n:
                raise ValueError("dot: shapes do not match")
            _product(a, b, out, 1, n, k, a_trans, b_trans, a_gemv)
        return impl
    raise TypingError(f"dot: no product of a {a.ndim}-D and a {b.ndim}-D array into a {out.ndim}-D one")


@njit(**JIT)
def _product(a, b, out, m, n, k, a_trans, b_trans, a_gemv):
    """out (m, n) = a (m, k) b (k, n), any of them possibly a vector; np.dot's choice of call."""
    if m == 0 or n == 0:
        return
    if k == 0:
        flat = out.reshape(out.size)
        for i in range(flat.size):
            flat[i] = 0.0
        return
    if n == 1:  # a matrix times a vector; a C-contiguous a is the column-major (k, m) a^T
        if a_gemv == _TRANSPOSE:
            _xxgemv(_TRANSPOSE, k, m, 1.0, a, k, b, 1, 0.0, out, 1)
        else:
            _xxgemv(_NO_TRANSPOSE, m, k, 1.0, a, m, b, 1, 0.0, out, 1)
    elif m == 1:  # a vector times a matrix: out = b^T a
        if b_trans == _NO_TRANSPOSE:
            _xxgemv(_NO_TRANSPOSE, n, k, 1.0, b, n, a, 1, 0.0, out, 1)
        else:
            _xxgemv(_TRANSPOSE, k, n, 1.0, b, k, a, 1, 0.0, out, 1)
    else:
        _xxgemm(b_trans, a_trans, n, m, k, 1.0, b, n if b_trans == _NO_TRANSPOSE else k, a,
                k if a_trans == _NO_TRANSPOSE else m, 0.0, out, n)


@njit(**JIT)
def gemm_tn(alpha, X, Y, beta, C):
    """C = alpha * X.T @ Y + beta * C in place; X (k, m), Y (k, n), C (m, n), all C-contiguous.

    Row-major C is column-major C^T = alpha Y^T X + beta C^T: the same call dot(X.T, Y, C) makes,
    which is what makes the fused and unfused products agree.
    """
    k, m = X.shape
    n = Y.shape[1]
    if Y.shape[0] != k or C.shape[0] != m or C.shape[1] != n:
        raise ValueError("gemm_tn: shapes do not match")
    _xxgemm(_NO_TRANSPOSE, _TRANSPOSE, n, m, k, alpha, Y, n, X, m, beta, C, n)

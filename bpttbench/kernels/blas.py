"""A BLAS GEMM with alpha and beta from JIT code: C = alpha X^T Y + beta C, accumulating in place.

Numba's np.dot(A, B, out) always calls xGEMM with alpha = 1, beta = 0, so a gradient has to be
written out and then applied in a second pass over the weights. With beta = 1 and alpha = -lr
the same GEMM adds the SGD step straight into the weights: the update is fused into the
gradient GEMM, one of the speed targets. The call goes through the `numba_xxgemm` helper that np.dot itself uses (SciPy's
BLAS underneath), with the same operand order, so the products are computed by the same kernel.
"""

from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.linalg import ensure_blas

from bpttbench.kernels.vecmath import JIT

_CHAR, _INT = ir.IntType(8), ir.IntType(64)
_VOIDP = ir.IntType(8).as_pointer()
_NO_TRANSPOSE, _TRANSPOSE = ord("n"), ord("t")  # constants to JIT code: ord() there compiles string code


@intrinsic
def _xxgemm(typingctx, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    """Column-major C(m,n) = alpha op(A) op(B) + beta C; trans* are ord('n') or ord('t')."""
    ensure_blas()
    if not (isinstance(c, types.Array) and c.dtype in (types.float32, types.float64)):
        return None
    if a.dtype != c.dtype or b.dtype != c.dtype or not (a.layout == b.layout == c.layout == "C"):
        return None
    sig = types.int32(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
    kind = ord("s") if c.dtype == types.float32 else ord("d")

    def codegen(context, builder, signature, args):
        transa_v, transb_v, m_v, n_v, k_v, alpha_v, a_v, lda_v, b_v, ldb_v, beta_v, c_v, ldc_v = args
        types_ = signature.args
        fnty = ir.FunctionType(ir.IntType(32), [_CHAR, _CHAR, _CHAR, _INT, _INT, _INT, _VOIDP, _VOIDP, _INT,
                                                _VOIDP, _INT, _VOIDP, _VOIDP, _INT])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "numba_xxgemm")
        dtype = context.get_value_type(c.dtype)

        def scalar_slot(value, ty):
            slot = cgutils.alloca_once(builder, dtype)
            builder.store(context.cast(builder, value, ty, c.dtype), slot)
            return builder.bitcast(slot, _VOIDP)

        def data(value, ty):
            return builder.bitcast(context.make_array(ty)(context, builder, value).data, _VOIDP)

        def as_int(value, ty, llty):
            return context.cast(builder, value, ty, types.int64) if llty is _INT else builder.trunc(
                context.cast(builder, value, ty, types.int64), llty)

        return builder.call(fn, (
            ir.Constant(_CHAR, kind), as_int(transa_v, types_[0], _CHAR), as_int(transb_v, types_[1], _CHAR),
            as_int(m_v, types_[2], _INT), as_int(n_v, types_[3], _INT), as_int(k_v, types_[4], _INT),
            scalar_slot(alpha_v, types_[5]), data(a_v, types_[6]), as_int(lda_v, types_[7], _INT),
            data(b_v, types_[8]), as_int(ldb_v, types_[9], _INT), scalar_slot(beta_v, types_[10]),
            data(c_v, types_[11]), as_int(ldc_v, types_[12], _INT),
        ))

    return sig, codegen


@njit(**JIT)
def gemm_tn(alpha, X, Y, beta, C):
    """C = alpha * X.T @ Y + beta * C in place; X (k, m), Y (k, n), C (m, n), all C-contiguous.

    Row-major C is column-major C^T = alpha Y^T X + beta C^T: the same call numba makes for
    np.dot(X.T, Y, C), which is what makes the fused and unfused products agree.
    """
    k, m = X.shape
    n = Y.shape[1]
    if Y.shape[0] != k or C.shape[0] != m or C.shape[1] != n:
        raise ValueError("gemm_tn: shapes do not match")
    status = _xxgemm(_NO_TRANSPOSE, _TRANSPOSE, n, m, k, alpha, Y, n, X, m, beta, C, n)
    if status != 0:
        raise RuntimeError("BLAS xGEMM failed")

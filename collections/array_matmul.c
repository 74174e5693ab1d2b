/*
** collections/array_matmul.c: the block product behind cask_array_matmul.
** One task per result block (i, j) takes the blocks A(i, 0..K) and
** B(0..K, j) and sums their products with one BLAS call each (dgemm or
** sgemm, beta 1 after the first). BLAS is told to use one thread, the
** first time a block product runs: the scheduler's workers are the
** parallelism, and a BLAS pool inside each would fight them for cores.
*/
#include <cblas.h>
#include <limits.h>
#include <pthread.h>
#include <string.h>

#include "array.h"

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;

static void blas_one_thread(void)
{
    openblas_set_num_threads(1);
}

/* cask.array.matmul(K, A(i,0..K)..., B(0..K,j)...): one result block. */
static int k_matmul(const cask_value_t *args, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    if (n < 3 || args[0].type != CASK_INT64 || args[0].u.i < 1 ||
        (uint64_t)args[0].u.i != (n - 1) / 2 || n % 2 == 0)
        return cask_kernel_fail(ctx, "arguments: K, then K blocks of A and K blocks of B");
    size_t K = (size_t)args[0].u.i;
    cask_nd_t a0, b0;
    if (cask_value_nd(&args[1], &a0) || cask_value_nd(&args[1 + K], &b0) || a0.ndim != 2 ||
        b0.ndim != 2 || (a0.dtype != CASK_F64 && a0.dtype != CASK_F32))
        return cask_kernel_fail(ctx, "blocks must be 2-d float64 or float32");
    int64_t m = a0.shape[0], nn = b0.shape[1];
    int64_t shape[2] = { m, nn };
    int rc = cask__ar_block_fits(2, shape, ctx);
    if (!rc)
        rc = cask_value_ndarray(a0.dtype, 2, shape, out, NULL);
    if (rc)
        return rc;
    cask_nd_t c;
    cask_value_nd(out, &c);
    memset(c.data, 0, c.size * cask_dtype_size(c.dtype));
    pthread_once(&blas_once, blas_one_thread);
    for (size_t l = 0; l < K; l++) {
        cask_nd_t a, b;
        if (cask_value_nd(&args[1 + l], &a) || cask_value_nd(&args[1 + K + l], &b) ||
            a.ndim != 2 || b.ndim != 2 || a.dtype != c.dtype || b.dtype != c.dtype ||
            a.shape[0] != m || b.shape[1] != nn || a.shape[1] != b.shape[0])
            return cask_kernel_fail(ctx, "block pair %zu does not multiply into %lld x %lld",
                                    l, (long long)m, (long long)nn);
        int64_t k = a.shape[1];
        if (!m || !nn || !k)
            continue;
        if (m > INT_MAX || nn > INT_MAX || k > INT_MAX) /* BLAS takes int extents */
            return cask_kernel_fail(ctx, "block pair %zu: extents over %d", l, INT_MAX);
        if (c.dtype == CASK_F64)
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)nn, (int)k, 1.0,
                        a.data, (int)k, b.data, (int)nn, 1.0, c.data, (int)nn);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)nn, (int)k, 1.0f,
                        a.data, (int)k, b.data, (int)nn, 1.0f, c.data, (int)nn);
    }
    return 0;
}

static double cost_matmul(const cask_value_t *args, size_t n)
{
    (void)args;
    return 1e-3 * (double)n; /* refined by nothing yet: a millisecond a block pair */
}

void cask__ar_register_matmul(void)
{
    static const cask_kernel_opts_t o = { .cost_fn = cost_matmul };
    cask__kernel_register("cask.array.matmul", k_matmul, &o, NULL);
}

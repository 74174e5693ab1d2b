/*
** collections/array_matmul.c: matrix products: cask_array_matmul, and the
** kernel behind it.
** One task per result block (i, j) takes the blocks A(i, 0..K) and
** B(0..K, j) and sums their products with one BLAS call each (dgemm or
** sgemm, beta 1 after the first; int64 blocks by a plain loop that wraps
** as NumPy's). A 1-d operand is a row (A) or a column (B) of blocks. BLAS is told to use one thread, the
** first time a block product runs: the scheduler's workers are the
** parallelism, and a BLAS pool inside each would fight them for cores.
*/
#include <cblas.h>
#include <limits.h>
#include <pthread.h>
#include <string.h>

#include "array.h"

/* x as it enters the product: in dtype dt, with inner chunk `inner` along
** axis ax, its blocks made (a new reference, or NULL with err filled). */
static cask_array_t *operand(cask_array_t *x, cask_dtype_t dt, int ax, int64_t inner,
                             cask_error_t *err)
{
    cask_array_t *y = x->dtype == dt ? (cask_array_incref(x), x) : cask_array_astype(x, dt, err);
    if (y && y->chunk[ax] != inner) { /* chunks that differ line up, as dask's unify_chunks */
        int64_t want[2] = { y->chunk[0], y->chunk[y->ndim - 1] };
        want[ax] = inner;
        cask_array_t *r = cask_array_rechunk(y, want, err);
        cask_array_decref(y);
        y = r;
    }
    if (y && cask__ar_materialize(y, err)) {
        cask_array_decref(y);
        y = NULL;
    }
    return y;
}

cask_array_t *cask_array_matmul(cask_array_t *a, cask_array_t *b, cask_error_t *err)
{
    if (!a || !b)
        return cask__err(err, CASK_EINVAL, NULL, NULL,
                         "an operand is NULL (an earlier array call failed)"), NULL;
    char s1[96], s2[96];
    if (a->g != b->g)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "operands belong to different graphs"),
               NULL;
    int ia = a->ndim - 1; /* a's inner axis; b's is 0 */
    if (a->ndim < 1 || a->ndim > 2 || b->ndim < 1 || b->ndim > 2 || a->shape[ia] != b->shape[0])
        return cask__err(err, CASK_EINVAL, NULL, NULL, "matmul of shapes %s and %s%s",
                         cask__ar_shape_str(s1, sizeof s1, a->ndim, a->shape),
                         cask__ar_shape_str(s2, sizeof s2, b->ndim, b->shape),
                         a->ndim < 1 || a->ndim > 2 || b->ndim < 1 || b->ndim > 2
                             ? " (1-d and 2-d operands only)" : ""), NULL;
    /* NumPy's result type; two bools multiply as int64, then nonzero is true */
    cask_dtype_t rt = cask__ar_promote(a->dtype, b->dtype);
    cask_dtype_t dt = rt == CASK_BOOL ? CASK_I64 : rt;
    int64_t inner = a->chunk[ia] > b->chunk[0] ? a->chunk[ia] : b->chunk[0];
    cask_array_t *fa = NULL, *fb = NULL, *res = NULL;
    /* the result: a's rows (unless a is 1-d), b's columns (unless b is 1-d) */
    int nd = 0;
    int64_t shape[2], chunk[2];
    if (a->ndim == 2)
        shape[nd] = a->shape[0], chunk[nd++] = a->chunk[0];
    if (b->ndim == 2)
        shape[nd] = b->shape[1], chunk[nd++] = b->chunk[1];
    if (!(fa = operand(a, dt, ia, inner, err)) || !(fb = operand(b, dt, 0, inner, err)))
        goto out;
    int64_t ni = a->ndim == 2 ? cask__ar_grid_blocks(1, &fa->shape[0], &fa->chunk[0]) : 1;
    int64_t nk = cask__ar_grid_blocks(1, &fa->shape[ia], &fa->chunk[ia]);
    int64_t nj = b->ndim == 2 ? cask__ar_grid_blocks(1, &fb->shape[1], &fb->chunk[1]) : 1;
    ar_blockset_t *bs = cask__ar_blockset_new(nd, shape, chunk);
    cask_value_t *in = cask__malloc((size_t)(2 * nk + 1) * sizeof *in);
    if (!bs || !in) {
        cask__ar_blockset_decref(bs);
        cask__free(in);
        cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for a matmul");
        goto out;
    }
    const char *ka = cask_graph_key(a->g, fa->bs->tasks[0]), *kb = cask_graph_key(a->g, fb->bs->tasks[0]);
    uint64_t token = cask__hash(kb, strlen(kb), cask__hash(ka, strlen(ka), 7)) | 1;
    int rc = 0;
    in[0] = cask_int(nk);
    for (int64_t i = 0; i < ni && !rc; i++)
        for (int64_t j = 0; j < nj && !rc; j++) {
            for (int64_t l = 0; l < nk; l++) {
                in[1 + l] = cask_ref(fa->bs->tasks[i * nk + l]);
                in[1 + nk + l] = cask_ref(fb->bs->tasks[l * nj + j]);
            }
            cask_task_spec_t spec = { .kernel = "cask.array.matmul", .inputs = in,
                                      .n_inputs = (size_t)(2 * nk + 1), .name = "matmul",
                                      .token = token, .index = (uint64_t)(i * nj + j),
                                      .nbytes = cask__ar_block_nbytes(dt, nd, shape, chunk,
                                                                      (size_t)(i * nj + j)) };
            rc = cask_graph_add(a->g, &spec, &bs->tasks[i * nj + j], err);
        }
    cask__free(in);
    if (rc) {
        cask__ar_blockset_decref(bs);
    } else if ((res = cask__ar_blocks_array(a->g, bs, dt, nd, shape, err)) && rt != dt) {
        cask_array_t *r = cask_array_astype(res, rt, err);
        cask_array_decref(res);
        res = r;
    }
out:
    cask_array_decref(fa);
    cask_array_decref(fb);
    return res;
}

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;

static void blas_one_thread(void)
{
    openblas_set_num_threads(1);
}

/* c[m x n] += a[m x k] b[k x n] in int64, wrapping as NumPy's does. */
static void imatmul(int64_t m, int64_t n, int64_t k, const int64_t *a, const int64_t *b,
                    int64_t *c)
{
    for (int64_t i = 0; i < m; i++)
        for (int64_t l = 0; l < k; l++) {
            uint64_t x = (uint64_t)a[i * k + l];
            const int64_t *br = b + l * n;
            int64_t *cr = c + i * n;
            for (int64_t j = 0; j < n; j++)
                cr[j] = (int64_t)((uint64_t)cr[j] + x * (uint64_t)br[j]);
        }
}

/* A block as a matrix: a 1-d block of A is one row, of B one column. */
static bool as_matrix(const cask_nd_t *x, bool is_a, int64_t *rows, int64_t *cols)
{
    if (x->ndim == 2) {
        *rows = x->shape[0], *cols = x->shape[1];
        return true;
    }
    if (x->ndim != 1)
        return false;
    *rows = is_a ? 1 : x->shape[0];
    *cols = is_a ? x->shape[0] : 1;
    return true;
}

/* cask.array.matmul(K, A(i,0..K)..., B(0..K,j)...): one result block.
** Blocks are 2-d, or 1-d (all of A's, or all of B's: a vector), float64,
** float32 or int64; the result drops the axes of 1-d operands, as
** numpy.matmul. */
static int k_matmul(const cask_value_t *args, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    if (n < 3 || args[0].type != CASK_INT64 || args[0].u.i < 1 ||
        (uint64_t)args[0].u.i != (n - 1) / 2 || n % 2 == 0)
        return cask_kernel_fail(ctx, "arguments: K, then K blocks of A and K blocks of B");
    size_t K = (size_t)args[0].u.i;
    cask_nd_t a0, b0;
    int64_t m, nn, r, q;
    if (cask_value_nd(&args[1], &a0) || cask_value_nd(&args[1 + K], &b0) ||
        !as_matrix(&a0, true, &m, &r) || !as_matrix(&b0, false, &q, &nn) ||
        (a0.dtype != CASK_F64 && a0.dtype != CASK_F32 && a0.dtype != CASK_I64))
        return cask_kernel_fail(ctx, "blocks must be 1-d or 2-d float64, float32 or int64");
    int nd = 0;
    int64_t shape[2];
    if (a0.ndim == 2)
        shape[nd++] = m;
    if (b0.ndim == 2)
        shape[nd++] = nn;
    int rc = cask__ar_block_fits(nd, shape, ctx);
    if (!rc)
        rc = cask_value_ndarray(a0.dtype, nd, shape, out, NULL);
    if (rc)
        return rc;
    cask_nd_t c;
    cask_value_nd(out, &c);
    memset(c.data, 0, c.size * cask_dtype_size(c.dtype));
    pthread_once(&blas_once, blas_one_thread);
    for (size_t l = 0; l < K; l++) {
        cask_nd_t a, b;
        int64_t am, k, bk, bn;
        if (cask_value_nd(&args[1 + l], &a) || cask_value_nd(&args[1 + K + l], &b) ||
            a.ndim != a0.ndim || b.ndim != b0.ndim || !as_matrix(&a, true, &am, &k) ||
            !as_matrix(&b, false, &bk, &bn) || a.dtype != c.dtype || b.dtype != c.dtype ||
            am != m || bn != nn || k != bk) {
            cask_value_decref(out);
            return cask_kernel_fail(ctx, "block pair %zu does not multiply into %lld x %lld",
                                    l, (long long)m, (long long)nn);
        }
        if (!m || !nn || !k)
            continue;
        if (m > INT_MAX || nn > INT_MAX || k > INT_MAX) { /* BLAS takes int extents */
            cask_value_decref(out);
            return cask_kernel_fail(ctx, "block pair %zu: extents over %d", l, INT_MAX);
        }
        if (c.dtype == CASK_F64)
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)nn, (int)k, 1.0,
                        a.data, (int)k, b.data, (int)nn, 1.0, c.data, (int)nn);
        else if (c.dtype == CASK_F32)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)nn, (int)k, 1.0f,
                        a.data, (int)k, b.data, (int)nn, 1.0f, c.data, (int)nn);
        else
            imatmul(m, nn, k, a.data, b.data, c.data);
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

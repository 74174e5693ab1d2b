/*
** collections/array_matmul.c: matrix products: cask_array_matmul, and the
** kernel behind it.
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

cask_array_t *cask_array_matmul(cask_array_t *a, cask_array_t *b, cask_error_t *err)
{
    if (!a || !b)
        return cask__err(err, CASK_EINVAL, NULL, NULL,
                         "an operand is NULL (an earlier array call failed)"), NULL;
    char s1[96], s2[96];
    if (a->g != b->g)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "operands belong to different graphs"),
               NULL;
    if (a->ndim != 2 || b->ndim != 2 || a->shape[1] != b->shape[0])
        return cask__err(err, CASK_EINVAL, NULL, NULL, "matmul of shapes %s and %s",
                         cask__ar_shape_str(s1, sizeof s1, a->ndim, a->shape),
                         cask__ar_shape_str(s2, sizeof s2, b->ndim, b->shape)), NULL;
    if ((a->dtype != CASK_F64 && a->dtype != CASK_F32) ||
        (b->dtype != CASK_F64 && b->dtype != CASK_F32))
        return cask__err(err, CASK_ETYPE, NULL, NULL,
                         "matmul of %s and %s: cast to float64 or float32 first",
                         cask_dtype_name(a->dtype), cask_dtype_name(b->dtype)), NULL;
    if (a->chunk[1] != b->chunk[0])
        return cask__err(err, CASK_EINVAL, NULL, NULL,
                         "matmul: a's column chunks (%lld) differ from b's row chunks (%lld)",
                         (long long)a->chunk[1], (long long)b->chunk[0]), NULL;
    cask_dtype_t dt = a->dtype == CASK_F32 && b->dtype == CASK_F32 ? CASK_F32 : CASK_F64;
    cask_array_t *fa = NULL, *fb = NULL, *res = NULL;
    int64_t shape[2] = { a->shape[0], b->shape[1] }, chunk[2] = { a->chunk[0], b->chunk[1] };
    if (!(fa = a->dtype == dt ? (cask_array_incref(a), a) : cask_array_astype(a, dt, err)) ||
        !(fb = b->dtype == dt ? (cask_array_incref(b), b) : cask_array_astype(b, dt, err)) ||
        cask__ar_materialize(fa, err) || cask__ar_materialize(fb, err))
        goto out;
    int64_t ni = cask__ar_grid_blocks(1, &fa->shape[0], &fa->chunk[0]);
    int64_t nk = cask__ar_grid_blocks(1, &fa->shape[1], &fa->chunk[1]);
    int64_t nj = cask__ar_grid_blocks(1, &fb->shape[1], &fb->chunk[1]);
    ar_blockset_t *bs = cask__ar_blockset_new(2, shape, chunk);
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
                                      .token = token, .index = (uint64_t)(i * nj + j) };
            rc = cask_graph_add(a->g, &spec, &bs->tasks[i * nj + j], err);
        }
    cask__free(in);
    if (rc)
        cask__ar_blockset_decref(bs);
    else
        res = cask__ar_blocks_array(a->g, bs, dt, 2, shape, err);
out:
    cask_array_decref(fa);
    cask_array_decref(fb);
    return res;
}

/* An array whose element c is a's element start + step * c, of this
** shape and chunks (normalised), one gather task per block. */

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

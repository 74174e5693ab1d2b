/*
** collections/array_reduce.c: reductions, as trees: one task per block of
** the input (fused with the expression it reduces) folds the block's
** values into partials, then tasks that each combine up to split_every
** partials, level by level, in order, so the answer never depends on the
** scheduler; the last one finishes. Each reduction is a row of
** cask__ar_reds: its name, how many partials it keeps per output
** element and in which type, how its result is typed, whether it has an
** identity, its start values, and its functions to fold a tile, merge two
** partials and finish. Adding one is a row here and an enumerator in
** cask/array.h.
**
** Sums add each tile of 256 elements in four lanes, then the tiles' sums,
** then the partials in tree order (not compensated); var and std merge
** (count, mean, M2) partials (Chan et al.), so they are stable. min, max,
** argmin and argmax propagate NaN as NumPy does. int64 sums and products
** wrap, as NumPy's do.
*/
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "array.h"

/* ------------------------------------------------------------ the table */

/* Sum of x[0..len) in four lanes (pairwise enough within a tile). */
static double tile_sum(const double *x, size_t len)
{
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t j = 0;
    for (; j + 4 <= len; j += 4) {
        s0 += x[j];
        s1 += x[j + 1];
        s2 += x[j + 2];
        s3 += x[j + 3];
    }
    for (; j < len; j++)
        s0 += x[j];
    return (s0 + s1) + (s2 + s3);
}

/* Fold every value of x into element k0 + j * ks (ks 0 or 1) with the
** statement STEP (a: the element's field 0, v: the value). With ks 1 each
** value has partials of its own, so the compiler may fold them in vector
** lanes (#pragma omp simd, built with -fopenmp-simd: no OpenMP runtime);
** with ks 0 they all go into one, in order. */
#define FOLD(T, ...)                                                         \
    if (ks) {                                                                \
        _Pragma("omp simd")                                                  \
        for (size_t j = 0; j < len; j++) {                                   \
            T *a = &p[k0 + (int64_t)j], v = x[j];                            \
            (void)K, (void)i0, (void)is;                                     \
            __VA_ARGS__;                                                     \
        }                                                                    \
    } else {                                                                 \
        for (size_t j = 0; j < len; j++) {                                   \
            T *a = &p[k0], v = x[j];                                         \
            (void)K, (void)i0, (void)is;                                     \
            __VA_ARGS__;                                                     \
        }                                                                    \
    }

#define TILE_D(name, ...)                                                    \
    static void name(double *p, int64_t K, const double *x, size_t len, int64_t k0,   \
                     int64_t ks, int64_t i0, int64_t is)                     \
    { FOLD(double, __VA_ARGS__) }
#define TILE_I(name, ...)                                                    \
    static void name(int64_t *p, int64_t K, const int64_t *x, size_t len, int64_t k0, \
                     int64_t ks, int64_t i0, int64_t is)                     \
    { FOLD(int64_t, __VA_ARGS__) }
#define MERGE_D(name, ...)                                                   \
    static void name(double *a, const double *b, int64_t K) { (void)K; __VA_ARGS__; }
#define MERGE_I(name, ...)                                                   \
    static void name(int64_t *a, const int64_t *b, int64_t K) { (void)K; __VA_ARGS__; }

/* sum, and mean (its sum and its count) */
static void sum_d(double *p, int64_t K, const double *x, size_t len, int64_t k0, int64_t ks,
                  int64_t i0, int64_t is)
{
    if (!ks) /* the whole tile into one element */
        p[k0] += tile_sum(x, len);
    else
        FOLD(double, *a += v)
}
TILE_I(sum_i, *a = (int64_t)((uint64_t)*a + (uint64_t)v))
MERGE_D(sum_md, *a += *b)
MERGE_I(sum_mi, *a = (int64_t)((uint64_t)*a + (uint64_t)*b))

static void mean_d(double *p, int64_t K, const double *x, size_t len, int64_t k0, int64_t ks,
                   int64_t i0, int64_t is)
{
    if (!ks) {
        p[k0] += tile_sum(x, len);
        p[K + k0] += (double)len;
    } else {
        FOLD(double, (*a += v, a[K] += 1))
    }
}
MERGE_D(mean_md, (*a += *b, a[K] += b[K]))
static double mean_f(const double *p, int64_t K, int ddof)
{
    (void)ddof;
    return p[K] ? p[0] / p[K] : NAN;
}

/* prod */
TILE_D(prod_d, *a *= v)
TILE_I(prod_i, *a = (int64_t)((uint64_t)*a * (uint64_t)v))
MERGE_D(prod_md, *a *= *b)
MERGE_I(prod_mi, *a = (int64_t)((uint64_t)*a * (uint64_t)*b))

/* min and max: a NaN, once in, stays */
TILE_D(min_d, if (v < *a || v != v) *a = *a != *a ? *a : v)
TILE_D(max_d, if (v > *a || v != v) *a = *a != *a ? *a : v)
TILE_I(min_i, if (v < *a) *a = v)
TILE_I(max_i, if (v > *a) *a = v)
MERGE_D(min_md, if (*b < *a || *b != *b) *a = *a != *a ? *a : *b)
MERGE_D(max_md, if (*b > *a || *b != *b) *a = *a != *a ? *a : *b)
MERGE_I(min_mi, if (*b < *a) *a = *b)
MERGE_I(max_mi, if (*b > *a) *a = *b)

/* any and all */
TILE_D(any_d, if (v != 0) *a = 1)
TILE_D(all_d, if (v == 0) *a = 0)
TILE_I(any_i, if (v) *a = 1)
TILE_I(all_i, if (!v) *a = 0)
MERGE_D(any_md, *a = *a != 0 || *b != 0)
MERGE_D(all_md, *a = *a != 0 && *b != 0)
MERGE_I(any_mi, *a = *a || *b)
MERGE_I(all_mi, *a = *a && *b)

/* var and std: (count, mean, M2) partials, merged (Chan et al.) */
static inline void var_merge(double *n, double *m, double *m2, double nb, double mb, double m2b)
{
    if (!nb)
        return;
    double na = *n, t = na + nb, d = mb - *m;
    *m += d * nb / t;
    *m2 += m2b + d * d * na * nb / t;
    *n = t;
}

static void var_d(double *p, int64_t K, const double *x, size_t len, int64_t k0, int64_t ks,
                  int64_t i0, int64_t is)
{
    if (!ks) { /* the tile's own triple, merged in */
        double m = tile_sum(x, len) / (double)len, m2 = 0;
        for (size_t j = 0; j < len; j++)
            m2 += (x[j] - m) * (x[j] - m);
        var_merge(&p[k0], &p[K + k0], &p[2 * K + k0], (double)len, m, m2);
    } else { /* one value into each partial: var_merge of (1, v, 0). The
                partials of a tile all have the same count (put_red hands whole
                rows: a count is the rows folded in so far), so one division
                serves them all. */
        double *restrict n = p + k0, *restrict m = p + K + k0, *restrict m2 = p + 2 * K + k0;
        const double *restrict y = x;
        double na = n[0], inv = 1 / (na + 1);
        (void)i0, (void)is;
#pragma omp simd
        for (size_t j = 0; j < len; j++) {
            double d = y[j] - m[j];
            m[j] += d * inv;
            m2[j] += d * d * na * inv;
            n[j] = na + 1;
        }
    }
}
MERGE_D(var_md, var_merge(a, &a[K], &a[2 * K], *b, b[K], b[2 * K]))

/* M2 / max(n - ddof, 0), as NumPy: inf when there is spread but no degree
** of freedom left, NaN when there is neither. */
static double var_f(const double *p, int64_t K, int ddof)
{
    double dof = p[0] - ddof;
    return dof > 0 ? p[2 * K] / dof : p[2 * K] > 0 ? INFINITY : NAN;
}

static double std_f(const double *p, int64_t K, int ddof)
{
    return sqrt(var_f(p, K, ddof));
}

/* argmin and argmax: (value, index) partials; index -1 is "none yet".
** (v, i) beats (w, j): NaN first, then the smaller (larger) value, then
** the smaller index. Indices are exact in a double below 2^53. */
static inline bool beats_d(double v, int64_t i, double w, int64_t j, bool max)
{
    if (j < 0)
        return true;
    if (v != v || w != w)
        return w == w || (v != v && i < j);
    return max ? v > w || (v == w && i < j) : v < w || (v == w && i < j);
}

static inline bool beats_i(int64_t v, int64_t i, int64_t w, int64_t j, bool max)
{
    if (j < 0)
        return true;
    return max ? v > w || (v == w && i < j) : v < w || (v == w && i < j);
}

#define ARG(name, max)                                                        \
    TILE_D(name##_d, {                                                        \
        int64_t i = i0 + (int64_t)j * is;                                     \
        if (beats_d(v, i, *a, ar_d2i(a[K]), max))                             \
            *a = v, a[K] = (double)i;                                         \
    })                                                                        \
    TILE_I(name##_i, {                                                        \
        int64_t i = i0 + (int64_t)j * is;                                     \
        if (beats_i(v, i, *a, a[K], max))                                     \
            *a = v, a[K] = i;                                                 \
    })                                                                        \
    MERGE_D(name##_md, if (b[K] >= 0 && beats_d(*b, ar_d2i(b[K]), *a, ar_d2i(a[K]), max)) \
                           (*a = *b, a[K] = b[K]))                            \
    MERGE_I(name##_mi, if (b[K] >= 0 && beats_i(*b, b[K], *a, a[K], max))     \
                           (*a = *b, a[K] = b[K]))
ARG(argmin, false)
ARG(argmax, true)

const ar_red_t cask__ar_reds[CASK_REDUCTION_COUNT] = {
    /*              name   fields  result  float  identity index  init_d  init_i */
    [CASK_SUM]    = { "sum", 1, AR_R_SUM, false, true, false, { 0 }, { 0 },
                      sum_d, sum_i, sum_md, sum_mi, NULL },
    [CASK_PROD]   = { "prod", 1, AR_R_SUM, false, true, false, { 1 }, { 1 },
                      prod_d, prod_i, prod_md, prod_mi, NULL },
    [CASK_MIN]    = { "min", 1, AR_R_SAME, false, false, false, { INFINITY }, { INT64_MAX },
                      min_d, min_i, min_md, min_mi, NULL },
    [CASK_MAX]    = { "max", 1, AR_R_SAME, false, false, false, { -INFINITY }, { INT64_MIN },
                      max_d, max_i, max_md, max_mi, NULL },
    [CASK_MEAN]   = { "mean", 2, AR_R_FLOAT, true, true, false, { 0, 0 }, { 0 },
                      mean_d, NULL, mean_md, NULL, mean_f },
    [CASK_VAR]    = { "var", 3, AR_R_FLOAT, true, true, false, { 0, 0, 0 }, { 0 },
                      var_d, NULL, var_md, NULL, var_f },
    [CASK_STD]    = { "std", 3, AR_R_FLOAT, true, true, false, { 0, 0, 0 }, { 0 },
                      var_d, NULL, var_md, NULL, std_f },
    [CASK_ARGMIN] = { "argmin", 2, AR_R_INDEX, false, false, true, { INFINITY, -1 },
                      { INT64_MAX, -1 }, argmin_d, argmin_i, argmin_md, argmin_mi, NULL },
    [CASK_ARGMAX] = { "argmax", 2, AR_R_INDEX, false, false, true, { -INFINITY, -1 },
                      { INT64_MIN, -1 }, argmax_d, argmax_i, argmax_md, argmax_mi, NULL },
    [CASK_ANY]    = { "any", 1, AR_R_BOOL, false, true, false, { 0 }, { 0 },
                      any_d, any_i, any_md, any_mi, NULL },
    [CASK_ALL]    = { "all", 1, AR_R_BOOL, false, true, false, { 1 }, { 1 },
                      all_d, all_i, all_md, all_mi, NULL },
};

cask_dtype_t cask__ar_red_dtype(int red, cask_dtype_t in)
{
    switch (cask__ar_reds[red].result) {
    case AR_R_SUM: return in == CASK_BOOL ? CASK_I64 : in;
    case AR_R_FLOAT: return in == CASK_F32 ? CASK_F32 : CASK_F64;
    case AR_R_INDEX: return CASK_I64;
    case AR_R_BOOL: return CASK_BOOL;
    default: return in;
    }
}

/* ------------------------------------------------------------- building */

/* Whether a reduction over e should walk its blocks last to first: it reads
** a file that an odd number of reductions built before it read (counted
** here). Two passes over a file bigger than the page cache then meet the
** cache: the second starts where the first ended, among the pages the
** first read last, instead of behind them (an LRU cache drops exactly the
** pages a second pass in the same direction needs next). */
static void find_files(ar_enode_t *e, ar_enode_t **seen, int *n)
{
    if (!e)
        return;
    for (int i = 0; i < *n; i++)
        if (seen[i] == e)
            return; /* a node the expression reads twice counts once */
    if (e->kind == N_FILE && *n < AR_MAX_NODES)
        seen[(*n)++] = e;
    for (int k = 0; k < 3; k++)
        find_files(e->a[k], seen, n);
}

static bool scan_backwards(ar_enode_t *e)
{
    ar_enode_t *files[AR_MAX_NODES];
    int n = 0;
    bool rev = false;
    find_files(e, files, &n);
    for (int i = 0; i < n; i++)
        rev |= files[i]->scans++ % 2 == 1;
    return rev;
}

cask_array_t *cask_array_reduce(cask_array_t *a, cask_reduction_t op,
                                const cask_reduce_opts_t *opts, cask_error_t *err)
{
    cask_reduce_opts_t o = opts ? *opts : (cask_reduce_opts_t){ 0 };
    if ((unsigned)op >= CASK_REDUCTION_COUNT)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "unknown reduction %d", (int)op), NULL;
    const ar_red_t *red = &cask__ar_reds[op];
    if (!a)
        return cask__err(err, CASK_EINVAL, NULL, NULL,
                         "an operand is NULL (an earlier array call failed)"), NULL;
    unsigned all = a->ndim ? (1u << a->ndim) - 1 : 0;
    if (o.axes & ~all)
        return cask__err(err, CASK_EINVAL, NULL, NULL,
                         "axes 0x%x: the array has %d axes", o.axes, a->ndim), NULL;
    unsigned axes = o.axes ? o.axes : all;
    if (red->index && axes != all && (axes & (axes - 1)))
        return cask__err(err, CASK_EINVAL, NULL, NULL,
                         "%s over several axes: give one, or all", red->name), NULL;
    if (o.split_every < 0 || o.split_every == 1 || o.ddof < 0)
        return cask__err(err, CASK_EINVAL, NULL, NULL,
                         "split_every %d (at least 2) or ddof %d (at least 0)", o.split_every,
                         o.ddof), NULL;
    int split = o.split_every ? o.split_every : 8;
    bool rev = scan_backwards(a->e);
    /* The result's layout: the kept axes. */
    int kn = 0;
    int64_t kshape[CASK_MAX_NDIM], kchunk[CASK_MAX_NDIM], rsize = 1;
    for (int x = 0; x < a->ndim; x++)
        if (axes & (1u << x)) {
            rsize *= a->shape[x];
        } else {
            kshape[kn] = a->shape[x];
            kchunk[kn++] = a->chunk[x];
        }
    if (!rsize && !red->identity)
        return cask__err(err, CASK_EINVAL, NULL, NULL,
                         "%s of an empty extent: it has no identity", red->name), NULL;
    size_t nin = cask__ar_grid_blocks(a->ndim, a->shape, a->chunk);
    size_t nout = cask__ar_grid_blocks(kn, kshape, kchunk);
    size_t per = nin / nout; /* input blocks per result block */
    cask_task_t *first = cask__malloc(nin * sizeof *first);
    size_t *slot = cask__malloc(nin * sizeof *slot); /* each input block's result block */
    uint64_t *sizes = cask__malloc(nin * sizeof *sizes);
    cask_task_t *group = cask__malloc(nin * sizeof *group);
    size_t *fill = cask__calloc(nout, sizeof *fill);
    ar_blockset_t *b = cask__ar_blockset_new(kn, kshape, kchunk);
    cask_value_t in[3 + 64];
    cask_value_t prog = cask_none();
    cask_array_t *res = NULL;
    int rc = 0;
    if (!first || !slot || !sizes || !group || !fill || !b || split > 64) {
        if (split > 64)
            rc = cask__err(err, CASK_EINVAL, NULL, NULL, "split_every %d: at most 64", split);
        else
            rc = cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for a reduction");
        goto out;
    }
    char name[40], pname[48], cname[48];
    snprintf(name, sizeof name, "%s", red->name);
    snprintf(pname, sizeof pname, "%s-partial", red->name);
    snprintf(cname, sizeof cname, "%s-combine", red->name);
    /* First level: one task per input block, final when it is alone; the
    ** combine tasks read their layout from the same program. */
    ar_compiled_t cp;
    if ((rc = cask__ar_compile(a, op, axes, o.ddof, &cp, err)))
        goto out;
    prog = cp.prog;
    /* Every task's output is at most `fields` doubles per element of its
    ** result block (a partial; the final block is no larger). */
    int64_t nb[CASK_MAX_NDIM], c[CASK_MAX_NDIM], knb[CASK_MAX_NDIM];
    cask__ar_grid_extents(a->ndim, a->shape, a->chunk, nb);
    cask__ar_grid_extents(kn, kshape, kchunk, knb);
    for (size_t i = 0; i < nin; i++) {
        cask__ar_grid_coords(a->ndim, nb, (int64_t)i, c);
        size_t k = 0;
        for (int x = 0, y = 0; x < a->ndim; x++)
            if (!(axes & (1u << x)))
                k = k * (size_t)knb[y++] + (size_t)c[x];
        slot[i] = k;
        sizes[i] = (uint64_t)red->fields * cask__ar_block_nbytes(CASK_F64, kn, kshape, kchunk, k);
    }
    if ((rc = cask__ar_add_block_tasks(a, &cp, "cask.array.reduce", per == 1 ? name : pname, per == 1,
                              sizes, first, err)))
        goto out;
    /* Sort the first level by result block, in input order within each. */
    for (size_t i = 0; i < nin; i++)
        group[slot[i] * per + fill[slot[i]]++] = first[i];
    if (per == 1) {
        memcpy(b->tasks, group, nout * sizeof *group);
    } else {
        in[0] = prog;
        /* Combine each result block's partials split at a time, level by
        ** level, in order, so the answer never depends on the scheduler. */
        uint64_t index = 0;
        for (size_t k = 0; k < nout && !rc; k++) {
            cask_task_t *t = group + k * per;
            size_t m = per;
            while (m > 1 && !rc) {
                size_t out_m = 0;
                for (size_t s = 0; s < m && !rc; s += (size_t)split) {
                    size_t take = m - s < (size_t)split ? m - s : (size_t)split;
                    bool final = m <= (size_t)split;
                    in[1] = cask_int((int64_t)k);
                    in[2] = cask_int(final | (rev ? 2 : 0));
                    for (size_t j = 0; j < take; j++) /* backwards: the kernel merges them
                                                         in order all the same */
                        in[3 + j] = cask_ref(t[s + (rev ? take - 1 - j : j)]);
                    cask_task_spec_t spec = { .kernel = "cask.array.combine", .inputs = in,
                                              .n_inputs = 3 + take,
                                              .name = final ? name : cname,
                                              .token = cp.token, .index = index++,
                                              .nbytes = (uint64_t)red->fields *
                                                        cask__ar_block_nbytes(CASK_F64, kn, kshape,
                                                                              kchunk, k) };
                    rc = cask_graph_add(a->g, &spec, &t[out_m++], err);
                }
                m = out_m;
            }
            b->tasks[k] = t[0];
        }
        if (rc)
            goto out;
    }
    res = cask__ar_blocks_array(a->g, b, cask__ar_red_dtype(op, a->dtype), kn, kshape, err);
    b = NULL;
out:
    cask_value_decref(&prog);
    cask__ar_blockset_decref(b);
    cask__free(first);
    cask__free(slot);
    cask__free(sizes);
    cask__free(group);
    cask__free(fill);
    return res;
}


/* ------------------------------------------------------------ the kernels */

/* The partials of one task: field f of output element k at p[f * K + k]. */
typedef struct red {
    ar_sink_t s;
    const ar_red_t *op;
    bool    ints;                   /* int64 partials (else double) */
    int64_t K;                      /* output elements in the block */
    void   *p;                      /* fields * K partials */
    int     last;                   /* the root's last axis */
    int64_t kstride[CASK_MAX_NDIM]; /* output element step per root axis (0: reduced) */
    int64_t istride[CASK_MAX_NDIM]; /* index step per root axis (argmin, argmax) */
    int64_t ioff;                   /* index of the block's first element */
    int     dtype;                  /* the root's */
    double  conv[AR_TILE];          /* the tile as double, when it is not */
    int64_t iconv[AR_TILE];         /* or as int64 */
} red_t;

static void put_red(ar_sink_t *s, const void *x, size_t len, const int64_t *coord, int64_t col)
{
    red_t *r = (red_t *)s;
    int64_t k0 = 0, i0 = r->ioff;
    for (int a = 0; a < r->last; a++) {
        k0 += r->kstride[a] * coord[a];
        i0 += r->istride[a] * coord[a];
    }
    int64_t ks = 0, is = 0;
    if (r->last >= 0) {
        k0 += r->kstride[r->last] * col;
        i0 += r->istride[r->last] * col;
        ks = r->kstride[r->last];
        is = r->istride[r->last];
    }
    if (r->ints) {
        const int64_t *xi = x;
        if (r->dtype != CASK_I64) {
            cask__ar_cast(r->dtype, CASK_I64, x, r->iconv, len);
            xi = r->iconv;
        }
        r->op->tile_i(r->p, r->K, xi, len, k0, ks, i0, is);
    } else {
        const double *xd = x;
        if (r->dtype != CASK_F64) {
            cask__ar_cast(r->dtype, CASK_F64, x, r->conv, len);
            xd = r->conv;
        }
        r->op->tile_d(r->p, r->K, xd, len, k0, ks, i0, is);
    }
}

/* Set up r for the header's reduction with K outputs: its partials at
** their start. 0, or CASK_ENOMEM (a partial too large for
** cask__ar_max_bytes, with ctx's message, or no memory). */
static int red_setup(red_t *r, const ar_phead_t *h, int root_dtype, int64_t K,
                     cask_kctx_t *ctx)
{
    const ar_red_t *op = r->op = &cask__ar_reds[h->red];
    r->ints = !op->float_partials && (root_dtype == CASK_I64 || root_dtype == CASK_BOOL);
    r->K = K;
    r->dtype = root_dtype;
    r->last = h->ndim - 1;
    uint64_t elems = (uint64_t)op->fields * (uint64_t)(K ? K : 1);
    int rc = cask__ar_fits(elems, "a partial", ctx);
    if (rc)
        return rc;
    if (!(r->p = cask__malloc((size_t)elems * 8)))
        return CASK_ENOMEM;
    for (int f = 0; f < op->fields; f++)
        for (int64_t k = 0; k < K; k++) {
            if (r->ints)
                ((int64_t *)r->p)[f * K + k] = op->init_i[f];
            else
                ((double *)r->p)[f * K + k] = op->init_d[f];
        }
    return 0;
}

/* The final values of r's partials, as an n-d block of the result type. */
static int red_finish(const red_t *r, int in_dtype, int ddof, int ndim, const int64_t *shape,
                      cask_value_t *out)
{
    const ar_red_t *op = r->op;
    int dt = cask__ar_red_dtype((int)(op - cask__ar_reds), in_dtype);
    int rc = cask_value_ndarray(dt, ndim, shape, out, NULL);
    if (rc)
        return rc;
    cask_nd_t v;
    cask_value_nd(out, &v);
    int64_t K = r->K;
    for (int64_t k = 0; k < K; k++) {
        double d = 0;
        int64_t i = 0;
        if (r->ints) {
            const int64_t *p = (const int64_t *)r->p + k;
            i = op->index ? p[K] : p[0];
            d = (double)i;
        } else {
            const double *p = (const double *)r->p + k;
            if (op->index)
                i = ar_d2i(p[K]);
            else
                d = op->final_d ? op->final_d(p, K, ddof) : p[0];
            if (dt == CASK_I64 && !op->index)
                i = ar_d2i(d);
        }
        switch (dt) {
        case CASK_F64: ((double *)v.data)[k] = d; break;
        case CASK_F32: ((float *)v.data)[k] = (float)d; break;
        case CASK_I64: ((int64_t *)v.data)[k] = i; break;
        default: ((uint8_t *)v.data)[k] = r->ints ? i != 0 : d != 0; break;
        }
    }
    return 0;
}

/* Hand r's partials back: the final block, or an n-d [fields, K] partial. */
static int red_out(red_t *r, const ar_phead_t *h, int root_dtype, bool final, int nd,
                   const int64_t *shape, cask_value_t *out)
{
    if (final)
        return red_finish(r, root_dtype, h->ddof, nd, shape, out);
    int64_t ps[2] = { r->op->fields, r->K };
    int rc = cask_value_ndarray(r->ints ? CASK_I64 : CASK_F64, 2, ps, out, NULL);
    if (!rc) {
        cask_nd_t v;
        cask_value_nd(out, &v);
        memcpy(v.data, r->p, (size_t)(r->op->fields * r->K) * 8);
    }
    return rc;
}

/* Output element count and result-block shape (kept axes) of the block
** of the header's grid at be. */
static int64_t kept_shape(const ar_phead_t *h, const int64_t *be, int64_t *shape, int *nd)
{
    int64_t K = 1;
    *nd = 0;
    for (int x = 0; x < h->ndim; x++)
        if (!(h->axes & (1u << x))) {
            shape[(*nd)++] = be[x];
            K *= be[x];
        }
    return K;
}

/* cask.array.reduce(prog, block, final, leaf blocks...): the partial (or,
** when final, the result) of one block of the program's root. */
static int k_reduce(const cask_value_t *args, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    int rc;
    const ar_phead_t *h = cask__ar_program(args, n, 3, true, ctx, &rc);
    if (!h)
        return rc;
    if (h->red < 0 || n < 3 || args[1].type != CASK_INT64 || args[2].type != CASK_INT64)
        return cask_kernel_fail(ctx, "arguments: a reduction program, a block, a final flag");
    ar_eval_t ev;
    red_t *r = cask__calloc(1, sizeof *r);
    if (!r)
        return CASK_ENOMEM;
    if ((rc = cask__ar_eval_init(&ev, h, args[1].u.i, args, ctx)))
        goto out;
    if (cask__ar_max_stream) {
        double elems = 1;
        for (int x = 0; x < h->ndim; x++)
            elems *= (double)ev.be[x];
        if (elems > (double)cask__ar_max_stream) {
            cask_kernel_fail(ctx, "a block of %.3g elements is more than the %llu one "
                                  "reduction task may read", elems,
                                  (unsigned long long)cask__ar_max_stream);
            rc = CASK_ELIMIT;
            goto out;
        }
    }
    int root_dtype = ev.nd[h->nnodes - 1].dtype;
    int64_t shape[CASK_MAX_NDIM];
    int nd;
    int64_t K = kept_shape(h, ev.be, shape, &nd);
    if ((rc = red_setup(r, h, root_dtype, K, ctx)))
        goto out;
    r->s.put = put_red;
    int64_t ks = 1, is = 1;
    for (int x = h->ndim; x-- > 0;) { /* output and index steps per axis */
        bool kept = !(h->axes & (1u << x));
        r->kstride[x] = kept ? ks : 0;
        ks *= kept ? ev.be[x] : 1;
        r->istride[x] = 0;
    }
    uint32_t all = h->ndim ? (1u << h->ndim) - 1 : 0;
    if (cask__ar_reds[h->red].index) {
        r->ioff = 0;
        if ((h->axes & all) == all) { /* the flat index in the whole array */
            for (int x = h->ndim; x-- > 0;) {
                r->istride[x] = is;
                r->ioff += is * ev.bo[x];
                is *= h->shape[x];
            }
        } else { /* the index along the one reduced axis */
            for (int x = 0; x < h->ndim; x++)
                if (h->axes & (1u << x))
                    r->istride[x] = 1, r->ioff = ev.bo[x];
        }
    }
    if (!(rc = cask__ar_run(&ev, &r->s)))
        rc = red_out(r, h, root_dtype, args[2].u.i != 0, nd, shape, out);
out:
    cask__ar_eval_free(&ev);
    cask__free(r->p);
    cask__free(r);
    return rc;
}

/* cask.array.combine(prog, result block, flags, partials...): merge the
** partials in order (flags bit 1: they are given last first, and merged
** first to last all the same); bit 0: final. */
static int k_combine(const cask_value_t *args, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    int rc;
    const ar_phead_t *h = cask__ar_program(args, n, 3, false, ctx, &rc);
    if (!h)
        return rc;
    if (h->red < 0 || n < 4 || args[1].type != CASK_INT64 || args[2].type != CASK_INT64)
        return cask_kernel_fail(ctx, "arguments: a reduction program, a block, a final "
                                     "flag, partials");
    /* The result block's place: the grid over the kept axes only. */
    ar_phead_t kh = *h;
    int nd = 0;
    for (int x = 0; x < h->ndim; x++)
        if (!(h->axes & (1u << x))) {
            kh.shape[nd] = h->shape[x];
            kh.chunk[nd++] = h->chunk[x];
        }
    kh.ndim = nd;
    int64_t bo[CASK_MAX_NDIM], be[CASK_MAX_NDIM];
    if (!cask__ar_block_place(&kh, args[1].u.i, bo, be))
        return cask_kernel_fail(ctx, "block %lld is outside the result", (long long)args[1].u.i);
    int64_t K = 1;
    for (int x = 0; x < nd; x++)
        K *= be[x];
    int root_dtype = ((const ar_pnode_t *)(h + 1))[h->nnodes - 1].dtype;
    red_t *r = cask__calloc(1, sizeof *r);
    if (!r)
        return CASK_ENOMEM;
    if ((rc = red_setup(r, h, root_dtype, K, ctx)))
        goto out;
    bool rev = (args[2].u.i & 2) != 0; /* the partials come last first */
    for (size_t j = 3; j < n; j++) {
        size_t i = rev ? n + 2 - j : j;
        cask_nd_t v;
        if (cask_value_nd(&args[i], &v) || v.ndim != 2 || v.shape[0] != r->op->fields ||
            v.shape[1] != K || v.dtype != (r->ints ? CASK_I64 : CASK_F64)) {
            rc = cask_kernel_fail(ctx, "argument %zu is not a partial of %d x %lld", i,
                                  r->op->fields, (long long)K);
            goto out;
        }
        for (int64_t k = 0; k < K; k++) {
            if (r->ints)
                r->op->merge_i((int64_t *)r->p + k, (const int64_t *)v.data + k, K);
            else
                r->op->merge_d((double *)r->p + k, (const double *)v.data + k, K);
        }
    }
    rc = red_out(r, h, root_dtype, (args[2].u.i & 1) != 0, nd, be, out);
out:
    cask__free(r->p);
    cask__free(r);
    return rc;
}

void cask__ar_register_reduce(void)
{
    cask_kernel_opts_t cost = { .cost_fn = cask__ar_cost_block }, none = { 0 };
    cask__kernel_register("cask.array.reduce", k_reduce, &cost, NULL);
    cask__kernel_register("cask.array.combine", k_combine, &none, NULL);
}

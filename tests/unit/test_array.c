/*
** tests/unit/test_array.c: chunked arrays, checked against NumPy.
**
** The NumPy cases write their inputs and cask's results to a temporary
** directory with a manifest, then run tests/numpy_check.py once under
** Debian's /usr/bin/python3, which evaluates the same expression with
** NumPy and compares dtype, shape and values. Shapes, chunks and
** split_every are random (seeded), so many layouts are covered.
*/
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"
#include "../../collections/array.h" /* program headers, to write hostile graph files */

long cask__alloc_fail_at(long n); /* graph/util.c: the test-only failure hook */

static uint64_t rng = 88172645463325252u;
static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}
static int64_t pick(int64_t lo, int64_t hi) /* lo .. hi */
{
    return lo + (int64_t)(next() % (uint64_t)(hi - lo + 1));
}

/* ------------------------------------------------------- the NumPy side */

typedef struct manifest {
    char  dir[64];
    FILE *f;       /* the manifest */
    FILE *data;    /* every array of every case, one after another */
    long  at;      /* bytes in data so far */
    int   n;
} manifest_t;

static void man_open(manifest_t *m)
{
    strcpy(m->dir, "/tmp/cask-array-XXXXXX");
    assert_non_null(mkdtemp(m->dir));
    char p[128];
    snprintf(p, sizeof p, "%s/manifest", m->dir);
    assert_non_null(m->f = fopen(p, "w"));
    snprintf(p, sizeof p, "%s/data", m->dir);
    assert_non_null(m->data = fopen(p, "wb"));
    m->n = 0;
    m->at = 0;
}

static void shape_csv(char *buf, size_t size, int ndim, const int64_t *shape)
{
    size_t at = 0;
    buf[0] = '\0';
    for (int x = 0; x < ndim; x++)
        at += (size_t)snprintf(buf + at, size - at, "%s%lld", x ? "," : "", (long long)shape[x]);
}

/* Append an array's elements (C order) to the data file; where they start
** in p. */
static void write_raw(manifest_t *m, const void *data, size_t bytes, char *p, size_t size)
{
    snprintf(p, size, "%ld", m->at);
    assert_true(bytes == 0 || fwrite(data, bytes, 1, m->data) == 1);
    m->at += (long)bytes;
}

typedef struct input {
    const char  *name;
    cask_dtype_t dtype;
    int          ndim;
    int64_t      shape[CASK_MAX_NDIM];
    void        *data;
    cask_array_t *arr;
} input_t;

/* Compute r, then record a case: NumPy's expr over inputs in[0..n) must
** give r's dtype and shape and its values (to rtol). */
static void check_case(manifest_t *m, const char *expr, input_t *in, int n, cask_array_t *r,
                       double rtol, const char *sched)
{
    cask_error_t err;
    assert_non_null(r);
    size_t bytes = cask_array_size(r) * cask_dtype_size(cask_array_dtype(r));
    void *buf = malloc(bytes ? bytes : 1);
    cask_compute_opts_t o = { .scheduler = sched, .workers = 2 };
    assert_ok(cask_array_compute(&r, 1, &o, &buf, NULL, &err), &err);
    fprintf(m->f, "c%d\t%s\t%d", m->n, expr, n);
    char p[160], s[160];
    for (int k = 0; k < n; k++) {
        size_t nb = cask_dtype_size(in[k].dtype);
        for (int x = 0; x < in[k].ndim; x++)
            nb *= (size_t)in[k].shape[x];
        write_raw(m, in[k].data, nb, p, sizeof p);
        shape_csv(s, sizeof s, in[k].ndim, in[k].shape);
        fprintf(m->f, "\t%s\t%s\t%s\t%s", in[k].name, cask_dtype_name(in[k].dtype), s, p);
    }
    write_raw(m, buf, bytes, p, sizeof p);
    shape_csv(s, sizeof s, cask_array_ndim(r), cask_array_shape(r));
    fprintf(m->f, "\t%s\t%s\t%s\t%g\n", cask_dtype_name(cask_array_dtype(r)), s, p, rtol);
    m->n++;
    free(buf);
}

static void man_run(manifest_t *m)
{
    fclose(m->f);
    fclose(m->data);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/numpy_check.py %s/manifest", m->dir);
    int rc = system(cmd);
    snprintf(cmd, sizeof cmd, "rm -rf %s", m->dir);
    if (system(cmd)) {
    }
    assert_int_equal(rc, 0);
}

/* A random input: name, dtype, shape; values small (ints -5..5, doubles
** -3..3 with a few repeats so ties and argmin/argmax ties happen). */
static void make_input(cask_graph_t *g, input_t *in, const char *name, cask_dtype_t dt, int ndim,
                       const int64_t *shape, const int64_t *chunks)
{
    cask_error_t err;
    in->name = name;
    in->dtype = dt;
    in->ndim = ndim;
    size_t n = 1;
    for (int x = 0; x < ndim; x++)
        n *= (size_t)(in->shape[x] = shape[x]);
    in->data = malloc(n * 8 + 8);
    for (size_t i = 0; i < n; i++) {
        int64_t v = pick(-5, 5);
        switch (dt) {
        case CASK_F64: ((double *)in->data)[i] = (double)v * 0.6 + (double)(next() % 4) * 0.125; break;
        case CASK_F32: ((float *)in->data)[i] = (float)v * 0.5f; break;
        case CASK_I64: ((int64_t *)in->data)[i] = v; break;
        default: ((uint8_t *)in->data)[i] = v > 0; break;
        }
    }
    unsigned flags = next() % 2 ? CASK_ARRAY_COPY : 0; /* borrowed: data lives to the end */
    in->arr = cask_array_from_buffer(g, dt, ndim, shape, chunks, in->data, flags, &err);
    assert_non_null(in->arr);
}

static void free_input(input_t *in)
{
    cask_array_decref(in->arr);
    free(in->data);
}

/* A random shape of 1..3 axes and chunks for it. */
static int random_layout(int64_t *shape, int64_t *chunks)
{
    int ndim = (int)pick(1, 3);
    for (int x = 0; x < ndim; x++) {
        shape[x] = pick(1, ndim == 1 ? 300 : ndim == 2 ? 30 : 9);
        chunks[x] = pick(1, shape[x] + 2);
    }
    return ndim;
}

/* ---------------------------------------------------------- elementwise */

#define A in[0].arr
#define B in[1].arr
#define I in[2].arr
#define M in[3].arr

static cask_array_t *bin(cask_binop_t op, cask_array_t *x, cask_array_t *y)
{
    cask_error_t err;
    cask_array_t *r = cask_array_binop(x, op, y, &err);
    if (!r)
        fail_msg("binop %d: %s", (int)op, err.message);
    return r;
}
static cask_array_t *bins(cask_binop_t op, cask_array_t *x, cask_value_t s)
{
    cask_error_t err;
    cask_array_t *r = cask_array_binop_scalar(x, op, s, &err);
    if (!r)
        fail_msg("binop_scalar %d: %s", (int)op, err.message);
    return r;
}
static cask_array_t *un(cask_unop_t op, cask_array_t *x)
{
    cask_error_t err;
    cask_array_t *r = cask_array_unop(x, op, &err);
    if (!r)
        fail_msg("unop %d: %s", (int)op, err.message);
    return r;
}
static cask_array_t *cast(cask_array_t *x, cask_dtype_t dt)
{
    cask_error_t err;
    cask_array_t *r = cask_array_astype(x, dt, &err);
    if (!r)
        fail_msg("astype: %s", err.message);
    return r;
}
static cask_array_t *wh(cask_array_t *c, cask_array_t *x, cask_array_t *y)
{
    cask_error_t err;
    cask_array_t *r = cask_array_where(c, x, y, &err);
    if (!r)
        fail_msg("where: %s", err.message);
    return r;
}

/* Temporaries of one case, freed together. */
static cask_array_t *tmp[32];
static int ntmp;
static cask_array_t *T(cask_array_t *a)
{
    tmp[ntmp++] = a;
    return a;
}
static void free_tmp(void)
{
    while (ntmp)
        cask_array_decref(tmp[--ntmp]);
}

/* Case k (of NCASES) over inputs a, b (float64, b broadcast), i (int64),
** m (bool, broadcast); its NumPy text in *py. */
#define NCASES 19
static cask_array_t *build_case(int k, input_t *in, const char **py, double *rtol)
{
    cask_error_t err;
    *rtol = 1e-12;
    switch (k) {
    case 0: *py = "a*b + 2"; return bins(CASK_ADD, T(bin(CASK_MUL, A, B)), cask_int(2));
    case 1: *py = "np.sqrt(np.abs(a)) - b/3";
        return bin(CASK_SUB, T(un(CASK_SQRT, T(un(CASK_ABS, A)))), T(bins(CASK_DIV, B, cask_int(3))));
    case 2: *py = "np.where(a > b, a, b*2)";
        return wh(T(bin(CASK_GT, A, B)), A, T(bins(CASK_MUL, B, cask_int(2))));
    case 3: *py = "(i + 1) * a"; return bin(CASK_MUL, T(bins(CASK_ADD, I, cask_int(1))), A);
    case 4: *py = "np.cos(a) + np.sin(b) * np.exp(-np.abs(a))";
        return bin(CASK_ADD, T(un(CASK_COS, A)),
                   T(bin(CASK_MUL, T(un(CASK_SIN, B)), T(un(CASK_EXP, T(un(CASK_NEG, T(un(CASK_ABS, A)))))))));
    case 5: *py = "np.log(np.abs(a) + 1) ** 2";
        return bins(CASK_POW, T(un(CASK_LOG, T(bins(CASK_ADD, T(un(CASK_ABS, A)), cask_int(1))))), cask_int(2));
    case 6: *py = "a.astype(np.float32) * 3 + b.astype(np.float32)"; *rtol = 1e-6;
        return bin(CASK_ADD, T(bins(CASK_MUL, T(cast(A, CASK_F32)), cask_int(3))), T(cast(B, CASK_F32)));
    case 7: *py = "i * 3 - i"; return bin(CASK_SUB, T(bins(CASK_MUL, I, cask_int(3))), I);
    case 8: *py = "(a >= b) == m"; return bin(CASK_EQ, T(bin(CASK_GE, A, B)), M);
    case 9: *py = "np.where(m, i, -i)"; return wh(M, I, T(un(CASK_NEG, I)));
    case 10: *py = "-a / (np.abs(b) + 1)";
        return bin(CASK_DIV, T(un(CASK_NEG, A)), T(bins(CASK_ADD, T(un(CASK_ABS, B)), cask_int(1))));
    case 11: *py = "i / 2"; return bins(CASK_DIV, I, cask_int(2));
    case 12: *py = "2.5 - a"; return cask_array_scalar_binop(cask_double(2.5), CASK_SUB, A, &err);
    case 13: *py = "m.astype(np.int64) + i"; return bin(CASK_ADD, T(cast(M, CASK_I64)), I);
    case 14: *py = "(i < 2) != (a < 0)"; return bin(CASK_NE, T(bins(CASK_LT, I, cask_int(2))), T(bins(CASK_LT, A, cask_int(0))));
    case 15: *py = "np.transpose(a) * 2"; return bins(CASK_MUL, T(cask_array_transpose(A, NULL, &err)), cask_int(2));
    case 16: { /* through a transposed expression and back, beside the original */
        *py = "np.transpose(np.transpose(a * b) + 1) - i";
        cask_array_t *t = T(cask_array_transpose(T(bin(CASK_MUL, A, B)), NULL, &err));
        return bin(CASK_SUB, T(cask_array_transpose(T(bins(CASK_ADD, t, cask_int(1))), NULL, &err)), I);
    }
    case 17: { /* axes rotated: axis x of the result is axis (x + 1) % n of a */
        int n = cask_array_ndim(A), perm[CASK_MAX_NDIM];
        for (int x = 0; x < n; x++)
            perm[x] = (x + 1) % n;
        *py = "np.transpose(np.where(m, a, i), [(x + 1) % a.ndim for x in range(a.ndim)])";
        return cask_array_transpose(T(wh(M, A, I)), perm, &err);
    }
    default: { /* a generated operand takes the other's chunks */
        *py = "a + np.linspace(-1, 2, a.shape[-1])";
        int n = cask_array_ndim(A);
        int64_t last = cask_array_shape(A)[n - 1];
        cask_array_t *l = T(cask_array_linspace(cask_array_graph(A), pick(1, last + 1), -1, 2, last,
                                                true, &err));
        return bin(CASK_ADD, A, l);
    }
    }
}

static void test_elementwise_vs_numpy(void **state)
{
    (void)state;
    manifest_t m;
    man_open(&m);
    for (int round = 0; round < 40; round++) {
        cask_error_t err;
        cask_graph_t *g = cask_graph_new(&err);
        int64_t shape[CASK_MAX_NDIM], chunks[CASK_MAX_NDIM], bshape[CASK_MAX_NDIM];
        int ndim = random_layout(shape, chunks);
        /* b: trailing axes of a's shape, some of extent 1 (broadcast) */
        int bnd = (int)pick(1, ndim);
        for (int x = 0; x < bnd; x++)
            bshape[x] = next() % 3 ? shape[ndim - bnd + x] : 1;
        /* b's chunks: a's in even rounds, its own in odd ones (then the
        ** operands are rechunked to a common chunking) */
        int64_t bchunks[CASK_MAX_NDIM];
        for (int x = 0; x < bnd; x++)
            bchunks[x] = round % 2 ? pick(1, bshape[x] + 1) : chunks[ndim - bnd + x];
        input_t in[4];
        make_input(g, &in[0], "a", CASK_F64, ndim, shape, chunks);
        make_input(g, &in[1], "b", CASK_F64, bnd, bshape, bchunks);
        make_input(g, &in[2], "i", CASK_I64, ndim, shape, chunks);
        make_input(g, &in[3], "m", CASK_BOOL, bnd, bshape, bchunks);
        for (int k = 0; k < NCASES; k++) {
            const char *py;
            double rtol;
            cask_array_t *r = build_case(k, in, &py, &rtol);
            check_case(&m, py, in, 4, r, rtol, round % 3 ? "threads" : "sync");
            cask_array_decref(r);
            free_tmp();
        }
        for (int k = 0; k < 4; k++)
            free_input(&in[k]);
        cask_graph_decref(g);
    }
    man_run(&m);
}

/* ------------------------------------------------------------ reductions */

/* NumPy's names of the reductions, by cask_reduction_t. */
static const char *const red_names[] = { "sum", "prod", "min", "max", "mean", "var", "std",
                                         "argmin", "argmax", "any", "all" };

static void test_reductions_vs_numpy(void **state)
{
    (void)state;
    manifest_t m;
    man_open(&m);
    for (int round = 0; round < 24; round++) {
        cask_error_t err;
        cask_graph_t *g = cask_graph_new(&err);
        int64_t shape[CASK_MAX_NDIM], chunks[CASK_MAX_NDIM];
        int ndim = random_layout(shape, chunks);
        input_t in[3];
        make_input(g, &in[0], "a", CASK_F64, ndim, shape, chunks);
        make_input(g, &in[1], "i", CASK_I64, ndim, shape, chunks);
        make_input(g, &in[2], "m", CASK_BOOL, ndim, shape, chunks);
        /* prod over a scaled copy, so it neither overflows nor vanishes */
        cask_array_t *near1 = bins(CASK_ADD, T(bins(CASK_MUL, in[0].arr, cask_double(0.01))), cask_int(1));
        for (int op = CASK_SUM; op <= CASK_ALL; op++) {
            for (int v = 0; v < 3; v++) { /* the float, int and bool inputs */
                if (v == 2 && (op == CASK_VAR || op == CASK_STD || op == CASK_MEAN))
                    continue; /* run too, below, with int */
                int axis = (int)pick(-1, ndim - 1);
                cask_reduce_opts_t o = { .axes = axis < 0 ? 0 : CASK_AXIS(axis),
                                         .split_every = (int)pick(0, 4) == 1 ? 2 : (int)pick(0, 5),
                                         .ddof = op == CASK_VAR && next() % 2 ? 1 : 0 };
                if (o.split_every == 1)
                    o.split_every = 3;
                cask_array_t *src = op == CASK_PROD && v == 0 ? near1 : in[v].arr;
                cask_array_t *r = cask_array_reduce(src, op, &o, &err);
                if (!r)
                    fail_msg("%s: %s", red_names[op], err.message);
                char py[160], args[40] = "";
                const char *var = op == CASK_PROD && v == 0 ? "(a*0.01 + 1)" : in[v].name;
                if (axis >= 0)
                    snprintf(args, sizeof args, "axis=%d", axis);
                if (o.ddof)
                    snprintf(args + strlen(args), sizeof args - strlen(args), "%sddof=1",
                             axis >= 0 ? ", " : "");
                snprintf(py, sizeof py, "np.asarray(%s.%s(%s))", var, red_names[op], args);
                check_case(&m, py, in, 3, r, 1e-12, round % 2 ? "threads" : "sync");
                cask_array_decref(r);
            }
        }
        free_tmp();
        cask_array_decref(near1);
        for (int k = 0; k < 3; k++)
            free_input(&in[k]);
        cask_graph_decref(g);
    }
    man_run(&m);
}

/* A fused expression reduced over one axis, and over all. */
static void test_fused_reduction_vs_numpy(void **state)
{
    (void)state;
    manifest_t m;
    man_open(&m);
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    int64_t shape[2] = { 37, 23 }, chunks[2] = { 8, 5 };
    input_t in[1];
    make_input(g, &in[0], "a", CASK_F64, 2, shape, chunks);
    cask_array_t *y = bins(CASK_ADD, T(bin(CASK_MUL, in[0].arr, in[0].arr)), cask_int(1));
    for (int axis = -1; axis < 2; axis++) {
        cask_reduce_opts_t o = { .axes = axis < 0 ? 0 : CASK_AXIS(axis), .split_every = 2 };
        cask_array_t *r = cask_array_reduce(y, CASK_VAR, &o, &err);
        char py[80];
        snprintf(py, sizeof py, axis < 0 ? "np.asarray((a*a + 1).var())" : "(a*a + 1).var(axis=%d)", axis);
        check_case(&m, py, in, 1, r, 1e-12, "threads");
        cask_array_decref(r);
    }
    cask_array_decref(y);
    free_tmp();
    free_input(&in[0]);
    cask_graph_decref(g);
    man_run(&m);
}

/* Reductions of two arrays added: a combine task that merges fewer
** partials than the expression has block inputs (the last group of a
** level may hold one) must still run. The smallest case first:
** [0, 1, 2] + [1, 2, 3] read from .npy files in chunks of 1, sum with
** split_every 2 (NumPy: 9); then random uneven block counts with the
** default split_every. */
static void test_reduction_of_two_arrays_vs_numpy(void **state)
{
    (void)state;
    manifest_t m;
    man_open(&m);
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    double av[3] = { 0, 1, 2 }, bv[3] = { 1, 2, 3 };
    input_t in[2] = { { .name = "a", .dtype = CASK_F64, .ndim = 1, .shape = { 3 }, .data = av },
                      { .name = "b", .dtype = CASK_F64, .ndim = 1, .shape = { 3 }, .data = bv } };
    for (int k = 0; k < 2; k++) {
        char p[128];
        int64_t one = 1;
        snprintf(p, sizeof p, "%s/%s.npy", m.dir, in[k].name);
        cask_array_t *w = cask_array_from_buffer(g, CASK_F64, 1, in[k].shape, NULL, in[k].data,
                                                 CASK_ARRAY_COPY, &err);
        assert_ok(cask_array_save_npy(w, p, NULL, &err), &err);
        cask_array_decref(w);
        in[k].arr = cask_array_load_npy(g, p, &one, &err);
        assert_non_null(in[k].arr);
    }
    cask_array_t *ab = bin(CASK_ADD, in[0].arr, in[1].arr);
    cask_reduce_opts_t two = { .split_every = 2 };
    for (int op = CASK_SUM; op <= CASK_ALL; op++) {
        char py[80];
        snprintf(py, sizeof py, "np.asarray((a + b).%s())", red_names[op]);
        cask_array_t *r = cask_array_reduce(ab, (cask_reduction_t)op, &two, &err);
        check_case(&m, py, in, 2, r, 1e-12, op % 2 ? "threads" : "sync");
        cask_array_decref(r);
    }
    cask_array_decref(ab);
    cask_array_decref(in[0].arr);
    cask_array_decref(in[1].arr);
    cask_graph_decref(g);
    for (int round = 0; round < 16; round++) {
        g = cask_graph_new(&err);
        int ndim = round % 4 ? 1 : 2;
        int64_t shape[2], chunks[2];
        for (int x = 0; x < ndim; x++) {
            shape[x] = ndim == 1 ? pick(9, 150) : pick(3, 25);
            chunks[x] = ndim == 1 ? pick(1, 12) : pick(1, 4);
        }
        input_t r2[2];
        make_input(g, &r2[0], "a", CASK_F64, ndim, shape, chunks);
        make_input(g, &r2[1], "i", CASK_I64, ndim, shape, chunks);
        cask_array_t *ai = bin(CASK_ADD, r2[0].arr, r2[1].arr);
        static const cask_reduction_t ops[] = { CASK_SUM, CASK_MEAN, CASK_VAR, CASK_MAX,
                                                CASK_ARGMAX };
        for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
            int axis = ops[k] == CASK_ARGMAX && ndim > 1 ? (int)pick(0, ndim - 1)
                                                         : (int)pick(-1, ndim - 1);
            cask_reduce_opts_t o = { .axes = axis < 0 ? 0 : CASK_AXIS(axis) };
            char py[80], args[16] = "";
            if (axis >= 0)
                snprintf(args, sizeof args, "axis=%d", axis);
            snprintf(py, sizeof py, "np.asarray((a + i).%s(%s))", red_names[ops[k]], args);
            cask_array_t *r = cask_array_reduce(ai, ops[k], &o, &err);
            check_case(&m, py, r2, 2, r, 1e-12, round % 2 ? "threads" : "sync");
            cask_array_decref(r);
        }
        cask_array_decref(ai);
        free_input(&r2[0]);
        free_input(&r2[1]);
        cask_graph_decref(g);
    }
    man_run(&m);
}

/* var and std with ddof >= n: NumPy divides M2 by max(n - ddof, 0), so
** the result is inf, or nan where M2 is 0 too (0/0). In one block and in
** blocks of one element combined two at a time. */
static void test_ddof_past_n_vs_numpy(void **state)
{
    (void)state;
    manifest_t m;
    man_open(&m);
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    double x[3] = { 1, 2, 3 }, y[3] = { 1, 1, 1 }, z[1] = { 5 }, w[6] = { 1, 2, 3, 4, 4, 4 };
    float f[3] = { 1, 2, 3 };
    int64_t i[3] = { 1, 2, 3 };
    input_t in[6] = {
        { .name = "x", .dtype = CASK_F64, .ndim = 1, .shape = { 3 }, .data = x },
        { .name = "y", .dtype = CASK_F64, .ndim = 1, .shape = { 3 }, .data = y },
        { .name = "z", .dtype = CASK_F64, .ndim = 1, .shape = { 1 }, .data = z },
        { .name = "w", .dtype = CASK_F64, .ndim = 2, .shape = { 2, 3 }, .data = w },
        { .name = "f", .dtype = CASK_F32, .ndim = 1, .shape = { 3 }, .data = f },
        { .name = "i", .dtype = CASK_I64, .ndim = 1, .shape = { 3 }, .data = i },
    };
    static const struct {
        int in;                  /* which input */
        cask_reduction_t op;
        int axis, ddof;
        const char *py;
    } cases[] = {
        { 0, CASK_VAR, -1, 3, "np.asarray(x.var(ddof=3))" },   /* inf */
        { 0, CASK_STD, -1, 3, "np.asarray(x.std(ddof=3))" },   /* inf */
        { 0, CASK_VAR, -1, 5, "np.asarray(x.var(ddof=5))" },   /* inf */
        { 1, CASK_VAR, -1, 3, "np.asarray(y.var(ddof=3))" },   /* nan: 0/0 */
        { 2, CASK_VAR, -1, 1, "np.asarray(z.var(ddof=1))" },   /* nan */
        { 2, CASK_STD, -1, 1, "np.asarray(z.std(ddof=1))" },   /* nan */
        { 3, CASK_VAR, 1, 3, "w.var(axis=1, ddof=3)" },        /* [inf, nan] */
        { 3, CASK_STD, 0, 2, "w.std(axis=0, ddof=2)" },        /* [inf, inf, inf] */
        { 4, CASK_STD, -1, 3, "np.asarray(f.std(ddof=3))" },   /* float32 inf */
        { 5, CASK_VAR, -1, 4, "np.asarray(i.var(ddof=4))" },   /* inf */
        { 0, CASK_VAR, -1, 2, "np.asarray(x.var(ddof=2))" },   /* 2: still finite */
    };
    for (int whole = 0; whole < 2; whole++) {
        for (int k = 0; k < 6; k++) {
            int64_t ones[2] = { 1, 1 };
            in[k].arr = cask_array_from_buffer(g, in[k].dtype, in[k].ndim, in[k].shape,
                                               whole ? NULL : ones, in[k].data, CASK_ARRAY_COPY,
                                               &err);
            assert_non_null(in[k].arr);
        }
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            cask_reduce_opts_t o = { .axes = cases[c].axis < 0 ? 0 : CASK_AXIS(cases[c].axis),
                                     .split_every = 2, .ddof = cases[c].ddof };
            cask_array_t *r = cask_array_reduce(in[cases[c].in].arr, cases[c].op, &o, &err);
            check_case(&m, cases[c].py, in, 6, r, 1e-12, c % 2 ? "threads" : "sync");
            cask_array_decref(r);
        }
        for (int k = 0; k < 6; k++)
            cask_array_decref(in[k].arr);
    }
    cask_graph_decref(g);
    man_run(&m);
}

/* Floats cast to int64 as NumPy casts them on this machine: truncated,
** and NaN, infinities and values out of range all INT64_MIN (a C cast of
** those is undefined). float32 too, and through a reduction. */
static void test_float_to_int_vs_numpy(void **state)
{
    (void)state;
    manifest_t m;
    man_open(&m);
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    double x[10] = { NAN, INFINITY, -INFINITY, 1e300, -1e300, 2.7, -2.7, 9.3e18, -9.3e18, 0x1p62 };
    float f[4] = { NAN, 3e38f, -2.5f, 1e19f };
    input_t in[2] = { { .name = "x", .dtype = CASK_F64, .ndim = 1, .shape = { 10 }, .data = x },
                      { .name = "f", .dtype = CASK_F32, .ndim = 1, .shape = { 4 }, .data = f } };
    int64_t c3 = 3;
    for (int k = 0; k < 2; k++)
        in[k].arr = cask_array_from_buffer(g, in[k].dtype, 1, in[k].shape, &c3, in[k].data,
                                           CASK_ARRAY_COPY, &err);
    check_case(&m, "x.astype(np.int64)", in, 2, T(cast(in[0].arr, CASK_I64)), 0, "sync");
    check_case(&m, "f.astype(np.int64)", in, 2, T(cast(in[1].arr, CASK_I64)), 0, "sync");
    check_case(&m, "np.asarray(x.astype(np.int64).max())", in, 2,
               T(cask_array_reduce(T(cast(in[0].arr, CASK_I64)), CASK_MAX, NULL, &err)), 0,
               "threads");
    free_tmp();
    cask_array_decref(in[0].arr);
    cask_array_decref(in[1].arr);
    cask_graph_decref(g);
    man_run(&m);
}

/* Block products, against numpy.matmul: float64 and float32 through BLAS,
** int64 (wrapping as NumPy's) and bool by a loop, 1-d operands, and inner
** chunks that differ (lined up by a rechunk). */
static void test_matmul_vs_numpy(void **state)
{
    (void)state;
    manifest_t m;
    man_open(&m);
    for (int round = 0; round < 16; round++) {
        cask_error_t err;
        cask_graph_t *g = cask_graph_new(&err);
        int64_t rows = pick(1, 40), inner = pick(1, 40), cols = pick(1, 40);
        int64_t ck = pick(1, inner + 1), bk = round % 2 ? pick(1, inner + 1) : ck;
        int64_t as[2] = { rows, inner }, ac[2] = { pick(1, rows + 1), ck };
        int64_t bs[2] = { inner, cols }, bc[2] = { bk, pick(1, cols + 1) };
        int64_t vc = pick(1, inner + 1);
        input_t in[8];
        make_input(g, &in[0], "a", CASK_F64, 2, as, ac);
        make_input(g, &in[1], "b", CASK_F64, 2, bs, bc);
        make_input(g, &in[2], "v", CASK_F64, 1, &inner, &vc);
        make_input(g, &in[3], "ai", CASK_I64, 2, as, ac);
        make_input(g, &in[4], "bi", CASK_I64, 2, bs, bc);
        make_input(g, &in[5], "vi", CASK_I64, 1, &inner, &vc);
        make_input(g, &in[6], "am", CASK_BOOL, 2, as, ac);
        make_input(g, &in[7], "bm", CASK_BOOL, 2, bs, bc);
        const char *sched = round % 2 ? "threads" : "sync";
        cask_array_t *r = cask_array_matmul(in[0].arr, in[1].arr, &err);
        if (!r)
            fail_msg("matmul: %s", err.message);
        check_case(&m, "a @ b", in, 8, r, 1e-12, sched);
        cask_array_decref(r);
        /* float32, and a fused consumer of the product */
        cask_array_t *r32 = cask_array_matmul(T(cast(in[0].arr, CASK_F32)), T(cast(in[1].arr, CASK_F32)), &err);
        check_case(&m, "a.astype(np.float32) @ b.astype(np.float32)", in, 8, r32, 1e-5, "threads");
        cask_array_decref(r32);
        cask_reduce_opts_t o = { .axes = CASK_AXIS(0) };
        cask_array_t *ata = cask_array_matmul(T(cask_array_transpose(in[0].arr, NULL, &err)), in[0].arr, &err);
        cask_array_t *s = cask_array_reduce(T(bins(CASK_MUL, ata, cask_int(2))), CASK_SUM, &o, &err);
        check_case(&m, "(a.T @ a * 2).sum(axis=0)", in, 8, s, 1e-12, "threads");
        cask_array_decref(ata);
        cask_array_decref(s);
        /* 1-d: vector-matrix, matrix-vector, dot */
        struct { const char *py; cask_array_t *x, *y; double rtol; } cases[] = {
            { "v @ b", in[2].arr, in[1].arr, 1e-12 },
            { "a @ v", in[0].arr, in[2].arr, 1e-12 },
            { "v @ v", in[2].arr, in[2].arr, 1e-12 },
            { "ai @ bi", in[3].arr, in[4].arr, 0 },
            { "vi @ bi", in[5].arr, in[4].arr, 0 },
            { "ai @ vi", in[3].arr, in[5].arr, 0 },
            { "vi @ vi", in[5].arr, in[5].arr, 0 },
            { "ai @ b", in[3].arr, in[1].arr, 1e-12 },
            { "am @ bm", in[6].arr, in[7].arr, 0 },
            { "am @ bi", in[6].arr, in[4].arr, 0 },
            { "(ai * 3037000500) @ (bi * 3037000501)", T(bins(CASK_MUL, in[3].arr, cask_int(3037000500))),
              T(bins(CASK_MUL, in[4].arr, cask_int(3037000501))), 0 },
        };
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            cask_array_t *p = cask_array_matmul(cases[c].x, cases[c].y, &err);
            if (!p)
                fail_msg("%s: %s", cases[c].py, err.message);
            check_case(&m, cases[c].py, in, 8, p, cases[c].rtol, sched);
            cask_array_decref(p);
        }
        free_tmp();
        for (int k = 0; k < 8; k++)
            free_input(&in[k]);
        cask_graph_decref(g);
    }
    man_run(&m);
    /* refused when built, or lined up */
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    int64_t s23[2] = { 2, 3 }, s43[2] = { 4, 3 }, s223[3] = { 2, 2, 3 }, c1[2] = { 1, 1 },
            c2[2] = { 2, 2 };
    cask_array_t *a = cask_array_full(g, CASK_F64, 2, s23, c1, 1, &err);
    cask_array_t *b = cask_array_full(g, CASK_F64, 2, s43, c1, 1, &err);
    cask_array_t *t3 = cask_array_full(g, CASK_F64, 3, s223, NULL, 1, &err);
    cask_array_t *bc2 = cask_array_full(g, CASK_F64, 2, s23, c2, 1, &err);
    assert_null(cask_array_matmul(a, b, &err));
    assert_msg_has(&err, "matmul of shapes (2, 3) and (4, 3)");
    assert_null(cask_array_matmul(t3, a, &err));
    assert_msg_has(&err, "(1-d and 2-d operands only)");
    cask_array_t *bt = cask_array_transpose(bc2, NULL, &err);
    cask_array_t *ab = cask_array_matmul(a, bt, &err); /* inner chunks 1 and 2: 2 */
    assert_non_null(ab);
    assert_int_equal(cask_array_chunks(ab)[0], 1);
    assert_int_equal(cask_array_chunks(ab)[1], 2);
    double r[4];
    assert_int_equal(cask_array_compute(&ab, 1, NULL, (void *[]){ r }, NULL, &err), 0);
    assert_true(r[0] == 3 && r[3] == 3);
    cask_array_t *all[] = { a, b, t3, bc2, bt, ab };
    for (size_t k = 0; k < 6; k++)
        cask_array_decref(all[k]);
    cask_graph_decref(g);
}

/* One random Python slice for an axis of extent L, as C and as text. */
static cask_slice_t random_slice(int64_t L, char *py, size_t size)
{
    cask_slice_t q = { CASK_SLICE_NONE, CASK_SLICE_NONE, 1 };
    char a[24] = "", b[24] = "", c[24] = "";
    if (next() % 3) {
        q.start = pick(-L - 2, L + 2);
        snprintf(a, sizeof a, "%lld", (long long)q.start);
    }
    if (next() % 3) {
        q.stop = pick(-L - 2, L + 2);
        snprintf(b, sizeof b, "%lld", (long long)q.stop);
    }
    q.step = pick(-4, 4);
    if (!q.step)
        q.step = 1;
    snprintf(c, sizeof c, "%lld", (long long)q.step);
    snprintf(py, size, "%s:%s:%s", a, b, c);
    return q;
}

/* Slicing (steps, negative indices and steps, clamping) and rechunking,
** against NumPy; then a slice of a big array computes only the blocks it
** touches. */
static void test_slice_and_rechunk_vs_numpy(void **state)
{
    (void)state;
    manifest_t m;
    man_open(&m);
    for (int round = 0; round < 60; round++) {
        cask_error_t err;
        cask_graph_t *g = cask_graph_new(&err);
        int64_t shape[CASK_MAX_NDIM], chunks[CASK_MAX_NDIM], newc[CASK_MAX_NDIM];
        int ndim = random_layout(shape, chunks);
        input_t in[1];
        make_input(g, &in[0], "a", round % 4 == 3 ? CASK_I64 : CASK_F64, ndim, shape, chunks);
        cask_slice_t q[CASK_MAX_NDIM];
        char py[256] = "a[", part[64];
        int n = (int)pick(0, ndim);
        for (int x = 0; x < n; x++) {
            q[x] = random_slice(shape[x], part, sizeof part);
            snprintf(py + strlen(py), sizeof py - strlen(py), "%s%s", x ? ", " : "", part);
        }
        strcat(py, n ? "]" : "...]");
        cask_array_t *r = cask_array_slice(in[0].arr, q, n, &err);
        if (!r)
            fail_msg("slice %s: %s", py, err.message);
        check_case(&m, py, in, 1, r, 0, round % 2 ? "threads" : "sync");
        /* a slice of an expression, and an expression over a slice */
        cask_array_t *r2 = bins(CASK_MUL, T(cask_array_slice(T(bins(CASK_ADD, in[0].arr, cask_int(1))), q, n, &err)), cask_int(3));
        char py2[300];
        snprintf(py2, sizeof py2, "(a + 1)%s * 3", py + 1);
        check_case(&m, py2, in, 1, r2, 0, "threads");
        for (int x = 0; x < ndim; x++)
            newc[x] = pick(1, shape[x] + 1);
        cask_array_t *rc = cask_array_rechunk(in[0].arr, newc, &err);
        assert_non_null(rc);
        for (int x = 0; x < ndim; x++)
            assert_int_equal(cask_array_chunks(rc)[x], newc[x] < shape[x] ? newc[x] : shape[x]);
        check_case(&m, "a", in, 1, rc, 0, "threads");
        cask_array_decref(r);
        cask_array_decref(r2);
        cask_array_decref(rc);
        free_tmp();
        free_input(&in[0]);
        cask_graph_decref(g);
    }
    man_run(&m);

    /* 100 blocks; a[250:260:3] touches one of them */
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    int64_t n = 1000, c = 10;
    double *buf = calloc(1000, sizeof *buf);
    buf[250] = 7;
    cask_array_t *a = cask_array_from_buffer(g, CASK_F64, 1, &n, &c, buf, 0, &err);
    cask_slice_t q = { 250, 260, 3 };
    cask_array_t *s = cask_array_slice(a, &q, 1, &err);
    assert_int_equal(cask_array_shape(s)[0], 4);
    double out[4];
    cask_compute_info_t info;
    assert_ok(cask_array_compute(&s, 1, NULL, (void *[]){ out }, &info, &err), &err);
    assert_int_equal(info.tasks, 2); /* the one source block and the gather */
    assert_true(out[0] == 7 && out[1] == 0);
    cask_slice_t zero = { 0, 1, 0 };
    assert_null(cask_array_slice(a, &zero, 1, &err));
    assert_msg_has(&err, "step 0");
    cask_array_decref(a);
    cask_array_decref(s);
    free(buf);
    cask_graph_decref(g);
}

/* concatenate against NumPy: operands of random extents along the axis,
** random chunks and mixed dtypes, some of them expressions. */
static void test_concatenate_vs_numpy(void **state)
{
    (void)state;
    manifest_t m;
    man_open(&m);
    static const char *const names[] = { "a", "b", "c" };
    static const cask_dtype_t dts[] = { CASK_F64, CASK_F64, CASK_F32, CASK_I64 };
    for (int round = 0; round < 60; round++) {
        cask_error_t err;
        cask_graph_t *g = cask_graph_new(&err);
        int64_t shape[CASK_MAX_NDIM], chunks[CASK_MAX_NDIM];
        int ndim = random_layout(shape, chunks), ax = (int)pick(0, ndim - 1);
        int n = (int)pick(1, 3);
        input_t in[3];
        cask_array_t *xs[3];
        char py[200] = "np.concatenate([";
        for (int k = 0; k < n; k++) {
            int64_t sh[CASK_MAX_NDIM], ch[CASK_MAX_NDIM];
            memcpy(sh, shape, sizeof sh);
            sh[ax] = pick(round % 7 == 6 ? 0 : 1, ndim == 1 ? 120 : 12);
            for (int x = 0; x < ndim; x++) /* round 3k: equal chunks, the free path */
                ch[x] = round % 3 ? pick(1, sh[x] + 2) : chunks[x];
            if (!(round % 3) && k + 1 < n)
                sh[ax] = chunks[ax] * pick(1, 3);
            make_input(g, &in[k], names[k], dts[next() % 4], ndim, sh, ch);
            xs[k] = round % 4 == 1 && k == 0 ? T(bins(CASK_MUL, in[k].arr, cask_int(2))) : in[k].arr;
            snprintf(py + strlen(py), sizeof py - strlen(py), "%s%s%s", k ? ", " : "",
                     names[k], xs[k] != in[k].arr ? " * 2" : "");
        }
        int axis = round % 2 ? ax - ndim : ax;
        snprintf(py + strlen(py), sizeof py - strlen(py), "], axis=%d)", axis);
        cask_array_t *r = cask_array_concatenate(xs, (size_t)n, axis, &err);
        if (!r)
            fail_msg("%s: %s", py, err.message);
        check_case(&m, py, in, n, r, 0, round % 2 ? "threads" : "sync");
        cask_array_decref(r);
        free_tmp();
        for (int k = 0; k < n; k++)
            free_input(&in[k]);
        cask_graph_decref(g);
    }
    man_run(&m);

    /* equal chunks and whole blocks: the result is the operands' blocks */
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    int64_t sa[2] = { 4, 6 }, sb[2] = { 4, 3 }, c[2] = { 2, 3 };
    double da[24], db[12], out[36];
    for (int i = 0; i < 24; i++)
        da[i] = i;
    for (int i = 0; i < 12; i++)
        db[i] = 100 + i;
    cask_array_t *xs[2] = { cask_array_from_buffer(g, CASK_F64, 2, sa, c, da, 0, &err),
                            cask_array_from_buffer(g, CASK_F64, 2, sb, c, db, 0, &err) };
    cask_array_t *r = cask_array_concatenate(xs, 2, 1, &err);
    assert_non_null(r);
    assert_int_equal(cask_array_shape(r)[1], 9);
    cask_compute_info_t info;
    assert_ok(cask_array_compute(&r, 1, NULL, (void *[]){ out }, &info, &err), &err);
    assert_int_equal(info.tasks, 6); /* 4 + 2 source blocks, no copies */
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 9; j++)
            assert_true(out[i * 9 + j] == (j < 6 ? da[i * 6 + j] : db[i * 3 + j - 6]));
    cask_array_decref(r);
    /* errors name the shapes */
    assert_null(cask_array_concatenate(xs, 2, 0, &err));
    assert_msg_has(&err, "(4, 6) and (4, 3)");
    assert_null(cask_array_concatenate(xs, 2, 2, &err));
    assert_msg_has(&err, "axis 2");
    assert_null(cask_array_concatenate(xs, 0, 0, &err));
    cask_array_t *bad[2] = { xs[0], NULL };
    assert_null(cask_array_concatenate(bad, 2, 0, &err));
    cask_array_decref(xs[0]);
    cask_array_decref(xs[1]);
    cask_graph_decref(g);
}

/* test.poly(block, c): c * x^2 over a float64 block; test.shrink: a block
** one element short (a mistake map_blocks must report, not trust). */
static int k_poly(const cask_value_t *args, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    cask_nd_t v, o;
    if (n != 2 || cask_value_nd(&args[0], &v) || v.dtype != CASK_F64)
        return cask_kernel_fail(ctx, "poly takes a float64 block and a number");
    double c = cask_value_double(&args[1]);
    int rc = cask_value_ndarray(CASK_F64, v.ndim, v.shape, out, NULL);
    if (rc)
        return rc;
    cask_value_nd(out, &o);
    for (size_t i = 0; i < v.size; i++)
        ((double *)o.data)[i] = c * ((const double *)v.data)[i] * ((const double *)v.data)[i];
    return 0;
}

static int k_shrink(const cask_value_t *args, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    cask_nd_t v;
    if (n != 1 || cask_value_nd(&args[0], &v) || v.ndim != 1)
        return cask_kernel_fail(ctx, "shrink takes a 1-d block");
    int64_t len = v.shape[0] ? v.shape[0] - 1 : 0;
    return cask_value_ndarray(v.dtype, 1, &len, out, NULL);
}

/* map_blocks with a user kernel, against NumPy, fused with what follows. */
static void test_map_blocks(void **state)
{
    (void)state;
    cask_error_t err;
    assert_ok(cask_kernel_register("test.poly", k_poly, NULL, &err), &err);
    assert_ok(cask_kernel_register("test.shrink", k_shrink, NULL, &err), &err);
    manifest_t m;
    man_open(&m);
    for (int round = 0; round < 10; round++) {
        cask_graph_t *g = cask_graph_new(&err);
        int64_t shape[CASK_MAX_NDIM], chunks[CASK_MAX_NDIM];
        int ndim = random_layout(shape, chunks);
        input_t in[1];
        make_input(g, &in[0], "a", CASK_F64, ndim, shape, chunks);
        cask_value_t c = cask_double(2.5);
        cask_array_t *p = cask_array_map_blocks(in[0].arr, "test.poly", CASK_F64, &c, 1, &err);
        assert_non_null(p);
        cask_array_t *r = bins(CASK_ADD, p, cask_int(1));
        check_case(&m, "2.5 * a * a + 1", in, 1, r, 1e-12, round % 2 ? "threads" : "processes");
        cask_array_decref(p);
        cask_array_decref(r);
        free_input(&in[0]);
        cask_graph_decref(g);
    }
    man_run(&m);
    cask_graph_t *g = cask_graph_new(&err);
    cask_array_t *a = cask_array_arange(g, CASK_F64, 4, 0, 10, 1, &err);
    cask_array_t *bad = cask_array_map_blocks(a, "test.shrink", CASK_F64, NULL, 0, &err);
    assert_non_null(bad);
    double out[10];
    assert_int_equal(cask_array_compute(&bad, 1, NULL, (void *[]){ out }, NULL, &err), CASK_ETYPE);
    assert_msg_has(&err, "not a float64 block of its shape");
    assert_null(cask_array_map_blocks(a, "test.nonesuch", CASK_F64, NULL, 0, &err));
    assert_int_equal(err.code, CASK_ENOKERNEL);
    cask_array_decref(a);
    cask_array_decref(bad);
    cask_graph_decref(g);
}

/* test.spoil(block, mode): a float64 block as it is while its first
** element is under 4; from there one element short (mode 0) or float32
** (mode 1). */
static int k_spoil(const cask_value_t *args, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    cask_nd_t v;
    if (n != 2 || cask_value_nd(&args[0], &v) || v.dtype != CASK_F64 || v.ndim != 1 ||
        args[1].type != CASK_INT64)
        return cask_kernel_fail(ctx, "spoil takes a 1-d float64 block and a mode");
    if (!v.size || ((const double *)v.data)[0] < 4) {
        *out = args[0];
        cask_value_incref(out);
        return 0;
    }
    int64_t len = args[1].u.i ? v.shape[0] : v.shape[0] - 1;
    int rc = cask_value_ndarray(args[1].u.i ? CASK_F32 : CASK_F64, 1, &len, out, NULL);
    if (!rc) {
        cask_nd_t o;
        cask_value_nd(out, &o);
        memset(o.data, 0, o.size * cask_dtype_size(o.dtype));
    }
    return rc;
}

/* cask_array_compute refuses a block that is wrong and writes nothing of
** it: here the second and third of three blocks have the wrong shape, or
** the wrong dtype. Blocks copied before the failure may be in the buffers
** (the bad array's, and a good array's computed with it), with their
** values; the bad blocks' places keep what they held. */
static void test_failed_compute_leaves_buffers(void **state)
{
    (void)state;
    cask_error_t err;
    assert_ok(cask_kernel_register("test.spoil", k_spoil, NULL, &err), &err);
    cask_graph_t *g = cask_graph_new(&err);
    cask_array_t *a = cask_array_arange(g, CASK_F64, 4, 0, 10, 1, &err);
    for (int mode = 0; mode < 2; mode++) {
        cask_value_t arg = cask_int(mode);
        cask_array_t *bad = cask_array_map_blocks(a, "test.spoil", CASK_F64, &arg, 1, &err);
        assert_non_null(bad);
        double good[10], out[10];
        for (int k = 0; k < 10; k++)
            good[k] = out[k] = -1;
        assert_int_equal(cask_array_compute(&bad, 1, NULL, (void *[]){ out }, NULL, &err),
                         CASK_ETYPE);
        assert_msg_has(&err, "of array 0 is not a float64 block of its shape");
        assert_true(strstr(err.message, "block 1 ") || strstr(err.message, "block 2 "));
        cask_array_t *both[2] = { a, bad };
        assert_int_equal(cask_array_compute(both, 2, NULL, (void *[]){ good, out }, NULL, &err),
                         CASK_ETYPE);
        assert_msg_has(&err, "of array 1 is not");
        for (int k = 0; k < 10; k++)
            if ((out[k] != -1 && (k >= 4 || out[k] != k)) || (good[k] != -1 && good[k] != k))
                fail_msg("mode %d: element %d is %g, %g", mode, k, out[k], good[k]);
        cask_array_decref(bad);
    }
    cask_array_decref(a);
    cask_graph_decref(g);
}

/* ------------------------------------------------------- generators */

static double normal_cdf(double x)
{
    return 0.5 * erfc(-x / sqrt(2));
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The normal generator's output is standard normal: Kolmogorov-Smirnov
** distance under its 0.1% critical value on 400,000 samples, and the
** tails (beyond 3 sigma, where the ziggurat's slow paths are) about right. */
static void test_normal_distribution(void **state)
{
    (void)state;
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    int64_t n = 400000, chunk = 65536;
    cask_array_t *x = cask_array_random_normal(g, 1, &n, &chunk, 7, 0, 1, &err);
    double *v = malloc((size_t)n * sizeof *v);
    assert_ok(cask_array_compute(&x, 1, NULL, (void **)&v, NULL, &err), &err);
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    double d = 0;
    size_t tail = 0;
    for (int64_t i = 0; i < n; i++) {
        double f = normal_cdf(v[i]);
        d = fmax(d, fmax(fabs(f - (double)i / (double)n), fabs(f - (double)(i + 1) / (double)n)));
        tail += fabs(v[i]) > 3;
    }
    print_message("KS distance %.5f, beyond 3 sigma %zu of %lld\n", d, tail, (long long)n);
    assert_true(d < 1.95 / sqrt((double)n));
    /* 0.27% expected: 1080; 5 sigma of a binomial is about 165 */
    assert_in_range(tail, 1080 - 165, 1080 + 165);
    free(v);
    cask_array_decref(x);
    cask_graph_decref(g);
}

/* Elements depend on the seed and the index only: the same values for any
** chunks and any scheduler; sums agree to rounding. */
static void test_chunking_and_scheduler_independence(void **state)
{
    (void)state;
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    int64_t shape[2] = { 301, 77 };
    size_t n = 301 * 77;
    double *ref = malloc(n * 8), *got = malloc(n * 8), sref = 0;
    const int64_t chunkings[4][2] = { { 301, 77 }, { 1, 77 }, { 50, 7 }, { 13, 100 } };
    const char *scheds[4] = { "sync", "threads", "processes", "threads" };
    for (int c = 0; c < 4; c++) {
        cask_array_t *x = cask_array_random_normal(g, 2, shape, chunkings[c], 3, 1, 2, &err);
        cask_array_t *u = cask_array_random_uniform(g, 2, shape, chunkings[c], 3, -1, 1, &err);
        cask_array_t *y = bin(CASK_MUL, x, u);
        cask_array_t *s = cask_array_reduce(y, CASK_SUM, NULL, &err);
        double sum;
        cask_compute_opts_t o = { .scheduler = scheds[c], .workers = 2 };
        cask_array_t *outs[2] = { y, s };
        assert_ok(cask_array_compute(outs, 2, &o, (void *[]){ c ? got : ref, &sum }, NULL, &err), &err);
        if (!c)
            sref = sum;
        else {
            assert_memory_equal(ref, got, n * 8);
            assert_true(fabs(sum - sref) <= 1e-12 * fabs(sref) + 1e-9);
        }
        cask_array_decref(x);
        cask_array_decref(u);
        cask_array_decref(y);
        cask_array_decref(s);
    }
    free(ref);
    free(got);
    cask_graph_decref(g);
}

/* ---------------------------------------------------- building and errors */

static void test_build_errors(void **state)
{
    (void)state;
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    int64_t s1[2] = { 3, 4 }, s2[1] = { 5 }, c1[2] = { 2, 2 }, c2[2] = { 3, 4 }, bad[2] = { 0, 2 };
    double buf[12] = { 0 };
    cask_array_t *a = cask_array_from_buffer(g, CASK_F64, 2, s1, c1, buf, 0, &err);
    cask_array_t *b = cask_array_full(g, CASK_F64, 1, s2, NULL, 1, &err);
    assert_non_null(a);
    assert_non_null(b);
    assert_null(cask_array_binop(a, CASK_ADD, b, &err));
    assert_int_equal(err.code, CASK_EINVAL);
    assert_msg_has(&err, "shapes (3, 4) and (5,) do not broadcast");
    assert_null(cask_array_from_buffer(g, CASK_F64, 2, s1, bad, buf, 0, &err));
    assert_msg_has(&err, "chunk 0 along axis 0");
    assert_null(cask_array_full(g, CASK_I64, 2, s1, NULL, 1e30, &err));
    assert_msg_has(&err, "not an int64");
    int64_t neg[1] = { -2 };
    assert_null(cask_array_full(g, CASK_F64, 1, neg, NULL, 0, &err));
    assert_msg_has(&err, "negative");
    /* chunks that differ line up: the larger of each axis's chunks */
    cask_array_t *a2 = cask_array_from_buffer(g, CASK_F64, 2, s1, c2, buf, 0, &err);
    cask_array_t *a3 = cask_array_binop(a, CASK_ADD, a2, &err);
    assert_non_null(a3);
    assert_int_equal(cask_array_chunks(a3)[0], 3);
    assert_int_equal(cask_array_chunks(a3)[1], 4);
    cask_array_decref(a3);
    cask_array_t *m = cask_array_full(g, CASK_BOOL, 2, s1, NULL, 1, &err);
    assert_null(cask_array_binop(m, CASK_ADD, m, &err));
    assert_int_equal(err.code, CASK_ETYPE);
    assert_null(cask_array_unop(m, CASK_NEG, &err));
    assert_int_equal(err.code, CASK_ETYPE);
    assert_null(cask_array_where(a, a, a, &err));
    assert_msg_has(&err, "condition is float64");
    cask_reduce_opts_t o = { .axes = CASK_AXIS(2) };
    assert_null(cask_array_reduce(a, CASK_SUM, &o, &err));
    assert_msg_has(&err, "2 axes");
    cask_reduce_opts_t o2 = { .axes = CASK_AXIS(0) | CASK_AXIS(1), .split_every = 0 };
    cask_array_t *ok = cask_array_reduce(a, CASK_ARGMIN, &o2, &err); /* all axes: fine */
    assert_non_null(ok);
    int64_t s3[3] = { 2, 2, 2 };
    cask_array_t *c3 = cask_array_full(g, CASK_F64, 3, s3, NULL, 0, &err);
    assert_null(cask_array_reduce(c3, CASK_ARGMAX, &o2, &err));
    assert_msg_has(&err, "several axes");
    int64_t zero[1] = { 0 };
    cask_array_t *e = cask_array_full(g, CASK_F64, 1, zero, NULL, 0, &err);
    assert_null(cask_array_reduce(e, CASK_MIN, NULL, &err));
    assert_msg_has(&err, "no identity");
    /* a NULL operand (an earlier failure) is refused, not a crash */
    assert_null(cask_array_binop(NULL, CASK_ADD, a, &err));
    assert_msg_has(&err, "earlier array call failed");
    assert_null(cask_array_reduce(NULL, CASK_SUM, NULL, &err));
    cask_graph_t *g2 = cask_graph_new(&err);
    cask_array_t *other = cask_array_full(g2, CASK_F64, 2, s1, c1, 1, &err);
    assert_null(cask_array_binop(a, CASK_ADD, other, &err));
    assert_msg_has(&err, "different graphs");
    cask_array_t *all[] = { a, b, a2, m, ok, c3, e, other };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        cask_array_decref(all[i]);
    cask_graph_decref(g);
    cask_graph_decref(g2);
}

/* Empty arrays, 0-d arrays, a borrowed buffer read at compute time, and an
** array that outlives the graph handle. */
static void test_edges(void **state)
{
    (void)state;
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    int64_t zero[2] = { 0, 3 };
    cask_array_t *e = cask_array_full(g, CASK_F64, 2, zero, NULL, 1, &err);
    cask_array_t *s = cask_array_reduce(e, CASK_SUM, NULL, &err);
    cask_reduce_opts_t o = { .axes = CASK_AXIS(0) };
    cask_array_t *s0 = cask_array_reduce(e, CASK_SUM, &o, &err);
    double sum = -1, col[3] = { -1, -1, -1 };
    cask_array_t *outs[2] = { s, s0 };
    assert_ok(cask_array_compute(outs, 2, NULL, (void *[]){ &sum, col }, NULL, &err), &err);
    assert_true(sum == 0 && col[0] == 0 && col[2] == 0);
    /* 0-d */
    cask_array_t *z = cask_array_full(g, CASK_I64, 0, NULL, NULL, 7, &err);
    cask_array_t *z2 = bins(CASK_MUL, z, cask_int(6));
    int64_t v = 0;
    assert_ok(cask_array_compute(&z2, 1, NULL, (void *[]){ &v }, NULL, &err), &err);
    assert_int_equal(v, 42);
    /* borrowed: the buffer is read when the compute runs */
    double buf[5] = { 1, 2, 3, 4, 5 };
    int64_t n5 = 5, c2 = 2;
    cask_array_t *b = cask_array_from_buffer(g, CASK_F64, 1, &n5, &c2, buf, 0, &err);
    cask_array_t *bs = cask_array_reduce(b, CASK_SUM, NULL, &err);
    buf[4] = 50;
    assert_ok(cask_array_compute(&bs, 1, NULL, (void *[]){ &sum }, NULL, &err), &err);
    assert_true(sum == 60);
    /* the array keeps its graph */
    cask_graph_decref(g);
    assert_ok(cask_array_compute(&bs, 1, NULL, (void *[]){ &sum }, NULL, &err), &err);
    assert_true(sum == 60);
    /* arange: numpy.arange(2, 11, 3) is 2 5 8; linspace(0, 1, 5) */
    g = cask_graph_new(&err);
    cask_array_t *ar = cask_array_arange(g, CASK_I64, 2, 2, 11, 3, &err);
    cask_array_t *ls = cask_array_linspace(g, 2, 0, 1, 5, true, &err);
    int64_t got[3];
    double lg[5];
    cask_array_t *o2[2] = { ar, ls };
    assert_ok(cask_array_compute(o2, 2, NULL, (void *[]){ got, lg }, NULL, &err), &err);
    assert_true(got[0] == 2 && got[1] == 5 && got[2] == 8);
    assert_true(lg[0] == 0 && lg[1] == 0.25 && lg[4] == 1);
    assert_null(cask_array_arange(g, CASK_F64, 0, 0, 1, 0, &err));
    cask_array_t *all[] = { e, s, s0, z, z2, b, bs, ar, ls };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        cask_array_decref(all[i]);
    cask_graph_decref(g);
}

/* An input over a borrowed buffer (make_input's, made again without
** CASK_ARRAY_COPY). */
static void borrow_input(cask_graph_t *g, input_t *in, const char *name, cask_dtype_t dt,
                         int ndim, const int64_t *shape, const int64_t *chunks)
{
    cask_error_t err;
    make_input(g, in, name, dt, ndim, shape, chunks);
    cask_array_decref(in->arr);
    in->arr = cask_array_from_buffer(g, dt, ndim, shape, chunks, in->data, 0, &err);
    assert_non_null(in->arr);
}

/* Borrowed buffers compute on sync, threads and processes (against NumPy,
** read when the compute runs); a graph that holds one cannot be saved
** (the buffer is no literal: CASK_ETYPE, nothing written), one that
** copies its buffer saves and computes the same from the file. */
static void test_borrowed_buffers(void **state)
{
    (void)state;
    static const char *const scheds[] = { "sync", "threads", "processes" };
    manifest_t m;
    man_open(&m);
    cask_error_t err;
    for (int s = 0; s < 3; s++) {
        cask_graph_t *g = cask_graph_new(&err);
        int64_t shape[2] = { 23, 17 }, chunks[2] = { 5, 4 };
        input_t in[2];
        borrow_input(g, &in[0], "a", CASK_F64, 2, shape, chunks);
        borrow_input(g, &in[1], "i", CASK_I64, 2, shape, chunks);
        cask_reduce_opts_t ax0 = { .axes = CASK_AXIS(0) };
        cask_array_t *r[4] = {
            T(bins(CASK_ADD, T(bins(CASK_MUL, in[0].arr, cask_int(2))), cask_int(0))),
            T(bin(CASK_MUL, in[0].arr, in[1].arr)),
            T(cask_array_reduce(in[1].arr, CASK_SUM, NULL, &err)),
            T(cask_array_reduce(in[0].arr, CASK_STD, &ax0, &err)),
        };
        static const char *const py[4] = { "a * 2 + 0", "a * i", "np.asarray(i.sum())",
                                           "a.std(axis=0)" };
        ((double *)in[0].data)[0] = 42; /* after building: read when the compute runs */
        ((int64_t *)in[1].data)[390] = -7;
        for (int k = 0; k < 4; k++)
            check_case(&m, py[k], in, 2, r[k], 1e-12, scheds[s]);
        free_tmp();
        free_input(&in[0]);
        free_input(&in[1]);
        cask_graph_decref(g);
    }
    man_run(&m);

    char path[] = "/tmp/cask-borrow-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    cask_graph_t *g = cask_graph_new(&err);
    double buf[6] = { 1, 2, 3, 4, 5, 6 }, got[6];
    int64_t n = 6, c = 4;
    cask_array_t *b = cask_array_from_buffer(g, CASK_F64, 1, &n, &c, buf, 0, &err);
    assert_non_null(b);
    assert_int_equal(cask_graph_save_json(g, path, &err), CASK_ETYPE);
    assert_msg_has(&err, "opaque");
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    assert_int_equal(fgetc(f), EOF); /* nothing was written */
    fclose(f);
    cask_array_decref(b);
    cask_graph_decref(g);
    g = cask_graph_new(&err);
    b = cask_array_from_buffer(g, CASK_F64, 1, &n, &c, buf, CASK_ARRAY_COPY, &err);
    cask_task_t t[2];
    assert_int_equal(cask_array_tasks(b, t, 2, &err), 2);
    assert_ok(cask_graph_set_outputs(g, t, 2, &err), &err);
    assert_ok(cask_graph_save_json(g, path, &err), &err);
    cask_graph_t *back = NULL;
    assert_ok(cask_graph_load_json(path, 0, &back, &err), &err);
    size_t no;
    const cask_task_t *outs = cask_graph_outputs(back, &no);
    assert_int_equal(no, 2);
    cask_value_t v[2];
    assert_ok(cask_compute(back, outs, 2, NULL, v, NULL, &err), &err);
    for (int k = 0; k < 2; k++) {
        cask_nd_t nd;
        assert_ok(cask_value_nd(&v[k], &nd), &err);
        memcpy(got + 4 * k, nd.data, nd.size * sizeof *got);
        cask_value_decref(&v[k]);
    }
    assert_memory_equal(got, buf, sizeof buf);
    cask_graph_decref(back);
    cask_array_decref(b);
    cask_graph_decref(g);
    unlink(path);
}

/* Load a graph file's text and compute its recorded outputs on sync; the
** return code, with err filled. */
static int run_text(const char *text, cask_error_t *err)
{
    cask_graph_t *g = NULL;
    int rc = cask_graph_parse_json(text, strlen(text), 0, &g, err);
    if (rc)
        return rc;
    size_t n;
    const cask_task_t *outs = cask_graph_outputs(g, &n);
    cask_value_t v[8];
    assert_true(n <= 8);
    cask_compute_opts_t o = { .scheduler = "sync" };
    rc = cask_compute(g, outs, n, &o, v, NULL, err);
    for (size_t i = 0; !rc && i < n; i++)
        cask_value_decref(&v[i]);
    cask_graph_decref(g);
    return rc;
}

/* The JSON literal of bytes p[0..len). */
static char *bytes_json(const void *p, size_t len)
{
    cask_value_t v;
    cask_error_t err;
    assert_ok(cask_value_bytes(p, len, &v, &err), &err);
    char *s = cask_value_to_json(&v);
    cask_value_decref(&v);
    assert_non_null(s);
    return s;
}

/* A graph file reaches no pointer: cask.array.borrow named in a file, with
** the old form of its arguments (a header and an address, of a real
** buffer or a made-up one) or any other literals, fails its task with a
** message and reads nothing. And a file cannot make a kernel ask for an
** impossible block: a program or a product whose block is larger than
** the machine's memory gets CASK_ENOMEM before anything is allocated;
** layouts past 2^60 elements, blocks that do not exist and gathers
** outside their source are refused. */
static void test_graph_files_reach_no_pointer(void **state)
{
    (void)state;
    cask_error_t err;
    static double secret[4] = { 11, 22, 33, 44 };
    ar_phead_t h;
    memset(&h, 0, sizeof h);
    h.magic = AR_MAGIC;
    h.ndim = 1;
    h.red = -1;
    h.dtype = CASK_F64;
    h.shape[0] = 4;
    h.chunk[0] = 4;
    const uint64_t addrs[2] = { (uint64_t)(uintptr_t)secret, 0x10 };
    char text[4096];
    for (int k = 0; k < 2; k++) {
        unsigned char d[sizeof h + 8];
        memcpy(d, &h, sizeof h);
        memcpy(d + sizeof h, &addrs[k], 8);
        char *lit = bytes_json(d, sizeof d);
        snprintf(text, sizeof text, "{\"format\": \"cask-graph\", \"version\": 1, \"tasks\": "
                 "[{\"key\": \"b\", \"kernel\": \"cask.array.borrow\", \"inputs\": [%s, 0]}]}",
                 lit);
        free(lit);
        assert_int_equal(run_text(text, &err), CASK_EKERNEL);
        assert_msg_has(&err, "a borrowed buffer (made by cask_array_from_buffer)");
        assert_string_equal(err.kernel, "cask.array.borrow");
    }
    static const char *const other[] = {
        "", "0", "0, 0", "12345, 0", "\"b\", 0", "null, 0", "{\"bytes\": \"AAAA\"}, -1",
        "{\"dtype\": \"float64\", \"shape\": [2], \"data\": [1, 2]}, 0",
        "{\"double\": \"nan\"}, 0, 0",
    };
    for (size_t k = 0; k < sizeof other / sizeof other[0]; k++) {
        snprintf(text, sizeof text, "{\"format\": \"cask-graph\", \"version\": 1, \"tasks\": "
                 "[{\"key\": \"b\", \"kernel\": \"cask.array.borrow\", \"inputs\": [%s]}]}",
                 other[k]);
        assert_int_equal(run_text(text, &err), CASK_EKERNEL);
        assert_msg_has(&err, "a borrowed buffer");
    }

    /* a program generating one block of 2^40 elements (8 TB): making the
    ** block is refused (ENOMEM); reducing it streams it, which here (the
    ** streaming limit lowered for the test) is refused as too long */
    struct {
        ar_phead_t h;
        ar_pnode_t n;
    } prog;
    memset(&prog, 0, sizeof prog);
    prog.h = h;
    prog.h.nnodes = 1;
    prog.h.shape[0] = prog.h.chunk[0] = (int64_t)1 << 40;
    prog.n.kind = N_GEN;
    prog.n.op = G_UNIFORM;
    prog.n.dtype = CASK_F64;
    prog.n.src_ndim = 1;
    prog.n.a = prog.n.b = prog.n.c = prog.n.arg = -1;
    memset(prog.n.map, -1, sizeof prog.n.map);
    prog.n.map[0] = 0;
    prog.n.src_shape[0] = prog.h.shape[0];
    prog.n.p[1] = 1;
    static const struct {
        const char *kernel, *args; /* after the program */
        int red, code;
        const char *says;
    } progs[] = {
        { "cask.array.eval", "0, 0", -1, CASK_ENOMEM, "larger than" },
        { "cask.array.reduce", "0, 1", CASK_SUM, CASK_ELIMIT, "one reduction task may read" },
        { "cask.array.eval", "-1, 0", -1, CASK_EKERNEL, "outside the array" },
        { "cask.array.eval", "1, 0", -1, CASK_EKERNEL, "outside the array" },
        { "cask.array.combine", "0, 1, {\"dtype\": \"float64\", \"shape\": [2, 1], \"data\": [1, 2]}",
          CASK_SUM, CASK_EKERNEL, "not a partial" },
    };
    cask__ar_max_stream = (uint64_t)1 << 30;
    for (size_t k = 0; k < sizeof progs / sizeof progs[0]; k++) {
        prog.h.red = progs[k].red;
        prog.h.axes = progs[k].red >= 0; /* a reduction over the one axis */
        char *lit = bytes_json(&prog, sizeof prog);
        snprintf(text, sizeof text, "{\"format\": \"cask-graph\", \"version\": 1, \"tasks\": "
                 "[{\"key\": \"p\", \"kernel\": \"%s\", \"inputs\": [%s, %s]}]}",
                 progs[k].kernel, lit, progs[k].args);
        free(lit);
        assert_int_equal(run_text(text, &err), progs[k].code);
        assert_msg_has(&err, progs[k].says);
    }
    cask__ar_max_stream = 0;
    /* layouts no array can have: refused as programs */
    int64_t sizes[3][2] = { { 0, (int64_t)1 << 62 }, { (int64_t)1 << 31, (int64_t)1 << 30 },
                            { -3, 1 } };
    for (int k = 0; k < 3; k++) {
        prog.h.red = -1;
        prog.h.ndim = 2;
        prog.h.shape[0] = sizes[k][0];
        prog.h.shape[1] = prog.h.chunk[1] = sizes[k][1];
        prog.h.chunk[0] = 1;
        prog.n.src_ndim = 2;
        prog.n.map[1] = 1;
        memcpy(prog.n.src_shape, prog.h.shape, sizeof prog.n.src_shape);
        char *lit = bytes_json(&prog, sizeof prog);
        snprintf(text, sizeof text, "{\"format\": \"cask-graph\", \"version\": 1, \"tasks\": "
                 "[{\"key\": \"p\", \"kernel\": \"cask.array.eval\", \"inputs\": [%s, 0, 0]}]}",
                 lit);
        free(lit);
        assert_int_equal(run_text(text, &err), CASK_EKERNEL);
        assert_msg_has(&err, "not a valid array program");
    }
    /* a product of a 2^20 x 0 block and a 0 x 2^20 one would be 8 TB of zeros */
    assert_int_equal(run_text("{\"format\": \"cask-graph\", \"version\": 1, \"tasks\": "
                              "[{\"key\": \"m\", \"kernel\": \"cask.array.matmul\", \"inputs\": "
                              "[1, {\"dtype\": \"float64\", \"shape\": [1048576, 0], \"data\": []}, "
                              "{\"dtype\": \"float64\", \"shape\": [0, 1048576], \"data\": []}]}]}",
                              &err), CASK_ENOMEM);
    assert_msg_has(&err, "larger than");
    assert_int_equal(run_text("{\"format\": \"cask-graph\", \"version\": 1, \"tasks\": "
                              "[{\"key\": \"m\", \"kernel\": \"cask.array.matmul\", \"inputs\": "
                              "[4611686018427387904, 1, 2]}]}", &err), CASK_EKERNEL);
    /* a gather whose source coordinates run past the source (or overflow) */
    ar_gather_t gd;
    memset(&gd, 0, sizeof gd);
    gd.out = h;
    gd.out.shape[0] = gd.out.chunk[0] = 3;
    gd.src_shape[0] = gd.src_chunk[0] = 4;
    const int64_t bad[3][2] = { { 2, 1 }, { 0, INT64_MAX }, { -1, 1 } }; /* start, step */
    for (int k = 0; k < 3; k++) {
        gd.start[0] = bad[k][0];
        gd.step[0] = bad[k][1];
        char *lit = bytes_json(&gd, sizeof gd);
        snprintf(text, sizeof text, "{\"format\": \"cask-graph\", \"version\": 1, \"tasks\": "
                 "[{\"key\": \"g\", \"kernel\": \"cask.array.gather\", \"inputs\": [%s, 0, "
                 "{\"dtype\": \"int64\", \"shape\": [1], \"data\": [0]}, "
                 "{\"dtype\": \"float64\", \"shape\": [4], \"data\": [1, 2, 3, 4]}]}]}", lit);
        free(lit);
        assert_int_equal(run_text(text, &err), CASK_EKERNEL);
        assert_msg_has(&err, "a bad gather description");
    }
}

/* A failing kernel inside an array compute is reported, and a bad program
** in a graph file is refused by the kernel rather than trusted. */
static void test_bad_program_refused(void **state)
{
    (void)state;
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    cask_value_t junk;
    assert_ok(cask_value_bytes("not a program", 13, &junk, &err), &err);
    cask_task_t t = CASK_DELAYED(g, "cask.array.eval", &err, junk, cask_int(0), cask_int(0));
    assert_true(t != CASK_NO_TASK);
    cask_value_t r;
    assert_int_equal(cask_compute(g, &t, 1, NULL, &r, NULL, &err), CASK_EKERNEL);
    assert_msg_has(&err, "not a valid array program");
    t = CASK_DELAYED(g, "cask.array.assemble", &err, junk, cask_int(0), cask_int(0));
    assert_int_equal(cask_compute(g, &t, 1, NULL, &r, NULL, &err), CASK_EKERNEL);
    assert_msg_has(&err, "an array header, a block, piece origins");
    cask_value_decref(&junk);
    cask_graph_decref(g);
}

/* .npy: what cask writes (block by block, on sync, threads and processes)
** NumPy reads back equal (every dtype, 0-d and 1-d too, ragged edge blocks); what NumPy writes cask reads back equal; bad files are refused,
** each with its reason. */
static void test_npy_round_trip(void **state)
{
    (void)state;
    cask_error_t err;
    char dir[] = "/tmp/cask-npy-XXXXXX", p[160], cmd[1024];
    assert_non_null(mkdtemp(dir));
    cask_graph_t *g = cask_graph_new(&err);
    static const char *const tags[] = { "f8", "f4", "i8", "b1", "f8_1d", "f8_0d" };
    const cask_dtype_t dts[] = { CASK_F64, CASK_F32, CASK_I64, CASK_BOOL, CASK_F64, CASK_F64 };
    int64_t shape[2] = { 7, 5 }, chunks[2] = { 3, 2 };
    input_t in[6];
    for (int k = 0; k < 6; k++) {
        make_input(g, &in[k], tags[k], dts[k], k < 4 ? 2 : k == 4 ? 1 : 0, shape, chunks);
        snprintf(p, sizeof p, "%s/cask_%s.npy", dir, tags[k]);
        static const char *const scheds[] = { "sync", "threads", "processes" };
        cask_compute_opts_t o = { .scheduler = scheds[k % 3], .workers = 2 };
        assert_ok(cask_array_save_npy(in[k].arr, p, &o, &err), &err);
        snprintf(p, sizeof p, "%s/raw_%s.bin", dir, tags[k]);
        FILE *f = fopen(p, "wb");
        size_t nb = cask_array_size(in[k].arr) * cask_dtype_size(dts[k]);
        assert_true(fwrite(in[k].data, nb ? nb : 1, 1, f) == 1);
        fclose(f);
    }
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c \"\n"
             "import numpy as np, sys\n"
             "d = sys.argv[1]\n"
             "for t, dt, sh in [('f8', 'f8', (7, 5)), ('f4', 'f4', (7, 5)), ('i8', 'i8', (7, 5)),\n"
             "                  ('b1', '?', (7, 5)), ('f8_1d', 'f8', (7,)), ('f8_0d', 'f8', ())]:\n"
             "    a = np.load(d + '/cask_' + t + '.npy')\n"
             "    raw = np.fromfile(d + '/raw_' + t + '.bin', dtype=dt, count=int(np.prod(sh))).reshape(sh)\n"
             "    assert a.dtype == raw.dtype and a.shape == sh and np.array_equal(a, raw), t\n"
             "    np.save(d + '/np_' + t + '.npy', a)\n"
             "np.save(d + '/be.npy', np.arange(3, dtype='>f8'))\n"
             "np.save(d + '/fo.npy', np.asfortranarray(np.ones((2, 3))))\n"
             "np.save(d + '/i4.npy', np.arange(3, dtype=np.int32))\n"
             "open(d + '/trunc.npy', 'wb').write(open(d + '/np_f8.npy', 'rb').read()[:-5])\n"
             "open(d + '/junk.npy', 'wb').write(b'hello, not numpy')\n"
             "\" %s", dir);
    assert_int_equal(system(cmd), 0);
    for (int k = 0; k < 6; k++) { /* NumPy's files, read back by cask */
        snprintf(p, sizeof p, "%s/np_%s.npy", dir, tags[k]);
        int64_t c[2] = { 4, 4 };
        cask_array_t *a = cask_array_load_npy(g, p, c, &err);
        assert_non_null(a);
        assert_int_equal(cask_array_dtype(a), dts[k]);
        assert_int_equal(cask_array_ndim(a), in[k].ndim);
        size_t nb = cask_array_size(a) * cask_dtype_size(dts[k]);
        void *buf = malloc(nb + 1);
        assert_ok(cask_array_compute(&a, 1, NULL, &buf, NULL, &err), &err);
        assert_memory_equal(buf, in[k].data, nb);
        free(buf);
        cask_array_decref(a);
    }
    static const struct { const char *file; int code; const char *says; } bad[] = {
        { "be.npy", CASK_ETYPE, "dtype '>f8'" },
        { "fo.npy", CASK_EPARSE, "Fortran order" },
        { "i4.npy", CASK_ETYPE, "dtype '<i4'" },
        { "trunc.npy", CASK_EPARSE, "bytes of data, 280 expected" },
        { "junk.npy", CASK_EPARSE, "not a .npy file" },
        { "missing.npy", CASK_EIO, "cannot read" },
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        snprintf(p, sizeof p, "%s/%s", dir, bad[k].file);
        assert_null(cask_array_load_npy(g, p, NULL, &err));
        assert_int_equal(err.code, bad[k].code);
        assert_msg_has(&err, bad[k].says);
    }
    for (int k = 0; k < 6; k++)
        free_input(&in[k]);
    cask_graph_decref(g);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* A store that fails leaves no file that looks complete: nothing at a new
** path, the old file untouched at an existing one, and no part file. */
static void test_save_npy_fails_cleanly(void **state)
{
    (void)state;
    cask_error_t err;
    char dir[] = "/tmp/cask-save-XXXXXX", p[160], q[200];
    assert_non_null(mkdtemp(dir));
    assert_ok(cask_kernel_register("test.spoil", k_spoil, NULL, &err), &err);
    cask_graph_t *g = cask_graph_new(&err);
    cask_array_t *a = cask_array_arange(g, CASK_F64, 4, 0, 10, 1, &err);
    cask_value_t arg = cask_int(0);
    cask_array_t *bad = cask_array_map_blocks(a, "test.spoil", CASK_F64, &arg, 1, &err);
    static const char *const scheds[] = { "sync", "threads", "processes" };
    for (int k = 0; k < 3; k++) {
        cask_compute_opts_t o = { .scheduler = scheds[k], .workers = 2 };
        snprintf(p, sizeof p, "%s/new.npy", dir);
        assert_int_equal(cask_array_save_npy(bad, p, &o, &err), CASK_ETYPE);
        assert_int_equal(access(p, F_OK), -1);
        snprintf(p, sizeof p, "%s/old.npy", dir);
        FILE *f = fopen(p, "w");
        fputs("the old file", f);
        fclose(f);
        assert_int_equal(cask_array_save_npy(bad, p, &o, &err), CASK_ETYPE);
        char buf[32] = "";
        f = fopen(p, "r");
        assert_non_null(fgets(buf, sizeof buf, f));
        fclose(f);
        assert_string_equal(buf, "the old file");
        assert_ok(cask_array_save_npy(a, p, &o, &err), &err); /* and replaced by a good one */
        cask_array_t *back = cask_array_load_npy(g, p, NULL, &err);
        double got[10];
        assert_ok(cask_array_compute(&back, 1, NULL, (void *[]){ got }, NULL, &err), &err);
        for (int i = 0; i < 10; i++)
            assert_true(got[i] == i);
        cask_array_decref(back);
        remove(p);
    }
    snprintf(q, sizeof q, "ls -A %s | grep -q .", dir); /* nothing left behind */
    assert_int_not_equal(system(q), 0);
    snprintf(p, sizeof p, "%s/no/such/dir/x.npy", dir);
    assert_int_equal(cask_array_save_npy(a, p, NULL, &err), CASK_EIO);
    assert_msg_has(&err, "cannot write");
    cask_array_decref(bad);
    cask_array_decref(a);
    cask_graph_decref(g);
    remove(dir);
}

/* cask_array_compute_blocks into a whole 1024 x 2048 buffer, each element
** written once (seen counts). */
typedef struct place {
    pthread_mutex_t lock;
    double *whole;
    unsigned char *seen;
    int calls;
} place_t;

static int place_block(void *udata, const int64_t *start, const int64_t *shape, const void *data)
{
    place_t *p = udata;
    const double *d = data;
    pthread_mutex_lock(&p->lock);
    p->calls++;
    for (int64_t i = 0; i < shape[0]; i++)
        for (int64_t j = 0; j < shape[1]; j++) {
            size_t at = (size_t)(start[0] + i) * 2048 + (size_t)(start[1] + j);
            p->whole[at] = d[i * shape[1] + j];
            p->seen[at]++;
        }
    pthread_mutex_unlock(&p->lock);
    return 0;
}

/* Reductions over a 16 MB file in 64 blocks, on every back-end. Read
** lazily, every task reads its own region of the file, so nothing but
** partials is held (the anomaly's mean too: it reads x twice). Over the
** same data in a borrowed buffer, whose blocks are tasks, the priority
** order (cask/sched.h) keeps a few blocks alive, not the array: an order by
** upward rank alone read every block first (16.8 MB for the sum, all 64
** blocks or more for each). The bounds leave room for the blocks in flight
** and for the batches the threads and processes schedulers send ahead when
** tasks are short (measured, of 64 blocks: sum 1 to 3, rechunk 3 to 7,
** transpose 2 to 22, anomaly 8 to 15). A memory budget of a few blocks is
** kept in both, except for the anomaly over blocks, which must hold a
** column of 8 blocks for its mean and is stopped, cleanly, under 2. */
static void test_order_memory(void **state)
{
    (void)state;
    static const char *const scheds[] = { "sync", "threads", "processes" };
    const size_t blk = 128 * 256 * 8, sq = 128 * 128 * 8;
    char dir[] = "/tmp/cask-order-XXXXXX", px[64], py[64];
    assert_non_null(mkdtemp(dir));
    snprintf(px, sizeof px, "%s/x.npy", dir);
    snprintf(py, sizeof py, "%s/y.npy", dir);
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    int64_t shape[] = { 1024, 2048 }, ch[] = { 128, 256 }, ch2[] = { 256, 128 };
    int64_t sshape[] = { 1024, 1024 }, sch[] = { 128, 128 };
    cask_array_t *rx = cask_array_random_normal(g, 2, shape, NULL, 5, 0, 1, &err);
    cask_array_t *ry = cask_array_random_normal(g, 2, sshape, NULL, 6, 0, 1, &err);
    assert_ok(cask_array_save_npy(rx, px, NULL, &err), &err);
    assert_ok(cask_array_save_npy(ry, py, NULL, &err), &err);
    cask_array_decref(rx);
    cask_array_decref(ry);
    cask_graph_decref(g);
    double *bx = malloc(1024 * 2048 * sizeof *bx), *by = malloc(1024 * 1024 * sizeof *by);
    g = cask_graph_new(&err);
    cask_array_t *lx = cask_array_load_npy(g, px, NULL, &err), *ly = cask_array_load_npy(g, py, NULL, &err);
    assert_ok(cask_array_compute((cask_array_t *[]){ lx, ly }, 2, NULL, (void *[]){ bx, by }, NULL,
                                 &err), &err);
    cask_array_decref(lx);
    cask_array_decref(ly);
    cask_graph_decref(g);
    for (int k = 0; k < 6; k++) {
        int file = k < 3;
        g = cask_graph_new(&err);
        cask_array_t *x = file ? cask_array_open_npy(g, px, ch, &err)
                               : cask_array_from_buffer(g, CASK_F64, 2, shape, ch, bx, 0, &err);
        cask_array_t *y = file ? cask_array_open_npy(g, py, sch, &err)
                               : cask_array_from_buffer(g, CASK_F64, 2, sshape, sch, by, 0, &err);
        assert_non_null(x);
        assert_non_null(y);
        cask_reduce_opts_t ax0 = { .axes = CASK_AXIS(0) };
        cask_array_t *t[5] = { cask_array_rechunk(x, ch2, &err), cask_array_transpose(y, NULL, &err),
                               NULL, cask_array_reduce(x, CASK_MEAN, &ax0, &err), NULL };
        t[2] = cask_array_binop(y, CASK_ADD, t[1], &err);
        t[4] = cask_array_binop(x, CASK_SUB, t[3], &err);
        cask_array_t *r[4] = {
            cask_array_reduce(x, CASK_SUM, NULL, &err),
            cask_array_reduce(t[0], CASK_SUM, NULL, &err),
            cask_array_reduce(t[2], CASK_SUM, NULL, &err),
            cask_array_reduce(t[4], CASK_STD, &ax0, &err),
        };
        const size_t most[2][4] = { { 8 * blk, 32 * blk, 32 * sq, 32 * blk },
                                    { blk / 4, blk / 4, sq / 4, blk } };
        for (int i = 0; i < 4; i++) {
            assert_non_null(r[i]);
            double out[2048];
            cask_compute_opts_t o = { .scheduler = scheds[k % 3], .workers = 2 };
            cask_compute_info_t info;
            assert_ok(cask_array_compute(&r[i], 1, &o, (void *[]){ out }, &info, &err), &err);
            assert_true(isfinite(out[0]));
            if (getenv("SHOWPEAK"))
                fprintf(stderr, "%s %s %d %.2f blocks\n", scheds[k % 3], file ? "file" : "buffer",
                        i, (double)info.peak_bytes / (i == 2 ? sq : blk));
            if (info.peak_bytes > most[file][i])
                fail_msg("%s, %s, reduction %d: %zu bytes alive at the peak, over %zu",
                         scheds[k % 3], file ? "file" : "buffer", i, info.peak_bytes,
                         most[file][i]);
            const size_t budget[4] = { 3 * blk, 6 * blk, 3 * sq, 2 * blk };
            double again[2048];
            o.memory_limit = budget[i];
            int rc = cask_array_compute(&r[i], 1, &o, (void *[]){ again }, &info, &err);
            if (i < 3 || file) {
                assert_ok(rc, &err);
                assert_memory_equal(again, out, (i == 3 ? 2048 : 1) * sizeof(double));
            } else {
                assert_int_equal(rc, CASK_ENOMEM);
                assert_non_null(strstr(err.message, "too small for this graph"));
            }
            if (info.peak_bytes > budget[i])
                fail_msg("%s, reduction %d: %zu bytes alive, over the budget of %zu", scheds[k % 3],
                         i, info.peak_bytes, budget[i]);
            if (getenv("SHOWPEAK"))
                fprintf(stderr, "%s %s %d %.2f blocks with a budget of %.0f\n", scheds[k % 3],
                        file ? "file" : "buffer", i,
                        (double)info.peak_bytes / (i == 2 ? sq : blk),
                        (double)budget[i] / (i == 2 ? sq : blk));
            cask_array_decref(r[i]);
        }
        for (int i = 0; i < 5; i++)
            cask_array_decref(t[i]);
        /* the blocks themselves: into a buffer, or to a function, as they come */
        double *whole = malloc(1024 * 2048 * sizeof *whole), *ref = malloc(1024 * 2048 * sizeof *ref);
        cask_array_t *now = cask_array_load_npy(g, px, NULL, &err);
        assert_ok(cask_array_compute(&now, 1, NULL, (void *[]){ ref }, NULL, &err), &err);
        cask_compute_opts_t o = { .scheduler = scheds[k % 3], .workers = 2 };
        cask_compute_info_t info;
        assert_ok(cask_array_compute(&x, 1, &o, (void *[]){ whole }, &info, &err), &err);
        assert_memory_equal(whole, ref, 1024 * 2048 * sizeof *ref);
        if (info.peak_bytes > 8 * blk)
            fail_msg("%s: computing 64 blocks into a buffer held %zu bytes", scheds[k % 3],
                     info.peak_bytes);
        place_t pl = { .lock = PTHREAD_MUTEX_INITIALIZER, .whole = whole,
                       .seen = calloc(1024 * 2048, 1) };
        memset(whole, 0, 1024 * 2048 * sizeof *whole);
        assert_ok(cask_array_compute_blocks(x, &o, place_block, &pl, &info, &err), &err);
        assert_int_equal(pl.calls, 64);
        for (size_t i = 0; i < 1024 * 2048; i++)
            if (pl.seen[i] != 1)
                fail_msg("%s: element %zu placed %d times", scheds[k % 3], i, pl.seen[i]);
        assert_memory_equal(whole, ref, 1024 * 2048 * sizeof *ref);
        assert_true(info.peak_bytes <= 8 * blk);
        /* within a budget of two blocks */
        memset(whole, 0, 1024 * 2048 * sizeof *whole);
        o.memory_limit = 2 * blk;
        assert_ok(cask_array_compute(&x, 1, &o, (void *[]){ whole }, &info, &err), &err);
        assert_memory_equal(whole, ref, 1024 * 2048 * sizeof *ref);
        assert_true(info.peak_bytes <= 2 * blk);
        o.memory_limit = blk - 1; /* a block alone is over it: refused before it starts */
        assert_int_equal(cask_array_compute(&x, 1, &o, (void *[]){ whole }, &info, &err),
                         CASK_ENOMEM);
        assert_non_null(strstr(err.message, "over the memory budget"));
        o.memory_limit = 0;
        assert_int_equal(cask_array_compute_blocks(x, &o, NULL, NULL, NULL, &err), CASK_EINVAL);
        free(pl.seen);
        free(whole);
        free(ref);
        cask_array_decref(now);
        cask_array_decref(x);
        cask_array_decref(y);
        cask_graph_decref(g);
    }
    free(bx);
    free(by);
    remove(px);
    remove(py);
    remove(dir);
}

/* Lazy .npy reads: files NumPy wrote, opened with random chunks, read
** back equal to np.load on every scheduler (C-order runs across blocks of
** every shape); reductions and rechunks over them give the right values;
** opening reads nothing but the header (a file cut short after opening
** fails the compute, naming it). */
static void test_open_npy(void **state)
{
    (void)state;
    cask_error_t err;
    char dir[] = "/tmp/cask-open-XXXXXX", p[160], cmd[1400];
    assert_non_null(mkdtemp(dir));
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c \"\n"
             "import numpy as np, sys\n"
             "d = sys.argv[1]\n"
             "r = np.random.default_rng(7)\n"
             "np.save(d + '/f8.npy', r.normal(size=(13, 7, 5)))\n"
             "np.save(d + '/f4.npy', r.normal(size=(9, 11)).astype(np.float32))\n"
             "np.save(d + '/i8.npy', r.integers(-99, 99, size=(17,)))\n"
             "np.save(d + '/b1.npy', r.integers(0, 2, size=(6, 8)).astype(bool))\n"
             "np.save(d + '/e.npy', np.zeros((4, 0)))\n"
             "np.save(d + '/z.npy', np.float64(2.5))\n"
             "np.save(d + '/big.npy', np.arange(1 << 21, dtype=np.float64))\n"
             "b = bytearray(open(d + '/b1.npy', 'rb').read()); b[-3] = 7\n"
             "open(d + '/badbool.npy', 'wb').write(b)\n"
             "\" %s", dir);
    assert_int_equal(system(cmd), 0);
    static const struct { const char *file; cask_dtype_t dt; int nd; int64_t shape[3]; } f[] = {
        { "f8", CASK_F64, 3, { 13, 7, 5 } }, { "f4", CASK_F32, 2, { 9, 11 } },
        { "i8", CASK_I64, 1, { 17 } },       { "b1", CASK_BOOL, 2, { 6, 8 } },
        { "e", CASK_F64, 2, { 4, 0 } },      { "z", CASK_F64, 0, { 0 } },
    };
    static const char *const scheds[] = { "sync", "threads", "processes" };
    for (int round = 0; round < 12; round++)
        for (size_t k = 0; k < sizeof f / sizeof f[0]; k++) {
            cask_graph_t *g = cask_graph_new(&err);
            snprintf(p, sizeof p, "%s/%s.npy", dir, f[k].file);
            int64_t ch[3];
            for (int x = 0; x < f[k].nd; x++)
                ch[x] = pick(1, f[k].shape[x] + 1);
            cask_array_t *lazy = cask_array_open_npy(g, p, round ? ch : NULL, &err);
            cask_array_t *now = cask_array_load_npy(g, p, NULL, &err);
            assert_non_null(lazy);
            assert_non_null(now);
            assert_int_equal(cask_array_dtype(lazy), f[k].dt);
            assert_int_equal(cask_array_ndim(lazy), f[k].nd);
            size_t nb = cask_array_size(lazy) * cask_dtype_size(f[k].dt);
            char *b1 = malloc(nb + 1), *b2 = malloc(nb + 1);
            cask_compute_opts_t o = { .scheduler = scheds[round % 3], .workers = 2 };
            assert_ok(cask_array_compute(&lazy, 1, &o, (void *[]){ b1 }, NULL, &err), &err);
            assert_ok(cask_array_compute(&now, 1, NULL, (void *[]){ b2 }, NULL, &err), &err);
            assert_memory_equal(b1, b2, nb);
            free(b1);
            free(b2);
            cask_array_decref(lazy);
            cask_array_decref(now);
            cask_graph_decref(g);
        }
    /* a reduction and a rechunk over a lazy file */
    cask_graph_t *g = cask_graph_new(&err);
    snprintf(p, sizeof p, "%s/big.npy", dir);
    int64_t chunk = 1 << 15; /* 64 blocks of 256 KB */
    cask_array_t *big = cask_array_open_npy(g, p, &chunk, &err);
    cask_array_t *s = cask_array_reduce(big, CASK_SUM, &(cask_reduce_opts_t){ .split_every = 4 },
                                        &err);
    double sum = 0;
    cask_compute_info_t info;
    cask_compute_opts_t o2 = { .scheduler = "threads", .workers = 2 };
    assert_ok(cask_array_compute(&s, 1, &o2, (void *[]){ &sum }, &info, &err), &err);
    double n = (double)(1 << 21);
    assert_true(sum == n * (n - 1) / 2); /* exact: every partial is an integer under 2^53 */
    cask_array_t *cp = cask_array_binop_scalar(big, CASK_ADD, cask_int(0), &err);
    cask_array_t *cpt = cask_array_rechunk(cp, (int64_t[]){ 1 << 16 }, &err);
    cask_array_t *s2 = cask_array_reduce(cpt, CASK_MAX, NULL, &err);
    double mx = 0;
    assert_ok(cask_array_compute(&s2, 1, &o2, (void *[]){ &mx }, &info, &err), &err);
    assert_true(mx == n - 1);
    /* opening read only the header: cut the file short, and the compute fails */
    assert_int_equal(truncate(p, 4096), 0);
    assert_int_equal(cask_array_compute(&s, 1, &o2, (void *[]){ &sum }, NULL, &err),
                     CASK_EKERNEL);
    assert_msg_has(&err, "changed while the array was open");
    assert_msg_has(&err, "big.npy");
    cask_array_t *all[] = { big, s, cp, cpt, s2 };
    for (size_t k = 0; k < 5; k++)
        cask_array_decref(all[k]);
    /* a bool byte that is not 0 or 1 fails the task that reads it */
    snprintf(p, sizeof p, "%s/badbool.npy", dir);
    cask_array_t *bb = cask_array_open_npy(g, p, NULL, &err);
    assert_non_null(bb);
    uint8_t bbuf[48];
    assert_int_equal(cask_array_compute(&bb, 1, NULL, (void *[]){ bbuf }, NULL, &err),
                     CASK_EKERNEL);
    assert_msg_has(&err, "bool element 45 is 7");
    cask_array_decref(bb);
    /* refused when opened */
    assert_null(cask_array_open_npy(g, dir, NULL, &err));
    assert_msg_has(&err, "not a regular file");
    snprintf(p, sizeof p, "%s/f8.npy", dir);
    assert_null(cask_array_open_npy(g, p, (int64_t[]){ 0, 1, 1 }, &err));
    assert_int_equal(err.code, CASK_EINVAL);
    assert_msg_has(&err, "f8.npy: chunk 0 along axis 0");
    snprintf(p, sizeof p, "%s/fifo", dir); /* refused, not waited on */
    assert_int_equal(mkfifo(p, 0600), 0);
    assert_null(cask_array_open_npy(g, p, NULL, &err));
    assert_msg_has(&err, "not a regular file");
    assert_null(cask_array_open_npy(g, "/nonexistent/x.npy", NULL, &err));
    assert_int_equal(err.code, CASK_EIO);
    cask_graph_decref(g);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* File leaves read a window at a time (the window lowered to a few slabs,
** down to less than a tile's): elementwise operations, reductions along
** each axis and x - x.mean(0) over .npy files of random layouts, each dtype
** with each window, give NumPy's values on every scheduler (each dtype is
** streamed somewhere). A read that finds the file's end, at a window or
** reading a box whole, and a bad bool met in a later window, fail the task
** cleanly naming the file; an allocation failing anywhere in a streamed
** reduction fails it with CASK_ENOMEM or not at all. */
static void test_streamed_file_reads_vs_numpy(void **state)
{
    (void)state;
    manifest_t m;
    man_open(&m);
    cask_error_t err;
    char dir[] = "/tmp/cask-stream-XXXXXX", p[160], py[160];
    assert_non_null(mkdtemp(dir));
    size_t saved = cask__ar_window;
    static const char *const scheds[] = { "sync", "threads", "processes" };
    static const cask_dtype_t dts[] = { CASK_F64, CASK_F32, CASK_I64, CASK_BOOL };
    static const size_t windows[] = { 8, 24, 64, 200 };
    size_t streams[4] = { 0 }, streams_nd[3] = { 0 }; /* by dtype, by axes (not processes) */
    for (int round = 0; round < 16; round++) {
        cask__ar_window = windows[(round / 4) % 4];
        cask_graph_t *g = cask_graph_new(&err);
        int64_t shape[3], chunks[3], ch2[3];
        int ndim = 1 + round % 3;
        for (int x = 0; x < ndim; x++) {
            shape[x] = ndim == 1 ? pick(400, 2000) : ndim == 2 ? pick(20, 60)
                                                    : x ? pick(2, 4) : pick(8, 40);
            chunks[x] = pick(1, shape[x] + 1);
            ch2[x] = pick((shape[x] + 1) / 2, shape[x] + 1);
        }
        input_t in[1];
        cask_dtype_t dt = dts[round % 4];
        make_input(g, &in[0], "x", dt, ndim, shape, chunks);
        snprintf(p, sizeof p, "%s/x%d.npy", dir, round);
        assert_ok(cask_array_save_npy(in[0].arr, p, NULL, &err), &err);
        cask_array_t *x = cask_array_open_npy(g, p, round % 2 ? ch2 : NULL, &err);
        assert_non_null(x);
        const char *sched = scheds[(round + round / 4) % 3];
        size_t before = atomic_load(&cask__ar_streams);
        if (dt != CASK_BOOL) {
            cask_array_t *r = cask_array_binop_scalar(x, CASK_MUL, cask_int(2), &err);
            cask_array_t *r2 = cask_array_binop_scalar(r, CASK_ADD, cask_int(1), &err);
            check_case(&m, "x * 2 + 1", in, 1, r2, 0, sched);
            cask_array_decref(r);
            cask_array_decref(r2);
        }
        for (int axis = -1; axis < ndim; axis++) {
            cask_reduce_opts_t o = { .axes = axis < 0 ? 0 : CASK_AXIS(axis), .split_every = 3 };
            cask_array_t *r = cask_array_reduce(x, CASK_SUM, &o, &err);
            snprintf(py, sizeof py, axis < 0 ? "np.asarray(x.sum())" : "x.sum(axis=%d)", axis);
            check_case(&m, py, in, 1, r, 1e-12, sched);
            cask_array_decref(r);
        }
        if (dt == CASK_F64) {
            cask_reduce_opts_t ax0 = { .axes = CASK_AXIS(0) };
            cask_array_t *mean = cask_array_reduce(x, CASK_MEAN, &ax0, &err);
            cask_array_t *d = cask_array_binop(x, CASK_SUB, mean, &err);
            cask_array_t *sd = cask_array_reduce(d, CASK_STD, &ax0, &err);
            check_case(&m, "(x - x.mean(axis=0)).std(axis=0)", in, 1, sd, 1e-12, sched);
            cask_array_decref(mean);
            cask_array_decref(d);
            cask_array_decref(sd);
        }
        if (strcmp(sched, "processes")) { /* (counted in the workers there) */
            size_t made = atomic_load(&cask__ar_streams) - before;
            streams[round % 4] += made;
            streams_nd[ndim - 1] += made;
        }
        cask_array_decref(x);
        free_input(&in[0]);
        cask_graph_decref(g);
    }
    man_run(&m);
    for (int k = 0; k < 4; k++)
        if (!streams[k])
            fail_msg("no %s file leaf was read a window at a time", cask_dtype_name(dts[k]));
    for (int k = 0; k < 3; k++)
        if (!streams_nd[k])
            fail_msg("no %d-d file leaf was read a window at a time", k + 1);

    /* 200 x 4 float64, sums of columns: 100 windows of 2 rows */
    cask__ar_window = 64;
    cask_graph_t *g = cask_graph_new(&err);
    double vals[800], want[4] = { 0 }, got[4];
    for (int i = 0; i < 800; i++)
        want[i % 4] += vals[i] = (double)(i % 13) - 6;
    snprintf(p, sizeof p, "%s/cols.npy", dir);
    cask_array_t *c = cask_array_from_buffer(g, CASK_F64, 2, (int64_t[]){ 200, 4 }, NULL, vals,
                                             0, &err);
    assert_ok(cask_array_save_npy(c, p, NULL, &err), &err);
    cask_array_t *cx = cask_array_open_npy(g, p, NULL, &err);
    cask_array_t *cs = cask_array_reduce(cx, CASK_SUM, &(cask_reduce_opts_t){ .axes = CASK_AXIS(0) },
                                         &err);
    assert_non_null(cs);
    /* the file ends at the 5th read: a window's, or (default window) the box's */
    for (int w = 0; w < 2; w++)
        for (size_t s = 0; s < 2; s++) {
            cask__ar_window = w ? saved : 64;
            cask_compute_opts_t o = { .scheduler = scheds[s], .workers = 2 };
            cask__ar_read_end_at(w ? 1 : 5);
            int rc = cask_array_compute(&cs, 1, &o, (void *[]){ got }, NULL, &err);
            cask__ar_read_end_at(0);
            assert_int_equal(rc, CASK_EKERNEL);
            assert_msg_has(&err, "cols.npy: the file ends at byte");
            assert_ok(cask_array_compute(&cs, 1, &o, (void *[]){ got }, NULL, &err), &err);
            assert_memory_equal(got, want, sizeof want);
        }
    /* each allocation of the compute fails in turn: CASK_ENOMEM or the
    ** right sums, nothing leaked; past the last one, it succeeds */
    cask__ar_window = 64;
    int failed = 0, past = 0;
    for (long at = 1; at < 1000 && !past; at++) {
        cask_compute_opts_t o = { .scheduler = "sync" };
        cask__alloc_fail_at(at);
        int rc = cask_array_compute(&cs, 1, &o, (void *[]){ got }, NULL, &err);
        past = cask__alloc_fail_at(0) < at; /* fewer allocations than the failing one */
        if (rc == CASK_ENOMEM)
            failed++;
        else if (rc || memcmp(got, want, sizeof want))
            fail_msg("allocation %ld failed: %s (%s)", at, cask_err_name(rc), err.message);
    }
    assert_true(past && failed > 0);
    cask_array_t *ca[] = { c, cx, cs };
    for (size_t k = 0; k < 3; k++)
        cask_array_decref(ca[k]);

    /* a bool byte that is not 0 or 1, in the third window a task reads */
    cask__ar_window = 16;
    snprintf(p, sizeof p, "%s/bad.npy", dir);
    uint8_t bools[6 * 8] = { 0 };
    cask_array_t *b = cask_array_from_buffer(g, CASK_BOOL, 2, (int64_t[]){ 6, 8 }, NULL, bools,
                                             0, &err);
    assert_ok(cask_array_save_npy(b, p, NULL, &err), &err);
    FILE *f = fopen(p, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, -3, SEEK_END), 0);
    assert_int_equal(fputc(7, f), 7);
    assert_int_equal(fclose(f), 0);
    cask_array_t *bb = cask_array_open_npy(g, p, NULL, &err);
    cask_array_t *sum = cask_array_reduce(bb, CASK_SUM, NULL, &err);
    cask_array_t *inv = cask_array_unop(bb, CASK_ABS, &err);
    cask_array_t *outs[] = { sum, inv };
    for (size_t k = 0; k < 2; k++)
        for (size_t s = 0; s < 3; s++) {
            uint8_t out[48 * 8];
            cask_compute_opts_t o = { .scheduler = scheds[s], .workers = 2 };
            assert_int_equal(cask_array_compute(&outs[k], 1, &o, (void *[]){ out }, NULL, &err),
                             CASK_EKERNEL);
            assert_msg_has(&err, "bool element 45 is 7");
            assert_msg_has(&err, "bad.npy");
        }
    cask_array_t *all[] = { b, bb, sum, inv };
    for (size_t k = 0; k < 4; k++)
        cask_array_decref(all[k]);
    cask_graph_decref(g);
    cask__ar_window = saved;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_elementwise_vs_numpy),
        cmocka_unit_test(test_reductions_vs_numpy),
        cmocka_unit_test(test_fused_reduction_vs_numpy),
        cmocka_unit_test(test_streamed_file_reads_vs_numpy),
        cmocka_unit_test(test_reduction_of_two_arrays_vs_numpy),
        cmocka_unit_test(test_ddof_past_n_vs_numpy),
        cmocka_unit_test(test_float_to_int_vs_numpy),
        cmocka_unit_test(test_matmul_vs_numpy),
        cmocka_unit_test(test_slice_and_rechunk_vs_numpy),
        cmocka_unit_test(test_concatenate_vs_numpy),
        cmocka_unit_test(test_map_blocks),
        cmocka_unit_test(test_failed_compute_leaves_buffers),
        cmocka_unit_test(test_normal_distribution),
        cmocka_unit_test(test_chunking_and_scheduler_independence),
        cmocka_unit_test(test_build_errors),
        cmocka_unit_test(test_edges),
        cmocka_unit_test(test_borrowed_buffers),
        cmocka_unit_test(test_graph_files_reach_no_pointer),
        cmocka_unit_test(test_bad_program_refused),
        cmocka_unit_test(test_npy_round_trip),
        cmocka_unit_test(test_open_npy),
        cmocka_unit_test(test_order_memory),
        cmocka_unit_test(test_save_npy_fails_cleanly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

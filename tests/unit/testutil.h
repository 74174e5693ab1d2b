/*
** tests/unit/testutil.h: helpers shared by the unit tests.
*/
#ifndef CASK_TESTUTIL_H
#define CASK_TESTUTIL_H

#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <cmocka.h>

/* ThreadSanitizer does not follow forked workers: its builds test threads
** alone. */
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define NO_FORK 1
#endif
#endif

#include <cask/cask.h>

/* The back-ends a property test runs on: the local ones (sync and threads
** alone where forked workers cannot be followed). */
#ifdef NO_FORK
static const char *const test_scheds[] __attribute__((unused)) = { "sync", "threads" };
#else
static const char *const test_scheds[] __attribute__((unused)) = { "sync", "threads",
                                                                   "processes" };
#endif
#define N_TEST_SCHEDS (sizeof test_scheds / sizeof *test_scheds)

/* Assert that rc is 0, printing err's message if not. */
#define assert_ok(rc, err)                                                        \
    do {                                                                          \
        int rc_ = (rc);                                                           \
        if (rc_)                                                                  \
            fail_msg("%s failed: %s [%s] key '%s' kernel '%s'", #rc, (err)->message, \
                     cask_err_name(rc_), (err)->key, (err)->kernel);              \
    } while (0)

/* Assert that err's message contains s. */
#define assert_msg_has(err, s)                                                    \
    do {                                                                          \
        if (!strstr((err)->message, (s)))                                         \
            fail_msg("message '%s' lacks '%s'", (err)->message, (s));             \
    } while (0)

/* Calls of test.count, across threads. */
static atomic_long test_calls __attribute__((unused));

/* The integer a value stands for: itself, or an n-d buffer's element sum. */
static inline int64_t test_int_of(const cask_value_t *v, int *ok)
{
    cask_nd_t nd;
    *ok = 1;
    if (v->type == CASK_INT64)
        return v->u.i;
    if (cask_value_nd(v, &nd) == 0 && nd.dtype == CASK_F64) {
        double s = 0;
        for (size_t i = 0; i < nd.size; i++)
            s += ((const double *)nd.data)[i];
        return (int64_t)s;
    }
    *ok = 0;
    return 0;
}

/* The sum of a kernel's inputs (see test_int_of) in *s; 0 or a failure. */
static inline int test_sum_inputs(const cask_value_t *a, size_t n, int64_t *s, cask_kctx_t *ctx)
{
    *s = 0;
    for (size_t i = 0; i < n; i++) {
        int ok;
        *s += test_int_of(&a[i], &ok);
        if (!ok)
            return cask_kernel_fail(ctx, "input %zu is not an integer", i);
    }
    return 0;
}

/* test.count: sum of its inputs + 1, counting its calls. */
static inline int k_count(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    int64_t s;
    if (test_sum_inputs(a, n, &s, ctx))
        return CASK_EKERNEL;
    s += 1;
    atomic_fetch_add(&test_calls, 1);
    *out = cask_int(s);
    return 0;
}

/* test.vec: an n-d buffer of 1 + s % 3000 doubles (s: the sum of its inputs),
** element i = (s + i) % 7, so its element sum depends on every input. */
static inline int k_vec(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    int64_t s;
    if (test_sum_inputs(a, n, &s, ctx))
        return CASK_EKERNEL;
    if (s < 0)
        s = -s;
    int64_t len = 1 + s % 3000;
    cask_error_t err;
    int rc = cask_value_ndarray(CASK_F64, 1, &len, out, &err);
    if (rc) { /* the message, and the code as it is (CASK_ENOMEM) */
        cask_kernel_fail(ctx, "%s", err.message);
        return rc;
    }
    cask_nd_t nd;
    cask_value_nd(out, &nd);
    for (int64_t i = 0; i < len; i++)
        ((double *)nd.data)[i] = (double)((s + i) % 7);
    return 0;
}

/* test.fail_at(i, k): i, or a failure when i == k. */
static inline int k_fail_at(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    if (n != 2)
        return cask_kernel_fail(ctx, "two inputs");
    if (a[0].u.i == a[1].u.i)
        return cask_kernel_fail(ctx, "task %lld fails on purpose", (long long)a[0].u.i);
    *out = cask_int(a[0].u.i);
    return 0;
}

static inline void register_test_kernels(void)
{
    cask_error_t err;
    if (cask_kernel_register("test.count", k_count, NULL, &err) ||
        cask_kernel_register("test.vec", k_vec, NULL, &err) ||
        cask_kernel_register("test.fail_at", k_fail_at, NULL, &err))
        fail_msg("register: %s", err.message);
}

/* A random DAG: `layers` layers of up to `width` tasks, each reading up to
** three tasks of earlier layers; some spin a few microseconds so workers
** really overlap. Returns the sink tasks in outs. */
static inline size_t test_random_graph(cask_graph_t *g, unsigned seed, cask_task_t *outs, size_t max_outs)
{
    cask_error_t err;
    srand(seed);
    int layers = 1 + rand() % 40, width = 1 + rand() % 150;
    size_t n = 0, cap = (size_t)layers * (size_t)width;
    cask_task_t *all = malloc(cap * sizeof *all);
    char *used = calloc(cap, 1), *vec = calloc(cap, 1);
    for (int l = 0; l < layers; l++) {
        int w = 1 + rand() % width;
        size_t start = n;
        for (int i = 0; i < w; i++) {
            cask_value_t in[5];
            size_t k = 0;
            int kind = rand() % 8; /* 0, 1: spin; 2: an n-d buffer; else count */
            if (kind < 2)
                in[k++] = cask_int(rand() % 20);
            for (int j = 0; j < 3 && start > 0; j++)
                if (rand() % 2) {
                    size_t u = (size_t)rand() % start;
                    if (kind < 2 && vec[u]) /* cask.spin takes numbers only */
                        continue;
                    in[k++] = cask_ref(all[u]);
                    used[u] = 1;
                }
            vec[n] = kind == 2;
            in[k++] = cask_int(rand() % 1000);
            const char *kernel = kind < 2 ? "cask.spin" : kind == 2 ? "test.vec" : "test.count";
            cask_task_spec_t spec = { .kernel = kernel, .inputs = in,
                                      .n_inputs = k, .index = n };
            if (cask_graph_add(g, &spec, &all[n], &err))
                fail_msg("add: %s", err.message);
            n++;
        }
    }
    size_t m = 0;
    for (size_t i = 0; i < n && m < max_outs; i++)
        if (!used[i])
            outs[m++] = all[i];
    free(all);
    free(used);
    free(vec);
    return m;
}

/* The process's open descriptors. */
static inline int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n - 1; /* less the one opendir holds */
}

static inline int count_arena_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    int n = 0;
    while (f && fgets(line, sizeof line, f))
        n += strstr(line, "cask-arena") != NULL;
    if (f)
        fclose(f);
    return n;
}

/* Nothing of a compute may remain: no child (not even a zombie), no
** descriptor, no mapping of the processes' arena. */
static inline void assert_nothing_left(int fds_before)
{
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
    assert_int_equal(count_fds(), fds_before);
    assert_int_equal(count_arena_maps(), 0);
}

/* Run a compute on scheduler sched (NULL: sync) and return the code. */
static inline int compute_on(const char *sched, const cask_graph_t *g, const cask_task_t *outs,
                             size_t n, cask_value_t *res, cask_compute_info_t *info,
                             cask_error_t *err)
{
    cask_compute_opts_t o = { .scheduler = sched ? sched : "sync", .flags = CASK_TRACE };
    return cask_compute(g, outs, n, &o, res, info, err);
}

#endif

/* tests/unit/test_pool.c: pools of worker threads shared by computes and
** submits: bad options, how many tasks run at once, the default pool,
** many computes in flight against sync, nested computes, priority across
** computes (critical path first, no compute starved), errors and cancels
** beside other computes, and freeing a pool with work in flight. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testutil.h"

/* ------------------------------------------------------------- kernels */

static atomic_int now_running, most_running;
static atomic_int done_by_tag[2];
static atomic_int x_done_when_y_done = -1;

/* pool.sleep(seconds, tag[, last]): sleep, counting how many run at once
** and how many of each tag are done; a task with last set records how
** many tag-0 tasks were done when it ended. */
static int k_sleep(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    if (n < 2 || !cask_value_is_number(&a[0]) || a[1].type != CASK_INT64)
        return cask_kernel_fail(ctx, "pool.sleep takes (seconds, tag[, last]), not %zu inputs "
                                "of types %d %d", n, a[0].type, n > 1 ? (int)a[1].type : -1);
    int r = atomic_fetch_add(&now_running, 1) + 1, m = atomic_load(&most_running);
    while (r > m && !atomic_compare_exchange_weak(&most_running, &m, r))
        ;
    double s = cask_value_double(&a[0]);
    struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
    nanosleep(&ts, NULL);
    atomic_fetch_sub(&now_running, 1);
    atomic_fetch_add(&done_by_tag[a[1].u.i != 0], 1);
    if (n > 2 && a[2].type == CASK_INT64 && a[2].u.i)
        atomic_store(&x_done_when_y_done, atomic_load(&done_by_tag[0]));
    *out = cask_int(a[1].u.i);
    return 0;
}

/* pool.nested(i): compute i + 1 on the pool the test put in nest_pool
** (NULL: the default pool of nest_workers) and return it. */
static cask_pool_t *nest_pool;
static int nest_workers;
static int k_nested(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    if (n != 1 || a[0].type != CASK_INT64)
        return cask_kernel_fail(ctx, "pool.nested takes one int");
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t t = CASK_DELAYED(g, "test.count", &err, cask_int(a[0].u.i));
    cask_compute_opts_t o = { .pool = nest_pool, .workers = nest_pool ? 0 : nest_workers };
    cask_value_t v;
    int rc = cask_compute(g, &t, 1, &o, &v, NULL, &err);
    cask_graph_decref(g);
    if (rc)
        return cask_kernel_fail(ctx, "nested compute: %s", err.message);
    *out = cask_int(v.u.i + 1);
    return 0;
}

/* pool.big(n, seed): n bytes of seed, counting its calls in big_calls. */
static atomic_int big_calls;
static int k_big(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    if (n != 2)
        return cask_kernel_fail(ctx, "pool.big takes (bytes, seed)");
    size_t len = (size_t)a[0].u.i;
    char *b = malloc(len);
    memset(b, (int)a[1].u.i, len);
    cask_error_t err;
    int rc = cask_value_bytes(b, len, out, &err);
    free(b);
    atomic_fetch_add(&big_calls, 1);
    return rc ? cask_kernel_fail(ctx, "%s", err.message) : 0;
}

/* pool.fib_add(a, b): a + b, counting its calls; pool.now(i): impure. */
static atomic_int fib_calls, impure_calls;
static int k_fib_add(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    (void)ctx;
    atomic_fetch_add(&fib_calls, 1);
    *out = cask_int(n == 2 ? a[0].u.i + a[1].u.i : a[0].u.i);
    return 0;
}

static int k_impure(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    (void)a, (void)n, (void)ctx;
    *out = cask_int(atomic_fetch_add(&impure_calls, 1));
    return 0;
}

/* pool.nest2(depth): computes pool.nest2(depth - 1) on nest2_pool with a
** trace, and fails if a task of it ran as a worker the trace does not
** count; returns depth. */
static cask_pool_t *nest2_pool;
static int k_nest2(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    if (n != 1 || a[0].type != CASK_INT64)
        return cask_kernel_fail(ctx, "pool.nest2 takes one int");
    *out = a[0];
    if (a[0].u.i == 0)
        return 0;
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t t = CASK_DELAYED(g, "pool.nest2", &err, cask_int(a[0].u.i - 1));
    cask_value_t v;
    cask_compute_info_t info;
    int rc = cask_compute(g, &t, 1, &(cask_compute_opts_t){ .pool = nest2_pool,
                                                             .flags = CASK_TRACE },
                          &v, &info, &err);
    cask_graph_decref(g);
    if (rc)
        return cask_kernel_fail(ctx, "nested compute: %s", err.message);
    int bad = 0;
    for (size_t i = 0; i < cask_trace_size(info.trace); i++)
        bad |= cask_trace_event(info.trace, i)->worker >= cask_trace_workers(info.trace);
    bad |= cask_trace_workers(info.trace) != info.workers;
    cask_trace_free(info.trace);
    return bad ? cask_kernel_fail(ctx, "a task ran as a worker the trace does not count") : 0;
}

/* pool.log(i): append i to the log of what ran, in order. */
static atomic_int log_n;
static int64_t log_of[64];
static int k_log(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    (void)n, (void)ctx;
    int at = atomic_fetch_add(&log_n, 1);
    if (at < 64)
        log_of[at] = a[0].u.i;
    *out = a[0];
    return 0;
}

static double cost_first(const cask_value_t *a, size_t n)
{
    return n && cask_value_is_number(&a[0]) ? cask_value_double(&a[0]) : 0;
}

static int setup(void **state)
{
    (void)state;
    register_test_kernels();
    cask_error_t err;
    cask_kernel_opts_t ko = { .cost_fn = cost_first };
    if (cask_kernel_register("pool.sleep", k_sleep, &ko, &err) ||
        cask_kernel_register("pool.nested", k_nested, NULL, &err) ||
        cask_kernel_register("pool.big", k_big, NULL, &err) ||
        cask_kernel_register("pool.nest2", k_nest2, NULL, &err) ||
        cask_kernel_register("pool.log", k_log, NULL, &err) ||
        cask_kernel_register("pool.fib_add", k_fib_add, NULL, &err) ||
        cask_kernel_register("pool.impure", k_impure,
                             &(cask_kernel_opts_t){ .flags = CASK_KERNEL_IMPURE }, &err))
        fail_msg("register: %s", err.message);
    return 0;
}

static void reset_counts(void)
{
    atomic_store(&now_running, 0);
    atomic_store(&most_running, 0);
    atomic_store(&done_by_tag[0], 0);
    atomic_store(&done_by_tag[1], 0);
    atomic_store(&x_done_when_y_done, -1);
}

/* A task pool.sleep(s, tag, last) with the given cost estimate (0: s). */
static cask_task_t sleeper(cask_graph_t *g, double s, int tag, int last, double cost,
                           const cask_task_t *after)
{
    cask_error_t err;
    cask_value_t in[3] = { cask_double(s), cask_int(tag), cask_int(last) };
    static atomic_ulong index;
    cask_task_spec_t spec = { .kernel = "pool.sleep", .inputs = in, .n_inputs = 3,
                              .cost = cost, .after = after, .n_after = after ? 1 : 0,
                              .index = atomic_fetch_add(&index, 1) };
    cask_task_t t;
    if (cask_graph_add(g, &spec, &t, &err))
        fail_msg("add: %s", err.message);
    return t;
}

/* A pool of that many workers, the counts reset. */
static cask_pool_t *new_pool(int workers)
{
    reset_counts();
    cask_error_t err;
    cask_pool_t *p;
    assert_ok(cask_pool_create(&(cask_pool_opts_t){ .workers = workers }, &p, &err), &err);
    return p;
}

static void free_futures(cask_future_t **f, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cask_future_free(f[i]);
}

static double seconds_since(uint64_t t0)
{
    return (double)(cask_now_ns() - t0) * 1e-9;
}

/* --------------------------------------------------------------- tests */

static void test_options(void **state)
{
    (void)state;
    cask_error_t err;
    cask_pool_t *p = (cask_pool_t *)1;
    assert_int_equal(cask_pool_create(&(cask_pool_opts_t){ .scheduler = "sync" }, &p, &err),
                     CASK_EINVAL);
    assert_null(p);
    assert_msg_has(&err, "'processes'");
    assert_int_equal(cask_pool_create(&(cask_pool_opts_t){ .scheduler = "nope" }, &p, &err),
                     CASK_ENOSCHED);
    assert_int_equal(cask_pool_create(&(cask_pool_opts_t){ .workers = -2 }, &p, &err),
                     CASK_EINVAL);
    assert_int_equal(cask_pool_create(&(cask_pool_opts_t){ .workers = 100000 }, &p, &err),
                     CASK_EINVAL);
    assert_msg_has(&err, "4096");
    assert_int_equal(cask_pool_create(NULL, NULL, &err), CASK_EINVAL);
    assert_ok(cask_pool_create(&(cask_pool_opts_t){ .scheduler = "threads", .workers = 3 }, &p,
                               &err), &err);
    assert_int_equal(cask_pool_workers(p), 3);
    assert_int_equal(cask_pool_workers(NULL), 0);

    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t t = CASK_DELAYED(g, "test.count", &err, cask_int(41));
    cask_value_t v;
    cask_compute_info_t info;
    /* the pool's scheduler and count, or none named */
    assert_int_equal(cask_compute(g, &t, 1, &(cask_compute_opts_t){ .pool = p, .workers = 2 },
                                  &v, NULL, &err), CASK_EINVAL);
    assert_msg_has(&err, "pool of 3");
    assert_int_equal(cask_compute(g, &t, 1,
                                  &(cask_compute_opts_t){ .pool = p, .scheduler = "sync" }, &v,
                                  NULL, &err), CASK_EINVAL);
    cask_future_t *f = (cask_future_t *)1;
    assert_int_equal(cask_submit(g, &t, 1, &(cask_compute_opts_t){ .pool = p, .workers = 1 },
                                 &f, &err), CASK_EINVAL);
    assert_null(f);
    assert_ok(cask_compute(g, &t, 1,
                           &(cask_compute_opts_t){ .pool = p, .scheduler = "threads",
                                                   .workers = 3 }, &v, &info, &err), &err);
    assert_int_equal(v.u.i, 42); /* test.count: its inputs' sum + 1 */
    assert_int_equal(info.workers, 3);
    assert_string_equal(info.scheduler, "threads");
    cask_graph_decref(g);
    cask_pool_free(p);
    cask_pool_free(NULL);
}

/* n submits of one 0.04 s sleep each on opts: how many ran at once, and
** the wall time. */
static int submits_at_once(const cask_compute_opts_t *o, int n, double *wall)
{
    reset_counts();
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    cask_future_t **f = calloc((size_t)n, sizeof *f);
    cask_task_t *t = calloc((size_t)n, sizeof *t);
    for (int i = 0; i < n; i++) /* a graph gets no task while a compute reads it */
        t[i] = sleeper(g, 0.04, 0, 0, 0, NULL);
    uint64_t t0 = cask_now_ns();
    for (int i = 0; i < n; i++)
        assert_ok(cask_submit(g, &t[i], 1, o, &f[i], &err), &err);
    assert_int_equal(cask_future_wait(f, (size_t)n, (size_t)n, -1, NULL), (size_t)n);
    *wall = seconds_since(t0);
    for (int i = 0; i < n; i++) {
        cask_value_t v;
        assert_ok(cask_future_get(f[i], &v, &err), &err);
        cask_future_free(f[i]);
    }
    free(f);
    free(t);
    cask_graph_decref(g);
    assert_int_equal(atomic_load(&done_by_tag[0]), n);
    return atomic_load(&most_running);
}

/* Fifteen submits on a pool of 2 run 2 at a time (Ray's and Dask's pools
** do), on a pool made for them and on the default pool of 2 workers that
** submits naming no pool share. */
static void test_submits_share_workers(void **state)
{
    (void)state;
    cask_pool_t *p = new_pool(2);
    double wall;
    assert_int_equal(submits_at_once(&(cask_compute_opts_t){ .pool = p }, 15, &wall), 2);
    assert_true(wall >= 8 * 0.04 * 0.95); /* 8 rounds of 2 */
    cask_pool_free(p);
    cask_compute_opts_t dflt = { .scheduler = "threads", .workers = 2 };
    assert_int_equal(submits_at_once(&dflt, 15, &wall), 2);
    assert_true(wall >= 8 * 0.04 * 0.95);
}

typedef struct nap_job {
    cask_pool_t *pool;
    cask_graph_t *g;
    cask_task_t t;
    int rc;
} nap_job_t;

static void *compute_nap(void *arg)
{
    nap_job_t *j = arg;
    cask_value_t v;
    cask_error_t err;
    j->rc = cask_compute(j->g, &j->t, 1, &(cask_compute_opts_t){ .pool = j->pool }, &v, NULL,
                         &err);
    return NULL;
}

/* Six threads computing at once on a pool of 2 (each caller runs its own
** compute when a slot is free): still 2 tasks at a time. */
static void test_callers_share_slots(void **state)
{
    (void)state;
    cask_pool_t *p = new_pool(2);
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    nap_job_t j[6];
    pthread_t th[6];
    for (int i = 0; i < 6; i++)
        j[i] = (nap_job_t){ .pool = p, .g = g, .t = sleeper(g, 0.04, 0, 0, 0, NULL) };
    uint64_t t0 = cask_now_ns();
    for (int i = 0; i < 6; i++)
        assert_int_equal(pthread_create(&th[i], NULL, compute_nap, &j[i]), 0);
    for (int i = 0; i < 6; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(j[i].rc, 0);
    }
    assert_true(seconds_since(t0) >= 3 * 0.04 * 0.95);
    assert_int_equal(atomic_load(&most_running), 2);
    assert_int_equal(atomic_load(&done_by_tag[0]), 6);
    cask_graph_decref(g);
    cask_pool_free(p);
}

typedef struct compute_job {
    cask_pool_t *pool;
    unsigned seed;
    int rounds;
    int bad; /* results that differ from sync's */
} compute_job_t;

/* Compute `rounds` random graphs on the pool (alternately by compute and
** by submit) and compare every output with sync's. */
static void *compute_thread(void *arg)
{
    compute_job_t *j = arg;
    for (int k = 0; k < j->rounds; k++) {
        cask_error_t err;
        cask_graph_t *g = cask_graph_new(&err);
        cask_task_t outs[64];
        size_t m = test_random_graph(g, j->seed * 100 + (unsigned)k, outs, 64);
        cask_value_t ref[64], got[64];
        if (cask_compute(g, outs, m, &(cask_compute_opts_t){ .scheduler = "sync" }, ref, NULL,
                         &err)) {
            j->bad++;
            cask_graph_decref(g);
            continue;
        }
        cask_compute_opts_t o = { .pool = j->pool };
        int rc = 0;
        if (k % 2) {
            cask_future_t *f[64];
            rc = cask_submit(g, outs, m, &o, f, &err);
            for (size_t i = 0; !rc && i < m; i++) {
                rc = cask_future_get(f[i], &got[i], &err);
                cask_future_free(f[i]);
            }
        } else {
            rc = cask_compute(g, outs, m, &o, got, NULL, &err);
        }
        for (size_t i = 0; i < m; i++) {
            j->bad += rc || !cask_value_equal(&ref[i], &got[i]);
            cask_value_decref(&ref[i]);
            if (!rc)
                cask_value_decref(&got[i]);
        }
        cask_graph_decref(g);
    }
    return NULL;
}

/* Four threads computing and submitting random graphs on one pool of 3
** at once get sync's results. */
static void test_many_computes_in_flight(void **state)
{
    (void)state;
    cask_pool_t *p = new_pool(3);
    pthread_t th[4];
    compute_job_t j[4];
    for (int i = 0; i < 4; i++) {
        j[i] = (compute_job_t){ .pool = p, .seed = 7u + (unsigned)i, .rounds = 6 };
        assert_int_equal(pthread_create(&th[i], NULL, compute_thread, &j[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(j[i].bad, 0);
    }
    cask_pool_free(p);
}

/* A kernel that computes on its own pool: on a pool of one worker, three
** such tasks at once finish (the caller serves its nested compute), on a
** named pool and on the default one. */
static void test_nested_computes(void **state)
{
    (void)state;
    cask_error_t err;
    cask_pool_t *p = new_pool(1);
    for (int named = 1; named >= 0; named--) {
        nest_pool = named ? p : NULL;
        nest_workers = 1;
        cask_graph_t *g = cask_graph_new(&err);
        cask_task_t t[3];
        for (int i = 0; i < 3; i++)
            t[i] = CASK_DELAYED(g, "pool.nested", &err, cask_int(10 * i));
        cask_task_t sum = CASK_DELAYED(g, "test.count", &err, cask_ref(t[0]), cask_ref(t[1]),
                                       cask_ref(t[2]));
        cask_value_t v;
        cask_compute_opts_t o = { .pool = nest_pool, .workers = nest_pool ? 0 : 1 };
        assert_ok(cask_compute(g, &sum, 1, &o, &v, NULL, &err), &err);
        /* pool.nested(i) = test.count(i) + 1 = i + 2; test.count adds 1 */
        assert_int_equal(v.u.i, 2 + 12 + 22 + 1);
        cask_graph_decref(g);
    }
    nest_pool = NULL;
    cask_pool_free(p);
}

/* A task on pool Q computes on P, whose task computes on P again: every
** task runs as a worker its compute's trace counts. */
static void test_nested_across_pools(void **state)
{
    (void)state;
    cask_error_t err;
    cask_pool_t *q = new_pool(1);
    nest2_pool = new_pool(2);
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t t = CASK_DELAYED(g, "pool.nest2", &err, cask_int(3));
    cask_value_t v;
    assert_ok(cask_compute(g, &t, 1, &(cask_compute_opts_t){ .pool = q }, &v, NULL, &err), &err);
    assert_int_equal(v.u.i, 3);
    cask_graph_decref(g);
    cask_pool_free(nest2_pool);
    nest2_pool = NULL;
    cask_pool_free(q);
}

/* A submit's finish callback runs on a thread of the pool; a compute it
** makes on that pool (of one worker), while another submit keeps the
** pool busy, finishes: the callback's thread serves it. */
static cask_pool_t *cb_pool;
static atomic_int cb_result = -1;
static void finish_computes(void *udata, int status)
{
    (void)udata;
    if (status)
        return;
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t t = CASK_NO_TASK;
    for (int i = 0; i < 3; i++) /* tasks over a slice, ranked below the other submit's */
        t = sleeper(g, 0.005, 0, 0, 1e-6, t == CASK_NO_TASK ? NULL : &t);
    t = CASK_DELAYED(g, "test.count", &err, cask_ref(t));
    cask_value_t v;
    if (!cask_compute(g, &t, 1, &(cask_compute_opts_t){ .pool = cb_pool }, &v, NULL, &err))
        atomic_store(&cb_result, (int)v.u.i);
    cask_graph_decref(g);
}

static void test_compute_in_callback(void **state)
{
    (void)state;
    cask_error_t err;
    cb_pool = new_pool(1);
    cask_callbacks_t cb = { .finish = finish_computes };
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t a = sleeper(g, 0.01, 0, 0, 0, NULL);
    cask_task_t b = CASK_NO_TASK;
    for (int i = 0; i < 10; i++) /* a chain that keeps the one worker busy, ranked high */
        b = sleeper(g, 0.01, 1, 0, 1.0, b == CASK_NO_TASK ? NULL : &b);
    cask_future_t *fa, *fb;
    assert_ok(cask_submit(g, &a, 1, &(cask_compute_opts_t){ .pool = cb_pool, .callbacks = &cb },
                          &fa, &err), &err);
    assert_ok(cask_submit(g, &b, 1, &(cask_compute_opts_t){ .pool = cb_pool }, &fb, &err), &err);
    cask_compute_info_t info;
    assert_ok(cask_future_info(fa, &info), &err);
    assert_ok(cask_future_info(fb, &info), &err);
    assert_int_equal(atomic_load(&cb_result), 1); /* test.count(pool.sleep's tag 0) */
    cask_future_free(fa);
    cask_future_free(fb);
    cask_graph_decref(g);
    cask_pool_free(cb_pool);
}

/* Submits whose pool is freed as soon as their futures are settled, many
** times over: the submit lets go of the pool last (run under ASan). */
static void test_free_right_after(void **state)
{
    (void)state;
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t t = CASK_DELAYED(g, "test.count", &err, cask_int(1));
    for (int i = 0; i < 50; i++) {
        cask_pool_t *p = new_pool(1);
        cask_future_t *f;
        assert_ok(cask_submit(g, &t, 1, &(cask_compute_opts_t){ .pool = p }, &f, &err), &err);
        cask_compute_info_t info;
        assert_ok(cask_future_info(f, &info), &err);
        cask_pool_free(p);
        cask_future_free(f);
    }
    cask_graph_decref(g);
}

/* On one worker, a compute whose path to the end is long (by its cost
** estimates) submitted while a compute of many short tasks runs goes
** first: it is done while most of the short tasks still wait. */
static void test_critical_path_first(void **state)
{
    (void)state;
    cask_error_t err;
    cask_pool_t *p = new_pool(1);
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t xs[40];
    for (int i = 0; i < 40; i++)
        xs[i] = sleeper(g, 0.005, 0, 0, 0, NULL);
    cask_task_t y = CASK_NO_TASK;
    for (int i = 0; i < 4; i++) /* a chain estimated at a second a task */
        y = sleeper(g, 0.005, 1, i == 3, 1.0, y == CASK_NO_TASK ? NULL : &y);
    cask_future_t *fx[40];
    assert_ok(cask_submit(g, xs, 40, &(cask_compute_opts_t){ .pool = p }, fx, &err), &err);
    while (!atomic_load(&now_running) && !atomic_load(&done_by_tag[0]))
        ;
    cask_future_t *fy;
    assert_ok(cask_submit(g, &y, 1, &(cask_compute_opts_t){ .pool = p }, &fy, &err), &err);
    cask_value_t v;
    assert_ok(cask_future_get(fy, &v, &err), &err);
    int x_then = atomic_load(&x_done_when_y_done);
    assert_true(x_then >= 0);
    assert_true(x_then <= 10);
    assert_int_equal(cask_future_wait(fx, 40, 40, -1, NULL), 40);
    free_futures(fx, 40);
    cask_future_free(fy);
    cask_graph_decref(g);
    cask_pool_free(p);
}

/* On one worker kept busy, 30 computes of one task each wait together;
** then they run by their claims (rank, plus age), highest first: here
** their estimates, 1 to 30 s, decide. */
static void test_waiting_computes_by_claim(void **state)
{
    (void)state;
    cask_error_t err;
    cask_pool_t *p = new_pool(1);
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t block = sleeper(g, 0.05, 0, 0, 0, NULL), t[30];
    unsigned seed = 7;
    int est[30];
    for (int i = 0; i < 30; i++) { /* the estimates 1 .. 30 in a shuffled order */
        est[i] = i + 1;
        int j = (int)(rand_r(&seed) % (unsigned)(i + 1)), x = est[i];
        est[i] = est[j];
        est[j] = x;
    }
    for (int i = 0; i < 30; i++) {
        cask_value_t in[1] = { cask_int(est[i]) };
        cask_task_spec_t spec = { .kernel = "pool.log", .inputs = in, .n_inputs = 1,
                                  .cost = (double)est[i] };
        assert_ok(cask_graph_add(g, &spec, &t[i], &err), &err);
    }
    cask_future_t *fb, *f[30];
    assert_ok(cask_submit(g, &block, 1, &(cask_compute_opts_t){ .pool = p }, &fb, &err), &err);
    while (!atomic_load(&now_running))
        ;
    atomic_store(&log_n, 0);
    for (int i = 0; i < 30; i++)
        assert_ok(cask_submit(g, &t[i], 1, &(cask_compute_opts_t){ .pool = p }, &f[i], &err),
                  &err);
    assert_int_equal(cask_future_wait(f, 30, 30, -1, NULL), 30);
    assert_int_equal(atomic_load(&log_n), 30);
    for (int i = 0; i < 30; i++)
        assert_int_equal(log_of[i], 30 - i);
    free_futures(f, 30);
    cask_future_free(fb);
    cask_graph_decref(g);
    cask_pool_free(p);
}

/* On one worker, a compute of one short task is not starved by a stream
** of newer computes whose estimates rank them higher: its wait buys it
** priority, so it runs while the stream still flows. */
static void test_no_compute_starves(void **state)
{
    (void)state;
    cask_error_t err;
    cask_pool_t *p = new_pool(1);
    cask_graph_t *g = cask_graph_new(&err);
    enum { STREAM = 120 }; /* 5 ms each: 0.6 s of work */
    cask_future_t *fy[STREAM], *fx = NULL;
    cask_task_t ys[STREAM];
    for (int i = 0; i < STREAM; i++)
        ys[i] = sleeper(g, 0.005, 1, 0, 0.05, NULL);
    cask_task_t x = sleeper(g, 0.001, 0, 0, 0.001, NULL);
    /* keep two newer computes waiting ahead of x at all times */
    for (int i = 0; i < 2; i++)
        assert_ok(cask_submit(g, &ys[i], 1, &(cask_compute_opts_t){ .pool = p }, &fy[i], &err),
                  &err);
    assert_ok(cask_submit(g, &x, 1, &(cask_compute_opts_t){ .pool = p }, &fx, &err), &err);
    int y_when_x = -1;
    for (int i = 2; i < STREAM; i++) {
        while (i - atomic_load(&done_by_tag[1]) > 2) { /* two ahead, no more */
            struct timespec ts = { 0, 200000 };
            nanosleep(&ts, NULL);
        }
        if (y_when_x < 0 && cask_future_done(fx))
            y_when_x = atomic_load(&done_by_tag[1]);
        assert_ok(cask_submit(g, &ys[i], 1, &(cask_compute_opts_t){ .pool = p }, &fy[i], &err),
                  &err);
    }
    assert_int_equal(cask_future_wait(fy, STREAM, STREAM, -1, NULL), STREAM);
    if (y_when_x < 0 && cask_future_done(fx))
        y_when_x = STREAM;
    /* about 0.05 s of waiting (10 tasks of the stream) buys x the worker */
    assert_true(y_when_x >= 0);
    assert_true(y_when_x < STREAM / 2);
    free_futures(fy, STREAM);
    cask_future_free(fx);
    cask_graph_decref(g);
    cask_pool_free(p);
}

/* A compute that fails and one that is cancelled on a pool leave another
** compute in flight on it untouched, and the pool goes on working. */
static void test_errors_and_cancels_beside(void **state)
{
    (void)state;
    cask_error_t err;
    cask_pool_t *p = new_pool(2);
    cask_compute_opts_t o = { .pool = p };
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t good[20], bad[20];
    for (int i = 0; i < 20; i++) {
        good[i] = sleeper(g, 0.002, 0, 0, 0, NULL);
        bad[i] = CASK_DELAYED(g, "test.fail_at", &err, cask_int(i), cask_int(7));
    }
    cask_task_t first = sleeper(g, 0.2, 1, 0, 0, NULL); /* cancelled while it runs */
    cask_task_t slow = sleeper(g, 5.0, 1, 0, 0, &first);
    cask_future_t *fg[20], *fb[20], *fs;
    assert_ok(cask_submit(g, &slow, 1, &o, &fs, &err), &err);
    assert_ok(cask_submit(g, good, 20, &o, fg, &err), &err);
    assert_ok(cask_submit(g, bad, 20, &o, fb, &err), &err);
    assert_true(cask_future_cancel(fs));
    cask_value_t v;
    int failed = 0;
    for (int i = 0; i < 20; i++) {
        assert_ok(cask_future_get(fg[i], &v, &err), &err);
        assert_int_equal(v.u.i, 0);
        if (cask_future_get(fb[i], &v, &err)) {
            failed++;
            assert_int_equal(err.code, CASK_EKERNEL);
        }
    }
    assert_true(failed > 0);
    assert_int_equal(cask_future_get(fs, &v, &err), CASK_ECANCELED);
    free_futures(fg, 20);
    free_futures(fb, 20);
    cask_future_free(fs);
    cask_graph_decref(g);
    /* the pool still computes */
    g = cask_graph_new(&err);
    cask_task_t t = CASK_DELAYED(g, "test.count", &err, cask_int(5));
    assert_ok(cask_compute(g, &t, 1, &o, &v, NULL, &err), &err);
    assert_int_equal(v.u.i, 6);
    cask_graph_decref(g);
    cask_pool_free(p);
}

/* Freeing a pool waits for what is in flight on it: the submit's result
** is there afterwards. */
static void test_free_waits_for_work(void **state)
{
    (void)state;
    cask_error_t err;
    cask_pool_t *p = new_pool(2);
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t t[3];
    for (int i = 0; i < 3; i++)
        t[i] = sleeper(g, 0.05, 1, 0, 0, NULL);
    cask_future_t *f[3];
    assert_ok(cask_submit(g, t, 3, &(cask_compute_opts_t){ .pool = p }, f, &err), &err);
    cask_graph_decref(g);
    while (!atomic_load(&now_running) && !atomic_load(&done_by_tag[1]))
        ; /* the compute is on the pool */
    cask_pool_free(p);
    assert_int_equal(atomic_load(&done_by_tag[1]), 3);
    for (int i = 0; i < 3; i++) {
        cask_value_t v;
        assert_ok(cask_future_get(f[i], &v, &err), &err);
        assert_int_equal(v.u.i, 1);
        cask_future_free(f[i]);
    }
}

/* ------------------------------------------------------------ persist */

/* a = count(1), b = count(a), c = count(b), d = count(c, 5): the same
** keys in every graph built so. */
static void count_chain(cask_graph_t *g, cask_task_t t[4])
{
    cask_error_t err;
    t[0] = CASK_DELAYED(g, "test.count", &err, cask_int(1));
    t[1] = CASK_DELAYED(g, "test.count", &err, cask_ref(t[0]));
    t[2] = CASK_DELAYED(g, "test.count", &err, cask_ref(t[1]));
    t[3] = CASK_DELAYED(g, "test.count", &err, cask_ref(t[2]), cask_int(5));
    assert_int_not_equal(t[3], CASK_NO_TASK);
}

/* Kernel calls of computing t on o, and its value (d = 2, 3, 4, 10). */
static long calls_of(const cask_graph_t *g, cask_task_t t, const cask_compute_opts_t *o,
                     int64_t *v, size_t *persisted)
{
    cask_error_t err;
    cask_value_t x;
    cask_compute_info_t info;
    long before = atomic_load(&test_calls);
    assert_ok(cask_compute(g, &t, 1, o, &x, &info, &err), &err);
    *v = x.u.i;
    *persisted = info.persisted;
    cask_value_decref(&x);
    return atomic_load(&test_calls) - before;
}

/* A persisted value is used by later computes of its graph and of another
** graph with the same keys (nothing behind it runs), by two handles until
** both are freed, and not after; the pool's end releases it. */
static void test_persist(void **state)
{
    (void)state;
    cask_error_t err;
    cask_pool_t *p = new_pool(2);
    cask_compute_opts_t o = { .pool = p };
    cask_graph_t *g = cask_graph_new(&err), *g2 = cask_graph_new(&err);
    cask_task_t t[4], u[4];
    count_chain(g, t);
    count_chain(g2, u);
    assert_string_equal(cask_graph_key(g, t[1]), cask_graph_key(g2, u[1]));
    int64_t v;
    size_t kept;
    cask_persisted_t *h, *h2;
    long before = atomic_load(&test_calls);
    assert_ok(cask_persist(g, &t[1], 1, &o, &h, &err), &err);
    assert_int_equal(atomic_load(&test_calls) - before, 2);
    assert_int_equal(cask_persisted_size(h), 1);
    cask_value_t x;
    assert_ok(cask_persisted_get(h, 0, &x, &err), &err);
    assert_int_equal(x.u.i, 3);
    cask_value_decref(&x);
    assert_int_equal(cask_persisted_get(h, 1, &x, &err), CASK_EINVAL);

    assert_int_equal(calls_of(g, t[3], &o, &v, &kept), 2); /* c and d only */
    assert_int_equal(v, 10);
    assert_int_equal(kept, 1);
    assert_int_equal(calls_of(g2, u[3], &o, &v, &kept), 2); /* another graph, same keys */
    assert_int_equal(v, 10);
    /* with a cache directory too: both cuts at once */
    char dir[] = "/tmp/cask-persist-XXXXXX";
    assert_non_null(mkdtemp(dir));
    cask_compute_opts_t oc = { .pool = p, .cache_dir = dir };
    assert_int_equal(calls_of(g, t[3], &oc, &v, &kept), 2);
    assert_int_equal(v, 10);
    /* not on sync: values are kept on the pool */
    assert_int_equal(calls_of(g, t[3], &(cask_compute_opts_t){ .scheduler = "sync" }, &v, &kept),
                     4);
    assert_int_equal(kept, 0);

    assert_ok(cask_persist(g2, &u[1], 1, &o, &h2, &err), &err); /* the same key again */
    cask_persisted_free(h);
    assert_int_equal(calls_of(g, t[3], &o, &v, &kept), 2); /* h2 still holds it */
    cask_persisted_free(h2);
    assert_int_equal(calls_of(g, t[3], &o, &v, &kept), 4); /* released */
    assert_int_equal(kept, 0);

    /* the pool's end releases what is kept; the handle is freed after */
    assert_ok(cask_persist(g, &t[2], 1, &o, &h, &err), &err);
    cask_pool_free(p);
    assert_int_equal(cask_persisted_get(h, 0, &x, &err), CASK_EMISSING);
    cask_persisted_free(h);

    char cmd[64];
    /* A kept value stands in by task key: what is computed from it is not
    ** written to the cache directory under its graph's own cache keys. */
    p = new_pool(2);
    cask_graph_t *ga = cask_graph_new(&err), *gb = cask_graph_new(&err);
    cask_task_t xa, xb, yb;
    cask_task_spec_t sa = { .kernel = "test.count", .key = "x",
                            .inputs = (cask_value_t[]){ cask_int(1) }, .n_inputs = 1 };
    cask_task_spec_t sb = { .kernel = "test.count", .key = "x",
                            .inputs = (cask_value_t[]){ cask_int(10) }, .n_inputs = 1 };
    assert_ok(cask_graph_add(ga, &sa, &xa, &err), &err);
    assert_ok(cask_graph_add(gb, &sb, &xb, &err), &err);
    yb = CASK_DELAYED(gb, "test.count", &err, cask_ref(xb));
    assert_ok(cask_persist(ga, &xa, 1, &(cask_compute_opts_t){ .pool = p }, &h, &err), &err);
    char dir2[] = "/tmp/cask-persist2-XXXXXX";
    assert_non_null(mkdtemp(dir2));
    assert_int_equal(calls_of(gb, yb, &(cask_compute_opts_t){ .pool = p, .cache_dir = dir2 },
                              &v, &kept), 1);
    assert_int_equal(v, 3); /* from the kept x = 2 */
    assert_int_equal(calls_of(gb, yb, &(cask_compute_opts_t){ .scheduler = "sync",
                                                              .cache_dir = dir2 }, &v, &kept),
                     2);
    assert_int_equal(v, 12); /* gb's own x = 11: nothing was cached from the kept one */
    cask_persisted_free(h);
    cask_pool_free(p);
    cask_graph_decref(ga);
    cask_graph_decref(gb);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir2);
    assert_int_equal(system(cmd), 0);

    assert_int_equal(cask_persist(g, &t[1], 1,
                                  &(cask_compute_opts_t){ .scheduler = "processes" }, &h, &err),
                     CASK_EINVAL);
    assert_null(h);
    assert_int_equal(cask_persist(g, &t[1], 1, NULL, NULL, &err), CASK_EINVAL);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    cask_graph_decref(g);
    cask_graph_decref(g2);
}

/* Random graphs: persist a random third of the tasks, then compute the
** sinks on the pool: sync's results, with fewer kernel calls. */
static void test_persist_random(void **state)
{
    (void)state;
    cask_error_t err;
    cask_pool_t *p = new_pool(2);
    cask_compute_opts_t o = { .pool = p };
    for (unsigned seed = 1; seed <= 12; seed++) {
        cask_graph_t *g = cask_graph_new(&err);
        cask_task_t outs[64];
        size_t m = test_random_graph(g, seed, outs, 64);
        cask_value_t ref[64], got[64];
        assert_ok(cask_compute(g, outs, m, &(cask_compute_opts_t){ .scheduler = "sync" }, ref,
                               NULL, &err), &err);
        size_t n = cask_graph_size(g), k = 0;
        cask_task_t *pick = malloc(n * sizeof *pick);
        srand(seed);
        for (size_t i = 0; i < n; i++)
            if (rand() % 3 == 0)
                pick[k++] = cask_graph_task(g, i);
        cask_persisted_t *h, *all;
        assert_ok(cask_persist(g, pick, k, &o, &h, &err), &err);
        cask_compute_info_t info;
        assert_ok(cask_compute(g, outs, m, &o, got, &info, &err), &err);
        size_t picked_outs = 0;
        for (size_t i = 0; i < m; i++) {
            assert_true(cask_value_equal(&ref[i], &got[i]));
            cask_value_decref(&got[i]);
            for (size_t j = 0; j < k; j++)
                picked_outs += pick[j] == outs[i];
        }
        assert_true(info.persisted >= picked_outs); /* an output kept is a hit */
        /* with every output kept, no kernel runs */
        assert_ok(cask_persist(g, outs, m, &o, &all, &err), &err);
        long before = atomic_load(&test_calls);
        assert_ok(cask_compute(g, outs, m, &o, got, &info, &err), &err);
        assert_int_equal(atomic_load(&test_calls), before);
        assert_int_equal(info.persisted, m);
        assert_int_equal(info.tasks, m);
        for (size_t i = 0; i < m; i++) {
            assert_true(cask_value_equal(&ref[i], &got[i]));
            cask_value_decref(&ref[i]);
            cask_value_decref(&got[i]);
        }
        cask_persisted_free(all);
        cask_persisted_free(h);
        free(pick);
        cask_graph_decref(g);
    }
    cask_pool_free(p);
}

/* ------------------------------------------------------- result cache */

/* fib(n) as delayed calls of pool.fib_add in g: fib(0) = 0, fib(1) = 1. */
static cask_task_t fib(cask_graph_t *g, int n)
{
    cask_error_t err;
    cask_task_t a = CASK_DELAYED(g, "pool.fib_add", &err, cask_int(0));
    cask_task_t b = CASK_DELAYED(g, "pool.fib_add", &err, cask_int(1));
    for (int i = 2; i <= n; i++) {
        cask_task_t c = CASK_DELAYED(g, "pool.fib_add", &err, cask_ref(b), cask_ref(a));
        a = b;
        b = c;
    }
    return n == 0 ? a : b;
}

/* fib(n) computed on o in a new graph: its value, the kernel calls made,
** and how many tasks the result cache gave. */
static int64_t fib_on(const cask_compute_opts_t *o, int n, int *calls, size_t *memo)
{
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t t = fib(g, n);
    cask_value_t v;
    cask_compute_info_t info;
    int before = atomic_load(&fib_calls);
    assert_ok(cask_compute(g, &t, 1, o, &v, &info, &err), &err);
    *calls = atomic_load(&fib_calls) - before;
    *memo = info.memcached;
    cask_graph_decref(g);
    return v.u.i;
}

/* The course's lru_cache lesson: fib(30), then fib(30) again in a new
** graph (no kernel runs), then fib(35) (5 calls); no cache: all again. */
static void test_result_cache_fib(void **state)
{
    (void)state;
    cask_error_t err;
    cask_pool_t *p, *plain = new_pool(2);
    assert_ok(cask_pool_create(&(cask_pool_opts_t){ .workers = 2, .cache_bytes = 1 << 20 },
                               &p, &err), &err);
    cask_compute_opts_t o = { .pool = p };
    int calls;
    size_t memo;
    assert_int_equal(fib_on(&o, 30, &calls, &memo), 832040);
    assert_int_equal(calls, 31);
    assert_int_equal(memo, 0);
    assert_int_equal(fib_on(&o, 30, &calls, &memo), 832040);
    assert_int_equal(calls, 0);
    assert_int_equal(memo, 1);
    assert_int_equal(fib_on(&o, 35, &calls, &memo), 9227465);
    assert_int_equal(calls, 5);
    cask_pool_cache_stats_t st;
    assert_ok(cask_pool_cache_stats(p, &st, &err), &err);
    assert_int_equal(st.entries, 36);
    assert_true(st.bytes <= st.budget);
    assert_true(st.hits >= 2);
    /* without a cache, everything runs again */
    assert_int_equal(fib_on(&(cask_compute_opts_t){ .pool = plain }, 30, &calls, &memo), 832040);
    assert_int_equal(calls, 31);
    assert_int_equal(cask_pool_cache_stats(plain, &st, &err), CASK_EINVAL);
    /* impure kernels are never cached */
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t t = CASK_DELAYED(g, "pool.impure", &err, cask_int(1));
    cask_value_t v;
    int before = atomic_load(&impure_calls);
    for (int i = 0; i < 2; i++)
        assert_ok(cask_compute(g, &t, 1, &o, &v, NULL, &err), &err);
    assert_int_equal(atomic_load(&impure_calls) - before, 2);
    cask_graph_decref(g);
    cask_pool_free(plain);
    cask_pool_free(p);
}

/* Within a budget of 600 kB: a tiny result that took 50 ms, then two 400 kB
** results cheap to make; the cache never holds more than its budget, and
** what it lets go of is a cheap big one, not the costly small one, though
** that is the least recently used. */
static void test_result_cache_budget(void **state)
{
    (void)state;
    cask_error_t err;
    cask_pool_t *p;
    assert_ok(cask_pool_create(&(cask_pool_opts_t){ .workers = 2, .cache_bytes = 600000 }, &p,
                               &err), &err);
    cask_compute_opts_t o = { .pool = p };
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t big1 = CASK_DELAYED(g, "pool.big", &err, cask_int(400000), cask_int(1));
    cask_task_t slow = sleeper(g, 0.05, 1, 0, 0, NULL);
    cask_task_t big2 = CASK_DELAYED(g, "pool.big", &err, cask_int(400000), cask_int(2));
    cask_task_t huge = CASK_DELAYED(g, "pool.big", &err, cask_int(700000), cask_int(3));
    cask_value_t v;
    cask_pool_cache_stats_t st;
    cask_task_t order[] = { slow, big1, big2, huge }; /* the costly one oldest: not LRU */
    for (int i = 0; i < 4; i++) {
        assert_ok(cask_compute(g, &order[i], 1, &o, &v, NULL, &err), &err);
        cask_value_decref(&v);
        assert_ok(cask_pool_cache_stats(p, &st, &err), &err);
        assert_true(st.bytes <= 600000);
    }
    assert_int_equal(st.evictions, 1); /* big1 or big2 made room; huge never fits */
    assert_int_equal(st.entries, 2);
    reset_counts();
    cask_compute_info_t info;
    assert_ok(cask_compute(g, &slow, 1, &o, &v, &info, &err), &err);
    assert_int_equal(info.memcached, 1); /* the costly one stayed */
    assert_int_equal(atomic_load(&done_by_tag[1]), 0);
    int before = atomic_load(&big_calls);
    assert_ok(cask_compute(g, &huge, 1, &o, &v, &info, &err), &err);
    cask_value_decref(&v);
    assert_int_equal(atomic_load(&big_calls) - before, 1); /* bigger than the budget */
    cask_graph_decref(g);
    cask_pool_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_submits_share_workers),
        cmocka_unit_test(test_callers_share_slots),
        cmocka_unit_test(test_many_computes_in_flight),
        cmocka_unit_test(test_nested_computes),
        cmocka_unit_test(test_nested_across_pools),
        cmocka_unit_test(test_compute_in_callback),
        cmocka_unit_test(test_free_right_after),
        cmocka_unit_test(test_critical_path_first),
        cmocka_unit_test(test_no_compute_starves),
        cmocka_unit_test(test_waiting_computes_by_claim),
        cmocka_unit_test(test_errors_and_cancels_beside),
        cmocka_unit_test(test_free_waits_for_work),
        cmocka_unit_test(test_persist),
        cmocka_unit_test(test_persist_random),
        cmocka_unit_test(test_result_cache_fib),
        cmocka_unit_test(test_result_cache_budget),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}

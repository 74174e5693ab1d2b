/* tests/unit/test_backends.c: every parallel back-end against sync, on
** random graphs and worker counts; their traces; stopping at the first
** error. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "testutil.h"

/* The back-ends under test. ThreadSanitizer does not follow forked
** workers, so its build checks threads alone. */
#ifdef NO_FORK
static const char *const backends[] = { "threads" };
#else
static const char *const backends[] = { "threads", "processes" };
#endif
#define N_BACKENDS (sizeof backends / sizeof *backends)

static int setup(void **state)
{
    (void)state;
    register_test_kernels();
    return 0;
}


static void check_trace(const cask_graph_t *g, const cask_trace_t *tr, int workers, size_t tasks)
{
    size_t n = cask_trace_size(tr);
    assert_int_equal(n, tasks);
    assert_int_equal(cask_trace_workers(tr), workers);
    uint64_t *last_end = calloc((size_t)workers, sizeof *last_end);
    uint64_t *end_of = calloc(cask_graph_size(g), sizeof *end_of);
    char *seen = calloc(cask_graph_size(g), 1);
    for (size_t i = 0; i < n; i++) {
        const cask_trace_event_t *e = cask_trace_event(tr, i);
        assert_true(e->worker >= 0 && e->worker < workers);
        assert_true(e->start_ns <= e->end_ns);
        if (i)
            assert_true(cask_trace_event(tr, i - 1)->start_ns <= e->start_ns); /* sorted */
        assert_true(e->start_ns >= last_end[e->worker]); /* one task at a time */
        last_end[e->worker] = e->end_ns;
        cask_task_t t = cask_graph_find(g, e->key);
        assert_int_not_equal(t, CASK_NO_TASK);
        int64_t x = cask_graph_index(g, t);
        assert_false(seen[x]); /* each task once */
        seen[x] = 1;
        end_of[x] = e->end_ns;
        const cask_value_t *in;
        size_t m;
        assert_int_equal(cask_graph_inputs(g, t, &in, &m, NULL), 0);
        for (size_t j = 0; j < m; j++)
            if (in[j].type == CASK_REF) {
                int64_t y = cask_graph_index(g, in[j].u.task);
                assert_true(seen[y]);               /* inputs ran first */
                assert_true(end_of[y] <= e->start_ns); /* and had ended */
            }
    }
    free(last_end);
    free(end_of);
    free(seen);
}

static void test_random_graphs_match_sync(void **state)
{
    (void)state;
    cask_error_t err;
    int graphs = 0;
    size_t most = 0;
    for (unsigned seed = 1; seed <= 40; seed++) {
        cask_graph_t *g = cask_graph_new(&err);
        cask_task_t outs[64];
        size_t m = test_random_graph(g, seed, outs, 64);
        cask_value_t ref[64], got[64];
        cask_compute_info_t info;
        assert_ok(cask_compute(g, outs, m, &(cask_compute_opts_t){ .scheduler = "sync" }, ref, NULL,
                               &err), &err);
        if (cask_graph_size(g) > most)
            most = cask_graph_size(g);
        for (size_t b = 0; b < N_BACKENDS; b++)
            for (int w = 1; w <= 4; w++) {
                cask_compute_opts_t o = { .scheduler = backends[b], .workers = w,
                                          .flags = CASK_TRACE };
                assert_ok(cask_compute(g, outs, m, &o, got, &info, &err), &err);
                for (size_t i = 0; i < m; i++) {
                    if (!cask_value_equal(&ref[i], &got[i]))
                        fail_msg("%s, seed %u, %d workers: output %zu differs", backends[b],
                                 seed, w, i);
                    cask_value_decref(&got[i]);
                }
                check_trace(g, info.trace, w, info.tasks);
                cask_trace_free(info.trace);
            }
        for (size_t i = 0; i < m; i++)
            cask_value_decref(&ref[i]);
        cask_graph_decref(g);
        graphs++;
    }
    printf("# %d random graphs of up to %zu tasks, %zu back-ends, 1 to 4 workers each\n",
           graphs, most, N_BACKENDS);
}

/* What cask_compute_each hands over, kept by copying (a processes
** compute's values live in its arena, unmapped when it ends). */
typedef struct each {
    pthread_mutex_t lock;
    cask_value_t got[64];
    int calls[64], total, stop_at;
} each_t;

static int take(void *udata, size_t i, const cask_value_t *v)
{
    each_t *c = udata;
    cask_value_t mine;
    cask_error_t err;
    if (cask_value_copy(v, &mine, &err))
        return err.code;
    pthread_mutex_lock(&c->lock);
    int stop = ++c->total == c->stop_at;
    c->calls[i]++;
    cask_value_decref(&c->got[i]);
    c->got[i] = mine;
    pthread_mutex_unlock(&c->lock);
    return stop ? CASK_EIO : 0;
}

/* cask_compute_each: every output once, equal to sync's, on every back-end;
** a function that stops the compute fails it with its code; outputs let go
** of as they are handed over hold less than outputs kept. */
static void test_compute_each(void **state)
{
    (void)state;
    cask_error_t err;
    const char *all[N_BACKENDS + 1] = { "sync" };
    for (size_t b = 0; b < N_BACKENDS; b++)
        all[b + 1] = backends[b];
    for (unsigned seed = 1; seed <= 12; seed++) {
        cask_graph_t *g = cask_graph_new(&err);
        cask_task_t outs[64];
        size_t m = test_random_graph(g, seed, outs, 64);
        if (seed % 3 == 0 && m > 1)
            outs[m - 1] = outs[0]; /* an output asked for twice */
        cask_value_t ref[64];
        assert_ok(cask_compute(g, outs, m, &(cask_compute_opts_t){ .scheduler = "sync" }, ref, NULL,
                               &err), &err);
        for (size_t b = 0; b <= N_BACKENDS; b++) {
            each_t c = { .lock = PTHREAD_MUTEX_INITIALIZER };
            cask_compute_opts_t o = { .scheduler = all[b], .workers = 1 + (int)(seed % 3) };
            assert_ok(cask_compute_each(g, outs, m, &o, take, &c, NULL, &err), &err);
            for (size_t i = 0; i < m; i++) {
                if (c.calls[i] != 1 || !cask_value_equal(&ref[i], &c.got[i]))
                    fail_msg("%s, seed %u: output %zu handed over %d times, or not as sync's",
                             all[b], seed, i, c.calls[i]);
                cask_value_decref(&c.got[i]);
            }
            /* stopped at the third output */
            each_t s = { .lock = PTHREAD_MUTEX_INITIALIZER, .stop_at = 3 };
            if (m >= 3) {
                assert_int_equal(cask_compute_each(g, outs, m, &o, take, &s, NULL, &err), CASK_EIO);
                assert_non_null(strstr(err.message, "stopped the compute"));
            }
            for (size_t i = 0; i < m; i++)
                cask_value_decref(&s.got[i]);
        }
        for (size_t i = 0; i < m; i++)
            cask_value_decref(&ref[i]);
        cask_graph_decref(g);
    }
    assert_int_equal(cask_compute_each(NULL, NULL, 0, NULL, take, NULL, NULL, &err), CASK_EINVAL);
    assert_int_equal(cask_compute_each(NULL, NULL, 0, NULL, NULL, NULL, NULL, &err), CASK_EINVAL);

    /* 64 outputs of 24 KB: all held by cask_compute, a few by _each */
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t outs[64];
    for (int k = 0; k < 64; k++)
        outs[k] = CASK_DELAYED(g, "test.vec", &err, cask_int(2999 + 3000 * k));
    for (size_t b = 0; b <= N_BACKENDS; b++) {
        cask_compute_opts_t o = { .scheduler = all[b], .workers = 2 };
        cask_compute_info_t info;
        each_t c = { .lock = PTHREAD_MUTEX_INITIALIZER };
        assert_ok(cask_compute_each(g, outs, 64, &o, take, &c, &info, &err), &err);
        for (int k = 0; k < 64; k++) {
            assert_int_equal(cask_value_nbytes(&c.got[k]), 24000);
            cask_value_decref(&c.got[k]);
        }
        if (info.peak_bytes > 8 * 24000)
            fail_msg("%s: %zu bytes alive at once", all[b], info.peak_bytes);
        cask_value_t v[64];
        assert_ok(cask_compute(g, outs, 64, &o, v, &info, &err), &err);
        assert_int_equal(info.peak_bytes, 64 * 24000);
        for (int k = 0; k < 64; k++)
            cask_value_decref(&v[k]);
    }
    cask_graph_decref(g);
}

/* The first error stops the compute: a failing task that outranks 200 slow
** ones runs first, and no worker starts another task after it. */
static void test_error_stops_threads(void **state)
{
    (void)state;
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    enum { N = 200 };
    cask_value_t refs[N + 1];
    for (int i = 0; i < N; i++)
        refs[i] = cask_ref(CASK_DELAYED(g, "cask.sleep", &err, cask_double(0.01), cask_int(i)));
    cask_value_t msg;
    cask_value_string("worker caught fire", (size_t)-1, &msg, NULL);
    cask_task_spec_t f = { .kernel = "cask.fail", .inputs = &msg, .n_inputs = 1, .cost = 100,
                           .key = "fire" };
    cask_task_t ft;
    assert_ok(cask_graph_add(g, &f, &ft, &err), &err);
    cask_value_decref(&msg);
    refs[N] = cask_ref(ft);
    cask_task_t sum = cask_delayed(g, "cask.add", refs, N + 1, &err);
    for (size_t b = 0; b < N_BACKENDS; b++)
        for (int w = 1; w <= 4; w++) {
            cask_value_t r;
            cask_compute_info_t info;
            cask_compute_opts_t o = { .scheduler = backends[b], .workers = w };
            assert_int_equal(cask_compute(g, &sum, 1, &o, &r, &info, &err), CASK_EKERNEL);
            assert_string_equal(err.key, "fire");
            assert_string_equal(err.kernel, "cask.fail");
            assert_string_equal(err.message, "worker caught fire");
            assert_int_equal(r.type, CASK_NONE);
            /* 200 tasks of 10 ms: 2 s of work; stopping takes one task's time */
            assert_true(info.wall_s < 0.5);
        }
    cask_graph_decref(g);
}

/* Count the tasks that start, through the pretask callback. */
static atomic_int started;
static void on_pre(void *u, const char *k, int w) { (void)u, (void)k, (void)w; atomic_fetch_add(&started, 1); }
#ifndef NO_FORK
static void on_post(void *u, const char *k, int w, double s, int st)
{
    (void)u, (void)k, (void)w, (void)s, (void)st;
    atomic_fetch_add(&started, 1);
}
#endif

static void test_no_task_starts_after_error(void **state)
{
    (void)state;
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    enum { N = 100 };
    cask_value_t refs[N + 1];
    for (int i = 0; i < N; i++)
        refs[i] = cask_ref(CASK_DELAYED(g, "cask.sleep", &err, cask_double(0.005), cask_int(i)));
    cask_task_spec_t f = { .kernel = "cask.fail", .cost = 100, .key = "first" };
    cask_task_t ft;
    assert_ok(cask_graph_add(g, &f, &ft, &err), &err);
    refs[N] = cask_ref(ft);
    cask_task_t sum = cask_delayed(g, "cask.add", refs, N + 1, &err);
    for (int w = 1; w <= 4; w++) {
        cask_callbacks_t cb = { .pretask = on_pre };
        cask_compute_opts_t o = { .scheduler = "threads", .workers = w, .callbacks = &cb };
        cask_value_t r;
        atomic_store(&started, 0);
        assert_int_equal(cask_compute(g, &sum, 1, &o, &r, NULL, &err), CASK_EKERNEL);
        /* the failing task, plus at most one task per other worker already running */
        assert_true(atomic_load(&started) <= w);
    }
#ifndef NO_FORK
    /* processes: tasks are sent ahead, so count the ones that ran (posttask) */
    for (int w = 1; w <= 4; w++) {
        cask_callbacks_t cb = { .posttask = on_post };
        cask_compute_opts_t o = { .scheduler = "processes", .workers = w, .callbacks = &cb };
        cask_value_t r;
        atomic_store(&started, 0);
        assert_int_equal(cask_compute(g, &sum, 1, &o, &r, NULL, &err), CASK_EKERNEL);
        assert_string_equal(err.key, "first");
        assert_true(atomic_load(&started) <= w);
    }
#endif
    cask_graph_decref(g);
}

/* Many workers on a chain: only one can work at a time, results still right. */
static void test_chain_and_idle_workers(void **state)
{
    (void)state;
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t t = CASK_DELAYED(g, "test.count", &err, cask_int(0));
    for (int i = 0; i < 5000; i++)
        t = CASK_DELAYED(g, "test.count", &err, cask_ref(t));
    cask_value_t r;
    cask_compute_info_t info;
    for (size_t b = 0; b < N_BACKENDS; b++) {
        cask_compute_opts_t o = { .scheduler = backends[b], .workers = 8 };
        assert_ok(cask_compute(g, &t, 1, &o, &r, &info, &err), &err);
        assert_int_equal(r.u.i, 5001);
        assert_int_equal(info.workers, 8);
    }
    setenv("CASK_SCHEDULER", "threads", 1);
    setenv("CASK_NUM_WORKERS", "3", 1);
    assert_ok(cask_compute(g, &t, 1, NULL, &r, &info, &err), &err);
    assert_string_equal(info.scheduler, "threads");
    assert_int_equal(info.workers, 3);
    unsetenv("CASK_SCHEDULER");
    unsetenv("CASK_NUM_WORKERS");
    cask_graph_decref(g);
}

/* test.tagged: its registration's udata, an int, as its value. */
static int k_tagged(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    (void)a, (void)n;
    const int *tag = cask_kernel_udata(ctx);
    *out = cask_int(tag ? *tag : -1);
    return 0;
}

static double cost_tagged(const cask_value_t *a, size_t n)
{
    (void)a, (void)n;
    return 1e-5;
}

static atomic_bool rereg_stop;
static const int tags[2] = { 1, 2 };

static void *reregister(void *arg)
{
    (void)arg;
    for (unsigned i = 0; !atomic_load(&rereg_stop); i++) {
        cask_kernel_opts_t o = { .udata = (void *)&tags[i % 2], .cost = 1e-6 * (i % 7 + 1),
                                 .cost_fn = i % 3 ? cost_tagged : NULL };
        cask_kernel_register("test.tagged", k_tagged, &o, NULL);
    }
    return NULL;
}

/* Registering a kernel again (new options) while computes read them: each
** task sees one registration's options whole (ThreadSanitizer checks the
** rest). */
static void test_register_while_running(void **state)
{
    (void)state;
    cask_error_t err;
    cask_kernel_opts_t o = { .udata = (void *)&tags[0] };
    assert_ok(cask_kernel_register("test.tagged", k_tagged, &o, &err), &err);
    atomic_store(&rereg_stop, false);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, reregister, NULL), 0);
    for (int round = 0; round < 20; round++) {
        cask_graph_t *g = cask_graph_new(&err);
        enum { N = 200 };
        cask_task_t t[N];
        for (int i = 0; i < N; i++)
            t[i] = CASK_DELAYED(g, "test.tagged", &err, cask_int(i));
        cask_value_t r[N];
        cask_compute_opts_t co = { .scheduler = "threads", .workers = 2 };
        assert_ok(cask_compute(g, t, N, &co, r, NULL, &err), &err);
        for (int i = 0; i < N; i++)
            assert_true(r[i].type == CASK_INT64 && (r[i].u.i == 1 || r[i].u.i == 2));
        cask_graph_decref(g);
    }
    atomic_store(&rereg_stop, true);
    pthread_join(th, NULL);
}

/* Four chains of five coarse tasks (20 ms sleeps, so estimated) on two
** threads: each worker runs two chains back to back and neither sits idle
** at the end. A worker that took the first tasks in a batch, as if they
** were cheap, held a chain's start while the other worker ran; the last
** chain then ran alone for 3 or 4 tasks (80 ms of tail). */
static void test_coarse_tasks_dealt_out(void **state)
{
    (void)state;
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t ends[4];
    for (int c = 0; c < 4; c++) {
        cask_value_t in[3] = { cask_double(0.02), cask_int(c), cask_none() };
        size_t n = 2;
        for (int j = 0; j < 5; j++) {
            assert_ok(cask_graph_add(g, &(cask_task_spec_t){ .kernel = "cask.sleep", .inputs = in,
                                                             .n_inputs = n }, &ends[c], &err),
                      &err);
            in[2] = cask_ref(ends[c]);
            n = 3;
        }
    }
    cask_value_t v[4];
    cask_compute_info_t info;
    cask_compute_opts_t o = { .scheduler = "threads", .workers = 2, .flags = CASK_TRACE };
    assert_ok(cask_compute(g, ends, 4, &o, v, &info, &err), &err);
    double tail[2];
    assert_ok(cask_trace_idle(info.trace, NULL, tail, &err), &err);
    for (int w = 0; w < 2; w++)
        if (tail[w] > 0.04)
            fail_msg("worker %d sat idle for the last %.0f ms (tasks of 20 ms)", w, tail[w] * 1e3);
    for (int c = 0; c < 4; c++)
        cask_value_decref(&v[c]);
    cask_trace_free(info.trace);
    cask_graph_decref(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_graphs_match_sync),
        cmocka_unit_test(test_compute_each),
        cmocka_unit_test(test_error_stops_threads),
        cmocka_unit_test(test_no_task_starts_after_error),
        cmocka_unit_test(test_chain_and_idle_workers),
        cmocka_unit_test(test_register_while_running),
        cmocka_unit_test(test_coarse_tasks_dealt_out),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}

/* tests/unit/test_budget.c: the memory budget (cask_compute_opts_t
** .memory_limit, CASK_MEMORY_LIMIT) on every back-end that keeps one and
** in the simulator: random graphs of sized outputs never hold more than
** the budget and give sync's values, or fail saying the graph does not fit;
** a task bigger than the budget is refused before anything runs. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "testutil.h"

static atomic_int blob_calls;

/* test.blob(size, inputs...): size bytes, each (size + the first byte of
** every input) % 251, so its content depends on every input. */
static int k_blob(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    if (!n || a[0].type != CASK_INT64 || a[0].u.i < 1)
        return cask_kernel_fail(ctx, "a size first");
    atomic_fetch_add(&blob_calls, 1);
    size_t size = (size_t)a[0].u.i, len;
    unsigned v = (unsigned)size;
    for (size_t i = 1; i < n; i++) {
        const unsigned char *p = cask_value_data(&a[i], &len);
        if (!p || !len)
            return cask_kernel_fail(ctx, "input %zu is not bytes", i);
        v += p[0];
    }
    unsigned char *buf = malloc(size);
    if (!buf)
        return cask_kernel_fail(ctx, "no memory");
    memset(buf, (int)(v % 251), size);
    cask_error_t err;
    int rc = cask_value_bytes(buf, size, out, &err);
    free(buf);
    return rc ? cask_kernel_fail(ctx, "%s", err.message) : 0;
}

static int setup(void **state)
{
    (void)state;
    cask_error_t err;
    if (cask_kernel_register("test.blob", k_blob, NULL, &err))
        fail_msg("register: %s", err.message);
    return 0;
}

/* A random DAG of blobs of 1 to 64 KB, each reading up to three earlier
** ones, with their sizes given. Sinks in outs; *need: the most one task
** needs at once (its output and its inputs). */
static size_t blob_graph(cask_graph_t *g, unsigned seed, cask_task_t *outs, size_t max_outs,
                         uint64_t *need)
{
    cask_error_t err;
    srand(seed);
    size_t n = 20 + (size_t)(rand() % 200), m = 0;
    cask_task_t *all = malloc(n * sizeof *all);
    uint64_t *size = malloc(n * sizeof *size);
    char *used = calloc(n, 1);
    *need = 0;
    for (size_t i = 0; i < n; i++) {
        cask_value_t in[4];
        size_t k = 0;
        size[i] = 1 + (uint64_t)(rand() % 65536);
        in[k++] = cask_int((int64_t)size[i]);
        uint64_t here = size[i];
        for (int j = 0; j < 3 && i > 0; j++) {
            size_t u = i - 1 - (size_t)rand() % (i < 30 ? i : 30); /* mostly recent ones */
            if (rand() % 3 == 0)
                continue;
            bool dup = false;
            for (size_t q = 1; q < k; q++)
                dup |= in[q].u.task == all[u];
            if (dup)
                continue;
            in[k++] = cask_ref(all[u]);
            used[u] = 1;
            here += size[u];
        }
        *need = here > *need ? here : *need;
        cask_task_spec_t spec = { .kernel = "test.blob", .inputs = in, .n_inputs = k,
                                  .index = i, .nbytes = size[i] };
        if (cask_graph_add(g, &spec, &all[i], &err))
            fail_msg("add: %s", err.message);
    }
    for (size_t i = 0; i < n && m < max_outs; i++)
        if (!used[i])
            outs[m++] = all[i];
    free(all);
    free(size);
    free(used);
    return m;
}

/* Outputs handed over by cask_compute_each, copied. */
typedef struct got {
    pthread_mutex_t lock;
    cask_value_t v[256];
} got_t;

static int keep(void *udata, size_t i, const cask_value_t *v)
{
    got_t *g = udata;
    cask_value_t mine;
    if (cask_value_copy(v, &mine, NULL))
        return CASK_ENOMEM;
    pthread_mutex_lock(&g->lock);
    g->v[i] = mine;
    pthread_mutex_unlock(&g->lock);
    return 0;
}

/* Random graphs, budgets from 7/8 of sync's peak with none to that peak
** (below, most of these graphs cannot be run in the priority order: each
** output is read by tasks far apart): every run either keeps the budget
** and gives sync's values, or fails before going over it, saying the graph
** does not fit; at least half fit. The simulator, playing sync's
** order on one worker, reaches sync's peak, and keeps a budget too. */
static void test_budget_random_graphs(void **state)
{
    (void)state;
    cask_error_t err;
    int runs = 0, kept = 0, stalled = 0;
    for (unsigned seed = 1; seed <= 24; seed++) {
        cask_graph_t *g = cask_graph_new(&err);
        cask_task_t outs[256];
        uint64_t need;
        size_t m = blob_graph(g, seed, outs, 256, &need);
        got_t ref = { .lock = PTHREAD_MUTEX_INITIALIZER };
        cask_compute_info_t info;
        cask_compute_opts_t so = { .scheduler = "sync" };
        assert_ok(cask_compute_each(g, outs, m, &so, keep, &ref, &info, &err), &err);
        size_t peak0 = info.peak_bytes;
        assert_int_equal(info.memory_limit, 0);

        cask_sim_result_t sr;
        cask_sim_opts_t sim = { .workers = 1 };
        assert_ok(cask_simulate(g, outs, m, &sim, &sr, &err), &err);
        cask_sim_result_destroy(&sr);

        for (int b = 0; b < 3; b++) {
            size_t budget = peak0 - (size_t)rand() % (peak0 / 8); /* 7/8 of the peak to it */
            budget = budget < need ? (size_t)need : budget;
            sim.memory_limit = budget;
            sim.workers = 1 + b;
            int rc = cask_simulate(g, outs, m, &sim, &sr, &err);
            if (rc) {
                assert_int_equal(rc, CASK_ENOMEM);
            } else {
                assert_true(sr.peak_bytes <= budget);
                cask_sim_result_destroy(&sr);
            }
            for (size_t s = 0; s < N_TEST_SCHEDS; s++) {
                got_t got = { .lock = PTHREAD_MUTEX_INITIALIZER };
                cask_compute_opts_t o = { .scheduler = test_scheds[s], .workers = 1 + (b + (int)s) % 3,
                                          .memory_limit = budget };
                runs++;
                rc = cask_compute_each(g, outs, m, &o, keep, &got, &info, &err);
                if (info.peak_bytes > budget)
                    fail_msg("%s, seed %u: %zu bytes held, budget %zu", test_scheds[s], seed,
                             info.peak_bytes, budget);
                if (rc) {
                    assert_int_equal(rc, CASK_ENOMEM);
                    assert_non_null(strstr(err.message, "too small for this graph"));
                    stalled++;
                } else {
                    kept++;
                    assert_int_equal(info.memory_limit, budget);
                    for (size_t i = 0; i < m; i++)
                        if (!cask_value_equal(&ref.v[i], &got.v[i]))
                            fail_msg("%s, seed %u: output %zu differs", test_scheds[s], seed, i);
                }
                for (size_t i = 0; i < m; i++)
                    cask_value_decref(&got.v[i]);
            }
        }
        for (size_t i = 0; i < m; i++)
            cask_value_decref(&ref.v[i]);
        cask_graph_decref(g);
    }
    printf("# %d runs with a budget under sync's peak without one: %d kept it, %d did not fit\n",
           runs, kept, stalled);
    assert_true(kept >= runs / 2);
}

/* The simulator on one worker plays sync's order, sizes included. */
static void test_sim_peak_is_sync_peak(void **state)
{
    (void)state;
    cask_error_t err;
    for (unsigned seed = 1; seed <= 8; seed++) {
        cask_graph_t *g = cask_graph_new(&err);
        cask_task_t outs[256];
        uint64_t need;
        size_t m = blob_graph(g, seed, outs, 256, &need);
        cask_value_t *v = calloc(m, sizeof *v);
        cask_compute_info_t info;
        cask_compute_opts_t so = { .scheduler = "sync" };
        assert_ok(cask_compute(g, outs, m, &so, v, &info, &err), &err);
        cask_sim_result_t sr;
        cask_sim_opts_t sim = { .workers = 1 };
        assert_ok(cask_simulate(g, outs, m, &sim, &sr, &err), &err);
        assert_int_equal(sr.peak_bytes, info.peak_bytes);
        cask_sim_result_destroy(&sr);
        for (size_t i = 0; i < m; i++)
            cask_value_decref(&v[i]);
        free(v);
        cask_graph_decref(g);
    }
}

/* A task that alone needs more than the budget, or outputs held to the
** end that together do, fail the compute before any kernel runs. */
static void test_budget_refuses_before_running(void **state)
{
    (void)state;
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t a, b, outs[4];
    cask_value_t in[2] = { cask_int(30000) };
    cask_task_spec_t sa = { .kernel = "test.blob", .inputs = in, .n_inputs = 1, .key = "a",
                            .nbytes = 30000 };
    assert_ok(cask_graph_add(g, &sa, &a, &err), &err);
    in[0] = cask_int(40000);
    in[1] = cask_ref(a);
    cask_task_spec_t sb = { .kernel = "test.blob", .inputs = in, .n_inputs = 2, .key = "big",
                            .nbytes = 40000 };
    assert_ok(cask_graph_add(g, &sb, &b, &err), &err);
    assert_int_equal(cask_graph_nbytes(g, b), 40000);
    sb.key = "huge";
    sb.nbytes = (uint64_t)1 << 63;
    assert_int_equal(cask_graph_add(g, &sb, NULL, &err), CASK_EINVAL);
    assert_non_null(strstr(err.message, "nbytes"));
    in[0] = cask_int(30000);
    in[1] = cask_ref(a);
    for (int i = 0; i < 4; i++) { /* four that read a */
        cask_task_spec_t s = { .kernel = "test.blob", .inputs = in, .n_inputs = 2,
                               .index = (uint64_t)i + 1, .nbytes = 30000 };
        assert_ok(cask_graph_add(g, &s, &outs[i], &err), &err);
    }
    for (size_t s = 0; s < N_TEST_SCHEDS; s++) {
        cask_compute_opts_t o = { .scheduler = test_scheds[s], .workers = 2, .memory_limit = 65000 };
        cask_value_t v[4];
        atomic_store(&blob_calls, 0);
        /* big needs 70,000 bytes: its 40,000 and a's 30,000 */
        assert_int_equal(cask_compute(g, &b, 1, &o, v, NULL, &err), CASK_ENOMEM);
        assert_string_equal(err.key, "big");
        assert_non_null(strstr(err.message, "needs 70000 bytes at once"));
        assert_int_equal(atomic_load(&blob_calls), 0);
        /* four outputs of 30,000 held to the end: 120,000 */
        o.memory_limit = 100000;
        assert_int_equal(cask_compute(g, outs, 4, &o, v, NULL, &err), CASK_ENOMEM);
        assert_non_null(strstr(err.message, "the 4 outputs asked for take 120000 bytes"));
        assert_int_equal(atomic_load(&blob_calls), 0);
        /* taken as they come, they fit */
        got_t got = { .lock = PTHREAD_MUTEX_INITIALIZER };
        cask_compute_info_t info;
        assert_ok(cask_compute_each(g, outs, 4, &o, keep, &got, &info, &err), &err);
        assert_true(info.peak_bytes <= 100000);
        for (int i = 0; i < 4; i++) {
            assert_int_equal(cask_value_nbytes(&got.v[i]), 30000);
            cask_value_decref(&got.v[i]);
        }
    }
    /* a task that makes more than it was given fails: the budget counted on it */
    in[0] = cask_int(5000);
    cask_task_spec_t sl = { .kernel = "test.blob", .inputs = in, .n_inputs = 1, .key = "liar",
                            .nbytes = 4000 };
    cask_task_t liar;
    assert_ok(cask_graph_add(g, &sl, &liar, &err), &err);
    for (size_t s = 0; s < N_TEST_SCHEDS; s++) {
        cask_compute_opts_t o = { .scheduler = test_scheds[s], .workers = 2, .memory_limit = 65000 };
        cask_value_t v;
        assert_int_equal(cask_compute(g, &liar, 1, &o, &v, NULL, &err), CASK_ENOMEM);
        assert_string_equal(err.key, "liar");
        assert_non_null(strstr(err.message, "made 5000 bytes, over the 4000"));
        o.memory_limit = 0; /* without a budget, a size is only a hint */
        assert_ok(cask_compute(g, &liar, 1, &o, &v, NULL, &err), &err);
        cask_value_decref(&v);
    }
    cask_sim_result_t sr;
    cask_sim_opts_t sim = { .workers = 2, .memory_limit = 65000 };
    assert_int_equal(cask_simulate(g, &b, 1, &sim, &sr, &err), CASK_ENOMEM);
    assert_string_equal(err.key, "big");
    sim.policy = CASK_SIM_FIFO;
    assert_int_equal(cask_simulate(g, &b, 1, &sim, &sr, &err), CASK_EINVAL);
    cask_graph_decref(g);
}

static int fifo_run(cask_run_t *r, void *udata, cask_error_t *err)
{
    (void)r, (void)udata, (void)err;
    return 0;
}

/* CASK_MEMORY_LIMIT: byte counts with units; bad ones refused; the option
** wins over it; a scheduler that keeps no budget refuses one. */
static void test_memory_limit_setting(void **state)
{
    (void)state;
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t t = CASK_DELAYED(g, "cask.add", &err, cask_int(1), cask_int(2));
    static const struct { const char *s; size_t bytes; } ok[] = {
        { "4000000", 4000000 }, { "64MB", 64000000 }, { "64mb", 64000000 }, { "64M", 64000000 },
        { "1.5GiB", 1610612736 }, { "2KiB", 2048 }, { "3k", 3000 }, { "1TB", 1000000000000 },
    };
    cask_compute_opts_t o = { .scheduler = "sync" };
    cask_compute_info_t info;
    cask_value_t v;
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        setenv("CASK_MEMORY_LIMIT", ok[i].s, 1);
        assert_ok(cask_compute(g, &t, 1, &o, &v, &info, &err), &err);
        if (info.memory_limit != ok[i].bytes)
            fail_msg("'%s' read as %zu, not %zu", ok[i].s, info.memory_limit, ok[i].bytes);
        assert_int_equal(v.u.i, 3);
    }
    o.memory_limit = 12345;
    assert_ok(cask_compute(g, &t, 1, &o, &v, &info, &err), &err);
    assert_int_equal(info.memory_limit, 12345);
    o.memory_limit = 0;
    static const char *const bad[] = { "abc", "64XB", "-5", "1e30", "5 MB", "MB", "64MiBs" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        setenv("CASK_MEMORY_LIMIT", bad[i], 1);
        if (cask_compute(g, &t, 1, &o, &v, &info, &err) != CASK_EINVAL)
            fail_msg("CASK_MEMORY_LIMIT='%s' was taken", bad[i]);
        assert_non_null(strstr(err.message, "CASK_MEMORY_LIMIT"));
    }
    unsetenv("CASK_MEMORY_LIMIT");
    assert_ok(cask_compute(g, &t, 1, &o, &v, &info, &err), &err);
    assert_int_equal(info.memory_limit, 0);

    cask_scheduler_t fifo = { .name = "test.nobudget", .run = fifo_run };
    assert_ok(cask_scheduler_register(&fifo, &err), &err);
    cask_compute_opts_t u = { .scheduler = "test.nobudget", .memory_limit = 1000 };
    assert_int_equal(cask_compute(g, &t, 1, &u, &v, NULL, &err), CASK_EINVAL);
    assert_non_null(strstr(err.message, "does not keep a memory budget"));
    cask_graph_decref(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_budget_random_graphs),
        cmocka_unit_test(test_sim_peak_is_sync_peak),
        cmocka_unit_test(test_budget_refuses_before_running),
        cmocka_unit_test(test_memory_limit_setting),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}

/*
** tests/unit/test_hardening.c: allocation failure at every point, stress at
** millions of tasks, a failing kernel on a random task on every back-end.
** Leaks are LeakSanitizer's to find (make test-asan runs this file).
*/
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "testutil.h"

long cask__alloc_fail_at(long n);   /* graph/util.c: the test-only failure hook */
void *cask__malloc(size_t n);       /* the allocator the hook governs */
void cask__free(void *p);

static const char *const backends[] = { "sync", "threads", "processes" };
enum { NBACKENDS = 3 };

/* A diamond as an STG file: tasks 1 (4), 2 (3) and 3 (5), 2 and 3 after 1. */
static const char stg_text[] = "3\n0 0 0\n1 4 1 0\n2 3 1 1\n3 5 1 1\n4 0 2 2 3\n";
static char stg_path[] = "/tmp/cask_hard_XXXXXX";

/* jansson allocates through cask's allocator here, so the hook reaches
** every allocation a load makes (as jansson's own chaos test does).
** jansson's lexer reports some failed allocations as syntax errors; a
** CASK_EPARSE is accepted only when one of its allocations failed. */
static int json_alloc_failed;
static void *json_alloc(size_t n)
{
    void *p = cask__malloc(n);
    json_alloc_failed |= !p;
    return p;
}

static int setup(void **state)
{
    (void)state;
    register_test_kernels();
    json_set_alloc_funcs(json_alloc, cask__free);
    int fd = mkstemp(stg_path);
    if (fd < 0 || write(fd, stg_text, sizeof stg_text - 1) != (ssize_t)(sizeof stg_text - 1))
        return -1;
    close(fd);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(stg_path);
    return 0;
}

/* ----------------------------------------------- allocation failure loop */

/* The graph the loop loads: a diamond of counts and an array sum. */
static const char graph_json[] =
    "{\"format\": \"cask-graph\", \"version\": 1, \"tasks\": ["
    "{\"key\": \"a\", \"kernel\": \"test.count\", \"inputs\": [1]},"
    "{\"key\": \"b\", \"kernel\": \"test.count\", \"inputs\": [{\"ref\": \"a\"}, 10],"
    " \"group\": \"mid\"},"
    "{\"key\": \"c\", \"kernel\": \"test.count\", \"inputs\": [{\"ref\": \"a\"}, \"x\"],"
    " \"group\": \"mid\", \"cost\": 2},"
    "{\"key\": \"unused\", \"kernel\": \"test.count\", \"inputs\": [5]},"
    "{\"key\": \"d\", \"kernel\": \"test.vec\", \"inputs\": [{\"ref\": \"b\"}, {\"ref\": \"a\"}]}"
    "], \"outputs\": [\"b\", \"d\"]}";

/* Read the STG file, analyse it and simulate it on 2 workers. */
static int read_and_analyse(cask_error_t *err)
{
    cask_graph_t *g = NULL;
    int rc = cask_graph_load(stg_path, 0, &g, err);
    cask_analysis_t a = { 0 };
    if (!rc)
        rc = cask_graph_analyze(g, 0, &a, err);
    if (!rc && (a.width != 2 || a.span != 9 || a.work != 12))
        fail_msg("analysis: width %zu span %g work %g", a.width, a.span, a.work);
    cask_analysis_destroy(&a);
    cask_sim_opts_t so = { .workers = 2 };
    cask_sim_result_t sr = { 0 };
    if (!rc)
        rc = cask_simulate(g, NULL, 0, &so, &sr, err);
    if (!rc && sr.makespan != 9)
        fail_msg("simulated makespan %g", sr.makespan);
    cask_sim_result_destroy(&sr);
    cask_graph_decref(g);
    return rc;
}

/* One pass of everything a program does: build a graph of calls and an
** array expression, load a graph from JSON, compute both on sched (the
** compute culls what the outputs do not need), then read, analyse and
** simulate an STG file. Returns 0 or an error code; on 0 the results are
** checked. */
static int one_pass(const char *sched, cask_error_t *err)
{
    cask_compute_opts_t o = { .scheduler = sched, .workers = 2, .flags = CASK_TRACE };
    cask_graph_t *g = cask_graph_new(err), *h = NULL;
    if (!g)
        return err->code;
    int rc = 0;
    cask_task_t t = CASK_NO_TASK, dead = CASK_NO_TASK;
    for (int i = 0; i < 20 && !rc; i++) {
        t = CASK_DELAYED(g, "test.count", err, cask_int(i),
                         t == CASK_NO_TASK ? cask_int(0) : cask_ref(t));
        dead = CASK_DELAYED(g, "test.count", err, cask_int(-i)); /* culled */
        if (t == CASK_NO_TASK || dead == CASK_NO_TASK)
            rc = err->code;
    }
    cask_array_t *x = NULL, *y = NULL, *s = NULL;
    if (!rc) {
        /* checked at each step: a NULL operand is CASK_EINVAL, not the cause */
        if (!(x = cask_array_arange(g, CASK_F64, 100, 0, 1000, 1, err)) ||
            !(y = cask_array_binop_scalar(x, CASK_MUL, cask_double(2), err)) ||
            !(s = cask_array_reduce(y, CASK_SUM, NULL, err)))
            rc = err->code;
    }
    double sum = 0;
    if (!rc)
        rc = cask_array_compute(&s, 1, &o, (void *[]){ &sum }, NULL, err);
    if (!rc && sum != 999000.0)
        fail_msg("array sum %g", sum);
    cask_value_t r = { .type = CASK_NONE };
    cask_compute_info_t info = { 0 };
    if (!rc)
        rc = cask_compute(g, &t, 1, &o, &r, &info, err);
    if (!rc) {
        assert_int_equal(r.u.i, 20 + 19 * 20 / 2); /* each adds i + 1 */
        assert_int_equal(info.tasks, 20);
        cask_value_decref(&r);
    }
    cask_trace_free(info.trace);
    if (!rc)
        rc = cask_graph_parse_json(graph_json, sizeof graph_json - 1, 0, &h, err);
    cask_value_t rs[2] = { { .type = CASK_NONE }, { .type = CASK_NONE } };
    size_t nout = 0;
    const cask_task_t *outs = h ? cask_graph_outputs(h, &nout) : NULL;
    if (!rc)
        rc = cask_compute(h, outs, nout, &o, rs, NULL, err);
    if (!rc) {
        assert_int_equal(rs[0].u.i, 2 + 10 + 1);
        assert_int_equal(rs[1].type, CASK_NDARRAY);
        cask_value_decref(&rs[0]);
        cask_value_decref(&rs[1]);
    }
    cask_array_decref(x);
    cask_array_decref(y);
    cask_array_decref(s);
    cask_graph_decref(h);
    cask_graph_decref(g);
    if (!rc)
        rc = read_and_analyse(err);
    return rc;
}

/* Fail the 1st, 2nd, ... allocation of one_pass on each back-end: every
** run either succeeds with the right results or fails with CASK_ENOMEM,
** and leaves nothing behind. */
static void test_alloc_failure_everywhere(void **state)
{
    (void)state;
    int fds = count_fds();
    for (int b = 0; b < NBACKENDS; b++) {
        cask_error_t err;
        cask__alloc_fail_at(0);
        assert_ok(one_pass(backends[b], &err), &err);
        long total = 0, covered = 0, ok_anyway = 0;
        for (long at = 1;; at++) {
            cask__alloc_fail_at(at);
            json_alloc_failed = 0;
            int rc = one_pass(backends[b], &err);
            long made = cask__alloc_fail_at(0);
            if (made < at) { /* no failure was injected: every point is covered */
                assert_ok(rc, &err);
                total = made;
                break;
            }
            if (rc && rc != CASK_ENOMEM && !(rc == CASK_EPARSE && json_alloc_failed))
                fail_msg("%s, allocation %ld failed: %s [%s]", backends[b], at, err.message,
                         cask_err_name(rc));
            covered++;
            ok_anyway += rc == 0;
            if (count_fds() != fds)
                fail_msg("%s, allocation %ld failed (%s): a descriptor is left", backends[b],
                         at, rc ? err.message : "it succeeded");
            assert_nothing_left(fds);
        }
        printf("# %s: %ld allocation failure points covered of %ld allocations "
               "(%ld of them survived: optional allocations)\n",
               backends[b], covered, total, ok_anyway);
        assert_true(covered > 100);
        assert_nothing_left(fds);
    }
}

/* ------------------------------------------------------------- stress */

/* Resident memory now, in bytes. */
static double rss_bytes(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f || fscanf(f, "%ld %ld", &pages, &resident) != 2)
        fail_msg("cannot read /proc/self/statm");
    fclose(f);
    return (double)resident * (double)sysconf(_SC_PAGESIZE);
}

/* How many tasks the big test runs: CASK_STRESS_TASKS, else 10,000,000. */
static long stress_tasks(void)
{
    const char *s = getenv("CASK_STRESS_TASKS");
    long n = s ? atol(s) : 10000000;
    return n > 1000 ? n : 1000;
}

/* Compute out of g on sync and on threads; both must give want. Prints the
** wall time and the peak of live output bytes. */
static void compute_both(const char *what, const cask_graph_t *g, cask_task_t out, int64_t want)
{
    for (int b = 0; b < 2; b++) {
        cask_error_t err;
        cask_value_t r;
        cask_compute_info_t info;
        cask_compute_opts_t o = { .scheduler = backends[b], .workers = 2 };
        assert_ok(cask_compute(g, &out, 1, &o, &r, &info, &err), &err);
        assert_int_equal(r.type, CASK_INT64);
        assert_int_equal(r.u.i, want);
        printf("# %s on %s: %zu tasks in %.2f s\n", what, backends[b], info.tasks, info.wall_s);
    }
}

/* A chain of 1,000,000 tasks: building, culling, ordering, ranking,
** computing, analysing, writing and reading it back and freeing it use no
** recursion that grows with depth (a recursive walk would overflow an 8 MB
** stack long before). */
static void test_chain_of_a_million(void **state)
{
    (void)state;
    enum { N = 1000000 };
    cask_error_t err;
    double rss0 = rss_bytes();
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t t = CASK_DELAYED(g, "test.count", &err, cask_int(0));
    for (int i = 1; i < N; i++)
        t = CASK_DELAYED(g, "test.count", &err, cask_ref(t));
    assert_int_not_equal(t, CASK_NO_TASK);
    CASK_DELAYED(g, "test.count", &err, cask_int(7)); /* culled */
    printf("# chain: %.0f bytes per task (graph), %.0f resident\n",
           (double)cask_graph_memory(g) / N, (rss_bytes() - rss0) / N);
    compute_both("chain", g, t, N);
    cask_analysis_t a;
    assert_ok(cask_graph_analyze(g, 0, &a, &err), &err);
    assert_int_equal(a.levels, N);
    assert_int_equal(a.width, 2);
    assert_int_equal(a.critical_len, N);
    cask_analysis_destroy(&a);
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    assert_ok(cask_graph_set_outputs(g, &t, 1, &err), &err);
    assert_ok(cask_graph_write_json(g, m, &err), &err);
    fclose(m);
    cask_graph_decref(g);
    assert_ok(cask_graph_parse_json(text, len, 0, &g, &err), &err);
    free(text);
    assert_int_equal(cask_graph_size(g), N + 1);
    size_t nout;
    compute_both("chain read back", g, cask_graph_outputs(g, &nout)[0], N); /* indices differ */
    cask_graph_decref(g);
}

/* One task with 1,000,000 inputs. */
static void test_fan_in_of_a_million(void **state)
{
    (void)state;
    enum { N = 1000000 };
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    cask_value_t *in = malloc(N * sizeof *in);
    for (int i = 0; i < N; i++)
        in[i] = cask_ref(CASK_DELAYED(g, "test.count", &err, cask_int(i))); /* keys differ */
    cask_task_t sum = cask_delayed(g, "test.count", in, N, &err);
    free(in);
    assert_int_not_equal(sum, CASK_NO_TASK);
    /* input i is i + 1 */
    compute_both("fan-in", g, sum, (int64_t)N * (N + 1) / 2 + 1);
    cask_analysis_t a;
    assert_ok(cask_graph_analyze(g, 0, &a, &err), &err);
    assert_int_equal(a.width, N);
    assert_int_equal(a.levels, 2);
    cask_analysis_destroy(&a);
    cask_graph_decref(g);
}

/* 10,000,000 trivial tasks (a tree: 9,000,000 leaves, then sums of 10
** until one is left), on sync and on threads; memory per task reported. */
static void test_ten_million_tasks(void **state)
{
    (void)state;
    long total = stress_tasks(), leaves = total / 10 * 9;
    cask_error_t err;
    double rss0 = rss_bytes();
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t *level = malloc((size_t)leaves * sizeof *level);
    for (long i = 0; i < leaves; i++)
        level[i] = CASK_DELAYED(g, "test.count", &err, cask_int(i)); /* i + 1 */
    int64_t want = (int64_t)leaves * (leaves + 1) / 2;
    long n = leaves;
    while (n > 1) { /* each sum adds 1 */
        long m = 0;
        for (long i = 0; i < n; i += 10, m++) {
            cask_value_t in[10];
            int k = 0;
            for (long j = i; j < n && j < i + 10; j++)
                in[k++] = cask_ref(level[j]);
            level[m] = cask_delayed(g, "test.count", in, (size_t)k, &err);
            assert_int_not_equal(level[m], CASK_NO_TASK);
            want++;
        }
        n = m;
    }
    cask_task_t root = level[0];
    free(level);
    size_t tasks = cask_graph_size(g);
    double built = rss_bytes() - rss0;
    printf("# %zu tasks: %.0f bytes per task (graph), %.0f resident\n", tasks,
           (double)cask_graph_memory(g) / (double)tasks, built / (double)tasks);
    compute_both("tree", g, root, want);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("# peak resident memory of the whole test: %.0f bytes per task\n",
           (double)ru.ru_maxrss * 1024 / (double)tasks);
    cask_graph_decref(g);
}

/* --------------------------------------------------- a failing kernel */


/* Among 400 tasks, one chosen at random fails, on every back-end and
** through a future: the compute fails with that task's key, the kernel and
** its message, returns no result, and leaves nothing behind. */
static void test_random_task_fails(void **state)
{
    (void)state;
    cask_error_t err;
    unsigned seed = (unsigned)time(NULL);
    printf("# seed %u\n", seed);
    int fds = count_fds();
    enum { N = 400 };
    for (int round = 0; round < 2 * NBACKENDS; round++) {
        const char *sched = backends[round % NBACKENDS];
        int bad = rand_r(&seed) % N;
        cask_graph_t *g = cask_graph_new(&err);
        cask_value_t in[N];
        char key[CASK_KEY_MAX + 1];
        for (int i = 0; i < N; i++) {
            cask_task_t t = CASK_DELAYED(g, "test.fail_at", &err, cask_int(i), cask_int(bad));
            in[i] = cask_ref(t);
            if (i == bad)
                snprintf(key, sizeof key, "%s", cask_graph_key(g, t));
        }
        cask_task_t sum = cask_delayed(g, "cask.add", in, N, &err);
        cask_compute_opts_t o = { .scheduler = sched, .workers = 2 };
        cask_value_t r;
        int rc;
        if (round < NBACKENDS) {
            rc = cask_compute(g, &sum, 1, &o, &r, NULL, &err);
        } else {
            cask_future_t *f;
            assert_ok(cask_submit(g, &sum, 1, &o, &f, &err), &err);
            rc = cask_future_get(f, &r, &err);
            cask_future_free(f);
        }
        assert_int_equal(rc, CASK_EKERNEL);
        assert_string_equal(err.key, key);
        assert_string_equal(err.kernel, "test.fail_at");
        char msg[64];
        snprintf(msg, sizeof msg, "task %d fails on purpose", bad);
        assert_msg_has(&err, msg);
        assert_int_equal(r.type, CASK_NONE);
        cask_graph_decref(g);
        assert_nothing_left(fds);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_failure_everywhere),
        cmocka_unit_test(test_chain_of_a_million),
        cmocka_unit_test(test_fan_in_of_a_million),
        cmocka_unit_test(test_ten_million_tasks),
        cmocka_unit_test(test_random_task_fails),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

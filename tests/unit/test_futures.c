/* tests/unit/test_futures.c: cask_submit and futures (wait k of n with a
** timeout, get, cancel, several computes in flight), and the progress bar. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "testutil.h"


static int setup(void **state)
{
    (void)state;
    register_test_kernels();
    return 0;
}

/* A task that sleeps s seconds and returns i. */
static cask_task_t sleeper(cask_graph_t *g, double s, int i)
{
    cask_error_t err;
    cask_task_t t = CASK_DELAYED(g, "cask.sleep", &err, cask_double(s), cask_int(i));
    if (t == CASK_NO_TASK)
        fail_msg("add: %s", err.message);
    return t;
}

/* Two outputs of one compute: the quick one is done while the slow one
** still runs; then both give their values. */
static void test_output_done_before_compute(void **state)
{
    (void)state;
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t outs[2] = { sleeper(g, 0.4, 1), sleeper(g, 0.0, 2) };
    cask_future_t *f[2];
    cask_compute_opts_t o = { .scheduler = "threads", .workers = 2 };
    uint64_t t0 = cask_now_ns();
    assert_ok(cask_submit(g, outs, 2, &o, f, &err), &err);
    cask_graph_decref(g); /* the compute keeps it */
    bool done[2];
    assert_int_equal(cask_future_wait(f, 2, 1, -1, done), 1);
    assert_false(done[0]);
    assert_true(done[1]);
    assert_true(cask_now_ns() - t0 < 300000000ull); /* well before the slow one */
    assert_false(cask_future_done(f[0]));
    cask_value_t v;
    assert_ok(cask_future_get(f[1], &v, &err), &err);
    assert_int_equal(v.u.i, 2);
    assert_ok(cask_future_get(f[0], &v, &err), &err);
    assert_int_equal(v.u.i, 1);
    assert_true(cask_future_done(f[0]));
    cask_compute_info_t info;
    assert_ok(cask_future_info(f[0], &info), &err);
    assert_int_equal(info.tasks, 2);
    assert_string_equal(info.scheduler, "threads");
    cask_future_free(f[0]);
    cask_future_free(f[1]);
}

/* wait's timeout: nothing done within it; k of n across two computes. */
static void test_wait_timeout_and_k_of_n(void **state)
{
    (void)state;
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t slow = sleeper(g, 0.5, 7), quick = sleeper(g, 0.05, 8);
    cask_future_t *f[2];
    assert_ok(cask_submit(g, &slow, 1, NULL, &f[0], &err), &err);
    assert_ok(cask_submit(g, &quick, 1, NULL, &f[1], &err), &err);
    bool done[2] = { true, true };
    uint64_t t0 = cask_now_ns();
    assert_int_equal(cask_future_wait(f, 2, 1, 0.0, done), 0); /* just a look */
    assert_false(done[0] || done[1]);
    assert_int_equal(cask_future_wait(f, 2, 1, NAN, done), 0); /* a look too */
    assert_int_equal(cask_future_wait(f, 2, 2, 0.2, done), 1); /* times out with one */
    uint64_t waited = cask_now_ns() - t0;
    assert_true(waited >= 190000000ull);
    assert_false(done[0]);
    assert_true(done[1]);
    t0 = cask_now_ns(); /* more than there are: the time limit ends it */
    assert_true(cask_future_wait(f, 2, SIZE_MAX, 0.1, done) <= 2);
    assert_true(cask_now_ns() - t0 >= 90000000ull);
    assert_int_equal(cask_future_wait(f, 2, 2, INFINITY, done), 2); /* no limit */
    assert_true(done[0] && done[1]);
    assert_int_equal(cask_future_wait(f, 2, 2, -1, done), 2);
    cask_future_free(f[0]);
    cask_future_free(f[1]);
    cask_graph_decref(g);
}

/* A waiter for many futures sleeps until enough events have happened, and
** is never woken too late: with every quick future done and the slow first
** one still running (so the done ones are not a prefix), a wait for all of
** them, one for the slow one alone and one already satisfied, on three
** threads at once, each return as soon as it can, well before their time
** limits. */
typedef struct waitjob {
    cask_future_t **f;
    size_t n, k;
    size_t got;
    uint64_t ns;
} waitjob_t;

static void *waiting(void *arg)
{
    waitjob_t *w = arg;
    uint64_t t0 = cask_now_ns();
    w->got = cask_future_wait(w->f, w->n, w->k, 20, NULL);
    w->ns = cask_now_ns() - t0;
    return NULL;
}

static void test_waiters_woken_in_time(void **state)
{
    (void)state;
    cask_error_t err;
    enum { N = 40 };
    cask_graph_t *g = cask_graph_new(&err);
    cask_future_t *f[N];
    cask_compute_opts_t o = { .scheduler = "threads", .workers = 2 };
    cask_task_t t[N];
    for (int i = 0; i < N; i++) /* the first sleeps 1 s, the rest 1 ms */
        t[i] = sleeper(g, i ? 0.001 : 1.0, i);
    for (int i = 0; i < N; i++) /* the graph is read-only while they run */
        assert_ok(cask_submit(g, &t[i], 1, &o, &f[i], &err), &err);
    assert_int_equal(cask_future_wait(f + 1, N - 1, N - 1, 20, NULL), N - 1);
    assert_false(cask_future_done(f[0]));
    cask_future_t *thrice[3] = { f[0], f[0], f[0] }; /* one done counts 3 */
    waitjob_t w[4] = {
        { f, N, N, 0, 0 },      /* all: the slow one last */
        { f, 1, 1, 0, 0 },      /* the slow one */
        { f, N, N - 1, 0, 0 },  /* done already */
        { thrice, 3, 3, 0, 0 }, /* the slow one, given three times */
    };
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, waiting, &w[i]), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(w[0].got, N);
    assert_int_equal(w[1].got, 1);
    assert_true(w[2].got >= N - 1);
    assert_int_equal(w[3].got, 3);
    for (int i = 0; i < 4; i++)
        assert_true(w[i].ns < 10000000000ull); /* not the 20 s limit */
    for (int i = 0; i < N; i++) {
        cask_value_t v;
        assert_ok(cask_future_get(f[i], &v, &err), &err);
        assert_int_equal(v.u.i, i);
        cask_future_free(f[i]);
    }
    cask_graph_decref(g);
}

static atomic_int ran;
static void count_post(void *u, const char *k, int w, double s, int st)
{
    (void)u, (void)k, (void)w, (void)s, (void)st;
    atomic_fetch_add(&ran, 1);
}

/* Cancelling the only future stops the compute: far fewer tasks run than
** the graph has, and get says CASK_ECANCELED. On every back-end. */
static void test_cancel_stops_compute(void **state)
{
    (void)state;
    const char *scheds[] = { "sync", "threads", "processes" };
    size_t ns = 3;
#ifdef NO_FORK
    ns = 2;
#endif
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    enum { N = 100 };
    cask_value_t refs[N];
    for (int i = 0; i < N; i++)
        refs[i] = cask_ref(sleeper(g, 0.01, i));
    cask_task_t sum = cask_delayed(g, "cask.add", refs, N, &err);
    int fds = count_fds();
    for (size_t s = 0; s < ns; s++) {
        cask_callbacks_t cb = { .posttask = count_post };
        cask_compute_opts_t o = { .scheduler = scheds[s], .workers = 2, .callbacks = &cb };
        cask_future_t *f;
        atomic_store(&ran, 0);
        assert_ok(cask_submit(g, &sum, 1, &o, &f, &err), &err);
        assert_false(cask_future_wait(&f, 1, 1, 0.05, NULL)); /* running */
        assert_true(cask_future_cancel(f));
        assert_false(cask_future_cancel(f)); /* once */
        cask_value_t v;
        assert_int_equal(cask_future_get(f, &v, &err), CASK_ECANCELED);
        assert_int_equal(v.type, CASK_NONE);
        cask_compute_info_t info;
        assert_int_equal(cask_future_info(f, &info), CASK_ECANCELED);
        assert_true(atomic_load(&ran) < N / 2);
        cask_future_free(f);
        assert_nothing_left(fds); /* no worker process, descriptor or arena */
    }
    /* a future freed while its compute runs cancels it, and leaks nothing */
    cask_future_t *f;
    assert_ok(cask_submit(g, &sum, 1, NULL, &f, &err), &err);
    cask_future_free(f);
    assert_nothing_left(fds);
    cask_graph_decref(g);
}

/* Several computes in flight at once, on each back-end, give what sync gives. */
static void test_many_in_flight(void **state)
{
    (void)state;
    const char *scheds[] = { "threads", "processes" };
    size_t ns = 2;
#ifdef NO_FORK
    ns = 1;
#endif
    cask_error_t err;
    enum { K = 6 };
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t outs[K];
    for (int k = 0; k < K; k++) { /* chains of different lengths over a shared start */
        cask_task_t t = CASK_DELAYED(g, "test.count", &err, cask_int(k));
        for (int i = 0; i < 200 * (k + 1); i++)
            t = CASK_DELAYED(g, i % 50 ? "test.count" : "test.vec", &err, cask_ref(t));
        outs[k] = t;
    }
    cask_value_t want[K];
    assert_ok(cask_compute(g, outs, K, NULL, want, NULL, &err), &err);
    for (size_t s = 0; s < ns; s++) {
        cask_future_t *f[K];
        cask_compute_opts_t o = { .scheduler = scheds[s], .workers = 2 };
        for (int k = 0; k < K; k++)
            assert_ok(cask_submit(g, &outs[k], 1, &o, &f[k], &err), &err);
        assert_int_equal(cask_future_wait(f, K, K, 30, NULL), K);
        for (int k = 0; k < K; k++) {
            cask_value_t v;
            assert_ok(cask_future_get(f[k], &v, &err), &err);
            if (!cask_value_equal(&v, &want[k]))
                fail_msg("%s: compute %d differs", scheds[s], k);
            cask_value_decref(&v);
            cask_future_free(f[k]);
        }
    }
    for (int k = 0; k < K; k++)
        cask_value_decref(&want[k]);
    cask_graph_decref(g);
}

/* What submit refuses at once; a failing task reaches its future. */
static void test_submit_errors(void **state)
{
    (void)state;
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t ok = CASK_DELAYED(g, "test.count", &err, cask_int(1)), bad = ok + 99;
    cask_future_t *f = (cask_future_t *)&err;
    assert_int_equal(cask_submit(g, &bad, 1, NULL, &f, &err), CASK_EMISSING);
    assert_null(f);
    cask_graph_t *h = cask_graph_new(&err); /* another graph's task */
    cask_task_t other = CASK_DELAYED(h, "test.count", &err, cask_int(1));
    f = (cask_future_t *)&err;
    assert_int_equal(cask_submit(g, &other, 1, NULL, &f, &err), CASK_EINVAL);
    assert_msg_has(&err, "another graph");
    assert_null(f);
    cask_graph_decref(h);
    cask_compute_opts_t o = { .scheduler = "no-such" };
    assert_int_equal(cask_submit(g, &ok, 1, &o, &f, &err), CASK_ENOSCHED);
    assert_null(f);
    cask_task_spec_t s = { .kernel = "cask.fail", .key = "oops" };
    cask_task_t ft;
    assert_ok(cask_graph_add(g, &s, &ft, &err), &err);
    cask_task_t outs[2] = { ok, ft };
    cask_future_t *fs[2];
    assert_ok(cask_submit(g, outs, 2, NULL, fs, &err), &err);
    cask_value_t v;
    assert_int_equal(cask_future_get(fs[1], &v, &err), CASK_EKERNEL);
    assert_string_equal(err.key, "oops");
    cask_future_free(fs[0]);
    cask_future_free(fs[1]);
    cask_graph_decref(g);
}

/* Run a compute with stderr sent to a file; return what was written. */
static char *stderr_of(const cask_graph_t *g, cask_task_t out, unsigned flags, const char *env)
{
    char path[] = "/tmp/cask-progress-XXXXXX";
    int fd = mkstemp(path);
    int saved = dup(2);
    fflush(stderr);
    dup2(fd, 2);
    if (env)
        setenv("CASK_PROGRESS", env, 1);
    cask_compute_opts_t o = { .scheduler = "threads", .workers = 2, .flags = flags };
    cask_value_t v;
    cask_error_t err;
    int rc = cask_compute(g, &out, 1, &o, &v, NULL, &err);
    unsetenv("CASK_PROGRESS");
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    assert_ok(rc, &err);
    static char buf[4096];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    close(fd);
    unlink(path);
    return buf;
}

static void test_progress_bar(void **state)
{
    (void)state;
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    cask_value_t refs[20];
    for (int i = 0; i < 20; i++)
        refs[i] = cask_ref(sleeper(g, 0.02, i));
    cask_task_t sum = cask_delayed(g, "cask.add", refs, 20, &err);
    char *s = stderr_of(g, sum, CASK_PROGRESS, NULL);
    assert_non_null(strstr(s, "100%  21/21 tasks"));
    assert_non_null(strchr(s, '\r'));
    assert_int_equal(s[strlen(s) - 1], '\n'); /* ends its line */
    assert_string_equal(stderr_of(g, sum, CASK_NO_PROGRESS, NULL), "");
    assert_string_equal(stderr_of(g, sum, 0, NULL), "");   /* not a terminal */
    assert_non_null(strstr(stderr_of(g, sum, 0, "1"), "21/21 tasks"));
    assert_string_equal(stderr_of(g, sum, CASK_PROGRESS | CASK_NO_PROGRESS, "0"), "");
    cask_graph_decref(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_output_done_before_compute),
        cmocka_unit_test(test_wait_timeout_and_k_of_n),
        cmocka_unit_test(test_waiters_woken_in_time),
        cmocka_unit_test(test_cancel_stops_compute),
        cmocka_unit_test(test_many_in_flight),
        cmocka_unit_test(test_submit_errors),
        cmocka_unit_test(test_progress_bar),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}

/* tests/unit/test_processes.c: what only the processes scheduler does:
** values in shared memory, workers that die (by their kernel or killed
** from outside), retries, and nothing left behind: no child, no
** descriptor, no mapping. */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

/* ------------------------------------------------------------- kernels */

/* test.die_once(path): the first call in any process creates path and
** kills its own process; later calls return 42. */
static int k_die_once(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    const char *path = n ? cask_value_str(&a[0], NULL) : NULL;
    if (!path)
        return cask_kernel_fail(ctx, "wants a path");
    FILE *f = fopen(path, "wx");
    if (f) {
        fclose(f);
        kill(getpid(), SIGKILL);
        pause();
    }
    *out = cask_int(42);
    return 0;
}

/* test.exit3: ends its process with status 3. */
static int k_exit3(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    (void)a, (void)n, (void)out, (void)ctx;
    _exit(3);
}

/* test.opaque: returns an opaque pointer. */
static int k_opaque(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    (void)a, (void)n;
    cask_error_t err;
    static int thing;
    if (cask_value_opaque(&thing, NULL, out, &err))
        return cask_kernel_fail(ctx, "%s", err.message);
    return 0;
}

/* test.fill(i, len): len doubles, element j = i + j. */
static int k_fill(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    if (n != 2)
        return cask_kernel_fail(ctx, "wants i and len");
    int64_t len = a[1].u.i;
    cask_error_t err;
    if (cask_value_ndarray(CASK_F64, 1, &len, out, &err))
        return cask_kernel_fail(ctx, "%s", err.message);
    cask_nd_t nd;
    cask_value_nd(out, &nd);
    double *d = nd.data;
    for (int64_t j = 0; j < len; j++)
        d[j] = (double)(a[0].u.i + j);
    return 0;
}

/* test.sum: the sum of every element of every n-d input, as a double. */
static int k_sum(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        cask_nd_t nd;
        if (cask_value_nd(&a[i], &nd))
            return cask_kernel_fail(ctx, "input %zu is not an n-d buffer", i);
        for (size_t j = 0; j < nd.size; j++)
            s += ((const double *)nd.data)[j];
    }
    *out = cask_double(s);
    return 0;
}

/* test.pass: returns its first input (another reference to it). */
static int k_pass(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    if (!n)
        return cask_kernel_fail(ctx, "wants an input");
    *out = a[0];
    cask_value_incref(out);
    return 0;
}

/* Calls of test.crash_on per item, counted across processes: the counters
** live in a shared mapping made before any worker is forked. */
enum { MAXI = 64 };
static _Atomic int *calls;

/* test.crash_on(i, target, in): the first call with i == target kills its
** process with SIGSEGV; any other call returns i + in (in: an input's
** value, or 0). */
static int k_crash_on(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    if (n < 2 || a[0].type != CASK_INT64 || a[0].u.i < 0 || a[0].u.i >= MAXI)
        return cask_kernel_fail(ctx, "wants (i, target[, input])");
    int i = (int)a[0].u.i;
    if (atomic_fetch_add(&calls[i], 1) == 0 && i == a[1].u.i) {
        signal(SIGSEGV, SIG_DFL);
        kill(getpid(), SIGSEGV);
        pause();
    }
    *out = cask_int(i + (n > 2 ? cask_value_int(&a[2]) : 0));
    return 0;
}

static int setup(void **state)
{
    (void)state;
    cask_error_t err;
    register_test_kernels();
    if (cask_kernel_register("test.die_once", k_die_once, &(cask_kernel_opts_t){ .flags = CASK_KERNEL_IMPURE }, &err) ||
        cask_kernel_register("test.exit3", k_exit3, NULL, &err) ||
        cask_kernel_register("test.opaque", k_opaque, NULL, &err) ||
        cask_kernel_register("test.fill", k_fill, NULL, &err) ||
        cask_kernel_register("test.sum", k_sum, NULL, &err) ||
        cask_kernel_register("test.pass", k_pass, NULL, &err) ||
        cask_kernel_register("test.crash_on", k_crash_on, NULL, &err))
        fail_msg("register: %s", err.message);
    calls = mmap(NULL, MAXI * sizeof *calls, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                 -1, 0);
    if (calls == MAP_FAILED)
        fail_msg("mmap: %s", strerror(errno));
    return 0;
}

static int run_processes(const cask_graph_t *g, cask_task_t out, cask_value_t *res, int workers,
                         int retries, cask_compute_info_t *info, cask_error_t *err)
{
    cask_compute_opts_t o = { .scheduler = "processes", .workers = workers, .retries = retries,
                              .flags = CASK_TRACE };
    return cask_compute(g, &out, 1, &o, res, info, err);
}

/* ---------------------------------------------------------------- tests */

/* Chunks made in one worker and read in another: 64 buffers of 100,000
** doubles, summed in pairs and then all together; the same as sync. */
static void test_chunks_cross_processes(void **state)
{
    (void)state;
    cask_error_t err;
    int fds = count_fds();
    cask_graph_t *g = cask_graph_new(&err);
    enum { N = 64, LEN = 100000 };
    cask_value_t sums[N / 2];
    cask_task_t parts[N];
    for (int i = 0; i < N; i++)
        parts[i] = CASK_DELAYED(g, "test.fill", &err, cask_int(i), cask_int(LEN));
    for (int i = 0; i < N / 2; i++)
        sums[i] = cask_ref(CASK_DELAYED(g, "test.sum", &err, cask_ref(parts[2 * i]),
                                        cask_ref(parts[2 * i + 1])));
    cask_task_t total = cask_delayed(g, "cask.add", sums, N / 2, &err);
    /* sum over i, j of (i + j) */
    double want = (double)N * LEN * (LEN - 1) / 2 + (double)LEN * N * (N - 1) / 2;
    for (int w = 1; w <= 3; w++) {
        cask_value_t r;
        cask_compute_info_t info;
        assert_ok(run_processes(g, total, &r, w, 0, &info, &err), &err);
        assert_int_equal(r.type, CASK_DOUBLE);
        assert_true(r.u.d == want);
        assert_string_equal(info.scheduler, "processes");
        assert_true(info.peak_bytes >= 2 * LEN * sizeof(double));
        assert_true(info.peak_bytes <= (size_t)N * LEN * sizeof(double));
        cask_trace_free(info.trace);
    }
    /* an n-d output comes back whole, and outlives the compute */
    cask_value_t chunk;
    cask_compute_info_t info;
    assert_ok(run_processes(g, parts[5], &chunk, 2, 0, &info, &err), &err);
    cask_trace_free(info.trace);
    cask_nd_t nd;
    assert_int_equal(cask_value_nd(&chunk, &nd), 0);
    assert_int_equal(nd.size, LEN);
    for (size_t j = 0; j < nd.size; j++)
        if (((double *)nd.data)[j] != (double)(5 + j))
            fail_msg("element %zu is %g", j, ((double *)nd.data)[j]);
    /* a literal passed through by a kernel comes back equal */
    cask_value_t lit, back;
    assert_ok(cask_value_string("made before the fork", (size_t)-1, &lit, &err), &err);
    cask_task_t p = CASK_DELAYED(g, "test.pass", &err, lit);
    assert_ok(run_processes(g, p, &back, 2, 0, &info, &err), &err);
    cask_trace_free(info.trace);
    assert_true(cask_value_equal(&lit, &back));
    cask_value_decref(&lit);
    cask_value_decref(&back);
    cask_value_decref(&chunk);
    cask_graph_decref(g);
    assert_nothing_left(fds);
}

/* A kernel that crashes every time: tried 1 + retries times, then the
** compute fails naming the key, the kernel and the signal. */
static void test_crash_is_retried_then_fails(void **state)
{
    (void)state;
    cask_error_t err;
    int fds = count_fds();
    cask_graph_t *g = cask_graph_new(&err);
    cask_value_t refs[21];
    for (int i = 0; i < 20; i++)
        refs[i] = cask_ref(CASK_DELAYED(g, "cask.sleep", &err, cask_double(0.001), cask_int(i)));
    cask_task_spec_t s = { .kernel = "cask.crash", .key = "segv" };
    cask_task_t c;
    assert_ok(cask_graph_add(g, &s, &c, &err), &err);
    refs[20] = cask_ref(c);
    cask_task_t sum = cask_delayed(g, "cask.add", refs, 21, &err);
    int tries[] = { 0, 2, CASK_NO_RETRY };
    const char *want[] = { "2 attempts", "3 attempts", "1 attempt," };
    for (int i = 0; i < 3; i++) {
        cask_value_t r;
        assert_int_equal(run_processes(g, sum, &r, 2, tries[i], NULL, &err), CASK_EWORKER);
        assert_string_equal(err.key, "segv");
        assert_string_equal(err.kernel, "cask.crash");
        assert_int_equal(err.signal, SIGSEGV);
        assert_msg_has(&err, "killed by signal 11");
        assert_msg_has(&err, want[i]);
        assert_int_equal(r.type, CASK_NONE);
        assert_nothing_left(fds);
    }
    /* a kernel that exits: the status, not a signal */
    cask_task_spec_t e = { .kernel = "test.exit3", .key = "quits" };
    cask_task_t q;
    assert_ok(cask_graph_add(g, &e, &q, &err), &err);
    cask_value_t r;
    assert_int_equal(run_processes(g, q, &r, 1, 0, NULL, &err), CASK_EWORKER);
    assert_int_equal(err.signal, 0);
    assert_msg_has(&err, "exited with status 3");
    cask_graph_decref(g);
    assert_nothing_left(fds);
}

/*
** A crash at every position of what workers run: N short tasks (measured
** short after the first, so workers hold several and answer in batches),
** task `target` crashing on its first call. With a retry, the compute
** gives the right answer, the crashed task ran twice and every other task
** once (a task its worker finished but had not reported is not run again:
** its output is in the arena). Without retries, the error names the task
** that crashed, never the one before it. Independent tasks, then a chain.
*/
static void test_crash_blamed_at_every_position(void **state)
{
    (void)state;
    enum { N = 24 };
    cask_error_t err;
    int fds = count_fds();
    for (int chain = 0; chain < 2; chain++)
        for (int target = 0; target < N; target++) {
            cask_graph_t *g = cask_graph_new(&err);
            cask_value_t refs[N];
            cask_task_t t[N], prev = CASK_NO_TASK;
            for (int i = 0; i < N; i++) {
                cask_value_t in = chain && i ? cask_ref(prev) : cask_int(0);
                prev = t[i] = CASK_DELAYED(g, "test.crash_on", &err, cask_int(i),
                                           cask_int(target), in);
                refs[i] = cask_ref(t[i]);
            }
            cask_task_t sum = chain ? t[N - 1] : cask_delayed(g, "cask.add", refs, N, &err);
            for (int retry = 1; retry >= 0; retry--) {
                for (int i = 0; i < MAXI; i++)
                    atomic_store(&calls[i], 0);
                cask_value_t r;
                int rc = run_processes(g, sum, &r, 2, retry ? 1 : CASK_NO_RETRY, NULL, &err);
                if (retry) {
                    assert_ok(rc, &err);
                    assert_int_equal(cask_value_int(&r), N * (N - 1) / 2);
                    for (int i = 0; i < N; i++)
                        if (atomic_load(&calls[i]) != (i == target ? 2 : 1))
                            fail_msg("%s, crash at %d: task %d ran %d times",
                                     chain ? "chain" : "fan", target, i,
                                     atomic_load(&calls[i]));
                } else {
                    assert_int_equal(rc, CASK_EWORKER);
                    assert_string_equal(err.key, cask_graph_key(g, t[target]));
                    assert_string_equal(err.kernel, "test.crash_on");
                    assert_int_equal(err.signal, SIGSEGV);
                    assert_msg_has(&err, "1 attempt,");
                }
                assert_nothing_left(fds);
            }
            cask_graph_decref(g);
        }
}

/*
** A handful of coarse tasks is shared among the workers: each of n
** independent 20 ms tasks on w workers runs on a worker of its own while
** one is free (no worker holds a task another could start), so every
** worker runs n / w of them, give or take one.
*/
static void test_coarse_tasks_spread(void **state)
{
    (void)state;
    cask_error_t err;
    const int cases[][2] = { { 2, 2 }, { 4, 2 }, { 16, 2 }, { 17, 2 }, { 25, 4 }, { 6, 6 } };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        int n = cases[c][0], w = cases[c][1];
        cask_graph_t *g = cask_graph_new(&err);
        cask_task_t t[32];
        for (int i = 0; i < n; i++)
            t[i] = CASK_DELAYED(g, "cask.sleep", &err, cask_double(0.02), cask_int(i));
        cask_value_t r[32];
        cask_compute_info_t info;
        cask_compute_opts_t o = { .scheduler = "processes", .workers = w, .flags = CASK_TRACE };
        assert_ok(cask_compute(g, t, (size_t)n, &o, r, &info, &err), &err);
        int per[8] = { 0 };
        for (size_t i = 0; i < cask_trace_size(info.trace); i++)
            per[cask_trace_event(info.trace, i)->worker]++;
        for (int k = 0; k < w; k++)
            if (per[k] < n / w || per[k] > (n + w - 1) / w)
                fail_msg("%d tasks on %d workers: worker %d ran %d", n, w, k, per[k]);
        cask_trace_free(info.trace);
        cask_graph_decref(g);
    }
}

/* A worker that dies once is replaced, and the compute succeeds; without
** retries the same death fails it. */
static void test_death_once_recovers(void **state)
{
    (void)state;
    cask_error_t err;
    int fds = count_fds();
    char path[64];
    snprintf(path, sizeof path, "/tmp/cask-die-once-%d", (int)getpid());
    cask_graph_t *g = cask_graph_new(&err);
    cask_value_t p;
    assert_ok(cask_value_string(path, (size_t)-1, &p, &err), &err);
    cask_value_t refs[41];
    for (int i = 0; i < 40; i++)
        refs[i] = cask_ref(CASK_DELAYED(g, "test.count", &err, cask_int(i)));
    refs[40] = cask_ref(CASK_DELAYED(g, "test.die_once", &err, p));
    cask_task_t sum = cask_delayed(g, "cask.add", refs, 41, &err);
    cask_value_t r;
    cask_compute_info_t info;
    unlink(path);
    assert_ok(run_processes(g, sum, &r, 2, 0, &info, &err), &err);
    assert_int_equal(r.u.i, 40 * 41 / 2 + 42);
    assert_int_equal(cask_trace_size(info.trace), info.tasks); /* each task once */
    cask_trace_free(info.trace);
    unlink(path);
    assert_int_equal(run_processes(g, sum, &r, 2, CASK_NO_RETRY, NULL, &err), CASK_EWORKER);
    assert_int_equal(err.signal, SIGKILL);
    assert_true(strncmp(err.key, "die_once-", 9) == 0);
    unlink(path);
    cask_value_decref(&p);
    cask_graph_decref(g);
    assert_nothing_left(fds);
}

/* Kill a child of this process, found through /proc, after `delay` s. */
typedef struct killer {
    double delay;
    int killed;
    unsigned seed;
} killer_t;

static void *kill_a_worker(void *arg)
{
    killer_t *k = arg;
    struct timespec ts = { 0, (long)(k->delay * 1e9) };
    nanosleep(&ts, NULL);
    char path[300];
    for (int tries = 0; tries < 200 && !k->killed; tries++) {
        int pids[64], n = 0;
        DIR *d = opendir("/proc/self/task");
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (e->d_name[0] == '.')
                continue;
            snprintf(path, sizeof path, "/proc/self/task/%s/children", e->d_name);
            FILE *f = fopen(path, "r");
            while (f && n < 64 && fscanf(f, "%d", &pids[n]) == 1)
                n++;
            if (f)
                fclose(f);
        }
        if (d)
            closedir(d);
        if (n && kill(pids[rand_r(&k->seed) % n], SIGKILL) == 0) /* any of the workers */
            k->killed = 1;
        ts = (struct timespec){ 0, 1000000 };
        nanosleep(&ts, NULL);
    }
    return NULL;
}

/* A worker killed from outside at a random moment of a long compute, 8
** times: with retries the compute completes with the right answer (its task
** is rerun); without, it completes (the kill came after the worker's last
** task) or fails with CASK_EWORKER naming the task. Nothing is left either
** way. */
static void test_killed_at_random_moments(void **state)
{
    (void)state;
    cask_error_t err;
    int fds = count_fds();
    cask_graph_t *g = cask_graph_new(&err);
    enum { N = 150 };
    cask_value_t refs[N];
    for (int i = 0; i < N; i++)
        refs[i] = cask_ref(CASK_DELAYED(g, "cask.sleep", &err, cask_double(0.002), cask_int(i)));
    cask_task_t sum = cask_delayed(g, "cask.add", refs, N, &err);
    unsigned seed = (unsigned)time(NULL);
    printf("# seed %u\n", seed);
    int failed = 0;
    for (int round = 0; round < 8; round++) {
        killer_t k = { .delay = 0.15 * rand_r(&seed) / RAND_MAX, .seed = seed + round };
        int retries = round % 2 ? CASK_NO_RETRY : 3;
        pthread_t th;
        pthread_create(&th, NULL, kill_a_worker, &k);
        cask_value_t r;
        cask_compute_info_t info;
        int rc = run_processes(g, sum, &r, 2, retries, &info, &err);
        pthread_join(th, NULL);
        if (retries == CASK_NO_RETRY && rc) {
            assert_int_equal(rc, CASK_EWORKER);
            assert_true(err.key[0]);
            assert_int_equal(r.type, CASK_NONE);
            failed++;
        } else {
            assert_ok(rc, &err);
            /* cask.sleep(s, i) returns i */
            assert_int_equal(r.type, CASK_INT64);
            assert_int_equal(r.u.i, N * (N - 1) / 2);
            assert_int_equal(cask_trace_size(info.trace), info.tasks);
            cask_trace_free(info.trace);
        }
        assert_true(k.killed || rc == 0);
        assert_nothing_left(fds);
    }
    printf("# %d of 4 runs without retries failed cleanly\n", failed);
    cask_graph_decref(g);
    assert_nothing_left(fds);
}

/* An opaque input is refused before anything runs; an opaque result fails
** its task. */
static atomic_int ran;
static void on_pre(void *u, const char *k, int w) { (void)u, (void)k, (void)w; atomic_fetch_add(&ran, 1); }

static void test_opaque_refused(void **state)
{
    (void)state;
    cask_error_t err;
    int fds = count_fds();
    cask_graph_t *g = cask_graph_new(&err);
    static int thing;
    cask_value_t op;
    assert_ok(cask_value_opaque(&thing, NULL, &op, &err), &err);
    cask_task_t a = CASK_DELAYED(g, "test.count", &err, cask_int(1));
    cask_task_t b = CASK_DELAYED(g, "test.pass", &err, op, cask_ref(a));
    cask_callbacks_t cb = { .pretask = on_pre };
    cask_compute_opts_t o = { .scheduler = "processes", .workers = 2, .callbacks = &cb };
    cask_value_t r;
    assert_int_equal(cask_compute(g, &b, 1, &o, &r, NULL, &err), CASK_ETYPE);
    assert_msg_has(&err, "opaque");
    assert_true(strncmp(err.key, "pass-", 5) == 0);
    assert_int_equal(atomic_load(&ran), 0);
    cask_task_t c = CASK_DELAYED(g, "test.opaque", &err, cask_int(0));
    assert_int_equal(cask_compute(g, &c, 1, &o, &r, NULL, &err), CASK_ETYPE);
    assert_msg_has(&err, "returned an opaque value");
    assert_string_equal(err.kernel, "test.opaque");
    cask_value_decref(&op);
    cask_graph_decref(g);
    assert_nothing_left(fds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chunks_cross_processes),
        cmocka_unit_test(test_crash_is_retried_then_fails),
        cmocka_unit_test(test_death_once_recovers),
        cmocka_unit_test(test_crash_blamed_at_every_position),
        cmocka_unit_test(test_coarse_tasks_spread),
        cmocka_unit_test(test_killed_at_random_moments),
        cmocka_unit_test(test_opaque_refused),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}

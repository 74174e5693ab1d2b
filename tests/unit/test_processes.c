/* tests/unit/test_processes.c: what only the processes scheduler does:
** values in shared memory, workers that die (by their kernel or killed
** from outside), retries, and nothing left behind: no child, no
** descriptor, no mapping. Every test runs twice: with workers forked per
** compute, then on pools of processes (forked once, one pool per worker
** count, made before the tests), where what is left must be the pools'
** workers and arenas and nothing more. Then what only pools do. */
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

#include "cask/array.h"
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

/* test.nap_crash(i, target): test.crash_on(i, target) after a 3 ms nap. */
static int k_nap_crash(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    struct timespec ts = { 0, 3000000 };
    nanosleep(&ts, NULL);
    return k_crash_on(a, n, out, ctx);
}

/* test.pid(i): sleeps 5 ms and returns its process's id. */
static int k_pid(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    (void)a, (void)n, (void)ctx;
    struct timespec ts = { 0, 5000000 };
    nanosleep(&ts, NULL);
    *out = cask_int(getpid());
    return 0;
}

/* test.global: the value of `late` in the process that runs it. */
static int late;
static int k_global(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    (void)a, (void)n, (void)ctx;
    *out = cask_int(late);
    return 0;
}

/* test.busy(i): i, after 2 ms counted in busy[0] (running now) and
** busy[1] (the most at once), shared by every process. */
static _Atomic int *busy;
static int k_busy(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    (void)n, (void)ctx;
    int now = atomic_fetch_add(&busy[0], 1) + 1, most = atomic_load(&busy[1]);
    while (now > most && !atomic_compare_exchange_weak(&busy[1], &most, now))
        ;
    struct timespec ts = { 0, 2000000 };
    nanosleep(&ts, NULL);
    atomic_fetch_sub(&busy[0], 1);
    *out = a[0];
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
        cask_kernel_register("test.crash_on", k_crash_on, NULL, &err) ||
        cask_kernel_register("test.nap_crash", k_nap_crash, NULL, &err) ||
        cask_kernel_register("test.pid", k_pid, &(cask_kernel_opts_t){ .flags = CASK_KERNEL_IMPURE }, &err) ||
        cask_kernel_register("test.global", k_global, &(cask_kernel_opts_t){ .flags = CASK_KERNEL_IMPURE }, &err) ||
        cask_kernel_register("test.busy", k_busy, NULL, &err))
        fail_msg("register: %s", err.message);
    calls = mmap(NULL, (MAXI + 2) * sizeof *calls, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    busy = calls + MAXI;
    if (calls == MAP_FAILED)
        fail_msg("mmap: %s", strerror(errno));
    return 0;
}

/* The second run's pools, by worker count (pools[w] has w workers). */
enum { MAXW = 6 };
static cask_pool_t *pools[MAXW + 1];
static bool on_pools;

/* Options for a compute on processes with w workers: on pools[w] in the
** second run. */
static cask_compute_opts_t procs_opts(int w)
{
    return (cask_compute_opts_t){ .scheduler = "processes", .workers = w,
                                  .pool = on_pools ? pools[w] : NULL };
}

static int run_processes(const cask_graph_t *g, cask_task_t out, cask_value_t *res, int workers,
                         int retries, cask_compute_info_t *info, cask_error_t *err)
{
    cask_compute_opts_t o = procs_opts(workers);
    o.retries = retries;
    o.flags = CASK_TRACE;
    return cask_compute(g, &out, 1, &o, res, info, err);
}

/* The pids of pools[w]'s workers, into pids: each of w 5 ms tasks runs on
** a worker of its own. */
static int pool_pids(int w, int *pids)
{
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t t[MAXW];
    cask_value_t r[MAXW];
    for (int i = 0; i < w; i++)
        t[i] = CASK_DELAYED(g, "test.pid", &err, cask_int(i));
    cask_compute_opts_t o = procs_opts(w);
    assert_ok(cask_compute(g, t, (size_t)w, &o, r, NULL, &err), &err);
    for (int i = 0; i < w; i++)
        pids[i] = (int)r[i].u.i;
    cask_graph_decref(g);
    return w;
}

/* The children of this process, found through /proc, into pids (up to cap). */
static int children(int *pids, int cap)
{
    int n = 0;
    char path[300];
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/children", e->d_name);
        FILE *f = fopen(path, "r");
        while (f && n < cap && fscanf(f, "%d", &pids[n]) == 1)
            n++;
        if (f)
            fclose(f);
    }
    if (d)
        closedir(d);
    return n;
}

/* Nothing left of a compute: no child, descriptor or mapping; on pools,
** each pool's workers (live, none a zombie) and arena, and no more. */
static void check_left(int fds)
{
    if (!on_pools) {
        assert_nothing_left(fds);
        return;
    }
    int pids[64], want = 0;
    for (int w = 1; w <= MAXW; w++)
        want += w;
    assert_int_equal(children(pids, 64), want);
    assert_int_equal(waitpid(-1, NULL, WNOHANG), 0); /* children, none ended */
    assert_int_equal(count_fds(), fds);
    assert_int_equal(count_arena_maps(), MAXW);
}

static int pools_up(void **state)
{
    (void)state;
    cask_error_t err;
    for (int w = 1; w <= MAXW; w++)
        if (cask_pool_create(&(cask_pool_opts_t){ .scheduler = "processes", .workers = w },
                             &pools[w], &err))
            fail_msg("pool of %d: %s", w, err.message);
    on_pools = true;
    return 0;
}

static int pools_down(void **state)
{
    (void)state;
    for (int w = 1; w <= MAXW; w++)
        cask_pool_free(pools[w]);
    on_pools = false;
    assert_nothing_left(count_fds());
    return 0;
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
    check_left(fds);
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
        check_left(fds);
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
    check_left(fds);
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
                check_left(fds);
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
        cask_compute_opts_t o = procs_opts(w);
        o.flags = CASK_TRACE;
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
    check_left(fds);
}

/* Kill a child of this process, found through /proc, after `delay` s. */
typedef struct killer {
    double delay;
    int killed;
    unsigned seed;
    int targets[MAXW], ntargets; /* on pools: kill one of these; else any child */
    atomic_bool done;            /* the killer has ended (it runs detached: a child
                                    forked meanwhile inherits no thread to join) */
} killer_t;

static void *kill_a_worker(void *arg)
{
    killer_t *k = arg;
    struct timespec ts = { 0, (long)(k->delay * 1e9) };
    nanosleep(&ts, NULL);
    for (int tries = 0; tries < 200 && !k->killed; tries++) {
        int pids[64], n = 0;
        if (k->ntargets)
            memcpy(pids, k->targets, (size_t)(n = k->ntargets) * sizeof *pids);
        else
            n = children(pids, 64);
        if (n && kill(pids[rand_r(&k->seed) % n], SIGKILL) == 0) /* any of the workers */
            k->killed = 1;
        ts = (struct timespec){ 0, 1000000 };
        nanosleep(&ts, NULL);
    }
    atomic_store(&k->done, true);
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
        if (on_pools) /* pools[2]'s workers, and only they: the others idle meanwhile */
            k.ntargets = pool_pids(2, k.targets);
        int retries = round % 2 ? CASK_NO_RETRY : 3;
        pthread_t th;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_create(&th, &attr, kill_a_worker, &k);
        pthread_attr_destroy(&attr);
        cask_value_t r;
        cask_compute_info_t info;
        int rc = run_processes(g, sum, &r, 2, retries, &info, &err);
        while (!atomic_load(&k.done))
            nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
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
        if (on_pools) /* a worker killed after the compute is replaced by the next */
            pool_pids(2, k.targets);
        check_left(fds);
    }
    printf("# %d of 4 runs without retries failed cleanly\n", failed);
    cask_graph_decref(g);
    check_left(fds);
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
    atomic_store(&ran, 0);
    cask_compute_opts_t o = procs_opts(2);
    o.callbacks = &cb;
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
    check_left(fds);
}

/* A borrowed buffer reaches the workers as it is when the compute starts
** (on a pool too: its workers, forked before, are forked again). */
static void test_borrowed_buffer(void **state)
{
    (void)state;
    cask_error_t err;
    int fds = count_fds();
    enum { N = 1000 };
    static double data[N];
    for (int i = 0; i < N; i++)
        data[i] = i;
    for (int round = 0; round < 2; round++) {
        cask_graph_t *g = cask_graph_new(&err);
        cask_array_t *a = cask_array_from_buffer(g, CASK_F64, 1, (int64_t[]){ N },
                                                 (int64_t[]){ 128 }, data, 0, &err);
        cask_array_t *sum = cask_array_reduce(a, CASK_SUM, NULL, &err);
        assert_non_null(sum);
        double got = 0;
        cask_compute_opts_t o = procs_opts(2);
        assert_ok(cask_array_compute(&sum, 1, &o, (void *[]){ &got }, NULL, &err), &err);
        assert_true(got == (round ? 2.0 : 1.0) * N * (N - 1) / 2);
        cask_array_decref(sum);
        cask_array_decref(a);
        cask_graph_decref(g);
        for (int i = 0; i < N; i++) /* changed between computes */
            data[i] = 2.0 * i;
    }
    check_left(fds);
}

/* ------------------------------------------------------ pools of processes */

static cask_pool_t *procs_pool(int w)
{
    cask_error_t err;
    cask_pool_t *p = NULL;
    assert_ok(cask_pool_create(&(cask_pool_opts_t){ .scheduler = "processes", .workers = w },
                               &p, &err), &err);
    return p;
}

/* The same two worker processes run every compute on a pool, and see the
** process as it was when they were forked; a compute on no pool forks its
** own, which see it as it is. */
static void test_pool_forks_once(void **state)
{
    (void)state;
    cask_error_t err;
    cask_pool_t *p = procs_pool(2);
    int first[2], pids[8];
    assert_int_equal(children(pids, 8), 2);
    for (int round = 0; round < 10; round++) {
        cask_graph_t *g = cask_graph_new(&err);
        cask_task_t t[8];
        cask_value_t r[8];
        for (int i = 0; i < 8; i++)
            t[i] = CASK_DELAYED(g, "test.pid", &err, cask_int(i));
        assert_ok(cask_compute(g, t, 8, &(cask_compute_opts_t){ .pool = p }, r, NULL, &err),
                  &err);
        for (int i = 0; i < 8; i++) {
            assert_true(r[i].u.i != getpid());
            if (round == 0 && i < 2)
                first[i] = (int)r[i].u.i;
            else if (r[i].u.i != first[0] && r[i].u.i != first[1])
                fail_msg("compute %d ran a task in process %d, not %d or %d", round,
                         (int)r[i].u.i, first[0], first[1]);
        }
        assert_true(first[0] != first[1]);
        cask_graph_decref(g);
    }
    late = 7; /* after the fork */
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t t = CASK_DELAYED(g, "test.global", &err, cask_int(0));
    cask_value_t v;
    assert_ok(cask_compute(g, &t, 1, &(cask_compute_opts_t){ .pool = p }, &v, NULL, &err), &err);
    assert_int_equal(v.u.i, 0);
    assert_ok(cask_compute(g, &t, 1, &(cask_compute_opts_t){ .scheduler = "processes" }, &v,
                           NULL, &err), &err);
    assert_int_equal(v.u.i, 7);
    late = 0;
    cask_graph_decref(g);
    assert_int_equal(children(pids, 8), 2);
    cask_pool_free(p);
    assert_nothing_left(count_fds());
}

/* In a new process (CASK_TEST_TRACE_TIMES set): a pool made before any
** compute, so before the clock was set up, times its tasks on the parent's
** clock: the trace's events lie within the compute's wall time. 0 if so. */
static int trace_times_child(void)
{
    cask_error_t err;
    cask_pool_t *p;
    if (setup(NULL) ||
        cask_pool_create(&(cask_pool_opts_t){ .scheduler = "processes", .workers = 2 }, &p, &err))
        return 1;
    cask_graph_t *g = cask_graph_new(&err);
    cask_value_t refs[4];
    for (int i = 0; i < 4; i++)
        refs[i] = cask_ref(CASK_DELAYED(g, "test.pid", &err, cask_int(i)));
    cask_task_t sum = cask_delayed(g, "cask.add", refs, 4, &err);
    cask_value_t v;
    cask_compute_info_t info;
    if (cask_compute(g, &sum, 1, &(cask_compute_opts_t){ .pool = p, .flags = CASK_TRACE }, &v,
                     &info, &err))
        return 1;
    int bad = cask_trace_size(info.trace) != 5;
    for (size_t i = 0; i < cask_trace_size(info.trace); i++) {
        const cask_trace_event_t *e = cask_trace_event(info.trace, i);
        bad |= !(e->end_ns >= e->start_ns && (double)e->end_ns * 1e-9 <= info.wall_s + 0.01);
    }
    cask_trace_free(info.trace);
    cask_graph_decref(g);
    cask_pool_free(p);
    return bad;
}

static void test_pool_trace_times(void **state)
{
    (void)state;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setenv("CASK_TEST_TRACE_TIMES", "1", 1);
        execl("/proc/self/exe", "test_processes", (char *)NULL);
        _exit(127);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

/* test.late: registered after the pool's workers were forked. */
static int k_late(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    (void)a, (void)n, (void)ctx;
    *out = cask_int(99);
    return 0;
}

/* A kernel registered after the pool was made runs there: its workers are
** forked again once, before the first compute that needs them to be. */
static void test_pool_late_kernel(void **state)
{
    (void)state;
    cask_error_t err;
    cask_pool_t *p = procs_pool(2);
    int before[8], after[8], again[8];
    assert_int_equal(children(before, 8), 2);
    assert_ok(cask_kernel_register("test.late", k_late, NULL, &err), &err);
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t t = CASK_DELAYED(g, "test.late", &err, cask_int(0));
    cask_value_t v;
    assert_ok(cask_compute(g, &t, 1, &(cask_compute_opts_t){ .pool = p }, &v, NULL, &err), &err);
    assert_int_equal(v.u.i, 99);
    assert_int_equal(children(after, 8), 2);
    assert_true(after[0] != before[0] || after[1] != before[1]);
    assert_ok(cask_compute(g, &t, 1, &(cask_compute_opts_t){ .pool = p }, &v, NULL, &err), &err);
    assert_int_equal(children(again, 8), 2);
    assert_memory_equal(again, after, sizeof(int) * 2); /* once is enough */
    cask_graph_decref(g);
    cask_pool_free(p);
}

/* 60 submits of small graphs on a pool of 2, all in flight at once, give
** sync's results, with never more than 2 tasks running at once. */
static void test_pool_submits_share(void **state)
{
    (void)state;
    enum { N = 60 };
    cask_error_t err;
    cask_pool_t *p = procs_pool(2);
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t out[N];
    cask_future_t *f[N];
    atomic_store(&busy[0], 0);
    atomic_store(&busy[1], 0);
    for (int i = 0; i < N; i++) {
        cask_task_t x = CASK_DELAYED(g, "test.busy", &err, cask_int(i));
        for (int k = 0; k < i % 5; k++) /* chains of 1 to 5 */
            x = CASK_DELAYED(g, "test.count", &err, cask_ref(x), cask_int(k));
        out[i] = x;
    }
    for (int i = 0; i < N; i++)
        assert_ok(cask_submit(g, &out[i], 1, &(cask_compute_opts_t){ .pool = p }, &f[i], &err),
                  &err);
    assert_int_equal(cask_future_wait(f, N, N, -1, NULL), N);
    for (int i = 0; i < N; i++) {
        cask_value_t got, want;
        assert_ok(cask_future_get(f[i], &got, &err), &err);
        assert_ok(cask_compute(g, &out[i], 1, NULL, &want, NULL, &err), &err);
        assert_true(cask_value_equal(&got, &want));
        cask_future_free(f[i]);
    }
    assert_int_equal(atomic_load(&busy[1]), 2);
    cask_graph_decref(g);
    cask_pool_free(p);
}

uint64_t cask__pool_lends(const cask_pool_t *P); /* sched/processes.c, for the tests */

/*
** Submits of one 3 ms task each, more than the pool's 2 workers, so
** computes wait while others run their last task, and are lent its worker
** (their task queued behind it there, the lender's answer routed back to
** it). Task `target` crashes on its first call, at several positions: with
** a retry every submit gives its value, the crashed task ran twice and
** every other once; without, only the crashed task's future fails, naming
** it. Workers are lent along the way.
*/
static void test_pool_lent_crash_blamed(void **state)
{
    (void)state;
    enum { N = 40 };
    cask_error_t err;
    cask_pool_t *p = procs_pool(2);
    const int targets[] = { 0, 1, 7, 22, N - 1 };
    uint64_t lends = cask__pool_lends(p);
    for (size_t k = 0; k < sizeof targets / sizeof *targets; k++)
        for (int retry = 1; retry >= 0; retry--) {
            cask_task_t t[N];
            cask_future_t *f[N];
            for (int i = 0; i < MAXI; i++)
                atomic_store(&calls[i], 0);
            cask_compute_opts_t o = { .pool = p, .retries = retry ? 1 : CASK_NO_RETRY };
            /* a graph a round: a future is done before its compute lets go
            ** of the graph, which gets no task while one is in flight */
            cask_graph_t *g = cask_graph_new(&err);
            for (int i = 0; i < N; i++)
                t[i] = CASK_DELAYED(g, "test.nap_crash", &err, cask_int(i), cask_int(targets[k]));
            for (int i = 0; i < N; i++)
                assert_ok(cask_submit(g, &t[i], 1, &o, &f[i], &err), &err);
            assert_int_equal(cask_future_wait(f, N, N, 20.0, NULL), N);
            for (int i = 0; i < N; i++) {
                cask_value_t v;
                int rc = cask_future_get(f[i], &v, &err);
                if (i == targets[k] && !retry) {
                    assert_int_equal(rc, CASK_EWORKER);
                    assert_string_equal(err.key, cask_graph_key(g, t[i]));
                    assert_int_equal(err.signal, SIGSEGV);
                } else {
                    assert_ok(rc, &err);
                    assert_int_equal(v.u.i, i);
                }
                if (atomic_load(&calls[i]) != (i == targets[k] && retry ? 2 : 1))
                    fail_msg("crash at %d, %s: task %d ran %d times", targets[k],
                             retry ? "a retry" : "no retry", i, atomic_load(&calls[i]));
                cask_future_free(f[i]);
            }
            cask_graph_decref(g);
        }
    assert_true(cask__pool_lends(p) > lends);
    cask_pool_free(p);
}

/* A long task's worker is not lent: on a pool of 2, a 0.6 s sleep and
** then 20 submits of a 5 ms one. Each short one runs on the other worker
** as it comes free, so all are done while the long one still runs; lent
** the long one's worker, one would wait behind it. The short ones' worker
** is lent from one to the next. */
static void test_pool_long_task_not_lent(void **state)
{
    (void)state;
    enum { N = 20 };
    cask_error_t err;
    cask_pool_t *p = procs_pool(2);
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t t[N + 1];
    cask_future_t *f[N + 1];
    t[N] = CASK_DELAYED(g, "cask.sleep", &err, cask_double(0.6), cask_int(N));
    for (int i = 0; i < N; i++)
        t[i] = CASK_DELAYED(g, "cask.sleep", &err, cask_double(0.005), cask_int(i));
    uint64_t lends = cask__pool_lends(p);
    assert_ok(cask_submit(g, &t[N], 1, &(cask_compute_opts_t){ .pool = p }, &f[N], &err), &err);
    for (int i = 0; i < N; i++)
        assert_ok(cask_submit(g, &t[i], 1, &(cask_compute_opts_t){ .pool = p }, &f[i], &err),
                  &err);
    assert_int_equal(cask_future_wait(f, N, N, 20.0, NULL), N);
    assert_false(cask_future_done(f[N]));
    assert_true(cask__pool_lends(p) > lends);
    assert_int_equal(cask_future_wait(&f[N], 1, 1, 20.0, NULL), 1);
    for (int i = 0; i <= N; i++) {
        cask_value_t v;
        assert_ok(cask_future_get(f[i], &v, &err), &err);
        assert_int_equal(v.u.i, i);
        cask_future_free(f[i]);
    }
    cask_graph_decref(g);
    cask_pool_free(p);
}

/* A compute that needs the workers forked again (a kernel registered
** after them) is never lent a worker still running another compute's task:
** forking it again would end that task. Both give their values. */
static void test_pool_no_lend_to_refork(void **state)
{
    (void)state;
    cask_error_t err;
    cask_pool_t *p = procs_pool(1);
    cask_graph_t *g = cask_graph_new(&err);
    cask_graph_t *g2 = cask_graph_new(&err); /* b's: g gets no task while a runs */
    cask_task_t a = CASK_DELAYED(g, "cask.sleep", &err, cask_double(0.2), cask_int(7));
    cask_future_t *f[2];
    assert_ok(cask_submit(g, &a, 1, &(cask_compute_opts_t){ .pool = p }, &f[0], &err), &err);
    struct timespec ts = { 0, 50000000 }; /* a's task runs */
    nanosleep(&ts, NULL);
    assert_ok(cask_kernel_register("test.late_too", k_late, NULL, &err), &err);
    cask_task_t b = CASK_DELAYED(g2, "test.late_too", &err, cask_int(0));
    assert_ok(cask_submit(g2, &b, 1, &(cask_compute_opts_t){ .pool = p }, &f[1], &err), &err);
    assert_int_equal(cask_future_wait(f, 2, 2, 20.0, NULL), 2);
    cask_value_t v;
    assert_ok(cask_future_get(f[0], &v, &err), &err);
    assert_int_equal(v.u.i, 7);
    assert_ok(cask_future_get(f[1], &v, &err), &err);
    assert_int_equal(v.u.i, 99);
    cask_future_free(f[0]);
    cask_future_free(f[1]);
    cask_graph_decref(g2);
    cask_graph_decref(g);
    cask_pool_free(p);
}

/* A lent worker goes to the best waiting compute that can run there, not
** only to the first in line. On a pool of 2 (4 computes in flight at most),
** x (one compute of two sleeps, 0.15 s and 0.4 s) holds both workers while
** a, b (5 ms sleeps) and c (a kernel registered after the fork, so it
** needs a worker forked again) come 30 ms apart, in that order; c's cost
** of 50 ms puts it between a and b in line. At 0.15 s a takes the worker x
** frees and lends it at once, past c, to b: one lend. (Handed to the first
** in line only, it is not lent: c cannot take it, and nobody lends the
** next worker b gets.) */
static void test_pool_lend_past_refork(void **state)
{
    (void)state;
    enum { X1, X2, A, B, C, N };
    cask_error_t err;
    cask_pool_t *p = procs_pool(2);
    cask_graph_t *g[N];
    cask_task_t t[N];
    cask_future_t *f[N];
    struct timespec ts = { 0, 30000000 };
    const double secs[N] = { 0.15, 0.4, 0.005, 0.005 };
    for (int i = 0; i < N; i++) /* a graph each: none gets a task while a compute runs */
        g[i] = cask_graph_new(&err);
    for (int i = 0; i < C; i++)
        t[i] = CASK_DELAYED(g[i == X2 ? X1 : i], "cask.sleep", &err, cask_double(secs[i]),
                            cask_int(i));
    uint64_t lends = cask__pool_lends(p);
    const cask_compute_opts_t o = { .pool = p };
    assert_ok(cask_submit(g[X1], &t[X1], 2, &o, &f[X1], &err), &err);
    for (int i = A; i < N; i++) {
        nanosleep(&ts, NULL); /* each waits before the next comes */
        if (i == C) {
            assert_ok(cask_kernel_register("test.late_three", k_late,
                                           &(cask_kernel_opts_t){ .cost = 0.05 }, &err), &err);
            t[i] = CASK_DELAYED(g[i], "test.late_three", &err, cask_int(0));
        }
        assert_ok(cask_submit(g[i], &t[i], 1, &o, &f[i], &err), &err);
    }
    assert_int_equal(cask_future_wait(f, N, N, 20.0, NULL), N);
    for (int i = 0; i < N; i++) {
        cask_value_t v;
        assert_ok(cask_future_get(f[i], &v, &err), &err);
        assert_int_equal(v.u.i, i == C ? 99 : i);
        cask_future_free(f[i]);
    }
    for (int i = 0; i < N; i++)
        cask_graph_decref(g[i]);
    uint64_t lent = cask__pool_lends(p) - lends;
    cask_pool_free(p);
    assert_int_equal(lent, 1);
}

long cask__alloc_fail_at(long n); /* graph/util.c: the test-only failure hook */

/* An allocation that fails anywhere in the parent while computes on a pool
** lend each other their workers (12 submits of a 1 ms sleep on 2 workers)
** ends each compute with its value or CASK_ENOMEM, never a hang or a wrong
** value, and leaves the pool able to run the next compute. */
static void test_pool_alloc_failures(void **state)
{
    (void)state;
    enum { N = 12 };
    cask_error_t err;
    cask_pool_t *p = procs_pool(2);
    const cask_compute_opts_t o = { .pool = p };
    long covered = 0, failed = 0;
    uint64_t lends = cask__pool_lends(p);
    for (long at = 1; at < 2000; at++) {
        cask_graph_t *g[N];
        cask_task_t t[N];
        cask_future_t *f[N] = { 0 };
        for (int i = 0; i < N; i++) { /* a graph each: none gets a task while one runs */
            g[i] = cask_graph_new(&err);
            t[i] = CASK_DELAYED(g[i], "cask.sleep", &err, cask_double(0.001), cask_int(i));
        }
        cask__alloc_fail_at(at);
        for (int i = 0; i < N; i++) {
            int rc = cask_submit(g[i], &t[i], 1, &o, &f[i], &err);
            if (rc)
                assert_int_equal(rc, CASK_ENOMEM);
        }
        for (int i = 0; i < N; i++) {
            if (!f[i])
                continue;
            assert_int_equal(cask_future_wait(&f[i], 1, 1, 20.0, NULL), 1);
            cask_value_t v;
            int rc = cask_future_get(f[i], &v, &err);
            if (rc != CASK_ENOMEM) {
                assert_ok(rc, &err);
                assert_int_equal(v.u.i, i);
            }
            failed += rc != 0;
            cask_compute_info_t info;
            cask_future_info(f[i], &info); /* its compute has ended */
            cask_future_free(f[i]);
        }
        long made = cask__alloc_fail_at(0);
        cask_value_t v;
        assert_ok(cask_compute(g[N - 1], &t[N - 1], 1, &o, &v, NULL, &err), &err);
        assert_int_equal(v.u.i, N - 1);
        for (int i = 0; i < N; i++)
            cask_graph_decref(g[i]);
        if (made < at)
            break; /* no failure was injected: every point is covered */
        covered++;
    }
    printf("# %ld allocation failure points covered, %ld computes failed, %llu lends\n",
           covered, failed, (unsigned long long)(cask__pool_lends(p) - lends));
    assert_true(covered > 50);
    assert_true(cask__pool_lends(p) > lends);
    cask_pool_free(p);
}

/* RssShmem of process pid, in kB (the shared pages it has touched). */
static long shmem_kb(int pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "RssShmem: %ld", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

/* A compute's values go when it ends: 40 computes that each make 64 MB
** in the arena leave the workers with far less than 40 times that. */
static void test_pool_values_released(void **state)
{
    (void)state;
    cask_error_t err;
    cask_pool_t *p = procs_pool(2);
    enum { PARTS = 8, LEN = 1 << 20 };
    for (int round = 0; round < 40; round++) {
        cask_graph_t *g = cask_graph_new(&err);
        cask_value_t refs[PARTS];
        for (int i = 0; i < PARTS; i++)
            refs[i] = cask_ref(CASK_DELAYED(g, "test.fill", &err, cask_int(round), cask_int(LEN)));
        cask_task_t sum = cask_delayed(g, "test.sum", refs, PARTS, &err);
        cask_value_t v;
        assert_ok(cask_compute(g, &sum, 1, &(cask_compute_opts_t){ .pool = p }, &v, NULL, &err),
                  &err);
        assert_true(v.u.d == PARTS * ((double)round * LEN + (double)LEN * (LEN - 1) / 2));
        cask_graph_decref(g);
    }
    int pids[8];
    assert_int_equal(children(pids, 8), 2);
    long kb = shmem_kb(pids[0]) + shmem_kb(pids[1]);
    printf("# the workers touched %ld MB of the arena for 40 x 64 MB\n", kb >> 10);
    assert_true(kb >= 0 && kb < 400 * 1024);
    cask_pool_free(p);
}

/* A cache directory on a pool: the workers write the files, and a second
** compute reads them and runs no kernel. */
static void test_pool_cache_dir(void **state)
{
    (void)state;
    cask_error_t err;
    char dir[] = "/tmp/cask-pool-cache-XXXXXX";
    assert_non_null(mkdtemp(dir));
    cask_pool_t *p = procs_pool(2);
    cask_graph_t *g = cask_graph_new(&err);
    cask_value_t refs[20];
    for (int i = 0; i < 20; i++)
        refs[i] = cask_ref(CASK_DELAYED(g, "test.crash_on", &err, cask_int(i), cask_int(-1)));
    cask_task_t sum = cask_delayed(g, "cask.add", refs, 20, &err);
    for (int i = 0; i < MAXI; i++)
        atomic_store(&calls[i], 0);
    cask_compute_opts_t o = { .pool = p, .cache_dir = dir };
    cask_value_t v;
    cask_compute_info_t info;
    for (int run = 0; run < 2; run++) {
        assert_ok(cask_compute(g, &sum, 1, &o, &v, &info, &err), &err);
        assert_int_equal(v.u.i, 190);
        assert_int_equal(info.cached, run ? 1 : 0); /* the sum's file: nothing behind it runs */
        for (int i = 0; i < 20; i++)
            assert_int_equal(atomic_load(&calls[i]), 1);
    }
    cask_graph_decref(g);
    cask_pool_free(p);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* What a pool of processes refuses, with a reason. */
static void test_pool_refusals(void **state)
{
    (void)state;
    cask_error_t err;
    cask_pool_t *p = (cask_pool_t *)1;
    assert_int_equal(cask_pool_create(&(cask_pool_opts_t){ .scheduler = "processes", .workers = 2,
                                                           .cache_bytes = 1 << 20 }, &p, &err),
                     CASK_EINVAL);
    assert_null(p);
    assert_msg_has(&err, "'threads' only");
    p = procs_pool(2);
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t t = CASK_DELAYED(g, "test.count", &err, cask_int(1));
    cask_value_t v;
    assert_int_equal(cask_compute(g, &t, 1, &(cask_compute_opts_t){ .pool = p,
                                                                     .scheduler = "threads" },
                                  &v, NULL, &err), CASK_EINVAL);
    assert_msg_has(&err, "pool of 'processes'");
    assert_int_equal(cask_compute(g, &t, 1, &(cask_compute_opts_t){ .pool = p, .workers = 3 },
                                  &v, NULL, &err), CASK_EINVAL);
    cask_persisted_t *h = (cask_persisted_t *)1;
    assert_int_equal(cask_persist(g, &t, 1, &(cask_compute_opts_t){ .pool = p }, &h, &err),
                     CASK_EINVAL);
    assert_msg_has(&err, "'threads' only");
    assert_ok(cask_compute(g, &t, 1, &(cask_compute_opts_t){ .pool = p, .scheduler = "processes",
                                                             .workers = 2 }, &v, NULL, &err),
              &err);
    assert_int_equal(v.u.i, 2);
    cask_graph_decref(g);
    cask_pool_free(p);
}

/* cask_pool_free waits for the submits in flight on the pool. */
static void test_pool_free_waits(void **state)
{
    (void)state;
    cask_error_t err;
    cask_pool_t *p = procs_pool(2);
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t t[4];
    cask_future_t *f[4];
    for (int i = 0; i < 4; i++) /* the graph is built before any compute reads it */
        t[i] = CASK_DELAYED(g, "cask.sleep", &err, cask_double(0.05), cask_int(i));
    for (int i = 0; i < 4; i++)
        assert_ok(cask_submit(g, &t[i], 1, &(cask_compute_opts_t){ .pool = p }, &f[i], &err),
                  &err);
    cask_pool_free(p);
    for (int i = 0; i < 4; i++) {
        assert_true(cask_future_done(f[i]));
        cask_value_t v;
        assert_ok(cask_future_get(f[i], &v, &err), &err);
        assert_int_equal(v.u.i, i);
        cask_future_free(f[i]);
    }
    cask_graph_decref(g);
    assert_nothing_left(count_fds());
}

/* cask_compute_each: a value the function keeps with cask_value_incref
** outlives the compute, as its documentation says, though the compute's
** values lived in a shared arena that went (or was reused) with it. */
static cask_value_t each_kept[4];

static int keep_each(void *udata, size_t i, const cask_value_t *v)
{
    (void)udata;
    each_kept[i] = *v;
    cask_value_incref(&each_kept[i]);
    return 0;
}

static void test_each_values_kept(void **state)
{
    (void)state;
    enum { LEN = 100000 };
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t t[4];
    for (int i = 0; i < 4; i++)
        t[i] = CASK_DELAYED(g, "test.fill", &err, cask_int(i), cask_int(LEN));
    cask_compute_opts_t o = procs_opts(2);
    assert_ok(cask_compute_each(g, t, 4, &o, keep_each, NULL, NULL, &err), &err);
    /* another compute, which reuses a pool's arena */
    cask_task_t other = CASK_DELAYED(g, "test.fill", &err, cask_int(7), cask_int(LEN));
    cask_value_t r;
    assert_ok(cask_compute(g, &other, 1, &o, &r, NULL, &err), &err);
    cask_value_decref(&r);
    for (int i = 0; i < 4; i++) {
        cask_nd_t nd;
        assert_int_equal(cask_value_nd(&each_kept[i], &nd), 0);
        assert_int_equal(nd.size, LEN);
        for (size_t j = 0; j < nd.size; j += 997)
            assert_true(((double *)nd.data)[j] == (double)(i + (int64_t)j));
        cask_value_decref(&each_kept[i]);
    }
    cask_graph_decref(g);
}

int main(void)
{
    if (getenv("CASK_TEST_TRACE_TIMES"))
        return trace_times_child();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chunks_cross_processes),
        cmocka_unit_test(test_crash_is_retried_then_fails),
        cmocka_unit_test(test_death_once_recovers),
        cmocka_unit_test(test_crash_blamed_at_every_position),
        cmocka_unit_test(test_coarse_tasks_spread),
        cmocka_unit_test(test_killed_at_random_moments),
        cmocka_unit_test(test_opaque_refused),
        cmocka_unit_test(test_borrowed_buffer),
        cmocka_unit_test(test_each_values_kept),
    };
    const struct CMUnitTest pool_tests[] = {
        cmocka_unit_test(test_pool_forks_once),
        cmocka_unit_test(test_pool_late_kernel),
        cmocka_unit_test(test_pool_trace_times),
        cmocka_unit_test(test_pool_submits_share),
        cmocka_unit_test(test_pool_lent_crash_blamed),
        cmocka_unit_test(test_pool_no_lend_to_refork),
        cmocka_unit_test(test_pool_lend_past_refork),
        cmocka_unit_test(test_pool_alloc_failures),
        cmocka_unit_test(test_pool_long_task_not_lent),
        cmocka_unit_test(test_pool_values_released),
        cmocka_unit_test(test_pool_cache_dir),
        cmocka_unit_test(test_pool_refusals),
        cmocka_unit_test(test_pool_free_waits),
    };
    int rc = cmocka_run_group_tests_name("processes", tests, setup, NULL);
    rc |= cmocka_run_group_tests_name("processes on pools", tests, pools_up, pools_down);
    rc |= cmocka_run_group_tests_name("pools of processes", pool_tests, NULL, NULL);
    return rc;
}

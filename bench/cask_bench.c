/*
** bench/cask_bench.c: cask's side of bench/run. Prints "FIGURE VALUE" lines.
**
**   cask_bench build        build a delayed graph of 1,000,000 tasks feeding one sum
**   cask_bench SHAPE SCHED [NAME]  run a shape (wide, chain, tree) on a scheduler, trace
**                          on, 7 times: the median, and the first compute alone (the
**                          only one that plans) (figures named SHAPE.NAME...; under
**                          mpirun, rank 0 prints)
**   cask_bench transfer     under mpirun -np 2: GB/s of 8 MB chunks moved between ranks
**   cask_bench spin100us    20,000 tasks of 100 us: threads' parallel efficiency
**   cask_bench sleep15      15 sleeps of 100 ms on 15 worker processes: wall time
**   cask_bench normal_sum   (x*x + 1).sum(), x normal(size=1e8, chunks=1e6), threads, 2 workers
**   cask_bench normal_std   x.std() of the same x
**   cask_bench transpose_mean  (A + A.T).mean(axis=0), A uniform 8000 x 8000 in 1000 x 1000
**   cask_bench matmul       A @ A, A uniform 4000 x 4000 in 1000 x 1000 (1 BLAS thread a task)
**   cask_bench resume       4 chains of 250 1-ms tasks and a sum, on threads (2
**                           workers) with a cache directory: a run that fails at
**                           the 900th call, then the run that resumes it
**   cask_bench cache_fib    fib(25) as 26 calls of 1 ms on a pool with a result cache,
**                           then again in a new graph: kernel calls and seconds of each
**   cask_bench pool         2,000 submits of one 1-ms sleep each on a pool of 4 threads,
**                           then of 4 processes
**                           (wall time over the ideal, most tasks running at once),
**                           and the latency of computing one trivial task on a warm pool
**   cask_bench groupby SCHED FILE  a bag of FILE's JSON lines (32 MB blocks) grouped
**                          by field "key" (the hash shuffle), the groups and their
**                          records counted, on SCHED (2 workers): seconds, groups,
**                          records, peak RSS (threads: this process's alone)
** The array workloads print seconds (median of 3) and the process's peak RSS.
*/
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cask/cask.h>
#ifdef CASK_HAVE_MPI
#include <mpi.h>
#endif

static void die(const char *what, const cask_error_t *err)
{
    fprintf(stderr, "cask_bench: %s: %s\n", what, err ? err->message : strerror(errno));
    exit(1);
}

/* n independent add(i, 1) tasks and one sum over them; returns the sum. */
static cask_task_t build_wide(cask_graph_t *g, size_t n)
{
    cask_error_t err;
    cask_value_t *refs = malloc(n * sizeof *refs);
    if (!refs)
        exit(1);
    for (size_t i = 0; i < n; i++) {
        cask_task_t t = CASK_DELAYED(g, "cask.add", &err, cask_int((int64_t)i), cask_int(1));
        if (t == CASK_NO_TASK)
            die("build", &err);
        refs[i] = cask_ref(t);
    }
    cask_task_t s = cask_delayed(g, "cask.add", refs, n, &err);
    if (s == CASK_NO_TASK)
        die("build", &err);
    free(refs);
    return s;
}

static cask_task_t build_chain(cask_graph_t *g, size_t n)
{
    cask_error_t err;
    cask_task_t t = CASK_DELAYED(g, "cask.add", &err, cask_int(0));
    for (size_t i = 1; i < n; i++)
        t = CASK_DELAYED(g, "cask.add", &err, cask_ref(t), cask_int(1));
    if (t == CASK_NO_TASK)
        die("build", &err);
    return t;
}

static cask_task_t build_tree(cask_graph_t *g, size_t leaves)
{
    cask_error_t err;
    cask_task_t *lvl = malloc(leaves * sizeof *lvl);
    for (size_t i = 0; i < leaves; i++)
        lvl[i] = CASK_DELAYED(g, "cask.add", &err, cask_int((int64_t)i), cask_int(0));
    for (size_t w = leaves; w > 1; w /= 2)
        for (size_t i = 0; i < w / 2; i++)
            lvl[i] = CASK_DELAYED(g, "cask.add", &err, cask_ref(lvl[2 * i]), cask_ref(lvl[2 * i + 1]));
    cask_task_t root = lvl[0];
    free(lvl);
    if (root == CASK_NO_TASK)
        die("build", &err);
    return root;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static cask_task_t build_shape(cask_graph_t *g, const char *shape)
{
    if (!strcmp(shape, "wide"))
        return build_wide(g, 100000);
    if (!strcmp(shape, "chain"))
        return build_chain(g, 100000);
    if (!strcmp(shape, "tree"))
        return build_tree(g, 65536);
    fprintf(stderr, "cask_bench: unknown shape '%s'\n", shape);
    exit(2);
}

static void run_shape(const char *shape, const char *sched, const char *name)
{
    cask_error_t err;
    enum { REPS = 7 };
    double t[REPS];
    size_t tasks = 0;
    /* the process warmed up first (the pool started, memory mapped) on a
    ** graph of its own, so the first timed compute differs from the rest
    ** only in planning its graph */
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t out = build_shape(g, shape);
    cask_value_t w;
    if (cask_compute(g, &out, 1, &(cask_compute_opts_t){ .scheduler = sched, .flags = CASK_TRACE },
                     &w, NULL, &err))
        die("compute", &err);
    cask_value_decref(&w);
    cask_graph_decref(g);
    g = cask_graph_new(&err);
    out = build_shape(g, shape);
    for (int r = 0; r < REPS; r++) {
        cask_value_t v;
        cask_compute_info_t info;
        cask_compute_opts_t o = { .scheduler = sched, .flags = CASK_TRACE };
        if (cask_compute(g, &out, 1, &o, &v, &info, &err))
            die("compute", &err);
        if (cask_trace_size(info.trace) != info.tasks) {
            fprintf(stderr, "cask_bench: trace is incomplete\n");
            exit(1);
        }
        t[r] = info.wall_s;
        tasks = info.tasks;
        cask_trace_free(info.trace);
        cask_value_decref(&v);
    }
    double first = t[0]; /* the only one that plans: the others reuse its plan */
    qsort(t, REPS, sizeof *t, cmp_double);
    if (cask_mpi_rank() == 0) { /* under mpirun, every rank runs this */
        printf("%s.%s.cask.tasks_per_s %.0f\n", shape, name, (double)tasks / t[REPS / 2]);
        printf("%s.%s.cask.first_tasks_per_s %.0f\n", shape, name, (double)tasks / first);
        printf("%s.%s.cask.tasks %zu\n", shape, name, tasks);
    }
    cask_graph_decref(g);
}

/* bench.big(i): 1,000,000 doubles (8 MB), all i. */
static int k_big(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    (void)n;
    int64_t len = 1000000;
    cask_error_t err;
    int rc = cask_value_ndarray(CASK_F64, 1, &len, out, &err);
    if (rc)
        return cask_kernel_fail(ctx, "%s", err.message), rc;
    cask_nd_t nd;
    cask_value_nd(out, &nd);
    for (int64_t i = 0; i < len; i++)
        ((double *)nd.data)[i] = (double)a[0].u.i;
    return 0;
}

/* bench.first(...): its first input. */
static int k_first(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    (void)ctx;
    *out = n ? a[0] : cask_none();
    cask_value_incref(out);
    return 0;
}

#ifdef CASK_HAVE_MPI
/* limit.mpi_gbs: MPI's own rate for 8 MB between ranks 0 and 1, with
** nothing else running: rank 0 sends, rank 1 answers with a byte; 8 MB
** over the round trip, median of 21. */
static void mpi_limit(void)
{
    enum { LEN = 8000000, REPS = 21 };
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    char *buf = malloc(LEN), ack = 0;
    if (!buf)
        exit(1);
    memset(buf, rank + 1, LEN);
    double t[REPS];
    for (int r = 0; r < REPS; r++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        if (rank == 0) {
            MPI_Send(buf, LEN, MPI_BYTE, 1, 7, MPI_COMM_WORLD);
            MPI_Recv(&ack, 1, MPI_BYTE, 1, 8, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        } else if (rank == 1) {
            MPI_Recv(buf, LEN, MPI_BYTE, 0, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            MPI_Send(&ack, 1, MPI_BYTE, 0, 8, MPI_COMM_WORLD);
        }
        t[r] = MPI_Wtime() - t0;
    }
    qsort(t, REPS, sizeof *t, cmp_double);
    if (rank == 0)
        printf("limit.mpi_gbs %.2f\n", LEN / t[REPS / 2] * 1e-9);
    free(buf);
}
#endif

typedef struct {
    uint64_t start, end;
} span_t;

static int cmp_span(const void *a, const void *b)
{
    const span_t *x = a, *y = b;
    return (x->start > y->start) - (x->start < y->start);
}

/* Under mpirun -np 2: 16 chunks of 8 MB made on both ranks and read by one
** task, so about half of them move; their transfer spans in the trace give
** the rate: bytes over the time some chunk was on its way (from when its
** sender sent it to when the reader has all of it). */
static void run_transfer(void)
{
    cask_error_t err;
    if (cask_kernel_register("bench.big", k_big, NULL, &err) ||
        cask_kernel_register("bench.first", k_first, NULL, &err))
        die("register", &err);
    enum { N = 16, REPS = 5 };
    double gbs[REPS];
    for (int r = 0; r < REPS; r++) {
        cask_graph_t *g = cask_graph_new(&err);
        cask_value_t in[N];
        for (int i = 0; i < N; i++)
            in[i] = cask_ref(CASK_DELAYED(g, "bench.big", &err, cask_int(i + 100 * r)));
        cask_task_t all = cask_delayed(g, "bench.first", in, N, &err);
        cask_value_t v;
        cask_compute_info_t info;
        cask_compute_opts_t o = { .scheduler = "mpi", .flags = CASK_TRACE };
        if (cask_compute(g, &all, 1, &o, &v, &info, &err))
            die("compute", &err);
        /* bytes over the time any transfer was under way (the union of
        ** their spans: several move at once) */
        double bytes = 0, secs = 0;
        span_t sp[N];
        size_t ns = 0;
        for (size_t i = 0; i < cask_trace_size(info.trace); i++) {
            const cask_trace_event_t *e = cask_trace_event(info.trace, i);
            if (!strcmp(e->group, "transfer") && ns < N) {
                bytes += (double)e->bytes;
                sp[ns++] = (span_t){ e->start_ns, e->end_ns };
            }
        }
        qsort(sp, ns, sizeof *sp, cmp_span);
        for (size_t i = 0, to = 0; i < ns; i++) {
            uint64_t from = sp[i].start > to ? sp[i].start : to;
            if (sp[i].end > from)
                secs += (double)(sp[i].end - from) * 1e-9;
            if (sp[i].end > to)
                to = sp[i].end;
        }
        gbs[r] = secs > 0 ? bytes / secs * 1e-9 : 0;
        cask_trace_free(info.trace);
        cask_value_decref(&v);
        cask_graph_decref(g);
    }
    qsort(gbs, REPS, sizeof *gbs, cmp_double);
    /* with CASK_MPI_SHM=0, values go by MPI messages, as between machines */
    const char *shm = getenv("CASK_MPI_SHM");
    int msg = shm && !strcmp(shm, "0");
    if (cask_mpi_rank() == 0)
        printf("%s.mpi.cask.gbs %.2f\n", msg ? "transfer_msg" : "transfer", gbs[REPS / 2]);
#ifdef CASK_HAVE_MPI
    if (msg)
        mpi_limit();
#endif
}

/* 20,000 independent tasks of 100 us busy work: sync, then threads on 2
** workers; efficiency = (serial time / 2) / threads time. */
static void run_spin(void)
{
    enum { N = 20000 };
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t *outs = malloc(N * sizeof *outs);
    cask_value_t *res = malloc(N * sizeof *res);
    if (!outs || !res)
        exit(1);
    for (int i = 0; i < N; i++)
        if ((outs[i] = CASK_DELAYED(g, "cask.spin", &err, cask_int(100), cask_int(i))) ==
            CASK_NO_TASK)
            die("build", &err);
    double wall[2];
    const char *scheds[2] = { "sync", "threads" };
    for (int s = 0; s < 2; s++) {
        cask_compute_info_t info;
        cask_compute_opts_t o = { .scheduler = scheds[s], .workers = s ? 2 : 1,
                                  .flags = CASK_TRACE };
        if (cask_compute(g, outs, N, &o, res, &info, &err))
            die("compute", &err);
        wall[s] = info.wall_s;
        cask_trace_free(info.trace);
        for (int i = 0; i < N; i++)
            cask_value_decref(&res[i]);
    }
    printf("spin100us.sync.cask.s %.4f\n", wall[0]);
    printf("spin100us.threads.cask.s %.4f\n", wall[1]);
    printf("spin100us.threads.cask.efficiency %.4f\n", wall[0] / 2 / wall[1]);
    free(outs);
    free(res);
    cask_graph_decref(g);
}

/* 15 tasks that sleep 100 ms on 15 worker processes: a few coarse tasks,
** one per worker, take one task's time plus the start of the workers.
** The median of 5. */
static void run_sleep15(void)
{
    enum { N = 15, REPS = 5 };
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t outs[N];
    cask_value_t res[N];
    for (int i = 0; i < N; i++)
        if ((outs[i] = CASK_DELAYED(g, "cask.sleep", &err, cask_double(0.1), cask_int(i))) ==
            CASK_NO_TASK)
            die("build", &err);
    double wall[REPS];
    for (int k = 0; k < REPS; k++) {
        cask_compute_info_t info;
        cask_compute_opts_t o = { .scheduler = "processes", .workers = N };
        if (cask_compute(g, outs, N, &o, res, &info, &err))
            die("compute", &err);
        wall[k] = info.wall_s;
        for (int i = 0; i < N; i++)
            cask_value_decref(&res[i]);
    }
    qsort(wall, REPS, sizeof *wall, cmp_double);
    printf("sleep15.processes.cask.s %.4f\n", wall[REPS / 2]);
    cask_graph_decref(g);
}

/* resume: 4 chains of 250 tasks of 1 ms, and their sum, on threads (2
** workers) with a cache directory; the first run fails at the 900th kernel
** call, the second resumes. Also the full run with and without the cache
** directory (what writing costs). */
static atomic_int resume_calls, resume_fail_at;

static int k_step(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    int k = atomic_fetch_add(&resume_calls, 1) + 1;
    if (k == atomic_load(&resume_fail_at))
        return cask_kernel_fail(ctx, "call %d fails on purpose", k);
    nanosleep(&(struct timespec){ 0, 1000 * 1000 }, NULL);
    int64_t s = 0;
    for (size_t i = 0; i < n; i++)
        s += cask_value_int(&a[i]);
    *out = cask_int(s + 1);
    return 0;
}

static double resume_once(cask_graph_t *g, cask_task_t out, const char *dir, int fail_at,
                          int *calls, size_t *cached)
{
    cask_error_t err;
    cask_compute_opts_t o = { .scheduler = "threads", .workers = 2, .cache_dir = dir };
    cask_compute_info_t info;
    cask_value_t v;
    atomic_store(&resume_calls, 0);
    atomic_store(&resume_fail_at, fail_at);
    double t0 = cask_now_ns() * 1e-9;
    int rc = cask_compute(g, &out, 1, &o, &v, &info, &err);
    double t = cask_now_ns() * 1e-9 - t0;
    if (rc && !fail_at)
        die("resume", &err);
    cask_value_decref(&v);
    *calls = atomic_load(&resume_calls);
    *cached = info.cached;
    return t;
}

static void run_resume(void)
{
    enum { CHAINS = 4, LEN = 250 };
    cask_error_t err;
    if (cask_kernel_register("bench.step", k_step, &(cask_kernel_opts_t){ .cost = 1e-3 }, &err))
        die("register", &err);
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t ends[CHAINS], sum;
    for (int c = 0; c < CHAINS; c++) {
        ends[c] = CASK_DELAYED(g, "bench.step", &err, cask_int(c));
        for (int j = 1; j < LEN; j++)
            ends[c] = CASK_DELAYED(g, "bench.step", &err, cask_ref(ends[c]));
    }
    sum = CASK_DELAYED(g, "bench.step", &err, cask_ref(ends[0]), cask_ref(ends[1]),
                       cask_ref(ends[2]), cask_ref(ends[3]));
    if (sum == CASK_NO_TASK)
        die("build", &err);
    char dir[] = "/tmp/cask-bench-resume-XXXXXX", cmd[64];
    if (!mkdtemp(dir))
        die("mkdtemp", NULL);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    int calls, calls2;
    size_t cached;
    double plain = resume_once(g, sum, NULL, 0, &calls, &cached);
    double full = resume_once(g, sum, dir, 0, &calls, &cached);
    if (system(cmd))
        die("rm", NULL);
    resume_once(g, sum, dir, 900, &calls, &cached);
    double second = resume_once(g, sum, dir, 0, &calls2, &cached);
    if (system(cmd))
        die("rm", NULL);
    printf("resume.cask.calls_first %d\n", calls);
    printf("resume.cask.calls_second %d\n", calls2);
    printf("resume.cask.cached_second %zu\n", cached);
    printf("resume.cask.s_second %.4f\n", second);
    printf("resume.cask.s_full %.4f\n", plain);
    printf("resume.cask.s_full_cached %.4f\n", full);
    cask_graph_decref(g);
}

/* bench.nap(s): sleep s seconds, counting the most naps at once (in
** naps[0] now, naps[1] the most: memory shared with worker processes). */
static atomic_int *naps;
static int k_nap(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    (void)n, (void)ctx;
    int now = atomic_fetch_add(&naps[0], 1) + 1, most = atomic_load(&naps[1]);
    while (now > most && !atomic_compare_exchange_weak(&naps[1], &most, now))
        ;
    double s = cask_value_double(&a[0]);
    struct timespec ts = { 0, (long)(s * 1e9) };
    while (nanosleep(&ts, &ts) && errno == EINTR)
        ;
    atomic_fetch_sub(&naps[0], 1);
    *out = cask_int(0);
    return 0;
}

/* bench.fib(k[, fib(k-1), fib(k-2)]): sleep 1 ms, then the sum (or k). */
static atomic_int fib_calls;
static int k_fib(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    (void)ctx;
    atomic_fetch_add(&fib_calls, 1);
    nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
    *out = n == 1 ? a[0] : cask_int(a[1].u.i + a[2].u.i);
    return 0;
}

/* fib(n) in a new graph on pool: seconds, and kernel calls in *calls. */
static double fib_once(cask_pool_t *pool, int n, int *calls)
{
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t f0 = CASK_DELAYED(g, "bench.fib", &err, cask_int(0));
    cask_task_t f1 = CASK_DELAYED(g, "bench.fib", &err, cask_int(1));
    for (int k = 2; k <= n; k++) {
        cask_task_t next = CASK_DELAYED(g, "bench.fib", &err, cask_int(k), cask_ref(f1),
                                        cask_ref(f0));
        f0 = f1;
        f1 = next;
    }
    cask_value_t v;
    cask_compute_info_t info;
    int before = atomic_load(&fib_calls);
    if (cask_compute(g, &f1, 1, &(cask_compute_opts_t){ .pool = pool }, &v, &info, &err))
        die("compute", &err);
    *calls = atomic_load(&fib_calls) - before;
    cask_graph_decref(g);
    return info.wall_s;
}

static void run_cache_fib(void)
{
    cask_error_t err;
    if (cask_kernel_register("bench.fib", k_fib, NULL, &err))
        die("register", &err);
    cask_pool_t *pool;
    if (cask_pool_create(&(cask_pool_opts_t){ .workers = 2, .cache_bytes = 1 << 20 }, &pool,
                         &err))
        die("pool", &err);
    int c1, c2;
    double s1 = fib_once(pool, 25, &c1), s2 = fib_once(pool, 25, &c2);
    printf("cache.fib.cask.calls_first %d\n", c1);
    printf("cache.fib.cask.calls_second %d\n", c2);
    printf("cache.fib.cask.s_first %.5f\n", s1);
    printf("cache.fib.cask.s_second %.6f\n", s2);
    cask_pool_free(pool);
}

static void *nap_500(void *arg)
{
    for (int i = 0; i < 500; i++)
        k_nap(arg, 1, &(cask_value_t){ 0 }, NULL);
    return NULL;
}

/* 2,000 submits of a 1 ms nap on a pool of 4 workers of sched, against 4
** plain threads napping as long (threads only); then the latency of a
** compute of one trivial task on that pool, warm. */
static void run_pool(const char *sched)
{
    enum { SUBMITS = 2000, WORKERS = 4, LAT = 2000 };
    cask_error_t err;
    if (!naps) {
        naps = mmap(NULL, 2 * sizeof *naps, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                    -1, 0);
        if (naps == MAP_FAILED)
            die("mmap", NULL);
        if (cask_kernel_register("bench.nap", k_nap, NULL, &err))
            die("register", &err);
    }
    atomic_store(&naps[1], 0);
    cask_pool_t *pool;
    if (cask_pool_create(&(cask_pool_opts_t){ .scheduler = sched, .workers = WORKERS }, &pool,
                         &err))
        die("pool", &err);
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t *t = malloc(SUBMITS * sizeof *t);
    cask_future_t **f = malloc(SUBMITS * sizeof *f);
    for (int i = 0; i < SUBMITS; i++) {
        cask_value_t in[1] = { cask_double(1e-3) };
        cask_task_spec_t spec = { .kernel = "bench.nap", .inputs = in, .n_inputs = 1,
                                  .index = (uint64_t)i };
        if (cask_graph_add(g, &spec, &t[i], &err))
            die("add", &err);
    }
    cask_compute_opts_t o = { .pool = pool };
    uint64_t t0 = cask_now_ns();
    for (int i = 0; i < SUBMITS; i++)
        if (cask_submit(g, &t[i], 1, &o, &f[i], &err))
            die("submit", &err);
    cask_future_wait(f, SUBMITS, SUBMITS, -1, NULL);
    double wall = (double)(cask_now_ns() - t0) * 1e-9;
    for (int i = 0; i < SUBMITS; i++) {
        cask_value_t v;
        if (cask_future_get(f[i], &v, &err))
            die("submit", &err);
        cask_future_free(f[i]);
    }
    printf("submit.pool.%s.cask.over_ideal %.3f\n", sched, wall / (SUBMITS * 1e-3 / WORKERS));
    printf("submit.pool.%s.cask.most_at_once %d\n", sched, atomic_load(&naps[1]));
    if (!strcmp(sched, "threads")) {
        /* the machine's own: WORKERS plain threads napping SUBMITS / WORKERS times each */
        pthread_t th[WORKERS];
        cask_value_t ms = cask_double(1e-3);
        t0 = cask_now_ns();
        for (int i = 0; i < WORKERS; i++)
            pthread_create(&th[i], NULL, nap_500, &ms);
        for (int i = 0; i < WORKERS; i++)
            pthread_join(th[i], NULL);
        printf("submit.pool.limit.over_ideal %.3f\n",
               (double)(cask_now_ns() - t0) * 1e-9 / (SUBMITS * 1e-3 / WORKERS));
    }

    /* latency: one trivial task (cask.add of two literals) on a warm pool */
    cask_graph_t *g1 = cask_graph_new(&err);
    cask_task_t one = CASK_DELAYED(g1, "cask.add", &err, cask_int(1), cask_int(2));
    if (one == CASK_NO_TASK)
        die("add", &err);
    double *lat = malloc(LAT * sizeof *lat);
    for (int i = 0; i < LAT; i++) {
        cask_value_t v;
        uint64_t a = cask_now_ns();
        if (cask_compute(g1, &one, 1, &o, &v, NULL, &err))
            die("compute", &err);
        lat[i] = (double)(cask_now_ns() - a) * 1e-3;
        if (v.u.i != 3) {
            fprintf(stderr, "cask_bench: 1 + 2 gave %lld\n", (long long)v.u.i);
            exit(1);
        }
        cask_value_decref(&v);
    }
    qsort(lat, LAT, sizeof *lat, cmp_double);
    printf("latency.%s.cask.us %.1f\n", sched, lat[LAT / 2]);
    free(lat);
    free(t);
    free(f);
    cask_graph_decref(g1);
    cask_graph_decref(g);
    cask_pool_free(pool);
}

static void run_build(void)
{
    enum { N = 1000000, REPS = 5 };
    double t[REPS];
    size_t bytes = 0;
    for (int r = 0; r < REPS; r++) {
        cask_error_t err;
        uint64_t t0 = cask_now_ns();
        cask_graph_t *g = cask_graph_new(&err);
        build_wide(g, N);
        t[r] = (double)(cask_now_ns() - t0) * 1e-9;
        bytes = cask_graph_memory(g);
        cask_graph_decref(g);
    }
    qsort(t, REPS, sizeof *t, cmp_double);
    printf("build.cask.s_per_1m_tasks %.4f\n", t[REPS / 2] * 1e6 / (N + 1));
    printf("build.cask.bytes_per_task %.1f\n", (double)bytes / (N + 1));
}

/* Median seconds of 3 computes of r (into buf) on threads, 2 workers, and
** the peak RSS, printed as WHAT.cask.s and WHAT.cask.peak_mb. */
static void time_array(const char *what, cask_array_t *r, void *buf)
{
    enum { REPS = 3 };
    double t[REPS];
    for (int k = 0; k < REPS; k++) {
        cask_error_t err;
        cask_compute_opts_t o = { .scheduler = "threads", .workers = 2 };
        cask_compute_info_t info;
        if (cask_array_compute(&r, 1, &o, &buf, &info, &err))
            die("compute", &err);
        t[k] = info.wall_s;
    }
    qsort(t, REPS, sizeof *t, cmp_double);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("%s.cask.s %.4f\n", what, t[REPS / 2]);
    printf("%s.cask.peak_mb %.1f\n", what, (double)ru.ru_maxrss / 1024);
}

static void run_transpose_mean(void)
{
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    int64_t shape[2] = { 8000, 8000 }, chunks[2] = { 1000, 1000 };
    cask_array_t *a = cask_array_random_uniform(g, 2, shape, chunks, 42, 0, 1, &err);
    cask_array_t *at = cask_array_transpose(a, NULL, &err);
    cask_array_t *s = cask_array_binop(a, CASK_ADD, at, &err);
    cask_reduce_opts_t o = { .axes = CASK_AXIS(0) };
    cask_array_t *m = cask_array_reduce(s, CASK_MEAN, &o, &err);
    if (!m)
        die("build", &err);
    double *out = malloc(8000 * sizeof *out);
    time_array("transpose_mean", m, out);
    printf("transpose_mean.cask.value %.10g\n", out[0]);
    free(out);
    cask_array_decref(a);
    cask_array_decref(at);
    cask_array_decref(s);
    cask_array_decref(m);
    cask_graph_decref(g);
}

static void run_matmul(void)
{
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    int64_t shape[2] = { 4000, 4000 }, chunks[2] = { 1000, 1000 };
    cask_array_t *a = cask_array_random_uniform(g, 2, shape, chunks, 42, 0, 1, &err);
    cask_array_t *p = cask_array_matmul(a, a, &err);
    if (!p)
        die("build", &err);
    double *out = malloc(4000 * 4000 * sizeof *out);
    time_array("matmul", p, out);
    printf("matmul.cask.value %.10g\n", out[0]);
    printf("matmul.cask.blas_threads 1\n");
    free(out);
    cask_array_decref(a);
    cask_array_decref(p);
    cask_graph_decref(g);
}

static void run_normal(const char *what)
{
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    int64_t n = 100000000, chunk = 1000000;
    cask_array_t *x = cask_array_random_normal(g, 1, &n, &chunk, 42, 0, 1, &err);
    cask_array_t *xx = cask_array_binop(x, CASK_MUL, x, &err);
    cask_array_t *y = cask_array_binop_scalar(xx, CASK_ADD, cask_int(1), &err);
    cask_array_t *r = !strcmp(what, "normal_sum") ? cask_array_reduce(y, CASK_SUM, NULL, &err)
                                                  : cask_array_reduce(x, CASK_STD, NULL, &err);
    if (!r)
        die("build", &err);
    double v = 0;
    time_array(what, r, &v);
    printf("%s.cask.value %.10g\n", what, v);
    cask_array_decref(x);
    cask_array_decref(xx);
    cask_array_decref(y);
    cask_array_decref(r);
    cask_graph_decref(g);
}

/* r on threads (2 workers) with a memory budget (0: none): the median of 3
** wall times, and the most bytes live outputs held, in *peak. */
static double time_budget(cask_array_t *r, void *buf, size_t budget, size_t *peak)
{
    double t[3];
    *peak = 0;
    for (int k = 0; k < 3; k++) {
        cask_error_t err;
        cask_compute_opts_t o = { .scheduler = "threads", .workers = 2, .memory_limit = budget };
        cask_compute_info_t info;
        if (cask_array_compute(&r, 1, &o, &buf, &info, &err))
            die("compute", &err);
        t[k] = info.wall_s;
        *peak = info.peak_bytes > *peak ? info.peak_bytes : *peak;
    }
    qsort(t, 3, sizeof *t, cmp_double);
    return t[1];
}

/* memory_budget: (x*x + 1).sum() of 1e8 normals, and (x + x.T).sum() over
** an 8000 x 8000 float64 .npy file (512 MB, made once at path) loaded in 8 MB
** blocks, with a budget of 64 MB and with none. */
static void run_memory_budget(const char *path)
{
    cask_error_t err;
    const size_t budget = 64u << 20;
    cask_graph_t *g = cask_graph_new(&err);
    int64_t n = 100000000, chunk = 1000000;
    cask_array_t *x = cask_array_random_normal(g, 1, &n, &chunk, 42, 0, 1, &err);
    cask_array_t *xx = cask_array_binop(x, CASK_MUL, x, &err);
    cask_array_t *y = cask_array_binop_scalar(xx, CASK_ADD, cask_int(1), &err);
    cask_array_t *r = cask_array_reduce(y, CASK_SUM, NULL, &err);
    int64_t shape[2] = { 8000, 8000 }, chunks[2] = { 1000, 1000 };
    cask_array_t *u = cask_array_random_uniform(g, 2, shape, chunks, 7, 0, 1, &err);
    FILE *f = fopen(path, "rb");
    if (f)
        fclose(f);
    else if (u && cask_array_save_npy(u, path, NULL, &err))
        die("save", &err);
    cask_array_t *a = cask_array_load_npy(g, path, chunks, &err); /* in memory: blocks are tasks */
    cask_array_t *at = cask_array_transpose(a, NULL, &err);
    cask_array_t *sum2 = cask_array_binop(a, CASK_ADD, at, &err);
    cask_array_t *s = cask_array_reduce(sum2, CASK_SUM, NULL, &err);
    if (!r || !s)
        die("build", &err);
    static const char *const names[] = { "normal_sum", "transpose_sum" };
    cask_array_t *const rs[] = { r, s };
    for (int i = 0; i < 2; i++) {
        double v;
        size_t p0, p1;
        double t0 = time_budget(rs[i], &v, 0, &p0), t1 = time_budget(rs[i], &v, budget, &p1);
        printf("memory_budget.%s.cask.s %.4f\n", names[i], t1);
        printf("memory_budget.%s.cask.s_nobudget %.4f\n", names[i], t0);
        printf("memory_budget.%s.cask.peak_mb %.1f\n", names[i], (double)p1 / 1048576);
        printf("memory_budget.%s.cask.peak_mb_nobudget %.1f\n", names[i], (double)p0 / 1048576);
    }
    cask_array_decref(x);
    cask_array_decref(xx);
    cask_array_decref(y);
    cask_array_decref(r);
    cask_array_decref(u);
    cask_array_decref(a);
    cask_array_decref(at);
    cask_array_decref(sum2);
    cask_array_decref(s);
    cask_graph_decref(g);
}

/* The out-of-core files: a float64 .npy of OOC_NPY_ROWS x OOC_COLS (32 GB)
** and an HDF5 dataset /x of OOC_H5_ROWS x OOC_COLS (8 GB), chunked in
** OOC_CHUNK rows (64 MB), normal values. */
#define OOC_COLS     1000
#define OOC_NPY_ROWS 4000000
#define OOC_H5_ROWS  1000000
#define OOC_CHUNK    8000

/* ooc_make npy|hdf5 PATH: write the file, block by block. */
static void run_ooc_make(const char *kind, const char *path)
{
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    int hdf5 = !strcmp(kind, "hdf5");
    int64_t shape[2] = { hdf5 ? OOC_H5_ROWS : OOC_NPY_ROWS, OOC_COLS }, chunk[2] = { OOC_CHUNK, OOC_COLS };
    cask_array_t *x = cask_array_random_normal(g, 2, shape, chunk, 11, 0, 1, &err);
    cask_compute_opts_t o = { .scheduler = "threads", .workers = 2, .flags = CASK_NO_PROGRESS };
    uint64_t t0 = cask_now_ns();
    if (!x || (hdf5 ? cask_array_save_hdf5(x, path, "/x", &o, &err)
                    : cask_array_save_npy(x, path, &o, &err)))
        die("ooc_make", &err);
    printf("ooc.%s.cask.make_s %.1f\n", kind, (double)(cask_now_ns() - t0) * 1e-9);
    cask_array_decref(x);
    cask_graph_decref(g);
}

/* ooc npy|hdf5 PATH: (x - x.mean(axis=0)).std(axis=0) over the file on
** threads (2 workers): wall time, GB/s over the file's size, peak RSS (this
** process does nothing else), and the first value. */
static void run_ooc(const char *kind, const char *path)
{
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    int hdf5 = !strcmp(kind, "hdf5");
    int64_t chunk[2] = { OOC_CHUNK, OOC_COLS };
    cask_array_t *x = hdf5 ? cask_array_open_hdf5(g, path, "/x", chunk, &err)
                           : cask_array_open_npy(g, path, chunk, &err);
    cask_reduce_opts_t ax0 = { .axes = CASK_AXIS(0) };
    cask_array_t *m = cask_array_reduce(x, CASK_MEAN, &ax0, &err);
    cask_array_t *d = cask_array_binop(x, CASK_SUB, m, &err);
    cask_array_t *s = cask_array_reduce(d, CASK_STD, &ax0, &err);
    if (!s)
        die("ooc", &err);
    double out[OOC_COLS];
    cask_compute_opts_t o = { .scheduler = "threads", .workers = 2, .flags = CASK_NO_PROGRESS };
    cask_compute_info_t info;
    if (cask_array_compute(&s, 1, &o, (void *[]){ out }, &info, &err))
        die("ooc", &err);
    struct stat st;
    stat(path, &st);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("ooc.%s.cask.s %.2f\n", kind, info.wall_s);
    printf("ooc.%s.cask.gbs %.3f\n", kind, (double)st.st_size / info.wall_s * 1e-9);
    printf("ooc.%s.cask.peak_rss_mb %.0f\n", kind, (double)ru.ru_maxrss / 1024);
    printf("ooc.%s.cask.file_gb %.2f\n", kind, (double)st.st_size * 1e-9);
    printf("ooc.%s.cask.value %.6f\n", kind, out[0]);
    cask_array_decref(x);
    cask_array_decref(m);
    cask_array_decref(d);
    cask_array_decref(s);
    cask_graph_decref(g);
}

/* read_rate NAME PATH: the whole file read in order, 8 MiB at a time: the
** machine's sequential read rate of it, in GB/s. */
static void run_read_rate(const char *name, const char *path)
{
    int fd = open(path, O_RDONLY);
    char *buf = malloc(8 << 20);
    if (fd < 0 || !buf) {
        perror(path);
        exit(1);
    }
    uint64_t t0 = cask_now_ns(), total = 0;
    ssize_t n;
    while ((n = read(fd, buf, 8 << 20)) > 0)
        total += (uint64_t)n;
    double s = (double)(cask_now_ns() - t0) * 1e-9;
    printf("ooc.%s.limit.read_gbs %.3f\n", name, (double)total / s * 1e-9);
    close(fd);
    free(buf);
}

/* A layered random DAG of `layers` x `width` tasks, each (past the first
** layer) after 4 random tasks of the 3 layers before it: about 4 edges a task. */
static cask_graph_t *layered(int layers, int width)
{
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t *ids = malloc(sizeof *ids * (size_t)layers * (size_t)width);
    uint64_t s = 12345;
    for (int l = 0; l < layers; l++)
        for (int w = 0; w < width; w++) {
            cask_task_t after[4];
            size_t na = 0;
            for (int k = 0; l && k < 4; k++) {
                s ^= s << 13, s ^= s >> 7, s ^= s << 17;
                int lp = l - 1 - (int)(s % (uint64_t)(l < 3 ? l : 3));
                s ^= s << 13, s ^= s >> 7, s ^= s << 17;
                after[na++] = ids[(size_t)lp * (size_t)width + s % (uint64_t)width];
            }
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            cask_task_spec_t sp = { .after = after, .n_after = na, .name = "t", .token = 1,
                                    .index = (uint64_t)l * (uint64_t)width + (uint64_t)w,
                                    .cost = 1e-3 * (double)(1 + s % 100),
                                    .group = l % 2 ? "odd" : "even" };
            if (cask_graph_add(g, &sp, &ids[(size_t)l * (size_t)width + (size_t)w], &err)) {
                fprintf(stderr, "cask_bench: %s\n", err.message);
                exit(1);
            }
        }
    free(ids);
    return g;
}

/* analyze: the Montage workflow (load and analyse, exact width included),
** then a 1,000,000-task layered DAG: its analysis and its simulation on 8. */
#define AREPS 5
static void run_analyze(const char *montage)
{
    cask_error_t err;
    double t[AREPS];
    size_t width = 0;
    for (int r = 0; r < AREPS; r++) {
        uint64_t t0 = cask_now_ns();
        cask_graph_t *g;
        cask_analysis_t a;
        if (cask_graph_load(montage, 0, &g, &err) || cask_graph_analyze(g, 0, &a, &err)) {
            fprintf(stderr, "cask_bench: %s\n", err.message);
            exit(1);
        }
        t[r] = (double)(cask_now_ns() - t0) * 1e-9;
        width = a.width;
        cask_analysis_destroy(&a);
        cask_graph_decref(g);
    }
    qsort(t, AREPS, sizeof *t, cmp_double);
    printf("analyze.cask.s_montage3765 %.5f\n", t[AREPS / 2]);
    printf("analyze.cask.montage3765_width %zu\n", width);
    cask_graph_t *g = layered(1000, 1000);
    cask_analysis_t a;
    uint64_t t0 = cask_now_ns();
    if (cask_graph_analyze(g, 0, &a, &err)) {
        fprintf(stderr, "cask_bench: %s\n", err.message);
        exit(1);
    }
    printf("analyze.cask.s_1m %.3f\n", (double)(cask_now_ns() - t0) * 1e-9);
    printf("analyze.cask.1m_edges %zu\n", a.edges);
    printf("analyze.cask.1m_width %zu\n", a.width);
    cask_analysis_destroy(&a);
    for (int r = 0; r < 3; r++) {
        cask_sim_opts_t o = { .workers = 8 };
        cask_sim_result_t res;
        t0 = cask_now_ns();
        if (cask_simulate(g, NULL, 0, &o, &res, &err)) {
            fprintf(stderr, "cask_bench: %s\n", err.message);
            exit(1);
        }
        t[r] = (double)(cask_now_ns() - t0) * 1e-9;
        cask_sim_result_destroy(&res);
    }
    qsort(t, 3, sizeof *t, cmp_double);
    printf("simulate.cask.s_1m_8w %.3f\n", t[1]);
    cask_graph_decref(g);
}

/* Field "key" of a JSON record; the length of a group's records. */
static int k_gkey(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    cask_error_t err;
    if (n != 1 || cask_bag_json_get(&a[0], "key", out, &err))
        return cask_kernel_fail(ctx, "no key: %s", n == 1 ? err.message : "no record");
    return 0;
}

static int k_glen(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    cask_value_t recs = n == 1 ? cask_list_item(&a[0], 1) : cask_none();
    if (recs.type != CASK_LIST)
        return cask_kernel_fail(ctx, "not a group");
    *out = cask_int((int64_t)cask_list_len(&recs));
    return 0;
}

static void run_groupby(const char *sched, const char *path)
{
    cask_error_t err;
    cask_kernel_register("bench.gkey", k_gkey, NULL, &err);
    cask_kernel_register("bench.glen", k_glen, NULL, &err);
    cask_graph_t *g = cask_graph_new(&err);
    cask_bag_t *recs = cask_bag_read_jsonl(g, &path, 1, 32 << 20, 0, &err);
    cask_bag_t *groups = cask_bag_groupby(recs, "bench.gkey", 0, &err);
    cask_bag_t *lens = cask_bag_map(groups, "bench.glen", NULL, 0, &err);
    /* the records counted too (reading the same partitions), to check that
    ** every one is in one group of the 10,000 keys bag_bench.py writes */
    cask_task_t t[3] = { cask_bag_count(groups, &err), cask_bag_sum(lens, &err),
                         cask_bag_count(recs, &err) };
    if (t[0] == CASK_NO_TASK || t[1] == CASK_NO_TASK || t[2] == CASK_NO_TASK)
        die("groupby", &err);
    cask_compute_opts_t o = { .scheduler = sched, .workers = 2, .flags = CASK_NO_PROGRESS };
    cask_value_t v[3];
    cask_compute_info_t info;
    if (cask_compute(g, t, 3, &o, v, &info, &err))
        die("groupby", &err);
    if (v[0].u.i != 10000 || v[1].u.i != v[2].u.i) {
        fprintf(stderr, "cask_bench: groupby: %lld groups of %lld records, not 10000 of %lld\n",
                (long long)v[0].u.i, (long long)v[1].u.i, (long long)v[2].u.i);
        exit(1);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("groupby.%s.cask.s %.2f\n", sched, info.wall_s);
    printf("groupby.%s.cask.groups %lld\n", sched, (long long)v[0].u.i);
    printf("groupby.%s.cask.records %lld\n", sched, (long long)v[1].u.i);
    if (!strcmp(sched, "threads"))
        printf("groupby.%s.cask.peak_rss_mb %.0f\n", sched, (double)ru.ru_maxrss / 1024);
    cask_bag_decref(lens);
    cask_bag_decref(groups);
    cask_bag_decref(recs);
    cask_graph_decref(g);
}

int main(int argc, char **argv)
{
    if (argc == 2 && !strcmp(argv[1], "spin100us"))
        run_spin();
    else if (argc == 2 && !strcmp(argv[1], "sleep15"))
        run_sleep15();
    else if (argc == 2 && !strcmp(argv[1], "transfer"))
        run_transfer();
    else if (argc == 2 && !strcmp(argv[1], "build"))
        run_build();
    else if (argc == 2 && !strcmp(argv[1], "pool"))
        run_pool("threads"), run_pool("processes");
    else if (argc == 2 && !strcmp(argv[1], "cache_fib"))
        run_cache_fib();
    else if (argc == 2 && !strcmp(argv[1], "resume"))
        run_resume();
    else if (argc == 2 && (!strcmp(argv[1], "normal_sum") || !strcmp(argv[1], "normal_std")))
        run_normal(argv[1]);
    else if (argc == 4 && !strcmp(argv[1], "ooc_make"))
        run_ooc_make(argv[2], argv[3]);
    else if (argc == 4 && !strcmp(argv[1], "ooc"))
        run_ooc(argv[2], argv[3]);
    else if (argc == 4 && !strcmp(argv[1], "read_rate"))
        run_read_rate(argv[2], argv[3]);
    else if (argc == 3 && !strcmp(argv[1], "memory_budget"))
        run_memory_budget(argv[2]);
    else if (argc == 2 && !strcmp(argv[1], "transpose_mean"))
        run_transpose_mean();
    else if (argc == 2 && !strcmp(argv[1], "matmul"))
        run_matmul();
    else if (argc == 4 && !strcmp(argv[1], "groupby"))
        run_groupby(argv[2], argv[3]);
    else if (argc == 3 && !strcmp(argv[1], "analyze"))
        run_analyze(argv[2]);
    else if (argc == 3)
        run_shape(argv[1], argv[2], argv[2]);
    else if (argc == 4) /* SHAPE SCHED NAME: the figures' scheduler part is NAME */
        run_shape(argv[1], argv[2], argv[3]);
    else {
        fprintf(stderr, "usage: cask_bench build | resume | pool | cache_fib | spin100us | sleep15 | normal_sum | normal_std | transpose_mean | matmul | memory_budget FILE.npy | ooc_make|ooc npy|hdf5 FILE | read_rate NAME FILE | analyze MONTAGE.zip | groupby SCHED FILE | transfer (under mpirun) | wide|chain|tree SCHEDULER [NAME]\n");
        return 2;
    }
    return 0;
}

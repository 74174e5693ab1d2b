/*
** 08_submits.c: many small submits on one pool, as Ray's f.remote() calls
** on a cluster of 4 CPUs: 200 jobs (each a Monte Carlo estimate of pi from
** its own seed) submitted one by one on a pool of 4 worker threads, then
** on a pool of 4 worker processes (forked once, when the pool is made).
** Each pool runs 4 at a time whatever the number of submits; the program
** takes the first 10 results as they come (ray.wait), then the rest, and
** prints how many ran at once and the wall time against the ideal.
*/
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cask/cask.h>

/* Jobs running now and the most at once: in memory shared with the worker
** processes, made before the pool forks them. */
static atomic_int *running;
#define now_running  running[0]
#define most_running running[1]

/* A 64-bit LCG step: the job's own random stream. */
static uint64_t next(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 11;
}

/* estimate(seed, points): 4 * (points in the quarter circle) / points. */
static CASK_KERNEL(estimate)
{
    if (n_args != 2 || args[0].type != CASK_INT64 || args[1].type != CASK_INT64)
        return cask_kernel_fail(ctx, "estimate takes a seed and a point count");
    int now = atomic_fetch_add(&now_running, 1) + 1, most = atomic_load(&most_running);
    while (now > most && !atomic_compare_exchange_weak(&most_running, &most, now))
        ;
    uint64_t s = (uint64_t)cask_value_int(&args[0]);
    int64_t n = cask_value_int(&args[1]), in = 0;
    for (int64_t i = 0; i < n; i++) {
        double x = (double)next(&s) * 0x1p-53, y = (double)next(&s) * 0x1p-53;
        in += x * x + y * y <= 1.0;
    }
    atomic_fetch_sub(&now_running, 1);
    *out = cask_double(4.0 * (double)in / (double)n);
    return 0;
}

/* The 200 jobs on a pool of 4 workers of sched; 1 when all went well. */
static int run(const char *sched)
{
    enum { JOBS = 200, WORKERS = 4, POINTS = 200000 };
    cask_error_t err;
    cask_pool_t *pool;
    atomic_store(&most_running, 0);
    printf("-- a pool of %d %s\n", WORKERS, sched);
    if (cask_pool_create(&(cask_pool_opts_t){ .scheduler = sched, .workers = WORKERS }, &pool,
                         &err)) {
        fprintf(stderr, "08_submits: %s\n", err.message);
        return 0;
    }
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t t[JOBS];
    for (int i = 0; i < JOBS; i++) /* every task first: a graph grows only between computes */
        t[i] = CASK_CALL(g, estimate, &err, cask_int(i + 1), cask_int(POINTS));
    /* one job alone on the pool, the best of 5: its time, for the ideal below */
    cask_value_t v;
    cask_compute_info_t info;
    double one = 1e9;
    for (int i = 0; i < 5; i++) {
        if (cask_compute(g, &t[0], 1, &(cask_compute_opts_t){ .pool = pool }, &v, &info, &err)) {
            fprintf(stderr, "08_submits: %s\n", err.message);
            return 0;
        }
        one = info.wall_s < one ? info.wall_s : one;
    }

    cask_future_t *f[JOBS];
    cask_compute_opts_t o = { .pool = pool };
    uint64_t t0 = cask_now_ns();
    for (int i = 0; i < JOBS; i++)
        if (cask_submit(g, &t[i], 1, &o, &f[i], &err)) {
            fprintf(stderr, "08_submits: %s\n", err.message);
            return 0;
        }
    bool done[JOBS];
    size_t k = cask_future_wait(f, JOBS, 10, -1, done);
    printf("first %zu of %d done after %.1f ms\n", k, JOBS, (cask_now_ns() - t0) * 1e-6);
    cask_future_wait(f, JOBS, JOBS, -1, NULL);
    double wall = (double)(cask_now_ns() - t0) * 1e-9, sum = 0;
    int ok = 1;
    for (int i = 0; i < JOBS; i++) {
        if (cask_future_get(f[i], &v, &err)) {
            fprintf(stderr, "08_submits: job %d: %s\n", i, err.message);
            ok = 0;
        }
        sum += cask_value_double(&v);
        cask_future_free(f[i]);
    }
    double pi = sum / JOBS;
    ok &= pi > 3.13 && pi < 3.15;
    printf("pi ~ %.5f from %d jobs of %d points\n", pi, JOBS, POINTS);
    printf("at most %d jobs ran at once on a pool of %d\n", atomic_load(&most_running), WORKERS);
    long cores = sysconf(_SC_NPROCESSORS_ONLN), cpus = cores < WORKERS ? cores : WORKERS;
    printf("%.3f s for %d jobs of %.2f ms: %.2fx the ideal (%d workers on %ld cores)\n", wall,
           JOBS, one * 1e3, wall / (JOBS * one / (double)cpus), WORKERS, cores);
    ok &= atomic_load(&most_running) <= WORKERS;
    cask_graph_decref(g);
    cask_pool_free(pool);
    return ok;
}

int main(void)
{
    running = mmap(NULL, 2 * sizeof *running, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (running == MAP_FAILED) {
        perror("08_submits: mmap");
        return 1;
    }
    int ok = run("threads");
    ok &= run("processes");
    return ok ? 0 : 1;
}

/*
** examples/04_monte_carlo_pi.c: estimate pi from 200,000,000 random points
** in 16 tasks, on sync, then on threads, then on processes, and print the
** speedups. Sixteen coarse tasks are what a first program has: every
** worker, thread or process, must get its share of them.
**
** Each task counts the points of its share that fall inside the quarter
** circle; one more task adds the counts. Point i's coordinates come from a
** counter-based generator (SplitMix64 outputs 2i and 2i + 1), so the estimate
** is the same whatever the number of tasks or workers.
**
**     build/examples/04_monte_carlo_pi            the estimate and the speedup
**     build/examples/04_monte_carlo_pi --figures  bench figures (the best of 5 runs
**                                                 of each: this machine is shared)
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cask/cask.h>

#define SAMPLES 200000000LL
#define TASKS   16
#define SEED    20261121u

#define GOLDEN 0x9e3779b97f4a7c15ull

/* Output k of SplitMix64's stream is splitmix64(seed + k * GOLDEN). */
static inline uint64_t splitmix64(uint64_t x)
{
    x += GOLDEN;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* hits(first, count): how many of points first .. first+count-1 land
** inside the unit quarter circle. */
static CASK_KERNEL(hits)
{
    if (n_args != 2 || args[0].type != CASK_INT64 || args[1].type != CASK_INT64)
        return cask_kernel_fail(ctx, "wants (first, count) as integers");
    uint64_t first = (uint64_t)cask_value_int(&args[0]), count = (uint64_t)cask_value_int(&args[1]);
    uint64_t inside = 0;
    const double scale = 0x1p-53;
    for (uint64_t i = first; i < first + count; i++) {
        double x = (double)(splitmix64(SEED + 2 * i * GOLDEN) >> 11) * scale;
        double y = (double)(splitmix64(SEED + (2 * i + 1) * GOLDEN) >> 11) * scale;
        inside += x * x + y * y < 1.0;
    }
    *out = cask_int((int64_t)inside);
    return 0;
}

static void die(const cask_error_t *err)
{
    fprintf(stderr, "04_monte_carlo_pi: %s\n", err->message);
    exit(1);
}

int main(int argc, char **argv)
{
    int figures = argc > 1 && !strcmp(argv[1], "--figures");
    cask_error_t err;
    /* A cost estimate (seconds per point) lets the ranks mean something. */
    cask_kernel_opts_t ko = { .cost = 2.5e-9 * (double)(SAMPLES / TASKS) };
    if (cask_kernel_register("hits", hits, &ko, &err))
        die(&err);
    cask_graph_t *g = cask_graph_new(&err);
    cask_value_t parts[TASKS];
    for (int i = 0; i < TASKS; i++) {
        long long first = SAMPLES / TASKS * i, count = SAMPLES / TASKS;
        parts[i] = cask_ref(CASK_CALL(g, hits, &err, cask_int(first), cask_int(count)));
    }
    cask_task_t total = cask_delayed(g, "cask.add", parts, TASKS, &err);
    if (total == CASK_NO_TASK)
        die(&err);

    /* Each scheduler in turn, five times for the figures: the best of each. */
    enum { NS = 3 };
    double wall[NS], t[NS][5];
    int64_t inside[NS];
    int workers[NS] = { 0 }, reps = figures ? 5 : 1;
    const char *scheds[NS] = { "sync", "threads", "processes" };
    for (int k = 0; k < reps; k++)
        for (int s = 0; s < NS; s++) {
            cask_value_t v;
            cask_compute_info_t info;
            cask_compute_opts_t o = { .scheduler = scheds[s] };
            if (cask_compute(g, &total, 1, &o, &v, &info, &err))
                die(&err);
            t[s][k] = info.wall_s;
            inside[s] = cask_value_int(&v);
            workers[s] = info.workers;
        }
    for (int s = 0; s < NS; s++) {
        wall[s] = t[s][0];
        for (int k = 1; k < reps; k++)
            wall[s] = t[s][k] < wall[s] ? t[s][k] : wall[s];
    }
    if (inside[0] != inside[1] || inside[0] != inside[2]) {
        fprintf(stderr, "04_monte_carlo_pi: the schedulers disagree\n");
        return 1;
    }
    double pi = 4.0 * (double)inside[0] / (double)SAMPLES;
    if (figures) {
        for (int s = 0; s < NS; s++)
            printf("pi.%s.cask.s %.4f\n", scheds[s], wall[s]);
        for (int s = 1; s < NS; s++)
            printf("pi.%s.cask.speedup %.3f\n", scheds[s], wall[0] / wall[s]);
    } else {
        printf("pi ~= %.8f (error %.1e) from %lld points in %d tasks\n", pi, fabs(pi - M_PI),
               SAMPLES, TASKS);
        printf("sync: %.3f s", wall[0]);
        for (int s = 1; s < NS; s++)
            printf("   %s (%d workers): %.3f s, speedup %.2f", scheds[s], workers[s], wall[s],
                   wall[0] / wall[s]);
        printf("\n");
    }
    cask_graph_decref(g);
    return 0;
}

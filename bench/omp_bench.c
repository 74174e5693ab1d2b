/*
** bench/omp_bench.c: the native baseline: the same three shapes as
** cask_bench (wide, chain, tree) as OpenMP tasks with `depend` clauses, each
** task one addition, as cask's cask.add tasks are.
**
**   omp_bench SHAPE   prints SHAPE.threads.omp.tasks_per_s (OMP_NUM_THREADS threads)
**   omp_bench triad   prints limit.triad_gbs: the machine's memory bandwidth, as
**                     STREAM's triad a = b + s*c over 3 x 256 MB on the same threads
*/
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile int64_t sink; /* keeps the results alive */

static double now(void) { return omp_get_wtime(); }

/* n independent tasks and one that adds their results. */
static size_t wide(size_t n)
{
    int64_t *a = malloc(n * sizeof *a), sum = 0;
#pragma omp parallel
#pragma omp single
    {
        for (size_t i = 0; i < n; i++) {
#pragma omp task depend(out: a[i]) firstprivate(i) shared(a)
            a[i] = (int64_t)i + 1;
        }
#pragma omp taskwait
#pragma omp task shared(a, sum)
        for (size_t i = 0; i < n; i++)
            sum += a[i];
#pragma omp taskwait
    }
    sink = sum;
    free(a);
    return n + 1;
}

/* n tasks, each reading the one before. */
static size_t chain(size_t n)
{
    int64_t x = 0;
#pragma omp parallel
#pragma omp single
    {
        for (size_t i = 0; i < n; i++) {
#pragma omp task depend(inout: x) shared(x)
            x += 1;
        }
#pragma omp taskwait
    }
    sink = x;
    return n;
}

/* leaves tasks, then a binary tree of additions over them. */
static size_t tree(size_t leaves)
{
    int64_t *v = malloc(2 * leaves * sizeof *v); /* level after level */
    size_t tasks = 0;
#pragma omp parallel
#pragma omp single
    {
        for (size_t i = 0; i < leaves; i++) {
#pragma omp task depend(out: v[i]) firstprivate(i) shared(v)
            v[i] = (int64_t)i;
        }
        tasks = leaves;
        size_t in = 0, w = leaves;
        while (w > 1) {
            size_t out = in + w;
            for (size_t i = 0; i < w / 2; i++) {
                int64_t *a = &v[in + 2 * i], *b = &v[in + 2 * i + 1], *c = &v[out + i];
#pragma omp task depend(in: a[0], b[0]) depend(out: c[0]) firstprivate(a, b, c)
                *c = *a + *b;
            }
            tasks += w / 2;
            in = out;
            w /= 2;
        }
#pragma omp taskwait
        sink = v[in];
    }
    free(v);
    return tasks;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* STREAM's triad, best of 10, counting 24 bytes per element as STREAM does. */
static void triad(void)
{
    size_t n = (size_t)1 << 25;
    double *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *c = malloc(n * sizeof *c);
    if (!a || !b || !c)
        exit(1);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) /* first touch by the threads that use it */
        a[i] = 0, b[i] = 1, c[i] = 2;
    double best = 1e30;
    for (int r = 0; r < 10; r++) {
        double t0 = now();
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++)
            a[i] = b[i] + 3.0 * c[i];
        double t = now() - t0;
        best = t < best ? t : best;
    }
    sink = (int64_t)a[n / 2];
    printf("limit.triad_gbs %.2f\n", 24.0 * (double)n / best / 1e9);
    printf("limit.triad_threads %d\n", omp_get_max_threads());
    free(a), free(b), free(c);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: omp_bench wide|chain|tree|triad\n");
        return 2;
    }
    if (!strcmp(argv[1], "triad")) {
        triad();
        return 0;
    }
    size_t (*fn)(size_t);
    size_t n;
    if (!strcmp(argv[1], "wide"))
        fn = wide, n = 100000;
    else if (!strcmp(argv[1], "chain"))
        fn = chain, n = 100000;
    else if (!strcmp(argv[1], "tree"))
        fn = tree, n = 65536;
    else {
        fprintf(stderr, "omp_bench: unknown shape '%s'\n", argv[1]);
        return 2;
    }
    enum { REPS = 7 };
    double t[REPS];
    size_t tasks = 0;
    for (int r = 0; r < REPS; r++) {
        double t0 = now();
        tasks = fn(n);
        t[r] = now() - t0;
    }
    qsort(t, REPS, sizeof *t, cmp);
    printf("%s.threads.omp.tasks_per_s %.0f\n", argv[1], (double)tasks / t[REPS / 2]);
    printf("%s.threads.omp.threads %d\n", argv[1], omp_get_max_threads());
    return 0;
}

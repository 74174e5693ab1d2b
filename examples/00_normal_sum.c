/*
** examples/00_normal_sum.c: the array demo, as dask.array would write it:
**
**   x = da.random.normal(size=100_000_000, chunks=1_000_000)
**   dask.compute((x * x + 1).sum(), x.std())
**
** Nothing runs while the expressions are built; both reductions are then
** computed in one call on the threads scheduler, and again on sync to
** compare. Generation happens inside the tasks (fused with the arithmetic
** and the first level of each reduction), so no chunk is ever held in
** memory. Usage: 00_normal_sum [N [CHUNK]]
*/
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

#include <cask/cask.h>

static void check(const void *p, const cask_error_t *err)
{
    if (!p) {
        fprintf(stderr, "00_normal_sum: %s\n", err->message);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    int64_t n = argc > 1 ? atoll(argv[1]) : 100000000, chunk = argc > 2 ? atoll(argv[2]) : 1000000;
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    check(g, &err);

    cask_array_t *x = cask_array_random_normal(g, 42, 0.0, 1.0, 1, &n, &chunk, &err);
    cask_array_t *xx = cask_array_binop(CASK_MUL, x, x, &err);
    cask_array_t *y = cask_array_binop_scalar(CASK_ADD, xx, cask_int(1), &err);
    cask_array_t *sum = cask_array_reduce(CASK_SUM, y, NULL, &err);
    cask_array_t *std = cask_array_reduce(CASK_STD, x, NULL, &err);
    check(sum, &err);
    check(std, &err);

    cask_array_t *outs[2] = { sum, std };
    double res[2][2];
    cask_compute_info_t info[2];
    const char *scheds[2] = { "threads", "sync" };
    for (int s = 0; s < 2; s++) {
        cask_compute_opts_t o = { .scheduler = scheds[s] };
        if (cask_array_compute(outs, (void *[]){ &res[s][0], &res[s][1] }, 2, &o, &info[s], &err)) {
            fprintf(stderr, "00_normal_sum: %s\n", err.message);
            return 1;
        }
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("x = random.normal(size=%lld, chunks=%lld), seed 42\n", (long long)n, (long long)chunk);
    printf("(x*x + 1).sum() = %.6f\n", res[0][0]);
    printf("x.std()         = %.9f\n", res[0][1]);
    printf("threads (%s workers): %.3f s; sync: %.3f s; speedup %.2f\n",
           getenv("CASK_NUM_WORKERS") ? getenv("CASK_NUM_WORKERS") : "all",
           info[0].wall_s, info[1].wall_s, info[1].wall_s / info[0].wall_s);
    printf("tasks: %zu; peak bytes held by intermediates: %zu; process peak RSS: %.1f MB\n",
           info[0].tasks, info[0].peak_bytes, (double)ru.ru_maxrss / 1024);
    if (res[0][0] != res[1][0] || res[0][1] != res[1][1]) {
        fprintf(stderr, "00_normal_sum: threads and sync disagree\n");
        return 1;
    }
    cask_array_decref(x);
    cask_array_decref(xx);
    cask_array_decref(y);
    cask_array_decref(sum);
    cask_array_decref(std);
    cask_graph_free(g);
    return 0;
}

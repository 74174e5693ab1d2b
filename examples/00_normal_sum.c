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
** memory.
**
** Then it shows the parallelism: the graph's degree of parallelism, the
** speedup a simulation of 1, 2, 4 and 8 workers predicts from the sync
** run's measured task times next to the speedup measured on threads, the
** graph as DOT (OUTDIR/normal_sum.dot, and .svg when Graphviz is there)
** and the threads run's timeline (OUTDIR/normal_sum_timeline.svg).
** Usage: 00_normal_sum [N [CHUNK [OUTDIR]]] (OUTDIR: build if it exists, else .)
*/
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>

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

    cask_array_t *x = cask_array_random_normal(g, 1, &n, &chunk, 42, 0.0, 1.0, &err);
    cask_array_t *xx = cask_array_binop(x, CASK_MUL, x, &err);
    cask_array_t *y = cask_array_binop_scalar(xx, CASK_ADD, cask_int(1), &err);
    cask_array_t *sum = cask_array_reduce(y, CASK_SUM, NULL, &err);
    cask_array_t *std = cask_array_reduce(x, CASK_STD, NULL, &err);
    check(sum, &err);
    check(std, &err);

    cask_array_t *outs[2] = { sum, std };
    double res[2][2];
    cask_compute_info_t info[2];
    const char *scheds[2] = { "threads", "sync" };
    for (int s = 0; s < 2; s++) {
        cask_compute_opts_t o = { .scheduler = scheds[s], .flags = CASK_TRACE };
        if (cask_array_compute(outs, 2, &o, (void *[]){ &res[s][0], &res[s][1] }, &info[s], &err)) {
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

    /* the degree of parallelism, and what 1, 2, 4 and 8 workers would make of it */
    struct stat st;
    const char *dir = argc > 3 ? argv[3] : stat("build", &st) == 0 && S_ISDIR(st.st_mode) ? "build" : ".";
    cask_analysis_t a;
    if (cask_graph_analyze(g, 0, &a, &err)) {
        fprintf(stderr, "00_normal_sum: %s\n", err.message);
        return 1;
    }
    printf("\ngraph: %zu tasks, %zu edges, %zu levels, width %zu (the most tasks that can run at once)\n",
           a.tasks, a.edges, a.levels, a.width);
    printf("with the sync run's task times as costs:\n");
    for (int p = 1; p <= 8; p *= 2) {
        cask_sim_opts_t so = { .workers = p, .durations = info[1].trace };
        cask_sim_result_t r;
        if (cask_simulate(g, NULL, 0, &so, &r, &err)) {
            fprintf(stderr, "00_normal_sum: %s\n", err.message);
            return 1;
        }
        if (p == 1)
            printf("  work %.3f s, span %.4f s, average parallelism %.1f\n", r.work, r.span,
                   r.work / r.span);
        printf("  simulated on %d worker%s: makespan %.3f s, speedup %.2f%s", p, p == 1 ? " " : "s",
               r.makespan, r.speedup, p == info[0].workers ? "" : "\n");
        if (p == info[0].workers)
            printf("   (measured on threads: %.2f)\n", info[1].wall_s / info[0].wall_s);
        cask_sim_result_destroy(&r);
    }
    char dot[512], svg[512], tl[512];
    snprintf(dot, sizeof dot, "%s/normal_sum.dot", dir);
    snprintf(svg, sizeof svg, "%s/normal_sum.svg", dir);
    snprintf(tl, sizeof tl, "%s/normal_sum_timeline.svg", dir);
    cask_dot_opts_t dopt = { .color = CASK_DOT_GROUP, .collapse = CASK_DOT_ALL };
    cask_timeline_opts_t topt = { .title = "(x*x + 1).sum() and x.std() on threads" };
    if (cask_dot_save(g, dot, &dopt, &err) || cask_timeline_save(info[0].trace, tl, &topt, &err)) {
        fprintf(stderr, "00_normal_sum: %s\n", err.message);
        return 1;
    }
    printf("wrote %s (the graph, one node per group), %s (the threads run)", dot, tl);
    if (cask_dot_save(g, svg, &dopt, &err) == 0)
        printf(", %s", svg);
    printf("\n");
    cask_analysis_destroy(&a);
    cask_trace_free(info[0].trace);
    cask_trace_free(info[1].trace);
    cask_array_decref(x);
    cask_array_decref(xx);
    cask_array_decref(y);
    cask_array_decref(sum);
    cask_array_decref(std);
    cask_graph_decref(g);
    return 0;
}

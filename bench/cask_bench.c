/*
** bench/cask_bench.c: cask's side of bench/run. Prints "FIGURE VALUE" lines.
**
**   cask_bench build        build a delayed graph of 1,000,000 tasks feeding one sum
**   cask_bench SHAPE SCHED  run a shape (wide, chain, tree) on a scheduler, trace on
**   cask_bench spin100us    20,000 tasks of 100 us: threads' parallel efficiency
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cask/cask.h>

static void die(const char *what, const cask_error_t *err)
{
    fprintf(stderr, "cask_bench: %s: %s\n", what, err->message);
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

static void run_shape(const char *shape, const char *sched)
{
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t out;
    if (!strcmp(shape, "wide"))
        out = build_wide(g, 100000);
    else if (!strcmp(shape, "chain"))
        out = build_chain(g, 100000);
    else if (!strcmp(shape, "tree"))
        out = build_tree(g, 65536);
    else {
        fprintf(stderr, "cask_bench: unknown shape '%s'\n", shape);
        exit(2);
    }
    enum { REPS = 7 };
    double t[REPS];
    size_t tasks = 0;
    for (int r = 0; r < REPS; r++) {
        cask_value_t v;
        cask_compute_info_t info;
        cask_compute_opts_t o = { .scheduler = sched, .flags = CASK_TRACE };
        if (cask_compute(g, &out, 1, &v, &o, &info, &err))
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
    qsort(t, REPS, sizeof *t, cmp_double);
    printf("%s.%s.cask.tasks_per_s %.0f\n", shape, sched, (double)tasks / t[REPS / 2]);
    printf("%s.%s.cask.tasks %zu\n", shape, sched, tasks);
    cask_graph_free(g);
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
        if (cask_compute(g, outs, N, res, &o, &info, &err))
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
    cask_graph_free(g);
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
        cask_graph_free(g);
    }
    qsort(t, REPS, sizeof *t, cmp_double);
    printf("build.cask.s_per_1m_tasks %.4f\n", t[REPS / 2] * 1e6 / (N + 1));
    printf("build.cask.bytes_per_task %.1f\n", (double)bytes / (N + 1));
}

int main(int argc, char **argv)
{
    if (argc == 2 && !strcmp(argv[1], "spin100us"))
        run_spin();
    else if (argc == 2 && !strcmp(argv[1], "build"))
        run_build();
    else if (argc == 3)
        run_shape(argv[1], argv[2]);
    else {
        fprintf(stderr, "usage: cask_bench build | spin100us | wide|chain|tree SCHEDULER\n");
        return 2;
    }
    return 0;
}

/*
** 02_mergesort.c: merge sort of 1,000,000 random doubles as a task graph:
** 16 leaf sorts, then a tree of merges (8, 4, 2, 1), on sync and on
** threads. Checks the result is the sorted input. Each task's group is its
** function's name, so a timeline of it has two: sort and merge.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cask/cask.h>

#define N      1000000
#define LEAVES 16

static CASK_KERNEL(sort);
static CASK_KERNEL(merge);
static int cmp_double(const void *a, const void *b);

int main(void)
{
    cask_error_t err;
    /* Cost estimates (seconds) let the scheduler rank the tasks; CASK_CALL
    ** below finds the functions registered under their names. */
    if (cask_kernel_register("sort", sort, &(cask_kernel_opts_t){ .cost = 4e-3 }, &err) ||
        cask_kernel_register("merge", merge, &(cask_kernel_opts_t){ .cost = 2e-3 }, &err)) {
        fprintf(stderr, "02_mergesort: %s\n", err.message);
        return 1;
    }

    /* The input: N doubles from a xorshift generator. */
    double *data = malloc(N * sizeof *data);
    if (!data)
        return 1;
    uint64_t s = 88172645463325252ull;
    for (size_t i = 0; i < N; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        data[i] = (double)(s >> 11) / 9007199254740992.0;
    }

    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t level[LEAVES];
    for (int i = 0; g && i < LEAVES; i++) {
        int64_t len = N / LEAVES;
        cask_value_t chunk;
        cask_nd_t nd;
        if (cask_value_ndarray(CASK_F64, 1, &len, &chunk, &err))
            break;
        cask_value_nd(&chunk, &nd);
        memcpy(nd.data, data + i * len, (size_t)len * sizeof(double));
        level[i] = CASK_CALL(g, sort, &err, chunk);
        cask_value_decref(&chunk); /* the graph holds its own reference */
    }
    for (int width = LEAVES; g && width > 1; width /= 2)
        for (int i = 0; i < width / 2; i++)
            level[i] = CASK_CALL(g, merge, &err, cask_ref(level[2 * i]),
                                 cask_ref(level[2 * i + 1]));
    if (!g || level[0] == CASK_NO_TASK) {
        fprintf(stderr, "02_mergesort: building: %s\n", err.message);
        return 1;
    }

    cask_value_t sorted;
    cask_compute_info_t info;
    double sync_s = 0;
    const char *scheds[2] = { "sync", "threads" };
    for (int k = 0; k < 2; k++) {
        cask_compute_opts_t opts = { .scheduler = scheds[k], .flags = k ? CASK_TRACE : 0 };
        if (cask_compute(g, &level[0], 1, &opts, &sorted, &info, &err)) {
            fprintf(stderr, "02_mergesort: %s (task %s)\n", err.message, err.key);
            return 1;
        }
        if (!k) {
            sync_s = info.wall_s;
            cask_value_decref(&sorted);
        }
    }
    cask_nd_t nd;
    cask_value_nd(&sorted, &nd);
    qsort(data, N, sizeof *data, cmp_double);
    int ok = nd.size == N && memcmp(nd.data, data, N * sizeof(double)) == 0;
    printf("sorted %zu doubles: %s; min %.6f, max %.6f\n", nd.size,
           ok ? "equal to qsort of the input" : "WRONG", ((double *)nd.data)[0],
           ((double *)nd.data)[nd.size - 1]);
    printf("%zu tasks (16 sorts, 15 merges): sync %.3f s, threads (%d workers) %.3f s, "
           "speedup %.2f; peak %.1f MB of intermediates\n", info.tasks, sync_s, info.workers,
           info.wall_s, sync_s / info.wall_s, info.peak_bytes / 1e6);
    const cask_trace_event_t *last = cask_trace_event(info.trace, cask_trace_size(info.trace) - 1);
    printf("last task: %s (group %s), %.2f ms\n", last->key, last->group,
           (last->end_ns - last->start_ns) / 1e6);

    cask_value_decref(&sorted);
    cask_trace_free(info.trace);
    cask_graph_decref(g);
    free(data);
    return ok ? 0 : 1;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* A sorted copy of a 1-d float64 buffer. */
static CASK_KERNEL(sort)
{
    cask_nd_t in, o;
    if (n_args != 1 || cask_value_nd(&args[0], &in) || in.dtype != CASK_F64 || in.ndim != 1)
        return cask_kernel_fail(ctx, "sort takes one 1-d float64 buffer");
    if (cask_value_ndarray(CASK_F64, 1, in.shape, out, NULL))
        return cask_kernel_fail(ctx, "out of memory");
    cask_value_nd(out, &o);
    memcpy(o.data, in.data, in.size * sizeof(double));
    qsort(o.data, o.size, sizeof(double), cmp_double);
    return 0;
}

/* Merge two sorted 1-d float64 buffers. */
static CASK_KERNEL(merge)
{
    cask_nd_t a, b, o;
    if (n_args != 2 || cask_value_nd(&args[0], &a) || cask_value_nd(&args[1], &b) ||
        a.dtype != CASK_F64 || b.dtype != CASK_F64)
        return cask_kernel_fail(ctx, "merge takes two float64 buffers");
    int64_t len = (int64_t)(a.size + b.size);
    if (cask_value_ndarray(CASK_F64, 1, &len, out, NULL))
        return cask_kernel_fail(ctx, "out of memory");
    cask_value_nd(out, &o);
    const double *x = a.data, *y = b.data;
    double *z = o.data;
    size_t i = 0, j = 0, k = 0;
    while (i < a.size && j < b.size)
        z[k++] = y[j] < x[i] ? y[j++] : x[i++];
    while (i < a.size)
        z[k++] = x[i++];
    while (j < b.size)
        z[k++] = y[j++];
    return 0;
}

/*
** 03_pool_map.c: squares of a list in chunks, as multiprocessing's
** Pool.map(square, range(20), chunksize=5): one task per chunk of 5 items.
** The scheduler is $CASK_SCHEDULER (default sync), so the same program runs
** on threads, or on every rank of an MPI job:
**   CASK_SCHEDULER=mpi mpirun -np 3 build/examples/03_pool_map
** where rank 0 prints the results.
*/
#include <stdio.h>

#include <cask/cask.h>

static int square(const cask_value_t *args, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    if (n != 1 || args[0].type != CASK_INT64)
        return cask_kernel_fail(ctx, "square takes one integer");
    *out = cask_int(args[0].u.i * args[0].u.i);
    return 0;
}

int main(void)
{
    enum { N = 20, CHUNK = 5 };
    cask_error_t err;
    if (cask_kernel_register("example.square", square, NULL, &err))
        return 1;
    cask_value_t items[N];
    for (int i = 0; i < N; i++)
        items[i] = cask_int(i);

    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t chunks[(N + CHUNK - 1) / CHUNK];
    size_t n_chunks;
    if (!g || cask_delayed_map(g, "example.square", items, N, CHUNK, chunks, sizeof chunks / sizeof chunks[0],
                                &n_chunks, &err)) {
        fprintf(stderr, "03_pool_map: %s\n", err.message);
        return 1;
    }
    cask_value_t res[sizeof chunks / sizeof chunks[0]];
    cask_compute_info_t info;
    if (cask_compute(g, chunks, n_chunks, res, &(cask_compute_opts_t){ 0 }, &info, &err)) {
        fprintf(stderr, "03_pool_map: %s\n", err.message);
        return 1;
    }
    if (cask_mpi_rank() != 0) { /* under mpirun: rank 0 has the results */
        cask_graph_free(g);
        return 0;
    }
    printf("map over %d items in chunks of %d: %zu tasks, e.g. %s\n", N, CHUNK, n_chunks,
           cask_graph_key(g, chunks[0]));
    int ok = 1, k = 0;
    printf("squares:");
    for (size_t c = 0; c < n_chunks; c++) {
        cask_nd_t nd;
        cask_value_nd(&res[c], &nd);
        for (size_t i = 0; i < nd.size; i++, k++) {
            int64_t v = ((int64_t *)nd.data)[i];
            printf(" %lld", (long long)v);
            ok &= v == (int64_t)k * k;
        }
        cask_value_decref(&res[c]);
    }
    printf("\n%d results from %zu tasks in %.1f us on %s (%s)\n", k, info.tasks,
           info.wall_s * 1e6, info.scheduler, ok && k == N ? "all correct" : "WRONG");
    cask_graph_free(g);
    return ok && k == N ? 0 : 1;
}

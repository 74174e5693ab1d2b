/*
** 03_pool_map.c: multiprocessing's Pool.map(square, range(20), chunksize=5):
** one task per chunk of 5 items, then the 20 results as one list, in order.
** The scheduler is $CASK_SCHEDULER (default threads), so the same program
** runs on processes, or on every rank of an MPI job:
**   CASK_SCHEDULER=mpi mpirun -np 3 build/examples/03_pool_map
** where rank 0 prints the results.
*/
#include <stdio.h>

#include <cask/cask.h>

static CASK_KERNEL(square)
{
    if (n_args != 1 || args[0].type != CASK_INT64)
        return cask_kernel_fail(ctx, "square takes one integer");
    *out = cask_int(cask_value_int(&args[0]) * cask_value_int(&args[0]));
    return 0;
}

int main(void)
{
    enum { N = 20, CHUNK = 5 };
    cask_error_t err;
    cask_value_t items[N];
    for (int i = 0; i < N; i++)
        items[i] = cask_int(i);

    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t squares = CASK_MAP(g, square, items, N, CHUNK, &err);
    cask_value_t list;
    cask_compute_info_t info;
    if (squares == CASK_NO_TASK ||
        cask_compute(g, &squares, 1, NULL, &list, &info, &err)) {
        fprintf(stderr, "03_pool_map: %s\n", err.message);
        return 1;
    }
    if (cask_mpi_rank() != 0) { /* under mpirun: rank 0 has the results */
        cask_graph_decref(g);
        return 0;
    }
    printf("map over %d items in chunks of %d: %zu tasks (the chunks, and one to join them)\n",
           N, CHUNK, info.tasks);
    int ok = cask_list_len(&list) == N;
    printf("squares:");
    for (size_t i = 0; i < cask_list_len(&list); i++) {
        cask_value_t v = cask_list_item(&list, i);
        printf(" %lld", (long long)cask_value_int(&v));
        ok &= cask_value_int(&v) == (int64_t)(i * i);
    }
    printf("\n%zu results in %.1f us on %s (%s)\n", cask_list_len(&list), info.wall_s * 1e6,
           info.scheduler, ok ? "all correct" : "WRONG");
    cask_value_decref(&list);
    cask_graph_decref(g);
    return ok ? 0 : 1;
}

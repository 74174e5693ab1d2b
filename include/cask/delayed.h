/*
** cask/delayed.h: lazy function calls, as dask.delayed.
**
** A delayed value is a task in a graph: calling a registered kernel through
** cask_delayed() records the call and returns at once. Pass the result of
** one call as an argument to another with cask_ref(); compute one or many
** with cask_compute(). Equal calls get equal keys, so a shared part is
** computed once.
**
**   cask_task_t a = cask_delayed(g, "ex.get_arg1", NULL, 0, &err);
**   cask_task_t b = cask_delayed(g, "ex.get_arg2", NULL, 0, &err);
**   cask_task_t c = CASK_DELAYED(g, "ex.compute", &err, cask_ref(a), cask_ref(b));
**
** Threads: as the graph it builds in.
*/
#ifndef CASK_DELAYED_H
#define CASK_DELAYED_H

#include <stddef.h>

#include "error.h"
#include "graph.h"
#include "value.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
** Record a call of kernel on args[0..n_args) (literals and cask_ref()s;
** borrowed) in g. Returns the task, or CASK_NO_TASK with err filled (an
** argument that is cask_ref(CASK_NO_TASK), from an earlier failed call,
** gives CASK_EINVAL, so errors may be checked once at the end).
** The key is NAME-TOKEN-0, NAME being the kernel's name after its last '.'.
** Cost: O(n_args) amortised.
*/
CASK_API cask_task_t cask_delayed(cask_graph_t *g, const char *kernel,
                                  const cask_value_t *args, size_t n_args,
                                  cask_error_t *err);

/* cask_delayed with the arguments listed inline (at least one). */
#define CASK_DELAYED(g, kernel, err, ...)                                   \
    cask_delayed((g), (kernel), (const cask_value_t[]){__VA_ARGS__},        \
                 sizeof((const cask_value_t[]){__VA_ARGS__}) /              \
                     sizeof(cask_value_t),                                  \
                 (err))

/*
** Apply kernel to each of items[0..n_items) in chunks of chunksize items,
** one task per chunk, as multiprocessing's Pool.map(f, items, chunksize):
** task i calls kernel once per item of chunk i, in order. Each call must
** return an int64 or a double; a chunk's output is a 1-d n-d buffer of its
** results (int64 when every result is an integer, else float64).
** Stores the ceil(n_items / chunksize) chunk tasks in chunks[0..max_chunks)
** (keys NAME-TOKEN-i) and their number in *n_chunks; CASK_ELIMIT (and no
** task added) if max_chunks is too small.
** Items may be literals or refs (borrowed). chunksize 0 picks
** ceil(n_items / (4 * online cores)), as Pool.map does.
** Returns 0, or CASK_EINVAL (n_items 0), CASK_ENOKERNEL, CASK_EMISSING (a
** ref to no task), CASK_ELIMIT, CASK_ENOMEM (tasks added before the
** failure stay in g, unreferenced; a compute culls them).
*/
CASK_API int cask_delayed_map(cask_graph_t *g, const char *kernel,
                              const cask_value_t *items, size_t n_items,
                              size_t chunksize, cask_task_t *chunks,
                              size_t max_chunks, size_t *n_chunks,
                              cask_error_t *err);

#ifdef __cplusplus
}
#endif
#endif /* CASK_DELAYED_H */

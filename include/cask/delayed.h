/*
** cask/delayed.h: lazy function calls, as dask.delayed, and Pool.map.
**
** A delayed value is a task in a graph: a call of a kernel recorded, not
** run. Pass one call's result to another with cask_ref(); compute with
** cask_compute_one() or cask_compute(). Equal calls get equal keys, so a
** shared part is computed once. The smallest program:
**
**   static CASK_KERNEL(inc) { *out = cask_int(cask_value_int(&args[0]) + 1); return 0; }
**
**   cask_graph_t *g = cask_graph_new(NULL);
**   cask_task_t a = CASK_CALL(g, inc, NULL, cask_int(1));    // inc(1), not run yet
**   cask_task_t b = CASK_CALL(g, inc, NULL, cask_ref(a));    // inc(inc(1))
**   cask_value_t v;
**   cask_compute_one(g, b, &v, NULL);                        // 3, on the default scheduler
**   cask_graph_decref(g);
**
** CASK_CALL registers the function under its own name (the same in every
** process and MPI rank that runs the program); cask_delayed() calls a
** kernel registered by name, as a graph file does. A delayed call's key is
** NAME-TOKEN-0 and its group NAME: the kernel's name after its last '.'
** (or the name given to cask_delayed_named), so a timeline shows one group
** per function, not one per call.
**
** Errors can be checked once, at the end: a call given cask_ref() of a
** failed call (CASK_NO_TASK) fails too, with CASK_EINVAL.
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

#if defined(__GNUC__)
#define CASK_UNUSED __attribute__((unused))
#else
#define CASK_UNUSED
#endif

/* The head of a kernel named fn: `static CASK_KERNEL(fn) { ... }` defines
** one, which reads args[0..n_args), stores its value in *out and may use
** ctx; any of them may go unused. */
#define CASK_KERNEL(fn)                                                              \
    int fn(const cask_value_t *args CASK_UNUSED, size_t n_args CASK_UNUSED,          \
           cask_value_t *out CASK_UNUSED, cask_kctx_t *ctx CASK_UNUSED)

/*
** Record a call of the registered kernel on args[0..n_args) (literals and
** cask_ref()s; borrowed; list items are copied). Returns the task, or
** CASK_NO_TASK with err filled: CASK_ENOKERNEL, CASK_EINVAL (a NULL kernel,
** or an argument that is cask_ref(CASK_NO_TASK) or a task of another
** graph), CASK_EMISSING, CASK_ENOMEM. Cost: O(n_args) amortised.
*/
CASK_API cask_task_t cask_delayed(cask_graph_t *g, const char *kernel,
                                  const cask_value_t *args, size_t n_args,
                                  cask_error_t *err);

/* As cask_delayed, with the key's NAME and the group `name` (1 to 63
** bytes) instead of the kernel's. */
CASK_API cask_task_t cask_delayed_named(cask_graph_t *g, const char *name, const char *kernel,
                                        const cask_value_t *args, size_t n_args,
                                        cask_error_t *err);

/*
** Register fn under name if it is not (cask_kernel_register; the same fn
** again is fine, another fn under that name is CASK_EDUPKEY), then record
** a call of it as cask_delayed does.
*/
CASK_API cask_task_t cask_delayed_fn(cask_graph_t *g, const char *name, cask_kernel_fn fn,
                                     const cask_value_t *args, size_t n_args,
                                     cask_error_t *err);

/* cask_delayed with the arguments listed inline (at least one). */
#define CASK_DELAYED(g, kernel, err, ...)                                   \
    cask_delayed((g), (kernel), (const cask_value_t[]){__VA_ARGS__},        \
                 sizeof((const cask_value_t[]){__VA_ARGS__}) /              \
                     sizeof(cask_value_t),                                  \
                 (err))

/* A call of the C function fn (a cask_kernel_fn), registered under its own
** name, with the arguments listed inline (at least one); CASK_CALL0 for a
** call with none. */
#define CASK_CALL(g, fn, err, ...)                                          \
    cask_delayed_fn((g), #fn, (fn), (const cask_value_t[]){__VA_ARGS__},    \
                    sizeof((const cask_value_t[]){__VA_ARGS__}) /           \
                        sizeof(cask_value_t),                               \
                    (err))
#define CASK_CALL0(g, fn, err) cask_delayed_fn((g), #fn, (fn), NULL, 0, (err))

/*
** multiprocessing's Pool.map(kernel, items, chunksize): one task per chunk
** of chunksize items (key NAME-TOKEN-i, group NAME), each calling kernel
** once per item, in order; then one task (NAME-TOKEN-k, k the number of
** chunks) whose value is the list of all n_items results in item order.
** Results may be any value a list holds (numbers, strings, bytes, n-d
** buffers, lists). Items are literals or refs (borrowed). chunksize 0
** picks ceil(n_items / (4 * online cores)), as Pool.map does. n_items 0
** gives an empty list.
** Returns the list's task, or CASK_NO_TASK with err filled: CASK_EINVAL,
** CASK_ENOKERNEL, CASK_EMISSING (a ref to no task), CASK_ENOMEM (tasks
** added before a failure stay in g, unreferenced: a compute culls them).
*/
CASK_API cask_task_t cask_map(cask_graph_t *g, const char *kernel, const cask_value_t *items,
                              size_t n_items, size_t chunksize, cask_error_t *err);

/* cask_map of fn, registered under name as cask_delayed_fn does. */
CASK_API cask_task_t cask_map_fn(cask_graph_t *g, const char *name, cask_kernel_fn fn,
                                 const cask_value_t *items, size_t n_items, size_t chunksize,
                                 cask_error_t *err);

/* cask_map_fn of the C function fn, under its own name. */
#define CASK_MAP(g, fn, items, n_items, chunksize, err)                     \
    cask_map_fn((g), #fn, (fn), (items), (n_items), (chunksize), (err))

#ifdef __cplusplus
}
#endif
#endif /* CASK_DELAYED_H */

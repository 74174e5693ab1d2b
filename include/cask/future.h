/*
** cask/future.h: computing in the background, and waiting on futures.
**
** cask_submit() starts a compute in the background (on a pool, run by the
** pool; else on a thread of its own) and returns at once with one future
** per requested output. A future is done as soon as
** its output is ready (the rest of the compute may still be running), or
** when the compute fails or is cancelled. As with Ray's ray.wait(), a
** program can wait for the first k of n futures, with a timeout, and go on
** working meanwhile. Several computes may be in flight at once, on the
** same scheduler or on different ones. On "threads" they share the
** workers of their pool (cask_compute_opts_t.pool, else the default pool
** of their worker count): fifteen submits on a pool of 2 run 2 tasks at a
** time. On a pool of "processes" they share its worker processes in the
** same way; on "processes" without a pool each gets its own.
**
**     cask_future_t *f[2];
**     cask_submit(g, outs, 2, &(cask_compute_opts_t){ .scheduler = "threads" },
**                 f, &err);
**     bool done[2];
**     cask_future_wait(f, 2, 1, 0.5, done);   // the first of two, or 0.5 s
**     cask_value_t v;
**     if (cask_future_get(f[0], &v, &err) == 0) ... cask_value_decref(&v);
**     cask_future_free(f[0]);
**     cask_future_free(f[1]);
*/
#ifndef CASK_FUTURE_H
#define CASK_FUTURE_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "graph.h"
#include "sched.h"
#include "value.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cask_future cask_future_t;

/*
** Start computing outs[0..n) of g in the background; put one new future
** per output in futs[0..n) (free each with cask_future_free). opts (may be
** NULL) is copied; its callbacks are borrowed until the compute finishes
** and run on the compute's threads. The compute keeps g alive, but g must
** not get new tasks while a compute on it is in flight: a future is done
** as soon as its value is delivered, which can be before its compute has
** let go of g; cask_future_info returns once it has.
** Errors found before anything runs are returned here, with every futs[i]
** NULL: CASK_EMISSING (an output not in g), CASK_ENOSCHED, CASK_EINVAL,
** CASK_ENOMEM. Later errors reach the futures.
** A submit on a pool holds the pool until its compute ends
** (cask_pool_free waits for it). A task running on a pool that submits
** to that pool and then waits on the future keeps its worker while it
** waits: if every worker does so, nothing runs. From a task, call
** cask_compute instead, which serves its compute on the calling thread.
*/
CASK_API int cask_submit(const cask_graph_t *g, const cask_task_t *outs, size_t n,
                         const cask_compute_opts_t *opts, cask_future_t **futs,
                         cask_error_t *err);

/* True once f is done: its value is ready, or it will never be. */
CASK_API bool cask_future_done(const cask_future_t *f);

/*
** Wait until at least k of futs[0..n) are done or timeout_s seconds have
** passed (timeout_s < 0, or over 1e9 s, or infinity: no limit; 0 or NaN:
** just look). If done is not NULL,
** done[i] tells whether futs[i] is done. Returns how many are done, which
** is less than k only on a timeout. The thread sleeps until as many
** futures (of any compute) have become done as it still needs, so a wait
** for 2,000 futures wakes a handful of times, not once for each. Threads:
** safe. Cost: O(n) per wake.
*/
CASK_API size_t cask_future_wait(cask_future_t *const *futs, size_t n, size_t k,
                                 double timeout_s, bool *done);

/*
** Wait for f, then store a new reference to its value in *out (release it
** with cask_value_decref). Returns 0, or the compute's error with err
** filled and *out CASK_NONE: the error of the task that failed, or
** CASK_ECANCELED. An output made before the compute failed is still given.
** May be called more than once.
*/
CASK_API int cask_future_get(cask_future_t *f, cask_value_t *out, cask_error_t *err);

/*
** Say that f's output is no longer wanted. When no future of its compute
** is waiting any more, the compute stops as on an error (no new task
** starts, running ones finish, everything is freed), and its futures not
** yet done fail with CASK_ECANCELED. Returns true if f was not done.
*/
CASK_API bool cask_future_cancel(cask_future_t *f);

/*
** Wait for f's compute to finish, then fill *info as cask_compute does
** (info->trace, if CASK_TRACE was asked for, belongs to the caller; a
** second call gets NULL there). Returns the compute's status.
*/
CASK_API int cask_future_info(cask_future_t *f, cask_compute_info_t *info);

/* Release f, cancelling it if it is not done. NULL is allowed. The
** compute's resources go once it has finished and its last future is freed. */
CASK_API void cask_future_free(cask_future_t *f);

#ifdef __cplusplus
}
#endif
#endif /* CASK_FUTURE_H */

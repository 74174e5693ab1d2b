/*
** cask/cask.h: the umbrella header. Include this one.
**
** cask is a lazy task-graph engine: build a graph of kernel calls, then
** compute the outputs you want on a scheduler of your choice.
**
** Conventions, the same in every header:
**
** - Names are cask_OBJECT_VERB (cask_graph_add, cask_array_reduce); types
**   end in _t; constants are CASK_UPPER.
** - Arguments go: the object acted on first, then its inputs, then options
**   (a struct pointer; NULL means the defaults, and zero fields mean
**   "default"), then what the call writes (outputs), and cask_error_t *err
**   last. Operations read left to right: cask_array_binop(a, CASK_ADD, b).
** - Fallible calls return 0 or a negative CASK_E* code (calls that make
**   something return it, or NULL / CASK_NO_TASK, instead) and fill *err,
**   which the caller owns; err may be NULL. On failure the objects passed
**   in are unchanged unless the call says otherwise.
** - Lifetimes: a handle cask allocates for one owner is released with
**   _free (cask_trace_free, cask_future_free); a shared one is counted
**   with _incref / _decref (graphs, arrays, values); a struct in the
**   caller's storage is set up with _init and released with _destroy
**   (cask_readyq_t, cask_list_builder_t; cask_graph_analyze and
**   cask_simulate fill theirs, released with cask_analysis_destroy and
**   cask_sim_result_destroy). Inputs are borrowed unless a call says it
**   takes them.
** - Files: _write writes to a FILE *, _save to a path (created or
**   truncated), _load reads a path and _parse a buffer in memory.
** - Threads: a header's head says its rule; a call that differs says so.
*/
#ifndef CASK_CASK_H
#define CASK_CASK_H

#define CASK_VERSION_MAJOR 0
#define CASK_VERSION_MINOR 1
#define CASK_VERSION_PATCH 0
#define CASK_VERSION "0.1.0"
/* major * 1000000 + minor * 1000 + patch, as SQLite's SQLITE_VERSION_NUMBER */
#define CASK_VERSION_NUMBER 1000

#include "error.h"
#include "value.h"
#include "graph.h"
#include "sched.h"
#include "delayed.h"
#include "future.h"
#include "array.h"
#include "bag.h"
#include "viz.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The library's CASK_VERSION_NUMBER: compare with the header's to check a
** match. Threads: safe. */
CASK_API int cask_version_number(void);

/* The library's version string, e.g. "0.1.0" (static storage). Threads: safe. */
CASK_API const char *cask_version(void);

#ifdef __cplusplus
}
#endif
#endif /* CASK_CASK_H */

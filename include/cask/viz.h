/*
** cask/viz.h: pictures of graphs and runs.
**
** - DOT (Graphviz) of a graph, coloured by rank, group, critical path or
**   worker; big graphs collapsed into one node per group.
** - Timelines of a trace (a real run's or a simulated one): an SVG with a
**   row per worker, its idle gaps and its releasable tail, a legend and the
**   concurrency profile; and Chrome trace-event JSON (Perfetto,
**   chrome://tracing).
** Colours: within one picture, every group (every worker) has a colour of
** its own, none of them near the timeline's idle grey, while there are at
** most 20; past 20, the groups with the most work (DOT; tasks when no
** task has a cost) or busy time (timeline), and the workers with the most
** tasks, have them and the rest share one grey, which the legend counts.
** Up to 20, a group's colour depends only on the set of groups in the
** picture, so a graph's DOT and the timeline of a run of all of it colour
** each group alike. Group "transfer" (values moving between workers, in
** mpi traces) is always dark grey and takes none of the 20.
**
** Writers to a FILE * (*_write) leave f open and write through stdio
** alone; writers to a path (*_save) create or truncate the file. Errors are
** returned, with err filled, as everywhere in cask; a failed write may leave
** a partial file behind.
**
** Threads: every function only reads its graph or trace, so several may
** run at once over the same one, but not while another thread builds the
** graph (cask_graph_t's rule). cask_dot_save to a picture starts a process.
*/
#ifndef CASK_VIZ_H
#define CASK_VIZ_H

#include <stdio.h>

#include "error.h"
#include "graph.h"
#include "sched.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What the fill colour of a task says. */
typedef enum cask_dot_color {
    CASK_DOT_RANK = 0,   /* its upward rank: dark red has the longest way to go */
    CASK_DOT_GROUP,      /* its group */
    CASK_DOT_CRITICAL,   /* red on one critical path (drawn bold), grey elsewhere */
    CASK_DOT_WORKER      /* the worker that ran it (needs a trace); white: not in the trace */
} cask_dot_color_t;

/* Whether tasks are drawn one by one or one node per group. */
typedef enum cask_dot_collapse {
    CASK_DOT_AUTO = 0,   /* per group when the graph has over `threshold` tasks */
    CASK_DOT_NONE,       /* every task */
    CASK_DOT_ALL         /* per group */
} cask_dot_collapse_t;

/* Options for the DOT writer; zero fields mean "default". */
typedef struct cask_dot_opts {
    cask_dot_color_t    color;
    cask_dot_collapse_t collapse;
    size_t              threshold; /* CASK_DOT_AUTO: 0 means 300 */
    const char         *rankdir;   /* Graphviz rankdir: "TB" (default), "LR", ... */
    const cask_trace_t *trace;     /* CASK_DOT_WORKER: who ran what (by key) */
} cask_dot_opts_t;

/*
** Write g as Graphviz DOT to f. A task node shows its key and kernel, its
** tooltip its cost and rank; a group node (collapsed) shows the group, its
** task count and work, and an edge between groups the number of edges it
** stands for; coloured by worker, a group node is striped in proportion to
** the workers that ran its tasks. The graph's label says what the colours
** mean and, by group or by worker, is a key: each group (heaviest first)
** or worker (by number) with its colour, then how many share the grey and
** how many tasks the trace does not have.
** Errors: CASK_EINVAL (CASK_DOT_WORKER without a trace), CASK_EIO, CASK_ENOMEM.
*/
CASK_API int cask_dot_write(const cask_graph_t *g, FILE *f, const cask_dot_opts_t *opts,
                            cask_error_t *err);

/*
** Write g to path: DOT when it ends in .dot (or .gv), otherwise a picture
** made by Graphviz's `dot` in the format the extension names (.svg, .png,
** .pdf, ...): the DOT goes to path + ".tmp.dot", then `dot` (found on the
** PATH, run with posix_spawnp) draws path from it, and this call waits for
** it to exit (reaping only its own child) and removes the temporary file.
** Errors: as cask_dot_write, and CASK_EIO when dot is missing or fails.
*/
CASK_API int cask_dot_save(const cask_graph_t *g, const char *path,
                           const cask_dot_opts_t *opts, cask_error_t *err);

/* Options for timelines; zero fields mean "default". */
typedef struct cask_timeline_opts {
    int         width;   /* pixels; 0: 1200 */
    const char *title;   /* NULL: "cask timeline" */
} cask_timeline_opts_t;

/*
** Write tr as an SVG timeline to f: one row per worker with its busy spans
** coloured by group (the key and duration as a tooltip; spans under half a
** pixel are merged), idle gaps in light grey, each worker's idle tail (from
** its last task to the end) hatched and marked releasable; the makespan,
** the utilisation and the releasable worker-time; under them, the number
** of tasks running over time; then a legend: every group with a colour of
** its own, busiest first, with its busy time, then how many groups share
** the grey and their busy time.
** Errors: CASK_EINVAL, CASK_EIO, CASK_ENOMEM.
*/
CASK_API int cask_timeline_write(const cask_trace_t *tr, FILE *f,
                               const cask_timeline_opts_t *opts, cask_error_t *err);

/* As cask_timeline_write, to the file at path. */
CASK_API int cask_timeline_save(const cask_trace_t *tr, const char *path,
                                const cask_timeline_opts_t *opts, cask_error_t *err);

/*
** Write tr as Chrome trace-event JSON ({"traceEvents": [...]}: one complete
** "X" event per task, thread = worker, category = group, microseconds),
** which Perfetto and chrome://tracing open. Errors: CASK_EIO, CASK_ENOMEM.
*/
CASK_API int cask_trace_write_chrome(const cask_trace_t *tr, FILE *f, cask_error_t *err);

/* As cask_trace_write_chrome, to the file at path. */
CASK_API int cask_trace_save_chrome(const cask_trace_t *tr, const char *path,
                                    cask_error_t *err);

#ifdef __cplusplus
}
#endif
#endif /* CASK_VIZ_H */

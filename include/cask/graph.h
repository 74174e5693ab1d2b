/*
** cask/graph.h: kernels, the task graph, and graph JSON.
**
** A graph is built lazily: adding a task runs nothing. Each task has a key,
** a kernel, inputs (other tasks' outputs or literal values), optional
** ordering-only dependencies ("after"), a cost estimate and a group.
** Inputs must already be in the graph when a task is added, so a graph
** built through this API is acyclic by construction and the order of
** addition is a topological order. Files may list tasks in any order: the
** loader sorts them and refuses cycles, naming the keys on one.
**
** Threads: one thread at a time builds a given graph. Computes may read a
** graph from several threads at once as long as nobody adds to it.
*/
#ifndef CASK_GRAPH_H
#define CASK_GRAPH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "error.h"
#include "value.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- kernels */

typedef struct cask_kctx cask_kctx_t; /* what a running kernel can ask for */

/*
** A kernel: reads its n_args arguments (borrowed: literals and the outputs
** of its input tasks, in the order given) and stores one new value in *out.
** Returns 0 on success. On failure returns cask_kernel_fail(ctx, ...), or a
** negative CASK_E* code (CASK_ENOMEM, ...), which is reported as it is; any
** other nonzero value is reported as CASK_EKERNEL. Whatever *out holds on
** failure is released.
** Kernels must be reentrant and must not call back into the graph.
*/
typedef int (*cask_kernel_fn)(const cask_value_t *args, size_t n_args,
                              cask_value_t *out, cask_kctx_t *ctx);

/*
** An optional cost model: the estimated seconds a call with these
** arguments takes (refs appear as CASK_REF values: their contents are not
** known yet). Must be fast and pure.
*/
typedef double (*cask_cost_fn)(const cask_value_t *args, size_t n_args);

/* Kernel flags. */
enum {
    CASK_KERNEL_IMPURE = 1u << 0, /* a fresh key at every call (clocks, unseeded RNG);
                                     never cached */
    CASK_KERNEL_CACHE  = 1u << 1  /* its results are worth keeping: with the
                                     CASK_CACHE_MARKED compute flag, only such
                                     kernels' results go to the cache directory */
};

/* Options for cask_kernel_register; zero fields mean "default". */
typedef struct cask_kernel_opts {
    unsigned     flags;  /* CASK_KERNEL_* */
    double       cost;   /* estimated seconds per call; 0: 1e-6 */
    cask_cost_fn cost_fn;/* if set, overrides cost per call */
    void        *udata;  /* handed to the kernel via cask_kernel_udata() */
    const char  *version;/* part of its results' cache keys (copied; at most
                            63 bytes; NULL: ""): change it when the code
                            changes what the kernel returns, or when its
                            result depends on udata, and results cached
                            under the old one are no longer used */
} cask_kernel_opts_t;

/*
** Register fn under name (at most 63 bytes, e.g. "mylib.square"). Names
** starting with "cask." are reserved for the built-ins. Registering the same
** name again with the same fn updates its options for the tasks that start
** from then on (a task already running, or a compute already costing its
** tasks, keeps the options it read); with another fn it is refused with
** CASK_EDUPKEY. Kernels stay registered until the process ends. Children
** forked by the processes scheduler inherit the registry, and MPI ranks
** that run the same program register the same names.
** Threads: safe, also while computes run. Cost: O(1) expected.
*/
CASK_API int cask_kernel_register(const char *name, cask_kernel_fn fn,
                                  const cask_kernel_opts_t *opts,
                                  cask_error_t *err);

/* True when a kernel of that name is registered. Threads: safe. */
CASK_API bool cask_kernel_exists(const char *name);

/*
** Inside a kernel: record a failure message (printf-style) for the error the
** compute will report, and return CASK_EKERNEL to return from the kernel.
*/
CASK_API int cask_kernel_fail(cask_kctx_t *ctx, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Inside a kernel: the udata given at registration. */
CASK_API void *cask_kernel_udata(const cask_kctx_t *ctx);

/* Inside a kernel: the worker running it (0 .. workers-1). */
CASK_API int cask_kernel_worker(const cask_kctx_t *ctx);

/*
** Inside a kernel: call another registered kernel by name on args, as a
** plain function call (no task is made). Returns what that kernel returns;
** CASK_ENOKERNEL (through ctx's message) if the name is unknown.
*/
CASK_API int cask_kernel_call(cask_kctx_t *ctx, const char *name,
                              const cask_value_t *args, size_t n_args,
                              cask_value_t *out);

/* ------------------------------------------------------------------ graph */

typedef struct cask_graph cask_graph_t; /* opaque */

/* How to add one task; zero fields mean "default". */
typedef struct cask_task_spec {
    const char *kernel;        /* registered kernel name; NULL: none (analysis only) */
    const cask_value_t *inputs;/* n_inputs literals and cask_ref()s: borrowed */
    size_t      n_inputs;      /* number of inputs */
    const cask_task_t *after;  /* ordering-only dependencies: borrowed */
    size_t      n_after;       /* number of them */
    const char *key;           /* explicit key; NULL: NAME-TOKEN-INDEX */
    const char *name;          /* NAME of a generated key; NULL: the kernel's
                                  name after its last '.' */
    uint64_t    token;         /* TOKEN of a generated key; 0: hash of the
                                  kernel, name and inputs */
    uint64_t    index;         /* INDEX of a generated key */
    double      cost;          /* estimated seconds; 0: the kernel's estimate */
    const char *group;         /* group; NULL: the key without its "-INDEX" */
    uint64_t    nbytes;        /* bytes of the output, at most (payload as
                                  cask_value_nbytes counts it); 0: not known.
                                  A memory budget (cask_compute_opts_t)
                                  holds back tasks by these sizes. */
} cask_task_spec_t;

/* Longest key, in bytes, without the NUL. */
#define CASK_KEY_MAX 127

/*
** A new, empty graph, or NULL when out of memory (err says so).
** Free it with cask_graph_decref().
*/
CASK_API cask_graph_t *cask_graph_new(cask_error_t *err);

/* Take one more reference to g (NULL is allowed). Threads: safe. */
CASK_API void cask_graph_incref(const cask_graph_t *g);

/* Drop a reference to g (NULL is allowed). g and everything it holds are
** freed when its last reference goes: arrays made in g, computes submitted
** on it and traces that show its keys hold references too, so g lives on
** until they are freed. Use no task of g once you hold no reference.
** Threads: safe. */
CASK_API void cask_graph_decref(cask_graph_t *g);

/*
** Add a task. On success stores it in *out and returns 0.
** Keys: a generated key (spec->key NULL) is NAME-TOKEN-INDEX with TOKEN 16
** hex digits of a deterministic 64-bit hash of (kernel, name, inputs,
** after), so building the same expression twice gives the same key, and
** adding a task whose generated key is already in g returns the existing
** task (the shared part is computed once). An impure kernel gets a fresh
** token at every call. An explicit key already in g is refused with
** CASK_EDUPKEY.
** Errors: CASK_ENOKERNEL for an unregistered kernel; CASK_EINVAL for a ref
** or after that is CASK_NO_TASK (from an earlier failed call) or a task of
** another graph, and for a bad key or cost; CASK_EMISSING for a ref or
** after to a task index not in g; CASK_ENOMEM. On failure *out is CASK_NO_TASK and g is unchanged.
** Ownership: inputs are borrowed; g takes its own references.
** Cost: O(n_inputs + n_after) amortised.
*/
CASK_API int cask_graph_add(cask_graph_t *g, const cask_task_spec_t *spec,
                            cask_task_t *out, cask_error_t *err);

/* Number of tasks in g. */
CASK_API size_t cask_graph_size(const cask_graph_t *g);

/* Number of edges (input refs plus after dependencies) in g. */
CASK_API size_t cask_graph_edges(const cask_graph_t *g);

/* The i-th task added to g (i < cask_graph_size(g); the order of addition
** is a topological order), or CASK_NO_TASK. */
CASK_API cask_task_t cask_graph_task(const cask_graph_t *g, size_t i);

/* t's position in g (what cask_graph_task takes): 0 .. size-1, or
** CASK_EINVAL / CASK_EMISSING for a t not in g. Cost: O(1). */
CASK_API int64_t cask_graph_index(const cask_graph_t *g, cask_task_t t);

/* The task with this key, or CASK_NO_TASK. Cost: O(1) expected. */
CASK_API cask_task_t cask_graph_find(const cask_graph_t *g, const char *key);

/* The key of t (borrowed until g is freed: adding tasks does not move it),
** or NULL if t is not in g. */
CASK_API const char *cask_graph_key(const cask_graph_t *g, cask_task_t t);

/* The kernel name of t (static), or NULL if it has none or t is not in g. */
CASK_API const char *cask_graph_kernel(const cask_graph_t *g, cask_task_t t);

/*
** Copy t's group into buf (at most size bytes with the NUL; buf may be NULL
** when size is 0) and return its length, or CASK_EINVAL / CASK_EMISSING
** for a t not in g (err filled).
*/
CASK_API int cask_graph_group(const cask_graph_t *g, cask_task_t t,
                              char *buf, size_t size, cask_error_t *err);

/* The cost estimate of t in seconds (the kernel's if none was given);
** NaN for a t not in g. */
CASK_API double cask_graph_cost(const cask_graph_t *g, cask_task_t t);

/* The output size t was given (cask_task_spec_t.nbytes); 0 when none was,
** or for a t not in g. */
CASK_API uint64_t cask_graph_nbytes(const cask_graph_t *g, cask_task_t t);

/*
** t's inputs (borrowed until g changes or is freed) in *inputs and their
** number in *n; refs are CASK_REF values holding tasks of g. Returns 0, or
** CASK_EINVAL / CASK_EMISSING for a t not in g (err filled).
*/
CASK_API int cask_graph_inputs(const cask_graph_t *g, cask_task_t t,
                               const cask_value_t **inputs, size_t *n, cask_error_t *err);

/* t's ordering-only dependencies, as cask_graph_inputs (CASK_REF values). */
CASK_API int cask_graph_after(const cask_graph_t *g, cask_task_t t,
                              const cask_value_t **after, size_t *n, cask_error_t *err);

/*
** Record the graph's default outputs (what `cask run` computes), replacing
** any earlier ones. Returns CASK_EINVAL (another graph's task, or
** CASK_NO_TASK) or CASK_EMISSING for a task not in g.
*/
CASK_API int cask_graph_set_outputs(cask_graph_t *g, const cask_task_t *outs,
                                    size_t n, cask_error_t *err);

/* The default outputs (borrowed) and their number. */
CASK_API const cask_task_t *cask_graph_outputs(const cask_graph_t *g,
                                               size_t *n);

/* Approximate bytes of memory held by g, the plan of its last compute
** included (cask_compute). */
CASK_API size_t cask_graph_memory(const cask_graph_t *g);

/* ------------------------------------------------------------- graph JSON */

/* Flags for the loaders. */
enum {
    CASK_LOAD_ANALYSIS = 1u << 0  /* keep graphs whose kernels are not
                                     registered here (they cannot be computed) */
};

/*
** Read a graph in the cask-graph JSON format (docs/FORMAT.md):
**   {"format": "cask-graph", "version": 1,
**    "tasks": [{"key": K, "kernel": NAME, "inputs": [{"ref": K2} | literal, ...],
**               "after": [K3, ...], "cost": SECONDS, "nbytes": BYTES,
**               "group": G}, ...],
**    "outputs": [K, ...]}
** Tasks may come in any order. On success stores a new graph in *out (free
** it with cask_graph_decref) with its outputs recorded; on failure *out is
** NULL and err says what is wrong and where: CASK_EPARSE (malformed JSON,
** with line and column, or a wrong type, with the path of the field),
** CASK_ENOKERNEL, CASK_EMISSING, CASK_EDUPKEY, CASK_ECYCLE (with the keys on
** one cycle), CASK_EIO, CASK_ENOMEM.
** Cost: O(tasks + edges) expected.
*/
CASK_API int cask_graph_load_json(const char *path, unsigned flags,
                                  cask_graph_t **out, cask_error_t *err);

/* As cask_graph_load_json, from the text buf[0..len). */
CASK_API int cask_graph_parse_json(const char *buf, size_t len,
                                   unsigned flags, cask_graph_t **out,
                                   cask_error_t *err);

/*
** Read a graph file of any format cask knows, detected by its content:
** - cask-graph JSON (as cask_graph_load_json, with flags);
** - WfCommons workflow JSON, schemas 0.1 to 1.6: one task per workflow task
**   (key: its id in schemas 1.5 and later, its name before), cost its
**   runtime in seconds, group its category or program (else its name
**   without a trailing "_ID..." part), dependencies its parents
**   (duplicates dropped);
** - STG task-graph files (Kasahara's Standard Task Graph Set): the two
**   zero-time dummy tasks dropped, key the task's number, cost its time,
**   group "stg";
** - a .zip archive holding exactly one file of the above (libzip).
** Workflow and STG graphs have no kernels: they are for analysis,
** simulation and pictures, and their outputs are the tasks nothing
** depends on.
** Errors: CASK_EIO, CASK_EPARSE (naming the file and line or JSON path),
** CASK_EMISSING (a parent that is not a task), CASK_EDUPKEY, CASK_ECYCLE
** (with the keys on one cycle), CASK_ELIMIT, CASK_ENOMEM; *out is NULL.
*/
CASK_API int cask_graph_load(const char *path, unsigned flags, cask_graph_t **out,
                             cask_error_t *err);

/*
** Write g, with its recorded outputs, as cask-graph JSON to f. Opaque
** literals cannot be written (CASK_ETYPE). Returns CASK_EIO if writing fails.
*/
CASK_API int cask_graph_write_json(const cask_graph_t *g, FILE *f,
                                  cask_error_t *err);

/* As cask_graph_write_json, to the file at path (created or truncated). */
CASK_API int cask_graph_save_json(const cask_graph_t *g, const char *path,
                                  cask_error_t *err);

/* --------------------------------------------------------------- analysis */

/* The degree of parallelism of a graph. Costs are cask_graph_cost(). */
typedef struct cask_analysis {
    size_t       tasks;               /* tasks in the graph */
    size_t       edges;               /* dependencies (input refs and afters) */
    double       work;                /* T1: the sum of the costs */
    double       span;                /* T-infinity: the costliest path's cost */
    double       average_parallelism; /* work / span (0 when the span is 0) */
    cask_task_t *critical_path;       /* a costliest path, first task first */
    size_t       critical_len;        /* its tasks */
    size_t       width;               /* the most tasks that can run at once: the
                                         largest antichain (exact; 0 with
                                         CASK_ANALYZE_NO_WIDTH) */
    cask_task_t *antichain;           /* width tasks no path joins */
    size_t       levels;              /* level: 0 for a task with no input, else
                                         1 + the highest level of its inputs */
    size_t      *level_widths;        /* tasks on each level, levels entries */
    size_t       profile_len;         /* the profile of the schedule where each task
                                         starts as soon as its inputs are done (as
                                         on unbounded workers): from */
    double      *profile_time;        /* profile_time[i] seconds on, */
    size_t      *profile_running;     /* profile_running[i] tasks run (zero-cost
                                         tasks are not counted) */
} cask_analysis_t;

/* Flags for cask_graph_analyze. */
enum {
    CASK_ANALYZE_NO_WIDTH = 1u << 0  /* skip the exact width (a max-flow) */
};

/*
** Analyse the whole of g into *a (free with cask_analysis_destroy). The width
** is exact, by Dilworth's theorem: a minimum flow that covers every task,
** found as a greedy chain cover less a maximum flow (igraph) in the
** residual network; the antichain comes from that flow's minimum cut.
** Errors: CASK_EINVAL, CASK_ENOMEM; on failure *a is empty.
** Cost: O(tasks + edges) plus a sort of the profile and the max-flow.
*/
CASK_API int cask_graph_analyze(const cask_graph_t *g, unsigned flags, cask_analysis_t *a,
                                cask_error_t *err);

/* Free what *a holds and zero it. NULL is allowed. */
CASK_API void cask_analysis_destroy(cask_analysis_t *a);

#ifdef __cplusplus
}
#endif
#endif /* CASK_GRAPH_H */

/*
** cask/sched.h: computing a graph, the schedulers, and traces.
**
** cask_compute() culls the graph to what the requested outputs need, gives
** every task its upward rank (HEFT: rank(t) = cost(t) + max rank of its
** successors) and a place in one priority order, and hands the result, a
** "run", to a scheduler. Every built-in scheduler takes ready tasks in that
** order (cask_readyq_t). It serves time first: tasks are sorted by their
** slack (how late a task can start without lengthening the costliest path)
** in classes 1/64 of the makespan's lower bound max(span, work / workers)
** wide, so a long chain beside short work starts first. Within a class it
** serves memory: the order one worker would run the graph in to hold few
** outputs at once (inputs before the task that needs them, depth first from
** the sinks, and a consumer that frees an output before any new producer).
** A reduction or an elementwise pass over the blocks of an array, where
** every task lies on a costliest path, thus finishes one block's work
** before it reads the next. Schedulers differ only in where tasks run.
**
** A scheduler is a small table of functions registered by name. Built in:
** "threads" (the default: a pool of threads, started once: see "pools"),
** "sync" (the calling thread), "processes" (forked worker processes) and,
** when built with MPI, "mpi" (docs/SCHEDULERS.md). A user scheduler drives
** a run with the cask_run_* functions below; examples/05_fifo_scheduler.c
** shows one.
*/
#ifndef CASK_SCHED_H
#define CASK_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "error.h"
#include "graph.h"
#include "value.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ----------------------------------------------------------------- traces */

typedef struct cask_trace cask_trace_t; /* opaque; owns its strings */

/* One task's run, as recorded. Times are ns from the compute's start. */
typedef struct cask_trace_event {
    const char *key;      /* the task's key (owned by the trace) */
    const char *group;    /* its group (owned by the trace) */
    int         worker;   /* 0 .. workers-1 */
    uint64_t    start_ns; /* kernel start */
    uint64_t    end_ns;   /* kernel end */
    uint64_t    bytes;    /* bytes of the task's output */
} cask_trace_event_t;

/* Number of events in tr (one per task run). */
CASK_API size_t cask_trace_size(const cask_trace_t *tr);

/* Number of workers of the run that made tr. */
CASK_API int cask_trace_workers(const cask_trace_t *tr);

/* Event i (borrowed until tr is freed), in order of start time; NULL if out of range. */
CASK_API const cask_trace_event_t *cask_trace_event(const cask_trace_t *tr,
                                                    size_t i);

/* Wall time of the run in ns (from start to the last event's end). */
CASK_API uint64_t cask_trace_span_ns(const cask_trace_t *tr);

/*
** Write tr as JSON:
** {"workers": N, "tasks": [{"key", "group", "worker", "start_ns", "end_ns", "bytes"}, ...]}
** Returns CASK_EIO if writing fails.
*/
CASK_API int cask_trace_write_json(const cask_trace_t *tr, FILE *f,
                                  cask_error_t *err);

/* As cask_trace_write_json, to the file at path (created or truncated). */
CASK_API int cask_trace_save_json(const cask_trace_t *tr, const char *path,
                                  cask_error_t *err);

/*
** Read a trace written by cask_trace_write_json (or by hand in that form).
** Events are sorted by start time; bytes may be omitted.
** Errors: CASK_EIO, CASK_EPARSE (the file, line and column, or the task
** index and what it lacks), CASK_ENOMEM; *out is NULL.
*/
CASK_API int cask_trace_load_json(const char *path, cask_trace_t **out, cask_error_t *err);

/*
** Per worker w of tr (arrays of cask_trace_workers(tr) entries, either may
** be NULL): idle[w], the seconds it ran nothing between 0 and the trace's
** end; tail[w], the seconds from its last task's end to the trace's end
** (all of the run for a worker that ran nothing): the time it could have
** been released. Returns 0, or CASK_EINVAL for a NULL trace (err filled).
*/
CASK_API int cask_trace_idle(const cask_trace_t *tr, double *idle, double *tail,
                             cask_error_t *err);

/* Free tr. NULL is allowed. */
CASK_API void cask_trace_free(cask_trace_t *tr);

/* ---------------------------------------------------------------- compute */

/*
** Local callbacks, as Dask's: start before the first task, pretask and
** posttask around each task, finish after the last (status 0 or the
** error code). pretask and posttask run on the thread that runs the task:
** with a parallel scheduler they must be thread-safe. Any may be NULL.
*/
typedef struct cask_callbacks {
    void (*start)(void *udata, size_t n_tasks);
    void (*pretask)(void *udata, const char *key, int worker);
    void (*posttask)(void *udata, const char *key, int worker,
                     double seconds, int status);
    void (*finish)(void *udata, int status);
    void *udata;   /* passed to each */
} cask_callbacks_t;

/* ------------------------------------------------------------------ pools */

/*
** A pool: workers started once and shared by every compute and submit
** made on it, whatever graph each comes from: threads, or processes
** (below). Several computes in
** flight share its workers by priority: a free worker takes the ready
** task, among all of them, whose upward rank (the estimated seconds from
** its start to its graph's end) plus the seconds its compute has been in
** the pool is the highest. So the critical path goes first across
** computes, and a compute that waits gains a second of priority for each
** second it waits, so none starves. Within one compute the order is the
** usual one (below). A thread that calls cask_compute on a pool runs the
** compute's first tasks itself when a worker's slot is free (a compute of
** one small task then wakes no thread). A compute started from a task or
** a callback running on a pool's thread is served by that thread to its
** end (with the task's slot on the same pool; as one more worker, number
** cask_pool_workers(), on another), so nested computes never deadlock.
**
** A compute that names no pool, on "threads", runs on the process's
** default pool of its worker count ($CASK_NUM_WORKERS, else the online
** cores; or opts->workers), made on first use and stopped at exit, as
** Dask's threaded scheduler keeps one thread pool per worker count. So
** fifteen submits asking for 2 workers run on the same 2 threads.
**
** A pool of "processes" forks its workers when it is made and lends them
** to each compute on it: a compute takes the free workers it has ready
** tasks for and gives back those it has nothing for, and while another
** compute waits, every worker it holds idle but one; a worker given back
** goes to the waiting compute of best score (as above). A compute that
** has sent every task it has left lends a worker running one of them alone
** (expected to take under 10 ms) to the waiting compute of best score
** among those that can run there without forking it again, whose tasks
** then run there right after it. Submits wait in the pool's queue, best score first, for one of
** its threads (two per worker, started on the first submit), which runs
** them. The workers see
** the process as it was when they were forked, as multiprocessing's forked
** workers do: a compute's arguments reach them through shared memory, but
** a global changed since does not. They are forked again before a compute
** that needs it: after a kernel was registered or re-registered, and for a
** compute whose graph holds a borrowed array buffer
** (cask_array_from_buffer without CASK_ARRAY_COPY), read in the caller's
** memory. A worker that dies is replaced. Persist and the result cache
** are kept on pools of "threads" only. A compute on "processes" that names
** no pool forks its own workers, which see the process as it is then,
** and ends them with it.
** "sync" runs on the calling thread and "mpi" on its ranks: options naming
** a pool with them are refused.
** Threads: every call is safe from any thread, except cask_pool_free
** (see there).
*/
typedef struct cask_pool cask_pool_t; /* opaque */

/* Options for cask_pool_create; zero fields mean "default". */
typedef struct cask_pool_opts {
    const char *scheduler;  /* "threads" or "processes" (NULL: "threads", whatever
                               $CASK_SCHEDULER says) */
    int         workers;    /* 1 .. 4096; 0: $CASK_NUM_WORKERS, else the online cores */
    size_t      cache_bytes;/* a result cache of this many bytes (below); 0: none */
} cask_pool_opts_t;

/*
** A pool's result cache (cask_pool_opts_t.cache_bytes), as Dask's
** opportunistic cache: every compute on the pool keeps the results of the
** tasks it runs, in memory, under their cache keys (the kernel's name and
** version and its inputs' contents, as the cache directory's: see
** cask_compute), and a later compute on the pool that needs a task with
** that key takes the result instead of running it, and runs nothing
** behind it (info->memcached counts them). A compute whose results are all
** there runs no kernel. Only what a cache key can be made for is kept:
** never results of CASK_KERNEL_IMPURE kernels, opaque values, or anything
** computed from either. The cache holds at most cache_bytes (each result's
** payload, as cask_value_nbytes counts it, plus about 80 bytes); over it,
** the results of lowest score go first, a result's score being the seconds
** its kernel took over its bytes, raised by as much again at each hit (as
** cachey scores). A result bigger than the budget is not kept. The cache
** goes with the pool.
*/
typedef struct cask_pool_cache_stats {
    size_t budget;    /* cache_bytes */
    size_t bytes;     /* held now, at most budget */
    size_t entries;   /* results held now */
    size_t hits;      /* lookups that found a result */
    size_t misses;    /* lookups that did not */
    size_t evictions; /* results let go of to keep within the budget */
} cask_pool_cache_stats_t;

/* What pool's result cache holds and has done, in *st. Errors: CASK_EINVAL
** (NULL arguments, or a pool made without a cache). Threads: safe. */
CASK_API int cask_pool_cache_stats(const cask_pool_t *pool, cask_pool_cache_stats_t *st,
                                   cask_error_t *err);

/*
** Start a pool's workers (opts may be NULL: the defaults) into *out; a
** pool of "processes" has at most 256 (more are cut to 256, as for a
** compute). Errors: CASK_EINVAL (a scheduler other than "threads" and
** "processes", a bad worker count, cache_bytes on "processes"),
** CASK_ENOSCHED (an unknown one), CASK_ENOMEM (threads that cannot start),
** CASK_EWORKER (processes that cannot be forked, no shared memory); *out
** is NULL.
*/
CASK_API int cask_pool_create(const cask_pool_opts_t *opts, cask_pool_t **out,
                              cask_error_t *err);

/* Number of workers of pool (0 for NULL). */
CASK_API int cask_pool_workers(const cask_pool_t *pool);

/*
** Wait for every compute and submit in flight on pool to end, then stop
** its workers and free it. NULL is allowed. Calling it from a task or a
** callback that runs on one of pool's threads would wait forever: it
** aborts with a message instead.
** A child process made by fork() after the pool was made has none of its
** threads, nor its processes as children: there it does nothing.
*/
CASK_API void cask_pool_free(cask_pool_t *pool);

/* Compute flags. */
enum {
    CASK_TRACE       = 1u << 0, /* record a trace and return it in info->trace */
    CASK_PROGRESS    = 1u << 1, /* draw a progress bar on stderr, from the start */
    CASK_NO_PROGRESS = 1u << 2  /* never draw one. With neither flag, the bar is
                                   drawn when stderr is a terminal and the compute
                                   runs over half a second; CASK_PROGRESS=1 or 0 in
                                   the environment forces it on or off. */,
    CASK_ALL_RANKS   = 1u << 3, /* "mpi": return the results on every rank, not
                                   only on rank 0 (also CASK_MPI_RESULTS=all in
                                   the environment) */
    CASK_CACHE_MARKED = 1u << 4 /* with a cache directory: write there only the
                                   results of kernels registered with
                                   CASK_KERNEL_CACHE (any cached result found
                                   there is still read) */
};

/* Options for cask_compute; zero fields mean "default". */
typedef struct cask_compute_opts {
    const char *scheduler;  /* registered name; NULL: $CASK_SCHEDULER, else "threads" */
    int         workers;    /* 1 .. 4096; 0: $CASK_NUM_WORKERS, else the online cores */
    unsigned    flags;      /* CASK_TRACE, CASK_PROGRESS, CASK_NO_PROGRESS */
    const cask_callbacks_t *callbacks; /* borrowed for the compute; NULL: none */
    int         retries;    /* "processes": reruns of a task whose worker process
                               died; 0: the default (1); CASK_NO_RETRY: none */
    size_t      memory_limit; /* a budget: the most bytes live task outputs may
                               take at once; 0: $CASK_MEMORY_LIMIT (bytes, or
                               such as 64MB, 1.5GiB), else none. See below. */
    const char *cache_dir;  /* a directory of results kept across computes and
                               processes (made if need be, not its parents);
                               NULL: $CASK_CACHE_DIR, else none. See "The cache
                               directory" below. */
    double      cache_min_s;/* with a cache directory: write only results whose
                               kernel ran at least this many seconds; 0: all */
    cask_pool_t *pool;      /* the pool to run on (borrowed: it must outlive the
                               compute); NULL: as scheduler and workers say, on
                               "threads" the default pool of that many workers.
                               With a pool, scheduler and workers are the pool's:
                               others named are refused (CASK_EINVAL). */
} cask_compute_opts_t;

#define CASK_NO_RETRY (-1)

/* What a compute reports besides its results. */
typedef struct cask_compute_info {
    size_t tasks;            /* tasks run, after culling */
    int    workers;          /* workers used */
    double wall_s;           /* wall time of the compute, seconds */
    size_t peak_bytes;       /* most bytes held at once by live task outputs
                                (a block two outputs share counts twice) */
    size_t memory_limit;     /* the memory budget the compute kept; 0: none */
    char   scheduler[32];    /* the scheduler's name */
    cask_trace_t *trace;     /* new (cask_trace_free) if CASK_TRACE, else NULL */
    size_t cached;           /* of the tasks, how many read their output from
                                the cache directory instead of running */
    size_t persisted;        /* of the tasks, how many took their output from a
                                value persisted on the pool (cask_persist) */
    size_t memcached;        /* of the tasks, how many took their output from
                                the pool's result cache (cache_bytes) */
} cask_compute_info_t;

/*
** Compute the outputs outs[0..n) of g on the scheduler opts names (opts may
** be NULL: the defaults) and store a new reference to each in
** results[0..n) (release each with cask_value_decref). Each needed task runs
** once, in priority order; an intermediate output is freed as soon as its
** last consumer has run. At the first failing task no new task starts, the
** tasks running finish, everything is freed, every results[i] is CASK_NONE,
** and err names the key, the kernel and the kernel's message.
** info may be NULL; if not, it is filled on success and on failure (trace
** NULL on failure).
** Errors: CASK_EMISSING for an output not in g, CASK_EINVAL for a task with
** no kernel or bad options, CASK_ENOSCHED, CASK_EKERNEL, CASK_ENOMEM, and
** what the scheduler reports.
** Threads: several computes may run at once, on different graphs or on the
** same graph (read-only). Cost: O(tasks + edges) plus the kernels.
** The graph keeps the culled, ranked and ordered plan of its last compute
** (about 50 bytes a task of the plan and 8 an edge, and 4 bytes a task of
** the graph up to the last output; freed with the graph, counted by
** cask_graph_memory): a compute
** of the same outputs, in the same order, with no kernel registered since,
** starts from it instead of culling and ranking again, and with as many
** workers, ordering again too (a graph only grows and its tasks never
** change, so nothing else can make the plan stale).
**
** A memory budget (opts->memory_limit, else $CASK_MEMORY_LIMIT) bounds the
** bytes of live task outputs by the sizes tasks were given
** (cask_task_spec_t.nbytes; every array block task has its own). A task
** starts only when its size, and the largest size among its consumers,
** fit beside the outputs held and the sizes of the tasks running: the
** first ready task in priority order if it fits, else the first that fits
** and, as the last reader of its inputs, frees at least what it makes; a
** producer that does not free waits while tasks run (they free memory),
** and starts only when nothing runs. Before any
** task runs, the compute fails with CASK_ENOMEM naming a task whose output
** and inputs together exceed the budget, or when the outputs asked for
** (held to the end; not with cask_compute_each) together do. While it
** runs, it fails with CASK_ENOMEM, never going over, when nothing runs and
** no ready task fits (the outputs held for tasks still to run leave no
** room: the budget is too small for this graph in this order), and when a
** sized task makes more than its size. So peak_bytes stays within the
** budget when every task is sized; an unsized task is never held back and
** its output counts once made. Kept by "sync", "threads" (which then takes
** one task at a time from its queue), "processes" (which admits every task
** it sends) and "mpi", per rank (what a rank holds, the inputs it is sent
** included; info->peak_bytes on rank 0 is the most any rank held, by the
** given sizes); user schedulers refuse a budget (CASK_EINVAL).
*/
CASK_API int cask_compute(const cask_graph_t *g, const cask_task_t *outs, size_t n,
                          const cask_compute_opts_t *opts, cask_value_t *results,
                          cask_compute_info_t *info, cask_error_t *err);

/*
** The cache directory (opts->cache_dir, else $CASK_CACHE_DIR) keeps task
** results across computes and processes, so a compute that failed, crashed
** or was killed resumes where it stopped: each task that succeeds writes
** its output there under a cache key, and a later compute that needs the
** output of a task with that key reads it instead of running the task,
** and runs nothing the task depends on (unless something else needs it).
** A cache key is a 128-bit hash of what the result is a function of: the
** kernel's name and version (cask_kernel_opts_t.version; for a built-in
** "cask." kernel, the library's version; for cask.map, the mapped kernel's
** too), its arguments
** (literals by contents, task inputs by their own keys; ordering-only
** dependencies do not count) and, for an array task that reads a file,
** the file's device, inode, size and modification time. Task keys, graphs
** and costs do not count, so the same call in another graph or another
** program finds it. Never cached: results of CASK_KERNEL_IMPURE kernels,
** opaque values (a pure kernel's result computed from one is), and
** anything computed from an opaque literal (an array over a borrowed
** buffer) or from an impure kernel's result, whose keys cannot be known.
** A kernel run for what it does (writing a file) rather than for its
** result must be registered impure, or it is skipped when its result is
** in the cache. What is written: every other result, unless
** the compute has CASK_CACHE_MARKED (only kernels registered with
** CASK_KERNEL_CACHE) or cache_min_s (only kernels that ran that long).
** A file holds its key, the value and checksums of both; it is written
** under a temporary name and renamed into place, so a crash never leaves
** a file that is read as a result. A file that does not check out (cut
** short, damaged, another key) is not used: the task runs again and
** writes it anew. Files are checked in full before the compute starts
** and again when read; one that changes in between fails the compute
** (CASK_EIO). A result that cannot be written (disk full) is not cached;
** the compute goes on. Nothing is ever deleted: remove the directory to
** empty the cache. Kept by every scheduler but "mpi", which refuses a
** cache directory (CASK_EINVAL). info->cached counts the tasks read from
** it.
*/

/* Read a byte count as CASK_MEMORY_LIMIT takes it: digits with an optional
** fraction, then no unit (bytes), kB MB GB TB (powers of 1000; the B and
** the case optional) or KiB MiB GiB TiB (powers of 1024), under 2^63.
** Returns 0 with *bytes set, or CASK_EINVAL. */
CASK_API int cask_bytes_parse(const char *s, size_t *bytes, cask_error_t *err);

/* Compute task t of g with the defaults ($CASK_SCHEDULER, else threads,
** on $CASK_NUM_WORKERS, else one worker per core; no trace) into *result:
** cask_compute(g, &t, 1, NULL, result, NULL, err). */
CASK_API int cask_compute_one(const cask_graph_t *g, cask_task_t t, cask_value_t *result,
                              cask_error_t *err);

/* What cask_compute_each() hands each output to: i is its index in outs,
** v the value (borrowed for the call: cask_value_incref or copy to keep
** it; on "processes" and "mpi", where an output lives in a shared arena
** that goes with the compute, v is a copy made for the call). Return 0 to
** go on, or a negative CASK_E* code to stop the compute, which then fails
** with that code. */
typedef int (*cask_output_fn)(void *udata, size_t i, const cask_value_t *v);

/*
** cask_compute() with no results array: output i goes to fn(udata, i, &v)
** as soon as its task has run, and the compute lets go of it right after
** (unless a task still to run reads it), so outputs bigger than memory
** together can be written out or reduced as they come. fn is called once
** per output, in no set order, possibly from several worker threads at
** once ("threads"), else on the compute's thread. With "mpi", fn is called
** on rank 0: for an output made there as its task ends, for one made on
** another rank as soon as it has reached rank 0 (it is sent there when its
** task ends), and each is let go of everywhere once no task needs it. With
** CASK_ALL_RANKS rank 0 keeps them, and every other rank gets them all when
** the run ends. On a failure, the outputs handed over before it stay
** handed over. info and errors as cask_compute(), and
** CASK_EINVAL for a NULL fn.
*/
CASK_API int cask_compute_each(const cask_graph_t *g, const cask_task_t *outs, size_t n,
                               const cask_compute_opts_t *opts, cask_output_fn fn,
                               void *udata, cask_compute_info_t *info, cask_error_t *err);

/*
** Persist, as Dask's: compute outs[0..n) of g on a pool (opts->pool, else
** the default pool of opts' worker count; opts may be NULL) and keep their
** values there, in memory, under their task keys, held by a new handle in
** *out. Every later compute on that pool, of this graph or another one,
** that needs a task with one of those keys takes the kept value instead of
** running it, and runs nothing behind it (unless something else needs it;
** info->persisted counts them). The values go when no handle holds them
** (cask_persisted_free) or when the pool ends. Two handles may hold the
** same key: the value first kept stays until both are freed.
** Keys are the graph's task keys: a compute of another graph uses a kept
** value only if its task has the same key, as the delayed calls and
** arrays of cask get for the same call on the same inputs. A compute on
** "processes" or "mpi" uses none.
** Errors: those of cask_compute (*out NULL, nothing kept), and CASK_EINVAL
** for a scheduler other than "threads" or a pool of "processes" (values
** are kept on pools of "threads" only).
*/
typedef struct cask_persisted cask_persisted_t; /* opaque */
CASK_API int cask_persist(const cask_graph_t *g, const cask_task_t *outs, size_t n,
                          const cask_compute_opts_t *opts, cask_persisted_t **out,
                          cask_error_t *err);

/* Number of outputs h keeps (0 for NULL). */
CASK_API size_t cask_persisted_size(const cask_persisted_t *h);

/* A new reference to the value of h's output i in *out. Errors:
** CASK_EINVAL (no output i), CASK_EMISSING (the pool has ended, and with
** it the values). Threads: safe. */
CASK_API int cask_persisted_get(const cask_persisted_t *h, size_t i, cask_value_t *out,
                                cask_error_t *err);

/* Let go of h's values (a value goes when no handle holds it). NULL is
** allowed. May be called after the pool has ended. */
CASK_API void cask_persisted_free(cask_persisted_t *h);

/* ------------------------------------------------------------- simulation */

/* The order a simulation takes ready tasks in. */
typedef enum cask_sim_policy {
    CASK_SIM_PRIORITY = 0, /* every scheduler's (slack classes, then memory's
                              order), from the simulated durations */
    CASK_SIM_FIFO,         /* the first readied first */
    CASK_SIM_LIFO,         /* the last readied first */
    CASK_SIM_RANDOM        /* uniformly at random (seeded) */
} cask_sim_policy_t;

/* Options for cask_simulate. */
typedef struct cask_sim_opts {
    int                workers;   /* identical virtual workers, >= 1 */
    cask_sim_policy_t  policy;
    uint64_t           seed;      /* CASK_SIM_RANDOM */
    const cask_trace_t *durations;/* a recorded trace whose durations (by key)
                                     replace the cost estimates, ranks too;
                                     NULL: the estimates (cask_graph_cost) */
    size_t             memory_limit; /* a budget as cask_compute's, from the
                                     given output sizes (CASK_SIM_PRIORITY
                                     only); 0: none */
} cask_sim_opts_t;

/* What a simulation found. Times in seconds. */
typedef struct cask_sim_result {
    int     workers;
    double  makespan;     /* the end of the last task */
    double  work;         /* the sum of the durations */
    double  span;         /* the costliest path */
    double  lower_bound;  /* max(work / workers, span) */
    double  speedup;      /* work / makespan */
    double  efficiency;   /* speedup / workers */
    double *idle;         /* per worker: seconds idle before the makespan */
    double *tail;         /* per worker: seconds from its last task to the end */
    double  releasable;   /* the sum of the tails */
    size_t  peak_bytes;   /* most bytes live outputs held at once, by their
                             given sizes (cask_task_spec_t.nbytes) */
    cask_trace_t *trace;  /* the schedule, as a run's trace (bytes 0) */
} cask_sim_result_t;

/*
** Play a non-preemptive list schedule of outs[0..n) and their ancestors
** (n = 0: g's recorded outputs, else every task) on opts->workers identical
** workers with zero communication cost: whenever a worker is free and a
** task is ready, the free worker with the lowest number takes the first
** ready task in the policy's order. Runs no kernel (tasks without kernels
** are fine). Fills *res (free with cask_sim_result_destroy).
** Errors: CASK_EINVAL (bad options), CASK_EMISSING (an output not in g, or
** a task missing from opts->durations), CASK_ENOMEM.
** Cost: O((tasks + edges) log) time, O(tasks + edges) memory.
*/
CASK_API int cask_simulate(const cask_graph_t *g, const cask_task_t *outs, size_t n,
                           const cask_sim_opts_t *opts, cask_sim_result_t *res,
                           cask_error_t *err);

/* Free what *res holds and zero it. NULL is allowed. */
CASK_API void cask_sim_result_destroy(cask_sim_result_t *res);

/*
** This process's rank in MPI_COMM_WORLD when it runs under MPI (after the
** first compute on the "mpi" scheduler, or once the program has called
** MPI_Init), else 0. With the "mpi" scheduler, results are returned on rank
** 0 only (every other rank gets CASK_NONE results and 0) unless
** CASK_ALL_RANKS is set: print from rank 0.
*/
CASK_API int cask_mpi_rank(void);

/* --------------------------------------------------- writing a scheduler */

typedef struct cask_run cask_run_t; /* one compute in flight */
typedef uint32_t cask_tid_t;        /* a task of a run: 0 .. cask_run_size()-1,
                                       in topological order */

/*
** A scheduler: run() must drive r until every task has finished or
** cask_run_stopped(r) says to stop, then wait for the tasks it started
** and return 0 (the engine reports the run's own error, if any) or a
** negative code of its own (with err filled) for a failure of the
** scheduler itself.
*/
typedef struct cask_scheduler {
    const char *name;   /* registry name, at most 31 bytes */
    int (*run)(cask_run_t *r, void *udata, cask_error_t *err);
    void *udata;        /* passed to run */
    int max_workers;    /* most workers it can use; 0: no limit ("sync": 1) */
} cask_scheduler_t;

/*
** Register a scheduler by name; *s is copied. A name already registered is
** refused with CASK_EDUPKEY. Threads: safe.
*/
CASK_API int cask_scheduler_register(const cask_scheduler_t *s,
                                     cask_error_t *err);

/* True when a scheduler of that name is registered. */
CASK_API bool cask_scheduler_exists(const char *name);

/* 0 when a compute can run on the scheduler of that name; else
** CASK_ENOSCHED with err saying why: no such name, or a built-in one left
** out of this build (mpi without MPI). */
CASK_API int cask_scheduler_check(const char *name, cask_error_t *err);

/* Number of tasks in r. */
CASK_API size_t cask_run_size(const cask_run_t *r);

/* Number of workers the compute asked for (at least 1). */
CASK_API int cask_run_workers(const cask_run_t *r);

/* The tasks with no predecessor (borrowed) and their number in *n. */
CASK_API const cask_tid_t *cask_run_sources(const cask_run_t *r, size_t *n);

/* The successors of t (borrowed) and their number in *n. */
CASK_API const cask_tid_t *cask_run_successors(const cask_run_t *r,
                                               cask_tid_t t, size_t *n);

/* t's place in the priority order every built-in scheduler takes ready
** tasks in: higher first, each task a different value from 1 to
** cask_run_size(r). */
CASK_API double cask_run_priority(const cask_run_t *r, cask_tid_t t);

/* t's upward rank: the seconds from t's start to the end of the graph
** along its longest path of cost estimates. */
CASK_API double cask_run_rank(const cask_run_t *r, cask_tid_t t);

/* t's key (borrowed for the run). */
CASK_API const char *cask_run_key(const cask_run_t *r, cask_tid_t t);

/*
** Run task t on the calling thread as worker `worker`: call its kernel on
** its inputs, record the trace and callbacks, and keep its output. Returns
** 0, or the task's error code after recording it as the run's error (the
** first error wins; the run is then stopped). Call only once each task's
** predecessors have completed. worker is 0 .. cask_run_workers(r)-1 and
** names one thread of yours: the trace keeps per-worker state, so two
** threads must not run tasks as the same worker at once.
** Threads: safe for distinct tasks on distinct workers.
*/
CASK_API int cask_run_exec(cask_run_t *r, cask_tid_t t, int worker);

/*
** After a successful cask_run_exec(r, t, ...): release t's inputs (an
** intermediate is freed after its last consumer) and call
** on_ready(ctx, s) for each successor s that has become ready.
** Threads: safe; on_ready runs on the calling thread.
*/
CASK_API void cask_run_complete(cask_run_t *r, cask_tid_t t,
                                void (*on_ready)(void *ctx, cask_tid_t s),
                                void *ctx);

/* True once the run has an error (or was cancelled): start no new task. */
CASK_API bool cask_run_stopped(const cask_run_t *r);

/*
** The ready queue every built-in scheduler uses: the priority order above.
** Lives in the caller's storage; not thread-safe (lock it yourself).
*/
typedef struct cask_readyq {
    const cask_run_t *run;  /* private */
    uint64_t *bits;         /* private */
    uint32_t  off[6];       /* private */
    int       levels;       /* private */
    size_t    size;         /* private */
} cask_readyq_t;

/* Set up q for r. Returns 0 (never allocates until the first push). */
CASK_API int cask_readyq_init(cask_readyq_t *q, const cask_run_t *r);

/* Add ready task t (not in q already). Returns 0 or CASK_ENOMEM (the
** first push allocates a bit per task of the run). Cost: O(log64 tasks). */
CASK_API int cask_readyq_push(cask_readyq_t *q, cask_tid_t t);

/* Take the first task in priority order into *t; false when q is empty. */
CASK_API bool cask_readyq_pop(cask_readyq_t *q, cask_tid_t *t);

/* The first task in priority order, without taking it; false when q is
** empty. Cost: O(log64 tasks). */
CASK_API bool cask_readyq_peek(cask_readyq_t *q, cask_tid_t *t);

/* Number of tasks in q. */
CASK_API size_t cask_readyq_size(const cask_readyq_t *q);

/* Free q's storage. */
CASK_API void cask_readyq_destroy(cask_readyq_t *q);

/* Monotonic clock in ns (CLOCK_MONOTONIC). */
CASK_API uint64_t cask_now_ns(void);

#ifdef __cplusplus
}
#endif
#endif /* CASK_SCHED_H */

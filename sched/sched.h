/*
** sched/sched.h: sched/'s private interface: the run that back-ends drive.
*/
#ifndef CASK__SCHED_H
#define CASK__SCHED_H

#include <pthread.h>
#include <stdatomic.h>

#include "../graph/graph.h"
#include "trace.h"

/* A worker's block of trace slots, on a cache line of its own: workers
** reserve T_BLOCK entries of t_order at a time, not one atomic per task. */
#define CASK__T_BLOCK 64
struct cask__slots {
    _Alignas(64) size_t next, end;
};

/* Decrements of one successor's pending count that a worker holds back
** (threads: a fan-in of thousands costs one atomic per batch, not per task). */
typedef struct cask__combo {
    uint32_t s, k;   /* successor, and decrements held; k == 0: none */
} cask__combo_t;

struct cask_run {
    cask__plan_t p;                /* culled graph, successors, ranks */
    const cask_graph_t *g;         /* the graph (borrowed) */
    int workers;                   /* workers asked for */
    unsigned flags;                /* CASK_TRACE, ... */
    const cask_callbacks_t *cb;    /* callbacks, or NULL */
    cask_value_t *val;             /* output of each task */
    _Atomic uint32_t *pending;     /* predecessor edges not yet completed */
    _Atomic uint32_t *uses;        /* consumers of each output still to run */
    int32_t  *t_worker;            /* trace: worker of each task, -1 not run */
    uint64_t *t_start, *t_end;     /* trace: kernel start and end, ns */
    uint64_t *t_bytes;             /* trace: bytes of each output */
    uint32_t *t_order;             /* trace: tasks in the order they ended, with
                                      UINT32_MAX in slots reserved but not used */
    size_t    t_cap;               /* entries of t_order */
    atomic_size_t t_started;       /* trace: entries of t_order reserved */
    struct cask__slots *t_slots;   /* trace: each worker's reserved block, */
    void     *t_slots_mem;         /* in this allocation (aligned within it) */
    uint64_t  t0;                  /* compute start, ns */
    uint64_t  tick0;               /* compute start, ticks */
    atomic_bool stopped;           /* an error (or a cancel): start nothing new */
    atomic_int  err_taken;         /* 1 once the first error is recorded */
    cask_error_t err;              /* the first error */
    atomic_size_t bytes;           /* bytes held by outputs now */
    atomic_size_t peak;            /* and at most */
    atomic_size_t done;            /* tasks completed */
    int retries;                   /* processes: reruns after a worker dies */
    const struct cask__hooks *hooks; /* or NULL */
    struct cask__xfer *xfers;      /* trace: values moved between workers ("mpi"), */
    size_t    n_xfers;             /* drawn as spans of group "transfer" on rows */
    int       xfer_rows;           /* workers .. workers + xfer_rows - 1 */
    uint32_t *out_first;           /* with hooks: first output index of each task, */
    uint32_t *out_next;            /* and the next output index of the same task */
    uint8_t  *delivered;           /* with hooks: 1 once output i was handed over */
    bool      keep_outputs;        /* with hooks: hold outputs once handed over ("mpi"
                                      with CASK_ALL_RANKS: the gather sends them on) */
    bool      outputs_here;        /* "mpi": this rank gets the outputs (rank 0, or
                                      every rank with CASK_ALL_RANKS) */
    size_t    budget;              /* bytes live outputs may take; 0: no budget */
    atomic_size_t reserved;        /* with a budget: the sizes of tasks admitted
                                      and not yet ended */
    uint64_t *need;                /* with a budget: each task's size and its largest
                                      consumer's, at most the budget */
    cask_pool_t *pool;             /* "threads": the pool it runs on */
    struct cask__prun *pool_run;   /* and its place there while in flight (under
                                      the pool's lock; sched/threads.c) */
    struct cask__cache *cache;     /* the cache directory's keys, or NULL */
    size_t    cached;              /* tasks that read their output from it */
    size_t    persisted;           /* tasks whose output was persisted on the pool */
    size_t    memcached;           /* tasks whose output was in the pool's result cache */
};

/* What a run with a cache directory knows (sched/cache.c). */
typedef struct cask__cache {
    char     *dir;                 /* the directory, or NULL (a result cache only) */
    uint64_t (*key)[2];            /* each task's cache key */
    uint8_t  *write;               /* 1: write the task's output when it has run */
    double    min_s;               /* only when its kernel ran this long */
    struct cask__mcache *mcache;   /* the pool's result cache, or NULL */
    uint8_t  *mem;                 /* 1: keep the task's output there when it has run */
} cask__cache_t;

/* A pool's result cache (sched/memcache.c). */
typedef struct cask__mcache cask__mcache_t;
cask__mcache_t *cask__mcache_new(size_t budget);
void cask__mcache_free(cask__mcache_t *m);
/* A new reference to the result kept under key in *out, or false. */
bool cask__mcache_get(cask__mcache_t *m, const uint64_t key[2], cask_value_t *out);
/* Keep v under key, its kernel having run for seconds; evicts to fit. */
void cask__mcache_put(cask__mcache_t *m, const uint64_t key[2], const cask_value_t *v,
                      double seconds);
void cask__mcache_stats(cask__mcache_t *m, cask_pool_cache_stats_t *st);
/* The result cache of pool P, or NULL. */
cask__mcache_t *cask__pool_mcache(const cask_pool_t *P);

/* Values persisted on a pool (sched/persist.c), by task key. */
typedef struct cask__store cask__store_t;
/* A new reference to the value persisted under key in *out, or false. */
bool cask__store_get(cask__store_t *s, const char *key, cask_value_t *out);
/* True when s holds any value (a compute then looks its tasks up). */
bool cask__store_any(const cask__store_t *s);
cask__store_t *cask__store_new(void);
/* The pool ends: release every value; s goes once no handle holds it. */
void cask__store_close(cask__store_t *s);
/* The store of pool P. */
cask__store_t *cask__pool_store(const cask_pool_t *P);

/* Cut r's plan at what is kept: from the outputs down, a task persisted in
** store (may be NULL) under its key, or, by its cache key (computed when
** there is mc or dir), a task whose result is in the pool's result cache
** mc (may be NULL), or whose file checks out in the cache directory dir
** (made if need be; may be NULL), is not run, nor anything behind it. When
** there is such a task, r->p becomes the plan of a copy of its graph cut
** there (a persisted value a task of cask.const, a file one of
** cask.cache.read), returned in *g2 (the caller computes it in place of
** the graph and drops it at the end), else *g2 is NULL. Sets r->cache (with
** dir), r->cached and r->persisted. 0, or CASK_EIO (the directory) or
** CASK_ENOMEM; on failure r->p may have been destroyed. */
int cask__cache_plan(cask_run_t *r, const char *dir, unsigned flags, double min_s,
                     cask__store_t *store, cask__mcache_t *mc, cask_graph_t **g2,
                     cask_error_t *err);
/* Keep task t's output v, whose kernel ran for seconds: in the cache
** directory and the pool's result cache, as each is to keep it. */
void cask__cache_put(const cask__cache_t *c, cask_tid_t t, const cask_value_t *v,
                     double seconds);
void cask__cache_destroy(cask__cache_t *c);
/* Register "cask.cache.read"; the library's start calls it once. */
void cask__cache_register(void);

/* A value moved to another worker: task t's output, received on trace row
** `row` from start to end (monotonic ns), bytes long. */
typedef struct cask__xfer {
    uint32_t t;
    int32_t  row;
    uint64_t start, end, bytes;
} cask__xfer_t;

/* What cask_submit() and cask_compute_each() need from a compute. */
typedef struct cask__hooks {
    void *ctx;
    /* r is about to run (r NULL: it has ended and is about to go). */
    void (*running)(void *ctx, cask_run_t *r);
    /* Requested output i is ready (v borrowed for the call): as soon as
    ** its task ends where the value is at hand, else (an output made on
    ** another MPI rank) when it reaches rank 0, or, on the other ranks
    ** with CASK_ALL_RANKS, when the run has ended. Returns 0, or a
    ** negative CASK_E* code that fails the compute. */
    int (*deliver)(void *ctx, size_t i, const cask_value_t *v);
    /* The run lets go of an output once delivered (no results array). */
    bool release;
} cask__hooks_t;

/* t's given output size (cask_task_spec_t.nbytes): the budget's measure. */
static inline uint64_t cask__run_nbytes(const cask_run_t *r, cask_tid_t t)
{
    return cask__view_nbytes(&r->p.gv, r->p.task[t]);
}

/* Hand over task t's outputs (hooks with deliver): called when t's value is
** at hand; with hooks->release and let_go, let go of each after. Returns 0
** or the code that failed the run. */
int cask__run_deliver(cask_run_t *r, cask_tid_t t, bool let_go);

/* The progress bar of one compute (sched/progress.c). */
typedef struct cask__progress {
    int on, forced, over, drawn;
    cask_run_t *r;
    uint64_t t0;
    pthread_t th;
    pthread_mutex_t lock;
    pthread_cond_t wake;
} cask__progress_t;
void cask__progress_start(cask__progress_t *p, cask_run_t *r, unsigned flags);
void cask__progress_stop(cask__progress_t *p);

/* What cask__compute_async tells its caller once the compute has ended:
** its status, error and info (borrowed for the call; info->trace is the
** callee's to keep or free). */
typedef void (*cask__async_done)(void *ctx, int rc, const cask_error_t *err,
                                 cask_compute_info_t *info);
/* cask__compute without waiting, on the pool opts names (opts->pool must
** be set): the compute is planned on the calling thread and started on the
** pool; done(ctx, ...) is called once when it has ended, by a worker of the
** pool, or here, before this returns, when it cannot start (with the
** error, and info NULL when not even that could be made). results (n
** entries, or NULL with hooks that release) must live until then. */
void cask__compute_async(const cask_graph_t *g, const cask_task_t *outs, size_t n,
                         const cask_compute_opts_t *opts, cask_value_t *results,
                         const cask__hooks_t *hooks, cask__async_done done, void *ctx);

/* Whether v's block lives in a compute's shared arena ("processes",
** "mpi"): it goes when that compute ends, whatever its count. */
static inline bool cask__in_arena(const cask_value_t *v)
{
    return cask__has_blob(v) && v->type != CASK_OPAQUE && v->u.blob->in_arena;
}

/* cask_compute_each, with each output handed over as it lies: an output
** in a shared arena is valid for the call only (what the array collection
** copies out at once), where cask_compute_each hands over a copy of it. */
int cask__compute_each_borrowed(const cask_graph_t *g, const cask_task_t *outs, size_t n,
                                const cask_compute_opts_t *opts, cask_output_fn fn,
                                void *udata, cask_compute_info_t *info, cask_error_t *err);

/* What a call that computes outs[0..n) of g checks first: g and outs are
** given and outs are g's; *opts NULL becomes the defaults. Clears *err
** (not NULL). 0, CASK_EINVAL or CASK_EMISSING. */
int cask__check_request(const cask_graph_t *g, const cask_task_t *outs, size_t n,
                        const cask_compute_opts_t **opts, cask_error_t *err);

/* cask_compute with hooks (NULL: none). */
int cask__compute(const cask_graph_t *g, const cask_task_t *outs, size_t n,
                  const cask_compute_opts_t *opts, cask_value_t *results,
                  cask_compute_info_t *info, cask_error_t *err, const cask__hooks_t *hooks);

struct cask__backend;
/* The back-end and worker count opts asks for (or the environment). */
int cask__resolve(const cask_compute_opts_t *opts, struct cask__backend *b, int *workers,
                  cask_error_t *err);

/* The memory budget (cask_compute_opts_t.memory_limit): a task may start
** only when its output size (cask_task_spec_t.nbytes; unsized: 0) fits
** beside the bytes held by live outputs and the sizes of the tasks running.
** Back-ends that keep one take ready tasks with cask__readyq_pop_admitted
** (or cask__run_admit each task before it starts) and never start a task
** that was not admitted; cask__run_post gives the reservation back. */
bool cask__run_admit(cask_run_t *r, cask_tid_t t);
/* Give back t's reservation: t was admitted and will not run (skipped,
** or requeued after its worker died). cask__run_post does it for a task
** that ran. */
void cask__run_unadmit(cask_run_t *r, cask_tid_t t);
/* Take out of q and admit the task to start next (with no budget, the
** first in priority order): the first if it fits the budget; else the
** first that fits and, as the last reader of its inputs, frees at least
** what it makes (consumers before producers); else, unless tasks are
** running (which will free memory: wait for them), the first that fits.
** False when none is to start now. */
bool cask__readyq_pop_admitted(cask_readyq_t *q, cask_run_t *r, bool running, cask_tid_t *t);
/* Before anything runs (r->g and r->budget set): CASK_ENOMEM naming a task
** that alone needs more than the budget (its output and its inputs, by
** their given sizes), or, when the outputs asked for are held to the end
** (not released), their sizes together when over it; else 0. */
int cask__run_budget_check(cask_run_t *r, bool released, cask_error_t *err);
/* The budget's rule, for whatever decides where a task fits: take out of
** q the first ready task in priority order if it fits; else the first that
** fits and, as the last reader of its inputs, frees at least what it makes;
** else, unless tasks are running, the first that fits. fit(ctx, t) is -1
** when t fits nowhere, else where it fits (0, or mpi's rank), which goes
** to *where. False when none is to start now. cask__readyq_pop_admitted
** is this rule with the run's own budget, and admits the task. */
bool cask__readyq_pick(cask_readyq_t *q, const cask_run_t *r, bool running,
                       int (*fit)(void *ctx, cask_tid_t t), void *ctx, cask_tid_t *t,
                       int *where);
/* Fail r with CASK_ENOMEM: nothing runs and no ready task of q fits the
** budget beside the outputs held for the tasks still to run. */
void cask__run_stalled(cask_run_t *r, cask_readyq_t *q);


/* cask_run_exec, and *end the tick t's kernel ended at when the run is
** timed, else 0. */
int  cask__run_exec_at(cask_run_t *r, cask_tid_t t, int worker, uint64_t *end);
/* cask_run_exec in three steps, for back-ends that run kernels elsewhere.
** invoke calls t's kernel on its inputs (start and end in ticks when the
** run is timed; msg gets a failure's text); pre and post do the rest. */
void cask__run_pre(cask_run_t *r, cask_tid_t t, int worker);
int  cask__run_invoke(cask_run_t *r, cask_tid_t t, int worker, cask_value_t *out,
                      uint64_t *start, uint64_t *end, char *msg, size_t msgcap);
int  cask__run_post(cask_run_t *r, cask_tid_t t, int worker, int rc, cask_value_t out,
                    uint64_t start, uint64_t end, const char *msg);
/* What cask__run_invoke does once t's arguments are gathered: call kernel
** k on args as worker, check what it returned (a list item becomes a value
** of its own), and keep the result in cache (may be NULL) as task t's.
** start and end are set when timed. */
int  cask__invoke(const cask__kernel_t *k, const cask_value_t *args, size_t n, int worker,
                  bool timed, const cask__cache_t *cache, cask_tid_t t, cask_value_t *out,
                  uint64_t *start, uint64_t *end, char *msg, size_t msgcap);
/* Whether r's kernels are to be timed (a trace, a posttask callback, or a
** cache that weighs results by their time). */
bool cask__run_timed(const cask_run_t *r);

/* cask_run_complete without counting t in r->done: the caller adds its
** completions to r->done itself, in batches. With combo (may be NULL),
** decrements of a successor with many predecessors are held back in it
** (flush before waiting for work, or the successor may never be ready). */
void cask__run_complete(cask_run_t *r, cask_tid_t t,
                        void (*on_ready)(void *ctx, cask_tid_t s), void *ctx,
                        cask__combo_t *combo);
/* Apply the decrements combo holds back (on_ready if that readies it). */
void cask__run_flush(cask_run_t *r, cask__combo_t *combo,
                     void (*on_ready)(void *ctx, cask_tid_t s), void *ctx);

/* CASK_ETYPE naming the first task with an opaque input, which cannot
** cross `where` ("a process boundary"); 0 when there is none. Portable
** opaque values (borrowed array buffers) are not refused. */
int cask__run_refuse_opaque(const cask_run_t *r, const char *where, cask_error_t *err);

/* Record err as the run's error if it is the first; stop the run. */
void cask__run_fail(cask_run_t *r, const cask_error_t *err);

/* The trace of a finished run, or NULL when out of memory. */
cask_trace_t *cask__trace_build(const cask_run_t *r);
/* The trace of plan p's tasks run by worker[v] from start[v] to end[v] (ns). */
cask_trace_t *cask__trace_from(const cask__plan_t *p, int workers, const int32_t *worker,
                               const uint64_t *start, const uint64_t *end);

/* A back-end as the registry keeps it: the scheduler, and what the
** built-in ones need beyond it. */
typedef struct cask__backend {
    cask_scheduler_t s;
    /* The worker count it must use whatever the options say (mpi: one per
    ** rank, MPI started if need be), or a negative code; NULL: any. */
    int (*workers)(cask_error_t *err);
    /* Why it cannot run in this build (mpi without MPI), or NULL. */
    const char *missing;
    /* It keeps a memory budget (cask__run_admit); else a compute with one
    ** is refused. */
    bool budget;
} cask__backend_t;

/* Pools (sched/threads.c). Run r on r->pool and wait for it to end. The
** calling thread serves r too: its first tasks with a free slot of the
** pool; and to the end when it is a pool's thread (r is computed from a
** task or a callback): with its slot when it serves a run of r->pool with
** one, else as worker number cask_pool_workers(r->pool)
** (cask__pool_helper), which r->workers then counts. */
int cask__pool_run(cask_run_t *r, cask_error_t *err);
/* Start r on r->pool without waiting: once it has ended, a worker of the
** pool calls ended(ctx, rc, serr) (rc 0, or the pool's own failure in
** serr), outside every lock of the pool; r->... is the caller's again from
** then on. Returns 0 (ended may have been called already, for an empty
** run), or a failure to start, with ended never called. */
typedef void (*cask__pool_ended)(void *ctx, int rc, const cask_error_t *serr);
int cask__pool_start(cask_run_t *r, cask__pool_ended ended, void *ctx, cask_error_t *err);
/* The process's default pool of that many workers, made on first use. */
int cask__pool_default(int workers, cask_pool_t **out, cask_error_t *err);
/* 0 when a compute with opts may run on P, else CASK_EINVAL. */
int cask__pool_check(const cask_pool_t *P, const cask_compute_opts_t *opts, cask_error_t *err);
/* True when a compute the calling thread waits for on P is served by it
** as one more worker (number cask_pool_workers(P)): it serves a run of
** another pool, or is a pool's thread outside any run, or serves P as
** such a worker already. */
bool cask__pool_helper(const cask_pool_t *P);
/* A submit on P counts from the call until its compute has ended, so
** that cask_pool_free waits for it and the pool outlives it. */
void cask__pool_hold(cask_pool_t *P);
void cask__pool_drop(cask_pool_t *P);
/* r, on a pool, was stopped: end it there if nobody serves it. */
void cask__pool_poke(cask_run_t *r);
/* The worker processes of a pool of "processes", or NULL for one of
** "threads". */
struct cask__ppool *cask__pool_procs(const cask_pool_t *P);

/* A set of worker processes (sched/processes.c): a pool of "processes"
** keeps one for its life, its nw workers forked now; a compute on the
** pool (the processes back-end with r->pool set) borrows them. */
typedef struct cask__ppool cask__ppool_t;
int  cask__ppool_make(int nw, cask__ppool_t **out, cask_error_t *err);
/* Wait for the computes on pp to end, then stop its workers and free it. */
void cask__ppool_free(cask__ppool_t *pp);
/* Whether the calling thread is one of pp's driver threads. */
bool cask__ppool_on_driver(const cask__ppool_t *pp);
/* Workers of pool P's processes lent so far by a compute running its last
** task on one to a compute waiting for one (0 for a pool of threads); for
** the tests. */
uint64_t cask__pool_lends(const cask_pool_t *P);
/* cask__pool_start on a pool of processes: r waits in pp's queue (best
** first, by the score with which computes wait for workers) for one of
** its nw driver threads, which runs it and calls ended. */
int  cask__ppool_start(cask__ppool_t *pp, cask_run_t *r, cask__pool_ended ended, void *ctx,
                       cask_error_t *err);

/* The built-in back-ends (sched/sync.c, threads.c, processes.c, mpi.c). */
extern const cask__backend_t cask__backend_sync, cask__backend_threads,
    cask__backend_processes, cask__backend_mpi;

/* Register the built-in back-ends; the library's start calls it once. */
void cask__register_schedulers(void);

#endif

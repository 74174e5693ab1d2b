/*
** graph/graph.h: graph/'s interface to the layers above it (sched/,
** collections/, viz/, cli/): values, kernels, task handles, what they may
** read of a graph (a view of its arrays, and accessors), plans, and graph
** JSON. The graph's own struct is in graph/internal.h, which only graph/
** includes. Not public API: nothing here is exported from libcask.so.
*/
#ifndef CASK__GRAPH_H
#define CASK__GRAPH_H

#include <math.h>
#include <stdatomic.h>

#include "util.h"

/* ----------------------------------------------------------------- values */

/* The hash of a value's contents (refs: task_hash of the task, a graph's
** cask__graph_key_hashes). */
uint64_t cask__value_hash(const cask_value_t *v, const uint64_t *task_hash);
/* Mix the contents of v (not a ref or an opaque value) into the 128-bit
** hash h: what a cache key is made of. */
void cask__value_hash2(const cask_value_t *v, uint64_t h[2]);

/* The block behind strings, bytes, n-d buffers and opaque values. The
** payload follows the header unless data points elsewhere. */
struct cask_blob {
    atomic_uint  refs;                /* references held */
    cask_dtype_t dtype;               /* n-d buffers: element type */
    int          ndim;                /* n-d buffers: axes */
    int64_t      shape[CASK_MAX_NDIM];/* n-d buffers: extents */
    size_t       size;                /* payload bytes (strings: without NUL) */
    void        *data;                /* the payload, or the opaque pointer */
    void       (*dtor)(void *);       /* opaque values: destructor */
    bool         in_arena;            /* made in a shared arena: freed by
                                         cask__arena_free, else by cask__free */
    bool         portable;            /* opaque values: the pointer is good in
                                         every process of a compute (see
                                         cask__value_portable) */
    max_align_t  payload[];              /* inline payload */
};

/* Where this thread's new blocks come from: NULL for the heap. A worker
** process of the processes scheduler, and the compute thread of an mpi
** rank, point it at a shared arena (sched/shm.c), which sets in_arena. */
extern _Thread_local struct cask_blob *(*cask__blob_alloc)(size_t bytes);
/* Frees a block made in a shared arena (set by sched/shm.c). A process-wide
** pointer, not a field of the block: processes that share an arena may
** have their code at different addresses. */
extern void (*cask__arena_free)(struct cask_blob *b);

/* A new block (from cask__blob_alloc's source) holding a copy of v's
** string, bytes, n-d buffer or list (v may be a view), in *out. 0,
** CASK_ETYPE (no such payload) or CASK_ENOMEM. */
int cask__value_copy(const cask_value_t *v, cask_value_t *out);

/* An opaque value (as cask_value_opaque) whose pointer every process of a
** compute may read: forked workers read the pointee as it was at the fork,
** and each MPI rank builds its own (a borrowed array buffer). The processes
** and mpi schedulers accept it; no graph file can spell it. 0 or
** CASK_ENOMEM (then dtor is not called). */
int cask__value_portable(void *ptr, void (*dtor)(void *), cask_value_t *out);

/* A new string, bytes, n-d buffer or list value of size payload bytes, not
** yet filled (n-d buffers: set the block's dtype, ndim and shape; lists:
** write a list's payload), in *out. 0, CASK_ETYPE or CASK_ENOMEM. */
int cask__value_blank(cask_type_t type, size_t size, cask_value_t *out);

/* Append to b, as one item, the list of items' items, as if items were
** finished and the list appended, without the list's block; items is
** then empty (its memory kept for reuse). 0 or CASK_ENOMEM (b and items
** unchanged then). */
int cask__list_builder_append_built(cask_list_builder_t *b, cask_list_builder_t *items);

static inline int cask__has_blob(const cask_value_t *v)
{
    return v->type >= CASK_STRING && v->type <= CASK_OPAQUE;
}

/* The aux bit of a list item read out of its list (graph/value.c): its
** blob pointer points at the item's record in the list, and it owns no
** reference. Views never enter a graph or a run: cask__graph_add and the
** run copy them first. */
#define CASK__VIEW 1u

/* spec->group set to this address: the task's group is the NAME of its
** generated key (a delayed call's function name), found by cask_graph_add
** with the kernel it looks up anyway; with an explicit key, the derived
** group. */
extern const char cask__group_is_name[];

/* Whether v is such a view. */
static inline bool cask__is_view(const cask_value_t *v)
{
    return cask__has_blob(v) && (v->aux & CASK__VIEW) != 0;
}

/* Payload bytes of v (0 for inline and opaque values); v not NULL and not
** a view. */
static inline size_t cask__nbytes(const cask_value_t *v)
{
    return cask__has_blob(v) && v->type != CASK_OPAQUE ? v->u.blob->size : 0;
}

/* ---------------------------------------------------------------- kernels */

typedef struct cask__kernel {
    struct cask__kernel *prev;   /* the record this one replaced, or NULL */
    char               name[64]; /* registry name */
    cask_kernel_fn     fn;       /* the function */
    cask_kernel_opts_t opts;     /* flags, cost, udata */
    uint32_t           short_at; /* offset of the name after its last '.' */
    uint64_t           name_hash;/* cask__hash of the name */
    uint64_t           short_hash;/* cask__hash of the name after its last '.' */
    char               version[64];/* opts.version points here */
    /* What besides its arguments a result depends on (the files an array
    ** task reads), for its cache key: mix it into h and return 0, or return
    ** -1 when the result cannot be cached. NULL: its arguments only. */
    int (*stamp)(const cask_value_t *args, size_t n, uint64_t h[2]);
} cask__kernel_t;

#define CASK__NO_KERNEL UINT32_MAX
#define CASK__MAX_KERNELS 4096 /* kernel ids are 0 .. CASK__MAX_KERNELS-1 */

/* Register without the "cask." check (the built-ins use it). */
int cask__kernel_register(const char *name, cask_kernel_fn fn,
                          const cask_kernel_opts_t *opts, cask_error_t *err);
/* Give built-in kernel `name` its stamp (cask__kernel_t.stamp); at the
** library's start only, before any compute. */
void cask__kernel_set_stamp(const char *name,
                            int (*stamp)(const cask_value_t *args, size_t n, uint64_t h[2]));
/* Register the built-in kernels (graph/builtins.c); the library's start
** (collections/init.c) calls it once. */
void cask__register_builtins(void);

/* The kernel with registry id `id` (valid for the process's life). */
const cask__kernel_t *cask__kernel_get(uint32_t id);
/* How many kernels have been registered or replaced so far: a process
** forked when it was g knows every record the registry held then. */
uint32_t cask__kernel_generation(void);
/* Registry id of name, or CASK__NO_KERNEL. */
uint32_t cask__kernel_lookup(const char *name);
/* The registered kernel called name, or NULL (name may be NULL). */
const cask__kernel_t *cask__kernel_named(const char *name);
/* Call kernel k on args from inside the kernel running with ctx, as
** cask_kernel_call does once it has found k (for callers that look a
** kernel up once and call it many times). */
int cask__kernel_call(cask_kctx_t *ctx, const cask__kernel_t *k, const cask_value_t *args,
                      size_t n, cask_value_t *out);
/* The stamp (cask__kernel_t.stamp) of a task that calls the kernel called
** name: that kernel's version mixed into h; -1 (never cached) when it is
** impure or unknown. */
int cask__kernel_stamp_named(const char *name, uint64_t h[2]);
/* Estimated seconds for one call of kernel id on args. */
double cask__kernel_cost(uint32_t id, const cask_value_t *args, size_t n);

/* What a kernel sees as its context. */
struct cask_kctx {
    const cask__kernel_t *k;  /* the kernel running */
    int    worker;            /* worker running it */
    char  *msg;               /* failure message buffer */
    size_t msgcap;            /* its size */
};

/* Run kernel k on args in a fresh context; on failure msg holds the text. */
int cask__kernel_invoke(const cask__kernel_t *k, const cask_value_t *args,
                        size_t n, cask_value_t *out, int worker, char *msg,
                        size_t msgcap);

/* ------------------------------------------------------- graphs and tasks */

/* The index a task handle holds (not checked: for handles of a known
** graph). A handle is the graph's id in its high half, the index in its
** low half. */
static inline uint32_t cask__tix(cask_task_t t)
{
    return (uint32_t)t;
}

/* The handle of task index i of g. */
cask_task_t cask__graph_handle(const cask_graph_t *g, uint32_t i);

/* Check handle t for g: 0, or CASK_EINVAL (CASK_NO_TASK, or a task of
** another graph) or CASK_EMISSING (an index not in g), with err filled; what
** says where t came from ("input 2", "output 0"); key and kernel name the
** task being added, if any. */
int cask__task_check(const cask_graph_t *g, cask_task_t t, const char *what, const char *key,
                     const char *kernel, cask_error_t *err);
/* cask__task_check of each of ts[0..n), named "WHAT I". */
int cask__tasks_check(const cask_graph_t *g, const cask_task_t *ts, size_t n, const char *what,
                      cask_error_t *err);

/* What the layers above read of a graph: its columns, as they are now
** (valid while nobody adds to g). Task t's inputs are in[in_off[t] ..
** in_off[t+1]): its kernel's arguments, then its ordering-only
** dependencies (refs). */
typedef struct cask__gview {
    uint32_t            n;        /* tasks */
    const uint32_t     *in_off;   /* n + 1 offsets into in */
    const cask_value_t *in;       /* all inputs (NULL when there is none) */
    const uint32_t     *kernel;   /* registry id of each, or CASK__NO_KERNEL */
    const uint32_t     *n_after;  /* dependencies after the arguments, or NULL: none */
    const double       *cost;     /* given costs (NaN: none), or NULL: none */
    const uint64_t     *nbytes;   /* given output sizes (0: none), or NULL: none */
} cask__gview_t;

void cask__graph_view(const cask_graph_t *g, cask__gview_t *v);

/* t's inputs, arguments first (NULL when the graph has none at all). */
static inline const cask_value_t *cask__view_inputs(const cask__gview_t *v, uint32_t t)
{
    return v->in ? v->in + v->in_off[t] : NULL;
}

/* Number of kernel arguments of t. */
static inline uint32_t cask__view_nargs(const cask__gview_t *v, uint32_t t)
{
    return v->in_off[t + 1] - v->in_off[t] - (v->n_after ? v->n_after[t] : 0);
}

/* t's given cost, or NaN. */
static inline double cask__view_cost(const cask__gview_t *v, uint32_t t)
{
    return v->cost ? v->cost[t] : (double)NAN;
}

/* t's given output size in bytes, or 0. */
static inline uint64_t cask__view_nbytes(const cask__gview_t *v, uint32_t t)
{
    return v->nbytes ? v->nbytes[t] : 0;
}

/* Add with an explicit cost that may be zero (readers, the cache's cut
** graph: cask__view_cost as it is); NaN: the kernel's estimate. */
int cask__graph_add(cask_graph_t *g, const cask_task_spec_t *spec,
                    double cost, cask_task_t *out, cask_error_t *err);

/* Task index t's key (stable while g lives). */
const char *cask__graph_key(const cask_graph_t *g, uint32_t t);

/* The hash of each task's key, by index (what refs hash to). */
const uint64_t *cask__graph_key_hashes(const cask_graph_t *g);

/* Task index t's explicit group (stable while g lives), or NULL: derived
** from its key. */
const char *cask__graph_group_name(const cask_graph_t *g, uint32_t t);

/* The length of a derived group (the key up to its last '-'). */
size_t cask__derived_group_len(const char *key);

/* The index of the task with this key, or UINT32_MAX. */
uint32_t cask__find(const cask_graph_t *g, const char *key);

/* Task index t's cost: given, or its kernel's estimate. */
double cask__cost(const cask_graph_t *g, uint32_t t);

/* Task index t's group, NUL-terminated, into buf[0..size) (size > 0). */
void cask__group_copy(const cask_graph_t *g, uint32_t t, char *buf, size_t size);

/* Task index t's kernel name, or NULL when it has none. */
const char *cask__kernel_name(const cask_graph_t *g, uint32_t t);

/* ------------------------------------------------------------------- plan */

/* What a compute runs: the graph culled to the outputs' ancestors,
** renumbered 0..n-1 in topological order, with predecessor and successor
** lists and upward ranks. */
typedef struct cask__plan {
    const cask_graph_t *g;  /* the graph (borrowed) */
    cask__gview_t gv;       /* its columns */
    uint32_t  n;            /* tasks in the plan */
    uint32_t *task;         /* plan id -> graph task */
    uint32_t *pidx;         /* graph task -> plan id, for the plan's tasks only
                               (any other entry is undefined: see in_plan) */
    uint32_t  span;         /* entries of pidx: graph tasks 0 .. span-1 */
    uint64_t *in_plan;      /* bit t: graph task t (< span) is in the plan */
    uint32_t *succ_off;     /* n + 1 offsets into succ */
    uint32_t *succ;         /* successors, one per edge */
    uint32_t *pred_off;     /* n + 1 offsets into pred */
    uint32_t *pred;         /* predecessors (inputs that are refs), one per edge,
                               in the order the task gives them */
    uint32_t *npred;        /* predecessor edges of each task */
    uint32_t *nuse;         /* argument edges reading each output, +1 per request */
    double   *rank;         /* upward rank, seconds */
    uint32_t *pos;          /* priority: ready tasks run lowest pos first
                               (cask__plan_order; NULL until it has run) */
    uint32_t *bypos;        /* the task at each pos */
    double    work;         /* the sum of the tasks' costs, seconds
                               (cask__plan_order) */
    uint32_t *sources;      /* tasks with no predecessor */
    uint32_t  n_sources;
    uint32_t *out;          /* plan ids of the requested outputs */
    size_t    n_out;
    int       ordered_for;  /* the workers pos was made for; 0: not ordered */
    uint32_t  kgen;         /* kernel registrations when its ranks were made */
} cask__plan_t;

/* Build the plan for outs[0..n) of g. Refuses tasks with no kernel when
** need_kernels. */
int  cask__plan_build(const cask_graph_t *g, const cask_task_t *outs,
                      size_t n, int need_kernels, cask__plan_t *p,
                      cask_error_t *err);
void cask__plan_destroy(cask__plan_t *p);

/* A graph keeps the plan of its last compute (a memo), so computing the
** same outputs of it again skips culling, ranking and ordering. The memo
** holds for the same outputs in the same order and no kernel registered
** since (a kernel's cost shapes the ranks); a graph only grows, and what
** a task reads never changes, so nothing else can make it stale.
** cask__plan_take moves the memo into p when it matches (true; p's view
** of the graph's columns refreshed) and frees one that cannot match again;
** a compute owns it alone until cask__plan_keep makes it the memo (the
** one before is freed) or frees it: a plan of another graph (a cut one)
** or not ordered is never kept. */
bool cask__plan_take(const cask_graph_t *g, const cask_task_t *outs, size_t n,
                     cask__plan_t *p);
void cask__plan_keep(const cask_graph_t *g, cask__plan_t *p);
void cask__plan_memo_free(cask_graph_t *g);

/* Give every task of p its priority (p->pos, p->bypos): slack classes for
** time, memory's order within each (graph/order.c says how). cost: each
** task's seconds, or NULL for what p's ranks imply. Returns 0 or
** CASK_ENOMEM. */
int  cask__plan_order(cask__plan_t *p, const double *cost, int workers);

/* ------------------------------------------------------------------ JSON */

struct json_t;
struct json_error_t;
/* A literal as JSON (new reference), or NULL for opaque values / ENOMEM. */
struct json_t *cask__value_to_json(const cask_value_t *v);
/* A JSON literal as a value; on error fills err naming `where`. */
int cask__value_from_json(struct json_t *j, const char *where,
                          cask_value_t *out, cask_error_t *err);
/* The error for a jansson load that failed (CASK_ENOMEM, CASK_EIO, else
** CASK_EPARSE with src, line and column). */
int cask__json_error(const struct json_error_t *je, const char *src, cask_error_t *err);

/* graph/readers.c: read a graph from buf[0..len) as one format, or as any
** (detected by content, zips included); src names the input in errors. */
enum { CASK__FMT_ANY, CASK__FMT_WFCOMMONS, CASK__FMT_STG };
int cask__graph_load_buf(const char *buf, size_t len, const char *src, unsigned flags, int fmt,
                         cask_graph_t **out, cask_error_t *err);

#endif /* CASK__GRAPH_H */

/*
** graph/graph.h: graph/'s interface for sched/, viz/, collections/ and cli/.
** Not public API: nothing here is exported from libcask.so.
*/
#ifndef CASK__GRAPH_H
#define CASK__GRAPH_H

#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stddef.h>

#include "cask/cask.h"
#include "strtab.h"

/* ------------------------------------------------------------ allocation */

/* All of cask's heap goes through these, so tests can inject failures. */
void *cask__malloc(size_t n);
void *cask__calloc(size_t n, size_t size);
void *cask__realloc(void *p, size_t n);
void  cask__free(void *p);
char *cask__strdup(const char *s);
/* Grow *p (of *cap elements of size sz) to hold at least need; 0 or CASK_ENOMEM. */
int   cask__grow(void **p, size_t *cap, size_t need, size_t sz);
/* Tests only: make the nth allocation from now fail (n >= 1); 0 turns it off.
** Returns the number of allocations made since the last call. */
long  cask__alloc_fail_at(long n);

/* ---------------------------------------------------------------- errors */

/* Fill err (if not NULL) and return code. key and kernel may be NULL. */
int cask__err(cask_error_t *err, int code, const char *key,
              const char *kernel, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;

/* -------------------------------------------------------------- hashing */

uint64_t cask__hash(const void *p, size_t n, uint64_t seed);
/* Fold v into h (cheap; finish with cask__avalanche before use as a hash). */
static inline uint64_t cask__mix(uint64_t h, uint64_t v)
{
    h = (h ^ v) * 0x9e3779b97f4a7c15ull;
    return h ^ (h >> 29);
}
/* Spread every input bit over the whole word. */
static inline uint64_t cask__avalanche(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 33);
}
/* The hash of a value's contents (refs: the hash of the task's key). */
uint64_t cask__value_hash(const cask_value_t *v, const uint64_t *task_hash);

/* ----------------------------------------------------------------- values */

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

static inline int cask__has_blob(const cask_value_t *v)
{
    return v->type >= CASK_STRING && v->type <= CASK_OPAQUE;
}

/* The aux bit of a list item read out of its list (graph/value.c): its
** blob pointer points at the item's record in the list, and it owns no
** reference. Views never enter a graph or a run: cask__graph_add and the
** run copy them first. */
#define CASK__VIEW 1u

/* Whether v is such a view. */
bool cask__is_view(const cask_value_t *v);

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
} cask__kernel_t;

#define CASK__NO_KERNEL UINT32_MAX
#define CASK__MAX_KERNELS 4096 /* kernel ids are 0 .. CASK__MAX_KERNELS-1 */

/* Register without the "cask." check (the built-ins use it). */
int cask__kernel_register(const char *name, cask_kernel_fn fn,
                          const cask_kernel_opts_t *opts, cask_error_t *err);
/* Register the built-in kernels (graph/builtins.c); once. */
void cask__register_builtins(void);
/* Register the kernels of collections/ (arrays): a call down the data
** flow, made once by cask__register_builtins, so a graph file that names
** them loads in any program. */
void cask__register_collections(void);

/* The kernel with registry id `id` (valid for the process's life). */
const cask__kernel_t *cask__kernel_get(uint32_t id);
/* Registry id of name, or CASK__NO_KERNEL. */
uint32_t cask__kernel_lookup(const char *name);
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

/* ------------------------------------------------------------------ graph */

/* The graph, in arrays. Task t's inputs are in[in_off[t] .. in_off[t+1]):
** its kernel's arguments, then n_after[t] ordering-only dependencies
** (CASK_REF values). Every ref points to a task added earlier, so index
** order is a topological order. The n_after, group and cost columns are
** made only when a task first needs them (NULL: all zero, derived, NaN):
** a delayed graph has none, and on these machines every byte of fresh
** memory costs build time. */
struct cask_graph {
    atomic_uint refs;        /* the owner's, and one per trace that borrows keys */
    uint32_t  id;            /* the high half of its task handles: unique per graph */
    uint32_t  n, cap;        /* tasks, and room for them */
    cask__strtab_t keys;     /* key of task t is string t; its hash keys.hash[t] */
    cask__strtab_t groups;   /* explicit group names */
    uint32_t *in_off;        /* cap + 1 offsets into in */
    uint32_t *kernel;        /* registry id, or CASK__NO_KERNEL */
    uint32_t *n_after;       /* ordering-only dependencies of t, or NULL */
    uint32_t *group;         /* 0: derived from the key; else groups id + 1; or NULL */
    double   *cost;          /* seconds; NaN: the kernel's estimate; or NULL */
    cask_value_t *in;        /* all inputs */
    size_t    n_in, cap_in;  /* inputs used, and room */
    size_t    n_edges;       /* refs among them */
    cask_task_t *outputs;    /* recorded default outputs */
    size_t    n_outputs;
    uint32_t  last_kid;      /* the kernel last looked up by name, or CASK__NO_KERNEL */
};

/* Task handles: the graph's id in the high half, the task's index in the
** low half. Refs stored in a graph's inputs are handles of that graph. */
static inline cask_task_t cask__handle(const cask_graph_t *g, uint32_t i)
{
    return (cask_task_t)g->id << 32 | i;
}

/* The index a handle holds (not checked: for handles the graph made). */
static inline uint32_t cask__tix(cask_task_t t)
{
    return (uint32_t)t;
}

/* Whether t is a task of g. */
static inline bool cask__task_in(const cask_graph_t *g, cask_task_t t)
{
    return g && (uint32_t)(t >> 32) == g->id && (uint32_t)t < g->n;
}

/* Check handle t for g: 0, or CASK_EINVAL (CASK_NO_TASK, or a task of
** another graph) or CASK_EMISSING (an index not in g), with err filled; what
** says where t came from ("input 2", "output 0"); key and kernel name the
** task being added, if any. */
int cask__task_check(const cask_graph_t *g, cask_task_t t, const char *what, const char *key,
                     const char *kernel, cask_error_t *err);
/* cask__task_check of each of ts[0..n), named "WHAT I". */
int cask__tasks_check(const cask_graph_t *g, const cask_task_t *ts, size_t n, const char *what,
                      cask_error_t *err);

static inline const char *cask__key(const cask_graph_t *g, uint32_t t)
{
    return cask__strtab_get(&g->keys, t);
}

/* t's inputs (NULL when the graph has none at all: NULL + 0 is undefined). */
static inline const cask_value_t *cask__inputs(const cask_graph_t *g, uint32_t t)
{
    return g->in ? g->in + g->in_off[t] : NULL;
}

/* Number of kernel arguments of t. */
static inline uint32_t cask__n_args(const cask_graph_t *g, uint32_t t)
{
    return g->in_off[t + 1] - g->in_off[t] - (g->n_after ? g->n_after[t] : 0);
}

/* t's group id: 0 derived, else groups id + 1. */
static inline uint32_t cask__group_id(const cask_graph_t *g, uint32_t t)
{
    return g->group ? g->group[t] : 0;
}

/* t's explicit cost, or NaN. */
static inline double cask__cost_given(const cask_graph_t *g, uint32_t t)
{
    return g->cost ? g->cost[t] : (double)NAN;
}


/* Add with an explicit cost that may be zero (readers); NaN: default. */
int cask__graph_add(cask_graph_t *g, const cask_task_spec_t *spec,
                    double cost, cask_task_t *out, cask_error_t *err);

/* The length of t's derived group (the key up to its last '-'). */
size_t cask__derived_group_len(const char *key);

/* The index of the task with this key, or UINT32_MAX. */
uint32_t cask__find(const cask_graph_t *g, const char *key);

/* Task index t's group (not NUL-terminated where derived: *len bytes). */
const char *cask__group_of(const cask_graph_t *g, uint32_t t, size_t *len);

/* Task index t's cost: given, or its kernel's estimate. */
double cask__cost(const cask_graph_t *g, uint32_t t);

/* Task index t's group, NUL-terminated, into buf[0..size) (size > 0). */
void cask__group_copy(const cask_graph_t *g, uint32_t t, char *buf, size_t size);

/* Task index t's kernel name, or NULL when it has none. */
const char *cask__kernel_name(const cask_graph_t *g, uint32_t t);

/* ------------------------------------------------------------------- plan */

/* What a compute runs: the graph culled to the outputs' ancestors,
** renumbered 0..n-1 in topological order, with successor lists and
** upward ranks. */
typedef struct cask__plan {
    const cask_graph_t *g;  /* the graph (borrowed) */
    uint32_t  n;            /* tasks in the plan */
    uint32_t *task;         /* plan id -> graph task */
    uint32_t *pidx;         /* graph task -> plan id, UINT32_MAX if culled */
    uint32_t  span;         /* entries of pidx: graph tasks 0 .. span-1 */
    uint32_t *succ_off;     /* n + 1 offsets into succ */
    uint32_t *succ;         /* successors, one per edge */
    uint32_t *npred;        /* predecessor edges of each task */
    uint32_t *nuse;         /* argument edges reading each output, +1 per request */
    double   *rank;         /* upward rank, seconds */
    uint32_t *sources;      /* tasks with no predecessor */
    uint32_t  n_sources;
    uint32_t *out;          /* plan ids of the requested outputs */
    size_t    n_out;
} cask__plan_t;

/* Build the plan for outs[0..n) of g. Refuses tasks with no kernel when
** need_kernels. */
/* Order n tasks whose dependencies (indices) are deps[off[i] .. off[i+1])
** topologically into order[0..n), and count each one's dependents in
** nsucc (may be NULL). CASK_ECYCLE names keys on one cycle; CASK_ENOMEM. */
int cask__toposort(size_t n, const uint32_t *off, const uint32_t *deps, const char *const *keys,
                   uint32_t *order, uint32_t *nsucc, cask_error_t *err);

struct json_t;
/* A graph from a parsed cask-graph JSON document (graph/json.c). */
int cask__graph_from_json(struct json_t *root, unsigned flags, cask_graph_t **out,
                          cask_error_t *err);

/* A plain DAG read from a file: tasks with a key, a group (or NULL), a
** cost and ordering-only dependencies, in any order. */
/* sched/trace.c: how many of tr's last rows hold transfers (0: none). */
int cask__trace_xrows(const cask_trace_t *tr);

/* graph/json.c: the error for a jansson load that failed (CASK_ENOMEM,
** CASK_EIO, else CASK_EPARSE with src, line and column). */
struct json_error_t;
int cask__json_error(const struct json_error_t *je, const char *src, cask_error_t *err);

/* graph/readers.c: read a graph from buf[0..len) as one format, or as any
** (detected by content, zips included); src names the input in errors. */
enum { CASK__FMT_ANY, CASK__FMT_WFCOMMONS, CASK__FMT_STG };
int cask__graph_load_buf(const char *buf, size_t len, const char *src, unsigned flags, int fmt,
                         cask_graph_t **out, cask_error_t *err);

typedef struct cask__dag {
    size_t       n;
    const char **key;
    const char **group;   /* NULL, or per task (NULL entries: derived) */
    double      *cost;
    uint32_t    *off;     /* n + 1 offsets into deps */
    uint32_t    *deps;    /* indices of each task's predecessors */
} cask__dag_t;

/* A new graph of d's tasks (no kernels: for analysis), its outputs the
** tasks nothing depends on. */
int cask__dag_build(const cask__dag_t *d, cask_graph_t **out, cask_error_t *err);

int  cask__plan_build(const cask_graph_t *g, const cask_task_t *outs,
                      size_t n, int need_kernels, cask__plan_t *p,
                      cask_error_t *err);
void cask__plan_destroy(cask__plan_t *p);

/* ------------------------------------------------------------------ JSON */

struct json_t;
/* A literal as JSON (new reference), or NULL for opaque values / ENOMEM. */
struct json_t *cask__value_to_json(const cask_value_t *v);
/* A JSON literal as a value; on error fills err naming `where`. */
int cask__value_from_json(struct json_t *j, const char *where,
                          cask_value_t *out, cask_error_t *err);

#endif /* CASK__GRAPH_H */

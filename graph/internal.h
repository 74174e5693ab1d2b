/*
** graph/internal.h: the graph's own struct and what only graph/ uses.
** Only the files of graph/ include it (make check-layers says so); the layers above
** read graphs through graph/graph.h.
*/
#ifndef CASK__INTERNAL_H
#define CASK__INTERNAL_H

#include "graph.h"
#include "strtab.h"

/* The graph, in arrays. Task t's inputs are in[in_off[t] .. in_off[t+1]):
** its kernel's arguments, then n_after[t] ordering-only dependencies
** (CASK_REF values). Every ref points to a task added earlier, so index
** order is a topological order. The n_after, group, cost and nbytes columns
** are made only when a task first needs them (NULL: all zero, derived,
** NaN, zero):
** a graph of plain tasks has none, a graph of delayed calls only group
** (its function's name), and on these machines every byte of fresh memory
** costs build time. */
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
    uint64_t *nbytes;        /* estimated output bytes; 0: unknown; or NULL */
    cask_value_t *in;        /* all inputs */
    size_t    n_in, cap_in;  /* inputs used, and room */
    size_t    n_edges;       /* refs among them */
    cask_task_t *outputs;    /* recorded default outputs */
    size_t    n_outputs;
    uint32_t  last_kid;      /* the kernel last looked up by name, or CASK__NO_KERNEL */
    uint32_t  last_gid;      /* the explicit group last given (groups id + 1), or 0 */
    const struct cask__kernel *last_gk; /* the kernel whose name last was a group */
    uint32_t  last_gk_gid;   /* that group's id + 1 */
    _Atomic(struct cask__plan_memo *) memo; /* the last compute's plan, or NULL
                                               (graph/plan.c) */
    atomic_size_t memo_bytes;  /* its size, for cask_graph_memory (approximate) */
};

/* Task handles: the graph's id in the high half, the task's index in the
** low half. Refs stored in a graph's inputs are handles of that graph. */
static inline cask_task_t cask__handle(const cask_graph_t *g, uint32_t i)
{
    return (cask_task_t)g->id << 32 | i;
}

/* Whether t is a task of g. */
static inline bool cask__task_in(const cask_graph_t *g, cask_task_t t)
{
    return g && (uint32_t)(t >> 32) == g->id && (uint32_t)t < g->n;
}

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

/* Task index t's group (not NUL-terminated where derived: *len bytes). */
const char *cask__group_of(const cask_graph_t *g, uint32_t t, size_t *len);

/* Order n tasks whose dependencies (indices) are deps[off[i] .. off[i+1])
** topologically into order[0..n), and count each one's dependents in
** nsucc (may be NULL). CASK_ECYCLE names keys on one cycle; CASK_ENOMEM. */
int cask__toposort(size_t n, const uint32_t *off, const uint32_t *deps, const char *const *keys,
                   uint32_t *order, uint32_t *nsucc, cask_error_t *err);

/* A graph from a parsed cask-graph JSON document (graph/json.c). */
int cask__graph_from_json(struct json_t *root, unsigned flags, cask_graph_t **out,
                          cask_error_t *err);

/* A plain DAG read from a file: tasks with a key, a group (or NULL), a
** cost and ordering-only dependencies, in any order. */
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

#endif /* CASK__INTERNAL_H */

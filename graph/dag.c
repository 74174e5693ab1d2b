/*
** graph/dag.c: ordering a file's tasks and building a graph from a plain
** DAG. Files (cask-graph JSON, WfCommons, STG) may list tasks in any
** order; the readers collect each task's dependencies as indices, then
** cask__toposort orders them (Kahn's algorithm, no recursion) or reports
** one cycle by its keys.
*/
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

/* One cycle among the tasks Kahn's algorithm could not order: each has an
** unordered predecessor, so walking predecessors comes back on itself. */
static int report_cycle(size_t n, const uint32_t *off, const uint32_t *deps,
                        const char *const *keys, const uint32_t *indeg, cask_error_t *err)
{
    uint32_t *seen = cask__calloc(n, sizeof *seen), *path = cask__malloc(n * sizeof *path);
    if (!seen || !path) {
        cask__free(seen);
        cask__free(path);
        return cask__err(err, CASK_ECYCLE, NULL, NULL, "graph has a cycle");
    }
    uint32_t v = 0;
    while (!indeg[v])
        v++;
    uint32_t len = 0;
    while (!seen[v]) {
        seen[v] = ++len;
        path[len - 1] = v;
        uint32_t next = v;
        for (uint32_t e = off[v]; e < off[v + 1]; e++)
            if (indeg[deps[e]]) {
                next = deps[e];
                break;
            }
        v = next;
    }
    /* path[seen[v]-1 .. len) is the cycle, each a dependent of the next. */
    char msg[sizeof err->message];
    size_t at = 0;
    msg[0] = '\0';
    for (uint32_t i = len; i-- > seen[v] - 1 && at < sizeof msg;)
        at += (size_t)snprintf(msg + at, sizeof msg - at, "%s -> ", keys[path[i]]);
    if (at < sizeof msg)
        snprintf(msg + at, sizeof msg - at, "%s", keys[path[len - 1]]);
    cask__free(seen);
    cask__free(path);
    return cask__err(err, CASK_ECYCLE, keys[v], NULL, "cycle: %s", msg);
}

int cask__toposort(size_t n, const uint32_t *off, const uint32_t *deps, const char *const *keys,
                   uint32_t *order, uint32_t *nsucc, cask_error_t *err)
{
    size_t m = off[n];
    uint32_t *indeg = cask__malloc((n + 1) * sizeof *indeg);
    uint32_t *soff = cask__calloc(n + 1, sizeof *soff);
    uint32_t *succ = cask__malloc((m ? m : 1) * sizeof *succ);
    int rc = 0;
    if (!indeg || !soff || !succ) {
        rc = cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory to order %zu tasks", n);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        indeg[i] = off[i + 1] - off[i];
        for (uint32_t e = off[i]; e < off[i + 1]; e++)
            soff[deps[e] + 1]++;
    }
    if (nsucc)
        for (size_t i = 0; i < n; i++)
            nsucc[i] = soff[i + 1];
    for (size_t i = 0; i < n; i++)
        soff[i + 1] += soff[i];
    for (size_t i = 0; i < n; i++) /* fill, using order as the cursor */
        order[i] = soff[i];
    for (size_t i = 0; i < n; i++)
        for (uint32_t e = off[i]; e < off[i + 1]; e++)
            succ[order[deps[e]]++] = (uint32_t)i;
    size_t head = 0, tail = 0;
    for (size_t i = 0; i < n; i++)
        if (!indeg[i])
            order[tail++] = (uint32_t)i;
    while (head < tail) {
        uint32_t v = order[head++];
        for (uint32_t e = soff[v]; e < soff[v + 1]; e++)
            if (--indeg[succ[e]] == 0)
                order[tail++] = succ[e];
    }
    if (tail < n)
        rc = report_cycle(n, off, deps, keys, indeg, err);
out:
    cask__free(indeg);
    cask__free(soff);
    cask__free(succ);
    return rc;
}

int cask__dag_build(const cask__dag_t *d, cask_graph_t **out, cask_error_t *err)
{
    *out = NULL;
    size_t n = d->n;
    uint32_t *order = cask__malloc((n ? n : 1) * sizeof *order);
    uint32_t *nsucc = cask__malloc((n ? n : 1) * sizeof *nsucc);
    cask_task_t *tid = cask__malloc((n ? n : 1) * sizeof *tid), *after = NULL;
    size_t cap_after = 0;
    cask_graph_t *g = NULL;
    int rc = CASK_ENOMEM;
    if (!order || !nsucc || !tid) {
        cask__err(err, rc, NULL, NULL, "no memory for %zu tasks", n);
        goto out;
    }
    if ((rc = cask__toposort(n, d->off, d->deps, d->key, order, nsucc, err)))
        goto out;
    if (!(g = cask_graph_new(err))) {
        rc = CASK_ENOMEM;
        goto out;
    }
    for (size_t oi = 0; oi < n; oi++) {
        uint32_t i = order[oi], na = d->off[i + 1] - d->off[i];
        if (cask__grow((void **)&after, &cap_after, na, sizeof *after)) {
            rc = cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for %zu tasks", n);
            goto out;
        }
        for (uint32_t e = 0; e < na; e++)
            after[e] = tid[d->deps[d->off[i] + e]];
        cask_task_spec_t spec = { .after = after, .n_after = na, .key = d->key[i],
                                  .group = d->group ? d->group[i] : NULL };
        if ((rc = cask__graph_add(g, &spec, d->cost[i], &tid[i], err)))
            goto out;
    }
    size_t k = 0; /* outputs: the tasks nothing depends on */
    for (size_t i = 0; i < n; i++)
        if (!nsucc[i])
            tid[k++] = tid[i];
    if ((rc = cask_graph_set_outputs(g, tid, k, err)))
        goto out;
    *out = g;
    g = NULL;
out:
    cask_graph_decref(g);
    cask__free(order);
    cask__free(nsucc);
    cask__free(tid);
    cask__free(after);
    return rc;
}

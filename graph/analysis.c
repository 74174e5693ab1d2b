/*
** graph/analysis.c: the degree of parallelism of a graph: work, span and
** one critical path, levels and their widths, the profile of the
** unbounded-worker schedule, and the exact width (maximum antichain).
**
** Tasks are numbered in a topological order (inputs come first), so every
** sweep here is one loop over the tasks, with no recursion.
**
** The width is a minimum flow (Dilworth's theorem, in its form for paths
** that may share tasks): split each task v into v_in -> v_out with lower
** bound 1, join u_out -> v_in for each edge, and find the least flow from
** a source S to a sink T covering every task. Start from a feasible flow
** (a greedy cover of the graph by k disjoint chains), then cancel as much
** of it as can be cancelled: a maximum flow from T back to S in the
** residual network (igraph's push-relabel). The width is k minus that
** flow, and the tasks whose v_in is not reachable from T in the final
** residual network while v_out is form an antichain of that size.
*/
#include <igraph.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void cask_analysis_destroy(cask_analysis_t *a)
{
    if (!a)
        return;
    cask__free(a->critical_path);
    cask__free(a->antichain);
    cask__free(a->level_widths);
    cask__free(a->profile_time);
    cask__free(a->profile_running);
    memset(a, 0, sizeof *a);
}

/* Predecessors of every task as CSR (refs of inputs and afters). */
static int preds_csr(const cask_graph_t *g, uint32_t **off, uint32_t **pred)
{
    size_t n = g->n, m = 0;
    for (size_t t = 0; t < n; t++)
        for (uint32_t e = g->in_off[t]; e < g->in_off[t + 1]; e++)
            m += g->in[e].type == CASK_REF;
    *off = cask__malloc((n + 1) * sizeof **off);
    *pred = cask__malloc((m ? m : 1) * sizeof **pred);
    if (!*off || !*pred)
        return CASK_ENOMEM;
    size_t k = 0;
    for (size_t t = 0; t < n; t++) {
        (*off)[t] = (uint32_t)k;
        for (uint32_t e = g->in_off[t]; e < g->in_off[t + 1]; e++)
            if (g->in[e].type == CASK_REF)
                (*pred)[k++] = cask__tix(g->in[e].u.task);
    }
    (*off)[n] = (uint32_t)k;
    return 0;
}

typedef struct pevent { double t; int d; } pevent_t;

static int by_time(const void *a, const void *b)
{
    const pevent_t *x = a, *y = b;
    if (x->t != y->t)
        return x->t < y->t ? -1 : 1;
    return x->d - y->d; /* ends before starts at the same time */
}

/* The concurrency of the schedule where each task starts at its earliest
** start es[v] and ends at ef[v]: from profile_time[i], profile_running[i]
** tasks run. */
static int profile(cask_analysis_t *a, size_t n, const double *es, const double *ef)
{
    pevent_t *ev = cask__malloc((n ? 2 * n : 1) * sizeof *ev);
    if (!ev)
        return CASK_ENOMEM;
    size_t k = 0;
    for (size_t v = 0; v < n; v++)
        if (ef[v] > es[v]) {
            ev[k++] = (pevent_t){ es[v], +1 };
            ev[k++] = (pevent_t){ ef[v], -1 };
        }
    qsort(ev, k, sizeof *ev, by_time);
    a->profile_time = cask__malloc((k + 1) * sizeof *a->profile_time);
    a->profile_running = cask__malloc((k + 1) * sizeof *a->profile_running);
    if (!a->profile_time || !a->profile_running) {
        cask__free(ev);
        return CASK_ENOMEM;
    }
    size_t run = 0, np = 0;
    for (size_t i = 0; i < k;) {
        double t = ev[i].t;
        for (; i < k && ev[i].t == t; i++)
            run = ev[i].d > 0 ? run + 1 : run - 1;
        if (np && a->profile_running[np - 1] == run)
            continue;
        a->profile_time[np] = t;
        a->profile_running[np++] = run;
    }
    a->profile_len = np;
    cask__free(ev);
    return 0;
}

/* The exact width and one antichain of that size. */
static int width(const cask_graph_t *g, cask_analysis_t *a, const uint32_t *off,
                 const uint32_t *pred, cask_error_t *err)
{
    size_t n = g->n, m = off[n];
    if (!n)
        return 0;
    /* a greedy chain cover: extend the chain of a predecessor that still
    ** ends its chain, the one with the fewest successors left to come
    ** (the others have more chances), else start a chain */
    uint32_t *next = cask__malloc(n * sizeof *next); /* chain successor, or UINT32_MAX */
    uint32_t *left = cask__calloc(n, sizeof *left);  /* successors not yet placed */
    uint8_t *starts = cask__calloc(n, 1);
    if (!next || !left || !starts) {
        cask__free(next);
        cask__free(left);
        cask__free(starts);
        return CASK_ENOMEM;
    }
    memset(next, 0xff, n * sizeof *next);
    for (size_t e = 0; e < m; e++)
        left[pred[e]]++;
    size_t k = 0;
    for (size_t v = 0; v < n; v++) {
        uint32_t pick = UINT32_MAX;
        for (uint32_t e = off[v]; e < off[v + 1]; e++) {
            uint32_t u = pred[e];
            left[u]--;
            if (next[u] == UINT32_MAX && (pick == UINT32_MAX || left[u] < left[pick]))
                pick = u;
        }
        if (pick != UINT32_MAX)
            next[pick] = (uint32_t)v;
        else
            starts[v] = 1, k++;
    }
    cask__free(left);
    /* the residual network, for a flow from T back to S:
    ** v_in -> v_out (cap inf), u_out -> v_in for each edge (inf), and
    ** with capacity 1 along the cover: v_in -> u_out for each chain step,
    ** v_in -> S for each chain start, T -> v_out for each chain end */
    igraph_integer_t S = (igraph_integer_t)(2 * n), T = S + 1;
    size_t arcs = n + m + (n - k) + 2 * k, at = 0;
    igraph_vector_int_t ev;
    igraph_vector_t cap, flow;
    igraph_t ig;
    int rc = CASK_ENOMEM, made = 0;
    igraph_error_handler_t *old = igraph_set_error_handler(igraph_error_handler_ignore);
    if (igraph_vector_int_init(&ev, (igraph_integer_t)(2 * arcs)))
        goto out;
    made = 1;
    if (igraph_vector_init(&cap, (igraph_integer_t)arcs))
        goto out;
    made = 2;
    if (igraph_vector_init(&flow, 0))
        goto out;
    made = 3;
    double inf = (double)n + 1;
#define ARC(a_, b_, c_) (VECTOR(ev)[2 * at] = (a_), VECTOR(ev)[2 * at + 1] = (b_), \
                         VECTOR(cap)[at++] = (c_))
    for (size_t v = 0; v < n; v++) {
        igraph_integer_t vi = (igraph_integer_t)(2 * v), vo = vi + 1;
        ARC(vi, vo, inf);
        for (uint32_t e = off[v]; e < off[v + 1]; e++)
            ARC(2 * (igraph_integer_t)pred[e] + 1, vi, inf);
        if (next[v] != UINT32_MAX)
            ARC(2 * (igraph_integer_t)next[v], vo, 1.0);
        else
            ARC(T, vo, 1.0);
        if (starts[v])
            ARC(vi, S, 1.0);
    }
#undef ARC
    if (igraph_create(&ig, &ev, (igraph_integer_t)(2 * n + 2), IGRAPH_DIRECTED))
        goto out;
    made = 4;
    igraph_real_t cancelled = 0;
    if (igraph_maxflow(&ig, &cancelled, &flow, NULL, NULL, NULL, T, S, &cap, NULL)) {
        rc = cask__err(err, CASK_ENOMEM, NULL, NULL, "igraph's maximum flow failed");
        goto out;
    }
    a->width = k - (size_t)llround(cancelled);
    /* X: reachable from T in the final residual network */
    {
        size_t nv = 2 * n + 2;
        uint32_t *roff = cask__calloc(nv + 1, sizeof *roff), *radj = NULL, *queue = NULL;
        uint8_t *seen = cask__calloc(nv, 1);
        if (roff && seen && (radj = cask__malloc(2 * arcs * sizeof *radj)) &&
            (queue = cask__malloc(nv * sizeof *queue))) {
            for (size_t e = 0; e < arcs; e++) { /* count residual arcs out of each vertex */
                double f = VECTOR(flow)[e];
                if (f < VECTOR(cap)[e])
                    roff[VECTOR(ev)[2 * e] + 1]++;
                if (f > 0)
                    roff[VECTOR(ev)[2 * e + 1] + 1]++;
            }
            for (size_t v = 0; v < nv; v++)
                roff[v + 1] += roff[v];
            for (size_t e = 0; e < arcs; e++) {
                double f = VECTOR(flow)[e];
                igraph_integer_t x = VECTOR(ev)[2 * e], y = VECTOR(ev)[2 * e + 1];
                if (f < VECTOR(cap)[e])
                    radj[roff[x]++] = (uint32_t)y;
                if (f > 0)
                    radj[roff[y]++] = (uint32_t)x;
            }
            for (size_t v = nv; v > 0; v--) /* the fill moved each offset to the next */
                roff[v] = roff[v - 1];
            roff[0] = 0;
            size_t h = 0, q = 0;
            queue[q++] = (uint32_t)T;
            seen[T] = 1;
            while (h < q) {
                uint32_t x = queue[h++];
                for (uint32_t e = roff[x]; e < roff[x + 1]; e++)
                    if (!seen[radj[e]])
                        seen[radj[e]] = 1, queue[q++] = radj[e];
            }
            if ((a->antichain = cask__malloc((a->width ? a->width : 1) * sizeof *a->antichain))) {
                size_t c = 0;
                for (size_t v = 0; v < n; v++)
                    if (!seen[2 * v] && seen[2 * v + 1] && c < a->width)
                        a->antichain[c++] = cask__handle(g, (uint32_t)v);
                rc = c == a->width ? 0
                   : cask__err(err, CASK_EINVAL, NULL, NULL,
                               "the antichain found has %zu tasks, not %zu", c, a->width);
            }
        }
        cask__free(roff);
        cask__free(radj);
        cask__free(queue);
        cask__free(seen);
    }
out:
    if (made >= 4)
        igraph_destroy(&ig);
    if (made >= 3)
        igraph_vector_destroy(&flow);
    if (made >= 2)
        igraph_vector_destroy(&cap);
    if (made >= 1)
        igraph_vector_int_destroy(&ev);
    igraph_set_error_handler(old);
    cask__free(next);
    cask__free(starts);
    return rc;
}

int cask_graph_analyze(const cask_graph_t *g, unsigned flags, cask_analysis_t *a,
                       cask_error_t *err)
{
    if (!a)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "analysis is NULL");
    memset(a, 0, sizeof *a);
    if (!g)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "graph is NULL");
    size_t n = g->n;
    uint32_t *off = NULL, *pred = NULL, *lvl = NULL, *from = NULL;
    double *es = NULL, *ef = NULL;
    int rc = preds_csr(g, &off, &pred);
    if (!rc && (!(lvl = cask__malloc((n ? n : 1) * sizeof *lvl)) ||
                !(from = cask__malloc((n ? n : 1) * sizeof *from)) ||
                !(es = cask__malloc((n ? n : 1) * sizeof *es)) ||
                !(ef = cask__malloc((n ? n : 1) * sizeof *ef))))
        rc = CASK_ENOMEM;
    if (rc)
        goto out;
    a->tasks = n;
    a->edges = off[n];
    /* earliest start and finish, level, and the predecessor that sets the start */
    uint32_t end = UINT32_MAX;
    for (size_t v = 0; v < n; v++) {
        double c = cask__cost(g, (uint32_t)v), s = 0;
        uint32_t l = 0, f = UINT32_MAX;
        for (uint32_t e = off[v]; e < off[v + 1]; e++) {
            uint32_t u = pred[e];
            if (f == UINT32_MAX || ef[u] > s)
                s = ef[u], f = u;
            if (lvl[u] + 1 > l)
                l = lvl[u] + 1;
        }
        es[v] = s;
        ef[v] = s + c;
        lvl[v] = l;
        from[v] = f;
        a->work += c;
        if (end == UINT32_MAX || ef[v] > ef[end])
            end = (uint32_t)v;
        if (l + 1 > a->levels)
            a->levels = l + 1;
    }
    a->span = n ? ef[end] : 0;
    a->average_parallelism = a->span > 0 ? a->work / a->span : 0;
    /* the critical path, walked back from the task that ends last */
    for (uint32_t v = end; v != UINT32_MAX; v = from[v])
        a->critical_len++;
    if (!(a->critical_path = cask__malloc((a->critical_len ? a->critical_len : 1) *
                                          sizeof *a->critical_path)) ||
        !(a->level_widths = cask__calloc(a->levels ? a->levels : 1, sizeof *a->level_widths))) {
        rc = CASK_ENOMEM;
        goto out;
    }
    size_t i = a->critical_len;
    for (uint32_t v = end; v != UINT32_MAX; v = from[v])
        a->critical_path[--i] = cask__handle(g, v);
    for (size_t v = 0; v < n; v++)
        a->level_widths[lvl[v]]++;
    if ((rc = profile(a, n, es, ef)))
        goto out;
    if (!(flags & CASK_ANALYZE_NO_WIDTH))
        rc = width(g, a, off, pred, err);
out:
    if (rc == CASK_ENOMEM)
        cask__err(err, rc, NULL, NULL, "no memory to analyse %zu tasks", n);
    if (rc)
        cask_analysis_destroy(a);
    cask__free(off);
    cask__free(pred);
    cask__free(lvl);
    cask__free(from);
    cask__free(es);
    cask__free(ef);
    return rc;
}

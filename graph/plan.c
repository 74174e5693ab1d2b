/*
** graph/plan.c: what a compute runs. Culls the graph to the ancestors of
** the requested outputs, renumbers them in topological order, builds the
** successor half of the CSR and gives each task its upward rank.
**
** The ancestors are found breadth first from the outputs, marked in a
** bitmap, so the cost follows the tasks needed, not the graph's size: a
** compute of one task in a graph of a million plans in microseconds. Every
** ref points to an earlier task, so index order is a topological order:
** the needed tasks are numbered in it (sorted when they are few, else read
** off the bitmap in one sweep). No recursion, whatever the depth.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

void cask__plan_destroy(cask__plan_t *p)
{
    cask__big_free(p->task);
    cask__big_free(p->pidx);
    cask__big_free(p->in_plan);
    cask__big_free(p->succ_off);
    cask__big_free(p->succ);
    cask__big_free(p->pred_off);
    cask__big_free(p->pred);
    cask__big_free(p->npred);
    cask__big_free(p->nuse);
    cask__big_free(p->rank);
    cask__big_free(p->pos);
    cask__big_free(p->bypos);
    cask__big_free(p->sources);
    cask__big_free(p->out);
    memset(p, 0, sizeof *p);
}

/* A kept plan and what it was made for. */
typedef struct cask__plan_memo {
    cask__plan_t p;
    uint32_t     kgen;     /* kernel registrations when it was made */
    size_t       n_out;
    cask_task_t  outs[];   /* the outputs asked for, in order */
} memo_t;

static void memo_free(memo_t *m)
{
    if (m) {
        cask__plan_destroy(&m->p);
        cask__free(m);
    }
}

void cask__plan_memo_free(cask_graph_t *g)
{
    memo_free(atomic_exchange(&g->memo, NULL));
    atomic_store(&g->memo_bytes, 0);
}

/* The bytes p's arrays take. */
static size_t plan_bytes(const cask__plan_t *p)
{
    size_t n = p->n, e = p->succ_off ? p->succ_off[n] : 0;
    return n * (6 * sizeof(uint32_t) + sizeof *p->rank) +
           2 * (n + 1) * sizeof(uint32_t) + 2 * e * sizeof(uint32_t) +
           (size_t)p->span * sizeof *p->pidx + ((size_t)p->span + 63) / 64 * 8 +
           p->n_out * sizeof *p->out;
}

bool cask__plan_take(const cask_graph_t *g, const cask_task_t *outs, size_t n,
                     cask__plan_t *p)
{
    if (!g || !outs)
        return false;
    _Atomic(memo_t *) *slot = &((cask_graph_t *)g)->memo;
    memo_t *m = atomic_exchange(slot, NULL), *none = NULL;
    if (!m)
        return false;
    if (m->kgen != cask__kernel_generation()) { /* never again */
        memo_free(m);
        atomic_store(&((cask_graph_t *)g)->memo_bytes, 0);
        return false;
    }
    if (m->n_out != n || memcmp(m->outs, outs, n * sizeof *outs)) { /* another's: back */
        if (!atomic_compare_exchange_strong(slot, &none, m))
            memo_free(m);
        return false;
    }
    *p = m->p;
    cask__free(m);
    atomic_store(&((cask_graph_t *)g)->memo_bytes, 0);
    cask__graph_view(g, &p->gv); /* its columns may have moved as it grew */
    return true;
}

void cask__plan_keep(const cask_graph_t *g, cask__plan_t *p)
{
    memo_t *m;
    size_t n = p->n_out;
    if (p->g == g && p->ordered_for && n && (m = cask__malloc(sizeof *m + n * sizeof *m->outs))) {
        m->p = *p;
        m->kgen = p->kgen;
        m->n_out = n;
        for (size_t i = 0; i < n; i++)
            m->outs[i] = cask__graph_handle(g, p->task[p->out[i]]);
        memset(p, 0, sizeof *p);
        atomic_store(&((cask_graph_t *)g)->memo_bytes, sizeof *m + n * sizeof *m->outs +
                                                       plan_bytes(&m->p));
        memo_free(atomic_exchange(&((cask_graph_t *)g)->memo, m)); /* the last one kept */
        return;
    }
    cask__plan_destroy(p);
}

int cask__plan_build(const cask_graph_t *g, const cask_task_t *outs, size_t n_out,
                     int need_kernels, cask__plan_t *p, cask_error_t *err)
{
    memset(p, 0, sizeof *p);
    p->g = g;
    p->kgen = cask__kernel_generation(); /* before the costs are read */
    if (g)
        cask__graph_view(g, &p->gv);
    if (!g || (n_out && !outs))
        return cask__err(err, CASK_EINVAL, NULL, NULL, "graph or outputs is NULL");
    if (n_out == 0)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "no outputs requested");
    int rc = cask__tasks_check(g, outs, n_out, "output", err);
    if (rc)
        return rc;
    uint32_t top = 0;
    for (size_t i = 0; i < n_out; i++)
        if (cask__tix(outs[i]) > top)
            top = cask__tix(outs[i]);
    size_t span = (size_t)top + 1;
    p->span = (uint32_t)span;
    rc = CASK_ENOMEM;
    uint32_t *cnt = NULL, *list = NULL;
    size_t words = (span + 63) / 64;
    /* pidx is written for the tasks of the plan only: nothing else reads it */
    if (!(p->pidx = cask__big_malloc(span * sizeof *p->pidx)) ||
        !(p->in_plan = cask__big_calloc(words, sizeof *p->in_plan)) ||
        !(list = cask__big_malloc(span * sizeof *list)))
        goto out;

    /* Mark the ancestors, breadth first from the outputs. */
    size_t n = 0, n_edges = 0;
    uint64_t *mark = p->in_plan;
    for (size_t i = 0; i < n_out; i++) {
        uint32_t t = cask__tix(outs[i]);
        if (!(mark[t >> 6] >> (t & 63) & 1)) {
            mark[t >> 6] |= 1ull << (t & 63);
            list[n++] = t;
        }
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t t = list[i];
        for (uint32_t e = g->in_off[t]; e < g->in_off[t + 1]; e++)
            if (g->in[e].type == CASK_REF) {
                uint32_t u = cask__tix(g->in[e].u.task);
                n_edges++;
                if (!(mark[u >> 6] >> (u & 63) & 1)) {
                    mark[u >> 6] |= 1ull << (u & 63);
                    list[n++] = u;
                }
            }
    }
    /* In index order: sorted when few, else read off the bitmap. */
    if (n < span / 16) {
        qsort(list, n, sizeof *list, cmp_u32);
    } else {
        size_t k = 0;
        for (size_t w = 0; w < words; w++)
            for (uint64_t b = mark[w]; b; b &= b - 1)
                list[k++] = (uint32_t)(w * 64 + (size_t)__builtin_ctzll(b));
    }
    p->n = (uint32_t)n;
    if (!(p->task = cask__big_malloc((n ? n : 1) * sizeof *p->task)) ||
        !(p->succ_off = cask__big_calloc(n + 1, sizeof *p->succ_off)) ||
        !(p->succ = cask__big_malloc((n_edges ? n_edges : 1) * sizeof *p->succ)) ||
        !(p->pred_off = cask__big_malloc((n + 1) * sizeof *p->pred_off)) ||
        !(p->pred = cask__big_malloc((n_edges ? n_edges : 1) * sizeof *p->pred)) ||
        !(p->npred = cask__big_calloc(n, sizeof *p->npred)) ||
        !(p->nuse = cask__big_calloc(n, sizeof *p->nuse)) ||
        !(p->rank = cask__big_malloc(n * sizeof *p->rank)) ||
        !(p->out = cask__big_malloc(n_out * sizeof *p->out)) ||
        !(cnt = cask__big_calloc(n + 1, sizeof *cnt)))
        goto out;

    /* Number the needed tasks in index (= topological) order; count each
    ** one's predecessors, uses and successors on the way: its inputs are
    ** numbered already. */
    uint32_t id = 0, np = 0;
    for (size_t k = 0; k < n; k++) {
        uint32_t t = list[k];
        if (need_kernels && g->kernel[t] == CASK__NO_KERNEL) {
            rc = cask__err(err, CASK_EINVAL, cask__key(g, t), NULL,
                           "task '%s' has no kernel (graph loaded for analysis only)",
                           cask__key(g, t));
            goto out;
        }
        uint32_t v = id++;
        p->task[v] = t;
        p->pidx[t] = v;
        p->pred_off[v] = np;
        uint32_t args_end = g->in_off[t] + cask__n_args(g, t);
        for (uint32_t e = g->in_off[t]; e < g->in_off[t + 1]; e++) {
            if (g->in[e].type != CASK_REF)
                continue;
            uint32_t u = p->pidx[cask__tix(g->in[e].u.task)];
            p->pred[np++] = u;
            p->npred[v]++;
            p->succ_off[u + 1]++;
            if (e < args_end)
                p->nuse[u]++;
        }
    }

    p->pred_off[n] = np;
    for (uint32_t v = 0; v < n; v++)
        p->succ_off[v + 1] += p->succ_off[v];
    for (uint32_t v = 0; v < n; v++)
        for (uint32_t e = p->pred_off[v]; e < p->pred_off[v + 1]; e++)
            p->succ[p->succ_off[p->pred[e]] + cnt[p->pred[e]]++] = v;
    for (size_t i = 0; i < n_out; i++) {
        p->out[i] = p->pidx[cask__tix(outs[i])];
        p->nuse[p->out[i]]++; /* kept until the caller takes it */
    }
    p->n_out = n_out;

    /* Upward ranks, from the sinks back. A kernel without a cost model
    ** costs the same at every call: keep the last kernel's constant cost,
    ** or NaN when it has a model and each call must be asked. */
    uint32_t last_k = 0;
    double last_cost = NAN;
    int have_last = 0;
    for (uint32_t v = (uint32_t)n; v-- > 0;) {
        double best = 0;
        for (uint32_t e = p->succ_off[v]; e < p->succ_off[v + 1]; e++)
            if (p->rank[p->succ[e]] > best)
                best = p->rank[p->succ[e]];
        uint32_t t = p->task[v], kid = g->kernel[t];
        double c = cask__cost_given(g, t);
        if (isnan(c)) {
            if (!have_last || kid != last_k) {
                const cask__kernel_t *k = cask__kernel_get(kid);
                last_k = kid;
                have_last = 1;
                last_cost = k && k->opts.cost_fn ? NAN : cask__kernel_cost(kid, NULL, 0);
            }
            c = isnan(last_cost) ? cask__cost(g, t) : last_cost;
        }
        p->rank[v] = c + best;
    }

    /* Sources, reusing cnt's storage. */
    p->sources = cnt;
    cnt = NULL;
    for (uint32_t v = 0; v < n; v++)
        if (!p->npred[v])
            p->sources[p->n_sources++] = v;
    rc = 0;
out:
    cask__big_free(cnt);
    cask__big_free(list);
    if (rc) {
        if (rc == CASK_ENOMEM)
            cask__err(err, rc, NULL, NULL, "no memory to plan %u tasks", g->n);
        cask__plan_destroy(p);
    }
    return rc;
}

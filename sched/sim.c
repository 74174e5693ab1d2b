/*
** sched/sim.c: the sim back-end. Plays a non-preemptive list schedule of
** a graph on p identical virtual workers with zero communication cost,
** from the cost estimates or from the durations of a recorded trace, and
** returns a trace like a real run's. Nothing runs.
**
** The default order is every scheduler's (cask_readyq_t, from the
** durations simulated); a task freed by an ending
** task is placed at that instant, and all tasks ending at the same
** instant complete before any placement, so the schedule is the textbook
** list schedule. FIFO, LIFO and random orders are there for comparison.
** Memory is played too, from the tasks' given output sizes: an output is
** held from its task's end to the end of its last reader (to the end for
** an output asked for), and a memory budget admits tasks as a run does.
*/
#include <math.h>
#include <string.h>

#include "sched.h"

typedef struct running {
    double   end;
    uint32_t task;
    int      worker;
} running_t;

/* Min-heaps by (end, worker): of running tasks, and of free workers (whose
** entries all have end 0, so the lowest-numbered comes first). */
static bool before(const running_t *a, const running_t *b)
{
    return a->end < b->end || (a->end == b->end && a->worker < b->worker);
}

static void run_push(running_t *h, size_t *n, running_t x)
{
    size_t i = (*n)++;
    while (i && before(&x, &h[(i - 1) / 2])) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = x;
}

static running_t run_pop(running_t *h, size_t *n)
{
    running_t top = h[0], x = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n)
            break;
        if (c + 1 < *n && before(&h[c + 1], &h[c]))
            c++;
        if (!before(&h[c], &x))
            break;
        h[i] = h[c];
        i = c;
    }
    if (*n)
        h[i] = x;
    return top;
}

/* The ready tasks, in the order the policy asks for. */
typedef struct ready {
    cask_sim_policy_t policy;
    cask_readyq_t q;      /* PRIORITY */
    uint32_t *a;          /* the others: a ring (FIFO), a stack (LIFO), a bag (RANDOM) */
    size_t head, n, cap;
    uint64_t rng;
} ready_t;

static int ready_push(ready_t *r, uint32_t t)
{
    if (r->policy == CASK_SIM_PRIORITY)
        return cask_readyq_push(&r->q, t);
    r->a[(r->head + r->n++) % r->cap] = t;
    return 0;
}

static bool ready_pop(ready_t *r, uint32_t *t)
{
    if (r->policy == CASK_SIM_PRIORITY)
        return cask_readyq_pop(&r->q, t);
    if (!r->n)
        return false;
    size_t i = r->policy == CASK_SIM_FIFO ? 0 : r->n - 1;
    if (r->policy == CASK_SIM_RANDOM) {
        r->rng ^= r->rng << 13, r->rng ^= r->rng >> 7, r->rng ^= r->rng << 17;
        i = (size_t)(r->rng % r->n);
    }
    size_t at = (r->head + i) % r->cap, last = (r->head + r->n - 1) % r->cap;
    *t = r->a[at];
    if (r->policy == CASK_SIM_FIFO) {
        r->head = (r->head + 1) % r->cap;
    } else {
        r->a[at] = r->a[last]; /* a bag: order does not matter */
    }
    r->n--;
    return true;
}

/* Task t has ended: its given output size is held (and its reservation
** given back), and each input it was the last to read is let go, as a run
** does with the real sizes. */
static void held(cask_run_t *r, uint32_t t)
{
    const cask__gview_t *gv = &r->p.gv;
    uint32_t gt = r->p.task[t];
    size_t b = (size_t)cask__run_nbytes(r, t);
    size_t now = atomic_load(&r->bytes) + b;
    atomic_store(&r->bytes, now);
    if (now > atomic_load(&r->peak))
        atomic_store(&r->peak, now);
    cask__run_unadmit(r, t);
    const cask_value_t *in = cask__view_inputs(gv, gt);
    for (size_t i = 0, k = cask__view_nargs(gv, gt); i < k; i++) {
        if (in[i].type != CASK_REF)
            continue;
        uint32_t u = r->p.pidx[cask__tix(in[i].u.task)];
        if (atomic_fetch_sub(&r->uses[u], 1) == 1)
            atomic_fetch_sub(&r->bytes, (size_t)cask__run_nbytes(r, u));
    }
    if (!r->p.nuse[t]) /* nobody reads it */
        atomic_fetch_sub(&r->bytes, b);
}

void cask_sim_result_destroy(cask_sim_result_t *res)
{
    if (!res)
        return;
    cask__free(res->idle);
    cask__free(res->tail);
    cask_trace_free(res->trace);
    memset(res, 0, sizeof *res);
}

/* Seconds of each plan task: the trace's durations, by key, or the
** cost estimates. */
static int durations(const cask__plan_t *p, const cask_trace_t *tr, double *d, cask_error_t *err)
{
    const cask_graph_t *g = p->g;
    if (!tr) {
        for (uint32_t v = 0; v < p->n; v++)
            d[v] = cask__cost(g, p->task[v]);
        return 0;
    }
    for (uint32_t v = 0; v < p->n; v++)
        d[v] = -1;
    size_t n = cask_trace_size(tr);
    for (size_t i = 0; i < n; i++) {
        const cask_trace_event_t *e = cask_trace_event(tr, i);
        uint32_t t = e ? cask__find(g, e->key) : UINT32_MAX;
        if (t < p->span && (p->in_plan[t >> 6] >> (t & 63) & 1))
            d[p->pidx[t]] = (double)(e->end_ns - e->start_ns) * 1e-9;
    }
    for (uint32_t v = 0; v < p->n; v++)
        if (d[v] < 0)
            return cask__err(err, CASK_EMISSING, cask__graph_key(g, p->task[v]), NULL,
                             "task '%s' is not in the trace of durations",
                             cask__graph_key(g, p->task[v]));
    return 0;
}

int cask_simulate(const cask_graph_t *g, const cask_task_t *outs, size_t n_outs,
                  const cask_sim_opts_t *opts, cask_sim_result_t *res, cask_error_t *err)
{
    if (!res)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "result is NULL");
    memset(res, 0, sizeof *res);
    if (!g || !opts)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "graph or options is NULL");
    int P = opts->workers;
    if (P < 1 || P > 1 << 20)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "workers must be 1 .. %d, not %d",
                         1 << 20, P);
    if ((unsigned)opts->policy > CASK_SIM_RANDOM)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "unknown policy %d", (int)opts->policy);
    if (!n_outs) /* the recorded outputs, else the whole graph */
        outs = cask_graph_outputs(g, &n_outs);
    cask_task_t *all = NULL;
    uint32_t size = (uint32_t)cask_graph_size(g);
    if (!n_outs && size) {
        if (!(all = cask__malloc(size * sizeof *all)))
            return cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory to simulate");
        for (uint32_t t = 0; t < size; t++)
            all[t] = cask__graph_handle(g, t);
        outs = all;
        n_outs = size;
    }
    if (opts->memory_limit && opts->policy != CASK_SIM_PRIORITY)
        return cask__err(err, CASK_EINVAL, NULL, NULL,
                         "a memory budget is kept in the priority order only");
    cask_run_t r;
    memset(&r, 0, sizeof r);
    int rc = n_outs ? cask__plan_build(g, outs, n_outs, 0, &r.p, err) : 0;
    cask__free(all);
    if (rc)
        return rc;
    r.g = g;
    r.workers = P;
    r.budget = opts->memory_limit;
    if (r.budget && (rc = cask__run_budget_check(&r, false, err))) {
        cask__big_free(r.need);
        cask__plan_destroy(&r.p);
        return rc;
    }
    size_t n = r.p.n;
    double *d = cask__malloc((n ? n : 1) * sizeof *d);
    uint32_t *pend = cask__malloc((n ? n : 1) * sizeof *pend);
    r.uses = cask__malloc((n ? n : 1) * sizeof *r.uses); /* the budget reads them */
    int32_t *wk = cask__malloc((n ? n : 1) * sizeof *wk);
    uint64_t *st = cask__malloc((n ? n : 1) * sizeof *st), *en = cask__malloc((n ? n : 1) * sizeof *en);
    running_t *heap = cask__malloc((size_t)P * sizeof *heap);
    running_t *freew = cask__malloc((size_t)P * sizeof *freew); /* free workers */
    ready_t q = { .policy = opts->policy, .rng = opts->seed * 2 + 1 };
    rc = CASK_ENOMEM;
    if (!d || !pend || !r.uses || !wk || !st || !en || !heap || !freew ||
        (q.policy != CASK_SIM_PRIORITY && !(q.a = cask__malloc((n ? n : 1) * sizeof *q.a))) ||
        !(res->idle = cask__calloc((size_t)P, sizeof *res->idle)) ||
        !(res->tail = cask__calloc((size_t)P, sizeof *res->tail)))
        goto out;
    q.cap = n ? n : 1;
    cask_readyq_init(&q.q, &r);
    if ((rc = durations(&r.p, opts->durations, d, err)))
        goto out;
    if (opts->durations) /* ranks from the same durations */
        for (uint32_t v = (uint32_t)n; v-- > 0;) {
            double best = 0;
            for (uint32_t e = r.p.succ_off[v]; e < r.p.succ_off[v + 1]; e++)
                best = r.p.rank[r.p.succ[e]] > best ? r.p.rank[r.p.succ[e]] : best;
            r.p.rank[v] = d[v] + best;
        }
    if (q.policy == CASK_SIM_PRIORITY && cask__plan_order(&r.p, d, P)) {
        rc = cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory to order %zu tasks", n);
        goto out;
    }
    double work = 0, span = 0;
    for (uint32_t v = 0; v < n; v++) {
        work += d[v];
        span = r.p.rank[v] > span && !r.p.npred[v] ? r.p.rank[v] : span;
        pend[v] = r.p.npred[v];
        atomic_init(&r.uses[v], r.p.nuse[v]);
    }
    rc = 0;
    for (size_t i = 0; i < r.p.n_sources && !rc; i++)
        rc = ready_push(&q, r.p.sources[i]);
    size_t nrun = 0, nfree = 0, done = 0;
    for (int w = 0; w < P; w++)
        run_push(freew, &nfree, (running_t){ 0, 0, w });
    double now = 0;
    while (!rc && done < n) {
        uint32_t t;
        while (nfree && (r.budget ? cask__readyq_pop_admitted(&q.q, &r, nrun > 0, &t)
                                  : ready_pop(&q, &t))) { /* place what is ready */
            int w = run_pop(freew, &nfree).worker;
            wk[t] = w;
            st[t] = (uint64_t)llround(now * 1e9);
            run_push(heap, &nrun, (running_t){ now + d[t], t, w });
        }
        if (!nrun && r.budget) { /* nothing fits the budget, nothing runs */
            cask__run_stalled(&r, &q.q);
            if (err)
                *err = r.err;
            rc = r.err.code;
            break;
        }
        if (!nrun) { /* cannot happen in a DAG: something is always ready or running */
            rc = cask__err(err, CASK_EINVAL, NULL, NULL, "the simulation stalled");
            break;
        }
        now = heap[0].end;
        while (!rc && nrun && heap[0].end == now) { /* complete all that end now */
            running_t x = run_pop(heap, &nrun);
            en[x.task] = (uint64_t)llround(now * 1e9);
            run_push(freew, &nfree, (running_t){ 0, 0, x.worker });
            done++;
            held(&r, x.task); /* its output is held, inputs it was last to read go */
            for (uint32_t e = r.p.succ_off[x.task]; e < r.p.succ_off[x.task + 1] && !rc; e++)
                if (--pend[r.p.succ[e]] == 0)
                    rc = ready_push(&q, r.p.succ[e]);
        }
    }
    if (rc)
        goto out;
    if (!(res->trace = cask__trace_from(&r.p, P, wk, st, en))) {
        rc = cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for the trace");
        goto out;
    }
    res->workers = P;
    res->makespan = now;
    res->work = work;
    res->span = span;
    res->lower_bound = work / P > span ? work / P : span;
    res->speedup = now > 0 ? work / now : 0;
    res->efficiency = res->speedup / P;
    res->peak_bytes = atomic_load(&r.peak);
    cask_trace_idle(res->trace, res->idle, res->tail, NULL);
    for (int w = 0; w < P; w++)
        res->releasable += res->tail[w];
out:
    if (rc == CASK_ENOMEM && (!err || err->code != CASK_ENOMEM))
        cask__err(err, rc, NULL, NULL, "no memory to simulate %zu tasks", n);
    if (rc)
        cask_sim_result_destroy(res);
    cask_readyq_destroy(&q.q);
    cask__big_free(r.need);
    cask__plan_destroy(&r.p);
    cask__free(q.a);
    cask__free(d);
    cask__free(pend);
    cask__free((void *)r.uses);
    cask__free(wk);
    cask__free(st);
    cask__free(en);
    cask__free(heap);
    cask__free(freew);
    return rc;
}

/*
** sched/run.c: one compute in flight, and the calls back-ends drive it by.
**
** Bookkeeping is lock-free: each task's count of unfinished predecessors
** and each output's count of consumers still to run are atomics, so
** completing tasks on several threads needs no lock. Values are written by
** the task that makes them before its successors can become ready.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched.h"

size_t cask_run_size(const cask_run_t *r) { return r->p.n; }
int cask_run_workers(const cask_run_t *r) { return r->workers; }
double cask_run_priority(const cask_run_t *r, cask_tid_t t) { return r->p.rank[t]; }
const char *cask_run_key(const cask_run_t *r, cask_tid_t t) { return cask__key(r->g, r->p.task[t]); }

bool cask_run_stopped(const cask_run_t *r)
{
    return atomic_load_explicit(&r->stopped, memory_order_relaxed);
}

const cask_tid_t *cask_run_sources(const cask_run_t *r, size_t *n)
{
    *n = r->p.n_sources;
    return r->p.sources;
}

const cask_tid_t *cask_run_successors(const cask_run_t *r, cask_tid_t t, size_t *n)
{
    *n = r->p.succ_off[t + 1] - r->p.succ_off[t];
    return r->p.succ + r->p.succ_off[t];
}

void cask__run_fail(cask_run_t *r, const cask_error_t *err)
{
    int expect = 0;
    if (atomic_compare_exchange_strong(&r->err_taken, &expect, 1))
        r->err = *err;
    atomic_store(&r->stopped, true);
}

/* Account for b more (or fewer) bytes held by outputs. */
static void add_bytes(cask_run_t *r, size_t b)
{
    size_t now = atomic_fetch_add_explicit(&r->bytes, b, memory_order_relaxed) + b;
    size_t peak = atomic_load_explicit(&r->peak, memory_order_relaxed);
    while (now > peak &&
           !atomic_compare_exchange_weak_explicit(&r->peak, &peak, now,
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

int cask__run_invoke(cask_run_t *r, cask_tid_t t, int worker, cask_value_t *out,
                     uint64_t *start, uint64_t *end, char *msg, size_t msgcap)
{
    const cask_graph_t *g = r->g;
    uint32_t gt = r->p.task[t];
    const cask__kernel_t *k = cask__kernel_get(g->kernel[gt]);
    const cask_value_t *in = cask__inputs(g, gt);
    size_t n = cask__n_args(g, gt);
    cask_value_t small[8], *args = small;

    *out = cask_none();
    *start = *end = 0;
    if (n > 8 && !(args = cask__malloc(n * sizeof *args))) {
        snprintf(msg, msgcap, "no memory for %zu arguments", n);
        return CASK_ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        args[i] = in[i].type == CASK_REF ? r->val[r->p.pidx[in[i].u.task]] : in[i];
    int timed = r->t_start || (r->cb && r->cb->posttask);
    if (timed)
        *start = cask__tick();
    int rc = cask__kernel_invoke(k, args, n, out, worker, msg, msgcap);
    if (timed)
        *end = cask__tick();
    if (args != small)
        cask__free(args);
    if (!rc && (unsigned)out->type > CASK_OPAQUE) { /* a ref, or garbage */
        rc = CASK_EKERNEL;
        snprintf(msg, msgcap, "returned a value of invalid type %d", (int)out->type);
        *out = cask_none();
    }
    return rc;
}

void cask__run_pre(cask_run_t *r, cask_tid_t t, int worker)
{
    const cask_callbacks_t *cb = r->cb;
    if (cb && cb->pretask)
        cb->pretask(cb->udata, cask_run_key(r, t), worker);
}

int cask__run_post(cask_run_t *r, cask_tid_t t, int worker, int rc, cask_value_t out,
                   uint64_t start, uint64_t end, const char *msg)
{
    const cask_graph_t *g = r->g;
    uint32_t gt = r->p.task[t];
    if (r->t_start) { /* ticks: the trace converts them */
        r->t_start[t] = start;
        r->t_end[t] = end;
        r->t_worker[t] = worker;
    }
    const cask_callbacks_t *cb = r->cb;
    if (cb && cb->posttask) {
        cask__tickconv_t c;
        cask__tick_rate(&c);
        cb->posttask(cb->udata, cask__key(g, gt), worker,
                     (double)(end - start) * c.ns_per_tick * 1e-9, rc);
    }
    if (rc) {
        cask_error_t e;
        cask__err(&e, rc, cask__key(g, gt), cask__kernel_get(g->kernel[gt])->name, "%s", msg);
        cask__run_fail(r, &e);
        return rc;
    }
    if (r->t_order) {
        size_t at;
        if (worker >= 0 && worker < r->workers) {
            struct cask__slots *sl = &r->t_slots[worker];
            if (sl->next == sl->end) {
                sl->next = atomic_fetch_add_explicit(&r->t_started, CASK__T_BLOCK,
                                                     memory_order_relaxed);
                sl->end = sl->next + CASK__T_BLOCK;
            }
            at = sl->next++;
        } else { /* a worker id out of range: one slot at a time */
            at = atomic_fetch_add_explicit(&r->t_started, 1, memory_order_relaxed);
        }
        if (at < r->t_cap)
            r->t_order[at] = t;
    }
    r->val[t] = out;
    size_t b = cask__nbytes(&out);
    if (b)
        add_bytes(r, b);
    if (r->t_bytes)
        r->t_bytes[t] = b;
    if (r->out_first)
        for (uint32_t i = r->out_first[t]; i != UINT32_MAX; i = r->out_next[i])
            r->hooks->deliver(r->hooks->ctx, i, &r->val[t]);
    return 0;
}

int cask_run_exec(cask_run_t *r, cask_tid_t t, int worker)
{
    char msg[256];
    cask_value_t out;
    uint64_t start, end;
    cask__run_pre(r, t, worker);
    int rc = cask__run_invoke(r, t, worker, &out, &start, &end, msg, sizeof msg);
    return cask__run_post(r, t, worker, rc, out, start, end, msg);
}

/* Drop the run's reference to output u once no consumer needs it. */
static void release(cask_run_t *r, uint32_t u)
{
    if (atomic_fetch_sub_explicit(&r->uses[u], 1, memory_order_acq_rel) == 1 &&
        cask__has_blob(&r->val[u])) {
        size_t b = cask__nbytes(&r->val[u]);
        cask_value_decref(&r->val[u]);
        if (b)
            atomic_fetch_sub_explicit(&r->bytes, b, memory_order_relaxed);
    }
}

void cask_run_complete(cask_run_t *r, cask_tid_t t,
                       void (*on_ready)(void *ctx, cask_tid_t s), void *ctx)
{
    cask__run_complete(r, t, on_ready, ctx, NULL);
    atomic_fetch_add_explicit(&r->done, 1, memory_order_relaxed);
}

/* Successors with at least this many predecessors are worth combining. */
#define COMBINE_MIN 16

void cask__run_flush(cask_run_t *r, cask__combo_t *c,
                     void (*on_ready)(void *ctx, cask_tid_t s), void *ctx)
{
    uint32_t k = c->k;
    c->k = 0;
    if (k && atomic_fetch_sub_explicit(&r->pending[c->s], k, memory_order_acq_rel) == k)
        on_ready(ctx, c->s);
}

void cask__run_complete(cask_run_t *r, cask_tid_t t,
                        void (*on_ready)(void *ctx, cask_tid_t s), void *ctx,
                        cask__combo_t *c)
{
    const cask_graph_t *g = r->g;
    uint32_t gt = r->p.task[t];
    const cask_value_t *in = cask__inputs(g, gt);
    size_t n = cask__n_args(g, gt);
    for (size_t i = 0; i < n; i++)
        if (in[i].type == CASK_REF)
            release(r, r->p.pidx[in[i].u.task]);
    if (r->p.nuse[t] == 0 && cask__has_blob(&r->val[t])) /* nobody reads it */
        cask_value_decref(&r->val[t]);
    const uint32_t *s = r->p.succ + r->p.succ_off[t];
    const uint32_t *end = r->p.succ + r->p.succ_off[t + 1];
    for (; s < end; s++) {
        if (c && c->k && c->s == *s) {
            c->k++;
            continue;
        }
        if (c && r->p.npred[*s] >= COMBINE_MIN) {
            cask__run_flush(r, c, on_ready, ctx);
            c->s = *s;
            c->k = 1;
            continue;
        }
        if (atomic_fetch_sub_explicit(&r->pending[*s], 1, memory_order_acq_rel) == 1)
            on_ready(ctx, *s);
    }
}

/* ------------------------------------------------------------ ready queue */

/* The queue is a stack beside a binary heap. Entries go first when their
** rank is larger, then their tie: bytes freed, then the most recent push.
** A push whose (rank, bytes freed) equals the stack's, or finds the stack
** empty, goes on the stack; any other goes to the heap. So every heap entry
** with the stack's key is older than the whole stack, and on equal keys the
** stack wins: a wide graph's sources cost O(1) each. Heap pushes only
** append; the heap is repaired at the next pop, by sifting the new entries
** up when they are few or by one bottom-up heapify when they are many.
** Pops sift the hole down to a leaf taking the larger child, then the last
** entry up (Floyd): about log2(n) compares instead of 2 log2(n). */
typedef struct qent {
    double   rank;
    uint64_t tie;
    uint32_t t;
} qent_t;

static inline int before(const qent_t *a, const qent_t *b)
{
    return a->rank > b->rank || (a->rank == b->rank && a->tie > b->tie);
}

int cask_readyq_init(cask_readyq_t *q, const cask_run_t *r)
{
    memset(q, 0, sizeof *q);
    q->run = r;
    return 0;
}

/* Bytes that running t would let go: outputs whose last consumer is t. */
static uint64_t bytes_freed(const cask_run_t *r, cask_tid_t t)
{
    const cask_graph_t *g = r->g;
    uint32_t gt = r->p.task[t];
    const cask_value_t *in = cask__inputs(g, gt);
    uint64_t b = 0;
    for (size_t i = 0, m = cask__n_args(g, gt); i < m; i++)
        if (in[i].type == CASK_REF) {
            uint32_t u = r->p.pidx[in[i].u.task];
            if (cask__has_blob(&r->val[u]) &&
                atomic_load_explicit(&r->uses[u], memory_order_relaxed) == 1)
                b += cask__nbytes(&r->val[u]);
        }
    return b;
}

int cask_readyq_push(cask_readyq_t *q, cask_tid_t t)
{
    uint64_t freed = bytes_freed(q->run, t);
    if (freed > 0xffffffffu)
        freed = 0xffffffffu;
    double rank = q->run->p.rank[t];
    if (q->top && (rank != q->stack_rank || freed != q->stack_freed)) {
        if (q->len == q->cap && cask__grow(&q->heap, &q->cap, q->len + 1, sizeof(qent_t)))
            return CASK_ENOMEM;
        ((qent_t *)q->heap)[q->len++] = (qent_t){ rank, freed << 32 | (q->seq++ & 0xffffffffu), t };
        return 0;
    }
    if (q->top == q->room && cask__grow(&q->stack, &q->room, q->top + 1, sizeof(cask_tid_t)))
        return CASK_ENOMEM;
    ((cask_tid_t *)q->stack)[q->top++] = t; /* the newest of its key: no seq needed */
    q->stack_rank = rank;
    q->stack_freed = freed;
    return 0;
}

/* Move e up from hole i while it goes before its parent, stopping at top;
** put it there. */
static void rise(qent_t *h, size_t i, size_t top, qent_t e)
{
    while (i > top) {
        size_t parent = (i - 1) / 2;
        if (!before(&e, &h[parent]))
            break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = e;
}

/* Put e at hole i of h[0..n): down to a leaf by the larger child, then up. */
static void sift_hole(qent_t *h, size_t n, size_t i, qent_t e)
{
    size_t top = i, c;
    while ((c = 2 * i + 1) < n) {
        if (c + 1 < n && before(&h[c + 1], &h[c]))
            c++;
        h[i] = h[c];
        i = c;
    }
    rise(h, i, top, e);
}

/* Restore the heap over entries pushed since the last pop. */
static void repair(cask_readyq_t *q)
{
    qent_t *h = q->heap;
    size_t fresh = q->len - q->heaped;
    if (fresh * 8 > q->len) { /* many: heapify all, O(len) */
        for (size_t i = q->len / 2; i-- > 0;)
            sift_hole(h, q->len, i, h[i]);
    } else {
        for (size_t i = q->heaped; i < q->len; i++)
            rise(h, i, 0, h[i]);
    }
    q->heaped = q->len;
}

/* Whether the stack's top goes before the heap's; heap repaired. */
static bool stack_first(cask_readyq_t *q)
{
    if (q->heaped != q->len)
        repair(q);
    const qent_t *h = q->heap;
    return q->top && (!q->len || q->stack_rank > h[0].rank ||
                      (q->stack_rank == h[0].rank && q->stack_freed >= h[0].tie >> 32));
}

bool cask_readyq_peek(cask_readyq_t *q, cask_tid_t *t)
{
    if (stack_first(q)) {
        *t = ((cask_tid_t *)q->stack)[q->top - 1];
        return true;
    }
    if (!q->len)
        return false;
    *t = ((qent_t *)q->heap)[0].t;
    return true;
}

bool cask_readyq_pop(cask_readyq_t *q, cask_tid_t *t)
{
    if (stack_first(q)) {
        *t = ((cask_tid_t *)q->stack)[--q->top];
        return true;
    }
    if (!q->len)
        return false;
    qent_t *h = q->heap;
    *t = h[0].t;
    q->len--;
    if (q->len)
        sift_hole(h, q->len, 0, h[q->len]);
    q->heaped = q->len;
    return true;
}

size_t cask_readyq_size(const cask_readyq_t *q)
{
    return q->len + q->top;
}

void cask_readyq_destroy(cask_readyq_t *q)
{
    cask__free(q->heap);
    cask__free(q->stack);
    q->heap = q->stack = NULL;
    q->len = q->cap = q->heaped = q->top = q->room = 0;
}

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
const char *cask_run_key(const cask_run_t *r, cask_tid_t t) { return cask__graph_key(r->g, r->p.task[t]); }

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
    uint32_t gt = r->p.task[t];
    const cask__kernel_t *k = cask__kernel_get(r->p.gv.kernel[gt]);
    const cask_value_t *in = cask__view_inputs(&r->p.gv, gt);
    size_t n = cask__view_nargs(&r->p.gv, gt);
    cask_value_t small[8], *args = small;

    *out = cask_none();
    *start = *end = 0;
    if (n > 8 && !(args = cask__malloc(n * sizeof *args))) {
        snprintf(msg, msgcap, "no memory for %zu arguments", n);
        return CASK_ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        args[i] = in[i].type == CASK_REF ? r->val[r->p.pidx[cask__tix(in[i].u.task)]] : in[i];
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
    if (!rc && cask__is_view(out)) { /* an item of an input list: its own value now */
        cask_value_t item = *out;
        if ((rc = cask__value_copy(&item, out)))
            snprintf(msg, msgcap, "no memory to keep a list item of %zu bytes",
                     cask_value_nbytes(&item));
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
        cb->posttask(cb->udata, cask__graph_key(g, gt), worker,
                     (double)(end - start) * c.ns_per_tick * 1e-9, rc);
    }
    if (rc) {
        cask_error_t e;
        cask__err(&e, rc, cask__graph_key(g, gt), cask__kernel_name(g, gt), "%s", msg);
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
    uint32_t gt = r->p.task[t];
    const cask_value_t *in = cask__view_inputs(&r->p.gv, gt);
    size_t n = cask__view_nargs(&r->p.gv, gt);
    for (size_t i = 0; i < n; i++)
        if (in[i].type == CASK_REF)
            release(r, r->p.pidx[cask__tix(in[i].u.task)]);
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

/* Tasks of one key (rank, bytes freed) wait in a bucket, newest first, as
** a list linked through q->next (a task is in the queue at most once, so
** one link per task of the run is all the storage lists need). Buckets
** with tasks sit in a binary heap by key, and a hash table finds a key's
** bucket. So a push or pop costs O(1) plus O(log buckets) when a key
** appears or runs out: a graph with few distinct ranks (a wide fan-out, a
** reduction tree's levels) never pays for a heap of tasks. */
typedef struct qbucket {
    double   rank;
    uint64_t freed;
    uint32_t head;   /* newest task, or the next free bucket when unused */
    uint32_t slot;   /* where the hash table holds this bucket */
} qbucket_t;

#define QNONE UINT32_MAX

static inline int key_before(const qbucket_t *a, const qbucket_t *b)
{
    return a->rank > b->rank || (a->rank == b->rank && a->freed > b->freed);
}

int cask_readyq_init(cask_readyq_t *q, const cask_run_t *r)
{
    memset(q, 0, sizeof *q);
    q->run = r;
    q->last = q->free = q->solo = QNONE;
    return 0;
}

/* Bytes that running t would let go: outputs whose last consumer is t. */
uint64_t cask__readyq_freed(const cask_run_t *r, cask_tid_t t)
{
    uint32_t gt = r->p.task[t];
    const cask_value_t *in = cask__view_inputs(&r->p.gv, gt);
    uint64_t b = 0;
    for (size_t i = 0, m = cask__view_nargs(&r->p.gv, gt); i < m; i++)
        if (in[i].type == CASK_REF) {
            uint32_t u = r->p.pidx[cask__tix(in[i].u.task)];
            if (cask__has_blob(&r->val[u]) &&
                atomic_load_explicit(&r->uses[u], memory_order_relaxed) == 1)
                b += cask__nbytes(&r->val[u]);
        }
    return b;
}

static inline size_t key_hash(double rank, uint64_t freed)
{
    uint64_t h;
    memcpy(&h, &rank, sizeof h);
    h ^= freed * 0x9e3779b97f4a7c15u;
    h *= 0xff51afd7ed558ccdu;
    return (size_t)(h ^ h >> 32);
}

/* The bucket of (rank, freed), or QNONE; *slot: where it is or would go. */
static uint32_t map_find(const cask_readyq_t *q, double rank, uint64_t freed, size_t *slot)
{
    const qbucket_t *b = q->bkt;
    size_t mask = q->mcap - 1, i = key_hash(rank, freed) & mask;
    for (; q->map[i] != QNONE; i = (i + 1) & mask)
        if (b[q->map[i]].rank == rank && b[q->map[i]].freed == freed)
            break;
    *slot = i;
    return q->map[i];
}

static int map_grow(cask_readyq_t *q)
{
    size_t cap = q->mcap ? 2 * q->mcap : 16;
    uint32_t *m = cask__malloc(cap * sizeof *m);
    if (!m)
        return CASK_ENOMEM;
    memset(m, 0xff, cap * sizeof *m);
    uint32_t *old = q->map;
    size_t n = q->mcap;
    q->map = m;
    q->mcap = cap;
    qbucket_t *b = q->bkt;
    for (size_t i = 0; i < n; i++)
        if (old[i] != QNONE) {
            size_t s;
            map_find(q, b[old[i]].rank, b[old[i]].freed, &s);
            m[s] = old[i];
            b[old[i]].slot = (uint32_t)s;
        }
    cask__free(old);
    return 0;
}

/* Empty slot i (linear probing): shift later entries of its run back. */
static void map_erase(cask_readyq_t *q, size_t i)
{
    qbucket_t *b = q->bkt;
    size_t mask = q->mcap - 1;
    for (size_t j = (i + 1) & mask; q->map[j] != QNONE; j = (j + 1) & mask) {
        size_t home = key_hash(b[q->map[j]].rank, b[q->map[j]].freed) & mask;
        if (((j - home) & mask) >= ((j - i) & mask)) { /* home is not in (i, j] */
            q->map[i] = q->map[j];
            b[q->map[i]].slot = (uint32_t)i;
            i = j;
        }
    }
    q->map[i] = QNONE;
}

/* Move bucket id up from hole i while it goes before its parent. */
static void rise(cask_readyq_t *q, size_t i, uint32_t id)
{
    uint32_t *h = q->heap;
    const qbucket_t *b = q->bkt;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!key_before(&b[id], &b[h[parent]]))
            break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = id;
}

/* A new bucket for (rank, freed) at map slot s, in the heap; or QNONE. */
static uint32_t bucket_new(cask_readyq_t *q, double rank, uint64_t freed, size_t s)
{
    if (q->nheap == q->hcap && cask__grow((void **)&q->heap, &q->hcap, q->nheap + 1,
                                          sizeof *q->heap))
        return QNONE;
    uint32_t id = q->free;
    if (id == QNONE) {
        if (q->nbkt == q->bcap &&
            cask__grow((void **)&q->bkt, &q->bcap, q->nbkt + 1, sizeof(qbucket_t)))
            return QNONE;
        id = (uint32_t)q->nbkt++;
    } else {
        q->free = ((qbucket_t *)q->bkt)[id].head;
    }
    ((qbucket_t *)q->bkt)[id] = (qbucket_t){ rank, freed, QNONE, (uint32_t)s };
    q->map[s] = id;
    rise(q, q->nheap++, id);
    return id;
}

int cask_readyq_push(cask_readyq_t *q, cask_tid_t t)
{
    return cask__readyq_put(q, t, cask__readyq_freed(q->run, t));
}

/* File t under its key in the buckets. */
static int put_bucket(cask_readyq_t *q, cask_tid_t t, double rank, uint64_t freed)
{
    uint32_t id = q->last;
    if (id == QNONE || ((qbucket_t *)q->bkt)[id].rank != rank ||
        ((qbucket_t *)q->bkt)[id].freed != freed) {
        if (2 * (q->nheap + 1) > q->mcap && map_grow(q))
            return CASK_ENOMEM;
        size_t s;
        id = map_find(q, rank, freed, &s);
        if (id == QNONE && (id = bucket_new(q, rank, freed, s)) == QNONE)
            return CASK_ENOMEM;
        q->last = id;
    }
    q->next[t] = ((qbucket_t *)q->bkt)[id].head;
    ((qbucket_t *)q->bkt)[id].head = t;
    return 0;
}

/* A task pushed into an empty queue waits alone, outside the buckets, so
** a chain (one ready task at a time) never touches the table or the heap;
** the next push files it. */
int cask__readyq_put(cask_readyq_t *q, cask_tid_t t, uint64_t freed)
{
    double rank = q->run->p.rank[t];
    if (!q->size) {
        q->solo = t;
        q->solo_rank = rank;
        q->solo_freed = freed;
        q->size = 1;
        return 0;
    }
    if (!q->next) {
        size_t n = cask_run_size(q->run);
        if (!(q->next = cask__malloc((n ? n : 1) * sizeof *q->next)))
            return CASK_ENOMEM;
    }
    if (q->solo != QNONE) {
        if (put_bucket(q, q->solo, q->solo_rank, q->solo_freed))
            return CASK_ENOMEM;
        q->solo = QNONE;
    }
    if (put_bucket(q, t, rank, freed))
        return CASK_ENOMEM;
    q->size++;
    return 0;
}

bool cask_readyq_peek(cask_readyq_t *q, cask_tid_t *t)
{
    if (!q->size)
        return false;
    *t = q->solo != QNONE ? q->solo : ((qbucket_t *)q->bkt)[q->heap[0]].head;
    return true;
}

bool cask_readyq_pop(cask_readyq_t *q, cask_tid_t *t)
{
    if (!q->size)
        return false;
    if (q->solo != QNONE) {
        *t = q->solo;
        q->solo = QNONE;
        q->size = 0;
        return true;
    }
    uint32_t id = q->heap[0];
    qbucket_t *b = q->bkt;
    *t = b[id].head;
    q->size--;
    if ((b[id].head = q->next[*t]) != QNONE)
        return true;
    /* The bucket ran out: out of the table, the heap, and into the free
    ** list. Its hole at the root sinks by the better child to a leaf,
    ** then the heap's last bucket rises from there (Floyd). */
    map_erase(q, b[id].slot);
    b[id].head = q->free;
    q->free = id;
    if (q->last == id)
        q->last = QNONE;
    uint32_t *h = q->heap, last = h[--q->nheap];
    size_t i = 0, c, n = q->nheap;
    while ((c = 2 * i + 1) < n) {
        if (c + 1 < n && key_before(&b[h[c + 1]], &b[h[c]]))
            c++;
        h[i] = h[c];
        i = c;
    }
    if (n)
        rise(q, i, last);
    return true;
}

size_t cask_readyq_size(const cask_readyq_t *q)
{
    return q->size;
}

void cask_readyq_destroy(cask_readyq_t *q)
{
    cask__free(q->next);
    cask__free(q->bkt);
    cask__free(q->heap);
    cask__free(q->map);
    cask_readyq_init(q, q->run);
}

/* Portable opaque values (borrowed array buffers) are let through: a
** forked worker reads the pointee as it was at the fork, and every MPI
** rank's graph points at the buffer that rank built it over. */
int cask__run_refuse_opaque(const cask_run_t *r, const char *where, cask_error_t *err)
{
    const cask_graph_t *g = r->g;
    for (uint32_t t = 0; t < r->p.n; t++) {
        uint32_t gt = r->p.task[t];
        const cask_value_t *in = cask__view_inputs(&r->p.gv, gt);
        for (size_t i = 0, n = cask__view_nargs(&r->p.gv, gt); i < n; i++)
            if (in[i].type == CASK_OPAQUE && !in[i].u.blob->portable)
                return cask__err(err, CASK_ETYPE, cask__graph_key(g, gt),
                                 cask__kernel_name(g, gt),
                                 "input %zu is an opaque pointer, which cannot cross %s "
                                 "(use the threads or sync scheduler)", i, where);
    }
    return 0;
}

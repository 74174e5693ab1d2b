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
double cask_run_priority(const cask_run_t *r, cask_tid_t t) { return (double)(r->p.n - r->p.pos[t]); }
double cask_run_rank(const cask_run_t *r, cask_tid_t t) { return r->p.rank[t]; }
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
    if (r->pool)
        cask__pool_poke(r);
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

/* Take k from counter c, which started at total; true when that empties
** it. When k is all of it (one reader, one input: the usual case), nobody
** else counts it down, and no read-modify-write is needed. */
static inline bool count_down(_Atomic uint32_t *c, uint32_t total, uint32_t k)
{
    if (k == total) {
        atomic_store_explicit(c, 0, memory_order_relaxed);
        return true;
    }
    return atomic_fetch_sub_explicit(c, k, memory_order_acq_rel) == k;
}

/* Drop the run's reference to output u once no consumer needs it. */
static void release(cask_run_t *r, uint32_t u)
{
    if (count_down(&r->uses[u], r->p.nuse[u], 1) && cask__has_blob(&r->val[u])) {
        size_t b = cask__nbytes(&r->val[u]);
        cask_value_decref(&r->val[u]);
        if (b)
            atomic_fetch_sub_explicit(&r->bytes, b, memory_order_relaxed);
    }
}

int cask__run_deliver(cask_run_t *r, cask_tid_t t, bool let_go)
{
    const cask__hooks_t *h = r->hooks;
    int rc = 0;
    for (uint32_t i = r->out_first[t]; i != UINT32_MAX; i = r->out_next[i]) {
        if (r->delivered[i])
            continue;
        r->delivered[i] = 1;
        if (!rc && (rc = h->deliver(h->ctx, i, &r->val[t]))) {
            cask_error_t e;
            cask__err(&e, rc < 0 ? rc : CASK_ECANCELED, cask_run_key(r, t), NULL,
                      "the function given output %u stopped the compute", i);
            cask__run_fail(r, &e);
        }
        if (h->release && let_go && !r->keep_outputs) /* the request's hold: consumers
                                                          still keep theirs */
            release(r, t);
    }
    return rc;
}

/* The seconds of a kernel that ran from start to end (ticks). */
static double seconds_of(uint64_t start, uint64_t end)
{
    cask__tickconv_t c;
    cask__tick_rate(&c);
    return (double)(end - start) * c.ns_per_tick * 1e-9;
}

int cask__invoke(const cask__kernel_t *k, const cask_value_t *args, size_t n, int worker,
                 bool timed, const cask__cache_t *cache, cask_tid_t t, cask_value_t *out,
                 uint64_t *start, uint64_t *end, char *msg, size_t msgcap)
{
    *out = cask_none();
    *start = *end = 0;
    if (timed)
        *start = cask__tick();
    int rc = cask__kernel_invoke(k, args, n, out, worker, msg, msgcap);
    if (timed)
        *end = cask__tick();
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
    if (!rc && cache)
        cask__cache_put(cache, t, out, timed ? seconds_of(*start, *end) : 0);
    return rc;
}

int cask__run_invoke(cask_run_t *r, cask_tid_t t, int worker, cask_value_t *out,
                     uint64_t *start, uint64_t *end, char *msg, size_t msgcap)
{
    uint32_t gt = r->p.task[t];
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
    int rc = cask__invoke(cask__kernel_get(r->p.gv.kernel[gt]), args, n, worker,
                          cask__run_timed(r), r->cache, t, out, start, end, msg, msgcap);
    if (args != small)
        cask__free(args);
    return rc;
}

bool cask__run_timed(const cask_run_t *r)
{
    return r->t_start || (r->cb && r->cb->posttask) ||
           (r->cache && (r->cache->min_s > 0 || r->cache->mcache));
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
        cask__run_unadmit(r, t);
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
    size_t b = cask__nbytes(&out);
    if (r->budget && b > cask__run_nbytes(r, t) && cask__run_nbytes(r, t)) { /* the budget counted on it */
        cask_error_t e;
        cask__err(&e, CASK_ENOMEM, cask__graph_key(g, gt), cask__kernel_name(g, gt),
                  "made %zu bytes, over the %llu its task was given (nbytes), which the "
                  "memory budget counts on", b, (unsigned long long)cask__run_nbytes(r, t));
        cask_value_decref(&out);
        r->val[t] = cask_none(); /* processes: it was written there */
        cask__run_fail(r, &e);
        cask__run_unadmit(r, t);
        return CASK_ENOMEM;
    }
    r->val[t] = out;
    if (b)
        add_bytes(r, b);
    cask__run_unadmit(r, t); /* after the bytes are held: never both uncounted */
    if (r->t_bytes)
        r->t_bytes[t] = b;
    /* an output made on another MPI rank comes as CASK_NONE: delivered
    ** when it reaches rank 0 (sched/mpi.c) */
    return r->out_first && out.type != CASK_NONE ? cask__run_deliver(r, t, true) : 0;
}

int cask__run_exec_at(cask_run_t *r, cask_tid_t t, int worker, uint64_t *end)
{
    char msg[256];
    cask_value_t out;
    uint64_t start;
    cask__run_pre(r, t, worker);
    int rc = cask__run_invoke(r, t, worker, &out, &start, end, msg, sizeof msg);
    return cask__run_post(r, t, worker, rc, out, start, *end, msg);
}

int cask_run_exec(cask_run_t *r, cask_tid_t t, int worker)
{
    uint64_t end;
    return cask__run_exec_at(r, t, worker, &end);
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
    if (k && count_down(&r->pending[c->s], r->p.npred[c->s], k))
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
        if (count_down(&r->pending[*s], r->p.npred[*s], 1))
            on_ready(ctx, *s);
    }
}

/* ------------------------------------------------------------ ready queue */

/* A bit per priority position (p.pos), and above it a bit per word of the
** level below that is not zero, up to one word: a push sets at most a bit
** per level, a pop follows the lowest set bit down and clears upwards while
** words empty. Any graph of up to 2^32 tasks needs at most six levels. */
int cask_readyq_init(cask_readyq_t *q, const cask_run_t *r)
{
    memset(q, 0, sizeof *q);
    q->run = r;
    return 0;
}

static int bits_make(cask_readyq_t *q)
{
    size_t words = 0, k = cask_run_size(q->run);
    int l = 0;
    do {
        k = (k + 63) / 64;
        q->off[l++] = (uint32_t)words;
        words += k ? k : 1;
    } while (k > 1);
    q->levels = l;
    return (q->bits = cask__big_calloc(words, sizeof *q->bits)) ? 0 : CASK_ENOMEM;
}

int cask_readyq_push(cask_readyq_t *q, cask_tid_t t)
{
    if (!q->bits && bits_make(q))
        return CASK_ENOMEM;
    size_t i = q->run->p.pos[t];
    for (int l = 0; l < q->levels; l++, i >>= 6) {
        uint64_t *w = &q->bits[q->off[l] + (i >> 6)], old = *w;
        *w = old | (uint64_t)1 << (i & 63);
        if (old)
            break;
    }
    q->size++;
    return 0;
}

/* The lowest position queued (q not empty). */
static size_t first_pos(const cask_readyq_t *q)
{
    size_t i = 0;
    for (int l = q->levels; l-- > 0;)
        i = i << 6 | (size_t)__builtin_ctzll(q->bits[q->off[l] + i]);
    return i;
}

/* Take position i (queued) out of q. */
static void take_pos(cask_readyq_t *q, size_t i)
{
    for (int l = 0; l < q->levels; l++, i >>= 6) {
        uint64_t *w = &q->bits[q->off[l] + (i >> 6)];
        if ((*w &= ~((uint64_t)1 << (i & 63))))
            break;
    }
    q->size--;
}

bool cask_readyq_peek(cask_readyq_t *q, cask_tid_t *t)
{
    if (!q->size)
        return false;
    *t = q->run->p.bypos[first_pos(q)];
    return true;
}

bool cask_readyq_pop(cask_readyq_t *q, cask_tid_t *t)
{
    if (!q->size)
        return false;
    size_t i = first_pos(q);
    *t = q->run->p.bypos[i];
    take_pos(q, i);
    return true;
}

size_t cask_readyq_size(const cask_readyq_t *q)
{
    return q->size;
}

void cask_readyq_destroy(cask_readyq_t *q)
{
    cask__big_free(q->bits);
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

/* ---------------------------------------------------------- memory budget */

/* Whether t fits now: unsized, or its size beside what is held and
** reserved is within the budget. */
static bool fits_bytes(const cask_run_t *r, uint64_t size)
{
    size_t held = atomic_load_explicit(&r->bytes, memory_order_relaxed);
    size_t res = atomic_load_explicit(&r->reserved, memory_order_relaxed);
    return held <= r->budget && res <= r->budget - held && size <= r->budget - held - res;
}

/* Whether t may start: unsized, or its size and the largest size among
** its consumers (which make theirs while t's output lives) fit beside what
** is held and reserved. Looking one step ahead keeps producers from taking
** the budget to the byte, leaving their consumers no room. */
static bool fits(const cask_run_t *r, cask_tid_t t)
{
    return !cask__run_nbytes(r, t) || fits_bytes(r, r->need[t]);
}

bool cask__run_admit(cask_run_t *r, cask_tid_t t)
{
    if (!r->budget)
        return true;
    uint64_t size = cask__run_nbytes(r, t);
    if (!fits(r, t))
        return false;
    atomic_fetch_add_explicit(&r->reserved, (size_t)size, memory_order_relaxed);
    return true;
}

void cask__run_unadmit(cask_run_t *r, cask_tid_t t)
{
    uint64_t size = r->budget ? cask__run_nbytes(r, t) : 0;
    if (size)
        atomic_fetch_sub_explicit(&r->reserved, (size_t)size, memory_order_relaxed);
}

/* The lowest position queued after position i (SIZE_MAX: none), from the
** bottom level up: the rest of i's word, else the next word with a bit set,
** found through the level above. */
static size_t next_pos(const cask_readyq_t *q, size_t i)
{
    int l = 0;
    size_t at = i + 1;
    for (;; l++) { /* climb until a level has a set bit at or after `at` */
        if (l == q->levels)
            return SIZE_MAX;
        size_t words = l + 1 < q->levels ? q->off[l + 1] - q->off[l] : 1;
        if ((at >> 6) < words) {
            uint64_t w = q->bits[q->off[l] + (at >> 6)] & (~(uint64_t)0 << (at & 63));
            if (w) {
                at = (at & ~(size_t)63) | (size_t)__builtin_ctzll(w);
                break;
            }
        }
        at = (at >> 6) + 1;
    }
    while (l-- > 0) /* and down, lowest set bit each time */
        at = at << 6 | (size_t)__builtin_ctzll(q->bits[q->off[l] + at]);
    return at;
}

/* Whether t, once run, lets go of at least as many bytes as it makes: it
** is the last reader of inputs that size (by the given sizes). */
static bool frees(const cask_run_t *r, cask_tid_t t)
{
    uint32_t gt = r->p.task[t];
    uint64_t make = cask__run_nbytes(r, t), let_go = 0;
    const cask_value_t *in = cask__view_inputs(&r->p.gv, gt);
    for (size_t i = 0, k = cask__view_nargs(&r->p.gv, gt); i < k && let_go < make; i++) {
        if (in[i].type != CASK_REF)
            continue;
        uint32_t u = r->p.pidx[cask__tix(in[i].u.task)];
        if (atomic_load_explicit(&r->uses[u], memory_order_relaxed) == 1)
            let_go += cask__run_nbytes(r, u);
    }
    return let_go >= make;
}

bool cask__readyq_pick(cask_readyq_t *q, const cask_run_t *r, bool running,
                       int (*fit)(void *ctx, cask_tid_t t), void *ctx, cask_tid_t *t,
                       int *where)
{
    size_t pick = SIZE_MAX, any = SIZE_MAX;
    int pk = -1, ak = -1;
    for (size_t i = q->size ? first_pos(q) : SIZE_MAX, first = i; i != SIZE_MAX;
         i = next_pos(q, i)) {
        cask_tid_t u = r->p.bypos[i];
        int k = fit(ctx, u);
        if (k < 0)
            continue;
        if (i == first || frees(r, u)) {
            pick = i, pk = k;
            break;
        }
        if (any == SIZE_MAX)
            any = i, ak = k;
    }
    if (pick == SIZE_MAX && !running)
        pick = any, pk = ak;
    if (pick == SIZE_MAX)
        return false;
    *t = r->p.bypos[pick];
    *where = pk;
    take_pos(q, pick);
    return true;
}

static int fits_here(void *ctx, cask_tid_t t)
{
    return fits(ctx, t) ? 0 : -1;
}

bool cask__readyq_pop_admitted(cask_readyq_t *q, cask_run_t *r, bool running, cask_tid_t *t)
{
    int where;
    if (!r->budget)
        return cask_readyq_pop(q, t);
    if (!cask__readyq_pick(q, r, running, fits_here, r, t, &where))
        return false;
    if (cask__run_admit(r, *t)) /* it fits still, unless an output landed meanwhile */
        return true;
    cask_readyq_push(q, *t); /* its bit's word is there: cannot fail */
    return false;
}

int cask__run_budget_check(cask_run_t *r, bool released, cask_error_t *err)
{
    const cask_graph_t *g = r->g;
    const cask__plan_t *p = &r->p;
    uint32_t *mark = cask__big_calloc(p->n ? p->n : 1, sizeof *mark);
    if (!mark || !(r->need = cask__big_malloc((p->n ? p->n : 1) * sizeof *r->need))) {
        cask__big_free(mark);
        return cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory to check the budget");
    }
    int rc = 0;
    for (uint32_t t = 0; t < p->n && !rc; t++) {
        uint32_t gt = p->task[t];
        uint64_t out = cask__view_nbytes(&p->gv, gt), in = 0, next = 0;
        for (uint32_t e = p->succ_off[t]; e < p->succ_off[t + 1]; e++) {
            uint64_t s = cask__view_nbytes(&p->gv, p->task[p->succ[e]]);
            next = s > next ? s : next;
        }
        r->need[t] = out + next < r->budget ? out + next : r->budget;
        const cask_value_t *iv = cask__view_inputs(&p->gv, gt);
        for (size_t i = 0, k = cask__view_nargs(&p->gv, gt); i < k; i++) {
            if (iv[i].type != CASK_REF)
                continue;
            uint32_t u = p->pidx[cask__tix(iv[i].u.task)];
            if (mark[u] != t + 1) {
                mark[u] = t + 1;
                in += cask__view_nbytes(&p->gv, p->task[u]);
            }
        }
        if (out + in > r->budget)
            rc = cask__err(err, CASK_ENOMEM, cask__graph_key(g, gt), cask__kernel_name(g, gt),
                           "needs %llu bytes at once (its output %llu, its inputs %llu), over "
                           "the memory budget of %zu bytes", (unsigned long long)(out + in),
                           (unsigned long long)out, (unsigned long long)in, r->budget);
    }
    if (!rc && !released) {
        uint64_t all = 0;
        for (size_t i = 0; i < p->n_out; i++) {
            uint32_t o = p->out[i];
            if (mark[o] != UINT32_MAX) {
                mark[o] = UINT32_MAX;
                all += cask__view_nbytes(&p->gv, p->task[o]);
            }
        }
        if (all > r->budget)
            rc = cask__err(err, CASK_ENOMEM, NULL, NULL,
                           "the %zu outputs asked for take %llu bytes, held until the compute "
                           "ends, over the memory budget of %zu bytes (cask_compute_each takes "
                           "them as they come)", p->n_out, (unsigned long long)all, r->budget);
    }
    cask__big_free(mark);
    return rc;
}

void cask__run_stalled(cask_run_t *r, cask_readyq_t *q)
{
    cask_tid_t t;
    if (!cask_readyq_peek(q, &t))
        return;
    size_t held = atomic_load(&r->bytes);
    cask_error_t e;
    cask__err(&e, CASK_ENOMEM, cask_run_key(r, t), cask__kernel_name(r->g, r->p.task[t]),
              "the memory budget of %zu bytes is too small for this graph: %zu bytes of "
              "outputs are held for tasks still to run, and no ready task fits beside them "
              "(this one makes %llu)", r->budget, held, (unsigned long long)cask__run_nbytes(r, t));
    cask__run_fail(r, &e);
}

/*
** sched/threads.c: the threads scheduler: pools of worker threads
** (cask_pool_t) that every compute made on them shares.
**
** A pool starts its threads once; each compute on it joins the pool's
** list of runs in flight and leaves when it has ended. A worker serves
** one run at a time. Among the runs with ready tasks it takes the one
** whose first ready task scores best: that task's upward rank (seconds
** to the end of its graph along its costliest path) plus the seconds its
** compute has been in the pool. So the critical path goes first across
** computes, and a compute that waits gains a second for each second it
** waits: none starves. A worker serving one run among several looks
** again every SLICE_NS of work, and at once when its run has nothing
** ready for it. Runs no thread has served yet (thousands of submits
** waiting) keep their claims' order, so they wait in a heap; the runs
** being served are scored one by one.
**
** Within a run, ready tasks wait in one cask_readyq_t (the priority order
** every scheduler uses) under the run's mutex. Each worker also holds a
** few tasks of its own: the successors its last task made ready (their
** inputs are still in its cache) and, when tasks are cheap, a batch taken
** from the queue in one locked visit. Before each task a worker compares
** the best it holds with the priority of the queue's first task, published
** in an atomic: if the queue's is better, it goes to the queue, so the
** priority order still holds. How much a worker holds follows how long its
** tasks take (a running mean of its own, which starts from the plan's mean
** estimate): with tasks over CHEAP_TICKS (a few microseconds) it keeps one,
** hands the rest to the queue and takes one at a time, so no worker sits
** on work another could do; with cheaper tasks it keeps up to HOLD and
** takes up to BATCH per visit, never more than its share of the queue,
** since then the lock costs more than the tasks. Completions are added to
** the run's count in batches too, and the tasks a worker hands the queue
** are pushed in one locked visit. A worker that leaves a run gives back
** everything it holds. Idle workers sleep on the pool's condition
** variable; nobody spins. A compute with a memory budget is served by
** serve_budget instead: one task at a time from the queue, each admitted
** by the budget.
**
** A thread serves runs only while it holds one of the pool's slots, one
** per worker, so no more tasks run at once than the pool has workers. The
** thread that calls cask_compute takes a free slot and runs its compute's
** first tasks itself. A compute started from a task or a callback on a
** pool's thread is not left to wait for workers that may all be waiting
** too: that thread serves it to its end, with its own slot when the
** compute is on the pool it serves (the calling task is suspended
** meanwhile), else as one more worker (number cask_pool_workers()), so
** nested computes never deadlock.
*/
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sched.h"

#define HOLD        32        /* most tasks a worker keeps */
#define BATCH       16        /* most tasks taken from the queue per visit */
#define CHEAP_TICKS 10000.0   /* mean task ticks (~4 us) under which tasks are cheap */
#define SLICE_NS    1000000.0 /* among several runs, a worker looks for a better one this often */

typedef struct cask__prun prun_t;

typedef struct worker {
    _Alignas(64) prun_t *p;    /* a cache line of its own: no false sharing */
    int        id;
    cask_tid_t hold[HOLD];     /* tasks this worker keeps, by priority, best last */
    int        nhold;
    cask_tid_t *buf;           /* successors made ready by the last task */
    size_t     nbuf, cap;
    cask_tid_t *give;          /* tasks for the queue, not yet queued */
    size_t     ngive, gcap;
    size_t     unsaid;         /* completions not yet added to r->done */
    cask__combo_t combo;       /* decrements of a big fan-in held back */
    double     mean;           /* running mean of task ticks */
} worker_t;

/* A run in a pool. */
struct cask__prun {
    cask_run_t     *r;
    cask_pool_t    *pool;
    pthread_mutex_t lock;      /* guards q, running */
    cask_readyq_t   q;         /* ready tasks */
    atomic_bool     over;      /* every task done */
    _Atomic double  top;       /* priority of q's first task; -1 when empty */
    _Atomic double  toprank;   /* and its upward rank, seconds */
    atomic_int      nomem;     /* a push failed */
    atomic_bool     blocked;   /* budget: nothing fits until a task ends */
    size_t          n;         /* tasks in the run */
    int             nw;        /* the pool's workers; a helping caller is worker nw */
    int             running;   /* with a budget: tasks admitted, not completed */
    double          born;      /* seconds (monotonic) when it joined the pool */
    /* under the pool's lock: */
    int             attached;  /* threads serving it */
    bool            listed;    /* in flight on the pool (in the heap or touched) */
    bool            touched;   /* served once: in the touched list, not the heap */
    long            hidx;      /* its place in the pool's heap of fresh runs, or -1
                                  (set when listed) */
    double          key;       /* fresh: its first ready task's rank less born */
    prun_t         *tprev, *tnext; /* the touched list */
    bool            ended;     /* off the pool: its owner may go */
    prun_t         *next;      /* the pool's finished list */
    pthread_cond_t  fin;       /* ended */
    worker_t       *ws;        /* a state per worker, and one for a helper */
    void           *ws_mem;    /* (aligned within this) */
    cask__pool_ended ended_cb; /* cask__pool_start: called once it has ended, */
    void           *ctx;       /* by a worker of the pool */
};

struct cask_pool {
    int             nw;        /* workers */
    pthread_t      *tid;
    int             started;   /* threads started */
    pid_t           pid;       /* the process that made it */
    atomic_int      nruns;     /* runs in flight: read by every task, written rarely
                                  (under lock) */
    cask__store_t  *store;     /* the values persisted on it */
    cask__mcache_t *mcache;    /* its result cache, or NULL */
    cask__ppool_t  *procs;     /* a pool of "processes": its workers (no threads,
                                  no store); NULL for "threads" */
    char            pad1[64];  /* (cache lines apart from what changes often) */
    pthread_mutex_t lock;      /* guards runs, helpers, closing, each run's attached .. fin */
    pthread_cond_t  wake;      /* work appeared, or closing (helpers too: a run ended) */
    pthread_cond_t  empty;     /* the last run left */
    prun_t        **heap;      /* runs in flight no thread has served yet, by key, */
    size_t          nheap, capheap; /* best first: their claims stay until one does */
    prun_t         *touched;   /* the other runs in flight, scored one by one */
    prun_t         *finished;  /* ended runs of cask__pool_start, for a worker to
                                  hand back (linked by next) */
    char            pad2[64];
    atomic_int      sleeping;  /* threads waiting on wake */
    atomic_int      helpers;   /* of them, callers serving their own run (changed
                                  under lock, read unlocked as a hint) */
    int             holds;     /* submits on it not yet ended (cask__pool_hold) */
    int            *slots;     /* worker numbers free to serve with, nfree of them: */
    atomic_int      nfree;     /* a thread serves a run only with one, so no more than
                                  nw tasks of the pool run at once (changed under lock,
                                  read unlocked as a hint) */
    bool            closing;
    char            pad3[64];
};

static void hand_back(prun_t *p);

/* The pool whose run this thread serves now (NULL: none), with its slot;
** and, on a thread a pool started, that pool (its callbacks run there too,
** outside any run: a hand-back's finish callback). */
static _Thread_local cask_pool_t *my_pool;
static _Thread_local int my_slot;
static _Thread_local cask_pool_t *my_thread_pool;

/* How a thread that computes on P and waits serves that compute: -1 not at
** all beyond its first pass (a thread outside every pool); else to the end
** as this worker number: its slot when it serves a run of P with one, else
** number nw (one more worker: it serves a run of another pool, or is a
** thread of a pool outside any run, or serves P as such a worker already). */
static int nested_id(const cask_pool_t *P)
{
    if (my_pool == P)
        return my_slot;
    return my_pool || my_thread_pool ? P->nw : -1;
}

static double now_s(void)
{
    return (double)cask_now_ns() * 1e-9;
}

/* t's priority: higher first (cask_run_priority). */
static inline double prio_of(const cask_run_t *r, cask_tid_t t)
{
    return (double)(r->p.n - r->p.pos[t]);
}

/* Wake the pool's sleepers for `queued` new tasks, published before the
** call: one per task and free slot (a thread without a slot would only
** sleep again), every sleeper when callers wait there too. No wake-up is
** lost: a thread about to sleep counts itself in sleeping, then looks for
** work once more (pool_sleep), and this reads sleeping after the work is
** published, with a full fence on either side between the two. A slot
** freed meanwhile wakes a sleeper itself if there is work (detach). */
static int to_wake(const cask_pool_t *P, size_t queued)
{
    int s = atomic_load(&P->sleeping), f = atomic_load(&P->nfree);
    if (!atomic_load(&P->helpers) && f < s) /* helpers need no free slot */
        s = f;
    return !queued ? 0 : (size_t)s < queued ? s : (int)queued;
}

/* pool_notify's signals; pool lock held. */
static void wake_locked(cask_pool_t *P, int s)
{
    if (atomic_load(&P->helpers))
        pthread_cond_broadcast(&P->wake);
    else
        for (int i = 0; i < s; i++)
            pthread_cond_signal(&P->wake);
}

static void pool_notify(cask_pool_t *P, size_t queued)
{
    atomic_thread_fence(memory_order_seq_cst);
    int s = to_wake(P, queued);
    if (s <= 0)
        return;
    pthread_mutex_lock(&P->lock);
    wake_locked(P, s);
    pthread_mutex_unlock(&P->lock);
}

/* Publish the priority of the queue's first task (-1: empty); run lock held. */
static void publish_top(prun_t *p)
{
    cask_tid_t t;
    bool any = cask_readyq_peek(&p->q, &t);
    atomic_store_explicit(&p->toprank, any ? p->r->p.rank[t] : 0, memory_order_relaxed);
    atomic_store_explicit(&p->top, any ? prio_of(p->r, t) : -1, memory_order_relaxed);
}

/* Has p ended, once no thread serves it? */
static bool done_with(prun_t *p)
{
    return atomic_load(&p->over) || atomic_load(&p->nomem) || cask_run_stopped(p->r);
}

/* Does p have a ready task for a worker that comes to it? */
static bool has_work(prun_t *p)
{
    return atomic_load_explicit(&p->top, memory_order_relaxed) >= 0 &&
           !atomic_load(&p->blocked) && !done_with(p);
}

/* Nothing in flight on P, nothing to hand back, no submit holding it; lock held. */
static bool idle(const cask_pool_t *P)
{
    return !atomic_load(&P->nruns) && !P->holds && !P->finished;
}

static void heap_remove(cask_pool_t *P, prun_t *p);

/* A run's claim on a worker: its first ready task's rank plus its age. */
static double score(prun_t *p, double rank, double now)
{
    return rank + (now - p->born);
}

/* Take p off the pool's list if it is done and nobody serves it; pool lock held. */
static void maybe_end(cask_pool_t *P, prun_t *p)
{
    if (!p->listed || p->attached || !done_with(p))
        return;
    p->listed = false;
    p->r->pool_run = NULL; /* a stop from now on has nothing to end here */
    if (p->hidx >= 0)
        heap_remove(P, p);
    if (p->touched) {
        if (p->tprev)
            p->tprev->tnext = p->tnext;
        else
            P->touched = p->tnext;
        if (p->tnext)
            p->tnext->tprev = p->tprev;
    }
    atomic_fetch_sub(&P->nruns, 1);
    p->ended = true;
    if (p->ended_cb) { /* a worker hands it back, outside every lock */
        p->next = P->finished;
        P->finished = p;
        pthread_cond_broadcast(&P->wake);
        return;
    }
    pthread_cond_broadcast(&p->fin);
    if (P->helpers)
        pthread_cond_broadcast(&P->wake);
    if (idle(P))
        pthread_cond_broadcast(&P->empty);
}

void cask__pool_hold(cask_pool_t *P)
{
    pthread_mutex_lock(&P->lock);
    P->holds++;
    pthread_mutex_unlock(&P->lock);
}

void cask__pool_drop(cask_pool_t *P)
{
    pthread_mutex_lock(&P->lock);
    if (!--P->holds && idle(P))
        pthread_cond_broadcast(&P->empty);
    pthread_mutex_unlock(&P->lock);
}

void cask__pool_poke(cask_run_t *r)
{
    cask_pool_t *P = r->pool;
    pthread_mutex_lock(&P->lock);
    if (r->pool_run) /* in flight: set and cleared under this lock */
        maybe_end(P, r->pool_run);
    pthread_mutex_unlock(&P->lock);
}

/* The heap of fresh runs (pool lock held). A run that no thread has served
** has the ready tasks it was listed with, so its claim on a worker, rank
** plus age, stays its key plus the time now: the runs in it keep their
** order, and the best of thousands of submits is found in O(log). */
static void heap_set(cask_pool_t *P, size_t i, prun_t *p)
{
    P->heap[i] = p;
    p->hidx = (long)i;
}

static void heap_up(cask_pool_t *P, size_t i)
{
    prun_t *p = P->heap[i];
    while (i > 0 && P->heap[(i - 1) / 2]->key < p->key) {
        heap_set(P, i, P->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_set(P, i, p);
}

static void heap_down(cask_pool_t *P, size_t i)
{
    prun_t *p = P->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= P->nheap)
            break;
        if (c + 1 < P->nheap && P->heap[c + 1]->key > P->heap[c]->key)
            c++;
        if (P->heap[c]->key <= p->key)
            break;
        heap_set(P, i, P->heap[c]);
        i = c;
    }
    heap_set(P, i, p);
}

static void heap_remove(cask_pool_t *P, prun_t *p)
{
    size_t i = (size_t)p->hidx;
    p->hidx = -1;
    prun_t *last = P->heap[--P->nheap];
    if (last == p)
        return;
    heap_set(P, i, last);
    heap_up(P, i);
    heap_down(P, (size_t)last->hidx);
}

/* p is served from now on: its claim moves with its ready tasks, so it is
** scored one by one. */
static void touch(cask_pool_t *P, prun_t *p)
{
    if (p->touched)
        return;
    if (p->hidx >= 0)
        heap_remove(P, p);
    p->touched = true;
    p->tprev = NULL;
    p->tnext = P->touched;
    if (P->touched)
        P->touched->tprev = p;
    P->touched = p;
}

/* Count a thread in p's servers; pool lock held. */
static void attach(cask_pool_t *P, prun_t *p)
{
    touch(P, p);
    p->attached++;
}

/* The run with ready work that scores best (NULL: none); pool lock held.
** Cost: O(touched runs + log fresh ones). */
static prun_t *best_run(cask_pool_t *P, double *best)
{
    prun_t *b = NULL;
    double now = now_s();
    while (P->nheap && !has_work(P->heap[0])) { /* stopped before anyone came */
        prun_t *top = P->heap[0];
        maybe_end(P, top);
        if (top->hidx == 0) /* not ended (cannot happen): score it one by one */
            touch(P, top);
    }
    if (P->nheap) {
        b = P->heap[0];
        *best = b->key + now;
    }
    for (prun_t *p = P->touched; p; p = p->tnext) {
        if (!has_work(p))
            continue;
        double s = score(p, atomic_load_explicit(&p->toprank, memory_order_relaxed), now);
        if (!b || s > *best)
            b = p, *best = s;
    }
    return b;
}

/* Should a worker serving p, whose next task has upward rank `rank`, go to
** another run? */
static bool better_elsewhere(prun_t *p, double rank)
{
    cask_pool_t *P = p->pool;
    pthread_mutex_lock(&P->lock);
    double best, mine = score(p, rank, now_s());
    prun_t *b = best_run(P, &best);
    pthread_mutex_unlock(&P->lock);
    return b && b != p && best > mine;
}

static void collect(void *ctx, cask_tid_t s)
{
    worker_t *w = ctx;
    if (cask__grow((void **)&w->buf, &w->cap, w->nbuf + 1, sizeof *w->buf))
        atomic_store(&w->p->nomem, 1);
    else
        w->buf[w->nbuf++] = s;
}

/* Add w's completions to the run's count; true when that makes it whole. */
static bool say_done(worker_t *w)
{
    size_t k = w->unsaid;
    w->unsaid = 0;
    return k && atomic_fetch_add_explicit(&w->p->r->done, k, memory_order_acq_rel) + k == w->p->n;
}

/* Index of the best task w holds (nhold > 0): the last. */
static inline int best_held(const worker_t *w)
{
    return w->nhold - 1;
}

/* Keep t (room assured), in priority order (no two tasks share one). */
static void hold_add(worker_t *w, cask_tid_t t)
{
    const cask_run_t *r = w->p->r;
    double x = prio_of(r, t);
    int i = w->nhold;
    while (i > 0 && prio_of(r, w->hold[i - 1]) > x)
        i--;
    memmove(w->hold + i + 1, w->hold + i, (size_t)(w->nhold - i) * sizeof *w->hold);
    w->hold[i] = t;
    w->nhold++;
}

static void push(prun_t *p, cask_tid_t t) /* run lock held */
{
    if (cask_readyq_push(&p->q, t))
        atomic_store(&p->nomem, 1);
}

/* Queue t at w's next locked visit, so the lock is taken once for many. */
static void give(worker_t *w, cask_tid_t t)
{
    if (cask__grow((void **)&w->give, &w->gcap, w->ngive + 1, sizeof *w->give))
        atomic_store(&w->p->nomem, 1);
    else
        w->give[w->ngive++] = t;
}

/* Queue what w gives; run lock held. */
static void give_up(prun_t *p, worker_t *w)
{
    for (size_t i = 0; i < w->ngive; i++)
        push(p, w->give[i]);
    w->ngive = 0;
}

/* Wake a sleeper per queued task; run lock held. */
static void wake_some(prun_t *p)
{
    size_t queued = cask_readyq_size(&p->q);
    if (queued)
        pool_notify(p->pool, queued);
}

/*
** Visit the queue: hand back what w should not keep (everything when tasks
** are costly), then, unless w still holds something at least as good as
** the queue's first, take a batch. Returns false when the run has nothing
** for w: it is over, or w holds nothing and the queue is empty.
*/
static bool visit(worker_t *w, bool cheap)
{
    prun_t *p = w->p;
    cask_run_t *r = p->r;
    for (size_t i = 0; i < w->nbuf; i++) /* what the held-back decrements readied */
        give(w, w->buf[i]);
    w->nbuf = 0;
    /* Hand back what the queue's first outranks (everything, when tasks
    ** are costly): it would clog w's hands while better work waits. The
    ** published top picks them before the lock; under it, the queue's
    ** real first picks any more. */
    double guess = cheap ? atomic_load_explicit(&p->top, memory_order_relaxed) : INFINITY;
    int out = 0; /* held in priority order: the outranked come first */
    while (out < w->nhold && prio_of(r, w->hold[out]) < guess)
        give(w, w->hold[out++]);
    memmove(w->hold, w->hold + out, (size_t)(w->nhold - out) * sizeof *w->hold);
    w->nhold -= out;
    pthread_mutex_lock(&p->lock);
    give_up(p, w);
    cask_tid_t t;
    if (!cheap || cask_readyq_peek(&p->q, &t)) {
        double top = cheap ? prio_of(r, t) : INFINITY;
        int more = 0;
        while (more < w->nhold && prio_of(r, w->hold[more]) < top)
            push(p, w->hold[more++]);
        memmove(w->hold, w->hold + more, (size_t)(w->nhold - more) * sizeof *w->hold);
        w->nhold -= more;
    }
    if (atomic_load(&p->over) || cask_run_stopped(r) ||
        (!w->nhold && !cask_readyq_size(&p->q))) {
        publish_top(p);
        wake_some(p);
        pthread_mutex_unlock(&p->lock);
        return false;
    }
    size_t share = cask_readyq_size(&p->q) / (size_t)p->nw;
    int want = !cheap ? 1 : share < 1 ? 1 : share > BATCH ? BATCH : (int)share;
    if (want > HOLD - w->nhold)
        want = HOLD - w->nhold;
    double floor = w->nhold ? prio_of(r, w->hold[best_held(w)]) : -1;
    for (int k = 0; k < want && cask_readyq_peek(&p->q, &t); k++) {
        if (prio_of(r, t) <= floor) /* no better than what w holds */
            break;
        cask_readyq_pop(&p->q, &t);
        hold_add(w, t);
    }
    publish_top(p);
    wake_some(p);
    pthread_mutex_unlock(&p->lock);
    return true;
}

/* The successors the last task made ready: keep the best (all, when
** cheap and there is room), queue the rest in one locked batch. */
static void place(worker_t *w, bool cheap)
{
    prun_t *p = w->p;
    cask_run_t *r = p->r;
    size_t keep = cheap ? (size_t)(HOLD - w->nhold) : w->nhold ? 0 : 1;
    if (w->nbuf <= keep) {
        for (size_t i = 0; i < w->nbuf; i++)
            hold_add(w, w->buf[i]);
        return;
    }
    if (keep == 1) { /* the best, and queue the rest */
        size_t b = 0;
        for (size_t i = 1; i < w->nbuf; i++)
            if (prio_of(r, w->buf[i]) > prio_of(r, w->buf[b]))
                b = i;
        hold_add(w, w->buf[b]);
        w->buf[b] = w->buf[--w->nbuf];
        keep = 0;
    }
    for (size_t i = 0; i < keep; i++)
        hold_add(w, w->buf[--w->nbuf]);
    /* Cheap tasks the worker cannot keep wait with what it gives for the
    ** next visit, unless a worker is asleep or there are BATCH of them:
    ** they rank below what it runs, so nobody is kept from better work
    ** meanwhile. */
    for (size_t i = 0; i < w->nbuf; i++)
        give(w, w->buf[i]);
    w->nbuf = 0;
    if (cheap && !atomic_load_explicit(&p->pool->sleeping, memory_order_relaxed) &&
        w->ngive <= BATCH)
        return;
    pthread_mutex_lock(&p->lock);
    give_up(p, w);
    publish_top(p);
    wake_some(p);
    pthread_mutex_unlock(&p->lock);
}

/* Serve run p as worker w until p has nothing for w, or, with other runs
** in the pool, one of them has a better claim. */
static void serve(prun_t *p, worker_t *w)
{
    cask_run_t *r = p->r;
    cask_pool_t *P = p->pool;
    cask__tickconv_t c;
    cask__tick_rate(&c);
    uint64_t slice = (uint64_t)(SLICE_NS / c.ns_per_tick), now = cask__tick(), look = now + slice;
    for (;;) {
        bool cheap = w->mean < CHEAP_TICKS;
        int b = w->nhold ? best_held(w) : -1;
        double top = atomic_load_explicit(&p->top, memory_order_relaxed);
        if (b < 0 || top > prio_of(r, w->hold[b])) {
            w->nbuf = 0;
            cask__run_flush(r, &w->combo, collect, w); /* before waiting on others */
            if (b < 0 && say_done(w)) {
                atomic_store(&p->over, true);
                break;
            }
            if (!visit(w, cheap))
                break;
            b = best_held(w);
            now = cask__tick();
        }
        if (atomic_load_explicit(&P->nruns, memory_order_relaxed) > 1 && now >= look) {
            look = now + slice;
            if (better_elsewhere(p, r->p.rank[w->hold[b]]))
                break;
        }
        cask_tid_t t = w->hold[--w->nhold]; /* the best: b == nhold - 1 */
        if (cask_run_stopped(r))
            break;
        uint64_t end;
        if (cask__run_exec_at(r, t, w->id, &end))
            break; /* the run is stopped */
        if (!end) /* the run is not timed */
            end = cask__tick();
        /* from the last tick: the scheduling since counts with the task */
        w->mean += ((double)(end - now) - w->mean) * 0.1;
        now = end;
        w->nbuf = 0;
        cask__run_complete(r, t, collect, w, &w->combo);
        if (!cheap) /* costly tasks: nothing held back */
            cask__run_flush(r, &w->combo, collect, w);
        w->unsaid++;
        if (atomic_load(&p->nomem))
            break;
        if (w->nbuf)
            place(w, w->mean < CHEAP_TICKS);
    }
}

/*
** With a memory budget, every task goes through the queue under the lock:
** a worker takes the first task in priority order that the budget admits,
** and puts the successors it readies back. When nothing fits while tasks
** run, the run is blocked until one ends (outputs freed) and the worker
** leaves; when nothing fits and nothing runs, the graph cannot be run
** within the budget and the run fails.
*/
static void serve_budget(prun_t *p, worker_t *w)
{
    cask_run_t *r = p->r;
    cask_tid_t t;
    pthread_mutex_lock(&p->lock);
    while (!atomic_load(&p->over) && !cask_run_stopped(r)) {
        if (!cask__readyq_pop_admitted(&p->q, r, p->running > 0, &t)) {
            if (!p->running && cask_readyq_size(&p->q)) /* nobody will free anything */
                cask__run_stalled(r, &p->q);
            else if (p->running)
                atomic_store(&p->blocked, true);
            break;
        }
        p->running++;
        publish_top(p);
        pthread_mutex_unlock(&p->lock);
        w->nbuf = 0;
        int rc = cask_run_exec(r, t, w->id);
        if (!rc)
            cask_run_complete(r, t, collect, w);
        pthread_mutex_lock(&p->lock);
        p->running--;
        for (size_t i = 0; !rc && i < w->nbuf; i++)
            push(p, w->buf[i]);
        publish_top(p);
        atomic_store(&p->blocked, false); /* memory freed: look again */
        if (atomic_load(&r->done) == p->n)
            atomic_store(&p->over, true);
        pool_notify(p->pool, cask_readyq_size(&p->q));
        if (rc || atomic_load(&p->nomem))
            break;
    }
    pthread_mutex_unlock(&p->lock);
}

/* w leaves p: what it holds goes back to the queue, its slot to the pool
** (if it took one); the run ends if it is done and nobody else serves it. */
static void detach(prun_t *p, worker_t *w, bool slot)
{
    cask_run_t *r = p->r;
    if (!r->budget) {
        w->nbuf = 0;
        cask__run_flush(r, &w->combo, collect, w);
        for (size_t i = 0; i < w->nbuf; i++)
            give(w, w->buf[i]);
        w->nbuf = 0;
        for (int i = 0; i < w->nhold; i++)
            give(w, w->hold[i]);
        w->nhold = 0;
        if (w->ngive) {
            pthread_mutex_lock(&p->lock);
            give_up(p, w);
            publish_top(p);
            wake_some(p);
            pthread_mutex_unlock(&p->lock);
        }
        if (say_done(w))
            atomic_store(&p->over, true);
    }
    cask_pool_t *P = p->pool;
    pthread_mutex_lock(&P->lock);
    p->attached--;
    maybe_end(P, p);
    if (slot) {
        double best;
        P->slots[atomic_fetch_add(&P->nfree, 1)] = w->id;
        atomic_thread_fence(memory_order_seq_cst); /* against pool_notify's */
        if (atomic_load(&P->sleeping) && best_run(P, &best)) /* a slot for waiting work */
            pthread_cond_signal(&P->wake);
    }
    pthread_mutex_unlock(&P->lock);
}

/* Serve p as w (slot: w->id was taken from the pool's free slots, and goes
** back after); w is counted in p->attached (pool lock taken for it). While
** it serves, a compute its tasks start is served by this thread too. */
static void serve_attached(prun_t *p, worker_t *w, bool slot)
{
    cask_pool_t *was_pool = my_pool;
    int was_slot = my_slot;
    my_pool = p->pool;
    my_slot = w->id;
    if (p->r->budget)
        serve_budget(p, w);
    else
        serve(p, w);
    my_pool = was_pool;
    my_slot = was_slot;
    detach(p, w, slot);
}

/* Take a free slot for serving p and count the server in; pool lock held,
** P->nfree > 0. Returns the slot. */
static int take_slot(cask_pool_t *P, prun_t *p)
{
    attach(P, p);
    return P->slots[atomic_fetch_sub(&P->nfree, 1) - 1];
}

/* Sleep on the pool's wake, pool lock held, unless (once counted among
** the sleepers: see pool_notify) there is work after all: for a worker,
** a run with ready tasks and a free slot; for a caller serving its own
** run (own not NULL), ready tasks there. */
static void pool_sleep(cask_pool_t *P, prun_t *own)
{
    atomic_fetch_add(&P->helpers, own != NULL);
    atomic_fetch_add(&P->sleeping, 1);
    atomic_thread_fence(memory_order_seq_cst);
    double best;
    bool work = own ? has_work(own) : atomic_load(&P->nfree) && best_run(P, &best);
    if (!work)
        pthread_cond_wait(&P->wake, &P->lock);
    atomic_fetch_sub(&P->sleeping, 1);
    atomic_fetch_sub(&P->helpers, own != NULL);
}

static void *pool_main(void *arg)
{
    cask_pool_t *P = arg;
    my_thread_pool = P;
    pthread_mutex_lock(&P->lock);
    for (;;) {
        if (P->finished) {
            prun_t *f = P->finished;
            P->finished = f->next;
            pthread_mutex_unlock(&P->lock);
            hand_back(f);
            pthread_mutex_lock(&P->lock);
            if (idle(P))
                pthread_cond_broadcast(&P->empty);
            continue;
        }
        double s;
        prun_t *p = P->nfree ? best_run(P, &s) : NULL;
        if (p) {
            int slot = take_slot(P, p);
            pthread_mutex_unlock(&P->lock);
            serve_attached(p, &p->ws[slot], true);
            pthread_mutex_lock(&P->lock);
            continue;
        }
        if (P->closing)
            break;
        pool_sleep(P, NULL); /* for work, or for a slot (detach signals) */
    }
    pthread_mutex_unlock(&P->lock);
    return NULL;
}

/* Free what p holds; it is off the pool's list. */
static void prun_destroy(prun_t *p)
{
    for (int i = 0; p->ws && i <= p->nw; i++)
        cask__free(p->ws[i].buf), cask__free(p->ws[i].give);
    cask__free(p->ws_mem);
    cask_readyq_destroy(&p->q);
    pthread_cond_destroy(&p->fin);
    pthread_mutex_destroy(&p->lock);
}

/* Set p up to serve r: the workers' states, the sources queued. */
static int prun_init(prun_t *p, cask_run_t *r, cask_error_t *err)
{
    cask_pool_t *P = r->pool;
    p->r = r;
    p->pool = P;
    p->n = cask_run_size(r);
    p->nw = P->nw;
    atomic_init(&p->top, -1.0);
    cask_readyq_init(&p->q, r);
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->fin, NULL);
    /* a state per worker and one for a helper, each on cache lines of its own */
    p->ws_mem = cask__calloc((size_t)P->nw + 2, sizeof *p->ws);
    p->ws = p->ws_mem ? (worker_t *)(((uintptr_t)p->ws_mem + 63) & ~(uintptr_t)63) : NULL;
    if (!p->ws)
        return cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for %d workers", P->nw);
    size_t n;
    const cask_tid_t *src = cask_run_sources(r, &n);
    for (size_t i = 0; i < n; i++)
        if (cask_readyq_push(&p->q, src[i]))
            return cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for the ready queue");
    publish_top(p);
    /* Until a worker has timed tasks of its own, it takes them to cost what
    ** the plan estimates on average: a handful of coarse tasks is dealt out
    ** one at a time from the start, not taken in batches a worker then sits
    ** on while another has nothing to do. */
    cask__tickconv_t c;
    cask__tick_rate(&c);
    double guess = r->p.work / (double)p->n * 1e9 / c.ns_per_tick;
    for (int i = 0; i <= P->nw; i++)
        p->ws[i] = (worker_t){ .p = p, .id = i, .mean = guess };
    return 0;
}

/* Put p on its pool's list and wake workers for its sources, but for
** `mine` of them that the caller will take itself if a slot is free. */
static int prun_list(prun_t *p, size_t mine, cask_error_t *err)
{
    cask_pool_t *P = p->pool;
    pthread_mutex_lock(&P->lock);
    if (P->closing) {
        pthread_mutex_unlock(&P->lock);
        return cask__err(err, CASK_EINVAL, NULL, NULL, "the pool is being freed");
    }
    p->born = now_s();
    p->listed = true;
    p->r->pool_run = p;
    p->hidx = -1;
    p->key = atomic_load_explicit(&p->toprank, memory_order_relaxed) - p->born;
    if (P->nheap == P->capheap &&
        cask__grow((void **)&P->heap, &P->capheap, P->nheap + 1, sizeof *P->heap))
        touch(P, p); /* no room in the heap: scored one by one */
    else {
        heap_set(P, P->nheap++, p);
        heap_up(P, P->nheap - 1);
    }
    atomic_fetch_add(&P->nruns, 1);
    maybe_end(P, p); /* stopped before it was listed: nobody would come */
    size_t queued = cask_readyq_size(&p->q);
    if (P->nfree && mine)
        queued = queued > mine ? queued - mine : 0;
    /* woken under the lock: once it is let go of, the run may have ended,
    ** and the pool been freed, before this returns */
    wake_locked(P, to_wake(P, queued));
    pthread_mutex_unlock(&P->lock);
    return 0;
}

/* An ended run of cask__pool_start, off every list: free it and say so. */
static void hand_back(prun_t *p)
{
    cask_error_t serr;
    cask_error_clear(&serr);
    int rc = atomic_load(&p->nomem)
                 ? cask__err(&serr, CASK_ENOMEM, NULL, NULL, "no memory for the ready queue")
                 : 0;
    cask__pool_ended cb = p->ended_cb;
    void *ctx = p->ctx;
    prun_destroy(p);
    cask__free(p);
    cb(ctx, rc, &serr);
}

int cask__pool_start(cask_run_t *r, cask__pool_ended ended, void *ctx, cask_error_t *err)
{
    if (r->pool->procs)
        return cask__ppool_start(r->pool->procs, r, ended, ctx, err);
    if (!cask_run_size(r)) {
        cask_error_t serr;
        cask_error_clear(&serr);
        ended(ctx, 0, &serr);
        return 0;
    }
    prun_t *p = cask__calloc(1, sizeof *p);
    if (!p)
        return cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for a run");
    p->ended_cb = ended;
    p->ctx = ctx;
    int rc = prun_init(p, r, err);
    if (!rc && !(rc = prun_list(p, 0, err)))
        return 0;
    prun_destroy(p);
    cask__free(p);
    return rc;
}

int cask__pool_run(cask_run_t *r, cask_error_t *err)
{
    cask_pool_t *P = r->pool;
    if (!cask_run_size(r))
        return 0;
    prun_t p;
    memset(&p, 0, sizeof p);
    int rc = prun_init(&p, r, err);
    if (!rc)
        rc = prun_list(&p, 1, err);
    if (rc)
        goto out;
    /* The caller serves its run too: at once if a slot is free (a compute
    ** of a few small tasks then runs with no thread woken), and to the end
    ** when it serves a run of a pool already (a task that computes): with
    ** its own slot on this pool, with one more worker number on another. */
    int nested = nested_id(P);
    bool first = true;
    pthread_mutex_lock(&P->lock);
    while (!p.ended) {
        if (has_work(&p) && (nested >= 0 || (first && P->nfree))) {
            bool slot = nested < 0;
            int id = slot ? take_slot(P, &p) : (attach(P, &p), nested);
            first = false;
            pthread_mutex_unlock(&P->lock);
            serve_attached(&p, &p.ws[id], slot);
            pthread_mutex_lock(&P->lock);
        } else if (nested >= 0) {
            pool_sleep(P, &p);
        } else {
            pthread_cond_wait(&p.fin, &P->lock);
        }
    }
    pthread_mutex_unlock(&P->lock);
    if (atomic_load(&p.nomem))
        rc = cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for the ready queue");
out:
    prun_destroy(&p);
    return rc;
}

static int threads_run(cask_run_t *r, void *udata, cask_error_t *err)
{
    (void)udata;
    if (!r->pool)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "a threads run needs a pool");
    return cask__pool_run(r, err);
}

const cask__backend_t cask__backend_threads = { { "threads", threads_run, NULL, 0 }, NULL, NULL,
                                                true };

/* ------------------------------------------------------------------ pools */

/* Stop P's threads and free it; no run is in flight. */
static void pool_close(cask_pool_t *P)
{
    pthread_mutex_lock(&P->lock);
    P->closing = true;
    pthread_cond_broadcast(&P->wake);
    pthread_mutex_unlock(&P->lock);
    for (int i = 0; i < P->started; i++)
        pthread_join(P->tid[i], NULL);
    cask__free(P->tid);
    cask__free(P->slots);
    cask__free(P->heap);
    if (P->store)
        cask__store_close(P->store);
    cask__mcache_free(P->mcache);
    cask__ppool_free(P->procs);
    pthread_cond_destroy(&P->wake);
    pthread_cond_destroy(&P->empty);
    pthread_mutex_destroy(&P->lock);
    cask__free(P);
}

/* A pool of nw workers: threads, or processes (procs). */
static int pool_make(int nw, bool procs, cask_pool_t **out, cask_error_t *err)
{
    *out = NULL;
    cask_pool_t *P = cask__calloc(1, sizeof *P);
    if (!P || !(P->tid = cask__calloc((size_t)nw, sizeof *P->tid)) ||
        !(P->slots = cask__calloc((size_t)nw, sizeof *P->slots)) ||
        (!procs && !(P->store = cask__store_new()))) {
        if (P)
            cask__free(P->tid), cask__free(P->slots);
        cask__free(P);
        return cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for a pool of %d workers", nw);
    }
    P->nw = nw;
    P->pid = getpid();
    for (int i = 0; i < nw; i++)
        P->slots[i] = nw - 1 - i; /* slot 0 is taken first */
    atomic_init(&P->nfree, nw);
    pthread_mutex_init(&P->lock, NULL);
    pthread_cond_init(&P->wake, NULL);
    pthread_cond_init(&P->empty, NULL);
    if (procs) {
        int rc = cask__ppool_make(nw, &P->procs, err);
        if (rc) {
            pool_close(P);
            return rc;
        }
    }
    for (int i = 0; !procs && i < nw; i++) {
        if (pthread_create(&P->tid[i], NULL, pool_main, P)) {
            pool_close(P);
            return cask__err(err, CASK_ENOMEM, NULL, NULL, "cannot start worker thread %d", i);
        }
        P->started++;
    }
    *out = P;
    return 0;
}

int cask_pool_create(const cask_pool_opts_t *opts, cask_pool_t **out, cask_error_t *err)
{
    static const cask_pool_opts_t defaults;
    cask_error_t local;
    if (!err)
        err = &local;
    cask_error_clear(err);
    if (!out)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "out is NULL");
    *out = NULL;
    if (!opts)
        opts = &defaults;
    cask__backend_t b;
    int nw;
    const char *name = opts->scheduler && *opts->scheduler ? opts->scheduler : "threads";
    int rc = cask__resolve(&(cask_compute_opts_t){ .scheduler = name, .workers = opts->workers },
                           &b, &nw, err);
    if (rc)
        return rc;
    bool procs = b.s.run == cask__backend_processes.s.run;
    if (b.s.run != threads_run && !procs)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "a pool runs on 'threads' or "
                         "'processes', not '%s'", b.s.name);
    if (procs && opts->cache_bytes)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "a result cache is kept on pools of "
                         "'threads' only");
    if ((rc = pool_make(nw, procs, out, err)))
        return rc;
    if (opts->cache_bytes && !((*out)->mcache = cask__mcache_new(opts->cache_bytes))) {
        cask_pool_free(*out);
        *out = NULL;
        return cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for a result cache");
    }
    return 0;
}

cask__store_t *cask__pool_store(const cask_pool_t *P)
{
    return P->store;
}

cask__mcache_t *cask__pool_mcache(const cask_pool_t *P)
{
    return P->mcache;
}

int cask_pool_cache_stats(const cask_pool_t *pool, cask_pool_cache_stats_t *st,
                          cask_error_t *err)
{
    if (!pool || !st)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "pool or st is NULL");
    if (!pool->mcache)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "the pool has no result cache "
                         "(cask_pool_opts_t.cache_bytes)");
    cask__mcache_stats(pool->mcache, st);
    return 0;
}

int cask_pool_workers(const cask_pool_t *pool)
{
    return pool ? pool->nw : 0;
}

void cask_pool_free(cask_pool_t *pool)
{
    if (!pool)
        return;
    if (my_pool == pool || my_thread_pool == pool ||
        (pool->procs && cask__ppool_on_driver(pool->procs))) {
        fprintf(stderr, "cask: cask_pool_free called from a task or callback running on that "
                "pool\n");
        abort();
    }
    if (pool->pid != getpid())
        return; /* its threads are in the parent: nothing here to stop */
    pthread_mutex_lock(&pool->lock);
    while (!idle(pool))
        pthread_cond_wait(&pool->empty, &pool->lock);
    pthread_mutex_unlock(&pool->lock);
    pool_close(pool);
}

/* The default pools: one per worker count, made on first use. */
typedef struct dflt {
    cask_pool_t *pool;
    struct dflt *next;
} dflt_t;
static dflt_t *defaults;
static pid_t defaults_pid;
static pthread_mutex_t defaults_lock = PTHREAD_MUTEX_INITIALIZER;

/* At exit: stop the default pools that have nothing in flight (a pool
** with a compute still running is left to the end of the process). */
static void defaults_free(void)
{
    pthread_mutex_lock(&defaults_lock);
    if (defaults_pid == getpid()) {
        while (defaults) {
            dflt_t *d = defaults;
            defaults = d->next;
            pthread_mutex_lock(&d->pool->lock);
            bool unused = idle(d->pool);
            if (unused) /* from now on a compute that comes is refused */
                d->pool->closing = true;
            pthread_mutex_unlock(&d->pool->lock);
            if (unused)
                pool_close(d->pool);
            cask__free(d);
        }
    }
    pthread_mutex_unlock(&defaults_lock);
}

int cask__pool_default(int workers, cask_pool_t **out, cask_error_t *err)
{
    static bool registered;
    int rc = 0;
    pthread_mutex_lock(&defaults_lock);
    if (defaults_pid != getpid()) { /* made in a parent before a fork: not ours */
        defaults = NULL;
        defaults_pid = getpid();
    }
    dflt_t *d = defaults;
    while (d && d->pool->nw != workers)
        d = d->next;
    if (!d) {
        if (!(d = cask__calloc(1, sizeof *d)))
            rc = cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for a pool");
        else if ((rc = pool_make(workers, false, &d->pool, err)))
            cask__free(d), d = NULL;
        else {
            d->next = defaults;
            defaults = d;
            if (!registered)
                registered = atexit(defaults_free) == 0;
        }
    }
    *out = d ? d->pool : NULL;
    pthread_mutex_unlock(&defaults_lock);
    return rc;
}

int cask__pool_check(const cask_pool_t *P, const cask_compute_opts_t *opts, cask_error_t *err)
{
    if (P->pid != getpid())
        return cask__err(err, CASK_EINVAL, NULL, NULL, "the pool was made in another process "
                         "(before a fork): its threads are not in this one");
    const char *kind = P->procs ? "processes" : "threads";
    if (opts->scheduler && *opts->scheduler && strcmp(opts->scheduler, kind))
        return cask__err(err, CASK_EINVAL, NULL, NULL, "scheduler '%s' asked for on a pool of "
                         "'%s'", opts->scheduler, kind);
    if (opts->workers && opts->workers != P->nw)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "%d workers asked for on a pool of %d",
                         opts->workers, P->nw);
    return 0;
}

cask__ppool_t *cask__pool_procs(const cask_pool_t *P)
{
    return P->procs;
}

bool cask__pool_helper(const cask_pool_t *P)
{
    return nested_id(P) == P->nw;
}

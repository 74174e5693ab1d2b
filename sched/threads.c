/*
** sched/threads.c: the threads scheduler: a pool of pthreads, one per
** worker, started for each compute.
**
** Ready tasks wait in one cask_readyq_t (the priority order every scheduler
** uses) under a mutex. Each worker also holds a few tasks of its own: the
** successors its last task made ready (their inputs are still in its
** cache) and, when tasks are cheap, a batch taken from the queue in one
** locked visit. Before each task a worker compares the best it holds with
** the priority of the queue's first task, published in an atomic: if the
** queue's is better, it goes to the queue, so the priority order still
** holds. How much a worker holds follows how long its tasks take (a
** running mean of its own, which starts from the plan's mean estimate):
** with tasks over CHEAP_TICKS (a few microseconds) it keeps one, hands the
** rest to the queue and takes one at a time, so no worker sits on work
** another could do; with cheaper tasks it keeps up to HOLD and takes up to
** BATCH per visit, never more than its share of the queue, since then the
** lock costs more than the tasks. Completions are added to the run's count
** in batches too, and the tasks a worker hands the queue are pushed in one
** locked visit. Idle workers sleep on a condition variable; nobody spins.
** A compute with a memory budget runs work_budget instead: one task at a
** time from the queue, each admitted by the budget.
*/
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "sched.h"

#define HOLD        32      /* most tasks a worker keeps */
#define BATCH       16      /* most tasks taken from the queue per visit */
#define CHEAP_TICKS 10000.0 /* mean task ticks (~4 us) under which tasks are cheap */

typedef struct pool {
    cask_run_t     *r;
    pthread_mutex_t lock;      /* guards q, sleeping */
    pthread_cond_t  wake;      /* a task was queued, or the run ended */
    cask_readyq_t   q;         /* ready tasks */
    atomic_int      sleeping;  /* workers waiting on wake (read unlocked as a hint) */
    int             nw;        /* workers */
    atomic_bool     over;      /* every task done, or stopped and drained */
    _Atomic double  top;       /* priority of q's first task; -1 when empty */
    atomic_int      nomem;     /* a push failed */
    size_t          n;         /* tasks in the run */
    int             running;   /* with a budget: tasks admitted, not completed */
} pool_t;

typedef struct worker {
    _Alignas(64) pool_t *p;    /* a cache line of its own: no false sharing */
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

/* t's priority: higher first (cask_run_priority). */
static inline double prio_of(const cask_run_t *r, cask_tid_t t)
{
    return (double)(r->p.n - r->p.pos[t]);
}

/* Publish the priority of the queue's first task (-1: empty); lock held. */
static void publish_top(pool_t *p)
{
    cask_tid_t t;
    double top = cask_readyq_peek(&p->q, &t) ? prio_of(p->r, t) : -1;
    atomic_store_explicit(&p->top, top, memory_order_relaxed);
}

static void collect(void *ctx, cask_tid_t s)
{
    worker_t *w = ctx;
    if (cask__grow((void **)&w->buf, &w->cap, w->nbuf + 1, sizeof *w->buf))
        atomic_store(&w->p->nomem, 1);
    else
        w->buf[w->nbuf++] = s;
}

/* End the run for everyone. */
static void finish(pool_t *p)
{
    pthread_mutex_lock(&p->lock);
    atomic_store(&p->over, true);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
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

static void push(pool_t *p, cask_tid_t t) /* lock held */
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

/* Queue what w gives; lock held. */
static void give_up(pool_t *p, worker_t *w)
{
    for (size_t i = 0; i < w->ngive; i++)
        push(p, w->give[i]);
    w->ngive = 0;
}

/* Wake one sleeper per queued task; lock held. */
static void wake_some(pool_t *p)
{
    size_t queued = cask_readyq_size(&p->q);
    int sleeping = atomic_load_explicit(&p->sleeping, memory_order_relaxed);
    for (int i = 0; i < sleeping && (size_t)i < queued; i++)
        pthread_cond_signal(&p->wake);
}

/*
** Visit the queue: hand back what w should not keep (everything when tasks
** are costly), then, unless w still holds something at least as good as
** the queue's first, take a batch. Sleeps while there is nothing at all.
** Returns false when the run is over for w.
*/
static bool visit(worker_t *w, bool cheap)
{
    pool_t *p = w->p;
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
    while (!w->nhold && !atomic_load(&p->over) && !cask_run_stopped(r) &&
           !cask_readyq_size(&p->q)) {
        atomic_fetch_add_explicit(&p->sleeping, 1, memory_order_relaxed);
        pthread_cond_wait(&p->wake, &p->lock);
        atomic_fetch_sub_explicit(&p->sleeping, 1, memory_order_relaxed);
    }
    if (atomic_load(&p->over) || cask_run_stopped(r)) {
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
    pool_t *p = w->p;
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
    if (cheap && !atomic_load_explicit(&p->sleeping, memory_order_relaxed) &&
        w->ngive <= BATCH)
        return;
    pthread_mutex_lock(&p->lock);
    give_up(p, w);
    publish_top(p);
    wake_some(p);
    pthread_mutex_unlock(&p->lock);
}

static void *work(void *arg)
{
    worker_t *w = arg;
    pool_t *p = w->p;
    cask_run_t *r = p->r;
    for (;;) {
        bool cheap = w->mean < CHEAP_TICKS;
        int b = w->nhold ? best_held(w) : -1;
        double top = atomic_load_explicit(&p->top, memory_order_relaxed);
        if (b < 0 || top > prio_of(r, w->hold[b])) {
            w->nbuf = 0;
            cask__run_flush(r, &w->combo, collect, w); /* before waiting on others */
            if (b < 0 && say_done(w)) {
                finish(p);
                break;
            }
            if (!visit(w, cheap))
                break;
            b = best_held(w);
        }
        cask_tid_t t = w->hold[--w->nhold]; /* the best: b == nhold - 1 */
        if (cask_run_stopped(r))
            break;
        uint64_t t0 = cask__tick();
        if (cask_run_exec(r, t, w->id)) {
            finish(p); /* the run is stopped: wake the sleepers to leave */
            break;
        }
        w->mean += ((double)(cask__tick() - t0) - w->mean) * 0.1;
        w->nbuf = 0;
        cask__run_complete(r, t, collect, w, &w->combo);
        if (!cheap) /* costly tasks: nothing held back */
            cask__run_flush(r, &w->combo, collect, w);
        w->unsaid++;
        if (atomic_load(&p->nomem)) {
            finish(p);
            break;
        }
        if (w->nbuf)
            place(w, w->mean < CHEAP_TICKS);
    }
    say_done(w);
    return NULL;
}

/*
** With a memory budget, every task goes through the queue under the lock:
** a worker takes the first task in priority order that the budget admits,
** and puts the successors it readies back. When nothing fits it sleeps
** until a task completes (outputs freed); when nothing fits and nothing
** runs, the graph cannot be run within the budget and the run fails.
*/
static void *work_budget(void *arg)
{
    worker_t *w = arg;
    pool_t *p = w->p;
    cask_run_t *r = p->r;
    cask_tid_t t;
    pthread_mutex_lock(&p->lock);
    while (!atomic_load(&p->over) && !cask_run_stopped(r)) {
        if (!cask__readyq_pop_admitted(&p->q, r, p->running > 0, &t)) {
            if (!p->running) { /* nobody will free anything */
                if (cask_readyq_size(&p->q))
                    cask__run_stalled(r, &p->q);
                break;
            }
            pthread_cond_wait(&p->wake, &p->lock);
            continue;
        }
        p->running++;
        pthread_mutex_unlock(&p->lock);
        w->nbuf = 0;
        int rc = cask_run_exec(r, t, w->id);
        if (!rc)
            cask_run_complete(r, t, collect, w);
        pthread_mutex_lock(&p->lock);
        p->running--;
        for (size_t i = 0; !rc && i < w->nbuf; i++)
            push(p, w->buf[i]);
        if (atomic_load(&p->nomem))
            break;
        if (atomic_load(&r->done) == p->n)
            atomic_store(&p->over, true);
        pthread_cond_broadcast(&p->wake); /* memory freed, tasks readied, or the end */
    }
    atomic_store(&p->over, true);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

static int threads_run(cask_run_t *r, void *udata, cask_error_t *err)
{
    (void)udata;
    if (!cask_run_size(r))
        return 0;
    int nw = cask_run_workers(r), rc = 0, started = 0;
    pool_t p;
    memset(&p, 0, sizeof p);
    p.r = r;
    p.n = cask_run_size(r);
    p.nw = nw;
    atomic_init(&p.top, -1.0);
    cask_readyq_init(&p.q, r);
    pthread_mutex_init(&p.lock, NULL);
    pthread_cond_init(&p.wake, NULL);
    pthread_t *tid = cask__calloc((size_t)nw, sizeof *tid);
    worker_t *ws = cask__calloc((size_t)nw + 1, sizeof *ws); /* + 1: room to align */
    worker_t *wa = ws ? (worker_t *)(((uintptr_t)ws + 63) & ~(uintptr_t)63) : NULL;
    if (!tid || !ws) {
        rc = cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for %d workers", nw);
        goto out;
    }
    size_t n;
    const cask_tid_t *src = cask_run_sources(r, &n);
    for (size_t i = 0; i < n; i++)
        if (cask_readyq_push(&p.q, src[i])) {
            rc = cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for the ready queue");
            goto out;
        }
    publish_top(&p);
    /* Until a worker has timed tasks of its own, it takes them to cost what
    ** the plan estimates on average: a handful of coarse tasks is dealt out
    ** one at a time from the start, not taken in batches a worker then sits
    ** on while another has nothing to do. */
    cask__tickconv_t c;
    cask__tick_rate(&c);
    double guess = r->p.work / (double)p.n * 1e9 / c.ns_per_tick;
    for (int i = 0; i < nw; i++) {
        wa[i] = (worker_t){ .p = &p, .id = i, .mean = guess };
        if (pthread_create(&tid[i], NULL, r->budget ? work_budget : work, &wa[i])) {
            rc = cask__err(err, CASK_ENOMEM, NULL, NULL, "cannot start worker thread %d", i);
            finish(&p);
            break;
        }
        started++;
    }
    for (int i = 0; i < started; i++)
        pthread_join(tid[i], NULL);
    if (!rc && atomic_load(&p.nomem))
        rc = cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for the ready queue");
out:
    for (int i = 0; ws && i < nw; i++)
        cask__free(wa[i].buf), cask__free(wa[i].give);
    cask__free(ws);
    cask__free(tid);
    cask_readyq_destroy(&p.q);
    pthread_cond_destroy(&p.wake);
    pthread_mutex_destroy(&p.lock);
    return rc;
}

const cask__backend_t cask__backend_threads = { { "threads", threads_run, NULL, 0 }, NULL, NULL,
                                                true };

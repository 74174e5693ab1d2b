/*
** sched/threads.c: the threads scheduler: a pool of pthreads, one per
** worker, started for each compute.
**
** Ready tasks wait in one cask_readyq_t (the priority order every scheduler
** uses) under a mutex. A worker that finishes a task keeps the best of the
** successors it made ready and runs it next, without touching the queue,
** as long as nothing queued outranks it: the inputs it just wrote are still
** in its cache. The rest go to the queue in one locked batch, and one
** sleeping worker is woken per task queued. Idle workers sleep on a
** condition variable; nobody spins. The run's own bookkeeping is lock-free,
** so the lock covers only the queue.
*/
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "sched.h"

typedef struct pool {
    cask_run_t     *r;
    pthread_mutex_t lock;      /* guards q, sleeping */
    pthread_cond_t  wake;      /* a task was queued, or the run ended */
    cask_readyq_t   q;         /* ready tasks */
    int             sleeping;  /* workers waiting on wake */
    atomic_bool     over;      /* every task done, or stopped and drained */
    _Atomic double  top;       /* rank of q's first task; -1 when empty */
    atomic_int      nomem;     /* a push failed */
    size_t          n;         /* tasks in the run */
} pool_t;

typedef struct worker {
    pool_t    *p;
    int        id;
    cask_tid_t *buf;           /* successors made ready by the last task */
    size_t     nbuf, cap;
} worker_t;

/* Publish the rank of the queue's first task (-1: empty); lock held. */
static void publish_top(pool_t *p)
{
    cask_tid_t t;
    double top = cask_readyq_peek(&p->q, &t) ? cask_run_priority(p->r, t) : -1;
    atomic_store_explicit(&p->top, top, memory_order_relaxed);
}

static void collect(void *ctx, cask_tid_t s)
{
    worker_t *w = ctx;
    if (w->nbuf == w->cap) {
        size_t cap = w->cap;
        if (cask__grow((void **)&w->buf, &cap, w->nbuf + 1, sizeof *w->buf)) {
            atomic_store(&w->p->nomem, 1);
            return;
        }
        w->cap = cap;
    }
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

static void *work(void *arg)
{
    worker_t *w = arg;
    pool_t *p = w->p;
    cask_run_t *r = p->r;
    cask_tid_t t = 0;
    int have = 0;
    for (;;) {
        if (!have) {
            pthread_mutex_lock(&p->lock);
            while (!atomic_load(&p->over) && !cask_run_stopped(r) && !cask_readyq_size(&p->q)) {
                p->sleeping++;
                pthread_cond_wait(&p->wake, &p->lock);
                p->sleeping--;
            }
            if (atomic_load(&p->over) || cask_run_stopped(r)) {
                pthread_mutex_unlock(&p->lock);
                break;
            }
            cask_readyq_pop(&p->q, &t);
            publish_top(p);
            pthread_mutex_unlock(&p->lock);
        }
        have = 0;
        if (cask_run_stopped(r))
            break;
        if (cask_run_exec(r, t, w->id)) {
            finish(p); /* the run is stopped: wake the sleepers to leave */
            break;
        }
        w->nbuf = 0;
        cask_run_complete(r, t, collect, w);
        if (atomic_load_explicit(&r->done, memory_order_acquire) == p->n) {
            finish(p);
            break;
        }
        if (!w->nbuf)
            continue;
        /* Keep the best successor unless something queued outranks it. */
        size_t best = 0;
        for (size_t i = 1; i < w->nbuf; i++)
            if (cask_run_priority(r, w->buf[i]) > cask_run_priority(r, w->buf[best]))
                best = i;
        t = w->buf[best];
        w->buf[best] = w->buf[--w->nbuf];
        have = 1;
        if (!w->nbuf && cask_run_priority(r, t) >= atomic_load_explicit(&p->top, memory_order_relaxed))
            continue; /* the common chain step: no lock at all */
        pthread_mutex_lock(&p->lock);
        for (size_t i = 0; i < w->nbuf; i++)
            if (cask_readyq_push(&p->q, w->buf[i]))
                atomic_store(&p->nomem, 1);
        cask_tid_t top;
        if (cask_readyq_peek(&p->q, &top) && cask_run_priority(r, top) > cask_run_priority(r, t)) {
            cask_readyq_pop(&p->q, &top); /* trade: run the better one, queue mine */
            if (cask_readyq_push(&p->q, t))
                atomic_store(&p->nomem, 1);
            t = top;
        }
        publish_top(p);
        size_t queued = cask_readyq_size(&p->q);
        for (int i = 0; i < p->sleeping && (size_t)i < queued; i++)
            pthread_cond_signal(&p->wake);
        pthread_mutex_unlock(&p->lock);
        if (atomic_load(&p->nomem)) {
            finish(p);
            break;
        }
    }
    return NULL;
}

static int threads_run(cask_run_t *r, void *udata, cask_error_t *err)
{
    (void)udata;
    int nw = cask_run_workers(r), rc = 0, started = 0;
    pool_t p;
    memset(&p, 0, sizeof p);
    p.r = r;
    p.n = cask_run_size(r);
    atomic_init(&p.top, -1.0);
    cask_readyq_init(&p.q, r);
    pthread_mutex_init(&p.lock, NULL);
    pthread_cond_init(&p.wake, NULL);
    pthread_t *tid = cask__calloc((size_t)nw, sizeof *tid);
    worker_t *ws = cask__calloc((size_t)nw, sizeof *ws);
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
    for (int i = 0; i < nw; i++) {
        ws[i] = (worker_t){ .p = &p, .id = i };
        if (pthread_create(&tid[i], NULL, work, &ws[i])) {
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
        cask__free(ws[i].buf);
    cask__free(ws);
    cask__free(tid);
    cask_readyq_destroy(&p.q);
    pthread_cond_destroy(&p.wake);
    pthread_mutex_destroy(&p.lock);
    return rc;
}

const cask_scheduler_t cask__sched_threads = { "threads", threads_run, NULL, 0 };

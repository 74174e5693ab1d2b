/*
** sched/future.c: cask_submit() and futures.
**
** A submit makes a job: a copy of the request, a reference on the graph,
** and one future per output; a detached thread runs cask__compute() for
** it. Hooks tell the job when the run exists (so a cancel can stop it) and
** when each output is ready (so its future is done before the compute
** ends). One process-wide lock covers every future: waiting for k of n
** futures may span several computes, and futures change state rarely
** enough that one lock costs nothing that matters. A waiting thread sleeps
** on a condition variable of its own (see "Waiting threads" below).
**
** A job lives while its thread runs or any of its futures is not freed.
*/
#include <string.h>
#include <time.h>

#include "sched.h"

typedef struct job job_t;

struct cask_future {
    job_t       *job;
    size_t       i;          /* which output */
    bool         done;       /* value or error is final */
    bool         wanted;     /* not cancelled or freed */
    bool         has_val;    /* val was delivered */
    uint64_t     seen;       /* the last wait that counted it (lock held) */
    cask_value_t val;        /* the output, once delivered */
};

struct job {
    cask_graph_t       *g;        /* referenced */
    cask_task_t        *outs;     /* the request */
    size_t              n;
    cask_compute_opts_t opts;
    char                sched[32];
    char               *cache_dir;  /* opts' cache directory, copied (or NULL) */
    cask_pool_t        *pool;     /* the pool it runs on, held */
    struct cask_future *fut;      /* n futures */
    size_t              live;     /* futures not freed, + 1 while the thread runs */
    size_t              wanting;  /* futures neither done nor cancelled */
    cask_run_t         *run;      /* while running */
    bool                cancel;   /* stop the run when it starts */
    bool                finished; /* the compute has returned */
    int                 rc;       /* its status */
    cask_error_t        err;      /* and error */
    cask_compute_info_t info;     /* and what it reported */
    cask__hooks_t       hooks;    /* what the compute tells the job */
    cask_value_t       *res;      /* on a pool: the results, until the end */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* Waiting threads. Every future that becomes done, and every compute that
** finishes, is an event; a thread that needs k more of its futures done
** sleeps until k more events have happened (any events: it may wake too
** soon, then looks and sleeps again, never too late), on a condition
** variable of its own. So a thread waiting for 2,000 futures wakes about
** once, not at each of them. All under lock. */
typedef struct waiter {
    pthread_cond_t cv;
    uint64_t       at;     /* wake when events reach this */
    struct waiter *next;
} waiter_t;

static waiter_t *waiters;
static uint64_t events;
static uint64_t next_at = UINT64_MAX; /* no waiter is due before this */

/* k events happened: wake the waiters now due. */
static void happened(uint64_t k)
{
    events += k;
    if (events < next_at)
        return;
    next_at = UINT64_MAX;
    for (waiter_t *w = waiters; w; w = w->next)
        if (w->at <= events)
            pthread_cond_signal(&w->cv);
        else if (w->at < next_at)
            next_at = w->at;
}

/* Sleep until need (> 0) more events have happened, or until *until
** (CLOCK_REALTIME; NULL: no limit). False when it timed out first. */
static bool await(uint64_t need, const struct timespec *until)
{
    waiter_t w = { .at = need > UINT64_MAX - events ? UINT64_MAX : events + need,
                   .next = waiters };
    pthread_cond_init(&w.cv, NULL);
    waiters = &w;
    if (w.at < next_at)
        next_at = w.at;
    int rc = 0;
    while (w.at > events && !rc)
        rc = until ? pthread_cond_timedwait(&w.cv, &lock, until) : pthread_cond_wait(&w.cv, &lock);
    waiter_t **pw = &waiters;
    while (*pw != &w)
        pw = &(*pw)->next;
    *pw = w.next;
    pthread_cond_destroy(&w.cv);
    return w.at <= events;
}

static void job_free(job_t *j)
{
    for (size_t i = 0; i < j->n; i++)
        cask_value_decref(&j->fut[i].val);
    cask_trace_free(j->info.trace);
    cask_graph_decref(j->g);
    cask__free(j->outs);
    cask__free(j->fut);
    cask__free(j->cache_dir);
    cask__free(j);
}

/* Drop one of j's holders; lock held. Returns true if j must be freed. */
static bool job_release(job_t *j)
{
    return --j->live == 0;
}

static void stop_run(job_t *j) /* lock held */
{
    cask_error_t e;
    cask__err(&e, CASK_ECANCELED, NULL, NULL, "the compute was cancelled");
    if (j->run)
        cask__run_fail(j->run, &e);
    else
        j->cancel = true;
}

static void on_running(void *ctx, cask_run_t *r)
{
    job_t *j = ctx;
    pthread_mutex_lock(&lock);
    j->run = r;
    if (r && j->cancel)
        stop_run(j);
    pthread_mutex_unlock(&lock);
}

static int on_deliver(void *ctx, size_t i, const cask_value_t *v)
{
    job_t *j = ctx;
    cask_value_t mine;
    /* A block in a shared arena (processes, mpi) goes with the compute:
    ** copy it out. */
    if (cask__in_arena(v)) {
        if (cask__value_copy(v, &mine))
            return 0; /* no memory: the value comes with the compute's results */
    } else {
        mine = *v;
        cask_value_incref(&mine);
    }
    pthread_mutex_lock(&lock);
    struct cask_future *f = &j->fut[i];
    if (!f->done) {
        f->val = mine;
        f->has_val = f->done = true;
        if (f->wanted)
            j->wanting--;
        mine = cask_none();
        happened(1);
    }
    pthread_mutex_unlock(&lock);
    cask_value_decref(&mine);
    return 0;
}

/* The compute has ended with rc (and err, info): settle every future. res
** holds the results (or NONE), taken from here. */
static void job_end(job_t *j, int rc, const cask_error_t *err, cask_value_t *res,
                    const cask_compute_info_t *info)
{
    size_t n = j->n; /* j may be gone once this thread lets go of it */
    if (j->pool)
        cask__pool_drop(j->pool); /* the last touch: the pool may go now */
    pthread_mutex_lock(&lock);
    j->finished = true;
    j->rc = rc;
    j->err = *err;
    if (info)
        j->info = *info;
    uint64_t k = 1; /* it finished; and each future done now */
    for (size_t i = 0; i < j->n; i++) {
        struct cask_future *f = &j->fut[i];
        if (!f->done) {
            f->done = true;
            k++;
            if (!rc && res) { /* not delivered (no memory then): take the result */
                f->val = res[i];
                f->has_val = true;
                res[i] = cask_none();
            }
        }
    }
    j->wanting = 0;
    happened(k);
    bool last = job_release(j);
    pthread_mutex_unlock(&lock);
    for (size_t i = 0; res && i < n; i++)
        cask_value_decref(&res[i]);
    if (last)
        job_free(j);
}

static void *job_main(void *arg)
{
    job_t *j = arg;
    cask_value_t *res = cask__calloc(j->n ? j->n : 1, sizeof *res);
    cask_error_t err;
    cask_compute_info_t info;
    int rc = res ? cask__compute(j->g, j->outs, j->n, &j->opts, res, &info, &err, &j->hooks)
                 : cask__err(&err, CASK_ENOMEM, NULL, NULL, "no memory for the results");
    job_end(j, rc, &err, res, res ? &info : NULL);
    cask__free(res);
    return NULL;
}

/* A compute on a pool has ended (cask__compute_async). */
static void job_done(void *ctx, int rc, const cask_error_t *err, cask_compute_info_t *info)
{
    job_t *j = ctx;
    cask_value_t *res = j->res;
    job_end(j, rc, err, res, info);
    cask__free(res);
}

int cask_submit(const cask_graph_t *g, const cask_task_t *outs, size_t n,
                const cask_compute_opts_t *opts, cask_future_t **futs, cask_error_t *err)
{
    cask_error_t local;
    if (!err)
        err = &local;
    if (!futs)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "futs is NULL");
    for (size_t i = 0; i < n; i++)
        futs[i] = NULL;
    int rc = cask__check_request(g, outs, n, &opts, err);
    if (rc)
        return rc;
    cask__backend_t b;
    int workers;
    rc = cask__resolve(opts, &b, &workers, err);
    if (rc)
        return rc;
    job_t *j = cask__calloc(1, sizeof *j);
    if (!j || !(j->outs = cask__malloc((n ? n : 1) * sizeof *outs)) ||
        !(j->fut = cask__calloc(n ? n : 1, sizeof *j->fut))) {
        if (j)
            cask__free(j->outs);
        cask__free(j);
        return cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory to submit %zu outputs", n);
    }
    if (n)
        memcpy(j->outs, outs, n * sizeof *outs);
    j->n = n;
    j->opts = *opts;
    snprintf(j->sched, sizeof j->sched, "%s", b.s.name); /* the name resolved now */
    j->opts.scheduler = j->sched;
    j->opts.workers = workers;
    if (opts->cache_dir) { /* copied, as the options are */
        if (!(j->opts.cache_dir = j->cache_dir = cask__strdup(opts->cache_dir))) {
            job_free(j);
            return cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory to submit %zu outputs", n);
        }
    }
    if (b.s.run == cask__backend_threads.s.run || opts->pool) { /* the pool, held until
                                                                    the end */
        if (!(j->opts.pool = opts->pool) &&
            (rc = cask__pool_default(workers, &j->opts.pool, err))) {
            job_free(j);
            return rc;
        }
        j->pool = j->opts.pool;
        cask__pool_hold(j->pool);
    }
    for (size_t i = 0; i < n; i++)
        j->fut[i] = (struct cask_future){ .job = j, .i = i, .wanted = true };
    j->live = n + 1;
    j->wanting = n;
    cask_graph_incref(g);
    j->g = (cask_graph_t *)g;
    j->hooks = (cask__hooks_t){ .ctx = j, .running = on_running, .deliver = on_deliver };
    if (j->pool) { /* planned here, run by the pool's threads: none of its own */
        if (!(j->res = cask__calloc(n ? n : 1, sizeof *j->res))) {
            cask__pool_drop(j->pool);
            job_free(j);
            return cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory to submit %zu outputs", n);
        }
        for (size_t i = 0; i < n; i++)
            futs[i] = &j->fut[i];
        cask__compute_async(j->g, j->outs, n, &j->opts, j->res, &j->hooks, job_done, j);
        return 0; /* any failure went to the futures */
    }
    pthread_t th;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    rc = pthread_create(&th, &a, job_main, j);
    pthread_attr_destroy(&a);
    if (rc) {
        if (j->pool)
            cask__pool_drop(j->pool);
        job_free(j);
        return cask__err(err, CASK_ENOMEM, NULL, NULL, "cannot start the compute's thread");
    }
    for (size_t i = 0; i < n; i++)
        futs[i] = &j->fut[i];
    return 0;
}

bool cask_future_done(const cask_future_t *f)
{
    pthread_mutex_lock(&lock);
    bool d = f->done;
    pthread_mutex_unlock(&lock);
    return d;
}

size_t cask_future_wait(cask_future_t *const *futs, size_t n, size_t k, double timeout_s,
                        bool *done)
{
    struct timespec until;
    if (timeout_s != timeout_s) /* NaN: not a time to wait; just look */
        timeout_s = 0;
    else if (timeout_s > 1e9) /* over 30 years (infinity too): no limit */
        timeout_s = -1;
    if (timeout_s > 0) {
        clock_gettime(CLOCK_REALTIME, &until);
        double s = (double)until.tv_sec + (double)until.tv_nsec * 1e-9 + timeout_s;
        until.tv_sec = (time_t)s;
        until.tv_nsec = (long)((s - (double)until.tv_sec) * 1e9);
    }
    static uint64_t waits; /* numbers each count, to spot a future given twice */
    size_t got, first = 0; /* futs[0 .. first) are done (done never goes back) */
    pthread_mutex_lock(&lock);
    for (;;) {
        while (first < n && futs[first] && futs[first]->done)
            first++;
        got = first;
        bool twice = false; /* a future not done is given more than once */
        uint64_t me = ++waits;
        for (size_t i = first; i < n; i++) {
            if (!futs[i])
                continue;
            if (futs[i]->done)
                got++;
            else if (futs[i]->seen == me)
                twice = true;
            else
                futs[i]->seen = me;
        }
        if (got >= k || timeout_s == 0)
            break;
        /* each event makes one future done: k - got of them are needed, or
        ** maybe fewer when one counts more than once */
        if (!await(twice ? 1 : k - got, timeout_s < 0 ? NULL : &until))
            break; /* timed out: count once more below */
    }
    got = 0;
    for (size_t i = 0; i < n; i++) {
        bool d = futs[i] && futs[i]->done;
        got += d;
        if (done)
            done[i] = d;
    }
    pthread_mutex_unlock(&lock);
    return got;
}

int cask_future_get(cask_future_t *f, cask_value_t *out, cask_error_t *err)
{
    cask_error_t local;
    if (!err)
        err = &local;
    cask_error_clear(err);
    *out = cask_none();
    pthread_mutex_lock(&lock);
    while (!f->done)
        await(1, NULL);
    job_t *j = f->job;
    int rc = 0;
    if (f->has_val) {
        *out = f->val;
        cask_value_incref(out);
    } else {
        *err = j->err;
        rc = j->rc;
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

bool cask_future_cancel(cask_future_t *f)
{
    pthread_mutex_lock(&lock);
    job_t *j = f->job;
    bool was = !f->done && f->wanted;
    if (was) {
        f->wanted = false;
        if (--j->wanting == 0 && !j->finished)
            stop_run(j);
    }
    pthread_mutex_unlock(&lock);
    return was;
}

int cask_future_info(cask_future_t *f, cask_compute_info_t *info)
{
    pthread_mutex_lock(&lock);
    job_t *j = f->job;
    while (!j->finished)
        await(1, NULL);
    *info = j->info;
    j->info.trace = NULL; /* the caller's now */
    int rc = j->rc;
    pthread_mutex_unlock(&lock);
    return rc;
}

void cask_future_free(cask_future_t *f)
{
    if (!f)
        return;
    cask_future_cancel(f);
    pthread_mutex_lock(&lock);
    job_t *j = f->job;
    bool last = job_release(j);
    pthread_mutex_unlock(&lock);
    if (last)
        job_free(j);
}

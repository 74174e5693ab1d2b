/*
** sched/compute.c: cask_compute(), the scheduler registry, and the
** options read from the environment.
*/
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sched.h"

#define MAX_SCHEDULERS 32

/* The registry: built-in back-ends and the user's schedulers, by name. */
static cask__backend_t schedulers[MAX_SCHEDULERS];
static char sched_names[MAX_SCHEDULERS][32];
static int n_schedulers;
static pthread_mutex_t sched_lock = PTHREAD_MUTEX_INITIALIZER;

static int find_scheduler(const char *name) /* with sched_lock held */
{
    for (int i = 0; i < n_schedulers; i++)
        if (strcmp(sched_names[i], name) == 0)
            return i;
    return -1;
}

static int add_scheduler(const cask__backend_t *b, cask_error_t *err)
{
    const cask_scheduler_t *s = &b->s;
    size_t len = s->name ? strlen(s->name) : 0;
    if (!s->run || len == 0 || len > 31)
        return cask__err(err, CASK_EINVAL, NULL, NULL,
                         "a scheduler needs a run function and a name of 1 to 31 bytes");
    pthread_mutex_lock(&sched_lock);
    int rc = 0;
    if (find_scheduler(s->name) >= 0)
        rc = cask__err(err, CASK_EDUPKEY, NULL, NULL,
                       "scheduler '%s' is already registered", s->name);
    else if (n_schedulers == MAX_SCHEDULERS)
        rc = cask__err(err, CASK_ELIMIT, NULL, NULL, "more than %d schedulers", MAX_SCHEDULERS);
    else {
        memcpy(sched_names[n_schedulers], s->name, len + 1);
        schedulers[n_schedulers] = *b;
        schedulers[n_schedulers].s.name = sched_names[n_schedulers];
        n_schedulers++;
    }
    pthread_mutex_unlock(&sched_lock);
    return rc;
}

void cask__register_schedulers(void)
{
    const cask__backend_t *builtin[] = { &cask__backend_sync, &cask__backend_threads,
                                         &cask__backend_processes, &cask__backend_mpi };
    for (size_t i = 0; i < sizeof builtin / sizeof *builtin; i++)
        add_scheduler(builtin[i], NULL);
}

int cask_scheduler_register(const cask_scheduler_t *s, cask_error_t *err)
{
    if (!s)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "the scheduler is NULL");
    cask__backend_t b = { .s = *s };
    return add_scheduler(&b, err);
}

bool cask_scheduler_exists(const char *name)
{
    if (!name)
        return false;
    pthread_mutex_lock(&sched_lock);
    int i = find_scheduler(name);
    bool there = i >= 0 && !schedulers[i].missing;
    pthread_mutex_unlock(&sched_lock);
    return there;
}

int cask_scheduler_check(const char *name, cask_error_t *err)
{
    pthread_mutex_lock(&sched_lock);
    int i = name ? find_scheduler(name) : -1;
    const char *missing = i >= 0 ? schedulers[i].missing : NULL;
    pthread_mutex_unlock(&sched_lock);
    if (i < 0)
        return cask__err(err, CASK_ENOSCHED, NULL, NULL, "unknown scheduler '%s'",
                         name ? name : "(null)");
    return missing ? cask__err(err, CASK_ENOSCHED, NULL, NULL, "%s", missing) : 0;
}

/* Parse a worker count: 1 .. 4096. */
static int parse_workers(const char *s, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 1 || v > 4096)
        return -1;
    *out = (int)v;
    return 0;
}

int cask__resolve(const cask_compute_opts_t *opts, cask__backend_t *out, int *workers,
                  cask_error_t *err)
{
    cask_scheduler_t *s = &out->s;
    if (opts->pool) { /* the pool's scheduler and workers */
        int rc = cask__pool_check(opts->pool, opts, err);
        if (rc)
            return rc;
        *out = cask__pool_procs(opts->pool) ? cask__backend_processes : cask__backend_threads;
        *workers = cask_pool_workers(opts->pool);
        return 0;
    }
    const char *name = opts->scheduler;
    if (!name || !*name)
        name = getenv("CASK_SCHEDULER");
    if (!name || !*name)
        name = "threads";
    cask__backend_t b;
    pthread_mutex_lock(&sched_lock);
    int i = find_scheduler(name);
    if (i >= 0)
        b = schedulers[i];
    pthread_mutex_unlock(&sched_lock);
    if (i < 0)
        return cask__err(err, CASK_ENOSCHED, NULL, NULL, "unknown scheduler '%s'%s", name,
                         opts->scheduler ? "" : " (from CASK_SCHEDULER)");
    if (b.missing)
        return cask__err(err, CASK_ENOSCHED, NULL, NULL, "%s", b.missing);
    *out = b;
    if (opts->workers < 0)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "workers %d is negative", opts->workers);
    if (opts->workers > 4096)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "workers %d is more than 4096",
                         opts->workers);
    *workers = opts->workers;
    if (!*workers) {
        const char *w = getenv("CASK_NUM_WORKERS");
        if (w && *w) {
            if (parse_workers(w, workers))
                return cask__err(err, CASK_EINVAL, NULL, NULL,
                                 "CASK_NUM_WORKERS='%s' is not a whole number from 1 to 4096", w);
        } else {
            long c = sysconf(_SC_NPROCESSORS_ONLN);
            *workers = c > 0 ? (int)c : 1;
        }
    }
    if (s->max_workers > 0 && *workers > s->max_workers)
        *workers = s->max_workers;
    if (b.workers) { /* a count of its own: mpi's ranks */
        int k = b.workers(err);
        if (k < 0)
            return k;
        *workers = k;
    }
    return 0;
}

int cask_bytes_parse(const char *s, size_t *out, cask_error_t *err)
{
    char *end;
    errno = 0;
    double v = s ? strtod(s, &end) : -1;
    if (!s || !out || errno || end == s || !(v >= 0) || *s < '0' || *s > '9')
        goto bad;
    static const char units[] = "kmgt";
    double scale = 1;
    if (*end) {
        const char *u = strchr(units, end[0] | 0x20);
        if (!u)
            goto bad;
        int k = (int)(u - units) + 1;
        end++;
        if (end[0] == 'i' && (end[1] == 'B' || end[1] == 'b')) {
            scale = ldexp(1.0, 10 * k);
            end += 2;
        } else {
            scale = pow(1000.0, k);
            end += end[0] == 'B' || end[0] == 'b';
        }
        if (*end)
            goto bad;
    }
    v *= scale;
    if (v >= 0x1p63)
        goto bad;
    *out = (size_t)v;
    return 0;
bad:
    return cask__err(err, CASK_EINVAL, NULL, NULL, "'%s' is not a byte count (such as "
                     "4000000, 64MB or 1.5GiB)", s ? s : "(null)");
}

/* The run's memory budget: opts', else $CASK_MEMORY_LIMIT, else none. */
static int memory_limit(const cask_compute_opts_t *opts, size_t *budget, cask_error_t *err)
{
    *budget = opts->memory_limit;
    const char *e = getenv("CASK_MEMORY_LIMIT");
    if (*budget || !e || !*e)
        return 0;
    cask_error_t why;
    if (cask_bytes_parse(e, budget, &why))
        return cask__err(err, CASK_EINVAL, NULL, NULL, "CASK_MEMORY_LIMIT=%s", why.message);
    return 0;
}

/* Free what a run holds, values included; its plan becomes g's memo when
** it is one of g. */
static void run_destroy(cask_run_t *r, const cask_graph_t *g)
{
    if (r->val)
        for (uint32_t i = 0; i < r->p.n; i++)
            if (r->val[i].type != CASK_NONE)
                cask_value_decref(&r->val[i]);
    cask__big_free(r->val);
    cask__big_free((void *)r->pending);
    cask__big_free((void *)r->uses);
    cask__big_free(r->t_worker);
    cask__big_free(r->t_start);
    cask__big_free(r->t_end);
    cask__big_free(r->t_bytes);
    cask__big_free(r->t_order);
    cask__free(r->t_slots_mem);
    cask__free(r->out_first);
    cask__free(r->xfers);
    cask__free(r->out_next);
    cask__free(r->delivered);
    cask__big_free(r->need);
    cask__cache_destroy(r->cache);
    cask__plan_keep(g, &r->p);
}

/* The run's cache directory: opts', else $CASK_CACHE_DIR, else none (NULL). */
static int cache_dir(const cask_compute_opts_t *opts, const cask__backend_t *b,
                     const char **dir, cask_error_t *err)
{
    *dir = opts->cache_dir && *opts->cache_dir ? opts->cache_dir : getenv("CASK_CACHE_DIR");
    if (*dir && !**dir)
        *dir = NULL;
    if (!(opts->cache_min_s >= 0) || opts->cache_min_s == INFINITY)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "cache_min_s %g is not a number of "
                         "seconds >= 0", opts->cache_min_s);
    if (*dir && b->s.run == cask__backend_mpi.s.run)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "scheduler 'mpi' does not keep a cache "
                         "directory (%s%s)", *dir == opts->cache_dir ? "" : "CASK_CACHE_DIR=", *dir);
    return 0;
}

int cask__check_request(const cask_graph_t *g, const cask_task_t *outs, size_t n,
                        const cask_compute_opts_t **opts, cask_error_t *err)
{
    static const cask_compute_opts_t defaults;
    cask_error_clear(err);
    if (!g || (n && !outs))
        return cask__err(err, CASK_EINVAL, NULL, NULL, "graph or outputs are NULL");
    if (!*opts)
        *opts = &defaults;
    return cask__tasks_check(g, outs, n, "output", err);
}

int cask_compute(const cask_graph_t *g, const cask_task_t *outs, size_t n,
                 const cask_compute_opts_t *opts, cask_value_t *results,
                 cask_compute_info_t *info, cask_error_t *err)
{
    return cask__compute(g, outs, n, opts, results, info, err, NULL);
}

typedef struct each {
    cask_output_fn fn;
    void *udata;
    bool borrowed;  /* an output in a shared arena as it lies, not a copy */
} each_t;

static int each_deliver(void *ctx, size_t i, const cask_value_t *v)
{
    each_t *e = ctx;
    if (e->borrowed || !cask__in_arena(v))
        return e->fn(e->udata, i, v);
    /* The arena goes with the compute: a copy, which the function may keep. */
    cask_value_t mine;
    if (cask__value_copy(v, &mine))
        return CASK_ENOMEM;
    int rc = e->fn(e->udata, i, &mine);
    cask_value_decref(&mine);
    return rc;
}

static int compute_each(const cask_graph_t *g, const cask_task_t *outs, size_t n,
                        const cask_compute_opts_t *opts, cask_output_fn fn, void *udata,
                        bool borrowed, cask_compute_info_t *info, cask_error_t *err)
{
    if (!fn) {
        if (info)
            memset(info, 0, sizeof *info);
        return cask__err(err, CASK_EINVAL, NULL, NULL, "the output function is NULL");
    }
    each_t e = { fn, udata, borrowed };
    cask__hooks_t h = { .ctx = &e, .deliver = each_deliver, .release = true };
    return cask__compute(g, outs, n, opts, NULL, info, err, &h);
}

int cask_compute_each(const cask_graph_t *g, const cask_task_t *outs, size_t n,
                      const cask_compute_opts_t *opts, cask_output_fn fn, void *udata,
                      cask_compute_info_t *info, cask_error_t *err)
{
    return compute_each(g, outs, n, opts, fn, udata, false, info, err);
}

int cask__compute_each_borrowed(const cask_graph_t *g, const cask_task_t *outs, size_t n,
                                const cask_compute_opts_t *opts, cask_output_fn fn,
                                void *udata, cask_compute_info_t *info, cask_error_t *err)
{
    return compute_each(g, outs, n, opts, fn, udata, true, info, err);
}

int cask_compute_one(const cask_graph_t *g, cask_task_t t, cask_value_t *result,
                     cask_error_t *err)
{
    return cask__compute(g, &t, 1, NULL, result, NULL, err, NULL);
}

/* Computes running now: when the last one ends, the blocks kept for reuse
** shrink to what planning the next needs. */
static atomic_int running;

/* A compute in flight: what begin() sets up and conclude() finishes. */
typedef struct flight {
    cask_run_t r;
    const cask_graph_t *g;        /* the graph asked for */
    cask_scheduler_t s;
    cask_graph_t *cut;            /* the graph cut at results found in the cache */
    cask__progress_t prog;
    uint64_t t0;
    size_t n;                     /* outputs */
    cask_value_t *results;        /* or NULL (hooks release them) */
    cask_compute_info_t *info;    /* or NULL */
    const cask__hooks_t *hooks;
    /* cask__compute_async: */
    cask__async_done done;
    void *ctx;
    cask_compute_info_t ainfo;
    cask_error_t aerr;
} flight_t;

/* Everything up to running: the options, the plan, the run's storage, the
** start callback, the progress bar and the running hook. On failure,
** everything is freed again. */
static int begin(flight_t *f, const cask_graph_t *g, const cask_task_t *outs, size_t n,
                 const cask_compute_opts_t *opts, cask_error_t *err)
{
    static const cask_compute_opts_t defaults;
    cask_compute_info_t *info = f->info;
    cask_value_t *results = f->results;
    const cask__hooks_t *hooks = f->hooks;
    cask_run_t *r = &f->r;
    if (info)
        memset(info, 0, sizeof *info);
    if (!results && !(hooks && hooks->release))
        return cask__err(err, CASK_EINVAL, NULL, NULL, "results is NULL");
    for (size_t i = 0; results && i < n; i++)
        results[i] = cask_none();
    if (!opts)
        opts = &defaults;
    f->n = n;

    cask__backend_t b;
    int rc = cask__resolve(opts, &b, &r->workers, err);
    if (!rc)
        rc = memory_limit(opts, &r->budget, err);
    const char *cdir = NULL;
    if (!rc)
        rc = cache_dir(opts, &b, &cdir, err);
    if (!rc && r->budget && !b.budget)
        rc = cask__err(err, CASK_EINVAL, NULL, NULL,
                       "scheduler '%s' does not keep a memory budget (the built-in ones "
                       "do)", b.s.name);
    if (!rc && b.s.run == cask__backend_threads.s.run) { /* on a pool */
        if (!(r->pool = opts->pool))
            rc = cask__pool_default(r->workers, &r->pool, err);
        /* a compute waited for on a thread of a pool is served by it too */
        if (!rc)
            r->workers = cask_pool_workers(r->pool) + (!f->done && cask__pool_helper(r->pool));
    } else if (!rc) {
        r->pool = opts->pool; /* "processes": lent its workers */
    }
    if (rc)
        return rc;
    f->s = b.s;
    if (info) {
        info->workers = r->workers;
        snprintf(info->scheduler, sizeof info->scheduler, "%s", b.s.name);
    }
    cask__clock_init();
    f->t0 = cask_now_ns();
    r->tick0 = cask__tick();
    f->g = g;
    if (!cask__plan_take(g, outs, n, &r->p) && (rc = cask__plan_build(g, outs, n, 1, &r->p, err)))
        return rc;
    cask__store_t *store = r->pool ? cask__pool_store(r->pool) : NULL;
    cask__mcache_t *mc = r->pool ? cask__pool_mcache(r->pool) : NULL;
    if (store && !cask__store_any(store))
        store = NULL;
    if ((cdir || store || mc) && (rc = cask__cache_plan(r, cdir, opts->flags, opts->cache_min_s,
                                                         store, mc, &f->cut, err)))
        goto fail;
    r->g = f->cut ? f->cut : g;
    if (r->p.ordered_for != r->workers && cask__plan_order(&r->p, NULL, r->workers)) {
        rc = cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory to order %u tasks", r->p.n);
        goto fail;
    }
    if (r->budget && (rc = cask__run_budget_check(r, !results, err)))
        goto fail;
    r->flags = opts->flags;
    r->cb = opts->callbacks;
    r->retries = opts->retries == 0 ? 1 : opts->retries < 0 ? 0 : opts->retries;
    size_t m = r->p.n ? r->p.n : 1;
    r->val = cask__big_calloc(m, sizeof *r->val);
    r->pending = cask__big_malloc(m * sizeof *r->pending);
    r->uses = cask__big_malloc(m * sizeof *r->uses);
    int trace = (opts->flags & CASK_TRACE) != 0;
    if (!r->val || !r->pending || !r->uses ||
        (trace && (!(r->t_worker = cask__big_malloc(m * sizeof *r->t_worker)) ||
                   !(r->t_start = cask__big_malloc(m * sizeof *r->t_start)) || /* set by every run */
                   !(r->t_end = cask__big_malloc(m * sizeof *r->t_end)) ||
                   !(r->t_bytes = cask__big_malloc(m * sizeof *r->t_bytes)) ||
                   !(r->t_order = cask__big_malloc((m + (size_t)r->workers * CASK__T_BLOCK) *
                                                   sizeof *r->t_order)) ||
                   !(r->t_slots_mem = cask__calloc((size_t)r->workers + 1, sizeof *r->t_slots))))) {
        rc = cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory to run %u tasks", r->p.n);
        goto fail;
    }
    if (hooks && hooks->deliver) {
        if (!(r->out_first = cask__malloc(m * sizeof *r->out_first)) ||
            !(r->out_next = cask__malloc((n ? n : 1) * sizeof *r->out_next)) ||
            !(r->delivered = cask__calloc(n ? n : 1, 1))) {
            rc = cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory to run %u tasks", r->p.n);
            goto fail;
        }
        memset(r->out_first, 0xff, m * sizeof *r->out_first);
        for (size_t i = n; i-- > 0;) {
            r->out_next[i] = r->out_first[r->p.out[i]];
            r->out_first[r->p.out[i]] = (uint32_t)i;
        }
        r->hooks = hooks;
    }
    if (trace) {
        r->t_cap = m + (size_t)r->workers * CASK__T_BLOCK;
        memset(r->t_order, 0xff, r->t_cap * sizeof *r->t_order);
        r->t_slots = (struct cask__slots *)(((uintptr_t)r->t_slots_mem + 63) & ~(uintptr_t)63);
    }
    for (uint32_t i = 0; i < r->p.n; i++) {
        atomic_init(&r->pending[i], r->p.npred[i]);
        atomic_init(&r->uses[i], r->p.nuse[i]);
        if (trace)
            r->t_worker[i] = -1;
    }
    r->t0 = f->t0;
    if (r->cb && r->cb->start)
        r->cb->start(r->cb->udata, r->p.n);
    cask__progress_start(&f->prog, r, opts->flags);
    if (hooks && hooks->running)
        hooks->running(hooks->ctx, r);
    return 0;
fail:
    run_destroy(r, g);
    cask_graph_decref(f->cut);
    f->cut = NULL;
    return rc;
}

/* Everything after running, with rc and serr what the scheduler returned:
** the running hook and the bar stop, the run's error or its outputs, info,
** the finish callback; then the run is freed. Returns the compute's status. */
static int conclude(flight_t *f, int rc, const cask_error_t *serr, cask_error_t *err)
{
    cask_run_t *r = &f->r;
    const cask__hooks_t *hooks = f->hooks;
    cask_compute_info_t *info = f->info;
    size_t n = f->n;
    if (hooks && hooks->running)
        hooks->running(hooks->ctx, NULL);
    cask__progress_stop(&f->prog);
    if (rc) {
        *err = *serr;
        if (!err->code)
            cask__err(err, rc, NULL, NULL, "scheduler '%s' failed: %s", f->s.name,
                      cask_strerror(rc));
    } else if (atomic_load(&r->err_taken)) {
        *err = r->err;
        rc = err->code;
    } else if (atomic_load(&r->done) != r->p.n) {
        rc = cask__err(err, CASK_EINVAL, NULL, NULL,
                       "scheduler '%s' returned with %zu of %u tasks done", f->s.name,
                       (size_t)atomic_load(&r->done), r->p.n);
    }
    /* Any output not handed over yet (a scheduler that never had it at hand
    ** while running; on "mpi", the outputs gathered on this rank, if it is
    ** rank 0 or CASK_ALL_RANKS was asked for) goes now. The run frees it
    ** when it goes. */
    if (!rc && r->delivered && (strcmp(f->s.name, "mpi") || r->outputs_here)) {
        for (size_t i = 0; i < n && !rc; i++)
            if (!r->delivered[i] && (rc = cask__run_deliver(r, r->p.out[i], false)))
                *err = r->err;
    }
    cask_value_t *results = f->results;
    if (!rc && results) {
        for (size_t i = 0; i < n; i++) {
            results[i] = r->val[r->p.out[i]];
            cask_value_incref(&results[i]);
        }
    }
    if (info) {
        info->tasks = r->p.n;
        info->wall_s = (double)(cask_now_ns() - f->t0) * 1e-9;
        info->peak_bytes = atomic_load(&r->peak);
        info->memory_limit = r->budget;
        info->cached = r->cached;
        info->persisted = r->persisted;
        info->memcached = r->memcached;
        if (!rc && (r->flags & CASK_TRACE) && !(info->trace = cask__trace_build(r))) {
            for (size_t i = 0; results && i < n; i++)
                cask_value_decref(&results[i]);
            rc = cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for the trace");
        }
    }
    if (r->cb && r->cb->finish)
        r->cb->finish(r->cb->udata, rc);
    run_destroy(r, f->g);
    cask_graph_decref(f->cut);
    f->cut = NULL;
    return rc;
}

static void trim_if_last(void)
{
    if (atomic_fetch_sub(&running, 1) == 1)
        cask__big_trim((size_t)64 << 20);
}

int cask__compute(const cask_graph_t *g, const cask_task_t *outs, size_t n,
                  const cask_compute_opts_t *opts, cask_value_t *results,
                  cask_compute_info_t *info, cask_error_t *err, const cask__hooks_t *hooks)
{
    cask_error_t local;
    if (!err)
        err = &local;
    cask_error_clear(err);
    atomic_fetch_add(&running, 1);
    flight_t f;
    memset(&f, 0, sizeof f);
    f.results = results;
    f.info = info;
    f.hooks = hooks;
    int rc = begin(&f, g, outs, n, opts, err);
    if (!rc) {
        cask_error_t serr;
        cask_error_clear(&serr);
        rc = conclude(&f, f.s.run(&f.r, f.s.udata, &serr), &serr, err);
    }
    trim_if_last();
    return rc;
}

/* The pool ended an async run: finish it and tell the caller. */
static void async_ended(void *ctx, int rc, const cask_error_t *serr)
{
    flight_t *f = ctx;
    rc = conclude(f, rc, serr, &f->aerr);
    f->done(f->ctx, rc, &f->aerr, &f->ainfo);
    cask__free(f);
    trim_if_last();
}

void cask__compute_async(const cask_graph_t *g, const cask_task_t *outs, size_t n,
                         const cask_compute_opts_t *opts, cask_value_t *results,
                         const cask__hooks_t *hooks, cask__async_done done, void *ctx)
{
    flight_t *f = cask__calloc(1, sizeof *f);
    if (!f) {
        cask_error_t e;
        done(ctx, cask__err(&e, CASK_ENOMEM, NULL, NULL, "no memory for a compute"), &e, NULL);
        return;
    }
    atomic_fetch_add(&running, 1);
    f->results = results;
    f->info = &f->ainfo;
    f->hooks = hooks;
    f->done = done;
    f->ctx = ctx;
    int rc = begin(f, g, outs, n, opts, &f->aerr);
    if (rc) { /* nothing started */
        done(ctx, rc, &f->aerr, &f->ainfo);
        cask__free(f);
        trim_if_last();
    } else if ((rc = cask__pool_start(&f->r, async_ended, f, &f->aerr))) {
        async_ended(f, rc, &f->aerr); /* begun, then refused: a failed compute */
    }
}

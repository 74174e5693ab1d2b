/*
** sched/trace.c: traces: built from a finished run, written as JSON.
** A trace holds a reference on its graph and points at the graph's key
** strings (which never move), so it outlives the caller's cask_graph_decref;
** groups derived from keys are made on first read.
*/
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "sched.h"

struct cask_trace {
    int      workers;          /* workers of the run, transfer rows included */
    int      xrows;            /* the last xrows rows hold transfers: row w the
                                  values worker w - (workers - xrows) received */
    size_t   n;                /* events */
    cask_trace_event_t *ev;    /* sorted by start, then worker */
    const cask_graph_t *g;     /* a reference: the keys are its strings */
    char    *derived;          /* groups made from keys, on first read */
    atomic_int ready;          /* 1 once every event has its group */
    pthread_mutex_t lock;      /* guards making them */
    uint64_t span;             /* last end */
    json_t  *doc;              /* a loaded trace: the document its strings are in */
};

/* Order task ids by start tick, then worker (qsort_r's context is the run). */
static int by_start(const void *a, const void *b, void *ctx)
{
    const cask_run_t *r = ctx;
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    uint64_t sx = r->t_start[x], sy = r->t_start[y];
    if (sx != sy)
        return sx < sy ? -1 : 1;
    return r->t_worker[x] - r->t_worker[y];
}

/* A trace of n events (to fill) on `workers` workers; with g, events name
** g's keys and the trace holds a reference on g. NULL when out of memory. */
static cask_trace_t *trace_new(const cask_graph_t *g, int workers, size_t n)
{
    cask_trace_t *tr = cask__calloc(1, sizeof *tr);
    if (!tr || !(tr->ev = cask__malloc((n ? n : 1) * sizeof *tr->ev))) {
        cask__free(tr);
        return NULL;
    }
    tr->workers = workers;
    tr->n = n;
    if (g) {
        cask_graph_incref(g);
        tr->g = g;
        pthread_mutex_init(&tr->lock, NULL);
    }
    return tr;
}

/* Event i: graph task gt, run by worker from start to end (ns). */
static void put_event(cask_trace_t *tr, size_t i, uint32_t gt, int worker, uint64_t start,
                      uint64_t end, uint64_t bytes)
{
    const cask_graph_t *g = tr->g;
    tr->ev[i] = (cask_trace_event_t){
        .key = cask__graph_key(g, gt), /* stable while g lives, and the trace holds g */
        .group = cask__graph_group_name(g, gt), /* NULL: derived later */
        .worker = worker, .start_ns = start > end ? end : start, /* a rounding step */
        .end_ns = end, .bytes = bytes };
    if (end > tr->span)
        tr->span = end;
}

static int ev_by_start(const void *a, const void *b);

/* The trace of a finished run r: every task, ordered by start time. */
cask_trace_t *cask__trace_build(const cask_run_t *r)
{
    const cask_graph_t *g = r->g;
    size_t n = r->p.n;
    cask__tickconv_t conv;
    cask__tick_rate(&conv);
    uint64_t zero = cask__tick_ns(&conv, r->tick0);
    cask_trace_t *tr = NULL;
    uint32_t *order = cask__malloc((n ? n : 1) * sizeof *order);
    if (!order)
        goto fail;
    /* Tasks in the order they ended, each worker's in blocks of slots it
    ** reserved (unused slots hold UINT32_MAX): sorted by start already when
    ** one worker ran them, nearly so otherwise. */
    int sorted = 1;
    size_t used = atomic_load(&r->t_started), k = 0;
    if (used > r->t_cap)
        used = r->t_cap;
    for (size_t i = 0; i < used && k < n; i++) {
        uint32_t t = r->t_order[i];
        if (t == UINT32_MAX) /* reserved by a worker, not used */
            continue;
        order[k] = t;
        if (k && r->t_start[t] < r->t_start[order[k - 1]])
            sorted = 0;
        k++;
    }
    if (k != n) /* cannot happen: every task of a finished run has its slot */
        goto fail;
    if (!sorted)
        qsort_r(order, n, sizeof *order, by_start, (void *)r);
    size_t nx = r->xfers ? r->n_xfers : 0;
    if (!(tr = trace_new(g, r->workers + (nx ? r->xfer_rows : 0), n + nx)))
        goto fail;
    tr->xrows = nx ? r->xfer_rows : 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t t = order[i];
        put_event(tr, i, r->p.task[t], r->t_worker[t],
                  cask__tick_ns(&conv, r->t_start[t]) - zero,
                  cask__tick_ns(&conv, r->t_end[t]) - zero, r->t_bytes[t]);
    }
    for (size_t i = 0; i < nx; i++) { /* transfers: their own rows and group */
        const cask__xfer_t *x = &r->xfers[i];
        put_event(tr, n + i, r->p.task[x->t], x->row, x->start > zero ? x->start - zero : 0,
                  x->end > zero ? x->end - zero : 0, x->bytes);
        tr->ev[n + i].group = "transfer";
    }
    if (nx)
        qsort(tr->ev, tr->n, sizeof *tr->ev, ev_by_start);
    cask__free(order);
    return tr;
fail:
    cask__free(order);
    cask_trace_free(tr);
    return NULL;
}

/* Order events by start, then worker. */
static int ev_by_start(const void *a, const void *b)
{
    const cask_trace_event_t *x = a, *y = b;
    if (x->start_ns != y->start_ns)
        return x->start_ns < y->start_ns ? -1 : 1;
    if (x->worker != y->worker)
        return x->worker < y->worker ? -1 : 1;
    return (x->end_ns > y->end_ns) - (x->end_ns < y->end_ns); /* empty spans first */
}

cask_trace_t *cask__trace_from(const cask__plan_t *p, int workers, const int32_t *worker,
                               const uint64_t *start, const uint64_t *end)
{
    cask_trace_t *tr = trace_new(p->g, workers, p->n);
    if (!tr)
        return NULL;
    for (uint32_t v = 0; v < p->n; v++)
        put_event(tr, v, p->task[v], worker[v], start[v], end[v], 0);
    qsort(tr->ev, tr->n, sizeof *tr->ev, ev_by_start);
    return tr;
}

int cask_trace_idle(const cask_trace_t *tr, double *idle, double *tail, cask_error_t *err)
{
    if (!tr)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "the trace is NULL");
    for (int w = 0; w < tr->workers; w++) {
        if (idle)
            idle[w] = (double)tr->span * 1e-9;
        if (tail)
            tail[w] = (double)tr->span * 1e-9;
    }
    for (size_t i = 0; i < tr->n; i++) {
        const cask_trace_event_t *e = &tr->ev[i];
        if (e->worker < 0 || e->worker >= tr->workers)
            continue;
        if (idle)
            idle[e->worker] -= (double)(e->end_ns - e->start_ns) * 1e-9;
        if (tail && (double)(tr->span - e->end_ns) * 1e-9 < tail[e->worker])
            tail[e->worker] = (double)(tr->span - e->end_ns) * 1e-9;
    }
    return 0;
}

/* Give every event whose group derives from its key a string of its own:
** done once, on the first read, so a compute that never reads its trace
** never pays for it. Returns 0 or CASK_ENOMEM. */
static int make_groups(cask_trace_t *tr)
{
    if (atomic_load_explicit(&tr->ready, memory_order_acquire))
        return 0;
    int rc = 0;
    pthread_mutex_lock(&tr->lock);
    if (!atomic_load_explicit(&tr->ready, memory_order_relaxed)) {
        size_t chars = 0;
        for (size_t i = 0; i < tr->n; i++)
            if (!tr->ev[i].group)
                chars += cask__derived_group_len(tr->ev[i].key) + 1;
        char *s = tr->derived = cask__malloc(chars ? chars : 1);
        if (!s)
            rc = CASK_ENOMEM;
        for (size_t i = 0; s && i < tr->n; i++) {
            if (tr->ev[i].group)
                continue;
            size_t len = cask__derived_group_len(tr->ev[i].key);
            memcpy(s, tr->ev[i].key, len);
            s[len] = '\0';
            tr->ev[i].group = s;
            s += len + 1;
        }
        if (!rc)
            atomic_store_explicit(&tr->ready, 1, memory_order_release);
    }
    pthread_mutex_unlock(&tr->lock);
    return rc;
}

size_t cask_trace_size(const cask_trace_t *tr) { return tr ? tr->n : 0; }
int cask__trace_xrows(const cask_trace_t *tr) { return tr ? tr->xrows : 0; }
int cask_trace_workers(const cask_trace_t *tr) { return tr ? tr->workers : 0; }
uint64_t cask_trace_span_ns(const cask_trace_t *tr) { return tr ? tr->span : 0; }

const cask_trace_event_t *cask_trace_event(const cask_trace_t *tr, size_t i)
{
    if (!tr || i >= tr->n || make_groups((cask_trace_t *)tr))
        return NULL;
    return &tr->ev[i];
}

void cask_trace_free(cask_trace_t *tr)
{
    if (!tr)
        return;
    if (tr->g) {
        pthread_mutex_destroy(&tr->lock);
        cask_graph_decref((cask_graph_t *)tr->g);
    }
    json_decref(tr->doc);
    cask__free(tr->ev);
    cask__free(tr->derived);
    cask__free(tr);
}

int cask_trace_write_json(const cask_trace_t *tr, FILE *f, cask_error_t *err)
{
    if (!tr || !f)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "trace or file is NULL");
    json_t *tasks = json_array(), *root = json_object();
    int rc = CASK_ENOMEM;
    if (make_groups((cask_trace_t *)tr) || !tasks || !root ||
        json_object_set_new(root, "workers", json_integer(tr->workers)) ||
        (tr->xrows && json_object_set_new(root, "transfer_rows", json_integer(tr->xrows))))
        goto out;
    for (size_t i = 0; i < tr->n; i++) {
        const cask_trace_event_t *e = &tr->ev[i];
        json_t *o = json_pack("{s:s, s:s, s:i, s:I, s:I, s:I}", "key", e->key, "group",
                              e->group, "worker", e->worker, "start_ns",
                              (json_int_t)e->start_ns, "end_ns", (json_int_t)e->end_ns,
                              "bytes", (json_int_t)e->bytes);
        if (!o || json_array_append_new(tasks, o))
            goto out;
    }
    rc = json_object_set(root, "tasks", tasks) ? CASK_ENOMEM : 0;
    if (!rc && (json_dumpf(root, f, JSON_INDENT(1) | JSON_PRESERVE_ORDER) ||
                fputc('\n', f) == EOF))
        rc = CASK_EIO;
out:
    json_decref(tasks);
    json_decref(root);
    if (rc)
        cask__err(err, rc, NULL, NULL, rc == CASK_EIO ? "cannot write the trace: %s"
                                                      : "no memory to write the trace%s",
                  rc == CASK_EIO ? strerror(errno) : "");
    return rc;
}

static int write_trace(FILE *f, const void *tr, const void *opts, cask_error_t *err)
{
    (void)opts;
    return cask_trace_write_json(tr, f, err);
}

int cask_trace_save_json(const cask_trace_t *tr, const char *path, cask_error_t *err)
{
    return cask__save(path, write_trace, tr, NULL, err);
}

int cask_trace_load_json(const char *path, cask_trace_t **out, cask_error_t *err)
{
    if (!out)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "out is NULL");
    *out = NULL;
    json_error_t je;
    json_t *doc = path ? json_load_file(path, 0, &je) : NULL;
    if (!doc)
        return path ? cask__json_error(&je, path, err)
                    : cask__err(err, CASK_EINVAL, NULL, NULL, "path is NULL");
    json_t *w = json_object_get(doc, "workers"), *tasks = json_object_get(doc, "tasks");
    json_t *xr = json_object_get(doc, "transfer_rows");
    int rc = 0;
    cask_trace_t *tr = NULL;
    if (!json_is_integer(w) || json_integer_value(w) < 1 || json_integer_value(w) > 1 << 20 ||
        !json_is_array(tasks) ||
        (xr && (!json_is_integer(xr) || json_integer_value(xr) < 0 ||
                json_integer_value(xr) >= json_integer_value(w)))) {
        rc = cask__err(err, CASK_EPARSE, NULL, NULL,
                       "%s: a trace is {\"workers\": N >= 1, \"tasks\": [...]}, with "
                       "\"transfer_rows\": 0 .. N-1 if present", path);
        goto out;
    }
    size_t n = json_array_size(tasks);
    if (!(tr = trace_new(NULL, (int)json_integer_value(w), n))) {
        rc = cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for the trace");
        goto out;
    }
    tr->xrows = xr ? (int)json_integer_value(xr) : 0;
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_array_get(tasks, i);
        json_int_t wk = -1, s = -1, e = -1, b = 0;
        const char *key = NULL, *group = NULL;
        if (json_unpack(t, "{s:s, s:s, s:I, s:I, s:I, s?I}", "key", &key, "group", &group,
                        "worker", &wk, "start_ns", &s, "end_ns", &e, "bytes", &b) ||
            wk < 0 || wk >= tr->workers || s < 0 || e < s || b < 0) {
            rc = cask__err(err, CASK_EPARSE, NULL, NULL,
                           "%s: tasks[%zu] must have key, group, worker (0 .. %d), "
                           "start_ns <= end_ns (ns, >= 0) and bytes", path, i, tr->workers - 1);
            goto out;
        }
        tr->ev[i] = (cask_trace_event_t){ key, group, (int)wk, (uint64_t)s, (uint64_t)e,
                                          (uint64_t)b };
        if ((uint64_t)e > tr->span)
            tr->span = (uint64_t)e;
    }
    qsort(tr->ev, tr->n, sizeof *tr->ev, ev_by_start);
    /* A worker runs one task at a time: its spans may touch, not overlap. */
    uint64_t *free_at = cask__calloc((size_t)tr->workers, sizeof *free_at);
    if (!free_at) {
        rc = cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for the trace");
        goto out;
    }
    for (size_t i = 0; i < n && !rc; i++) {
        const cask_trace_event_t *e = &tr->ev[i];
        if (e->start_ns < free_at[e->worker])
            rc = cask__err(err, CASK_EPARSE, NULL, NULL,
                           "%s: task '%s' starts on worker %d at %llu ns, before its task "
                           "before ends (%llu ns)", path, e->key, e->worker,
                           (unsigned long long)e->start_ns,
                           (unsigned long long)free_at[e->worker]);
        free_at[e->worker] = e->end_ns;
    }
    cask__free(free_at);
    if (rc)
        goto out;
    atomic_store(&tr->ready, 1);
    tr->doc = doc;
    doc = NULL;
    *out = tr;
    tr = NULL;
out:
    json_decref(doc);
    cask_trace_free(tr);
    return rc;
}

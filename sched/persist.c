/*
** sched/persist.c: values kept on a pool (cask_persist), as Dask's persist.
**
** A pool has a store: a hash table from task keys to values, each entry
** counting the handles (cask_persisted_t) that hold it. cask_persist
** computes its outputs on the pool and adds them; freeing a handle lets go
** of its entries, and an entry no handle holds goes, with its value. A
** compute on the pool looks each task it needs up by key, from the outputs
** down (cask__cache_plan): a task found there is not run, nor anything
** behind it; its value goes into the run as a cask.const task. When the
** pool ends, every value is released; handles freed later only let go of
** the store, which goes with the last of them.
*/
#include <string.h>

#include "sched.h"

typedef struct entry {
    struct entry *next;    /* in its bucket */
    uint64_t      h;
    size_t        holders; /* handles holding it */
    cask_value_t  v;       /* NONE once the pool has ended */
    char          key[];
} entry_t;

struct cask__store {
    pthread_mutex_t lock;  /* guards everything below */
    entry_t **b;           /* buckets, nb a power of two (or 0) */
    size_t    nb, n;
    size_t    refs;        /* the pool, and each handle not freed */
    bool      closed;      /* the pool has ended */
    atomic_size_t live;    /* entries with a value (read unlocked as a hint) */
};

struct cask_persisted {
    cask__store_t *s;
    size_t         n;
    entry_t       *e[];    /* the entry of each output */
};

static uint64_t key_hash(const char *key)
{
    return cask__hash(key, strlen(key), 0);
}

cask__store_t *cask__store_new(void)
{
    cask__store_t *s = cask__calloc(1, sizeof *s);
    if (!s)
        return NULL;
    pthread_mutex_init(&s->lock, NULL);
    s->refs = 1;
    return s;
}

/* The entry of key, or NULL; lock held. */
static entry_t *find(const cask__store_t *s, const char *key, uint64_t h)
{
    if (!s->nb)
        return NULL;
    for (entry_t *e = s->b[h & (s->nb - 1)]; e; e = e->next)
        if (e->h == h && !strcmp(e->key, key))
            return e;
    return NULL;
}

/* Room for one more entry (buckets doubled past one entry per bucket);
** lock held. 0 or CASK_ENOMEM. */
static int grow(cask__store_t *s)
{
    if (s->n < s->nb)
        return 0;
    size_t nb = s->nb ? 2 * s->nb : 16;
    entry_t **b = cask__calloc(nb, sizeof *b);
    if (!b)
        return CASK_ENOMEM;
    for (size_t i = 0; i < s->nb; i++)
        for (entry_t *e = s->b[i], *next; e; e = next) {
            next = e->next;
            e->next = b[e->h & (nb - 1)];
            b[e->h & (nb - 1)] = e;
        }
    cask__free(s->b);
    s->b = b;
    s->nb = nb;
    return 0;
}

/* Take e out of its bucket and free it with its value; lock held. */
static void drop(cask__store_t *s, entry_t *e)
{
    entry_t **at = &s->b[e->h & (s->nb - 1)];
    while (*at != e)
        at = &(*at)->next;
    *at = e->next;
    s->n--;
    if (e->v.type != CASK_NONE)
        atomic_fetch_sub(&s->live, 1);
    cask_value_decref(&e->v);
    cask__free(e);
}

/* Let go of one reference to s; lock held, and released here. */
static void unref(cask__store_t *s)
{
    bool last = --s->refs == 0;
    pthread_mutex_unlock(&s->lock);
    if (!last)
        return;
    for (size_t i = 0; i < s->nb; i++)
        for (entry_t *e = s->b[i], *next; e; e = next) {
            next = e->next;
            cask_value_decref(&e->v);
            cask__free(e);
        }
    cask__free(s->b);
    pthread_mutex_destroy(&s->lock);
    cask__free(s);
}

bool cask__store_any(const cask__store_t *s)
{
    return atomic_load_explicit(&s->live, memory_order_relaxed) > 0;
}

bool cask__store_get(cask__store_t *s, const char *key, cask_value_t *out)
{
    pthread_mutex_lock(&s->lock);
    entry_t *e = find(s, key, key_hash(key));
    bool there = e && e->v.type != CASK_NONE;
    if (there) {
        *out = e->v;
        cask_value_incref(out);
    }
    pthread_mutex_unlock(&s->lock);
    return there;
}

void cask__store_close(cask__store_t *s)
{
    pthread_mutex_lock(&s->lock);
    s->closed = true;
    for (size_t i = 0; i < s->nb; i++)
        for (entry_t *e = s->b[i]; e; e = e->next)
            if (e->v.type != CASK_NONE) {
                cask_value_decref(&e->v);
                e->v = cask_none();
                atomic_fetch_sub(&s->live, 1);
            }
    unref(s);
}

void cask_persisted_free(cask_persisted_t *p)
{
    if (!p)
        return;
    cask__store_t *s = p->s;
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < p->n; i++)
        if (!--p->e[i]->holders)
            drop(s, p->e[i]);
    cask__free(p);
    unref(s);
}

size_t cask_persisted_size(const cask_persisted_t *p)
{
    return p ? p->n : 0;
}

int cask_persisted_get(const cask_persisted_t *p, size_t i, cask_value_t *out,
                       cask_error_t *err)
{
    if (!out)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "out is NULL");
    *out = cask_none();
    if (!p || i >= p->n)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "no persisted output %zu", i);
    pthread_mutex_lock(&p->s->lock);
    const entry_t *e = p->e[i];
    int rc = 0;
    if (e->v.type == CASK_NONE)
        rc = cask__err(err, CASK_EMISSING, e->key, NULL, "the pool has ended: its persisted "
                       "values were released");
    else {
        *out = e->v;
        cask_value_incref(out);
    }
    pthread_mutex_unlock(&p->s->lock);
    return rc;
}

/* Keep v under key (or hold what is kept already) for handle p's output i;
** lock held. 0 or CASK_ENOMEM. */
static int keep(cask__store_t *s, cask_persisted_t *p, size_t i, const char *key,
                const cask_value_t *v)
{
    uint64_t h = key_hash(key);
    entry_t *e = find(s, key, h);
    if (!e) {
        size_t len = strlen(key);
        if (grow(s) || !(e = cask__calloc(1, sizeof *e + len + 1)))
            return CASK_ENOMEM;
        memcpy(e->key, key, len + 1);
        e->h = h;
        e->next = s->b[h & (s->nb - 1)];
        s->b[h & (s->nb - 1)] = e;
        s->n++;
    }
    if (e->v.type == CASK_NONE) {
        e->v = *v;
        cask_value_incref(&e->v);
        atomic_fetch_add(&s->live, 1);
    }
    e->holders++;
    p->e[i] = e;
    return 0;
}

int cask_persist(const cask_graph_t *g, const cask_task_t *outs, size_t n,
                 const cask_compute_opts_t *opts, cask_persisted_t **out, cask_error_t *err)
{
    cask_error_t local;
    if (!err)
        err = &local;
    if (!out)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "out is NULL");
    *out = NULL;
    int rc = cask__check_request(g, outs, n, &opts, err);
    if (rc)
        return rc;
    /* the pool: opts', else the default pool of the worker count asked for */
    cask_compute_opts_t o = *opts;
    if (!o.pool) {
        cask__backend_t b;
        int workers;
        if ((rc = cask__resolve(opts, &b, &workers, err)))
            return rc;
        if (b.s.run != cask__backend_threads.s.run)
            return cask__err(err, CASK_EINVAL, NULL, NULL, "persist keeps values on a pool, "
                             "and '%s' has none (only 'threads' has pools)", b.s.name);
        if ((rc = cask__pool_default(workers, &o.pool, err)))
            return rc;
    }
    if (cask__pool_procs(o.pool))
        return cask__err(err, CASK_EINVAL, NULL, NULL, "persist keeps values on pools of "
                         "'threads' only");
    /* a reference on the store from here: the pool may end meanwhile */
    cask__store_t *s = cask__pool_store(o.pool);
    pthread_mutex_lock(&s->lock);
    bool closed = s->closed;
    s->refs += !closed;
    pthread_mutex_unlock(&s->lock);
    if (closed)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "the pool has ended");
    cask_value_t *vals = cask__calloc(n ? n : 1, sizeof *vals);
    cask_persisted_t *p = cask__calloc(1, sizeof *p + (n ? n : 1) * sizeof p->e[0]);
    if (!vals || !p)
        rc = cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory to persist %zu outputs", n);
    else
        rc = cask_compute(g, outs, n, &o, vals, NULL, err);
    pthread_mutex_lock(&s->lock);
    if (!rc && s->closed)
        rc = cask__err(err, CASK_EINVAL, NULL, NULL, "the pool has ended");
    for (size_t i = 0; !rc && i < n; i++) {
        if (keep(s, p, i, cask_graph_key(g, outs[i]), &vals[i]))
            rc = cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory to persist %zu outputs", n);
        else
            p->n++;
    }
    if (rc) { /* let go of what was kept, and of the store */
        for (size_t i = 0; p && i < p->n; i++)
            if (!--p->e[i]->holders)
                drop(s, p->e[i]);
        cask__free(p);
        p = NULL;
        unref(s);
    } else {
        p->s = s; /* the handle's reference */
        pthread_mutex_unlock(&s->lock);
    }
    if (vals) {
        for (size_t i = 0; i < n; i++)
            cask_value_decref(&vals[i]);
    }
    for (size_t i = 0; i < n; i++)
        cask_value_decref(&vals[i]);
    cask__free(vals);
    *out = p;
    return rc;
}

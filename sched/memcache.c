/*
** sched/memcache.c: a pool's result cache (cask_pool_opts_t.cache_bytes).
**
** Results of pure kernels, by cache key (sched/cache.c: a hash of the
** kernel, its version and its inputs' contents), in memory, within a byte
** budget. Each entry has a score, as Dask's opportunistic cache (cachey)
** gives one: the seconds its kernel took over the bytes it holds, raised by
** that much again at each hit. When the cache is over its budget, the
** entries of lowest score go first, the newest included: a result cheap to
** make again and big is not kept at the expense of one that took long. An
** entry's bytes are its value's payload and the entry itself. Every
** result a cache key can be made for is put; a put over the budget scans
** every entry under the cache's one lock (O(entries)), so a cache of
** millions of tiny results evicts slowly.
*/
#include <string.h>

#include "sched.h"

typedef struct mentry {
    struct mentry *next;   /* in its bucket */
    uint64_t       key[2];
    cask_value_t   v;
    size_t         bytes;
    double         score;  /* seconds per byte, and as much again per hit */
    double         gain;   /* what a hit adds */
} mentry_t;

struct cask__mcache {
    pthread_mutex_t lock;  /* guards everything below */
    size_t          budget;
    mentry_t      **b;     /* buckets, nb a power of two (or 0) */
    size_t          nb, n;
    cask_pool_cache_stats_t st;
};

cask__mcache_t *cask__mcache_new(size_t budget)
{
    cask__mcache_t *m = cask__calloc(1, sizeof *m);
    if (!m)
        return NULL;
    pthread_mutex_init(&m->lock, NULL);
    m->budget = budget;
    m->st.budget = budget;
    return m;
}

void cask__mcache_free(cask__mcache_t *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->nb; i++)
        for (mentry_t *e = m->b[i], *next; e; e = next) {
            next = e->next;
            cask_value_decref(&e->v);
            cask__free(e);
        }
    cask__free(m->b);
    pthread_mutex_destroy(&m->lock);
    cask__free(m);
}

static mentry_t **slot(const cask__mcache_t *m, const uint64_t key[2])
{
    mentry_t **at = &m->b[key[0] & (m->nb - 1)];
    while (*at && ((*at)->key[0] != key[0] || (*at)->key[1] != key[1]))
        at = &(*at)->next;
    return at;
}

bool cask__mcache_get(cask__mcache_t *m, const uint64_t key[2], cask_value_t *out)
{
    pthread_mutex_lock(&m->lock);
    mentry_t *e = m->nb ? *slot(m, key) : NULL;
    if (e) {
        e->score += e->gain;
        *out = e->v;
        cask_value_incref(out);
        m->st.hits++;
    } else {
        m->st.misses++;
    }
    pthread_mutex_unlock(&m->lock);
    return e != NULL;
}

/* Evict the entries of lowest score until the cache fits its budget; lock held. */
static void fit(cask__mcache_t *m)
{
    while (m->st.bytes > m->budget) {
        mentry_t **low = NULL;
        for (size_t i = 0; i < m->nb; i++)
            for (mentry_t **at = &m->b[i]; *at; at = &(*at)->next)
                if (!low || (*at)->score < (*low)->score)
                    low = at;
        mentry_t *e = *low;
        *low = e->next;
        m->n--;
        m->st.entries--;
        m->st.bytes -= e->bytes;
        m->st.evictions++;
        cask_value_decref(&e->v);
        cask__free(e);
    }
}

/* Room for one more entry; lock held. 0 or CASK_ENOMEM. */
static int grow(cask__mcache_t *m)
{
    if (m->n < m->nb)
        return 0;
    size_t nb = m->nb ? 2 * m->nb : 16;
    mentry_t **b = cask__calloc(nb, sizeof *b);
    if (!b)
        return CASK_ENOMEM;
    for (size_t i = 0; i < m->nb; i++)
        for (mentry_t *e = m->b[i], *next; e; e = next) {
            next = e->next;
            e->next = b[e->key[0] & (nb - 1)];
            b[e->key[0] & (nb - 1)] = e;
        }
    cask__free(m->b);
    m->b = b;
    m->nb = nb;
    return 0;
}

void cask__mcache_put(cask__mcache_t *m, const uint64_t key[2], const cask_value_t *v,
                      double seconds)
{
    if (v->type == CASK_OPAQUE || v->type == CASK_NONE)
        return;
    size_t bytes = cask_value_nbytes(v) + sizeof(mentry_t);
    pthread_mutex_lock(&m->lock);
    mentry_t *e;
    if (bytes > m->budget || grow(m) || *slot(m, key) || !(e = cask__calloc(1, sizeof *e))) {
        pthread_mutex_unlock(&m->lock); /* too big, no memory, or there already */
        return;
    }
    e->key[0] = key[0];
    e->key[1] = key[1];
    e->v = *v;
    cask_value_incref(&e->v);
    e->bytes = bytes;
    e->gain = e->score = (seconds > 0 ? seconds : 1e-9) / (double)bytes;
    e->next = m->b[key[0] & (m->nb - 1)];
    m->b[key[0] & (m->nb - 1)] = e;
    m->n++;
    m->st.entries++;
    m->st.bytes += bytes;
    fit(m);
    pthread_mutex_unlock(&m->lock);
}

void cask__mcache_stats(cask__mcache_t *m, cask_pool_cache_stats_t *st)
{
    pthread_mutex_lock(&m->lock);
    *st = m->st;
    pthread_mutex_unlock(&m->lock);
}

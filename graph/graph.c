/*
** graph/graph.c: building the task graph in compact arrays.
**
** Tasks are columns of parallel arrays; all inputs of all tasks sit in one
** flat array (the predecessor half of a CSR), so adding a task costs a few
** appends and no allocation per edge. Keys are interned in a string table
** whose index finds a key in O(1) and lets equal expressions share a task.
*/
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* A new graph's id: never 0 or UINT32_MAX (the id in CASK_NO_TASK), and
** shared with no graph made in the last 2^32 - 2. */
static uint32_t next_id(void)
{
    static atomic_uint counter;
    uint32_t id;
    do
        id = atomic_fetch_add_explicit(&counter, 1, memory_order_relaxed) + 1;
    while (id == 0 || id == UINT32_MAX);
    return id;
}

int cask__task_check(const cask_graph_t *g, cask_task_t t, const char *what, const char *key,
                     const char *kernel, cask_error_t *err)
{
    if (cask__task_in(g, t))
        return 0;
    if (!g)
        return cask__err(err, CASK_EINVAL, key, kernel, "the graph is NULL");
    if (t == CASK_NO_TASK)
        return cask__err(err, CASK_EINVAL, key, kernel,
                         "%s is CASK_NO_TASK (an earlier call failed?)", what);
    if ((uint32_t)(t >> 32) != g->id)
        return cask__err(err, CASK_EINVAL, key, kernel, "%s is a task of another graph", what);
    return cask__err(err, CASK_EMISSING, key, kernel, "%s is task %u, not in a graph of %u tasks",
                     what, (unsigned)cask__tix(t), (unsigned)g->n);
}

int cask__tasks_check(const cask_graph_t *g, const cask_task_t *ts, size_t n, const char *what,
                      cask_error_t *err)
{
    for (size_t i = 0; i < n; i++)
        if (!cask__task_in(g, ts[i])) {
            char w[64];
            snprintf(w, sizeof w, "%s %zu", what, i);
            return cask__task_check(g, ts[i], w, NULL, NULL, err);
        }
    return 0;
}

cask_graph_t *cask_graph_new(cask_error_t *err)
{
    cask_graph_t *g = cask__calloc(1, sizeof *g);
    if (!g) {
        cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for a graph");
        return NULL;
    }
    atomic_init(&g->refs, 1);
    g->id = next_id();
    g->last_kid = CASK__NO_KERNEL;
    g->in_off = cask__calloc(1, sizeof *g->in_off);
    if (!g->in_off) {
        cask__free(g);
        cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for a graph");
        return NULL;
    }
    return g;
}

void cask_graph_incref(const cask_graph_t *g)
{
    atomic_fetch_add_explicit(&((cask_graph_t *)g)->refs, 1, memory_order_relaxed);
}

void cask_graph_decref(cask_graph_t *g)
{
    if (!g || atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < g->n_in; i++)
        cask_value_decref(&g->in[i]);
    cask__strtab_destroy(&g->keys);
    cask__strtab_destroy(&g->groups);
    cask__free(g->in_off);
    cask__free(g->n_after);
    cask__free(g->kernel);
    cask__free(g->group);
    cask__free(g->cost);
    cask__free(g->nbytes);
    cask__free(g->in);
    cask__free(g->outputs);
    cask__plan_memo_free(g);
    cask__free(g);
}

/* Resize one column to n entries of size sz; the old block stays on failure. */
static int grow_col(void **col, size_t n, size_t sz)
{
    void *p = cask__realloc(*col, n * sz);
    if (!p)
        return CASK_ENOMEM;
    *col = p;
    return 0;
}

/* Room for one more task and n_in more inputs; g's contents unchanged. */
static int reserve(cask_graph_t *g, size_t n_in)
{
    if (g->n_in + n_in > UINT32_MAX)
        return CASK_ELIMIT;
    if (cask__grow((void **)&g->in, &g->cap_in, g->n_in + n_in, sizeof *g->in))
        return CASK_ENOMEM;
    if (g->n < g->cap)
        return 0;
    size_t nc = g->cap < 64 ? 64 : (size_t)g->cap + g->cap / 2;
    if (nc > UINT32_MAX - 2)
        return CASK_ELIMIT;
    /* Grow each column (the lazy ones only once made); a column already
    ** grown stays valid if a later one fails. */
    if (grow_col((void **)&g->in_off, nc + 1, sizeof *g->in_off) ||
        grow_col((void **)&g->kernel, nc, sizeof *g->kernel) ||
        (g->n_after && grow_col((void **)&g->n_after, nc, sizeof *g->n_after)) ||
        (g->group && grow_col((void **)&g->group, nc, sizeof *g->group)) ||
        (g->cost && grow_col((void **)&g->cost, nc, sizeof *g->cost)) ||
        (g->nbytes && grow_col((void **)&g->nbytes, nc, sizeof *g->nbytes)))
        return CASK_ENOMEM;
    g->cap = (uint32_t)nc;
    return 0;
}

/* Make a lazy column of cap zeroed entries of size sz (zero: no after,
** derived group, no size given). */
static int make_zeroed(cask_graph_t *g, void **col, size_t sz)
{
    if (*col)
        return 0;
    if (!(*col = cask__calloc(g->cap ? g->cap : 1, sz)))
        return CASK_ENOMEM;
    return 0;
}

static int make_cost(cask_graph_t *g)
{
    if (g->cost)
        return 0;
    if (!(g->cost = cask__malloc((g->cap ? g->cap : 1) * sizeof *g->cost)))
        return CASK_ENOMEM;
    for (uint32_t i = 0; i < g->n; i++)
        g->cost[i] = NAN;
    return 0;
}

/* Resolve a kernel name to its id, through the graph's one-entry cache
** (by the name's text: a caller may reuse one buffer for many names). */
static uint32_t find_kernel(cask_graph_t *g, const char *name)
{
    if (g->last_kid != CASK__NO_KERNEL && !strcmp(name, cask__kernel_get(g->last_kid)->name))
        return g->last_kid;
    uint32_t id = cask__kernel_lookup(name);
    if (id != CASK__NO_KERNEL)
        g->last_kid = id;
    return id;
}

/* Write v in lowercase hex, 16 digits, two at a time. */
static char *put_hex(char *p, uint64_t v)
{
    static const char pairs[513] =
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
        "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
        "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
        "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
        "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
        "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
        "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
        "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";
    for (int i = 7; i >= 0; i--)
        memcpy(p + 2 * (7 - i), pairs + 2 * ((v >> (8 * i)) & 255), 2);
    return p + 16;
}

static char *put_dec(char *p, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do
        tmp[n++] = (char)('0' + v % 10);
    while (v /= 10);
    while (n)
        *p++ = tmp[--n];
    return p;
}

/* A token no other call of an impure kernel in this process shares: a
** counter, mixed with a seed drawn once from the clock and the pid. */
static uint64_t impure_seed;
static pthread_once_t impure_once = PTHREAD_ONCE_INIT;

static void draw_seed(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    impure_seed = cask__mix((uint64_t)ts.tv_nsec, (uint64_t)ts.tv_sec ^ (uint64_t)getpid());
}

static uint64_t fresh_token(void)
{
    static atomic_uint_fast64_t counter;
    pthread_once(&impure_once, draw_seed);
    return cask__mix(impure_seed, atomic_fetch_add(&counter, 1));
}

const char cask__group_is_name[] = "";

static int graph_add(cask_graph_t *g, const cask_task_spec_t *spec, double cost,
                     cask_task_t *out, cask_error_t *err);

/* Add spec, whose literal inputs include list items (views into a list the
** caller holds): each becomes a value of its own first, since the graph
** keeps its inputs. */
static int add_copied(cask_graph_t *g, const cask_task_spec_t *spec, double cost,
                      cask_task_t *out, cask_error_t *err)
{
    cask_value_t *in = cask__malloc(spec->n_inputs * sizeof *in);
    if (!in)
        return cask__err(err, CASK_ENOMEM, spec->key, spec->kernel, "no memory for inputs");
    size_t made = 0;
    int rc = 0;
    for (; made < spec->n_inputs && !rc; made++)
        if (!cask__is_view(&spec->inputs[made]))
            in[made] = spec->inputs[made];
        else if ((rc = cask__value_copy(&spec->inputs[made], &in[made])))
            cask__err(err, rc, spec->key, spec->kernel, "no memory to copy input %zu", made);
    if (!rc) {
        cask_task_spec_t s = *spec;
        s.inputs = in;
        rc = graph_add(g, &s, cost, out, err);
    }
    for (size_t i = 0; i < made; i++)
        if (cask__is_view(&spec->inputs[i]))
            cask_value_decref(&in[i]); /* the graph holds its own reference */
    cask__free(in);
    return rc;
}

int cask__graph_add(cask_graph_t *g, const cask_task_spec_t *spec, double cost,
                    cask_task_t *out, cask_error_t *err)
{
    return graph_add(g, spec, cost, out, err);
}

static int graph_add(cask_graph_t *g, const cask_task_spec_t *spec, double cost,
                     cask_task_t *out, cask_error_t *err)
{
    cask_task_t dummy;
    if (!out)
        out = &dummy;
    *out = CASK_NO_TASK;
    if (!g || !spec)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "graph or spec is NULL");
    if ((spec->n_inputs && !spec->inputs) || (spec->n_after && !spec->after))
        return cask__err(err, CASK_EINVAL, spec->key, spec->kernel,
                         "inputs or after is NULL with a nonzero count");

    uint32_t kid = CASK__NO_KERNEL;
    const cask__kernel_t *k = NULL;
    if (spec->kernel) {
        kid = find_kernel(g, spec->kernel);
        if (kid == CASK__NO_KERNEL)
            return cask__err(err, CASK_ENOKERNEL, spec->key, spec->kernel,
                             "unknown kernel '%s'", spec->kernel);
        k = cask__kernel_get(kid);
    }
    if (!(cost >= 0) && !isnan(cost))
        return cask__err(err, CASK_EINVAL, spec->key, spec->kernel,
                         "cost %g is negative", cost);
    if (isinf(cost))
        return cask__err(err, CASK_EINVAL, spec->key, spec->kernel, "cost is infinite");
    if (spec->nbytes > INT64_MAX)
        return cask__err(err, CASK_EINVAL, spec->key, spec->kernel,
                         "nbytes %llu is over 2^63 - 1", (unsigned long long)spec->nbytes);

    /* Check inputs, and hash them for a generated key. */
    size_t n_refs = 0;
    uint64_t h = 0;
    int gen = spec->key == NULL;
    if (gen)
        h = cask__mix(k ? k->name_hash : 0x6361736bull, spec->n_inputs);
    for (size_t i = 0; i < spec->n_inputs; i++) {
        const cask_value_t *v = &spec->inputs[i];
        if ((unsigned)v->type > CASK_REF)
            return cask__err(err, CASK_EINVAL, spec->key, spec->kernel,
                             "input %zu has unknown type %d", i, (int)v->type);
        if (cask__is_view(v))
            return add_copied(g, spec, cost, out, err);
        if (v->type == CASK_REF) {
            char what[40];
            snprintf(what, sizeof what, "input %zu", i);
            int rc = cask__task_check(g, v->u.task, what, spec->key, spec->kernel, err);
            if (rc)
                return rc;
            n_refs++;
        }
        if (gen) /* scalars inline: the common case */
            h = cask__mix(h, v->type == CASK_INT64 ? (uint64_t)v->u.i * 3 + CASK_INT64
                          : cask__value_hash(v, g->keys.hash));
    }
    for (size_t i = 0; i < spec->n_after; i++) {
        char what[40];
        snprintf(what, sizeof what, "after %zu", i);
        int rc = cask__task_check(g, spec->after[i], what, spec->key, spec->kernel, err);
        if (rc)
            return rc;
        if (gen)
            h = cask__mix(h, g->keys.hash[cask__tix(spec->after[i])] ^ 0xaf7e5ull);
    }

    /* The key: explicit, or NAME-TOKEN-INDEX. */
    char buf[CASK_KEY_MAX + 1];
    const char *key = spec->key;
    const char *name = spec->name ? spec->name : k ? k->name + k->short_at : "task";
    size_t klen;
    if (gen) {
        size_t nlen = strlen(name);
        if (nlen == 0 || nlen > 63)
            return cask__err(err, CASK_EINVAL, NULL, spec->kernel,
                             "key name must have 1 to 63 bytes, not %zu", nlen);
        uint64_t token = spec->token;
        if (!token) {
            uint64_t nh = spec->name || !k ? cask__hash(name, nlen, 0x6e616d65ull) : k->short_hash;
            token = cask__avalanche(cask__mix(cask__mix(h, spec->n_after), nh));
            if (k && (k->opts.flags & CASK_KERNEL_IMPURE))
                token = cask__mix(token, fresh_token());
        }
        char *p = buf;
        memcpy(p, name, nlen);
        p += nlen;
        *p++ = '-';
        p = put_hex(p, token);
        *p++ = '-';
        p = put_dec(p, spec->index);
        klen = (size_t)(p - buf);
        *p = '\0';
        key = buf;
    } else {
        klen = strlen(key);
        if (klen == 0 || klen > CASK_KEY_MAX)
            return cask__err(err, CASK_EINVAL, NULL, spec->kernel,
                             "key must have 1 to %d bytes, not %zu", CASK_KEY_MAX, klen);
    }
    uint64_t kh = cask__hash(key, klen, 0);
    uint32_t found = cask__strtab_find(&g->keys, key, klen, kh);
    if (found != CASK__NOT_FOUND) {
        if (gen) { /* the same expression: share it */
            *out = cask__handle(g, found);
            return 0;
        }
        return cask__err(err, CASK_EDUPKEY, key, spec->kernel, "duplicate key '%s'", key);
    }

    /* The group, if explicit. Runs of tasks of one group (a delayed
    ** graph's) find it without a hash. */
    const char *group = spec->group == cask__group_is_name ? (gen ? name : NULL) : spec->group;
    uint32_t gid = 0;
    size_t glen = 0;
    uint64_t gh = 0;
    if (group && group == name && !spec->name && k && k == g->last_gk) {
        gid = g->last_gk_gid; /* a kernel's name never changes: no compare */
    } else if (group) {
        glen = strlen(group);
        if (glen == 0 || glen > CASK_KEY_MAX)
            return cask__err(err, CASK_EINVAL, key, spec->kernel,
                             "group must have 1 to %d bytes, not %zu", CASK_KEY_MAX, glen);
        if (g->last_gid && !strcmp(cask__strtab_get(&g->groups, g->last_gid - 1), group)) {
            gid = g->last_gid;
        } else {
            gh = cask__hash(group, glen, 0);
            gid = cask__strtab_find(&g->groups, group, glen, gh) + 1; /* 0 if new */
            if (!gid && cask__strtab_reserve(&g->groups, glen))
                return cask__err(err, CASK_ENOMEM, key, spec->kernel, "no memory for a group");
        }
    }

    /* Reserve everything, then commit: a failure leaves g as it was. */
    size_t n_in = spec->n_inputs + spec->n_after;
    int rc = reserve(g, n_in);
    if (!rc)
        rc = cask__strtab_reserve(&g->keys, klen);
    if (!rc && spec->n_after)
        rc = make_zeroed(g, (void **)&g->n_after, sizeof *g->n_after);
    if (!rc && group)
        rc = make_zeroed(g, (void **)&g->group, sizeof *g->group);
    if (!rc && !isnan(cost))
        rc = make_cost(g);
    if (!rc && spec->nbytes)
        rc = make_zeroed(g, (void **)&g->nbytes, sizeof *g->nbytes);
    if (rc)
        return cask__err(err, rc, key, spec->kernel, "%s adding a task",
                         rc == CASK_ELIMIT ? "graph too large" : "no memory");
    if (group && !gid)
        gid = cask__strtab_push(&g->groups, group, glen, gh) + 1;
    if (gid)
        g->last_gid = gid;
    if (group == name && !spec->name && k)
        g->last_gk = k, g->last_gk_gid = gid;

    uint32_t t = g->n++;
    cask__strtab_push(&g->keys, key, klen, kh);
    g->kernel[t] = kid;
    if (g->n_after)
        g->n_after[t] = (uint32_t)spec->n_after;
    if (g->group)
        g->group[t] = gid;
    if (g->cost)
        g->cost[t] = cost;
    if (g->nbytes)
        g->nbytes[t] = spec->nbytes;
    if (n_in) {
        cask_value_t *dst = g->in + g->n_in;
        for (size_t i = 0; i < spec->n_inputs; i++) {
            dst[i] = spec->inputs[i];
            cask_value_incref(&dst[i]);
        }
        for (size_t i = 0; i < spec->n_after; i++)
            dst[spec->n_inputs + i] = cask_ref(spec->after[i]);
    }
    g->n_in += n_in;
    g->in_off[t + 1] = (uint32_t)g->n_in;
    g->n_edges += n_refs + spec->n_after;
    *out = cask__handle(g, t);
    return 0;
}

int cask_graph_add(cask_graph_t *g, const cask_task_spec_t *spec,
                   cask_task_t *out, cask_error_t *err)
{
    if (spec && (spec->cost < 0 || isnan(spec->cost)))
        return cask__err(err, CASK_EINVAL, spec->key, spec->kernel,
                         "cost %g is not >= 0", spec->cost);
    return cask__graph_add(g, spec, spec && spec->cost > 0 ? spec->cost : NAN, out, err);
}

size_t cask_graph_size(const cask_graph_t *g)
{
    return g ? g->n : 0;
}

size_t cask_graph_edges(const cask_graph_t *g)
{
    return g ? g->n_edges : 0;
}

cask_task_t cask_graph_task(const cask_graph_t *g, size_t i)
{
    return g && i < g->n ? cask__handle(g, (uint32_t)i) : CASK_NO_TASK;
}

int64_t cask_graph_index(const cask_graph_t *g, cask_task_t t)
{
    int rc = cask__task_check(g, t, "the task", NULL, NULL, NULL);
    return rc ? rc : (int64_t)cask__tix(t);
}

cask_task_t cask__graph_handle(const cask_graph_t *g, uint32_t i)
{
    return cask__handle(g, i);
}

void cask__graph_view(const cask_graph_t *g, cask__gview_t *v)
{
    *v = (cask__gview_t){ .n = g->n, .in_off = g->in_off, .in = g->in, .kernel = g->kernel,
                          .n_after = g->n_after, .cost = g->cost,
                          .nbytes = g->nbytes };
}

const char *cask__graph_key(const cask_graph_t *g, uint32_t t)
{
    return cask__key(g, t);
}

const uint64_t *cask__graph_key_hashes(const cask_graph_t *g)
{
    return g->keys.hash;
}

const char *cask__graph_group_name(const cask_graph_t *g, uint32_t t)
{
    uint32_t gid = cask__group_id(g, t);
    return gid ? cask__strtab_get(&g->groups, gid - 1) : NULL;
}

uint32_t cask__find(const cask_graph_t *g, const char *key)
{
    size_t len = strlen(key);
    uint32_t id = cask__strtab_find(&g->keys, key, len, cask__hash(key, len, 0));
    return id == CASK__NOT_FOUND ? UINT32_MAX : id;
}

cask_task_t cask_graph_find(const cask_graph_t *g, const char *key)
{
    uint32_t id = g && key ? cask__find(g, key) : UINT32_MAX;
    return id == UINT32_MAX ? CASK_NO_TASK : cask__handle(g, id);
}

const char *cask_graph_key(const cask_graph_t *g, cask_task_t t)
{
    return cask__task_in(g, t) ? cask__key(g, cask__tix(t)) : NULL;
}

const char *cask_graph_kernel(const cask_graph_t *g, cask_task_t t)
{
    return cask__task_in(g, t) ? cask__kernel_name(g, cask__tix(t)) : NULL;
}

size_t cask__derived_group_len(const char *key)
{
    const char *dash = strrchr(key, '-');
    return dash && dash != key ? (size_t)(dash - key) : strlen(key);
}

const char *cask__group_of(const cask_graph_t *g, uint32_t t, size_t *len)
{
    const char *s;
    if (cask__group_id(g, t)) {
        s = cask__strtab_get(&g->groups, g->group[t] - 1);
        *len = strlen(s);
    } else {
        s = cask__key(g, t);
        *len = cask__derived_group_len(s);
    }
    return s;
}

void cask__group_copy(const cask_graph_t *g, uint32_t t, char *buf, size_t size)
{
    size_t len;
    const char *s = cask__group_of(g, t, &len);
    size_t c = len < size - 1 ? len : size - 1;
    memcpy(buf, s, c);
    buf[c] = '\0';
}

const char *cask__kernel_name(const cask_graph_t *g, uint32_t t)
{
    return g->kernel[t] == CASK__NO_KERNEL ? NULL : cask__kernel_get(g->kernel[t])->name;
}

int cask_graph_group(const cask_graph_t *g, cask_task_t t, char *buf, size_t size,
                     cask_error_t *err)
{
    int rc = cask__task_check(g, t, "the task", NULL, NULL, err);
    if (rc)
        return rc;
    size_t len;
    cask__group_of(g, cask__tix(t), &len);
    if (size && buf)
        cask__group_copy(g, cask__tix(t), buf, size);
    return (int)len;
}

double cask__cost(const cask_graph_t *g, uint32_t t)
{
    double c = cask__cost_given(g, t);
    if (!isnan(c))
        return c;
    return cask__kernel_cost(g->kernel[t], cask__inputs(g, t), cask__n_args(g, t));
}

uint64_t cask_graph_nbytes(const cask_graph_t *g, cask_task_t t)
{
    return cask__task_in(g, t) && g->nbytes ? g->nbytes[cask__tix(t)] : 0;
}

double cask_graph_cost(const cask_graph_t *g, cask_task_t t)
{
    return cask__task_in(g, t) ? cask__cost(g, cask__tix(t)) : NAN;
}

int cask_graph_inputs(const cask_graph_t *g, cask_task_t t, const cask_value_t **inputs,
                      size_t *n, cask_error_t *err)
{
    int rc = cask__task_check(g, t, "the task", NULL, NULL, err);
    if (rc)
        return rc;
    *inputs = cask__inputs(g, cask__tix(t));
    *n = cask__n_args(g, cask__tix(t));
    return 0;
}

int cask_graph_after(const cask_graph_t *g, cask_task_t t, const cask_value_t **after,
                     size_t *n, cask_error_t *err)
{
    int rc = cask__task_check(g, t, "the task", NULL, NULL, err);
    if (rc)
        return rc;
    uint32_t i = cask__tix(t);
    const cask_value_t *in = cask__inputs(g, i);
    *after = in ? in + cask__n_args(g, i) : NULL;
    *n = g->n_after ? g->n_after[i] : 0;
    return 0;
}

int cask_graph_set_outputs(cask_graph_t *g, const cask_task_t *outs, size_t n,
                           cask_error_t *err)
{
    if (!g || (n && !outs))
        return cask__err(err, CASK_EINVAL, NULL, NULL, "graph or outputs is NULL");
    int rc = cask__tasks_check(g, outs, n, "output", err);
    if (rc)
        return rc;
    cask_task_t *o = NULL;
    if (n && !(o = cask__malloc(n * sizeof *o)))
        return cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for outputs");
    if (n)
        memcpy(o, outs, n * sizeof *o);
    cask__free(g->outputs);
    g->outputs = o;
    g->n_outputs = n;
    return 0;
}

const cask_task_t *cask_graph_outputs(const cask_graph_t *g, size_t *n)
{
    *n = g ? g->n_outputs : 0;
    return g ? g->outputs : NULL;
}

size_t cask_graph_memory(const cask_graph_t *g)
{
    if (!g)
        return 0;
    size_t per_task = sizeof *g->in_off + sizeof *g->kernel +
                      (g->n_after ? sizeof *g->n_after : 0) + (g->group ? sizeof *g->group : 0) +
                      (g->cost ? sizeof *g->cost : 0) + (g->nbytes ? sizeof *g->nbytes : 0);
    size_t blobs = 0;
    for (size_t i = 0; i < g->n_in; i++)
        blobs += cask_value_nbytes(&g->in[i]);
    return sizeof *g + (size_t)g->cap * per_task + g->cap_in * sizeof *g->in + blobs +
           cask__strtab_memory(&g->keys) + cask__strtab_memory(&g->groups) +
           g->n_outputs * sizeof *g->outputs + atomic_load(&g->memo_bytes);
}

/*
** sched/cache.c: the cache directory (cask_compute_opts_t.cache_dir).
**
** Each task gets a cache key before the compute starts: a 128-bit hash of
** its kernel's name and version (a built-in's: the library's), its arguments (literals by contents,
** task inputs by their own cache keys) and what the kernel's stamp adds (the
** files an array task reads). A task that cannot have one (an impure
** kernel, an opaque argument, an input without a key) is never cached.
**
** Reading: from the requested outputs down, a task whose file checks out
** is a hit and the tasks behind it are not needed (unless another task
** needs them). When there is a hit, the compute runs a copy of the graph
** cut there, each hit a task of kernel "cask.cache.read" that reads its
** file: every back-end runs it as any other task, in parallel, in priority
** order. Writing: a task that ran writes its output (cask__cache_put,
** from cask__run_invoke, so on the worker that ran it).
**
** A file is a header (magic, byte order, the key, the value's type and
** shape, the payload's size and checksum, the header's own checksum) and
** the payload. It is written as DIR/XX/REST.PID.N.part and renamed to
** DIR/XX/REST, XX the key's first 2 hex digits and REST the other 30: 256
** subdirectories, so workers writing at once rarely wait on one
** directory's lock.
*/
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sched.h"

#define MAGIC "caskres1"
#define ORDER 0x01020304u

typedef struct fhead {
    char     magic[8];
    uint32_t order;
    uint32_t type;
    uint32_t dtype;
    uint32_t ndim;
    int64_t  shape[CASK_MAX_NDIM];
    uint64_t size;     /* payload bytes */
    uint64_t inl;      /* int64 and double values */
    uint64_t key[2];
    uint64_t sum;      /* cask__hash of the payload */
    uint64_t hsum;     /* cask__hash of the header up to here */
} fhead_t;

#define KEYHEX 33 /* 32 hex digits and the NUL */

static void key_hex(const uint64_t key[2], char *s)
{
    snprintf(s, KEYHEX, "%016llx%016llx", (unsigned long long)key[0],
             (unsigned long long)key[1]);
}

static int key_path(const char *dir, const uint64_t key[2], char *path, size_t cap)
{
    char hex[KEYHEX];
    key_hex(key, hex);
    return snprintf(path, cap, "%s/%.2s/%s", dir, hex, hex + 2) < (int)cap ? 0 : -1;
}

static uint64_t head_sum(const fhead_t *h)
{
    return cask__hash(h, offsetof(fhead_t, hsum), 0x68656164ull);
}

/* Is h a header we would write, for a payload of `size` bytes? */
static bool head_ok(const fhead_t *h, const uint64_t key[2], uint64_t size)
{
    if (memcmp(h->magic, MAGIC, 8) || h->order != ORDER || h->hsum != head_sum(h) ||
        h->key[0] != key[0] || h->key[1] != key[1] || h->size != size ||
        h->type > CASK_LIST || h->type == CASK_OPAQUE || h->ndim > CASK_MAX_NDIM)
        return false;
    if (h->type == CASK_NDARRAY) {
        size_t es = cask_dtype_size((cask_dtype_t)h->dtype), n = 1;
        for (uint32_t i = 0; i < h->ndim; i++) {
            if (h->shape[i] < 0 || (h->shape[i] && n > SIZE_MAX / (size_t)h->shape[i]))
                return false;
            n *= (size_t)h->shape[i];
        }
        if (!es || n > SIZE_MAX / es || n * es != size)
            return false;
    } else if (h->type < CASK_STRING && size) {
        return false;
    }
    return true;
}

/*
** Read the file at path as the result of key into *out (out NULL: only
** check it). 0, or -1 when it is missing or does not check out.
*/
static int load(const char *path, const uint64_t key[2], cask_value_t *out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = -1;
    struct stat st;
    fhead_t h;
    cask_value_t v = cask_none();
    if (fstat(fd, &st) || !S_ISREG(st.st_mode) || (size_t)st.st_size < sizeof h ||
        cask__pread_all(fd, &h, sizeof h, 0) < sizeof h ||
        !head_ok(&h, key, (uint64_t)st.st_size - sizeof h))
        goto out;
    if (h.type == CASK_INT64) {
        v = cask_int((int64_t)h.inl);
    } else if (h.type == CASK_DOUBLE) {
        double d;
        memcpy(&d, &h.inl, sizeof d);
        v = cask_double(d);
    } else if (h.type != CASK_NONE) {
        /* read, not mapped: a file cut short meanwhile is an error, not SIGBUS */
        if (cask__value_blank((cask_type_t)h.type, h.size, &v)) {
            rc = CASK_ENOMEM;
            goto out;
        }
        struct cask_blob *b = v.u.blob;
        b->dtype = (cask_dtype_t)h.dtype;
        b->ndim = (int)h.ndim;
        memcpy(b->shape, h.shape, sizeof b->shape);
        if (cask__pread_all(fd, b->data, h.size, (off_t)sizeof h) < h.size)
            goto out;
    }
    const void *data = cask__has_blob(&v) ? v.u.blob->data : "";
    if (cask__hash(data, h.size, 0x70617931ull) != h.sum)
        goto out;
    rc = 0;
    if (out) {
        *out = v;
        v = cask_none();
    }
out:
    cask_value_decref(&v);
    close(fd);
    return rc;
}

void cask__cache_put(const cask__cache_t *c, cask_tid_t t, const cask_value_t *v,
                     double seconds)
{
    if (!c || v->type > CASK_LIST || v->type == CASK_OPAQUE || cask__is_view(v))
        return;
    if (c->mem && c->mem[t])
        cask__mcache_put(c->mcache, c->key[t], v, seconds);
    if (!c->dir || !c->write[t] || seconds < c->min_s)
        return;
    fhead_t h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, MAGIC, 8);
    h.order = ORDER;
    h.type = (uint32_t)v->type;
    memcpy(h.key, c->key[t], sizeof h.key);
    const void *data = "";
    if (v->type == CASK_INT64 || v->type == CASK_DOUBLE) {
        memcpy(&h.inl, &v->u, sizeof h.inl);
    } else if (cask__has_blob(v)) {
        const struct cask_blob *b = v->u.blob;
        h.dtype = (uint32_t)b->dtype;
        h.ndim = (uint32_t)b->ndim;
        if (v->type == CASK_NDARRAY)
            memcpy(h.shape, b->shape, (size_t)b->ndim * sizeof *h.shape);
        h.size = b->size;
        data = b->data;
    }
    h.sum = cask__hash(data, h.size, 0x70617931ull);
    h.hsum = head_sum(&h);
    char tmp[4096], path[4096];
    if (key_path(c->dir, h.key, path, sizeof path))
        return;
    int fd = cask__open_beside(path, tmp, sizeof tmp);
    if (fd < 0 && errno == ENOENT) { /* the first result of its subdirectory */
        char *slash = strrchr(path, '/');
        *slash = '\0';
        int made = mkdir(path, 0777);
        *slash = '/';
        if (!made || errno == EEXIST)
            fd = cask__open_beside(path, tmp, sizeof tmp);
    }
    if (fd < 0)
        return;
    int bad = cask__pwrite_all(fd, &h, sizeof h, 0) < sizeof h ||
              cask__pwrite_all(fd, data, h.size, (off_t)sizeof h) < h.size;
    bad |= close(fd);
    if (bad || rename(tmp, path))
        unlink(tmp);
}

/* The kernel of a task whose output is in the cache: args are the file's
** path and the key (bytes). */
static int k_read(const cask_value_t *args, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    size_t klen;
    const char *path = n == 2 ? cask_value_str(&args[0], NULL) : NULL;
    const void *k = n == 2 ? cask_value_data(&args[1], &klen) : NULL;
    if (!path || !k || klen != 16)
        return cask_kernel_fail(ctx, "takes a path and a 16-byte key");
    uint64_t key[2];
    memcpy(key, k, sizeof key);
    int rc = load(path, key, out);
    if (rc == CASK_ENOMEM)
        return rc;
    if (rc) {
        cask_kernel_fail(ctx, "cache file %s changed or was removed during the compute", path);
        return CASK_EIO;
    }
    return 0;
}

void cask__cache_register(void)
{
    cask__kernel_register("cask.cache.read", k_read, &(cask_kernel_opts_t){ .cost = 1e-5 },
                          NULL);
}

void cask__cache_destroy(cask__cache_t *c)
{
    if (!c)
        return;
    cask__big_free(c->key);
    cask__big_free(c->write);
    cask__big_free(c->mem);
    cask__free(c->dir);
    cask__free(c);
}

/* Each task's cache key into key[v], ok[v] 0 when it has none. */
static void plan_keys(const cask__plan_t *p, uint64_t (*key)[2], uint8_t *ok)
{
    const cask__gview_t *gv = &p->gv;
    for (uint32_t v = 0; v < p->n; v++) {
        uint32_t gt = p->task[v];
        const cask__kernel_t *k = cask__kernel_get(gv->kernel[gt]);
        const cask_value_t *in = cask__view_inputs(gv, gt);
        size_t na = cask__view_nargs(gv, gt);
        uint64_t h[2] = { 0x636b6579ull, 0x6b657932ull };
        ok[v] = !(k->opts.flags & CASK_KERNEL_IMPURE);
        /* a built-in's version is the library's */
        const char *ver = strncmp(k->name, "cask.", 5) ? k->version : cask_version();
        cask__hash2(k->name, strlen(k->name) + 1, h);
        cask__hash2(ver, strlen(ver) + 1, h);
        cask_value_t count = cask_int((int64_t)na);
        cask__value_hash2(&count, h);
        for (size_t i = 0; i < na && ok[v]; i++) {
            if (in[i].type == CASK_REF) {
                uint32_t u = p->pidx[cask__tix(in[i].u.task)];
                ok[v] = ok[u];
                cask__hash2(key[u], 16, h);
            } else if (in[i].type == CASK_OPAQUE) {
                ok[v] = 0;
            } else {
                cask__value_hash2(&in[i], h);
            }
        }
        if (ok[v] && k->stamp && k->stamp(in, na, h))
            ok[v] = 0;
        key[v][0] = h[0];
        key[v][1] = h[1];
    }
}

/* Add the copy of p's task v to g2: a hit on a file, the task that reads
** it (path, key); a persisted value (kept not NULL), a cask.const of it. */
static int copy_task(const cask__plan_t *p, uint32_t v, bool hit, const char *path,
                     const uint64_t key[2], const cask_value_t *kept, cask_graph_t *g2,
                     const cask_task_t *map, cask_task_t *out, cask_error_t *err)
{
    const cask_graph_t *g = p->g;
    uint32_t gt = p->task[v];
    char group[CASK_KEY_MAX + 1];
    cask__group_copy(g, gt, group, sizeof group);
    cask_task_spec_t spec = { .key = cask__graph_key(g, gt), .group = group,
                              .nbytes = cask__view_nbytes(&p->gv, gt) };
    if (kept) {
        spec.kernel = "cask.const";
        spec.inputs = kept;
        spec.n_inputs = 1;
        return cask_graph_add(g2, &spec, out, err);
    }
    if (hit) {
        cask_value_t in[2];
        int rc = cask_value_string(path, (size_t)-1, &in[0], err);
        if (!rc && (rc = cask_value_bytes(key, 16, &in[1], err)))
            cask_value_decref(&in[0]);
        if (rc)
            return rc;
        spec.kernel = "cask.cache.read";
        spec.inputs = in;
        spec.n_inputs = 2;
        rc = cask_graph_add(g2, &spec, out, err);
        cask_value_decref(&in[0]);
        cask_value_decref(&in[1]);
        return rc;
    }
    const cask_value_t *in = cask__view_inputs(&p->gv, gt);
    size_t n = p->gv.in_off[gt + 1] - p->gv.in_off[gt], na = cask__view_nargs(&p->gv, gt);
    cask_value_t *args = cask__malloc((n ? n : 1) * sizeof *args);
    cask_task_t *after = cask__malloc((n - na ? n - na : 1) * sizeof *after);
    if (!args || !after) {
        cask__free(args);
        cask__free(after);
        return cask__err(err, CASK_ENOMEM, spec.key, NULL, "no memory to copy a task");
    }
    for (size_t i = 0; i < n; i++) {
        cask_value_t x = in[i];
        if (x.type == CASK_REF)
            x = cask_ref(map[p->pidx[cask__tix(x.u.task)]]);
        if (i < na)
            args[i] = x;
        else
            after[i - na] = x.u.task;
    }
    spec.kernel = cask__kernel_name(g, gt);
    spec.inputs = args;
    spec.n_inputs = na;
    spec.after = after;
    spec.n_after = n - na;
    int rc = cask__graph_add(g2, &spec, cask__view_cost(&p->gv, gt), out, err);
    cask__free(args);
    cask__free(after);
    return rc;
}

static int make_dir(const char *dir, cask_error_t *err)
{
    struct stat st;
    if (mkdir(dir, 0777) && errno != EEXIST)
        return cask__err(err, CASK_EIO, NULL, NULL, "cannot make the cache directory %s: %s",
                         dir, strerror(errno));
    if (stat(dir, &st) || !S_ISDIR(st.st_mode))
        return cask__err(err, CASK_EIO, NULL, NULL, "the cache directory %s is not a directory",
                         dir);
    if (access(dir, W_OK | X_OK))
        return cask__err(err, CASK_EIO, NULL, NULL, "cannot write in the cache directory %s: %s",
                         dir, strerror(errno));
    return 0;
}

int cask__cache_plan(cask_run_t *r, const char *dir, unsigned flags, double min_s,
                     cask__store_t *store, cask__mcache_t *mc, cask_graph_t **g2,
                     cask_error_t *err)
{
    cask__plan_t *p = &r->p;
    uint32_t n1 = p->n; /* the plan's tasks before any cut */
    *g2 = NULL;
    int rc = dir ? make_dir(dir, err) : 0;
    if (rc)
        return rc;
    size_t m = p->n ? p->n : 1;
    cask__cache_t *c = NULL;
    uint8_t *ok = NULL, *state = cask__big_calloc(m, 1);
    cask_value_t *kept = NULL;
    cask_task_t *map = cask__big_malloc(m * sizeof *map);
    char *path = cask__malloc(4096);
    if (store || mc) /* values to put in the cut graph */
        kept = cask__big_calloc(m, sizeof *kept);
    if (!state || ((store || mc) && !kept) || !map || !path ||
        ((dir || mc) && (!(c = cask__calloc(1, sizeof *c)) || !(ok = cask__big_malloc(m)) ||
                         (dir && !(c->dir = cask__strdup(dir))) ||
                         !(c->key = cask__big_malloc(m * sizeof *c->key)) ||
                         !(c->write = cask__big_calloc(m, 1)) ||
                         (mc && !(c->mem = cask__big_calloc(m, 1)))))) {
        rc = cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for the cache's keys");
        goto out;
    }
    if (c) {
        c->min_s = min_s;
        c->mcache = mc;
        plan_keys(p, c->key, ok);
    }

    /* From the outputs down: state 1 needed, 2 a file's hit, 3 a persisted
    ** value, 4 a value of the result cache. */
    enum { NEEDED = 1, HIT = 2, KEPT = 3, MEMO = 4 };
    size_t hits = 0, kept_hits = 0, memo_hits = 0;
    for (size_t i = 0; i < p->n_out; i++)
        state[p->out[i]] = NEEDED;
    for (uint32_t v = p->n; v-- > 0;) {
        if (!state[v])
            continue;
        if (store && cask__store_get(store, cask__graph_key(p->g, p->task[v]), &kept[v])) {
            state[v] = KEPT;
            kept_hits++;
            continue;
        }
        if (mc && ok[v] && cask__mcache_get(mc, c->key[v], &kept[v])) {
            state[v] = MEMO;
            memo_hits++;
            continue;
        }
        if (dir && ok[v] && !key_path(dir, c->key[v], path, 4096) &&
            !load(path, c->key[v], NULL)) {
            state[v] = HIT;
            hits++;
            continue;
        }
        for (uint32_t e = p->pred_off[v]; e < p->pred_off[v] + p->npred[v]; e++)
            state[p->pred[e]] = NEEDED;
    }
    /* A persisted value stands in for its task by task key, not by cache
    ** key: it, and everything computed from it, is kept nowhere (their
    ** cache keys describe the graph's own inputs). */
    if (c && kept_hits) {
        uint8_t *taint = cask__big_calloc(m, 1);
        if (!taint) {
            rc = cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for the cache's keys");
            goto out;
        }
        for (uint32_t v = 0; v < p->n; v++) {
            taint[v] = state[v] == KEPT;
            for (uint32_t e = p->pred_off[v];
                 state[v] == NEEDED && !taint[v] && e < p->pred_off[v] + p->npred[v]; e++)
                taint[v] = taint[p->pred[e]];
            if (taint[v])
                ok[v] = 0;
        }
        cask__big_free(taint);
    }
    for (uint32_t v = 0; c && v < p->n; v++) {
        const cask__kernel_t *k = cask__kernel_get(p->gv.kernel[p->task[v]]);
        c->write[v] = dir && ok[v] && state[v] != HIT &&
                      (!(flags & CASK_CACHE_MARKED) || (k->opts.flags & CASK_KERNEL_CACHE));
        if (c->mem)
            c->mem[v] = ok[v] && state[v] != MEMO; /* a KEPT one is not ok */
    }
    r->cached = hits;
    r->persisted = kept_hits;
    r->memcached = memo_hits;
    if (!hits && !kept_hits && !memo_hits) {
        r->cache = c;
        c = NULL;
        goto out;
    }

    /* The graph cut at the hits, and its plan. */
    cask_graph_t *h = cask_graph_new(err);
    if (!h) {
        rc = CASK_ENOMEM;
        goto out;
    }
    uint32_t n2 = 0;
    for (uint32_t v = 0; v < p->n && !rc; v++) {
        if (!state[v])
            continue;
        if (state[v] == HIT)
            key_path(dir, c->key[v], path, 4096);
        rc = copy_task(p, v, state[v] == HIT, path, c ? c->key[v] : NULL,
                       state[v] == KEPT || state[v] == MEMO ? &kept[v] : NULL, h, map,
                       &map[v], err);
        if (c) {
            c->key[n2][0] = c->key[v][0]; /* task n2 of h is plan id n2 of its plan */
            c->key[n2][1] = c->key[v][1];
            c->write[n2] = c->write[v];
            if (c->mem)
                c->mem[n2] = c->mem[v];
        }
        n2++;
    }
    cask_task_t *outs = NULL;
    if (!rc && !(outs = cask__malloc(p->n_out * sizeof *outs)))
        rc = cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for the outputs");
    for (size_t i = 0; !rc && i < p->n_out; i++)
        outs[i] = map[p->out[i]];
    if (!rc) {
        size_t n_out = p->n_out;
        cask__plan_destroy(p);
        rc = cask__plan_build(h, outs, n_out, 1, p, err);
    }
    cask__free(outs);
    if (rc) {
        cask_graph_decref(h);
        goto out;
    }
    *g2 = h;
    r->cache = c;
    c = NULL;
out:
    for (uint32_t v = 0; kept && v < n1; v++)
        cask_value_decref(&kept[v]);
    cask__cache_destroy(c);
    cask__big_free(ok);
    cask__big_free(state);
    cask__big_free(kept);
    cask__big_free(map);
    cask__free(path);
    return rc;
}

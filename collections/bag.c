/*
** collections/bag.c: the bag object and what builds its tasks. A bag is
** its graph and the task of each partition; an operation adds tasks that
** read those (one per partition, a tree, or a shuffle) and returns a bag
** of the new ones. Keys: all the tasks of one operation share a token (a
** hash of the kernel, its literal arguments and the keys of the tasks it
** reads) and are numbered, so building the same expression twice gives the
** same tasks.
*/
#include <glob.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bag.h"

struct cask_bag {
    atomic_uint   refs;
    cask_graph_t *g;     /* a reference held */
    size_t        n;     /* partitions, at least 1 */
    cask_task_t  *part;  /* each one's task */
    size_t        items; /* records in all; SIZE_MAX: not known before it runs */
};

/* ------------------------------------------------------------- the object */

static cask_bag_t *bag_new(cask_graph_t *g, size_t n, cask_error_t *err)
{
    cask_bag_t *b = cask__calloc(1, sizeof *b);
    if (b)
        b->part = cask__malloc((n ? n : 1) * sizeof *b->part);
    if (!b || !b->part) {
        cask__free(b);
        cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for a bag of %zu partitions", n);
        return NULL;
    }
    atomic_init(&b->refs, 1);
    cask_graph_incref(g);
    b->g = g;
    b->n = n;
    b->items = SIZE_MAX;
    return b;
}

void cask_bag_incref(const cask_bag_t *b)
{
    if (b)
        atomic_fetch_add_explicit(&((cask_bag_t *)b)->refs, 1, memory_order_relaxed);
}

void cask_bag_decref(cask_bag_t *b)
{
    if (!b || atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1)
        return;
    cask_graph_decref(b->g);
    cask__free(b->part);
    cask__free(b);
}

cask_graph_t *cask_bag_graph(const cask_bag_t *b)
{
    return b ? b->g : NULL;
}

size_t cask_bag_npartitions(const cask_bag_t *b)
{
    return b ? b->n : 0;
}

cask_task_t cask_bag_partition(const cask_bag_t *b, size_t i)
{
    return b && i < b->n ? b->part[i] : CASK_NO_TASK;
}

static int no_bag(cask_error_t *err, const char *what)
{
    return cask__err(err, CASK_EINVAL, NULL, NULL, "%s: the bag is NULL (an earlier call failed)",
                     what);
}

/* The workers a bag plans for: $CASK_NUM_WORKERS, else the online cores. */
static size_t default_workers(void)
{
    long w = 0;
    const char *env = getenv("CASK_NUM_WORKERS");
    if (env && *env)
        w = strtol(env, NULL, 10);
    if (w <= 0 || w > 4096) /* as compute refuses it: then the cores */
        w = sysconf(_SC_NPROCESSORS_ONLN);
    return w > 0 ? (size_t)w : 1;
}

/* The partitions for n items, as cask/bag.h says. */
static size_t npart_for(size_t n, size_t asked)
{
    if (!n)
        return 1;
    return asked ? (asked < n ? asked : n) : cask_bag_choose_npartitions(n, 0, NULL);
}

size_t cask_bag_choose_npartitions(size_t n, size_t workers, const cask_bag_timing_t *t)
{
    if (!n)
        return 1;
    if (!workers || workers > 4096) /* as compute refuses more */
        workers = workers ? 4096 : default_workers();
    size_t per;
    if (t && t->item_s > 0 && isfinite(t->item_s) && t->task_s >= 0 && isfinite(t->task_s)) {
        /* n / c tasks' overhead shared by the workers, plus half a
        ** partition's time idle at the end: least at c = sqrt(...) */
        double c = sqrt(2 * (double)n * t->task_s / ((double)workers * t->item_s));
        double most = ceil((double)n / (double)workers); /* no more than an equal share */
        per = c >= most ? (size_t)most : c > 1 ? (size_t)llround(c) : 1;
    } else {
        size_t parts = 4 * workers;
        per = n / parts + (n % parts != 0);
    }
    return n / per + (n % per != 0);
}

/* Items [lo, hi) of n in p parts: part i. */
static void part_range(size_t n, size_t p, size_t i, size_t *lo, size_t *hi)
{
    *lo = n * i / p;
    *hi = n * (i + 1) / p;
}

/* ------------------------------------------------------------ adding tasks */

/* A token for tasks of kernel that read the tasks reads[0..nr) and take
** the literals lit[0..nl). */
static uint64_t token_of(const cask_graph_t *g, const char *kernel, const cask_task_t *reads,
                         size_t nr, const cask_value_t *lit, size_t nl)
{
    const uint64_t *kh = cask__graph_key_hashes(g);
    uint64_t h = cask__hash(kernel, strlen(kernel), 0x6261672e);
    for (size_t i = 0; i < nr; i++)
        h = cask__mix(h, kh[cask__tix(reads[i])]);
    for (size_t i = 0; i < nl; i++)
        h = cask__mix(h, cask__value_hash(&lit[i], kh));
    return h | 1;
}

/* Add task `index` of an operation: kernel on in[0..n), key NAME-TOKEN-INDEX
** with group name. */
static cask_task_t add(cask_graph_t *g, const char *kernel, const char *name, uint64_t token,
                       uint64_t index, const cask_value_t *in, size_t n, cask_error_t *err)
{
    cask_task_spec_t spec = { .kernel = kernel, .inputs = in, .n_inputs = n, .name = name,
                              .group = name, .token = token, .index = index };
    cask_task_t t;
    return cask_graph_add(g, &spec, &t, err) ? CASK_NO_TASK : t;
}

/* The short name of a registered kernel (after its last '.'), or NULL with
** CASK_ENOKERNEL in err. */
static const char *kernel_name(const char *kernel, const char *what, cask_error_t *err)
{
    const cask__kernel_t *k = cask__kernel_named(kernel);
    if (!k) {
        cask__err(err, kernel ? CASK_ENOKERNEL : CASK_EINVAL, NULL, kernel,
                  "%s: %s kernel '%s'", what, kernel ? "unknown" : "no",
                  kernel ? kernel : "(null)");
        return NULL;
    }
    return k->name + k->short_at;
}

/* A bag of one task per partition of b: kernel on [partition i, pre...,
** extra...], named name. */
static cask_bag_t *per_partition(const cask_bag_t *b, const char *kernel, const char *name,
                                 const cask_value_t *pre, size_t npre, const cask_value_t *extra,
                                 size_t nextra, cask_error_t *err)
{
    size_t nin = 1 + npre + nextra;
    cask_value_t *in = cask__malloc(nin * sizeof *in);
    cask_bag_t *out = in ? bag_new(b->g, b->n, err) : NULL;
    if (!out) {
        if (!in)
            cask__err(err, CASK_ENOMEM, NULL, kernel, "no memory for a task's inputs");
        cask__free(in);
        return NULL;
    }
    if (npre)
        memcpy(in + 1, pre, npre * sizeof *in);
    if (nextra)
        memcpy(in + 1 + npre, extra, nextra * sizeof *in);
    uint64_t token = token_of(b->g, kernel, b->part, b->n, in + 1, npre + nextra);
    for (size_t i = 0; i < b->n; i++) {
        in[0] = cask_ref(b->part[i]);
        if ((out->part[i] = add(b->g, kernel, name, token, i, in, nin, err)) == CASK_NO_TASK) {
            cask_bag_decref(out);
            out = NULL;
            break;
        }
    }
    cask__free(in);
    return out;
}

/* A tree over the tasks leaf[0..n): tasks of kernel on [top, lit...,
** at most split_every tasks of the level below], top 1 for the root only,
** until one is left (a single leaf gets one root over it). Returns the
** root. */
static cask_task_t tree(cask_graph_t *g, const cask_task_t *leaf, size_t n, const char *kernel,
                        const char *name, const cask_value_t *lit, size_t nlit,
                        size_t split_every, cask_error_t *err)
{
    if (!split_every)
        split_every = 8;
    if (split_every < 2) {
        cask__err(err, CASK_EINVAL, NULL, kernel, "split_every must be at least 2");
        return CASK_NO_TASK;
    }
    if (split_every > n) /* one task over all of them */
        split_every = n > 2 ? n : 2;
    size_t nin = 1 + nlit + split_every;
    cask_task_t *level = cask__malloc(n * sizeof *level);
    cask_value_t *in = cask__malloc(nin * sizeof *in);
    cask_task_t root = CASK_NO_TASK;
    if (!level || !in) {
        cask__err(err, CASK_ENOMEM, NULL, kernel, "no memory for a reduction tree");
        goto done;
    }
    memcpy(level, leaf, n * sizeof *level);
    if (nlit)
        memcpy(in + 1, lit, nlit * sizeof *in);
    uint64_t token = cask__mix(token_of(g, kernel, leaf, n, lit, nlit), split_every) | 1;
    uint64_t index = 0;
    do {
        size_t m = (n + split_every - 1) / split_every;
        for (size_t j = 0; j < m; j++) {
            size_t lo = j * split_every, hi = lo + split_every < n ? lo + split_every : n;
            in[0] = cask_int(m == 1);
            for (size_t i = lo; i < hi; i++)
                in[1 + nlit + i - lo] = cask_ref(level[i]);
            level[j] = add(g, kernel, name, token, index++, in, 1 + nlit + hi - lo, err);
            if (level[j] == CASK_NO_TASK)
                goto done;
        }
        n = m;
    } while (n > 1);
    root = level[0];
done:
    cask__free(level);
    cask__free(in);
    return root;
}

/* A reduction of b: perpartition kernel part on [partition, plit...], then
** a tree of agg on [top, alit..., values...]. */
static cask_task_t reduce(const cask_bag_t *b, const char *name, const char *part,
                          const cask_value_t *plit, size_t nplit, const char *agg,
                          const cask_value_t *alit, size_t nalit, size_t split_every,
                          cask_error_t *err)
{
    cask_bag_t *p = per_partition(b, part, name, plit, nplit, NULL, 0, err);
    if (!p)
        return CASK_NO_TASK;
    cask_task_t t = tree(b->g, p->part, p->n, agg, name, alit, nalit, split_every, err);
    cask_bag_decref(p);
    return t;
}

/* A bag of the one task t. */
static cask_bag_t *bag_of(cask_graph_t *g, cask_task_t t, cask_error_t *err)
{
    if (t == CASK_NO_TASK)
        return NULL;
    cask_bag_t *out = bag_new(g, 1, err);
    if (out)
        out->part[0] = t;
    return out;
}

/* ---------------------------------------------------------------- making */

cask_bag_t *cask_bag_from_values(cask_graph_t *g, const cask_value_t *items, size_t n,
                                 size_t npartitions, cask_error_t *err)
{
    if (!g || (n && !items)) {
        cask__err(err, CASK_EINVAL, NULL, NULL, "from_values needs a graph and its items");
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        if (items[i].type == CASK_REF || items[i].type == CASK_OPAQUE) {
            cask__err(err, CASK_EINVAL, NULL, NULL, "from_values: item %zu is a %s, not a literal",
                      i, cask_type_name(items[i].type));
            return NULL;
        }
    size_t p = npart_for(n, npartitions);
    cask_bag_t *b = bag_new(g, p, err);
    if (!b)
        return NULL;
    uint64_t token = token_of(g, "cask.const", NULL, 0, items, n) ^ (uint64_t)p << 1;
    for (size_t i = 0; i < p; i++) {
        size_t lo, hi;
        part_range(n, p, i, &lo, &hi);
        cask_value_t list;
        if (cask_value_list(n ? items + lo : NULL, hi - lo, &list, err)) {
            cask_bag_decref(b);
            return NULL;
        }
        b->part[i] = add(g, "cask.const", "from_values", token, i, &list, 1, err);
        cask_value_decref(&list);
        if (b->part[i] == CASK_NO_TASK) {
            cask_bag_decref(b);
            return NULL;
        }
    }
    b->items = n;
    return b;
}

cask_bag_t *cask_bag_from_files(cask_graph_t *g, const char *const *paths, size_t n,
                                unsigned flags, size_t npartitions, cask_error_t *err)
{
    if (!g || (n && !paths) || (flags & ~(unsigned)CASK_BAG_CONTENTS)) {
        cask__err(err, CASK_EINVAL, NULL, NULL,
                  "from_files needs a graph, its paths and known flags");
        return NULL;
    }
    size_t p = npart_for(n, npartitions);
    cask_value_t *in = cask__calloc(n + 1, sizeof *in);
    cask_bag_t *b = in ? bag_new(g, p, err) : NULL;
    if (!b) {
        if (!in)
            cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for %zu paths", n);
        cask__free(in);
        return NULL;
    }
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++)
        if (!paths[i])
            rc = cask__err(err, CASK_EINVAL, NULL, NULL, "path %zu is NULL", i);
        else
            rc = cask_value_string(paths[i], (size_t)-1, &in[i + 1], err);
    uint64_t token = rc ? 0 : cask__mix(token_of(g, "cask.bag.files", NULL, 0, in + 1, n),
                                            (uint64_t)p << 8 | flags) | 1;
    for (size_t i = 0; i < p && !rc; i++) {
        size_t lo, hi;
        part_range(n, p, i, &lo, &hi);
        cask_value_t save = in[lo];
        in[lo] = cask_int(flags);
        b->part[i] = add(g, "cask.bag.files", "from_files", token, i, in + lo, 1 + hi - lo, err);
        in[lo] = save;
        if (b->part[i] == CASK_NO_TASK)
            rc = -1;
    }
    for (size_t i = 0; i <= n; i++)
        cask_value_decref(&in[i]);
    cask__free(in);
    if (rc) {
        cask_bag_decref(b);
        return NULL;
    }
    b->items = n;
    return b;
}

cask_bag_t *cask_bag_from_glob(cask_graph_t *g, const char *pattern, unsigned flags,
                               size_t npartitions, cask_error_t *err)
{
    if (!pattern) {
        cask__err(err, CASK_EINVAL, NULL, NULL, "from_glob needs a pattern");
        return NULL;
    }
    glob_t gl;
    int rc = glob(pattern, 0, NULL, &gl);
    if (rc) {
        cask__err(err, rc == GLOB_NOSPACE ? CASK_ENOMEM : CASK_EIO, NULL, NULL,
                  rc == GLOB_NOMATCH ? "no file matches '%s'" : "cannot read the files of '%s'",
                  pattern);
        return NULL;
    }
    cask_bag_t *b = cask_bag_from_files(g, (const char *const *)gl.gl_pathv, gl.gl_pathc, flags,
                                        npartitions, err);
    globfree(&gl);
    return b;
}

/* Text files cut into blocks: a task of cask.bag.text per block. */
static cask_bag_t *read_lines(cask_graph_t *g, const char *const *paths, size_t n,
                              size_t blocksize, int mode, const char *name, cask_error_t *err)
{
    if (!g || !n || !paths || blocksize > INT64_MAX) {
        cask__err(err, CASK_EINVAL, NULL, NULL, "%s needs a graph, at least one path and a "
                  "block size up to 2^63 - 1", name);
        return NULL;
    }
    int64_t *size = cask__malloc(n * sizeof *size);
    if (!size) {
        cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for %zu paths", n);
        return NULL;
    }
    size_t p = 0;
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (!paths[i] || stat(paths[i], &st) || !S_ISREG(st.st_mode)) {
            cask__err(err, paths[i] ? CASK_EIO : CASK_EINVAL, NULL, NULL,
                      "%s: cannot read '%s'%s", name, paths[i] ? paths[i] : "(null)",
                      paths[i] && !stat(paths[i], &st) ? " (not a regular file)" : "");
            cask__free(size);
            return NULL;
        }
        size[i] = st.st_size;
        uint64_t blocks = blocksize ? ((uint64_t)size[i] + blocksize - 1) / blocksize : 1;
        p += blocks ? blocks : 1;
    }
    cask_bag_t *b = bag_new(g, p, err);
    if (!b) {
        cask__free(size);
        return NULL;
    }
    cask_value_t in[5] = { cask_none(), cask_none(), cask_none(), cask_none(), cask_int(mode) };
    uint64_t token = cask__hash(name, strlen(name), blocksize) ^ (uint64_t)mode;
    for (size_t i = 0; i < n; i++) {
        token = cask__mix(token, cask__hash(paths[i], strlen(paths[i]), (uint64_t)size[i]));
    }
    token |= 1;
    size_t k = 0;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        if ((rc = cask_value_string(paths[i], (size_t)-1, &in[0], err)))
            break;
        int64_t step = blocksize ? (int64_t)blocksize : (size[i] ? size[i] : 1);
        int64_t lo = 0;
        do {
            in[1] = cask_int(lo);
            in[2] = cask_int(lo + step < size[i] ? lo + step : size[i]);
            in[3] = cask_int(size[i]);
            if ((b->part[k] = add(g, "cask.bag.text", name, token, k, in, 5, err)) ==
                CASK_NO_TASK)
                rc = -1;
            k++;
            lo += step;
        } while (!rc && lo < size[i]);
        cask_value_decref(&in[0]);
    }
    cask__free(size);
    if (rc) {
        cask_bag_decref(b);
        return NULL;
    }
    return b;
}

cask_bag_t *cask_bag_read_text(cask_graph_t *g, const char *const *paths, size_t n,
                               size_t blocksize, cask_error_t *err)
{
    return read_lines(g, paths, n, blocksize, BAG_TEXT, "read_text", err);
}

cask_bag_t *cask_bag_read_jsonl(cask_graph_t *g, const char *const *paths, size_t n,
                                size_t blocksize, unsigned flags, cask_error_t *err)
{
    if (flags & ~(unsigned)CASK_BAG_SKIP_BAD) {
        cask__err(err, CASK_EINVAL, NULL, NULL, "read_jsonl: unknown flags 0x%x", flags);
        return NULL;
    }
    return read_lines(g, paths, n, blocksize,
                      (flags & CASK_BAG_SKIP_BAD) ? BAG_JSON_SKIP : BAG_JSON, "read_jsonl", err);
}

/* ---------------------------------------------------------- record-wise */

/* An operation of a user's kernel on each partition: internal kernel op on
** [partition, the kernel's name, extra...]. */
static cask_bag_t *with_kernel(const cask_bag_t *b, const char *op, const char *what,
                               const char *kernel, const cask_value_t *extra, size_t n_extra,
                               cask_error_t *err)
{
    if (!b) {
        no_bag(err, what);
        return NULL;
    }
    if (n_extra && !extra) {
        cask__err(err, CASK_EINVAL, NULL, kernel, "%s: extra is NULL", what);
        return NULL;
    }
    for (size_t i = 0; i < n_extra; i++)
        if (extra[i].type == CASK_REF || extra[i].type == CASK_OPAQUE) {
            cask__err(err, CASK_EINVAL, NULL, kernel, "%s: extra %zu is a %s, not a literal",
                      what, i, cask_type_name(extra[i].type));
            return NULL;
        }
    const char *name = kernel_name(kernel, what, err);
    if (!name)
        return NULL;
    cask_value_t kn;
    if (cask_value_string(kernel, (size_t)-1, &kn, err))
        return NULL;
    cask_bag_t *out = per_partition(b, op, name, &kn, 1, extra, n_extra, err);
    cask_value_decref(&kn);
    if (out && !strcmp(op, "cask.bag.map")) /* a record for a record */
        out->items = b->items;
    return out;
}

cask_bag_t *cask_bag_map(const cask_bag_t *b, const char *kernel, const cask_value_t *extra,
                         size_t n_extra, cask_error_t *err)
{
    return with_kernel(b, "cask.bag.map", "map", kernel, extra, n_extra, err);
}

cask_bag_t *cask_bag_filter(const cask_bag_t *b, const char *kernel, const cask_value_t *extra,
                            size_t n_extra, cask_error_t *err)
{
    return with_kernel(b, "cask.bag.filter", "filter", kernel, extra, n_extra, err);
}

cask_bag_t *cask_bag_map_partitions(const cask_bag_t *b, const char *kernel,
                                    const cask_value_t *extra, size_t n_extra, cask_error_t *err)
{
    return with_kernel(b, "cask.bag.mapp", "map_partitions", kernel, extra, n_extra, err);
}

cask_bag_t *cask_bag_flatten(const cask_bag_t *b, cask_error_t *err)
{
    if (!b) {
        no_bag(err, "flatten");
        return NULL;
    }
    return per_partition(b, "cask.bag.flatten", "flatten", NULL, 0, NULL, 0, err);
}

cask_bag_t *cask_bag_pluck(const cask_bag_t *b, const char *key, cask_error_t *err)
{
    if (!b || !key) {
        if (b)
            cask__err(err, CASK_EINVAL, NULL, NULL, "pluck: the key is NULL");
        else
            no_bag(err, "pluck");
        return NULL;
    }
    cask_value_t k;
    if (cask_value_string(key, (size_t)-1, &k, err))
        return NULL;
    cask_bag_t *out = per_partition(b, "cask.bag.pluck", "pluck", &k, 1, NULL, 0, err);
    cask_value_decref(&k);
    if (out)
        out->items = b->items;
    return out;
}

/* ------------------------------------------------------------ reductions */

cask_task_t cask_bag_reduction(const cask_bag_t *b, const char *perpartition,
                               const char *aggregate, size_t split_every, cask_error_t *err)
{
    if (!b) {
        no_bag(err, "reduction");
        return CASK_NO_TASK;
    }
    const char *name = kernel_name(aggregate, "reduction", err);
    if (!name || !kernel_name(perpartition, "reduction", err))
        return CASK_NO_TASK;
    cask_value_t kp, ka;
    if (cask_value_string(perpartition, (size_t)-1, &kp, err))
        return CASK_NO_TASK;
    cask_task_t t = CASK_NO_TASK;
    if (!cask_value_string(aggregate, (size_t)-1, &ka, err)) {
        t = reduce(b, name, "cask.bag.apply", &kp, 1, "cask.bag.agg", &ka, 1, split_every, err);
        cask_value_decref(&ka);
    }
    cask_value_decref(&kp);
    return t;
}

/* Whether v (NULL: none given) is a literal a task can take; if not, says so
** in err. */
static bool literal_ok(const cask_value_t *v, const char *what, const char *kernel,
                       cask_error_t *err)
{
    if (v && (v->type == CASK_REF || v->type == CASK_OPAQUE)) {
        cask__err(err, CASK_EINVAL, NULL, kernel, "%s: an initial value must be a literal", what);
        return false;
    }
    return true;
}

cask_task_t cask_bag_fold(const cask_bag_t *b, const char *binop, const char *combine,
                          const cask_value_t *initial, size_t split_every, cask_error_t *err)
{
    if (!b) {
        no_bag(err, "fold");
        return CASK_NO_TASK;
    }
    if (!combine)
        combine = binop;
    const char *name = kernel_name(binop, "fold", err);
    if (!name || !kernel_name(combine, "fold", err))
        return CASK_NO_TASK;
    if (!literal_ok(initial, "fold", binop, err))
        return CASK_NO_TASK;
    /* partials are lists of one accumulator, or empty (a partition with
    ** no record and no initial value) */
    cask_value_t lit[2] = { cask_none(), initial ? *initial : cask_none() };
    cask_value_t kc;
    if (cask_value_string(binop, (size_t)-1, &lit[0], err))
        return CASK_NO_TASK;
    cask_task_t t = CASK_NO_TASK;
    if (!cask_value_string(combine, (size_t)-1, &kc, err)) {
        t = reduce(b, name, "cask.bag.fold", lit, initial ? 2 : 1, "cask.bag.foldc", &kc, 1,
                   split_every, err);
        cask_value_decref(&kc);
    }
    cask_value_decref(&lit[0]);
    return t;
}

/* A built-in reduction: part on each partition, agg up the tree (its
** literal: what). */
static cask_task_t builtin(const cask_bag_t *b, const char *what, const char *part,
                           const char *agg, cask_error_t *err)
{
    if (!b) {
        no_bag(err, what);
        return CASK_NO_TASK;
    }
    cask_value_t w;
    if (cask_value_string(what, (size_t)-1, &w, err))
        return CASK_NO_TASK;
    cask_task_t t = reduce(b, what, part, &w, 1, agg, &w, 1, 0, err);
    cask_value_decref(&w);
    return t;
}

cask_task_t cask_bag_count(const cask_bag_t *b, cask_error_t *err)
{
    return builtin(b, "count", "cask.bag.stat", "cask.bag.statc", err);
}

cask_task_t cask_bag_sum(const cask_bag_t *b, cask_error_t *err)
{
    return builtin(b, "sum", "cask.bag.stat", "cask.bag.statc", err);
}

cask_task_t cask_bag_min(const cask_bag_t *b, cask_error_t *err)
{
    return builtin(b, "min", "cask.bag.stat", "cask.bag.statc", err);
}

cask_task_t cask_bag_max(const cask_bag_t *b, cask_error_t *err)
{
    return builtin(b, "max", "cask.bag.stat", "cask.bag.statc", err);
}

cask_task_t cask_bag_mean(const cask_bag_t *b, cask_error_t *err)
{
    return builtin(b, "mean", "cask.bag.stat", "cask.bag.statc", err);
}

cask_bag_t *cask_bag_frequencies(const cask_bag_t *b, bool sort, cask_error_t *err)
{
    if (!b) {
        no_bag(err, "frequencies");
        return NULL;
    }
    cask_value_t s = cask_int(sort);
    return bag_of(b->g, reduce(b, "frequencies", "cask.bag.freq", NULL, 0, "cask.bag.freqc",
                               &s, 1, 0, err), err);
}

cask_bag_t *cask_bag_distinct(const cask_bag_t *b, cask_error_t *err)
{
    if (!b) {
        no_bag(err, "distinct");
        return NULL;
    }
    return bag_of(b->g, reduce(b, "distinct", "cask.bag.distinct", NULL, 0, "cask.bag.distinctc",
                               NULL, 0, 0, err), err);
}

cask_bag_t *cask_bag_topk(const cask_bag_t *b, size_t k, const char *key, cask_error_t *err)
{
    if (!b) {
        no_bag(err, "topk");
        return NULL;
    }
    if (key && !kernel_name(key, "topk", err))
        return NULL;
    if (k > INT64_MAX) {
        cask__err(err, CASK_EINVAL, NULL, NULL, "topk: k is too large");
        return NULL;
    }
    cask_value_t lit[2] = { cask_int((int64_t)k), cask_none() };
    if (key && cask_value_string(key, (size_t)-1, &lit[1], err))
        return NULL;
    cask_task_t t = reduce(b, "topk", "cask.bag.topk", lit, key ? 2 : 1, "cask.bag.topkc", lit,
                           key ? 2 : 1, 0, err);
    cask_value_decref(&lit[1]);
    return bag_of(b->g, t, err);
}

cask_bag_t *cask_bag_foldby(const cask_bag_t *b, const char *key, const char *binop,
                            const cask_value_t *initial, const char *combine,
                            const cask_value_t *combine_initial, size_t split_every,
                            cask_error_t *err)
{
    if (!b) {
        no_bag(err, "foldby");
        return NULL;
    }
    if (!combine)
        combine = binop;
    if (!kernel_name(key, "foldby", err) || !kernel_name(binop, "foldby", err) ||
        !kernel_name(combine, "foldby", err) || !literal_ok(initial, "foldby", binop, err) ||
        !literal_ok(combine_initial, "foldby", combine, err))
        return NULL;
    cask_value_t plit[3] = { cask_none(), cask_none(), initial ? *initial : cask_none() };
    cask_value_t alit[3] = { cask_none(), cask_int(combine_initial != NULL),
                             combine_initial ? *combine_initial : cask_none() };
    cask_task_t t = CASK_NO_TASK;
    if (!cask_value_string(key, (size_t)-1, &plit[0], err) &&
        !cask_value_string(binop, (size_t)-1, &plit[1], err) &&
        !cask_value_string(combine, (size_t)-1, &alit[0], err))
        t = reduce(b, "foldby", "cask.bag.foldby", plit, initial ? 3 : 2, "cask.bag.foldbyc",
                   alit, 3, split_every, err);
    cask_value_decref(&plit[0]);
    cask_value_decref(&plit[1]);
    cask_value_decref(&alit[0]);
    return bag_of(b->g, t, err);
}

/* ---------------------------------------------------------------- shuffles */

cask_bag_t *cask_bag_groupby(const cask_bag_t *b, const char *key, size_t npartitions,
                             cask_error_t *err)
{
    if (!b) {
        no_bag(err, "groupby");
        return NULL;
    }
    size_t p = npartitions ? npartitions : b->n;
    if (p > UINT32_MAX) {
        cask__err(err, CASK_EINVAL, NULL, key, "groupby: too many partitions");
        return NULL;
    }
    cask_value_t lit[2] = { cask_none(), cask_int((int64_t)p) };
    if (!kernel_name(key, "groupby", err) || cask_value_string(key, (size_t)-1, &lit[0], err))
        return NULL;
    cask_bag_t *split = per_partition(b, "cask.bag.split", "groupby-split", lit, 2, NULL, 0, err);
    cask_value_decref(&lit[0]);
    cask_bag_t *out = split ? bag_new(b->g, p, err) : NULL;
    cask_value_t *in = out ? cask__malloc((1 + b->n) * sizeof *in) : NULL;
    if (!in) {
        if (out)
            cask__err(err, CASK_ENOMEM, NULL, key, "no memory for a shuffle");
        cask_bag_decref(split);
        cask_bag_decref(out);
        return NULL;
    }
    for (size_t i = 0; i < b->n; i++)
        in[1 + i] = cask_ref(split->part[i]);
    uint64_t token = token_of(b->g, "cask.bag.gather", split->part, split->n, NULL, 0);
    for (size_t j = 0; j < p; j++) {
        in[0] = cask_int((int64_t)j);
        out->part[j] = add(b->g, "cask.bag.gather", "groupby", token, j, in, 1 + b->n, err);
        if (out->part[j] == CASK_NO_TASK) {
            cask_bag_decref(out);
            out = NULL;
            break;
        }
    }
    cask__free(in);
    cask_bag_decref(split);
    return out;
}

cask_bag_t *cask_bag_repartition(const cask_bag_t *b, size_t npartitions, cask_error_t *err)
{
    if (!b) {
        no_bag(err, "repartition");
        return NULL;
    }
    if (!npartitions || npartitions > (size_t)INT32_MAX) {
        cask__err(err, CASK_EINVAL, NULL, NULL, "repartition: %zu partitions", npartitions);
        return NULL;
    }
    size_t p = npartitions;
    cask_bag_t *out = bag_new(b->g, p, err);
    cask_value_t *in = out ? cask__malloc((b->n + 3) * sizeof *in) : NULL;
    if (!in) {
        if (out)
            cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for a repartition");
        cask_bag_decref(out);
        return NULL;
    }
    cask_value_t np = cask_int((int64_t)p);
    uint64_t token = token_of(b->g, "cask.bag.slice", b->part, b->n, &np, 1);
    for (size_t j = 0; j < p; j++) {
        if (p <= b->n) { /* join neighbours lo .. hi-1 */
            size_t lo, hi;
            part_range(b->n, p, j, &lo, &hi);
            for (size_t i = lo; i < hi; i++)
                in[i - lo] = cask_ref(b->part[i]);
            out->part[j] = add(b->g, "cask.concat", "repartition", token, j, in, hi - lo, err);
        } else { /* piece j - first(i) of the pieces partition i is cut into */
            size_t i = j * b->n / p, first = (i * p + b->n - 1) / b->n;
            size_t next = ((i + 1) * p + b->n - 1) / b->n;
            in[0] = cask_ref(b->part[i]);
            in[1] = cask_int((int64_t)(j - first));
            in[2] = cask_int((int64_t)(next - first));
            out->part[j] = add(b->g, "cask.bag.slice", "repartition", token, j, in, 3, err);
        }
        if (out->part[j] == CASK_NO_TASK) {
            cask_bag_decref(out);
            out = NULL;
            break;
        }
    }
    cask__free(in);
    return out;
}

/* ------------------------------------------------------------ measuring */

/* For gaps and for tasks (a cask_task_t is a uint64_t). */
static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

int cask_bag_timing(const cask_bag_t *b, const cask_trace_t *trace, cask_bag_timing_t *out,
                    cask_error_t *err)
{
    if (!b || !trace || !out)
        return b ? cask__err(err, CASK_EINVAL, NULL, NULL, "timing: a trace and out are needed")
                 : no_bag(err, "timing");
    if (b->items == SIZE_MAX)
        return cask__err(err, CASK_EINVAL, NULL, NULL,
                         "timing: the bag's record count is not known before it runs (measure "
                         "a bag made from n items, or a map or pluck of one)");
    size_t ne = cask_trace_size(trace), nw = (size_t)cask_trace_workers(trace), found = 0;
    uint64_t *gap = cask__malloc((ne ? ne : 1) * sizeof *gap);
    uint64_t *last = cask__calloc(nw ? nw : 1, sizeof *last); /* end + 1; 0: none yet */
    cask_task_t *mine = cask__malloc(b->n * sizeof *mine);
    if (!gap || !last || !mine) {
        cask__free(gap);
        cask__free(last);
        cask__free(mine);
        return cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for %zu events", ne);
    }
    memcpy(mine, b->part, b->n * sizeof *mine);
    qsort(mine, b->n, sizeof *mine, cmp_u64);
    size_t ng = 0;
    double busy = 0;
    for (size_t i = 0; i < ne; i++) {
        const cask_trace_event_t *e = cask_trace_event(trace, i);
        busy += (double)(e->end_ns - e->start_ns) * 1e-9;
        cask_task_t t = cask_graph_find(b->g, e->key);
        found += t != CASK_NO_TASK && bsearch(&t, mine, b->n, sizeof *mine, cmp_u64);
        if (e->worker < 0 || (size_t)e->worker >= nw)
            continue;
        uint64_t *l = &last[e->worker];
        if (*l && e->start_ns + 1 >= *l)
            gap[ng++] = e->start_ns + 1 - *l;
        *l = e->end_ns + 1;
    }
    cask__free(last);
    cask__free(mine);
    int rc = 0;
    if (found < b->n)
        rc = cask__err(err, CASK_EINVAL, NULL, NULL,
                       "timing: the trace ran %zu of the bag's %zu partitions (trace a "
                       "compute that runs them all, with no cache)", found, b->n);
    else if (!ng)
        rc = cask__err(err, CASK_EINVAL, NULL, NULL,
                       "timing: no worker ran two tasks in a row, so nothing in the trace "
                       "measures a task's overhead (trace a run with more partitions)");
    else {
        qsort(gap, ng, sizeof *gap, cmp_u64);
        double median = (double)gap[ng / 2] * 1e-9;
        out->item_s = b->items ? busy / (double)b->items : 0;
        out->task_s = median * (double)ne / (double)b->n;
    }
    cask__free(gap);
    return rc;
}

/* ----------------------------------------------------------------- results */

int cask_bag_compute(const cask_bag_t *b, const cask_compute_opts_t *opts, cask_value_t *out,
                     cask_error_t *err)
{
    if (out)
        *out = cask_none();
    if (!b || !out)
        return b ? cask__err(err, CASK_EINVAL, NULL, NULL, "compute: out is NULL")
                 : no_bag(err, "compute");
    cask_value_t *res = cask__calloc(b->n, sizeof *res);
    if (!res)
        return cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for %zu partitions", b->n);
    int rc = cask_compute(b->g, b->part, b->n, opts, res, NULL, err);
    /* under mpi the results are on rank 0 only, unless all ranks asked */
    bool here = cask_mpi_rank() == 0;
    for (size_t i = 0; !rc && !here && i < b->n; i++)
        here = res[i].type != CASK_NONE;
    cask_list_builder_t lb;
    cask_list_builder_init(&lb);
    for (size_t i = 0; i < b->n && !rc && here; i++) {
        if (res[i].type != CASK_LIST) {
            rc = cask__err(err, CASK_ETYPE, cask_graph_key(b->g, b->part[i]), NULL,
                           "partition %zu is a %s, not a list", i, cask_type_name(res[i].type));
            break;
        }
        for (size_t j = 0, m = cask_list_len(&res[i]); j < m && !rc; j++) {
            cask_value_t item = cask_list_item(&res[i], j);
            rc = cask_list_builder_append(&lb, &item, err);
        }
    }
    if (!rc && here)
        rc = cask_list_builder_finish(&lb, out, err);
    cask_list_builder_destroy(&lb);
    for (size_t i = 0; i < b->n; i++)
        cask_value_decref(&res[i]);
    cask__free(res);
    return rc;
}

int cask_bag_take(const cask_bag_t *b, size_t k, const cask_compute_opts_t *opts,
                  cask_value_t *out, cask_error_t *err)
{
    if (out)
        *out = cask_none();
    if (!b || !out)
        return b ? cask__err(err, CASK_EINVAL, NULL, NULL, "take: out is NULL")
                 : no_bag(err, "take");
    /* under mpi every rank must see the partitions to stop where rank 0 does */
    cask_compute_opts_t o = opts ? *opts : (cask_compute_opts_t){ 0 };
    o.flags |= CASK_ALL_RANKS;
    cask_list_builder_t lb;
    cask_list_builder_init(&lb);
    int rc = 0;
    size_t have = 0;
    for (size_t i = 0; i < b->n && have < k && !rc; i++) {
        cask_value_t part;
        if ((rc = cask_compute(b->g, &b->part[i], 1, &o, &part, NULL, err)))
            break;
        if (part.type != CASK_LIST)
            rc = cask__err(err, CASK_ETYPE, cask_graph_key(b->g, b->part[i]), NULL,
                           "partition %zu is a %s, not a list", i, cask_type_name(part.type));
        for (size_t j = 0, m = cask_list_len(&part); j < m && have < k && !rc; j++, have++) {
            cask_value_t item = cask_list_item(&part, j);
            rc = cask_list_builder_append(&lb, &item, err);
        }
        cask_value_decref(&part);
    }
    if (!rc)
        rc = cask_list_builder_finish(&lb, out, err);
    cask_list_builder_destroy(&lb);
    return rc;
}

cask_task_t cask_bag_to_textfiles(const cask_bag_t *b, const char *pattern, cask_error_t *err)
{
    if (!b || !pattern) {
        if (b)
            cask__err(err, CASK_EINVAL, NULL, NULL, "to_textfiles: the pattern is NULL");
        else
            no_bag(err, "to_textfiles");
        return CASK_NO_TASK;
    }
    const char *star = strchr(pattern, '*');
    if (!star || strchr(star + 1, '*')) {
        cask__err(err, CASK_EINVAL, NULL, NULL,
                  "to_textfiles: the pattern '%s' needs exactly one '*'", pattern);
        return CASK_NO_TASK;
    }
    cask_value_t *in = cask__calloc(b->n + 1, sizeof *in);
    if (!in) {
        cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for %zu paths", b->n);
        return CASK_NO_TASK;
    }
    cask_task_t t = CASK_NO_TASK;
    int rc = cask_value_string(pattern, (size_t)-1, &in[b->n], err);
    uint64_t token = rc ? 0 : token_of(b->g, "cask.bag.totext", b->part, b->n, &in[b->n], 1);
    cask_value_decref(&in[b->n]);
    for (size_t i = 0; i < b->n && !rc; i++) {
        char *path = cask__malloc(strlen(pattern) + 24);
        if (!path) {
            rc = cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for a path");
            break;
        }
        sprintf(path, "%.*s%zu%s", (int)(star - pattern), pattern, i, star + 1);
        cask_value_t w[2] = { cask_ref(b->part[i]), cask_none() };
        rc = cask_value_string(path, (size_t)-1, &w[1], err);
        cask__free(path);
        if (!rc && (in[i] = cask_ref(add(b->g, "cask.bag.totext", "to_textfiles", token, i, w,
                                         2, err))).u.task == CASK_NO_TASK)
            rc = -1;
        cask_value_decref(&w[1]);
    }
    if (!rc)
        t = add(b->g, "cask.bag.pack", "to_textfiles", token, b->n, in, b->n, err);
    cask__free(in);
    return t;
}

cask_task_t cask_bag_write_files(const cask_bag_t *b, cask_error_t *err)
{
    if (!b) {
        no_bag(err, "write_files");
        return CASK_NO_TASK;
    }
    cask_value_t w;
    if (cask_value_string("write_files", (size_t)-1, &w, err))
        return CASK_NO_TASK;
    cask_task_t t = reduce(b, "write_files", "cask.bag.writef", NULL, 0, "cask.bag.statc", &w, 1,
                           0, err);
    cask_value_decref(&w);
    return t;
}

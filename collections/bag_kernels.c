/*
** collections/bag_kernels.c: the kernels of a bag's tasks (cask.bag.*).
** A partition is a list; a kernel that calls the user's kernel looks it up
** once per task and calls it per record. Reductions run as trees: a
** partition's kernel makes a partial value, a combining kernel (first
** argument 1 at the root) merges partials, in partition order.
*/
#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bag.h"

#define FAIL(code, ...) (cask_kernel_fail(ctx, __VA_ARGS__), (code))

/* ------------------------------------------------------------ the user's */

/* The kernel named by v, or NULL (ctx's message says why). */
static const cask__kernel_t *resolve(cask_kctx_t *ctx, const cask_value_t *v)
{
    const char *name = cask_value_str(v, NULL);
    const cask__kernel_t *k = cask__kernel_named(name);
    if (!k)
        cask_kernel_fail(ctx, "unknown kernel '%s'", name ? name : "(not a name)");
    return k;
}

/* The arguments of a call of the user's kernel made from a task's
** [first, kernel, extra...] (n of them): room for one value, then extra;
** NULL when out of memory. */
static cask_value_t *call_args(const cask_value_t *args, size_t n)
{
    cask_value_t *a = cask__malloc((n - 1) * sizeof *a);
    if (a)
        memcpy(a + 1, args + 2, (n - 2) * sizeof *a);
    return a;
}

/* The partition args[0] as a list, or a failure. */
static int need_list(cask_kctx_t *ctx, const cask_value_t *v, const char *what)
{
    return v->type == CASK_LIST ? 0
                                : cask_kernel_fail(ctx, "%s is a %s, not a list", what,
                                                   cask_type_name(v->type));
}

/* Finish b into *out and destroy it, unless rc. */
static int finish(cask_list_builder_t *b, int rc, cask_value_t *out)
{
    cask_error_t e;
    if (!rc)
        rc = cask_list_builder_finish(b, out, &e);
    cask_list_builder_destroy(b);
    return rc;
}

/* Append v, or fail naming record i. */
static int append(cask_kctx_t *ctx, cask_list_builder_t *b, const cask_value_t *v, size_t i)
{
    cask_error_t e;
    int rc = cask_list_builder_append(b, v, &e);
    return rc == CASK_ETYPE ? cask_kernel_fail(ctx, "record %zu: %s", i, e.message) : rc;
}

/* Append the list [x, y] to b, built in place in pair (an empty builder,
** kept for the next pair): no block of its own. 0, CASK_ETYPE (e says
** which cannot be an item) or CASK_ENOMEM. */
static int append_pair(cask_list_builder_t *b, cask_list_builder_t *pair, const cask_value_t *x,
                       const cask_value_t *y, cask_error_t *e)
{
    int rc = cask_list_builder_append(pair, x, e);
    if (!rc && !(rc = cask_list_builder_append(pair, y, e)))
        rc = cask__list_builder_append_built(b, pair);
    return rc;
}

/* The per-record kernels: cask.bag.map and cask.bag.filter on [partition,
** kernel, extra...]. */
static int per_record(const cask_value_t *args, size_t n, cask_value_t *out, cask_kctx_t *ctx,
                      bool filter)
{
    if (n < 2 || need_list(ctx, &args[0], "the partition"))
        return n < 2 ? cask_kernel_fail(ctx, "inputs must be a partition and a kernel")
                     : CASK_EKERNEL;
    const cask__kernel_t *k = resolve(ctx, &args[1]);
    if (!k)
        return CASK_ENOKERNEL;
    cask_value_t *a = call_args(args, n);
    if (!a)
        return CASK_ENOMEM;
    cask_list_builder_t b;
    cask_list_builder_init(&b);
    int rc = 0;
    for (size_t i = 0, m = cask_list_len(&args[0]); i < m && !rc; i++) {
        a[0] = cask_list_item(&args[0], i);
        cask_value_t r;
        if ((rc = cask__kernel_call(ctx, k, a, n - 1, &r)))
            break;
        if (!filter)
            rc = append(ctx, &b, &r, i);
        else if (!cask_value_is_number(&r))
            rc = cask_kernel_fail(ctx, "%s gave a %s for record %zu, not a number", k->name,
                                  cask_type_name(r.type), i);
        else if (cask_value_double(&r) != 0)
            rc = append(ctx, &b, &a[0], i);
        cask_value_decref(&r);
    }
    cask__free(a);
    return finish(&b, rc, out);
}

static int k_map(const cask_value_t *args, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    return per_record(args, n, out, ctx, false);
}

static int k_filter(const cask_value_t *args, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    return per_record(args, n, out, ctx, true);
}

/* cask.bag.apply(partition, kernel, extra...): the kernel on the partition;
** cask.bag.mapp: the same, and its value must be a list. */
static int k_apply(const cask_value_t *args, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    if (n < 2)
        return cask_kernel_fail(ctx, "inputs must be a partition and a kernel");
    const cask__kernel_t *k = resolve(ctx, &args[1]);
    if (!k)
        return CASK_ENOKERNEL;
    cask_value_t *a = call_args(args, n);
    if (!a)
        return CASK_ENOMEM;
    a[0] = args[0];
    int rc = cask__kernel_call(ctx, k, a, n - 1, out);
    cask__free(a);
    return rc;
}

static int k_mapp(const cask_value_t *args, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    int rc = k_apply(args, n, out, ctx);
    if (!rc && out->type != CASK_LIST) {
        rc = cask_kernel_fail(ctx, "%s gave a %s, not a list (a partition)",
                              cask_value_str(&args[1], NULL), cask_type_name(out->type));
        cask_value_decref(out);
    }
    return rc;
}

/* cask.bag.agg(top, kernel, partial...): the kernel on the list of the
** partials. */
static int k_agg(const cask_value_t *args, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    if (n < 2)
        return cask_kernel_fail(ctx, "inputs must be top, a kernel and partials");
    const cask__kernel_t *k = resolve(ctx, &args[1]);
    if (!k)
        return CASK_ENOKERNEL;
    cask_value_t list;
    cask_error_t e;
    int rc = cask_value_list(args + 2, n - 2, &list, &e);
    if (rc)
        return rc == CASK_ETYPE ? cask_kernel_fail(ctx, "%s", e.message) : rc;
    rc = cask__kernel_call(ctx, k, &list, 1, out);
    cask_value_decref(&list);
    return rc;
}

/* cask.bag.flatten(partition): the items of each record, a list. */
static int k_flatten(const cask_value_t *args, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    if (n != 1 || need_list(ctx, &args[0], "the partition"))
        return n != 1 ? cask_kernel_fail(ctx, "input must be a partition") : CASK_EKERNEL;
    cask_list_builder_t b;
    cask_list_builder_init(&b);
    int rc = 0;
    for (size_t i = 0, m = cask_list_len(&args[0]); i < m && !rc; i++) {
        cask_value_t r = cask_list_item(&args[0], i);
        if (r.type != CASK_LIST) {
            rc = cask_kernel_fail(ctx, "record %zu is a %s, not a list", i,
                                  cask_type_name(r.type));
            break;
        }
        for (size_t j = 0, k = cask_list_len(&r); j < k && !rc; j++) {
            cask_value_t item = cask_list_item(&r, j);
            rc = append(ctx, &b, &item, i);
        }
    }
    return finish(&b, rc, out);
}

/* cask.bag.pluck(partition, key). */
static int k_pluck(const cask_value_t *args, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    const char *key = n == 2 ? cask_value_str(&args[1], NULL) : NULL;
    if (!key || need_list(ctx, &args[0], "the partition"))
        return key ? CASK_EKERNEL : cask_kernel_fail(ctx, "inputs must be a partition and a key");
    cask_list_builder_t b;
    cask_list_builder_init(&b);
    int rc = 0;
    for (size_t i = 0, m = cask_list_len(&args[0]); i < m && !rc; i++) {
        cask_value_t r = cask_list_item(&args[0], i), v;
        cask_error_t e;
        if ((rc = cask_bag_json_get(&r, key, &v, &e)))
            cask_kernel_fail(ctx, "record %zu: %s", i, e.message);
        else
            rc = append(ctx, &b, &v, i);
        cask_value_decref(&v);
    }
    return finish(&b, rc, out);
}

/* --------------------------------------------------------------- folding */

/* cask.bag.fold(partition, binop[, initial]): [acc] folded over the
** partition from initial (or its first record), or [] for an empty
** partition with no initial. */
static int k_fold(const cask_value_t *args, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    if ((n != 2 && n != 3) || need_list(ctx, &args[0], "the partition"))
        return n != 2 && n != 3 ? cask_kernel_fail(ctx, "inputs must be a partition and binop")
                                : CASK_EKERNEL;
    const cask__kernel_t *k = resolve(ctx, &args[1]);
    if (!k)
        return CASK_ENOKERNEL;
    size_t m = cask_list_len(&args[0]), i = 0;
    cask_value_t acc;
    if (n == 3) {
        acc = args[2];
        cask_value_incref(&acc);
    } else if (m) {
        cask_value_t first = cask_list_item(&args[0], i++);
        cask_error_t e;
        int rc = cask_value_copy(&first, &acc, &e);
        if (rc)
            return rc;
    } else
        return cask_value_list(NULL, 0, out, NULL);
    int rc = 0;
    for (; i < m && !rc; i++) {
        cask_value_t a[2] = { acc, cask_list_item(&args[0], i) }, r;
        if (!(rc = cask__kernel_call(ctx, k, a, 2, &r))) {
            cask_value_decref(&acc);
            acc = r;
        }
    }
    cask_error_t e;
    if (!rc && (rc = cask_value_list(&acc, 1, out, &e)) == CASK_ETYPE)
        rc = cask_kernel_fail(ctx, "%s gave a %s, which a partial result cannot hold", k->name,
                              cask_type_name(acc.type));
    cask_value_decref(&acc);
    return rc;
}

/* cask.bag.foldc(top, combine, partial...): the partials ([acc] or [])
** combined in order; at the root the accumulator itself. */
static int k_foldc(const cask_value_t *args, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    if (n < 2 || args[0].type != CASK_INT64)
        return cask_kernel_fail(ctx, "inputs must be top, combine and partials");
    const cask__kernel_t *k = resolve(ctx, &args[1]);
    if (!k)
        return CASK_ENOKERNEL;
    cask_value_t acc = cask_none();
    bool have = false;
    int rc = 0;
    for (size_t i = 2; i < n && !rc; i++) {
        if (args[i].type != CASK_LIST || cask_list_len(&args[i]) > 1) {
            rc = cask_kernel_fail(ctx, "partial %zu is not a fold's", i - 2);
            break;
        }
        if (!cask_list_len(&args[i]))
            continue;
        cask_value_t v = cask_list_item(&args[i], 0), r;
        cask_error_t e;
        if (!have) {
            rc = cask_value_copy(&v, &acc, &e);
            have = true;
            continue;
        }
        cask_value_t a[2] = { acc, v };
        if (!(rc = cask__kernel_call(ctx, k, a, 2, &r))) {
            cask_value_decref(&acc);
            acc = r;
        }
    }
    if (!rc && args[0].u.i) {
        if (!have)
            return cask_kernel_fail(ctx, "a fold of no record with no initial value");
        *out = acc;
        return 0;
    }
    cask_error_t e;
    if (!rc)
        rc = have ? cask_value_list(&acc, 1, out, &e) : cask_value_list(NULL, 0, out, &e);
    cask_value_decref(&acc);
    return rc;
}

/* ------------------------------------------------------------ statistics */

/* Compare numbers as numbers, strings byte by byte: -1, 0, 1 in *c, or
** false when a and b are not both numbers or both strings. */
static bool compare(const cask_value_t *a, const cask_value_t *b, int *c)
{
    if (a->type == CASK_INT64 && b->type == CASK_INT64) {
        *c = (a->u.i > b->u.i) - (a->u.i < b->u.i);
        return true;
    }
    if (cask_value_is_number(a) && cask_value_is_number(b)) {
        double x = cask_value_double(a), y = cask_value_double(b);
        if (isnan(x) || isnan(y)) /* NaN above every number, equal to itself: an order */
            *c = isnan(x) - isnan(y);
        else
            *c = (x > y) - (x < y);
        return true;
    }
    size_t la, lb;
    const char *sa = cask_value_str(a, &la), *sb = cask_value_str(b, &lb);
    if (!sa || !sb)
        return false;
    int r = memcmp(sa, sb, la < lb ? la : lb);
    *c = r ? (r > 0) - (r < 0) : (la > lb) - (la < lb);
    return true;
}

/* What cask.bag.stat computes. */
enum { S_COUNT, S_SUM, S_MIN, S_MAX, S_MEAN, S_FILES };

static int stat_of(cask_kctx_t *ctx, const cask_value_t *v)
{
    static const char *const names[] = { "count", "sum", "min", "max", "mean", "write_files" };
    const char *s = cask_value_str(v, NULL);
    for (int i = 0; s && i < (int)(sizeof names / sizeof names[0]); i++)
        if (!strcmp(s, names[i]))
            return i;
    cask_kernel_fail(ctx, "unknown statistic '%s'", s ? s : "(not a name)");
    return -1;
}

/* A running sum: an int64 while every term is, else a double. */
typedef struct sum {
    bool    real;
    int64_t i;
    double  d;
} sum_t;

static int sum_add(cask_kctx_t *ctx, sum_t *s, const cask_value_t *v, size_t at)
{
    if (v->type == CASK_INT64 && !s->real) {
        if (__builtin_add_overflow(s->i, v->u.i, &s->i))
            return cask_kernel_fail(ctx, "the sum overflows int64 at record %zu", at);
        return 0;
    }
    if (!cask_value_is_number(v))
        return cask_kernel_fail(ctx, "record %zu is a %s, not a number", at,
                                cask_type_name(v->type));
    if (!s->real)
        s->d = (double)s->i, s->real = true;
    s->d += cask_value_double(v);
    return 0;
}

static cask_value_t sum_value(const sum_t *s)
{
    return s->real ? cask_double(s->d) : cask_int(s->i);
}

/* Keep in *best the least (sign 1) or greatest (sign -1) of it and v. */
static int pick(cask_kctx_t *ctx, cask_value_t *best, const cask_value_t *v, int sign,
                size_t at)
{
    int c;
    if (best->type == CASK_NONE) {
        if (!cask_value_is_number(v) && v->type != CASK_STRING)
            return cask_kernel_fail(ctx, "record %zu is a %s: min and max compare numbers or "
                                    "strings", at, cask_type_name(v->type));
        *best = *v;
        return 0;
    }
    if (!compare(v, best, &c))
        return cask_kernel_fail(ctx, "record %zu, a %s, cannot be compared with a %s", at,
                                cask_type_name(v->type), cask_type_name(best->type));
    if (c * sign < 0)
        *best = *v;
    return 0;
}

/* cask.bag.stat(partition, what): count, sum, min or max (none: no
** record), mean ([sum, count]) of a partition. */
static int k_stat(const cask_value_t *args, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    int what = n == 2 ? stat_of(ctx, &args[1]) : -1;
    if (what < 0 || need_list(ctx, &args[0], "the partition"))
        return n != 2 ? cask_kernel_fail(ctx, "inputs must be a partition and a statistic")
                      : CASK_EKERNEL;
    size_t m = cask_list_len(&args[0]);
    sum_t s = { 0 };
    cask_value_t best = cask_none();
    int rc = 0;
    for (size_t i = 0; i < m && !rc && what != S_COUNT; i++) {
        cask_value_t v = cask_list_item(&args[0], i);
        if (what == S_MEAN && cask_value_is_number(&v)) /* a mean adds doubles */
            s.real = true, s.d += cask_value_double(&v);
        else
            rc = what == S_MIN || what == S_MAX ? pick(ctx, &best, &v, what == S_MIN ? 1 : -1, i)
                                                : sum_add(ctx, &s, &v, i);
    }
    if (rc)
        return rc;
    switch (what) {
    case S_COUNT: *out = cask_int((int64_t)m); return 0;
    case S_SUM:   *out = sum_value(&s); return 0;
    case S_MEAN: {
        cask_value_t pair[2] = { cask_double(s.real ? s.d : (double)s.i), cask_int((int64_t)m) };
        return cask_value_list(pair, 2, out, NULL);
    }
    default: {
        cask_error_t e;
        return best.type == CASK_NONE ? 0 : cask_value_copy(&best, out, &e);
    }
    }
}

/* cask.bag.statc(top, what, partial...): the partials combined. */
static int k_statc(const cask_value_t *args, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    int what = n >= 2 ? stat_of(ctx, &args[1]) : -1;
    if (what < 0 || args[0].type != CASK_INT64)
        return what < 0 && n >= 2 ? CASK_EKERNEL
                                  : cask_kernel_fail(ctx, "inputs must be top, a statistic "
                                                     "and partials");
    bool top = args[0].u.i != 0;
    sum_t s = { 0 };
    int64_t count = 0;
    cask_value_t best = cask_none();
    int rc = 0;
    for (size_t i = 2; i < n && !rc; i++) {
        const cask_value_t *v = &args[i];
        if (what == S_MIN || what == S_MAX) {
            if (v->type != CASK_NONE)
                rc = pick(ctx, &best, v, what == S_MIN ? 1 : -1, i - 2);
        } else if (what == S_MEAN) {
            cask_value_t ps = cask_list_item(v, 0), pc = cask_list_item(v, 1);
            if (cask_list_len(v) != 2 || pc.type != CASK_INT64)
                return cask_kernel_fail(ctx, "partial %zu is not a mean's", i - 2);
            rc = sum_add(ctx, &s, &ps, i - 2);
            count += pc.u.i;
        } else
            rc = sum_add(ctx, &s, v, i - 2);
    }
    if (rc)
        return rc;
    if (what == S_MEAN) {
        if (top && !count)
            return cask_kernel_fail(ctx, "the mean of no record");
        if (top) {
            *out = cask_double((s.real ? s.d : (double)s.i) / (double)count);
            return 0;
        }
        cask_value_t pair[2] = { cask_double(s.real ? s.d : (double)s.i), cask_int(count) };
        return cask_value_list(pair, 2, out, NULL);
    }
    if (what == S_MIN || what == S_MAX) {
        if (best.type == CASK_NONE)
            return top ? cask_kernel_fail(ctx, "the %s of no record", what == S_MIN ? "min"
                                                                                    : "max")
                       : 0;
        cask_error_t e;
        return cask_value_copy(&best, out, &e);
    }
    *out = sum_value(&s);
    return 0;
}

/* ---------------------------------------------------- sets of records */

/* Records by value (borrowed), each with a count and a payload index:
** open addressing over an array of entries in first-seen order. */
typedef struct vent {
    cask_value_t v;
    uint64_t     h;
    int64_t      count;
} vent_t;

typedef struct vset {
    vent_t   *e;
    size_t    n, cap;
    uint32_t *slot;   /* entry + 1, or 0: empty */
    size_t    nslot;  /* a power of two */
} vset_t;

static void vset_destroy(vset_t *s)
{
    cask__free(s->e);
    cask__free(s->slot);
}

static int vset_grow(vset_t *s)
{
    size_t ns = s->nslot ? s->nslot * 2 : 64;
    uint32_t *slot = cask__calloc(ns, sizeof *slot);
    if (!slot)
        return CASK_ENOMEM;
    for (size_t i = 0; i < s->n; i++) {
        size_t j = s->e[i].h & (ns - 1);
        while (slot[j])
            j = (j + 1) & (ns - 1);
        slot[j] = (uint32_t)i + 1;
    }
    cask__free(s->slot);
    s->slot = slot, s->nslot = ns;
    return 0;
}

/* The entry of v (added with count 0 when new), or -1 when out of memory. */
static ptrdiff_t vset_get(vset_t *s, const cask_value_t *v)
{
    if ((s->n + 1) * 2 > s->nslot && (s->n >= UINT32_MAX - 1 || vset_grow(s)))
        return -1;
    uint64_t h = cask__value_hash(v, NULL);
    size_t j = h & (s->nslot - 1);
    for (; s->slot[j]; j = (j + 1) & (s->nslot - 1)) {
        vent_t *e = &s->e[s->slot[j] - 1];
        if (e->h == h && cask_value_equal(&e->v, v))
            return (ptrdiff_t)(s->slot[j] - 1);
    }
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 64;
        vent_t *ne = cask__realloc(s->e, nc * sizeof *ne);
        if (!ne)
            return -1;
        s->e = ne, s->cap = nc;
    }
    s->e[s->n] = (vent_t){ *v, h, 0 };
    s->slot[j] = (uint32_t)++s->n;
    return (ptrdiff_t)s->n - 1;
}

/* Pairs [value, count] of s's entries (in order[0..n) when not NULL). */
static int pairs_of(const vset_t *s, const size_t *order, cask_value_t *out)
{
    cask_list_builder_t b, pair;
    cask_list_builder_init(&b);
    cask_list_builder_init(&pair);
    cask_error_t e;
    int rc = 0;
    for (size_t i = 0; i < s->n && !rc; i++) {
        const vent_t *x = &s->e[order ? order[i] : i];
        cask_value_t count = cask_int(x->count);
        rc = append_pair(&b, &pair, &x->v, &count, &e);
    }
    cask_list_builder_destroy(&pair);
    return finish(&b, rc, out);
}

/* cask.bag.freq(partition): [record, count] per distinct record. */
static int k_freq(const cask_value_t *args, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    if (n != 1 || need_list(ctx, &args[0], "the partition"))
        return n != 1 ? cask_kernel_fail(ctx, "input must be a partition") : CASK_EKERNEL;
    vset_t s = { 0 };
    int rc = 0;
    for (size_t i = 0, m = cask_list_len(&args[0]); i < m && !rc; i++) {
        cask_value_t v = cask_list_item(&args[0], i);
        ptrdiff_t k = vset_get(&s, &v);
        if (k < 0)
            rc = CASK_ENOMEM;
        else
            s.e[k].count++;
    }
    if (!rc)
        rc = pairs_of(&s, NULL, out);
    vset_destroy(&s);
    return rc;
}

/* An entry's place in a sort: by count, highest first, then by first
** appearance. */
typedef struct rank {
    int64_t count;
    size_t  i;
} rank_t;

static int by_count(const void *a, const void *b)
{
    const rank_t *x = a, *y = b;
    if (x->count != y->count)
        return x->count < y->count ? 1 : -1;
    return (x->i > y->i) - (x->i < y->i);
}

/* cask.bag.freqc(top, sort, partial...): the partials' pairs merged; at
** the root sorted by count when sort. */
static int k_freqc(const cask_value_t *args, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    if (n < 2 || args[0].type != CASK_INT64 || args[1].type != CASK_INT64)
        return cask_kernel_fail(ctx, "inputs must be top, sort and partials");
    vset_t s = { 0 };
    int rc = 0;
    for (size_t i = 2; i < n && !rc; i++)
        for (size_t j = 0, m = cask_list_len(&args[i]); j < m && !rc; j++) {
            cask_value_t p = cask_list_item(&args[i], j);
            cask_value_t v = cask_list_item(&p, 0), c = cask_list_item(&p, 1);
            if (cask_list_len(&p) != 2 || c.type != CASK_INT64) {
                rc = cask_kernel_fail(ctx, "partial %zu is not a count's", i - 2);
                break;
            }
            ptrdiff_t k = vset_get(&s, &v);
            if (k < 0)
                rc = CASK_ENOMEM;
            else
                s.e[k].count += c.u.i;
        }
    size_t *order = NULL;
    if (!rc && args[0].u.i && args[1].u.i) {
        rank_t *r = cask__malloc((s.n ? s.n : 1) * sizeof *r);
        order = cask__malloc((s.n ? s.n : 1) * sizeof *order);
        if (!r || !order)
            rc = CASK_ENOMEM;
        for (size_t i = 0; !rc && i < s.n; i++)
            r[i] = (rank_t){ s.e[i].count, i };
        if (!rc)
            qsort(r, s.n, sizeof *r, by_count);
        for (size_t i = 0; !rc && i < s.n; i++)
            order[i] = r[i].i;
        cask__free(r);
    }
    if (!rc)
        rc = pairs_of(&s, order, out);
    cask__free(order);
    vset_destroy(&s);
    return rc;
}

/* Each distinct record of lists[0..n) (the items of every list, in
** order), once, in first-seen order. */
static int distinct_of(cask_kctx_t *ctx, const cask_value_t *lists, size_t n, cask_value_t *out)
{
    vset_t s = { 0 };
    cask_list_builder_t b;
    cask_list_builder_init(&b);
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        if ((rc = need_list(ctx, &lists[i], "a partition")))
            break;
        for (size_t j = 0, m = cask_list_len(&lists[i]); j < m && !rc; j++) {
            cask_value_t v = cask_list_item(&lists[i], j);
            ptrdiff_t k = vset_get(&s, &v);
            if (k < 0)
                rc = CASK_ENOMEM;
            else if (!s.e[k].count++)
                rc = append(ctx, &b, &v, j);
        }
    }
    vset_destroy(&s);
    return finish(&b, rc, out);
}

/* cask.bag.distinct(partition) and cask.bag.distinctc(top, partial...). */
static int k_distinct(const cask_value_t *args, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    return distinct_of(ctx, args, n, out);
}

static int k_distinctc(const cask_value_t *args, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    if (!n)
        return cask_kernel_fail(ctx, "inputs must be top and partials");
    return distinct_of(ctx, args + 1, n - 1, out);
}

/* A record's place in a top-k: its key (borrowed or owned) and its place. */
typedef struct cand {
    cask_value_t key, rec;
    size_t       i;
} cand_t;

/* Greatest key first, then the earlier record (keys are all numbers or
** all strings: checked before sorting). */
static int by_key(const void *a, const void *b)
{
    const cand_t *x = a, *y = b;
    int c = 0;
    compare(&x->key, &y->key, &c);
    if (c)
        return -c;
    return (x->i > y->i) - (x->i < y->i);
}

/* The k records of lists[0..n) with the greatest keys (key kernel kk, or
** the records themselves), greatest first. */
static int topk_of(cask_kctx_t *ctx, const cask_value_t *lists, size_t n, int64_t k,
                   const cask_value_t *kname, cask_value_t *out)
{
    const cask__kernel_t *kk = kname ? resolve(ctx, kname) : NULL;
    if (kname && !kk)
        return CASK_ENOKERNEL;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (need_list(ctx, &lists[i], "a partition"))
            return CASK_EKERNEL;
        total += cask_list_len(&lists[i]);
    }
    cand_t *c = cask__calloc(total ? total : 1, sizeof *c);
    if (!c)
        return CASK_ENOMEM;
    int rc = 0;
    size_t m = 0;
    for (size_t i = 0; i < n && !rc; i++)
        for (size_t j = 0, l = cask_list_len(&lists[i]); j < l && !rc; j++, m++) {
            c[m].rec = cask_list_item(&lists[i], j);
            c[m].i = m;
            if (kk)
                rc = cask__kernel_call(ctx, kk, &c[m].rec, 1, &c[m].key);
            else
                c[m].key = c[m].rec;
            int cmp;
            if (!rc && !(cask_value_is_number(&c[m].key) || c[m].key.type == CASK_STRING))
                rc = cask_kernel_fail(ctx, "key of record %zu is a %s: topk compares numbers "
                                      "or strings", j, cask_type_name(c[m].key.type));
            else if (!rc && m && !compare(&c[m].key, &c[0].key, &cmp))
                rc = cask_kernel_fail(ctx, "key of record %zu, a %s, cannot be compared with "
                                      "a %s", j, cask_type_name(c[m].key.type),
                                      cask_type_name(c[0].key.type));
        }
    if (!rc)
        qsort(c, m, sizeof *c, by_key);
    cask_list_builder_t b;
    cask_list_builder_init(&b);
    for (size_t i = 0; i < m && (int64_t)i < k && !rc; i++)
        rc = append(ctx, &b, &c[i].rec, c[i].i);
    for (size_t i = 0; kk && i < m; i++)
        cask_value_decref(&c[i].key);
    cask__free(c);
    return finish(&b, rc, out);
}

/* cask.bag.topk(partition, k[, key]) and cask.bag.topkc(top, k[, key],
** partial...). */
static int k_topk(const cask_value_t *args, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    if ((n != 2 && n != 3) || args[1].type != CASK_INT64)
        return cask_kernel_fail(ctx, "inputs must be a partition, k and a key");
    return topk_of(ctx, args, 1, args[1].u.i, n == 3 ? &args[2] : NULL, out);
}

static int k_topkc(const cask_value_t *args, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    if (n < 2 || args[1].type != CASK_INT64)
        return cask_kernel_fail(ctx, "inputs must be top, k, a key and partials");
    bool key = n > 2 && args[2].type == CASK_STRING;
    return topk_of(ctx, args + 2 + key, n - 2 - key, args[1].u.i, key ? &args[2] : NULL, out);
}

/* -------------------------------------------------------------- shuffles */

/* cask.bag.split(partition, key, p): p lists, list j the pairs [key,
** record] of the records whose key hashes to j. */
static int k_split(const cask_value_t *args, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    if (n != 3 || args[2].type != CASK_INT64 || args[2].u.i < 1 || args[2].u.i > UINT32_MAX ||
        need_list(ctx, &args[0], "the partition"))
        return cask_kernel_fail(ctx, "inputs must be a partition, a key and a count");
    const cask__kernel_t *k = resolve(ctx, &args[1]);
    if (!k)
        return CASK_ENOKERNEL;
    size_t p = (size_t)args[2].u.i;
    cask_list_builder_t *part = cask__malloc(p * sizeof *part);
    if (!part)
        return CASK_ENOMEM;
    for (size_t j = 0; j < p; j++)
        cask_list_builder_init(&part[j]);
    int rc = 0;
    cask_error_t e;
    cask_list_builder_t pair;
    cask_list_builder_init(&pair);
    for (size_t i = 0, m = cask_list_len(&args[0]); i < m && !rc; i++) {
        cask_value_t rec = cask_list_item(&args[0], i), key;
        if ((rc = cask__kernel_call(ctx, k, &rec, 1, &key)))
            break;
        if (key.type == CASK_REF || key.type == CASK_OPAQUE)
            rc = cask_kernel_fail(ctx, "%s gave a %s for record %zu: a key must be a value a "
                                  "list holds", k->name, cask_type_name(key.type), i);
        else /* [key, record] into its part */
            rc = append_pair(&part[cask__value_hash(&key, NULL) % p], &pair, &key, &rec, &e);
        cask_value_decref(&key);
    }
    cask_list_builder_destroy(&pair);
    cask_list_builder_t b;
    cask_list_builder_init(&b);
    for (size_t j = 0; j < p; j++) {
        if (!rc)
            rc = cask__list_builder_append_built(&b, &part[j]);
        cask_list_builder_destroy(&part[j]);
    }
    cask__free(part);
    return finish(&b, rc, out);
}

/* cask.bag.gather(j, split...): [key, [record...]] for each key of list j
** of every split, records in split order. */
static int k_gather(const cask_value_t *args, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    if (!n || args[0].type != CASK_INT64 || args[0].u.i < 0)
        return cask_kernel_fail(ctx, "inputs must be a part number and splits");
    size_t j = (size_t)args[0].u.i;
    vset_t s = { 0 };
    cask_list_builder_t *grp = NULL;
    size_t ngrp = 0;
    int rc = 0;
    cask_error_t e;
    for (size_t i = 1; i < n && !rc; i++) {
        cask_value_t part = cask_list_item(&args[i], j);
        if (args[i].type != CASK_LIST || part.type != CASK_LIST) {
            rc = cask_kernel_fail(ctx, "input %zu is not a split of %zu parts", i, j + 1);
            break;
        }
        for (size_t r = 0, m = cask_list_len(&part); r < m && !rc; r++) {
            cask_value_t pair = cask_list_item(&part, r);
            cask_value_t key = cask_list_item(&pair, 0), rec = cask_list_item(&pair, 1);
            ptrdiff_t k = vset_get(&s, &key);
            if (k < 0) {
                rc = CASK_ENOMEM;
                break;
            }
            if ((size_t)k == ngrp) {
                cask_list_builder_t *ng = cask__realloc(grp, (ngrp + 1) * sizeof *ng);
                if (!ng) {
                    rc = CASK_ENOMEM;
                    break;
                }
                grp = ng;
                cask_list_builder_init(&grp[ngrp++]);
            }
            rc = cask_list_builder_append(&grp[k], &rec, &e);
        }
    }
    cask_list_builder_t b, pair; /* [key, [record...]], built in place */
    cask_list_builder_init(&b);
    cask_list_builder_init(&pair);
    for (size_t k = 0; k < ngrp; k++) {
        if (!rc && !(rc = cask_list_builder_append(&pair, &s.e[k].v, &e)) &&
            !(rc = cask__list_builder_append_built(&pair, &grp[k])))
            rc = cask__list_builder_append_built(&b, &pair);
        cask_list_builder_destroy(&grp[k]);
    }
    cask_list_builder_destroy(&pair);
    cask__free(grp);
    vset_destroy(&s);
    return finish(&b, rc, out);
}

/* --------------------------------------------------------- folding by key */

/* Accumulators by key, as Dask's reduceby: the keys in first-seen order
** (owned when own, else borrowed), acc[i] the accumulator of key i; a key's
** count is 1 once its accumulator is set. */
typedef struct kacc {
    vset_t        keys;
    cask_value_t *acc;
    size_t        cap;
    bool          own;
} kacc_t;

static void kacc_destroy(kacc_t *t)
{
    for (size_t i = 0; i < t->keys.n; i++) {
        cask_value_decref(&t->acc[i]);
        if (t->own)
            cask_value_decref(&t->keys.e[i].v);
    }
    cask__free(t->acc);
    vset_destroy(&t->keys);
}

/* Fold item into key's accumulator: binop(acc, item), a new key's acc
** starting from initial (NULL: from the item itself). key is taken when
** t->own. */
static int kacc_add(cask_kctx_t *ctx, kacc_t *t, cask_value_t key, const cask_value_t *item,
                    const cask__kernel_t *binop, const cask_value_t *initial)
{
    if (t->keys.n == t->cap) { /* room for a new key's accumulator */
        size_t nc = t->cap ? 2 * t->cap : 64;
        cask_value_t *na = cask__realloc(t->acc, nc * sizeof *na);
        if (na)
            t->acc = na, t->cap = nc;
    }
    ptrdiff_t i = t->keys.n < t->cap ? vset_get(&t->keys, &key) : -1;
    if (i < 0) {
        if (t->own)
            cask_value_decref(&key);
        return CASK_ENOMEM;
    }
    vent_t *e = &t->keys.e[i];
    cask_value_t r, a[2] = { e->count ? t->acc[i] : initial ? *initial : cask_none(), *item };
    if (e->count && t->own)
        cask_value_decref(&key);
    int rc;
    cask_error_t err;
    if (!e->count && !initial)
        rc = cask_value_copy(item, &r, &err);
    else
        rc = cask__kernel_call(ctx, binop, a, 2, &r);
    if (e->count)
        cask_value_decref(&t->acc[i]);
    t->acc[i] = rc ? cask_none() : r;
    e->count = 1;
    return rc;
}

/* The pairs [key, acc] of t, in *out. */
static int kacc_pairs(cask_kctx_t *ctx, const kacc_t *t, const cask__kernel_t *k,
                      cask_value_t *out)
{
    cask_list_builder_t b, pair;
    cask_list_builder_init(&b);
    cask_list_builder_init(&pair);
    cask_error_t e;
    int rc = 0;
    for (size_t i = 0; i < t->keys.n && !rc; i++)
        if ((rc = append_pair(&b, &pair, &t->keys.e[i].v, &t->acc[i], &e)) == CASK_ETYPE)
            rc = cask_kernel_fail(ctx, "%s gave a %s, which a partial result cannot hold",
                                  k->name, cask_type_name(t->acc[i].type));
    cask_list_builder_destroy(&pair);
    return finish(&b, rc, out);
}

/* cask.bag.foldby(partition, key, binop[, initial]): [key, acc] per
** distinct key of the partition's records. */
static int k_foldby(const cask_value_t *args, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    if ((n != 3 && n != 4) || need_list(ctx, &args[0], "the partition"))
        return n != 3 && n != 4 ? cask_kernel_fail(ctx, "inputs must be a partition, a key and "
                                                        "binop")
                                : CASK_EKERNEL;
    const cask__kernel_t *kk = resolve(ctx, &args[1]), *kb = kk ? resolve(ctx, &args[2]) : NULL;
    if (!kb)
        return CASK_ENOKERNEL;
    kacc_t t = { .own = true };
    int rc = 0;
    for (size_t i = 0, m = cask_list_len(&args[0]); i < m && !rc; i++) {
        cask_value_t rec = cask_list_item(&args[0], i), key;
        if ((rc = cask__kernel_call(ctx, kk, &rec, 1, &key)))
            break;
        if (key.type == CASK_REF || key.type == CASK_OPAQUE) {
            cask_value_decref(&key);
            rc = cask_kernel_fail(ctx, "%s gave a %s for record %zu: a key must be a value a "
                                  "list holds", kk->name, cask_type_name(key.type), i);
        } else
            rc = kacc_add(ctx, &t, key, &rec, kb, n == 4 ? &args[3] : NULL);
    }
    if (!rc)
        rc = kacc_pairs(ctx, &t, kb, out);
    kacc_destroy(&t);
    return rc;
}

/* cask.bag.foldbyc(top, combine, has_initial, initial, partial...): the
** partials' pairs combined by key, each node of the tree from initial when
** has_initial (as Dask's combine_initial). */
static int k_foldbyc(const cask_value_t *args, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    if (n < 4 || args[2].type != CASK_INT64)
        return cask_kernel_fail(ctx, "inputs must be top, combine, an initial and partials");
    const cask__kernel_t *k = resolve(ctx, &args[1]);
    if (!k)
        return CASK_ENOKERNEL;
    kacc_t t = { .own = false };
    int rc = 0;
    for (size_t i = 4; i < n && !rc; i++) {
        if (args[i].type != CASK_LIST)
            rc = cask_kernel_fail(ctx, "partial %zu is a %s, not a foldby's", i - 4,
                                  cask_type_name(args[i].type));
        for (size_t j = 0, m = cask_list_len(&args[i]); j < m && !rc; j++) {
            cask_value_t p = cask_list_item(&args[i], j);
            if (p.type != CASK_LIST || cask_list_len(&p) != 2) {
                rc = cask_kernel_fail(ctx, "partial %zu is not a foldby's", i - 4);
                break;
            }
            cask_value_t key = cask_list_item(&p, 0), v = cask_list_item(&p, 1);
            rc = kacc_add(ctx, &t, key, &v, k, args[2].u.i ? &args[3] : NULL);
        }
    }
    if (!rc)
        rc = kacc_pairs(ctx, &t, k, out);
    kacc_destroy(&t);
    return rc;
}

/* cask.bag.slice(partition, i, k): part i of k equal parts (give or take
** one record) of the partition. */
static int k_slice(const cask_value_t *args, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    if (n != 3 || args[1].type != CASK_INT64 || args[2].type != CASK_INT64 ||
        args[1].u.i < 0 || args[2].u.i <= args[1].u.i || need_list(ctx, &args[0], "input"))
        return cask_kernel_fail(ctx, "inputs must be a partition, i and k > i");
    size_t m = cask_list_len(&args[0]), k = (size_t)args[2].u.i, i = (size_t)args[1].u.i;
    size_t lo = m * i / k, hi = m * (i + 1) / k;
    cask_list_builder_t b;
    cask_list_builder_init(&b);
    int rc = 0;
    for (size_t r = lo; r < hi && !rc; r++) {
        cask_value_t v = cask_list_item(&args[0], r);
        rc = append(ctx, &b, &v, r);
    }
    return finish(&b, rc, out);
}

/* cask.bag.pack(value...): the list of its inputs. */
static int k_pack(const cask_value_t *args, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    cask_error_t e;
    int rc = cask_value_list(args, n, out, &e);
    return rc == CASK_ETYPE ? cask_kernel_fail(ctx, "%s", e.message) : rc;
}

/* ---------------------------------------------------------------- writing */

/* Write path whole or not at all: the n pieces (strings, or with !lines
** bytes too; with lines each followed by "\n"), into a new file beside
** it (cask__open_beside) that is renamed over it when complete. */
static int write_whole(cask_kctx_t *ctx, const char *path, const cask_value_t *pieces, size_t n,
                       bool lines)
{
    size_t cap = strlen(path) + 48;
    char *tmp = cask__malloc(cap);
    if (!tmp)
        return CASK_ENOMEM;
    int fd = cask__open_beside(path, tmp, cap);
    FILE *f = fd < 0 ? NULL : fdopen(fd, "wb");
    int rc = 0;
    if (!f) {
        rc = FAIL(CASK_EIO, "cannot write '%s': %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
    }
    for (size_t i = 0; i < n && !rc; i++) {
        size_t l;
        const char *p = cask_value_str(&pieces[i], &l);
        if (!p && !lines)
            p = cask_value_data(&pieces[i], &l);
        if (!p) {
            rc = cask_kernel_fail(ctx, "record %zu is a %s, not a string%s", i,
                                  cask_type_name(pieces[i].type), lines ? "" : " or bytes");
            break;
        }
        if (fwrite(p, 1, l, f) != l || (lines && fputc('\n', f) == EOF))
            rc = FAIL(CASK_EIO, "cannot write '%s': %s", path, strerror(errno));
    }
    if (f && fclose(f) && !rc)
        rc = FAIL(CASK_EIO, "cannot write '%s': %s", path, strerror(errno));
    if (!rc && rename(tmp, path))
        rc = FAIL(CASK_EIO, "cannot write '%s': %s", path, strerror(errno));
    if (rc && fd >= 0)
        unlink(tmp);
    cask__free(tmp);
    return rc;
}

/* cask.bag.totext(partition, path): the records, strings, one a line;
** the path. */
static int k_totext(const cask_value_t *args, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    const char *path = n == 2 ? cask_value_str(&args[1], NULL) : NULL;
    if (!path || need_list(ctx, &args[0], "the partition"))
        return path ? CASK_EKERNEL : cask_kernel_fail(ctx, "inputs must be a partition and a path");
    size_t m = cask_list_len(&args[0]);
    cask_value_t *rec = cask__malloc((m ? m : 1) * sizeof *rec);
    if (!rec)
        return CASK_ENOMEM;
    for (size_t i = 0; i < m; i++)
        rec[i] = cask_list_item(&args[0], i);
    int rc = write_whole(ctx, path, rec, m, true);
    cask__free(rec);
    if (!rc)
        *out = args[1], cask_value_incref(out);
    return rc;
}

/* cask.bag.writef(partition): each record [path, contents] written; the
** number of files. */
static int k_writef(const cask_value_t *args, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    if (n != 1 || need_list(ctx, &args[0], "the partition"))
        return n != 1 ? cask_kernel_fail(ctx, "input must be a partition") : CASK_EKERNEL;
    size_t m = cask_list_len(&args[0]);
    int rc = 0;
    for (size_t i = 0; i < m && !rc; i++) {
        cask_value_t r = cask_list_item(&args[0], i);
        cask_value_t p = cask_list_item(&r, 0), c = cask_list_item(&r, 1);
        const char *path = cask_value_str(&p, NULL);
        if (r.type != CASK_LIST || cask_list_len(&r) != 2 || !path)
            rc = cask_kernel_fail(ctx, "record %zu is not a list [path, contents]", i);
        else
            rc = write_whole(ctx, path, &c, 1, false);
    }
    if (!rc)
        *out = cask_int((int64_t)m);
    return rc;
}

/* The stamp of a task that calls the kernel named by its second argument. */
static int stamp_arg1(const cask_value_t *args, size_t n, uint64_t h[2])
{
    return cask__kernel_stamp_named(n > 1 ? cask_value_str(&args[1], NULL) : NULL, h);
}

/* foldby's key and binop are its second and third arguments. */
static int stamp_foldby(const cask_value_t *args, size_t n, uint64_t h[2])
{
    if (stamp_arg1(args, n, h))
        return -1;
    return cask__kernel_stamp_named(n > 2 ? cask_value_str(&args[2], NULL) : NULL, h);
}

/* topk's key, when it has one, is its third argument. */
static int stamp_topk(const cask_value_t *args, size_t n, uint64_t h[2])
{
    const char *key = n > 2 ? cask_value_str(&args[2], NULL) : NULL;
    return key ? cask__kernel_stamp_named(key, h) : 0;
}

void cask__bag_register(void)
{
    static const struct {
        const char *name;
        cask_kernel_fn fn;
        unsigned flags;
        int (*stamp)(const cask_value_t *args, size_t n, uint64_t h[2]);
    } k[] = {
        { "cask.bag.map", k_map, 0, stamp_arg1 },
        { "cask.bag.filter", k_filter, 0, stamp_arg1 },
        { "cask.bag.mapp", k_mapp, 0, stamp_arg1 },
        { "cask.bag.apply", k_apply, 0, stamp_arg1 },
        { "cask.bag.agg", k_agg, 0, stamp_arg1 },
        { "cask.bag.flatten", k_flatten, 0, NULL },
        { "cask.bag.pluck", k_pluck, 0, NULL },
        { "cask.bag.fold", k_fold, 0, stamp_arg1 },
        { "cask.bag.foldc", k_foldc, 0, stamp_arg1 },
        { "cask.bag.stat", k_stat, 0, NULL },
        { "cask.bag.statc", k_statc, 0, NULL },
        { "cask.bag.freq", k_freq, 0, NULL },
        { "cask.bag.freqc", k_freqc, 0, NULL },
        { "cask.bag.distinct", k_distinct, 0, NULL },
        { "cask.bag.distinctc", k_distinctc, 0, NULL },
        { "cask.bag.topk", k_topk, 0, stamp_topk },
        { "cask.bag.topkc", k_topkc, 0, stamp_topk },
        { "cask.bag.split", k_split, 0, stamp_arg1 },
        { "cask.bag.gather", k_gather, 0, NULL },
        { "cask.bag.foldby", k_foldby, 0, stamp_foldby },
        { "cask.bag.foldbyc", k_foldbyc, 0, stamp_arg1 },
        { "cask.bag.slice", k_slice, 0, NULL },
        { "cask.bag.pack", k_pack, 0, NULL },
        { "cask.bag.totext", k_totext, CASK_KERNEL_IMPURE, NULL },
        { "cask.bag.writef", k_writef, CASK_KERNEL_IMPURE, NULL },
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        cask_kernel_opts_t o = { .flags = k[i].flags };
        cask__kernel_register(k[i].name, k[i].fn, &o, NULL);
        if (k[i].stamp)
            cask__kernel_set_stamp(k[i].name, k[i].stamp);
    }
    cask__bag_register_read();
}

/* tests/unit/test_bag.c: bags. Random JSON-lines records, cut at random
** block sizes, go through every operation on every local back-end; the
** results are written beside the input and tests/bag_check.py recomputes
** each with plain Python from the input alone. Text partitioning is also
** checked here against a whole-file split; errors, take's laziness and
** writing are checked directly. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

/* ------------------------------------------------------------ the kernels */

static int k_double(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    if (n < 1 || !cask_value_is_number(&a[0]))
        return cask_kernel_fail(ctx, "double takes a number");
    *out = a[0].type == CASK_INT64 ? cask_int(2 * a[0].u.i) : cask_double(2 * a[0].u.d);
    return 0;
}

/* field k of a JSON record */
static int k_key(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    cask_error_t e;
    if (n < 1 || cask_bag_json_get(&a[0], "k", out, &e))
        return cask_kernel_fail(ctx, "key: %s", n ? e.message : "no record");
    return 0;
}

static int k_keven(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    cask_value_t k;
    int rc = k_key(a, n, &k, ctx);
    if (!rc)
        *out = cask_int(k.u.i % 2 == 0);
    return rc;
}

static int k_len(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    size_t len;
    if (n < 1 || !cask_value_str(&a[0], &len))
        return cask_kernel_fail(ctx, "len takes a string");
    *out = cask_int((int64_t)len);
    return 0;
}

static int k_add(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    if (n != 2 || a[0].type != CASK_INT64 || a[1].type != CASK_INT64)
        return cask_kernel_fail(ctx, "add takes two ints");
    *out = cask_int(a[0].u.i + a[1].u.i);
    return 0;
}

static int k_listlen(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    if (n != 1 || a[0].type != CASK_LIST)
        return cask_kernel_fail(ctx, "listlen takes a list");
    *out = cask_int((int64_t)cask_list_len(&a[0]));
    return 0;
}

static int k_listsum(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    if (n != 1 || a[0].type != CASK_LIST)
        return cask_kernel_fail(ctx, "listsum takes a list");
    int64_t s = 0;
    for (size_t i = 0; i < cask_list_len(&a[0]); i++)
        s += cask_list_item(&a[0], i).u.i;
    *out = cask_int(s);
    return 0;
}

static atomic_long counted;

static int k_counted(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    (void)ctx;
    atomic_fetch_add(&counted, 1);
    *out = n ? a[0] : cask_none();
    cask_value_incref(out);
    return 0;
}

static int k_opaque(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    (void)a, (void)n, (void)ctx;
    static int x;
    return cask_value_opaque(&x, NULL, out, NULL);
}

/* [i, i * i] for a number i */
static int k_pair(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    if (n < 1 || a[0].type != CASK_INT64)
        return cask_kernel_fail(ctx, "pair takes an int");
    cask_value_t p[2] = { a[0], cask_int(a[0].u.i * a[0].u.i) };
    return cask_value_list(p, 2, out, NULL);
}

/* acc + 1 */
static int k_inc(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    if (n != 2 || a[0].type != CASK_INT64)
        return cask_kernel_fail(ctx, "inc takes an int and a record");
    *out = cask_int(a[0].u.i + 1);
    return 0;
}

/* Of two JSON records, the one with the greater v (the first on a tie). */
static int k_maxv(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    cask_value_t x, y;
    cask_error_t e;
    if (n != 2 || cask_bag_json_get(&a[0], "v", &x, &e) || cask_bag_json_get(&a[1], "v", &y, &e))
        return cask_kernel_fail(ctx, "maxv takes two records");
    return cask_value_copy(&a[cask_value_double(&y) > cask_value_double(&x)], out, NULL);
}

/* x % 1000 of an int x */
static int k_mod(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    if (n != 1 || a[0].type != CASK_INT64)
        return cask_kernel_fail(ctx, "mod takes an int");
    *out = cask_int(a[0].u.i % 1000);
    return 0;
}

/* sleeps a millisecond, gives its record */
static int k_nap(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    (void)ctx;
    struct timespec ts = { 0, 1000000 };
    nanosleep(&ts, NULL);
    *out = n ? a[0] : cask_none();
    cask_value_incref(out);
    return 0;
}

static int setup(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        cask_kernel_fn fn;
    } k[] = {
        { "test.bag.double", k_double }, { "test.bag.key", k_key },
        { "test.bag.keven", k_keven },   { "test.bag.len", k_len },
        { "test.bag.add", k_add },       { "test.bag.listlen", k_listlen },
        { "test.bag.listsum", k_listsum }, { "test.bag.counted", k_counted },
        { "test.bag.opaque", k_opaque }, { "test.bag.pair", k_pair },
        { "test.bag.inc", k_inc },       { "test.bag.maxv", k_maxv },
        { "test.bag.mod", k_mod },       { "test.bag.nap", k_nap },
    };
    cask_error_t err;
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
        if (cask_kernel_register(k[i].name, k[i].fn, NULL, &err))
            return -1;
    return 0;
}

/* ------------------------------------------------------------- helpers */

static char dir[64];

static void make_dir(void)
{
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/cask-bag-XXXXXX");
        assert_non_null(mkdtemp(dir));
    }
}

static void write_file(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static uint64_t rng;

static uint32_t rnd(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

static const char *const words[] = { "a", "bb", "ccc", "dd", "eeeee", "f", "gg", "hhh",
                                     "ii", "jjjjjj", "k", "ll", "mmm", "nn", "o\"q",
                                     "p\\r", "ü", "sss", "tt", "" };
#define N_WORDS (sizeof words / sizeof *words)

/* A JSON-lines file of n random records {"k","v","s","t"} with blank
** lines, CRLF ends and no final newline at random. */
static void random_jsonl(const char *path, int n)
{
    json_t *list = json_array();
    size_t cap = 1 << 16, len = 0;
    char *text = malloc(cap);
    for (int i = 0; i < n; i++) {
        json_t *t = json_array();
        for (uint32_t j = 0, m = rnd() % 4; j < m; j++)
            json_array_append_new(t, json_string(words[rnd() % N_WORDS]));
        json_t *o = json_pack("{s:i,s:o,s:s,s:o}", "k", (int)(rnd() % 10), "v",
                              rnd() % 3 ? json_integer((int)(rnd() % 2001) - 1000)
                                        : json_real((double)(rnd() % 100000) / 7.0 - 5000),
                              "s", words[rnd() % N_WORDS], "t", t);
        char *s = json_dumps(o, JSON_COMPACT);
        size_t need = strlen(s) + 8;
        if (len + need > cap)
            text = realloc(text, cap = 2 * cap + need);
        len += (size_t)sprintf(text + len, "%s%s%s", s, rnd() % 5 ? "" : "\r",
                               i == n - 1 && rnd() % 2 ? "" : "\n");
        if (rnd() % 9 == 0 && i != n - 1)
            len += (size_t)sprintf(text + len, "%s\n", rnd() % 2 ? "" : "  ");
        free(s);
        json_decref(o);
    }
    write_file(path, text, len);
    free(text);
    json_decref(list);
}

/* v as JSON, put under name in o. */
static void put(json_t *o, const char *name, const cask_value_t *v)
{
    char *s = cask_value_to_json(v);
    assert_non_null(s);
    json_error_t je;
    json_t *j = json_loads(s, JSON_DECODE_ANY, &je);
    assert_non_null(j);
    json_object_set_new(o, name, j);
    free(s);
}

static void put_task(json_t *o, const char *name, cask_graph_t *g, cask_task_t t,
                     const cask_compute_opts_t *opts)
{
    cask_error_t err;
    cask_value_t v;
    assert_int_not_equal(t, CASK_NO_TASK);
    assert_ok(cask_compute(g, &t, 1, opts, &v, NULL, &err), &err);
    put(o, name, &v);
    cask_value_decref(&v);
}

static void put_bag(json_t *o, const char *name, cask_bag_t *b, const cask_compute_opts_t *opts)
{
    cask_error_t err;
    cask_value_t v;
    assert_non_null(b);
    assert_ok(cask_bag_compute(b, opts, &v, &err), &err);
    put(o, name, &v);
    cask_value_decref(&v);
    cask_bag_decref(b);
}

/* ------------------------------------------------- against plain Python */

static void test_against_python(void **state)
{
    (void)state;
    make_dir();
    cask_error_t err;
    int cases = 0;
    for (unsigned seed = 1; seed <= 4; seed++)
        for (size_t s = 0; s < N_TEST_SCHEDS; s++) {
            rng = 0x9e3779b97f4a7c15ull * (seed * 7 + s);
            char in[128], out[128], pattern[160], text[128];
            snprintf(in, sizeof in, "%s/in-%u-%zu.jsonl", dir, seed, s);
            snprintf(out, sizeof out, "%s/out-%u-%zu.json", dir, seed, s);
            snprintf(text, sizeof text, "%s/text-%u-%zu", dir, seed, s);
            int n = seed == 1 ? 0 : (int)(rnd() % 400);
            random_jsonl(in, n);
            size_t block = seed == 1 ? 0 : 1 + rnd() % 2000;
            cask_compute_opts_t opts = { .scheduler = test_scheds[s], .workers = 2 };

            cask_graph_t *g = cask_graph_new(&err);
            const char *paths[] = { in };
            cask_bag_t *recs = cask_bag_read_jsonl(g, paths, 1, block, 0, &err);
            assert_non_null(recs);
            cask_bag_t *k = cask_bag_pluck(recs, "k", &err), *v = cask_bag_pluck(recs, "v", &err);
            cask_bag_t *sw = cask_bag_pluck(recs, "s", &err);
            json_t *o = json_object();
            json_object_set_new(o, "input", json_string(in));
            json_object_set_new(o, "npartitions", json_integer((json_int_t)cask_bag_npartitions(recs)));
            put_bag(o, "records", (cask_bag_incref(recs), recs), &opts);
            put_bag(o, "k", (cask_bag_incref(k), k), &opts);
            put_task(o, "count", g, cask_bag_count(recs, &err), &opts);
            put_task(o, "sum_v", g, cask_bag_sum(v, &err), &opts);
            put_task(o, "sum_k", g, cask_bag_sum(k, &err), &opts);
            if (n) {
                put_task(o, "min_v", g, cask_bag_min(v, &err), &opts);
                put_task(o, "max_s", g, cask_bag_max(sw, &err), &opts);
                put_task(o, "mean_v", g, cask_bag_mean(v, &err), &opts);
                put_task(o, "fold_k", g, cask_bag_fold(k, "test.bag.add", NULL, NULL, 3, &err),
                         &opts);
            }
            cask_value_t hundred = cask_int(100);
            put_task(o, "fold_k_100", g,
                     cask_bag_fold(k, "test.bag.add", NULL, &hundred, 2, &err), &opts);
            put_task(o, "reduction_count", g,
                     cask_bag_reduction(recs, "test.bag.listlen", "test.bag.listsum", 2, &err),
                     &opts);
            put_bag(o, "freq_s", cask_bag_frequencies(sw, true, &err), &opts);
            put_bag(o, "freq_k", cask_bag_frequencies(k, false, &err), &opts);
            put_bag(o, "distinct_s", cask_bag_distinct(sw, &err), &opts);
            put_bag(o, "top5_v", cask_bag_topk(v, 5, NULL, &err), &opts);
            put_bag(o, "top3_len_s", cask_bag_topk(sw, 3, "test.bag.len", &err), &opts);
            put_bag(o, "map_double_v", cask_bag_map(v, "test.bag.double", NULL, 0, &err), &opts);
            put_bag(o, "filter_even", cask_bag_filter(recs, "test.bag.keven", NULL, 0, &err),
                    &opts);
            cask_bag_t *t = cask_bag_pluck(recs, "t", &err);
            put_bag(o, "flat_t", cask_bag_flatten(t, &err), &opts);
            cask_bag_decref(t);
            put_bag(o, "groupby_k", cask_bag_groupby(recs, "test.bag.key", 1 + seed % 3, &err),
                    &opts);
            cask_value_t zero = cask_int(0);
            put_bag(o, "foldby_count",
                    cask_bag_foldby(recs, "test.bag.key", "test.bag.inc", &zero, "test.bag.add",
                                    &zero, 2, &err),
                    &opts);
            put_bag(o, "foldby_maxv",
                    cask_bag_foldby(recs, "test.bag.key", "test.bag.maxv", NULL, NULL, NULL, 3,
                                    &err),
                    &opts);
            put_bag(o, "repart_3", cask_bag_repartition(recs, 3, &err), &opts);
            put_bag(o, "repart_more",
                    cask_bag_repartition(recs, 2 * cask_bag_npartitions(recs) + 1, &err), &opts);
            cask_value_t first;
            assert_ok(cask_bag_take(recs, 7, &opts, &first, &err), &err);
            put(o, "take_7", &first);
            cask_value_decref(&first);
            assert_int_equal(mkdir(text, 0700), 0);
            snprintf(pattern, sizeof pattern, "%s/part-*.txt", text);
            put_task(o, "text_files", g, cask_bag_to_textfiles(sw, pattern, &err), &opts);
            cask_bag_decref(k);
            cask_bag_decref(v);
            cask_bag_decref(sw);
            cask_bag_decref(recs);
            cask_graph_decref(g);
            assert_int_equal(json_dump_file(o, out, JSON_COMPACT), 0);
            json_decref(o);
            cases++;
        }
    char cmd[256];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/bag_check.py %s", dir);
    int rc = system(cmd);
    assert_int_equal(rc, 0);
    (void)cases;
}

/* ------------------------------------------------------- text partitioning */

/* Lines of text[0..len) as the header says: split at '\n', a final empty
** piece dropped, a '\r' before the '\n' dropped. */
static size_t ref_lines(const char *text, size_t len, char **lines, size_t cap)
{
    size_t n = 0, start = 0;
    for (size_t i = 0; i <= len; i++)
        if (i == len || text[i] == '\n') {
            if (i == len && start == len)
                break;
            size_t e = i;
            if (e > start && text[e - 1] == '\r' && i < len)
                e--;
            assert_true(n < cap);
            lines[n] = strndup(text + start, e - start);
            n++;
            start = i + 1;
        }
    return n;
}

static void test_text_blocks(void **state)
{
    (void)state;
    make_dir();
    cask_error_t err;
    rng = 12345;
    for (int round = 0; round < 60; round++) {
        size_t len = 0, cap = 60 * 302; /* lines of at most 299 + "\r\n" */
        char *text = malloc(cap);
        int nl = round == 0 ? 0 : (int)(rnd() % 60);
        for (int i = 0; i < nl; i++) {
            size_t l = rnd() % 5 == 0 ? rnd() % 300 : rnd() % 12; /* some longer than a block */
            for (size_t j = 0; j < l; j++)
                text[len++] = (char)('a' + rnd() % 26);
            if (rnd() % 6 == 0)
                text[len++] = '\r';
            if (i < nl - 1 || rnd() % 2)
                text[len++] = '\n';
        }
        char path[128];
        snprintf(path, sizeof path, "%s/lines-%d.txt", dir, round);
        write_file(path, text, len);
        char *want[2048];
        size_t nw = ref_lines(text, len, want, 2048);
        size_t block = round % 7 == 0 ? 0 : 1 + rnd() % 64;
        cask_graph_t *g = cask_graph_new(&err);
        const char *paths[] = { path, path };
        cask_bag_t *b = cask_bag_read_text(g, paths, 2, block, &err);
        assert_non_null(b);
        cask_value_t got;
        const char *sched = test_scheds[round % N_TEST_SCHEDS];
        cask_compute_opts_t opts = { .scheduler = sched, .workers = 2 };
        assert_ok(cask_bag_compute(b, &opts, &got, &err), &err);
        assert_int_equal(cask_list_len(&got), 2 * nw);
        for (size_t i = 0; i < 2 * nw; i++) {
            cask_value_t it = cask_list_item(&got, i);
            size_t l;
            const char *s = cask_value_str(&it, &l);
            assert_non_null(s);
            if (l != strlen(want[i % nw]) || memcmp(s, want[i % nw], l))
                fail_msg("round %d block %zu line %zu: '%.*s' != '%s'", round, block, i, (int)l,
                         s, want[i % nw]);
        }
        cask_value_decref(&got);
        for (size_t i = 0; i < nw; i++)
            free(want[i]);
        cask_bag_decref(b);
        cask_graph_decref(g);
        free(text);
    }
}

/* ------------------------------------------------------------------ errors */

static void test_bad_json_and_changed_files(void **state)
{
    (void)state;
    make_dir();
    cask_error_t err;
    char path[128];
    snprintf(path, sizeof path, "%s/bad.jsonl", dir);
    const char *text = "{\"a\": 1}\n\n[1, 2]\n{\"a\": 2,}\n\"x\"\n";
    write_file(path, text, strlen(text));
    const char *paths[] = { path };
    cask_graph_t *g = cask_graph_new(&err);
    cask_bag_t *b = cask_bag_read_jsonl(g, paths, 1, 5, 0, &err);
    cask_value_t v;
    int rc = cask_bag_compute(b, NULL, &v, &err);
    assert_int_equal(rc, CASK_EPARSE);
    assert_msg_has(&err, "bad.jsonl' line 4");
    cask_bag_decref(b);
    b = cask_bag_read_jsonl(g, paths, 1, 5, CASK_BAG_SKIP_BAD, &err); /* same blocks */
    assert_ok(cask_bag_compute(b, NULL, &v, &err), &err);
    assert_int_equal(cask_list_len(&v), 3);
    cask_value_t item = cask_list_item(&v, 0);
    assert_string_equal(cask_value_str(&item, NULL), "{\"a\":1}");
    item = cask_list_item(&v, 1);
    assert_int_equal(cask_list_len(&item), 2);
    item = cask_list_item(&v, 2);
    assert_string_equal(cask_value_str(&item, NULL), "x");
    cask_value_decref(&v);
    /* the file cut short after the bag was made */
    assert_int_equal(truncate(path, 10), 0);
    rc = cask_bag_compute(b, NULL, &v, &err);
    assert_int_equal(rc, CASK_EIO);
    assert_msg_has(&err, "not the 31 it was when the bag was made");
    cask_bag_decref(b);
    /* a missing file is refused at once */
    const char *missing[] = { "/nonexistent/x.txt" };
    assert_null(cask_bag_read_text(g, missing, 1, 0, &err));
    assert_int_equal(err.code, CASK_EIO);
    assert_msg_has(&err, "/nonexistent/x.txt");
    char pat[160];
    snprintf(pat, sizeof pat, "%s/nothing-*.none", dir);
    assert_null(cask_bag_from_glob(g, pat, 0, 0, &err));
    assert_int_equal(err.code, CASK_EIO);
    cask_graph_decref(g);
}

static void test_errors(void **state)
{
    (void)state;
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    cask_value_t items[3] = { cask_int(1), cask_int(2), cask_int(INT64_MAX) };
    cask_bag_t *b = cask_bag_from_values(g, items, 3, 2, &err);
    assert_non_null(b);
    /* NULL flows through; unknown kernels are refused when added */
    assert_null(cask_bag_map(NULL, "test.bag.double", NULL, 0, &err));
    assert_int_equal(err.code, CASK_EINVAL);
    assert_null(cask_bag_map(b, "no.such", NULL, 0, &err));
    assert_int_equal(err.code, CASK_ENOKERNEL);
    assert_int_equal(cask_bag_count(NULL, &err), CASK_NO_TASK);
    assert_int_equal(cask_bag_fold(b, "test.bag.add", "no.such", NULL, 0, &err), CASK_NO_TASK);
    assert_int_equal(err.code, CASK_ENOKERNEL);
    cask_value_t ref = cask_ref(cask_bag_partition(b, 0));
    assert_null(cask_bag_map(b, "test.bag.double", &ref, 1, &err));
    assert_int_equal(err.code, CASK_EINVAL);
    assert_null(cask_bag_from_values(g, &ref, 1, 0, &err));
    assert_int_equal(err.code, CASK_EINVAL);
    cask_value_t bad = cask_ref(CASK_NO_TASK);
    assert_null(cask_bag_from_values(g, &bad, 1, 0, &err));
    assert_int_equal(err.code, CASK_EINVAL);
    const char *p1[] = { "/etc/hostname" };
    assert_null(cask_bag_read_text(g, p1, 1, (size_t)INT64_MAX + 1, &err));
    assert_int_equal(err.code, CASK_EINVAL);
    assert_null(cask_bag_repartition(b, 0, &err));
    assert_int_equal(cask_bag_to_textfiles(b, "/tmp/no-star", &err), CASK_NO_TASK);
    assert_msg_has(&err, "exactly one '*'");
    /* what fails when it runs */
    cask_value_t v;
    cask_task_t sum = cask_bag_sum(b, &err);
    assert_int_equal(cask_compute_one(g, sum, &v, &err), CASK_EKERNEL);
    assert_msg_has(&err, "overflows");
    cask_bag_t *op = cask_bag_map(b, "test.bag.opaque", NULL, 0, &err);
    assert_int_not_equal(cask_bag_compute(op, NULL, &v, &err), 0);
    assert_msg_has(&err, "opaque");
    cask_bag_decref(op);
    cask_bag_t *none = cask_bag_from_values(g, NULL, 0, 0, &err);
    assert_int_equal(cask_bag_npartitions(none), 1);
    assert_int_equal(cask_compute_one(g, cask_bag_mean(none, &err), &v, &err), CASK_EKERNEL);
    assert_msg_has(&err, "mean of no record");
    assert_int_equal(cask_compute_one(g, cask_bag_max(none, &err), &v, &err), CASK_EKERNEL);
    assert_int_equal(
        cask_compute_one(g, cask_bag_fold(none, "test.bag.add", NULL, NULL, 0, &err), &v, &err),
        CASK_EKERNEL);
    assert_msg_has(&err, "no initial value");
    assert_ok(cask_compute_one(g, cask_bag_count(none, &err), &v, &err), &err);
    assert_int_equal(v.u.i, 0);
    cask_value_t wv[2];
    cask_value_string("x", 1, &wv[0], &err);
    wv[1] = cask_int(3);
    cask_bag_t *mixed = cask_bag_from_values(g, wv, 2, 1, &err);
    cask_value_decref(&wv[0]);
    assert_int_equal(cask_compute_one(g, cask_bag_min(mixed, &err), &v, &err), CASK_EKERNEL);
    assert_msg_has(&err, "cannot be compared");
    /* a record that is no string leaves no file behind */
    char path[128], pattern[160];
    make_dir();
    snprintf(pattern, sizeof pattern, "%s/mixed-*.txt", dir);
    snprintf(path, sizeof path, "%s/mixed-0.txt", dir);
    assert_int_not_equal(cask_compute_one(g, cask_bag_to_textfiles(mixed, pattern, &err), &v,
                                          &err), 0);
    assert_msg_has(&err, "record 1 is a int64");
    assert_int_not_equal(access(path, F_OK), 0);
    char leftover[200];
    snprintf(leftover, sizeof leftover, "ls %s/mixed-0.txt.* 2>/dev/null | grep -q .", dir);
    assert_int_not_equal(system(leftover), 0); /* nor its temporary file */
    cask_bag_decref(mixed);
    cask_bag_decref(none);
    cask_bag_decref(b);
    cask_graph_decref(g);
}

/* foldby: more keys than a table's first size, combine_initial, errors. */
static void test_foldby(void **state)
{
    (void)state;
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    enum { N = 10000 };
    cask_value_t *items = malloc(N * sizeof *items);
    for (int i = 0; i < N; i++)
        items[i] = cask_int(i);
    cask_bag_t *b = cask_bag_from_values(g, items, N, 7, &err);
    free(items);
    cask_value_t zero = cask_int(0), thousand = cask_int(1000), v;
    for (size_t s = 0; s < N_TEST_SCHEDS; s++) {
        cask_compute_opts_t opts = { .scheduler = test_scheds[s], .workers = 2 };
        /* sums by x % 1000: key j holds j, j + 1000, ..., j + 9000 */
        cask_bag_t *f = cask_bag_foldby(b, "test.bag.mod", "test.bag.add", NULL, NULL, NULL, 2,
                                        &err);
        assert_ok(cask_bag_compute(f, &opts, &v, &err), &err);
        assert_int_equal(cask_list_len(&v), 1000);
        for (int j = 0; j < 1000; j++) {
            cask_value_t p = cask_list_item(&v, (size_t)j);
            assert_int_equal(cask_list_item(&p, 0).u.i, j); /* first-seen order */
            assert_int_equal(cask_list_item(&p, 1).u.i, 10 * j + 45000);
        }
        cask_value_decref(&v);
        cask_bag_decref(f);
    }
    /* one level of the tree: combine_initial is used once per key */
    cask_bag_t *f = cask_bag_foldby(b, "test.bag.mod", "test.bag.inc", &zero, "test.bag.add",
                                    &thousand, 0, &err);
    assert_ok(cask_bag_compute(f, NULL, &v, &err), &err);
    for (int j = 0; j < 1000; j++) {
        cask_value_t p = cask_list_item(&v, (size_t)j);
        assert_int_equal(cask_list_item(&p, 1).u.i, 1010);
    }
    cask_value_decref(&v);
    cask_bag_decref(f);
    /* as Dask's: combine_initial at each node of the tree, here 4 + 2 + 1 nodes
    ** over the 7 partitions, each of which holds every key */
    f = cask_bag_foldby(b, "test.bag.mod", "test.bag.inc", &zero, "test.bag.add", &thousand, 2,
                        &err);
    assert_ok(cask_bag_compute(f, NULL, &v, &err), &err);
    for (int j = 0; j < 1000; j++) {
        cask_value_t p = cask_list_item(&v, (size_t)j);
        assert_int_equal(cask_list_item(&p, 1).u.i, 7010);
    }
    cask_value_decref(&v);
    cask_bag_decref(f);
    /* errors when added: NULL bag, unknown kernels, an initial that is not a literal */
    assert_null(cask_bag_foldby(NULL, "test.bag.mod", "test.bag.add", NULL, NULL, NULL, 0, &err));
    assert_int_equal(err.code, CASK_EINVAL);
    assert_null(cask_bag_foldby(b, "no.such", "test.bag.add", NULL, NULL, NULL, 0, &err));
    assert_int_equal(err.code, CASK_ENOKERNEL);
    assert_null(cask_bag_foldby(b, "test.bag.mod", "test.bag.add", NULL, "no.such", NULL, 0,
                                &err));
    assert_int_equal(err.code, CASK_ENOKERNEL);
    cask_value_t ref = cask_ref(cask_bag_partition(b, 0));
    assert_null(cask_bag_foldby(b, "test.bag.mod", "test.bag.add", &ref, NULL, NULL, 0, &err));
    assert_int_equal(err.code, CASK_EINVAL);
    assert_null(cask_bag_foldby(b, "test.bag.mod", "test.bag.add", NULL, NULL, &ref, 0, &err));
    assert_int_equal(err.code, CASK_EINVAL);
    assert_null(cask_bag_foldby(b, "test.bag.mod", "test.bag.add", NULL, NULL, NULL, 1, &err));
    assert_msg_has(&err, "split_every");
    /* errors when run: an opaque key, an opaque accumulator */
    f = cask_bag_foldby(b, "test.bag.opaque", "test.bag.add", NULL, NULL, NULL, 0, &err);
    assert_int_equal(cask_bag_compute(f, NULL, &v, &err), CASK_EKERNEL);
    assert_msg_has(&err, "a key must be");
    cask_bag_decref(f);
    f = cask_bag_foldby(b, "test.bag.mod", "test.bag.opaque", NULL, NULL, NULL, 0, &err);
    assert_int_equal(cask_bag_compute(f, NULL, &v, &err), CASK_EKERNEL);
    assert_msg_has(&err, "partial result cannot hold");
    cask_bag_decref(f);
    cask_bag_decref(b);
    cask_graph_decref(g);
}

/* The partition rule, and its figures measured from a traced compute. */
static void test_partition_rule(void **state)
{
    (void)state;
    /* without figures: ceil(n / (4 w)) items a partition */
    assert_int_equal(cask_bag_choose_npartitions(100, 2, NULL), 8);   /* 13 a partition */
    assert_int_equal(cask_bag_choose_npartitions(7, 2, NULL), 7);
    assert_int_equal(cask_bag_choose_npartitions(0, 2, NULL), 1);
    cask_bag_timing_t t = { .item_s = 1e-3, .task_s = 1e-5 };
    /* sqrt(2 * 10000 * 1e-5 / (2 * 1e-3)) = 10 a partition */
    assert_int_equal(cask_bag_choose_npartitions(10000, 2, &t), 1000);
    t.task_s = 0; /* no overhead: one item a partition */
    assert_int_equal(cask_bag_choose_npartitions(50, 2, &t), 50);
    t.task_s = 10; /* overhead above all: a partition for each worker */
    assert_int_equal(cask_bag_choose_npartitions(10, 4, &t), 4);     /* 3 a partition */
    t.item_s = NAN;
    assert_int_equal(cask_bag_choose_npartitions(100, 2, &t), 8);
    t = (cask_bag_timing_t){ .item_s = 1e-3, .task_s = -1 };
    assert_int_equal(cask_bag_choose_npartitions(100, 2, &t), 8);

    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    cask_value_t items[40];
    for (int i = 0; i < 40; i++)
        items[i] = cask_int(i);
    cask_bag_t *b = cask_bag_from_values(g, items, 40, 8, &err);
    cask_bag_t *naps = cask_bag_map(b, "test.bag.nap", NULL, 0, &err);
    cask_bag_t *odd = cask_bag_filter(naps, "test.bag.keven", NULL, 0, &err);
    cask_task_t n = cask_bag_count(naps, &err);
    for (size_t s = 0; s < N_TEST_SCHEDS; s++) {
        cask_compute_opts_t o = { .scheduler = test_scheds[s], .workers = 2,
                                  .flags = CASK_TRACE };
        cask_compute_info_t info;
        cask_value_t v;
        assert_ok(cask_compute(g, &n, 1, &o, &v, &info, &err), &err);
        assert_int_equal(v.u.i, 40);
        cask_bag_timing_t m;
        assert_ok(cask_bag_timing(naps, info.trace, &m, &err), &err);
        /* 40 naps of at least 1 ms over 40 records (the VM may be slow) */
        assert_true(m.item_s >= 0.9e-3 && m.item_s < 50e-3);
        assert_true(m.task_s >= 0 && m.task_s < m.item_s * 40);
        assert_ok(cask_bag_timing(b, info.trace, &m, &err), &err); /* its source too */
        assert_int_equal(cask_bag_timing(odd, info.trace, &m, &err), CASK_EINVAL);
        assert_msg_has(&err, "not known");
        cask_trace_free(info.trace);
    }
    /* a trace without the bag's partitions */
    cask_bag_t *other = cask_bag_from_values(g, items, 10, 2, &err);
    cask_task_t c = cask_bag_count(other, &err);
    cask_compute_opts_t o = { .scheduler = "sync", .flags = CASK_TRACE };
    cask_compute_info_t info;
    cask_value_t v;
    assert_ok(cask_compute(g, &c, 1, &o, &v, &info, &err), &err);
    cask_bag_timing_t m;
    assert_int_equal(cask_bag_timing(naps, info.trace, &m, &err), CASK_EINVAL);
    assert_msg_has(&err, "ran 0 of the bag's 8 partitions");
    assert_int_equal(cask_bag_timing(naps, NULL, &m, &err), CASK_EINVAL);
    cask_trace_free(info.trace);
    /* one task: no gap measures the overhead */
    cask_bag_t *one = cask_bag_from_values(g, items, 3, 1, &err);
    c = cask_bag_partition(one, 0);
    assert_ok(cask_compute(g, &c, 1, &o, &v, &info, &err), &err);
    cask_value_decref(&v);
    assert_int_equal(cask_bag_timing(one, info.trace, &m, &err), CASK_EINVAL);
    assert_msg_has(&err, "two tasks in a row");
    cask_bag_decref(one);
    assert_int_equal(cask_bag_timing(NULL, info.trace, &m, &err), CASK_EINVAL);
    cask_trace_free(info.trace);
    cask_bag_decref(other);
    cask_bag_decref(odd);
    cask_bag_decref(naps);
    cask_bag_decref(b);
    cask_graph_decref(g);
}

/* Operations that differ only in a count are different tasks. */
static void test_distinct_keys(void **state)
{
    (void)state;
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    cask_value_t items[6];
    for (int i = 0; i < 6; i++)
        items[i] = cask_int(i);
    cask_bag_t *b2 = cask_bag_from_values(g, items, 6, 2, &err);
    cask_bag_t *b3 = cask_bag_from_values(g, items, 6, 3, &err);
    cask_value_t v;
    assert_ok(cask_bag_compute(b3, NULL, &v, &err), &err);
    assert_int_equal(cask_list_len(&v), 6);
    for (int i = 0; i < 6; i++)
        assert_int_equal(cask_list_item(&v, (size_t)i).u.i, i);
    cask_value_decref(&v);
    /* trees of 2 and of 4 inputs a task over the same 6 partitions */
    cask_bag_t *b6 = cask_bag_from_values(g, items, 6, 6, &err);
    for (size_t se = 2; se <= 5; se++) {
        cask_task_t t = cask_bag_reduction(b6, "test.bag.listlen", "test.bag.listsum", se, &err);
        assert_ok(cask_compute_one(g, t, &v, &err), &err);
        assert_int_equal(v.u.i, 6);
        t = cask_bag_fold(b6, "test.bag.add", NULL, NULL, se, &err);
        assert_ok(cask_compute_one(g, t, &v, &err), &err);
        assert_int_equal(v.u.i, 15);
    }
    cask_task_t t = cask_bag_fold(b6, "test.bag.add", NULL, NULL, SIZE_MAX, &err);
    assert_ok(cask_compute_one(g, t, &v, &err), &err);
    assert_int_equal(v.u.i, 15);
    cask_bag_decref(b2);
    cask_bag_decref(b3);
    cask_bag_decref(b6);
    cask_graph_decref(g);
}

/* A block inside one long line owns nothing and a FIFO is refused. */
static void test_long_line_and_fifo(void **state)
{
    (void)state;
    make_dir();
    cask_error_t err;
    char path[128], fifo[128];
    snprintf(path, sizeof path, "%s/long.txt", dir);
    char *text = malloc(100001);
    memset(text, 'x', 100000);
    text[100000] = '\n';
    write_file(path, text, 100001);
    free(text);
    cask_graph_t *g = cask_graph_new(&err);
    const char *paths[] = { path };
    cask_bag_t *b = cask_bag_read_text(g, paths, 1, 1000, &err);
    assert_int_equal(cask_bag_npartitions(b), 101);
    cask_value_t v;
    assert_ok(cask_compute_one(g, cask_bag_partition(b, 7), &v, &err), &err);
    assert_int_equal(cask_list_len(&v), 0);
    cask_value_decref(&v);
    assert_ok(cask_bag_compute(b, NULL, &v, &err), &err);
    assert_int_equal(cask_list_len(&v), 1);
    cask_value_decref(&v);
    cask_bag_decref(b);
    snprintf(fifo, sizeof fifo, "%s/fifo", dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    const char *fp[] = { fifo };
    b = cask_bag_from_files(g, fp, 1, CASK_BAG_CONTENTS, 0, &err);
    assert_int_equal(cask_bag_compute(b, NULL, &v, &err), CASK_EIO);
    assert_msg_has(&err, "not a regular file");
    cask_bag_decref(b);
    cask_graph_decref(g);
}

/* take computes only the partitions it needs. */
static void test_take_is_lazy(void **state)
{
    (void)state;
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    cask_value_t items[100];
    for (int i = 0; i < 100; i++)
        items[i] = cask_int(i);
    cask_bag_t *b = cask_bag_from_values(g, items, 100, 10, &err);
    cask_bag_t *c = cask_bag_map(b, "test.bag.counted", NULL, 0, &err);
    for (size_t s = 0; s < N_TEST_SCHEDS; s++) {
        if (!strcmp(test_scheds[s], "processes"))
            continue; /* the calls are counted in this process */
        cask_compute_opts_t opts = { .scheduler = test_scheds[s] };
        cask_value_t v;
        atomic_store(&counted, 0);
        assert_ok(cask_bag_take(c, 3, &opts, &v, &err), &err);
        assert_int_equal(cask_list_len(&v), 3);
        assert_int_equal(atomic_load(&counted), 10); /* partition 0 alone */
        cask_value_decref(&v);
        atomic_store(&counted, 0);
        assert_ok(cask_bag_take(c, 25, &opts, &v, &err), &err);
        assert_int_equal(cask_list_len(&v), 25);
        assert_int_equal(cask_list_item(&v, 24).u.i, 24);
        assert_int_equal(atomic_load(&counted), 30);
        cask_value_decref(&v);
        assert_ok(cask_bag_take(c, 1000, &opts, &v, &err), &err);
        assert_int_equal(cask_list_len(&v), 100);
        cask_value_decref(&v);
    }
    cask_bag_decref(c);
    cask_bag_decref(b);
    cask_graph_decref(g);
}

/* Files by path and by contents, and records written to their own paths. */
static void test_files(void **state)
{
    (void)state;
    make_dir();
    cask_error_t err;
    char paths[5][128];
    const char *pp[5];
    for (int i = 0; i < 5; i++) {
        snprintf(paths[i], sizeof paths[i], "%s/file-%d.bin", dir, i);
        char body[64];
        int len = snprintf(body, sizeof body, "body %d%c", i, '\0');
        write_file(paths[i], body, (size_t)len);
        pp[i] = paths[i];
    }
    for (size_t s = 0; s < N_TEST_SCHEDS; s++) {
        cask_compute_opts_t opts = { .scheduler = test_scheds[s] };
        cask_graph_t *g = cask_graph_new(&err);
        cask_bag_t *names = cask_bag_from_files(g, pp, 5, 0, 2, &err);
        cask_bag_t *bytes = cask_bag_from_files(g, pp, 5, CASK_BAG_CONTENTS, 0, &err);
        cask_value_t v, w;
        assert_ok(cask_bag_compute(names, &opts, &v, &err), &err);
        assert_ok(cask_bag_compute(bytes, &opts, &w, &err), &err);
        assert_int_equal(cask_list_len(&v), 5);
        for (size_t i = 0; i < 5; i++) {
            cask_value_t a = cask_list_item(&v, i), c = cask_list_item(&w, i);
            assert_string_equal(cask_value_str(&a, NULL), paths[i]);
            size_t len;
            const char *d = cask_value_data(&c, &len);
            char body[64];
            int bl = snprintf(body, sizeof body, "body %zu%c", i, '\0');
            assert_int_equal(len, (size_t)bl);
            assert_memory_equal(d, body, len);
        }
        cask_value_decref(&v);
        cask_value_decref(&w);
        /* [path, contents] records written where they say */
        cask_value_t nums[6];
        for (int i = 0; i < 6; i++)
            nums[i] = cask_int(i);
        cask_bag_t *pairs = cask_bag_from_values(g, nums, 6, 4, &err);
        cask_bag_t *sq = cask_bag_map(pairs, "test.bag.pair", NULL, 0, &err);
        cask_bag_t *fl = cask_bag_flatten(sq, &err);
        cask_value_t got;
        assert_ok(cask_bag_compute(fl, &opts, &got, &err), &err);
        assert_int_equal(cask_list_len(&got), 12);
        assert_int_equal(cask_list_item(&got, 11).u.i, 25);
        cask_value_decref(&got);
        cask_bag_decref(fl);
        cask_bag_decref(sq);
        cask_bag_decref(pairs);
        char op[3][160];
        cask_value_t recs[3];
        for (int i = 0; i < 3; i++) {
            snprintf(op[i], sizeof op[i], "%s/written-%zu-%d.txt", dir, s, i);
            cask_value_t pair[2];
            cask_value_string(op[i], (size_t)-1, &pair[0], &err);
            cask_value_string(op[i], (size_t)-1, &pair[1], &err);
            cask_value_list(pair, 2, &recs[i], &err);
            cask_value_decref(&pair[0]);
            cask_value_decref(&pair[1]);
        }
        cask_bag_t *out = cask_bag_from_values(g, recs, 3, 2, &err);
        for (int i = 0; i < 3; i++)
            cask_value_decref(&recs[i]);
        assert_ok(cask_compute_one(g, cask_bag_write_files(out, &err), &v, &err), &err);
        assert_int_equal(v.u.i, 3);
        for (int i = 0; i < 3; i++) {
            FILE *f = fopen(op[i], "r");
            assert_non_null(f);
            char buf[200] = "";
            assert_non_null(fgets(buf, sizeof buf, f));
            fclose(f);
            assert_string_equal(buf, op[i]);
        }
        cask_bag_decref(out);
        cask_bag_decref(names);
        cask_bag_decref(bytes);
        cask_graph_decref(g);
    }
}

static int teardown(void **state)
{
    (void)state;
    if (dir[0] && !getenv("CASK_KEEP")) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd))
            return -1;
    }
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_against_python),
        cmocka_unit_test(test_text_blocks),
        cmocka_unit_test(test_bad_json_and_changed_files),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_take_is_lazy),
        cmocka_unit_test(test_distinct_keys),
        cmocka_unit_test(test_foldby),
        cmocka_unit_test(test_partition_rule),
        cmocka_unit_test(test_long_line_and_fifo),
        cmocka_unit_test(test_files),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

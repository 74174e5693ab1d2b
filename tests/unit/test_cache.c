/* tests/unit/test_cache.c: the cache directory (cask_compute_opts_t
** .cache_dir): a compute that failed resumes with no kernel call for a task
** that finished before, on every back-end that keeps it; a second compute
** of random graphs runs nothing and gives the same values; damaged files
** are recomputed, never read; a kernel's new version, an impure kernel,
** opaque values and literals, CASK_CACHE_MARKED, cache_min_s and a changed input file
** each do what the header says. */
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

#define MAXID 4096
typedef struct shared {
    atomic_int calls[MAXID]; /* test.node calls by id, across processes */
    atomic_int fail_id;      /* test.node with this id fails; -1: none */
} shared_t;
static shared_t *sh;

static int64_t digest(const cask_value_t *v)
{
    size_t len;
    cask_nd_t nd;
    switch (v->type) {
    case CASK_INT64: return v->u.i;
    case CASK_DOUBLE: return (int64_t)v->u.d;
    case CASK_STRING: {
        const char *s = cask_value_str(v, &len);
        return (int64_t)len * 3 + s[0];
    }
    case CASK_BYTES: {
        const unsigned char *p = cask_value_data(v, &len);
        return (int64_t)len * 5 + (len ? p[len - 1] : 0);
    }
    case CASK_NDARRAY: {
        cask_value_nd(v, &nd);
        int64_t s = 0;
        for (size_t i = 0; i < nd.size; i++)
            s += ((const int64_t *)nd.data)[i];
        return s;
    }
    case CASK_LIST: {
        int64_t s = (int64_t)cask_list_len(v);
        for (size_t i = 0; i < cask_list_len(v); i++) {
            cask_value_t it = cask_list_item(v, i);
            s += digest(&it);
        }
        return s;
    }
    default: return 7;
    }
}

/* test.node(id, kind, inputs...): a value of type `kind` (0 int, 1 double,
** 2 string, 3 int64 n-d buffer, 4 list, 5 bytes, 6 none) whose digest
** depends on id and every input. Counts its calls by id; fails when id is
** sh->fail_id. */
static int k_node(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    int64_t id = a[0].u.i, kind = a[1].u.i, s = id * 31;
    atomic_fetch_add(&sh->calls[id % MAXID], 1);
    if (id == atomic_load(&sh->fail_id))
        return cask_kernel_fail(ctx, "node %lld fails on purpose", (long long)id);
    for (size_t i = 2; i < n; i++)
        s += digest(&a[i]) % 100003;
    char text[64];
    cask_error_t err;
    int rc = 0;
    switch (kind) {
    case 0: *out = cask_int(s); break;
    case 1: *out = cask_double((double)s + 0.25); break;
    case 2:
        snprintf(text, sizeof text, "node-%lld", (long long)s);
        rc = cask_value_string(text, (size_t)-1, out, &err);
        break;
    case 3: {
        int64_t len = 1 + s % 50;
        if (!(rc = cask_value_ndarray(CASK_I64, 1, &len, out, &err))) {
            cask_nd_t nd;
            cask_value_nd(out, &nd);
            for (int64_t i = 0; i < len; i++)
                ((int64_t *)nd.data)[i] = s + i;
        }
        break;
    }
    case 4: {
        cask_value_t items[3] = { cask_int(s), cask_double(0.5), cask_none() };
        rc = cask_value_string("x", 1, &items[2], &err);
        if (!rc)
            rc = cask_value_list(items, 3, out, &err);
        cask_value_decref(&items[2]);
        break;
    }
    case 5: {
        unsigned char b[40];
        for (size_t i = 0; i < sizeof b; i++)
            b[i] = (unsigned char)(s + (int64_t)i);
        rc = cask_value_bytes(b, (size_t)(1 + s % 40), out, &err);
        break;
    }
    default: *out = cask_none(); break;
    }
    return rc ? cask_kernel_fail(ctx, "%s", err.message) : 0;
}

static atomic_int impure_calls;
static int k_impure(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    (void)a, (void)n, (void)ctx;
    *out = cask_int(atomic_fetch_add(&impure_calls, 1));
    return 0;
}

static int k_opaque(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    (void)a, (void)n;
    cask_error_t err;
    static int thing;
    return cask_value_opaque(&thing, NULL, out, &err) ? cask_kernel_fail(ctx, "no memory") : 0;
}

static int k_nap(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    (void)n, (void)ctx;
    atomic_fetch_add(&sh->calls[a[0].u.i % MAXID], 1);
    usleep((useconds_t)a[1].u.i);
    *out = cask_int(a[0].u.i);
    return 0;
}

/* test.one(id): id, counting its calls (what cask.map calls on each item). */
static int k_one(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    if (n != 1 || a[0].type != CASK_INT64)
        return cask_kernel_fail(ctx, "one integer");
    atomic_fetch_add(&sh->calls[a[0].u.i % MAXID], 1);
    *out = a[0];
    return 0;
}

static int setup(void **state)
{
    (void)state;
    cask_error_t err;
    if (cask_kernel_register("test.node", k_node, NULL, &err) ||
        cask_kernel_register("test.impure", k_impure,
                             &(cask_kernel_opts_t){ .flags = CASK_KERNEL_IMPURE }, &err) ||
        cask_kernel_register("test.opaque", k_opaque, NULL, &err) ||
        cask_kernel_register("test.nap", k_nap, NULL, &err))
        fail_msg("register: %s", err.message);
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED)
        fail_msg("mmap: %s", strerror(errno));
    atomic_store(&sh->fail_id, -1);
    return 0;
}

static void reset_calls(void)
{
    for (int i = 0; i < MAXID; i++)
        atomic_store(&sh->calls[i], 0);
}

static int total_calls(void)
{
    int s = 0;
    for (int i = 0; i < MAXID; i++)
        s += atomic_load(&sh->calls[i]);
    return s;
}

/* A fresh, empty directory (rm -rf first). */
static void fresh_dir(char *dir, size_t cap, const char *name)
{
    snprintf(dir, cap, "/tmp/cask_test_cache.%ld.%s", (long)getpid(), name);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void rm_dir(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* Result files in dir, in its subdirectories (not temporary ones, whose
** names have dots); with sizes[] and names[] their sizes and paths. */
static int count_files(const char *dir, off_t *sizes, char (*names)[600], int cap)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char sub[600];
        snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
        DIR *s = opendir(sub);
        if (!s)
            fail_msg("%s is not a subdirectory", sub);
        struct dirent *f;
        while ((f = readdir(s))) {
            if (strchr(f->d_name, '.'))
                continue;
            if (n < cap && (sizes || names)) {
                char p[1200];
                snprintf(p, sizeof p, "%s/%s", sub, f->d_name);
                struct stat st;
                stat(p, &st);
                if (sizes)
                    sizes[n] = st.st_size;
                if (names)
                    snprintf(names[n], 600, "%.599s", p);
            }
            n++;
        }
        closedir(s);
    }
    closedir(d);
    return n;
}

/* A random graph of n test.node tasks of random kinds; each reads up to 3
** earlier ones. Ids from id0. */
static cask_graph_t *random_graph(unsigned seed, int n, int id0, cask_task_t *t)
{
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    srand(seed);
    for (int i = 0; i < n; i++) {
        cask_value_t in[5] = { cask_int(id0 + i), cask_int(rand() % 7) };
        size_t k = 2, m = i ? (size_t)(rand() % 4) : 0;
        for (size_t j = 0; j < m; j++)
            in[k++] = cask_ref(t[rand() % i]);
        cask_task_spec_t s = { .kernel = "test.node", .inputs = in, .n_inputs = k };
        assert_ok(cask_graph_add(g, &s, &t[i], &err), &err);
    }
    return g;
}

static void expect_same(const cask_value_t *a, const cask_value_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!cask_value_equal(&a[i], &b[i]))
            fail_msg("output %zu differs: %s against %s", i, cask_type_name(a[i].type),
                     cask_type_name(b[i].type));
}

static void release_all(cask_value_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cask_value_decref(&v[i]);
}

/* Random graphs, every back-end: the first compute gives sync's values
** without a cache, the second runs no kernel and gives them again. */
static void test_random_graphs_twice(void **state)
{
    (void)state;
    cask_error_t err;
    for (unsigned seed = 1; seed <= 12; seed++) {
        for (size_t s = 0; s < N_TEST_SCHEDS; s++) {
            int n = 20 + (int)(seed * 7 % 60);
            cask_task_t t[100], outs[6];
            cask_graph_t *g = random_graph(seed, n, (int)(seed * 100), t);
            size_t n_out = 1 + seed % 6;
            for (size_t i = 0; i < n_out; i++)
                outs[i] = t[n - 1 - (int)(i * 3 % (size_t)n)];
            cask_value_t want[6], got[6];
            cask_compute_opts_t plain = { .scheduler = "sync" };
            assert_ok(cask_compute(g, outs, n_out, &plain, want, NULL, &err), &err);
            char dir[512];
            fresh_dir(dir, sizeof dir, "random");
            cask_compute_opts_t o = { .scheduler = test_scheds[s], .workers = 2, .cache_dir = dir };
            cask_compute_info_t info;
            assert_ok(cask_compute(g, outs, n_out, &o, got, &info, &err), &err);
            expect_same(want, got, n_out);
            assert_int_equal(info.cached, 0);
            release_all(got, n_out);
            reset_calls();
            assert_ok(cask_compute(g, outs, n_out, &o, got, &info, &err), &err);
            expect_same(want, got, n_out);
            if (total_calls())
                fail_msg("seed %u on %s: %d kernel calls in the second compute", seed, test_scheds[s],
                         total_calls());
            assert_int_equal(info.cached, info.tasks);
            release_all(got, n_out);
            release_all(want, n_out);
            rm_dir(dir);
            cask_graph_decref(g);
        }
    }
}

/* A compute that fails at task k resumes: over both computes every task
** is called once, and the failed one twice. Every position of the
** failure, every back-end. */
static void test_resume_after_failure(void **state)
{
    (void)state;
    cask_error_t err;
    const int n = 30;
    for (size_t s = 0; s < N_TEST_SCHEDS; s++) {
        for (int k = 0; k < n; k += 3) {
            cask_task_t t[30];
            cask_graph_t *g = random_graph(77, n, 0, t);
            cask_value_t want, got;
            cask_compute_opts_t plain = { .scheduler = "sync" };
            assert_ok(cask_compute(g, &t[n - 1], 1, &plain, &want, NULL, &err), &err);
            char dir[512];
            fresh_dir(dir, sizeof dir, "resume");
            cask_compute_opts_t o = { .scheduler = test_scheds[s], .workers = 2, .cache_dir = dir };
            reset_calls();
            atomic_store(&sh->fail_id, k);
            int rc = cask_compute(g, &t[n - 1], 1, &o, &got, NULL, &err);
            atomic_store(&sh->fail_id, -1);
            bool needed = atomic_load(&sh->calls[k]) > 0;
            if (needed) {
                assert_int_equal(rc, CASK_EKERNEL);
                assert_msg_has(&err, "fails on purpose");
            }
            cask_compute_info_t info;
            assert_ok(cask_compute(g, &t[n - 1], 1, &o, &got, &info, &err), &err);
            expect_same(&want, &got, 1);
            for (int i = 0; i < n; i++) {
                int c = atomic_load(&sh->calls[i]);
                if (c > 1 + (i == k))
                    fail_msg("%s, failing at %d: task %d called %d times", test_scheds[s], k, i, c);
            }
            release_all(&got, 1);
            release_all(&want, 1);
            rm_dir(dir);
            cask_graph_decref(g);
        }
    }
}

/* A chain a -> b -> c with outputs of distinct sizes: a file cut short, a
** flipped byte, another key's file in its place: each is recomputed and
** written anew, and a clean file is read. */
static void test_damaged_files(void **state)
{
    (void)state;
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t a, b, c;
    cask_value_t in[3] = { cask_int(1000), cask_int(0) };
    assert_ok(cask_graph_add(g, &(cask_task_spec_t){ .kernel = "test.node", .inputs = in,
                                                     .n_inputs = 2 }, &a, &err), &err);
    in[0] = cask_int(1001), in[1] = cask_int(3), in[2] = cask_ref(a);
    assert_ok(cask_graph_add(g, &(cask_task_spec_t){ .kernel = "test.node", .inputs = in,
                                                     .n_inputs = 3 }, &b, &err), &err);
    in[0] = cask_int(1002), in[1] = cask_int(2), in[2] = cask_ref(b);
    assert_ok(cask_graph_add(g, &(cask_task_spec_t){ .kernel = "test.node", .inputs = in,
                                                     .n_inputs = 3 }, &c, &err), &err);
    char dir[512];
    fresh_dir(dir, sizeof dir, "damaged");
    cask_compute_opts_t o = { .scheduler = "sync", .cache_dir = dir };
    cask_value_t want, got;
    assert_ok(cask_compute(g, &c, 1, &o, &want, NULL, &err), &err);
    off_t sizes[3];
    char names[3][600];
    assert_int_equal(count_files(dir, sizes, names, 3), 3);
    /* c's file: the string's; the biggest is b's n-d buffer, the smallest a's int */
    int big = 0, small = 0;
    for (int i = 1; i < 3; i++) {
        if (sizes[i] > sizes[big])
            big = i;
        if (sizes[i] < sizes[small])
            small = i;
    }
    int mid = 3 - big - small;
    for (int how = 0; how < 4; how++) {
        const char *p = names[mid];
        if (how == 0) { /* cut short */
            assert_int_equal(truncate(p, sizes[mid] - 1), 0);
        } else if (how == 1 || how == 2) { /* a byte of the payload, or of the header */
            int fd = open(p, O_RDWR);
            unsigned char x;
            off_t at = how == 1 ? sizes[mid] - 2 : 40;
            assert_int_equal(pread(fd, &x, 1, at), 1);
            x ^= 0x10;
            assert_int_equal(pwrite(fd, &x, 1, at), 1);
            close(fd);
        } else { /* b's file under c's name */
            char cmd[1300];
            snprintf(cmd, sizeof cmd, "cp '%s' '%s'", names[big], p);
            assert_int_equal(system(cmd), 0);
        }
        reset_calls();
        cask_compute_info_t info;
        assert_ok(cask_compute(g, &c, 1, &o, &got, &info, &err), &err);
        expect_same(&want, &got, 1);
        release_all(&got, 1);
        /* c ran again; b came from the cache; a was not needed */
        assert_int_equal(atomic_load(&sh->calls[1002]), 1);
        assert_int_equal(atomic_load(&sh->calls[1001]), 0);
        assert_int_equal(atomic_load(&sh->calls[1000]), 0);
        assert_int_equal(info.cached, 1);
        reset_calls(); /* and wrote it anew */
        assert_ok(cask_compute(g, &c, 1, &o, &got, &info, &err), &err);
        expect_same(&want, &got, 1);
        release_all(&got, 1);
        assert_int_equal(total_calls(), 0);
    }
    release_all(&want, 1);
    rm_dir(dir);
    cask_graph_decref(g);
}

/* A new version of a kernel runs again; the old version's results are
** still there for it. */
static void test_version(void **state)
{
    (void)state;
    cask_error_t err;
    cask_task_t t[40];
    cask_graph_t *g = random_graph(5, 40, 2000, t);
    char dir[512];
    fresh_dir(dir, sizeof dir, "version");
    cask_compute_opts_t o = { .scheduler = "threads", .workers = 2, .cache_dir = dir };
    cask_value_t v;
    assert_ok(cask_compute(g, &t[39], 1, &o, &v, NULL, &err), &err);
    release_all(&v, 1);
    int first = count_files(dir, NULL, NULL, 0);
    assert_ok(cask_kernel_register("test.node", k_node,
                                   &(cask_kernel_opts_t){ .version = "2" }, &err), &err);
    reset_calls();
    assert_ok(cask_compute(g, &t[39], 1, &o, &v, NULL, &err), &err);
    release_all(&v, 1);
    assert_true(total_calls() > 0);
    assert_int_equal(count_files(dir, NULL, NULL, 0), 2 * first);
    assert_ok(cask_kernel_register("test.node", k_node, NULL, &err), &err); /* back to "" */
    reset_calls();
    assert_ok(cask_compute(g, &t[39], 1, &o, &v, NULL, &err), &err);
    release_all(&v, 1);
    assert_int_equal(total_calls(), 0);
    char big[80];
    memset(big, 'v', sizeof big - 1);
    big[sizeof big - 1] = 0;
    assert_int_equal(cask_kernel_register("test.node", k_node,
                                          &(cask_kernel_opts_t){ .version = big }, &err),
                     CASK_EINVAL);
    rm_dir(dir);
    cask_graph_decref(g);
}

/* cask.map's key holds the mapped kernel's version: a new version maps
** again; a map of an impure kernel is never cached. */
static void test_map_version(void **state)
{
    (void)state;
    cask_error_t err;
    char dir[512];
    fresh_dir(dir, sizeof dir, "map");
    cask_value_t items[6];
    for (int i = 0; i < 6; i++)
        items[i] = cask_int(6000 + i);
    cask_compute_opts_t o = { .scheduler = "sync", .cache_dir = dir };
    const char *version[3] = { "1", "1", "2" };
    int want_calls[3] = { 6, 0, 6 };
    for (int round = 0; round < 3; round++) {
        assert_ok(cask_kernel_register("test.one", k_one,
                                       &(cask_kernel_opts_t){ .version = version[round] }, &err),
                  &err);
        cask_graph_t *g = cask_graph_new(&err);
        cask_task_t m = cask_map(g, "test.one", items, 6, 2, &err);
        assert_true(m != CASK_NO_TASK);
        reset_calls();
        cask_value_t v;
        assert_ok(cask_compute(g, &m, 1, &o, &v, NULL, &err), &err);
        assert_int_equal(cask_list_len(&v), 6);
        cask_value_decref(&v);
        if (total_calls() != want_calls[round])
            fail_msg("round %d: %d calls, not %d", round, total_calls(), want_calls[round]);
        cask_graph_decref(g);
    }
    rm_dir(dir);
}

/* cask_submit copies the cache directory's name with the options. */
static void test_submit_copies_dir(void **state)
{
    (void)state;
    cask_error_t err;
    cask_task_t t[10];
    cask_graph_t *g = random_graph(21, 10, 7000, t);
    char dir[512], name[512];
    fresh_dir(dir, sizeof dir, "submit");
    strcpy(name, dir);
    cask_compute_opts_t o = { .scheduler = "threads", .workers = 2, .cache_dir = name };
    cask_future_t *f;
    assert_ok(cask_submit(g, &t[9], 1, &o, &f, &err), &err);
    memset(name, 'x', 40); /* the caller's buffer is reused at once */
    cask_value_t v;
    assert_ok(cask_future_get(f, &v, &err), &err);
    cask_value_decref(&v);
    cask_future_free(f);
    assert_true(count_files(dir, NULL, NULL, 0) > 0);
    rm_dir(dir);
    cask_graph_decref(g);
}

/* Never cached: an impure kernel's result and what is computed from it,
** an opaque value. */
static void test_never_cached(void **state)
{
    (void)state;
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t imp, op, after_imp, after_op, pure;
    assert_ok(cask_graph_add(g, &(cask_task_spec_t){ .kernel = "test.impure" }, &imp, &err),
              &err);
    assert_ok(cask_graph_add(g, &(cask_task_spec_t){ .kernel = "test.opaque" }, &op, &err), &err);
    cask_value_t in[3] = { cask_int(3000), cask_int(0), cask_ref(imp) };
    assert_ok(cask_graph_add(g, &(cask_task_spec_t){ .kernel = "test.node", .inputs = in,
                                                     .n_inputs = 3 }, &after_imp, &err), &err);
    in[0] = cask_int(3001), in[2] = cask_ref(op);
    assert_ok(cask_graph_add(g, &(cask_task_spec_t){ .kernel = "test.node", .inputs = in,
                                                     .n_inputs = 3 }, &after_op, &err), &err);
    in[0] = cask_int(3002);
    assert_ok(cask_graph_add(g, &(cask_task_spec_t){ .kernel = "test.node", .inputs = in,
                                                     .n_inputs = 2 }, &pure, &err), &err);
    char dir[512];
    fresh_dir(dir, sizeof dir, "never");
    cask_compute_opts_t o = { .scheduler = "sync", .cache_dir = dir };
    cask_task_t outs[3] = { after_imp, after_op, pure };
    cask_value_t v[3];
    for (int round = 0; round < 2; round++) {
        reset_calls();
        atomic_store(&impure_calls, 0);
        cask_compute_info_t info;
        assert_ok(cask_compute(g, outs, 3, &o, v, &info, &err), &err);
        release_all(v, 3);
        assert_int_equal(atomic_load(&impure_calls), 1);
        assert_int_equal(atomic_load(&sh->calls[3000]), 1);
        assert_int_equal(atomic_load(&sh->calls[3001]), round == 0);
        assert_int_equal(atomic_load(&sh->calls[3002]), round == 0);
        assert_int_equal(info.cached, round == 1 ? 2 : 0);
        /* pure's and after_op's: a pure kernel's opaque value is not written,
        ** but what is computed from it is as pure */
        assert_int_equal(count_files(dir, NULL, NULL, 0), 2);
    }
    /* an opaque literal: neither its reader nor what follows is cached */
    static int thing;
    cask_value_t lit;
    assert_ok(cask_value_opaque(&thing, NULL, &lit, &err), &err);
    cask_task_t reader, next;
    cask_value_t in2[3] = { cask_int(3003), cask_int(0), lit };
    assert_ok(cask_graph_add(g, &(cask_task_spec_t){ .kernel = "test.node", .inputs = in2,
                                                     .n_inputs = 3 }, &reader, &err), &err);
    cask_value_decref(&lit);
    in2[0] = cask_int(3004), in2[2] = cask_ref(reader);
    assert_ok(cask_graph_add(g, &(cask_task_spec_t){ .kernel = "test.node", .inputs = in2,
                                                     .n_inputs = 3 }, &next, &err), &err);
    for (int round = 0; round < 2; round++) {
        reset_calls();
        assert_ok(cask_compute(g, &next, 1, &o, v, NULL, &err), &err);
        release_all(v, 1);
        assert_int_equal(atomic_load(&sh->calls[3003]), 1);
        assert_int_equal(atomic_load(&sh->calls[3004]), 1);
    }
    assert_int_equal(count_files(dir, NULL, NULL, 0), 2);
    rm_dir(dir);
    cask_graph_decref(g);
}

/* CASK_CACHE_MARKED writes marked kernels' results only; cache_min_s only
** those that ran long enough; what is there is read either way. */
static void test_what_is_written(void **state)
{
    (void)state;
    cask_error_t err;
    assert_ok(cask_kernel_register("test.marked", k_nap,
                                   &(cask_kernel_opts_t){ .flags = CASK_KERNEL_CACHE }, &err),
              &err);
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t t[4];
    const char *kernel[4] = { "test.nap", "test.marked", "test.nap", "test.marked" };
    int sleep_us[4] = { 0, 0, 120000, 120000 };
    for (int i = 0; i < 4; i++) {
        cask_value_t in[2] = { cask_int(4000 + i), cask_int(sleep_us[i]) };
        assert_ok(cask_graph_add(g, &(cask_task_spec_t){ .kernel = kernel[i], .inputs = in,
                                                         .n_inputs = 2 }, &t[i], &err), &err);
    }
    char dir[512];
    cask_value_t v[4];
    fresh_dir(dir, sizeof dir, "marked");
    cask_compute_opts_t o = { .scheduler = "threads", .workers = 2, .cache_dir = dir,
                              .flags = CASK_CACHE_MARKED };
    assert_ok(cask_compute(g, t, 4, &o, v, NULL, &err), &err);
    release_all(v, 4);
    assert_int_equal(count_files(dir, NULL, NULL, 0), 2);
    o.flags = 0;
    reset_calls();
    cask_compute_info_t info;
    assert_ok(cask_compute(g, t, 4, &o, v, &info, &err), &err);
    release_all(v, 4);
    assert_int_equal(info.cached, 2);
    assert_int_equal(total_calls(), 2);
    assert_int_equal(count_files(dir, NULL, NULL, 0), 4);
    rm_dir(dir);

    fresh_dir(dir, sizeof dir, "min_s");
    o.cache_min_s = 0.1;
    assert_ok(cask_compute(g, t, 4, &o, v, NULL, &err), &err);
    release_all(v, 4);
    assert_int_equal(count_files(dir, NULL, NULL, 0), 2); /* the two that slept */
    o.cache_min_s = -1;
    assert_int_equal(cask_compute(g, t, 4, &o, v, NULL, &err), CASK_EINVAL);
    rm_dir(dir);
    cask_graph_decref(g);
}

/* A directory that cannot be one is refused before anything runs; the
** environment names one too. */
static void test_directory(void **state)
{
    (void)state;
    cask_error_t err;
    cask_task_t t[5];
    cask_graph_t *g = random_graph(9, 5, 5000, t);
    char file[512], dir[512];
    snprintf(file, sizeof file, "/tmp/cask_test_cache.%ld.file", (long)getpid());
    FILE *f = fopen(file, "w");
    fclose(f);
    cask_value_t v;
    reset_calls();
    cask_compute_opts_t o = { .scheduler = "sync", .cache_dir = file };
    assert_int_equal(cask_compute(g, &t[4], 1, &o, &v, NULL, &err), CASK_EIO);
    assert_msg_has(&err, "not a directory");
    assert_int_equal(total_calls(), 0);
    unlink(file);
    fresh_dir(dir, sizeof dir, "env");
    setenv("CASK_CACHE_DIR", dir, 1);
    o.cache_dir = NULL;
    assert_ok(cask_compute(g, &t[4], 1, &o, &v, NULL, &err), &err);
    release_all(&v, 1);
    unsetenv("CASK_CACHE_DIR");
    assert_true(count_files(dir, NULL, NULL, 0) > 0);
    rm_dir(dir);
    cask_graph_decref(g);
}

/* An array read from a .npy file: the file's new contents are read, not a
** result cached from the old ones. */
static void test_file_changes(void **state)
{
    (void)state;
    cask_error_t err;
    char dir[512], path[512];
    fresh_dir(dir, sizeof dir, "npy");
    snprintf(path, sizeof path, "/tmp/cask_test_cache.%ld.data.npy", (long)getpid());
    double sums[2];
    for (int round = 0; round < 2; round++) {
        double data[100];
        for (int i = 0; i < 100; i++)
            data[i] = round ? 2.0 * i : (double)i;
        cask_graph_t *g = cask_graph_new(&err);
        cask_array_t *x = cask_array_from_buffer(g, CASK_F64, 1, (int64_t[]){ 100 },
                                                 (int64_t[]){ 25 }, data, 0, &err);
        assert_non_null(x);
        cask_compute_opts_t plain = { .scheduler = "sync" };
        assert_ok(cask_array_save_npy(x, path, &plain, &err), &err);
        cask_array_decref(x);
        cask_graph_decref(g);
        g = cask_graph_new(&err);
        cask_array_t *y = cask_array_open_npy(g, path, (int64_t[]){ 25 }, &err);
        assert_non_null(y);
        cask_array_t *s = cask_array_reduce(y, CASK_SUM, NULL, &err);
        assert_non_null(s);
        cask_compute_opts_t o = { .scheduler = "threads", .workers = 2, .cache_dir = dir };
        cask_compute_info_t info;
        void *buf = &sums[round];
        assert_ok(cask_array_compute(&s, 1, &o, &buf, &info, &err), &err);
        cask_array_decref(s);
        cask_array_decref(y);
        cask_graph_decref(g);
    }
    assert_true(sums[0] == 4950.0);
    assert_true(sums[1] == 9900.0);
    unlink(path);
    rm_dir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_graphs_twice),
        cmocka_unit_test(test_resume_after_failure),
        cmocka_unit_test(test_damaged_files),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_map_version),
        cmocka_unit_test(test_submit_copies_dir),
        cmocka_unit_test(test_never_cached),
        cmocka_unit_test(test_what_is_written),
        cmocka_unit_test(test_directory),
        cmocka_unit_test(test_file_changes),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}

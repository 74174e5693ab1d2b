/*
** tests/mpi/mpi_check.c: the mpi scheduler under mpirun (tests/run.sh runs
** it with -np 2, 3 and 4 --oversubscribe). Every rank builds the same
** graphs; rank 0 prints TAP, and any rank that finds a difference prints
** "not ok" with its rank. The checks:
**   - random graphs: the same results as sync, on rank 0 and, with
**     CASK_ALL_RANKS, on every rank; CASK_NONE results on the other ranks
**     without it; the trace has one row per rank;
**   - an array reduction (sum, std) and a matmul: the same as threads;
**   - an array over a borrowed buffer, each rank's own at an address of
**     its own: its sum and maximum as summed here, on every rank;
**   - chunks of 8 MB made on every rank and summed across ranks;
**   - ranks of one machine share chunks instead of copying them: a chunk
**     read on another rank is at the same address as where it was made
**     (copied, with CASK_MPI_SHM=0); a result that is a chunk made on
**     another rank stays readable after the compute;
**   - a failing task: every rank returns the same error naming the key,
**     the kernel, the message and the rank it ran on;
**   - a memory budget per rank: kept, and a budget too small refused;
**   - bags: compute gives the records on rank 0 (none elsewhere, and no
**     error), or on every rank with CASK_ALL_RANKS; take gives them on
**     every rank, each stopping at the same partition; foldby's groups.
*/
#include <mpi.h>

#include "../unit/testutil.h"

static int rank, size, failures, checks;

static void check(int ok, const char *what, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, what);
    vsnprintf(text, sizeof text, what, ap);
    va_end(ap);
    checks++;
    if (!ok) {
        failures++;
        printf("not ok - rank %d: %s\n", rank, text);
    } else if (rank == 0) {
        printf("ok - %s\n", text);
    }
    fflush(stdout);
}

static cask_compute_opts_t on(const char *sched, unsigned flags)
{
    return (cask_compute_opts_t){ .scheduler = sched, .workers = 2, .flags = flags };
}

/* One row per rank for tasks (one event each) and, when values moved, one
** more per rank for the transfers it received (group "transfer"). */
static int trace_rows_ok(const cask_trace_t *tr, size_t tasks)
{
    size_t moved = 0, n = cask_trace_size(tr);
    int ok = 1;
    for (size_t i = 0; i < n; i++) {
        const cask_trace_event_t *e = cask_trace_event(tr, i);
        int xfer = !strcmp(e->group, "transfer");
        moved += xfer;
        ok &= xfer ? e->worker >= size && e->worker < 2 * size && e->bytes > 0
                   : e->worker >= 0 && e->worker < size;
    }
    int w = cask_trace_workers(tr);
    return ok && n - moved == tasks && (moved ? w == 2 * size : w == size);
}

/* cask_compute_each's outputs, copied (they live in the run's arena). */
typedef struct each {
    cask_value_t got[64];
    int calls[64];
} each_t;

static int take(void *udata, size_t i, const cask_value_t *v)
{
    each_t *c = udata;
    cask_error_t err;
    cask_value_decref(&c->got[i]);
    c->calls[i]++;
    return cask_value_copy(v, &c->got[i], &err);
}

static void random_graphs(void)
{
    cask_error_t err;
    int same = 1, none_elsewhere = 1, rows = 1, everywhere = 1, each = 1, each_all = 1;
    for (unsigned seed = 1; seed <= 12; seed++) {
        cask_graph_t *g = cask_graph_new(&err);
        cask_task_t outs[64];
        size_t m = test_random_graph(g, seed, outs, 64);
        cask_value_t ref[64], got[64];
        cask_compute_opts_t o = on("sync", 0);
        if (cask_compute(g, outs, m, &o, ref, NULL, &err))
            check(0, "sync: %s", err.message);
        cask_compute_info_t info;
        o = on("mpi", CASK_TRACE);
        int rc = cask_compute(g, outs, m, &o, got, &info, &err);
        if (rc) {
            check(0, "random graph %u on mpi: %s", seed, err.message);
        } else {
            for (size_t i = 0; i < m; i++) {
                if (rank == 0 && !cask_value_equal(&ref[i], &got[i]))
                    same = 0;
                if (rank != 0 && got[i].type != CASK_NONE)
                    none_elsewhere = 0;
                cask_value_decref(&got[i]);
            }
            rows &= trace_rows_ok(info.trace, info.tasks);
            cask_trace_free(info.trace);
        }
        /* each output once on rank 0 (those made elsewhere at the end), none
        ** on the others */
        each_t c;
        memset(&c, 0, sizeof c);
        o = on("mpi", 0);
        if (cask_compute_each(g, outs, m, &o, take, &c, NULL, &err))
            each = 0;
        for (size_t i = 0; i < m; i++) {
            if (rank == 0 ? c.calls[i] != 1 || !cask_value_equal(&ref[i], &c.got[i]) : c.calls[i])
                each = 0;
            cask_value_decref(&c.got[i]);
        }
        /* with CASK_ALL_RANKS, each output once on every rank */
        memset(&c, 0, sizeof c);
        o = on("mpi", CASK_ALL_RANKS);
        if (cask_compute_each(g, outs, m, &o, take, &c, NULL, &err))
            each_all = 0;
        for (size_t i = 0; i < m; i++) {
            if (c.calls[i] != 1 || !cask_value_equal(&ref[i], &c.got[i]))
                each_all = 0;
            cask_value_decref(&c.got[i]);
        }
        o = on("mpi", CASK_ALL_RANKS);
        if (!cask_compute(g, outs, m, &o, got, NULL, &err)) {
            for (size_t i = 0; i < m; i++) {
                everywhere &= cask_value_equal(&ref[i], &got[i]);
                cask_value_decref(&got[i]);
            }
        } else {
            everywhere = 0;
        }
        for (size_t i = 0; i < m; i++)
            cask_value_decref(&ref[i]);
        cask_graph_decref(g);
    }
    check(same, "12 random graphs: the results on rank 0 are sync's");
    check(none_elsewhere, "without CASK_ALL_RANKS, ranks other than 0 get no results");
    check(everywhere, "with CASK_ALL_RANKS, every rank gets sync's results");
    check(each, "cask_compute_each hands each output over once, on rank 0 only, as sync's");
    check(each_all, "with CASK_ALL_RANKS, cask_compute_each hands each output over once on "
                    "every rank, as sync's");
    check(rows, "the trace has one row per rank (%d) and one event per task, and a row of "
                "transfers per rank", size);
}

static void arrays(void)
{
    cask_error_t err;
    double got[3], want[3];
    for (int pass = 0; pass < 2; pass++) {
        cask_graph_t *g = cask_graph_new(&err);
        int64_t shape[2] = { 1200, 1000 }, chunks[2] = { 200, 250 };
        cask_array_t *x = cask_array_random_normal(g, 2, shape, chunks, 7, 1, 2, &err);
        cask_array_t *s = cask_array_reduce(x, CASK_SUM, NULL, &err);
        cask_array_t *d = cask_array_reduce(x, CASK_STD, NULL, &err);
        int64_t ms[2] = { 400, 400 }, mc[2] = { 100, 100 };
        cask_array_t *a = cask_array_random_uniform(g, 2, ms, mc, 3, 0, 1, &err);
        cask_array_t *p = cask_array_matmul(a, a, &err);
        cask_array_t *ps = cask_array_reduce(p, CASK_SUM, NULL, &err);
        cask_array_t *outs[3] = { s, d, ps };
        double *dst = pass ? got : want;
        cask_compute_opts_t o = on(pass ? "mpi" : "threads", CASK_ALL_RANKS);
        if (cask_array_compute(outs, 3, &o, (void *[]){ &dst[0], &dst[1], &dst[2] }, NULL, &err))
            check(0, "arrays on %s: %s", o.scheduler, err.message);
        cask_array_decref(x);
        cask_array_decref(s);
        cask_array_decref(d);
        cask_array_decref(a);
        cask_array_decref(p);
        cask_array_decref(ps);
        cask_graph_decref(g);
    }
    check(got[0] == want[0] && got[1] == want[1],
          "a 1200x1000 array in 24 blocks: sum %.6f and std %.6f as on threads", got[0], got[1]);
    check(got[2] == want[2], "a 400x400 matmul in 16 blocks: the sum of the product %.6f as on "
                             "threads", got[2]);
}

/* A memory budget per rank: (x + x.T).sum() over 64 blocks of 128 KB that
** are tasks (copied from a buffer) gives sync's sum with no rank holding
** more than 8 blocks by their sizes. Copies of inputs stay on a rank until
** no task needs them, so how much a rank holds depends on where tasks ran:
** 6 blocks sufficed in most runs, but one run on 3 ranks, slowed by a
** build beside it, held 5 blocks of copies and stopped 16 bytes short;
** under 6, 2 and 3 ranks stop, cleanly. A budget under one task's needs is
** refused on every rank before anything runs. */
static void budgets(void)
{
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    int64_t shape[2] = { 1024, 1024 }, chunks[2] = { 128, 128 };
    double *data = malloc(1024 * 1024 * sizeof *data);
    for (size_t i = 0; i < 1024 * 1024; i++)
        data[i] = (double)(i % 1000) * 0.25;
    cask_array_t *x = cask_array_from_buffer(g, CASK_F64, 2, shape, chunks, data, CASK_ARRAY_COPY,
                                             &err);
    cask_array_t *t = cask_array_transpose(x, NULL, &err);
    cask_array_t *y = cask_array_binop(x, CASK_ADD, t, &err);
    cask_array_t *s = cask_array_reduce(y, CASK_SUM, NULL, &err);
    double want = 0, got = 0;
    cask_compute_opts_t o = on("sync", 0);
    if (cask_array_compute(&s, 1, &o, (void *[]){ &want }, NULL, &err))
        check(0, "sync: %s", err.message);
    const size_t blk = 128 * 128 * 8;
    o = on("mpi", CASK_ALL_RANKS);
    o.memory_limit = 8 * blk;
    cask_compute_info_t info;
    int rc = cask_array_compute(&s, 1, &o, (void *[]){ &got }, &info, &err);
    check(!rc && got == want, "a budget of 8 blocks a rank: (x + x.T).sum() = %.2f as sync's "
                              "(%s)", got, rc ? err.message : "ok");
    check(rank != 0 || info.peak_bytes <= 8 * blk, "no rank held more than the budget (%zu of "
                                                   "%zu bytes)", info.peak_bytes, 8 * blk);
    o.memory_limit = 3 * blk; /* kept, or a clean stop on every rank */
    rc = cask_array_compute(&s, 1, &o, (void *[]){ &got }, &info, &err);
    check((!rc && got == want) || (rc == CASK_ENOMEM && strstr(err.message, "too small")),
          "a budget of 3 blocks a rank: kept, or stopped cleanly (%s)", rc ? err.message : "kept");
    o.memory_limit = blk; /* an add needs 3 blocks */
    rc = cask_array_compute(&s, 1, &o, (void *[]){ &got }, NULL, &err);
    check(rc == CASK_ENOMEM && strstr(err.message, "over the memory budget"),
          "a budget of one block is refused on every rank: %s", err.message);
    cask_array_decref(x);
    cask_array_decref(t);
    cask_array_decref(y);
    cask_array_decref(s);
    cask_graph_decref(g);
    free(data);
}

/* A borrowed buffer: every rank builds its graph over a buffer of its own
** with the same elements, at an address that differs by rank (the keys
** must not depend on it); the sum and the maximum on every rank are the
** ones summed here (exact: quarters under 2^50). */
static void borrowed(void)
{
    cask_error_t err;
    int64_t n = 10000, chunk = 700;
    double *mem = malloc((size_t)(n + rank) * sizeof *mem), *buf = mem + rank;
    double want = 0, top = -1e300, got[2] = { 0, 0 };
    for (int64_t i = 0; i < n; i++) {
        buf[i] = (double)((i * 7919) % 1000) * 0.25 - 60;
        want += buf[i];
        top = buf[i] > top ? buf[i] : top;
    }
    cask_graph_t *g = cask_graph_new(&err);
    cask_array_t *a = cask_array_from_buffer(g, CASK_F64, 1, &n, &chunk, buf, 0, &err);
    cask_array_t *outs[2] = { cask_array_reduce(a, CASK_SUM, NULL, &err),
                              cask_array_reduce(a, CASK_MAX, NULL, &err) };
    cask_compute_opts_t o = on("mpi", CASK_ALL_RANKS);
    int rc = cask_array_compute(outs, 2, &o, (void *[]){ &got[0], &got[1] }, NULL, &err);
    if (rc)
        check(0, "a borrowed buffer on mpi: %s", err.message);
    else
        check(got[0] == want && got[1] == top, "a borrowed buffer of 15 blocks at a different "
              "address on each rank: sum %.2f and max %.2f on every rank", got[0], got[1]);
    cask_array_decref(outs[0]);
    cask_array_decref(outs[1]);
    cask_array_decref(a);
    cask_graph_decref(g);
    free(mem);
}

/* test.big(i): 1,000,000 doubles (8 MB), all equal to i. */
static int k_big(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    (void)n;
    int64_t len = 1000000;
    cask_error_t err;
    int rc = cask_value_ndarray(CASK_F64, 1, &len, out, &err);
    if (rc)
        return cask_kernel_fail(ctx, "%s", err.message), rc;
    cask_nd_t nd;
    cask_value_nd(out, &nd);
    for (int64_t i = 0; i < len; i++)
        ((double *)nd.data)[i] = (double)a[0].u.i;
    return 0;
}

static void big_chunks(void)
{
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    enum { N = 12 };
    cask_value_t in[N];
    for (int i = 0; i < N; i++)
        in[i] = cask_ref(CASK_DELAYED(g, "test.big", &err, cask_int(i)));
    cask_task_t sum = cask_delayed(g, "test.count", in, N, &err); /* sums the elements */
    cask_compute_opts_t o = on("mpi", CASK_TRACE);
    cask_value_t r;
    cask_compute_info_t info;
    int rc = cask_compute(g, &sum, 1, &o, &r, &info, &err);
    int ranks_used = 0;
    double moved = 0, secs = 0;
    int backwards = 0;
    if (!rc) {
        int seen[64] = { 0 };
        for (size_t i = 0; i < cask_trace_size(info.trace); i++) {
            const cask_trace_event_t *e = cask_trace_event(info.trace, i);
            if (!strcmp(e->group, "transfer")) {
                moved += (double)e->bytes;
                secs += (double)(e->end_ns - e->start_ns) * 1e-9;
                backwards += e->end_ns < e->start_ns;
            } else if (e->worker >= 0 && e->worker < 64 && !seen[e->worker]++) {
                ranks_used++;
            }
        }
        const char *pic = getenv("CASK_MPI_TIMELINE"); /* to look at */
        if (pic && rank == 0)
            cask_timeline_save(info.trace, pic, NULL, &err);
        cask_trace_free(info.trace);
    }
    check(rc || (moved >= 8e6 && !backwards), "the trace shows %.0f MB moved in %.6f s",
          moved / 1e6, secs);
    if (rank == 0)
        check(!rc && r.type == CASK_INT64 && r.u.i == 1000000LL * (N * (N - 1) / 2) + 1,
              "12 chunks of 8 MB made on %d ranks and summed on one: %lld", ranks_used,
              rc ? -1LL : (long long)r.u.i);
    check(rc || ranks_used > 1, "the chunks were made on more than one rank");
    cask_graph_decref(g);
}

/* test.addr(x, i): the address of x's data, as an int. */
static int k_addr(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    (void)n;
    (void)ctx;
    cask_nd_t nd;
    cask_value_nd(&a[0], &nd);
    *out = cask_int((int64_t)(uintptr_t)nd.data);
    return 0;
}

/* test.same(x, ...): x itself. */
static int k_same(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    (void)n;
    (void)ctx;
    *out = a[0];
    cask_value_incref(out);
    return 0;
}

static void shared_chunks(void)
{
    const char *env = getenv("CASK_MPI_SHM");
    int sharing = !env || strcmp(env, "0");
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    enum { N = 8, K = 3 }; /* N chunks, K readers of each */
    cask_task_t big[N], addr[N][K], outs[N * K + 1];
    cask_value_t in[N];
    for (int i = 0; i < N; i++) {
        big[i] = CASK_DELAYED(g, "test.big", &err, cask_int(i + 1));
        in[i] = cask_ref(big[i]);
        for (int k = 0; k < K; k++)
            outs[i * K + k] = addr[i][k] =
                CASK_DELAYED(g, "test.addr", &err, cask_ref(big[i]), cask_int(k));
    }
    outs[N * K] = cask_delayed(g, "test.same", in, N, &err); /* chunk 0, made somewhere */
    cask_value_t r[N * K + 1];
    cask_compute_info_t info;
    cask_compute_opts_t o = on("mpi", CASK_TRACE | CASK_ALL_RANKS);
    int rc = cask_compute(g, outs, N * K + 1, &o, r, &info, &err);
    check(!rc, "chunks read on several ranks: %s", rc ? err.message : "computed");
    if (rc) {
        cask_graph_decref(g);
        return;
    }
    /* where each task ran */
    int where_addr[N][K], found = 0;
    for (size_t e = 0; e < cask_trace_size(info.trace); e++) {
        const cask_trace_event_t *ev = cask_trace_event(info.trace, e);
        for (int i = 0; i < N; i++)
            for (int k = 0; k < K; k++)
                if (!strcmp(ev->key, cask_graph_key(g, addr[i][k]))) {
                    where_addr[i][k] = ev->worker;
                    found++;
                }
    }
    check(found == N * K, "the trace places every reader (%d of %d)", found, N * K);
    int crossed = 0, as_expected = 1;
    for (int i = 0; found == N * K && i < N; i++)
        for (int k = 0; k < K; k++)
            for (int j = 0; j < K; j++) {
                if (where_addr[i][k] == where_addr[i][j])
                    continue;
                /* read on two ranks: one at least is not where it was made */
                crossed++;
                int same = r[i * K + k].u.i == r[i * K + j].u.i;
                as_expected &= sharing ? same : !same;
            }
    check(crossed > 0, "some chunks were read on more than one rank (%d pairs)", crossed / 2);
    check(as_expected, sharing ? "a chunk read on two ranks is at one address (shared, not copied)"
                               : "a chunk read on two ranks is at two addresses (CASK_MPI_SHM=0: "
                                 "copied)");
    /* the result that is a chunk made on some rank: readable here, after the compute */
    cask_nd_t nd;
    cask_value_nd(&r[N * K], &nd);
    int ok = r[N * K].type == CASK_NDARRAY && nd.shape[0] == 1000000;
    for (int64_t i = 0; ok && i < nd.shape[0]; i++)
        ok = ((const double *)nd.data)[i] == 1.0;
    check(ok, "a result that is a chunk made on another rank is readable after the compute");
    for (int i = 0; i < N * K + 1; i++)
        cask_value_decref(&r[i]);
    cask_trace_free(info.trace);
    cask_graph_decref(g);
}

static void failing_task(void)
{
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    enum { N = 60, BAD = 37 };
    cask_value_t in[N];
    char key[CASK_KEY_MAX + 1] = "";
    for (int i = 0; i < N; i++) {
        cask_task_t t = CASK_DELAYED(g, "test.fail_at", &err, cask_int(i), cask_int(BAD));
        in[i] = cask_ref(t);
        if (i == BAD)
            snprintf(key, sizeof key, "%s", cask_graph_key(g, t));
    }
    cask_task_t sum = cask_delayed(g, "cask.add", in, N, &err);
    cask_compute_opts_t o = on("mpi", 0);
    cask_value_t r;
    int rc = cask_compute(g, &sum, 1, &o, &r, NULL, &err);
    check(rc == CASK_EKERNEL && !strcmp(err.key, key) && !strcmp(err.kernel, "test.fail_at") &&
              strstr(err.message, "task 37 fails on purpose (on rank ") && r.type == CASK_NONE,
          "a failing task fails the compute on every rank with its key, kernel, message and "
          "rank: %s", err.message);
    /* the same message everywhere */
    char mine[256], first[256];
    snprintf(mine, sizeof mine, "%s", err.message);
    memcpy(first, mine, sizeof first);
    MPI_Bcast(first, sizeof first, MPI_CHAR, 0, MPI_COMM_WORLD);
    check(!strcmp(first, mine), "every rank reports the same error");
    cask_graph_decref(g);
    /* and the next compute works */
    g = cask_graph_new(&err);
    cask_task_t t = CASK_DELAYED(g, "test.count", &err, cask_int(41));
    rc = cask_compute(g, &t, 1, &o, &r, NULL, &err);
    check(!rc && (rank != 0 || r.u.i == 42), "a compute after a failed one works");
    cask_graph_decref(g);
}

/* [x, x % 3] of an int x; x % 3; a + b. */
static int k_mod3(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    if (n != 1 || a[0].type != CASK_INT64)
        return cask_kernel_fail(ctx, "mod3 takes an int");
    *out = cask_int(a[0].u.i % 3);
    return 0;
}

static int k_plus(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    if (n != 2 || a[0].type != CASK_INT64 || a[1].type != CASK_INT64)
        return cask_kernel_fail(ctx, "plus takes two ints");
    *out = cask_int(a[0].u.i + a[1].u.i);
    return 0;
}

static void bags(void)
{
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    cask_value_t items[30];
    for (int i = 0; i < 30; i++)
        items[i] = cask_int(i);
    cask_bag_t *b = cask_bag_from_values(g, items, 30, 6, &err);
    for (int all = 0; all < 2; all++) {
        cask_compute_opts_t o = on("mpi", all ? CASK_ALL_RANKS : 0);
        cask_value_t v;
        int rc = cask_bag_compute(b, &o, &v, &err), ok = !rc;
        if (ok && (rank == 0 || all)) {
            ok = v.type == CASK_LIST && cask_list_len(&v) == 30;
            for (size_t i = 0; ok && i < 30; i++)
                ok = cask_list_item(&v, i).u.i == (int64_t)i;
        } else if (ok)
            ok = v.type == CASK_NONE;
        cask_value_decref(&v);
        check(ok, "a bag's records on %s (rc %d)", all ? "every rank" : "rank 0", rc);
    }
    cask_compute_opts_t o = on("mpi", 0);
    cask_value_t v;
    int rc = cask_bag_take(b, 7, &o, &v, &err), ok = !rc && cask_list_len(&v) == 7;
    for (size_t i = 0; ok && i < 7; i++)
        ok = cask_list_item(&v, i).u.i == (int64_t)i;
    cask_value_decref(&v);
    check(ok, "take(7) on every rank (rc %d)", rc);
    cask_bag_t *f = cask_bag_foldby(b, "test.mod3", "test.plus", NULL, NULL, NULL, 2, &err);
    rc = cask_bag_compute(f, &o, &v, &err);
    ok = !rc;
    if (ok && rank == 0) { /* keys 0, 1, 2: sums 135, 145, 155 */
        ok = cask_list_len(&v) == 3;
        for (size_t k = 0; ok && k < 3; k++) {
            cask_value_t p = cask_list_item(&v, k);
            ok = cask_list_item(&p, 0).u.i == (int64_t)k &&
                 cask_list_item(&p, 1).u.i == 135 + 10 * (int64_t)k;
        }
    }
    cask_value_decref(&v);
    check(ok, "foldby on mpi (rc %d)", rc);
    cask_bag_decref(f);
    cask_bag_decref(b);
    cask_graph_decref(g);
}

/* Futures on mpi: each output's future gives it on rank 0 (outputs made on
** other ranks come as soon as they reach rank 0); the program may end as
** soon as it has them, while the compute's own thread still finishes the
** run (MPI is finalised after it). Run last. */
static void futures(void)
{
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t t[6];
    for (int i = 0; i < 6; i++)
        t[i] = CASK_DELAYED(g, "test.count", &err, cask_int(10 * i));
    cask_compute_opts_t o = on("mpi", 0);
    cask_future_t *f[6];
    int ok = !cask_submit(g, t, 6, &o, f, &err);
    for (int i = 0; ok && i < 6; i++) {
        cask_value_t v;
        int rc = cask_future_get(f[i], &v, &err);
        ok &= !rc && (rank != 0 || (v.type == CASK_INT64 && v.u.i == 10 * i + 1));
        if (!rc)
            cask_value_decref(&v);
    }
    for (int i = 0; i < 6; i++)
        cask_future_free(f[i]);
    check(ok, "6 futures on mpi give their values on rank 0");
    cask_graph_decref(g);
}

int main(void)
{
    cask_error_t err;
    register_test_kernels();
    if (cask_kernel_register("test.big", k_big, NULL, &err) ||
        cask_kernel_register("test.addr", k_addr, NULL, &err) ||
        cask_kernel_register("test.same", k_same, NULL, &err) ||
        cask_kernel_register("test.mod3", k_mod3, NULL, &err) ||
        cask_kernel_register("test.plus", k_plus, NULL, &err))
        return 2;
    /* the first mpi compute starts MPI */
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t t = CASK_DELAYED(g, "test.count", &err, cask_int(1));
    cask_value_t r;
    cask_compute_opts_t o = on("mpi", 0);
    int rc = cask_compute(g, &t, 1, &o, &r, NULL, &err);
    cask_graph_decref(g);
    rank = cask_mpi_rank();
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    check(!rc && (rank != 0 || r.u.i == 2), "a first compute on %d ranks", size);
    random_graphs();
    arrays();
    budgets();
    borrowed();
    big_chunks();
    shared_chunks();
    failing_task();
    bags();
    futures();
    int all = 0;
    MPI_Allreduce(&failures, &all, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0)
        printf("1..%d\n# %d ranks: %d failures\n", checks, size, all);
    return all ? 1 : 0;
}

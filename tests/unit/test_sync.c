/* tests/unit/test_sync.c: computing graphs on the sync scheduler, and the
** scheduler interface a user scheduler is written against. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "testutil.h"

static int freed;           /* opaque values destroyed */
static int freed_seen;      /* what test.peek saw */
static void dtor(void *p) { free(p); freed++; }

/* test.box: an opaque value holding its integer input. */
static int k_box(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    int64_t *p = malloc(sizeof *p);
    if (!p || n != 1)
        return cask_kernel_fail(ctx, "box");
    *p = a[0].u.i;
    return cask_value_opaque(p, dtor, out, NULL);
}

/* test.unbox: the integer inside a box. */
static int k_unbox(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    int64_t *p = n == 1 ? cask_value_ptr(&a[0]) : NULL;
    if (!p)
        return cask_kernel_fail(ctx, "unbox takes a box");
    *out = cask_int(*p);
    return 0;
}

/* test.peek: records how many boxes are freed so far; returns its input. */
static int k_peek(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    (void)ctx;
    freed_seen = freed;
    *out = n ? a[0] : cask_int(0);
    return 0;
}

static int setup(void **state)
{
    (void)state;
    register_test_kernels();
    cask_error_t err;
    if (cask_kernel_register("test.box", k_box, NULL, &err) ||
        cask_kernel_register("test.unbox", k_unbox, NULL, &err) ||
        cask_kernel_register("test.peek", k_peek, NULL, &err))
        return -1;
    return 0;
}

static void test_shared_parts_once(void **state)
{
    (void)state;
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t a = CASK_DELAYED(g, "test.count", &err, cask_int(1));          /* 2 */
    cask_task_t b = CASK_DELAYED(g, "test.count", &err, cask_ref(a));          /* 3 */
    cask_task_t c = CASK_DELAYED(g, "test.count", &err, cask_ref(a), cask_int(5)); /* 8 */
    cask_task_t d = CASK_DELAYED(g, "test.count", &err, cask_ref(b), cask_ref(c)); /* 12 */
    CASK_DELAYED(g, "test.count", &err, cask_int(100)); /* not needed: culled */
    cask_task_t outs[3] = { d, b, d };
    cask_value_t r[3];
    cask_compute_info_t info;
    atomic_store(&test_calls, 0);
    assert_ok(compute_on("sync", g, outs, 3, r, &info, &err), &err);
    assert_int_equal(r[0].u.i, 12);
    assert_int_equal(r[1].u.i, 3);
    assert_int_equal(r[2].u.i, 12);
    assert_int_equal(atomic_load(&test_calls), 4);
    assert_int_equal(info.tasks, 4);
    assert_int_equal(info.workers, 1);
    assert_string_equal(info.scheduler, "sync");
    cask_trace_free(info.trace);
    cask_graph_decref(g);
}

/* The trace: every task once, after its inputs, one at a time. */
static void test_trace(void **state)
{
    (void)state;
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t t[50];
    for (int i = 0; i < 50; i++)
        t[i] = i < 10 ? CASK_DELAYED(g, "test.count", &err, cask_int(i))
                      : CASK_DELAYED(g, "test.count", &err, cask_ref(t[i - 10]), cask_ref(t[i / 2]));
    cask_value_t r;
    cask_compute_info_t info;
    assert_ok(compute_on(NULL, g, &t[49], 1, &r, &info, &err), &err);
    size_t n = cask_trace_size(info.trace);
    assert_int_equal(n, info.tasks);
    uint64_t prev_end = 0;
    for (size_t i = 0; i < n; i++) {
        const cask_trace_event_t *e = cask_trace_event(info.trace, i);
        assert_int_equal(e->worker, 0);
        assert_true(e->start_ns <= e->end_ns);
        assert_true(e->start_ns >= prev_end); /* one at a time */
        prev_end = e->end_ns;
        cask_task_t k = cask_graph_find(g, e->key);
        assert_int_not_equal(k, CASK_NO_TASK);
        /* each input ended before this task started */
        const cask_value_t *in;
        size_t m;
        assert_int_equal(cask_graph_inputs(g, k, &in, &m, NULL), 0);
        for (size_t j = 0; j < m; j++) {
            if (in[j].type != CASK_REF)
                continue;
            const char *ik = cask_graph_key(g, in[j].u.task);
            size_t f = 0;
            while (strcmp(cask_trace_event(info.trace, f)->key, ik))
                f++;
            assert_true(f < i);
        }
    }
    assert_null(cask_trace_event(info.trace, n));
    assert_int_equal(cask_trace_workers(info.trace), 1);
    cask_trace_free(info.trace);
    cask_graph_decref(g);
}

/* Ready tasks run highest upward rank first. */
static void test_critical_path_first(void **state)
{
    (void)state;
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    /* short: 3 cheap tasks; long: a chain of 3 tasks of 1 s estimated each */
    cask_task_t s[3], l = CASK_NO_TASK;
    for (int i = 0; i < 3; i++) {
        s[i] = CASK_DELAYED(g, "cask.add", &err, cask_int(i));
        cask_task_spec_t spec = { .kernel = "cask.add", .cost = 1.0, .index = (uint64_t)i,
                                  .inputs = (cask_value_t[]){ l == CASK_NO_TASK ? cask_int(0) : cask_ref(l) },
                                  .n_inputs = 1, .name = "long" };
        assert_ok(cask_graph_add(g, &spec, &l, &err), &err);
    }
    cask_task_t outs[4] = { s[0], s[1], s[2], l };
    cask_value_t r[4];
    cask_compute_info_t info;
    assert_ok(compute_on("sync", g, outs, 4, r, &info, &err), &err);
    for (int i = 0; i < 3; i++)
        assert_int_equal(strncmp(cask_trace_event(info.trace, (size_t)i)->key, "long-", 5), 0);
    cask_trace_free(info.trace);
    cask_graph_decref(g);
}

/* An intermediate is freed as soon as its last consumer has run. */
static void test_intermediates_freed_early(void **state)
{
    (void)state;
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t box = CASK_DELAYED(g, "test.box", &err, cask_int(41));
    cask_task_t v = CASK_DELAYED(g, "test.unbox", &err, cask_ref(box));
    cask_task_t peek = CASK_DELAYED(g, "test.peek", &err, cask_ref(v));
    cask_value_t r;
    freed = 0;
    assert_ok(compute_on("sync", g, &peek, 1, &r, NULL, &err), &err);
    assert_int_equal(r.u.i, 41);
    assert_int_equal(freed_seen, 1); /* the box was gone before peek ran */
    assert_int_equal(freed, 1);
    /* An output is kept for the caller. */
    freed = 0;
    cask_task_t outs[2] = { box, peek };
    cask_value_t rs[2];
    assert_ok(compute_on("sync", g, outs, 2, rs, NULL, &err), &err);
    assert_int_equal(freed_seen, 0);
    assert_int_equal(*(int64_t *)cask_value_ptr(&rs[0]), 41);
    cask_value_decref(&rs[0]);
    assert_int_equal(freed, 1);
    cask_graph_decref(g);
}

/* test.dup: a fresh copy of a string. */
static int k_dup(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    size_t len;
    const char *s = n == 1 ? cask_value_str(&a[0], &len) : NULL;
    if (!s)
        return cask_kernel_fail(ctx, "dup takes a string");
    return cask_value_string(s, len, out, NULL);
}

static void test_peak_bytes(void **state)
{
    (void)state;
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    assert_ok(cask_kernel_register("test.dup", k_dup, NULL, &err), &err);
    cask_value_t s;
    assert_ok(cask_value_string("0123456789", (size_t)-1, &s, &err), &err);
    cask_task_t t = CASK_DELAYED(g, "test.dup", &err, s);
    for (int i = 0; i < 5; i++)
        t = CASK_DELAYED(g, "test.dup", &err, cask_ref(t));
    cask_value_decref(&s);
    cask_value_t r;
    cask_compute_info_t info;
    assert_ok(compute_on("sync", g, &t, 1, &r, &info, &err), &err);
    /* Two 10-byte strings at most: each is freed once the next is made. */
    assert_int_equal(info.peak_bytes, 20);
    assert_string_equal(cask_value_str(&r, NULL), "0123456789");
    assert_int_equal(cask_trace_event(info.trace, 1)->bytes, 10);
    cask_value_decref(&r);
    cask_trace_free(info.trace);
    cask_graph_decref(g);
}

/* The first error stops the compute; nothing leaks; err names the task. */
static void test_error_stops(void **state)
{
    (void)state;
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    enum { N = 200 };
    cask_task_t parts[N + 1];
    for (int i = 0; i < N; i++)
        parts[i] = CASK_DELAYED(g, "test.count", &err, cask_int(i));
    cask_task_spec_t spec = { .kernel = "cask.fail", .cost = 10, .key = "boom",
                              .inputs = (cask_value_t[]){ cask_none() }, .n_inputs = 1 };
    cask_value_t msg;
    assert_ok(cask_value_string("disk on fire", (size_t)-1, &msg, &err), &err);
    spec.inputs = &msg;
    assert_ok(cask_graph_add(g, &spec, &parts[N], &err), &err);
    cask_value_decref(&msg);
    cask_task_t all;
    cask_task_spec_t sum = { .kernel = "cask.add", .n_inputs = N + 1 };
    cask_value_t refs[N + 1];
    for (int i = 0; i <= N; i++)
        refs[i] = cask_ref(parts[i]);
    sum.inputs = refs;
    assert_ok(cask_graph_add(g, &sum, &all, &err), &err);
    cask_value_t r = cask_int(99);
    cask_compute_info_t info;
    atomic_store(&test_calls, 0);
    assert_int_equal(compute_on("sync", g, &all, 1, &r, &info, &err), CASK_EKERNEL);
    assert_int_equal(err.code, CASK_EKERNEL);
    assert_string_equal(err.key, "boom");
    assert_string_equal(err.kernel, "cask.fail");
    assert_string_equal(err.message, "disk on fire");
    assert_int_equal(r.type, CASK_NONE);
    assert_null(info.trace);
    assert_int_equal(atomic_load(&test_calls), 0); /* highest rank ran first and stopped it */
    cask_graph_decref(g);
}

static void test_bad_compute_calls(void **state)
{
    (void)state;
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t a = CASK_DELAYED(g, "cask.const", &err, cask_int(1)), bad = a + 7;
    cask_value_t r;
    assert_int_equal(cask_compute(g, &bad, 1, NULL, &r, NULL, &err), CASK_EMISSING);
    assert_int_equal(cask_compute(g, &a, 0, NULL, &r, NULL, &err), CASK_EINVAL);
    cask_compute_opts_t o = { .scheduler = "warp-drive" };
    assert_int_equal(cask_compute(g, &a, 1, &o, &r, NULL, &err), CASK_ENOSCHED);
    assert_msg_has(&err, "warp-drive");
    setenv("CASK_SCHEDULER", "nope", 1);
    assert_int_equal(cask_compute(g, &a, 1, NULL, &r, NULL, &err), CASK_ENOSCHED);
    assert_msg_has(&err, "CASK_SCHEDULER");
    setenv("CASK_SCHEDULER", "sync", 1);
    setenv("CASK_NUM_WORKERS", "lots", 1);
    assert_int_equal(cask_compute(g, &a, 1, NULL, &r, NULL, &err), CASK_EINVAL);
    assert_msg_has(&err, "CASK_NUM_WORKERS='lots'");
    setenv("CASK_NUM_WORKERS", "3", 1);
    cask_compute_info_t info;
    assert_ok(cask_compute(g, &a, 1, NULL, &r, &info, &err), &err);
    assert_int_equal(info.workers, 1); /* sync has one worker */
    unsetenv("CASK_SCHEDULER");
    unsetenv("CASK_NUM_WORKERS");
    cask_graph_decref(g);
}

/* A kernel error message; a task failing with no message gets one. */
static int k_quiet_fail(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    (void)a, (void)n, (void)out, (void)ctx;
    return 1; /* nonzero without a CASK_E* code or a message */
}

static void test_builtins(void **state)
{
    (void)state;
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    assert_ok(cask_kernel_register("test.quiet_fail", k_quiet_fail, NULL, &err), &err);
    cask_task_t t[6];
    t[0] = CASK_DELAYED(g, "cask.add", &err, cask_int(2), cask_int(3));
    t[1] = CASK_DELAYED(g, "cask.add", &err, cask_int(2), cask_double(0.25));
    t[2] = CASK_DELAYED(g, "cask.spin", &err, cask_int(200), cask_int(7));
    t[3] = CASK_DELAYED(g, "cask.sleep", &err, cask_double(0.002), cask_int(1), cask_int(1));
    t[4] = CASK_DELAYED(g, "cask.const", &err, cask_double(-1.5));
    t[5] = cask_delayed(g, "cask.add", NULL, 0, &err);
    cask_value_t r[6];
    cask_compute_info_t info;
    assert_ok(compute_on("sync", g, t, 6, r, &info, &err), &err);
    assert_int_equal(r[0].type, CASK_INT64);
    assert_int_equal(r[0].u.i, 5);
    assert_int_equal(r[1].type, CASK_DOUBLE);
    assert_true(r[1].u.d == 2.25);
    assert_int_equal(r[2].u.i, 7);
    assert_int_equal(r[3].u.i, 2);
    assert_true(r[4].u.d == -1.5);
    assert_int_equal(r[5].u.i, 0);
    for (size_t i = 0; i < cask_trace_size(info.trace); i++) {
        const cask_trace_event_t *e = cask_trace_event(info.trace, i);
        if (!strncmp(e->key, "spin-", 5))
            assert_true(e->end_ns - e->start_ns >= 200000);
        if (!strncmp(e->key, "sleep-", 6))
            assert_true(e->end_ns - e->start_ns >= 2000000);
    }
    cask_trace_free(info.trace);
    /* Failures: overflow, wrong types, the quiet failure. */
    cask_task_t o = CASK_DELAYED(g, "cask.add", &err, cask_int(INT64_MAX), cask_int(1));
    assert_int_equal(compute_on("sync", g, &o, 1, r, NULL, &err), CASK_EKERNEL);
    assert_msg_has(&err, "overflow");
    cask_value_t s;
    cask_value_string("x", 1, &s, NULL);
    o = CASK_DELAYED(g, "cask.add", &err, cask_int(1), s);
    cask_value_decref(&s);
    assert_int_equal(compute_on("sync", g, &o, 1, r, NULL, &err), CASK_EKERNEL);
    assert_msg_has(&err, "input 1 is a string");
    o = CASK_DELAYED(g, "cask.spin", &err, cask_int(-5));
    assert_int_equal(compute_on("sync", g, &o, 1, r, NULL, &err), CASK_EKERNEL);
    assert_msg_has(&err, "out of range");
    o = cask_delayed(g, "test.quiet_fail", NULL, 0, &err);
    assert_int_equal(compute_on("sync", g, &o, 1, r, NULL, &err), CASK_EKERNEL);
    assert_string_equal(err.kernel, "test.quiet_fail");
    assert_true(err.message[0] != '\0');
    cask_graph_decref(g);
}

/* Callbacks: start, pretask/posttask per task, finish with the status. */
struct cbs { size_t start, pre, post, finish; int status; };
static void cb_start(void *u, size_t n) { ((struct cbs *)u)->start = n; }
static void cb_pre(void *u, const char *k, int w) { (void)k, (void)w; ((struct cbs *)u)->pre++; }
static void cb_post(void *u, const char *k, int w, double s, int st)
{ (void)k, (void)w, (void)s, (void)st; ((struct cbs *)u)->post++; }
static void cb_finish(void *u, int st) { ((struct cbs *)u)->finish++; ((struct cbs *)u)->status = st; }

static void test_callbacks(void **state)
{
    (void)state;
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t a = CASK_DELAYED(g, "test.count", &err, cask_int(1));
    cask_task_t b = CASK_DELAYED(g, "test.count", &err, cask_ref(a));
    struct cbs c = { 0 };
    cask_callbacks_t cb = { cb_start, cb_pre, cb_post, cb_finish, &c };
    cask_compute_opts_t o = { .scheduler = "sync", .callbacks = &cb };
    cask_value_t r;
    assert_ok(cask_compute(g, &b, 1, &o, &r, NULL, &err), &err);
    assert_int_equal(c.start, 2);
    assert_int_equal(c.pre, 2);
    assert_int_equal(c.post, 2);
    assert_int_equal(c.finish, 1);
    assert_int_equal(c.status, 0);
    cask_task_t f = CASK_DELAYED(g, "cask.fail", &err, cask_ref(b));
    memset(&c, 0, sizeof c);
    assert_int_equal(cask_compute(g, &f, 1, &o, &r, NULL, &err), CASK_EKERNEL);
    assert_int_equal(c.finish, 1);
    assert_int_equal(c.status, CASK_EKERNEL);
    cask_graph_decref(g);
}

/* A user scheduler: FIFO order, written against the public run API. */
struct fifo { cask_tid_t *q; size_t head, tail; };
static void fifo_ready(void *ctx, cask_tid_t t)
{
    struct fifo *f = ctx;
    f->q[f->tail++] = t;
}
static int fifo_run(cask_run_t *r, void *udata, cask_error_t *err)
{
    (void)udata, (void)err;
    struct fifo f = { calloc(cask_run_size(r), sizeof(cask_tid_t)), 0, 0 };
    if (!f.q)
        return CASK_ENOMEM;
    size_t n;
    const cask_tid_t *src = cask_run_sources(r, &n);
    for (size_t i = 0; i < n; i++)
        fifo_ready(&f, src[i]);
    while (f.head < f.tail && !cask_run_stopped(r)) {
        cask_tid_t t = f.q[f.head++];
        if (cask_run_exec(r, t, 0) == 0)
            cask_run_complete(r, t, fifo_ready, &f);
    }
    free(f.q);
    return 0;
}

static void test_user_scheduler(void **state)
{
    (void)state;
    cask_error_t err;
    cask_scheduler_t s = { "test-fifo", fifo_run, NULL, 1 };
    assert_ok(cask_scheduler_register(&s, &err), &err);
    assert_int_equal(cask_scheduler_register(&s, &err), CASK_EDUPKEY);
    assert_true(cask_scheduler_exists("test-fifo"));
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t t[30];
    for (int i = 0; i < 30; i++)
        t[i] = i < 5 ? CASK_DELAYED(g, "test.count", &err, cask_int(i))
                     : CASK_DELAYED(g, "test.count", &err, cask_ref(t[i - 5]), cask_ref(t[i - 3]));
    cask_value_t a, b;
    assert_ok(compute_on("test-fifo", g, &t[29], 1, &a, NULL, &err), &err);
    assert_ok(compute_on("sync", g, &t[29], 1, &b, NULL, &err), &err);
    assert_true(cask_value_equal(&a, &b));
    /* A scheduler that stops early is caught. */
    cask_graph_decref(g);
}

static int lazy_run(cask_run_t *r, void *udata, cask_error_t *err)
{
    (void)r, (void)udata, (void)err;
    return 0; /* runs nothing */
}

static void test_scheduler_that_does_nothing(void **state)
{
    (void)state;
    cask_error_t err;
    cask_scheduler_t s = { "test-lazy", lazy_run, NULL, 0 };
    assert_ok(cask_scheduler_register(&s, &err), &err);
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t a = CASK_DELAYED(g, "test.count", &err, cask_int(1));
    cask_value_t r;
    assert_int_equal(compute_on("test-lazy", g, &a, 1, &r, NULL, &err), CASK_EINVAL);
    assert_msg_has(&err, "0 of 1 tasks");
    cask_graph_decref(g);
}


/* The ready queue's order, checked against a plain list: every pop is the
** highest rank among the ready tasks, and among equal ranks (no byte
** buffers here, so nothing frees bytes) the one made ready last. */
struct check { cask_readyq_t q; cask_run_t *r; cask_tid_t *ready; uint64_t *when; size_t n; uint64_t seq; int bad; };
static void check_ready(void *ctx, cask_tid_t t)
{
    struct check *c = ctx;
    c->ready[c->n] = t;
    c->when[c->n++] = c->seq++;
    if (cask_readyq_push(&c->q, t))
        c->bad = 1;
}
static int check_run(cask_run_t *r, void *udata, cask_error_t *err)
{
    (void)udata, (void)err;
    size_t m = cask_run_size(r);
    struct check c = { .r = r, .ready = malloc(m * sizeof(cask_tid_t)), .when = malloc(m * 8) };
    cask_readyq_init(&c.q, r);
    size_t n;
    const cask_tid_t *src = cask_run_sources(r, &n);
    for (size_t i = 0; i < n; i++)
        check_ready(&c, src[i]);
    cask_tid_t t, peeked;
    while (cask_readyq_peek(&c.q, &peeked) && cask_readyq_pop(&c.q, &t)) {
        if (peeked != t)
            c.bad = 1;
        size_t best = 0;
        for (size_t i = 1; i < c.n; i++) {
            double a = cask_run_priority(r, c.ready[i]), b = cask_run_priority(r, c.ready[best]);
            if (a > b || (a == b && c.when[i] > c.when[best]))
                best = i;
        }
        if (c.ready[best] != t)
            c.bad = 1;
        for (size_t i = 0; i < c.n; i++)
            if (c.ready[i] == t) {
                c.ready[i] = c.ready[--c.n];
                c.when[i] = c.when[c.n];
                break;
            }
        if (cask_run_exec(r, t, 0))
            break;
        cask_run_complete(r, t, check_ready, &c);
    }
    cask_readyq_destroy(&c.q);
    free(c.ready);
    free(c.when);
    return c.bad ? CASK_EINVAL : 0;
}

static void test_ready_queue_order(void **state)
{
    (void)state;
    cask_error_t err;
    cask_scheduler_t s = { "test-check", check_run, NULL, 1 };
    assert_ok(cask_scheduler_register(&s, &err), &err);
    srand(7);
    for (int round = 0; round < 30; round++) {
        cask_graph_t *g = cask_graph_new(&err);
        int n = 20 + rand() % (round % 3 == 2 ? 2000 : 300);
        cask_task_t *t = malloc((size_t)n * sizeof *t);
        for (int i = 0; i < n; i++) {
            cask_value_t in[4];
            size_t k = 0;
            for (int j = 0; j < 3 && i > 0; j++)
                if (rand() % 3)
                    in[k++] = cask_ref(t[rand() % i]);
            in[k++] = cask_int(i);
            /* few distinct costs, so equal ranks are common; every third
            ** round many, so the queue holds hundreds of distinct keys */
            int costs = round % 3 == 2 ? 1000 : 3;
            cask_task_spec_t spec = { .kernel = "cask.add", .inputs = in, .n_inputs = k,
                                      .cost = (double)(1 + rand() % costs), .index = (uint64_t)i };
            assert_ok(cask_graph_add(g, &spec, &t[i], &err), &err);
        }
        cask_value_t a, b;
        assert_ok(compute_on("test-check", g, &t[n - 1], 1, &a, NULL, &err), &err);
        assert_ok(compute_on("sync", g, &t[n - 1], 1, &b, NULL, &err), &err);
        assert_true(cask_value_equal(&a, &b));
        free(t);
        cask_graph_decref(g);
    }
}

/* A trace outlives its graph, groups included. */
static void test_trace_outlives_graph(void **state)
{
    (void)state;
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t a = CASK_DELAYED(g, "test.count", &err, cask_int(1));
    cask_task_spec_t spec = { .kernel = "test.count", .inputs = (cask_value_t[]){ cask_ref(a) },
                              .n_inputs = 1, .key = "final", .group = "finish" };
    cask_task_t b;
    assert_ok(cask_graph_add(g, &spec, &b, &err), &err);
    char key_a[CASK_KEY_MAX + 1];
    strcpy(key_a, cask_graph_key(g, a));
    cask_value_t r;
    cask_compute_info_t info;
    assert_ok(compute_on("sync", g, &b, 1, &r, &info, &err), &err);
    cask_graph_decref(g);
    const cask_trace_event_t *e0 = cask_trace_event(info.trace, 0), *e1 = cask_trace_event(info.trace, 1);
    assert_string_equal(e0->key, key_a);
    assert_string_equal(e0->group, "count"); /* a delayed call's: its name */
    assert_string_equal(e1->key, "final");
    assert_string_equal(e1->group, "finish");
    cask_trace_free(info.trace);
}

/* Ranks: rank(t) = cost(t) + the largest rank among t's successors,
** recomputed here from the graph's own costs. Mixes kernels with constant
** costs and a cost model (cask.spin), and tasks with costs of their own.
** Priorities: n distinct values from 1 to n. */
static const cask_graph_t *rank_graph;
static void ignore_ready(void *ctx, cask_tid_t t) { (void)ctx, (void)t; }
static int rank_run(cask_run_t *r, void *udata, cask_error_t *err)
{
    (void)udata, (void)err;
    int bad = 0;
    char seen[256] = { 0 };
    if (cask_run_size(r) > sizeof seen)
        return CASK_EINVAL;
    for (cask_tid_t t = 0; t < cask_run_size(r); t++) {
        size_t n;
        const cask_tid_t *s = cask_run_successors(r, t, &n);
        double best = 0;
        for (size_t i = 0; i < n; i++)
            if (cask_run_rank(r, s[i]) > best)
                best = cask_run_rank(r, s[i]);
        double cost = cask_graph_cost(rank_graph, cask_graph_find(rank_graph, cask_run_key(r, t)));
        if (cask_run_rank(r, t) != cost + best)
            bad = 1;
        double pr = cask_run_priority(r, t);
        if (pr < 1 || pr > (double)cask_run_size(r) || pr != floor(pr) || seen[(size_t)pr - 1]++)
            bad = 1;
    }
    /* then run it, in order */
    for (cask_tid_t t = 0; t < cask_run_size(r) && !bad; t++)
        if (!cask_run_exec(r, t, 0))
            cask_run_complete(r, t, ignore_ready, NULL);
    return bad ? CASK_EINVAL : 0;
}

static void test_ranks(void **state)
{
    (void)state;
    cask_error_t err;
    cask_scheduler_t s = { "test-ranks", rank_run, NULL, 1 };
    assert_ok(cask_scheduler_register(&s, &err), &err);
    cask_graph_t *g = cask_graph_new(&err);
    rank_graph = g;
    enum { N = 200 };
    cask_task_t t[N];
    srand(11);
    for (int i = 0; i < N; i++) {
        cask_value_t in[4];
        size_t k = 0;
        int kind = rand() % 3;
        if (kind == 0)
            in[k++] = cask_int(rand() % 50); /* spin: microseconds */
        for (int j = 0; j < 3 && i > 0; j++)
            if (rand() % 2)
                in[k++] = cask_ref(t[rand() % i]);
        cask_task_spec_t spec = { .kernel = kind == 0 ? "cask.spin" : "cask.add", .inputs = in,
                                  .n_inputs = k, .index = (uint64_t)i,
                                  .cost = kind == 2 ? 1e-4 * (rand() % 5 + 1) : 0 };
        assert_ok(cask_graph_add(g, &spec, &t[i], &err), &err);
    }
    cask_value_t r;
    assert_ok(compute_on("test-ranks", g, &t[N - 1], 1, &r, NULL, &err), &err);
    cask_graph_decref(g);
}

/* test.first: the first item of its list input, as the list holds it. */
static CASK_KERNEL(first_item)
{
    *out = cask_list_item(&args[0], 0);
    return 0;
}

/* List items are borrowed views: one returned by a kernel, or given as a
** literal input, becomes a value of its own, so it outlives its list. */
static void test_list_items_kept(void **state)
{
    (void)state;
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    cask_value_t s, list;
    assert_ok(cask_value_string("kept", 4, &s, &err), &err);
    assert_ok(cask_value_list(&s, 1, &list, &err), &err);
    cask_value_decref(&s);
    cask_task_t l = CASK_DELAYED(g, "cask.const", &err, list);
    cask_task_t f = CASK_CALL(g, first_item, &err, cask_ref(l));
    cask_value_t item = cask_list_item(&list, 0);
    cask_task_t lit = CASK_DELAYED(g, "cask.const", &err, item);
    cask_value_decref(&list); /* the graph holds the list, and a copy of the item */
    const char *scheds[] = { "sync", "threads", "processes" };
    for (size_t k = 0; k < 3; k++) {
        cask_compute_opts_t o = { .scheduler = scheds[k], .workers = 2 };
        cask_value_t r[2];
        assert_ok(cask_compute(g, (cask_task_t[]){ f, lit }, 2, &o, r, NULL, &err), &err);
        for (int i = 0; i < 2; i++) {
            assert_string_equal(cask_value_str(&r[i], NULL), "kept");
            cask_value_decref(&r[i]);
        }
    }
    cask_graph_decref(g);
}

/* A graph keeps the plan of its last compute: the same outputs again, other
** outputs, the same in another order, and the graph grown meanwhile (its
** columns move: a stale view of them would be read after free) all give
** what a fresh graph gives. */
static void test_plan_memo_outputs(void **state)
{
    (void)state;
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t a = CASK_DELAYED(g, "test.count", &err, cask_int(1));          /* 2 */
    cask_task_t b = CASK_DELAYED(g, "test.count", &err, cask_int(10));         /* 11 */
    cask_task_t c = CASK_DELAYED(g, "test.count", &err, cask_ref(a));          /* 3 */
    cask_compute_opts_t o = { .scheduler = "sync" };
    cask_value_t r[2];
    struct { cask_task_t outs[2]; size_t n; int64_t want[2]; } asks[] = {
        { { c }, 1, { 3 } },       { { c }, 1, { 3 } },       { { c }, 1, { 3 } },
        { { b }, 1, { 11 } },
        { { a, b }, 2, { 2, 11 } }, { { b, a }, 2, { 11, 2 } }, { { b, a }, 2, { 11, 2 } },
        { { c }, 1, { 3 } },
    };
    for (size_t i = 0; i < sizeof asks / sizeof *asks; i++) {
        long calls = atomic_load(&test_calls);
        assert_ok(cask_compute(g, asks[i].outs, asks[i].n, &o, r, NULL, &err), &err);
        for (size_t j = 0; j < asks[i].n; j++)
            assert_int_equal(r[j].u.i, asks[i].want[j]);
        /* only the outputs' ancestors ran: c needs a, a and b need nothing else */
        assert_int_equal(atomic_load(&test_calls) - calls, asks[i].outs[0] == c ? 2 : (long)asks[i].n);
        if (i == 1) /* grow it: its columns are moved (the next compute has its plan) */
            for (int k = 0; k < 20000; k++)
                assert_true(CASK_DELAYED(g, "test.count", &err, cask_int(k), cask_int(k)) != CASK_NO_TASK);
    }
    cask_graph_decref(g);
}

/* Two chains that join, one of "test.heavy", one of "test.light": one
** worker runs the costlier chain first. Registering the kernels again with
** their costs swapped makes a graph computed before order as a new graph
** would: its kept plan is not used. */
static const char *first_group(cask_graph_t *g, cask_task_t out, char *buf, size_t size)
{
    cask_error_t err;
    cask_compute_opts_t o = { .scheduler = "sync", .flags = CASK_TRACE };
    cask_value_t r;
    cask_compute_info_t info;
    assert_ok(cask_compute(g, &out, 1, &o, &r, &info, &err), &err);
    assert_int_equal(r.u.i, 3 + 3 + 1); /* each chain: 1, 2, 3; then their sum + 1 */
    snprintf(buf, size, "%s", cask_trace_event(info.trace, 0)->group);
    cask_trace_free(info.trace);
    return buf;
}

static cask_task_t two_chains(cask_graph_t *g)
{
    cask_error_t err;
    cask_task_t h = CASK_DELAYED(g, "test.heavy", &err, cask_int(0));
    cask_task_t l = CASK_DELAYED(g, "test.light", &err, cask_int(0));
    for (int i = 0; i < 2; i++) {
        h = CASK_DELAYED(g, "test.heavy", &err, cask_ref(h));
        l = CASK_DELAYED(g, "test.light", &err, cask_ref(l));
    }
    return CASK_DELAYED(g, "test.count", &err, cask_ref(h), cask_ref(l));
}

/* test.swap: registers test.heavy at 1 s a call and test.light at 1 us. */
static int k_swap(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    (void)a, (void)n;
    cask_error_t err;
    if (cask_kernel_register("test.heavy", k_count, &(cask_kernel_opts_t){ .cost = 1 }, &err) ||
        cask_kernel_register("test.light", k_count, &(cask_kernel_opts_t){ .cost = 1e-6 }, &err))
        return cask_kernel_fail(ctx, "%s", err.message);
    *out = cask_int(0);
    return 0;
}

static void test_plan_memo_kernel_cost(void **state)
{
    (void)state;
    cask_error_t err;
    char buf[64];
    cask_kernel_opts_t heavy = { .cost = 1 }, light = { .cost = 1e-6 };
    assert_ok(cask_kernel_register("test.heavy", k_count, &heavy, &err), &err);
    assert_ok(cask_kernel_register("test.light", k_count, &light, &err), &err);
    assert_ok(cask_kernel_register("test.swap", k_swap, NULL, &err), &err);
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t out = two_chains(g);
    assert_string_equal(first_group(g, out, buf, sizeof buf), "heavy");
    assert_string_equal(first_group(g, out, buf, sizeof buf), "heavy"); /* its plan, kept */
    heavy.cost = 1e-6;
    light.cost = 1;
    assert_ok(cask_kernel_register("test.heavy", k_count, &heavy, &err), &err);
    assert_ok(cask_kernel_register("test.light", k_count, &light, &err), &err);
    cask_graph_t *fresh = cask_graph_new(&err);
    assert_string_equal(first_group(fresh, two_chains(fresh), buf, sizeof buf), "light");
    assert_string_equal(first_group(g, out, buf, sizeof buf), "light");
    cask_graph_decref(fresh);
    cask_graph_decref(g);

    /* Costs swapped back by a task while the compute runs: the plan it
    ** keeps was ranked before, so the next compute ranks again. */
    g = cask_graph_new(&err);
    cask_task_t outs[2] = { two_chains(g), CASK_DELAYED(g, "test.swap", &err, cask_int(0)) };
    for (int k = 0; k < 2; k++) {
        cask_compute_opts_t o = { .scheduler = "sync", .flags = CASK_TRACE };
        cask_value_t r[2];
        cask_compute_info_t info;
        assert_ok(cask_compute(g, outs, 2, &o, r, &info, &err), &err);
        const char *first = NULL;
        for (size_t i = 0; !first && i < cask_trace_size(info.trace); i++) {
            const char *grp = cask_trace_event(info.trace, i)->group;
            if (!strcmp(grp, "heavy") || !strcmp(grp, "light"))
                first = grp;
        }
        assert_non_null(first);
        assert_string_equal(first, k ? "heavy" : "light"); /* heavy costs 1 s again */
        cask_trace_free(info.trace);
    }
    cask_graph_decref(g);
}

/* Computes of one graph from several threads at once, of the same outputs
** and of others, on threads and sync: each takes the kept plan or makes
** its own (TSan runs this). */
typedef struct memo_job {
    cask_graph_t *g;
    cask_task_t outs[2];
    int64_t want[2];
} memo_job_t;

static void *memo_worker(void *arg)
{
    memo_job_t *j = arg;
    cask_error_t err;
    for (int i = 0; i < 40; i++) {
        size_t k = (size_t)i % 2;
        cask_compute_opts_t o = { .scheduler = i % 3 ? "threads" : "sync", .workers = 2 };
        cask_value_t r;
        if (cask_compute(j->g, &j->outs[k], 1, &o, &r, NULL, &err) || r.u.i != j->want[k])
            return (void *)1;
    }
    return NULL;
}

static void test_plan_memo_threads(void **state)
{
    (void)state;
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t t = CASK_DELAYED(g, "test.count", &err, cask_int(0));
    cask_task_t mid = CASK_NO_TASK;
    for (int i = 1; i < 2000; i++) {
        t = CASK_DELAYED(g, "test.count", &err, cask_ref(t));
        if (i == 999)
            mid = t;
    }
    memo_job_t jobs[3] = {
        { g, { t, mid }, { 2000, 1000 } },
        { g, { mid, t }, { 1000, 2000 } },
        { g, { t, t }, { 2000, 2000 } },
    };
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&th[i], NULL, memo_worker, &jobs[i]), 0);
    for (int i = 0; i < 3; i++) {
        void *rc;
        pthread_join(th[i], &rc);
        assert_null(rc);
    }
    cask_graph_decref(g);
}

/* Side outputs (sinks that read what the main work reads too) come before
** the main work in the graph's index order; memory's order walks from the
** deepest sink first, so each block is freed soon after it is made,
** instead of every block being made first for the side outputs and held
** until the main chain reads it. (The side outputs are costed so that
** nothing has slack: only memory's order decides.) */
static cask_task_t add_costed(cask_graph_t *g, const char *kernel, double cost,
                              const cask_value_t *in, size_t n)
{
    cask_error_t err;
    cask_task_t t;
    cask_task_spec_t spec = { .kernel = kernel, .inputs = in, .n_inputs = n, .cost = cost };
    assert_ok(cask_graph_add(g, &spec, &t, &err), &err);
    return t;
}

static void test_side_outputs_not_first(void **state)
{
    (void)state;
    enum { K = 16, BLOCK = 3000 * 8 };
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t mid[K], outs[K + 1];
    for (int i = 0; i < K; i++) {
        mid[i] = add_costed(g, "test.vec", 1, (cask_value_t[]){ cask_int(2999 + 3000 * i) }, 1);
        outs[i] = add_costed(g, "test.count", K - 1, (cask_value_t[]){ cask_ref(mid[i]) }, 1);
    }
    /* the main chain reads the blocks last to first: a block's side output,
    ** ordered first, leaves it waiting for the chain to come down to it */
    cask_task_t acc = add_costed(g, "test.count", 1, (cask_value_t[]){ cask_ref(mid[K - 1]) }, 1);
    for (int i = K - 2; i >= 0; i--)
        acc = add_costed(g, "test.count", 1, (cask_value_t[]){ cask_ref(acc), cask_ref(mid[i]) }, 2);
    outs[K] = acc;
    cask_value_t r[K + 1];
    cask_compute_info_t info;
    cask_compute_opts_t o = { .scheduler = "sync" };
    assert_ok(cask_compute(g, outs, K + 1, &o, r, &info, &err), &err);
    if (info.peak_bytes > 3 * BLOCK)
        fail_msg("%zu bytes alive at once: %zu blocks of %d", info.peak_bytes,
                 info.peak_bytes / BLOCK, K);
    for (int i = 0; i <= K; i++)
        cask_value_decref(&r[i]);
    cask_graph_decref(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shared_parts_once),
        cmocka_unit_test(test_trace),
        cmocka_unit_test(test_critical_path_first),
        cmocka_unit_test(test_intermediates_freed_early),
        cmocka_unit_test(test_peak_bytes),
        cmocka_unit_test(test_error_stops),
        cmocka_unit_test(test_bad_compute_calls),
        cmocka_unit_test(test_builtins),
        cmocka_unit_test(test_callbacks),
        cmocka_unit_test(test_user_scheduler),
        cmocka_unit_test(test_scheduler_that_does_nothing),
        cmocka_unit_test(test_ready_queue_order),
        cmocka_unit_test(test_trace_outlives_graph),
        cmocka_unit_test(test_ranks),
        cmocka_unit_test(test_list_items_kept),
        cmocka_unit_test(test_plan_memo_outputs),
        cmocka_unit_test(test_plan_memo_kernel_cost),
        cmocka_unit_test(test_plan_memo_threads),
        cmocka_unit_test(test_side_outputs_not_first),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}

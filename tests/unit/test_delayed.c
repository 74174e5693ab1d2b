/* tests/unit/test_delayed.c: delayed calls, calls of C functions by name,
** and Pool.map. */
#include <stdio.h>
#include <stdlib.h>

#include "testutil.h"

static int k_square(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    if (n != 1 || !cask_value_is_number(&a[0]))
        return cask_kernel_fail(ctx, "square takes a number");
    *out = a[0].type == CASK_INT64 ? cask_int(a[0].u.i * a[0].u.i)
                                   : cask_double(a[0].u.d * a[0].u.d);
    return 0;
}

static int setup(void **state)
{
    (void)state;
    cask_error_t err;
    register_test_kernels();
    return cask_kernel_register("test.square", k_square, NULL, &err);
}

static void test_compose_and_share(void **state)
{
    (void)state;
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    /* (a + b) used by two outputs; built twice, computed once. */
    cask_task_t a = CASK_DELAYED(g, "test.count", &err, cask_int(10)); /* 11 */
    cask_task_t b = CASK_DELAYED(g, "test.count", &err, cask_int(20)); /* 21 */
    cask_task_t s1 = CASK_DELAYED(g, "test.count", &err, cask_ref(a), cask_ref(b)); /* 33 */
    cask_task_t s2 = CASK_DELAYED(g, "test.count", &err, cask_ref(a), cask_ref(b));
    assert_int_equal(s1, s2);
    cask_task_t x = CASK_DELAYED(g, "test.count", &err, cask_ref(s1), cask_int(0)); /* 34 */
    cask_task_t y = CASK_DELAYED(g, "test.count", &err, cask_ref(s2), cask_int(1)); /* 35 */
    cask_task_t outs[2] = { x, y };
    cask_value_t r[2];
    atomic_store(&test_calls, 0);
    assert_ok(cask_compute(g, outs, 2, NULL, r, NULL, &err), &err);
    assert_int_equal(r[0].u.i, 34);
    assert_int_equal(r[1].u.i, 35);
    assert_int_equal(atomic_load(&test_calls), 5);
    cask_graph_decref(g);
}

static void test_failed_call_propagates(void **state)
{
    (void)state;
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t a = cask_delayed(g, "nope.kernel", NULL, 0, &err);
    assert_int_equal(a, CASK_NO_TASK);
    cask_task_t b = CASK_DELAYED(g, "test.count", &err, cask_ref(a));
    assert_int_equal(b, CASK_NO_TASK);
    assert_int_equal(err.code, CASK_EINVAL); /* as delayed.h says */
    assert_msg_has(&err, "an earlier call failed");
    assert_int_equal(cask_delayed(g, NULL, NULL, 0, &err), CASK_NO_TASK);
    cask_graph_decref(g);
}

/* map: chunk counts, keys sharing one token, results in item order. */
static void test_map_chunks(void **state)
{
    (void)state;
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    enum { N = 23 };
    cask_value_t items[N];
    for (int i = 0; i < N; i++)
        items[i] = cask_int(i - 3);
    cask_task_t m = cask_map(g, "test.square", items, N, 5, &err);
    assert_int_not_equal(m, CASK_NO_TASK);
    /* 5+5+5+5+3: five chunk tasks, then the list */
    const cask_value_t *in;
    size_t n;
    assert_ok(cask_graph_inputs(g, m, &in, &n, &err), &err);
    assert_int_equal(n, 5);
    const char *k0 = cask_graph_key(g, in[0].u.task), *km = cask_graph_key(g, m);
    assert_int_equal(strncmp(k0, "square-", 7), 0);
    assert_int_equal(strncmp(k0, km, strlen(k0) - 1), 0); /* same NAME-TOKEN */
    assert_string_equal(km + strlen(km) - 2, "-5");
    char grp[32];
    cask_graph_group(g, m, grp, sizeof grp, &err);
    assert_string_equal(grp, "square");
    cask_value_t r;
    cask_compute_info_t info;
    assert_ok(cask_compute(g, &m, 1, NULL, &r, &info, &err), &err);
    assert_int_equal(info.tasks, 6);
    assert_int_equal(r.type, CASK_LIST);
    assert_int_equal(cask_list_len(&r), N);
    for (int i = 0; i < N; i++) {
        cask_value_t v = cask_list_item(&r, (size_t)i);
        assert_int_equal(v.type, CASK_INT64);
        assert_int_equal(cask_value_int(&v), (int64_t)(i - 3) * (i - 3));
    }
    cask_value_decref(&r);
    /* The same map again is the same tasks; another chunk size is not. */
    assert_int_equal(cask_map(g, "test.square", items, N, 5, &err), m);
    cask_task_t other = cask_map(g, "test.square", items, N, 7, &err);
    assert_int_not_equal(other, m);
    assert_ok(cask_graph_inputs(g, other, &in, &n, &err), &err);
    assert_int_equal(n, 4);
    /* chunksize 0: about four chunks per core. */
    other = cask_map(g, "test.square", items, N, 0, &err);
    assert_ok(cask_graph_inputs(g, other, &in, &n, &err), &err);
    assert_true(n >= 1 && n <= N);
    /* no items: an empty list */
    cask_task_t none = cask_map(g, "test.square", NULL, 0, 3, &err);
    assert_ok(cask_compute_one(g, none, &r, &err), &err);
    assert_int_equal(r.type, CASK_LIST);
    assert_int_equal(cask_list_len(&r), 0);
    cask_value_decref(&r);
    cask_graph_decref(g);
}

/* test.describe: "ITEM is TYPE" for any item, a string. */
static CASK_KERNEL(describe)
{
    char *s = cask_value_to_json(&args[0]);
    char buf[128];
    snprintf(buf, sizeof buf, "%s is %s", s ? s : "?", cask_type_name(args[0].type));
    free(s);
    return cask_value_string(buf, (size_t)-1, out, NULL);
}

/* Items may be refs; results may be any value, on every scheduler. */
static void test_map_any_values(void **state)
{
    (void)state;
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    cask_value_t hello;
    assert_ok(cask_value_string("hi", 2, &hello, &err), &err);
    cask_value_t items[4] = { cask_ref(CASK_DELAYED(g, "cask.add", &err, cask_int(2))),
                              cask_double(1.5), hello, cask_none() };
    cask_task_t m = CASK_MAP(g, describe, items, 4, 3, &err);
    const char *want[4] = { "2 is int64", "1.5 is double", "\"hi\" is string", "null is none" };
    const char *scheds[] = { "sync", "threads", "processes" };
    for (size_t s = 0; s < sizeof scheds / sizeof *scheds; s++) {
        cask_compute_opts_t o = { .scheduler = scheds[s], .workers = 2 };
        cask_value_t r;
        assert_ok(cask_compute(g, &m, 1, &o, &r, NULL, &err), &err);
        assert_int_equal(cask_list_len(&r), 4);
        for (size_t i = 0; i < 4; i++) {
            cask_value_t v = cask_list_item(&r, i);
            assert_string_equal(cask_value_str(&v, NULL), want[i]);
        }
        cask_value_decref(&r);
    }
    /* squares of numbers: doubles stay doubles */
    cask_task_t sq = cask_map(g, "test.square", items, 2, 2, &err);
    cask_value_t r;
    assert_ok(cask_compute_one(g, sq, &r, &err), &err);
    cask_value_t v0 = cask_list_item(&r, 0), v1 = cask_list_item(&r, 1);
    assert_true(v0.type == CASK_INT64 && cask_value_int(&v0) == 4);
    assert_true(v1.type == CASK_DOUBLE && cask_value_double(&v1) == 2.25);
    cask_value_decref(&r);
    /* errors */
    size_t before = cask_graph_size(g);
    assert_int_equal(cask_map(g, "no.kernel", items, 3, 2, &err), CASK_NO_TASK);
    assert_int_equal(err.code, CASK_ENOKERNEL);
    assert_int_equal(cask_map(g, "test.square", NULL, 3, 2, &err), CASK_NO_TASK);
    assert_int_equal(err.code, CASK_EINVAL);
    cask_value_t bad[1] = { cask_ref(CASK_NO_TASK) };
    assert_int_equal(cask_map(g, "test.square", bad, 1, 2, &err), CASK_NO_TASK);
    assert_int_equal(err.code, CASK_EINVAL);
    assert_int_equal(cask_graph_size(g), before);
    cask_task_t failing = cask_map(g, "test.square", items + 2, 1, 1, &err); /* a string */
    assert_int_equal(cask_compute_one(g, failing, &r, &err), CASK_EKERNEL);
    assert_msg_has(&err, "square takes a number");
    cask_value_decref(&hello);
    cask_graph_decref(g);
}

static CASK_KERNEL(inc)
{
    *out = cask_int(cask_value_int(&args[0]) + 1);
    return 0;
}

/* The smallest program: a C function called by its own name; groups are
** the function's name, keys equal for equal calls. */
static void test_call_by_function(void **state)
{
    (void)state;
    cask_graph_t *g = cask_graph_new(NULL);
    cask_task_t a = CASK_CALL(g, inc, NULL, cask_int(1));
    cask_task_t b = CASK_CALL(g, inc, NULL, cask_ref(a));
    assert_int_equal(CASK_CALL(g, inc, NULL, cask_int(1)), a);
    cask_value_t v;
    assert_int_equal(cask_compute_one(g, b, &v, NULL), 0);
    assert_int_equal(cask_value_int(&v), 3);
    assert_true(cask_kernel_exists("inc"));
    char grp[32];
    assert_int_equal(cask_graph_group(g, b, grp, sizeof grp, NULL), 3);
    assert_string_equal(grp, "inc");
    /* another function under that name is refused */
    cask_error_t err;
    assert_int_equal(cask_delayed_fn(g, "inc", describe, (cask_value_t[]){ cask_int(1) }, 1, &err),
                     CASK_NO_TASK);
    assert_int_equal(err.code, CASK_EDUPKEY);
    /* a name of one's own: key and group */
    cask_task_t c = cask_delayed_named(g, "split", "test.square", (cask_value_t[]){ cask_int(5) },
                                       1, &err);
    assert_int_equal(strncmp(cask_graph_key(g, c), "split-", 6), 0);
    cask_graph_group(g, c, grp, sizeof grp, NULL);
    assert_string_equal(grp, "split");
    cask_graph_decref(g);
}

/* Groups stay right however calls interleave: kernels' names, names of
** one's own from a buffer the caller rewrites between calls, and explicit
** groups of cask_graph_add (the graph remembers the last group it saw). */
static void test_groups_interleaved(void **state)
{
    (void)state;
    cask_graph_t *g = cask_graph_new(NULL);
    enum { N = 60 };
    cask_task_t t[N];
    char want[N][16], buf[16];
    for (int i = 0; i < N; i++) {
        cask_value_t arg = cask_int(i);
        switch (i % 4) {
        case 0:
            t[i] = CASK_CALL(g, inc, NULL, arg);
            strcpy(want[i], "inc");
            break;
        case 1:
            t[i] = cask_delayed(g, "test.square", &arg, 1, NULL);
            strcpy(want[i], "square");
            break;
        case 2: /* the same buffer, new contents each time */
            snprintf(buf, sizeof buf, "part%d", i % 3);
            t[i] = cask_delayed_named(g, buf, "test.square", &arg, 1, NULL);
            strcpy(want[i], buf);
            break;
        default:
            snprintf(buf, sizeof buf, "inc"); /* a kernel's name, given as a group */
            if (i % 8 == 7)
                snprintf(buf, sizeof buf, "inc2");
            cask_task_spec_t spec = { .kernel = "test.square", .inputs = &arg, .n_inputs = 1,
                                      .name = "sq", .group = buf };
            assert_int_equal(cask_graph_add(g, &spec, &t[i], NULL), 0);
            strcpy(want[i], buf);
        }
        assert_int_not_equal(t[i], CASK_NO_TASK);
    }
    for (int i = 0; i < N; i++) {
        char grp[16];
        assert_int_equal(cask_graph_group(g, t[i], grp, sizeof grp, NULL), (int)strlen(want[i]));
        assert_string_equal(grp, want[i]);
    }
    cask_graph_decref(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compose_and_share),
        cmocka_unit_test(test_failed_call_propagates),
        cmocka_unit_test(test_map_chunks),
        cmocka_unit_test(test_map_any_values),
        cmocka_unit_test(test_call_by_function),
        cmocka_unit_test(test_groups_interleaved),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}

/* tests/unit/test_delayed.c: delayed calls and the chunked map helper. */
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

static int k_name(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    (void)a, (void)n;
    return cask_value_string("x", 1, out, NULL) ? cask_kernel_fail(ctx, "oom") : 0;
}

static int setup(void **state)
{
    (void)state;
    cask_error_t err;
    register_test_kernels();
    return cask_kernel_register("test.square", k_square, NULL, &err) ||
           cask_kernel_register("test.name", k_name, NULL, &err);
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
    assert_ok(cask_compute(g, outs, 2, r, NULL, NULL, &err), &err);
    assert_int_equal(r[0].u.i, 34);
    assert_int_equal(r[1].u.i, 35);
    assert_int_equal(atomic_load(&test_calls), 5);
    cask_graph_free(g);
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
    cask_graph_free(g);
}

/* map: chunk counts, order, keys sharing one token, results. */
static void test_map_chunks(void **state)
{
    (void)state;
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    enum { N = 23 };
    cask_value_t items[N];
    for (int i = 0; i < N; i++)
        items[i] = cask_int(i - 3);
    cask_task_t chunks[N];
    size_t n;
    assert_ok(cask_delayed_map(g, "test.square", items, N, 5, chunks, N, &n, &err), &err);
    assert_int_equal(n, 5); /* 5+5+5+5+3 */
    const char *k0 = cask_graph_key(g, chunks[0]), *k4 = cask_graph_key(g, chunks[4]);
    assert_int_equal(strncmp(k0, "square-", 7), 0);
    assert_int_equal(strncmp(k0, k4, strlen(k0) - 1), 0); /* same NAME-TOKEN */
    assert_string_equal(k4 + strlen(k4) - 2, "-4");
    cask_value_t r[5];
    assert_ok(cask_compute(g, chunks, n, r, NULL, NULL, &err), &err);
    int k = 0;
    for (size_t c = 0; c < n; c++) {
        cask_nd_t nd;
        assert_int_equal(cask_value_nd(&r[c], &nd), 0);
        assert_int_equal(nd.dtype, CASK_I64);
        assert_int_equal(nd.size, c < 4 ? 5 : 3);
        for (size_t i = 0; i < nd.size; i++, k++)
            assert_int_equal(((int64_t *)nd.data)[i], (int64_t)(k - 3) * (k - 3));
        cask_value_decref(&r[c]);
    }
    assert_int_equal(k, N);
    /* The same map again is the same tasks; another chunk size is not. */
    cask_task_t again[N], other[N];
    assert_ok(cask_delayed_map(g, "test.square", items, N, 5, again, N, &n, &err), &err);
    assert_int_equal(again[2], chunks[2]);
    assert_ok(cask_delayed_map(g, "test.square", items, N, 7, other, N, &n, &err), &err);
    assert_int_equal(n, 4);
    assert_int_not_equal(other[0], chunks[0]);
    /* chunksize 0: about four chunks per core. */
    assert_ok(cask_delayed_map(g, "test.square", items, N, 0, other, N, &n, &err), &err);
    assert_true(n >= 1 && n <= N);
    cask_graph_free(g);
}

/* Items may be refs; doubles make a float64 chunk; bad results fail. */
static void test_map_refs_and_types(void **state)
{
    (void)state;
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    cask_value_t items[3] = { cask_ref(CASK_DELAYED(g, "cask.add", &err, cask_int(2))),
                              cask_double(1.5), cask_int(3) };
    cask_task_t c, two[2];
    size_t n;
    assert_ok(cask_delayed_map(g, "test.square", items, 3, 3, &c, 1, &n, &err), &err);
    cask_value_t r;
    assert_ok(cask_compute(g, &c, 1, &r, NULL, NULL, &err), &err);
    cask_nd_t nd;
    cask_value_nd(&r, &nd);
    assert_int_equal(nd.dtype, CASK_F64);
    double *d = nd.data;
    assert_true(d[0] == 4.0 && d[1] == 2.25 && d[2] == 9.0);
    cask_value_decref(&r);
    size_t before = cask_graph_size(g);
    assert_int_equal(cask_delayed_map(g, "test.name", items, 3, 2, &c, 1, &n, &err), CASK_ELIMIT);
    assert_msg_has(&err, "make 2 tasks; room for 1");
    assert_int_equal(cask_graph_size(g), before);
    assert_ok(cask_delayed_map(g, "test.name", items, 3, 2, two, 2, &n, &err), &err);
    assert_int_equal(cask_compute(g, two, 1, &r, NULL, NULL, &err), CASK_EKERNEL);
    assert_msg_has(&err, "returned a string");
    assert_int_equal(cask_delayed_map(g, "no.kernel", items, 3, 2, two, 2, &n, &err), CASK_ENOKERNEL);
    assert_int_equal(cask_delayed_map(g, "test.square", items, 0, 2, two, 2, &n, &err), CASK_EINVAL);
    cask_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compose_and_share),
        cmocka_unit_test(test_failed_call_propagates),
        cmocka_unit_test(test_map_chunks),
        cmocka_unit_test(test_map_refs_and_types),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}

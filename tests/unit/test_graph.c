/* tests/unit/test_graph.c: building graphs: keys, sharing, checks, storage. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "testutil.h"

long cask__alloc_fail_at(long n); /* graph/util.c: the test-only failure hook */

static int k_clock(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    (void)a, (void)n, (void)ctx;
    *out = cask_int((int64_t)cask_now_ns());
    return 0;
}

static double cost_first(const cask_value_t *a, size_t n)
{
    return n && a[0].type == CASK_INT64 ? (double)a[0].u.i : 0;
}

static int setup(void **state)
{
    (void)state;
    cask_error_t err;
    register_test_kernels();
    if (cask_kernel_register("test.clock", k_clock,
                             &(cask_kernel_opts_t){ .flags = CASK_KERNEL_IMPURE }, &err) ||
        cask_kernel_register("test.costly", k_count,
                             &(cask_kernel_opts_t){ .cost_fn = cost_first }, &err))
        return -1;
    return 0;
}

/* Build add(1, x) for x = leaf(i) in a fresh graph and return the key. */
static void build_expr(cask_graph_t *g, cask_task_t *out)
{
    cask_error_t err;
    cask_task_t a = CASK_DELAYED(g, "test.count", &err, cask_int(1), cask_int(2));
    cask_task_t b = CASK_DELAYED(g, "test.count", &err, cask_ref(a), cask_int(3));
    *out = CASK_DELAYED(g, "cask.add", &err, cask_ref(a), cask_ref(b), cask_double(0.5));
    assert_int_not_equal(*out, CASK_NO_TASK);
}

static void test_deterministic_keys(void **state)
{
    (void)state;
    cask_error_t err;
    cask_graph_t *g1 = cask_graph_new(&err), *g2 = cask_graph_new(&err);
    cask_task_t t1, t2, t3;
    build_expr(g1, &t1);
    build_expr(g2, &t2);
    assert_string_equal(cask_graph_key(g1, t1), cask_graph_key(g2, t2));
    /* Building it again in the same graph shares every task. */
    build_expr(g1, &t3);
    assert_int_equal(t3, t1);
    assert_int_equal(cask_graph_size(g1), 3);
    /* Key shape: NAME-TOKEN-INDEX with a 16-hex-digit token. */
    const char *k = cask_graph_key(g1, t1);
    assert_int_equal(strncmp(k, "add-", 4), 0);
    assert_int_equal(strlen(k), 4 + 16 + 2);
    assert_string_equal(k + 20, "-0");
    /* A different literal gives a different key. */
    cask_task_t d = CASK_DELAYED(g1, "test.count", &err, cask_int(1), cask_int(3));
    cask_task_t e = CASK_DELAYED(g1, "test.count", &err, cask_int(1), cask_int(2));
    assert_int_not_equal(d, e);
    /* An int and a double of equal value are different inputs. */
    cask_task_t f = CASK_DELAYED(g1, "cask.add", &err, cask_double(1), cask_int(2));
    cask_task_t h = CASK_DELAYED(g1, "cask.add", &err, cask_int(1), cask_int(2));
    assert_int_not_equal(f, h);
    assert_int_equal(cask_graph_find(g1, k), t1);
    assert_int_equal(cask_graph_find(g1, "nope"), CASK_NO_TASK);
    cask_graph_decref(g1);
    cask_graph_decref(g2);
}

static void test_impure_fresh_keys(void **state)
{
    (void)state;
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t a = cask_delayed(g, "test.clock", NULL, 0, &err);
    cask_task_t b = cask_delayed(g, "test.clock", NULL, 0, &err);
    assert_int_not_equal(a, CASK_NO_TASK);
    assert_int_not_equal(a, b);
    assert_string_not_equal(cask_graph_key(g, a), cask_graph_key(g, b));
    /* A graph with no input anywhere: empty lists, and it computes. */
    const cask_value_t *in;
    size_t n = 9;
    assert_int_equal(cask_graph_inputs(g, a, &in, &n, NULL), 0);
    assert_int_equal(n, 0);
    assert_int_equal(cask_graph_after(g, a, &in, &n, NULL), 0);
    assert_int_equal(n, 0);
    cask_task_t outs[2] = { a, b };
    cask_value_t r[2];
    assert_ok(cask_compute(g, outs, 2, NULL, r, NULL, &err), &err);
    assert_int_equal(r[0].type, CASK_INT64);
    cask_graph_decref(g);
}

static void test_explicit_keys_groups_costs(void **state)
{
    (void)state;
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t a, b, c;
    cask_task_spec_t s = { .kernel = "cask.const", .inputs = (cask_value_t[]){ cask_int(1) },
                           .n_inputs = 1, .key = "alpha", .group = "stage-1", .cost = 2.5 };
    assert_ok(cask_graph_add(g, &s, &a, &err), &err);
    char buf[64];
    assert_int_equal(cask_graph_group(g, a, buf, sizeof buf, &err), 7);
    assert_string_equal(buf, "stage-1");
    assert_true(cask_graph_cost(g, a) == 2.5);
    /* The same explicit key again is refused, and g is unchanged. */
    assert_int_equal(cask_graph_add(g, &s, &b, &err), CASK_EDUPKEY);
    assert_int_equal(b, CASK_NO_TASK);
    assert_msg_has(&err, "duplicate key 'alpha'");
    assert_int_equal(cask_graph_size(g), 1);
    /* Derived group: the key without its index; kernel cost model. */
    cask_task_spec_t sc = { .kernel = "test.costly", .inputs = (cask_value_t[]){ cask_int(7) },
                            .n_inputs = 1 };
    assert_ok(cask_graph_add(g, &sc, &c, &err), &err);
    assert_int_equal(cask_graph_group(g, c, buf, sizeof buf, &err), (int)strlen("costly-") + 16);
    assert_int_equal(strncmp(buf, "costly-", 7), 0);
    assert_true(cask_graph_cost(g, c) == 7.0);
    /* A delayed call's group is its name: the same for every call. */
    cask_task_t c2 = CASK_DELAYED(g, "test.costly", &err, cask_int(8));
    assert_int_equal(cask_graph_group(g, c2, buf, sizeof buf, &err), 6);
    assert_string_equal(buf, "costly");
    cask_task_t d = CASK_DELAYED(g, "cask.add", &err, cask_int(7));
    assert_true(cask_graph_cost(g, d) == 1e-6);
    assert_string_equal(cask_graph_kernel(g, d), "cask.add");
    /* Bad costs and keys. */
    s.key = "beta";
    s.cost = -1;
    assert_int_equal(cask_graph_add(g, &s, &b, &err), CASK_EINVAL);
    s.cost = 0;
    s.key = "";
    assert_int_equal(cask_graph_add(g, &s, &b, &err), CASK_EINVAL);
    char longkey[200];
    memset(longkey, 'k', sizeof longkey - 1);
    longkey[199] = 0;
    s.key = longkey;
    assert_int_equal(cask_graph_add(g, &s, &b, &err), CASK_EINVAL);
    assert_int_equal(cask_graph_size(g), 4);
    cask_graph_decref(g);
}

static void test_refused_inputs(void **state)
{
    (void)state;
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t a0 = CASK_DELAYED(g, "cask.const", &err, cask_int(1));
    cask_task_t t = CASK_DELAYED(g, "cask.add", &err, cask_ref(a0 + 5));
    assert_int_equal(t, CASK_NO_TASK);
    assert_int_equal(err.code, CASK_EMISSING);
    t = CASK_DELAYED(g, "cask.add", &err, cask_ref(CASK_NO_TASK));
    assert_int_equal(err.code, CASK_EINVAL);
    assert_msg_has(&err, "an earlier call failed");
    /* A task of another graph, whatever its index, is no task of g: as a
    ** ref, an after, an output, or to any accessor. */
    cask_graph_t *h = cask_graph_new(&err);
    cask_task_t h0 = CASK_DELAYED(h, "cask.const", &err, cask_int(2));
    assert_int_equal(cask_graph_index(h, h0), cask_graph_index(g, a0)); /* both index 0 */
    t = CASK_DELAYED(g, "cask.add", &err, cask_ref(h0));
    assert_int_equal(t, CASK_NO_TASK);
    assert_int_equal(err.code, CASK_EINVAL);
    assert_msg_has(&err, "input 0 is a task of another graph");
    cask_task_spec_t sa = { .kernel = "cask.const", .inputs = (cask_value_t[]){ cask_int(3) },
                            .n_inputs = 1, .after = &h0, .n_after = 1 };
    assert_int_equal(cask_graph_add(g, &sa, &t, &err), CASK_EINVAL);
    assert_int_equal(cask_graph_size(g), 1);
    cask_value_t r;
    assert_int_equal(cask_compute(g, &h0, 1, NULL, &r, NULL, &err), CASK_EINVAL);
    assert_int_equal(cask_graph_set_outputs(g, &h0, 1, &err), CASK_EINVAL);
    assert_null(cask_graph_key(g, h0));
    assert_int_equal(cask_graph_index(g, h0), CASK_EINVAL);
    cask_graph_decref(h);
    t = cask_delayed(g, "no.such.kernel", NULL, 0, &err);
    assert_int_equal(t, CASK_NO_TASK);
    assert_int_equal(err.code, CASK_ENOKERNEL);
    assert_msg_has(&err, "no.such.kernel");
    cask_task_t after = a0 + 3;
    cask_task_spec_t s = { .kernel = "cask.add", .after = &after, .n_after = 1 };
    assert_int_equal(cask_graph_add(g, &s, &t, &err), CASK_EMISSING);
    assert_int_equal(cask_graph_size(g), 1);
    /* Kernel registry rules. */
    assert_int_equal(cask_kernel_register("cask.mine", k_count, NULL, &err), CASK_EINVAL);
    assert_int_equal(cask_kernel_register("test.count", k_clock, NULL, &err), CASK_EDUPKEY);
    assert_ok(cask_kernel_register("test.count", k_count, NULL, &err), &err);
    assert_int_equal(cask_kernel_register("", k_count, NULL, &err), CASK_EINVAL);
    assert_true(cask_kernel_exists("cask.spin"));
    cask_graph_decref(g);
}

/* Kernel names are read by their text: one buffer reused for two names
** gives two kernels and two keys. */
static void test_kernel_name_buffer(void **state)
{
    (void)state;
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    char name[32];
    strcpy(name, "cask.add");
    cask_task_t a = CASK_DELAYED(g, name, &err, cask_int(4));
    strcpy(name, "cask.const");
    cask_task_t b = CASK_DELAYED(g, name, &err, cask_int(4));
    assert_int_not_equal(a, b);
    assert_string_equal(cask_graph_kernel(g, a), "cask.add");
    assert_string_equal(cask_graph_kernel(g, b), "cask.const");
    assert_string_not_equal(cask_graph_key(g, a), cask_graph_key(g, b));
    strcpy(name, "no.such");
    assert_int_equal(cask_delayed(g, name, NULL, 0, &err), CASK_NO_TASK);
    assert_int_equal(err.code, CASK_ENOKERNEL);
    cask_graph_decref(g);
}

static void test_after_and_edges(void **state)
{
    (void)state;
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t a = CASK_DELAYED(g, "cask.const", &err, cask_int(1));
    cask_task_t b = CASK_DELAYED(g, "cask.const", &err, cask_int(2));
    cask_task_t c;
    cask_task_spec_t s = { .kernel = "cask.add", .inputs = (cask_value_t[]){ cask_ref(a), cask_int(5) },
                           .n_inputs = 2, .after = &b, .n_after = 1 };
    assert_ok(cask_graph_add(g, &s, &c, &err), &err);
    assert_int_equal(cask_graph_edges(g), 2);
    const cask_value_t *v;
    size_t n;
    assert_ok(cask_graph_inputs(g, c, &v, &n, &err), &err);
    assert_int_equal(n, 2);
    assert_int_equal(v[0].type, CASK_REF);
    assert_int_equal(v[0].u.task, a);
    assert_ok(cask_graph_after(g, c, &v, &n, &err), &err);
    assert_int_equal(n, 1);
    assert_int_equal(v[0].u.task, b);
    /* Handles that are not tasks of g. */
    assert_int_equal(cask_graph_inputs(g, CASK_NO_TASK, &v, &n, &err), CASK_EINVAL);
    assert_int_equal(cask_graph_index(g, c), 2);
    assert_int_equal(cask_graph_task(g, 2), c);
    assert_int_equal(cask_graph_task(g, 3), CASK_NO_TASK);
    assert_int_equal(cask_graph_group(g, cask_graph_task(g, 2) + 1, NULL, 0, &err), CASK_EMISSING);
    assert_msg_has(&err, "not in a graph of 3 tasks");
    cask_graph_decref(g);
}

/* A long chain builds in linear time and compact storage. */
static void test_chain_storage(void **state)
{
    (void)state;
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    enum { N = 200000 };
    cask_task_t t = CASK_DELAYED(g, "cask.add", &err, cask_int(0));
    const char *first = cask_graph_key(g, t);
    char saved[CASK_KEY_MAX + 1];
    strcpy(saved, first);
    for (int i = 1; i < N; i++)
        t = CASK_DELAYED(g, "cask.add", &err, cask_ref(t), cask_int(1));
    assert_int_equal(cask_graph_size(g), N);
    assert_int_equal(cask_graph_edges(g), N - 1);
    assert_string_equal(first, saved); /* keys never move */
    size_t per = cask_graph_memory(g) / N;
    printf("# %zu bytes per task in a chain of %d\n", per, N);
    assert_true(per < 200);
    /* Computing it needs no recursion at any depth. */
    cask_value_t r;
    cask_compute_info_t info;
    assert_ok(compute_on("sync", g, &t, 1, &r, &info, &err), &err);
    assert_int_equal(r.u.i, N - 1);
    assert_int_equal(info.tasks, N);
    cask_trace_free(info.trace);
    cask_graph_decref(g);
}

/* Every allocation failure while building leaves a usable graph or none. */
static void test_alloc_failure_while_building(void **state)
{
    (void)state;
    int covered = 0;
    for (long at = 1; at < 500; at++) {
        cask_error_t err;
        cask__alloc_fail_at(at);
        cask_graph_t *g = cask_graph_new(&err);
        int failed = g == NULL;
        cask_task_t t = CASK_NO_TASK;
        for (int i = 0; g && i < 100; i++) {
            cask_task_t u = CASK_DELAYED(g, "test.count", &err, cask_int(i),
                                         t == CASK_NO_TASK ? cask_int(0) : cask_ref(t));
            if (u == CASK_NO_TASK) {
                assert_int_equal(err.code, CASK_ENOMEM);
                assert_int_equal(cask_graph_size(g), (size_t)i); /* unchanged */
                failed = 1;
                break;
            }
            t = u;
        }
        long made = cask__alloc_fail_at(0);
        cask_graph_decref(g);
        if (!failed) {
            assert_true(made < at);
            break;
        }
        covered++;
    }
    printf("# %d allocation failure points covered\n", covered);
    assert_true(covered > 5);
}

static void test_outputs(void **state)
{
    (void)state;
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t a = CASK_DELAYED(g, "cask.const", &err, cask_int(1));
    size_t n;
    assert_null(cask_graph_outputs(g, &n));
    assert_int_equal(n, 0);
    assert_ok(cask_graph_set_outputs(g, &a, 1, &err), &err);
    assert_int_equal(cask_graph_outputs(g, &n)[0], a);
    cask_task_t bad = a + 9;
    assert_int_equal(cask_graph_set_outputs(g, &bad, 1, &err), CASK_EMISSING);
    assert_int_equal(cask_graph_outputs(g, &n)[0], a);
    cask_graph_decref(g);
    cask_graph_decref(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deterministic_keys),
        cmocka_unit_test(test_impure_fresh_keys),
        cmocka_unit_test(test_explicit_keys_groups_costs),
        cmocka_unit_test(test_refused_inputs),
        cmocka_unit_test(test_kernel_name_buffer),
        cmocka_unit_test(test_after_and_edges),
        cmocka_unit_test(test_chain_storage),
        cmocka_unit_test(test_alloc_failure_while_building),
        cmocka_unit_test(test_outputs),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}

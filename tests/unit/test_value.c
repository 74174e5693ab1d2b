/* tests/unit/test_value.c: the tagged value type. */
#include <math.h>
#include <stdlib.h>

#include "testutil.h"

static int dtor_calls;
static void dtor(void *p) { (void)p; dtor_calls++; }

static void test_inline_values(void **state)
{
    (void)state;
    cask_value_t i = cask_int(-5), d = cask_double(2.5), r = cask_ref(7), n = cask_none();
    assert_int_equal(i.type, CASK_INT64);
    assert_int_equal(i.u.i, -5);
    assert_true(cask_value_is_number(&i) && cask_value_is_number(&d));
    assert_false(cask_value_is_number(&r) || cask_value_is_number(&n));
    assert_true(cask_value_as_double(&i) == -5.0);
    assert_true(isnan(cask_value_as_double(&n)));
    assert_int_equal(cask_value_nbytes(&d), 0);
    assert_int_equal(sizeof(cask_value_t), 16);
}

static void test_string_and_bytes(void **state)
{
    (void)state;
    cask_error_t err;
    cask_value_t s, b, s2;
    assert_ok(cask_value_string("héllo", (size_t)-1, &s, &err), &err);
    size_t len;
    assert_string_equal(cask_value_str(&s, &len), "héllo");
    assert_int_equal(len, 6);
    assert_null(cask_value_data(&s, NULL));
    assert_ok(cask_value_bytes("a\0b", 3, &b, &err), &err);
    assert_memory_equal(cask_value_data(&b, &len), "a\0b", 3);
    assert_int_equal(len, 3);
    assert_int_equal(cask_value_nbytes(&b), 3);
    assert_ok(cask_value_string("héllo", 6, &s2, &err), &err);
    assert_true(cask_value_equal(&s, &s2));
    assert_false(cask_value_equal(&s, &b));
    cask_value_decref(&s);
    assert_int_equal(s.type, CASK_NONE);
    cask_value_decref(&s2);
    cask_value_decref(&b);
    assert_int_equal(cask_value_string(NULL, 0, &s, &err), CASK_EINVAL);
}

static void test_ndarray(void **state)
{
    (void)state;
    cask_error_t err;
    cask_value_t v;
    int64_t shape[2] = { 3, 4 };
    assert_ok(cask_value_ndarray(CASK_F32, 2, shape, &v, &err), &err);
    cask_nd_t nd;
    assert_int_equal(cask_value_nd(&v, &nd), 0);
    assert_int_equal(nd.dtype, CASK_F32);
    assert_int_equal(nd.ndim, 2);
    assert_int_equal(nd.size, 12);
    assert_int_equal(nd.shape[1], 4);
    assert_int_equal(cask_value_nbytes(&v), 48);
    for (int i = 0; i < 12; i++)
        ((float *)nd.data)[i] = (float)i;
    cask_value_decref(&v);

    int64_t bad[1] = { -1 };
    assert_int_equal(cask_value_ndarray(CASK_F64, 1, bad, &v, &err), CASK_EINVAL);
    assert_msg_has(&err, "negative extent -1");
    assert_int_equal(cask_value_ndarray(CASK_F64, 9, shape, &v, &err), CASK_EINVAL);
    assert_int_equal(cask_value_ndarray((cask_dtype_t)9, 1, shape, &v, &err), CASK_EINVAL);
    assert_int_equal(v.type, CASK_NONE);
    cask_value_t i = cask_int(1);
    assert_int_equal(cask_value_nd(&i, &nd), CASK_ETYPE);
    assert_int_equal(cask_dtype_size(CASK_BOOL), 1);
    assert_string_equal(cask_dtype_name(CASK_I64), "int64");
}

static void test_refcount_and_opaque(void **state)
{
    (void)state;
    cask_error_t err;
    cask_value_t o, copy;
    int x = 3;
    dtor_calls = 0;
    assert_ok(cask_value_opaque(&x, dtor, &o, &err), &err);
    assert_ptr_equal(cask_value_ptr(&o), &x);
    copy = o;
    cask_value_incref(&copy);
    cask_value_decref(&o);
    assert_int_equal(dtor_calls, 0);
    cask_value_decref(&copy);
    assert_int_equal(dtor_calls, 1);
    cask_value_decref(NULL); /* allowed */
}

static void test_to_json(void **state)
{
    (void)state;
    cask_error_t err;
    cask_value_t v;
    char *s;
    v = cask_int(-42);
    s = cask_value_to_json(&v);
    assert_string_equal(s, "-42");
    free(s);
    v = cask_double(0.1);
    s = cask_value_to_json(&v);
    assert_string_equal(s, "0.10000000000000001");
    free(s);
    v = cask_double(NAN);
    s = cask_value_to_json(&v);
    assert_string_equal(s, "{\"double\":\"nan\"}");
    free(s);
    assert_ok(cask_value_bytes("\x00\xff\x10", 3, &v, &err), &err);
    s = cask_value_to_json(&v);
    assert_string_equal(s, "{\"bytes\":\"AP8Q\"}");
    free(s);
    cask_value_decref(&v);
    int64_t shape[2] = { 2, 2 };
    assert_ok(cask_value_ndarray(CASK_I64, 2, shape, &v, &err), &err);
    cask_nd_t nd;
    cask_value_nd(&v, &nd);
    for (int i = 0; i < 4; i++)
        ((int64_t *)nd.data)[i] = i * 10;
    s = cask_value_to_json(&v);
    assert_string_equal(s, "{\"dtype\":\"int64\",\"shape\":[2,2],\"data\":[0,10,20,30]}");
    free(s);
    cask_value_decref(&v);
    assert_ok(cask_value_opaque(&v, NULL, &v, &err), &err);
    assert_null(cask_value_to_json(&v));
    cask_value_decref(&v);
}

static void test_errors(void **state)
{
    (void)state;
    assert_string_equal(cask_strerror(CASK_ECYCLE), "graph has a cycle");
    assert_string_equal(cask_err_name(CASK_EKERNEL), "EKERNEL");
    assert_string_equal(cask_strerror(-9999), "unknown error");
    assert_int_equal(cask_version_number(), CASK_VERSION_NUMBER);
    assert_string_equal(cask_version(), CASK_VERSION);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inline_values),
        cmocka_unit_test(test_string_and_bytes),
        cmocka_unit_test(test_ndarray),
        cmocka_unit_test(test_refcount_and_opaque),
        cmocka_unit_test(test_to_json),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

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
    assert_true(cask_value_double(&i) == -5.0);
    assert_true(isnan(cask_value_double(&n)));
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

/* Lists: flat, nested, items borrowed, equal by contents, JSON both ways. */
static void test_lists(void **state)
{
    (void)state;
    cask_error_t err;
    cask_value_t s, nd, inner, list;
    assert_ok(cask_value_string("h\0i", 3, &s, &err), &err);
    assert_ok(cask_value_ndarray(CASK_F32, 2, (int64_t[]){ 2, 3 }, &nd, &err), &err);
    cask_nd_t v;
    cask_value_nd(&nd, &v);
    for (int i = 0; i < 6; i++)
        ((float *)v.data)[i] = (float)i / 2;
    assert_ok(cask_value_list((cask_value_t[]){ cask_int(7), s }, 2, &inner, &err), &err);
    cask_value_t items[6] = { cask_int(-5), cask_double(2.5), s, nd, inner, cask_none() };
    assert_ok(cask_value_list(items, 6, &list, &err), &err);
    assert_int_equal(list.type, CASK_LIST);
    assert_int_equal(cask_list_len(&list), 6);
    assert_int_equal(cask_list_len(&s), 0);
    cask_value_t x = cask_list_item(&list, 0);
    assert_true(x.type == CASK_INT64 && cask_value_int(&x) == -5);
    x = cask_list_item(&list, 1);
    assert_true(x.type == CASK_DOUBLE && cask_value_double(&x) == 2.5);
    x = cask_list_item(&list, 2);
    size_t len;
    const char *t = cask_value_str(&x, &len);
    assert_int_equal(len, 3);
    assert_memory_equal(t, "h\0i", 4); /* NUL-terminated too */
    assert_true(cask_value_equal(&x, &s));
    x = cask_list_item(&list, 3);
    cask_nd_t w;
    assert_int_equal(cask_value_nd(&x, &w), 0);
    assert_true(w.dtype == CASK_F32 && w.ndim == 2 && w.shape[1] == 3 && w.size == 6);
    assert_true(((float *)w.data)[5] == 2.5f);
    assert_int_equal((uintptr_t)w.data % 16, 0);
    x = cask_list_item(&list, 4); /* a nested list */
    assert_int_equal(cask_list_len(&x), 2);
    cask_value_t y = cask_list_item(&x, 1);
    assert_true(cask_value_equal(&y, &s));
    assert_true(cask_value_equal(&x, &inner));
    assert_int_equal(cask_list_item(&list, 5).type, CASK_NONE);
    assert_int_equal(cask_list_item(&list, 6).type, CASK_NONE); /* out of range */
    /* Items are borrowed: incref and decref do nothing to them. */
    x = cask_list_item(&list, 2);
    cask_value_incref(&x);
    cask_value_decref(&x);
    assert_int_equal(x.type, CASK_NONE);
    /* A copy of an item is a value of its own, outliving the list. */
    cask_value_t kept;
    x = cask_list_item(&list, 4);
    assert_ok(cask_value_copy(&x, &kept, &err), &err);
    /* The same items give an equal list; JSON there and back too. */
    cask_value_t again;
    assert_ok(cask_value_list(items, 6, &again, &err), &err);
    assert_true(cask_value_equal(&list, &again));
    char *j = cask_value_to_json(&list);
    assert_non_null(j);
    assert_string_equal(j, "{\"list\":[-5,2.5,\"h\\u0000i\",{\"dtype\":\"float32\","
                           "\"shape\":[2,3],\"data\":[0.0,0.5,1.0,1.5,2.0,2.5]},"
                           "{\"list\":[7,\"h\\u0000i\"]},null]}");
    free(j);
    cask_value_decref(&again);
    cask_value_decref(&list);
    cask_value_decref(&inner);
    assert_int_equal(cask_list_len(&kept), 2);
    y = cask_list_item(&kept, 0);
    assert_int_equal(cask_value_int(&y), 7);
    cask_value_decref(&kept);
    /* Refs and opaque values cannot be items. */
    cask_value_t op;
    assert_ok(cask_value_opaque(&op, NULL, &op, &err), &err);
    assert_int_equal(cask_value_list((cask_value_t[]){ cask_ref(0) }, 1, &list, &err), CASK_ETYPE);
    assert_int_equal(cask_value_list(&op, 1, &list, &err), CASK_ETYPE);
    assert_int_equal(list.type, CASK_NONE);
    cask_value_decref(&op);
    /* The builder: strings without values, then reused. */
    cask_list_builder_t b;
    cask_list_builder_init(&b);
    assert_ok(cask_list_builder_append_str(&b, "abc", (size_t)-1, &err), &err);
    assert_ok(cask_list_builder_append(&b, &nd, &err), &err);
    assert_ok(cask_list_builder_finish(&b, &list, &err), &err);
    assert_int_equal(cask_list_len(&list), 2);
    x = cask_list_item(&list, 0);
    assert_string_equal(cask_value_str(&x, NULL), "abc");
    cask_value_decref(&list);
    assert_ok(cask_list_builder_finish(&b, &list, &err), &err); /* empty again */
    assert_int_equal(cask_list_len(&list), 0);
    cask_value_decref(&list);
    cask_list_builder_destroy(&b);
    cask_value_decref(&s);
    cask_value_decref(&nd);
}

/* graph/graph.h and graph/util.c, internal */
int cask__list_builder_append_built(cask_list_builder_t *b, cask_list_builder_t *items);
long cask__alloc_fail_at(long n);

/* Big lists: finished in their builder's buffer (at 256 KB of items or
** more), nested in place, and the builder used again after each. */
static void test_big_lists(void **state)
{
    (void)state;
    cask_error_t err;
    cask_list_builder_t b, pair;
    cask_list_builder_init(&b);
    cask_list_builder_init(&pair);
    for (int round = 0; round < 3; round++) {
        size_t n = 20000 + 30000 * (size_t)round;
        char word[64];
        for (size_t i = 0; i < n; i++) {
            int len = snprintf(word, sizeof word, "w%zu-%0*d", i, (int)(i % 40), 0);
            if (i % 3) {
                assert_ok(cask_list_builder_append_str(&b, word, (size_t)len, &err), &err);
            } else { /* [i, word] made in place */
                cask_value_t k = cask_int((int64_t)i);
                assert_ok(cask_list_builder_append(&pair, &k, &err), &err);
                assert_ok(cask_list_builder_append_str(&pair, word, (size_t)len, &err), &err);
                assert_ok(cask__list_builder_append_built(&b, &pair), &err);
            }
        }
        cask_value_t list;
        if (round == 1) /* the buffer cannot grow: the list is copied instead */
            cask__alloc_fail_at(1);
        assert_ok(cask_list_builder_finish(&b, &list, &err), &err);
        cask__alloc_fail_at(0);
        assert_true(cask_value_nbytes(&list) > (256u << 10));
        assert_int_equal(cask_list_len(&list), n);
        for (size_t i = 0; i < n; i++) {
            int len = snprintf(word, sizeof word, "w%zu-%0*d", i, (int)(i % 40), 0);
            cask_value_t x = cask_list_item(&list, i), w = x;
            if (i % 3 == 0) {
                assert_int_equal(x.type, CASK_LIST);
                assert_int_equal(cask_list_len(&x), 2);
                assert_int_equal(cask_list_item(&x, 0).u.i, (int64_t)i);
                w = cask_list_item(&x, 1);
            }
            size_t got;
            const char *str = cask_value_str(&w, &got);
            assert_non_null(str);
            assert_int_equal(got, (size_t)len);
            assert_memory_equal(str, word, (size_t)len);
            assert_int_equal(str[len], '\0');
        }
        /* a copy equals it */
        cask_value_t copy;
        assert_ok(cask_value_copy(&list, &copy, &err), &err);
        assert_true(cask_value_equal(&list, &copy));
        cask_value_decref(&copy);
        cask_value_decref(&list);
    }
    cask_list_builder_destroy(&pair);
    cask_list_builder_destroy(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_big_lists),
        cmocka_unit_test(test_inline_values),
        cmocka_unit_test(test_string_and_bytes),
        cmocka_unit_test(test_ndarray),
        cmocka_unit_test(test_refcount_and_opaque),
        cmocka_unit_test(test_to_json),
        cmocka_unit_test(test_lists),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

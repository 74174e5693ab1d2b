/* tests/unit/test_json.c: the cask-graph JSON format: round trips, any task
** order, and a clear error for every bad file in tests/data/json_bad/. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "testutil.h"

static const char *datadir(void)
{
    const char *d = getenv("CASK_TESTDATA");
    return d ? d : "tests/data";
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
        free(s);
        s = NULL;
    }
    if (s)
        s[n] = '\0';
    fclose(f);
    if (len)
        *len = (size_t)n;
    return s;
}

static void test_bad_files(void **state)
{
    (void)state;
    char dir[512];
    snprintf(dir, sizeof dir, "%s/json_bad", datadir());
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    int cases = 0;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 6 || strcmp(e->d_name + l - 5, ".json"))
            continue;
        char path[1024], expect[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        snprintf(expect, sizeof expect, "%s/%.*s.expect", dir, (int)(l - 5), e->d_name);
        char *exp = slurp(expect, NULL);
        assert_non_null(exp);
        char *nl = strchr(exp, '\n');
        assert_non_null(nl);
        *nl = '\0';
        char *want = nl + 1;
        want[strcspn(want, "\n")] = '\0';
        cask_error_t err;
        cask_graph_t *g = (cask_graph_t *)1;
        int rc = cask_graph_load_json(path, 0, &g, &err);
        if (rc == 0 || strcmp(cask_err_name(rc), exp) || !strstr(err.message, want))
            fail_msg("%s: got %s '%s', want %s containing '%s'", e->d_name, cask_err_name(rc),
                     err.message, exp, want);
        assert_null(g);
        /* The same text from memory fails the same way. */
        size_t len;
        char *text = slurp(path, &len);
        assert_int_equal(cask_graph_parse_json(text, len, 0, &g, &err), rc);
        free(text);
        free(exp);
        cases++;
    }
    closedir(d);
    assert_true(cases >= 25);
}

static void test_cycle_names_keys(void **state)
{
    (void)state;
    const char *doc = "{\"format\": \"cask-graph\", \"version\": 1, \"tasks\": ["
                      "{\"key\": \"a\", \"after\": [\"c\"]}, {\"key\": \"b\", \"after\": [\"a\"]},"
                      "{\"key\": \"c\", \"after\": [\"b\"]}, {\"key\": \"free\"}]}";
    cask_error_t err;
    cask_graph_t *g;
    assert_int_equal(cask_graph_parse_json(doc, strlen(doc), 0, &g, &err), CASK_ECYCLE);
    /* Some rotation of a -> b -> c -> a. */
    assert_true(strstr(err.message, "a -> b -> c -> a") || strstr(err.message, "b -> c -> a -> b") ||
                strstr(err.message, "c -> a -> b -> c"));
    assert_null(strstr(err.message, "free"));
}

static void test_any_order_and_run(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/graphs/diamond.json", datadir());
    cask_error_t err;
    cask_graph_t *g;
    assert_ok(cask_graph_load_json(path, 0, &g, &err), &err);
    assert_int_equal(cask_graph_size(g), 4);
    assert_int_equal(cask_graph_edges(g), 4);
    size_t n;
    const cask_task_t *outs = cask_graph_outputs(g, &n);
    assert_int_equal(n, 2);
    assert_string_equal(cask_graph_key(g, outs[0]), "total");
    cask_value_t r[2];
    assert_ok(cask_compute(g, outs, 2, NULL, r, NULL, &err), &err);
    assert_true(r[0].type == CASK_DOUBLE && r[0].u.d == 23.5);
    assert_int_equal(r[1].u.i, 11);
    char grp[32];
    assert_true(cask_graph_group(g, cask_graph_find(g, "left"), grp, sizeof grp, NULL) > 0);
    assert_string_equal(grp, "branch");
    assert_true(cask_graph_cost(g, cask_graph_find(g, "root")) == 0.001);
    cask_graph_decref(g);
}

/* Save then load gives the same graph: keys, kernels, literals, results. */
static void test_round_trip(void **state)
{
    (void)state;
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    cask_value_t s, b, nd;
    assert_ok(cask_value_string("tab\there \"quoted\"", (size_t)-1, &s, &err), &err);
    assert_ok(cask_value_bytes("\x01\x02\x03\xff", 4, &b, &err), &err);
    int64_t shape[2] = { 2, 3 };
    assert_ok(cask_value_ndarray(CASK_F32, 2, shape, &nd, &err), &err);
    cask_nd_t v;
    cask_value_nd(&nd, &v);
    for (int i = 0; i < 6; i++)
        ((float *)v.data)[i] = (float)i / 3.0f;
    cask_task_t t[6];
    t[0] = CASK_DELAYED(g, "cask.const", &err, s);
    t[1] = CASK_DELAYED(g, "cask.const", &err, b);
    t[2] = CASK_DELAYED(g, "cask.const", &err, nd);
    t[3] = CASK_DELAYED(g, "cask.add", &err, cask_double(0.1), cask_int(-7));
    t[4] = CASK_DELAYED(g, "cask.const", &err, cask_double(-INFINITY));
    cask_task_spec_t spec = { .kernel = "cask.add", .inputs = (cask_value_t[]){ cask_ref(t[3]) },
                              .n_inputs = 1, .after = &t[0], .n_after = 1, .cost = 0.25,
                              .group = "last", .nbytes = 123456789012 };
    assert_ok(cask_graph_add(g, &spec, &t[5], &err), &err);
    cask_value_decref(&s);
    cask_value_decref(&b);
    cask_value_decref(&nd);
    assert_ok(cask_graph_set_outputs(g, t, 6, &err), &err);
    char path[] = "/tmp/cask-test-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_ok(cask_graph_save_json(g, path, &err), &err);
    cask_graph_t *h;
    assert_ok(cask_graph_load_json(path, 0, &h, &err), &err);
    unlink(path);
    assert_int_equal(cask_graph_size(h), 6);
    assert_int_equal(cask_graph_edges(h), cask_graph_edges(g));
    for (size_t x = 0; x < 6; x++) {
        cask_task_t i = cask_graph_task(g, x);
        cask_task_t j = cask_graph_find(h, cask_graph_key(g, i));
        assert_int_not_equal(j, CASK_NO_TASK);
        assert_string_equal(cask_graph_kernel(h, j), cask_graph_kernel(g, i));
        assert_true(cask_graph_cost(h, j) == cask_graph_cost(g, i));
        assert_int_equal(cask_graph_nbytes(h, j), x == 5 ? 123456789012 : 0);
    }
    size_t n;
    const cask_task_t *outs = cask_graph_outputs(h, &n);
    assert_int_equal(n, 6);
    cask_value_t r1[6], r2[6];
    assert_ok(cask_compute(g, t, 6, NULL, r1, NULL, &err), &err);
    assert_ok(cask_compute(h, outs, 6, NULL, r2, NULL, &err), &err);
    for (int i = 0; i < 6; i++) {
        if (!cask_value_equal(&r1[i], &r2[i]))
            fail_msg("output %d differs after a round trip", i);
        cask_value_decref(&r1[i]);
        cask_value_decref(&r2[i]);
    }
    /* An opaque literal cannot be written. */
    cask_value_t o;
    assert_ok(cask_value_opaque(&o, NULL, &o, &err), &err);
    CASK_DELAYED(g, "cask.const", &err, o);
    cask_value_decref(&o);
    FILE *null = fopen("/dev/null", "w");
    assert_int_equal(cask_graph_write_json(g, null, &err), CASK_ETYPE);
    assert_msg_has(&err, "opaque");
    fclose(null);
    cask_graph_decref(g);
    cask_graph_decref(h);
}

static void test_analysis_only(void **state)
{
    (void)state;
    const char *doc = "{\"format\": \"cask-graph\", \"version\": 1, \"tasks\": ["
                      "{\"key\": \"a\", \"kernel\": \"elsewhere.fn\", \"cost\": 2},"
                      "{\"key\": \"b\", \"after\": [\"a\"], \"cost\": 0}]}";
    cask_error_t err;
    cask_graph_t *g;
    assert_int_equal(cask_graph_parse_json(doc, strlen(doc), 0, &g, &err), CASK_ENOKERNEL);
    assert_ok(cask_graph_parse_json(doc, strlen(doc), CASK_LOAD_ANALYSIS, &g, &err), &err);
    assert_true(cask_graph_cost(g, cask_graph_find(g, "b")) == 0); /* an explicit zero */
    size_t n;
    const cask_task_t *outs = cask_graph_outputs(g, &n); /* no outputs listed: the sinks */
    assert_int_equal(n, 1);
    assert_string_equal(cask_graph_key(g, outs[0]), "b");
    cask_value_t r;
    assert_int_equal(cask_compute(g, outs, 1, NULL, &r, NULL, &err), CASK_EINVAL);
    assert_msg_has(&err, "has no kernel");
    cask_graph_decref(g);
}

static void test_missing_file(void **state)
{
    (void)state;
    cask_error_t err;
    cask_graph_t *g;
    assert_int_equal(cask_graph_load_json("/nonexistent/g.json", 0, &g, &err), CASK_EIO);
    assert_msg_has(&err, "/nonexistent/g.json");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_cycle_names_keys),
        cmocka_unit_test(test_any_order_and_run),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_analysis_only),
        cmocka_unit_test(test_missing_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
** tests/unit/testutil.h: helpers shared by the unit tests.
*/
#ifndef CASK_TESTUTIL_H
#define CASK_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdatomic.h>
#include <string.h>
#include <cmocka.h>

#include <cask/cask.h>

/* Assert that rc is 0, printing err's message if not. */
#define assert_ok(rc, err)                                                        \
    do {                                                                          \
        int rc_ = (rc);                                                           \
        if (rc_)                                                                  \
            fail_msg("%s failed: %s [%s] key '%s' kernel '%s'", #rc, (err)->message, \
                     cask_err_name(rc_), (err)->key, (err)->kernel);              \
    } while (0)

/* Assert that err's message contains s. */
#define assert_msg_has(err, s)                                                    \
    do {                                                                          \
        if (!strstr((err)->message, (s)))                                         \
            fail_msg("message '%s' lacks '%s'", (err)->message, (s));             \
    } while (0)

/* Calls of test.count, across threads. */
static atomic_long test_calls __attribute__((unused));

/* test.count: sum of its numeric inputs + 1, counting its calls. */
static inline int k_count(const cask_value_t *a, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    int64_t s = 1;
    for (size_t i = 0; i < n; i++) {
        if (a[i].type != CASK_INT64)
            return cask_kernel_fail(ctx, "input %zu is not an integer", i);
        s += a[i].u.i;
    }
    atomic_fetch_add(&test_calls, 1);
    *out = cask_int(s);
    return 0;
}

static inline void register_test_kernels(void)
{
    cask_error_t err;
    if (cask_kernel_register("test.count", k_count, NULL, &err))
        fail_msg("register: %s", err.message);
}

/* Run a compute on scheduler sched (NULL: sync) and return the code. */
static inline int compute_on(const char *sched, const cask_graph_t *g, const cask_task_t *outs,
                             size_t n, cask_value_t *res, cask_compute_info_t *info,
                             cask_error_t *err)
{
    cask_compute_opts_t o = { .scheduler = sched ? sched : "sync", .flags = CASK_TRACE };
    return cask_compute(g, outs, n, res, &o, info, err);
}

#endif

/*
** graph/builtins.c: the kernels every cask program has, for graphs written
** in JSON, for tests and for the map helper.
*/
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "graph.h"

/* Sum the numeric args[first..n): int64 while every one is an integer and
** the sum fits, else double. */
static int sum_numbers(const cask_value_t *args, size_t n, size_t first,
                       cask_value_t *out, cask_kctx_t *ctx)
{
    int64_t si = 0;
    double sd = 0;
    int is_int = 1;
    for (size_t i = first; i < n; i++) {
        const cask_value_t *a = &args[i];
        if (a->type == CASK_INT64 && is_int) {
            if (__builtin_add_overflow(si, a->u.i, &si))
                return cask_kernel_fail(ctx, "int64 overflow adding input %zu", i);
        } else if (a->type == CASK_INT64 || a->type == CASK_DOUBLE) {
            if (is_int) {
                sd = (double)si;
                is_int = 0;
            }
            sd += a->type == CASK_INT64 ? (double)a->u.i : a->u.d;
        } else {
            return cask_kernel_fail(ctx, "input %zu is a %s, not a number", i,
                                    cask_type_name(a->type));
        }
    }
    *out = is_int ? cask_int(si) : cask_double(sd);
    return 0;
}

static int k_const(const cask_value_t *args, size_t n, cask_value_t *out,
                   cask_kctx_t *ctx)
{
    if (n != 1)
        return cask_kernel_fail(ctx, "takes 1 input, got %zu", n);
    cask_value_incref(&args[0]);
    *out = args[0];
    return 0;
}

static int k_add(const cask_value_t *args, size_t n, cask_value_t *out,
                 cask_kctx_t *ctx)
{
    return sum_numbers(args, n, 0, out, ctx);
}

/* The first input as a non-negative number, for spin and sleep. */
static int lead_number(const cask_value_t *args, size_t n, double *v,
                       cask_kctx_t *ctx)
{
    if (n < 1 || !cask_value_is_number(&args[0]))
        return cask_kernel_fail(ctx, "first input must be a number");
    *v = cask_value_double(&args[0]);
    if (!(*v >= 0) || *v > 1e9)
        return cask_kernel_fail(ctx, "first input %g is out of range", *v);
    return 0;
}

static int k_spin(const cask_value_t *args, size_t n, cask_value_t *out,
                  cask_kctx_t *ctx)
{
    double us;
    int rc = lead_number(args, n, &us, ctx);
    if (rc)
        return rc;
    uint64_t end = cask_now_ns() + (uint64_t)(us * 1e3);
    while (cask_now_ns() < end)
        ;
    return sum_numbers(args, n, 1, out, ctx);
}

static double cost_spin(const cask_value_t *args, size_t n)
{
    return n && cask_value_is_number(&args[0]) ? cask_value_double(&args[0]) * 1e-6 : 0;
}

static int k_sleep(const cask_value_t *args, size_t n, cask_value_t *out,
                   cask_kctx_t *ctx)
{
    double s;
    int rc = lead_number(args, n, &s, ctx);
    if (rc)
        return rc;
    struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    return sum_numbers(args, n, 1, out, ctx);
}

static double cost_sleep(const cask_value_t *args, size_t n)
{
    return n && cask_value_is_number(&args[0]) ? cask_value_double(&args[0]) : 0;
}

static int k_fail(const cask_value_t *args, size_t n, cask_value_t *out,
                  cask_kctx_t *ctx)
{
    (void)out;
    for (size_t i = 0; i < n; i++)
        if (args[i].type == CASK_STRING)
            return cask_kernel_fail(ctx, "%s", cask_value_str(&args[i], NULL));
    return cask_kernel_fail(ctx, "cask.fail was called");
}

static int k_crash(const cask_value_t *args, size_t n, cask_value_t *out,
                   cask_kctx_t *ctx)
{
    (void)args, (void)n, (void)out, (void)ctx;
    signal(SIGSEGV, SIG_DFL); /* not a sanitizer's handler: really die */
    kill(getpid(), SIGSEGV);
    pause(); /* the signal is pending: never reached */
    return cask_kernel_fail(ctx, "SIGSEGV did not end the process");
}

/* cask.map: args[0] names a kernel; call it on each later argument and
** give the list of the results, in order. */
static int k_map(const cask_value_t *args, size_t n, cask_value_t *out,
                 cask_kctx_t *ctx)
{
    const char *name = n ? cask_value_str(&args[0], NULL) : NULL;
    if (!name)
        return cask_kernel_fail(ctx, "first input must name a kernel");
    cask_list_builder_t b;
    cask_list_builder_init(&b);
    int rc = 0;
    for (size_t i = 1; i < n && !rc; i++) {
        cask_value_t r;
        if ((rc = cask_kernel_call(ctx, name, &args[i], 1, &r)))
            break;
        cask_error_t e;
        if ((rc = cask_list_builder_append(&b, &r, &e)))
            cask_kernel_fail(ctx, "%s's result for item %zu: %s", name, i - 1, e.message);
        cask_value_decref(&r);
    }
    cask_error_t e;
    if (!rc && (rc = cask_list_builder_finish(&b, out, &e)))
        cask_kernel_fail(ctx, "%s", e.message);
    cask_list_builder_destroy(&b);
    return rc;
}

/* cask.concat: the items of every argument (each a list), in order, as
** one list. */
static int k_concat(const cask_value_t *args, size_t n, cask_value_t *out,
                    cask_kctx_t *ctx)
{
    cask_list_builder_t b;
    cask_list_builder_init(&b);
    cask_error_t e;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        if (args[i].type != CASK_LIST) {
            rc = cask_kernel_fail(ctx, "input %zu is a %s, not a list", i,
                                  cask_type_name(args[i].type));
            break;
        }
        for (size_t j = 0, m = cask_list_len(&args[i]); j < m && !rc; j++) {
            cask_value_t item = cask_list_item(&args[i], j);
            if ((rc = cask_list_builder_append(&b, &item, &e)))
                cask_kernel_fail(ctx, "%s", e.message);
        }
    }
    if (!rc && (rc = cask_list_builder_finish(&b, out, &e)))
        cask_kernel_fail(ctx, "%s", e.message);
    cask_list_builder_destroy(&b);
    return rc;
}

/* cask.map's stamp: the mapped kernel's version is part of the key, and a
** map of an impure kernel is never cached. */
static int stamp_map(const cask_value_t *args, size_t n, uint64_t h[2])
{
    return cask__kernel_stamp_named(n ? cask_value_str(&args[0], NULL) : NULL, h);
}

void cask__register_builtins(void)
{
    static const struct {
        const char *name;
        cask_kernel_fn fn;
        cask_kernel_opts_t opts;
    } b[] = {
        { "cask.const", k_const, { 0 } },
        { "cask.add", k_add, { 0 } },
        { "cask.spin", k_spin, { .cost_fn = cost_spin } },
        { "cask.sleep", k_sleep, { .cost_fn = cost_sleep } },
        { "cask.fail", k_fail, { 0 } },
        { "cask.crash", k_crash, { 0 } },
        { "cask.map", k_map, { 0 } },
        { "cask.concat", k_concat, { 0 } },
    };
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++)
        cask__kernel_register(b[i].name, b[i].fn, &b[i].opts, NULL);
    cask__kernel_set_stamp("cask.map", stamp_map);
}

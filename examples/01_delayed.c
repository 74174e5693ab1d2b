/*
** 01_delayed.c: lazy function calls, as in the course material:
**
**     a = get_arg1()          # 10
**     b = get_arg2()          # 42
**     c = compute(a, b)       # a + b
**
** Nothing runs until cask_compute(); then each task runs once, in
** critical-path order, and the trace says what ran when.
*/
#include <stdio.h>
#include <stdlib.h>

#include <cask/cask.h>

static int get_arg1(const cask_value_t *args, size_t n, cask_value_t *out, cask_kctx_t *ctx);
static int get_arg2(const cask_value_t *args, size_t n, cask_value_t *out, cask_kctx_t *ctx);
static int compute(const cask_value_t *args, size_t n, cask_value_t *out, cask_kctx_t *ctx);

static int die(const char *what, const cask_error_t *err)
{
    fprintf(stderr, "01_delayed: %s: %s (%s%s%s)\n", what, err->message,
            cask_err_name(err->code), err->key[0] ? ", key " : "", err->key);
    return 1;
}

int main(void)
{
    cask_error_t err;
    if (cask_kernel_register("example.get_arg1", get_arg1, NULL, &err) ||
        cask_kernel_register("example.get_arg2", get_arg2, NULL, &err) ||
        cask_kernel_register("example.compute", compute, NULL, &err))
        return die("register", &err);

    cask_graph_t *g = cask_graph_new(&err);
    if (!g)
        return die("graph", &err);
    cask_task_t a = cask_delayed(g, "example.get_arg1", NULL, 0, &err);
    cask_task_t b = cask_delayed(g, "example.get_arg2", NULL, 0, &err);
    cask_task_t c = CASK_DELAYED(g, "example.compute", &err, cask_ref(a), cask_ref(b));
    if (c == CASK_NO_TASK) {
        cask_graph_decref(g);
        return die("build", &err);
    }
    printf("built %zu tasks, nothing run yet; c is %s\n", cask_graph_size(g),
           cask_graph_key(g, c));

    cask_value_t result;
    cask_compute_info_t info;
    cask_compute_opts_t opts = { .scheduler = "sync", .flags = CASK_TRACE };
    if (cask_compute(g, &c, 1, &opts, &result, &info, &err)) {
        cask_graph_decref(g);
        return die("compute", &err);
    }
    printf("compute(get_arg1(), get_arg2()) = %lld\n", (long long)result.u.i);
    printf("trace (%zu tasks on %s):\n", cask_trace_size(info.trace), info.scheduler);
    for (size_t i = 0; i < cask_trace_size(info.trace); i++) {
        const cask_trace_event_t *e = cask_trace_event(info.trace, i);
        printf("  worker %d  %8.1f us .. %8.1f us  %s\n", e->worker, e->start_ns / 1e3,
               e->end_ns / 1e3, e->key);
    }
    int ok = result.type == CASK_INT64 && result.u.i == 52;
    cask_value_decref(&result);
    cask_trace_free(info.trace);
    cask_graph_decref(g);
    return ok ? 0 : 1;
}

static int get_arg1(const cask_value_t *args, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    (void)args, (void)n, (void)ctx;
    *out = cask_int(10);
    return 0;
}

static int get_arg2(const cask_value_t *args, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    (void)args, (void)n, (void)ctx;
    *out = cask_int(42);
    return 0;
}

static int compute(const cask_value_t *args, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    if (n != 2 || args[0].type != CASK_INT64 || args[1].type != CASK_INT64)
        return cask_kernel_fail(ctx, "compute takes two integers");
    *out = cask_int(args[0].u.i + args[1].u.i);
    return 0;
}

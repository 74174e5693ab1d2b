/*
** 01_delayed.c: lazy function calls, as in the course material:
**
**     a = get_arg1()          # 10
**     b = get_arg2()          # 42
**     c = compute(a, b)       # a + b
**
** Each C function is called by its own name (CASK_CALL registers it).
** Nothing runs until the compute; then each task runs once, in
** critical-path order, and the trace says what ran when.
*/
#include <stdio.h>

#include <cask/cask.h>

static CASK_KERNEL(get_arg1) { *out = cask_int(10); return 0; }
static CASK_KERNEL(get_arg2) { *out = cask_int(42); return 0; }

static CASK_KERNEL(compute)
{
    if (n_args != 2 || args[0].type != CASK_INT64 || args[1].type != CASK_INT64)
        return cask_kernel_fail(ctx, "compute takes two integers");
    *out = cask_int(cask_value_int(&args[0]) + cask_value_int(&args[1]));
    return 0;
}

int main(void)
{
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t a = CASK_CALL0(g, get_arg1, &err);
    cask_task_t b = CASK_CALL0(g, get_arg2, &err);
    cask_task_t c = CASK_CALL(g, compute, &err, cask_ref(a), cask_ref(b));
    if (c == CASK_NO_TASK) { /* any failed call fails the calls after it */
        fprintf(stderr, "01_delayed: %s\n", err.message);
        return 1;
    }
    printf("built %zu tasks, nothing run yet; c is %s\n", cask_graph_size(g),
           cask_graph_key(g, c));

    cask_value_t result;
    cask_compute_info_t info;
    cask_compute_opts_t opts = { .scheduler = "sync", .flags = CASK_TRACE };
    if (cask_compute(g, &c, 1, &opts, &result, &info, &err)) {
        fprintf(stderr, "01_delayed: %s failed in %s: %s\n", err.key, err.kernel, err.message);
        return 1;
    }
    printf("compute(get_arg1(), get_arg2()) = %lld\n", (long long)cask_value_int(&result));
    printf("trace (%zu tasks on %s):\n", cask_trace_size(info.trace), info.scheduler);
    for (size_t i = 0; i < cask_trace_size(info.trace); i++) {
        const cask_trace_event_t *e = cask_trace_event(info.trace, i);
        printf("  worker %d  %8.1f us .. %8.1f us  %s (group %s)\n", e->worker,
               e->start_ns / 1e3, e->end_ns / 1e3, e->key, e->group);
    }
    int ok = cask_value_int(&result) == 52;
    cask_value_decref(&result);
    cask_trace_free(info.trace);
    cask_graph_decref(g);
    return ok ? 0 : 1;
}

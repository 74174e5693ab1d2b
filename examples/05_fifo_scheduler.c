/*
** 05_fifo_scheduler.c: a scheduler of your own, registered by name.
**
** "fifo" runs ready tasks in the order they became ready, on the calling
** thread, ignoring priorities: the baseline a critical-path order is
** measured against. It drives a run through the public interface only:
** cask_run_sources, cask_run_exec, cask_run_complete, cask_run_stopped.
*/
#include <stdio.h>
#include <stdlib.h>

#include <cask/cask.h>

struct fifo {
    cask_tid_t *q;      /* every task enters once, so size() slots suffice */
    size_t head, tail;
};

static void enqueue(void *ctx, cask_tid_t t)
{
    struct fifo *f = ctx;
    f->q[f->tail++] = t;
}

static int fifo_run(cask_run_t *r, void *udata, cask_error_t *err)
{
    (void)udata;
    struct fifo f = { malloc((cask_run_size(r) + 1) * sizeof(cask_tid_t)), 0, 0 };
    if (!f.q) {
        err->code = CASK_ENOMEM;
        snprintf(err->message, sizeof err->message, "fifo: out of memory");
        return CASK_ENOMEM;
    }
    size_t n;
    const cask_tid_t *src = cask_run_sources(r, &n);
    for (size_t i = 0; i < n; i++)
        enqueue(&f, src[i]);
    while (f.head < f.tail && !cask_run_stopped(r)) {
        cask_tid_t t = f.q[f.head++];
        if (cask_run_exec(r, t, 0) == 0) /* on failure the run keeps the error */
            cask_run_complete(r, t, enqueue, &f);
    }
    free(f.q);
    return 0;
}

int main(void)
{
    cask_error_t err;
    cask_scheduler_t fifo = { .name = "fifo", .run = fifo_run, .max_workers = 1 };
    if (cask_scheduler_register(&fifo, &err)) {
        fprintf(stderr, "05_fifo_scheduler: %s\n", err.message);
        return 1;
    }

    /* A short branch and a long one (a chain of 4 spinning tasks), joined. */
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t s = CASK_DELAYED(g, "cask.add", &err, cask_int(1), cask_int(2));
    cask_task_t l = CASK_DELAYED(g, "cask.spin", &err, cask_int(300), cask_int(10));
    for (int i = 0; i < 3; i++)
        l = CASK_DELAYED(g, "cask.spin", &err, cask_int(300), cask_ref(l));
    cask_task_t total = CASK_DELAYED(g, "cask.add", &err, cask_ref(s), cask_ref(l));
    if (total == CASK_NO_TASK) {
        fprintf(stderr, "05_fifo_scheduler: %s\n", err.message);
        return 1;
    }

    const char *names[2] = { "fifo", "sync" };
    int64_t results[2];
    for (int k = 0; k < 2; k++) {
        cask_value_t r;
        cask_compute_info_t info;
        cask_compute_opts_t opts = { .scheduler = names[k], .flags = CASK_TRACE };
        if (cask_compute(g, &total, 1, &opts, &r, &info, &err)) {
            fprintf(stderr, "05_fifo_scheduler: %s\n", err.message);
            return 1;
        }
        results[k] = cask_value_int(&r);
        printf("%-4s: total = %lld; order:", names[k], (long long)results[k]);
        for (size_t i = 0; i < cask_trace_size(info.trace); i++) {
            const char *key = cask_trace_event(info.trace, i)->key;
            printf(" %.4s", key);
        }
        printf("\n");
        cask_trace_free(info.trace);
    }
    cask_graph_decref(g);
    return results[0] == results[1] && results[0] == 13 ? 0 : 1;
}

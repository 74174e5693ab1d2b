/*
** sched/sync.c: the sync scheduler: every task on the calling thread, in
** priority order (with a memory budget, the first task in that order that
** fits it). Deterministic; the reference for results and speedup.
*/
#include "sched.h"

struct sync_ctx {
    cask_readyq_t q;  /* ready tasks */
    int rc;           /* CASK_ENOMEM if a push failed */
};

static void on_ready(void *ctx, cask_tid_t s)
{
    struct sync_ctx *c = ctx;
    if (cask_readyq_push(&c->q, s))
        c->rc = CASK_ENOMEM;
}

static int sync_run(cask_run_t *r, void *udata, cask_error_t *err)
{
    (void)udata;
    struct sync_ctx c = { .rc = 0 };
    cask_readyq_init(&c.q, r);
    size_t n;
    const cask_tid_t *src = cask_run_sources(r, &n);
    for (size_t i = 0; i < n && !c.rc; i++)
        on_ready(&c, src[i]);
    cask_tid_t t;
    while (!c.rc && !cask_run_stopped(r) && cask__readyq_pop_admitted(&c.q, r, false, &t)) {
        if (cask_run_exec(r, t, 0))
            break;
        cask_run_complete(r, t, on_ready, &c);
    }
    if (!c.rc && !cask_run_stopped(r)) /* tasks ready, none fits the budget */
        cask__run_stalled(r, &c.q);
    cask_readyq_destroy(&c.q);
    if (c.rc)
        return cask__err(err, c.rc, NULL, NULL, "no memory for the ready queue");
    return 0;
}

const cask__backend_t cask__backend_sync = { { "sync", sync_run, NULL, 1 }, NULL, NULL, true };

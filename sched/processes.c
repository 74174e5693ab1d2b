/*
** sched/processes.c: the processes scheduler: forked worker processes.
**
** For each compute the parent maps a shared arena (sched/shm.c), puts the
** run's array of values in it, and forks its workers. A worker inherits
** the graph and the plan, so a task travels as its number alone: the
** parent sends task ids down a Unix socket (SOCK_SEQPACKET, one message per
** batch), the worker calls the kernel on values it reads in place in the
** arena, makes its result there too, writes it into the shared array and
** answers with the task id, its status and its times. Nothing is copied
** between processes but those few bytes; only the requested outputs are
** copied once, out of the arena, when the compute ends.
**
** The parent schedules: it keeps the ready queue (the priority order of
** every back-end) and completes tasks as answers come. Whenever a worker
** has nothing to run and a task is ready, that worker gets the queue's
** first task before any worker gets a second one, so no worker holds a
** task another could start now. A worker holds more than the task it runs
** (so it never waits for the parent) only when each of them is known to be
** short: its kernel has been timed in this compute under SHORT_NS (a
** measured mean, never an assumption), it has no given cost above that,
** and what the worker holds adds up to at most HOLD_NS. The best successor
** of a task stays on the worker that made its inputs when the queue holds
** nothing better. With a memory budget, every task sent is admitted first
** (cask__run_admit), an idle worker's first by the budget's rule
** (consumers before producers), and successors go through the queue.
**
** Each worker keeps, in the arena, the task whose kernel it is running and
** the answers it has written but not yet sent. A worker that dies (its
** socket closes) is reaped with waitpid; the answers it left are taken as
** if they had arrived (their outputs are in the arena: those tasks are not
** run again), the task it was running when it died is the one blamed and
** retried, up to the run's retries (then the compute fails naming that
** task's key and kernel and the signal), the rest of what it held goes
** back to the queue, and a new worker takes its place. On an error the
** parent raises a flag in the arena that makes workers skip what they were
** sent but have not started, waits for the tasks running, then closes
** every socket: the workers exit on end-of-file and are reaped. No
** process, descriptor or mapping outlives the compute.
**
** Limits: values must be able to live in the arena. An opaque pointer
** cannot cross processes: an input that is one is refused before anything
** runs (except a borrowed array buffer, which workers read in their copy
** of the parent's memory as it was at the fork), and a kernel that returns
** one fails its task.
*/
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sched.h"
#include "shm.h"

#define MAX_DEPTH 16      /* most tasks a worker holds: one running, the rest next */
#define SHORT_NS  100000  /* a kernel whose mean time is under 100 us is short */
#define HOLD_NS   1000000 /* most measured time a worker holds beyond its first task */
#define FLUSH_AT  4       /* a worker answers at least every FLUSH_AT tasks */
#define MAX_PROCS 256     /* most workers */
#define SPARES    64      /* worker deaths one compute survives */
#define MSG_MAX   256     /* bytes of a failure message */
#define SKIPPED   1       /* an answer's rc: not run, the compute is stopping (codes are < 0) */
#define NONE      UINT32_MAX

/* A worker's answer for one task. Answers travel in batches; a failure
** ends its batch and its message follows it, NUL-terminated. */
typedef struct answer {
    uint32_t t;          /* the task */
    int32_t  rc;         /* 0, SKIPPED, or the task's error code (< 0) */
    uint64_t start, end; /* kernel start and end, ticks */
} answer_t;

#define OUT_MAX (FLUSH_AT + MSG_MAX / sizeof(answer_t) + 1) /* answers, then a message */

/* What a worker shares with the parent, in the arena: what the parent
** reads when the worker dies. */
typedef struct wstate {
    _Atomic uint32_t running; /* the task whose kernel runs now, or NONE */
    _Atomic uint32_t nout;    /* answers in out[] whole and not yet sent */
    answer_t out[OUT_MAX];    /* the batch being written (sent from here) */
} wstate_t;

/* What the processes share besides values. */
typedef struct shared {
    atomic_bool stop;    /* skip tasks not yet started */
} shared_t;

typedef struct proc {
    pid_t      pid;      /* 0: none */
    int        fd;       /* the parent's end of the socket; -1: none */
    int        head, count; /* tasks sent and not answered: ring[head ..] */
    cask_tid_t keep;     /* ready, to be sent to this worker next (its inputs are
                            warm there), or NONE */
    double     held;     /* measured ticks of the tasks held beyond the head */
    double     ticks[MAX_DEPTH]; /* each ring task's share of held (0 at the head) */
    cask_tid_t ring[MAX_DEPTH];
} proc_t;

/* A kernel's measured time in this compute. */
typedef struct kstat {
    double   mean;       /* ticks, a running mean */
    uint32_t n;          /* calls timed */
} kstat_t;

typedef struct procs {
    cask_run_t  *r;
    cask__shm_t *m;
    shared_t    *sh;
    wstate_t    *ws;       /* nw of them, in the arena */
    proc_t      *p;
    int          nw;
    kstat_t     *kstat;    /* by kernel id */
    double       short_ticks, hold_ticks; /* SHORT_NS and HOLD_NS in ticks; 0: unknown yet */
    pid_t        parent;
    cask_readyq_t q;
    uint8_t     *deaths;   /* worker deaths while running each task */
    uint16_t    *sent;     /* while a task is in a worker's ring: that worker + 1 */
    cask_tid_t  *buf;      /* successors made ready by the last task */
    size_t       nbuf, cap;
    int          nomem;
    int          inflight; /* tasks sent and not answered */
    int          idle;     /* live workers holding nothing */
} procs_t;

/* ------------------------------------------------------------- the worker */

/* Make out readable by every process: copy it into the arena if a kernel
** returned a value made before the fork (an input passed through). */
static int share(const cask__shm_t *m, cask_value_t *out, char *msg)
{
    if (out->type == CASK_OPAQUE) {
        cask_value_decref(out);
        snprintf(msg, MSG_MAX, "returned an opaque value, which cannot leave its worker "
                 "process (the threads scheduler can pass it)");
        return CASK_ETYPE;
    }
    if (cask__shm_holds(m, out))
        return 0;
    cask_value_t copy;
    size_t bytes = cask_value_nbytes(out);
    int rc = cask__value_copy(out, &copy);
    cask_value_decref(out);
    if (rc) {
        snprintf(msg, MSG_MAX, "no room in the shared arena for a %zu-byte result", bytes);
        return rc;
    }
    *out = copy;
    return 0;
}

/* Run task t as worker id into answer a (its message, on a failure, into
** msg). The kernel runs with ws->running set to t. */
static void run_one(procs_t *ps, wstate_t *ws, int id, cask_tid_t t, answer_t *a, char *msg)
{
    cask_run_t *r = ps->r;
    a->t = t;
    a->start = a->end = 0;
    if (atomic_load_explicit(&ps->sh->stop, memory_order_relaxed)) {
        a->rc = SKIPPED;
        return;
    }
    atomic_store_explicit(&ws->running, t, memory_order_release);
    cask_value_t v;
    uint64_t t0 = cask__tick();
    a->rc = cask__run_invoke(r, t, id, &v, &a->start, &a->end, msg, MSG_MAX);
    if (!a->end) { /* untimed run: the parent still learns how long kernels take */
        a->start = t0;
        a->end = cask__tick();
    }
    if (!a->rc)
        a->rc = share(ps->m, &v, msg);
    if (!a->rc)
        r->val[t] = v;
}

/* A worker: take task ids from the socket, run them in order, answer in
** batches (at least every FLUSH_AT tasks, and whenever it has nothing left
** to run, or a task failed), until the socket closes. Each answer is
** written whole into the arena before the next kernel starts, so what the
** worker finished is known even if it dies before sending it. */
static void worker_main(procs_t *ps, int id, int fd, int slot)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != ps->parent)
        _exit(1);
    cask__alloc_fail_at(0); /* tests inject allocation failures in the parent only */
    cask__shm_enter(ps->m, slot, false);
    wstate_t *ws = &ps->ws[id];
    cask_tid_t q[MAX_DEPTH];
    size_t qh = 0, qn = 0;
    char msg[MSG_MAX];
    uint32_t nout = 0;
    for (;;) {
        if (qh == qn) { /* nothing to run: wait for the parent */
            qh = qn = 0;
            ssize_t k = recv(fd, q, sizeof q, 0);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0)
                break;
            qn = (size_t)k / sizeof *q;
        } else if (qn < MAX_DEPTH) { /* take what has come, without waiting */
            ssize_t k = recv(fd, q + qn, (MAX_DEPTH - qn) * sizeof *q, MSG_DONTWAIT);
            if (k == 0)
                break;
            if (k > 0)
                qn += (size_t)k / sizeof *q;
        }
        answer_t *a = &ws->out[nout];
        run_one(ps, ws, id, q[qh++], a, msg);
        size_t len = (nout + 1) * sizeof *a;
        if (a->rc < 0) { /* the message follows; skip what comes after, here too */
            atomic_store(&ps->sh->stop, true);
            size_t ml = strnlen(msg, MSG_MAX - 1);
            memcpy((char *)(a + 1), msg, ml);
            ((char *)(a + 1))[ml] = '\0';
            len += ml + 1;
        }
        atomic_store_explicit(&ws->nout, ++nout, memory_order_release);
        atomic_store_explicit(&ws->running, NONE, memory_order_release);
        if (qh < qn && nout < FLUSH_AT && a->rc >= 0)
            continue;
        while (send(fd, ws->out, len, MSG_NOSIGNAL) < 0)
            if (errno != EINTR)
                goto done;
        nout = 0;
        atomic_store_explicit(&ws->nout, 0, memory_order_release);
        if (qh > 0 && qh < qn) { /* keep the rest at the front */
            memmove(q, q + qh, (qn - qh) * sizeof *q);
            qn -= qh;
            qh = 0;
        }
    }
done:
    fflush(NULL); /* what kernels printed */
    _exit(0);
}

/* --------------------------------------------------------------- the parent */

static int spawn(procs_t *ps, int i, cask_error_t *err)
{
    int slot = cask__shm_new_slot(ps->m);
    if (slot < 0)
        return cask__err(err, CASK_EWORKER, NULL, NULL,
                         "%d worker processes died; giving up", SPARES);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
        return cask__err(err, CASK_EWORKER, NULL, NULL, "socketpair: %s", strerror(errno));
    atomic_store(&ps->ws[i].running, NONE);
    atomic_store(&ps->ws[i].nout, 0);
    fflush(NULL); /* or the worker would inherit, and repeat, unwritten output */
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(sv[0]);
        close(sv[1]);
        return cask__err(err, CASK_EWORKER, NULL, NULL, "fork: %s", strerror(e));
    }
    if (pid == 0) {
        close(sv[0]);
        for (int j = 0; j < ps->nw; j++) /* other workers' sockets: theirs alone */
            if (ps->p[j].fd >= 0)
                close(ps->p[j].fd);
        worker_main(ps, i, sv[1], slot);
    }
    close(sv[1]);
    ps->p[i] = (proc_t){ .pid = pid, .fd = sv[0], .keep = NONE };
    ps->idle++;
    return 0;
}

static void collect(void *ctx, cask_tid_t s)
{
    procs_t *ps = ctx;
    if (ps->sent[s]) /* sent ahead behind its last input: nothing to do */
        return;
    if (ps->nbuf == ps->cap) {
        size_t cap = ps->cap;
        if (cask__grow((void **)&ps->buf, &cap, ps->nbuf + 1, sizeof *ps->buf)) {
            ps->nomem = 1;
            return;
        }
        ps->cap = cap;
    }
    ps->buf[ps->nbuf++] = s;
}

static void push(procs_t *ps, cask_tid_t t)
{
    if (cask_readyq_push(&ps->q, t))
        ps->nomem = 1;
}

/* t's measured mean in ticks when t is known to be short (its kernel timed
** under SHORT_NS in this compute, and no given cost over it), else -1. */
static double short_ticks(const procs_t *ps, cask_tid_t t)
{
    uint32_t gt = ps->r->p.task[t];
    const cask__gview_t *gv = &ps->r->p.gv;
    const kstat_t *k = &ps->kstat[gv->kernel[gt]];
    if (!k->n || !(k->mean < ps->short_ticks) || cask__view_cost(gv, gt) * 1e9 >= SHORT_NS)
        return -1;
    return k->mean;
}

/* Edges into s from tasks on worker i (in its ring or its batch), or
** UINT32_MAX when s has too many inputs to look at. */
#define FOLLOW_SCAN 64
static uint32_t edges_from(const procs_t *ps, int i, cask_tid_t s)
{
    const cask_run_t *r = ps->r;
    uint32_t a = r->p.pred_off[s], b = r->p.pred_off[s + 1], k = 0;
    if (b - a > FOLLOW_SCAN)
        return UINT32_MAX;
    for (uint32_t e = a; e < b; e++)
        k += ps->sent[r->p.pred[e]] == i + 1;
    return k;
}

/* A successor of t that will be ready once what worker i holds is done
** (every input it waits for is in i's ring or batch, t among them): sent
** right behind t, the worker runs it without waiting for the parent, so
** a worker finishes a subtree in one message. The best such, or NONE. */
static cask_tid_t follower(procs_t *ps, int i, cask_tid_t t)
{
    cask_run_t *r = ps->r;
    size_t n;
    const cask_tid_t *s = cask_run_successors(r, t, &n);
    cask_tid_t best = NONE;
    for (size_t j = 0; j < n; j++) {
        uint32_t want = atomic_load_explicit(&r->pending[s[j]], memory_order_relaxed);
        if (!ps->sent[s[j]] && want <= MAX_DEPTH && (want == 1 || edges_from(ps, i, s[j]) == want) &&
            (best == NONE || cask_run_priority(r, s[j]) > cask_run_priority(r, best)))
            best = s[j];
    }
    return best;
}

/*
** Send worker i `first` (unless NONE), then each time the follower of the
** last task sent if the queue holds nothing better, else the queue's first
** while the worker holds fewer than `limit`. A follower is not ready, so no
** other worker could start it: only MAX_DEPTH bounds them. Beyond the one
** task a worker runs, it is sent only tasks known to be short, and only
** while the measured time it holds beyond that one stays under HOLD_NS.
** One message for all. With a memory budget, a worker holding nothing is
** first sent the task the budget's rule picks (cask__readyq_pop_admitted),
** and every task beyond it must be admitted too.
*/
static void send_batch(procs_t *ps, int i, cask_tid_t first, int limit)
{
    cask_run_t *r = ps->r;
    proc_t *p = &ps->p[i];
    if (p->fd < 0)
        return;
    cask_tid_t batch[MAX_DEPTH], top;
    cask_tid_t last = p->count ? p->ring[(p->head + p->count - 1) % MAX_DEPTH] : NONE;
    double ticks[MAX_DEPTH] = { 0 };
    int k = 0;
    if (r->budget && !p->count) { /* an idle worker: the task the budget admits first */
        if (!cask__readyq_pop_admitted(&ps->q, r, ps->inflight > 0, &batch[0]))
            return;
        ps->sent[batch[0]] = (uint16_t)(i + 1);
        last = batch[0];
        k = 1;
    }
    while (p->count + k < MAX_DEPTH) {
        cask_tid_t next = first, f;
        bool queued = false;
        first = NONE;
        if (next == NONE && last != NONE && (f = follower(ps, i, last)) != NONE &&
            (!cask_readyq_peek(&ps->q, &top) || cask_run_priority(r, f) >= cask_run_priority(r, top)))
            next = f;
        if (next == NONE) {
            if (p->count + k >= limit || !cask_readyq_peek(&ps->q, &next))
                break;
            queued = true;
        }
        double t = 0;
        if (p->count + k > 0) { /* beyond the one it runs: short tasks only */
            t = short_ticks(ps, next);
            if (t < 0 || p->held + t > ps->hold_ticks)
                break;
        }
        if (r->budget && !cask__run_admit(r, next)) /* it does not fit (a follower's
                                                        size is reserved before it is ready) */
            break;
        if (p->count + k > 0)
            p->held += ticks[k] = t;
        if (queued)
            cask_readyq_pop(&ps->q, &next);
        batch[k++] = last = next;
        ps->sent[next] = (uint16_t)(i + 1);
    }
    if (!k)
        return;
    for (int j = 0; j < k; j++) {
        cask__run_pre(ps->r, batch[j], i);
        p->ring[(p->head + p->count + j) % MAX_DEPTH] = batch[j];
        p->ticks[(p->head + p->count + j) % MAX_DEPTH] = ticks[j];
    }
    ps->idle -= !p->count;
    p->count += k;
    ps->inflight += k;
    /* A failed send means the worker is gone: its socket will say so, and
    ** the tasks in its ring go back to the queue then. */
    while (send(p->fd, batch, (size_t)k * sizeof *batch, MSG_NOSIGNAL) < 0 && errno == EINTR)
        ;
}

/* send_batch, and `first` (a ready task) back to the queue if it was not
** sent after all (no room for it among short tasks, a budget, no worker).
** With a budget, `first` goes to the queue at once: the worker's first task
** is the one the budget's rule picks there. */
static void dispatch(procs_t *ps, int i, cask_tid_t first, int limit)
{
    if (ps->r->budget && first != NONE) {
        push(ps, first);
        first = NONE;
    }
    send_batch(ps, i, first, limit);
    if (first != NONE && !ps->sent[first])
        push(ps, first);
}

/* Give work out, one message per worker: first to the workers that hold
** nothing, each its kept task or the queue's first and at most an even
** share of the queue (so each of them gets one before any gets two), then
** to the others their kept task, their share of what is left and the
** followers of what they hold, as far as dispatch allows. */
static void fill(procs_t *ps)
{
    size_t idle = 0;
    for (int i = 0; i < ps->nw; i++)
        idle += ps->p[i].fd >= 0 && !ps->p[i].count;
    size_t share = idle ? cask_readyq_size(&ps->q) / idle : 0;
    int busy[MAX_PROCS], nbusy = 0;
    for (int i = 0; i < ps->nw; i++) {
        proc_t *p = &ps->p[i];
        if (p->fd < 0)
            continue;
        if (p->count) {
            busy[nbusy++] = i;
        } else if (p->keep != NONE || cask_readyq_size(&ps->q)) {
            dispatch(ps, i, p->keep, share > 1 ? (int)(share < MAX_DEPTH ? share : MAX_DEPTH) : 1);
            p->keep = NONE;
        }
    }
    share = (cask_readyq_size(&ps->q) + (size_t)ps->nw - 1) / (size_t)ps->nw;
    for (int b = 0; b < nbusy; b++) {
        proc_t *p = &ps->p[busy[b]];
        if (p->count < MAX_DEPTH)
            dispatch(ps, busy[b], p->keep, p->count + (int)(share < MAX_DEPTH ? share : MAX_DEPTH));
        else if (p->keep != NONE)
            push(ps, p->keep);
        p->keep = NONE;
    }
}

static void fail_run(cask_run_t *r, cask_tid_t t, int sig, const char *msg)
{
    cask_error_t e;
    const cask_graph_t *g = r->g;
    uint32_t gt = r->p.task[t];
    cask__err(&e, CASK_EWORKER, cask__graph_key(g, gt), cask__kernel_name(g, gt),
              "%s", msg);
    e.signal = sig;
    cask__run_fail(r, &e);
}

/* One answer from worker i, for the head of its ring; msg: a failure's
** text. */
static void answered(procs_t *ps, int i, const answer_t *a, const char *msg)
{
    cask_run_t *r = ps->r;
    proc_t *p = &ps->p[i];
    cask_tid_t t = a->t; /* == p->ring[p->head]: workers answer in order */
    p->head = (p->head + 1) % MAX_DEPTH;
    p->count--;
    p->held = p->count ? p->held - p->ticks[p->head] : 0; /* the next is no longer held */
    ps->idle += !p->count && p->fd >= 0;
    p->ticks[p->head] = 0;
    ps->inflight--;
    ps->sent[t] = 0;
    if (a->rc == SKIPPED) {
        cask__run_unadmit(r, t);
        return;
    }
    if (!a->rc && a->end > a->start) { /* learn the kernel's time */
        kstat_t *k = &ps->kstat[r->p.gv.kernel[r->p.task[t]]];
        double d = (double)(a->end - a->start);
        k->mean += (d - k->mean) * (k->n < 16 ? 1.0 / ++k->n : 1.0 / 16); /* then a moving mean */
        if (!ps->short_ticks) { /* by now the clock's rate is known well enough */
            cask__tickconv_t c;
            cask__tick_rate(&c);
            ps->short_ticks = SHORT_NS / c.ns_per_tick;
            ps->hold_ticks = HOLD_NS / c.ns_per_tick;
        }
    }
    cask_value_t out = a->rc ? cask_none() : r->val[t];
    if (cask__run_post(r, t, i, a->rc, out, a->start, a->end, msg)) {
        atomic_store(&ps->sh->stop, true);
        return;
    }
    ps->nbuf = 0;
    cask_run_complete(r, t, collect, ps);
    if (!ps->nbuf || cask_run_stopped(r))
        return;
    /* The best successor stays on this worker if it is free for it and the
    ** queue holds nothing better: its inputs are still in that core's
    ** cache. */
    size_t best = 0;
    for (size_t j = 1; j < ps->nbuf; j++)
        if (cask_run_priority(r, ps->buf[j]) > cask_run_priority(r, ps->buf[best]))
            best = j;
    cask_tid_t keep = ps->buf[best], top;
    ps->buf[best] = ps->buf[--ps->nbuf];
    for (size_t j = 0; j < ps->nbuf; j++)
        push(ps, ps->buf[j]);
    if (r->budget) /* every task is admitted from the queue */
        push(ps, keep);
    else if (p->fd >= 0 && (!p->count || (short_ticks(ps, keep) >= 0 && p->count < MAX_DEPTH)) &&
        (!cask_readyq_peek(&ps->q, &top) || cask_run_priority(r, keep) >= cask_run_priority(r, top))) {
        if (p->keep != NONE) /* an earlier answer's: this one's inputs are warmer */
            push(ps, p->keep);
        p->keep = keep; /* sent by fill, with whatever else the worker gets */
        if (ps->idle == !p->count) { /* nobody else is waiting: send it all now */
            size_t share = (cask_readyq_size(&ps->q) + (size_t)ps->nw - 1) / (size_t)ps->nw;
            p->keep = NONE;
            dispatch(ps, i, keep, p->count + 1 + (int)(share < MAX_DEPTH ? share : MAX_DEPTH));
        }
    } else {
        push(ps, keep);
    }
}

/* Worker i's socket closed: reap it, take the answers it wrote but did not
** send, retry or fail the task it died running, requeue the rest it held,
** and replace it. */
static void died(procs_t *ps, int i)
{
    cask_run_t *r = ps->r;
    proc_t *p = &ps->p[i];
    wstate_t *ws = &ps->ws[i];
    int st = 0, sig = 0;
    ps->idle -= !p->count;
    close(p->fd);
    p->fd = -1;
    while (waitpid(p->pid, &st, 0) < 0 && errno == EINTR)
        ;
    p->pid = 0;
    if (WIFSIGNALED(st))
        sig = WTERMSIG(st);
    /* The process is gone: what it wrote in the arena is all there is.
    ** Answers already received are no longer at the ring's head. */
    uint32_t n = atomic_load(&ws->nout);
    for (uint32_t j = 0; j < n && j < OUT_MAX && p->count; j++) {
        const answer_t *a = &ws->out[j];
        if (a->t != p->ring[p->head])
            continue;
        const char *msg = "";
        if (a->rc < 0) { /* its message follows it */
            ((char *)ws->out)[sizeof ws->out - 1] = '\0';
            msg = (const char *)(a + 1);
        }
        answered(ps, i, a, msg);
    }
    uint32_t running = atomic_load(&ws->running);
    if (p->count && running == p->ring[p->head]) {
        cask_tid_t t = running;
        int k = ++ps->deaths[t];
        if (!cask_run_stopped(r) && k > r->retries) {
            char msg[200], how[80];
            if (sig)
                snprintf(how, sizeof how, "was killed by signal %d (%s)", sig, strsignal(sig));
            else
                snprintf(how, sizeof how, "exited with status %d", WEXITSTATUS(st));
            snprintf(msg, sizeof msg, "the worker process running this task %s; "
                     "%d attempt%s, no retries left", how, k, k == 1 ? "" : "s");
            fail_run(r, t, sig, msg);
        }
    }
    /* Back to the queue: what was ready; the rest waits for its inputs. */
    for (int j = 0; j < p->count; j++) {
        cask_tid_t u = p->ring[(p->head + j) % MAX_DEPTH];
        ps->sent[u] = 0;
        cask__run_unadmit(r, u);
        if (!atomic_load_explicit(&r->pending[u], memory_order_relaxed))
            push(ps, u);
    }
    ps->inflight -= p->count;
    p->count = p->head = 0;
    p->held = 0;
    if (p->keep != NONE)
        push(ps, p->keep);
    p->keep = NONE;
    if (!cask_run_stopped(r)) {
        cask_error_t e;
        if (spawn(ps, i, &e))
            cask__run_fail(r, &e);
    }
}

/* Take every batch of answers waiting on worker i's socket. */
static void answers(procs_t *ps, int i)
{
    answer_t in[OUT_MAX];
    while (ps->p[i].fd >= 0) {
        ssize_t k = recv(ps->p[i].fd, in, sizeof in, MSG_DONTWAIT);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (k < (ssize_t)sizeof *in) { /* end of file, or a reset: the worker is gone */
            died(ps, i);
            return;
        }
        size_t n = (size_t)k / sizeof *in;
        for (size_t j = 0; j < n; j++) {
            const char *msg = "";
            if (in[j].rc < 0) { /* a failure: the rest of the message is its text */
                msg = (const char *)&in[j + 1];
                ((char *)in)[k < (ssize_t)sizeof in ? k : k - 1] = '\0';
                n = j + 1;
            }
            answered(ps, i, &in[j], msg);
        }
    }
}

static int loop(procs_t *ps, struct pollfd *pf, cask_error_t *err)
{
    cask_run_t *r = ps->r;
    size_t n = cask_run_size(r);
    for (;;) {
        int stopped = cask_run_stopped(r);
        if (ps->nomem && !stopped) {
            cask_error_t e;
            cask__err(&e, CASK_ENOMEM, NULL, NULL, "no memory for the ready queue");
            cask__run_fail(r, &e);
            continue;
        }
        if (stopped) {
            atomic_store(&ps->sh->stop, true);
            if (!ps->inflight)
                return 0;
        } else {
            if (atomic_load_explicit(&r->done, memory_order_relaxed) == n)
                return 0;
            fill(ps);
            if (!ps->inflight && r->budget && cask_readyq_size(&ps->q)) {
                cask__run_stalled(r, &ps->q); /* nothing fits, nothing runs */
                continue;
            }
            if (!ps->inflight)
                return cask__err(err, CASK_EWORKER, NULL, NULL,
                                 "no task is ready or running, yet %zu of %zu are not done",
                                 n - atomic_load(&r->done), n);
        }
        for (int i = 0; i < ps->nw; i++) {
            pf[i].fd = ps->p[i].fd;
            pf[i].events = POLLIN;
            pf[i].revents = 0;
        }
        if (poll(pf, (nfds_t)ps->nw, -1) < 0) {
            if (errno == EINTR)
                continue;
            return cask__err(err, CASK_EWORKER, NULL, NULL, "poll: %s", strerror(errno));
        }
        for (int i = 0; i < ps->nw; i++)
            if (pf[i].revents && ps->p[i].fd >= 0)
                answers(ps, i);
    }
}

static int procs_run(cask_run_t *r, void *udata, cask_error_t *err)
{
    (void)udata;
    size_t n = cask_run_size(r);
    int rc = cask__run_refuse_opaque(r, "a process boundary", err);
    if (rc || !n)
        return rc;
    procs_t ps;
    memset(&ps, 0, sizeof ps);
    ps.r = r;
    ps.nw = cask_run_workers(r);
    ps.parent = getpid();
    cask_readyq_init(&ps.q, r);
    cask_value_t *own = r->val, *shared_val = NULL;
    struct pollfd *pf = NULL;
    if ((rc = cask__shm_open(&ps.m, 1 + ps.nw + SPARES, err)))
        return rc;
    cask__shm_new_slot(ps.m); /* slot 0: the parent's */
    ps.sh = cask__shm_parent_alloc(ps.m, sizeof *ps.sh);
    ps.ws = cask__shm_parent_alloc(ps.m, (size_t)ps.nw * sizeof *ps.ws);
    shared_val = cask__shm_parent_alloc(ps.m, n * sizeof *shared_val);
    ps.p = cask__calloc((size_t)ps.nw, sizeof *ps.p);
    for (int i = 0; ps.p && i < ps.nw; i++)
        ps.p[i].fd = -1; /* before any exit: 0 would be stdin */
    ps.deaths = cask__calloc(n, 1);
    ps.sent = cask__calloc(n, sizeof *ps.sent);
    ps.kstat = cask__calloc(CASK__MAX_KERNELS, sizeof *ps.kstat);
    pf = cask__calloc((size_t)ps.nw, sizeof *pf);
    if (!ps.sh || !ps.ws || !shared_val || !ps.p || !ps.deaths || !ps.sent || !ps.kstat || !pf) {
        rc = cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for %zu tasks on %d processes",
                       n, ps.nw);
        goto out;
    }
    atomic_init(&ps.sh->stop, false);
    for (size_t t = 0; t < n; t++)
        shared_val[t] = cask_none();
    r->val = shared_val;
    size_t ns;
    const cask_tid_t *src = cask_run_sources(r, &ns);
    for (size_t i = 0; i < ns; i++)
        push(&ps, src[i]);
    for (int i = 0; i < ps.nw && !rc; i++)
        rc = spawn(&ps, i, err);
    if (!rc)
        rc = loop(&ps, pf, err);
out:
    if (ps.p) {
        for (int i = 0; i < ps.nw; i++) {
            if (ps.p[i].fd >= 0)
                close(ps.p[i].fd); /* the worker sees end of file and exits */
            if (rc && ps.p[i].pid > 0)
                kill(ps.p[i].pid, SIGKILL); /* the scheduler itself failed */
        }
        for (int i = 0; i < ps.nw; i++)
            if (ps.p[i].pid > 0)
                while (waitpid(ps.p[i].pid, NULL, 0) < 0 && errno == EINTR)
                    ;
    }
    /* The requested outputs leave the arena; everything else goes with it. */
    if (r->val == shared_val && !rc && !cask_run_stopped(r))
        for (size_t i = 0; i < r->p.n_out; i++) {
            cask_tid_t o = r->p.out[i];
            if (own[o].type != CASK_NONE)
                continue; /* asked for twice */
            if (!cask__has_blob(&shared_val[o]))
                own[o] = shared_val[o];
            else if (cask__value_copy(&shared_val[o], &own[o]))
                rc = cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for the results");
        }
    r->val = own;
    cask_readyq_destroy(&ps.q);
    cask__free(ps.buf);
    cask__free(ps.deaths);
    cask__free(ps.sent);
    cask__free(ps.kstat);
    cask__free(ps.p);
    cask__free(pf);
    cask__shm_close(ps.m);
    return rc;
}

const cask__backend_t cask__backend_processes = { { "processes", procs_run, NULL, MAX_PROCS },
                                                  NULL, NULL, true };

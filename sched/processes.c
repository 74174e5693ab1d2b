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
** every back-end), sends each worker several tasks ahead so it never
** waits for the parent, prefers the worker that made a task's inputs, and
** completes tasks as answers come. A worker that dies (its socket closes)
** is reaped with waitpid and replaced; the task it was running is retried
** up to the run's retries, then the compute fails naming the key, the
** kernel and the signal. On an error the parent raises a flag in the arena
** that makes workers skip what they were sent but have not started, waits
** for the tasks running, then closes every socket: the workers exit on
** end-of-file and are reaped. No process, descriptor or mapping outlives
** the compute.
**
** Limits: values must be able to live in the arena. An opaque pointer
** cannot cross processes: an input that is one is refused before anything
** runs, and a kernel that returns one fails its task.
*/
#include <errno.h>
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

#define MAX_DEPTH 16    /* most tasks a worker holds: one running, the rest next */
#define SLOW_TICKS 100000 /* mean kernel time (ticks, ~40 us) above which a worker
                            holds only two tasks, so order follows priority */
#define FLUSH_AT  4     /* a worker answers at least every FLUSH_AT tasks */
#define MAX_PROCS 256   /* most workers */
#define SPARES    64    /* worker deaths one compute survives */
#define MSG_MAX   256   /* bytes of a failure message */
#define SKIPPED   1     /* an answer's rc: not run, the compute is stopping (codes are < 0) */

/* A worker's answer for one task. Answers travel in batches; a failure
** ends its batch and its message follows it, NUL-terminated. */
typedef struct answer {
    uint32_t t;          /* the task */
    int32_t  rc;         /* 0, SKIPPED, or the task's error code (< 0) */
    uint64_t start, end; /* kernel start and end, ticks */
} answer_t;

/* What the processes share besides values. */
typedef struct shared {
    atomic_bool stop;    /* skip tasks not yet started */
} shared_t;

typedef struct proc {
    pid_t      pid;      /* 0: none */
    int        fd;       /* the parent's end of the socket; -1: none */
    int        head, count; /* tasks sent and not answered: ring[head ..] */
    cask_tid_t ring[MAX_DEPTH];
} proc_t;

typedef struct procs {
    cask_run_t  *r;
    cask__shm_t *m;
    shared_t    *sh;
    proc_t      *p;
    int          nw;
    int          depth;    /* tasks a worker may hold now */
    double       mean;     /* running mean of kernel ticks */
    pid_t        parent;
    cask_readyq_t q;
    uint8_t     *deaths;   /* worker deaths while running each task */
    uint8_t     *sent;     /* 1 while a task is in some worker's ring */
    cask_tid_t  *buf;      /* successors made ready by the last task */
    size_t       nbuf, cap;
    int          nomem;
    int          inflight; /* tasks sent and not answered */
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

/* A worker: take task ids from the socket, run them in order, answer in
** batches (at least every FLUSH_AT tasks, and whenever it has nothing left
** to run), until the socket closes. */
static void worker_main(procs_t *ps, int id, int fd, int slot)
{
    cask_run_t *r = ps->r;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != ps->parent)
        _exit(1);
    cask__alloc_fail_at(0); /* tests inject allocation failures in the parent only */
    cask__shm_enter(ps->m, slot, false);
    cask_tid_t q[MAX_DEPTH];
    size_t qh = 0, qn = 0;
    answer_t out[FLUSH_AT + MSG_MAX / sizeof(answer_t) + 1]; /* answers, then a message */
    char msg[MSG_MAX];
    size_t nout = 0;
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
        answer_t *a = &out[nout++];
        size_t len = nout * sizeof *a;
        a->t = q[qh++];
        a->start = a->end = 0;
        if (atomic_load_explicit(&ps->sh->stop, memory_order_relaxed)) {
            a->rc = SKIPPED;
        } else {
            cask_value_t v;
            a->rc = cask__run_invoke(r, a->t, id, &v, &a->start, &a->end, msg, sizeof msg);
            if (!a->rc)
                a->rc = share(ps->m, &v, msg);
            if (!a->rc) {
                r->val[a->t] = v;
            } else { /* the message follows; skip what comes after, here too */
                atomic_store(&ps->sh->stop, true);
                size_t ml = strnlen(msg, MSG_MAX - 1);
                memcpy((char *)&out[nout], msg, ml);
                ((char *)&out[nout])[ml] = '\0';
                len += ml + 1;
            }
        }
        if (qh < qn && nout < FLUSH_AT && len == nout * sizeof *a)
            continue;
        while (send(fd, out, len, MSG_NOSIGNAL) < 0)
            if (errno != EINTR)
                goto done;
        nout = 0;
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
    ps->p[i] = (proc_t){ .pid = pid, .fd = sv[0] };
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

/* A successor of t that will be ready once t is done (t is its only input
** not done): sent right behind t, the worker runs it without waiting for
** the parent. The best such by rank, or UINT32_MAX. */
static cask_tid_t follower(procs_t *ps, cask_tid_t t)
{
    cask_run_t *r = ps->r;
    size_t n;
    const cask_tid_t *s = cask_run_successors(r, t, &n);
    cask_tid_t best = UINT32_MAX;
    for (size_t i = 0; i < n; i++)
        if (!ps->sent[s[i]] && atomic_load_explicit(&r->pending[s[i]], memory_order_relaxed) == 1 &&
            (best == UINT32_MAX || cask_run_priority(r, s[i]) > cask_run_priority(r, best)))
            best = s[i];
    return best;
}

/* Fill worker i's ring up to the depth: `first` (unless UINT32_MAX), then
** each time the follower of the ring's last task if the queue holds nothing
** better, else the queue's best; one message for all. */
static void dispatch(procs_t *ps, int i, cask_tid_t first)
{
    cask_run_t *r = ps->r;
    proc_t *p = &ps->p[i];
    cask_tid_t batch[MAX_DEPTH], top;
    cask_tid_t last = p->count ? p->ring[(p->head + p->count - 1) % MAX_DEPTH] : UINT32_MAX;
    int k = 0;
    while (p->count + k < ps->depth) {
        cask_tid_t next = first, f;
        first = UINT32_MAX;
        if (next == UINT32_MAX && last != UINT32_MAX && (f = follower(ps, last)) != UINT32_MAX &&
            (!cask_readyq_peek(&ps->q, &top) || cask_run_priority(r, f) >= cask_run_priority(r, top)))
            next = f;
        if (next == UINT32_MAX && !cask_readyq_pop(&ps->q, &next))
            break;
        batch[k++] = last = next;
        ps->sent[next] = 1;
    }
    if (!k)
        return;
    for (int j = 0; j < k; j++) {
        cask__run_pre(ps->r, batch[j], i);
        p->ring[(p->head + p->count + j) % MAX_DEPTH] = batch[j];
    }
    p->count += k;
    ps->inflight += k;
    /* A failed send means the worker is gone: its socket will say so, and
    ** the tasks in its ring go back to the queue then. */
    while (send(p->fd, batch, (size_t)k * sizeof *batch, MSG_NOSIGNAL) < 0 && errno == EINTR)
        ;
}

static void fail_run(cask_run_t *r, cask_tid_t t, int sig, const char *msg)
{
    cask_error_t e;
    const cask_graph_t *g = r->g;
    uint32_t gt = r->p.task[t];
    cask__err(&e, CASK_EWORKER, cask__key(g, gt), cask__kernel_get(g->kernel[gt])->name,
              "%s", msg);
    e.signal = sig;
    cask__run_fail(r, &e);
}

/* Worker i's socket closed: reap it, retry or fail its task, replace it. */
static void died(procs_t *ps, int i)
{
    cask_run_t *r = ps->r;
    proc_t *p = &ps->p[i];
    int st = 0, sig = 0;
    close(p->fd);
    p->fd = -1;
    while (waitpid(p->pid, &st, 0) < 0 && errno == EINTR)
        ;
    p->pid = 0;
    if (WIFSIGNALED(st))
        sig = WTERMSIG(st);
    if (p->count) {
        cask_tid_t t = p->ring[p->head];
        int n = ++ps->deaths[t];
        if (!cask_run_stopped(r) && n > r->retries) {
            char msg[200], how[80];
            if (sig)
                snprintf(how, sizeof how, "was killed by signal %d (%s)", sig, strsignal(sig));
            else
                snprintf(how, sizeof how, "exited with status %d", WEXITSTATUS(st));
            snprintf(msg, sizeof msg, "the worker process running this task %s; "
                     "%d attempt%s, no retries left", how, n, n == 1 ? "" : "s");
            fail_run(r, t, sig, msg);
        }
        /* Back to the queue: what was ready; the rest waits for its inputs. */
        for (int j = 0; j < p->count; j++) {
            cask_tid_t u = p->ring[(p->head + j) % MAX_DEPTH];
            ps->sent[u] = 0;
            if (!atomic_load_explicit(&r->pending[u], memory_order_relaxed))
                push(ps, u);
        }
        ps->inflight -= p->count;
        p->count = 0;
        p->head = 0;
    }
    if (!cask_run_stopped(r)) {
        cask_error_t e;
        if (spawn(ps, i, &e))
            cask__run_fail(r, &e);
    }
}

/* One answer from worker i (its ring's head); msg: a failure's text. */
static void answered(procs_t *ps, int i, const answer_t *a, const char *msg)
{
    cask_run_t *r = ps->r;
    proc_t *p = &ps->p[i];
    cask_tid_t t = a->t; /* == p->ring[p->head]: workers answer in order */
    p->head = (p->head + 1) % MAX_DEPTH;
    p->count--;
    ps->inflight--;
    ps->sent[t] = 0;
    if (a->rc == SKIPPED)
        return;
    ps->mean += ((double)(a->end - a->start) - ps->mean) * 0.05;
    ps->depth = ps->mean > SLOW_TICKS ? 2 : MAX_DEPTH;
    cask_value_t out = a->rc ? cask_none() : r->val[t];
    if (cask__run_post(r, t, i, a->rc, out, a->start, a->end, msg)) {
        atomic_store(&ps->sh->stop, true);
        return;
    }
    ps->nbuf = 0;
    cask_run_complete(r, t, collect, ps);
    if (!ps->nbuf || cask_run_stopped(r))
        return;
    /* The best successor stays on this worker unless the queue holds
    ** better: its inputs are still in that core's cache. */
    size_t best = 0;
    for (size_t j = 1; j < ps->nbuf; j++)
        if (cask_run_priority(r, ps->buf[j]) > cask_run_priority(r, ps->buf[best]))
            best = j;
    cask_tid_t keep = ps->buf[best], top;
    ps->buf[best] = ps->buf[--ps->nbuf];
    for (size_t j = 0; j < ps->nbuf; j++)
        push(ps, ps->buf[j]);
    if (p->count < ps->depth &&
        (!cask_readyq_peek(&ps->q, &top) || cask_run_priority(r, keep) >= cask_run_priority(r, top)))
        dispatch(ps, i, keep);
    else
        push(ps, keep);
}

/* Take every batch of answers waiting on worker i's socket. */
static void answers(procs_t *ps, int i)
{
    answer_t in[FLUSH_AT + MSG_MAX / sizeof(answer_t) + 1];
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
            for (int i = 0; i < ps->nw; i++)
                if (ps->p[i].fd >= 0 && ps->p[i].count < ps->depth)
                    dispatch(ps, i, UINT32_MAX);
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
    shared_val = cask__shm_parent_alloc(ps.m, n * sizeof *shared_val);
    ps.p = cask__calloc((size_t)ps.nw, sizeof *ps.p);
    for (int i = 0; ps.p && i < ps.nw; i++)
        ps.p[i].fd = -1; /* before any exit: 0 would be stdin */
    ps.deaths = cask__calloc(n, 1);
    ps.sent = cask__calloc(n, 1);
    ps.depth = MAX_DEPTH;
    pf = cask__calloc((size_t)ps.nw, sizeof *pf);
    if (!ps.sh || !shared_val || !ps.p || !ps.deaths || !ps.sent || !pf) {
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
    cask__free(ps.p);
    cask__free(pf);
    cask__shm_close(ps.m);
    return rc;
}

const cask_scheduler_t cask__sched_processes = { "processes", procs_run, NULL, MAX_PROCS };

/*
** sched/processes.c: the processes scheduler: forked worker processes.
**
** Workers run a compute's tasks from its program: for each task its kernel
** (a registry id) and its arguments (literals, and inputs as indices into
** the run's array of values), with that array, in a shared arena
** (sched/shm.c) mapped at one address in every process. The parent sends a
** worker the program's address and task ids down a Unix socket
** (SOCK_SEQPACKET, one message per batch); the worker calls the kernel on
** values it reads in place in the arena, makes its result there too,
** writes it into the shared array and answers with the task id, its status
** and its times. Nothing is copied between processes but those few bytes;
** only the requested outputs are copied once, out of the arena, when the
** compute ends.
**
** Workers belong to a worker set (cask__ppool_t). A compute on no pool
** makes its own, and forks its workers once its program is built, so they
** see the process as it is at that compute, and ends it with the compute.
** A pool of "processes" (cask_pool_create) keeps one for its life: its
** workers are forked when the pool is made and lent to each compute on it.
** Its arena outlives the computes, so a compute copies there the literals
** its workers read (once each), and frees its program and its values when
** it ends. A worker forked before a kernel was registered or replaced, or
** before a compute whose arguments hold a borrowed buffer (the one pointer
** workers read in their copy of the parent's memory), is forked again
** before it runs that compute's tasks; otherwise a pool's workers see the
** process as it was when they were forked, as multiprocessing's forked
** workers do.
**
** Computes share a pool's workers: a compute takes the free workers it has
** ready tasks for, and gives a worker back when it has nothing ready for
** it, or, while another compute waits for one, when it holds more than
** one. A compute that holds none waits; a worker given back goes to the
** waiting compute whose first ready task's upward rank less the time it
** came is the highest (the score of the threads pool: the critical path
** first, and a second of priority for each second waited). A compute keeps
** one worker to its end, so with every worker held by a long compute a
** waiting one waits for a worker to come back, whatever its score. But a
** compute that has sent every task it has left lends a worker that runs
** one of them alone, expected to take under LEND_NS, to the best waiting
** compute that can run there as it is (see lend and hand): the borrower's
** tasks queue behind that one, so the worker goes from one compute's task
** to the next without waiting for the parent, and whoever holds the worker
** sends the lender its answer by mail (an eventfd and a list). Answers,
** and the task a worker runs, carry their program's id, so each goes to
** its own compute, and a death is blamed on the right one.
**
** The parent schedules a compute's tasks on the workers it holds: it keeps
** the ready queue (the priority order of every back-end) and completes
** tasks as answers come. Whenever a worker has nothing to run and a task is
** ready, that worker gets the queue's first task before any worker gets a
** second one, so no worker holds a task another could start now. A worker
** holds more than the task it runs (so it never waits for the parent) only
** when each of them is known to be short: its kernel has been timed in this
** compute under SHORT_NS (a measured mean, never an assumption), it has no
** given cost above that, and what the worker holds adds up to at most
** HOLD_NS. The best successor of a task stays on the worker that made its
** inputs when the queue holds nothing better. With a memory budget, every
** task sent is admitted first (cask__run_admit), an idle worker's first by
** the budget's rule (consumers before producers), and successors go
** through the queue.
**
** Each worker keeps, in the arena, the task whose kernel it is running (and
** its program) and the answers it has written but not yet sent. A worker
** that dies (its socket closes; what it sent before is read first) is
** reaped with waitpid; the answers it left are taken as if they had
** arrived (their outputs are in the arena: those tasks are not run
** again), the task it was running when it died is the one blamed and
** retried, up to the run's retries (then the compute fails naming that
** task's key and kernel and the signal), the rest of what it held goes
** back to the queue, and a new worker takes its place. Each worker has a
** slot of the arena; a gone worker's slot is used again once no compute is
** in flight on its set (none can hold a value made there), so a set
** survives SPARES deaths while computes overlap, and any number when they
** do not. On an error the parent raises the program's stop
** flag, which makes workers skip what they were sent but have not started,
** and waits for the tasks running. A compute's own workers exit when their
** sockets close at its end; a pool's wait for the next compute, and exit
** when the pool is freed or its process is gone.
**
** Limits: values must be able to live in the arena. An opaque pointer
** cannot cross processes: an input that is one is refused before anything
** runs (except a borrowed array buffer, as above), and a kernel that
** returns one fails its task.
*/
#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sched.h"
#include "shm.h"

#define MAX_DEPTH 16      /* most tasks a worker holds: one running, the rest next */
#define SHORT_NS  100000  /* a kernel whose mean time is under 100 us is short */
#define HOLD_NS   1000000 /* most measured time a worker holds beyond its first task */
#define LEND_NS   10000000 /* a worker is lent only behind a task expected under 10 ms */
#define FLUSH_AT  4       /* a worker answers at least every FLUSH_AT tasks */
#define MAX_PROCS 256     /* most workers */
#define SPARES    64      /* worker deaths a set survives while computes overlap */
#define MSG_MAX   256     /* bytes of a failure message */
#define SKIPPED   1       /* an answer's rc: not run, the compute is stopping (codes are < 0) */
#define IDLE_S    1       /* a pool's idle worker looks for its parent this often */
#define NONE      UINT32_MAX

/* A worker's answer for one task. Answers travel in batches; a failure
** ends its batch and its message follows it, NUL-terminated. */
typedef struct answer {
    uint32_t t;          /* the task */
    int32_t  rc;         /* 0, SKIPPED, or the task's error code (< 0) */
    uint64_t start, end; /* kernel start and end, ticks */
    uint32_t prog;       /* its program's id (prog_t.id) */
} answer_t;

#define OUT_MAX (FLUSH_AT + MSG_MAX / sizeof(answer_t) + 1) /* answers, then a message */

/* What a worker shares with the parent, in the arena: what the parent
** reads when the worker dies. */
typedef struct wstate {
    _Atomic uint32_t running; /* the task whose kernel runs now, or NONE */
    _Atomic uint32_t rprog;   /* its program's id (task ids of programs overlap) */
    _Atomic uint32_t nout;    /* answers in out[] whole and not yet sent */
    _Atomic uint32_t posted;  /* batches the parent has sent it (counted first) */
    answer_t out[OUT_MAX];    /* the batch being written (sent from here) */
} wstate_t;

/* A compute's program, in the arena: what a worker needs to run its tasks. */
typedef struct prog {
    atomic_bool          stop;   /* skip tasks not yet started */
    uint32_t             id;     /* its set's count of programs when it was made */
    cask_value_t        *val;    /* the run's values, by run task */
    const uint32_t      *kernel; /* each task's kernel id */
    const uint32_t      *aoff;   /* task t's arguments: args[aoff[t] .. aoff[t + 1]) */
    const cask_value_t  *args;   /* literals, and CASK_REF whose u.i is an input's task */
    const cask__cache_t *cache;  /* the cache directory's keys, or NULL */
} prog_t;

/* A message to a worker: the program, then the tasks to run. */
typedef struct batch {
    prog_t    *prog;
    cask_tid_t t[MAX_DEPTH];
} batch_t;

/* A worker of a set: owned by the compute it is lent to, else by the set
** (under its lock). */
typedef struct pworker {
    pid_t    pid;        /* 0: no process (not forked yet, or gone) */
    int      fd;         /* the parent's end of its socket; -1: none */
    int      slot;       /* its slot of the arena */
    uint32_t kgen;       /* the kernel registry's generation when it was forked */
    uint64_t born;       /* the set's fork count when it was forked */
    struct procs *lender; /* the compute that lent it while running its last
                             tasks (their answers go to it), or NULL */
    uint32_t lent_prog;  /* the lender's program id */
    cask_tid_t lent_t;   /* and the task it ran there, whose answer it owes */
    int      owed;       /* answers still to come for the lender */
} pworker_t;

/* A compute waiting for a worker. */
typedef struct waiter {
    int                 got; /* the worker given to it, or -1 */
    pthread_cond_t      cv;
    const struct procs *ps;  /* the compute waiting */
} waiter_t;

struct cask__ppool {
    cask__shm_t    *m;
    wstate_t       *ws;       /* nw of them, in the arena */
    pworker_t      *w;
    int             nw;
    bool            shared;   /* a pool's, lent to its computes; else one compute's */
    pid_t           owner;    /* the process that made it */
    pthread_mutex_t lock;     /* guards what follows, and free workers */
    pthread_cond_t  empty;    /* the last compute left */
    int            *freel;    /* free workers, nfree of them */
    atomic_int      nfree;    /* changed under lock, read unlocked as a hint */
    atomic_int      nwait;    /* computes waiting (changed under lock, read
                                 unlocked as a hint): */
    struct hent    *waiters;  /* a heap of waiter_t, by their scores */
    size_t          capwait;
    uint64_t        forks;    /* workers forked so far */
    uint32_t        progs;    /* programs made so far (their ids) */
    struct procs   *lenders;  /* computes with a worker to lend (see lend) */
    uint64_t        lends;    /* workers lent so far */
    struct kstat   *kstat;    /* kernels' times in the computes that ended, by id
                                 (CASK__MAX_KERNELS, made when the first ends) */
    int             computes; /* in flight on it */
    int            *limbo;    /* slots of workers gone, which values of the computes
                                 in flight may still use: nlimbo of them */
    int            *spare;    /* slots free again, nspare of them */
    int             nlimbo, nspare;
    struct hent    *jobs;     /* submitted computes no driver has taken: a heap of */
    size_t          njobs, capjobs; /* pjob_t, by their scores */
    pthread_cond_t  work;     /* a job came, or closing */
    pthread_t      *drivers;  /* the threads that run jobs: ndrivers of 2 * nw (a
                                 compute for each worker, and one waiting for it) */
    int             ndrivers;
    bool            closing;
};

/* A heap entry: what waits (a waiter_t or a pjob_t), by its score, the
** rank of its compute's first ready task less the time it came; the
** highest first. */
typedef struct hent {
    double key;
    void  *item;
} hent_t;

/* A submitted compute, waiting for a driver. */
typedef struct pjob {
    cask_run_t      *r;
    cask__pool_ended ended;
    void            *ctx;
} pjob_t;

static int procs_run(cask_run_t *r, void *udata, cask_error_t *err);

typedef struct proc {
    bool       mine;     /* the worker is this compute's */
    pid_t      pid;      /* 0: none */
    int        fd;       /* the parent's end of the socket; -1: none (not this
                            compute's, or gone) */
    int        head, count; /* tasks sent and not answered: ring[head ..] */
    cask_tid_t keep;     /* ready, to be sent to this worker next (its inputs are
                            warm there), or NONE */
    double     held;     /* measured ticks of the tasks held beyond the head */
    double     ticks[MAX_DEPTH]; /* each ring task's share of held (0 at the head) */
    cask_tid_t ring[MAX_DEPTH];
} proc_t;

/* What came, through the compute holding it, from a worker a compute lent
** while it ran that compute's last tasks. */
enum { MAIL_ANSWER, MAIL_DEATH, MAIL_BACK };
typedef struct mail {
    int        kind;
    int        i;        /* the worker */
    answer_t   a;        /* MAIL_ANSWER: one of the lender's */
    cask_tid_t running;  /* MAIL_DEATH: the task the worker ran, or NONE */
    int        sig, st;  /* MAIL_DEATH: how it ended (st < 0: killed by its holder) */
    char       msg[MSG_MAX]; /* MAIL_ANSWER: a failure's message */
} mail_t;

/* A kernel's measured time in this compute. */
typedef struct kstat {
    double   mean;       /* ticks, a running mean */
    uint32_t n;          /* calls timed */
} kstat_t;

/* Count d ticks into k: the mean of the first 16, then a moving mean. */
static void learn(kstat_t *k, double d)
{
    k->mean += (d - k->mean) * (k->n < 16 ? 1.0 / ++k->n : 1.0 / 16);
}

typedef struct procs {
    cask_run_t    *r;
    cask__ppool_t *pp;
    prog_t        *prog;
    cask_value_t  *lits;     /* literals copied into a pool's arena, nlits of them */
    size_t         nlits;
    proc_t        *p;        /* by worker of pp: fd >= 0 for those this compute holds */
    int            nw;
    int            holds;    /* workers held */
    uint32_t       kgen;     /* the registry generation its kernels need */
    uint64_t       since;    /* pp's forks when it came */
    bool           fresh;    /* it needs workers forked after it came */
    kstat_t       *kstat;    /* by kernel id: nk of them */
    uint32_t       nk;
    double         short_ticks, hold_ticks; /* SHORT_NS and HOLD_NS in ticks; 0: unknown yet */
    cask_readyq_t  q;
    uint8_t       *deaths;   /* worker deaths while running each task */
    uint16_t      *sent;     /* while a task is in a worker's ring: that worker + 1 */
    cask_tid_t    *buf;      /* successors made ready by the last task */
    size_t         nbuf, cap;
    int            nomem;
    int            inflight; /* tasks sent and not answered */
    int            idle;     /* live workers held with nothing sent */
    int            lent;     /* of inflight, those on workers it lent: answered by mail */
    pthread_mutex_t mlock;   /* guards mail and nmail */
    mail_t        *mail;     /* what came for it, in order: nmail, room for 2 * nw,
                                made when it first lends (a worker lent owes one
                                mail, and is lent again only once ps has held it
                                again, its mail read first: nw at most) */
    size_t         nmail;
    int            efd;      /* an eventfd, written with each mail; -1: none */
    uint32_t       id;       /* its program's id */
    bool           listed;   /* among its set's lenders: */
    struct procs  *lprev, *lnext;
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

/* Run task t of program P as worker id into answer a (its message, on a
** failure, into msg). The kernel runs with ws->running set to t. */
static void run_one(prog_t *P, const cask__shm_t *m, wstate_t *ws, int id, cask_tid_t t,
                    answer_t *a, char *msg)
{
    a->t = t;
    a->prog = P->id;
    a->start = a->end = 0;
    if (atomic_load_explicit(&P->stop, memory_order_relaxed)) {
        a->rc = SKIPPED;
        return;
    }
    atomic_store_explicit(&ws->rprog, P->id, memory_order_relaxed);
    atomic_store_explicit(&ws->running, t, memory_order_release);
    const cask_value_t *in = P->args + P->aoff[t];
    size_t n = P->aoff[t + 1] - P->aoff[t];
    cask_value_t small[8], *args = small, v;
    if (n > 8 && !(args = cask__malloc(n * sizeof *args))) {
        snprintf(msg, MSG_MAX, "no memory for %zu arguments", n);
        a->rc = CASK_ENOMEM;
        return;
    }
    for (size_t i = 0; i < n; i++)
        args[i] = in[i].type == CASK_REF ? P->val[in[i].u.i] : in[i];
    a->rc = cask__invoke(cask__kernel_get(P->kernel[t]), args, n, id, true, P->cache, t, &v,
                         &a->start, &a->end, msg, MSG_MAX);
    if (args != small)
        cask__free(args);
    if (!a->rc)
        a->rc = share(m, &v, msg);
    if (!a->rc)
        P->val[t] = v;
}

/* Worker id of pp: take tasks from the socket, run them in order, answer
** in batches (at least every FLUSH_AT tasks, and whenever it has nothing
** left to run, a task failed, or the next task is another program's: a
** compute's last answers never wait behind the next compute's kernels),
** until the socket closes. Each answer is
** written whole into the arena before the next kernel starts, so what the
** worker finished is known even if it dies before sending it. A compute's
** own worker dies with the thread that forked it; a pool's outlives that
** thread, and looks every IDLE_S seconds it waits whether its parent is
** still there. */
static void worker_main(cask__ppool_t *pp, int id, int fd, int slot)
{
    if (!pp->shared)
        prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != pp->owner)
        _exit(1);
    if (pp->shared) {
        struct timeval tv = { .tv_sec = IDLE_S };
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
    cask__alloc_fail_at(0); /* tests inject allocation failures in the parent only */
    cask__shm_enter(pp->m, slot, false);
    wstate_t *ws = &pp->ws[id];
    batch_t in;
    struct {
        prog_t    *P;
        cask_tid_t t;
    } q[2 * MAX_DEPTH]; /* a lender's last task, then up to MAX_DEPTH of the next compute's */
    size_t qh = 0, qn = 0;
    char msg[MSG_MAX];
    uint32_t nout = 0, taken = 0; /* batches received */
    for (;;) {
        ssize_t k;
        if (qh == qn) { /* nothing to run: wait for the parent */
            qh = qn = 0;
            k = recv(fd, &in, sizeof in, 0);
            if (k < 0 && errno == EINTR)
                continue;
            if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                if (getppid() != pp->owner)
                    break; /* the parent is gone */
                continue;
            }
            if (k <= (ssize_t)sizeof in.prog)
                break;
        } else if (qn - qh <= MAX_DEPTH &&
                   atomic_load_explicit(&ws->posted, memory_order_acquire) != taken) {
            /* a batch has come, or is coming: take it without waiting (no
            ** system call per task when none has) */
            k = recv(fd, &in, sizeof in, MSG_DONTWAIT);
            if (k == 0)
                break;
        } else {
            k = 0;
        }
        if (k > (ssize_t)sizeof in.prog) { /* the parent never sends more than fits */
            taken++;
            if (qh > 0) { /* keep the rest at the front */
                memmove(q, q + qh, (qn - qh) * sizeof *q);
                qn -= qh;
                qh = 0;
            }
            for (size_t j = 0, more = ((size_t)k - sizeof in.prog) / sizeof *in.t; j < more; j++)
                q[qn].P = in.prog, q[qn++].t = in.t[j];
        }
        prog_t *P = q[qh].P;
        answer_t *a = &ws->out[nout];
        run_one(P, pp->m, ws, id, q[qh++].t, a, msg);
        size_t len = (nout + 1) * sizeof *a;
        if (a->rc < 0) { /* the message follows; skip what comes after, here too */
            atomic_store(&P->stop, true);
            size_t ml = strnlen(msg, MSG_MAX - 1);
            memcpy((char *)(a + 1), msg, ml);
            ((char *)(a + 1))[ml] = '\0';
            len += ml + 1;
        }
        atomic_store_explicit(&ws->nout, ++nout, memory_order_release);
        atomic_store_explicit(&ws->running, NONE, memory_order_release);
        if (qh < qn && nout < FLUSH_AT && a->rc >= 0 && q[qh].P == P)
            continue;
        while (send(fd, ws->out, len, MSG_NOSIGNAL) < 0)
            if (errno != EINTR)
                goto done;
        nout = 0;
        atomic_store_explicit(&ws->nout, 0, memory_order_release);
    }
done:
    fflush(NULL); /* what kernels printed */
    _exit(0);
}

/* ----------------------------------------------------------- worker sets */

static pthread_mutex_t fork_lock = PTHREAD_MUTEX_INITIALIZER;

/* A slot taken for a worker that was not forked: free again. */
static void slot_back(cask__ppool_t *pp, int slot)
{
    pthread_mutex_lock(&pp->lock);
    pp->spare[pp->nspare++] = slot;
    pthread_mutex_unlock(&pp->lock);
}

/* Fork worker i of pp (its owner calls: the compute it is lent to, or the
** set being made). */
static int fork_worker(cask__ppool_t *pp, int i, cask_error_t *err)
{
    cask__clock_init(); /* before the fork: workers time kernels in the parent's ticks */
    pthread_mutex_lock(&pp->lock);
    int slot;
    if (pp->nspare) /* a gone worker's, which no value uses any more */
        cask__shm_init_slot(pp->m, slot = pp->spare[--pp->nspare]);
    else
        slot = cask__shm_new_slot(pp->m);
    uint64_t born = ++pp->forks;
    pthread_mutex_unlock(&pp->lock);
    if (slot < 0)
        return cask__err(err, CASK_EWORKER, NULL, NULL,
                         "%d worker processes died; giving up", SPARES);
    int sv[2];
    /* No other fork while the worker's end is open here: a child forked
    ** meanwhile would hold it, and the worker's death would go unseen. */
    pthread_mutex_lock(&fork_lock);
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv)) {
        int e = errno;
        pthread_mutex_unlock(&fork_lock);
        slot_back(pp, slot);
        return cask__err(err, CASK_EWORKER, NULL, NULL, "socketpair: %s", strerror(e));
    }
    atomic_store(&pp->ws[i].running, NONE);
    atomic_store(&pp->ws[i].rprog, 0);
    atomic_store(&pp->ws[i].nout, 0);
    atomic_store(&pp->ws[i].posted, 0);
    uint32_t kgen = cask__kernel_generation(); /* the child knows at least these */
    fflush(NULL); /* or the worker would inherit, and repeat, unwritten output */
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(sv[0]);
        close(sv[1]);
        pthread_mutex_unlock(&fork_lock);
        slot_back(pp, slot);
        return cask__err(err, CASK_EWORKER, NULL, NULL, "fork: %s", strerror(e));
    }
    if (pid == 0) {
        pthread_mutex_init(&fork_lock, NULL); /* its copy was held: the parent's */
        close(sv[0]);
        for (int j = 0; j < pp->nw; j++) /* other workers' sockets: theirs alone */
            if (pp->w[j].fd >= 0 && pp->w[j].fd != sv[1])
                close(pp->w[j].fd);
        worker_main(pp, i, sv[1], slot);
    }
    close(sv[1]);
    pthread_mutex_unlock(&fork_lock);
    pp->w[i] = (pworker_t){ .pid = pid, .fd = sv[0], .slot = slot, .kgen = kgen, .born = born };
    return 0;
}

/* Worker i's process is gone: its slot waits for the computes in flight to
** end (their values may be in it), then is used again. */
static void slot_gone(cask__ppool_t *pp, int i)
{
    pthread_mutex_lock(&pp->lock);
    pp->limbo[pp->nlimbo++] = pp->w[i].slot;
    pthread_mutex_unlock(&pp->lock);
}

/* End worker i's process (its owner calls): at once with kill, else once
** it has read to the end of its socket (what it printed is flushed). */
static void retire(cask__ppool_t *pp, int i, bool kill_it)
{
    pworker_t *w = &pp->w[i];
    if (w->fd >= 0) {
        shutdown(w->fd, SHUT_RDWR); /* end of file, even where a copy of it lingers */
        close(w->fd);
    }
    if (w->pid > 0) {
        if (kill_it)
            kill(w->pid, SIGKILL);
        while (waitpid(w->pid, NULL, 0) < 0 && errno == EINTR)
            ;
        slot_gone(pp, i);
    }
    w->pid = 0;
    w->fd = -1;
}

/* A worker set of nw workers, each free; forked now when shared (a pool's),
** else when a compute takes them. */
static int ppool_new(int nw, bool shared, cask__ppool_t **out, cask_error_t *err)
{
    *out = NULL;
    cask__ppool_t *pp = cask__calloc(1, sizeof *pp);
    size_t slots = 1 + (size_t)nw + SPARES;
    if (!pp || !(pp->w = cask__calloc((size_t)nw, sizeof *pp->w)) ||
        !(pp->freel = cask__calloc((size_t)nw, sizeof *pp->freel)) ||
        !(pp->limbo = cask__calloc(slots, sizeof *pp->limbo)) ||
        !(pp->spare = cask__calloc(slots, sizeof *pp->spare))) {
        if (pp) {
            cask__free(pp->w);
            cask__free(pp->freel);
            cask__free(pp->limbo);
        }
        cask__free(pp);
        return cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for %d worker processes", nw);
    }
    pp->nw = nw;
    pp->shared = shared;
    pp->owner = getpid();
    pthread_mutex_init(&pp->lock, NULL);
    pthread_cond_init(&pp->empty, NULL);
    pthread_cond_init(&pp->work, NULL);
    for (int i = 0; i < nw; i++) {
        pp->w[i].fd = -1; /* before any exit: 0 would be stdin */
        pp->freel[i] = nw - 1 - i; /* worker 0 is taken first */
    }
    atomic_init(&pp->nfree, nw);
    atomic_init(&pp->nwait, 0);
    int rc = cask__shm_open(&pp->m, (int)slots, err);
    if (!rc) {
        cask__shm_new_slot(pp->m); /* slot 0: the parent's */
        if (!(pp->ws = cask__shm_parent_alloc(pp->m, (size_t)nw * sizeof *pp->ws)))
            rc = cask__err(err, CASK_ENOMEM, NULL, NULL, "no room in the shared arena");
    }
    if (!rc && shared) {
        /* A pool's workers share the parent's pages until one side writes
        ** them, and the parent goes on allocating: the memory it has freed
        ** goes back to the system first, so reusing it later costs a fresh
        ** page, not a copy of a shared one. */
        cask__big_trim(0);
        malloc_trim(0);
    }
    for (int i = 0; !rc && shared && i < nw; i++)
        rc = fork_worker(pp, i, err);
    if (rc) {
        cask__ppool_free(pp);
        return rc;
    }
    *out = pp;
    return 0;
}

int cask__ppool_make(int nw, cask__ppool_t **out, cask_error_t *err)
{
    return ppool_new(nw, true, out, err); /* nw <= MAX_PROCS: cask__resolve clamps it */
}

static _Thread_local cask__ppool_t *my_ppool; /* on a driver thread: its set */

bool cask__ppool_on_driver(const cask__ppool_t *pp)
{
    return my_ppool == pp;
}

uint64_t cask__pool_lends(const cask_pool_t *P)
{
    cask__ppool_t *pp = cask__pool_procs(P);
    if (!pp)
        return 0;
    pthread_mutex_lock(&pp->lock);
    uint64_t n = pp->lends;
    pthread_mutex_unlock(&pp->lock);
    return n;
}

void cask__ppool_free(cask__ppool_t *pp)
{
    if (!pp)
        return;
    if (my_ppool == pp) {
        fprintf(stderr, "cask: cask_pool_free called from a callback running on that pool\n");
        abort();
    }
    pthread_mutex_lock(&pp->lock);
    while (pp->computes || pp->njobs)
        pthread_cond_wait(&pp->empty, &pp->lock);
    pp->closing = true;
    pthread_cond_broadcast(&pp->work);
    pthread_mutex_unlock(&pp->lock);
    for (int i = 0; i < pp->ndrivers; i++)
        pthread_join(pp->drivers[i], NULL);
    if (pp->owner == getpid()) {
        for (int i = 0; i < pp->nw; i++) /* every socket closed first: they exit together */
            if (pp->w[i].fd >= 0) {
                shutdown(pp->w[i].fd, SHUT_RDWR);
                close(pp->w[i].fd);
                pp->w[i].fd = -1;
            }
        for (int i = 0; i < pp->nw; i++)
            retire(pp, i, false);
        cask__shm_close(pp->m);
    }
    pthread_cond_destroy(&pp->empty);
    pthread_cond_destroy(&pp->work);
    pthread_mutex_destroy(&pp->lock);
    cask__free(pp->drivers);
    cask__free(pp->jobs);
    cask__free(pp->w);
    cask__free(pp->freel);
    cask__free(pp->limbo);
    cask__free(pp->spare);
    cask__free(pp->waiters);
    cask__free(pp->kstat);
    cask__free(pp);
}

/* The score of a compute whose first ready task has upward rank `rank`,
** coming now. */
static double score_now(double rank)
{
    return rank - (double)cask_now_ns() * 1e-9;
}

/* Add e to heap h of n entries (room for it made). Lock held. */
static void heap_push(hent_t *h, size_t n, hent_t e)
{
    size_t i = n;
    for (; i && h[(i - 1) / 2].key < e.key; i = (i - 1) / 2)
        h[i] = h[(i - 1) / 2];
    h[i] = e;
}

/* Take entry i of heap h of n > i entries: the last takes its place, and
** moves up or down to where it belongs. Lock held. */
static void *heap_take(hent_t *h, size_t n, size_t i)
{
    void *item = h[i].item;
    hent_t last = h[--n];
    if (i == n)
        return item;
    for (; i && h[(i - 1) / 2].key < last.key; i = (i - 1) / 2)
        h[i] = h[(i - 1) / 2];
    for (size_t c; (c = 2 * i + 1) < n; i = c) {
        if (c + 1 < n && h[c + 1].key > h[c].key)
            c++;
        if (h[c].key <= last.key)
            break;
        h[i] = h[c];
    }
    h[i] = last;
    return item;
}

/* Take the best of heap h of n > 0 entries. Lock held. */
static void *heap_pop(hent_t *h, size_t n)
{
    return heap_take(h, n, 0);
}

/* Whether worker w can run ps's tasks as it is, not forked again: forked
** after every kernel ps needs, and after ps came if ps needs that. */
static bool can_run(const procs_t *ps, const pworker_t *w)
{
    return w->kgen >= ps->kgen && !(ps->fresh && w->born <= ps->since);
}

/* Mail m to ps (under its lock, the eventfd too: once ps has read its last
** mail it may end and close it). */
static void post(procs_t *ps, const mail_t *m)
{
    uint64_t one = 1;
    pthread_mutex_lock(&ps->mlock);
    ps->mail[ps->nmail++] = *m; /* room: see procs_t.mail */
    while (write(ps->efd, &one, sizeof one) < 0 && errno == EINTR)
        ;
    pthread_mutex_unlock(&ps->mlock);
}

/* Hand worker i to the best waiting compute; while i still runs its
** lender's task, to the best of those that can run their tasks on i
** without forking it again (its lender can, if it waits). Lock held. */
static bool hand(cask__ppool_t *pp, int i)
{
    size_t n = (size_t)atomic_load(&pp->nwait), best = 0;
    if (pp->w[i].owed) {
        best = n;
        for (size_t k = 0; k < n; k++)
            if (can_run(((waiter_t *)pp->waiters[k].item)->ps, &pp->w[i]) &&
                (best == n || pp->waiters[k].key > pp->waiters[best].key))
                best = k;
    }
    if (best >= n)
        return false;
    waiter_t *b = heap_take(pp->waiters, n, best);
    atomic_store(&pp->nwait, (int)n - 1);
    b->got = i;
    pthread_cond_signal(&b->cv);
    return true;
}

/* Give worker i back to pp: to the best waiting compute; else, when it
** still owes its lender answers, to the lender; else free. */
static void ppool_put(cask__ppool_t *pp, int i)
{
    pthread_mutex_lock(&pp->lock);
    if (hand(pp, i)) {
    } else if (pp->w[i].owed) {
        post(pp->w[i].lender, &(mail_t){ .kind = MAIL_BACK, .i = i });
    } else {
        pp->freel[atomic_load(&pp->nfree)] = i;
        atomic_fetch_add(&pp->nfree, 1);
    }
    pthread_mutex_unlock(&pp->lock);
}

static void take_mail(procs_t *ps);
static bool take_sent(procs_t *ps, int i, int fd, bool own);
static void take_left(procs_t *ps, int i, bool own);

/* Worker i, which ps lent, is back: ps reads its answers itself again (the
** mails for it before this are read). */
static void reclaim(procs_t *ps, int i)
{
    pworker_t *w = &ps->pp->w[i];
    proc_t *p = &ps->p[i];
    ps->lent -= w->owed; /* == p->count */
    w->lender = NULL;
    w->owed = 0;
    p->mine = true;
    p->pid = w->pid;
    p->fd = w->fd;
    ps->holds++;
    ps->idle += !p->count;
}

/* Worker i is ps's now: a process able to run its tasks, forked again if
** the one there was forked before what ps needs. */
static int adopt(procs_t *ps, int i, cask_error_t *err)
{
    cask__ppool_t *pp = ps->pp;
    pworker_t *w = &pp->w[i];
    if (ps->p[i].count) /* ps lent it: what came for it by mail first */
        take_mail(ps);
    if (w->lender == ps) {
        reclaim(ps, i);
        return 0;
    }
    if (w->pid && !can_run(ps, w)) /* never so when it owes a lender (hand) */
        retire(pp, i, false);
    int rc = w->pid ? 0 : fork_worker(pp, i, err);
    if (rc) {
        ppool_put(pp, i);
        return rc;
    }
    ps->p[i] = (proc_t){ .mine = true, .pid = w->pid, .fd = w->fd, .keep = NONE };
    ps->holds++;
    ps->idle++;
    return 0;
}

/* Whether mail waits for ps (a worker it lent may be back). Set lock held. */
static bool has_mail(procs_t *ps)
{
    if (!ps->mail)
        return false;
    pthread_mutex_lock(&ps->mlock);
    bool any = ps->nmail > 0;
    pthread_mutex_unlock(&ps->mlock);
    return any;
}

/* Take up to `want` free workers of ps's set; with none free and `wait`,
** wait for one, unless mail waits for ps (its caller reads it first). */
static int take(procs_t *ps, int want, bool wait, cask_error_t *err)
{
    cask__ppool_t *pp = ps->pp;
    int got[MAX_PROCS], k = 0;
    pthread_mutex_lock(&pp->lock);
    while (k < want && atomic_load(&pp->nfree)) {
        atomic_fetch_sub(&pp->nfree, 1);
        got[k++] = pp->freel[atomic_load(&pp->nfree)];
    }
    size_t n = (size_t)atomic_load(&pp->nwait);
    if (!k && wait && has_mail(ps))
        wait = false;
    if (!k && wait && n == pp->capwait &&
        cask__grow((void **)&pp->waiters, &pp->capwait, n + 1, sizeof *pp->waiters)) {
        pthread_mutex_unlock(&pp->lock);
        return cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory to wait for a worker");
    }
    if (!k && wait) {
        cask_tid_t top;
        waiter_t me = { .got = -1, .ps = ps };
        pthread_cond_init(&me.cv, NULL);
        heap_push(pp->waiters, n, (hent_t){
            score_now(cask_readyq_peek(&ps->q, &top) ? ps->r->p.rank[top] : 0), &me });
        atomic_store(&pp->nwait, (int)n + 1);
        for (procs_t *l = pp->lenders; l; l = l->lnext) { /* each may lend a worker now */
            uint64_t one = 1;
            while (write(l->efd, &one, sizeof one) < 0 && errno == EINTR)
                ;
        }
        while (me.got < 0)
            pthread_cond_wait(&me.cv, &pp->lock);
        pthread_cond_destroy(&me.cv);
        got[k++] = me.got;
    }
    pthread_mutex_unlock(&pp->lock);
    int rc = 0;
    for (int j = 0; j < k; j++) {
        if (rc)
            ppool_put(pp, got[j]);
        else
            rc = adopt(ps, got[j], err);
    }
    return rc;
}

/* Kill worker i, which ps holds and which owes its lender an answer, and
** send the lender what the worker sent or wrote for it before it died. */
static void settle(procs_t *ps, int i)
{
    pworker_t *w = &ps->pp->w[i];
    kill(w->pid, SIGKILL);
    while (waitpid(w->pid, NULL, 0) < 0 && errno == EINTR)
        ;
    slot_gone(ps->pp, i);
    w->pid = 0;
    take_sent(ps, i, w->fd, false); /* the process is gone: all it sent is there */
    take_left(ps, i, false);
}

/* Give back worker i, which holds nothing of ps's (killed first when the
** compute failed in the parent: it may be anywhere). */
static void give(procs_t *ps, int i, bool kill_it)
{
    proc_t *p = &ps->p[i];
    pworker_t *w = &ps->pp->w[i];
    if (kill_it) {
        if (w->owed && w->pid > 0)
            settle(ps, i);
        retire(ps->pp, i, true);
        if (w->owed) /* its lender's task goes back to its queue, not blamed */
            post(w->lender, &(mail_t){ .kind = MAIL_DEATH, .i = i, .running = NONE, .st = -1 });
        w->lender = NULL;
        w->owed = 0;
    }
    ps->idle -= p->fd >= 0 && !p->count;
    ps->holds--;
    *p = (proc_t){ .fd = -1, .keep = NONE };
    ppool_put(ps->pp, i);
}

/* --------------------------------------------------------------- the parent */

/* Worker i of ps died and was reaped: a new one in its place. */
static int spawn(procs_t *ps, int i, cask_error_t *err)
{
    int rc = fork_worker(ps->pp, i, err);
    if (rc)
        return rc;
    ps->p[i].pid = ps->pp->w[i].pid;
    ps->p[i].fd = ps->pp->w[i].fd;
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
    batch_t msg;
    cask_tid_t *batch = msg.t, top;
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
    msg.prog = ps->prog;
    atomic_fetch_add_explicit(&ps->pp->ws[i].posted, 1, memory_order_release);
    while (send(p->fd, &msg, sizeof msg.prog + (size_t)k * sizeof *batch, MSG_NOSIGNAL) < 0 &&
           errno == EINTR)
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
        learn(&ps->kstat[r->p.gv.kernel[r->p.task[t]]], (double)(a->end - a->start));
        if (!ps->short_ticks) { /* by now the clock's rate is known well enough */
            cask__tickconv_t c;
            cask__tick_rate(&c);
            ps->short_ticks = SHORT_NS / c.ns_per_tick;
            ps->hold_ticks = HOLD_NS / c.ns_per_tick;
        }
    }
    cask_value_t out = a->rc ? cask_none() : r->val[t];
    if (cask__run_post(r, t, i, a->rc, out, a->start, a->end, msg)) {
        atomic_store(&ps->prog->stop, true);
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

/* ps's answer a from worker i, which ps no longer holds (it lent it), to
** its lender, which waits for it. */
static void route(procs_t *ps, int i, const answer_t *a, const char *msg)
{
    pworker_t *w = &ps->pp->w[i];
    if (!w->owed || a->prog != w->lent_prog || a->t != w->lent_t)
        return; /* one it had before (sent, and left in the arena by a worker
                   killed before it cleared it): the lender has it */
    mail_t m = { .kind = MAIL_ANSWER, .i = i, .a = *a };
    snprintf(m.msg, sizeof m.msg, "%s", msg);
    procs_t *to = w->lender;
    if (!--w->owed)
        w->lender = NULL;
    post(to, &m);
}

/* Worker i, which ran ps's tasks, is gone (it was running `running`, or
** NONE; st < 0: its holder killed it, nobody's fault): retry or fail the
** task it died running, and requeue the rest it held for ps. */
static void lost(procs_t *ps, int i, cask_tid_t running, int sig, int st)
{
    cask_run_t *r = ps->r;
    proc_t *p = &ps->p[i];
    if (st >= 0 && p->count && running == p->ring[p->head]) {
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
}

/* Answers from worker i: up to n at a, in a buffer of cap bytes holding len
** (a failure ends them, its message after it). ps's own are answered when
** `own` and still at the head of i's ring (one received twice is not); the
** lender's are routed to it. */
static void deliver(procs_t *ps, int i, answer_t *a, size_t n, size_t len, size_t cap,
                    bool own)
{
    proc_t *p = &ps->p[i];
    for (size_t j = 0; j < n; j++) {
        const char *msg = "";
        if (a[j].rc < 0) { /* its message follows it */
            ((char *)a)[len < cap ? len : cap - 1] = '\0';
            msg = (const char *)&a[j + 1];
            n = j + 1;
        }
        if (a[j].prog != ps->prog->id)
            route(ps, i, &a[j], msg);
        else if (own && p->count && a[j].t == p->ring[p->head])
            answered(ps, i, &a[j], msg);
    }
}

/* Take the batches of answers waiting on fd, worker i's socket, without
** waiting, through deliver (`own` as there). Returns whether the socket
** has ended (end of file, or an error): the worker is gone. */
static bool take_sent(procs_t *ps, int i, int fd, bool own)
{
    answer_t in[OUT_MAX];
    for (;;) {
        ssize_t k = recv(fd, in, sizeof in, MSG_DONTWAIT);
        /* A worker that exits with a batch unread resets the socket: the
        ** first recv after says so, before what the worker sent. */
        if (k < 0 && (errno == EINTR || errno == ECONNRESET))
            continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return false;
        if (k < (ssize_t)sizeof *in)
            return true;
        deliver(ps, i, in, (size_t)k / sizeof *in, (size_t)k, sizeof in, own);
    }
}

/* The answers gone worker i wrote in the arena and did not send, through
** deliver (`own` as there): with the process gone, all there is. */
static void take_left(procs_t *ps, int i, bool own)
{
    wstate_t *ws = &ps->pp->ws[i];
    uint32_t n = atomic_load(&ws->nout);
    deliver(ps, i, ws->out, n < OUT_MAX ? n : OUT_MAX, sizeof ws->out, sizeof ws->out, own);
}

/* Worker i's socket closed: reap it, take the answers it wrote but did not
** send (the lender's go to the lender, with word of the death), retry or
** fail the task it died running, requeue the rest it held, and replace
** it. */
static void died(procs_t *ps, int i)
{
    cask_run_t *r = ps->r;
    proc_t *p = &ps->p[i];
    pworker_t *w = &ps->pp->w[i];
    wstate_t *ws = &ps->pp->ws[i];
    int st = 0, sig = 0;
    ps->idle -= !p->count;
    close(p->fd);
    p->fd = -1;
    while (waitpid(p->pid, &st, 0) < 0 && errno == EINTR)
        ;
    p->pid = 0;
    slot_gone(ps->pp, i);
    if (WIFSIGNALED(st))
        sig = WTERMSIG(st);
    take_left(ps, i, true);
    cask_tid_t running = atomic_load(&ws->running);
    uint32_t rprog = atomic_load(&ws->rprog);
    if (w->owed) /* its lender's task is lost: blamed if it was the one running */
        post(w->lender, &(mail_t){ .kind = MAIL_DEATH, .i = i, .sig = sig, .st = st,
                                   .running = rprog == w->lent_prog ? running : NONE });
    if (rprog != ps->prog->id)
        running = NONE;
    *w = (pworker_t){ .fd = -1 };
    lost(ps, i, running, sig, st);
    if (!cask_run_stopped(r)) {
        cask_error_t e;
        if (spawn(ps, i, &e))
            cask__run_fail(r, &e);
    } else if (ps->pp->shared) { /* a pool keeps its workers: failing, the next
                                    compute that takes this one forks it */
        cask_error_t e;
        spawn(ps, i, &e);
    }
}

/* Take every batch of answers waiting on worker i's socket: ps's, and its
** lender's, which go to the lender. */
static void answers(procs_t *ps, int i)
{
    if (take_sent(ps, i, ps->p[i].fd, true))
        died(ps, i);
}

/* Read what came by mail: answers from workers ps lent, their deaths, and
** workers coming back. One at a time, the lock not held while it is read
** (answering may call the compute's callbacks). */
static void take_mail(procs_t *ps)
{
    uint64_t c;
    if (ps->efd >= 0)
        while (read(ps->efd, &c, sizeof c) < 0 && errno == EINTR)
            ;
    for (size_t k = 0;; k++) {
        mail_t m;
        pthread_mutex_lock(&ps->mlock);
        if (k == ps->nmail) {
            ps->nmail = 0;
            pthread_mutex_unlock(&ps->mlock);
            return;
        }
        m = ps->mail[k];
        pthread_mutex_unlock(&ps->mlock);
        if (m.kind == MAIL_ANSWER) {
            ps->lent--;
            answered(ps, m.i, &m.a, m.msg);
        } else if (m.kind == MAIL_DEATH) {
            ps->lent -= ps->p[m.i].count;
            lost(ps, m.i, m.running, m.sig, m.st);
        } else {
            reclaim(ps, m.i);
        }
    }
}

/* What task t of ps is expected to take, in ns: its given cost, else its
** kernel's estimate (a cost function or a cost given at registration),
** else its kernel's measured mean in ps, else in the computes of ps's set
** that ended (read under the set's lock); infinity when nothing says. */
static double expected_ns(const procs_t *ps, cask_tid_t t)
{
    const cask__gview_t *gv = &ps->r->p.gv;
    uint32_t gt = ps->r->p.task[t], kid = gv->kernel[gt];
    double c = cask__view_cost(gv, gt);
    if (!isnan(c))
        return c * 1e9;
    const cask__kernel_t *k = cask__kernel_get(kid);
    if (k && (k->opts.cost_fn || k->opts.cost > 0))
        return cask__kernel_cost(kid, cask__view_inputs(gv, gt), cask__view_nargs(gv, gt)) * 1e9;
    double mean = kid < ps->nk && ps->kstat[kid].n ? ps->kstat[kid].mean : -1;
    if (mean < 0) {
        cask__ppool_t *pp = ps->pp;
        pthread_mutex_lock(&pp->lock);
        if (pp->kstat && kid < CASK__MAX_KERNELS && pp->kstat[kid].n)
            mean = pp->kstat[kid].mean;
        pthread_mutex_unlock(&pp->lock);
    }
    if (mean < 0)
        return INFINITY;
    cask__tickconv_t tc;
    cask__tick_rate(&tc);
    return mean * tc.ns_per_tick;
}

/* Whether ps could lend worker i: it holds it, and it runs one task of ps
** and nothing more, expected to take under LEND_NS (a compute lent the
** worker waits for that task, however long, while another worker may come
** free sooner). */
static bool lendable(const procs_t *ps, int i)
{
    const proc_t *p = &ps->p[i];
    return p->mine && p->fd >= 0 && p->count == 1 && p->keep == NONE && !ps->pp->w[i].owed &&
           expected_ns(ps, p->ring[p->head]) < LEND_NS;
}

/* List ps among pp's lenders (or take it off): a compute that comes to
** wait for a worker wakes the first of them. Lock held. */
static void list_lender(procs_t *ps, bool on)
{
    cask__ppool_t *pp = ps->pp;
    if (on == ps->listed)
        return;
    if (on) {
        ps->lprev = NULL;
        ps->lnext = pp->lenders;
        if (pp->lenders)
            pp->lenders->lprev = ps;
        pp->lenders = ps;
    } else {
        if (ps->lprev)
            ps->lprev->lnext = ps->lnext;
        else
            pp->lenders = ps->lnext;
        if (ps->lnext)
            ps->lnext->lprev = ps->lprev;
    }
    ps->listed = on;
}

/* On a pool, once every task ps has left is sent: lend the best waiting
** compute each worker that runs one task of ps and nothing more, expected
** to be short (lendable). Its tasks
** queue behind ps's there, so the worker goes on to them without waiting
** for either parent thread, and the answer ps still needs comes to it by
** mail from whoever holds the worker then. With such a worker and no
** compute waiting, ps is listed among the pool's lenders, and the next to
** wait wakes it. One task at most: a worker owes its lender one answer,
** and a waiting compute queues behind one task. */
static void lend(procs_t *ps)
{
    cask__ppool_t *pp = ps->pp;
    cask_run_t *r = ps->r;
    bool ready = !cask_readyq_size(&ps->q) &&
                 atomic_load_explicit(&r->done, memory_order_relaxed) + (size_t)ps->inflight ==
                     cask_run_size(r);
    if (!ready && !ps->listed)
        return;
    if (ready && !ps->mail) {
        ps->mail = cask__malloc(2 * (size_t)ps->nw * sizeof *ps->mail);
        if (ps->mail && (ps->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
            cask__free(ps->mail);
            ps->mail = NULL;
        }
        if (!ps->mail)
            return; /* it keeps its workers to its end, as without lending */
    }
    int cand[MAX_PROCS], nc = 0;
    for (int i = 0; ready && i < ps->nw; i++)
        if (lendable(ps, i))
            cand[nc++] = i;
    if (!nc && !ps->listed)
        return;
    bool left = false;
    pthread_mutex_lock(&pp->lock);
    for (int c = 0; c < nc; c++) {
        int i = cand[c];
        pworker_t *w = &pp->w[i];
        w->lender = ps;
        w->lent_prog = ps->prog->id;
        w->lent_t = ps->p[i].ring[ps->p[i].head];
        w->owed = 1;
        if (!hand(pp, i)) {
            w->lender = NULL;
            w->owed = 0;
            left = true; /* no waiter can run there: another worker may suit one */
            continue;
        }
        proc_t *p = &ps->p[i];
        p->mine = false;
        p->fd = -1;
        ps->holds--;
        ps->lent++;
        pp->lends++;
    }
    list_lender(ps, left);
    pthread_mutex_unlock(&pp->lock);
}

/* Worker i is ps's and has nothing to run or to be sent. */
static bool idle_held(const procs_t *ps, int i)
{
    const proc_t *p = &ps->p[i];
    return p->mine && p->fd >= 0 && !p->count && p->keep == NONE;
}

/* On a pool, before work is given out: while another compute waits for a
** worker, every worker ps holds idle goes to it but the last; with more
** ready tasks than workers held idle, free workers are taken; holding none
** with a task ready, ps waits for one. */
static int balance(procs_t *ps, cask_error_t *err)
{
    cask__ppool_t *pp = ps->pp;
    if (atomic_load(&pp->nwait))
        for (int i = 0; i < ps->nw && ps->holds > 1; i++)
            if (idle_held(ps, i))
                give(ps, i, false);
    size_t queued = cask_readyq_size(&ps->q);
    int want = (int)(queued < (size_t)ps->nw ? queued : (size_t)ps->nw) - ps->idle;
    if (want > 0 && atomic_load(&pp->nfree)) {
        cask_error_t e; /* more would help; with none, the error is the compute's */
        int rc = take(ps, want, false, &e);
        if (rc && !ps->holds) {
            *err = e;
            return rc;
        }
    }
    return !ps->holds && queued ? take(ps, 1, true, err) : 0;
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
            atomic_store(&ps->prog->stop, true);
            if (!ps->inflight)
                return 0;
        } else {
            if (atomic_load_explicit(&r->done, memory_order_relaxed) == n)
                return 0;
            int rc = ps->pp->shared ? balance(ps, err) : 0;
            if (rc)
                return rc;
            fill(ps);
            if (ps->pp->shared && !cask_readyq_size(&ps->q)) /* nothing for them here */
                for (int i = 0; i < ps->nw; i++)
                    if (idle_held(ps, i))
                        give(ps, i, false);
            if (ps->pp->shared)
                lend(ps);
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
        pf[ps->nw] = (struct pollfd){ .fd = ps->efd, .events = POLLIN };
        if (poll(pf, (nfds_t)ps->nw + 1, -1) < 0) {
            if (errno == EINTR)
                continue;
            return cask__err(err, CASK_EWORKER, NULL, NULL, "poll: %s", strerror(errno));
        }
        for (int i = 0; i < ps->nw; i++)
            if (pf[i].revents && ps->p[i].fd >= 0)
                answers(ps, i);
        if (pf[ps->nw].revents)
            take_mail(ps);
    }
}

/* A pool's workers were forked before ps's literals were made: copy each
** (once, however many tasks read it) into the arena, in slot 0. */
static int copy_literals(procs_t *ps, cask_value_t *args, size_t na, cask_error_t *err)
{
    cask__shm_t *m = ps->pp->m;
    size_t nl = 0, cap = 16;
    for (size_t k = 0; k < na; k++)
        nl += args[k].type != CASK_OPAQUE && !cask__shm_holds(m, &args[k]);
    if (!nl)
        return 0;
    while (cap < 2 * nl)
        cap *= 2;
    struct lit { const struct cask_blob *from; cask_value_t to; } *tab = cask__calloc(cap, sizeof *tab);
    if (!tab || !(ps->lits = cask__malloc(nl * sizeof *ps->lits))) {
        cask__free(tab);
        return cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for %zu literals", nl);
    }
    int rc = 0;
    cask__shm_use(m, 0);
    for (size_t k = 0; k < na && !rc; k++) {
        if (args[k].type == CASK_OPAQUE || cask__shm_holds(m, &args[k]))
            continue;
        const struct cask_blob *b = args[k].u.blob;
        size_t h = (size_t)(((uintptr_t)b >> 4) * 0x9e3779b97f4a7c15ull) & (cap - 1);
        while (tab[h].from && tab[h].from != b)
            h = (h + 1) & (cap - 1);
        if (!tab[h].from) {
            if (cask__value_copy(&args[k], &tab[h].to)) {
                rc = cask__err(err, CASK_ENOMEM, NULL, NULL, "no room in the shared arena "
                               "for a literal of %zu bytes", cask_value_nbytes(&args[k]));
                break;
            }
            tab[h].from = b;
            ps->lits[ps->nlits++] = tab[h].to;
        }
        args[k] = tab[h].to;
    }
    cask__shm_leave();
    cask__free(tab);
    return rc;
}

/*
** ps's program, in its set's arena: each task's kernel and arguments (an
** input as its task), the run's values, and the cache directory's keys.
** A pool's workers get their own copies of the literals and the keys; a
** compute's own workers, forked after this, read the parent's.
*/
static int prog_make(procs_t *ps, cask_error_t *err)
{
    cask_run_t *r = ps->r;
    cask__ppool_t *pp = ps->pp;
    const cask__gview_t *gv = &r->p.gv;
    size_t n = r->p.n, na = 0;
    for (size_t t = 0; t < n; t++)
        na += cask__view_nargs(gv, r->p.task[t]);
    const cask__cache_t *c = r->cache && r->cache->dir ? r->cache : NULL;
    bool copy_cache = c && pp->shared;
    size_t head = (sizeof(prog_t) + 63) & ~(size_t)63;
    size_t bytes = head + (n + na) * sizeof(cask_value_t) + (2 * n + 1) * sizeof(uint32_t);
    size_t at_cache = (bytes + 63) & ~(size_t)63;
    if (copy_cache)
        bytes = at_cache + sizeof(cask__cache_t) + n * sizeof *c->key + n + strlen(c->dir) + 1;
    char *b = pp->shared ? cask__shm_alloc(pp->m, bytes) : cask__shm_parent_alloc(pp->m, bytes);
    if (!b)
        return cask__err(err, CASK_ENOMEM, NULL, NULL, "no room in the shared arena for "
                         "%zu tasks", n);
    prog_t *P = (prog_t *)b;
    cask_value_t *val = (cask_value_t *)(b + head), *args = val + n;
    uint32_t *kernel = (uint32_t *)(args + na), *aoff = kernel + n;
    atomic_init(&P->stop, false);
    P->id = ps->id;
    P->val = val;
    P->kernel = kernel;
    P->aoff = aoff;
    P->args = args;
    P->cache = c;
    ps->prog = P;
    size_t k = 0;
    for (size_t t = 0; t < n; t++) {
        uint32_t gt = r->p.task[t];
        const cask_value_t *in = cask__view_inputs(gv, gt);
        val[t] = cask_none();
        kernel[t] = gv->kernel[gt];
        aoff[t] = (uint32_t)k;
        for (size_t i = 0, ni = cask__view_nargs(gv, gt); i < ni; i++, k++) {
            args[k] = in[i];
            if (in[i].type == CASK_REF)
                args[k].u.i = r->p.pidx[cask__tix(in[i].u.task)];
            else if (in[i].type == CASK_OPAQUE) /* a borrowed buffer */
                ps->fresh = true;
        }
    }
    aoff[n] = (uint32_t)k;
    if (copy_cache) {
        cask__cache_t *cc = (cask__cache_t *)(b + at_cache);
        uint64_t(*key)[2] = (uint64_t(*)[2])(cc + 1);
        uint8_t *write = (uint8_t *)(key + n);
        char *dir = (char *)(write + n);
        memcpy(key, c->key, n * sizeof *key);
        memcpy(write, c->write, n);
        strcpy(dir, c->dir);
        *cc = (cask__cache_t){ .dir = dir, .key = key, .write = write, .min_s = c->min_s };
        P->cache = cc;
    }
    return pp->shared ? copy_literals(ps, args, na, err) : 0;
}

/* A pool's compute has ended: its values, literals and program go. */
static void prog_free(procs_t *ps)
{
    if (!ps->prog || !ps->pp->shared)
        return; /* a compute's own arena goes whole */
    for (size_t t = 0; t < ps->r->p.n; t++)
        cask_value_decref(&ps->prog->val[t]);
    for (size_t i = 0; i < ps->nlits; i++)
        cask_value_decref(&ps->lits[i]);
    cask__free(ps->lits);
    cask__shm_free(ps->prog);
}

/* A driver: take the best job, run it, say it ended; until the set closes. */
static void *driver_main(void *arg)
{
    cask__ppool_t *pp = arg;
    my_ppool = pp;
    pthread_mutex_lock(&pp->lock);
    for (;;) {
        while (!pp->njobs && !pp->closing)
            pthread_cond_wait(&pp->work, &pp->lock);
        if (!pp->njobs)
            break;
        pjob_t *j = heap_pop(pp->jobs, pp->njobs--);
        pthread_mutex_unlock(&pp->lock);
        pjob_t job = *j;
        cask__free(j);
        cask_error_t serr;
        cask_error_clear(&serr);
        int rc = procs_run(job.r, NULL, &serr);
        job.ended(job.ctx, rc, &serr);
        pthread_mutex_lock(&pp->lock);
        if (!pp->njobs && !pp->computes)
            pthread_cond_broadcast(&pp->empty);
    }
    pthread_mutex_unlock(&pp->lock);
    return NULL;
}

int cask__ppool_start(cask__ppool_t *pp, cask_run_t *r, cask__pool_ended ended, void *ctx,
                      cask_error_t *err)
{
    double rank = 0;
    size_t ns;
    const cask_tid_t *src = cask_run_sources(r, &ns);
    for (size_t i = 0; i < ns; i++)
        if (r->p.rank[src[i]] > rank)
            rank = r->p.rank[src[i]];
    pjob_t *j = cask__malloc(sizeof *j);
    if (!j)
        return cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory to queue a compute");
    *j = (pjob_t){ .r = r, .ended = ended, .ctx = ctx };
    pthread_mutex_lock(&pp->lock);
    int rc = 0;
    if (pp->njobs == pp->capjobs &&
        cask__grow((void **)&pp->jobs, &pp->capjobs, pp->njobs + 1, sizeof *pp->jobs))
        rc = cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory to queue a compute");
    if (!rc && !pp->drivers &&
        !(pp->drivers = cask__calloc(2 * (size_t)pp->nw, sizeof *pp->drivers)))
        rc = cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for a pool's threads");
    while (!rc && pp->ndrivers < 2 * pp->nw) { /* made on the first submit */
        if (pthread_create(&pp->drivers[pp->ndrivers], NULL, driver_main, pp)) {
            if (!pp->ndrivers)
                rc = cask__err(err, CASK_ENOMEM, NULL, NULL, "cannot start a pool's thread");
            break;
        }
        pp->ndrivers++;
    }
    if (!rc) {
        heap_push(pp->jobs, pp->njobs++, (hent_t){ score_now(rank), j });
        pthread_cond_signal(&pp->work);
    }
    pthread_mutex_unlock(&pp->lock);
    if (rc)
        cask__free(j);
    return rc;
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
    ps.efd = -1;
    pthread_mutex_init(&ps.mlock, NULL);
    ps.pp = r->pool ? cask__pool_procs(r->pool) : NULL;
    if (!ps.pp && (rc = ppool_new(cask_run_workers(r), false, &ps.pp, err)))
        return rc;
    cask__ppool_t *pp = ps.pp;
    ps.nw = pp->nw;
    ps.kgen = cask__kernel_generation();
    pthread_mutex_lock(&pp->lock);
    pp->computes++;
    ps.since = pp->forks;
    ps.id = ++pp->progs;
    pthread_mutex_unlock(&pp->lock);
    cask_readyq_init(&ps.q, r);
    cask_value_t *own = r->val;
    struct pollfd *pf = NULL;
    ps.p = cask__calloc((size_t)ps.nw, sizeof *ps.p);
    for (int i = 0; ps.p && i < ps.nw; i++)
        ps.p[i] = (proc_t){ .fd = -1, .keep = NONE };
    ps.deaths = cask__calloc(n, 1);
    ps.sent = cask__calloc(n, sizeof *ps.sent);
    pf = cask__calloc((size_t)ps.nw + 1, sizeof *pf);
    if (!ps.p || !ps.deaths || !ps.sent || !pf) {
        rc = cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for %zu tasks on %d processes",
                       n, ps.nw);
        goto out;
    }
    if ((rc = prog_make(&ps, err)))
        goto out;
    uint32_t nk = 0; /* kernel ids the run uses: 0 .. nk - 1 */
    for (size_t t = 0; t < n; t++)
        if (ps.prog->kernel[t] >= nk)
            nk = ps.prog->kernel[t] + 1;
    ps.nk = nk;
    if (!(ps.kstat = cask__calloc(nk, sizeof *ps.kstat))) {
        rc = cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for %zu tasks on %d processes",
                       n, ps.nw);
        goto out;
    }
    r->val = ps.prog->val;
    size_t ns;
    const cask_tid_t *src = cask_run_sources(r, &ns);
    for (size_t i = 0; i < ns; i++)
        push(&ps, src[i]);
    rc = take(&ps, n < (size_t)ps.nw ? (int)n : ps.nw, false, err);
    if (!rc && !ps.holds)
        rc = take(&ps, 1, true, err);
    if (!rc)
        rc = loop(&ps, pf, err);
    for (int i = 0; rc && i < ps.nw; i++) /* the scheduler failed: killed, */
        if (ps.p[i].mine) /* which sends their lenders what they owe them */
            give(&ps, i, true);
    while (ps.lent) { /* and what it lent still answers */
        struct pollfd one = { .fd = ps.efd, .events = POLLIN };
        if (poll(&one, 1, -1) > 0)
            take_mail(&ps);
    }
out:
    if (ps.listed) { /* before its eventfd goes */
        pthread_mutex_lock(&pp->lock);
        list_lender(&ps, false);
        pthread_mutex_unlock(&pp->lock);
    }
    for (int i = 0; ps.p && i < ps.nw; i++)
        if (ps.p[i].mine)
            give(&ps, i, rc != 0); /* the scheduler itself failed: killed */
    /* The requested outputs leave the arena. */
    if (ps.prog && r->val == ps.prog->val && !rc && !cask_run_stopped(r))
        for (size_t i = 0; i < r->p.n_out; i++) {
            cask_tid_t o = r->p.out[i];
            if (own[o].type != CASK_NONE)
                continue; /* asked for twice */
            if (!cask__has_blob(&r->val[o]))
                own[o] = r->val[o];
            else if (cask__value_copy(&r->val[o], &own[o]))
                rc = cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for the results");
        }
    r->val = own;
    prog_free(&ps);
    cask_readyq_destroy(&ps.q);
    cask__free(ps.buf);
    cask__free(ps.deaths);
    cask__free(ps.sent);
    cask__free(ps.p);
    cask__free(pf);
    cask__free(ps.mail);
    if (ps.efd >= 0)
        close(ps.efd);
    pthread_mutex_destroy(&ps.mlock);
    pthread_mutex_lock(&pp->lock);
    if (pp->shared && ps.kstat && !pp->kstat)
        pp->kstat = cask__calloc(CASK__MAX_KERNELS, sizeof *pp->kstat);
    for (uint32_t k = 0; pp->kstat && ps.kstat && k < ps.nk && k < CASK__MAX_KERNELS; k++)
        if (ps.kstat[k].n) /* what later computes' lenders expect (see lend) */
            learn(&pp->kstat[k], ps.kstat[k].mean);
    cask__free(ps.kstat);
    if (!--pp->computes) { /* no value is in a gone worker's slot now */
        memcpy(pp->spare + pp->nspare, pp->limbo, (size_t)pp->nlimbo * sizeof *pp->limbo);
        pp->nspare += pp->nlimbo;
        pp->nlimbo = 0;
        pthread_cond_broadcast(&pp->empty);
    }
    pthread_mutex_unlock(&pp->lock);
    if (!pp->shared)
        cask__ppool_free(pp);
    return rc;
}

const cask__backend_t cask__backend_processes = { { "processes", procs_run, NULL, MAX_PROCS },
                                                  NULL, NULL, true };

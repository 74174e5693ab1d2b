/*
** sched/mpi.c: the "mpi" scheduler: the same program on every rank of an
** MPI job (mpirun -np N ./prog with CASK_SCHEDULER=mpi).
**
** SPMD. Every rank builds the same graph (keys are deterministic) and calls
** the same compute; the plans agree task for task, which a hash of the plan
** checks before anything runs. Rank 0 schedules: it keeps the ready queue
** every back-end uses and gives each popped task to a rank that has room,
** preferring the one that already holds most of the task's input bytes
** (only ranks with room compete, so the first task in priority order never
** waits for locality). It orders each missing input sent to that rank by
** one that holds it. Every rank, rank 0 included, runs tasks on one compute
** thread of its own while the calling thread does all MPI calls, so chunks
** move while kernels run. A rank holds a few tasks at once (more when they
** are short, see MIN_DEPTH): the next task's inputs arrive while the current
** one runs.
**
** Messages (one duplicated communicator): to a rank, batches of orders (RUN
** t, SEND u to rank k, FREE u, END, STOP followed by the error); to rank 0,
** batches of reports (status, times, bytes, a failure's text); between
** ranks, a value's header and, for strings, bytes and n-d buffers, its
** payload, sent from the value itself. Ranks of one machine share an arena
** for the compute (node_arena): there a header carries the block itself and
** nothing is copied. A failure anywhere stops the assigning; once every
** task given out has ended, rank 0 sends STOP with the error to every rank
** and every rank returns that error. Results go to rank 0 (every rank with
** CASK_ALL_RANKS); the trace, when asked for, to every rank.
**
** Why one file of 1,200 lines: it is one protocol. Every function below
** reads or writes the same run state (mrun_t: who holds what, the orders
** and reports in flight, the transfers) and the message formats above, and
** each part (starting MPI and the node's arena, the compute thread, moving
** values, what any rank does, what rank 0 does, the loop) speaks to the
** others through them. Split, the files would share a header exposing all
** of it and a reader would follow one message across several files; in
** one, the sections read top to bottom in the order a message travels.
*/
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sched.h"
#include "shm.h"

#ifdef CASK_HAVE_MPI
#include <mpi.h>

enum { T_CTL = 1, T_DONE, T_HDR, T_PAY, T_WHY };
enum { OP_RUN = 1, OP_SEND, OP_FREE, OP_END, OP_STOP };
enum { MSG = 240, HAVE = 1, LOST = 2 };
/* Tasks a rank holds at once: from MIN_DEPTH for long kernels up to
** MAX_DEPTH for short ones, so that a rank has about LATENCY_NS of work
** queued while its report goes to rank 0 and new orders come back. */
enum { MIN_DEPTH = 3, MAX_DEPTH = 64 };
#define LATENCY_NS 200000.0
enum { BATCH = 65536 }; /* bytes of a message of orders or reports, at most */

typedef struct { /* an order; rank 0 sends each rank its orders in batches */
    int32_t op;
    uint32_t tid;
    int32_t dest;
} ctl_t;

typedef struct { /* a report; a rank sends them in batches: a count (8
                    bytes), the reports, then the text (MSG bytes) of each
                    failed one, in order */
    uint32_t tid;
    int32_t rc;
    uint64_t start, end;        /* ns since the run's start on that rank; 0: untimed */
    uint64_t bytes, busy;       /* output bytes; ns the kernel took */
} done_t;

typedef struct { /* a growable byte buffer */
    char *p;
    size_t n, cap;
} buf_t;

_Static_assert(8 + MAX_DEPTH * (sizeof(done_t) + MSG) <= BATCH, "a batch of reports fits");

typedef struct {
    int32_t code, rank;
    char key[CASK_KEY_MAX + 1], kernel[64], message[256];
} stop_t;

typedef struct { /* a value's header; a payload of size bytes follows,
                    unless the value is shared */
    uint32_t tid;
    int32_t type, dtype, ndim;
    uint32_t aux, shared; /* shared: the block is in the node's arena, at ptr */
    int64_t shape[CASK_MAX_NDIM];
    int64_t inl;          /* ints and doubles (their bits) */
    uint64_t size;
    uint64_t ptr;         /* shared: the block (the receiver takes a reference) */
    uint64_t sent;        /* when it was sent: the sender's clock, */
    uint64_t sent_rel;    /* and ns since the run's start there */
} vhdr_t;

typedef struct { /* a send or receive in flight */
    MPI_Request req;
    uint32_t tid;        /* receives: the task whose value it is */
    uint64_t t0;         /* receives: when it was sent (ns since the start) */
    cask_value_t v;      /* the value sent from, or received into (a reference) */
} xfer_t;

typedef struct { /* a kernel that ended on this rank's compute thread */
    uint32_t tid;
    int rc;
    cask_value_t out;
    uint64_t start, end; /* ticks */
    uint64_t busy;       /* ns */
    char msg[MSG];
} ended_t;

typedef struct {
    cask_run_t *r;
    MPI_Comm comm;
    int rank, size;
    cask__shm_t *arena;        /* shared by the ranks of this node, or NULL */
    int node_rank;             /* this rank's slot in it */
    size_t n;
    cask__tickconv_t conv;
    uint64_t base_ns;          /* this rank's clock at the run's start */
    uint8_t *have;             /* values held here: HAVE, or LOST (could not be
                                  received: the tasks that read it fail) */
    uint32_t *missing;         /* tasks given here: inputs still to come;
                                  UINT32_MAX: not given here */
    uint32_t *wait_head;       /* tasks given here waiting for each value: */
    struct waiter { uint32_t t, next; } *waiters; /* lists in one pool */
    size_t n_waiters, waiters_cap;
    uint32_t *stamp;           /* each_input: inputs visited this time */
    uint32_t stamp_now;
    /* the compute thread */
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint32_t *runq;            /* tasks whose inputs are here, FIFO */
    size_t rq_head, rq_tail;   /* in runq (n entries: each task once) */
    ended_t ends[2][MAX_DEPTH]; /* kernels ended, not yet reported: the compute
                                  thread fills one while collect() reads the other
                                  (a rank has at most MAX_DEPTH tasks at once) */
    ended_t *ended;
    size_t n_ended;
    int quit;
    /* transfers */
    xfer_t *sends, *recvs;
    size_t n_sends, sends_cap, n_recvs, recvs_cap;
    cask__xfer_t *moved;       /* trace: the payloads received here (ns since the start) */
    size_t n_moved, moved_cap;
    buf_t in;                  /* the batch being read, or the reports being written
                                  (BATCH bytes, taken at the start) */
    buf_t *outbox;             /* rank 0: orders not yet sent, per rank */
    /* rank 0: the scheduling */
    cask_readyq_t q;
    uint64_t *hold;            /* holders of each value: words per task */
    size_t hw;
    uint64_t *tbytes;          /* bytes of each output */
    int32_t *owner;            /* the rank that made each output */
    int *inflight;             /* tasks given to each rank, not yet done */
    uint64_t *rbytes;          /* with a budget: the given sizes of the values each
                                  rank holds or is sent, */
    uint64_t *rres;            /* and of the tasks it runs (their outputs to come) */
    uint64_t rpeak;            /* the most any rank held */
    int depth;                 /* tasks a rank may hold */
    double busy_ns;            /* a kernel's time, a moving average */
    int32_t *worker;           /* trace: rank of each task, */
    uint64_t *ns_start, *ns_end; /* and its times (ns since the start) */
    size_t n_done;
    int failed;                /* rank 0 had no memory for its ready queue */
    int all;                   /* the outputs go to every rank (CASK_ALL_RANKS) */
} mrun_t;

static pthread_mutex_t mpi_lock = PTHREAD_MUTEX_INITIALIZER; /* one compute at a time */
static MPI_Comm world = MPI_COMM_NULL;
static MPI_Comm node = MPI_COMM_NULL; /* the ranks of this machine */
static int *node_of;                  /* each rank's machine (its first rank) */
static int we_initialised;

/* The thread running an mpi compute (holding mpi_lock for it), if any. */
static pthread_t running_thread;
static atomic_int running_set;

static void finalise(void)
{
    /* A compute in flight on another thread (a cask_submit's, whose futures
    ** the program no longer waits for) ends first: every rank ends it
    ** together, so waiting is safe. A kernel that exits on the compute's
    ** own thread holds the lock: no waiting then. */
    int own = atomic_load(&running_set) && pthread_equal(running_thread, pthread_self());
    if (!own)
        pthread_mutex_lock(&mpi_lock);
    int done = 0;
    MPI_Finalized(&done);
    if (!done) {
        if (node != MPI_COMM_NULL)
            MPI_Comm_free(&node);
        if (world != MPI_COMM_NULL)
            MPI_Comm_free(&world);
        MPI_Finalize();
    }
    cask__free(node_of);
    node_of = NULL;
    if (!own)
        pthread_mutex_unlock(&mpi_lock);
}

/* Initialise MPI once (unless the program did) and duplicate the world. */
static int mpi_start(cask_error_t *err)
{
    if (world != MPI_COMM_NULL)
        return 0;
    int inited = 0, provided = 0;
    MPI_Initialized(&inited);
    if (!inited) {
        if (MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS)
            return cask__err(err, CASK_EWORKER, NULL, NULL, "MPI_Init_thread failed");
        we_initialised = 1;
        atexit(finalise);
    }
    if (MPI_Comm_dup(MPI_COMM_WORLD, &world) != MPI_SUCCESS)
        return cask__err(err, CASK_EWORKER, NULL, NULL, "MPI_Comm_dup failed");
    /* which ranks share this machine (their values can share memory) */
    int rank, size, first = 0;
    MPI_Comm_rank(world, &rank);
    MPI_Comm_size(world, &size);
    if (MPI_Comm_split_type(world, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) !=
        MPI_SUCCESS)
        node = MPI_COMM_NULL;
    else
        MPI_Allreduce(&rank, &first, 1, MPI_INT, MPI_MIN, node);
    int *of = cask__malloc((size_t)size * sizeof *of); /* kept until MPI_Finalize */
    int ok = of != NULL && node != MPI_COMM_NULL, all = 0;
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, world);
    if (all) {
        MPI_Allgather(&first, 1, MPI_INT, of, 1, MPI_INT, world);
        node_of = of;
    } else {
        cask__free(of);
    }
    return 0;
}

/* One worker per rank: the number of ranks (MPI started if need be). */
static int mpi_size(cask_error_t *err)
{
    pthread_mutex_lock(&mpi_lock);
    int rc = mpi_start(err), size = 1;
    if (!rc)
        MPI_Comm_size(world, &size);
    pthread_mutex_unlock(&mpi_lock);
    return rc ? rc : size;
}

int cask_mpi_rank(void)
{
    int inited = 0, rank = 0;
    MPI_Initialized(&inited);
    if (inited)
        MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    return rank;
}

/* ------------------------------------------------------ the node's arena */

/* Where the ranks of a node may map their arena: the same address in
** each, so a block's pointers mean the same in every rank; far from where
** programs, heaps, libraries and ASan's shadow usually are. */
static const uintptr_t arena_at[] = { 0x200000000000u, 0x300000000000u, 0x400000000000u,
                                      0x180000000000u };

static int node_all(int ok)
{
    int all = 0;
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, node);
    return all;
}

/* The ranks of this node map one arena for this compute (collective over
** the node): the first rank makes a memfd, the others open it through
** /proc and every rank maps it at one address. NULL when a rank is alone
** on its node, when any rank cannot, or with CASK_MPI_SHM=0. */
static cask__shm_t *node_arena(int *node_rank)
{
    if (!node_of || node == MPI_COMM_NULL)
        return NULL;
    int n, me;
    MPI_Comm_size(node, &n);
    MPI_Comm_rank(node, &me);
    const char *env = getenv("CASK_MPI_SHM");
    if (n < 2 || !node_all(!env || strcmp(env, "0")))
        return NULL;
    cask_error_t e;
    struct { int64_t pid, fd; } made = { getpid(), me == 0 ? cask__shm_memfd(&e) : -1 };
    MPI_Bcast(&made, sizeof made, MPI_BYTE, 0, node);
    int fd = (int)made.fd;
    if (me && made.fd >= 0) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%lld/fd/%d", (long long)made.pid, (int)made.fd);
        fd = open(path, O_RDWR | O_CLOEXEC);
    }
    cask__shm_t *a = NULL;
    if (node_all(fd >= 0))
        for (size_t i = 0; i < sizeof arena_at / sizeof *arena_at; i++) {
            if (node_all(!cask__shm_map_fd(&a, fd, CASK__SHM_SIZE, (void *)arena_at[i], n, &e)))
                break;
            cask__shm_close(a);
            a = NULL;
        }
    if (fd >= 0)
        close(fd); /* the mappings keep the file: it goes with the last of them */
    if (a) {
        cask__shm_init_slot(a, me);
        *node_rank = me;
    }
    return a;
}

/* Before the arena goes: the values this rank keeps (the outputs it
** returns) are copied out of it, the rest are released. */
static void leave_arena(mrun_t *m, int keep_outputs)
{
    cask_run_t *r = m->r;
    for (size_t i = 0; keep_outputs && i < r->p.n_out; i++) {
        cask_value_t *v = &r->val[r->p.out[i]], copy;
        if (!cask__has_blob(v) || !cask__shm_holds(m->arena, v))
            continue;
        if (cask__value_copy(v, &copy)) {
            cask_error_t e;
            cask__err(&e, CASK_ENOMEM, NULL, NULL, "no memory on rank %d for the outputs",
                      m->rank);
            cask__run_fail(r, &e);
            copy = cask_none();
        }
        cask_value_decref(v);
        *v = copy;
    }
    for (size_t u = 0; u < m->n; u++)
        if (cask__has_blob(&r->val[u]) && cask__shm_holds(m->arena, &r->val[u])) {
            cask_value_decref(&r->val[u]);
            r->val[u] = cask_none();
        }
}

/* ------------------------------------------------------------- helpers */

/* A kernel's tick as ns since the run's start here; 0 for an untimed one
** (ticks are taken only when a trace or a posttask callback wants them). */
static uint64_t tick_rel(const mrun_t *m, uint64_t tick)
{
    if (tick < m->conv.tick0)
        return 0;
    uint64_t ns = cask__tick_ns(&m->conv, tick);
    return ns > m->base_ns ? ns - m->base_ns : 0;
}

/* ns since the run's start here (rel) as a tick of this rank's clock. */
static uint64_t rel_tick(const mrun_t *m, uint64_t rel)
{
    return m->conv.tick0 + (uint64_t)((double)(int64_t)(rel + m->base_ns - m->conv.ns0) /
                                      m->conv.ns_per_tick);
}

/* The distinct tasks whose values t reads, through fn(m, u, ctx). */
static void each_input(mrun_t *m, uint32_t t, void (*fn)(mrun_t *, uint32_t, void *), void *ctx)
{
    uint32_t gt = m->r->p.task[t];
    const cask_value_t *in = cask__view_inputs(&m->r->p.gv, gt);
    if (++m->stamp_now == 0) { /* wrapped: start the stamps afresh */
        memset(m->stamp, 0, m->n * sizeof *m->stamp);
        m->stamp_now = 1;
    }
    for (size_t i = 0, k = cask__view_nargs(&m->r->p.gv, gt); i < k; i++)
        if (in[i].type == CASK_REF) {
            uint32_t u = m->r->p.pidx[cask__tix(in[i].u.task)];
            if (m->stamp[u] != m->stamp_now) {
                m->stamp[u] = m->stamp_now;
                fn(m, u, ctx);
            }
        }
}

static int held(const mrun_t *m, uint32_t u, int k)
{
    return (m->hold[(size_t)u * m->hw + (size_t)k / 64] >> (k % 64)) & 1;
}

static void set_held(mrun_t *m, uint32_t u, int k, int on)
{
    uint64_t bit = 1ull << (k % 64), *w = &m->hold[(size_t)u * m->hw + (size_t)k / 64];
    if (m->rbytes && !(*w & bit) != !on) { /* a budget: count what each rank holds */
        m->rbytes[k] = on ? m->rbytes[k] + cask__run_nbytes(m->r, u) : m->rbytes[k] - cask__run_nbytes(m->r, u);
        m->rpeak = m->rbytes[k] > m->rpeak ? m->rbytes[k] : m->rpeak;
    }
    *w = on ? *w | bit : *w & ~bit;
}

static int put(buf_t *b, const void *p, size_t len)
{
    if (cask__grow((void **)&b->p, &b->cap, b->n + len, 1))
        return CASK_ENOMEM;
    memcpy(b->p + b->n, p, len);
    b->n += len;
    return 0;
}

/* Rank 0's orders to rank `to` leave together (flush). */
static void flush_to(mrun_t *m, int to)
{
    buf_t *b = &m->outbox[to];
    if (b->n)
        MPI_Send(b->p, (int)b->n, MPI_BYTE, to, T_CTL, m->comm);
    b->n = 0;
}

static void flush(mrun_t *m)
{
    for (int k = 1; k < m->size; k++)
        flush_to(m, k);
}

static void ctl(mrun_t *m, int to, int op, uint32_t tid, int dest)
{
    ctl_t c = { op, tid, dest };
    if (m->outbox[to].n + sizeof c > BATCH)
        flush_to(m, to);
    if (put(&m->outbox[to], &c, sizeof c)) { /* no room to batch it: send it alone */
        flush_to(m, to);
        MPI_Send(&c, sizeof c, MPI_BYTE, to, T_CTL, m->comm);
    }
}

/* Receive the batch st announces into m->in (BATCH bytes, taken at the
** start, so a batch is never dropped for want of memory). */
static void receive(mrun_t *m, const MPI_Status *st)
{
    int len = 0;
    MPI_Get_count(st, MPI_BYTE, &len);
    MPI_Recv(m->in.p, BATCH, MPI_BYTE, st->MPI_SOURCE, st->MPI_TAG, m->comm, MPI_STATUS_IGNORE);
    m->in.n = (size_t)len;
}

/* ------------------------------------------------------ the compute thread */

static void *compute_main(void *arg)
{
    mrun_t *m = arg;
    if (m->arena) /* the values made here go in the node's arena */
        cask__shm_enter(m->arena, m->node_rank, true);
    pthread_mutex_lock(&m->mu);
    for (;;) {
        while (!m->quit && m->rq_head == m->rq_tail)
            pthread_cond_wait(&m->cv, &m->mu);
        if (m->rq_head == m->rq_tail)
            break;
        uint32_t t = m->runq[m->rq_head++];
        pthread_mutex_unlock(&m->mu);
        ended_t e = { .tid = t };
        uint64_t t0 = cask_now_ns();
        if (cask_run_stopped(m->r)) {
            e.rc = CASK_ECANCELED;
            snprintf(e.msg, sizeof e.msg, "the compute stopped");
            e.out = cask_none();
        } else {
            cask__run_pre(m->r, t, m->rank);
            e.rc = cask__run_invoke(m->r, t, m->rank, &e.out, &e.start, &e.end, e.msg,
                                    sizeof e.msg);
            if (!e.rc && e.out.type == CASK_OPAQUE) {
                cask_value_decref(&e.out);
                e.rc = CASK_ETYPE;
                snprintf(e.msg, sizeof e.msg,
                         "returned an opaque value, which cannot leave its rank");
            }
        }
        e.busy = cask_now_ns() - t0;
        pthread_mutex_lock(&m->mu);
        m->ended[m->n_ended++] = e;
    }
    pthread_mutex_unlock(&m->mu);
    cask__shm_leave();
    return NULL;
}

static void runnable(mrun_t *m, uint32_t t)
{
    pthread_mutex_lock(&m->mu);
    m->runq[m->rq_tail++] = t;
    pthread_cond_signal(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

/* ------------------------------------------------------- moving values */

static int same_node(const mrun_t *m, int k)
{
    return m->arena && node_of[k] == node_of[m->rank];
}

static void send_value(mrun_t *m, uint32_t u, int dest)
{
    cask_value_t *v = &m->r->val[u];
    vhdr_t h = { .tid = u, .type = v->type, .aux = v->aux, .sent = cask_now_ns() };
    h.sent_rel = h.sent - m->base_ns;
    if (v->type == CASK_INT64)
        h.inl = v->u.i;
    else if (v->type == CASK_DOUBLE)
        memcpy(&h.inl, &v->u.d, sizeof h.inl);
    else if (cask__has_blob(v) && same_node(m, dest) && cask__shm_holds(m->arena, v)) {
        /* dest maps this block too: send the pointer and a reference */
        h.shared = 1;
        h.ptr = (uint64_t)(uintptr_t)v->u.blob;
        h.size = v->u.blob->size;
        cask_value_incref(v);
    } else if (cask__has_blob(v)) {
        h.dtype = v->u.blob->dtype;
        h.ndim = v->u.blob->ndim;
        memcpy(h.shape, v->u.blob->shape, sizeof h.shape);
        h.size = v->u.blob->size;
    }
    MPI_Send(&h, sizeof h, MPI_BYTE, dest, T_HDR, m->comm);
    if (!h.size || h.shared)
        return;
    if (cask__grow((void **)&m->sends, &m->sends_cap, m->n_sends + 1, sizeof *m->sends)) {
        /* no room to track it: send it blocking */
        MPI_Send(v->u.blob->data, (int)h.size, MPI_BYTE, dest, T_PAY, m->comm);
        return;
    }
    xfer_t *x = &m->sends[m->n_sends++];
    x->tid = u;
    x->v = *v;
    cask_value_incref(&x->v); /* alive until the send completes, even if freed here */
    MPI_Isend(v->u.blob->data, (int)h.size, MPI_BYTE, dest, T_PAY, m->comm, &x->req);
}

static void arrived(mrun_t *m, uint32_t u, cask_value_t v);
static void lost(mrun_t *m, uint32_t u);

/* Trace: value tid's payload (bytes) came here, sent at t0. */
static void note_moved(mrun_t *m, uint32_t tid, uint64_t t0, uint64_t bytes)
{
    if (!m->r->t_start ||
        cask__grow((void **)&m->moved, &m->moved_cap, m->n_moved + 1, sizeof *m->moved))
        return;
    uint64_t now = cask_now_ns() - m->base_ns;
    m->moved[m->n_moved++] =
        (cask__xfer_t){ tid, m->size + m->rank, t0 < now ? t0 : now, now, bytes };
}

static void recv_header(mrun_t *m, int src)
{
    vhdr_t h;
    MPI_Recv(&h, sizeof h, MPI_BYTE, src, T_HDR, m->comm, MPI_STATUS_IGNORE);
    /* when it was sent, here: exact on one machine (one clock), else as
    ** close as the ranks' common start (a barrier) makes it */
    if (node_of && node_of[src] == node_of[m->rank])
        h.sent_rel = h.sent > m->base_ns ? h.sent - m->base_ns : 0;
    cask_value_t v = cask_none();
    if (h.shared) { /* in the node's arena: ours now, nothing to copy */
        v.type = (cask_type_t)h.type;
        v.aux = h.aux;
        v.u.blob = (struct cask_blob *)(uintptr_t)h.ptr;
        note_moved(m, h.tid, h.sent_rel, h.size);
        arrived(m, h.tid, v);
        return;
    }
    if (h.type == CASK_INT64) {
        v = cask_int(h.inl);
    } else if (h.type == CASK_DOUBLE) {
        double d;
        memcpy(&d, &h.inl, sizeof d);
        v = cask_double(d);
    } else if (h.type != CASK_NONE) {
        if (cask__value_blank((cask_type_t)h.type, (size_t)h.size, &v)) {
            /* take the payload off the wire into nothing: a truncated
            ** receive, which returns an error here rather than aborting */
            char none;
            MPI_Comm_set_errhandler(m->comm, MPI_ERRORS_RETURN);
            MPI_Recv(&none, 0, MPI_BYTE, src, T_PAY, m->comm, MPI_STATUS_IGNORE);
            MPI_Comm_set_errhandler(m->comm, MPI_ERRORS_ARE_FATAL);
            lost(m, h.tid);
            return;
        }
        v.aux = h.aux;
        v.u.blob->dtype = (cask_dtype_t)h.dtype;
        v.u.blob->ndim = h.ndim;
        memcpy(v.u.blob->shape, h.shape, sizeof h.shape);
    }
    if (!h.size) {
        arrived(m, h.tid, v);
        return;
    }
    if (cask__grow((void **)&m->recvs, &m->recvs_cap, m->n_recvs + 1, sizeof *m->recvs)) {
        MPI_Recv(v.u.blob->data, (int)h.size, MPI_BYTE, src, T_PAY, m->comm, MPI_STATUS_IGNORE);
        arrived(m, h.tid, v);
        return;
    }
    xfer_t *x = &m->recvs[m->n_recvs++];
    x->tid = h.tid;
    x->t0 = h.sent_rel;
    x->v = v;
    MPI_Irecv(v.u.blob->data, (int)h.size, MPI_BYTE, src, T_PAY, m->comm, &x->req);
}

/* Complete what has finished of xs[0..*n); how many did. */
static int progress_xfers(mrun_t *m, xfer_t *xs, size_t *n, int receiving)
{
    int moved = 0;
    for (size_t i = 0; i < *n;) {
        int flag = 0;
        MPI_Test(&xs[i].req, &flag, MPI_STATUS_IGNORE);
        if (!flag) {
            i++;
            continue;
        }
        xfer_t x = xs[i];
        xs[i] = xs[--*n];
        moved++;
        if (receiving) {
            note_moved(m, x.tid, x.t0, cask__nbytes(&x.v));
            arrived(m, x.tid, x.v);
        }
        else
            cask_value_decref(&x.v);
    }
    return moved;
}

static void drain_xfers(mrun_t *m)
{
    while (m->n_sends || m->n_recvs) {
        progress_xfers(m, m->sends, &m->n_sends, 0);
        progress_xfers(m, m->recvs, &m->n_recvs, 1);
    }
}

/* ---------------------------------------------------------- any rank */

/* Task t given here cannot run: report it ended with rc (as its kernel
** would), so rank 0 sees the failure and nothing waits for it. */
static void cannot_run(mrun_t *m, uint32_t t, int rc, const char *why)
{
    ended_t e = { .tid = t, .rc = rc, .out = cask_none() };
    snprintf(e.msg, sizeof e.msg, "%s", why);
    m->missing[t] = UINT32_MAX;
    pthread_mutex_lock(&m->mu);
    m->ended[m->n_ended++] = e;
    pthread_mutex_unlock(&m->mu);
}

typedef struct {
    uint32_t t, missing;
    int lost, nomem;
} need_t;

static void wait_for(mrun_t *m, uint32_t u, void *ctx)
{
    need_t *nd = ctx;
    if (m->have[u] == LOST)
        nd->lost = 1;
    if (m->have[u])
        return;
    if (cask__grow((void **)&m->waiters, &m->waiters_cap, m->n_waiters + 1, sizeof *m->waiters)) {
        nd->nomem = 1;
        return;
    }
    m->waiters[m->n_waiters] = (struct waiter){ nd->t, m->wait_head[u] };
    m->wait_head[u] = (uint32_t)m->n_waiters++;
    nd->missing++;
}

/* Task t is given to this rank: run it once its inputs are here. */
static void give(mrun_t *m, uint32_t t)
{
    need_t nd = { t, 0, 0, 0 };
    each_input(m, t, wait_for, &nd);
    m->missing[t] = nd.missing;
    if (nd.lost || nd.nomem)
        cannot_run(m, t, CASK_ENOMEM, nd.lost ? "no memory on this rank for one of its inputs"
                                              : "no memory to wait for its inputs");
    else if (!nd.missing)
        runnable(m, t);
}

static void free_if_unused(mrun_t *m, uint32_t u, void *ctx);

/* Whether u is an output asked for, handed over as it comes (hooks). */
static int streamed(const mrun_t *m, uint32_t u)
{
    return m->r->out_first && m->r->out_first[u] != UINT32_MAX;
}

static void arrived(mrun_t *m, uint32_t u, cask_value_t v)
{
    if (m->have[u]) { /* sent twice: keep one */
        cask_value_decref(&v);
        return;
    }
    m->r->val[u] = v;
    m->have[u] = HAVE;
    for (uint32_t w = m->wait_head[u]; w != UINT32_MAX; w = m->waiters[w].next) {
        uint32_t t = m->waiters[w].t; /* each waits once for each value it reads */
        if (m->missing[t] != UINT32_MAX && --m->missing[t] == 0)
            runnable(m, t);
    }
    m->wait_head[u] = UINT32_MAX;
    if (m->rank == 0 && streamed(m, u) && !cask_run_stopped(m->r)) {
        /* an output made on another rank: handed over now that it is here,
        ** and let go of everywhere once nothing needs it */
        cask__run_deliver(m->r, u, true);
        free_if_unused(m, u, NULL);
    }
}

/* Value u could not be received here: the tasks waiting for it, and any
** later given here that read it, fail with CASK_ENOMEM. */
static void lost(mrun_t *m, uint32_t u)
{
    m->have[u] = LOST;
    for (uint32_t w = m->wait_head[u]; w != UINT32_MAX; w = m->waiters[w].next)
        if (m->missing[m->waiters[w].t] != UINT32_MAX)
            cannot_run(m, m->waiters[w].t, CASK_ENOMEM,
                       "no memory on this rank for one of its inputs");
    m->wait_head[u] = UINT32_MAX;
}

static void drop(mrun_t *m, uint32_t u)
{
    if (m->have[u] == HAVE) {
        cask_value_decref(&m->r->val[u]);
        m->r->val[u] = cask_none();
        m->have[u] = 0;
    }
}

/* ---------------------------------------------------------- rank 0 */

typedef struct {
    int k;
    uint64_t bytes;
} locality_t;

static void held_bytes(mrun_t *m, uint32_t u, void *ctx)
{
    locality_t *l = ctx;
    if (held(m, u, l->k))
        l->bytes += m->tbytes[u] + 1;
}

static void order_input(mrun_t *m, uint32_t u, void *ctx)
{
    int k = *(int *)ctx;
    if (held(m, u, k))
        return;
    /* From rank 0 when the value is here, else from the rank that made it:
    ** ranks it was sent to may not have it yet. */
    if (m->have[u] == HAVE)
        send_value(m, u, k);
    else
        ctl(m, m->owner[u], OP_SEND, u, k);
    set_held(m, u, k, 1); /* on its way */
}

/* With a budget: the given sizes of t's inputs rank k does not hold. */
static void missing_bytes(mrun_t *m, uint32_t u, void *ctx)
{
    locality_t *l = ctx;
    if (!held(m, u, l->k))
        l->bytes += cask__run_nbytes(m->r, u);
}

/* With a budget: the rank with room to run t whose budget t fits (its
** size and its largest consumer's, and the inputs it would be sent), the
** one holding most of t's input bytes; -1 if none. */
static int budget_rank(mrun_t *m, cask_tid_t t)
{
    cask_run_t *r = m->r;
    int best = -1;
    uint64_t best_bytes = 0;
    for (int k = 0; k < m->size; k++) {
        if (m->inflight[k] >= m->depth)
            continue;
        locality_t miss = { k, 0 }, have = { k, 0 };
        uint64_t need = cask__run_nbytes(m->r, t) ? r->need[t] : 0, used = m->rbytes[k] + m->rres[k];
        each_input(m, t, missing_bytes, &miss);
        if (need + miss.bytes && (used > r->budget || need + miss.bytes > r->budget - used))
            continue;
        each_input(m, t, held_bytes, &have);
        if (best < 0 || have.bytes > best_bytes ||
            (have.bytes == best_bytes && m->inflight[k] < m->inflight[best])) {
            best = k;
            best_bytes = have.bytes;
        }
    }
    return best;
}

/* Give t to rank k. */
static void give_to(mrun_t *m, cask_tid_t t, int k)
{
    each_input(m, t, order_input, &k);
    m->inflight[k]++;
    if (k == 0)
        give(m, t);
    else
        ctl(m, k, OP_RUN, t, 0);
}

/* With a budget, as cask__readyq_pop_admitted per rank: the first ready
** task if some rank's budget fits it, else the first that fits and frees
** what it makes, else (nothing running anywhere) the first that fits.
** Nothing running and nothing fitting: the graph does not fit. */
static int fit_rank(void *ctx, cask_tid_t t)
{
    return budget_rank(ctx, t);
}

static void assign_budget(mrun_t *m)
{
    cask_run_t *r = m->r;
    while (!cask_run_stopped(r) && cask_readyq_size(&m->q)) {
        int running = 0, room = 0, k;
        for (int j = 0; j < m->size; j++) {
            running += m->inflight[j];
            room |= m->inflight[j] < m->depth;
        }
        if (!room) /* every rank is full: no task fits anywhere (no walk of the queue) */
            return;
        cask_tid_t t;
        if (cask__readyq_pick(&m->q, r, running > 0, fit_rank, m, &t, &k)) {
            m->rres[k] += cask__run_nbytes(r, t);
            give_to(m, t, k);
            continue;
        }
        if (!running && cask_readyq_peek(&m->q, &t)) {
            uint64_t most = 0;
            for (int j = 0; j < m->size; j++)
                most = m->rbytes[j] > most ? m->rbytes[j] : most;
            cask_error_t e;
            cask__err(&e, CASK_ENOMEM, cask_run_key(r, t), cask__kernel_name(r->g, r->p.task[t]),
                      "the memory budget of %zu bytes a rank is too small for this graph: a "
                      "rank holds %llu bytes of outputs for tasks still to run, and no ready "
                      "task fits on any rank (this one makes %llu)", r->budget,
                      (unsigned long long)most, (unsigned long long)cask__run_nbytes(r, t));
            cask__run_fail(r, &e);
        }
        return;
    }
}

/* Give out ready tasks while some rank has room. */
static void assign(mrun_t *m)
{
    cask_tid_t t;
    if (m->rbytes) {
        assign_budget(m);
        return;
    }
    while (!cask_run_stopped(m->r) && cask_readyq_size(&m->q)) {
        int best = -1;
        uint64_t best_bytes = 0;
        if (!cask_readyq_peek(&m->q, &t))
            break;
        for (int k = 0; k < m->size; k++) {
            if (m->inflight[k] >= m->depth)
                continue;
            locality_t l = { k, 0 };
            each_input(m, t, held_bytes, &l);
            if (best < 0 || l.bytes > best_bytes ||
                (l.bytes == best_bytes && m->inflight[k] < m->inflight[best])) {
                best = k;
                best_bytes = l.bytes;
            }
        }
        if (best < 0)
            break; /* every rank is full */
        cask_readyq_pop(&m->q, &t);
        give_to(m, t, best);
    }
}

static void on_ready(void *ctx, cask_tid_t s)
{
    mrun_t *m = ctx;
    if (cask_readyq_push(&m->q, s))
        m->failed = 1;
}

static void free_if_unused(mrun_t *m, uint32_t u, void *ctx)
{
    (void)ctx;
    if (atomic_load_explicit(&m->r->uses[u], memory_order_relaxed))
        return;
    for (int k = 1; k < m->size; k++)
        if (held(m, u, k)) {
            ctl(m, k, OP_FREE, u, 0);
            set_held(m, u, k, 0);
        }
    m->have[u] = 0; /* cask_run_complete has released rank 0's copy */
    set_held(m, u, 0, 0);
}

/* Task t ended on rank k. */
static void finished(mrun_t *m, int k, uint32_t t, int rc, cask_value_t out, uint64_t start,
                     uint64_t end, uint64_t bytes, uint64_t busy, const char *msg)
{
    cask_run_t *r = m->r;
    m->inflight[k]--;
    /* short kernels: deeper queues, so no rank waits for its orders */
    m->busy_ns += ((double)busy - m->busy_ns) / 16;
    double d = LATENCY_NS / (m->busy_ns + 1);
    m->depth = d < MIN_DEPTH ? MIN_DEPTH : d > MAX_DEPTH ? MAX_DEPTH : (int)d;
    if (cask_run_stopped(r) && rc) { /* a task stopped by an earlier failure */
        cask_value_decref(&out);
        return;
    }
    char text[MSG + 32];
    snprintf(text, sizeof text, "%s (on rank %d)", msg, k);
    if (m->worker) {
        m->worker[t] = k;
        m->ns_start[t] = start;
        m->ns_end[t] = end;
    }
    int local = k == 0;
    if (m->rres)
        m->rres[k] -= cask__run_nbytes(m->r, t); /* now held, or failed */
    if (cask__run_post(r, t, k, rc, local ? out : cask_none(), rel_tick(m, start),
                       rel_tick(m, end), text))
        return;
    if (local)
        m->have[t] = HAVE;
    m->tbytes[t] = bytes;
    m->owner[t] = k;
    set_held(m, t, k, 1);
    cask_run_complete(r, t, on_ready, m);
    m->n_done++;
    each_input(m, t, free_if_unused, NULL);
    if (streamed(m, t) && !cask_run_stopped(r)) {
        int zero = 0;
        if (local) /* handed over in cask__run_post: let go of it where unused */
            free_if_unused(m, t, NULL);
        else if (!held(m, t, 0)) /* bring it here now, to hand it over */
            order_input(m, t, &zero);
    }
}

/* A batch of reports from rank st->MPI_SOURCE. */
static void recv_done(mrun_t *m, const MPI_Status *st)
{
    receive(m, st);
    uint64_t n;
    memcpy(&n, m->in.p, sizeof n);
    const char *rec = m->in.p + sizeof n, *text = rec + n * sizeof(done_t);
    for (size_t i = 0; i < n; i++) {
        done_t d;
        memcpy(&d, rec + i * sizeof d, sizeof d);
        char msg[MSG] = "";
        if (d.rc) {
            memcpy(msg, text, MSG);
            msg[MSG - 1] = '\0';
            text += MSG;
        }
        finished(m, st->MPI_SOURCE, d.tid, d.rc, cask_none(), d.start, d.end, d.bytes, d.busy,
                 msg);
    }
}

/* --------------------------------------------------------- the loop */

typedef struct {
    int end, stop;
    stop_t why;
} outcome_t;

/* A batch of rank 0's orders, in the order given. */
static void handle_ctl(mrun_t *m, const MPI_Status *st, outcome_t *o)
{
    receive(m, st);
    for (size_t i = 0; i + sizeof(ctl_t) <= m->in.n; i += sizeof(ctl_t)) {
        ctl_t c;
        memcpy(&c, m->in.p + i, sizeof c);
        switch (c.op) {
        case OP_RUN: give(m, c.tid); break;
        case OP_SEND: send_value(m, c.tid, c.dest); break;
        case OP_FREE: drop(m, c.tid); break;
        case OP_END: o->end = 1; break;
        case OP_STOP:
            MPI_Recv(&o->why, sizeof o->why, MPI_BYTE, st->MPI_SOURCE, T_WHY, m->comm,
                     MPI_STATUS_IGNORE);
            o->stop = 1;
            break;
        }
    }
}

/* What this rank's compute thread finished: report it (to rank 0, or to
** the scheduling here). */
static int collect(mrun_t *m)
{
    pthread_mutex_lock(&m->mu);
    size_t k = m->n_ended;
    ended_t *e = m->ended;
    m->ended = e == m->ends[0] ? m->ends[1] : m->ends[0];
    m->n_ended = 0;
    pthread_mutex_unlock(&m->mu);
    if (!k)
        return 0;
    uint64_t count = k;
    char *rec = m->in.p + sizeof count, *text = rec + k * sizeof(done_t);
    for (size_t i = 0; i < k; i++) {
        uint64_t s = tick_rel(m, e[i].start), f = tick_rel(m, e[i].end);
        uint64_t bytes = cask__nbytes(&e[i].out);
        if (m->rank == 0) {
            finished(m, 0, e[i].tid, e[i].rc, e[i].out, s, f, bytes, e[i].busy, e[i].msg);
            continue;
        }
        done_t d = { e[i].tid, e[i].rc, s, f, bytes, e[i].busy };
        memcpy(rec + i * sizeof d, &d, sizeof d);
        if (e[i].rc) {
            memcpy(text, e[i].msg, MSG);
            text += MSG;
        } else {
            m->r->val[e[i].tid] = e[i].out;
            m->have[e[i].tid] = HAVE;
        }
    }
    if (m->rank) { /* one message for them all */
        memcpy(m->in.p, &count, sizeof count);
        MPI_Send(m->in.p, (int)(text - m->in.p), MPI_BYTE, 0, T_DONE, m->comm);
    }
    return (int)k;
}

/* One round of everything: messages, transfers, finished kernels. */
static int step(mrun_t *m, outcome_t *o)
{
    int moved = 0, flag = 1;
    MPI_Status st;
    while (flag && !o->end && !o->stop) {
        MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, m->comm, &flag, &st);
        if (!flag)
            break;
        moved++;
        if (st.MPI_TAG == T_CTL)
            handle_ctl(m, &st, o);
        else if (st.MPI_TAG == T_DONE)
            recv_done(m, &st);
        else if (st.MPI_TAG == T_HDR)
            recv_header(m, st.MPI_SOURCE);
        else
            break; /* a payload no receive was posted for: cannot happen */
    }
    moved += progress_xfers(m, m->recvs, &m->n_recvs, 1);
    moved += progress_xfers(m, m->sends, &m->n_sends, 0);
    moved += collect(m);
    return moved;
}

static void pause_for(int idle)
{
    if (idle < 64) {
        sched_yield();
        return;
    }
    long us = idle < 256 ? 20 : 200;
    struct timespec ts = { 0, us * 1000 };
    nanosleep(&ts, NULL);
}

static int busy_anywhere(const mrun_t *m)
{
    for (int k = 0; k < m->size; k++)
        if (m->inflight[k])
            return 1;
    return 0;
}

/* Rank 0: bring the outputs here (and to every rank with CASK_ALL_RANKS). */
static void gather_outputs(mrun_t *m, outcome_t *o, int all)
{
    cask_run_t *r = m->r;
    /* outputs handed over already and let go of are not gathered */
#define GONE(i) (r->delivered && r->delivered[i] && !all)
    for (size_t i = 0; i < r->p.n_out; i++) {
        int zero = 0;
        if (!GONE(i))
            order_input(m, r->p.out[i], &zero);
    }
    for (;;) {
        size_t have = 0, lost_here = 0;
        for (size_t i = 0; i < r->p.n_out; i++) {
            have += GONE(i) || m->have[r->p.out[i]] == HAVE;
            lost_here += !GONE(i) && m->have[r->p.out[i]] == LOST;
        }
        if (lost_here) {
            cask_error_t e;
            cask__err(&e, CASK_ENOMEM, NULL, NULL, "no memory on rank 0 for the outputs");
            cask__run_fail(r, &e);
            return;
        }
        if (have == r->p.n_out)
            break;
        flush(m);
        if (!step(m, o))
            pause_for(64);
    }
    if (all)
        for (int k = 1; k < m->size; k++)
            for (size_t i = 0; i < r->p.n_out; i++)
                order_input(m, r->p.out[i], &k);
#undef GONE
}

/* Rank 0's loop. Returns 1 when the run ended (END sent), 0 when it
** stopped (STOP sent with the error). */
static int schedule(mrun_t *m, int all)
{
    cask_run_t *r = m->r;
    outcome_t o = { 0 };
    size_t ns;
    const cask_tid_t *src = cask_run_sources(r, &ns);
    for (size_t i = 0; i < ns; i++)
        if (cask_readyq_push(&m->q, src[i]))
            m->failed = 1;
    int idle = 0;
    while (m->n_done < m->n) {
        if (m->failed && !cask_run_stopped(r)) {
            cask_error_t e;
            cask__err(&e, CASK_ENOMEM, NULL, NULL, "no memory to schedule on MPI ranks");
            cask__run_fail(r, &e);
        }
        if (cask_run_stopped(r) && !busy_anywhere(m))
            break;
        assign(m);
        flush(m);
        if (step(m, &o) || m->n_recvs || m->n_sends) /* payloads moving: keep polling */
            idle = 0;
        else
            pause_for(++idle);
    }
    if (!cask_run_stopped(r))
        gather_outputs(m, &o, all);
    if (m->rbytes) /* the peak: the most a rank held, by the given sizes */
        atomic_store(&r->peak, (size_t)m->rpeak);
    stop_t why = { 0 };
    if (cask_run_stopped(r)) {
        cask_error_t e = r->err;
        if (!atomic_load(&r->err_taken))
            cask__err(&e, CASK_ECANCELED, NULL, NULL, "the compute was cancelled");
        why.code = e.code;
        snprintf(why.key, sizeof why.key, "%s", e.key);
        snprintf(why.kernel, sizeof why.kernel, "%s", e.kernel);
        snprintf(why.message, sizeof why.message, "%s", e.message);
        for (int k = 1; k < m->size; k++) {
            ctl(m, k, OP_STOP, 0, 0);
            flush_to(m, k);
            MPI_Send(&why, sizeof why, MPI_BYTE, k, T_WHY, m->comm);
        }
        return 0;
    }
    for (int k = 1; k < m->size; k++)
        ctl(m, k, OP_END, 0, 0);
    flush(m);
    return 1;
}

/* The loop of the other ranks: serve rank 0's orders until END (returns 1)
** or STOP (returns 0, with the run's error recorded). */
static int serve(mrun_t *m, int all)
{
    outcome_t o = { 0 };
    int idle = 0;
    while (!o.end && !o.stop) {
        if (step(m, &o) || m->n_recvs || m->n_sends) /* payloads moving: keep polling */
            idle = 0;
        else
            pause_for(++idle);
    }
    cask_run_t *r = m->r;
    if (o.stop) {
        cask_error_t e;
        cask__err(&e, o.why.code, o.why.key[0] ? o.why.key : NULL,
                  o.why.kernel[0] ? o.why.kernel : NULL, "%s", o.why.message);
        cask__run_fail(r, &e);
        return 0;
    }
    /* the outputs this rank returns: all of them (sent before END, some may
    ** still be arriving), or none */
    drain_xfers(m);
    int missing = 0;
    for (size_t i = 0; i < r->p.n_out; i++) {
        uint32_t u = r->p.out[i];
        if (!all)
            drop(m, u);
        else
            missing |= m->have[u] != HAVE;
    }
    if (missing) {
        cask_error_t e;
        cask__err(&e, CASK_ENOMEM, NULL, NULL, "no memory on rank %d for the outputs", m->rank);
        cask__run_fail(r, &e);
    }
    atomic_store(&r->done, r->p.n);
    return 1;
}

/* The trace: rank 0's view, on every rank. */
static void share_trace(mrun_t *m)
{
    cask_run_t *r = m->r;
    size_t n = m->n;
    MPI_Bcast(m->worker, (int)n, MPI_INT32_T, 0, m->comm);
    MPI_Bcast(m->ns_start, (int)n, MPI_UINT64_T, 0, m->comm);
    MPI_Bcast(m->ns_end, (int)n, MPI_UINT64_T, 0, m->comm);
    MPI_Bcast(m->tbytes, (int)n, MPI_UINT64_T, 0, m->comm);
    /* every rank's transfers, on every rank, in this rank's clock */
    int mine = (int)m->n_moved, *counts = cask__malloc((size_t)m->size * 2 * sizeof *counts);
    if (counts) {
        MPI_Allgather(&mine, 1, MPI_INT, counts, 1, MPI_INT, m->comm);
        size_t total = 0;
        int *displs = counts + m->size;
        for (int k = 0; k < m->size; k++) {
            displs[k] = (int)(total * sizeof(cask__xfer_t));
            total += (size_t)counts[k];
            counts[k] *= (int)sizeof(cask__xfer_t);
        }
        cask__xfer_t *all = cask__malloc((total ? total : 1) * sizeof *all);
        int ok = all != NULL, every = 0; /* all ranks take part, or none */
        MPI_Allreduce(&ok, &every, 1, MPI_INT, MPI_MIN, m->comm);
        if (every)
            MPI_Allgatherv(m->moved, mine * (int)sizeof(cask__xfer_t), MPI_BYTE, all, counts,
                           displs, MPI_BYTE, m->comm);
        if (every && total) {
            for (size_t i = 0; i < total; i++) {
                all[i].start += m->base_ns;
                all[i].end += m->base_ns;
            }
            r->xfers = all;
            r->n_xfers = total;
            r->xfer_rows = m->size;
        } else {
            cask__free(all);
        }
        cask__free(counts);
    }
    if (m->rank == 0)
        return;
    for (size_t t = 0; t < n; t++) {
        r->t_worker[t] = m->worker[t];
        r->t_start[t] = rel_tick(m, m->ns_start[t]);
        r->t_end[t] = rel_tick(m, m->ns_end[t]);
        r->t_bytes[t] = m->tbytes[t];
        r->t_order[t] = (uint32_t)t;
    }
    atomic_store(&r->t_started, n);
}

/* A hash of the plan, so ranks that built different graphs find out. */
static uint64_t plan_hash(const cask_run_t *r, int all)
{
    uint64_t h = cask__mix(cask__mix(r->p.n, r->flags), (uint64_t)all);
    for (uint32_t t = 0; t < r->p.n; t++)
        h = cask__mix(h, cask__graph_key_hashes(r->g)[r->p.task[t]]);
    for (size_t i = 0; i < r->p.n_out; i++)
        h = cask__mix(h, r->p.out[i]);
    return cask__avalanche(h);
}

static void mrun_free(mrun_t *m)
{
    cask_readyq_destroy(&m->q);
    cask__free(m->have);
    cask__free(m->missing);
    cask__free(m->wait_head);
    cask__free(m->waiters);
    cask__free(m->stamp);
    cask__free(m->runq);
    cask__free(m->sends);
    cask__free(m->recvs);
    cask__free(m->moved);
    cask__free(m->in.p);
    for (int k = 0; m->outbox && k < m->size; k++)
        cask__free(m->outbox[k].p);
    cask__free(m->outbox);
    cask__free(m->hold);
    cask__free(m->tbytes);
    cask__free(m->owner);
    cask__free(m->inflight);
    cask__free(m->rbytes);
    cask__free(m->rres);
    cask__free(m->worker);
    cask__free(m->ns_start);
    cask__free(m->ns_end);
}

static int mpi_run(cask_run_t *r, void *udata, cask_error_t *err)
{
    (void)udata;
    pthread_mutex_lock(&mpi_lock);
    running_thread = pthread_self();
    atomic_store(&running_set, 1);
    int rc = mpi_start(err);
    if (rc) {
        atomic_store(&running_set, 0);
        pthread_mutex_unlock(&mpi_lock);
        return rc;
    }
    mrun_t m;
    memset(&m, 0, sizeof m);
    m.r = r;
    m.comm = world;
    m.n = r->p.n;
    MPI_Comm_rank(world, &m.rank);
    MPI_Comm_size(world, &m.size);
    int all = (r->flags & CASK_ALL_RANKS) != 0;
    const char *env = getenv("CASK_MPI_RESULTS");
    if (env && !strcmp(env, "all"))
        all = 1;
    m.all = all;
    r->keep_outputs = all;  /* outputs handed over on rank 0 still go to the others */
    r->outputs_here = m.rank == 0 || all;
    /* Do the ranks agree on the graph, and can each run its part? */
    uint64_t mine[3] = { plan_hash(r, all), 0, 0 }, lo[3], hi[3];
    size_t n = m.n ? m.n : 1;
    int trace = r->t_start != NULL;
    m.hw = ((size_t)m.size + 63) / 64;
    int ok = !cask__run_refuse_opaque(r, "to another rank", err) &&
             (m.have = cask__calloc(n, 1)) && (m.missing = cask__malloc(n * sizeof *m.missing)) &&
             (m.wait_head = cask__malloc(n * sizeof *m.wait_head)) &&
             (m.stamp = cask__calloc(n, sizeof *m.stamp)) &&
             (m.runq = cask__malloc(n * sizeof *m.runq)) &&
             (m.hold = cask__calloc(n * m.hw, sizeof *m.hold)) &&
             (m.tbytes = cask__calloc(n, sizeof *m.tbytes)) &&
             (m.owner = cask__calloc(n, sizeof *m.owner)) &&
             (m.inflight = cask__calloc((size_t)m.size, sizeof *m.inflight)) &&
             (!r->budget || ((m.rbytes = cask__calloc((size_t)m.size, sizeof *m.rbytes)) &&
                             (m.rres = cask__calloc((size_t)m.size, sizeof *m.rres)))) &&
             (m.outbox = cask__calloc((size_t)m.size, sizeof *m.outbox)) &&
             (m.in.p = cask__malloc(m.in.cap = BATCH)) &&
             (!trace || ((m.worker = cask__calloc(n, sizeof *m.worker)) &&
                         (m.ns_start = cask__calloc(n, sizeof *m.ns_start)) &&
                         (m.ns_end = cask__calloc(n, sizeof *m.ns_end))));
    mine[1] = !ok;           /* a rank that cannot run */
    mine[2] = ~mine[0];      /* max of ~h: ~min(h) */
    MPI_Allreduce(mine, hi, 3, MPI_UINT64_T, MPI_MAX, world);
    MPI_Allreduce(mine, lo, 3, MPI_UINT64_T, MPI_MIN, world);
    if (hi[1] || lo[0] != hi[0]) {
        if (ok || !err->code) {
            if (lo[0] != hi[0])
                cask__err(err, CASK_EINVAL, NULL, NULL,
                          "the ranks built different graphs or asked for different outputs "
                          "(every rank must build the same graph and compute the same outputs)");
            else
                cask__err(err, CASK_ENOMEM, NULL, NULL, "a rank could not start the compute");
        }
        mrun_free(&m);
        atomic_store(&running_set, 0);
        pthread_mutex_unlock(&mpi_lock);
        return err->code;
    }
    memset(m.missing, 0xff, n * sizeof *m.missing);
    memset(m.wait_head, 0xff, n * sizeof *m.wait_head);
    m.ended = m.ends[0];
    m.depth = MIN_DEPTH;
    m.busy_ns = LATENCY_NS / MIN_DEPTH;
    cask_readyq_init(&m.q, r);
    pthread_mutex_init(&m.mu, NULL);
    pthread_cond_init(&m.cv, NULL);
    cask__tick_rate(&m.conv);
    m.arena = node_arena(&m.node_rank);
    MPI_Barrier(world);
    m.base_ns = cask_now_ns();
    if (pthread_create(&m.th, NULL, compute_main, &m)) {
        /* the other ranks would wait for this one forever: end the job */
        fprintf(stderr, "cask: cannot start the compute thread on rank %d\n", m.rank);
        MPI_Abort(world, 1);
    }
    int ended = m.rank == 0 ? schedule(&m, all) : serve(&m, all);
    pthread_mutex_lock(&m.mu);
    m.quit = 1;
    pthread_cond_signal(&m.cv);
    pthread_mutex_unlock(&m.mu);
    pthread_join(m.th, NULL);
    drain_xfers(&m);
    if (trace && ended) /* every rank agrees on this: all ended, or all stopped */
        share_trace(&m);
    if (m.arena) {
        leave_arena(&m, ended);
        cask__shm_close(m.arena);
    }
    pthread_cond_destroy(&m.cv);
    pthread_mutex_destroy(&m.mu);
    mrun_free(&m);
    atomic_store(&running_set, 0);
    pthread_mutex_unlock(&mpi_lock);
    return 0;
}

const cask__backend_t cask__backend_mpi = { { "mpi", mpi_run, NULL, 0 }, mpi_size, NULL,
                                            true };

#else /* no MPI in this build */

int cask_mpi_rank(void)
{
    return 0;
}

static int no_run(cask_run_t *r, void *udata, cask_error_t *err)
{
    (void)r, (void)udata;
    return cask__err(err, CASK_ENOSCHED, NULL, NULL, "the mpi scheduler is not in this build");
}

const cask__backend_t cask__backend_mpi = {
    { "mpi", no_run, NULL, 0 }, NULL,
    "the mpi scheduler is not in this build: MPI (Debian's libopenmpi-dev) was not found "
    "when cask was built", false };

#endif

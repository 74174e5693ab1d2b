/*
** sched/shm.c: the shared arena of the processes scheduler.
**
** One memfd, mapped once by the parent before it forks its workers, so
** every process of a compute sees the arena at the same address: a value
** made in one worker is read in place by another (no copy, no fd passing),
** and its pointer means the same thing everywhere. The descriptor is
** closed as soon as the mapping exists; the file is sparse, so only the
** pages touched take memory, and they go when the last process unmaps
** them: nothing is left in /dev/shm, not even after a crash.
**
** The range is cut into slots. Slot 0 is the parent's (the shared state
** of the run); each worker process allocates only in its own slot, so
** allocation never waits on another process. A block freed by a process
** other than its owner goes on the slot's remote list, a lock-free stack
** the owner empties whole at its next allocation (taking the whole stack
** leaves no ABA problem). Freed blocks are kept by size and reused: on
** these machines touching fresh memory costs more than most kernels.
** A worker that dies leaves its slot behind; its replacement gets a new one.
**
** The mpi scheduler shares one arena among the ranks of a node the same
** way: the first rank makes the file, the others open it through /proc,
** and all map it at one address they agree on (cask__shm_map_fd); each
** rank's compute thread allocates in its own slot.
*/
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "shm.h"

#define PAGE     4096u
#define N_SMALL  5              /* blocks of 256 .. 4096 bytes */
#define LARGE    UINT32_MAX

typedef struct slot slot_t;

/* The header before every block; the block's user part follows it. */
typedef struct block {
    struct block *next;  /* free lists */
    slot_t  *home;       /* the slot it came from */
    size_t   size;       /* bytes, header included */
    uint32_t cls;        /* small class, or LARGE */
    uint32_t pad_[9];    /* 64 bytes, so what follows is 64-byte aligned */
} block_t;

/* A slot's header, at the start of its range. Only the owner's threads
** touch anything but remote. */
struct slot {
    _Atomic(block_t *) remote;   /* freed by other processes */
    pthread_mutex_t lock;        /* the owner's threads */
    char    *bump, *end;         /* fresh space */
    block_t *small[N_SMALL];     /* free small blocks by class */
    block_t *large;              /* free large blocks */
};

struct cask__shm {
    char  *base;        /* the mapping */
    size_t size;        /* its length */
    size_t slot_size;   /* bytes per slot */
    int    slots;       /* slots in all */
    int    used;        /* slots handed out (slot 0 included) */
};

_Static_assert(sizeof(block_t) == 64, "block header must be 64 bytes");
_Static_assert(sizeof(slot_t) <= PAGE, "slot header must fit a page");

static _Thread_local slot_t *mine;   /* the slot this thread allocates in */
static _Thread_local bool heap_when_full;

static void release(struct cask_blob *blob);

static slot_t *slot_at(const cask__shm_t *m, int i)
{
    return (slot_t *)(m->base + (size_t)i * m->slot_size);
}

int cask__shm_map_fd(cask__shm_t **out, int fd, size_t size, void *at, int slots,
                     cask_error_t *err)
{
    *out = NULL;
    cask__shm_t *m = cask__calloc(1, sizeof *m);
    if (!m)
        return cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for the shared arena");
    int flags = MAP_SHARED | MAP_NORESERVE | (at ? MAP_FIXED_NOREPLACE : 0);
    void *p = mmap(at, size, PROT_READ | PROT_WRITE, flags, fd, 0);
    if (p != MAP_FAILED && at && p != at) { /* a kernel that took it as a hint */
        munmap(p, size);
        p = MAP_FAILED;
        errno = EEXIST;
    }
    if (p == MAP_FAILED) {
        int e = errno;
        cask__free(m);
        return cask__err(err, CASK_EWORKER, NULL, NULL, "cannot map a shared arena: %s",
                         strerror(e));
    }
    m->base = p;
    m->size = size;
    m->slots = slots;
    if (cask__arena_free != release) /* before this process holds any arena block */
        cask__arena_free = release;
    m->slot_size = (size / (size_t)slots) & ~(size_t)(PAGE - 1);
    *out = m;
    return 0;
}

int cask__shm_memfd(cask_error_t *err)
{
    int fd = memfd_create("cask-arena", MFD_CLOEXEC);
    if (fd < 0)
        return -cask__err(err, CASK_EWORKER, NULL, NULL, "memfd_create: %s", strerror(errno));
    if (ftruncate(fd, (off_t)CASK__SHM_SIZE)) {
        int e = errno;
        close(fd);
        return -cask__err(err, CASK_EWORKER, NULL, NULL, "cannot size a shared arena: %s",
                          strerror(e));
    }
    return fd;
}

int cask__shm_open(cask__shm_t **out, int slots, cask_error_t *err)
{
    int fd = cask__shm_memfd(err);
    if (fd < 0)
        return -fd;
    /* As much address space as the system gives (ulimit -v and TSan give
    ** less), down to 64 GiB: the file is sparse, only touched pages cost. */
    size_t size = CASK__SHM_SIZE;
    int rc;
    while ((rc = cask__shm_map_fd(out, fd, size, NULL, slots, err)) == CASK_EWORKER &&
           size > ((size_t)1 << 36) && !ftruncate(fd, (off_t)(size / 4)))
        size /= 4;
    close(fd); /* the mapping keeps the file; nothing to leak */
    return rc;
}

void cask__shm_close(cask__shm_t *m)
{
    if (!m)
        return;
    munmap(m->base, m->size);
    cask__free(m);
}

int cask__shm_new_slot(cask__shm_t *m)
{
    if (m->used == m->slots)
        return -1;
    int i = m->used++;
    cask__shm_init_slot(m, i);
    return i;
}

void cask__shm_init_slot(cask__shm_t *m, int i)
{
    slot_t *s = slot_at(m, i);
    atomic_init(&s->remote, NULL);
    pthread_mutex_init(&s->lock, NULL); /* private: each process inits its own use */
    s->bump = (char *)s + PAGE;
    s->end = (char *)s + m->slot_size;
    memset(s->small, 0, sizeof s->small);
    s->large = NULL;
}

/* Class of a block of `need` bytes: 0 .. N_SMALL-1, or LARGE. */
static uint32_t class_of(size_t need, size_t *size)
{
    for (uint32_t c = 0; c < N_SMALL; c++)
        if (need <= (size_t)256 << c) {
            *size = (size_t)256 << c;
            return c;
        }
    *size = (need + PAGE - 1) & ~(size_t)(PAGE - 1);
    return LARGE;
}

static void put_free(slot_t *s, block_t *b)
{
    block_t **list = b->cls == LARGE ? &s->large : &s->small[b->cls];
    b->next = *list;
    *list = b;
}

/* A block of `need` bytes from s; lock held. */
static block_t *take(slot_t *s, size_t need)
{
    block_t *got = atomic_exchange_explicit(&s->remote, NULL, memory_order_acquire);
    while (got) {
        block_t *next = got->next;
        put_free(s, got);
        got = next;
    }
    size_t size;
    uint32_t cls = class_of(need, &size);
    block_t *b = NULL;
    if (cls != LARGE) {
        if ((b = s->small[cls]))
            s->small[cls] = b->next;
    } else {
        /* The same size (chunks of an array mostly are), else one at most
        ** a quarter larger. */
        block_t **best = NULL;
        for (block_t **p = &s->large; *p; p = &(*p)->next) {
            size_t have = (*p)->size;
            if (have == size) {
                best = p;
                break;
            }
            if (have > size && have - size <= size / 4 && (!best || have < (*best)->size))
                best = p;
        }
        if (best) {
            b = *best;
            *best = b->next;
        }
    }
    if (!b) {
        if ((size_t)(s->end - s->bump) < size)
            return NULL;
        b = (block_t *)s->bump;
        s->bump += size;
        b->size = size;
        b->cls = cls;
        b->home = s;
    }
    return b;
}

static void release(struct cask_blob *blob)
{
    block_t *b = (block_t *)blob - 1;
    slot_t *s = b->home;
    if (s == mine) {
        pthread_mutex_lock(&s->lock);
        put_free(s, b);
        pthread_mutex_unlock(&s->lock);
        return;
    }
    block_t *head = atomic_load_explicit(&s->remote, memory_order_relaxed);
    do
        b->next = head;
    while (!atomic_compare_exchange_weak_explicit(&s->remote, &head, b, memory_order_release,
                                                  memory_order_relaxed));
}

static struct cask_blob *alloc_blob(size_t bytes)
{
    block_t *b = NULL;
    if (bytes <= SIZE_MAX - sizeof(block_t) - PAGE) {
        pthread_mutex_lock(&mine->lock);
        b = take(mine, bytes + sizeof *b);
        pthread_mutex_unlock(&mine->lock);
    }
    if (!b) {
        struct cask_blob *h = heap_when_full ? cask__malloc(bytes) : NULL;
        if (h)
            h->in_arena = false;
        return h;
    }
    struct cask_blob *blob = (struct cask_blob *)(b + 1);
    blob->in_arena = true;
    return blob;
}

void cask__shm_enter(cask__shm_t *m, int slot, bool heap_when_full_)
{
    pthread_mutex_init(&slot_at(m, slot)->lock, NULL);
    cask__shm_use(m, slot);
    heap_when_full = heap_when_full_;
}

void cask__shm_use(cask__shm_t *m, int slot)
{
    mine = slot_at(m, slot);
    heap_when_full = false;
    cask__blob_alloc = alloc_blob;
}

void cask__shm_leave(void)
{
    mine = NULL;
    cask__blob_alloc = NULL;
}

void *cask__shm_parent_alloc(cask__shm_t *m, size_t bytes)
{
    slot_t *s = slot_at(m, 0);
    size_t size = (bytes + 63) & ~(size_t)63;
    if (size < bytes || (size_t)(s->end - s->bump) < size)
        return NULL;
    void *p = s->bump;
    s->bump += size;
    return p;
}

void *cask__shm_alloc(cask__shm_t *m, size_t bytes)
{
    slot_t *s = slot_at(m, 0);
    block_t *b = NULL;
    if (bytes <= SIZE_MAX - sizeof(block_t) - PAGE) {
        pthread_mutex_lock(&s->lock);
        b = take(s, bytes + sizeof *b);
        pthread_mutex_unlock(&s->lock);
    }
    return b ? b + 1 : NULL;
}

void cask__shm_free(void *p)
{
    if (p)
        release((struct cask_blob *)p);
}

bool cask__shm_holds(const cask__shm_t *m, const cask_value_t *v)
{
    if (!cask__has_blob(v))
        return true; /* inline: travels as is */
    const char *p = (const char *)v->u.blob;
    return v->u.blob->in_arena && p >= m->base && p < m->base + m->size;
}

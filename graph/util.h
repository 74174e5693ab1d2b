/*
** graph/util.h: what every part of the library uses: allocation (with a
** failure hook for tests), errors, hashing and the clock. The bottom of
** the layers (graph, then sched, then collections and viz, then cli):
** anything may include it. Not public API: nothing here is exported.
*/
#ifndef CASK__UTIL_H
#define CASK__UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "cask/cask.h"

/* ------------------------------------------------------------ allocation */

/* All of cask's heap goes through these, so tests can inject failures. */
void *cask__malloc(size_t n);
void *cask__calloc(size_t n, size_t size);
void *cask__realloc(void *p, size_t n);
void  cask__free(void *p);
char *cask__strdup(const char *s);
/* Grow *p (of *cap elements of size sz) to hold at least need; 0 or CASK_ENOMEM. */
int   cask__grow(void **p, size_t *cap, size_t need, size_t sz);
/* The arrays of a compute (its plan, order and run: a few per task), which
** every compute makes anew, and the regions of files its tasks read. Freed
** big blocks are kept for the next use (at most 32 blocks, 256 MB while a
** compute runs, 64 MB once none does: cask__big_trim), because fresh memory
** costs a page fault per 4 KB at its first touch: half of planning a graph
** of tiny tasks, and two thirds of the time reducing a file read in 64 MB
** blocks. A block from cask__big_* is freed by cask__big_free only. */
void *cask__big_malloc(size_t n);
void *cask__big_calloc(size_t n, size_t size);
void  cask__big_free(void *p);
/* Free kept blocks until at most `keep` bytes are kept. */
void  cask__big_trim(size_t keep);
/* Tests only: make the nth allocation from now fail (n >= 1); 0 turns it off.
** Returns the number of allocations made since the last call. */
long  cask__alloc_fail_at(long n);

/* ---------------------------------------------------------------- errors */

/* Fill err (if not NULL) and return code. key and kernel may be NULL. */
int cask__err(cask_error_t *err, int code, const char *key,
              const char *kernel, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;

/* ----------------------------------------------------------------- files */

/* What the *_save functions do: open path for writing (created or
** truncated), run write(f, obj, opts, err), close. 0, write's error, or
** CASK_EIO naming the path (it cannot be opened, or closing it fails). */
typedef int (*cask__writer_fn)(FILE *f, const void *obj, const void *opts, cask_error_t *err);
/* pread / pwrite n bytes at offset off, through EINTR and short counts.
** Returns the bytes done: n, or fewer with errno set (0 for a read: the
** file ended first). */
size_t cask__pread_all(int fd, void *p, size_t n, off_t off);
size_t cask__pwrite_all(int fd, const void *p, size_t n, off_t off);
/* A new file beside path (path.PID.N.part: the same directory, so renaming
** it replaces path), opened for writing; its name in tmp[0..cap). The
** descriptor, or -1 with errno set. */
int cask__open_beside(const char *path, char *tmp, size_t cap);
int cask__save(const char *path, cask__writer_fn write, const void *obj, const void *opts,
               cask_error_t *err);

/* -------------------------------------------------------------- hashing */

uint64_t cask__hash(const void *p, size_t n, uint64_t seed);
/* Fold p[0..n) into the 128-bit hash h (two lanes of cask__hash, seeded
** apart): what a cache key is made of. */
static inline void cask__hash2(const void *p, size_t n, uint64_t h[2])
{
    h[0] = cask__hash(p, n, h[0]);
    h[1] = cask__hash(p, n, h[1] ^ 0x9e3779b97f4a7c15ull);
}
/* Fold v into h (cheap; finish with cask__avalanche before use as a hash). */
/* Mix the identity of the file at path as it is now (device, inode, size,
** modification time) into h: what a cache key of a task that reads it
** holds. 0, or -1 when it cannot be looked at. */
int cask__hash_file_id(const char *path, uint64_t h[2]);

static inline uint64_t cask__mix(uint64_t h, uint64_t v)
{
    h = (h ^ v) * 0x9e3779b97f4a7c15ull;
    return h ^ (h >> 29);
}
/* Spread every input bit over the whole word. */
static inline uint64_t cask__avalanche(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 33);
}
/* ----------------------------------------------------------------- clock */

/* Ticks: a cheap monotonic counter (graph/clock.c): the x86 time-stamp
** counter where it is invariant, else monotonic ns; convert with a
** tickconv. cask_now_ns() (cask/sched.h) is the monotonic clock in ns. */
void cask__clock_init(void);
uint64_t cask__tick(void);
typedef struct cask__tickconv {
    uint64_t tick0, ns0;  /* a tick and the monotonic ns it was taken at */
    double ns_per_tick;   /* the rate between them and now */
} cask__tickconv_t;
void cask__tick_rate(cask__tickconv_t *c);
static inline uint64_t cask__tick_ns(const cask__tickconv_t *c, uint64_t tick)
{
    return c->ns0 + (uint64_t)((double)(int64_t)(tick - c->tick0) * c->ns_per_tick);
}

#endif /* CASK__UTIL_H */

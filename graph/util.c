/*
** graph/util.c: allocation (with a failure hook for tests), errors,
** hashing and the version.
*/
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

/* Allocation counter and the failure point; 0 means "never fail". */
static atomic_long alloc_count;
static atomic_long alloc_fail_point;

/* Count an allocation; true when this one must fail (tests only). */
static int should_fail(void)
{
    long at = atomic_load_explicit(&alloc_fail_point, memory_order_relaxed);
    if (at == 0)
        return 0;
    return atomic_fetch_add(&alloc_count, 1) + 1 == at;
}

long cask__alloc_fail_at(long n)
{
    long made = atomic_exchange(&alloc_count, 0);
    atomic_store(&alloc_fail_point, n);
    return made;
}

void *cask__malloc(size_t n)
{
    return should_fail() ? NULL : malloc(n ? n : 1);
}

void *cask__calloc(size_t n, size_t size)
{
    return should_fail() ? NULL : calloc(n ? n : 1, size ? size : 1);
}

void *cask__realloc(void *p, size_t n)
{
    return should_fail() ? NULL : realloc(p, n ? n : 1);
}

void cask__free(void *p)
{
    free(p);
}

/* Big blocks carry their capacity before them (16 bytes, so the block
** keeps malloc's alignment). Blocks of BIG_MIN bytes or more are kept
** when freed (up to BIG_KEEP blocks, BIG_BYTES in all), and a request takes
** the smallest kept block that holds it unless that block is over twice the
** size asked for. */
#define BIG_MIN   ((size_t)64 << 10)
#define BIG_KEEP  32
#define BIG_BYTES ((size_t)256 << 20)

typedef struct bighdr {
    size_t cap, pad;
} bighdr_t;

static pthread_mutex_t big_lock = PTHREAD_MUTEX_INITIALIZER;
static bighdr_t *big_kept[BIG_KEEP];
static size_t big_nkept, big_bytes;
static pthread_once_t big_once = PTHREAD_ONCE_INIT;

/* A process forked while another thread holds the lock (the processes
** scheduler's workers) gets it free. */
static void big_prepare(void) { pthread_mutex_lock(&big_lock); }
static void big_release(void) { pthread_mutex_unlock(&big_lock); }
static void big_init(void) { pthread_atfork(big_prepare, big_release, big_release); }

static void big_enter(void)
{
    pthread_once(&big_once, big_init);
    pthread_mutex_lock(&big_lock);
}

void *cask__big_malloc(size_t n)
{
    if (should_fail() || n > SIZE_MAX - sizeof(bighdr_t))
        return NULL;
    n = n ? n : 1;
    bighdr_t *h = NULL;
    if (n >= BIG_MIN) {
        big_enter();
        size_t best = BIG_KEEP;
        for (size_t i = 0; i < big_nkept; i++)
            if (big_kept[i]->cap >= n && big_kept[i]->cap / 2 <= n &&
                (best == BIG_KEEP || big_kept[i]->cap < big_kept[best]->cap))
                best = i;
        if (best != BIG_KEEP) {
            h = big_kept[best];
            big_kept[best] = big_kept[--big_nkept];
            big_bytes -= h->cap;
        }
        pthread_mutex_unlock(&big_lock);
    }
    if (!h && (h = malloc(sizeof *h + n)))
        h->cap = n;
    return h ? h + 1 : NULL;
}

void *cask__big_calloc(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    void *p = cask__big_malloc(n * size);
    if (p)
        memset(p, 0, n * size);
    return p;
}

void cask__big_free(void *p)
{
    if (!p)
        return;
    bighdr_t *h = (bighdr_t *)p - 1;
    if (h->cap >= BIG_MIN) {
        big_enter();
        int kept = big_nkept < BIG_KEEP && big_bytes + h->cap <= BIG_BYTES;
        if (kept) {
            big_kept[big_nkept++] = h;
            big_bytes += h->cap;
        }
        pthread_mutex_unlock(&big_lock);
        if (kept)
            return;
    }
    free(h);
}

void cask__big_trim(size_t keep)
{
    bighdr_t *drop[BIG_KEEP];
    size_t n = 0;
    big_enter();
    while (big_nkept && big_bytes > keep) { /* the largest go first */
        size_t b = 0;
        for (size_t i = 1; i < big_nkept; i++)
            if (big_kept[i]->cap > big_kept[b]->cap)
                b = i;
        big_bytes -= big_kept[b]->cap;
        drop[n++] = big_kept[b];
        big_kept[b] = big_kept[--big_nkept];
    }
    pthread_mutex_unlock(&big_lock);
    for (size_t i = 0; i < n; i++)
        free(drop[i]);
}

char *cask__strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = cask__malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

/* Grow an array geometrically (x1.5, at least 16) so appends are O(1)
** amortised; the old block stays valid on failure. */
int cask__grow(void **p, size_t *cap, size_t need, size_t sz)
{
    if (need <= *cap)
        return 0;
    size_t nc = *cap < 16 ? 16 : *cap + *cap / 2;
    if (nc < need)
        nc = need;
    if (nc > SIZE_MAX / sz)
        return CASK_ENOMEM;
    void *q = cask__realloc(*p, nc * sz);
    if (!q)
        return CASK_ENOMEM;
    *p = q;
    *cap = nc;
    return 0;
}

/* ----------------------------------------------------------------- files */

size_t cask__pread_all(int fd, void *p, size_t n, off_t off)
{
    size_t done = 0;
    errno = 0;
    while (done < n) {
        ssize_t m = pread(fd, (char *)p + done, n - done, off + (off_t)done);
        if (m < 0 && errno == EINTR)
            continue;
        if (m <= 0)
            break;
        done += (size_t)m;
    }
    return done;
}

size_t cask__pwrite_all(int fd, const void *p, size_t n, off_t off)
{
    size_t done = 0;
    errno = 0;
    while (done < n) {
        ssize_t m = pwrite(fd, (const char *)p + done, n - done, off + (off_t)done);
        if (m < 0 && errno == EINTR)
            continue;
        if (m <= 0) {
            errno = m ? errno : EIO;
            break;
        }
        done += (size_t)m;
    }
    return done;
}

int cask__open_beside(const char *path, char *tmp, size_t cap)
{
    static atomic_uint seq;
    for (int tries = 0; tries < 100; tries++) {
        if (snprintf(tmp, cap, "%s.%ld.%u.part", path, (long)getpid(),
                     atomic_fetch_add(&seq, 1)) >= (int)cap) {
            errno = ENAMETOOLONG;
            return -1;
        }
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0 || errno != EEXIST)
            return fd;
    }
    return -1;
}

int cask__save(const char *path, cask__writer_fn write, const void *obj, const void *opts,
               cask_error_t *err)
{
    FILE *f = path ? fopen(path, "w") : NULL;
    if (!f)
        return cask__err(err, CASK_EIO, NULL, NULL, "cannot open '%s': %s",
                         path ? path : "(null)", strerror(errno));
    int rc = write(f, obj, opts, err);
    if (fclose(f) && !rc)
        rc = cask__err(err, CASK_EIO, NULL, NULL, "cannot write '%s': %s", path, strerror(errno));
    return rc;
}

/* ---------------------------------------------------------------- errors */

const char *cask_strerror(int code)
{
    switch (code) {
#define XX(name, val, text) case CASK_##name: return text;
        CASK_ERRNO_MAP(XX)
#undef XX
    case 0: return "success";
    }
    return "unknown error";
}

const char *cask_err_name(int code)
{
    switch (code) {
#define XX(name, val, text) case CASK_##name: return #name;
        CASK_ERRNO_MAP(XX)
#undef XX
    case 0: return "OK";
    }
    return "EUNKNOWN";
}

void cask_error_clear(cask_error_t *err)
{
    if (!err)
        return;
    err->code = 0;
    err->signal = 0;
    err->key[0] = err->kernel[0] = err->message[0] = '\0';
}

int cask__err(cask_error_t *err, int code, const char *key, const char *kernel,
              const char *fmt, ...)
{
    if (!err)
        return code;
    err->code = code;
    err->signal = 0;
    snprintf(err->key, sizeof err->key, "%s", key ? key : "");
    snprintf(err->kernel, sizeof err->kernel, "%s", kernel ? kernel : "");
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    } else {
        snprintf(err->message, sizeof err->message, "%s", cask_strerror(code));
    }
    return code;
}

/* ---------------------------------------------------------------- hashing */

/* A 64-bit hash of n bytes: 8 bytes at a time through a multiply-rotate
** step, then a final avalanche. Deterministic across processes and runs,
** which keys depend on. */
uint64_t cask__hash(const void *p, size_t n, uint64_t seed)
{
    const unsigned char *s = p;
    uint64_t h = seed ^ (n * 0x9e3779b97f4a7c15ull);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        w *= 0x87c37b91114253d5ull;
        w = (w << 31) | (w >> 33);
        h ^= w * 0x4cf5ad432745937full;
        h = ((h << 27) | (h >> 37)) * 5 + 0x52dce729;
        s += 8;
        n -= 8;
    }
    if (n) { /* the last 1..7 bytes, as one little-endian word */
        uint64_t t = 0;
        if (n >= 4) {
            uint32_t a, b;
            memcpy(&a, s, 4);
            memcpy(&b, s + n - 4, 4);
            t = (uint64_t)a << 32 | b; /* together they hold every byte */
        } else {
            t = (uint64_t)s[0] | (uint64_t)s[n / 2] << 8 | (uint64_t)s[n - 1] << 16;
        }
        h ^= t * 0x87c37b91114253d5ull;
    }
    return cask__avalanche(h);
}

/* ---------------------------------------------------------------- version */

int cask_version_number(void)
{
    return CASK_VERSION_NUMBER;
}

const char *cask_version(void)
{
    return CASK_VERSION;
}

int cask__hash_file_id(const char *path, uint64_t h[2])
{
    struct stat st;
    if (stat(path, &st))
        return -1;
    uint64_t id[5] = { (uint64_t)st.st_dev, (uint64_t)st.st_ino, (uint64_t)st.st_size,
                       (uint64_t)st.st_mtim.tv_sec, (uint64_t)st.st_mtim.tv_nsec };
    cask__hash2(id, sizeof id, h);
    return 0;
}

/*
** collections/array_npy.c: arrays to and from NumPy .npy files (format
** versions 1.0 to 3.0; little-endian float64, float32, int64 and bool; C
** order). The header is a Python dict literal; only the three keys NumPy
** writes are read, and anything else is refused with the reason.
*/
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "array.h"

static const char *const descrs[] = { "<f8", "<f4", "<i8", "|b1" };

/* Writing blocks into their places in a .npy file (cask_array_save_npy). */
typedef struct save {
    int fd;
    int64_t data;           /* the data's offset in the file */
    size_t es;              /* bytes per element */
    const int64_t *shape;
    int ndim;
    pthread_mutex_t lock;
    int err;                /* the first write's errno, or 0 */
} save_t;

typedef struct save_run {
    const save_t *w;
    const unsigned char *src; /* the next run's elements */
} save_run_t;

static int write_run(void *ctx, int64_t flat, int64_t n)
{
    save_run_t *r = ctx;
    size_t want = (size_t)n * r->w->es;
    off_t at = (off_t)(r->w->data + flat * (int64_t)r->w->es);
    if (cask__pwrite_all(r->w->fd, r->src, want, at) < want)
        return errno;
    r->src += want;
    return 0;
}

static int save_block(void *udata, const int64_t *start, const int64_t *shape, const void *data)
{
    save_t *w = udata;
    save_run_t r = { w, data };
    int e = cask__ar_block_runs(w->ndim, w->shape, start, shape, write_run, &r);
    if (!e)
        return 0;
    pthread_mutex_lock(&w->lock);
    if (!w->err)
        w->err = e;
    pthread_mutex_unlock(&w->lock);
    return CASK_EIO;
}

int cask_array_save_npy(cask_array_t *a, const char *path, const cask_compute_opts_t *opts,
                        cask_error_t *err)
{
    if (!a || !path)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "save_npy needs an array and a path");
    cask_dtype_t dt = cask_array_dtype(a);
    int ndim = cask_array_ndim(a);
    const int64_t *shape = cask_array_shape(a);
    size_t bytes = cask_array_size(a) * cask_dtype_size(dt);
    /* The header: the magic, the version, the dict's length, the dict,
    ** padded with spaces and a newline so data starts at a multiple of 64
    ** bytes, as NumPy writes it. */
    char head[128 + CASK_MAX_NDIM * 24];
    int n = snprintf(head + 10, sizeof head - 10,
                     "{'descr': '%s', 'fortran_order': False, 'shape': (", descrs[dt]);
    for (int x = 0; x < ndim; x++)
        n += snprintf(head + 10 + n, sizeof head - 10 - (size_t)n, "%lld,%s",
                      (long long)shape[x], x + 1 < ndim ? " " : "");
    if (ndim > 1) /* (3, 4) not (3, 4,) */
        n--;
    n += snprintf(head + 10 + n, sizeof head - 10 - (size_t)n, "), }");
    size_t total = 10 + (size_t)n + 1, pad = (64 - total % 64) % 64;
    memset(head + 10 + n, ' ', pad);
    head[total + pad - 1] = '\n';
    unsigned hl = (unsigned)((size_t)n + pad + 1);
    memcpy(head, (unsigned char[]){ 0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hl & 0xff),
                                    (unsigned char)(hl >> 8) }, 10);
    /* Blocks go into a new file beside path as they are made; the file
    ** takes path's name only once every block is in it. */
    char tmp[PATH_MAX + 64];
    int fd = cask__open_beside(path, tmp, sizeof tmp);
    if (fd < 0)
        return cask__err(err, CASK_EIO, NULL, NULL, "cannot write %s: %s", path, strerror(errno));
    save_t w = { .fd = fd, .data = (int64_t)(total + pad), .es = cask_dtype_size(dt),
                 .shape = shape, .ndim = ndim };
    pthread_mutex_init(&w.lock, NULL);
    int rc = 0;
    if (cask__pwrite_all(fd, head, total + pad, 0) < total + pad ||
        ftruncate(fd, (off_t)(total + pad + bytes))) {
        rc = cask__err(err, CASK_EIO, NULL, NULL, "cannot write %s: %s", tmp, strerror(errno));
    } else if ((rc = cask_array_compute_blocks(a, opts, save_block, &w, NULL, err))) {
        if (w.err)
            cask__err(err, CASK_EIO, NULL, NULL, "cannot write %s: %s", tmp, strerror(w.err));
    }
    if (close(fd) && !rc)
        rc = cask__err(err, CASK_EIO, NULL, NULL, "cannot write %s: %s", tmp, strerror(errno));
    if (!rc && rename(tmp, path))
        rc = cask__err(err, CASK_EIO, NULL, NULL, "cannot rename %s to %s: %s", tmp, path,
                       strerror(errno));
    if (rc)
        unlink(tmp);
    pthread_mutex_destroy(&w.lock);
    return rc;
}

/* The value of key in a header dict, or NULL: where it starts. */
static const char *dict_value(const char *dict, const char *key)
{
    char k[32];
    snprintf(k, sizeof k, "'%s'", key);
    const char *p = strstr(dict, k);
    if (!p)
        return NULL;
    p += strlen(k);
    while (*p == ' ')
        p++;
    if (*p++ != ':')
        return NULL;
    while (*p == ' ')
        p++;
    return p;
}

/* Parse the header dict: dtype, ndim, shape; 0 or CASK_EPARSE. */
static int parse_dict(const char *dict, const char *path, cask_dtype_t *dt, int *ndim,
                      int64_t *shape, cask_error_t *err)
{
    const char *d = dict_value(dict, "descr"), *fo = dict_value(dict, "fortran_order");
    const char *sh = dict_value(dict, "shape");
    if (!d || !fo || !sh || *d != '\'' || *sh != '(')
        return cask__err(err, CASK_EPARSE, NULL, NULL,
                         "%s: the header lacks 'descr', 'fortran_order' or 'shape'", path);
    char descr[16];
    size_t len = strcspn(d + 1, "'");
    if (len >= sizeof descr || d[1 + len] != '\'')
        return cask__err(err, CASK_EPARSE, NULL, NULL, "%s: a bad 'descr'", path);
    memcpy(descr, d + 1, len);
    descr[len] = '\0';
    if (!strcmp(descr, "<b1")) /* NumPy writes |b1; accept the other spelling */
        strcpy(descr, "|b1");
    int found = -1;
    for (int i = 0; i < 4; i++)
        if (!strcmp(descr, descrs[i]))
            found = i;
    if (found < 0)
        return cask__err(err, CASK_ETYPE, NULL, NULL,
                         "%s: dtype '%s' is not one cask reads (<f8, <f4, <i8, |b1)", path,
                         descr);
    *dt = (cask_dtype_t)found;
    if (!strncmp(fo, "True", 4))
        return cask__err(err, CASK_EPARSE, NULL, NULL,
                         "%s: Fortran order; cask reads C order only", path);
    if (strncmp(fo, "False", 5))
        return cask__err(err, CASK_EPARSE, NULL, NULL, "%s: a bad 'fortran_order'", path);
    *ndim = 0;
    const char *p = sh + 1;
    for (;;) {
        while (*p == ' ' || *p == ',')
            p++;
        if (*p == ')')
            break;
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || errno || v < 0 || *ndim == CASK_MAX_NDIM)
            return cask__err(err, CASK_EPARSE, NULL, NULL,
                             "%s: a bad 'shape' (extents >= 0, at most %d axes)", path,
                             CASK_MAX_NDIM);
        shape[(*ndim)++] = v;
        p = end;
        if (*p != ',' && *p != ')' && *p != ' ')
            return cask__err(err, CASK_EPARSE, NULL, NULL, "%s: a bad 'shape'", path);
    }
    return 0;
}

/* What a .npy file's header says, and where its data starts. */
typedef struct {
    cask_dtype_t dtype;
    int ndim;
    int64_t shape[CASK_MAX_NDIM];
    size_t bytes;        /* of data */
    uint64_t offset;     /* of the data in the file */
    uint64_t file_size;  /* of a regular file; 0 for another kind */
} npy_head_t;

/* Read f's header into *h and check the file holds all the data: 0, or
** CASK_EPARSE / CASK_ETYPE naming path. */
static int read_head(FILE *f, const char *path, npy_head_t *h, cask_error_t *err)
{
    unsigned char pre[12];
    char *dict = NULL;
    int rc = 0;
    if (fread(pre, 1, 8, f) != 8 || memcmp(pre, "\x93NUMPY", 6) || pre[6] < 1 || pre[6] > 3)
        return cask__err(err, CASK_EPARSE, NULL, NULL, "%s: not a .npy file (version 1 to 3)",
                         path);
    size_t hl, lb = pre[6] == 1 ? 2 : 4;
    if (fread(pre + 8, 1, lb, f) != lb)
        return cask__err(err, CASK_EPARSE, NULL, NULL, "%s: the header is cut short", path);
    hl = lb == 2 ? (size_t)pre[8] | (size_t)pre[9] << 8
                 : (size_t)pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 |
                       (size_t)pre[11] << 24;
    if (hl > 1 << 20 || !(dict = cask__malloc(hl + 1)) || fread(dict, 1, hl, f) != hl) {
        rc = cask__err(err, CASK_EPARSE, NULL, NULL, "%s: the header is cut short or too long",
                       path);
        goto out;
    }
    dict[hl] = '\0';
    if ((rc = parse_dict(dict, path, &h->dtype, &h->ndim, h->shape, err)))
        goto out;
    double elems = 1;
    for (int x = 0; x < h->ndim; x++)
        elems *= (double)h->shape[x];
    if (elems * (double)cask_dtype_size(h->dtype) > (double)(SIZE_MAX / 4)) {
        rc = cask__err(err, CASK_EPARSE, NULL, NULL, "%s: shape too large", path);
        goto out;
    }
    h->bytes = (size_t)elems * cask_dtype_size(h->dtype);
    h->offset = 8 + lb + hl;
    struct stat st;
    h->file_size = !fstat(fileno(f), &st) && S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
    if (h->file_size && h->file_size - h->offset < h->bytes) /* before asking for the memory */
        rc = cask__err(err, CASK_EPARSE, NULL, NULL, "%s: %llu bytes of data, %zu expected", path,
                       (unsigned long long)(h->file_size - h->offset), h->bytes);
out:
    cask__free(dict);
    return rc;
}

/* The regular file at path opened to read without blocking (a FIFO
** is refused, not waited on), its size in *size; or -1 with errno set
** (EINVAL: not a regular file). */
static int open_regular(const char *path, off_t *size)
{
    struct stat st;
    if (stat(path, &st)) /* nothing but regular files is opened: devices have side effects */
        return -1;
    if (!S_ISREG(st.st_mode))
        return errno = EINVAL, -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd >= 0 && (fstat(fd, &st) || !S_ISREG(st.st_mode))) { /* replaced meanwhile */
        close(fd);
        return errno = EINVAL, -1;
    }
    *size = st.st_size;
    return fd;
}

/* path opened and its header read into *h: the file, at its data; or
** NULL with err filled (what: the caller's name). regular: refuse what is
** not a regular file, without opening it. */
static FILE *open_head(const cask_graph_t *g, const char *path, const char *what, bool regular,
                       npy_head_t *h, cask_error_t *err)
{
    if (!g || !path)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "%s needs a graph and a path", what),
               NULL;
    FILE *f = NULL;
    off_t size;
    int fd = -1;
    if (!regular)
        f = fopen(path, "rb");
    else if ((fd = open_regular(path, &size)) >= 0 && !(f = fdopen(fd, "rb")))
        close(fd);
    if (!f && regular && errno == EINVAL)
        return cask__err(err, CASK_EIO, NULL, NULL, "%s: not a regular file", path), NULL;
    if (!f)
        return cask__err(err, CASK_EIO, NULL, NULL, "cannot read %s: %s", path,
                         strerror(errno)), NULL;
    if (read_head(f, path, h, err)) {
        fclose(f);
        return NULL;
    }
    return f;
}

cask_array_t *cask_array_load_npy(cask_graph_t *g, const char *path, const int64_t *chunks,
                                  cask_error_t *err)
{
    npy_head_t h;
    FILE *f = open_head(g, path, "load_npy", false, &h, err);
    if (!f)
        return NULL;
    cask_array_t *a = NULL;
    void *data = NULL;
    if (!(data = cask__malloc(h.bytes ? h.bytes : 1))) {
        cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for %zu bytes of %s", h.bytes, path);
        goto out;
    }
    size_t got = h.bytes ? fread(data, 1, h.bytes, f) : 0, bad;
    if (got != h.bytes) {
        cask__err(err, CASK_EPARSE, NULL, NULL, "%s: %zu bytes of data, %zu expected", path,
                  got, h.bytes);
        goto out;
    }
    if (h.dtype == CASK_BOOL && (bad = cask__ar_bad_bool(data, h.bytes)) < h.bytes) {
        cask__err(err, CASK_EPARSE, NULL, NULL, "%s: bool element %zu is %u", path, bad,
                  ((unsigned char *)data)[bad]);
        goto out;
    }
    a = cask_array_from_buffer(g, h.dtype, h.ndim, h.shape, chunks, data, CASK_ARRAY_COPY, err);
out:
    fclose(f);
    cask__free(data);
    return a;
}

/* ------------------------------------------------------------ lazy reads */

/* Reading a box's runs from a file (cask__ar_block_runs). */
typedef struct read_ctx {
    const ar_fview_t *v;
    unsigned char *dst;     /* where the next run goes */
    cask_kctx_t *kctx;
} read_ctx_t;

static atomic_long read_count, read_end_point;

void cask__ar_read_end_at(long n)
{
    atomic_store(&read_count, 0);
    atomic_store(&read_end_point, n);
}

static int read_run(void *ctx, int64_t flat, int64_t n)
{
    read_ctx_t *c = ctx;
    const ar_fview_t *v = c->v;
    size_t want = (size_t)n * v->es;
    off_t at = (off_t)(v->base + flat * (int64_t)v->es);
    long end = atomic_load_explicit(&read_end_point, memory_order_relaxed);
    size_t got = end && atomic_fetch_add(&read_count, 1) + 1 == end
                     ? (errno = 0, 0) /* a test's: the file ends here */
                     : cask__pread_all(v->fd, c->dst, want, at);
    if (got < want)
        return cask_kernel_fail(c->kctx, "%s: %s at byte %lld", v->path,
                                errno ? strerror(errno) : "the file ends", (long long)(at + (off_t)got));
    size_t bad;
    if (v->bools && (bad = cask__ar_bad_bool(c->dst, want)) < want)
        return v->dataset ? cask_kernel_fail(c->kctx, "%s: dataset '%s' has a bool of value %u",
                                             v->path, v->dataset, c->dst[bad])
                          : cask_kernel_fail(c->kctx, "%s: bool element %lld is %u", v->path,
                                             (long long)(flat + (int64_t)bad), c->dst[bad]);
    c->dst += want;
    return 0;
}

int cask__ar_fview_read(const ar_fview_t *v, int64_t r, int64_t k, void *dst, cask_kctx_t *ctx)
{
    int64_t at[CASK_MAX_NDIM], n[CASK_MAX_NDIM];
    memcpy(at, v->at, sizeof at);
    memcpy(n, v->n, sizeof n);
    if (v->ndim)
        at[0] += r, n[0] = k;
    read_ctx_t rd = { v, dst, ctx };
    return cask__ar_block_runs(v->ndim, v->in, at, n, read_run, &rd);
}

/*
** A file leaf's region (N_FILE, F_NPY): each task that evaluates one opens
** it here, then reads it (cask__ar_fview_read) whole or a window at a time.
** The box lo .. lo + n of the array (dtype, shape) a .npy file holds at
** the description's data offset. The file must still be a regular file as
** long as when it was opened, or the open fails cleanly naming it.
*/
int cask__ar_npy_view(const cask_value_t *desc, cask_dtype_t dtype, int ndim,
                      const int64_t *shape, const int64_t *lo, const int64_t *n, ar_fview_t *v,
                      cask_kctx_t *ctx)
{
    const char *path, *unused;
    const ar_fdesc_t *d = cask__ar_fdesc(desc, F_NPY, &path, &unused);
    v->fd = -1;
    if (!d || d->offset < 0 || d->size < 0)
        return cask_kernel_fail(ctx, "a .npy file's description is not sound");
    size_t es = cask_dtype_size(dtype);
    double total = (double)es;
    for (int x = 0; x < ndim; x++)
        total *= (double)shape[x];
    off_t size = 0;
    int fd = open_regular(path, &size), rc = 0;
    if (fd < 0)
        return errno == EINVAL ? cask_kernel_fail(ctx, "%s is not a regular file", path)
                               : cask_kernel_fail(ctx, "cannot read %s: %s", path, strerror(errno));
    if ((uint64_t)size != (uint64_t)d->size)
        rc = cask_kernel_fail(ctx, "%s changed while the array was open: %llu bytes, %llu "
                              "when it was opened", path, (unsigned long long)size,
                              (unsigned long long)d->size);
    else if ((double)d->offset + total > (double)size)
        rc = cask_kernel_fail(ctx, "%s: the data (offset %lld, %.0f bytes) lies past the "
                              "file's %llu bytes", path, (long long)d->offset, total,
                              (unsigned long long)size);
    if (rc) {
        close(fd);
        return rc;
    }
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL); /* a larger read-ahead */
    *v = (ar_fview_t){ .fd = fd, .ndim = ndim, .es = es, .base = d->offset, .path = path,
                       .bools = dtype == CASK_BOOL };
    memcpy(v->in, shape, (size_t)ndim * sizeof *shape);
    memcpy(v->at, lo, (size_t)ndim * sizeof *lo);
    memcpy(v->n, n, (size_t)ndim * sizeof *n);
    return 0;
}

cask_array_t *cask_array_open_npy(cask_graph_t *g, const char *path, const int64_t *chunks,
                                  cask_error_t *err)
{
    npy_head_t h;
    FILE *f = open_head(g, path, "open_npy", true, &h, err);
    if (!f)
        return NULL;
    fclose(f);
    ar_fdesc_t d = { (int64_t)h.offset, (int64_t)h.file_size };
    return cask__ar_file_array(g, F_NPY, d, path, NULL, h.dtype, h.ndim, h.shape, chunks, err);
}



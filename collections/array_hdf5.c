/*
** collections/array_hdf5.c: arrays over HDF5 datasets, through the HDF5
** library (Debian's libhdf5-dev: the serial build, made thread-safe by a
** lock of its own, so calls from several workers take turns inside it).
**
** Reading: cask_array_open_hdf5 reads the dataset's type, extents and
** chunking and makes a file leaf (N_FILE); each task that evaluates it
** opens the file (cask__ar_h5_view), checks that the dataset still has
** that type and those extents, and reads the hyperslab it needs. When HDF5
** would only copy the box's bytes (the dataset is stored without filters,
** in the type the box is read as, in one plain file with no user block,
** either in one piece or chunked with the box inside one chunk), the task
** asks HDF5 only where they lie and reads them with pread, outside the
** library's lock, so workers read at the same time; other boxes go through
** H5Dread, one worker at a time. Integer types of up to 8 bytes (unsigned
** ones of up to 4) are read as int64, floats of 4 and 8 bytes as float32 and
** float64, h5py's booleans (an enum of FALSE = 0 and TRUE = 1 over one
** byte) as bool; anything else is refused when opened, naming the type.
**
** Writing: cask_array_save_hdf5 creates the dataset under a temporary
** name beside the one asked for, chunked as the array is, writes each block
** into its hyperslab as the block is made, and renames it over the name at
** the end (replacing a dataset of that name). A failed store deletes the
** temporary dataset, and the file itself when the store created it; what
** was in the file before is left as it was.
*/
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>

#include "array.h"

/* HDF5 prints its error stack on stderr unless told not to (per thread, in
** the thread-safe build): cask reports errors itself. */
static void quiet(void)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

/* The cask dtype a dataset of file type t is read as; or -1 with why
** (a description of the type) in buf. */
static int dtype_of(hid_t t, char *buf, size_t cap)
{
    H5T_class_t c = H5Tget_class(t);
    size_t size = H5Tget_size(t);
    if (c == H5T_FLOAT && (size == 8 || size == 4))
        return size == 8 ? CASK_F64 : CASK_F32;
    if (c == H5T_INTEGER && size <= 8) {
        if (H5Tget_sign(t) != H5T_SGN_NONE || size <= 4)
            return CASK_I64;
        snprintf(buf, cap, "unsigned 64-bit integers (values past 2^63 have no int64)");
        return -1;
    }
    if (c == H5T_ENUM && size == 1 && H5Tget_nmembers(t) == 2) { /* h5py's bool? */
        char *n0 = H5Tget_member_name(t, 0), *n1 = H5Tget_member_name(t, 1);
        signed char v0 = -1, v1 = -1;
        H5Tget_member_value(t, 0, &v0);
        H5Tget_member_value(t, 1, &v1);
        bool ok = n0 && n1 && !strcmp(n0, "FALSE") && !strcmp(n1, "TRUE") && v0 == 0 && v1 == 1;
        H5free_memory(n0);
        H5free_memory(n1);
        if (ok)
            return CASK_BOOL;
    }
    static const char *const names[] = { "integers", "floats", "times", "strings", "bit fields",
                                         "opaque values", "compound values", "references",
                                         "enums", "variable-length values", "arrays" };
    if (c == H5T_FLOAT || c == H5T_INTEGER)
        snprintf(buf, cap, "%s of %zu bytes", names[c], size);
    else
        snprintf(buf, cap, "%s", c >= 0 && c < (int)(sizeof names / sizeof *names) ? names[c]
                                                                                 : "an unknown type");
    return -1;
}

/* The type blocks of dtype are read and written in, in memory: for bool,
** the file's own enum (bytes 0 and 1), else a native type. Close it with
** H5Tclose when it was copied (*made). */
static hid_t mem_type(cask_dtype_t dt, hid_t file_type, bool *made)
{
    *made = dt == CASK_BOOL;
    switch (dt) {
    case CASK_F64: return H5T_NATIVE_DOUBLE;
    case CASK_F32: return H5T_NATIVE_FLOAT;
    case CASK_I64: return H5T_NATIVE_INT64;
    default: return H5Tget_native_type(file_type, H5T_DIR_ASCEND);
    }
}

/* HDF5 keeps a thread's errors on its stack until its next call clears
** them, and a thread that exits with errors there leaks their text (a
** visit whose last call failed: H5Fopen of a file cut short). cask reports
** its own errors, so each read visit clears them as it ends. */
static void forget_errors(void)
{
    H5Eclear2(H5E_DEFAULT);
}

/* An open dataset and what it holds. */
typedef struct h5 {
    hid_t file, dset, type, space;
    int ndim;
    int64_t shape[CASK_MAX_NDIM];
    dev_t dev;             /* the file HDF5 opened */
    ino_t ino;
} h5_t;

static void h5_close(h5_t *h)
{
    if (h->space >= 0)
        H5Sclose(h->space);
    if (h->type >= 0)
        H5Tclose(h->type);
    if (h->dset >= 0)
        H5Dclose(h->dset);
    if (h->file >= 0)
        H5Fclose(h->file);
    h->file = h->dset = h->type = h->space = -1;
    forget_errors();
}

/* Open dataset name of the regular file path, to read; its extents in h.
** 0, or a message in buf (-1). */
static int h5_open(const char *path, const char *name, h5_t *h, char *buf, size_t cap)
{
    struct stat st;
    *h = (h5_t){ -1, -1, -1, -1, 0, { 0 }, 0, 0 };
    quiet();
    if (stat(path, &st)) {
        snprintf(buf, cap, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) { /* never a device or a FIFO */
        snprintf(buf, cap, "cannot read %s: not a regular file", path);
        return -1;
    }
    h->dev = st.st_dev, h->ino = st.st_ino;
    if ((h->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT)) < 0) {
        snprintf(buf, cap, "%s is not an HDF5 file (or cannot be read)", path);
        return h5_close(h), -1;
    }
    if ((h->dset = H5Dopen2(h->file, name, H5P_DEFAULT)) < 0) {
        snprintf(buf, cap, "%s has no dataset '%s'", path, name);
        return h5_close(h), -1;
    }
    h->type = H5Dget_type(h->dset);
    h->space = H5Dget_space(h->dset);
    int nd = h->space >= 0 ? H5Sget_simple_extent_ndims(h->space) : -1;
    H5S_class_t sc = h->space >= 0 ? H5Sget_simple_extent_type(h->space) : H5S_NO_CLASS;
    if (h->type < 0 || nd < 0 || sc == H5S_NULL || nd > CASK_MAX_NDIM) {
        snprintf(buf, cap, "%s: dataset '%s' %s", path, name,
                 nd > CASK_MAX_NDIM ? "has more axes than cask's arrays"
                                    : "has no extents that cask can read");
        return h5_close(h), -1;
    }
    hsize_t dims[CASK_MAX_NDIM];
    H5Sget_simple_extent_dims(h->space, dims, NULL);
    h->ndim = nd;
    for (int x = 0; x < nd; x++)
        h->shape[x] = (int64_t)dims[x];
    return 0;
}

/* ---------------------------------------------------------------- reading */

atomic_size_t cask__ar_h5_direct_reads;

/* Where in the file the box lo .. lo + n lies as plain bytes, when HDF5
** would only copy them: the dataset is stored in memory type mt without
** filters, in one plain file (the sec2 driver) with no user block, either
** in one piece or chunked
** with the box inside one allocated chunk. The stored array's offset, its
** shape in *in (the dataset's, or the chunk's) and the box's start within
** it in *at; -1 otherwise (the box is read through HDF5). */
static off_t direct_at(const h5_t *h, hid_t mt, const int64_t *lo, const int64_t *n,
                       int64_t *in, int64_t *at)
{
    if (!h->ndim || H5Tequal(h->type, mt) <= 0)
        return -1;
    hid_t dcpl = H5Dget_create_plist(h->dset), fcpl = H5Fget_create_plist(h->file),
          fapl = H5Fget_access_plist(h->file);
    hsize_t c[CASK_MAX_NDIM], o[CASK_MAX_NDIM], ub = 1, size = 0;
    size_t es = H5Tget_size(mt);
    H5D_layout_t lay = dcpl >= 0 ? H5Pget_layout(dcpl) : H5D_LAYOUT_ERROR;
    bool ok = fcpl >= 0 && H5Pget_userblock(fcpl, &ub) >= 0 && ub == 0 && es &&
              H5Pget_nfilters(dcpl) == 0 && fapl >= 0 && /* one plain file holds the data */
              H5Pget_driver(fapl) == H5FD_SEC2;
    haddr_t addr = HADDR_UNDEF;
    if (ok && lay == H5D_CONTIGUOUS) {
        addr = H5Dget_offset(h->dset);
        size = H5Dget_storage_size(h->dset);
        for (int x = 0; x < h->ndim; x++)
            in[x] = h->shape[x], at[x] = lo[x];
    } else if (ok && lay == H5D_CHUNKED && H5Pget_chunk(dcpl, h->ndim, c) == h->ndim) {
        for (int x = 0; ok && x < h->ndim; x++) {
            ok = c[x] > 0;
            o[x] = ok ? (hsize_t)lo[x] / c[x] * c[x] : 0;
            in[x] = (int64_t)c[x], at[x] = lo[x] - (int64_t)o[x];
            ok = ok && at[x] + n[x] <= in[x];
        }
        unsigned mask = 1;
        if (!ok || H5Dget_chunk_info_by_coord(h->dset, o, &mask, &addr, &size) < 0 || mask)
            addr = HADDR_UNDEF;
    }
    double bytes = (double)es; /* what the stored array takes */
    for (int x = 0; x < h->ndim; x++)
        bytes *= (double)in[x];
    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (fcpl >= 0)
        H5Pclose(fcpl);
    if (fapl >= 0)
        H5Pclose(fapl);
    return ok && addr != HADDR_UNDEF && (double)size >= bytes && (double)addr + bytes < 0x1p62
               ? (off_t)addr : -1;
}

/* Open the file h has open (dev, ino), named path, as v's: 0 or a failure. */
static int open_view(const char *path, dev_t dev, ino_t ino, ar_fview_t *v, cask_kctx_t *ctx)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return cask_kernel_fail(ctx, "cannot read %s: %s", path, strerror(errno));
    if (fstat(fd, &st) || st.st_dev != dev || st.st_ino != ino) {
        close(fd);
        return cask_kernel_fail(ctx, "%s changed while the array was open (another file has "
                                "its name)", path);
    }
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL); /* a larger read-ahead */
    v->fd = fd;
    atomic_fetch_add_explicit(&cask__ar_h5_direct_reads, 1, memory_order_relaxed);
    return 0;
}

/* cask__ar_fview_open for a dataset: the box opened as *v when pread can
** read it, else read by HDF5 into dst, or (dst NULL) a new region in *whole. */
int cask__ar_h5_view(const cask_value_t *desc, cask_dtype_t dtype, int ndim,
                     const int64_t *shape, const int64_t *lo, const int64_t *n, ar_fview_t *v,
                     void *dst, void **whole, cask_kctx_t *ctx)
{
    const char *path, *name;
    v->fd = -1;
    if (!dst)
        *whole = NULL;
    if (!cask__ar_fdesc(desc, F_HDF5, &path, &name))
        return cask_kernel_fail(ctx, "an HDF5 dataset's description is not sound");
    h5_t h;
    char why[200];
    if (h5_open(path, name, &h, why, sizeof why))
        return cask_kernel_fail(ctx, "%s", why);
    int rc = 0;
    bool same = h.ndim == ndim && dtype_of(h.type, why, sizeof why) == (int)dtype;
    for (int x = 0; same && x < ndim; x++)
        same = h.shape[x] == shape[x];
    if (!same) {
        rc = cask_kernel_fail(ctx, "%s: dataset '%s' changed while the array was open (its "
                              "type or extents are not those it had)", path, name);
        goto out;
    }
    hsize_t start[CASK_MAX_NDIM], count[CASK_MAX_NDIM];
    size_t elems = 1;
    for (int x = 0; x < ndim; x++) {
        start[x] = (hsize_t)lo[x], count[x] = (hsize_t)n[x];
        elems *= (size_t)n[x];
    }
    if (!elems)
        goto out;
    bool made;
    hid_t mt = mem_type(dtype, h.type, &made);
    *v = (ar_fview_t){ .fd = -1, .ndim = ndim, .es = cask_dtype_size(dtype), .path = path,
                       .dataset = name, .bools = dtype == CASK_BOOL };
    v->base = mt >= 0 ? direct_at(&h, mt, lo, n, v->in, v->at) : -1;
    if (v->base >= 0) {
        h5_close(&h); /* HDF5 is done with: its lock is free for other workers */
        memcpy(v->n, n, (size_t)ndim * sizeof *n);
        rc = open_view(path, h.dev, h.ino, v, ctx);
    } else {
        bool mine = !dst; /* HDF5 reads the box into a new region */
        if (mine && !(rc = cask__ar_block_fits(ndim, n, ctx)) &&
            !(dst = *whole = cask__big_malloc(elems * cask_dtype_size(dtype))))
            rc = CASK_ENOMEM;
        hid_t ms = -1;
        herr_t e = 0;
        if (!rc) {
            ms = ndim ? H5Screate_simple(ndim, count, NULL) : H5Screate(H5S_SCALAR);
            e = ndim ? H5Sselect_hyperslab(h.space, H5S_SELECT_SET, start, NULL, count, NULL) : 0;
            if (mt < 0 || ms < 0 || e < 0 ||
                H5Dread(h.dset, mt, ms, h.space, H5P_DEFAULT, dst) < 0)
                rc = cask_kernel_fail(ctx, "%s: cannot read dataset '%s'", path, name);
        }
        if (ms >= 0)
            H5Sclose(ms);
        size_t bad;
        if (!rc && dtype == CASK_BOOL && (bad = cask__ar_bad_bool(dst, elems)) < elems)
            rc = cask_kernel_fail(ctx, "%s: dataset '%s' has a bool of value %u", path, name,
                                  ((const unsigned char *)dst)[bad]);
        if (rc && mine) {
            cask__big_free(*whole);
            *whole = NULL;
        }
    }
    if (made && mt >= 0)
        H5Tclose(mt);
out:
    h5_close(&h);
    return rc;
}

cask_array_t *cask_array_open_hdf5(cask_graph_t *g, const char *path, const char *dataset,
                                   const int64_t *chunks, cask_error_t *err)
{
    if (!g || !path || !dataset)
        return cask__err(err, CASK_EINVAL, NULL, NULL,
                         "open_hdf5 needs a graph, a path and a dataset"), NULL;
    h5_t h;
    char why[300];
    if (h5_open(path, dataset, &h, why, sizeof why))
        return cask__err(err, CASK_EIO, NULL, NULL, "%s", why), NULL;
    int dt = dtype_of(h.type, why, sizeof why);
    int64_t own[CASK_MAX_NDIM];
    if (!chunks && h.ndim) { /* the dataset's own chunking, if it has one */
        hid_t pl = H5Dget_create_plist(h.dset);
        hsize_t c[CASK_MAX_NDIM];
        if (pl >= 0 && H5Pget_layout(pl) == H5D_CHUNKED && H5Pget_chunk(pl, h.ndim, c) == h.ndim) {
            for (int x = 0; x < h.ndim; x++)
                own[x] = (int64_t)c[x] < h.shape[x] ? (int64_t)c[x] : h.shape[x];
            chunks = own;
        }
        if (pl >= 0)
            H5Pclose(pl);
    }
    h5_close(&h);
    if (dt < 0)
        return cask__err(err, CASK_ETYPE, NULL, NULL, "%s: dataset '%s' holds %s, which cask "
                         "cannot read", path, dataset, why), NULL;
    return cask__ar_file_array(g, F_HDF5, (ar_fdesc_t){ 0, 0 }, path, dataset, dt, h.ndim,
                               h.shape, chunks, err);
}

/* ---------------------------------------------------------------- writing */

typedef struct save {
    hid_t dset, space, mtype;
    int ndim;
    pthread_mutex_t lock;
    int failed;            /* a block could not be written */
} save_t;

static int save_block(void *udata, const int64_t *start, const int64_t *shape, const void *data)
{
    save_t *w = udata;
    hsize_t s[CASK_MAX_NDIM], c[CASK_MAX_NDIM];
    size_t count = 1;
    for (int x = 0; x < w->ndim; x++) {
        s[x] = (hsize_t)start[x], c[x] = (hsize_t)shape[x];
        count *= (size_t)shape[x];
    }
    if (!count)
        return 0;
    quiet();
    /* The selection lives in a dataspace of its own: blocks come from
    ** several threads at once. */
    hid_t fs = H5Scopy(w->space);
    hid_t ms = w->ndim ? H5Screate_simple(w->ndim, c, NULL) : H5Screate(H5S_SCALAR);
    int bad = fs < 0 || ms < 0 ||
              (w->ndim && H5Sselect_hyperslab(fs, H5S_SELECT_SET, s, NULL, c, NULL) < 0) ||
              H5Dwrite(w->dset, w->mtype, ms, fs, H5P_DEFAULT, data) < 0;
    if (fs >= 0)
        H5Sclose(fs);
    if (ms >= 0)
        H5Sclose(ms);
    if (!bad)
        return 0;
    pthread_mutex_lock(&w->lock);
    w->failed = 1;
    pthread_mutex_unlock(&w->lock);
    return CASK_EIO;
}

/* The file type dtype is stored as: little-endian IEEE floats and int64;
** bool as h5py stores it (an enum FALSE = 0, TRUE = 1 over int8), so that
** h5py and NumPy read it back as bool. A new type: close it. */
static hid_t file_type(cask_dtype_t dt)
{
    if (dt == CASK_BOOL) {
        hid_t t = H5Tenum_create(H5T_NATIVE_INT8);
        signed char f = 0, v = 1;
        if (t >= 0 && (H5Tenum_insert(t, "FALSE", &f) < 0 || H5Tenum_insert(t, "TRUE", &v) < 0)) {
            H5Tclose(t);
            return -1;
        }
        return t;
    }
    return H5Tcopy(dt == CASK_F64 ? H5T_IEEE_F64LE : dt == CASK_F32 ? H5T_IEEE_F32LE
                                                                      : H5T_STD_I64LE);
}

/* Whether v describes a dataset of the file w. */
static bool names_file(const cask_value_t *v, const struct stat *w)
{
    const char *p, *unused;
    struct stat r;
    return cask__ar_fdesc(v, F_HDF5, &p, &unused) && !stat(p, &r) && r.st_dev == w->st_dev &&
           r.st_ino == w->st_ino;
}

/* Whether task t of g or a task it depends on reads a dataset of the file
** w (seen: a mark per task; stack: room for a task each). The tasks of one
** leaf share its description's block: each is looked at (a stat) once. */
static bool task_reads(const cask_graph_t *g, cask_task_t t, const struct stat *w, uint8_t *seen,
                       cask_task_t *stack)
{
    const struct cask_blob *last = NULL; /* the last description that named another file */
    size_t n = 0;
    stack[n++] = t;
    while (n) {
        cask_task_t u = stack[--n];
        int64_t i = cask_graph_index(g, u);
        const cask_value_t *in;
        size_t m;
        if (i < 0 || seen[i] || cask_graph_inputs(g, u, &in, &m, NULL))
            continue;
        seen[i] = 1;
        for (size_t j = 0; j < m; j++) {
            if (in[j].type == CASK_BYTES && in[j].u.blob != last) {
                if (names_file(&in[j], w))
                    return true;
                last = in[j].u.blob;
            }
            int64_t k = in[j].type == CASK_REF ? cask_graph_index(g, in[j].u.task) : -1;
            if (k >= 0 && !seen[k]) /* pushed once per edge at most: within the room */
                stack[n++] = in[j].u.task;
        }
    }
    return false;
}

/* Whether expression e (or a task its block leaves read) reads a dataset
** of the file w. */
static bool expr_reads(const cask_graph_t *g, const ar_enode_t *e, const struct stat *w,
                       uint8_t *seen, cask_task_t *stack)
{
    if (!e)
        return false;
    if (e->kind == N_FILE && e->op == F_HDF5 && names_file(&e->src, w))
        return true;
    for (size_t i = 0; e->kind == N_BLOCKS && i < e->bs->n; i++)
        if (task_reads(g, e->bs->tasks[i], w, seen, stack))
            return true;
    for (int k = 0; k < 3; k++)
        if (expr_reads(g, e->a[k], w, seen, stack))
            return true;
    return false;
}

/* Whether computing a reads the file at path (the same file, by device and
** inode): writing a file while workers read it is refused. */
static bool reads_file(cask_array_t *a, const char *path)
{
    struct stat w;
    if (stat(path, &w))
        return false;
    /* a task is pushed once per edge into it, and once as a leaf's block */
    size_t room = cask_graph_edges(a->g) + cask_graph_size(a->g) + 1;
    uint8_t *seen = cask__calloc(cask_graph_size(a->g) + 1, 1);
    cask_task_t *stack = cask__malloc(room * sizeof *stack);
    bool r = !seen || !stack || expr_reads(a->g, a->e, &w, seen, stack); /* no memory: refuse */
    cask__free(seen);
    cask__free(stack);
    return r;
}

int cask_array_save_hdf5(cask_array_t *a, const char *path, const char *dataset,
                         const cask_compute_opts_t *opts, cask_error_t *err)
{
    if (!a || !path || !dataset || !*dataset)
        return cask__err(err, CASK_EINVAL, NULL, NULL,
                         "save_hdf5 needs an array, a path and a dataset name");
    if (reads_file(a, path))
        return cask__err(err, CASK_EINVAL, NULL, NULL, "cannot store into %s while the array "
                         "reads from it: store into another file", path);
    cask_dtype_t dt = cask_array_dtype(a);
    int ndim = cask_array_ndim(a);
    const int64_t *shape = cask_array_shape(a), *chunk = cask_array_chunks(a);
    quiet();
    struct stat st;
    bool created = false;
    hid_t file;
    if (!stat(path, &st)) {
        if (!S_ISREG(st.st_mode))
            return cask__err(err, CASK_EIO, NULL, NULL, "cannot write %s: not a regular file",
                             path);
        if ((file = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT)) < 0)
            return cask__err(err, CASK_EIO, NULL, NULL,
                             "cannot write %s: not an HDF5 file, or not writable", path);
    } else if ((file = H5Fcreate(path, H5F_ACC_EXCL, H5P_DEFAULT, H5P_DEFAULT)) >= 0) {
        created = true;
    } else {
        return cask__err(err, CASK_EIO, NULL, NULL, "cannot create %s: %s", path,
                         strerror(errno ? errno : EIO));
    }
    /* The blocks go into a dataset beside the one asked for, which takes
    ** its name once every block is in it. */
    static atomic_uint seq;
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s.%ld.%u.part", dataset, (long)getpid(), atomic_fetch_add(&seq, 1));
    hsize_t dims[CASK_MAX_NDIM], cdims[CASK_MAX_NDIM];
    double chunk_bytes = (double)cask_dtype_size(dt);
    for (int x = 0; x < ndim; x++) {
        dims[x] = (hsize_t)shape[x];
        cdims[x] = (hsize_t)chunk[x];
        chunk_bytes *= (double)chunk[x];
    }
    save_t w = { -1, -1, -1, ndim, PTHREAD_MUTEX_INITIALIZER, 0 };
    hid_t ft = file_type(dt), lcpl = H5Pcreate(H5P_LINK_CREATE), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    w.space = ndim ? H5Screate_simple(ndim, dims, NULL) : H5Screate(H5S_SCALAR);
    bool made = false;
    int rc = 0;
    if (ft < 0 || lcpl < 0 || dcpl < 0 || w.space < 0 ||
        H5Pset_create_intermediate_group(lcpl, 1) < 0 ||
        /* chunked as the array (HDF5 takes chunks under 4 GB), else contiguous */
        (ndim && chunk_bytes < 4e9 && H5Pset_chunk(dcpl, ndim, cdims) < 0) ||
        (w.dset = H5Dcreate2(file, tmp, ft, w.space, lcpl, dcpl, H5P_DEFAULT)) < 0 ||
        (w.mtype = mem_type(dt, ft, &made)) < 0) {
        rc = cask__err(err, CASK_EIO, NULL, NULL, "cannot create dataset '%s' in %s", tmp, path);
    } else if ((rc = cask_array_compute_blocks(a, opts, save_block, &w, NULL, err))) {
        if (w.failed)
            cask__err(err, CASK_EIO, NULL, NULL, "cannot write dataset '%s' in %s", tmp, path);
    }
    if (made && w.mtype >= 0)
        H5Tclose(w.mtype);
    if (w.dset >= 0 && H5Dclose(w.dset) < 0 && !rc)
        rc = cask__err(err, CASK_EIO, NULL, NULL, "cannot write dataset '%s' in %s", tmp, path);
    if (!rc) {
        htri_t there = H5Lexists(file, dataset, H5P_DEFAULT);
        if ((there > 0 && H5Ldelete(file, dataset, H5P_DEFAULT) < 0) ||
            H5Lmove(file, tmp, file, dataset, lcpl, H5P_DEFAULT) < 0)
            rc = cask__err(err, CASK_EIO, NULL, NULL, "cannot rename dataset '%s' to '%s' in %s",
                           tmp, dataset, path);
    }
    if (rc && w.dset >= 0)
        H5Ldelete(file, tmp, H5P_DEFAULT);
    if (H5Fclose(file) < 0 && !rc)
        rc = cask__err(err, CASK_EIO, NULL, NULL, "cannot write %s", path);
    if (rc && created)
        unlink(path);
    if (ft >= 0)
        H5Tclose(ft);
    if (lcpl >= 0)
        H5Pclose(lcpl);
    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (w.space >= 0)
        H5Sclose(w.space);
    pthread_mutex_destroy(&w.lock);
    return rc;
}

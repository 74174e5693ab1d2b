/*
** collections/array.c: the array object. An array is an expression (a
** small DAG of nodes whose leaves are generators, constants or the blocks
** of an array that has tasks, array_expr.c) over a chunk grid. Here:
** reference counts, layouts, creation (from a buffer, full, arange,
** linspace, random), map_blocks, reading an array's description, its
** tasks, and computing arrays into the caller's buffers.
*/
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "array.h"
#include "../sched/sched.h"

const char *cask__ar_shape_str(char *buf, size_t size, int ndim, const int64_t *shape)
{
    size_t at = (size_t)snprintf(buf, size, "(");
    for (int x = 0; x < ndim && at < size; x++)
        at += (size_t)snprintf(buf + at, size - at, "%s%lld", x ? ", " : "", (long long)shape[x]);
    if (at < size)
        snprintf(buf + at, size - at, ndim == 1 ? ",)" : ")");
    return buf;
}

/* ------------------------------------------------------------ reference counts */

void cask__ar_blockset_decref(ar_blockset_t *b)
{
    if (b && atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1) {
        cask__free(b->tasks);
        cask__free(b);
    }
}

/* Depth is bounded: an expression never grows past AR_MAX_NODES. */
void cask__ar_node_decref(ar_enode_t *e)
{
    if (!e || atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (int k = 0; k < 3; k++)
        cask__ar_node_decref(e->a[k]);
    cask__ar_blockset_decref(e->bs);
    if (e->kind == N_FILE)
        cask_value_decref(&e->src);
    cask__free(e);
}

ar_enode_t *cask__ar_node_new(int kind, int op, cask_dtype_t dtype, int ndim, const int64_t *shape)
{
    ar_enode_t *e = cask__calloc(1, sizeof *e);
    if (!e)
        return NULL;
    atomic_init(&e->refs, 1);
    e->kind = (uint8_t)kind;
    e->op = (uint8_t)op;
    e->dtype = dtype;
    e->ndim = ndim;
    if (ndim)
        memcpy(e->shape, shape, (size_t)ndim * sizeof *shape);
    e->count = 1;
    return e;
}

void cask_array_incref(cask_array_t *a)
{
    if (a)
        atomic_fetch_add_explicit(&a->refs, 1, memory_order_relaxed);
}

void cask_array_decref(cask_array_t *a)
{
    if (!a || atomic_fetch_sub_explicit(&a->refs, 1, memory_order_acq_rel) != 1)
        return;
    cask__ar_node_decref(a->e);
    cask__ar_blockset_decref(a->bs);
    cask_graph_decref(a->g);
    cask__free(a);
}

/* ------------------------------------------------------------------ arrays */

size_t cask__ar_grid_blocks(int ndim, const int64_t *shape, const int64_t *chunk)
{
    size_t n = 1;
    for (int x = 0; x < ndim; x++)
        n *= (size_t)ar_nblocks(shape[x], chunk[x]);
    return n;
}

/* Check dtype, ndim, shape and chunks; fill the normalised chunks. */
int cask__ar_check_layout(cask_dtype_t dtype, int ndim, const int64_t *shape,
                        const int64_t *chunks, int64_t *chunk, cask_error_t *err)
{
    if ((unsigned)dtype > CASK_BOOL)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "unknown dtype %d", (int)dtype);
    if (ndim < 0 || ndim > CASK_MAX_NDIM || (ndim && !shape))
        return cask__err(err, CASK_EINVAL, NULL, NULL, "ndim %d is not 0 .. %d (with a shape)",
                         ndim, CASK_MAX_NDIM);
    int64_t room = 1 << 20; /* chunks NULL: about 2^20 elements, last axes whole */
    int empty = 0;
    for (int x = 0; x < ndim; x++)
        empty |= shape[x] == 0;
    for (int x = ndim; x-- > 0;) {
        if (shape[x] < 0)
            return cask__err(err, CASK_EINVAL, NULL, NULL, "extent %lld of axis %d is negative",
                             (long long)shape[x], x);
        int64_t c = chunks ? chunks[x] : room;
        if (c < 1)
            return cask__err(err, CASK_EINVAL, NULL, NULL,
                             "chunk %lld along axis %d: chunks must be at least 1",
                             (long long)c, x);
        int64_t top = shape[x] ? shape[x] : 1;
        chunk[x] = c < top && !(empty && !chunks) ? c : top; /* no elements: one block */
        room = room / chunk[x] ? room / chunk[x] : 1;
    }
    double elems = 1;
    for (int x = 0; x < ndim; x++)
        elems *= (double)shape[x];
    if (elems * 8 > (double)(SIZE_MAX / 2))
        return cask__err(err, CASK_EINVAL, NULL, NULL, "%.3g elements are too many", elems);
    double blocks = 1; /* one task each: a graph holds fewer than 2^32 */
    for (int x = 0; x < ndim; x++)
        blocks *= (double)ar_nblocks(shape[x], chunk[x]);
    if (blocks > (double)(1u << 31))
        return cask__err(err, CASK_ELIMIT, NULL, NULL,
                         "%.3g blocks are too many (at most 2^31): larger chunks", blocks);
    return 0;
}

cask_array_t *cask__ar_new(cask_graph_t *g, ar_enode_t *e, const int64_t *chunk,
                               cask_error_t *err)
{
    cask_array_t *a = e ? cask__calloc(1, sizeof *a) : NULL;
    if (!a) {
        cask__ar_node_decref(e);
        cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for an array");
        return NULL;
    }
    atomic_init(&a->refs, 1);
    cask_graph_incref(g);
    a->g = g;
    a->e = e;
    a->dtype = e->dtype;
    a->ndim = e->ndim;
    memcpy(a->shape, e->shape, sizeof a->shape);
    if (e->ndim)
        memcpy(a->chunk, chunk, (size_t)e->ndim * sizeof *chunk);
    return a;
}

/* A leaf reading blockset b (of an array of this shape) as it is. */
ar_enode_t *cask__ar_blocks_leaf(ar_blockset_t *b, cask_dtype_t dtype, int ndim, const int64_t *shape)
{
    ar_enode_t *e = cask__ar_node_new(N_BLOCKS, 0, dtype, ndim, shape);
    if (!e)
        return NULL;
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    e->bs = b;
    e->src_ndim = ndim;
    memcpy(e->src_shape, shape, (size_t)ndim * sizeof *shape);
    for (int x = 0; x < ndim; x++)
        e->map[x] = (int8_t)x;
    return e;
}

ar_blockset_t *cask__ar_blockset_new(int ndim, const int64_t *shape, const int64_t *chunk)
{
    ar_blockset_t *b = cask__calloc(1, sizeof *b);
    if (!b)
        return NULL;
    atomic_init(&b->refs, 1);
    b->ndim = ndim;
    memcpy(b->chunk, chunk, (size_t)ndim * sizeof *chunk);
    b->n = cask__ar_grid_blocks(ndim, shape, chunk);
    if (!(b->tasks = cask__malloc(b->n * sizeof *b->tasks))) {
        cask__free(b);
        return NULL;
    }
    return b;
}

/* An array over the blocks b (stolen), which hold dtype values. */
cask_array_t *cask__ar_blocks_array(cask_graph_t *g, ar_blockset_t *b, cask_dtype_t dtype, int ndim,
                                  const int64_t *shape, cask_error_t *err)
{
    cask_array_t *a = cask__ar_new(g, cask__ar_blocks_leaf(b, dtype, ndim, shape), b->chunk, err);
    if (a)
        a->bs = b;
    else
        cask__ar_blockset_decref(b);
    return a;
}

/* The header of a program or description for this layout of dtype. */
ar_phead_t cask__ar_head_for(cask_dtype_t dtype, int ndim, const int64_t *shape,
                           const int64_t *chunk)
{
    ar_phead_t h;
    memset(&h, 0, sizeof h);
    h.magic = AR_MAGIC;
    h.ndim = ndim;
    h.red = -1;
    h.dtype = (int32_t)dtype;
    if (ndim) {
        memcpy(h.shape, shape, (size_t)ndim * sizeof *shape);
        memcpy(h.chunk, chunk, (size_t)ndim * sizeof *chunk);
    }
    return h;
}


cask_array_t *cask_array_from_buffer(cask_graph_t *g, cask_dtype_t dtype, int ndim,
                                     const int64_t *shape, const int64_t *chunks,
                                     const void *data, unsigned flags, cask_error_t *err)
{
    int64_t chunk[CASK_MAX_NDIM];
    if (!g)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "graph is NULL"), NULL;
    if (cask__ar_check_layout(dtype, ndim, shape, chunks, chunk, err))
        return NULL;
    size_t size = 1, sz = cask_dtype_size(dtype);
    for (int x = 0; x < ndim; x++)
        size *= (size_t)shape[x];
    if (!data && size)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "data is NULL"), NULL;
    ar_blockset_t *b = cask__ar_blockset_new(ndim, shape, chunk);
    if (!b)
        return cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for an array"), NULL;
    ar_phead_t h = cask__ar_head_for(dtype, ndim, shape, chunk);
    /* Keys: a copied buffer's token hashes its contents; a borrowed one's
    ** its layout and the graph's size (tasks are only added), so equal
    ** programs on every MPI rank give equal keys. */
    uint64_t token = cask__hash(&h, sizeof h, flags & CASK_ARRAY_COPY
                                                  ? cask__hash(data, size * sz, 1)
                                                  : cask_graph_size(g) + 2);
    cask_value_t desc = cask_none(), in[2];
    int rc = 0;
    if (!(flags & CASK_ARRAY_COPY)) { /* the buffer travels as a value no file can spell */
        ar_borrow_t *bw = cask__malloc(sizeof *bw);
        if (bw) {
            bw->h = h;
            bw->data = data;
        }
        if (!bw || cask__value_portable(bw, cask__ar_borrow_free, &desc)) {
            cask__free(bw);
            rc = cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for an array");
            goto fail;
        }
    }
    for (size_t i = 0; i < b->n; i++) {
        cask_task_spec_t spec = { .name = "array", .token = token | 1, .index = i,
                                  .inputs = in,
                                  .nbytes = cask__ar_block_nbytes(dtype, ndim, shape, b->chunk, i) };
        if (flags & CASK_ARRAY_COPY) {
            int64_t bo[CASK_MAX_NDIM], be[CASK_MAX_NDIM];
            cask__ar_block_place(&h, (int64_t)i, bo, be);
            if ((rc = cask_value_ndarray(dtype, ndim, be, &in[0], err)))
                goto fail;
            cask_nd_t v;
            cask_value_nd(&in[0], &v);
            cask__ar_copy_block(ndim, shape, bo, be, sz, (char *)(uintptr_t)data, v.data, true);
            spec.kernel = "cask.array.copy";
            spec.n_inputs = 1;
        } else {
            in[0] = desc;
            in[1] = cask_int((int64_t)i);
            spec.kernel = "cask.array.borrow";
            spec.n_inputs = 2;
        }
        rc = cask_graph_add(g, &spec, &b->tasks[i], err);
        if (flags & CASK_ARRAY_COPY)
            cask_value_decref(&in[0]);
        if (rc)
            goto fail;
    }
    cask_value_decref(&desc);
    return cask__ar_blocks_array(g, b, dtype, ndim, shape, err);
fail:
    cask_value_decref(&desc);
    cask__ar_blockset_decref(b);
    return NULL;
}

cask_array_t *cask_array_full(cask_graph_t *g, cask_dtype_t dtype, int ndim,
                              const int64_t *shape, const int64_t *chunks, double value,
                              cask_error_t *err)
{
    int64_t chunk[CASK_MAX_NDIM];
    if (!g)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "graph is NULL"), NULL;
    if (cask__ar_check_layout(dtype, ndim, shape, chunks, chunk, err))
        return NULL;
    if (dtype == CASK_I64 && !(fabs(value) < 0x1p63))
        return cask__err(err, CASK_EINVAL, NULL, NULL, "%g is not an int64", value), NULL;
    ar_enode_t *e = cask__ar_node_new(N_CONST, 0, dtype, ndim, shape);
    if (e) {
        e->p[0] = value;
        e->ip[0] = dtype == CASK_BOOL ? value != 0 : dtype == CASK_I64 ? (int64_t)value : 0;
    }
    return cask__ar_new(g, e, chunk, err);
}

cask_array_t *cask__ar_file_array(cask_graph_t *g, int op, ar_fdesc_t d, const char *path,
                                  const char *dataset, cask_dtype_t dtype, int ndim,
                                  const int64_t *shape, const int64_t *chunks, cask_error_t *err)
{
    int64_t chunk[CASK_MAX_NDIM];
    if (cask__ar_check_layout(dtype, ndim, shape, chunks, chunk, err)) {
        if (err) { /* name the file */
            char m[sizeof err->message];
            snprintf(m, sizeof m, "%.100s: %.150s", path, err->message);
            memcpy(err->message, m, sizeof m);
        }
        return NULL;
    }
    /* the description: ar_fdesc_t, the path, the dataset (F_HDF5), each NUL-ended */
    size_t pl = strlen(path) + 1, dl = op == F_HDF5 ? strlen(dataset) + 1 : 0;
    cask_value_t desc;
    if (cask__value_blank(CASK_BYTES, sizeof d + pl + dl, &desc))
        return cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory to open %s", path), NULL;
    char *p = desc.u.blob->data;
    memcpy(p, &d, sizeof d);
    memcpy(p + sizeof d, path, pl);
    if (dl)
        memcpy(p + sizeof d + pl, dataset, dl);
    ar_enode_t *e = cask__ar_node_new(N_FILE, op, dtype, ndim, shape);
    if (!e) {
        cask_value_decref(&desc);
        return cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for an array"), NULL;
    }
    e->src_ndim = ndim;
    memcpy(e->src_shape, shape, (size_t)ndim * sizeof *shape);
    for (int x = 0; x < ndim; x++)
        e->map[x] = (int8_t)x;
    e->src = desc; /* the node's reference */
    return cask__ar_new(g, e, chunk, err);
}

const ar_fdesc_t *cask__ar_fdesc(const cask_value_t *v, int op, const char **path,
                                 const char **dataset)
{
    size_t len;
    const char *p = v->type == CASK_BYTES ? cask_value_data(v, &len) : NULL;
    if (!p || len < sizeof(ar_fdesc_t) + 2 || ((uintptr_t)p & 7) || p[len - 1])
        return NULL;
    *path = p + sizeof(ar_fdesc_t);
    size_t pl = strlen(*path);
    *dataset = *path + pl + 1;
    if (!pl || (op == F_HDF5 ? *dataset >= p + len || !**dataset : *dataset != p + len))
        return NULL;
    return (const ar_fdesc_t *)p;
}

int cask__ar_read_box(int op, const cask_value_t *desc, cask_dtype_t dtype, int ndim,
                      const int64_t *shape, const int64_t *lo, const int64_t *n, void *dst,
                      cask_kctx_t *ctx)
{
    ar_fview_t v;
    int rc = cask__ar_fview_open(op, desc, dtype, ndim, shape, lo, n, &v, dst, NULL, ctx);
    if (!rc && v.fd >= 0) { /* else HDF5 read it into dst, or it is empty */
        rc = cask__ar_fview_read(&v, 0, ndim ? n[0] : 1, dst, ctx);
        close(v.fd);
    }
    return rc;
}

int cask__ar_fview_open(int op, const cask_value_t *desc, cask_dtype_t dtype, int ndim,
                        const int64_t *shape, const int64_t *lo, const int64_t *n,
                        ar_fview_t *v, void *dst, void **whole, cask_kctx_t *ctx)
{
    return op == F_NPY ? cask__ar_npy_view(desc, dtype, ndim, shape, lo, n, v, ctx)
                       : cask__ar_h5_view(desc, dtype, ndim, shape, lo, n, v, dst, whole, ctx);
}

/* A generator leaf over a whole array of this shape. */
static cask_array_t *gen_array(cask_graph_t *g, int gen, cask_dtype_t dtype, int ndim,
                               const int64_t *shape, const int64_t *chunks, const double *p,
                               const int64_t *ip, cask_error_t *err)
{
    int64_t chunk[CASK_MAX_NDIM];
    if (!g)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "graph is NULL"), NULL;
    if (cask__ar_check_layout(dtype, ndim, shape, chunks, chunk, err))
        return NULL;
    ar_enode_t *e = cask__ar_node_new(N_GEN, gen, dtype, ndim, shape);
    if (e) {
        e->src_ndim = ndim;
        memcpy(e->src_shape, shape, (size_t)ndim * sizeof *shape);
        for (int x = 0; x < ndim; x++)
            e->map[x] = (int8_t)x;
        memcpy(e->p, p, sizeof e->p);
        memcpy(e->ip, ip, sizeof e->ip);
    }
    return cask__ar_new(g, e, chunk, err);
}

cask_array_t *cask_array_arange(cask_graph_t *g, cask_dtype_t dtype, int64_t chunk, double start,
                                double stop, double step, cask_error_t *err)
{
    if (!(step != 0) || !isfinite(start) || !isfinite(stop) || !isfinite(step))
        return cask__err(err, CASK_EINVAL, NULL, NULL,
                         "arange(%g, %g, %g): finite bounds and a nonzero step", start, stop,
                         step), NULL;
    if (dtype != CASK_F64 && dtype != CASK_I64)
        return cask__err(err, CASK_ETYPE, NULL, NULL, "arange makes float64 or int64, not %s",
                         cask_dtype_name(dtype) ? cask_dtype_name(dtype) : "that"), NULL;
    if (dtype == CASK_I64 && (start != floor(start) || step != floor(step) ||
                              fabs(start) > 0x1p62 || fabs(step) > 0x1p62))
        return cask__err(err, CASK_ETYPE, NULL, NULL,
                         "int64 arange needs integer start and step, not %g and %g", start,
                         step), NULL;
    double n = ceil((stop - start) / step);
    int64_t shape[1] = { n > 0 ? (int64_t)n : 0 };
    double p[3] = { start, step, NAN };
    int64_t ip[2] = { 0, 0 };
    if (dtype == CASK_I64)
        ip[0] = (int64_t)start, ip[1] = (int64_t)step; /* integers under 2^62: checked */
    return gen_array(g, G_LINEAR, dtype, 1, shape, chunk ? &chunk : NULL, p, ip, err);
}

cask_array_t *cask_array_linspace(cask_graph_t *g, int64_t chunk, double start, double stop,
                                  int64_t num, bool endpoint, cask_error_t *err)
{
    if (num < 0 || !isfinite(start) || !isfinite(stop))
        return cask__err(err, CASK_EINVAL, NULL, NULL,
                         "linspace(%g, %g, %lld): finite bounds and num >= 0", start, stop,
                         (long long)num), NULL;
    int64_t div = endpoint ? num - 1 : num;
    double p[3] = { start, div > 0 ? (stop - start) / (double)div : 0,
                    endpoint && num > 1 ? stop : NAN };
    int64_t ip[2] = { 0, 0 }, shape[1] = { num };
    return gen_array(g, G_LINEAR, CASK_F64, 1, shape, chunk ? &chunk : NULL, p, ip, err);
}

cask_array_t *cask_array_random_uniform(cask_graph_t *g, int ndim, const int64_t *shape,
                                        const int64_t *chunks, uint64_t seed, double low,
                                        double high, cask_error_t *err)
{
    double p[3] = { low, high, 0 };
    int64_t ip[2] = { (int64_t)cask__ar_seed_key(seed), 0 };
    return gen_array(g, G_UNIFORM, CASK_F64, ndim, shape, chunks, p, ip, err);
}

cask_array_t *cask_array_random_normal(cask_graph_t *g, int ndim, const int64_t *shape,
                                       const int64_t *chunks, uint64_t seed, double loc,
                                       double scale, cask_error_t *err)
{
    double p[3] = { loc, scale, 0 };
    int64_t ip[2] = { (int64_t)cask__ar_seed_key(seed), 0 };
    return gen_array(g, G_NORMAL, CASK_F64, ndim, shape, chunks, p, ip, err);
}


cask_array_t *cask_array_map_blocks(cask_array_t *a, const char *kernel, cask_dtype_t dtype,
                                    const cask_value_t *args, size_t n_args, cask_error_t *err)
{
    if (!a || !kernel || (n_args && !args))
        return cask__err(err, CASK_EINVAL, NULL, NULL,
                         "map_blocks needs a kernel, an array and its arguments"), NULL;
    if ((unsigned)dtype > CASK_BOOL)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "unknown dtype %d", (int)dtype), NULL;
    if (!cask_kernel_exists(kernel))
        return cask__err(err, CASK_ENOKERNEL, NULL, kernel, "unknown kernel '%s'", kernel), NULL;
    if (cask__ar_materialize(a, err))
        return NULL;
    ar_blockset_t *b = cask__ar_blockset_new(a->ndim, a->shape, a->chunk);
    cask_value_t *in = cask__malloc((1 + n_args) * sizeof *in);
    if (!b || !in) {
        cask__ar_blockset_decref(b);
        cask__free(in);
        return cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for map_blocks"), NULL;
    }
    const char *dot = strrchr(kernel, '.');
    char group[96];
    snprintf(group, sizeof group, "map_blocks-%s", dot ? dot + 1 : kernel);
    if (n_args)
        memcpy(in + 1, args, n_args * sizeof *in);
    int rc = 0;
    for (size_t i = 0; i < b->n && !rc; i++) {
        in[0] = cask_ref(a->bs->tasks[i]);
        cask_task_spec_t spec = { .kernel = kernel, .inputs = in, .n_inputs = 1 + n_args,
                                  .group = group, .index = i,
                                  .nbytes = cask__ar_block_nbytes(dtype, a->ndim, a->shape,
                                                                  a->chunk, i) };
        rc = cask_graph_add(a->g, &spec, &b->tasks[i], err);
    }
    cask__free(in);
    if (rc) {
        cask__ar_blockset_decref(b);
        return NULL;
    }
    return cask__ar_blocks_array(a->g, b, dtype, a->ndim, a->shape, err);
}


/* ------------------------------------------------------- reading arrays */

cask_dtype_t cask_array_dtype(const cask_array_t *a) { return a->dtype; }
int cask_array_ndim(const cask_array_t *a) { return a->ndim; }
const int64_t *cask_array_shape(const cask_array_t *a) { return a->shape; }
const int64_t *cask_array_chunks(const cask_array_t *a) { return a->chunk; }
cask_graph_t *cask_array_graph(const cask_array_t *a) { return a->g; }

size_t cask_array_size(const cask_array_t *a)
{
    size_t n = 1;
    for (int x = 0; x < a->ndim; x++)
        n *= (size_t)a->shape[x];
    return n;
}

size_t cask_array_nblocks(const cask_array_t *a)
{
    return cask__ar_grid_blocks(a->ndim, a->shape, a->chunk);
}

int64_t cask_array_tasks(cask_array_t *a, cask_task_t *tasks, size_t max, cask_error_t *err)
{
    if (!a)
        return cask__err(err, CASK_EINVAL, NULL, NULL,
                         "the array is NULL (an earlier array call failed)");
    size_t n = cask_array_nblocks(a);
    if (n > max)
        return cask__err(err, CASK_ELIMIT, NULL, NULL, "%zu blocks; room for %zu", n, max);
    int rc = cask__ar_materialize(a, err);
    if (rc)
        return rc;
    memcpy(tasks, a->bs->tasks, n * sizeof *tasks);
    return (int64_t)n;
}

/* A compute of arrays' blocks, each handed to fn (into a buffer, or the
** caller's) as it comes. */
typedef struct blocks {
    cask_array_t *const *arrays;
    size_t n;
    size_t *base;                   /* output index of each array's first block; n + 1 */
    ar_phead_t *h;                  /* each array's layout */
    const cask_task_t *outs;
    void *const *bufs;              /* cask_array_compute: the buffers */
    cask_block_fn fn;               /* cask_array_compute_blocks: the caller's */
    void *udata;
    pthread_mutex_t lock;
    cask_error_t err;               /* the first block that was not right */
} blocks_t;

static int take_block(void *udata, size_t i, const cask_value_t *v)
{
    blocks_t *b = udata;
    size_t lo = 0, hi = b->n; /* the array: the last base <= i */
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (b->base[mid] <= i)
            lo = mid;
        else
            hi = mid;
    }
    const cask_array_t *a = b->arrays[lo];
    size_t k = i - b->base[lo];
    int64_t bo[CASK_MAX_NDIM], be[CASK_MAX_NDIM];
    cask_nd_t nd;
    cask__ar_block_place(&b->h[lo], (int64_t)k, bo, be);
    if (cask_value_nd(v, &nd) || nd.dtype != a->dtype || nd.ndim != a->ndim ||
        memcmp(nd.shape, be, (size_t)a->ndim * sizeof *be)) {
        pthread_mutex_lock(&b->lock);
        if (!b->err.code)
            cask__err(&b->err, CASK_ETYPE, cask_graph_key(a->g, b->outs[i]), NULL,
                      "block %zu of array %zu is not a %s block of its shape", k, lo,
                      cask_dtype_name(a->dtype));
        pthread_mutex_unlock(&b->lock);
        return CASK_ETYPE;
    }
    if (b->fn)
        return b->fn(b->udata, bo, be, nd.data);
    cask__ar_copy_block(a->ndim, a->shape, bo, be, cask_dtype_size(a->dtype), b->bufs[lo],
                        nd.data, false);
    return 0;
}

static int compute_blocks(blocks_t *b, const cask_compute_opts_t *opts, cask_compute_info_t *info,
                          cask_error_t *err)
{
    if (info)
        memset(info, 0, sizeof *info);
    size_t total = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (!b->arrays[i] || (b->bufs && !b->bufs[i] && cask_array_size(b->arrays[i])))
            return cask__err(err, CASK_EINVAL, NULL, NULL, "array %zu or its buffer is NULL", i);
        if (b->arrays[i]->g != b->arrays[0]->g)
            return cask__err(err, CASK_EINVAL, NULL, NULL,
                             "array %zu belongs to another graph", i);
        int rc = cask__ar_materialize(b->arrays[i], err);
        if (rc)
            return rc;
        total += b->arrays[i]->bs->n;
    }
    cask_task_t *outs = cask__malloc(total * sizeof *outs);
    b->base = cask__malloc((b->n + 1) * sizeof *b->base);
    b->h = cask__malloc(b->n * sizeof *b->h);
    int rc = 0;
    if (!outs || !b->base || !b->h) {
        rc = cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for %zu blocks", total);
        goto out;
    }
    for (size_t i = 0, at = 0; i < b->n; i++) {
        const cask_array_t *a = b->arrays[i];
        memcpy(outs + at, a->bs->tasks, a->bs->n * sizeof *outs);
        b->base[i] = at;
        b->h[i] = cask__ar_head_for(a->dtype, a->ndim, a->shape, a->chunk);
        at += a->bs->n;
    }
    b->base[b->n] = total;
    b->outs = outs;
    pthread_mutex_init(&b->lock, NULL);
    cask_error_clear(&b->err);
    /* take_block copies each block out during the call, or hands it to a
    ** function that borrows it for the call: no copy of an arena's block first */
    rc = cask__compute_each_borrowed(b->arrays[0]->g, outs, total, opts, take_block, b, info,
                                     err);
    if (rc && b->err.code && err) /* say what was wrong with the block */
        *err = b->err;
    pthread_mutex_destroy(&b->lock);
out:
    cask__free(b->h);
    cask__free(b->base);
    cask__free(outs);
    return rc;
}

int cask_array_compute(cask_array_t *const *arrays, size_t n, const cask_compute_opts_t *opts,
                       void *const *bufs, cask_compute_info_t *info,
                       cask_error_t *err)
{
    if (!arrays || !bufs || !n)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "nothing to compute");
    blocks_t b = { .arrays = arrays, .n = n, .bufs = bufs };
    return compute_blocks(&b, opts, info, err);
}

int cask_array_compute_blocks(cask_array_t *a, const cask_compute_opts_t *opts, cask_block_fn fn,
                              void *udata, cask_compute_info_t *info, cask_error_t *err)
{
    if (!a || !fn)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "compute_blocks needs an array and a function");
    blocks_t b = { .arrays = &a, .n = 1, .fn = fn, .udata = udata };
    return compute_blocks(&b, opts, info, err);
}


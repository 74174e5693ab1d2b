/*
** collections/array.c: building arrays. An array is an expression (a
** small DAG of nodes whose leaves are generators, constants or the blocks
** of an array that has tasks) over a chunk grid. Elementwise calls only
** grow the expression; tasks are added when blocks are needed: one fused
** task per block (cask.array.eval), or one per block plus a combine tree
** for a reduction (cask.array.reduce, cask.array.combine). The kernels
** and the program format are in array_eval.c and array.h.
**
** Every node of an expression has the expression's number of axes: an
** operand with fewer is copied with extent-1 axes in front, so broadcasting
** is always "extent 1 stretches", and a leaf's map says which source axis
** each axis reads (-1: none, the value repeats).
*/
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "array.h"

/* Tasks of an array's blocks, in C order of its block grid. */
typedef struct blockset {
    atomic_uint  refs;
    int          ndim;
    int64_t      chunk[CASK_MAX_NDIM];
    size_t       n;
    cask_task_t *tasks;
} blockset_t;

typedef struct enode {
    atomic_uint   refs;
    uint8_t       kind, op;             /* N_*; its operation */
    cask_dtype_t  dtype;                /* of its values */
    int           ndim;                 /* the expression's */
    int64_t       shape[CASK_MAX_NDIM]; /* its extents (1 where it broadcasts) */
    struct enode *a[3];                 /* operands (references held) */
    int           count;                /* nodes under it, counted as a tree */
    blockset_t   *bs;                   /* N_BLOCKS: whose blocks (reference held) */
    int           src_ndim;             /* leaves: axes of the source */
    int64_t       src_shape[CASK_MAX_NDIM]; /* leaves: the source's extents */
    int8_t        map[CASK_MAX_NDIM];   /* leaves: source axis of each axis, or -1 */
    double        p[3];                 /* N_GEN, N_CONST parameters (array.h) */
    int64_t       ip[2];
} enode_t;

struct cask_array {
    atomic_uint   refs;
    cask_graph_t *g;                    /* a reference held */
    cask_dtype_t  dtype;
    int           ndim;
    int64_t       shape[CASK_MAX_NDIM];
    int64_t       chunk[CASK_MAX_NDIM]; /* normalised: 1 .. max(extent, 1) */
    enode_t      *e;                    /* what its elements are */
    blockset_t   *bs;                   /* its blocks' tasks, once made */
};

static const char *const binop_names[] = { "add", "sub", "mul", "div", "pow", "lt",
                                           "le", "gt", "ge", "eq", "ne" };
static const char *const unop_names[] = { "neg", "abs", "sqrt", "exp", "log", "sin", "cos" };
static const char *const red_names[] = { "sum", "prod", "min", "max", "mean", "var",
                                         "std", "argmin", "argmax", "any", "all" };
static const char *const gen_names[] = { "full", "arange", "uniform", "normal" };

/* "(3, 4)" into buf. */
static const char *shape_str(char *buf, size_t size, int ndim, const int64_t *shape)
{
    size_t at = (size_t)snprintf(buf, size, "(");
    for (int x = 0; x < ndim && at < size; x++)
        at += (size_t)snprintf(buf + at, size - at, "%s%lld", x ? ", " : "", (long long)shape[x]);
    if (at < size)
        snprintf(buf + at, size - at, ndim == 1 ? ",)" : ")");
    return buf;
}

/* ------------------------------------------------------------ reference counts */

static void blockset_decref(blockset_t *b)
{
    if (b && atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1) {
        cask__free(b->tasks);
        cask__free(b);
    }
}

/* Depth is bounded: an expression never grows past AR_MAX_NODES. */
static void node_decref(enode_t *e)
{
    if (!e || atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (int k = 0; k < 3; k++)
        node_decref(e->a[k]);
    blockset_decref(e->bs);
    cask__free(e);
}

static enode_t *node_new(int kind, int op, cask_dtype_t dtype, int ndim, const int64_t *shape)
{
    enode_t *e = cask__calloc(1, sizeof *e);
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
    node_decref(a->e);
    blockset_decref(a->bs);
    cask_graph_decref(a->g);
    cask__free(a);
}

/* ------------------------------------------------------------------ arrays */

static size_t grid_blocks(int ndim, const int64_t *shape, const int64_t *chunk)
{
    size_t n = 1;
    for (int x = 0; x < ndim; x++)
        n *= (size_t)ar_nblocks(shape[x], chunk[x]);
    return n;
}

/* Check dtype, ndim, shape and chunks; fill the normalised chunks. */
static int check_layout(cask_dtype_t dtype, int ndim, const int64_t *shape,
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

static cask_array_t *array_new(cask_graph_t *g, enode_t *e, const int64_t *chunk,
                               cask_error_t *err)
{
    cask_array_t *a = e ? cask__calloc(1, sizeof *a) : NULL;
    if (!a) {
        node_decref(e);
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
static enode_t *blocks_leaf(blockset_t *b, cask_dtype_t dtype, int ndim, const int64_t *shape)
{
    enode_t *e = node_new(N_BLOCKS, 0, dtype, ndim, shape);
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

static blockset_t *blockset_new(int ndim, const int64_t *shape, const int64_t *chunk)
{
    blockset_t *b = cask__calloc(1, sizeof *b);
    if (!b)
        return NULL;
    atomic_init(&b->refs, 1);
    b->ndim = ndim;
    memcpy(b->chunk, chunk, (size_t)ndim * sizeof *chunk);
    b->n = grid_blocks(ndim, shape, chunk);
    if (!(b->tasks = cask__malloc(b->n * sizeof *b->tasks))) {
        cask__free(b);
        return NULL;
    }
    return b;
}

/* An array over the blocks b (stolen), which hold dtype values. */
static cask_array_t *blocks_array(cask_graph_t *g, blockset_t *b, cask_dtype_t dtype, int ndim,
                                  const int64_t *shape, cask_error_t *err)
{
    cask_array_t *a = array_new(g, blocks_leaf(b, dtype, ndim, shape), b->chunk, err);
    if (a)
        a->bs = b;
    else
        blockset_decref(b);
    return a;
}

/* The header of a program or description for this layout of dtype. */
static ar_phead_t head_for(cask_dtype_t dtype, int ndim, const int64_t *shape,
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
    if (check_layout(dtype, ndim, shape, chunks, chunk, err))
        return NULL;
    size_t size = 1, sz = cask_dtype_size(dtype);
    for (int x = 0; x < ndim; x++)
        size *= (size_t)shape[x];
    if (!data && size)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "data is NULL"), NULL;
    blockset_t *b = blockset_new(ndim, shape, chunk);
    if (!b)
        return cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for an array"), NULL;
    ar_phead_t h = head_for(dtype, ndim, shape, chunk);
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
                                  .inputs = in };
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
    return blocks_array(g, b, dtype, ndim, shape, err);
fail:
    cask_value_decref(&desc);
    blockset_decref(b);
    return NULL;
}

cask_array_t *cask_array_full(cask_graph_t *g, cask_dtype_t dtype, int ndim,
                              const int64_t *shape, const int64_t *chunks, double value,
                              cask_error_t *err)
{
    int64_t chunk[CASK_MAX_NDIM];
    if (!g)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "graph is NULL"), NULL;
    if (check_layout(dtype, ndim, shape, chunks, chunk, err))
        return NULL;
    if (dtype == CASK_I64 && !(fabs(value) < 0x1p63))
        return cask__err(err, CASK_EINVAL, NULL, NULL, "%g is not an int64", value), NULL;
    enode_t *e = node_new(N_CONST, 0, dtype, ndim, shape);
    if (e) {
        e->p[0] = value;
        e->ip[0] = dtype == CASK_BOOL ? value != 0 : dtype == CASK_I64 ? (int64_t)value : 0;
    }
    return array_new(g, e, chunk, err);
}

/* A generator leaf over a whole array of this shape. */
static cask_array_t *gen_array(cask_graph_t *g, int gen, cask_dtype_t dtype, int ndim,
                               const int64_t *shape, const int64_t *chunks, const double *p,
                               const int64_t *ip, cask_error_t *err)
{
    int64_t chunk[CASK_MAX_NDIM];
    if (!g)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "graph is NULL"), NULL;
    if (check_layout(dtype, ndim, shape, chunks, chunk, err))
        return NULL;
    enode_t *e = node_new(N_GEN, gen, dtype, ndim, shape);
    if (e) {
        e->src_ndim = ndim;
        memcpy(e->src_shape, shape, (size_t)ndim * sizeof *shape);
        for (int x = 0; x < ndim; x++)
            e->map[x] = (int8_t)x;
        memcpy(e->p, p, sizeof e->p);
        memcpy(e->ip, ip, sizeof e->ip);
    }
    return array_new(g, e, chunk, err);
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

/* ------------------------------------------------------------ compiling */

/* A program under construction: the nodes in topological order. */
typedef struct prog {
    const enode_t *node[AR_MAX_NODES];
    int            n;
    int            leaves;        /* N_BLOCKS nodes so far */
    uint64_t       token;         /* mixes in what the leaves read */
} prog_t;

/* Index of e in p, adding it (operands first); -1 if there is no room. */
static int prog_add(prog_t *p, const enode_t *e)
{
    for (int i = 0; i < p->n; i++)
        if (p->node[i] == e)
            return i;
    for (int k = 0; k < 3; k++)
        if (e->a[k] && prog_add(p, e->a[k]) < 0)
            return -1;
    if (p->n == AR_MAX_NODES)
        return -1;
    p->node[p->n] = e;
    if (e->kind == N_BLOCKS)
        p->leaves++;
    return p->n++;
}

/* A compiled program and what its tasks need beside it. */
typedef struct compiled {
    cask_value_t   prog;                /* the program, a bytes value (a reference) */
    const enode_t *leaf[AR_MAX_NODES];  /* its N_BLOCKS leaves, in argument order */
    int            nleaf;
    uint64_t       token;               /* the key token of its tasks */
} compiled_t;

/* The program for a's expression over a's layout (red < 0: no
** reduction) into *c; release c->prog when done. */
static int compile(const cask_array_t *a, int red, unsigned axes, int ddof, compiled_t *c,
                   cask_error_t *err)
{
    prog_t p = { .n = 0 };
    if (prog_add(&p, a->e) < 0)
        return cask__err(err, CASK_ELIMIT, NULL, NULL, "an expression of over %d nodes",
                         AR_MAX_NODES);
    size_t len = sizeof(ar_phead_t) + (size_t)p.n * sizeof(ar_pnode_t);
    unsigned char *buf = cask__calloc(1, len);
    if (!buf)
        return cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for a program");
    ar_phead_t *h = (ar_phead_t *)buf;
    *h = head_for(a->dtype, a->ndim, a->shape, a->chunk);
    h->nnodes = (uint32_t)p.n;
    h->red = red;
    h->axes = axes;
    h->ddof = ddof;
    ar_pnode_t *nd = (ar_pnode_t *)(h + 1);
    uint64_t tk = 0;
    c->nleaf = 0;
    for (int i = 0; i < p.n; i++) {
        const enode_t *e = p.node[i];
        ar_pnode_t *q = &nd[i];
        q->kind = e->kind;
        q->op = e->op;
        q->dtype = (uint8_t)e->dtype;
        q->src_ndim = (uint8_t)e->src_ndim;
        q->a = q->b = q->c = q->arg = -1;
        int16_t *ops[3] = { &q->a, &q->b, &q->c };
        for (int k = 0; k < 3; k++)
            if (e->a[k])
                *ops[k] = (int16_t)prog_add(&p, e->a[k]);
        memset(q->map, -1, sizeof q->map);
        for (int x = 0; x < a->ndim; x++) /* an extent-1 leaf axis stretches: no source step */
            q->map[x] = e->shape[x] == 1 && a->shape[x] != 1 ? -1 : e->map[x];
        memcpy(q->src_shape, e->src_shape, sizeof q->src_shape);
        memcpy(q->p, e->p, sizeof q->p);
        memcpy(q->ip, e->ip, sizeof q->ip);
        if (e->kind == N_BLOCKS) {
            q->arg = (int16_t)(3 + c->nleaf);
            c->leaf[c->nleaf++] = e;
            /* what it reads: the key of its first block names the set */
            const char *k0 = cask_graph_key(a->g, e->bs->tasks[0]);
            tk = cask__hash(k0, strlen(k0), tk + 1);
        }
    }
    c->token = cask__hash(buf, len, tk) | 1;
    int rc = cask_value_bytes(buf, len, &c->prog, err);
    cask__free(buf);
    return rc;
}

/* The task of leaf e's block under the block of a's grid at coords c. */
static cask_task_t leaf_task(const enode_t *e, int ndim, const int64_t *c)
{
    int64_t sc[CASK_MAX_NDIM] = { 0 };
    for (int x = 0; x < ndim; x++)
        if (e->map[x] >= 0 && e->shape[x] != 1)
            sc[e->map[x]] = c[x];
    size_t flat = 0;
    const blockset_t *b = e->bs;
    for (int s = 0; s < e->src_ndim; s++) {
        flat = flat * (size_t)ar_nblocks(e->src_shape[s], b->chunk[s]) + (size_t)sc[s];
    }
    return b->tasks[flat];
}

/* Coordinates of block i in the grid nb[0..ndim). */
static void grid_coords(int ndim, const int64_t *nb, int64_t i, int64_t *c)
{
    for (int x = ndim; x-- > 0;) {
        c[x] = i % nb[x];
        i /= nb[x];
    }
}

static void grid_extents(int ndim, const int64_t *shape, const int64_t *chunk, int64_t *nb)
{
    for (int x = 0; x < ndim; x++)
        nb[x] = ar_nblocks(shape[x], chunk[x]);
}

/* Add one task per block of a running program cp (kernel, with flag
** `final` as argument 2) into tasks[0..blocks). */
static int add_block_tasks(cask_array_t *a, const compiled_t *cp, const char *kernel,
                           const char *name, int64_t final, cask_task_t *tasks,
                           cask_error_t *err)
{
    cask_value_t in[3 + AR_MAX_NODES];
    int64_t nb[CASK_MAX_NDIM], c[CASK_MAX_NDIM];
    grid_extents(a->ndim, a->shape, a->chunk, nb);
    size_t n = grid_blocks(a->ndim, a->shape, a->chunk);
    int rc = 0;
    in[0] = cp->prog;
    in[2] = cask_int(final);
    for (size_t i = 0; i < n && !rc; i++) {
        grid_coords(a->ndim, nb, (int64_t)i, c);
        in[1] = cask_int((int64_t)i);
        for (int k = 0; k < cp->nleaf; k++)
            in[3 + k] = cask_ref(leaf_task(cp->leaf[k], a->ndim, c));
        cask_task_spec_t spec = { .kernel = kernel, .inputs = in,
                                  .n_inputs = 3 + (size_t)cp->nleaf, .name = name,
                                  .token = cp->token, .index = i };
        rc = cask_graph_add(a->g, &spec, &tasks[i], err);
    }
    return rc;
}

/* Give a its blocks' tasks, if it has none yet. */
static int materialize(cask_array_t *a, cask_error_t *err)
{
    if (a->bs)
        return 0;
    blockset_t *b = blockset_new(a->ndim, a->shape, a->chunk);
    if (!b)
        return cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for an array's tasks");
    const enode_t *e = a->e;
    const char *name = e->kind == N_BINARY ? binop_names[e->op]
                     : e->kind == N_UNARY ? unop_names[e->op]
                     : e->kind == N_GEN ? gen_names[e->op]
                     : e->kind == N_CONST ? "full" : e->kind == N_WHERE ? "where"
                     : e->kind == N_CAST ? "astype" : "array";
    compiled_t cp;
    int rc = compile(a, -1, 0, 0, &cp, err);
    if (!rc) {
        rc = add_block_tasks(a, &cp, "cask.array.eval", name, 0, b->tasks, err);
        cask_value_decref(&cp.prog);
    }
    if (rc) {
        blockset_decref(b);
        return rc;
    }
    a->bs = b;
    return 0;
}

/* ------------------------------------------------------------ elementwise */

/* A copy of e with axes rearranged: new axis x is old axis from[x], or a
** new extent-1 axis when from[x] < 0. Shared operands stay shared. */
typedef struct remap {
    int ndim;
    int from[CASK_MAX_NDIM];
    const enode_t *old[AR_MAX_NODES];
    enode_t *new[AR_MAX_NODES];
    int n;
} remap_t;

static enode_t *remap(remap_t *m, enode_t *e)
{
    for (int i = 0; i < m->n; i++)
        if (m->old[i] == e) {
            atomic_fetch_add_explicit(&m->new[i]->refs, 1, memory_order_relaxed);
            return m->new[i];
        }
    int64_t shape[CASK_MAX_NDIM];
    for (int x = 0; x < m->ndim; x++)
        shape[x] = m->from[x] >= 0 ? e->shape[m->from[x]] : 1;
    enode_t *c = node_new(e->kind, e->op, e->dtype, m->ndim, shape);
    if (!c)
        return NULL;
    c->count = e->count;
    c->src_ndim = e->src_ndim;
    memcpy(c->src_shape, e->src_shape, sizeof c->src_shape);
    memcpy(c->p, e->p, sizeof c->p);
    memcpy(c->ip, e->ip, sizeof c->ip);
    if ((c->bs = e->bs))
        atomic_fetch_add_explicit(&c->bs->refs, 1, memory_order_relaxed);
    for (int x = 0; x < m->ndim; x++)
        c->map[x] = m->from[x] >= 0 ? e->map[m->from[x]] : -1;
    for (int k = 0; k < 3; k++)
        if (e->a[k] && !(c->a[k] = remap(m, e->a[k]))) {
            node_decref(c);
            return NULL;
        }
    if (m->n < AR_MAX_NODES) { /* the table holds no reference */
        m->old[m->n] = e;
        m->new[m->n++] = c;
    }
    return c;
}

/* e with ndim axes, extent-1 axes added in front (a new reference). */
static enode_t *expand(enode_t *e, int ndim)
{
    if (e->ndim == ndim) {
        atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
        return e;
    }
    remap_t m = { .ndim = ndim, .n = 0 };
    for (int x = 0; x < ndim; x++)
        m.from[x] = x - (ndim - e->ndim);
    return remap(&m, e);
}

/* Whether e reads blocks anywhere (then its chunks are not free). */
static bool has_blocks(const enode_t *e)
{
    if (e->kind == N_BLOCKS)
        return true;
    for (int k = 0; k < 3; k++)
        if (e->a[k] && has_blocks(e->a[k]))
            return true;
    return false;
}

/* Check that every block leaf of e lines up with chunk (0 or EINVAL). */
static int check_chunks(const enode_t *e, const int64_t *chunk, cask_error_t *err)
{
    if (e->kind == N_BLOCKS)
        for (int x = 0; x < e->ndim; x++)
            if (e->map[x] >= 0 && e->shape[x] != 1 && e->bs->chunk[e->map[x]] != chunk[x])
                return cask__err(err, CASK_EINVAL, NULL, NULL,
                                 "chunks differ along axis %d: %lld and %lld", x,
                                 (long long)e->bs->chunk[e->map[x]], (long long)chunk[x]);
    for (int k = 0; k < 3; k++)
        if (e->a[k] && check_chunks(e->a[k], chunk, err))
            return CASK_EINVAL;
    return 0;
}

static int rank_of(cask_dtype_t d)
{
    return d == CASK_BOOL ? 0 : d == CASK_I64 ? 1 : d == CASK_F32 ? 2 : 3;
}

/* NumPy's promotion of two array dtypes. */
static cask_dtype_t promote(cask_dtype_t a, cask_dtype_t b)
{
    if ((a == CASK_F32 && b == CASK_I64) || (a == CASK_I64 && b == CASK_F32))
        return CASK_F64;
    return rank_of(a) >= rank_of(b) ? a : b;
}

/* e converted to dtype (a new reference; e itself when it has it). */
static enode_t *cast_node(enode_t *e, cask_dtype_t dtype)
{
    if (e->dtype == dtype) {
        atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
        return e;
    }
    enode_t *c = node_new(N_CAST, 0, dtype, e->ndim, e->shape);
    if (c) {
        atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
        c->a[0] = e;
        c->count = e->count + 1;
    }
    return c;
}

/* A leaf over x's blocks, made first if need be (a new reference). */
static enode_t *as_leaf(cask_array_t *x, cask_error_t *err)
{
    if (materialize(x, err))
        return NULL;
    enode_t *e = blocks_leaf(x->bs, x->dtype, x->ndim, x->shape);
    if (!e)
        cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for an expression");
    return e;
}

/*
** The node kind(op) over arrays x[0..n) (n = 1 .. 3), of dtype out (-1:
** the operands' common type, into which they are cast first), with
** broadcasting and the chunk rules; a new array or NULL.
*/
static cask_array_t *combine(int kind, int op, int out, cask_array_t **x, int n,
                             cask_error_t *err)
{
    for (int k = 0; k < n; k++)
        if (!x[k])
            return cask__err(err, CASK_EINVAL, NULL, NULL,
                             "an operand is NULL (an earlier array call failed)"), NULL;
    for (int k = 1; k < n; k++)
        if (x[k]->g != x[0]->g)
            return cask__err(err, CASK_EINVAL, NULL, NULL,
                             "operands belong to different graphs"), NULL;
    int ndim = 0, count = 1;
    for (int k = 0; k < n; k++) {
        ndim = x[k]->ndim > ndim ? x[k]->ndim : ndim;
        count += x[k]->e->count;
    }
    /* The result's extents, and whose chunks it takes along each axis:
    ** the first operand that reads blocks there, else the first there. */
    int64_t shape[CASK_MAX_NDIM], chunk[CASK_MAX_NDIM];
    bool fixed[3];
    for (int k = 0; k < n; k++)
        fixed[k] = has_blocks(x[k]->e);
    for (int ax = 0; ax < ndim; ax++) {
        int64_t ext = 1;
        int who = -1;
        for (int k = 0; k < n; k++) {
            int xa = ax - (ndim - x[k]->ndim);
            if (xa < 0)
                continue;
            int64_t e = x[k]->shape[xa];
            if (e != 1 && ext != 1 && e != ext) {
                char s1[96], s2[96];
                return cask__err(err, CASK_EINVAL, NULL, NULL,
                                 "shapes %s and %s do not broadcast",
                                 shape_str(s1, sizeof s1, x[0]->ndim, x[0]->shape),
                                 shape_str(s2, sizeof s2, x[k]->ndim, x[k]->shape)), NULL;
            }
            if (e != 1 || ext == 1)
                ext = e;
        }
        for (int pass = 0; pass < 2 && who < 0; pass++)
            for (int k = 0; k < n && who < 0; k++) {
                int xa = ax - (ndim - x[k]->ndim);
                if (xa >= 0 && x[k]->shape[xa] == ext && (pass || fixed[k]))
                    who = k;
            }
        shape[ax] = ext;
        chunk[ax] = x[who]->chunk[ax - (ndim - x[who]->ndim)];
    }
    int first = n == 3 ? 1 : 0; /* where: the condition does not count */
    cask_dtype_t common = x[first]->dtype;
    for (int k = first + 1; k < n; k++)
        common = promote(common, x[k]->dtype);
    if (out < 0)
        out = kind == N_BINARY && op >= CASK_LT ? CASK_BOOL : (int)common;
    enode_t *ops[3] = { NULL, NULL, NULL }, *e = NULL;
    for (int k = 0; k < n; k++) {
        enode_t *src = x[k]->e, *leaf = NULL;
        if (count > AR_MAX_NODES && src->count > 1) { /* too long: read its blocks */
            if (!(leaf = as_leaf(x[k], err)))
                goto fail;
            src = leaf;
        }
        enode_t *ex = expand(src, ndim);
        node_decref(leaf);
        bool is_cond = n == 3 && k == 0;
        ops[k] = ex ? (is_cond ? ex : cast_node(ex, common)) : NULL;
        if (ex && !is_cond)
            node_decref(ex);
        if (!ops[k]) {
            cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for an expression");
            goto fail;
        }
        if (check_chunks(ops[k], chunk, err))
            goto fail;
    }
    if (!(e = node_new(kind, op, (cask_dtype_t)out, ndim, shape))) {
        cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for an expression");
        goto fail;
    }
    e->count = 1;
    for (int k = 0; k < n; k++) {
        e->a[k] = ops[k];
        e->count += ops[k]->count;
    }
    return array_new(x[0]->g, e, chunk, err);
fail:
    for (int k = 0; k < n; k++)
        node_decref(ops[k]);
    return NULL;
}

cask_array_t *cask_array_binop(cask_array_t *a, cask_binop_t op, cask_array_t *b,
                               cask_error_t *err)
{
    if ((unsigned)op > CASK_NE)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "unknown binary operation %d", (int)op),
               NULL;
    if (a && b && op < CASK_LT) {
        cask_dtype_t c = promote(a->dtype, b->dtype);
        if (c == CASK_BOOL && op != CASK_DIV)
            return cask__err(err, CASK_ETYPE, NULL, NULL,
                             "%s of two bool arrays: cast one with cask_array_astype",
                             binop_names[op]), NULL;
        if ((op == CASK_DIV || op == CASK_POW) && (c == CASK_I64 || c == CASK_BOOL)) {
            cask_array_t *fa = cask_array_astype(a, CASK_F64, err);
            cask_array_t *fb = fa ? cask_array_astype(b, CASK_F64, err) : NULL;
            cask_array_t *fx[2] = { fa, fb }, *r = fb ? combine(N_BINARY, op, -1, fx, 2, err) : NULL;
            cask_array_decref(fa);
            cask_array_decref(fb);
            return r;
        }
    }
    cask_array_t *x[2] = { a, b };
    return combine(N_BINARY, op, -1, x, 2, err);
}

/* A 0-d constant for scalar s next to array a, typed as NumPy types a
** Python scalar: it does not widen a's type unless it must. */
static cask_array_t *scalar_for(cask_array_t *a, cask_value_t s, cask_error_t *err)
{
    if (!a)
        return cask__err(err, CASK_EINVAL, NULL, NULL,
                         "an operand is NULL (an earlier array call failed)"), NULL;
    cask_dtype_t dt;
    if (s.type == CASK_INT64)
        dt = a->dtype == CASK_BOOL ? CASK_I64 : a->dtype;
    else if (s.type == CASK_DOUBLE)
        dt = a->dtype == CASK_F32 ? CASK_F32 : CASK_F64;
    else
        return cask__err(err, CASK_ETYPE, NULL, NULL, "a scalar must be an int64 or a double, "
                                                      "not a %s", cask_type_name(s.type)), NULL;
    enode_t *e = node_new(N_CONST, 0, dt, 0, NULL);
    if (e) {
        e->p[0] = s.type == CASK_INT64 ? (double)s.u.i : s.u.d;
        e->ip[0] = s.type == CASK_INT64 ? s.u.i : 0; /* a double never makes an int64 */
    }
    return array_new(a->g, e, NULL, err);
}

cask_array_t *cask_array_binop_scalar(cask_array_t *a, cask_binop_t op, cask_value_t s,
                                      cask_error_t *err)
{
    cask_array_t *c = scalar_for(a, s, err);
    cask_array_t *r = c ? cask_array_binop(a, op, c, err) : NULL;
    cask_array_decref(c);
    return r;
}

cask_array_t *cask_array_scalar_binop(cask_value_t s, cask_binop_t op, cask_array_t *a,
                                      cask_error_t *err)
{
    cask_array_t *c = scalar_for(a, s, err);
    cask_array_t *r = c ? cask_array_binop(c, op, a, err) : NULL;
    cask_array_decref(c);
    return r;
}

cask_array_t *cask_array_unop(cask_array_t *a, cask_unop_t op, cask_error_t *err)
{
    if ((unsigned)op > CASK_COS)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "unknown unary operation %d", (int)op),
               NULL;
    if (!a)
        return cask__err(err, CASK_EINVAL, NULL, NULL,
                         "an operand is NULL (an earlier array call failed)"), NULL;
    if (a->dtype == CASK_BOOL && op == CASK_NEG)
        return cask__err(err, CASK_ETYPE, NULL, NULL, "neg of a bool array"), NULL;
    if (a->dtype == CASK_BOOL && op == CASK_ABS) {
        cask_array_incref(a);
        return a;
    }
    if (op >= CASK_SQRT && (a->dtype == CASK_I64 || a->dtype == CASK_BOOL)) {
        cask_array_t *f = cask_array_astype(a, CASK_F64, err);
        cask_array_t *r = f ? cask_array_unop(f, op, err) : NULL;
        cask_array_decref(f);
        return r;
    }
    cask_array_t *x[1] = { a };
    return combine(N_UNARY, op, -1, x, 1, err);
}

cask_array_t *cask_array_where(cask_array_t *cond, cask_array_t *a, cask_array_t *b,
                               cask_error_t *err)
{
    if (cond && cond->dtype != CASK_BOOL)
        return cask__err(err, CASK_ETYPE, NULL, NULL, "where: the condition is %s, not bool",
                         cask_dtype_name(cond->dtype)), NULL;
    cask_array_t *x[3] = { cond, a, b };
    return combine(N_WHERE, 0, -1, x, 3, err);
}

cask_array_t *cask_array_astype(cask_array_t *a, cask_dtype_t dtype, cask_error_t *err)
{
    if ((unsigned)dtype > CASK_BOOL)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "unknown dtype %d", (int)dtype), NULL;
    cask_array_t *x[1] = { a };
    return combine(N_CAST, 0, dtype, x, 1, err);
}

cask_array_t *cask_array_transpose(cask_array_t *a, const int *perm, cask_error_t *err)
{
    if (!a)
        return cask__err(err, CASK_EINVAL, NULL, NULL,
                         "an operand is NULL (an earlier array call failed)"), NULL;
    remap_t m = { .ndim = a->ndim, .n = 0 };
    int64_t chunk[CASK_MAX_NDIM];
    unsigned seen = 0;
    for (int x = 0; x < a->ndim; x++) {
        int p = perm ? perm[x] : a->ndim - 1 - x;
        if (p < 0 || p >= a->ndim || (seen & (1u << p)))
            return cask__err(err, CASK_EINVAL, NULL, NULL,
                             "axes must be a permutation of 0 .. %d", a->ndim - 1), NULL;
        seen |= 1u << p;
        m.from[x] = p;
        chunk[x] = a->chunk[p];
    }
    enode_t *e = remap(&m, a->e);
    if (!e)
        return cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for an expression"), NULL;
    return array_new(a->g, e, chunk, err);
}

cask_array_t *cask_array_matmul(cask_array_t *a, cask_array_t *b, cask_error_t *err)
{
    if (!a || !b)
        return cask__err(err, CASK_EINVAL, NULL, NULL,
                         "an operand is NULL (an earlier array call failed)"), NULL;
    char s1[96], s2[96];
    if (a->g != b->g)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "operands belong to different graphs"),
               NULL;
    if (a->ndim != 2 || b->ndim != 2 || a->shape[1] != b->shape[0])
        return cask__err(err, CASK_EINVAL, NULL, NULL, "matmul of shapes %s and %s",
                         shape_str(s1, sizeof s1, a->ndim, a->shape),
                         shape_str(s2, sizeof s2, b->ndim, b->shape)), NULL;
    if ((a->dtype != CASK_F64 && a->dtype != CASK_F32) ||
        (b->dtype != CASK_F64 && b->dtype != CASK_F32))
        return cask__err(err, CASK_ETYPE, NULL, NULL,
                         "matmul of %s and %s: cast to float64 or float32 first",
                         cask_dtype_name(a->dtype), cask_dtype_name(b->dtype)), NULL;
    if (a->chunk[1] != b->chunk[0])
        return cask__err(err, CASK_EINVAL, NULL, NULL,
                         "matmul: a's column chunks (%lld) differ from b's row chunks (%lld)",
                         (long long)a->chunk[1], (long long)b->chunk[0]), NULL;
    cask_dtype_t dt = a->dtype == CASK_F32 && b->dtype == CASK_F32 ? CASK_F32 : CASK_F64;
    cask_array_t *fa = NULL, *fb = NULL, *res = NULL;
    int64_t shape[2] = { a->shape[0], b->shape[1] }, chunk[2] = { a->chunk[0], b->chunk[1] };
    if (!(fa = a->dtype == dt ? (cask_array_incref(a), a) : cask_array_astype(a, dt, err)) ||
        !(fb = b->dtype == dt ? (cask_array_incref(b), b) : cask_array_astype(b, dt, err)) ||
        materialize(fa, err) || materialize(fb, err))
        goto out;
    int64_t ni = grid_blocks(1, &fa->shape[0], &fa->chunk[0]);
    int64_t nk = grid_blocks(1, &fa->shape[1], &fa->chunk[1]);
    int64_t nj = grid_blocks(1, &fb->shape[1], &fb->chunk[1]);
    blockset_t *bs = blockset_new(2, shape, chunk);
    cask_value_t *in = cask__malloc((size_t)(2 * nk + 1) * sizeof *in);
    if (!bs || !in) {
        blockset_decref(bs);
        cask__free(in);
        cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for a matmul");
        goto out;
    }
    const char *ka = cask_graph_key(a->g, fa->bs->tasks[0]), *kb = cask_graph_key(a->g, fb->bs->tasks[0]);
    uint64_t token = cask__hash(kb, strlen(kb), cask__hash(ka, strlen(ka), 7)) | 1;
    int rc = 0;
    in[0] = cask_int(nk);
    for (int64_t i = 0; i < ni && !rc; i++)
        for (int64_t j = 0; j < nj && !rc; j++) {
            for (int64_t l = 0; l < nk; l++) {
                in[1 + l] = cask_ref(fa->bs->tasks[i * nk + l]);
                in[1 + nk + l] = cask_ref(fb->bs->tasks[l * nj + j]);
            }
            cask_task_spec_t spec = { .kernel = "cask.array.matmul", .inputs = in,
                                      .n_inputs = (size_t)(2 * nk + 1), .name = "matmul",
                                      .token = token, .index = (uint64_t)(i * nj + j) };
            rc = cask_graph_add(a->g, &spec, &bs->tasks[i * nj + j], err);
        }
    cask__free(in);
    if (rc)
        blockset_decref(bs);
    else
        res = blocks_array(a->g, bs, dt, 2, shape, err);
out:
    cask_array_decref(fa);
    cask_array_decref(fb);
    return res;
}

/* An array whose element c is a's element start + step * c, of this
** shape and chunks (normalised), one gather task per block. */
static cask_array_t *gather(cask_array_t *a, const int64_t *shape, const int64_t *chunk,
                            const int64_t *start, const int64_t *step, const char *name,
                            cask_error_t *err)
{
    int nd = a->ndim;
    if (materialize(a, err))
        return NULL;
    ar_gather_t d;
    memset(&d, 0, sizeof d);
    d.out = head_for(a->dtype, nd, shape, chunk);
    for (int x = 0; x < nd; x++) {
        d.src_shape[x] = a->shape[x];
        d.src_chunk[x] = a->chunk[x];
        d.start[x] = start[x];
        d.step[x] = step[x];
    }
    blockset_t *b = blockset_new(nd, shape, chunk);
    int64_t snb[CASK_MAX_NDIM], onb[CASK_MAX_NDIM];
    grid_extents(nd, a->shape, a->chunk, snb);
    grid_extents(nd, shape, chunk, onb);
    size_t most = 1; /* source blocks one output block can touch */
    for (int x = 0; x < nd; x++)
        most *= (size_t)(snb[x] < chunk[x] ? snb[x] : chunk[x]);
    int64_t *touch[CASK_MAX_NDIM] = { NULL }, nt[CASK_MAX_NDIM];
    cask_value_t desc = cask_none(), idx = cask_none(), *in = NULL;
    int rc = 0;
    cask_array_t *res = NULL;
    for (int x = 0; x < nd && b; x++)
        if (!(touch[x] = cask__malloc((size_t)chunk[x] * sizeof **touch)))
            rc = CASK_ENOMEM;
    if (!b || rc || !(in = cask__malloc((3 + most) * sizeof *in)) ||
        cask_value_bytes(&d, sizeof d, &desc, err)) {
        rc = cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for a gather");
        goto out;
    }
    const char *k0 = cask_graph_key(a->g, a->bs->tasks[0]);
    uint64_t token = cask__hash(&d, sizeof d, cask__hash(k0, strlen(k0), 11)) | 1;
    int64_t c[CASK_MAX_NDIM];
    for (size_t i = 0; i < b->n && !rc; i++) {
        grid_coords(nd, onb, (int64_t)i, c);
        size_t total = 1;
        bool empty = false;
        for (int x = 0; x < nd; x++) { /* the source blocks this block touches, per axis */
            int64_t lo = c[x] * chunk[x], hi = lo + chunk[x] < shape[x] ? lo + chunk[x] : shape[x];
            nt[x] = 0;
            for (int64_t j = lo; j < hi; j++) {
                int64_t blk = (start[x] + step[x] * j) / a->chunk[x];
                if (!nt[x] || touch[x][nt[x] - 1] != blk)
                    touch[x][nt[x]++] = blk;
            }
            empty |= !nt[x];
            total *= (size_t)nt[x];
        }
        if (empty) { /* an empty block reads nothing; block 0 keeps the dtype honest */
            total = 1;
            for (int x = 0; x < nd; x++)
                touch[x][0] = 0, nt[x] = 1;
        }
        int64_t one = (int64_t)total;
        if ((rc = cask_value_ndarray(CASK_I64, 1, &one, &idx, err)))
            break;
        cask_nd_t v;
        cask_value_nd(&idx, &v);
        int64_t pos[CASK_MAX_NDIM] = { 0 };
        for (size_t k = 0; k < total; k++) { /* the product of the per-axis lists */
            int64_t flat = 0;
            for (int x = 0; x < nd; x++)
                flat = flat * snb[x] + touch[x][pos[x]];
            ((int64_t *)v.data)[k] = flat;
            in[3 + k] = cask_ref(a->bs->tasks[flat]);
            for (int x = nd - 1; x >= 0 && ++pos[x] == nt[x]; x--)
                pos[x] = 0;
        }
        in[0] = desc;
        in[1] = cask_int((int64_t)i);
        in[2] = idx;
        cask_task_spec_t spec = { .kernel = "cask.array.gather", .inputs = in,
                                  .n_inputs = 3 + total, .name = name, .token = token,
                                  .index = i };
        rc = cask_graph_add(a->g, &spec, &b->tasks[i], err);
        cask_value_decref(&idx);
    }
    if (!rc) {
        res = blocks_array(a->g, b, a->dtype, nd, shape, err);
        b = NULL;
    }
out:
    for (int x = 0; x < nd; x++)
        cask__free(touch[x]);
    cask__free(in);
    cask_value_decref(&desc);
    blockset_decref(b);
    return res;
}

cask_array_t *cask_array_slice(cask_array_t *a, const cask_slice_t *s, int n, cask_error_t *err)
{
    if (!a)
        return cask__err(err, CASK_EINVAL, NULL, NULL,
                         "an operand is NULL (an earlier array call failed)"), NULL;
    if (n < 0 || n > a->ndim || (n && !s))
        return cask__err(err, CASK_EINVAL, NULL, NULL, "%d slices for %d axes", n, a->ndim),
               NULL;
    int64_t shape[CASK_MAX_NDIM], chunk[CASK_MAX_NDIM], start[CASK_MAX_NDIM], step[CASK_MAX_NDIM];
    for (int x = 0; x < a->ndim; x++) {
        int64_t L = a->shape[x], st = 1, lo, hi;
        cask_slice_t q = x < n ? s[x] : (cask_slice_t){ CASK_SLICE_NONE, CASK_SLICE_NONE, 1 };
        if (!q.step)
            return cask__err(err, CASK_EINVAL, NULL, NULL, "slice step 0 along axis %d", x), NULL;
        st = q.step;
        if (q.start != CASK_SLICE_NONE && q.start < 0)
            q.start += L;
        if (q.stop != CASK_SLICE_NONE && q.stop < 0)
            q.stop += L;
        if (st > 0) { /* Python's slice.indices */
            lo = q.start == CASK_SLICE_NONE ? 0 : q.start < 0 ? 0 : q.start > L ? L : q.start;
            hi = q.stop == CASK_SLICE_NONE ? L : q.stop < 0 ? 0 : q.stop > L ? L : q.stop;
            shape[x] = hi > lo ? (hi - lo + st - 1) / st : 0;
        } else {
            lo = q.start == CASK_SLICE_NONE ? L - 1 : q.start < -1 ? -1 : q.start > L - 1 ? L - 1 : q.start;
            hi = q.stop == CASK_SLICE_NONE ? -1 : q.stop < -1 ? -1 : q.stop > L - 1 ? L - 1 : q.stop;
            shape[x] = lo > hi ? (lo - hi - st - 1) / -st : 0;
        }
        start[x] = shape[x] ? lo : 0;
        step[x] = st;
        chunk[x] = a->chunk[x] < (shape[x] ? shape[x] : 1) ? a->chunk[x] : (shape[x] ? shape[x] : 1);
    }
    return gather(a, shape, chunk, start, step, "getitem", err);
}

cask_array_t *cask_array_rechunk(cask_array_t *a, const int64_t *chunks, cask_error_t *err)
{
    if (!a)
        return cask__err(err, CASK_EINVAL, NULL, NULL,
                         "an operand is NULL (an earlier array call failed)"), NULL;
    int64_t chunk[CASK_MAX_NDIM], start[CASK_MAX_NDIM] = { 0 }, step[CASK_MAX_NDIM];
    if (!chunks && a->ndim)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "rechunk needs chunks"), NULL;
    if (check_layout(a->dtype, a->ndim, a->shape, chunks, chunk, err))
        return NULL;
    for (int x = 0; x < a->ndim; x++)
        step[x] = 1;
    return gather(a, a->shape, chunk, start, step, "rechunk", err);
}

cask_array_t *cask_array_concatenate(cask_array_t *const *xs, size_t n, int axis,
                                    cask_error_t *err)
{
    if (!xs || !n)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "concatenate needs at least one array"),
               NULL;
    for (size_t k = 0; k < n; k++)
        if (!xs[k])
            return cask__err(err, CASK_EINVAL, NULL, NULL,
                             "an operand is NULL (an earlier array call failed)"), NULL;
    const cask_array_t *a0 = xs[0];
    int nd = a0->ndim, ax = axis < 0 ? axis + nd : axis;
    if (!nd)
        return cask__err(err, CASK_EINVAL, NULL, NULL,
                         "0-d arrays cannot be concatenated"), NULL;
    if (ax < 0 || ax >= nd)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "axis %d is out of range for %d-d arrays",
                         axis, nd), NULL;
    int64_t shape[CASK_MAX_NDIM], chunk[CASK_MAX_NDIM];
    memcpy(shape, a0->shape, sizeof shape);
    shape[ax] = 0;
    cask_dtype_t dt = a0->dtype;
    int64_t cax = 1; /* along the axis: the largest of the sources' chunks */
    for (size_t k = 0; k < n; k++) {
        const cask_array_t *x = xs[k];
        bool same = x->ndim == nd;
        for (int d = 0; d < nd && same; d++)
            same = d == ax || x->shape[d] == a0->shape[d];
        if (!same) {
            char s1[96], s2[96];
            return cask__err(err, CASK_EINVAL, NULL, NULL,
                             "concatenate along axis %d: shapes %s and %s differ off that axis",
                             ax, shape_str(s1, sizeof s1, nd, a0->shape),
                             shape_str(s2, sizeof s2, x->ndim, x->shape)), NULL;
        }
        if (x->g != a0->g)
            return cask__err(err, CASK_EINVAL, NULL, NULL,
                             "operands belong to different graphs"), NULL;
        shape[ax] += x->shape[ax];
        dt = promote(dt, x->dtype);
        cax = x->chunk[ax] > cax ? x->chunk[ax] : cax;
    }
    memcpy(chunk, a0->chunk, sizeof chunk);
    chunk[ax] = cax;
    if (check_layout(dt, nd, shape, chunk, chunk, err))
        return NULL;
    /* the sources, in the common type, with their blocks made */
    cask_array_t **src = cask__calloc(n, sizeof *src);
    int64_t *off = cask__malloc(n * sizeof *off);
    blockset_t *b = blockset_new(nd, shape, chunk);
    cask_value_t desc = cask_none(), org = cask_none(), *in = NULL;
    int64_t *porg = NULL; /* each piece's origin, nd per piece */
    cask_array_t *res = NULL;
    int rc = 0;
    if (!src || !off || !b) {
        rc = cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for a concatenate");
        goto out;
    }
    size_t most = 0; /* pieces one block can read */
    for (size_t k = 0; k < n && !rc; k++) {
        off[k] = k ? off[k - 1] + xs[k - 1]->shape[ax] : 0;
        if (xs[k]->dtype == dt) {
            cask_array_incref(xs[k]);
            src[k] = xs[k];
        } else if (!(src[k] = cask_array_astype(xs[k], dt, err))) {
            rc = err ? err->code : CASK_ENOMEM;
            break;
        }
        rc = materialize(src[k], err);
        size_t m = 1;
        for (int d = 0; d < nd; d++) {
            int64_t c = src[k]->chunk[d], per = (chunk[d] + c - 1) / c + 1;
            int64_t nbk = ar_nblocks(src[k]->shape[d], c);
            m *= (size_t)(per < nbk ? per : nbk);
        }
        most += m;
    }
    ar_phead_t h = head_for(dt, nd, shape, chunk);
    if (rc || !(in = cask__malloc((3 + most) * sizeof *in)) ||
        !(porg = cask__malloc(most * (size_t)nd * sizeof *porg)) ||
        cask_value_bytes(&h, sizeof h, &desc, err)) {
        rc = rc ? rc : cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for a concatenate");
        goto out;
    }
    uint64_t token = cask__hash(&h, sizeof h, 13);
    for (size_t k = 0; k < n; k++) {
        const char *key = cask_graph_key(a0->g, src[k]->bs->tasks[0]);
        token = cask__hash(key, strlen(key), token);
    }
    token |= 1;
    int64_t onb[CASK_MAX_NDIM], c[CASK_MAX_NDIM];
    grid_extents(nd, shape, chunk, onb);
    for (size_t i = 0; i < b->n && !rc; i++) {
        int64_t bo[CASK_MAX_NDIM], be[CASK_MAX_NDIM];
        grid_coords(nd, onb, (int64_t)i, c);
        for (int d = 0; d < nd; d++) {
            bo[d] = c[d] * chunk[d];
            be[d] = shape[d] - bo[d] < chunk[d] ? shape[d] - bo[d] : chunk[d];
        }
        /* the pieces: every block of every source that overlaps this block */
        size_t np = 0;
        bool exact = false;
        for (size_t k = 0; k < n; k++) {
            const cask_array_t *s = src[k];
            int64_t lo[CASK_MAX_NDIM], hi[CASK_MAX_NDIM], snb[CASK_MAX_NDIM], p[CASK_MAX_NDIM];
            bool empty = false;
            grid_extents(nd, s->shape, s->chunk, snb);
            for (int d = 0; d < nd; d++) { /* the source's block range, per axis */
                int64_t o = d == ax ? off[k] : 0;
                int64_t l = bo[d] - o > 0 ? bo[d] - o : 0;
                int64_t r = bo[d] + be[d] - o < s->shape[d] ? bo[d] + be[d] - o : s->shape[d];
                empty |= l >= r;
                lo[d] = empty ? 0 : l / s->chunk[d];
                hi[d] = empty ? 0 : (r - 1) / s->chunk[d] + 1;
                p[d] = lo[d];
            }
            if (empty)
                continue;
            for (;;) {
                int64_t flat = 0, so[CASK_MAX_NDIM];
                exact = true;
                for (int d = 0; d < nd; d++) {
                    flat = flat * snb[d] + p[d];
                    so[d] = p[d] * s->chunk[d] + (d == ax ? off[k] : 0);
                    int64_t se = s->shape[d] - p[d] * s->chunk[d];
                    se = se < s->chunk[d] ? se : s->chunk[d];
                    exact &= so[d] == bo[d] && se == be[d];
                }
                memcpy(porg + np * (size_t)nd, so, (size_t)nd * sizeof *so);
                in[3 + np++] = cask_ref(s->bs->tasks[flat]);
                int d = nd - 1;
                while (d >= 0 && ++p[d] == hi[d])
                    p[d] = lo[d], d--;
                if (d < 0)
                    break;
            }
        }
        if (np == 1 && exact) { /* the block is one source block as it is */
            b->tasks[i] = in[3].u.task;
            continue;
        }
        int64_t oshape[2] = { (int64_t)np, nd };
        if ((rc = cask_value_ndarray(CASK_I64, 2, oshape, &org, err)))
            break;
        cask_nd_t v;
        cask_value_nd(&org, &v);
        memcpy(v.data, porg, np * (size_t)nd * sizeof *porg);
        in[0] = desc;
        in[1] = cask_int((int64_t)i);
        in[2] = org;
        cask_task_spec_t spec = { .kernel = "cask.array.assemble", .inputs = in,
                                  .n_inputs = 3 + np, .name = "concatenate", .token = token,
                                  .index = i };
        rc = cask_graph_add(a0->g, &spec, &b->tasks[i], err);
        cask_value_decref(&org);
    }
    if (!rc) {
        res = blocks_array(a0->g, b, dt, nd, shape, err);
        b = NULL;
    }
out:
    for (size_t k = 0; src && k < n; k++)
        cask_array_decref(src[k]);
    cask__free(src);
    cask__free(off);
    cask__free(in);
    cask__free(porg);
    cask_value_decref(&desc);
    blockset_decref(b);
    return res;
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
    if (materialize(a, err))
        return NULL;
    blockset_t *b = blockset_new(a->ndim, a->shape, a->chunk);
    cask_value_t *in = cask__malloc((1 + n_args) * sizeof *in);
    if (!b || !in) {
        blockset_decref(b);
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
                                  .group = group, .index = i };
        rc = cask_graph_add(a->g, &spec, &b->tasks[i], err);
    }
    cask__free(in);
    if (rc) {
        blockset_decref(b);
        return NULL;
    }
    return blocks_array(a->g, b, dtype, a->ndim, a->shape, err);
}

/* ------------------------------------------------------------- reductions */

cask_array_t *cask_array_reduce(cask_array_t *a, cask_reduction_t op,
                                const cask_reduce_opts_t *opts, cask_error_t *err)
{
    cask_reduce_opts_t o = opts ? *opts : (cask_reduce_opts_t){ 0 };
    if ((unsigned)op > CASK_ALL)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "unknown reduction %d", (int)op), NULL;
    if (!a)
        return cask__err(err, CASK_EINVAL, NULL, NULL,
                         "an operand is NULL (an earlier array call failed)"), NULL;
    unsigned all = a->ndim ? (1u << a->ndim) - 1 : 0;
    if (o.axes & ~all)
        return cask__err(err, CASK_EINVAL, NULL, NULL,
                         "axes 0x%x: the array has %d axes", o.axes, a->ndim), NULL;
    unsigned axes = o.axes ? o.axes : all;
    if ((op == CASK_ARGMIN || op == CASK_ARGMAX) && axes != all && (axes & (axes - 1)))
        return cask__err(err, CASK_EINVAL, NULL, NULL,
                         "%s over several axes: give one, or all", red_names[op]), NULL;
    if (o.split_every < 0 || o.split_every == 1 || o.ddof < 0)
        return cask__err(err, CASK_EINVAL, NULL, NULL,
                         "split_every %d (at least 2) or ddof %d (at least 0)", o.split_every,
                         o.ddof), NULL;
    int split = o.split_every ? o.split_every : 8;
    /* The result's layout: the kept axes. */
    int kn = 0, rn = 0;
    int64_t kshape[CASK_MAX_NDIM], kchunk[CASK_MAX_NDIM], rsize = 1;
    for (int x = 0; x < a->ndim; x++)
        if (axes & (1u << x)) {
            rn++;
            rsize *= a->shape[x];
        } else {
            kshape[kn] = a->shape[x];
            kchunk[kn++] = a->chunk[x];
        }
    if (!rsize && (op == CASK_MIN || op == CASK_MAX || op == CASK_ARGMIN || op == CASK_ARGMAX))
        return cask__err(err, CASK_EINVAL, NULL, NULL,
                         "%s of an empty extent: it has no identity", red_names[op]), NULL;
    (void)rn;
    size_t nin = grid_blocks(a->ndim, a->shape, a->chunk);
    size_t nout = grid_blocks(kn, kshape, kchunk);
    size_t per = nin / nout; /* input blocks per result block */
    cask_task_t *first = cask__malloc(nin * sizeof *first);
    cask_task_t *group = cask__malloc(nin * sizeof *group);
    size_t *fill = cask__calloc(nout, sizeof *fill);
    blockset_t *b = blockset_new(kn, kshape, kchunk);
    cask_value_t in[3 + 64];
    cask_value_t prog = cask_none();
    cask_array_t *res = NULL;
    int rc = 0;
    if (!first || !group || !fill || !b || split > 64) {
        if (split > 64)
            rc = cask__err(err, CASK_EINVAL, NULL, NULL, "split_every %d: at most 64", split);
        else
            rc = cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for a reduction");
        goto out;
    }
    char name[40], pname[48], cname[48];
    snprintf(name, sizeof name, "%s", red_names[op]);
    snprintf(pname, sizeof pname, "%s-partial", red_names[op]);
    snprintf(cname, sizeof cname, "%s-combine", red_names[op]);
    /* First level: one task per input block, final when it is alone; the
    ** combine tasks read their layout from the same program. */
    compiled_t cp;
    if ((rc = compile(a, op, axes, o.ddof, &cp, err)))
        goto out;
    prog = cp.prog;
    if ((rc = add_block_tasks(a, &cp, "cask.array.reduce", per == 1 ? name : pname, per == 1,
                              first, err)))
        goto out;
    /* Sort the first level by result block, in input order within each. */
    int64_t nb[CASK_MAX_NDIM], c[CASK_MAX_NDIM], knb[CASK_MAX_NDIM];
    grid_extents(a->ndim, a->shape, a->chunk, nb);
    grid_extents(kn, kshape, kchunk, knb);
    for (size_t i = 0; i < nin; i++) {
        grid_coords(a->ndim, nb, (int64_t)i, c);
        size_t k = 0;
        for (int x = 0, y = 0; x < a->ndim; x++)
            if (!(axes & (1u << x)))
                k = k * (size_t)knb[y++] + (size_t)c[x];
        group[k * per + fill[k]++] = first[i];
    }
    if (per == 1) {
        memcpy(b->tasks, group, nout * sizeof *group);
    } else {
        in[0] = prog;
        /* Combine each result block's partials split at a time, level by
        ** level, in order, so the answer never depends on the scheduler. */
        uint64_t index = 0;
        for (size_t k = 0; k < nout && !rc; k++) {
            cask_task_t *t = group + k * per;
            size_t m = per;
            while (m > 1 && !rc) {
                size_t out_m = 0;
                for (size_t s = 0; s < m && !rc; s += (size_t)split) {
                    size_t take = m - s < (size_t)split ? m - s : (size_t)split;
                    bool final = m <= (size_t)split;
                    in[1] = cask_int((int64_t)k);
                    in[2] = cask_int(final);
                    for (size_t j = 0; j < take; j++)
                        in[3 + j] = cask_ref(t[s + j]);
                    cask_task_spec_t spec = { .kernel = "cask.array.combine", .inputs = in,
                                              .n_inputs = 3 + take,
                                              .name = final ? name : cname,
                                              .token = cp.token, .index = index++ };
                    rc = cask_graph_add(a->g, &spec, &t[out_m++], err);
                }
                m = out_m;
            }
            b->tasks[k] = t[0];
        }
        if (rc)
            goto out;
    }
    res = blocks_array(a->g, b, cask__ar_red_dtype(op, a->dtype), kn, kshape, err);
    b = NULL;
out:
    cask_value_decref(&prog);
    blockset_decref(b);
    cask__free(first);
    cask__free(group);
    cask__free(fill);
    return res;
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
    return grid_blocks(a->ndim, a->shape, a->chunk);
}

int64_t cask_array_tasks(cask_array_t *a, cask_task_t *tasks, size_t max, cask_error_t *err)
{
    if (!a)
        return cask__err(err, CASK_EINVAL, NULL, NULL,
                         "the array is NULL (an earlier array call failed)");
    size_t n = cask_array_nblocks(a);
    if (n > max)
        return cask__err(err, CASK_ELIMIT, NULL, NULL, "%zu blocks; room for %zu", n, max);
    int rc = materialize(a, err);
    if (rc)
        return rc;
    memcpy(tasks, a->bs->tasks, n * sizeof *tasks);
    return (int64_t)n;
}

int cask_array_compute(cask_array_t *const *arrays, size_t n, const cask_compute_opts_t *opts,
                       void *const *bufs, cask_compute_info_t *info,
                       cask_error_t *err)
{
    if (!arrays || !bufs || !n)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "nothing to compute");
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (!arrays[i] || (!bufs[i] && cask_array_size(arrays[i])))
            return cask__err(err, CASK_EINVAL, NULL, NULL,
                             "array %zu or its buffer is NULL", i);
        if (arrays[i]->g != arrays[0]->g)
            return cask__err(err, CASK_EINVAL, NULL, NULL,
                             "array %zu belongs to another graph", i);
        int rc = materialize(arrays[i], err);
        if (rc)
            return rc;
        total += arrays[i]->bs->n;
    }
    cask_task_t *outs = cask__malloc(total * sizeof *outs);
    cask_value_t *vals = cask__calloc(total, sizeof *vals);
    int rc = 0;
    if (!outs || !vals) {
        rc = cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for %zu blocks", total);
        goto out;
    }
    for (size_t i = 0, at = 0; i < n; i++) {
        memcpy(outs + at, arrays[i]->bs->tasks, arrays[i]->bs->n * sizeof *outs);
        at += arrays[i]->bs->n;
    }
    if ((rc = cask_compute(arrays[0]->g, outs, total, opts, vals, info, err)))
        goto out;
    /* Every block is checked before any is copied, so a bad one leaves the
    ** buffers untouched. */
    for (int copy = 0; copy < 2; copy++)
        for (size_t i = 0, at = 0; i < n; i++) {
            const cask_array_t *a = arrays[i];
            ar_phead_t h = head_for(a->dtype, a->ndim, a->shape, a->chunk);
            for (size_t k = 0; k < a->bs->n; k++, at++) {
                int64_t bo[CASK_MAX_NDIM], be[CASK_MAX_NDIM];
                cask_nd_t v;
                cask__ar_block_place(&h, (int64_t)k, bo, be);
                if (cask_value_nd(&vals[at], &v) || v.dtype != a->dtype || v.ndim != a->ndim ||
                    memcmp(v.shape, be, (size_t)a->ndim * sizeof *be)) {
                    rc = cask__err(err, CASK_ETYPE, cask_graph_key(a->g, outs[at]), NULL,
                                   "block %zu of array %zu is not a %s block of its shape", k,
                                   i, cask_dtype_name(a->dtype));
                    goto out;
                }
                if (copy)
                    cask__ar_copy_block(a->ndim, a->shape, bo, be, cask_dtype_size(a->dtype),
                                        bufs[i], v.data, false);
            }
        }
out:
    for (size_t i = 0; vals && i < total; i++)
        cask_value_decref(&vals[i]);
    cask__free(vals);
    cask__free(outs);
    return rc;
}

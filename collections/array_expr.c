/*
** collections/array_expr.c: expressions. Elementwise calls only grow an
** array's expression (no task is added); tasks appear when blocks are
** needed: one fused task per block (cask.array.eval) made by
** cask__ar_materialize, or a reduction's first level (array_reduce.c).
** The operations are the rows of array_ops.c: their names, and how they
** type their operands and results.
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

static const char *const gen_names[] = { "full", "arange", "uniform", "normal" };

/* ------------------------------------------------------------ compiling */

/* A program under construction: the nodes in topological order. */
typedef struct prog {
    const ar_enode_t *node[AR_MAX_NODES];
    int            n;
    int            leaves;        /* N_BLOCKS and N_FILE nodes so far */
    uint64_t       token;         /* mixes in what the leaves read */
} prog_t;

/* Index of e in p, adding it (operands first); -1 if there is no room. */
static int prog_add(prog_t *p, const ar_enode_t *e)
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
    if (e->kind == N_BLOCKS || e->kind == N_FILE)
        p->leaves++;
    return p->n++;
}

int cask__ar_compile(const cask_array_t *a, int red, unsigned axes, int ddof, ar_compiled_t *c,
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
    *h = cask__ar_head_for(a->dtype, a->ndim, a->shape, a->chunk);
    h->nnodes = (uint32_t)p.n;
    h->red = red;
    h->axes = axes;
    h->ddof = ddof;
    ar_pnode_t *nd = (ar_pnode_t *)(h + 1);
    uint64_t tk = 0;
    c->nleaf = 0;
    for (int i = 0; i < p.n; i++) {
        const ar_enode_t *e = p.node[i];
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
        } else if (e->kind == N_FILE) {
            q->arg = (int16_t)(3 + c->nleaf);
            c->leaf[c->nleaf++] = e;
            size_t dl; /* what it reads: the file's description */
            const void *d = cask_value_data(&e->src, &dl);
            tk = cask__hash(d, dl, tk + 2);
        }
    }
    c->token = cask__hash(buf, len, tk) | 1;
    int rc = cask_value_bytes(buf, len, &c->prog, err);
    cask__free(buf);
    return rc;
}

/* The task of leaf e's block under the block of a's grid at coords c. */
static cask_task_t leaf_task(const ar_enode_t *e, int ndim, const int64_t *c)
{
    int64_t sc[CASK_MAX_NDIM] = { 0 };
    for (int x = 0; x < ndim; x++)
        if (e->map[x] >= 0 && e->shape[x] != 1)
            sc[e->map[x]] = c[x];
    size_t flat = 0;
    const ar_blockset_t *b = e->bs;
    for (int s = 0; s < e->src_ndim; s++) {
        flat = flat * (size_t)ar_nblocks(e->src_shape[s], b->chunk[s]) + (size_t)sc[s];
    }
    return b->tasks[flat];
}

/* Coordinates of block i in the grid nb[0..ndim). */
void cask__ar_grid_coords(int ndim, const int64_t *nb, int64_t i, int64_t *c)
{
    for (int x = ndim; x-- > 0;) {
        c[x] = i % nb[x];
        i /= nb[x];
    }
}

void cask__ar_grid_extents(int ndim, const int64_t *shape, const int64_t *chunk, int64_t *nb)
{
    for (int x = 0; x < ndim; x++)
        nb[x] = ar_nblocks(shape[x], chunk[x]);
}

uint64_t cask__ar_block_nbytes(cask_dtype_t dtype, int ndim, const int64_t *shape,
                               const int64_t *chunk, size_t i)
{
    uint64_t n = cask_dtype_size(dtype);
    for (int x = ndim; x-- > 0;) {
        int64_t nb = ar_nblocks(shape[x], chunk[x]), c = (int64_t)(i % (uint64_t)nb);
        i /= (uint64_t)nb;
        int64_t left = shape[x] - c * chunk[x];
        n *= (uint64_t)(left < chunk[x] ? left : chunk[x]);
    }
    return n;
}

/* Add one task per block of a running program cp (kernel, with flag
** `final` as argument 2) into tasks[0..blocks), each of output size
** nbytes[i] (NULL: a block of a). */
int cask__ar_add_block_tasks(cask_array_t *a, const ar_compiled_t *cp, const char *kernel,
                           const char *name, int64_t final, const uint64_t *nbytes,
                           cask_task_t *tasks, cask_error_t *err)
{
    cask_value_t in[3 + AR_MAX_NODES];
    int64_t nb[CASK_MAX_NDIM], c[CASK_MAX_NDIM];
    cask__ar_grid_extents(a->ndim, a->shape, a->chunk, nb);
    size_t n = cask__ar_grid_blocks(a->ndim, a->shape, a->chunk);
    int rc = 0;
    in[0] = cp->prog;
    in[2] = cask_int(final);
    for (size_t i = 0; i < n && !rc; i++) {
        cask__ar_grid_coords(a->ndim, nb, (int64_t)i, c);
        in[1] = cask_int((int64_t)i);
        for (int k = 0; k < cp->nleaf; k++)
            in[3 + k] = cp->leaf[k]->kind == N_FILE ? cp->leaf[k]->src
                                                     : cask_ref(leaf_task(cp->leaf[k], a->ndim, c));
        cask_task_spec_t spec = { .kernel = kernel, .inputs = in,
                                  .n_inputs = 3 + (size_t)cp->nleaf, .name = name,
                                  .token = cp->token, .index = i };
        spec.nbytes = nbytes ? nbytes[i]
                             : cask__ar_block_nbytes(a->dtype, a->ndim, a->shape, a->chunk, i);
        rc = cask_graph_add(a->g, &spec, &tasks[i], err);
    }
    return rc;
}

/* Give a its blocks' tasks, if it has none yet. */
int cask__ar_materialize(cask_array_t *a, cask_error_t *err)
{
    if (a->bs)
        return 0;
    ar_blockset_t *b = cask__ar_blockset_new(a->ndim, a->shape, a->chunk);
    if (!b)
        return cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for an array's tasks");
    const ar_enode_t *e = a->e;
    const char *name = e->kind == N_BINARY ? cask__ar_binops[e->op].name
                     : e->kind == N_UNARY ? cask__ar_unops[e->op].name
                     : e->kind == N_GEN ? gen_names[e->op]
                     : e->kind == N_CONST ? "full" : e->kind == N_WHERE ? "where"
                     : e->kind == N_CAST ? "astype"
                     : e->kind == N_FILE ? (e->op == F_NPY ? "npy" : "hdf5") : "array";
    ar_compiled_t cp;
    int rc = cask__ar_compile(a, -1, 0, 0, &cp, err);
    if (!rc) {
        rc = cask__ar_add_block_tasks(a, &cp, "cask.array.eval", name, 0, NULL, b->tasks, err);
        cask_value_decref(&cp.prog);
    }
    if (rc) {
        cask__ar_blockset_decref(b);
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
    const ar_enode_t *old[AR_MAX_NODES];
    ar_enode_t *new[AR_MAX_NODES];
    int n;
} remap_t;

static ar_enode_t *remap(remap_t *m, ar_enode_t *e)
{
    for (int i = 0; i < m->n; i++)
        if (m->old[i] == e) {
            atomic_fetch_add_explicit(&m->new[i]->refs, 1, memory_order_relaxed);
            return m->new[i];
        }
    int64_t shape[CASK_MAX_NDIM];
    for (int x = 0; x < m->ndim; x++)
        shape[x] = m->from[x] >= 0 ? e->shape[m->from[x]] : 1;
    ar_enode_t *c = cask__ar_node_new(e->kind, e->op, e->dtype, m->ndim, shape);
    if (!c)
        return NULL;
    c->count = e->count;
    c->src_ndim = e->src_ndim;
    memcpy(c->src_shape, e->src_shape, sizeof c->src_shape);
    memcpy(c->p, e->p, sizeof c->p);
    memcpy(c->ip, e->ip, sizeof c->ip);
    if ((c->bs = e->bs))
        atomic_fetch_add_explicit(&c->bs->refs, 1, memory_order_relaxed);
    if (e->kind == N_FILE) {
        c->src = e->src;
        cask_value_incref(&c->src);
    }
    for (int x = 0; x < m->ndim; x++)
        c->map[x] = m->from[x] >= 0 ? e->map[m->from[x]] : -1;
    for (int k = 0; k < 3; k++)
        if (e->a[k] && !(c->a[k] = remap(m, e->a[k]))) {
            cask__ar_node_decref(c);
            return NULL;
        }
    if (m->n < AR_MAX_NODES) { /* the table holds no reference */
        m->old[m->n] = e;
        m->new[m->n++] = c;
    }
    return c;
}

/* e with ndim axes, extent-1 axes added in front (a new reference). */
static ar_enode_t *expand(ar_enode_t *e, int ndim)
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

bool cask__ar_has_blocks(const ar_enode_t *e)
{
    if (e->kind == N_BLOCKS)
        return true;
    for (int k = 0; k < 3; k++)
        if (e->a[k] && cask__ar_has_blocks(e->a[k]))
            return true;
    return false;
}

/* Check that every block leaf of e lines up with chunk (0 or EINVAL). */
static int check_chunks(const ar_enode_t *e, const int64_t *chunk, cask_error_t *err)
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
cask_dtype_t cask__ar_promote(cask_dtype_t a, cask_dtype_t b)
{
    if ((a == CASK_F32 && b == CASK_I64) || (a == CASK_I64 && b == CASK_F32))
        return CASK_F64;
    return rank_of(a) >= rank_of(b) ? a : b;
}

/* e converted to dtype (a new reference; e itself when it has it). */
static ar_enode_t *cast_node(ar_enode_t *e, cask_dtype_t dtype)
{
    if (e->dtype == dtype) {
        atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
        return e;
    }
    ar_enode_t *c = cask__ar_node_new(N_CAST, 0, dtype, e->ndim, e->shape);
    if (c) {
        atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
        c->a[0] = e;
        c->count = e->count + 1;
    }
    return c;
}

/* A leaf over x's blocks, made first if need be (a new reference). */
static ar_enode_t *as_leaf(cask_array_t *x, cask_error_t *err)
{
    if (cask__ar_materialize(x, err))
        return NULL;
    ar_enode_t *e = cask__ar_blocks_leaf(x->bs, x->dtype, x->ndim, x->shape);
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
    for (int k = 0; k < n; k++)
        ndim = x[k]->ndim > ndim ? x[k]->ndim : ndim;
    /* The result's extents, and its chunk along each axis: the largest of
    ** the operands that read blocks there (not broadcast along it), else
    ** the first operand's there. */
    int64_t shape[CASK_MAX_NDIM], chunk[CASK_MAX_NDIM];
    bool fixed[3];
    for (int k = 0; k < n; k++)
        fixed[k] = cask__ar_has_blocks(x[k]->e);
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
                                 cask__ar_shape_str(s1, sizeof s1, x[0]->ndim, x[0]->shape),
                                 cask__ar_shape_str(s2, sizeof s2, x[k]->ndim, x[k]->shape)), NULL;
            }
            if (e != 1 || ext == 1)
                ext = e;
        }
        for (int k = 0; k < n; k++) {
            int xa = ax - (ndim - x[k]->ndim);
            if (xa >= 0 && x[k]->shape[xa] == ext && fixed[k] &&
                (who < 0 || x[k]->chunk[xa] > x[who]->chunk[ax - (ndim - x[who]->ndim)]))
                who = k;
        }
        for (int k = 0; k < n && who < 0; k++)
            if (ax - (ndim - x[k]->ndim) >= 0 && x[k]->shape[ax - (ndim - x[k]->ndim)] == ext)
                who = k;
        shape[ax] = ext;
        chunk[ax] = x[who]->chunk[ax - (ndim - x[who]->ndim)];
    }
    /* Operands whose blocks differ from those chunks are rechunked to them
    ** (as dask's unify_chunks; no block grows past the larger chunk). */
    cask_array_t *y[3] = { NULL, NULL, NULL };
    for (int k = 0; k < n; k++) {
        int64_t want[CASK_MAX_NDIM];
        bool differ = false;
        for (int xa = 0; xa < x[k]->ndim; xa++) {
            int ax = xa + (ndim - x[k]->ndim);
            bool along = x[k]->shape[xa] == shape[ax] && shape[ax] != 1;
            want[xa] = along ? chunk[ax] : x[k]->chunk[xa];
            differ |= fixed[k] && along && want[xa] != x[k]->chunk[xa];
        }
        if (differ && !(y[k] = cask_array_rechunk(x[k], want, err))) {
            for (int j = 0; j < k; j++)
                cask_array_decref(y[j]);
            return NULL;
        }
    }
    cask_array_t *res = NULL, *z[3];
    for (int k = 0; k < n; k++) {
        z[k] = y[k] ? y[k] : x[k];
        count += z[k]->e->count;
    }
    x = z;
    int first = n == 3 ? 1 : 0; /* where: the condition does not count */
    cask_dtype_t common = x[first]->dtype;
    for (int k = first + 1; k < n; k++)
        common = cask__ar_promote(common, x[k]->dtype);
    if (out < 0)
        out = kind == N_BINARY && cask__ar_binops[op].rule == AR_COMPARE ? CASK_BOOL
                                                                         : (int)common;
    ar_enode_t *ops[3] = { NULL, NULL, NULL }, *e = NULL;
    for (int k = 0; k < n; k++) {
        ar_enode_t *src = x[k]->e, *leaf = NULL;
        if (count > AR_MAX_NODES && src->count > 1) { /* too long: read its blocks */
            if (!(leaf = as_leaf(x[k], err)))
                goto fail;
            src = leaf;
        }
        ar_enode_t *ex = expand(src, ndim);
        cask__ar_node_decref(leaf);
        bool is_cond = n == 3 && k == 0;
        ops[k] = ex ? (is_cond ? ex : cast_node(ex, common)) : NULL;
        if (ex && !is_cond)
            cask__ar_node_decref(ex);
        if (!ops[k]) {
            cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for an expression");
            goto fail;
        }
        if (check_chunks(ops[k], chunk, err))
            goto fail;
    }
    if (!(e = cask__ar_node_new(kind, op, (cask_dtype_t)out, ndim, shape))) {
        cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for an expression");
        goto fail;
    }
    e->count = 1;
    for (int k = 0; k < n; k++) {
        e->a[k] = ops[k];
        e->count += ops[k]->count;
    }
    res = cask__ar_new(x[0]->g, e, chunk, err);
    goto out;
fail:
    for (int k = 0; k < n; k++)
        cask__ar_node_decref(ops[k]);
out:
    for (int k = 0; k < n; k++)
        cask_array_decref(y[k]);
    return res;
}

cask_array_t *cask_array_binop(cask_array_t *a, cask_binop_t op, cask_array_t *b,
                               cask_error_t *err)
{
    if ((unsigned)op >= CASK_BINOP_COUNT)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "unknown binary operation %d", (int)op),
               NULL;
    const ar_binop_t *row = &cask__ar_binops[op];
    if (a && b) {
        cask_dtype_t c = cask__ar_promote(a->dtype, b->dtype);
        if (c == CASK_BOOL && !row->bools)
            return cask__err(err, CASK_ETYPE, NULL, NULL,
                             "%s of two bool arrays: cast one with cask_array_astype",
                             row->name), NULL;
        if (row->rule == AR_FLOAT && (c == CASK_I64 || c == CASK_BOOL)) {
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
    ar_enode_t *e = cask__ar_node_new(N_CONST, 0, dt, 0, NULL);
    if (e) {
        e->p[0] = s.type == CASK_INT64 ? (double)s.u.i : s.u.d;
        e->ip[0] = s.type == CASK_INT64 ? s.u.i : 0; /* a double never makes an int64 */
    }
    return cask__ar_new(a->g, e, NULL, err);
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
    if ((unsigned)op >= CASK_UNOP_COUNT)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "unknown unary operation %d", (int)op),
               NULL;
    if (!a)
        return cask__err(err, CASK_EINVAL, NULL, NULL,
                         "an operand is NULL (an earlier array call failed)"), NULL;
    const ar_unop_t *row = &cask__ar_unops[op];
    if (a->dtype == CASK_BOOL && row->on_bool == AR_BOOL_REFUSE)
        return cask__err(err, CASK_ETYPE, NULL, NULL, "%s of a bool array", row->name), NULL;
    if (a->dtype == CASK_BOOL && row->on_bool == AR_BOOL_SELF) {
        cask_array_incref(a);
        return a;
    }
    if (row->rule == AR_FLOAT && (a->dtype == CASK_I64 || a->dtype == CASK_BOOL)) {
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
    ar_enode_t *e = remap(&m, a->e);
    if (!e)
        return cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for an expression"), NULL;
    return cask__ar_new(a->g, e, chunk, err);
}


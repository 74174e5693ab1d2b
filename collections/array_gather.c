/*
** collections/array_gather.c: arrays whose blocks are gathered from other
** blocks: slice (NumPy's basic slicing), rechunk and concatenate. Each
** result block is one task that reads the source blocks it overlaps and
** no others (cask.array.gather: an element map; cask.array.assemble: the
** pieces of a concatenation), so blocks a slice skips never run; a result
** block that is exactly one source block is that block's task.
*/
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "array.h"

static const size_t esize[] = { 8, 4, 8, 1 };

static cask_array_t *gather(cask_array_t *a, const int64_t *shape, const int64_t *chunk,
                            const int64_t *start, const int64_t *step, const char *name,
                            cask_error_t *err)
{
    int nd = a->ndim;
    if (cask__ar_materialize(a, err))
        return NULL;
    ar_gather_t d;
    memset(&d, 0, sizeof d);
    d.out = cask__ar_head_for(a->dtype, nd, shape, chunk);
    for (int x = 0; x < nd; x++) {
        d.src_shape[x] = a->shape[x];
        d.src_chunk[x] = a->chunk[x];
        d.start[x] = start[x];
        d.step[x] = step[x];
    }
    ar_blockset_t *b = cask__ar_blockset_new(nd, shape, chunk);
    int64_t snb[CASK_MAX_NDIM], onb[CASK_MAX_NDIM];
    cask__ar_grid_extents(nd, a->shape, a->chunk, snb);
    cask__ar_grid_extents(nd, shape, chunk, onb);
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
        cask__ar_grid_coords(nd, onb, (int64_t)i, c);
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
                                  .index = i,
                                  .nbytes = cask__ar_block_nbytes(a->dtype, nd, shape, chunk, i) };
        rc = cask_graph_add(a->g, &spec, &b->tasks[i], err);
        cask_value_decref(&idx);
    }
    if (!rc) {
        res = cask__ar_blocks_array(a->g, b, a->dtype, nd, shape, err);
        b = NULL;
    }
out:
    for (int x = 0; x < nd; x++)
        cask__free(touch[x]);
    cask__free(in);
    cask_value_decref(&desc);
    cask__ar_blockset_decref(b);
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
    if (cask__ar_check_layout(a->dtype, a->ndim, a->shape, chunks, chunk, err))
        return NULL;
    if (!cask__ar_has_blocks(a->e)) { /* its values come from no block: the same, chunked anew */
        atomic_fetch_add_explicit(&a->e->refs, 1, memory_order_relaxed);
        return cask__ar_new(a->g, a->e, chunk, err);
    }
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
                             ax, cask__ar_shape_str(s1, sizeof s1, nd, a0->shape),
                             cask__ar_shape_str(s2, sizeof s2, x->ndim, x->shape)), NULL;
        }
        if (x->g != a0->g)
            return cask__err(err, CASK_EINVAL, NULL, NULL,
                             "operands belong to different graphs"), NULL;
        shape[ax] += x->shape[ax];
        dt = cask__ar_promote(dt, x->dtype);
        cax = x->chunk[ax] > cax ? x->chunk[ax] : cax;
    }
    memcpy(chunk, a0->chunk, sizeof chunk);
    chunk[ax] = cax;
    if (cask__ar_check_layout(dt, nd, shape, chunk, chunk, err))
        return NULL;
    /* the sources, in the common type, with their blocks made */
    cask_array_t **src = cask__calloc(n, sizeof *src);
    int64_t *off = cask__malloc(n * sizeof *off);
    ar_blockset_t *b = cask__ar_blockset_new(nd, shape, chunk);
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
        rc = cask__ar_materialize(src[k], err);
        size_t m = 1;
        for (int d = 0; d < nd; d++) {
            int64_t c = src[k]->chunk[d], per = (chunk[d] + c - 1) / c + 1;
            int64_t nbk = ar_nblocks(src[k]->shape[d], c);
            m *= (size_t)(per < nbk ? per : nbk);
        }
        most += m;
    }
    ar_phead_t h = cask__ar_head_for(dt, nd, shape, chunk);
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
    cask__ar_grid_extents(nd, shape, chunk, onb);
    for (size_t i = 0; i < b->n && !rc; i++) {
        int64_t bo[CASK_MAX_NDIM], be[CASK_MAX_NDIM];
        cask__ar_grid_coords(nd, onb, (int64_t)i, c);
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
            cask__ar_grid_extents(nd, s->shape, s->chunk, snb);
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
                                  .index = i,
                                  .nbytes = cask__ar_block_nbytes(dt, nd, shape, chunk, i) };
        rc = cask_graph_add(a0->g, &spec, &b->tasks[i], err);
        cask_value_decref(&org);
    }
    if (!rc) {
        res = cask__ar_blocks_array(a0->g, b, dt, nd, shape, err);
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
    cask__ar_blockset_decref(b);
    return res;
}


/* ------------------------------------------------------------- gathering */

int cask__ar_new_block(const ar_phead_t *h, const cask_value_t *block, int64_t *bo, int64_t *be,
                       cask_value_t *out, cask_nd_t *o, cask_kctx_t *ctx)
{
    if (!cask__ar_block_place(h, block->u.i, bo, be))
        return cask_kernel_fail(ctx, "block %lld is outside the array", (long long)block->u.i);
    int rc = cask__ar_block_fits(h->ndim, be, ctx);
    if (!rc)
        rc = cask_value_ndarray(h->dtype, h->ndim, be, out, NULL);
    if (!rc)
        cask_value_nd(out, o);
    return rc;
}

/* Whether d's source layout is sound and every element of its output maps
** into the source, so no coordinate or block index k_gather forms can
** overflow or fall outside the source. */
static bool gather_ok(const ar_gather_t *d)
{
    int nd = d->out.ndim;
    if (!cask__ar_grid_ok(nd, d->src_shape, d->src_chunk))
        return false;
    for (int x = 0; x < nd; x++) {
        int64_t end; /* the source coordinate of the output's last element */
        if (!d->step[x])
            return false;
        if (!d->out.shape[x])
            continue;
        if (d->start[x] < 0 || d->start[x] >= d->src_shape[x] ||
            __builtin_mul_overflow(d->step[x], d->out.shape[x] - 1, &end) ||
            __builtin_add_overflow(end, d->start[x], &end) || end < 0 || end >= d->src_shape[x])
            return false;
    }
    return true;
}

/* cask.array.gather(desc, block, srcidx, src blocks...): block `block` of
** an array whose element c is element start + step * c of a source
** (slicing with steps, or rechunking with start 0 and step 1). desc is an
** ar_gather_t; srcidx an int64 1-d value naming the source block (flat
** index in the source's grid) each following argument holds. */
static int k_gather(const cask_value_t *args, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    size_t len;
    const ar_gather_t *d = n >= 3 ? cask_value_data(&args[0], &len) : NULL;
    cask_nd_t idx;
    if (!d || len != sizeof *d || ((uintptr_t)d & 7) || !cask__ar_layout_ok(&d->out) ||
        args[1].type != CASK_INT64 || cask_value_nd(&args[2], &idx) || idx.dtype != CASK_I64 ||
        idx.ndim != 1 || idx.size != n - 3)
        return cask_kernel_fail(ctx, "arguments: a gather description, a block, source indices");
    int nd = d->out.ndim, last = nd - 1;
    if (!gather_ok(d))
        return cask_kernel_fail(ctx, "argument 0: a bad gather description");
    int64_t bo[CASK_MAX_NDIM], be[CASK_MAX_NDIM], nb[CASK_MAX_NDIM];
    cask_nd_t o;
    int rc = cask__ar_new_block(&d->out, &args[1], bo, be, out, &o, ctx);
    if (rc)
        return rc;
    for (int x = 0; x < nd; x++)
        nb[x] = ar_nblocks(d->src_shape[x], d->src_chunk[x]);
    int dt = d->out.dtype;
    size_t sz = esize[dt];
    for (int x = 0; x < nd; x++)
        if (!be[x])
            return 0;
    const int64_t *want = idx.data;
    char *dst = o.data;
    int64_t coord[CASK_MAX_NDIM] = { 0 }, width = nd ? be[last] : 1;
    for (;;) { /* one output row at a time, in runs that stay in one source block */
        int64_t sc[CASK_MAX_NDIM], flat0 = 0; /* source coords and block, all but the last axis */
        for (int x = 0; x < last; x++) {
            sc[x] = d->start[x] + d->step[x] * (bo[x] + coord[x]);
            flat0 = flat0 * nb[x] + sc[x] / d->src_chunk[x];
        }
        for (int64_t j = 0; j < width;) {
            int64_t c = nd ? d->start[last] + d->step[last] * (bo[last] + j) : 0;
            int64_t blk = nd ? c / d->src_chunk[last] : 0, flat = nd ? flat0 * nb[last] + blk : 0;
            size_t k = 0;
            while (k < idx.size && want[k] != flat)
                k++;
            cask_nd_t s;
            if (k == idx.size || cask_value_nd(&args[3 + k], &s) || (int)s.dtype != dt || s.ndim != nd)
                return cask_kernel_fail(ctx, "source block %lld is missing or not a %s block",
                                        (long long)flat, cask_dtype_name(dt));
            int64_t off = 0; /* the element's offset in that source block */
            for (int x = 0; x < nd; x++) {
                int64_t cx = x < last ? sc[x] : c, local = cx - (cx / d->src_chunk[x]) * d->src_chunk[x];
                if (local >= s.shape[x])
                    return cask_kernel_fail(ctx, "source block %lld is too small", (long long)flat);
                off = off * s.shape[x] + local;
            }
            /* the run: elements of this row that stay in this source block */
            int64_t run = 1, lo = nd ? blk * d->src_chunk[last] : 0, hi = nd ? lo + s.shape[last] : 1;
            while (j + run < width) {
                int64_t cn = d->start[last] + d->step[last] * (bo[last] + j + run);
                if (cn < lo || cn >= hi)
                    break;
                run++;
            }
            if (!nd || d->step[last] == 1) {
                memcpy(dst, (const char *)s.data + off * (int64_t)sz, (size_t)run * sz);
            } else {
                for (int64_t r = 0; r < run; r++)
                    memcpy(dst + r * (int64_t)sz, (const char *)s.data + (off + r * d->step[last]) * (int64_t)sz, sz);
            }
            dst += run * (int64_t)sz;
            j += run;
        }
        int x = last - 1;
        while (x >= 0 && ++coord[x] == be[x])
            coord[x--] = 0;
        if (x < 0)
            return 0;
    }
}

/* cask.array.assemble(desc, block, origins, pieces...): block `block` of
** the array desc (an ar_phead_t) made of the parts of the pieces that lie
** in it; origins is an int64 [pieces, ndim] value giving each piece's
** first element in the array's coordinates (concatenate). The pieces must
** cover the block: the kernel counts what it copies and fails otherwise. */
static int k_assemble(const cask_value_t *args, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    size_t len;
    const ar_phead_t *h = n >= 3 ? cask_value_data(&args[0], &len) : NULL;
    cask_nd_t org;
    if (!h || len != sizeof *h || ((uintptr_t)h & 7) || !cask__ar_layout_ok(h) || h->ndim < 1 ||
        args[1].type != CASK_INT64 || cask_value_nd(&args[2], &org) || org.dtype != CASK_I64 ||
        org.ndim != 2 || org.shape[0] != (int64_t)(n - 3) || org.shape[1] != h->ndim)
        return cask_kernel_fail(ctx, "arguments: an array header, a block, piece origins");
    int nd = h->ndim, last = nd - 1, dt = h->dtype;
    int64_t bo[CASK_MAX_NDIM], be[CASK_MAX_NDIM];
    cask_nd_t o;
    int rc = cask__ar_new_block(h, &args[1], bo, be, out, &o, ctx);
    if (rc)
        return rc;
    size_t sz = esize[dt];
    if (o.size)
        memset(o.data, 0, o.size * sz); /* overlapping pieces in a graph file must not expose memory */
    size_t copied = 0;
    for (size_t p = 0; p + 3 < n; p++) {
        cask_nd_t s;
        if (cask_value_nd(&args[3 + p], &s) || (int)s.dtype != dt || s.ndim != nd)
            return cask_kernel_fail(ctx, "piece %zu is not a %d-d %s block", p, nd,
                                    cask_dtype_name(dt));
        const int64_t *po = (const int64_t *)org.data + p * (size_t)nd;
        int64_t lo[CASK_MAX_NDIM], hi[CASK_MAX_NDIM], c[CASK_MAX_NDIM];
        bool empty = false;
        for (int x = 0; x < nd; x++) { /* the overlap, in the array's coordinates */
            if (po[x] < 0 || po[x] > h->shape[x])
                return cask_kernel_fail(ctx, "piece %zu starts outside the array", p);
            lo[x] = po[x] > bo[x] ? po[x] : bo[x];
            hi[x] = po[x] + s.shape[x] < bo[x] + be[x] ? po[x] + s.shape[x] : bo[x] + be[x];
            empty |= lo[x] >= hi[x];
            c[x] = lo[x];
        }
        if (empty)
            continue;
        int64_t run = hi[last] - lo[last];
        for (;;) { /* one row of the overlap at a time */
            int64_t so = 0, oo = 0;
            for (int x = 0; x < nd; x++) {
                so = so * s.shape[x] + (c[x] - po[x]);
                oo = oo * be[x] + (c[x] - bo[x]);
            }
            memcpy((char *)o.data + oo * (int64_t)sz, (const char *)s.data + so * (int64_t)sz,
                   (size_t)run * sz);
            copied += (size_t)run;
            int x = last - 1;
            while (x >= 0 && ++c[x] == hi[x])
                c[x] = lo[x], x--;
            if (x < 0)
                break;
        }
    }
    if (copied != o.size)
        return cask_kernel_fail(ctx, "the pieces cover %zu of the block's %zu elements", copied,
                                o.size);
    return 0;
}

void cask__ar_register_gather(void)
{
    static const cask_kernel_opts_t o = { 0 };
    cask__kernel_register("cask.array.gather", k_gather, &o, NULL);
    cask__kernel_register("cask.array.assemble", k_assemble, &o, NULL);
}


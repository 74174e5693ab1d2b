/*
** collections/array_eval.c: running array programs. A fused task runs a
** program (collections/array.h) over its block AR_TILE elements at a
** time: each node's values for the tile sit in a small buffer of the
** node's own (or, for a contiguous block leaf, point straight into the
** block), so a chain of steps makes one pass over memory and no block-
** sized intermediate ever exists. The root's tiles go either into the
** output block (cask.array.eval, here) or straight into a reduction's
** partials (cask.array.reduce, array_reduce.c). Here too: the generators,
** the checks every kernel makes of the programs a file may give, the
** kernels over the caller's data (copy, borrow), and registration.
**
** Random numbers: element i of a generated array is a function of the
** generator's key and i only: draw j of element i is SplitMix64's output
** at position i * 256 + j of the key's stream. Normals come from a
** 128-layer ziggurat (Marsaglia and Tsang) whose tables are computed
** here at first use; about 99% of elements take one draw.
*/
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "array.h"

/* ------------------------------------------------------------- generators */

static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

#define GOLDEN 0x9e3779b97f4a7c15u

uint64_t cask__ar_seed_key(uint64_t seed)
{
    return mix64(seed ^ 0x6361736b61727261u); /* "caskarra" */
}

static inline uint64_t draw(uint64_t key, uint64_t i, unsigned j)
{
    return mix64(key + ((i << 8) + j + 1) * GOLDEN);
}

static inline double unit(uint64_t r) /* [0, 1) from the top 53 bits */
{
    return (double)(r >> 11) * 0x1p-53;
}

#define ZIG_N 128
#define ZIG_R 3.442619855899          /* where the tail starts */
#define ZIG_V 9.91256303526217e-3     /* each layer's area */

static double zx[ZIG_N + 1]; /* layer k spans x in [0, zx[k]); zx[k + 1] is under the curve */
static double zf[ZIG_N + 1]; /* exp(-zx^2 / 2) */
static pthread_once_t zig_once = PTHREAD_ONCE_INIT;

static void zig_init(void)
{
    zx[0] = ZIG_V / exp(-0.5 * ZIG_R * ZIG_R); /* the base layer's width, tail included */
    zx[1] = ZIG_R;
    for (int k = 1; k < ZIG_N; k++) {
        double f = exp(-0.5 * zx[k] * zx[k]) + ZIG_V / zx[k];
        zx[k + 1] = k + 1 < ZIG_N && f < 1 ? sqrt(-2 * log(f)) : 0;
    }
    zx[ZIG_N] = 0;
    for (int k = 0; k <= ZIG_N; k++)
        zf[k] = exp(-0.5 * zx[k] * zx[k]);
}

/* Standard normal number i of key's stream. */
static double normal_at(uint64_t key, uint64_t i)
{
    unsigned j = 0;
    for (;;) {
        uint64_t r = draw(key, i, j++);
        unsigned k = r & (ZIG_N - 1);
        double sign = r & ZIG_N ? -1.0 : 1.0;
        double x = unit(r) * zx[k];
        if (x < zx[k + 1])
            return sign * x;
        if (k == 0) { /* the tail beyond R, by Marsaglia's method */
            double a, b;
            do {
                a = -log(1 - unit(draw(key, i, j++))) / ZIG_R;
                b = -log(1 - unit(draw(key, i, j++)));
            } while (b + b < a * a);
            return sign * (ZIG_R + a);
        }
        double y = zf[k] + unit(draw(key, i, j++)) * (zf[k + 1] - zf[k]);
        if (y < exp(-0.5 * x * x))
            return sign * x;
    }
}

/* ------------------------------------------------------ checking programs */

#define AR_MAX_ELEMS ((uint64_t)1 << 60) /* a layout describes fewer elements than this */

/* Whether extents shape[0..ndim) (chunks chunk, if not NULL) are sound:
** extents >= 0 whose product, an empty axis counted as 1, is under
** AR_MAX_ELEMS; chunks >= 1 and at most 2^31 blocks (never more than
** the elements, so that product cannot overflow either). Then no product
** of extents, offsets or block indices a kernel forms can overflow. */
bool cask__ar_grid_ok(int ndim, const int64_t *shape, const int64_t *chunk)
{
    uint64_t elems = 1, blocks = 1;
    for (int x = 0; x < ndim; x++) {
        if (shape[x] < 0 || (chunk && chunk[x] < 1))
            return false;
        if (__builtin_mul_overflow(elems, (uint64_t)(shape[x] ? shape[x] : 1), &elems) ||
            elems >= AR_MAX_ELEMS)
            return false;
        if (chunk && (blocks *= (uint64_t)ar_nblocks(shape[x], chunk[x])) > (1u << 31))
            return false;
    }
    return true;
}

/* Whether node e's types fit its operation and its operands' types, as
** the builder makes them (the tables of array_ops.c): the evaluation reads
** each operand's tile as the type it assumes here, and a block read in
** place holds no more. */
static bool types_ok(const ar_pnode_t *nd, const ar_pnode_t *e)
{
    int dt = e->dtype;
    switch (e->kind) {
    case N_UNARY:
        return e->op < CASK_UNOP_COUNT && nd[e->a].dtype == dt &&
               cask__ar_unops[e->op].loop[dt] != NULL;
    case N_BINARY: {
        int at = nd[e->a].dtype;
        if (e->op >= CASK_BINOP_COUNT || nd[e->b].dtype != at ||
            !cask__ar_binops[e->op].loop[at])
            return false;
        return cask__ar_binops[e->op].rule == AR_COMPARE ? dt == CASK_BOOL : dt == at;
    }
    case N_WHERE:
        return nd[e->a].dtype == CASK_BOOL && nd[e->b].dtype == dt && nd[e->c].dtype == dt;
    case N_GEN: /* the generators write float64, or int64 for an integer arange */
        return e->op == G_LINEAR ? dt == CASK_F64 || dt == CASK_I64
                                 : (e->op == G_UNIFORM || e->op == G_NORMAL) && dt == CASK_F64;
    default: /* N_BLOCKS, N_CONST, N_CAST: any type */
        return true;
    }
}

/* Whether leaf e's axis map is sound: each axis of the root reads a
** distinct source axis, or none; a generator's source has a sound extent
** and covers the root's extent along each axis it maps. (A block leaf's
** extents are checked against the block it is given.) */
static bool leaf_ok(const ar_phead_t *h, const ar_pnode_t *e)
{
    unsigned seen = 0;
    for (int x = 0; x < h->ndim; x++) {
        int s = e->map[x];
        if (s < -1 || s >= e->src_ndim || (s >= 0 && (seen >> s & 1)))
            return false;
        if (s < 0)
            continue;
        seen |= 1u << s;
        if ((e->kind == N_GEN || e->kind == N_FILE) && h->shape[x] > e->src_shape[s])
            return false;
    }
    return e->kind == N_BLOCKS || cask__ar_grid_ok(e->src_ndim, e->src_shape, NULL);
}

/* The header and nodes of prog (args[0]), checked; NULL with a message.
** With leaves, every block leaf must name an argument in base .. n-1
** (combine tasks read partials, not leaves). */
const ar_phead_t *cask__ar_program(const cask_value_t *args, size_t n, size_t base, bool leaves,
                                   cask_kctx_t *ctx, int *rc)
{
    size_t len;
    const unsigned char *p = n ? cask_value_data(&args[0], &len) : NULL;
    const ar_phead_t *h = (const ar_phead_t *)p;
    *rc = 0;
    if (!p || len < sizeof *h || ((uintptr_t)p & 7) || !cask__ar_layout_ok(h) || !h->nnodes ||
        h->nnodes > AR_MAX_NODES || len != sizeof *h + h->nnodes * sizeof(ar_pnode_t) ||
        h->red < -1 || h->red >= CASK_REDUCTION_COUNT)
        goto bad;
    const ar_pnode_t *nd = (const ar_pnode_t *)(h + 1);
    for (uint32_t i = 0; i < h->nnodes; i++) {
        const ar_pnode_t *e = &nd[i];
        int need = e->kind == N_UNARY || e->kind == N_CAST ? 1 : e->kind == N_BINARY ? 2
                 : e->kind == N_WHERE ? 3 : 0;
        const int16_t ops[3] = { e->a, e->b, e->c };
        if (e->kind > N_FILE || e->dtype > CASK_BOOL || e->src_ndim > CASK_MAX_NDIM ||
            (e->kind == N_FILE && e->op > F_HDF5))
            goto bad;
        for (int k = 0; k < 3; k++)
            if (k < need ? ops[k] < 0 || (uint32_t)ops[k] >= i : ops[k] != -1)
                goto bad;
        if (!types_ok(nd, e))
            goto bad;
        if (leaves && (e->kind == N_BLOCKS || e->kind == N_FILE) &&
            (e->arg < (int)base || (size_t)e->arg >= n))
            goto bad;
        if ((e->kind == N_BLOCKS || e->kind == N_GEN || e->kind == N_FILE) && !leaf_ok(h, e))
            goto bad;
    }
    return h;
bad:
    *rc = cask_kernel_fail(ctx, "argument 0 is not a valid array program");
    return NULL;
}

/* ------------------------------------------------------------ the blocks */

size_t cask__ar_max_bytes;
uint64_t cask__ar_max_stream;

bool cask__ar_layout_ok(const ar_phead_t *h)
{
    return h->magic == AR_MAGIC && h->ndim >= 0 && h->ndim <= CASK_MAX_NDIM && h->dtype >= 0 &&
           h->dtype <= CASK_BOOL && cask__ar_grid_ok(h->ndim, h->shape, h->chunk);
}

/* 0 if elems elements of 8 bytes fit under cask__ar_max_bytes, else
** CASK_ENOMEM with a message naming what (a block or a partial). */
int cask__ar_fits(uint64_t elems, const char *what, cask_kctx_t *ctx)
{
    if (elems <= cask__ar_max_bytes / 8)
        return 0;
    cask_kernel_fail(ctx, "%s of %llu elements is larger than the %zu bytes a block may take",
                     what, (unsigned long long)elems, cask__ar_max_bytes);
    return CASK_ENOMEM;
}

int cask__ar_block_fits(int ndim, const int64_t *be, cask_kctx_t *ctx)
{
    uint64_t elems = 1;
    bool over = false;
    for (int x = 0; x < ndim; x++) {
        if (!be[x])
            return 0; /* an empty block */
        over |= __builtin_mul_overflow(elems, (uint64_t)be[x], &elems);
    }
    return cask__ar_fits(over ? UINT64_MAX : elems, "a block", ctx);
}

/* Where block `block` (C order over the header's block grid) starts and
** how far it goes along each axis; false when there is no such block. An
** empty axis has one empty block. */
static bool block_place(const ar_phead_t *h, int64_t block, int64_t *bo, int64_t *be)
{
    if (block < 0)
        return false;
    for (int x = h->ndim; x-- > 0;) {
        int64_t nb = ar_nblocks(h->shape[x], h->chunk[x]);
        int64_t c = block % nb;
        block /= nb;
        bo[x] = c * h->chunk[x];
        be[x] = h->shape[x] - bo[x] < h->chunk[x] ? h->shape[x] - bo[x] : h->chunk[x];
    }
    return block == 0;
}

/* ------------------------------------------------------------ evaluation */

static const size_t esize[] = { 8, 4, 8, 1 };

size_t cask__ar_window = 1 << 20;
atomic_size_t cask__ar_streams;

/* A file leaf whose tiles go through its box in C order (its axes the
** block's, in order), read a window of slabs (along the box's first axis)
** at a time: the data stays in cache from the read to the tile that uses
** it, and the task holds a window, not the box. */
typedef struct ar_stream {
    ar_fview_t v;
    char *win;
    int64_t slab;                  /* elements per slab */
    int64_t cap;                   /* slabs the window holds */
    int64_t r0, r1;                /* the slabs in it */
} ar_stream_t;

/* Set up file leaf e's box lo .. lo + n (bytes long) in l: streamed a
** window at a time (l->st) when its tiles walk it in order (in_order) and
** it is more than two windows of whole slabs, else read whole (l->own):
** 0 or a failure. */
static int file_leaf(ar_leaf_t *l, const ar_pnode_t *e, const cask_value_t *args,
                     const int64_t *lo, const int64_t *n, size_t bytes, bool in_order,
                     cask_kctx_t *ctx)
{
    if (!bytes) /* nothing to read */
        return (l->base = l->own = cask__big_malloc(1)) ? 0 : CASK_ENOMEM;
    ar_fview_t v;
    void *whole = NULL;
    int rc = cask__ar_fview_open(e->op, &args[e->arg], e->dtype, e->src_ndim, e->src_shape, lo,
                                 n, &v, NULL, &whole, ctx);
    if (rc)
        return rc;
    if (whole) { /* HDF5 read it */
        l->base = l->own = whole;
        return 0;
    }
    int64_t slab = 1;
    for (int s = 1; s < e->src_ndim; s++)
        slab *= n[s];
    size_t sb = (size_t)slab * esize[e->dtype];
    if (in_order && bytes > 2 * cask__ar_window && sb <= cask__ar_window) {
        /* a tile lies in one slab, or (1-d) in AR_TILE of them */
        int64_t cap = (int64_t)(cask__ar_window / sb);
        if (e->src_ndim == 1 && cap < AR_TILE)
            cap = AR_TILE;
        ar_stream_t *st = cask__calloc(1, sizeof *st);
        if (st && (st->win = cask__malloc((size_t)(cap < n[0] ? cap : n[0]) * sb))) {
            st->v = v;
            st->slab = slab;
            st->cap = cap < n[0] ? cap : n[0];
            l->st = st;
            atomic_fetch_add_explicit(&cask__ar_streams, 1, memory_order_relaxed);
            return 0;
        }
        cask__free(st);
        close(v.fd);
        return CASK_ENOMEM;
    }
    if (!(rc = cask__ar_block_fits(e->src_ndim, n, ctx))) {
        if (!(l->base = l->own = cask__big_malloc(bytes)))
            rc = CASK_ENOMEM;
        else
            rc = cask__ar_fview_read(&v, 0, e->src_ndim ? n[0] : 1, l->own, ctx);
    }
    close(v.fd);
    return rc;
}

/* Elements off .. off + len of st's box (in C order; a tile's, so no more
** slabs than a window holds), read into the window if they are not there
** (from the first slab they touch on): 0 and *p, or a failure. */
static int stream_at(ar_stream_t *st, int64_t off, size_t len, const void **p, cask_kctx_t *ctx)
{
    int64_t first = off / st->slab, last = (off + (int64_t)len - 1) / st->slab;
    if (first < st->r0 || last >= st->r1) {
        int64_t k = st->v.n[0] - first < st->cap ? st->v.n[0] - first : st->cap;
        int rc = cask__ar_fview_read(&st->v, first, k, st->win, ctx);
        if (rc)
            return rc;
        st->r0 = first, st->r1 = first + k;
    }
    *p = st->win + (size_t)(off - st->r0 * st->slab) * st->v.es;
    return 0;
}

/* Check and set up the leaves for the block at bo/be; 0 or a failure. */
static int leaves(ar_eval_t *ev, const cask_value_t *args, cask_kctx_t *ctx)
{
    const ar_phead_t *h = ev->h;
    for (uint32_t i = 0; i < h->nnodes; i++) {
        const ar_pnode_t *e = &ev->nd[i];
        ar_leaf_t *l = &ev->leaf[i];
        int64_t sstride[CASK_MAX_NDIM], sshape[CASK_MAX_NDIM], lo[CASK_MAX_NDIM] = { 0 };
        if (e->kind != N_BLOCKS && e->kind != N_GEN && e->kind != N_FILE)
            continue;
        /* a block, or a file's region, holds the source box under the block */
        for (int s = 0; s < e->src_ndim; s++)
            sshape[s] = e->kind == N_GEN ? e->src_shape[s] : 1;
        if (e->kind != N_GEN)
            for (int x = 0; x < h->ndim; x++)
                if (e->map[x] >= 0) {
                    sshape[e->map[x]] = ev->be[x];
                    lo[e->map[x]] = ev->bo[x];
                }
        int64_t st = 1;
        for (int s = e->src_ndim; s-- > 0;) {
            sstride[s] = st;
            st *= sshape[s];
        }
        l->off0 = 0;
        for (int x = 0; x < h->ndim; x++) {
            l->stride[x] = e->map[x] >= 0 ? sstride[e->map[x]] : 0;
            if (e->kind == N_GEN)
                l->off0 += l->stride[x] * ev->bo[x];
        }
        if (e->kind == N_GEN)
            continue;
        if (e->kind == N_FILE) {
            size_t bytes = esize[e->dtype];
            bool in_order = e->src_ndim == h->ndim && h->ndim > 0;
            for (int s = 0; s < e->src_ndim; s++) {
                bytes *= (size_t)sshape[s];
                in_order = in_order && e->map[s] == s;
            }
            int rc = file_leaf(l, e, args, lo, sshape, bytes, in_order, ctx);
            if (rc)
                return rc;
            continue;
        }
        cask_nd_t v;
        if (cask_value_nd(&args[e->arg], &v) || v.dtype != e->dtype || v.ndim != e->src_ndim)
            return cask_kernel_fail(ctx, "argument %d is not a %d-d %s block", e->arg,
                                    e->src_ndim, cask_dtype_name(e->dtype));
        for (int s = 0; s < e->src_ndim; s++)
            if (v.shape[s] != sshape[s])
                return cask_kernel_fail(ctx, "argument %d: block extent %lld along axis %d, "
                                        "expected %lld", e->arg, (long long)v.shape[s], s,
                                        (long long)sshape[s]);
        l->base = v.data;
    }
    return 0;
}

static void generate(const ar_pnode_t *e, int64_t off, int64_t step, void *out, size_t len)
{
    double *y = out;
    switch (e->op) {
    case G_LINEAR:
        if (e->dtype == CASK_I64) {
            int64_t *yi = out;
            for (size_t j = 0; j < len; j++)
                yi[j] = (int64_t)((uint64_t)e->ip[0] +
                                  (uint64_t)(off + (int64_t)j * step) * (uint64_t)e->ip[1]);
        } else {
            for (size_t j = 0; j < len; j++) {
                int64_t i = off + (int64_t)j * step;
                y[j] = e->p[2] == e->p[2] && i == e->src_shape[0] - 1 ? e->p[2]
                                                                      : e->p[0] + (double)i * e->p[1];
            }
        }
        break;
    case G_UNIFORM:
        for (size_t j = 0; j < len; j++)
            y[j] = e->p[0] + (e->p[1] - e->p[0]) *
                                 unit(draw((uint64_t)e->ip[0], (uint64_t)(off + (int64_t)j * step), 0));
        break;
    default: {
        /* The ziggurat's fast path inline (draw 0 of each element, its
        ** counter advanced by addition); the rest in normal_at. */
        uint64_t key = (uint64_t)e->ip[0];
        uint64_t c = key + (((uint64_t)off << 8) + 1) * GOLDEN;
        uint64_t dc = ((uint64_t)step << 8) * GOLDEN;
        double loc = e->p[0], scale = e->p[1];
        for (size_t j = 0; j < len; j++, c += dc) {
            uint64_t r = mix64(c);
            unsigned k = r & (ZIG_N - 1);
            double x = unit(r) * zx[k];
            if (__builtin_expect(x >= zx[k + 1], 0))
                x = fabs(normal_at(key, (uint64_t)(off + (int64_t)j * step)));
            uint64_t bits; /* the sign from bit 7, without a branch (it is a coin flip) */
            memcpy(&bits, &x, sizeof bits);
            bits ^= (r & ZIG_N) << (63 - 7);
            memcpy(&x, &bits, sizeof x);
            y[j] = loc + scale * x;
        }
        break;
    }
    }
}

/* Evaluate every node for the tile at coord (axes before the last) and
** columns col .. col + len of the last axis; the root's values in ptr.
** 0, or the failure of a streamed leaf's read. */
static int tile(ar_eval_t *ev, const int64_t *coord, int64_t col, size_t len)
{
    const ar_phead_t *h = ev->h;
    int last = h->ndim - 1;
    for (uint32_t i = 0; i < h->nnodes; i++) {
        const ar_pnode_t *e = &ev->nd[i];
        void *own = ev->buf + (size_t)i * AR_TILE * 8;
        int64_t off = 0, step = 0;
        if (e->kind == N_BLOCKS || e->kind == N_GEN || e->kind == N_FILE) {
            const ar_leaf_t *l = &ev->leaf[i];
            off = l->off0;
            step = last >= 0 ? l->stride[last] : 0;
            for (int x = 0; x < last; x++)
                off += l->stride[x] * coord[x];
            off += step * col;
        }
        const char *base = ev->leaf[i].base;
        switch (e->kind) {
        case N_BLOCKS:
        case N_FILE:
            if (ev->leaf[i].st) { /* a window of the file's (step 1) */
                const void *p;
                int rc = stream_at(ev->leaf[i].st, off, len, &p, ev->ctx);
                if (rc)
                    return rc;
                ev->ptr[i] = (void *)p;
            } else if (step == 1) { /* contiguous: read in place */
                ev->ptr[i] = (void *)(base + off * (int64_t)esize[e->dtype]);
            } else {
                size_t sz = esize[e->dtype];
                for (size_t j = 0; j < len; j++)
                    memcpy((char *)own + j * sz, base + (off + (int64_t)j * step) * (int64_t)sz, sz);
                ev->ptr[i] = own;
            }
            break;
        case N_GEN:
            generate(e, off, step, own, len);
            ev->ptr[i] = own;
            break;
        case N_CONST:
            ev->ptr[i] = own; /* filled once, in run() */
            break;
        case N_UNARY:
            cask__ar_unops[e->op].loop[e->dtype](ev->ptr[e->a], own, len);
            ev->ptr[i] = own;
            break;
        case N_CAST:
            cask__ar_cast(ev->nd[e->a].dtype, e->dtype, ev->ptr[e->a], own, len);
            ev->ptr[i] = own;
            break;
        case N_BINARY:
            cask__ar_binops[e->op].loop[ev->nd[e->a].dtype](ev->ptr[e->a], ev->ptr[e->b], own, len);
            ev->ptr[i] = own;
            break;
        default:
            cask__ar_where(e->dtype, ev->ptr[e->a], ev->ptr[e->b], ev->ptr[e->c], own, len);
            ev->ptr[i] = own;
            break;
        }
    }
    return 0;
}

/* Fill a constant node's tile buffer with its value. */
static void fill_const(const ar_pnode_t *e, void *own)
{
    for (size_t j = 0; j < AR_TILE; j++)
        switch (e->dtype) {
        case CASK_F64: ((double *)own)[j] = e->p[0]; break;
        case CASK_F32: ((float *)own)[j] = (float)e->p[0]; break;
        case CASK_I64: ((int64_t *)own)[j] = e->ip[0]; break;
        default: ((uint8_t *)own)[j] = e->ip[0] != 0; break;
        }
}

/* Run the program over the block at ev->bo/be, handing the root's tiles
** to s row by row. */
int cask__ar_run(ar_eval_t *ev, ar_sink_t *s)
{
    const ar_phead_t *h = ev->h;
    for (uint32_t i = 0; i < h->nnodes; i++)
        if (ev->nd[i].kind == N_CONST)
            fill_const(&ev->nd[i], ev->buf + (size_t)i * AR_TILE * 8);
    int n = h->ndim, last = n - 1;
    int64_t coord[CASK_MAX_NDIM] = { 0 };
    for (int x = 0; x < n; x++)
        if (!ev->be[x])
            return 0; /* an empty block */
    int64_t width = n ? ev->be[last] : 1;
    for (;;) {
        for (int64_t col = 0; col < width; col += AR_TILE) {
            size_t len = (size_t)(width - col < AR_TILE ? width - col : AR_TILE);
            int rc = tile(ev, coord, col, len);
            if (rc)
                return rc;
            s->put(s, ev->ptr[h->nnodes - 1], len, coord, col);
        }
        int x = last - 1; /* the next row: an odometer over the other axes */
        while (x >= 0 && ++coord[x] == ev->be[x])
            coord[x--] = 0;
        if (x < 0)
            return 0;
    }
}

/* Set up ev for prog's block `block`; 0 or a failure. */
int cask__ar_eval_init(ar_eval_t *ev, const ar_phead_t *h, int64_t block, const cask_value_t *args,
                     cask_kctx_t *ctx)
{
    ev->h = h;
    ev->nd = (const ar_pnode_t *)(h + 1);
    ev->buf = NULL;
    ev->ctx = ctx;
    memset(ev->leaf, 0, sizeof ev->leaf);
    if (!block_place(h, block, ev->bo, ev->be))
        return cask_kernel_fail(ctx, "block %lld is outside the array", (long long)block);
    int rc = leaves(ev, args, ctx);
    if (rc)
        return rc;
    if (!(ev->buf = cask__malloc((size_t)h->nnodes * AR_TILE * 8)))
        return CASK_ENOMEM;
    return 0;
}

void cask__ar_eval_free(ar_eval_t *ev)
{
    for (uint32_t i = 0; i < ev->h->nnodes; i++) {
        ar_stream_t *st = ev->leaf[i].st;
        cask__big_free(ev->leaf[i].own);
        if (st) {
            close(st->v.fd);
            cask__free(st->win);
            cask__free(st);
        }
    }
    cask__free(ev->buf);
    ev->buf = NULL;
}

/* ------------------------------------------------------------- the block */

typedef struct block_sink {
    ar_sink_t  s;
    char   *data;                 /* the output block */
    size_t  sz;                   /* bytes per element */
    int64_t stride[CASK_MAX_NDIM];/* of the output block, in elements */
    int     last;
} block_ar_sink_t;

static void put_block(ar_sink_t *s, const void *x, size_t len, const int64_t *coord, int64_t col)
{
    block_ar_sink_t *b = (block_ar_sink_t *)s;
    int64_t off = col;
    for (int a = 0; a < b->last; a++)
        off += b->stride[a] * coord[a];
    memcpy(b->data + off * (int64_t)b->sz, x, len * b->sz);
}

/* A block of a file array as it is (a program of one N_FILE node, whose
** map is the identity: a file's own axes), read straight into the output. */
static int read_block(const ar_phead_t *h, const ar_pnode_t *e, const cask_value_t *args,
                      cask_value_t *out, cask_kctx_t *ctx)
{
    int64_t bo[CASK_MAX_NDIM], be[CASK_MAX_NDIM];
    cask_nd_t o;
    bool same = e->src_ndim == h->ndim && e->dtype == h->dtype;
    for (int x = 0; x < h->ndim; x++)
        same = same && e->map[x] == x;
    if (!same)
        return cask_kernel_fail(ctx, "argument 0: a file read as another layout");
    int rc = cask__ar_new_block(h, &args[1], bo, be, out, &o, ctx);
    if (!rc && o.size &&
        (rc = cask__ar_read_box(e->op, &args[e->arg], e->dtype, h->ndim, e->src_shape, bo, be,
                                o.data, ctx)))
        cask_value_decref(out);
    return rc;
}

/* cask.array.eval(prog, block, 0, leaf blocks and files...): one block of
** an elementwise expression. */
static int k_eval(const cask_value_t *args, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    int rc;
    const ar_phead_t *h = cask__ar_program(args, n, 3, true, ctx, &rc);
    if (!h)
        return rc;
    if (n < 3 || args[1].type != CASK_INT64)
        return cask_kernel_fail(ctx, "argument 1 must be a block index");
    ar_eval_t ev;
    const ar_pnode_t *root = (const ar_pnode_t *)(h + 1) + h->nnodes - 1;
    if (h->nnodes == 1 && root->kind == N_FILE) /* a file's block: read into place */
        return read_block(h, root, args, out, ctx);
    if ((rc = cask__ar_eval_init(&ev, h, args[1].u.i, args, ctx)))
        goto out;
    if ((rc = cask__ar_block_fits(h->ndim, ev.be, ctx)) ||
        (rc = cask_value_ndarray(root->dtype, h->ndim, ev.be, out, NULL)))
        goto out;
    cask_nd_t v;
    cask_value_nd(out, &v);
    block_ar_sink_t bs = { { put_block }, v.data, esize[root->dtype], { 0 }, h->ndim - 1 };
    int64_t st = 1;
    for (int x = h->ndim; x-- > 0;) {
        bs.stride[x] = st;
        st *= ev.be[x];
    }
    if ((rc = cask__ar_run(&ev, &bs.s)))
        cask_value_decref(out);
out:
    cask__ar_eval_free(&ev);
    return rc;
}

/* ------------------------------------------------------ the caller's data */

/* cask.array.copy(block): the block itself (a copied buffer's blocks are
** literals; this gives each a task). */
static int k_copy(const cask_value_t *args, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    if (n != 1 || args[0].type != CASK_NDARRAY)
        return cask_kernel_fail(ctx, "argument must be an n-d block");
    *out = args[0];
    cask_value_incref(out);
    return 0;
}

int cask__ar_block_runs(int ndim, const int64_t *shape, const int64_t *bo, const int64_t *be,
                       int (*fn)(void *ctx, int64_t flat, int64_t n), void *ctx)
{
    for (int x = 0; x < ndim; x++)
        if (!be[x])
            return 0;
    /* a run: the last axis, widened over the axes the block spans whole */
    int k = ndim ? ndim - 1 : 0;
    int64_t run = ndim ? be[k] : 1, idx[CASK_MAX_NDIM] = { 0 };
    while (k > 0 && be[k] == shape[k])
        run *= be[--k];
    for (;;) {
        int64_t flat = 0; /* the run's first element in the whole array */
        for (int x = 0; x < ndim; x++)
            flat = flat * shape[x] + bo[x] + (x < k ? idx[x] : 0);
        int rc = fn(ctx, flat, run);
        if (rc)
            return rc;
        int x = k - 1;
        while (x >= 0 && ++idx[x] == be[x])
            idx[x--] = 0;
        if (x < 0)
            return 0;
    }
}

typedef struct copy_ctx {
    char *whole, *blk;
    size_t sz;
    bool to_block;
} copy_ctx_t;

static int copy_run(void *ctx, int64_t flat, int64_t n)
{
    copy_ctx_t *c = ctx;
    char *w = c->whole + flat * (int64_t)c->sz;
    size_t len = (size_t)n * c->sz;
    if (c->to_block)
        memcpy(c->blk, w, len);
    else
        memcpy(w, c->blk, len);
    c->blk += len;
    return 0;
}

void cask__ar_copy_block(int ndim, const int64_t *shape, const int64_t *bo, const int64_t *be,
                         size_t sz, char *whole, char *blk, bool to_block)
{
    copy_ctx_t c = { whole, blk, sz, to_block };
    cask__ar_block_runs(ndim, shape, bo, be, copy_run, &c);
}

bool cask__ar_block_place(const ar_phead_t *h, int64_t block, int64_t *bo, int64_t *be)
{
    return block_place(h, block, bo, be);
}

void cask__ar_borrow_free(void *p)
{
    cask__free(p);
}

/* The ar_borrow_t v holds, or NULL: only an opaque value made by
** cask_array_from_buffer is one (a graph file cannot spell an opaque
** value, and the destructor tells ours from a caller's). */
static const ar_borrow_t *borrowed(const cask_value_t *v)
{
    return v->type == CASK_OPAQUE && v->u.blob->dtor == cask__ar_borrow_free ? v->u.blob->data
                                                                            : NULL;
}

/* cask.array.borrow(buffer, block): a block copied out of the caller's
** buffer, which args[0] holds as an ar_borrow_t. */
static int k_borrow(const cask_value_t *args, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    const ar_borrow_t *b = n == 2 ? borrowed(&args[0]) : NULL;
    if (!b || args[1].type != CASK_INT64)
        return cask_kernel_fail(ctx, "arguments: a borrowed buffer (made by "
                                     "cask_array_from_buffer) and a block");
    const ar_phead_t *h = &b->h;
    int64_t bo[CASK_MAX_NDIM], be[CASK_MAX_NDIM];
    if (!block_place(h, args[1].u.i, bo, be))
        return cask_kernel_fail(ctx, "block %lld is outside the array", (long long)args[1].u.i);
    int rc = cask_value_ndarray(h->dtype, h->ndim, be, out, NULL);
    if (rc)
        return rc;
    cask_nd_t v;
    cask_value_nd(out, &v);
    cask__ar_copy_block(h->ndim, h->shape, bo, be, esize[h->dtype], (char *)(uintptr_t)b->data,
                        v.data, true);
    return 0;
}

/* About a nanosecond per element of h's chunk. */
static double cost_layout(const ar_phead_t *h)
{
    double e = 1;
    for (int x = 0; x < h->ndim; x++)
        e *= (double)(h->chunk[x] < h->shape[x] ? h->chunk[x] : h->shape[x]);
    return 1e-6 + e * 1e-9;
}

double cask__ar_cost_block(const cask_value_t *args, size_t n)
{
    size_t len;
    const ar_phead_t *h = n ? cask_value_data(&args[0], &len) : NULL;
    if (!h || len < sizeof *h || ((uintptr_t)h & 7) || !cask__ar_layout_ok(h))
        return 1e-6;
    double c = cost_layout(h), per = c - 1e-6; /* 1 ns an element */
    /* and a file read per file leaf: 0.1 ms, then about 1 GB/s (8 ns an element) */
    const ar_pnode_t *nd = (const ar_pnode_t *)(h + 1);
    if (len != sizeof *h + h->nnodes * sizeof *nd)
        return c;
    for (uint32_t i = 0; i < h->nnodes; i++)
        if (nd[i].kind == N_FILE)
            c += 1e-4 + per * 8;
    return c;
}

static double cost_borrow(const cask_value_t *args, size_t n)
{
    const ar_borrow_t *b = n ? borrowed(&args[0]) : NULL;
    return b ? cost_layout(&b->h) : 1e-6;
}

/* The stamp of an eval or reduce task (cask__kernel_t.stamp): each file it
** reads (an argument that is a file's description), as it is now: device,
** inode, size and modification time. -1 when one cannot be looked at. */
static int stamp_files(const cask_value_t *args, size_t n, uint64_t h[2])
{
    for (size_t i = 3; i < n; i++) {
        const char *path, *dataset;
        if (!cask__ar_fdesc(&args[i], F_NPY, &path, &dataset) &&
            !cask__ar_fdesc(&args[i], F_HDF5, &path, &dataset))
            continue;
        if (cask__hash_file_id(path, h))
            return -1;
    }
    return 0;
}

void cask__register_collections(void)
{
    pthread_once(&zig_once, zig_init);
    if (!cask__ar_max_bytes) { /* the machine's memory */
        long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
        bool known = pages > 0 && size > 0 && (size_t)pages < SIZE_MAX / (size_t)size;
        cask__ar_max_bytes = known ? (size_t)pages * (size_t)size : SIZE_MAX;
    }
    static const struct {
        const char *name;
        cask_kernel_fn fn;
        cask_kernel_opts_t opts;
    } k[] = {
        { "cask.array.eval", k_eval, { .cost_fn = cask__ar_cost_block } },
        { "cask.array.copy", k_copy, { 0 } },
        { "cask.array.borrow", k_borrow, { .cost_fn = cost_borrow } },
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
        cask__kernel_register(k[i].name, k[i].fn, &k[i].opts, NULL);
    cask__ar_register_reduce();
    cask__kernel_set_stamp("cask.array.eval", stamp_files);
    cask__kernel_set_stamp("cask.array.reduce", stamp_files);
    cask__ar_register_matmul();
    cask__ar_register_gather();
}


/*
** collections/array_eval.c: the kernels behind arrays. A fused task runs
** a program (collections/array.h) over its block AR_TILE elements at a
** time: each node's values for the tile sit in a small buffer of the
** node's own (or, for a contiguous block leaf, point straight into the
** block), so a chain of steps makes one pass over memory and no block-
** sized intermediate ever exists. The root's tiles go either into the
** output block or straight into a reduction's partials.
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
static bool grid_ok(int ndim, const int64_t *shape, const int64_t *chunk)
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
** the builder makes them: the evaluation reads each operand's tile as the
** type it assumes here, and a block read in place holds no more. */
static bool types_ok(const ar_pnode_t *nd, const ar_pnode_t *e)
{
    int dt = e->dtype;
    switch (e->kind) {
    case N_UNARY: /* every operation on floats; NEG and ABS on int64 */
        return nd[e->a].dtype == dt && (dt == CASK_F64 || dt == CASK_F32
                                            ? e->op <= CASK_COS
                                            : dt == CASK_I64 && e->op <= CASK_ABS);
    case N_BINARY: { /* compares on anything; arithmetic on floats, + - * on int64 */
        int at = nd[e->a].dtype;
        if (nd[e->b].dtype != at || e->op > CASK_NE)
            return false;
        if (e->op >= CASK_LT)
            return dt == CASK_BOOL;
        return dt == at &&
               (at == CASK_F64 || at == CASK_F32 || (at == CASK_I64 && e->op <= CASK_MUL));
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
        if (e->kind == N_GEN && h->shape[x] > e->src_shape[s])
            return false;
    }
    return e->kind != N_GEN || grid_ok(e->src_ndim, e->src_shape, NULL);
}

/* The header and nodes of prog (args[0]), checked; NULL with a message.
** With leaves, every block leaf must name an argument in base .. n-1
** (combine tasks read partials, not leaves). */
static const ar_phead_t *program(const cask_value_t *args, size_t n, size_t base, bool leaves,
                                 cask_kctx_t *ctx, int *rc)
{
    size_t len;
    const unsigned char *p = n ? cask_value_data(&args[0], &len) : NULL;
    const ar_phead_t *h = (const ar_phead_t *)p;
    *rc = 0;
    if (!p || len < sizeof *h || ((uintptr_t)p & 7) || !cask__ar_layout_ok(h) || !h->nnodes ||
        h->nnodes > AR_MAX_NODES || len != sizeof *h + h->nnodes * sizeof(ar_pnode_t) ||
        h->red < -1 || h->red > CASK_ALL)
        goto bad;
    const ar_pnode_t *nd = (const ar_pnode_t *)(h + 1);
    for (uint32_t i = 0; i < h->nnodes; i++) {
        const ar_pnode_t *e = &nd[i];
        int need = e->kind == N_UNARY || e->kind == N_CAST ? 1 : e->kind == N_BINARY ? 2
                 : e->kind == N_WHERE ? 3 : 0;
        const int16_t ops[3] = { e->a, e->b, e->c };
        if (e->kind > N_CAST || e->dtype > CASK_BOOL || e->src_ndim > CASK_MAX_NDIM)
            goto bad;
        for (int k = 0; k < 3; k++)
            if (k < need ? ops[k] < 0 || (uint32_t)ops[k] >= i : ops[k] != -1)
                goto bad;
        if (!types_ok(nd, e))
            goto bad;
        if (leaves && e->kind == N_BLOCKS && (e->arg < (int)base || (size_t)e->arg >= n))
            goto bad;
        if ((e->kind == N_BLOCKS || e->kind == N_GEN) && !leaf_ok(h, e))
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
           h->dtype <= CASK_BOOL && grid_ok(h->ndim, h->shape, h->chunk);
}

/* 0 if elems elements of 8 bytes fit under cask__ar_max_bytes, else
** CASK_ENOMEM with a message naming what (a block or a partial). */
static int fits(uint64_t elems, const char *what, cask_kctx_t *ctx)
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
    return fits(over ? UINT64_MAX : elems, "a block", ctx);
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

typedef struct leaf {
    const char *base;              /* N_BLOCKS: the block's elements */
    int64_t stride[CASK_MAX_NDIM]; /* elements per step along each root axis */
    int64_t off0;                  /* offset of the block's first element */
} leaf_t;

/* What receives the root's tiles. */
typedef struct sink {
    void (*put)(struct sink *s, const void *x, size_t len, const int64_t *coord, int64_t col);
} sink_t;

typedef struct eval {
    const ar_phead_t *h;
    const ar_pnode_t *nd;
    int64_t bo[CASK_MAX_NDIM], be[CASK_MAX_NDIM];
    leaf_t  leaf[AR_MAX_NODES];
    void   *ptr[AR_MAX_NODES];     /* each node's values for the tile */
    char   *buf;                   /* AR_TILE 8-byte slots per node */
} eval_t;

static const size_t esize[] = { 8, 4, 8, 1 };

/* Check and set up the leaves for the block at bo/be; 0 or a failure. */
static int leaves(eval_t *ev, const cask_value_t *args, cask_kctx_t *ctx)
{
    const ar_phead_t *h = ev->h;
    for (uint32_t i = 0; i < h->nnodes; i++) {
        const ar_pnode_t *e = &ev->nd[i];
        leaf_t *l = &ev->leaf[i];
        int64_t sstride[CASK_MAX_NDIM], sshape[CASK_MAX_NDIM];
        if (e->kind != N_BLOCKS && e->kind != N_GEN)
            continue;
        for (int s = 0; s < e->src_ndim; s++)
            sshape[s] = e->kind == N_GEN ? e->src_shape[s] : 1;
        if (e->kind == N_BLOCKS)
            for (int x = 0; x < h->ndim; x++)
                if (e->map[x] >= 0)
                    sshape[e->map[x]] = ev->be[x];
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

#define LOOP1(T, U, expr)                                                    \
    do {                                                                     \
        const T *x_ = (const T *)a;                                          \
        U *y_ = (U *)out;                                                    \
        for (size_t j = 0; j < len; j++) {                                   \
            T v = x_[j];                                                     \
            y_[j] = (U)(expr);                                               \
        }                                                                    \
    } while (0)

static void unary(int op, int dt, const void *a, void *out, size_t len)
{
    switch (dt * 16 + op) {
    case CASK_F64 * 16 + CASK_NEG: LOOP1(double, double, -v); break;
    case CASK_F64 * 16 + CASK_ABS: LOOP1(double, double, fabs(v)); break;
    case CASK_F64 * 16 + CASK_SQRT: LOOP1(double, double, sqrt(v)); break;
    case CASK_F64 * 16 + CASK_EXP: LOOP1(double, double, exp(v)); break;
    case CASK_F64 * 16 + CASK_LOG: LOOP1(double, double, log(v)); break;
    case CASK_F64 * 16 + CASK_SIN: LOOP1(double, double, sin(v)); break;
    case CASK_F64 * 16 + CASK_COS: LOOP1(double, double, cos(v)); break;
    case CASK_F32 * 16 + CASK_NEG: LOOP1(float, float, -v); break;
    case CASK_F32 * 16 + CASK_ABS: LOOP1(float, float, fabsf(v)); break;
    case CASK_F32 * 16 + CASK_SQRT: LOOP1(float, float, sqrtf(v)); break;
    case CASK_F32 * 16 + CASK_EXP: LOOP1(float, float, expf(v)); break;
    case CASK_F32 * 16 + CASK_LOG: LOOP1(float, float, logf(v)); break;
    case CASK_F32 * 16 + CASK_SIN: LOOP1(float, float, sinf(v)); break;
    case CASK_F32 * 16 + CASK_COS: LOOP1(float, float, cosf(v)); break;
    case CASK_I64 * 16 + CASK_NEG: LOOP1(int64_t, uint64_t, 0 - (uint64_t)v); break;
    case CASK_I64 * 16 + CASK_ABS: LOOP1(int64_t, uint64_t, v < 0 ? 0 - (uint64_t)v : (uint64_t)v); break;
    default: break; /* refused when the expression was built */
    }
}

/* A double as int64, as NumPy gives it on x86-64: truncated, and INT64_MIN
** for NaN, infinities and values out of range (a C cast of those is
** undefined). */
static inline int64_t d2i(double v)
{
    return v >= -0x1p63 && v < 0x1p63 ? (int64_t)v : INT64_MIN;
}

static void cast(int from, int to, const void *a, void *out, size_t len)
{
#define CAST_FROM(T, TO_I64)                                                 \
    switch (to) {                                                            \
    case CASK_F64: LOOP1(T, double, v); break;                               \
    case CASK_F32: LOOP1(T, float, v); break;                                \
    case CASK_I64: LOOP1(T, int64_t, TO_I64(v)); break;                      \
    default: LOOP1(T, uint8_t, v != 0); break;                               \
    }
#define SAME(v) (v)
    switch (from) {
    case CASK_F64: CAST_FROM(double, d2i); break;
    case CASK_F32: CAST_FROM(float, d2i); break;
    case CASK_I64: CAST_FROM(int64_t, SAME); break;
    default: CAST_FROM(uint8_t, SAME); break;
    }
#undef SAME
#undef CAST_FROM
}

#define LOOP2(T, U, expr)                                                    \
    do {                                                                     \
        const T *x_ = (const T *)a, *z_ = (const T *)b;                      \
        U *y_ = (U *)out;                                                    \
        for (size_t j = 0; j < len; j++) {                                   \
            T v = x_[j], w = z_[j];                                          \
            y_[j] = (U)(expr);                                               \
        }                                                                    \
    } while (0)

#define COMPARE(T)                                                           \
    switch (op) {                                                            \
    case CASK_LT: LOOP2(T, uint8_t, v < w); break;                           \
    case CASK_LE: LOOP2(T, uint8_t, v <= w); break;                          \
    case CASK_GT: LOOP2(T, uint8_t, v > w); break;                           \
    case CASK_GE: LOOP2(T, uint8_t, v >= w); break;                          \
    case CASK_EQ: LOOP2(T, uint8_t, v == w); break;                          \
    default: LOOP2(T, uint8_t, v != w); break;                               \
    }

#define ARITH(T, POWF)                                                       \
    switch (op) {                                                            \
    case CASK_ADD: LOOP2(T, T, v + w); break;                                \
    case CASK_SUB: LOOP2(T, T, v - w); break;                                \
    case CASK_MUL: LOOP2(T, T, v * w); break;                                \
    case CASK_DIV: LOOP2(T, T, v / w); break;                                \
    default: LOOP2(T, T, POWF(v, w)); break;                                 \
    }

/* a op b over operands of type dt (the output: dt, or bool for compares). */
static void binary(int op, int dt, const void *a, const void *b, void *out, size_t len)
{
    if (op >= CASK_LT) {
        switch (dt) {
        case CASK_F64: COMPARE(double); break;
        case CASK_F32: COMPARE(float); break;
        case CASK_I64: COMPARE(int64_t); break;
        default: COMPARE(uint8_t); break;
        }
        return;
    }
    switch (dt) {
    case CASK_F64: ARITH(double, pow); break;
    case CASK_F32: ARITH(float, powf); break;
    case CASK_I64: /* wrapping, as NumPy; DIV and POW were made float64 */
        switch (op) {
        case CASK_ADD: LOOP2(int64_t, uint64_t, (uint64_t)v + (uint64_t)w); break;
        case CASK_SUB: LOOP2(int64_t, uint64_t, (uint64_t)v - (uint64_t)w); break;
        default: LOOP2(int64_t, uint64_t, (uint64_t)v * (uint64_t)w); break;
        }
        break;
    default: break; /* bool arithmetic is refused when built */
    }
}

static void where(int dt, const uint8_t *c, const void *a, const void *b, void *out,
                  size_t len)
{
    size_t sz = esize[dt];
    for (size_t j = 0; j < len; j++)
        memcpy((char *)out + j * sz, (const char *)(c[j] ? a : b) + j * sz, sz);
}

/* Values of generator e at flat indices off, off + step, ... */
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
** columns col .. col + len of the last axis; the root's values in ptr. */
static void tile(eval_t *ev, const int64_t *coord, int64_t col, size_t len)
{
    const ar_phead_t *h = ev->h;
    int last = h->ndim - 1;
    for (uint32_t i = 0; i < h->nnodes; i++) {
        const ar_pnode_t *e = &ev->nd[i];
        void *own = ev->buf + (size_t)i * AR_TILE * 8;
        int64_t off = 0, step = 0;
        if (e->kind == N_BLOCKS || e->kind == N_GEN) {
            const leaf_t *l = &ev->leaf[i];
            off = l->off0;
            step = last >= 0 ? l->stride[last] : 0;
            for (int x = 0; x < last; x++)
                off += l->stride[x] * coord[x];
            off += step * col;
        }
        const char *base = ev->leaf[i].base;
        switch (e->kind) {
        case N_BLOCKS:
            if (step == 1) { /* contiguous: read in place */
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
            unary(e->op, e->dtype, ev->ptr[e->a], own, len);
            ev->ptr[i] = own;
            break;
        case N_CAST:
            cast(ev->nd[e->a].dtype, e->dtype, ev->ptr[e->a], own, len);
            ev->ptr[i] = own;
            break;
        case N_BINARY:
            binary(e->op, ev->nd[e->a].dtype, ev->ptr[e->a], ev->ptr[e->b], own, len);
            ev->ptr[i] = own;
            break;
        default:
            where(e->dtype, ev->ptr[e->a], ev->ptr[e->b], ev->ptr[e->c], own, len);
            ev->ptr[i] = own;
            break;
        }
    }
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
static void run(eval_t *ev, sink_t *s)
{
    const ar_phead_t *h = ev->h;
    for (uint32_t i = 0; i < h->nnodes; i++)
        if (ev->nd[i].kind == N_CONST)
            fill_const(&ev->nd[i], ev->buf + (size_t)i * AR_TILE * 8);
    int n = h->ndim, last = n - 1;
    int64_t coord[CASK_MAX_NDIM] = { 0 };
    for (int x = 0; x < n; x++)
        if (!ev->be[x])
            return; /* an empty block */
    int64_t width = n ? ev->be[last] : 1;
    for (;;) {
        for (int64_t col = 0; col < width; col += AR_TILE) {
            size_t len = (size_t)(width - col < AR_TILE ? width - col : AR_TILE);
            tile(ev, coord, col, len);
            s->put(s, ev->ptr[h->nnodes - 1], len, coord, col);
        }
        int x = last - 1; /* the next row: an odometer over the other axes */
        while (x >= 0 && ++coord[x] == ev->be[x])
            coord[x--] = 0;
        if (x < 0)
            return;
    }
}

/* Set up ev for prog's block `block`; 0 or a failure. */
static int eval_init(eval_t *ev, const ar_phead_t *h, int64_t block, const cask_value_t *args,
                     cask_kctx_t *ctx)
{
    ev->h = h;
    ev->nd = (const ar_pnode_t *)(h + 1);
    ev->buf = NULL;
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

/* ------------------------------------------------------------- the block */

typedef struct block_sink {
    sink_t  s;
    char   *data;                 /* the output block */
    size_t  sz;                   /* bytes per element */
    int64_t stride[CASK_MAX_NDIM];/* of the output block, in elements */
    int     last;
} block_sink_t;

static void put_block(sink_t *s, const void *x, size_t len, const int64_t *coord, int64_t col)
{
    block_sink_t *b = (block_sink_t *)s;
    int64_t off = col;
    for (int a = 0; a < b->last; a++)
        off += b->stride[a] * coord[a];
    memcpy(b->data + off * (int64_t)b->sz, x, len * b->sz);
}

/* cask.array.eval(prog, block, 0, leaf blocks...): one block of an
** elementwise expression. */
static int k_eval(const cask_value_t *args, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    int rc;
    const ar_phead_t *h = program(args, n, 3, true, ctx, &rc);
    if (!h)
        return rc;
    if (n < 3 || args[1].type != CASK_INT64)
        return cask_kernel_fail(ctx, "argument 1 must be a block index");
    eval_t ev;
    if ((rc = eval_init(&ev, h, args[1].u.i, args, ctx)))
        return rc;
    const ar_pnode_t *root = &ev.nd[h->nnodes - 1];
    if ((rc = cask__ar_block_fits(h->ndim, ev.be, ctx)) ||
        (rc = cask_value_ndarray(root->dtype, h->ndim, ev.be, out, NULL)))
        goto out;
    cask_nd_t v;
    cask_value_nd(out, &v);
    block_sink_t bs = { { put_block }, v.data, esize[root->dtype], { 0 }, h->ndim - 1 };
    int64_t st = 1;
    for (int x = h->ndim; x-- > 0;) {
        bs.stride[x] = st;
        st *= ev.be[x];
    }
    run(&ev, &bs.s);
out:
    cask__free(ev.buf);
    return rc;
}

/* ------------------------------------------------------------ reductions */

int cask__ar_red_fields(int red)
{
    switch (red) {
    case CASK_MEAN: case CASK_ARGMIN: case CASK_ARGMAX: return 2;
    case CASK_VAR: case CASK_STD: return 3;
    default: return 1;
    }
}

cask_dtype_t cask__ar_red_pdtype(int red, cask_dtype_t in)
{
    if (in == CASK_F64 || in == CASK_F32 || red == CASK_MEAN || red == CASK_VAR ||
        red == CASK_STD)
        return CASK_F64;
    return CASK_I64;
}

cask_dtype_t cask__ar_red_dtype(int red, cask_dtype_t in)
{
    switch (red) {
    case CASK_SUM: case CASK_PROD: return in == CASK_BOOL ? CASK_I64 : in;
    case CASK_MIN: case CASK_MAX: return in;
    case CASK_MEAN: case CASK_VAR: case CASK_STD: return in == CASK_F32 ? CASK_F32 : CASK_F64;
    case CASK_ARGMIN: case CASK_ARGMAX: return CASK_I64;
    default: return CASK_BOOL;
    }
}

/* Partials: field f of output element k at p[f * K + k]. */
typedef struct red {
    sink_t  s;
    int     op, fields;
    int     ints;                   /* partials are int64 */
    int64_t K;                      /* output elements in the block */
    void   *p;                      /* fields * K partials */
    int     last, last_kept;        /* root's last axis; and whether it is kept */
    int64_t kstride[CASK_MAX_NDIM]; /* output element step per root axis (0: reduced) */
    int64_t istride[CASK_MAX_NDIM]; /* ARG*: index step per root axis */
    int64_t ioff;                   /* ARG*: index of the block's first element */
    int     dtype;                  /* the root's */
    double  conv[AR_TILE];          /* the tile as double, when it is not */
    int64_t iconv[AR_TILE];         /* or as int64 */
} red_t;

static void red_init(red_t *r)
{
    double *d = r->p;
    int64_t *q = r->p, K = r->K;
    for (int64_t k = 0; k < K; k++) {
        if (r->ints) {
            switch (r->op) {
            case CASK_PROD: case CASK_ALL: q[k] = 1; break;
            case CASK_MIN: q[k] = INT64_MAX; break;
            case CASK_MAX: q[k] = INT64_MIN; break;
            case CASK_ARGMIN: q[k] = INT64_MAX, q[K + k] = -1; break;
            case CASK_ARGMAX: q[k] = INT64_MIN, q[K + k] = -1; break;
            default: q[k] = 0; break;
            }
        } else {
            switch (r->op) {
            case CASK_PROD: case CASK_ALL: d[k] = 1; break;
            case CASK_MIN: d[k] = INFINITY; break;
            case CASK_MAX: d[k] = -INFINITY; break;
            case CASK_ARGMIN: d[k] = INFINITY, d[K + k] = -1; break;
            case CASK_ARGMAX: d[k] = -INFINITY, d[K + k] = -1; break;
            case CASK_VAR: case CASK_STD: d[k] = d[K + k] = d[2 * K + k] = 0; break;
            case CASK_MEAN: d[k] = d[K + k] = 0; break;
            default: d[k] = 0; break;
            }
        }
    }
}

/* Whether (v, i) beats (w, j) for ARGMIN (max: ARGMAX): NaN first, then
** the smaller (larger) value, then the smaller index. */
static inline bool arg_better_d(double v, int64_t i, double w, int64_t j, int max)
{
    if (j < 0)
        return true;
    if (v != v || w != w)
        return w == w || (v != v && i < j);
    return max ? v > w || (v == w && i < j) : v < w || (v == w && i < j);
}

static inline bool arg_better_i(int64_t v, int64_t i, int64_t w, int64_t j, int max)
{
    if (j < 0)
        return true;
    return max ? v > w || (v == w && i < j) : v < w || (v == w && i < j);
}

/* Merge the (n, mean, M2) triple b into a (Chan et al.). */
static inline void var_merge(double *n, double *m, double *m2, double nb, double mb, double m2b)
{
    if (!nb)
        return;
    double na = *n, t = na + nb, d = mb - *m;
    *m += d * nb / t;
    *m2 += m2b + d * d * na * nb / t;
    *n = t;
}

/* Sum of x[0..len) in four lanes (pairwise enough within a tile). */
static double tile_sum(const double *x, size_t len)
{
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t j = 0;
    for (; j + 4 <= len; j += 4) {
        s0 += x[j];
        s1 += x[j + 1];
        s2 += x[j + 2];
        s3 += x[j + 3];
    }
    for (; j < len; j++)
        s0 += x[j];
    return (s0 + s1) + (s2 + s3);
}

static void put_red_d(red_t *r, const double *x, size_t len, int64_t k0, int64_t ks,
                      int64_t i0, int64_t is)
{
    double *p = r->p;
    int64_t K = r->K;
    int max = r->op == CASK_ARGMAX;
    if (!ks) { /* the whole tile goes to output element k0 */
        double *a = &p[k0];
        switch (r->op) {
        case CASK_SUM: *a += tile_sum(x, len); break;
        case CASK_MEAN: *a += tile_sum(x, len), p[K + k0] += (double)len; break;
        case CASK_PROD: for (size_t j = 0; j < len; j++) *a *= x[j]; break;
        case CASK_MIN: for (size_t j = 0; j < len; j++) if (x[j] < *a || x[j] != x[j]) *a = *a != *a ? *a : x[j]; break;
        case CASK_MAX: for (size_t j = 0; j < len; j++) if (x[j] > *a || x[j] != x[j]) *a = *a != *a ? *a : x[j]; break;
        case CASK_ANY: for (size_t j = 0; j < len; j++) if (x[j] != 0) *a = 1; break;
        case CASK_ALL: for (size_t j = 0; j < len; j++) if (x[j] == 0) *a = 0; break;
        case CASK_VAR: case CASK_STD: {
            double m = tile_sum(x, len) / (double)len, m2 = 0;
            for (size_t j = 0; j < len; j++)
                m2 += (x[j] - m) * (x[j] - m);
            var_merge(a, &p[K + k0], &p[2 * K + k0], (double)len, m, m2);
            break;
        }
        default: /* ARGMIN, ARGMAX: indices are exact in a double below 2^53 */
            for (size_t j = 0; j < len; j++) {
                int64_t i = i0 + (int64_t)j * is;
                if (arg_better_d(x[j], i, *a, d2i(p[K + k0]), max))
                    *a = x[j], p[K + k0] = (double)i;
            }
            break;
        }
        return;
    }
    for (size_t j = 0; j < len; j++) { /* element j goes to output element k0 + j */
        double v = x[j], *a = &p[k0 + (int64_t)j];
        switch (r->op) {
        case CASK_SUM: *a += v; break;
        case CASK_MEAN: *a += v, a[K] += 1; break;
        case CASK_PROD: *a *= v; break;
        case CASK_MIN: if (v < *a || v != v) *a = *a != *a ? *a : v; break;
        case CASK_MAX: if (v > *a || v != v) *a = *a != *a ? *a : v; break;
        case CASK_ANY: if (v != 0) *a = 1; break;
        case CASK_ALL: if (v == 0) *a = 0; break;
        case CASK_VAR: case CASK_STD: var_merge(a, &a[K], &a[2 * K], 1, v, 0); break;
        default:
            if (arg_better_d(v, i0 + (int64_t)j * is, *a, d2i(a[K]), max))
                *a = v, a[K] = (double)(i0 + (int64_t)j * is);
            break;
        }
    }
}

static void put_red_i(red_t *r, const int64_t *x, size_t len, int64_t k0, int64_t ks,
                      int64_t i0, int64_t is)
{
    int64_t *p = r->p, K = r->K;
    int max = r->op == CASK_ARGMAX;
    for (size_t j = 0; j < len; j++) {
        int64_t v = x[j], *a = &p[k0 + (int64_t)j * ks], i = i0 + (int64_t)j * is;
        switch (r->op) {
        case CASK_SUM: *a = (int64_t)((uint64_t)*a + (uint64_t)v); break; /* wraps, as NumPy */
        case CASK_PROD: *a = (int64_t)((uint64_t)*a * (uint64_t)v); break;
        case CASK_MIN: if (v < *a) *a = v; break;
        case CASK_MAX: if (v > *a) *a = v; break;
        case CASK_ANY: if (v) *a = 1; break;
        case CASK_ALL: if (!v) *a = 0; break;
        default:
            if (arg_better_i(v, i, *a, a[K], max))
                *a = v, a[K] = i;
            break;
        }
    }
}

static void put_red(sink_t *s, const void *x, size_t len, const int64_t *coord, int64_t col)
{
    red_t *r = (red_t *)s;
    int64_t k0 = 0, i0 = r->ioff;
    for (int a = 0; a < r->last; a++) {
        k0 += r->kstride[a] * coord[a];
        i0 += r->istride[a] * coord[a];
    }
    int64_t ks = 0, is = 0;
    if (r->last >= 0) {
        k0 += r->kstride[r->last] * col;
        i0 += r->istride[r->last] * col;
        ks = r->kstride[r->last];
        is = r->istride[r->last];
    }
    if (r->ints) {
        const int64_t *xi = x;
        if (r->dtype != CASK_I64) {
            cast(r->dtype, CASK_I64, x, r->iconv, len);
            xi = r->iconv;
        }
        put_red_i(r, xi, len, k0, ks, i0, is);
    } else {
        const double *xd = x;
        if (r->dtype != CASK_F64) {
            cast(r->dtype, CASK_F64, x, r->conv, len);
            xd = r->conv;
        }
        put_red_d(r, xd, len, k0, ks, i0, is);
    }
}

/* Merge partial q (fields * K, same layout) into r's. */
static void red_merge(red_t *r, const void *q)
{
    int64_t K = r->K;
    int max = r->op == CASK_ARGMAX;
    for (int64_t k = 0; k < K; k++) {
        if (r->ints) {
            int64_t *a = (int64_t *)r->p + k;
            const int64_t *b = (const int64_t *)q + k;
            switch (r->op) {
            case CASK_SUM: *a = (int64_t)((uint64_t)*a + (uint64_t)*b); break;
            case CASK_PROD: *a = (int64_t)((uint64_t)*a * (uint64_t)*b); break;
            case CASK_MIN: if (*b < *a) *a = *b; break;
            case CASK_MAX: if (*b > *a) *a = *b; break;
            case CASK_ANY: *a = *a || *b; break;
            case CASK_ALL: *a = *a && *b; break;
            default:
                if (b[K] >= 0 && arg_better_i(*b, b[K], *a, a[K], max))
                    *a = *b, a[K] = b[K];
                break;
            }
            continue;
        }
        double *a = (double *)r->p + k;
        const double *b = (const double *)q + k;
        switch (r->op) {
        case CASK_SUM: *a += *b; break;
        case CASK_MEAN: *a += *b, a[K] += b[K]; break;
        case CASK_PROD: *a *= *b; break;
        case CASK_MIN: if (*b < *a || *b != *b) *a = *a != *a ? *a : *b; break;
        case CASK_MAX: if (*b > *a || *b != *b) *a = *a != *a ? *a : *b; break;
        case CASK_ANY: *a = *a != 0 || *b != 0; break;
        case CASK_ALL: *a = *a != 0 && *b != 0; break;
        case CASK_VAR: case CASK_STD: var_merge(a, &a[K], &a[2 * K], *b, b[K], b[2 * K]); break;
        default:
            if (b[K] >= 0 && arg_better_d(*b, d2i(b[K]), *a, d2i(a[K]), max))
                *a = *b, a[K] = b[K];
            break;
        }
    }
}

/* The final values of r's partials, as an n-d block of the result type. */
static int red_finish(const red_t *r, int in_dtype, int ddof, int ndim, const int64_t *shape,
                      cask_value_t *out)
{
    int dt = cask__ar_red_dtype(r->op, in_dtype);
    int rc = cask_value_ndarray(dt, ndim, shape, out, NULL);
    if (rc)
        return rc;
    cask_nd_t v;
    cask_value_nd(out, &v);
    int64_t K = r->K;
    for (int64_t k = 0; k < K; k++) {
        double d = 0;
        int64_t i = 0;
        if (r->ints) {
            const int64_t *p = (const int64_t *)r->p + k;
            i = r->op == CASK_ARGMIN || r->op == CASK_ARGMAX ? p[K] : p[0];
            d = (double)i;
        } else {
            const double *p = (const double *)r->p + k;
            switch (r->op) {
            case CASK_MEAN: d = p[K] ? p[0] / p[K] : NAN; break;
            case CASK_VAR: case CASK_STD: { /* M2 / max(n - ddof, 0), as NumPy */
                double dof = p[0] - ddof;
                d = dof > 0 ? p[2 * K] / dof : p[2 * K] > 0 ? INFINITY : NAN;
                if (r->op == CASK_STD)
                    d = sqrt(d);
                break;
            }
            case CASK_ARGMIN: case CASK_ARGMAX: i = d2i(p[K]); break;
            default: d = p[0]; break;
            }
            if (dt == CASK_I64 && r->op != CASK_ARGMIN && r->op != CASK_ARGMAX)
                i = d2i(d);
        }
        switch (dt) {
        case CASK_F64: ((double *)v.data)[k] = d; break;
        case CASK_F32: ((float *)v.data)[k] = (float)d; break;
        case CASK_I64: ((int64_t *)v.data)[k] = i; break;
        default: ((uint8_t *)v.data)[k] = r->ints ? i != 0 : d != 0; break;
        }
    }
    return 0;
}

/* Output element count and result-block shape (kept axes) of the block
** of the header's grid at bo/be. */
static int64_t kept_shape(const ar_phead_t *h, const int64_t *be, int64_t *shape, int *nd)
{
    int64_t K = 1;
    *nd = 0;
    for (int x = 0; x < h->ndim; x++)
        if (!(h->axes & (1u << x))) {
            shape[(*nd)++] = be[x];
            K *= be[x];
        }
    return K;
}

/* Set up r for the header's reduction with K outputs; 0 or CASK_ENOMEM
** (a partial too large for cask__ar_max_bytes, with ctx's message, or no
** memory). */
static int red_setup(red_t *r, const ar_phead_t *h, int root_dtype, int64_t K,
                     cask_kctx_t *ctx)
{
    r->op = h->red;
    r->fields = cask__ar_red_fields(h->red);
    r->ints = cask__ar_red_pdtype(h->red, root_dtype) == CASK_I64;
    r->K = K;
    r->dtype = root_dtype;
    r->last = h->ndim - 1;
    uint64_t elems = (uint64_t)r->fields * (uint64_t)(K ? K : 1);
    int rc = fits(elems, "a partial", ctx);
    if (rc)
        return rc;
    if (!(r->p = cask__malloc((size_t)elems * 8)))
        return CASK_ENOMEM;
    red_init(r);
    return 0;
}

/* Hand r's partials back: the final block, or an n-d [fields, K] partial. */
static int red_out(red_t *r, const ar_phead_t *h, int root_dtype, bool final, int nd,
                   const int64_t *shape, cask_value_t *out)
{
    if (final)
        return red_finish(r, root_dtype, h->ddof, nd, shape, out);
    int64_t ps[2] = { r->fields, r->K };
    int rc = cask_value_ndarray(r->ints ? CASK_I64 : CASK_F64, 2, ps, out, NULL);
    if (!rc) {
        cask_nd_t v;
        cask_value_nd(out, &v);
        memcpy(v.data, r->p, (size_t)(r->fields * r->K) * 8);
    }
    return rc;
}

/* cask.array.reduce(prog, block, final, leaf blocks...): the partial (or,
** when final, the result) of one block of the program's root. */
static int k_reduce(const cask_value_t *args, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    int rc;
    const ar_phead_t *h = program(args, n, 3, true, ctx, &rc);
    if (!h)
        return rc;
    if (h->red < 0 || n < 3 || args[1].type != CASK_INT64 || args[2].type != CASK_INT64)
        return cask_kernel_fail(ctx, "arguments: a reduction program, a block, a final flag");
    eval_t ev;
    red_t *r = cask__calloc(1, sizeof *r);
    if (!r)
        return CASK_ENOMEM;
    if ((rc = eval_init(&ev, h, args[1].u.i, args, ctx)))
        goto out;
    if (cask__ar_max_stream) {
        double elems = 1;
        for (int x = 0; x < h->ndim; x++)
            elems *= (double)ev.be[x];
        if (elems > (double)cask__ar_max_stream) {
            rc = cask_kernel_fail(ctx, "a block of %.3g elements is more than the %llu one "
                                  "reduction task may read", elems,
                                  (unsigned long long)cask__ar_max_stream);
            rc = CASK_ELIMIT;
            goto out;
        }
    }
    int root_dtype = ev.nd[h->nnodes - 1].dtype;
    int64_t shape[CASK_MAX_NDIM];
    int nd;
    int64_t K = kept_shape(h, ev.be, shape, &nd);
    if ((rc = red_setup(r, h, root_dtype, K, ctx)))
        goto out;
    r->s.put = put_red;
    int64_t ks = 1, is = 1;
    for (int x = h->ndim; x-- > 0;) { /* output and index steps per axis */
        bool kept = !(h->axes & (1u << x));
        r->kstride[x] = kept ? ks : 0;
        ks *= kept ? ev.be[x] : 1;
        r->istride[x] = 0;
    }
    uint32_t all = h->ndim ? (1u << h->ndim) - 1 : 0;
    if (h->red == CASK_ARGMIN || h->red == CASK_ARGMAX) {
        r->ioff = 0;
        if ((h->axes & all) == all) { /* the flat index in the whole array */
            for (int x = h->ndim; x-- > 0;) {
                r->istride[x] = is;
                r->ioff += is * ev.bo[x];
                is *= h->shape[x];
            }
        } else { /* the index along the one reduced axis */
            for (int x = 0; x < h->ndim; x++)
                if (h->axes & (1u << x))
                    r->istride[x] = 1, r->ioff = ev.bo[x];
        }
    }
    run(&ev, &r->s);
    rc = red_out(r, h, root_dtype, args[2].u.i != 0, nd, shape, out);
out:
    cask__free(ev.buf);
    cask__free(r->p);
    cask__free(r);
    return rc;
}

/* cask.array.combine(prog, result block, final, partials...): merge the
** partials in order. */
static int k_combine(const cask_value_t *args, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    int rc;
    const ar_phead_t *h = program(args, n, 3, false, ctx, &rc);
    if (!h)
        return rc;
    if (h->red < 0 || n < 4 || args[1].type != CASK_INT64 || args[2].type != CASK_INT64)
        return cask_kernel_fail(ctx, "arguments: a reduction program, a block, a final "
                                     "flag, partials");
    /* The result block's place: the grid over the kept axes only. */
    ar_phead_t kh = *h;
    int nd = 0;
    for (int x = 0; x < h->ndim; x++)
        if (!(h->axes & (1u << x))) {
            kh.shape[nd] = h->shape[x];
            kh.chunk[nd++] = h->chunk[x];
        }
    kh.ndim = nd;
    int64_t bo[CASK_MAX_NDIM], be[CASK_MAX_NDIM];
    if (!block_place(&kh, args[1].u.i, bo, be))
        return cask_kernel_fail(ctx, "block %lld is outside the result", (long long)args[1].u.i);
    int64_t K = 1;
    for (int x = 0; x < nd; x++)
        K *= be[x];
    int root_dtype = ((const ar_pnode_t *)(h + 1))[h->nnodes - 1].dtype;
    red_t *r = cask__calloc(1, sizeof *r);
    if (!r)
        return CASK_ENOMEM;
    if ((rc = red_setup(r, h, root_dtype, K, ctx)))
        goto out;
    for (size_t i = 3; i < n; i++) {
        cask_nd_t v;
        if (cask_value_nd(&args[i], &v) || v.ndim != 2 || v.shape[0] != r->fields ||
            v.shape[1] != K || v.dtype != (r->ints ? CASK_I64 : CASK_F64)) {
            rc = cask_kernel_fail(ctx, "argument %zu is not a partial of %d x %lld", i,
                                  r->fields, (long long)K);
            goto out;
        }
        red_merge(r, v.data);
    }
    rc = red_out(r, h, root_dtype, args[2].u.i != 0, nd, be, out);
out:
    cask__free(r->p);
    cask__free(r);
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

void cask__ar_copy_block(int ndim, const int64_t *shape, const int64_t *bo, const int64_t *be,
                   size_t sz, char *whole, char *blk, bool to_block)
{
    int last = ndim - 1;
    int64_t width = last >= 0 ? be[last] : 1, coord[CASK_MAX_NDIM] = { 0 };
    for (int x = 0; x < ndim; x++)
        if (!be[x])
            return;
    for (;;) { /* one row of the block at a time */
        int64_t off = 0, st = 1;
        for (int x = ndim; x-- > 0;) {
            off += (bo[x] + (x < last ? coord[x] : 0)) * st;
            st *= shape[x];
        }
        char *w = whole + off * (int64_t)sz;
        if (to_block)
            memcpy(blk, w, (size_t)width * sz);
        else
            memcpy(w, blk, (size_t)width * sz);
        blk += (size_t)width * sz;
        int x = last - 1;
        while (x >= 0 && ++coord[x] == be[x])
            coord[x--] = 0;
        if (x < 0)
            return;
    }
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

static double cost_block(const cask_value_t *args, size_t n)
{
    size_t len;
    const ar_phead_t *h = n ? cask_value_data(&args[0], &len) : NULL;
    return !h || len < sizeof *h || ((uintptr_t)h & 7) || !cask__ar_layout_ok(h) ? 1e-6
                                                                                 : cost_layout(h);
}

static double cost_borrow(const cask_value_t *args, size_t n)
{
    const ar_borrow_t *b = n ? borrowed(&args[0]) : NULL;
    return b ? cost_layout(&b->h) : 1e-6;
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
        { "cask.array.eval", k_eval, { .cost_fn = cost_block } },
        { "cask.array.reduce", k_reduce, { .cost_fn = cost_block } },
        { "cask.array.combine", k_combine, { 0 } },
        { "cask.array.copy", k_copy, { 0 } },
        { "cask.array.borrow", k_borrow, { .cost_fn = cost_borrow } },
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
        cask__kernel_register(k[i].name, k[i].fn, &k[i].opts, NULL);
    cask__ar_register_matmul();
    cask__ar_register_gather();
}

/* ------------------------------------------------------------- gathering */

/* Place block `block` of h (bo, be) and make the output block for it. */
static int new_block(const ar_phead_t *h, const cask_value_t *block, int64_t *bo, int64_t *be,
                     cask_value_t *out, cask_nd_t *o, cask_kctx_t *ctx)
{
    if (!block_place(h, block->u.i, bo, be))
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
    if (!grid_ok(nd, d->src_shape, d->src_chunk))
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
    int rc = new_block(&d->out, &args[1], bo, be, out, &o, ctx);
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
    int rc = new_block(h, &args[1], bo, be, out, &o, ctx);
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

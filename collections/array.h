/*
** collections/array.h: what array.c (building) and array_eval.c (the
** kernels) share: the program a fused task runs.
**
** An elementwise expression is compiled into a program: a header, then
** its nodes in topological order (operands before the node). Every block
** task of the expression gets the same program (one bytes literal, shared
** by reference) and its block index; the program says how to find the
** block's place in the array and, for each leaf that reads another
** array's blocks, which argument holds the block. Programs are checked by
** the kernels before use, so a graph file cannot make a kernel read out
** of bounds.
*/
#ifndef CASK__ARRAY_H
#define CASK__ARRAY_H

#include "../graph/graph.h"
#include "cask/array.h"

#define AR_MAGIC     0x63617231u /* "car1" */
#define AR_MAX_NODES 64          /* a longer expression is materialized first */
#define AR_TILE      256         /* elements evaluated at a time */

/* Node kinds. */
enum { N_BLOCKS, N_GEN, N_CONST, N_UNARY, N_BINARY, N_WHERE, N_CAST };

/* Generators (N_GEN). */
enum { G_FULL, G_LINEAR, G_UNIFORM, G_NORMAL };

/* One node of a program (fixed size, so programs are checked simply). */
typedef struct ar_pnode {
    uint8_t kind;                /* N_* */
    uint8_t op;                  /* cask_unop_t, cask_binop_t or G_* */
    uint8_t dtype;               /* cask_dtype_t of its values */
    uint8_t src_ndim;            /* leaves: axes of the array read */
    int16_t a, b, c;             /* operands (earlier nodes), -1: none */
    int16_t arg;                 /* N_BLOCKS: kernel argument with the block */
    int8_t  map[CASK_MAX_NDIM];  /* leaves: source axis of each axis, -1: broadcast */
    int64_t src_shape[CASK_MAX_NDIM]; /* N_GEN: the generated array's shape */
    double  p[3];                /* N_GEN, N_CONST: parameters (see array.c) */
    int64_t ip[2];               /* N_GEN: seed key, int start/step; N_CONST: int */
} ar_pnode_t;

/* The program's header. */
typedef struct ar_phead {
    uint32_t magic;              /* AR_MAGIC */
    uint32_t nnodes;             /* nodes that follow; the last is the root */
    int32_t  ndim;               /* of the root */
    int32_t  red;                /* cask_reduction_t, or -1: no reduction */
    int32_t  dtype;              /* buffer and gather descriptions: the elements' type */
    uint32_t axes;               /* reduced axes (all set for a full one) */
    int32_t  ddof;               /* VAR, STD */
    int64_t  shape[CASK_MAX_NDIM]; /* root's extents */
    int64_t  chunk[CASK_MAX_NDIM]; /* root's chunks (<= extent, >= 1) */
} ar_phead_t;

/* Register the kernels of the arrays (the library's start,
** collections/init.c, calls it once). */
void cask__register_collections(void);


/* Partial results of a reduction: fields per output element. */
int cask__ar_red_fields(int red);
/* The element type partials of red over dtype are kept in. */
cask_dtype_t cask__ar_red_pdtype(int red, cask_dtype_t in);
/* The result type of red over dtype. */
cask_dtype_t cask__ar_red_dtype(int red, cask_dtype_t in);

/* Blocks along an axis of this extent and chunk (an empty axis has one). */
static inline int64_t ar_nblocks(int64_t extent, int64_t chunk)
{
    return extent ? extent / chunk + (extent % chunk != 0) : 1; /* no overflow near 2^63 */
}

/* Whether h's magic, ndim, dtype, extents and chunks are sound (what
** every kernel checks before it trusts a header from a graph file):
** extents >= 0 whose product (an empty axis counted as 1) is under 2^60,
** chunks >= 1, at most 2^31 blocks. */
bool cask__ar_layout_ok(const ar_phead_t *h);

/* The most bytes one block may take, at 8 bytes an element, in a kernel:
** the machine's physical memory (set when the kernels are registered, if
** 0 then). A kernel refuses to make a larger block, or partial, with
** CASK_ENOMEM before it allocates it. (A fused reduction streams its block
** through tiles and makes none: only its partial counts.) Tests may lower
** it, before any compute. */
extern size_t cask__ar_max_bytes;

/* The most elements one fused reduction task may read; 0 (the default):
** no limit. The fuzz target sets it, so a file cannot make it wait for
** hours; a larger block is refused with CASK_ELIMIT. */
extern uint64_t cask__ar_max_stream;

/* 0 if a block of extents be[0..ndim) (each >= 0) fits under
** cask__ar_max_bytes; else CASK_ENOMEM, with ctx's message naming it. */
int cask__ar_block_fits(int ndim, const int64_t *be, cask_kctx_t *ctx);

/* What the cask.array.borrow tasks of a borrowed array read: its layout
** and the caller's buffer. It travels as a portable opaque value (no graph
** file can spell one, and none is ever written), shared by the array's
** tasks and freed with the graph's last reference to it. */
typedef struct ar_borrow {
    ar_phead_t  h;               /* dtype, shape, chunks */
    const void *data;            /* the caller's buffer, C order */
} ar_borrow_t;

/* Free an ar_borrow_t: the destructor of its opaque value, by which
** cask.array.borrow knows the value is one. */
void cask__ar_borrow_free(void *p);

/* Where block `block` of h's grid starts (bo) and its extents (be); false
** when there is no such block. */
bool cask__ar_block_place(const ar_phead_t *h, int64_t block, int64_t *bo, int64_t *be);
/* Copy the block at bo/be between whole (C order, shape) and blk (C order,
** be): into blk when to_block, else out of it. sz: bytes per element. */
void cask__ar_copy_block(int ndim, const int64_t *shape, const int64_t *bo, const int64_t *be,
                   size_t sz, char *whole, char *blk, bool to_block);

/* Register cask.array.matmul (array_matmul.c). */
void cask__ar_register_matmul(void);

/* What cask.array.gather reads: the output's layout (whose dtype is the
** source's too) and, per axis, the source's extent and chunk and the
** element map source coordinate = start + step * output coordinate. */
typedef struct ar_gather {
    ar_phead_t out;
    int64_t    src_shape[CASK_MAX_NDIM];
    int64_t    src_chunk[CASK_MAX_NDIM];
    int64_t    start[CASK_MAX_NDIM];
    int64_t    step[CASK_MAX_NDIM];
} ar_gather_t;

/* Register cask.array.gather (array_eval.c). */
void cask__ar_register_gather(void);

/* The SplitMix64 mix of a seed: a generator's key. */
uint64_t cask__ar_seed_key(uint64_t seed);

#endif /* CASK__ARRAY_H */

/*
** collections/array.h: what the files of the arrays share. By feature:
**
**   array.c         the array object: creation, reading, tasks, compute
**   array_expr.c    expressions: compiling, elementwise operations, where,
**                   astype, transpose (building only: no task is added)
**   array_ops.c     the tables of elementwise operations, and their loops
**   array_eval.c    the evaluator of fused programs and the generators, the
**                   eval, copy and borrow kernels, and registration
**   array_reduce.c  reductions: the table, building the trees, the kernels
**   array_gather.c  slice, rechunk, concatenate: building and the kernels
**   array_matmul.c  matmul: building and the kernel
**   array_npy.c     .npy files
**   array_hdf5.c    HDF5 datasets
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

/* Node kinds. N_FILE is a leaf that reads its region of a file inside the
** kernel that evaluates it (as a generator computes its values), so every
** expression over a file reads what it needs itself and no block of the
** file is held between tasks. */
enum { N_BLOCKS, N_GEN, N_CONST, N_UNARY, N_BINARY, N_WHERE, N_CAST, N_FILE };

/* Files (N_FILE's op). */
enum { F_NPY, F_HDF5 };

/* An N_FILE leaf's argument: a bytes value, this header, then the path
** and (F_HDF5) the dataset, each NUL-terminated. */
typedef struct ar_fdesc {
    int64_t offset;              /* F_NPY: the data's offset in the file */
    int64_t size;                /* F_NPY: the file's bytes when opened */
} ar_fdesc_t;

/* Generators (N_GEN). */
enum { G_FULL, G_LINEAR, G_UNIFORM, G_NORMAL };

/* One node of a program (fixed size, so programs are checked simply). */
typedef struct ar_pnode {
    uint8_t kind;                /* N_* */
    uint8_t op;                  /* cask_unop_t, cask_binop_t or G_* */
    uint8_t dtype;               /* cask_dtype_t of its values */
    uint8_t src_ndim;            /* leaves: axes of the array read */
    int16_t a, b, c;             /* operands (earlier nodes), -1: none */
    int16_t arg;                 /* N_BLOCKS: kernel argument with the block;
                                    N_FILE: with the file's description */
    int8_t  map[CASK_MAX_NDIM];  /* leaves: source axis of each axis, -1: broadcast */
    int64_t src_shape[CASK_MAX_NDIM]; /* N_GEN, N_FILE: the whole source's shape */
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

/* ---------------------------------------------------------------- layout */

/* Blocks along an axis of this extent and chunk (an empty axis has one). */
static inline int64_t ar_nblocks(int64_t extent, int64_t chunk)
{
    return extent ? extent / chunk + (extent % chunk != 0) : 1; /* no overflow near 2^63 */
}

/* Whether extents shape[0..ndim) (and chunks chunk, unless NULL) are
** sound: extents >= 0 whose product, an empty axis counted as 1, is under
** 2^60; chunks >= 1 and at most 2^31 blocks. Then no product of extents,
** offsets or block indices a kernel forms can overflow. */
bool cask__ar_grid_ok(int ndim, const int64_t *shape, const int64_t *chunk);

/* Whether h's magic, ndim, dtype, extents and chunks are sound (what
** every kernel checks before it trusts a header from a graph file):
** extents >= 0 whose product (an empty axis counted as 1) is under 2^60,
** chunks >= 1, at most 2^31 blocks. */
bool cask__ar_layout_ok(const ar_phead_t *h);

/* Where block `block` of h's grid starts (bo) and its extents (be); false
** when there is no such block. */
bool cask__ar_block_place(const ar_phead_t *h, int64_t block, int64_t *bo, int64_t *be);

/* The block at bo/be of an array of shape (C order) as contiguous runs of
** the whole, in the block's own C order: fn(ctx, index of the run's first
** element in the whole, elements in the run) for each (the last axis, and
** the axes before it that the block spans whole). Stops at, and returns,
** fn's first nonzero return; 0 for an empty block. */
int cask__ar_block_runs(int ndim, const int64_t *shape, const int64_t *bo, const int64_t *be,
                        int (*fn)(void *ctx, int64_t flat, int64_t n), void *ctx);

/* Copy the block at bo/be between whole (C order, shape) and blk (C order,
** be): into blk when to_block, else out of it. sz: bytes per element. */
void cask__ar_copy_block(int ndim, const int64_t *shape, const int64_t *bo, const int64_t *be,
                         size_t sz, char *whole, char *blk, bool to_block);

/* The most bytes one block may take, at 8 bytes an element, in a kernel:
** the machine's physical memory (set when the kernels are registered, if
** 0 then). A kernel refuses to make a larger block, or partial, with
** CASK_ENOMEM before it allocates it. (A fused reduction streams its block
** through tiles and makes none: only its partial counts.) Tests may lower
** it, before any compute. */
extern size_t cask__ar_max_bytes;

/* The bytes of a file leaf an evaluator reads at a time, when its tiles
** go through the leaf's box in order and the box is more than twice this:
** a window of whole slabs along the box's first axis, so the data stays in
** cache from its read to its use (1 MB; tests lower it, before any
** compute). cask__ar_streams counts the leaves read so, in this process. */
extern size_t cask__ar_window;
extern atomic_size_t cask__ar_streams;

/* The most elements one fused reduction task may read; 0 (the default):
** no limit. The fuzz target sets it, so a file cannot make it wait for
** hours; a larger block is refused with CASK_ELIMIT. */
extern uint64_t cask__ar_max_stream;

/* 0 if elems elements of 8 bytes fit under cask__ar_max_bytes, else
** CASK_ENOMEM with ctx's message naming what (a block, a partial). */
int cask__ar_fits(uint64_t elems, const char *what, cask_kctx_t *ctx);

/* 0 if a block of extents be[0..ndim) (each >= 0) fits under
** cask__ar_max_bytes; else CASK_ENOMEM, with ctx's message naming it. */
int cask__ar_block_fits(int ndim, const int64_t *be, cask_kctx_t *ctx);

/* Place block `block` (an int64 value) of h's grid (bo, be) and make the
** output block for it in *out, viewed in *o: 0, or the kernel's error. */
int cask__ar_new_block(const ar_phead_t *h, const cask_value_t *block, int64_t *bo, int64_t *be,
                       cask_value_t *out, cask_nd_t *o, cask_kctx_t *ctx);

/* ------------------------------------------------------------ operations */

/* Loops over len elements: out[j] = op a[j], or a[j] op b[j]. */
typedef void (*ar_loop1_t)(const void *a, void *out, size_t len);
typedef void (*ar_loop2_t)(const void *a, const void *b, void *out, size_t len);

/* How an operation types its operands and its result. */
enum {
    AR_SAME,     /* the operands' common type, and so is the result */
    AR_FLOAT,    /* int64 and bool operands are taken as float64 first */
    AR_COMPARE   /* the operands' common type; the result is bool */
};

/* One binary operation: a row of cask__ar_binops. */
typedef struct ar_binop {
    const char *name;     /* in keys and messages: "add" */
    int         rule;     /* AR_SAME, AR_FLOAT or AR_COMPARE */
    bool        bools;    /* defined on two bool operands (AR_FLOAT: as float64) */
    ar_loop2_t  loop[4];  /* by operand dtype; NULL where it is not defined */
} ar_binop_t;

/* What a unary operation does to a bool array. */
enum { AR_BOOL_REFUSE, AR_BOOL_SELF, AR_BOOL_FLOAT };

/* One unary operation: a row of cask__ar_unops. */
typedef struct ar_unop {
    const char *name;     /* "sqrt" */
    int         rule;     /* AR_SAME, or AR_FLOAT: int64 is taken as float64 */
    int         on_bool;  /* AR_BOOL_*: refused, the identity, or as float64 */
    ar_loop1_t  loop[4];  /* by dtype; NULL where it is not defined */
} ar_unop_t;

/* The tables, indexed by cask_binop_t and cask_unop_t (array_ops.c). */
extern const ar_binop_t cask__ar_binops[CASK_BINOP_COUNT];
extern const ar_unop_t cask__ar_unops[CASK_UNOP_COUNT];

/* Convert len elements of dtype from to dtype to (C casts, but float to
** int64 as NumPy on x86: NaN and out-of-range give INT64_MIN). */
void cask__ar_cast(int from, int to, const void *a, void *out, size_t len);

/* out[j] = c[j] ? a[j] : b[j] for len elements of dtype dt. */
void cask__ar_where(int dt, const uint8_t *c, const void *a, const void *b, void *out, size_t len);

/* A double as int64, as NumPy gives it on x86-64: truncated, and INT64_MIN
** for NaN, infinities and values out of range (a C cast of those is
** undefined). */
static inline int64_t ar_d2i(double v)
{
    return v >= -0x1p63 && v < 0x1p63 ? (int64_t)v : INT64_MIN;
}

/* ------------------------------------------------------------- building */

typedef struct ar_blockset {
    atomic_uint  refs;
    int          ndim;
    int64_t      chunk[CASK_MAX_NDIM];
    size_t       n;
    cask_task_t *tasks;
} ar_blockset_t;

typedef struct ar_enode {
    atomic_uint   refs;
    uint8_t       kind, op;             /* N_*; its operation */
    cask_dtype_t  dtype;                /* of its values */
    int           ndim;                 /* the expression's */
    int64_t       shape[CASK_MAX_NDIM]; /* its extents (1 where it broadcasts) */
    struct ar_enode *a[3];                 /* operands (references held) */
    int           count;                /* nodes under it, counted as a tree */
    ar_blockset_t   *bs;                   /* N_BLOCKS: whose blocks (reference held) */
    int           src_ndim;             /* leaves: axes of the source */
    int64_t       src_shape[CASK_MAX_NDIM]; /* leaves: the source's extents */
    int8_t        map[CASK_MAX_NDIM];   /* leaves: source axis of each axis, or -1 */
    double        p[3];                 /* N_GEN, N_CONST parameters (array.h) */
    int64_t       ip[2];
    cask_value_t  src;                  /* N_FILE: its description (a reference held) */
    int           scans;                /* N_FILE: reductions built over it so far */
} ar_enode_t;

struct cask_array {
    atomic_uint   refs;
    cask_graph_t *g;                    /* a reference held */
    cask_dtype_t  dtype;
    int           ndim;
    int64_t       shape[CASK_MAX_NDIM];
    int64_t       chunk[CASK_MAX_NDIM]; /* normalised: 1 .. max(extent, 1) */
    ar_enode_t      *e;                    /* what its elements are */
    ar_blockset_t   *bs;                   /* its blocks' tasks, once made */
};


/* "(3, 4)" into buf. */
const char *cask__ar_shape_str(char *buf, size_t size, int ndim, const int64_t *shape);

/* Expression nodes and block sets: new, and a reference dropped. */
ar_enode_t *cask__ar_node_new(int kind, int op, cask_dtype_t dtype, int ndim,
                              const int64_t *shape);
void cask__ar_node_decref(ar_enode_t *e);
ar_blockset_t *cask__ar_blockset_new(int ndim, const int64_t *shape, const int64_t *chunk);
void cask__ar_blockset_decref(ar_blockset_t *b);

/* Blocks of a grid; block i's coordinates; blocks along each axis. */
size_t cask__ar_grid_blocks(int ndim, const int64_t *shape, const int64_t *chunk);
void cask__ar_grid_coords(int ndim, const int64_t *nb, int64_t i, int64_t *c);
void cask__ar_grid_extents(int ndim, const int64_t *shape, const int64_t *chunk, int64_t *nb);

/* Check dtype, ndim, shape and chunks (NULL: picked); fill the normalised
** chunks. 0, CASK_EINVAL or CASK_ELIMIT naming what is wrong. */
int cask__ar_check_layout(cask_dtype_t dtype, int ndim, const int64_t *shape,
                          const int64_t *chunks, int64_t *chunk, cask_error_t *err);

/* A new array of g over expression e (stolen) in chunks chunk. */
cask_array_t *cask__ar_new(cask_graph_t *g, ar_enode_t *e, const int64_t *chunk,
                           cask_error_t *err);
/* The index of the first bool byte in p[0..n) that is not 0 or 1, or n:
** what a file that holds bools is checked by. */
static inline size_t cask__ar_bad_bool(const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n && p[i] <= 1)
        i++;
    return i;
}

/* An array over a file of dtype and this shape, in chunks (as the user
** gave them: checked here, an error naming the file): an N_FILE leaf whose
** description (cask__ar_fdesc reads it) is d, path and, for op F_HDF5,
** dataset (NULL for F_NPY). */
cask_array_t *cask__ar_file_array(cask_graph_t *g, int op, ar_fdesc_t d, const char *path,
                                  const char *dataset, cask_dtype_t dtype, int ndim,
                                  const int64_t *shape, const int64_t *chunks, cask_error_t *err);
/* The path (and, for F_HDF5, the dataset) of a file description, checked;
** NULL if it is not one. */
const ar_fdesc_t *cask__ar_fdesc(const cask_value_t *v, int op, const char **path,
                                 const char **dataset);
/* Read the box lo[s] .. lo[s] + n[s] of the file's array (dtype, shape)
** into dst, in C order: 0, or the kernel's error naming the file. */
int cask__ar_read_box(int op, const cask_value_t *desc, cask_dtype_t dtype, int ndim,
                      const int64_t *shape, const int64_t *lo, const int64_t *n, void *dst,
                      cask_kctx_t *ctx);

/* A box of a file's array open to be read with pread, a slab at a time:
** it lies in a stored C-order array (the file's whole array, or one HDF5
** chunk) of shape in, at byte base of fd, from element at on. */
typedef struct ar_fview {
    int fd;                        /* -1: not open */
    int ndim;
    size_t es;                     /* bytes per element */
    int64_t base;
    int64_t in[CASK_MAX_NDIM];
    int64_t at[CASK_MAX_NDIM];
    int64_t n[CASK_MAX_NDIM];      /* the box's extents */
    const char *path, *dataset;    /* the description's (dataset NULL for .npy) */
    bool bools;                    /* each byte must be 0 or 1 */
} ar_fview_t;

/* Open the box lo .. lo + n of the file's array (op, desc, dtype, shape)
** into *v: 0, or the kernel's error naming the file. Close v->fd after,
** unless it is -1: then the box is empty, or it was one only HDF5 can read
** (filters, a conversion, across chunks) and HDF5 has read it, in the same
** visit, into dst, or (dst NULL) into a new region (cask__big_malloc) in
** *whole. */
int cask__ar_fview_open(int op, const cask_value_t *desc, cask_dtype_t dtype, int ndim,
                        const int64_t *shape, const int64_t *lo, const int64_t *n,
                        ar_fview_t *v, void *dst, void **whole, cask_kctx_t *ctx);
/* Read slabs r .. r + k of v's box (along its first axis, whole along
** the others; for a 0-d box r 0, k 1) into dst with pread: 0, or the
** kernel's error naming the file and where it ended (or the bad bool). */
int cask__ar_fview_read(const ar_fview_t *v, int64_t r, int64_t k, void *dst, cask_kctx_t *ctx);
/* Tests only: make the nth run cask__ar_fview_read reads from now (in this
** process) find the file's end at its first byte (n >= 1); 0 turns it off. */
void cask__ar_read_end_at(long n);
int cask__ar_npy_view(const cask_value_t *desc, cask_dtype_t dtype, int ndim,
                      const int64_t *shape, const int64_t *lo, const int64_t *n, ar_fview_t *v,
                      cask_kctx_t *ctx);
int cask__ar_h5_view(const cask_value_t *desc, cask_dtype_t dtype, int ndim,
                     const int64_t *shape, const int64_t *lo, const int64_t *n, ar_fview_t *v,
                     void *dst, void **whole, cask_kctx_t *ctx);
/* HDF5 boxes opened to be read with pread, past HDF5 (in this process):
** tests look at it. */
extern atomic_size_t cask__ar_h5_direct_reads;
/* Whether e reads another array's blocks anywhere (then its chunks are not
** free: generators, constants and files take any chunks). */
bool cask__ar_has_blocks(const ar_enode_t *e);
/* A leaf reading blockset b (of an array of this shape) as it is. */
ar_enode_t *cask__ar_blocks_leaf(ar_blockset_t *b, cask_dtype_t dtype, int ndim,
                                 const int64_t *shape);
/* A new array over the blocks b (stolen), which hold dtype values. */
cask_array_t *cask__ar_blocks_array(cask_graph_t *g, ar_blockset_t *b, cask_dtype_t dtype,
                                    int ndim, const int64_t *shape, cask_error_t *err);
/* The header of a program or description for this layout of dtype. */
ar_phead_t cask__ar_head_for(cask_dtype_t dtype, int ndim, const int64_t *shape,
                             const int64_t *chunk);

/* NumPy's promotion of two array dtypes. */
cask_dtype_t cask__ar_promote(cask_dtype_t a, cask_dtype_t b);

/* A compiled program and what its tasks need beside it. */
typedef struct ar_compiled {
    cask_value_t      prog;                /* the program, a bytes value (a reference) */
    const ar_enode_t *leaf[AR_MAX_NODES];  /* its N_BLOCKS and N_FILE leaves, in argument
                                              order */
    int               nleaf;
    uint64_t          token;               /* the key token of its tasks */
} ar_compiled_t;

/* The program for a's expression over a's layout (red < 0: no
** reduction) into *c; release c->prog when done. */
int cask__ar_compile(const cask_array_t *a, int red, unsigned axes, int ddof, ar_compiled_t *c,
                     cask_error_t *err);
/* Add one task per block of a running program cp (kernel, with `final` as
** argument 2, key NAME name) into tasks[0..blocks). */
int cask__ar_add_block_tasks(cask_array_t *a, const ar_compiled_t *cp, const char *kernel,
                             const char *name, int64_t final, const uint64_t *nbytes,
                             cask_task_t *tasks, cask_error_t *err);

/* Bytes of block i of an array of dtype in chunks chunk over shape. */
uint64_t cask__ar_block_nbytes(cask_dtype_t dtype, int ndim, const int64_t *shape,
                               const int64_t *chunk, size_t i);
/* Give a its blocks' tasks, if it has none yet: one fused task per block. */
int cask__ar_materialize(cask_array_t *a, cask_error_t *err);

/* ------------------------------------------------------------ evaluating */

/* The header and nodes of prog (args[0]), checked; NULL with a message
** (ctx) and *rc. With leaves, every block leaf must name an argument in
** base .. n-1 (combine tasks read partials, not leaves). */
const ar_phead_t *cask__ar_program(const cask_value_t *args, size_t n, size_t base, bool leaves,
                                   cask_kctx_t *ctx, int *rc);

/* How the evaluator reads a leaf of the program. */
typedef struct ar_leaf {
    const char *base;              /* N_BLOCKS, N_FILE: the block's (region's) elements
                                      (NULL for a streamed N_FILE) */
    void *own;                     /* N_FILE: the region read (freed with the evaluator) */
    struct ar_stream *st;          /* N_FILE: read a window at a time instead, or NULL */
    int64_t stride[CASK_MAX_NDIM]; /* elements per step along each root axis */
    int64_t off0;                  /* offset of the block's first element */
} ar_leaf_t;

/* What receives the root's tiles: AR_TILE or fewer values of the root's
** dtype, for the row at coord (axes before the last), columns col on. */
typedef struct ar_sink {
    void (*put)(struct ar_sink *s, const void *x, size_t len, const int64_t *coord, int64_t col);
} ar_sink_t;

/* A program set up for one block. */
typedef struct ar_eval {
    const ar_phead_t *h;
    const ar_pnode_t *nd;
    int64_t   bo[CASK_MAX_NDIM], be[CASK_MAX_NDIM];
    ar_leaf_t leaf[AR_MAX_NODES];
    void     *ptr[AR_MAX_NODES];   /* each node's values for the tile */
    char     *buf;                 /* AR_TILE 8-byte slots per node */
    cask_kctx_t *ctx;              /* the task's, for a failed read */
} ar_eval_t;

/* Set up ev for prog's block `block` (args: the task's arguments), opening
** or reading the regions of its file leaves; 0 or a failure.
** cask__ar_eval_free(ev) when done (also after a failure). */
int cask__ar_eval_init(ar_eval_t *ev, const ar_phead_t *h, int64_t block,
                       const cask_value_t *args, cask_kctx_t *ctx);
void cask__ar_eval_free(ar_eval_t *ev);
/* Run the program over ev's block, handing the root's tiles to s: 0, or
** the failure of a read of a file leaf streamed a window at a time (the
** file cut short meanwhile, say). */
int cask__ar_run(ar_eval_t *ev, ar_sink_t *s);

/* ------------------------------------------------------------ reductions */

/* How a reduction's result is typed. */
enum {
    AR_R_SAME,   /* the input's type */
    AR_R_SUM,    /* int64 for bool input, else the input's */
    AR_R_FLOAT,  /* float32 for float32, else float64 */
    AR_R_INDEX,  /* int64 */
    AR_R_BOOL    /* bool */
};

/*
** One reduction: a row of cask__ar_reds. Partials keep `fields` values per
** output element, field f of element k at p[f * K + k], in int64 for
** int64 and bool input (unless float_partials) and float64 otherwise; the
** functions see element k's field 0 at p (its field f at p[f * K]).
*/
typedef struct ar_red {
    const char *name;          /* "sum" */
    int     fields;            /* partials per output element */
    int     result;            /* AR_R_* */
    bool    float_partials;    /* float64 partials whatever the input */
    bool    identity;          /* defined over an empty extent */
    bool    index;             /* the result is field 1, an index (argmin, argmax) */
    double  init_d[3];         /* each field's start, float partials */
    int64_t init_i[2];         /* and int64 partials */
    /* Fold len values into the partials: value j into element k0 + j * ks
    ** (ks is 0: all into k0, or 1), its flat index i0 + j * is. */
    void (*tile_d)(double *p, int64_t K, const double *x, size_t len, int64_t k0, int64_t ks,
                   int64_t i0, int64_t is);
    void (*tile_i)(int64_t *p, int64_t K, const int64_t *x, size_t len, int64_t k0, int64_t ks,
                   int64_t i0, int64_t is);
    /* Merge element b's partials into element a's. */
    void (*merge_d)(double *a, const double *b, int64_t K);
    void (*merge_i)(int64_t *a, const int64_t *b, int64_t K);
    /* An element's result from its float partials; NULL: field 0. */
    double (*final_d)(const double *p, int64_t K, int ddof);
} ar_red_t;

/* The table, indexed by cask_reduction_t (array_reduce.c). */
extern const ar_red_t cask__ar_reds[CASK_REDUCTION_COUNT];

/* The result type of reduction red over dtype in. */
cask_dtype_t cask__ar_red_dtype(int red, cask_dtype_t in);

/* ------------------------------------------------------- kernels, data */

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

/* The SplitMix64 mix of a seed: a generator's key. */
uint64_t cask__ar_seed_key(uint64_t seed);

/* The cost model of a kernel whose first argument is a program: about a
** nanosecond per element of its block. */
double cask__ar_cost_block(const cask_value_t *args, size_t n);

/* Register the kernels of the arrays (the library's start,
** collections/init.c, calls it once), and those of each file. */
void cask__register_collections(void);
void cask__ar_register_reduce(void);
void cask__ar_register_gather(void);
void cask__ar_register_matmul(void);

#endif /* CASK__ARRAY_H */

/*
** cask/array.h: lazy chunked n-d arrays, as dask.array.
**
** An array is a grid of blocks (regular chunks along each axis; the last
** block of an axis may be short) in a graph. Building an expression runs
** nothing and, for elementwise steps, adds no task either: a chain of
** elementwise operations, random generation included, is kept as one
** expression and fused into the tasks of whatever consumes it, so
** (x*x + 1).sum() over a generated x is one task per block that makes one
** pass and holds no block in memory. Tasks appear when something needs
** blocks: a reduction, cask_array_tasks(), cask_array_compute().
**
**   int64_t n = 100000000, chunk = 1000000;
**   cask_array_t *x  = cask_array_random_normal(g, 1, &n, &chunk, 42, 0, 1, &err);
**   cask_array_t *xx = cask_array_binop(x, CASK_MUL, x, &err);
**   cask_array_t *y  = cask_array_binop_scalar(xx, CASK_ADD, cask_int(1), &err);
**   cask_array_t *s  = cask_array_reduce(y, CASK_SUM, NULL, &err);
**   double sum;
**   cask_array_compute(&s, 1, NULL, (void *[]){ &sum }, NULL, &err);
**
** Handles are reference counted: every function that returns an array
** returns a new reference (free it with cask_array_decref()); arrays passed
** in are borrowed. An array keeps its graph alive. A function given a NULL
** array (the result of an earlier failed call) fails with CASK_EINVAL, so
** errors can be checked once, at the end.
**
** Types follow NumPy: float64, float32, int64 and bool elements; operands
** are broadcast (trailing axes aligned, extent-1 axes stretched) and
** promoted (bool < int64 < float64; float32 with int64 gives float64). A
** scalar operand is a cask_int() or cask_double() and, as a Python scalar
** in NumPy, does not widen a float32 array; a double with an int64 or bool
** array gives float64.
**
** Every block is one task, so a layout of more than 2^31 blocks is refused
** with CASK_ELIMIT wherever an array is made.
**
** Threads: as the graph the arrays live in: one thread at a time builds,
** and cask_array_tasks(), cask_array_compute() and cask_array_save_npy()
** build too (they add an array's tasks the first time). An array's
** elements, once defined, never change.
*/
#ifndef CASK_ARRAY_H
#define CASK_ARRAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "graph.h"
#include "sched.h"
#include "value.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cask_array cask_array_t; /* opaque, reference counted */

/* --------------------------------------------------------------- creation */

/*
** Chunks: chunks[a] is the block extent along axis a (at least 1; larger
** than the axis means one block). chunks NULL picks blocks of about 2^20
** elements, whole rows first (the last axes are split last), and one
** block for an array with no elements.
** Shapes: extents >= 0; ndim 0 .. CASK_MAX_NDIM.
** Errors (all creation functions): CASK_EINVAL for a bad ndim, extent,
** chunk or dtype, naming it; CASK_ENOMEM. Returns NULL on failure.
*/

/* Flags for cask_array_from_buffer. */
enum {
    CASK_ARRAY_COPY = 1u << 0 /* copy data now; else borrow it */
};

/*
** An array over the caller's C-order buffer data of dtype and shape. With
** CASK_ARRAY_COPY, the blocks are copied now and data may go at once.
** Otherwise data is borrowed: each block is copied out of it when a
** compute runs, so data must stay valid and unchanged until the last
** compute that uses the array has returned (worker processes see it as it
** was when their compute started; under mpi each rank reads the buffer it
** built its graph over). A borrowed buffer is held in the graph as an
** opaque value, not as an address a file could name: a graph holding one
** cannot be written as JSON (cask_graph_save_json gives CASK_ETYPE).
** Cost: O(size) with CASK_ARRAY_COPY (the copy and its hash), else O(blocks).
*/
CASK_API cask_array_t *cask_array_from_buffer(cask_graph_t *g, cask_dtype_t dtype, int ndim,
                                              const int64_t *shape, const int64_t *chunks,
                                              const void *data, unsigned flags,
                                              cask_error_t *err);

/* An array whose every element is value (converted to dtype; an int64
** array refuses a value outside int64's range with CASK_EINVAL). */
CASK_API cask_array_t *cask_array_full(cask_graph_t *g, cask_dtype_t dtype, int ndim,
                                       const int64_t *shape, const int64_t *chunks,
                                       double value, cask_error_t *err);

/* start, start + step, ... while below stop (above, for step < 0), as
** numpy.arange: ceil((stop - start) / step) elements, in chunks of chunk
** (0: about 2^20). float64, or int64 for integer start and step (else
** CASK_ETYPE). step 0 is CASK_EINVAL. */
CASK_API cask_array_t *cask_array_arange(cask_graph_t *g, cask_dtype_t dtype, int64_t chunk,
                                         double start, double stop, double step,
                                         cask_error_t *err);

/* num evenly spaced float64 values from start to stop, as numpy.linspace:
** with endpoint the last is stop exactly, else stop is left out. chunk as
** for cask_array_arange. */
CASK_API cask_array_t *cask_array_linspace(cask_graph_t *g, int64_t chunk, double start,
                                           double stop, int64_t num, bool endpoint,
                                           cask_error_t *err);

/*
** Random float64 arrays from a counter-based generator: element i (its
** C-order index in the whole array) depends only on seed and i, never on
** the chunks, the scheduler or the number of workers. Uniform on
** [low, high); normal with mean loc and standard deviation scale (a
** ziggurat over SplitMix64 draws). The streams are cask's own, not NumPy's.
*/
CASK_API cask_array_t *cask_array_random_uniform(cask_graph_t *g, int ndim, const int64_t *shape,
                                                 const int64_t *chunks, uint64_t seed, double low,
                                                 double high, cask_error_t *err);
CASK_API cask_array_t *cask_array_random_normal(cask_graph_t *g, int ndim, const int64_t *shape,
                                                const int64_t *chunks, uint64_t seed, double loc,
                                                double scale, cask_error_t *err);

/* ------------------------------------------------------------ elementwise */

/* Binary operations, as NumPy's. */
typedef enum cask_binop {
    CASK_ADD, CASK_SUB, CASK_MUL,  /* in the operands' common type; not on two bools */
    CASK_DIV,                      /* true division: int64 and bool operands in float64 */
    CASK_POW,                      /* int64 operands in float64; not on two bools */
    CASK_LT, CASK_LE, CASK_GT, CASK_GE, CASK_EQ, CASK_NE, /* comparisons: bool results */
    CASK_BINOP_COUNT               /* not an operation: how many there are */
} cask_binop_t;

/* Unary operations. neg and abs keep the type (neg refuses bool, abs of
** bool is itself); sqrt, exp, log, sin and cos give float64 for int64 and
** bool input, float32 for float32. */
typedef enum cask_unop {
    CASK_NEG, CASK_ABS, CASK_SQRT, CASK_EXP, CASK_LOG, CASK_SIN, CASK_COS,
    CASK_UNOP_COUNT                /* not an operation: how many there are */
} cask_unop_t;

/*
** a op b, elementwise, broadcast. Refused at build time: shapes that do not
** broadcast (CASK_EINVAL, naming both shapes), arithmetic on two bool
** arrays and negation of a bool array (CASK_ETYPE), operands of different
** graphs (CASK_EINVAL). The result's chunk along an axis is the larger of
** the operands' chunks there among those that read blocks (loaded, sliced,
** reduced, ... arrays; generated ones and expressions of them take any
** chunks), else a's (b's along axes a broadcasts); an operand whose blocks
** differ is rechunked to it first, as dask's unify_chunks, so no block
** grows past the larger chunk.
*/
CASK_API cask_array_t *cask_array_binop(cask_array_t *a, cask_binop_t op, cask_array_t *b,
                                        cask_error_t *err);
/* a op s, and s op a, for a scalar s: cask_int() or cask_double(). */
CASK_API cask_array_t *cask_array_binop_scalar(cask_array_t *a, cask_binop_t op,
                                               cask_value_t s, cask_error_t *err);
CASK_API cask_array_t *cask_array_scalar_binop(cask_value_t s, cask_binop_t op,
                                               cask_array_t *a, cask_error_t *err);
/* op(a), elementwise. CASK_ETYPE for the negation of a bool array. */
CASK_API cask_array_t *cask_array_unop(cask_array_t *a, cask_unop_t op, cask_error_t *err);

/* cond ? a : b, elementwise and broadcast, chunks lined up as
** cask_array_binop's; cond must be bool (CASK_ETYPE). */
CASK_API cask_array_t *cask_array_where(cask_array_t *cond, cask_array_t *a, cask_array_t *b,
                                        cask_error_t *err);

/* a converted to dtype (C casts: float to int truncates; nonzero is true). */
CASK_API cask_array_t *cask_array_astype(cask_array_t *a, cask_dtype_t dtype,
                                         cask_error_t *err);

/* ------------------------------------------------------------------ shape */

/*
** a with its axes permuted: axis x of the result is axis perm[x] of a
** (perm NULL: reversed, as a.T). Nothing is copied: the expression reads
** its sources in the new order, so (A + A.T) is one fused task per block.
** Errors: CASK_EINVAL for a perm that is not a permutation of 0 .. ndim-1.
*/
CASK_API cask_array_t *cask_array_transpose(cask_array_t *a, const int *perm,
                                            cask_error_t *err);

/*
** The matrix product a @ b, as numpy.matmul, of 1-d and 2-d arrays: a 1-d a
** is a row vector, a 1-d b a column vector, and their axes are dropped from
** the result (vector @ vector is a 0-d dot product). The result type is
** NumPy's: float64, float32 when both are, int64 for int64 (wrapping on
** overflow as NumPy's) and bool for two bools. Where a's column chunks and
** b's row chunks differ, the smaller are rechunked to the larger. One task
** per result block multiplies its row of a's blocks by its column of b's
** blocks, through OpenBLAS (dgemm/sgemm) for floats and a plain loop for
** int64; the operands' blocks are made first if they have none. OpenBLAS
** is set to one thread the first time a block product runs, so the
** scheduler's workers are the only parallelism (this is process-wide).
** Errors: CASK_EINVAL for operands of other than 1 or 2 axes or whose inner
** extents differ (naming the shapes), or of different graphs; CASK_ENOMEM.
*/
CASK_API cask_array_t *cask_array_matmul(cask_array_t *a, cask_array_t *b, cask_error_t *err);

/* One axis of a slice, as Python's start:stop:step. */
typedef struct cask_slice {
    int64_t start;   /* first index; negative counts from the end; CASK_SLICE_NONE: omitted */
    int64_t stop;    /* index past the last, as start */
    int64_t step;    /* nonzero; negative walks backwards */
} cask_slice_t;

/* An omitted start or stop (Python's None). */
#define CASK_SLICE_NONE INT64_MIN

/*
** a[s[0], s[1], ..., s[n-1]], as NumPy's basic slicing (the axes after
** the n given are whole; indices clamp as Python's do). The result keeps
** a's chunk extents; each of its blocks is gathered from the source
** blocks it touches and from no other, so blocks of a the slice skips are
** never computed.
** Errors: CASK_EINVAL for n over a's axes or a zero step; CASK_ENOMEM.
*/
CASK_API cask_array_t *cask_array_slice(cask_array_t *a, const cask_slice_t *s, int n,
                                        cask_error_t *err);

/* The same elements in chunks of chunks[x] along each axis x (as for
** creation: at least 1), each new block gathered from the old blocks it
** overlaps. An expression that reads no other array's blocks (generated,
** constant, over an opened file, and elementwise over those) is the same
** expression in the new chunks, at no cost; it also takes any chunks when
** combined. Errors: CASK_EINVAL, CASK_ENOMEM. */
CASK_API cask_array_t *cask_array_rechunk(cask_array_t *a, const int64_t *chunks,
                                          cask_error_t *err);

/*
** xs[0..n) joined along `axis` (negative counts from the end), as
** numpy.concatenate: the arrays must have the same axes and the same
** extents off that axis; the result's dtype is their common type (NumPy's
** promotion). Its chunks are xs[0]'s, except along the axis, where they
** are the largest of the arrays' chunks there. A result block that is
** exactly one block of an operand is that block's task, with no copy
** (arrays of equal chunks whose extents along the axis are multiples of
** the chunk join for free); any other block is one task (group
** "concatenate") copying the parts of the operand blocks it overlaps.
** The operands are borrowed.
** Errors: CASK_EINVAL for n = 0, a NULL operand, 0-d arrays, a bad axis,
** extents that differ off the axis (naming the shapes) or different
** graphs; CASK_ENOMEM.
*/
CASK_API cask_array_t *cask_array_concatenate(cask_array_t *const *xs, size_t n, int axis,
                                              cask_error_t *err);

/*
** One task per block of a calling the registered kernel on (the block,
** args[0..n_args)...), as dask.array's map_blocks. The kernel must return
** an n-d block of the same shape and of dtype `dtype`; a block that is not
** fails the compute that reads it, naming the block. The result has a's
** shape and chunks; args (literals or refs) are borrowed. The tasks'
** group is "map_blocks-" and the kernel's name after its last '.'.
** Errors: CASK_ENOKERNEL, CASK_EINVAL (bad dtype), CASK_ENOMEM.
*/
CASK_API cask_array_t *cask_array_map_blocks(cask_array_t *a, const char *kernel,
                                             cask_dtype_t dtype, const cask_value_t *args,
                                             size_t n_args, cask_error_t *err);

/* ------------------------------------------------------------- reductions */

typedef enum cask_reduction {
    CASK_SUM, CASK_PROD, CASK_MIN, CASK_MAX, CASK_MEAN, CASK_VAR, CASK_STD,
    CASK_ARGMIN, CASK_ARGMAX, CASK_ANY, CASK_ALL,
    CASK_REDUCTION_COUNT           /* not a reduction: how many there are */
} cask_reduction_t;

/* The bit of axis k in cask_reduce_opts_t.axes. */
#define CASK_AXIS(k) (1u << (k))

/* Options for cask_array_reduce; zero fields mean "default". */
typedef struct cask_reduce_opts {
    unsigned axes;        /* CASK_AXIS() bits of the axes to reduce; 0: all */
    int      split_every; /* partials combined per task; 0: 8 (at least 2) */
    int      ddof;        /* VAR, STD: divide by n - ddof; 0 as NumPy */
} cask_reduce_opts_t;

/*
** Reduce a over some axes (opts NULL: all), as a tree: one task per block
** of a (fused with a's elementwise expression), then tasks that each
** combine up to split_every partials. The result drops the reduced axes (a
** full reduction is a 0-d array). Result types as NumPy: SUM and PROD give
** int64 for int64 and bool, MIN and MAX a's type, MEAN, VAR and STD
** float64 (float32 for float32), ARGMIN and ARGMAX int64 (over all axes:
** the C-order flat index; the first on ties), ANY and ALL bool. Sums add
** each tile of 256 elements in four lanes, then the tiles' sums, then the
** partials in tree order (not compensated; the tests hold it to NumPy's
** within 1e-12 relative); VAR and STD merge
** (count, mean, M2) partials (Chan et al.), so they are stable. MIN, MAX,
** ARGMIN and ARGMAX propagate NaN as NumPy does.
** Errors: CASK_EINVAL for an axis out of range, ARGMIN/ARGMAX over several
** but not all axes, or a reduction of an empty array that has no identity
** (MIN, MAX, ARGMIN, ARGMAX); CASK_ENOMEM. Every reduction takes every
** dtype, bool included (as NumPy: the sum of a bool array counts its trues).
*/
CASK_API cask_array_t *cask_array_reduce(cask_array_t *a, cask_reduction_t op,
                                         const cask_reduce_opts_t *opts, cask_error_t *err);

/* ------------------------------------------------------- reading an array */

/* These read what the array is, never its elements; a may not be NULL. */
/* The element type; the number of axes. */
CASK_API cask_dtype_t cask_array_dtype(const cask_array_t *a);
CASK_API int cask_array_ndim(const cask_array_t *a);
/* The extents (borrowed, ndim of them; valid while a lives). */
CASK_API const int64_t *cask_array_shape(const cask_array_t *a);
/* The chunk extent along each axis (borrowed, as shape). */
CASK_API const int64_t *cask_array_chunks(const cask_array_t *a);
/* Number of elements; of blocks. */
CASK_API size_t cask_array_size(const cask_array_t *a);
CASK_API size_t cask_array_nblocks(const cask_array_t *a);
/* The graph a lives in (borrowed while a lives). */
CASK_API cask_graph_t *cask_array_graph(const cask_array_t *a);

/*
** The tasks of a's blocks, in C order of the block grid, into
** tasks[0..max) (a task's output is an n-d value of the block's shape and
** a's dtype). Adds the tasks to the graph if a has none yet (an
** elementwise expression gets one fused task per block). Returns the number
** of blocks, or a negative CASK_E* code: CASK_ELIMIT if max is too small
** (nothing is added then), CASK_ENOMEM.
** Cost: O(blocks x expression size) the first time.
*/
CASK_API int64_t cask_array_tasks(cask_array_t *a, cask_task_t *tasks, size_t max,
                                  cask_error_t *err);

/*
** Compute arrays[0..n) in one compute (a part they share is computed
** once) and write array i, in C order, into bufs[i], which must hold
** cask_array_size(arrays[i]) elements of its dtype. Each block is copied
** into its place as soon as it is made and then let go of
** (cask_compute_each), so a result is never held twice. opts and info as
** cask_compute (either may be NULL). All arrays must live in one graph
** (CASK_EINVAL).
** Errors: those of cask_compute, and CASK_ETYPE naming a block that is not
** of its array's dtype and shape (a map_blocks kernel's doing); on failure
** the blocks made before it are in the buffers and the rest is untouched.
*/
CASK_API int cask_array_compute(cask_array_t *const *arrays, size_t n, const cask_compute_opts_t *opts,
                                void *const *bufs, cask_compute_info_t *info,
                                cask_error_t *err);

/* What cask_array_compute_blocks() hands each block to: the block starts
** at index start[k] along each axis k and has extent shape[k]; data holds
** its elements in C order, of the array's dtype (borrowed for the call).
** Return 0 to go on, or a negative CASK_E* code to stop the compute. */
typedef int (*cask_block_fn)(void *udata, const int64_t *start, const int64_t *shape,
                             const void *data);

/*
** Compute a and hand each block to fn as soon as it is made, then let go
** of it: an array bigger than memory can be written out or reduced by the
** caller while the compute holds only the blocks in flight. fn is called
** once per block, in no set order, possibly from several threads at once
** (cask_compute_each says when). opts and info as cask_compute.
** Errors: those of cask_array_compute; CASK_EINVAL for a NULL a or fn.
*/
CASK_API int cask_array_compute_blocks(cask_array_t *a, const cask_compute_opts_t *opts,
                                       cask_block_fn fn, void *udata, cask_compute_info_t *info,
                                       cask_error_t *err);

/* ----------------------------------------------------------- .npy files */

/*
** Compute a (opts as cask_compute; NULL for the defaults) and write it to
** path as a NumPy .npy file (format 1.0, C order, little-endian: <f8, <f4,
** <i8, |b1). Each block is written into its place as soon as it is made
** (cask_array_compute_blocks) and let go of, so an array bigger than memory
** can be stored. The blocks go into a new file beside path, named
** path.PID.N.part, which is renamed to path once every block is in it: a
** failed store removes it and leaves path as it was (absent, or the old
** file); a process killed while storing leaves the .part file, never a
** file at path that looks complete.
** Errors: those of the compute; CASK_EIO if the file cannot be written or
** renamed (the message names it).
*/
CASK_API int cask_array_save_npy(cask_array_t *a, const char *path,
                                 const cask_compute_opts_t *opts, cask_error_t *err);

/*
** An array holding a copy of the .npy file at path (format 1.0 to 3.0, C
** order, little-endian float64, float32, int64 or bool), in chunks (NULL:
** as cask_array_from_buffer). The file is read now and may change or go
** afterwards.
** Errors, each naming the file and what is wrong: CASK_EIO (cannot open),
** CASK_EPARSE (not .npy, a bad header, Fortran order, data cut short, a
** bool that is not 0 or 1), CASK_ETYPE (another dtype or byte order),
** CASK_EINVAL (bad chunks), CASK_ENOMEM.
*/
CASK_API cask_array_t *cask_array_load_npy(cask_graph_t *g, const char *path,
                                           const int64_t *chunks, cask_error_t *err);

/*
** An array over the .npy file at path, read lazily: opening reads the
** header alone. The file is a leaf of the expressions built on it, as a
** generator is: each task that needs a region of it (an elementwise block,
** a reduction's first level) reads that region itself with pread when it
** runs, so nothing is read while the expression is built, no block of the
** file is held between tasks, and any chunks line up with it (a rechunk
** costs nothing). A task whose expression walks the region in order
** (the file's axes as they are, not transposed or broadcast) reads it
** about 1 MB at a time as it goes (whole slabs along its first axis: rows
** of a 2-d array), so a reduction over a file holds
** a window and its partials, and the data is still in the CPU's cache when
** it is used. An expression that uses the file twice, such as
** x - x.mean(axis=0), reads it twice, as Dask does when it inlines its
** getters, and never holds a column of x for the mean. A reduction over a
** file that an odd number of reductions built before it read walks its
** blocks last to first (the result is the same, merged in order), so a
** second pass over a file larger than the page cache starts among the
** pages the first pass left there. The file's own
** blocks become tasks (key npy-TOKEN-INDEX) only where something needs
** them as blocks: computing x itself, a slice, a concatenation, a matmul.
** Formats and chunks as cask_array_load_npy; every scheduler reads the
** file by its path, so worker processes and MPI ranks must see the same
** file there.
** The file must not change while the array is used: each read checks the
** file's size against its size at opening, and a file cut short or grown
** fails that task with CASK_EKERNEL naming the file; a change that keeps
** the size is not detected (the values read are then the new ones). A bool
** byte other than 0 or 1 fails the task that reads it.
** Errors, each naming the file: as cask_array_load_npy, and CASK_EIO for a
** path that is not a regular file.
*/
CASK_API cask_array_t *cask_array_open_npy(cask_graph_t *g, const char *path,
                                           const int64_t *chunks, cask_error_t *err);

/* ---------------------------------------------------------- HDF5 datasets */

/*
** An array over dataset `dataset` ("/x", "/group/x") of the HDF5 file at
** path, read lazily through the HDF5 library: opening reads the dataset's
** type, extents and chunking; then, as for cask_array_open_npy, each task
** reads the hyperslab it needs when it runs (blocks as tasks, where needed,
** have keys hdf5-TOKEN-INDEX). chunks NULL: the dataset's own chunking
** when it is chunked, else picked as for any array. HDF5's library lets
** one thread in at a time; a box it would only copy (a dataset stored
** without filters in the type it is read as, in a file with no user block,
** in one piece or with the box inside one chunk) is located through it and
** read with pread outside it, so workers read such boxes at the same time.
** Types: signed integers of 1 to 8 bytes and unsigned ones of 1 to 4 are
** read as int64; floats of 8 and 4 bytes as float64 and float32; h5py's
** bool (an enum FALSE = 0, TRUE = 1 over one byte) as bool. Strings,
** compound values, unsigned 64-bit integers and the rest are refused with
** CASK_ETYPE naming the type.
** The dataset must not change while the array is used: each read reopens
** it and checks its type and extents, and one that changed fails that task
** with CASK_EKERNEL naming the file and dataset; values changed in place
** are not detected. Every scheduler reads the file by its path.
** Errors, each naming the file: CASK_EIO (no such file, not a regular
** file, not HDF5, no such dataset, more axes than CASK_MAX_NDIM),
** CASK_ETYPE, CASK_EINVAL (bad chunks), CASK_ENOMEM.
*/
CASK_API cask_array_t *cask_array_open_hdf5(cask_graph_t *g, const char *path,
                                            const char *dataset, const int64_t *chunks,
                                            cask_error_t *err);

/*
** Compute a (opts as cask_compute; NULL for the defaults) into dataset
** `dataset` of the HDF5 file at path (created if missing; groups on the
** way are created), chunked as a is (contiguous if a chunk would reach
** 4 GB), in little-endian float64, float32 or int64, and bool as h5py
** writes it. Each block is written into its hyperslab as soon as it is made
** and let go of, so an array bigger than memory can be stored. The blocks
** go into a dataset named DATASET.PID.N.part beside it, renamed to dataset
** once every block is in it (a dataset of that name is replaced then): a
** failed store deletes that dataset, and the file when the store created
** it, and leaves what was in the file as it was, but for groups it made on
** the way, which stay (empty). (HDF5 does not give back the space a
** deleted dataset took in an existing file.) A store into the
** file a reads from is refused (CASK_EINVAL).
** Errors: those of the compute; CASK_EIO if the file or dataset cannot be
** created or written (the message names it).
*/
CASK_API int cask_array_save_hdf5(cask_array_t *a, const char *path, const char *dataset,
                                  const cask_compute_opts_t *opts, cask_error_t *err);

/* Take one more reference; drop one (NULL is allowed). */
CASK_API void cask_array_incref(cask_array_t *a);
CASK_API void cask_array_decref(cask_array_t *a);

#ifdef __cplusplus
}
#endif
#endif /* CASK_ARRAY_H */

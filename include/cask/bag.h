/*
** cask/bag.h: lazy partitioned collections of records, as dask.bag.
**
** A bag is a sequence of records (any value a list holds: numbers,
** strings, byte buffers, n-d buffers, lists) cut into partitions; each
** partition is one task whose value is the list of its records. Every
** operation adds its tasks at once and runs nothing: one task per
** partition for map, filter and friends, a tree of tasks for reductions
** (split_every inputs per task), a hash shuffle for groupby. Run it with
** cask_bag_compute() (every record, in order), cask_bag_take() (the first
** k, running only the partitions it needs), or compute a reduction's task
** as any other. Kernels are registered C functions, as everywhere in cask.
**
**   cask_bag_t *lines = cask_bag_read_text(g, paths, n, 64 << 20, &err);
**   cask_bag_t *words = cask_bag_map_partitions(lines, "wc.split", NULL, 0, &err);
**   cask_bag_t *freq  = cask_bag_frequencies(words, true, &err);
**   cask_value_t top;                       // [[word, count], ...] by count
**   cask_bag_take(freq, 20, NULL, &top, &err);
**
** JSON: a JSON-lines record, and a field that pluck reads, becomes a cask
** value: an integer an int64, a real a double, a string a string, true
** and false 1 and 0, null none, an array a list of its items so
** converted; an object has no cask type and stays its JSON text, a string
** (cask_bag_json_get reads a field of it, as pluck does).
**
** Record equality (frequencies, distinct, groupby keys) is
** cask_value_equal's: 1 and 1.0 are different records.
**
** Handles are reference counted: every function that returns a bag returns
** a new reference (free it with cask_bag_decref()); bags passed in are
** borrowed. A bag keeps its graph alive. A function given a NULL bag (the
** result of an earlier failed call) fails with CASK_EINVAL, so errors can
** be checked once, at the end. Kernel names are checked when the operation
** is added (CASK_ENOKERNEL); what a kernel returns is checked when it runs.
**
** Threads: as the graph the bags live in: one thread at a time builds.
*/
#ifndef CASK_BAG_H
#define CASK_BAG_H

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

typedef struct cask_bag cask_bag_t; /* opaque, reference counted */

/* --------------------------------------------------------------- creation */

/*
** npartitions, wherever a bag is made from n items: 0 picks
** cask_bag_choose_npartitions(n, 0, NULL) partitions (ceil(n / (4 *
** workers)) items each, as Pool.map's chunks); else min(npartitions, n)
** partitions of equal size (give or take one). n 0 makes one empty
** partition. After a first run, cask_bag_timing() measures what a record
** and a task cost, and cask_bag_choose_npartitions() with those figures
** gives the partitions for the next bag.
*/

/* What a bag's work cost in a compute: seconds of kernel time per record,
** and seconds of scheduling per partition. */
typedef struct cask_bag_timing {
    double item_s;
    double task_s;
} cask_bag_timing_t;

/*
** The partition count for n items on workers workers (0: $CASK_NUM_WORKERS,
** else the online cores; at most 4096). Without figures (t NULL, or its
** item_s not a finite number above 0, or its task_s not a finite number
** from 0 up): ceil(n / (4 * workers)) items a partition, as Pool.map, so a
** slow partition leaves the others little to wait for. With them, c items
** a partition where c = sqrt(2 n task_s / (workers item_s)), rounded, at
** least 1 and at most ceil(n / workers): the c that makes least the
** overhead of n / c tasks shared by the workers plus half a partition's
** time left running alone at the end, (n / c) task_s / workers +
** c item_s / 2. n 0 gives 1.
*/
CASK_API size_t cask_bag_choose_npartitions(size_t n, size_t workers, const cask_bag_timing_t *t);

/* A bag of copies of items[0..n) (literals only: a ref is CASK_EINVAL). */
CASK_API cask_bag_t *cask_bag_from_values(cask_graph_t *g, const cask_value_t *items, size_t n,
                                          size_t npartitions, cask_error_t *err);

/* Flags for cask_bag_from_files and cask_bag_from_glob. */
enum {
    CASK_BAG_CONTENTS = 1u << 0 /* a record is the file's bytes (read when the partition
                                   runs); else its path, a string */
};

/* A bag of one record per file of paths[0..n) (copied), in that order.
** With CASK_BAG_CONTENTS, a file that is not a regular file or cannot be
** read when its partition runs fails the compute naming it; without it
** nothing is read. */
CASK_API cask_bag_t *cask_bag_from_files(cask_graph_t *g, const char *const *paths, size_t n,
                                         unsigned flags, size_t npartitions, cask_error_t *err);

/* cask_bag_from_files of the files that match a glob(3) pattern, sorted by
** name. No match is CASK_EIO. */
CASK_API cask_bag_t *cask_bag_from_glob(cask_graph_t *g, const char *pattern, unsigned flags,
                                        size_t npartitions, cask_error_t *err);

/*
** The lines of text files, each a string without its end ("\n", or
** "\r\n"); a last line without an end is a line; an empty file has none.
** With blocksize 0 each file is one partition; else a file is cut into
** partitions of blocksize bytes and a partition holds the lines that
** start in its range (a line longer than a block belongs to the block
** where it starts), so no line is lost or read twice and one big file is
** read in parallel. Sizes are taken now: a file whose size differs when
** its partition runs fails the compute naming it (CASK_EIO), as does a
** file that cannot be read. Missing files are CASK_EIO here.
*/
CASK_API cask_bag_t *cask_bag_read_text(cask_graph_t *g, const char *const *paths, size_t n,
                                        size_t blocksize, cask_error_t *err);

/* Flags for cask_bag_read_jsonl. */
enum {
    CASK_BAG_SKIP_BAD = 1u << 0 /* drop malformed lines instead of failing */
};

/*
** JSON lines: as cask_bag_read_text, each line that is not blank parsed
** as one JSON value (jansson) into a record (see the head of this file).
** A malformed line fails the compute with CASK_EPARSE naming the file,
** the line's number and jansson's message; with CASK_BAG_SKIP_BAD it is
** dropped instead.
*/
CASK_API cask_bag_t *cask_bag_read_jsonl(cask_graph_t *g, const char *const *paths, size_t n,
                                         size_t blocksize, unsigned flags, cask_error_t *err);

/* ------------------------------------------------------------- accessors */

CASK_API void cask_bag_incref(const cask_bag_t *b);
/* Drop a reference (NULL is allowed). */
CASK_API void cask_bag_decref(cask_bag_t *b);
/* The graph b lives in (borrowed). */
CASK_API cask_graph_t *cask_bag_graph(const cask_bag_t *b);
CASK_API size_t cask_bag_npartitions(const cask_bag_t *b);
/* The task of partition i (its value: the list of its records), or
** CASK_NO_TASK for i out of range. */
CASK_API cask_task_t cask_bag_partition(const cask_bag_t *b, size_t i);

/* ----------------------------------------------------- record by record */

/*
** kernel is called once per record: args[0] the record (borrowed), then
** extra[0..n_extra) (literals, copied; NULL with 0). Its result:
**   map:    the new record;
**   filter: a number, the record is kept when it is not 0;
** map_partitions calls kernel once per partition with args[0] the
** partition's list and returns the new partition, a list (else the
** compute fails naming the task).
*/
CASK_API cask_bag_t *cask_bag_map(const cask_bag_t *b, const char *kernel,
                                  const cask_value_t *extra, size_t n_extra, cask_error_t *err);
CASK_API cask_bag_t *cask_bag_filter(const cask_bag_t *b, const char *kernel,
                                     const cask_value_t *extra, size_t n_extra,
                                     cask_error_t *err);
CASK_API cask_bag_t *cask_bag_map_partitions(const cask_bag_t *b, const char *kernel,
                                             const cask_value_t *extra, size_t n_extra,
                                             cask_error_t *err);

/* Each record, a list, replaced by its items (Dask's flatten); a record
** that is not a list fails the compute. */
CASK_API cask_bag_t *cask_bag_flatten(const cask_bag_t *b, cask_error_t *err);

/* Field `key` of each record, a JSON object's text (see the head of this
** file); a record without it, or not an object, fails the compute naming
** the record's place. */
CASK_API cask_bag_t *cask_bag_pluck(const cask_bag_t *b, const char *key, cask_error_t *err);

/* Field key of rec, a JSON object's text, converted as the head of this
** file says, into *out (a new reference). 0, CASK_ETYPE (rec is not a
** string), CASK_EPARSE (not a JSON object), CASK_EMISSING (no such field),
** CASK_ENOMEM. Usable in kernels. */
CASK_API int cask_bag_json_get(const cask_value_t *rec, const char *key, cask_value_t *out,
                               cask_error_t *err);

/* ------------------------------------------------------------ reductions */

/*
** A reduction is a task (compute it with cask_compute_one) made by a tree:
** one task per partition, then tasks of at most split_every inputs each
** (0: 8) up to one.
**
** cask_bag_reduction: perpartition(list) gives each partition's value;
** aggregate(list of values, in partition order) combines them, at each
** level of the tree (as Dask's), so it must accept lists of its own
** results too.
** cask_bag_fold: binop(acc, record) over each partition from initial
** (NULL: from the partition's first record; empty partitions are left
** out), then combine(acc, acc) (NULL: binop) over the partitions' results
** in order; a bag with no record and no initial fails the compute.
*/
CASK_API cask_task_t cask_bag_reduction(const cask_bag_t *b, const char *perpartition,
                                        const char *aggregate, size_t split_every,
                                        cask_error_t *err);
CASK_API cask_task_t cask_bag_fold(const cask_bag_t *b, const char *binop, const char *combine,
                                   const cask_value_t *initial, size_t split_every,
                                   cask_error_t *err);

/* The number of records (an int64). */
CASK_API cask_task_t cask_bag_count(const cask_bag_t *b, cask_error_t *err);
/* The sum of the records, numbers: an int64 when all are, else a double;
** 0 for no record. int64 records are added exactly until a double is met
** (in each partition, and across the partitions' sums): an int64 overflow
** there fails the compute. */
CASK_API cask_task_t cask_bag_sum(const cask_bag_t *b, cask_error_t *err);
/* The least and the greatest record: numbers compared as numbers (NaN
** above every other number), or strings byte by byte (a mix fails); no
** record fails the compute. */
CASK_API cask_task_t cask_bag_min(const cask_bag_t *b, cask_error_t *err);
CASK_API cask_task_t cask_bag_max(const cask_bag_t *b, cask_error_t *err);
/* The mean of the records, numbers, a double (summed as doubles); no
** record fails. */
CASK_API cask_task_t cask_bag_mean(const cask_bag_t *b, cask_error_t *err);

/* ------------------------------------------------- bags of a few records */

/*
** These give a bag of one partition.
** frequencies: one record [value, count] per distinct record, in the
** order each first appears, or with sort by count, highest first (ties in
** first-appearance order). distinct: each distinct record once, in the
** order it first appears. topk: the k greatest records (compared as
** cask_bag_max does; key NULL) or the k with the greatest key(record),
** greatest first (ties: the earlier record first).
*/
CASK_API cask_bag_t *cask_bag_frequencies(const cask_bag_t *b, bool sort, cask_error_t *err);
CASK_API cask_bag_t *cask_bag_distinct(const cask_bag_t *b, cask_error_t *err);
CASK_API cask_bag_t *cask_bag_topk(const cask_bag_t *b, size_t k, const char *key,
                                   cask_error_t *err);

/*
** foldby, as Dask's: one record [key, acc] per distinct key(record), in the
** order each key first appears, in a bag of one partition. In each
** partition acc = binop(acc, record) over the key's records in order, from
** initial (NULL: from the key's first record); then a tree (split_every
** partials a task, 0: 8) merges the partitions' accumulators of a key in
** order with combine(acc, acc) (NULL: binop), each task of the tree from
** combine_initial when given (so it should be combine's identity), else
** from the first. A reduction by key with no shuffle: each task holds one
** accumulator per key, so it suits few keys; groupby suits many.
*/
CASK_API cask_bag_t *cask_bag_foldby(const cask_bag_t *b, const char *key, const char *binop,
                                     const cask_value_t *initial, const char *combine,
                                     const cask_value_t *combine_initial, size_t split_every,
                                     cask_error_t *err);

/* --------------------------------------------------------------- shuffles */

/*
** groupby: one record [key, [records...]] per distinct key(record), the
** records in bag order, in npartitions partitions (0: as many as b has) by
** a hash of the key: each partition splits its records by that hash, and
** output partition j gathers part j of every split, so no task holds more
** than its own keys. Keys within a partition are in the order each first
** appears.
*/
CASK_API cask_bag_t *cask_bag_groupby(const cask_bag_t *b, const char *key, size_t npartitions,
                                      cask_error_t *err);

/* The same records in npartitions partitions (at least 1), in order:
** fewer by joining neighbours, more by cutting each partition in equal
** parts, as Dask does without knowing the partitions' sizes. */
CASK_API cask_bag_t *cask_bag_repartition(const cask_bag_t *b, size_t npartitions,
                                          cask_error_t *err);

/*
** The figures of b's work in a traced compute (CASK_TRACE; the trace must
** hold every partition of b: computed with no cache, so they all ran), for
** cask_bag_choose_npartitions: item_s, the kernel time of every task in
** the trace over b's records; task_s, the scheduling each partition of b
** brings, the median gap between one task's end and the next's start on a
** worker (a gap that waited for another worker's output counts too: the
** median keeps few of them) times the trace's tasks per partition of b.
** b's record count must be known when it is made: a bag from n values or
** files, or a map or pluck of one. CASK_EINVAL without it, for a trace
** without b's partitions, and for one where no worker ran two tasks in a
** row (nothing there measures a task's overhead).
*/
CASK_API int cask_bag_timing(const cask_bag_t *b, const cask_trace_t *trace,
                             cask_bag_timing_t *out, cask_error_t *err);

/* --------------------------------------------------------------- results */

/* Every record, in order, as one list in *out (a new reference). Under
** the "mpi" scheduler, as cask_compute: on rank 0 only (every other rank
** gets none and 0) unless opts has CASK_ALL_RANKS. */
CASK_API int cask_bag_compute(const cask_bag_t *b, const cask_compute_opts_t *opts,
                              cask_value_t *out, cask_error_t *err);

/* The first k records, as a list in *out: computes partition 0, then 1,
** ... until it has k (fewer when the bag has fewer), so only the
** partitions it needs run. Under "mpi" every rank gets the records (it
** computes with CASK_ALL_RANKS, so all ranks stop at the same partition). */
CASK_API int cask_bag_take(const cask_bag_t *b, size_t k, const cask_compute_opts_t *opts,
                           cask_value_t *out, cask_error_t *err);

/*
** Write each partition to a text file: pattern with one '*', which becomes
** the partition's number (0, 1, ...); records are strings, one per line,
** each followed by "\n". Returns a task whose value is the list of paths
** written. Each file is written under a temporary name beside it and
** renamed when complete, so a failed write leaves no file that looks
** whole.
*/
CASK_API cask_task_t cask_bag_to_textfiles(const cask_bag_t *b, const char *pattern,
                                           cask_error_t *err);

/* Write each record, a list [path, contents] (a string or bytes), to its
** path, as cask_bag_to_textfiles writes (a temporary name, then a
** rename). The task's value is the number of files written. */
CASK_API cask_task_t cask_bag_write_files(const cask_bag_t *b, cask_error_t *err);

#ifdef __cplusplus
}
#endif
#endif /* CASK_BAG_H */

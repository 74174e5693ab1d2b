/*
** cask/value.h: the small tagged value that kernels read and write.
**
** A cask_value_t is 16 bytes, passed by value. Scalars (int64, double) live
** inside it; strings, byte buffers, typed n-d buffers, lists and opaque
** pointers live in a reference-counted block that the value points to.
** Copying the struct does not take a reference: call cask_value_incref()
** for that, and cask_value_decref() once for each reference you own.
**
** A list is flat: its items, nested lists included, sit in its one block,
** so it crosses processes and machines as one piece. An item read from a
** list (cask_list_item) is borrowed from it: valid while the list is, and
** incref/decref do nothing on it; cask_value_copy() makes one you own.
**
**   cask_value_t words;
**   cask_value_list((cask_value_t[]){ cask_int(1), s }, 2, &words, &err);
**   for (size_t i = 0; i < cask_list_len(&words); i++) {
**       cask_value_t w = cask_list_item(&words, i);   // borrowed
**       ...
**   }
**   cask_value_decref(&words);
**
** Threads: values are immutable once built, so many threads may read the
** same value; reference counts are atomic. A list builder is one thread's.
*/
#ifndef CASK_VALUE_H
#define CASK_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What a value holds. */
typedef enum cask_type {
    CASK_NONE = 0,   /* nothing: the zero value */
    CASK_INT64,      /* a signed 64-bit integer, inline */
    CASK_DOUBLE,     /* an IEEE double, inline */
    CASK_STRING,     /* a NUL-terminated UTF-8 string (length kept too) */
    CASK_BYTES,      /* a byte buffer */
    CASK_NDARRAY,    /* a typed n-d buffer in C order */
    CASK_LIST,       /* a list of values (no refs or opaque values) */
    CASK_OPAQUE,     /* a pointer with a destructor: in-process only */
    CASK_REF         /* a task input that refers to another task's output */
} cask_type_t;

/* Element types of n-d buffers. */
typedef enum cask_dtype {
    CASK_F64 = 0,    /* double */
    CASK_F32,        /* float */
    CASK_I64,        /* int64_t */
    CASK_BOOL        /* one byte, 0 or 1 */
} cask_dtype_t;

/* Most dimensions an n-d buffer may have. */
#define CASK_MAX_NDIM 8

/*
** A task: a handle naming its graph and its place there, valid while the
** graph lives. Every graph call refuses a handle from another graph with
** CASK_EINVAL, so a task of one graph can never stand for a task of another.
*/
typedef uint64_t cask_task_t;

/* "No task": what task-returning calls give back on failure. */
#define CASK_NO_TASK UINT64_MAX

struct cask_blob; /* private: the reference-counted block */

/* The value itself. Read it through the accessors below. */
typedef struct cask_value {
    cask_type_t type;            /* what it holds */
    uint32_t    aux;             /* private */
    union {
        int64_t i;               /* CASK_INT64 */
        double  d;               /* CASK_DOUBLE */
        struct cask_blob *blob;  /* strings, bytes, n-d buffers, lists, opaque */
        cask_task_t task;        /* CASK_REF */
    } u;
} cask_value_t;

/* A view of an n-d buffer; borrowed from its value. */
typedef struct cask_nd {
    cask_dtype_t dtype;            /* element type */
    int          ndim;             /* 0 .. CASK_MAX_NDIM */
    int64_t      shape[CASK_MAX_NDIM]; /* extent of each axis */
    size_t       size;             /* number of elements */
    void        *data;             /* size elements in C order */
} cask_nd_t;

/* ------------------------------------------------------------ building */

/* Inline constructors: no allocation, nothing to free. */
static inline cask_value_t cask_int(int64_t i)
{ cask_value_t v = { CASK_INT64, 0, { .i = i } }; return v; }
static inline cask_value_t cask_double(double d)
{ cask_value_t v = { CASK_DOUBLE, 0, { .d = d } }; return v; }
/* A reference to task t's output, for use as a task input. */
static inline cask_value_t cask_ref(cask_task_t t)
{ cask_value_t v = { CASK_REF, 0, { .task = t } }; return v; }
static inline cask_value_t cask_none(void)
{ cask_value_t v = { CASK_NONE, 0, { .i = 0 } }; return v; }

/*
** Build a string value holding a copy of s[0..len). A NUL inside is allowed.
** On success stores a new reference in *out and returns 0; on failure
** returns CASK_ENOMEM and sets *out to CASK_NONE. Pass len = (size_t)-1 to
** use strlen(s).
*/
CASK_API int cask_value_string(const char *s, size_t len, cask_value_t *out,
                               cask_error_t *err);

/* Build a byte-buffer value holding a copy of p[0..len). As above. */
CASK_API int cask_value_bytes(const void *p, size_t len, cask_value_t *out,
                              cask_error_t *err);

/*
** Build an n-d buffer value of the given dtype and shape with uninitialised
** elements (write them through cask_value_nd() before sharing the value).
** ndim 0 is a single element. Returns CASK_EINVAL for a bad dtype, a
** negative extent or ndim out of range, CASK_ENOMEM when out of memory.
*/
CASK_API int cask_value_ndarray(cask_dtype_t dtype, int ndim,
                                const int64_t *shape, cask_value_t *out,
                                cask_error_t *err);

/*
** Build a list value holding copies of items[0..n) (lists nest). Returns
** 0 with a new reference in *out, or CASK_ETYPE for an item that is a ref
** or an opaque value (a list crosses processes whole), CASK_ENOMEM; *out is
** CASK_NONE on failure. Cost: O(the items' bytes).
*/
CASK_API int cask_value_list(const cask_value_t *items, size_t n, cask_value_t *out,
                             cask_error_t *err);

/*
** Wrap ptr; dtor(ptr) runs when the last reference goes (dtor may be NULL).
** Opaque values never cross a process boundary: the processes and mpi
** schedulers refuse them before running anything. If this fails, dtor is
** not called and ptr stays the caller's.
*/
CASK_API int cask_value_opaque(void *ptr, void (*dtor)(void *),
                               cask_value_t *out, cask_error_t *err);

/*
** A list built an item at a time, without a value per item: init, append
** any number of times, finish into a list value (the builder is then empty
** again and may be reused), destroy. Lives in the caller's storage.
*/
typedef struct cask_list_builder {
    unsigned char *buf;   /* private: the items so far */
    size_t len, cap;      /* private */
    uint64_t *off;        /* private: where each item starts in buf */
    size_t n, ocap;       /* private */
} cask_list_builder_t;

/* An empty builder; allocates nothing until the first append. */
CASK_API void cask_list_builder_init(cask_list_builder_t *b);

/* Append a copy of item (not a ref or an opaque value: CASK_ETYPE).
** Returns 0, CASK_ETYPE or CASK_ENOMEM (b is unchanged on failure). */
CASK_API int cask_list_builder_append(cask_list_builder_t *b, const cask_value_t *item,
                                      cask_error_t *err);

/* Append a string item holding a copy of s[0..len) (len (size_t)-1:
** strlen(s)), with no string value made for it. 0 or CASK_ENOMEM. */
CASK_API int cask_list_builder_append_str(cask_list_builder_t *b, const char *s, size_t len,
                                          cask_error_t *err);

/* The list of what was appended, as a new reference in *out; the builder
** is empty again. 0 or CASK_ENOMEM (the builder keeps its items then). */
CASK_API int cask_list_builder_finish(cask_list_builder_t *b, cask_value_t *out,
                                      cask_error_t *err);

/* Free what b holds. */
CASK_API void cask_list_builder_destroy(cask_list_builder_t *b);

/* -------------------------------------------------------------- owning */

/* Take one more reference. No-op for inline values and list items. */
CASK_API void cask_value_incref(const cask_value_t *v);

/* Drop one reference and set *v to CASK_NONE. v may be NULL. */
CASK_API void cask_value_decref(cask_value_t *v);

/* A new value holding v's contents (a list item becomes a value of its
** own), in *out: 0, or CASK_ETYPE for a ref or an opaque value, CASK_ENOMEM.
** Inline values are copied as they are. */
CASK_API int cask_value_copy(const cask_value_t *v, cask_value_t *out, cask_error_t *err);

/* ------------------------------------------------------------- reading */

/* The int64 v holds; 0 if v is not an int64 (check v->type when 0 is a
** possible answer). */
static inline int64_t cask_value_int(const cask_value_t *v)
{ return v && v->type == CASK_INT64 ? v->u.i : 0; }

/* The number v holds as a double (an int64 converted); NaN if v is not a
** number. */
CASK_API double cask_value_double(const cask_value_t *v);

/* True for int64 and double values. */
CASK_API bool cask_value_is_number(const cask_value_t *v);

/* The string's bytes (NUL-terminated; borrowed), its length in *len if len
** is not NULL; NULL if v is not a string. */
CASK_API const char *cask_value_str(const cask_value_t *v, size_t *len);

/* The byte buffer's bytes (borrowed) and length; NULL if v is not bytes. */
CASK_API const void *cask_value_data(const cask_value_t *v, size_t *len);

/* Fill *nd with a view of an n-d buffer. Returns CASK_ETYPE if v is not one. */
CASK_API int cask_value_nd(const cask_value_t *v, cask_nd_t *nd);

/* The opaque pointer, or NULL if v is not opaque. */
CASK_API void *cask_value_ptr(const cask_value_t *v);

/* The task a CASK_REF value refers to, or CASK_NO_TASK. */
static inline cask_task_t cask_value_task(const cask_value_t *v)
{ return v && v->type == CASK_REF ? v->u.task : CASK_NO_TASK; }

/* Number of items in a list; 0 if v is not a list. */
CASK_API size_t cask_list_len(const cask_value_t *v);

/* Item i of list v, borrowed from it (see the head of this file); an int64,
** a double or none is returned as itself. CASK_NONE if v is not a list or
** i is out of range. Cost: O(1). */
CASK_API cask_value_t cask_list_item(const cask_value_t *v, size_t i);

/* Number of the value's payload bytes (0 for inline and opaque values; a
** list's are its items', flat). */
CASK_API size_t cask_value_nbytes(const cask_value_t *v);

/* Bytes per element of a dtype (0 for an unknown one). */
CASK_API size_t cask_dtype_size(cask_dtype_t dtype);

/* Name of a dtype: "float64", "float32", "int64", "bool"; NULL if unknown. */
CASK_API const char *cask_dtype_name(cask_dtype_t dtype);

/* Name of a value type: "int64", "double", "string", ... */
CASK_API const char *cask_type_name(cask_type_t type);

/*
** True when a and b hold equal contents (same type; for n-d buffers same
** dtype, shape and elements, bit for bit; lists item by item; opaque values
** by pointer).
*/
CASK_API bool cask_value_equal(const cask_value_t *a, const cask_value_t *b);

/*
** Encode v as JSON text in the cask-graph literal format (see docs/FORMAT.md):
** numbers as JSON numbers, strings as strings, {"bytes": BASE64},
** {"dtype": D, "shape": [..], "data": [..]}, {"list": [..]}; {"ref": KEY}
** is not produced here. Returns a new NUL-terminated string (free() it), or
** NULL when out of memory or for an opaque value.
*/
CASK_API char *cask_value_to_json(const cask_value_t *v);

#ifdef __cplusplus
}
#endif
#endif /* CASK_VALUE_H */

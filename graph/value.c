/*
** graph/value.c: the tagged value, its reference-counted blocks, and flat
** lists.
**
** A list's block holds, in order: the item count n, n offsets (from the
** start of the payload), then the items, each a record: a 16-byte header
** (type, dtype, ndim, payload size), the shape of an n-d buffer, then the
** payload padded to 16 bytes with at least one zero (a string's NUL). A
** nested list's payload is itself such a block's payload. Nothing in it is
** a pointer, so a list is copied, shared between processes or sent to
** another machine as its bytes. An item read out of a list is a view: a
** value marked CASK__VIEW whose blob pointer points at its record.
*/
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "graph.h"

static const size_t dtype_sizes[] = { 8, 4, 8, 1 };
static const char *const dtype_names[] = { "float64", "float32", "int64", "bool" };

size_t cask_dtype_size(cask_dtype_t dtype)
{
    return (unsigned)dtype < 4 ? dtype_sizes[dtype] : 0;
}

const char *cask_dtype_name(cask_dtype_t dtype)
{
    return (unsigned)dtype < 4 ? dtype_names[dtype] : NULL;
}

const char *cask_type_name(cask_type_t type)
{
    static const char *const names[] = { "none", "int64", "double", "string", "bytes",
                                         "ndarray", "list", "opaque", "ref" };
    return (unsigned)type <= CASK_REF ? names[type] : "unknown";
}

_Thread_local struct cask_blob *(*cask__blob_alloc)(size_t bytes);
void (*cask__arena_free)(struct cask_blob *b);

/* ------------------------------------------------------------- records */

/* An item of a list: this header, the shape (ndim entries), then the
** payload at the next 16 bytes. */
typedef struct rec {
    uint32_t type;
    uint16_t dtype, ndim;
    uint64_t size;
    int64_t  shape[];
} rec_t;

static inline size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }
static inline size_t rec_head(int ndim) { return round16(sizeof(rec_t) + 8 * (size_t)ndim); }
static inline const char *rec_data(const rec_t *r) { return (const char *)r + rec_head(r->ndim); }
/* Bytes of a record of ndim axes and size payload bytes (a NUL always fits). */
static inline size_t rec_bytes(int ndim, size_t size) { return rec_head(ndim) + round16(size + 1); }

/* What any value with a payload holds: a block's, or a list item's. */
typedef struct pview {
    cask_type_t   type;
    cask_dtype_t  dtype;
    int           ndim;
    const int64_t *shape;
    const char   *data;
    size_t        size;
} pview_t;

static bool is_view(const cask_value_t *v)
{
    return (v->aux & CASK__VIEW) != 0;
}

/* v's payload in *p; false for inline values, refs and opaque values. */
static bool payload(const cask_value_t *v, pview_t *p)
{
    if (!v || v->type < CASK_STRING || v->type > CASK_LIST)
        return false;
    p->type = v->type;
    if (is_view(v)) {
        const rec_t *r = (const rec_t *)v->u.blob;
        p->dtype = (cask_dtype_t)r->dtype;
        p->ndim = r->ndim;
        p->shape = r->shape;
        p->data = rec_data(r);
        p->size = r->size;
    } else {
        const struct cask_blob *b = v->u.blob;
        p->dtype = b->dtype;
        p->ndim = b->ndim;
        p->shape = b->shape;
        p->data = b->data;
        p->size = b->size;
    }
    return true;
}

/* A list payload's count, and its item i's record. */
static inline uint64_t list_n(const char *data) { uint64_t n; memcpy(&n, data, 8); return n; }
static inline const rec_t *list_rec(const char *data, size_t i)
{
    uint64_t off;
    memcpy(&off, data + 8 + 8 * i, 8);
    return (const rec_t *)(data + off);
}
/* Bytes before a list's first item: the count and the offsets. */
static inline size_t list_head(size_t n) { return round16(8 + 8 * n); }

/* -------------------------------------------------------------- blocks */

/* Make b, whose in_arena is set, a block of `payload` inline bytes (room
** for a NUL after them). */
static struct cask_blob *blob_init(struct cask_blob *b, size_t payload)
{
    atomic_init(&b->refs, 1);
    b->dtype = CASK_F64;
    b->ndim = 0;
    b->size = payload;
    b->data = b->payload;
    b->dtor = NULL;
    b->portable = false;
    ((char *)b->data)[payload] = '\0';
    return b;
}

/* A new block with room for `payload` inline bytes (plus a NUL). */
static struct cask_blob *blob_new(size_t payload)
{
    if (payload > SIZE_MAX - sizeof(struct cask_blob) - 1)
        return NULL;
    struct cask_blob *b;
    if (cask__blob_alloc)
        b = cask__blob_alloc(sizeof *b + payload + 1); /* sets b->in_arena */
    else if ((b = cask__malloc(sizeof *b + payload + 1)))
        b->in_arena = false;
    return b ? blob_init(b, payload) : NULL;
}

static int blob_value(cask_type_t type, const void *p, size_t len,
                      cask_value_t *out, cask_error_t *err)
{
    *out = cask_none();
    struct cask_blob *b = blob_new(len);
    if (!b)
        return cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for a %zu-byte %s",
                         len, cask_type_name(type));
    if (len)
        memcpy(b->data, p, len);
    out->type = type;
    out->u.blob = b;
    return 0;
}

int cask_value_string(const char *s, size_t len, cask_value_t *out,
                      cask_error_t *err)
{
    if (!s)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "string is NULL");
    return blob_value(CASK_STRING, s, len == (size_t)-1 ? strlen(s) : len, out, err);
}

int cask_value_bytes(const void *p, size_t len, cask_value_t *out,
                     cask_error_t *err)
{
    if (!p && len)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "bytes pointer is NULL");
    return blob_value(CASK_BYTES, p, len, out, err);
}

int cask_value_ndarray(cask_dtype_t dtype, int ndim, const int64_t *shape,
                       cask_value_t *out, cask_error_t *err)
{
    *out = cask_none();
    if ((unsigned)dtype > CASK_BOOL)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "unknown dtype %d", (int)dtype);
    if (ndim < 0 || ndim > CASK_MAX_NDIM || (ndim && !shape))
        return cask__err(err, CASK_EINVAL, NULL, NULL,
                         "ndim %d is out of range 0..%d", ndim, CASK_MAX_NDIM);
    size_t count = 1, esz = dtype_sizes[dtype];
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return cask__err(err, CASK_EINVAL, NULL, NULL,
                             "axis %d has negative extent %lld", i, (long long)shape[i]);
        if (shape[i] && count > SIZE_MAX / esz / (uint64_t)shape[i])
            return cask__err(err, CASK_ELIMIT, NULL, NULL, "n-d buffer too large");
        count *= (size_t)shape[i];
    }
    struct cask_blob *b = blob_new(count * esz);
    if (!b)
        return cask__err(err, CASK_ENOMEM, NULL, NULL,
                         "no memory for a %zu-byte n-d buffer", count * esz);
    b->dtype = dtype;
    b->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        b->shape[i] = shape[i];
    out->type = CASK_NDARRAY;
    out->u.blob = b;
    return 0;
}

int cask_value_opaque(void *ptr, void (*dtor)(void *), cask_value_t *out,
                      cask_error_t *err)
{
    *out = cask_none();
    struct cask_blob *b = blob_new(0);
    if (!b)
        return cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for an opaque value");
    b->data = ptr;
    b->dtor = dtor;
    out->type = CASK_OPAQUE;
    out->u.blob = b;
    return 0;
}

int cask__value_portable(void *ptr, void (*dtor)(void *), cask_value_t *out)
{
    int rc = cask_value_opaque(ptr, dtor, out, NULL);
    if (!rc)
        out->u.blob->portable = true;
    return rc;
}

void cask_value_incref(const cask_value_t *v)
{
    if (v && cask__has_blob(v) && !is_view(v))
        atomic_fetch_add_explicit(&v->u.blob->refs, 1, memory_order_relaxed);
}

void cask_value_decref(cask_value_t *v)
{
    if (!v)
        return;
    if (cask__has_blob(v) && !is_view(v)) {
        struct cask_blob *b = v->u.blob;
        if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1) {
            if (v->type == CASK_OPAQUE && b->dtor)
                b->dtor(b->data);
            if (b->in_arena)
                cask__arena_free(b);
            else
                cask__free(b);
        }
    }
    *v = cask_none();
}

int cask__value_blank(cask_type_t type, size_t size, cask_value_t *out)
{
    *out = cask_none();
    if (type < CASK_STRING || type > CASK_LIST)
        return CASK_ETYPE;
    struct cask_blob *b = blob_new(size);
    if (!b)
        return CASK_ENOMEM;
    out->type = type;
    out->u.blob = b;
    return 0;
}

int cask__value_copy(const cask_value_t *v, cask_value_t *out)
{
    pview_t p;
    *out = cask_none();
    if (!payload(v, &p))
        return CASK_ETYPE;
    struct cask_blob *b = blob_new(p.size);
    if (!b)
        return CASK_ENOMEM;
    b->dtype = p.dtype;
    b->ndim = p.ndim;
    memset(b->shape, 0, sizeof b->shape);
    memcpy(b->shape, p.shape, (size_t)p.ndim * sizeof *p.shape);
    memcpy(b->data, p.data, p.size);
    out->type = v->type;
    out->u.blob = b;
    return 0;
}

int cask_value_copy(const cask_value_t *v, cask_value_t *out, cask_error_t *err)
{
    if (!v || !out)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "value or out is NULL");
    if (v->type == CASK_REF || v->type == CASK_OPAQUE || (unsigned)v->type > CASK_REF) {
        *out = cask_none();
        return cask__err(err, CASK_ETYPE, NULL, NULL, "a %s cannot be copied",
                         cask_type_name(v->type));
    }
    if (!cask__has_blob(v)) {
        *out = *v;
        out->aux = 0;
        return 0;
    }
    int rc = cask__value_copy(v, out);
    return rc ? cask__err(err, rc, NULL, NULL, "no memory to copy a %zu-byte %s",
                          cask_value_nbytes(v), cask_type_name(v->type))
              : 0;
}

/* --------------------------------------------------------------- lists */

void cask_list_builder_init(cask_list_builder_t *b)
{
    memset(b, 0, sizeof *b);
}

void cask_list_builder_destroy(cask_list_builder_t *b)
{
    cask__free(b->buf);
    cask__free(b->off);
    cask_list_builder_init(b);
}

/* Room for one more item of `bytes` bytes; its record, zeroed. */
static rec_t *builder_room(cask_list_builder_t *b, size_t bytes)
{
    if (cask__grow((void **)&b->off, &b->ocap, b->n + 1, sizeof *b->off) ||
        b->len > SIZE_MAX - bytes ||
        cask__grow((void **)&b->buf, &b->cap, b->len + bytes, 1))
        return NULL;
    rec_t *r = (rec_t *)(b->buf + b->len);
    memset(r, 0, bytes);
    return r;
}

/* Append a record of type and payload size (then fill its payload). */
static int builder_put(cask_list_builder_t *b, cask_type_t type, const pview_t *p,
                       const void *data, size_t size, cask_error_t *err)
{
    int ndim = p ? p->ndim : 0;
    size_t bytes = rec_bytes(ndim, size);
    rec_t *r = size < SIZE_MAX / 2 ? builder_room(b, bytes) : NULL;
    if (!r)
        return cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for a list item of %zu bytes",
                         size);
    r->type = (uint32_t)type;
    r->ndim = (uint16_t)ndim;
    r->size = size;
    if (p) {
        r->dtype = (uint16_t)p->dtype;
        memcpy(r->shape, p->shape, (size_t)ndim * sizeof *p->shape);
    }
    if (size)
        memcpy((char *)r + rec_head(ndim), data, size);
    b->off[b->n++] = b->len;
    b->len += bytes;
    return 0;
}

int cask_list_builder_append(cask_list_builder_t *b, const cask_value_t *item,
                             cask_error_t *err)
{
    pview_t p;
    if (!b || !item)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "builder or item is NULL");
    switch (item->type) {
    case CASK_NONE:
        return builder_put(b, CASK_NONE, NULL, NULL, 0, err);
    case CASK_INT64:
    case CASK_DOUBLE:
        return builder_put(b, item->type, NULL, &item->u, 8, err);
    case CASK_STRING:
    case CASK_BYTES:
    case CASK_NDARRAY:
    case CASK_LIST:
        payload(item, &p);
        return builder_put(b, item->type, &p, p.data, p.size, err);
    default:
        return cask__err(err, CASK_ETYPE, NULL, NULL, "a list cannot hold a %s",
                         cask_type_name(item->type));
    }
}

int cask_list_builder_append_str(cask_list_builder_t *b, const char *s, size_t len,
                                 cask_error_t *err)
{
    if (!b || !s)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "builder or string is NULL");
    return builder_put(b, CASK_STRING, NULL, s, len == (size_t)-1 ? strlen(s) : len, err);
}

/* Bytes of the payload of the list of b's items, or 0 when too large. */
static size_t built_size(const cask_list_builder_t *b)
{
    size_t head = list_head(b->n);
    return b->n > SIZE_MAX / 16 || b->len > SIZE_MAX / 2 - head ? 0 : head + b->len;
}

/* Write the count and offsets of the list of b's items at d and empty b
** (its items are written apart). */
static void built_offsets(cask_list_builder_t *b, char *d)
{
    size_t head = list_head(b->n);
    uint64_t n = b->n;
    memset(d, 0, head);
    memcpy(d, &n, 8);
    for (size_t i = 0; i < b->n; i++) {
        uint64_t off = head + b->off[i];
        memcpy(d + 8 + 8 * i, &off, 8);
    }
    b->n = b->len = 0;
}

/* Write the payload of the list of b's items at d (built_size(b) bytes)
** and empty b. */
static void built_write(cask_list_builder_t *b, char *d)
{
    if (b->len)
        memcpy(d + list_head(b->n), b->buf, b->len);
    built_offsets(b, d);
}

/* Lists of this many bytes of items or more are finished in their
** builder's buffer (built_steal). */
#define STEAL_MIN ((size_t)256 << 10)

/* The block of the list of b's items (size bytes, as built_size gives,
** so the sum below cannot wrap) made from b's own buffer, which b
** then no longer has, or NULL (b unchanged) when the buffer cannot grow to
** hold the block's header and the list's offsets too. The items move up
** in memory already touched; a copy would first touch as much fresh
** memory as the list holds, which costs more than the copy itself. */
static struct cask_blob *built_steal(cask_list_builder_t *b, size_t size)
{
    size_t at = offsetof(struct cask_blob, payload) + list_head(b->n);
    unsigned char *p = cask__realloc(b->buf, sizeof(struct cask_blob) + size + 1);
    if (!p)
        return NULL;
    memmove(p + at, p, b->len);
    struct cask_blob *blob = (struct cask_blob *)p;
    blob->in_arena = false;
    blob_init(blob, size);
    b->buf = NULL;
    b->cap = 0;
    return blob;
}

int cask_list_builder_finish(cask_list_builder_t *b, cask_value_t *out, cask_error_t *err)
{
    *out = cask_none();
    if (!b)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "builder is NULL");
    size_t size = built_size(b);
    if (!size)
        return cask__err(err, CASK_ENOMEM, NULL, NULL, "a list of %zu items is too large", b->n);
    /* heap lists only: a worker's lists go to the shared arena */
    struct cask_blob *blob =
        !cask__blob_alloc && b->len >= STEAL_MIN ? built_steal(b, size) : NULL;
    if (blob)
        built_offsets(b, blob->data);
    else if ((blob = blob_new(size)))
        built_write(b, blob->data);
    else
        return cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for a list of %zu bytes",
                         size);
    out->type = CASK_LIST;
    out->u.blob = blob;
    return 0;
}

int cask__list_builder_append_built(cask_list_builder_t *b, cask_list_builder_t *items)
{
    size_t size = built_size(items);
    rec_t *r = size ? builder_room(b, rec_bytes(0, size)) : NULL;
    if (!r)
        return CASK_ENOMEM;
    r->type = CASK_LIST;
    r->size = size;
    built_write(items, (char *)r + rec_head(0));
    b->off[b->n++] = b->len;
    b->len += rec_bytes(0, size);
    return 0;
}

int cask_value_list(const cask_value_t *items, size_t n, cask_value_t *out, cask_error_t *err)
{
    *out = cask_none();
    if (n && !items)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "items is NULL");
    cask_list_builder_t b;
    cask_list_builder_init(&b);
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++)
        rc = cask_list_builder_append(&b, &items[i], err);
    if (!rc)
        rc = cask_list_builder_finish(&b, out, err);
    cask_list_builder_destroy(&b);
    return rc;
}

size_t cask_list_len(const cask_value_t *v)
{
    pview_t p;
    return v && v->type == CASK_LIST && payload(v, &p) ? (size_t)list_n(p.data) : 0;
}

cask_value_t cask_list_item(const cask_value_t *v, size_t i)
{
    pview_t p;
    if (!v || v->type != CASK_LIST || !payload(v, &p) || i >= list_n(p.data))
        return cask_none();
    const rec_t *r = list_rec(p.data, i);
    cask_value_t out = cask_none();
    switch (r->type) {
    case CASK_INT64:
        memcpy(&out.u.i, rec_data(r), 8);
        out.type = CASK_INT64;
        break;
    case CASK_DOUBLE:
        memcpy(&out.u.d, rec_data(r), 8);
        out.type = CASK_DOUBLE;
        break;
    case CASK_NONE:
        break;
    default:
        out.type = (cask_type_t)r->type;
        out.aux = CASK__VIEW;
        out.u.blob = (struct cask_blob *)(uintptr_t)r;
        break;
    }
    return out;
}

/* ------------------------------------------------------------- reading */

size_t cask_value_nbytes(const cask_value_t *v)
{
    pview_t p;
    return payload(v, &p) ? p.size : 0;
}

bool cask_value_is_number(const cask_value_t *v)
{
    return v && (v->type == CASK_INT64 || v->type == CASK_DOUBLE);
}

double cask_value_double(const cask_value_t *v)
{
    if (v && v->type == CASK_INT64)
        return (double)v->u.i;
    if (v && v->type == CASK_DOUBLE)
        return v->u.d;
    return NAN;
}

const char *cask_value_str(const cask_value_t *v, size_t *len)
{
    pview_t p;
    if (!v || v->type != CASK_STRING || !payload(v, &p))
        return NULL;
    if (len)
        *len = p.size;
    return p.data;
}

const void *cask_value_data(const cask_value_t *v, size_t *len)
{
    pview_t p;
    if (!v || v->type != CASK_BYTES || !payload(v, &p))
        return NULL;
    if (len)
        *len = p.size;
    return p.data;
}

int cask_value_nd(const cask_value_t *v, cask_nd_t *nd)
{
    pview_t p;
    if (!v || v->type != CASK_NDARRAY || !payload(v, &p))
        return CASK_ETYPE;
    nd->dtype = p.dtype;
    nd->ndim = p.ndim;
    memset(nd->shape, 0, sizeof nd->shape);
    for (int i = 0; i < p.ndim; i++)
        nd->shape[i] = p.shape[i];
    nd->size = p.size / dtype_sizes[p.dtype];
    nd->data = (void *)(uintptr_t)p.data;
    return 0;
}

void *cask_value_ptr(const cask_value_t *v)
{
    return v && v->type == CASK_OPAQUE ? v->u.blob->data : NULL;
}

bool cask_value_equal(const cask_value_t *a, const cask_value_t *b)
{
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case CASK_NONE:   return true;
    case CASK_INT64:  return a->u.i == b->u.i;
    case CASK_DOUBLE: return memcmp(&a->u.d, &b->u.d, sizeof(double)) == 0;
    case CASK_REF:    return a->u.task == b->u.task;
    case CASK_OPAQUE: return a->u.blob->data == b->u.blob->data;
    default: break;
    }
    pview_t x, y;
    if (!payload(a, &x) || !payload(b, &y) || x.size != y.size)
        return false;
    if (a->type == CASK_NDARRAY) {
        if (x.dtype != y.dtype || x.ndim != y.ndim)
            return false;
        for (int i = 0; i < x.ndim; i++)
            if (x.shape[i] != y.shape[i])
                return false;
    }
    return memcmp(x.data, y.data, x.size) == 0; /* lists: their records, padding zeroed */
}

uint64_t cask__value_hash(const cask_value_t *v, const uint64_t *task_hash)
{
    uint64_t h = (uint64_t)v->type + 1;
    switch (v->type) {
    case CASK_NONE:   return h;
    case CASK_INT64:  return cask__mix(h, (uint64_t)v->u.i);
    case CASK_DOUBLE: {
        uint64_t bits;
        memcpy(&bits, &v->u.d, 8);
        return cask__mix(h, bits);
    }
    case CASK_REF:    return cask__mix(h, task_hash[(uint32_t)v->u.task]);
    case CASK_OPAQUE: return cask__mix(h, (uint64_t)(uintptr_t)v->u.blob->data);
    default: break;
    }
    pview_t p;
    if (!payload(v, &p))
        return h;
    if (v->type == CASK_NDARRAY) {
        h = cask__mix(h, (uint64_t)p.dtype);
        for (int i = 0; i < p.ndim; i++)
            h = cask__mix(h, (uint64_t)p.shape[i]);
    }
    return cask__hash(p.data, p.size, h);
}

void cask__value_hash2(const cask_value_t *v, uint64_t h[2])
{
    uint64_t head[2 + CASK_MAX_NDIM] = { (uint64_t)v->type + 1 };
    size_t nh = 1;
    pview_t p = { 0 };
    if (v->type == CASK_INT64)
        head[nh++] = (uint64_t)v->u.i;
    else if (v->type == CASK_DOUBLE)
        memcpy(&head[nh++], &v->u.d, 8);
    else if (payload(v, &p) && v->type == CASK_NDARRAY) {
        head[nh++] = (uint64_t)p.dtype << 32 | (uint64_t)p.ndim;
        for (int i = 0; i < p.ndim; i++)
            head[nh++] = (uint64_t)p.shape[i];
    }
    cask__hash2(head, nh * 8, h);
    if (p.data)
        cask__hash2(p.data, p.size, h);
}

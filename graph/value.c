/*
** graph/value.c: the tagged value and its reference-counted blocks.
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
    static const char *const names[] = { "none", "int64", "double", "string",
                                         "bytes", "ndarray", "opaque", "ref" };
    return (unsigned)type <= CASK_REF ? names[type] : "unknown";
}

_Thread_local struct cask_blob *(*cask__blob_alloc)(size_t bytes);
void (*cask__arena_free)(struct cask_blob *b);

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
    if (!b)
        return NULL;
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
    if (v && cask__has_blob(v))
        atomic_fetch_add_explicit(&v->u.blob->refs, 1, memory_order_relaxed);
}

void cask_value_decref(cask_value_t *v)
{
    if (!v)
        return;
    if (cask__has_blob(v)) {
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
    if (type < CASK_STRING || type > CASK_NDARRAY)
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
    *out = cask_none();
    if (!cask__has_blob(v) || v->type == CASK_OPAQUE)
        return CASK_ETYPE;
    const struct cask_blob *src = v->u.blob;
    struct cask_blob *b = blob_new(src->size);
    if (!b)
        return CASK_ENOMEM;
    b->dtype = src->dtype;
    b->ndim = src->ndim;
    memcpy(b->shape, src->shape, sizeof b->shape);
    memcpy(b->data, src->data, src->size);
    out->type = v->type;
    out->aux = v->aux;
    out->u.blob = b;
    return 0;
}

size_t cask_value_nbytes(const cask_value_t *v)
{
    return v ? cask__nbytes(v) : 0;
}

bool cask_value_is_number(const cask_value_t *v)
{
    return v && (v->type == CASK_INT64 || v->type == CASK_DOUBLE);
}

double cask_value_as_double(const cask_value_t *v)
{
    if (v && v->type == CASK_INT64)
        return (double)v->u.i;
    if (v && v->type == CASK_DOUBLE)
        return v->u.d;
    return NAN;
}

const char *cask_value_str(const cask_value_t *v, size_t *len)
{
    if (!v || v->type != CASK_STRING)
        return NULL;
    if (len)
        *len = v->u.blob->size;
    return v->u.blob->data;
}

const void *cask_value_data(const cask_value_t *v, size_t *len)
{
    if (!v || v->type != CASK_BYTES)
        return NULL;
    if (len)
        *len = v->u.blob->size;
    return v->u.blob->data;
}

int cask_value_nd(const cask_value_t *v, cask_nd_t *nd)
{
    if (!v || v->type != CASK_NDARRAY)
        return CASK_ETYPE;
    const struct cask_blob *b = v->u.blob;
    nd->dtype = b->dtype;
    nd->ndim = b->ndim;
    memset(nd->shape, 0, sizeof nd->shape);
    for (int i = 0; i < b->ndim; i++)
        nd->shape[i] = b->shape[i];
    nd->size = b->size / dtype_sizes[b->dtype];
    nd->data = b->data;
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
    const struct cask_blob *x = a->u.blob, *y = b->u.blob;
    if (x->size != y->size)
        return false;
    if (a->type == CASK_NDARRAY) {
        if (x->dtype != y->dtype || x->ndim != y->ndim)
            return false;
        for (int i = 0; i < x->ndim; i++)
            if (x->shape[i] != y->shape[i])
                return false;
    }
    return memcmp(x->data, y->data, x->size) == 0;
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
    const struct cask_blob *b = v->u.blob;
    if (v->type == CASK_NDARRAY) {
        h = cask__mix(h, (uint64_t)b->dtype);
        for (int i = 0; i < b->ndim; i++)
            h = cask__mix(h, (uint64_t)b->shape[i]);
    }
    return cask__hash(b->data, b->size, h);
}

/*
** graph/json.c: the cask-graph JSON format (docs/FORMAT.md), with jansson.
**
** Loading never trusts the file: every field's type is checked, every
** error names the JSON path of what is wrong, and tasks may come in any
** order: they are sorted before being added (graph/dag.c), and a cycle is
** reported with the keys on one.
*/
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <string.h>

#include "internal.h"

/* ---------------------------------------------------------------- base64 */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *b64_encode(const unsigned char *p, size_t n)
{
    char *s = cask__malloc(4 * ((n + 2) / 3) + 1), *o = s;
    if (!s)
        return NULL;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n) v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n) v |= p[i + 2];
        *o++ = b64[v >> 18 & 63];
        *o++ = b64[v >> 12 & 63];
        *o++ = i + 1 < n ? b64[v >> 6 & 63] : '=';
        *o++ = i + 2 < n ? b64[v & 63] : '=';
    }
    *o = '\0';
    return s;
}

static int b64_val(char c)
{
    const char *p = c ? strchr(b64, c) : NULL;
    return p ? (int)(p - b64) : -1;
}

/* Decode s (padded, length a multiple of 4) into *out; -1 if malformed. */
static int b64_decode(const char *s, size_t len, unsigned char **out, size_t *n)
{
    if (len % 4)
        return -1;
    unsigned char *d = cask__malloc(len / 4 * 3 + 1);
    if (!d)
        return -2;
    size_t k = 0;
    for (size_t i = 0; i < len; i += 4) {
        int v[4], pad = 0;
        for (int j = 0; j < 4; j++) {
            if (s[i + j] == '=' && i + 4 == len && j >= 2) {
                v[j] = 0;
                pad++;
            } else if (pad || (v[j] = b64_val(s[i + j])) < 0) {
                cask__free(d);
                return -1;
            }
        }
        uint32_t x = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        d[k++] = (unsigned char)(x >> 16);
        if (pad < 2) d[k++] = (unsigned char)(x >> 8);
        if (pad < 1) d[k++] = (unsigned char)x;
    }
    *out = d;
    *n = k;
    return 0;
}

/* -------------------------------------------------------------- literals */

static json_t *double_to_json(double d)
{
    if (isfinite(d))
        return json_real(d);
    return json_pack("{s:s}", "double", isnan(d) ? "nan" : d > 0 ? "inf" : "-inf");
}

json_t *cask__value_to_json(const cask_value_t *v)
{
    switch (v->type) {
    case CASK_NONE:   return json_null();
    case CASK_INT64:  return json_integer(v->u.i);
    case CASK_DOUBLE: return double_to_json(v->u.d);
    case CASK_STRING: {
        size_t len;
        const char *s = cask_value_str(v, &len);
        return json_stringn(s, len); /* NULL if not UTF-8 */
    }
    case CASK_BYTES: {
        size_t len;
        const void *p = cask_value_data(v, &len);
        char *s = b64_encode(p, len);
        json_t *j = s ? json_pack("{s:s}", "bytes", s) : NULL;
        cask__free(s);
        return j;
    }
    case CASK_NDARRAY: {
        cask_nd_t nd;
        cask_value_nd(v, &nd);
        json_t *shape = json_array(), *data = json_array();
        int bad = !shape || !data;
        for (int i = 0; !bad && i < nd.ndim; i++)
            bad = json_array_append_new(shape, json_integer(nd.shape[i]));
        for (size_t i = 0; !bad && i < nd.size; i++) {
            json_t *e;
            switch (nd.dtype) {
            case CASK_F64: e = double_to_json(((double *)nd.data)[i]); break;
            case CASK_F32: e = double_to_json(((float *)nd.data)[i]); break;
            case CASK_I64: e = json_integer(((int64_t *)nd.data)[i]); break;
            default:       e = json_boolean(((unsigned char *)nd.data)[i]); break;
            }
            bad = json_array_append_new(data, e);
        }
        json_t *j = bad ? NULL : json_pack("{s:s, s:O, s:O}", "dtype",
                                           cask_dtype_name(nd.dtype), "shape", shape, "data", data);
        json_decref(shape);
        json_decref(data);
        return j;
    }
    case CASK_LIST: {
        json_t *items = json_array();
        for (size_t i = 0, n = cask_list_len(v); items && i < n; i++) {
            cask_value_t item = cask_list_item(v, i);
            json_t *e = cask__value_to_json(&item);
            if (!e || json_array_append_new(items, e)) {
                json_decref(items);
                return NULL;
            }
        }
        json_t *j = items ? json_pack("{s:O}", "list", items) : NULL;
        json_decref(items);
        return j;
    }
    default:
        return NULL; /* opaque values and refs have no literal form */
    }
}

char *cask_value_to_json(const cask_value_t *v)
{
    json_t *j = v ? cask__value_to_json(v) : NULL;
    char *s = j ? json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    json_decref(j);
    return s;
}

/* A special double written as {"double": "nan"|"inf"|"-inf"}. */
static int special_double(json_t *j, double *d)
{
    const char *s = json_string_value(json_object_get(j, "double"));
    if (!s || json_object_size(j) != 1)
        return -1;
    if (!strcmp(s, "nan")) *d = NAN;
    else if (!strcmp(s, "inf")) *d = INFINITY;
    else if (!strcmp(s, "-inf")) *d = -INFINITY;
    else return -1;
    return 0;
}

static int dtype_from_name(const char *s, cask_dtype_t *d)
{
    for (int i = 0; i <= CASK_BOOL; i++)
        if (s && !strcmp(s, cask_dtype_name((cask_dtype_t)i))) {
            *d = (cask_dtype_t)i;
            return 0;
        }
    return -1;
}

static int nd_from_json(json_t *j, const char *where, cask_value_t *out, cask_error_t *err)
{
    cask_dtype_t dt;
    json_t *shape = json_object_get(j, "shape"), *data = json_object_get(j, "data");
    const char *dname = json_string_value(json_object_get(j, "dtype"));
    if (dtype_from_name(dname, &dt))
        return cask__err(err, CASK_EPARSE, NULL, NULL,
                         "%s: dtype must be float64, float32, int64 or bool", where);
    if (!json_is_array(shape) || !json_is_array(data) || json_object_size(j) != 3)
        return cask__err(err, CASK_EPARSE, NULL, NULL,
                         "%s: an n-d buffer has exactly dtype, shape (a list) and data (a list)", where);
    int64_t sh[CASK_MAX_NDIM];
    size_t nd = json_array_size(shape), count = 1;
    if (nd > CASK_MAX_NDIM)
        return cask__err(err, CASK_EPARSE, NULL, NULL, "%s: more than %d axes", where, CASK_MAX_NDIM);
    for (size_t i = 0; i < nd; i++) {
        json_t *e = json_array_get(shape, i);
        if (!json_is_integer(e) || json_integer_value(e) < 0 ||
            json_integer_value(e) > (json_int_t)1 << 40)
            return cask__err(err, CASK_EPARSE, NULL, NULL,
                             "%s: shape[%zu] is not a non-negative integer", where, i);
        sh[i] = json_integer_value(e);
        if (sh[i] && count > ((size_t)1 << 40) / (size_t)sh[i])
            return cask__err(err, CASK_EPARSE, NULL, NULL, "%s: shape is too large", where);
        count *= (size_t)sh[i];
    }
    if (json_array_size(data) != count)
        return cask__err(err, CASK_EPARSE, NULL, NULL,
                         "%s: data has %zu elements, shape needs %zu", where,
                         json_array_size(data), count);
    int rc = cask_value_ndarray(dt, (int)nd, sh, out, err);
    if (rc)
        return rc;
    cask_nd_t v;
    cask_value_nd(out, &v);
    for (size_t i = 0; i < count; i++) {
        json_t *e = json_array_get(data, i);
        double d;
        int ok = 1;
        switch (dt) {
        case CASK_I64:
            ok = json_is_integer(e);
            if (ok) ((int64_t *)v.data)[i] = json_integer_value(e);
            break;
        case CASK_BOOL:
            ok = json_is_boolean(e) || (json_is_integer(e) && (json_integer_value(e) & ~1) == 0);
            if (ok) ((unsigned char *)v.data)[i] = json_is_true(e) || json_integer_value(e) == 1;
            break;
        default:
            ok = json_is_number(e) || (json_is_object(e) && !special_double(e, &d));
            if (ok && json_is_number(e))
                d = json_number_value(e);
            if (ok && dt == CASK_F64) ((double *)v.data)[i] = d;
            if (ok && dt == CASK_F32) ((float *)v.data)[i] = (float)d;
            break;
        }
        if (!ok) {
            cask_value_decref(out);
            return cask__err(err, CASK_EPARSE, NULL, NULL,
                             "%s: data[%zu] is not a valid %s", where, i, dname);
        }
    }
    return 0;
}

int cask__value_from_json(json_t *j, const char *where, cask_value_t *out, cask_error_t *err)
{
    *out = cask_none();
    switch (json_typeof(j)) {
    case JSON_NULL:    return 0;
    case JSON_INTEGER: *out = cask_int(json_integer_value(j)); return 0;
    case JSON_REAL:    *out = cask_double(json_real_value(j)); return 0;
    case JSON_STRING:
        return cask_value_string(json_string_value(j), json_string_length(j), out, err);
    case JSON_OBJECT: {
        double d;
        if (!special_double(j, &d)) {
            *out = cask_double(d);
            return 0;
        }
        json_t *b = json_object_get(j, "bytes");
        if (b) {
            unsigned char *p;
            size_t n;
            int r;
            if (!json_is_string(b) || json_object_size(j) != 1 ||
                (r = b64_decode(json_string_value(b), json_string_length(b), &p, &n)) == -1)
                return cask__err(err, CASK_EPARSE, NULL, NULL,
                                 "%s: bytes must be the only field, a base64 string", where);
            if (r)
                return cask__err(err, CASK_ENOMEM, NULL, NULL, "%s: no memory", where);
            r = cask_value_bytes(p, n, out, err);
            cask__free(p);
            return r;
        }
        if (json_object_get(j, "dtype"))
            return nd_from_json(j, where, out, err);
        json_t *l = json_object_get(j, "list");
        if (l) {
            if (!json_is_array(l) || json_object_size(j) != 1)
                return cask__err(err, CASK_EPARSE, NULL, NULL,
                                 "%s: list must be the only field, a JSON list", where);
            cask_list_builder_t lb;
            cask_list_builder_init(&lb);
            int r = 0;
            for (size_t i = 0; i < json_array_size(l) && !r; i++) {
                char w[64];
                snprintf(w, sizeof w, "%s.list[%zu]", where, i);
                cask_value_t item;
                json_t *e = json_array_get(l, i);
                if (json_is_object(e) && json_object_get(e, "ref"))
                    r = cask__err(err, CASK_EPARSE, NULL, NULL, "%s: a list cannot hold a ref", w);
                else if (!(r = cask__value_from_json(e, w, &item, err))) {
                    r = cask_list_builder_append(&lb, &item, err);
                    cask_value_decref(&item);
                }
            }
            if (!r)
                r = cask_list_builder_finish(&lb, out, err);
            cask_list_builder_destroy(&lb);
            return r;
        }
        break;
    }
    default:
        break;
    }
    return cask__err(err, CASK_EPARSE, NULL, NULL,
                     "%s: not a cask value (a number, string, null, {\"ref\": KEY}, "
                     "{\"bytes\": B64}, {\"dtype\", \"shape\", \"data\"} or "
                     "{\"list\": [...]})", where);
}

/* ---------------------------------------------------------------- loading */

/* What the loader knows of one task of the file. */
typedef struct ftask {
    json_t     *obj;     /* the task object (borrowed from the document) */
    const char *key;     /* its key */
    uint32_t    dep_off; /* its dependencies in deps[dep_off ..] */
    uint32_t    n_deps;
} ftask_t;

int cask__graph_from_json(json_t *root, unsigned flags, cask_graph_t **out, cask_error_t *err)
{
    if (!json_is_object(root))
        return cask__err(err, CASK_EPARSE, NULL, NULL, "top level is not a JSON object");
    const char *fmt = json_string_value(json_object_get(root, "format"));
    if (!fmt || strcmp(fmt, "cask-graph"))
        return cask__err(err, CASK_EPARSE, NULL, NULL, "format must be \"cask-graph\"");
    json_t *ver = json_object_get(root, "version");
    if (!json_is_integer(ver) || json_integer_value(ver) != 1)
        return cask__err(err, CASK_EPARSE, NULL, NULL, "version must be 1");
    json_t *tasks = json_object_get(root, "tasks"), *outs = json_object_get(root, "outputs");
    if (!json_is_array(tasks))
        return cask__err(err, CASK_EPARSE, NULL, NULL, "tasks must be a list");
    if (outs && !json_is_array(outs))
        return cask__err(err, CASK_EPARSE, NULL, NULL, "outputs must be a list of keys");
    size_t n = json_array_size(tasks);
    if (n >= UINT32_MAX - 1)
        return cask__err(err, CASK_ELIMIT, NULL, NULL, "too many tasks");

    int rc = CASK_ENOMEM;
    cask__strtab_t keys = { 0 };
    ftask_t *ft = cask__calloc(n ? n : 1, sizeof *ft);
    uint32_t *deps = NULL, *doff = NULL, *order = NULL, *nsucc = NULL;
    cask_task_t *tid = NULL;
    const char **keyv = NULL;
    size_t n_deps = 0, cap_deps = 0;
    cask_value_t *inputs = NULL;
    size_t cap_inputs = 0;
    cask_task_t *after = NULL, *outv = NULL;
    size_t cap_after = 0;
    cask_graph_t *g = NULL;
    char where[64];
    if (!ft)
        goto out;

    /* Pass 1: check each task's shape and collect the keys. */
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_array_get(tasks, i), *v;
        const char *field;
        if (!json_is_object(t)) {
            rc = cask__err(err, CASK_EPARSE, NULL, NULL, "tasks[%zu] is not an object", i);
            goto out;
        }
        json_object_foreach(t, field, v) {
            if (strcmp(field, "key") && strcmp(field, "kernel") && strcmp(field, "inputs") &&
                strcmp(field, "after") && strcmp(field, "cost") && strcmp(field, "group") &&
                strcmp(field, "nbytes")) {
                rc = cask__err(err, CASK_EPARSE, NULL, NULL, "tasks[%zu]: unknown field '%s'", i, field);
                goto out;
            }
        }
        const char *key = json_string_value(json_object_get(t, "key"));
        size_t klen = key ? json_string_length(json_object_get(t, "key")) : 0;
        if (!key || klen == 0 || klen > CASK_KEY_MAX || strlen(key) != klen) {
            rc = cask__err(err, CASK_EPARSE, NULL, NULL, "tasks[%zu].key must be a string of 1 to 127 bytes", i);
            goto out;
        }
        if ((v = json_object_get(t, "kernel")) && !json_is_string(v)) {
            rc = cask__err(err, CASK_EPARSE, NULL, NULL, "tasks[%zu].kernel must be a string", i);
            goto out;
        }
        if ((v = json_object_get(t, "inputs")) && !json_is_array(v)) {
            rc = cask__err(err, CASK_EPARSE, NULL, NULL, "tasks[%zu].inputs must be a list", i);
            goto out;
        }
        if ((v = json_object_get(t, "after")) && !json_is_array(v)) {
            rc = cask__err(err, CASK_EPARSE, NULL, NULL, "tasks[%zu].after must be a list of keys", i);
            goto out;
        }
        if ((v = json_object_get(t, "cost")) &&
            (!json_is_number(v) || !(json_number_value(v) >= 0) || isinf(json_number_value(v)))) {
            rc = cask__err(err, CASK_EPARSE, NULL, NULL, "tasks[%zu].cost must be a number >= 0", i);
            goto out;
        }
        if ((v = json_object_get(t, "nbytes")) && (!json_is_integer(v) || json_integer_value(v) < 0)) {
            rc = cask__err(err, CASK_EPARSE, NULL, NULL, "tasks[%zu].nbytes must be a whole number >= 0", i);
            goto out;
        }
        if ((v = json_object_get(t, "group")) &&
            (!json_is_string(v) || !json_string_length(v) || json_string_length(v) > CASK_KEY_MAX)) {
            rc = cask__err(err, CASK_EPARSE, NULL, NULL, "tasks[%zu].group must be a string of 1 to 127 bytes", i);
            goto out;
        }
        uint64_t h = cask__hash(key, klen, 0);
        uint32_t prev = cask__strtab_find(&keys, key, klen, h);
        if (prev != CASK__NOT_FOUND) {
            rc = cask__err(err, CASK_EDUPKEY, key, NULL,
                           "tasks[%zu]: duplicate key '%s' (first at tasks[%u])", i, key, prev);
            goto out;
        }
        if (cask__strtab_reserve(&keys, klen))
            goto out;
        cask__strtab_push(&keys, key, klen, h);
        ft[i].obj = t;
        ft[i].key = key;
    }

    /* Pass 2: resolve refs and afters to file indices. */
    for (size_t i = 0; i < n; i++) {
        json_t *ins = json_object_get(ft[i].obj, "inputs"), *aft = json_object_get(ft[i].obj, "after");
        size_t ni = json_array_size(ins), na = json_array_size(aft);
        ft[i].dep_off = (uint32_t)n_deps;
        for (size_t j = 0; j < ni + na; j++) {
            json_t *e = j < ni ? json_array_get(ins, j) : json_array_get(aft, j - ni);
            json_t *ref = j < ni ? (json_is_object(e) ? json_object_get(e, "ref") : NULL) : e;
            if (!ref)
                continue;
            const char *rk = json_string_value(ref);
            if (!rk || (j < ni && json_object_size(e) != 1)) {
                rc = cask__err(err, CASK_EPARSE, ft[i].key, NULL,
                               j < ni ? "tasks[%zu].inputs[%zu]: a ref is {\"ref\": KEY} alone"
                                      : "tasks[%zu].after[%zu] must be a key string",
                               i, j < ni ? j : j - ni);
                goto out;
            }
            uint32_t d = cask__strtab_find(&keys, rk, strlen(rk), cask__hash(rk, strlen(rk), 0));
            if (d == CASK__NOT_FOUND) {
                rc = cask__err(err, CASK_EMISSING, ft[i].key, NULL,
                               "tasks[%zu] ('%s'): %s[%zu] refers to missing key '%s'", i,
                               ft[i].key, j < ni ? "inputs" : "after", j < ni ? j : j - ni, rk);
                goto out;
            }
            if (n_deps >= UINT32_MAX - 1) {
                rc = cask__err(err, CASK_ELIMIT, NULL, NULL, "too many edges");
                goto out;
            }
            if (cask__grow((void **)&deps, &cap_deps, n_deps + 1, sizeof *deps))
                goto out;
            deps[n_deps++] = d;
            ft[i].n_deps++;
        }
    }

    /* Order the tasks, or name a cycle. */
    if (!(doff = cask__malloc((n + 1) * sizeof *doff)) || /* where each task's deps start */
        !(nsucc = cask__malloc((n ? n : 1) * sizeof *nsucc)) || /* its dependents */
        !(keyv = cask__malloc((n ? n : 1) * sizeof *keyv)) ||
        !(order = cask__malloc((n ? n : 1) * sizeof *order)) ||
        !(tid = cask__malloc((n ? n : 1) * sizeof *tid)))
        goto out;
    for (size_t i = 0; i < n; i++) {
        doff[i] = ft[i].dep_off;
        keyv[i] = ft[i].key;
    }
    doff[n] = (uint32_t)n_deps;
    if ((rc = cask__toposort(n, doff, deps, keyv, order, nsucc, err)))
        goto out;

    /* Pass 3: add the tasks in that order. */
    rc = CASK_ENOMEM;
    if (!(g = cask_graph_new(err)))
        goto out;
    for (size_t oi = 0; oi < n; oi++) {
        uint32_t i = order[oi];
        json_t *t = ft[i].obj;
        json_t *ins = json_object_get(t, "inputs"), *aft = json_object_get(t, "after");
        size_t ni = json_array_size(ins), na = json_array_size(aft);
        rc = CASK_ENOMEM;
        if (cask__grow((void **)&inputs, &cap_inputs, ni, sizeof *inputs) ||
            cask__grow((void **)&after, &cap_after, na, sizeof *after))
            goto out;
        rc = 0;
        size_t d = ft[i].dep_off, made = 0;
        for (size_t j = 0; j < ni; j++, made++) {
            json_t *e = json_array_get(ins, j);
            if (json_is_object(e) && json_object_get(e, "ref")) {
                inputs[j] = cask_ref(tid[deps[d++]]);
                continue;
            }
            snprintf(where, sizeof where, "tasks[%u].inputs[%zu]", i, j);
            if ((rc = cask__value_from_json(e, where, &inputs[j], err)))
                break;
        }
        for (size_t j = 0; j < na; j++)
            after[j] = tid[deps[d++]];
        const char *kernel = json_string_value(json_object_get(t, "kernel"));
        if (kernel && (flags & CASK_LOAD_ANALYSIS) && !cask_kernel_exists(kernel))
            kernel = NULL;
        json_t *cost = json_object_get(t, "cost");
        cask_task_spec_t spec = {
            .kernel = kernel, .inputs = inputs, .n_inputs = ni, .after = after, .n_after = na,
            .key = ft[i].key, .group = json_string_value(json_object_get(t, "group")),
            .nbytes = (uint64_t)json_integer_value(json_object_get(t, "nbytes")),
        };
        if (!rc) {
            rc = cask__graph_add(g, &spec, cost ? json_number_value(cost) : NAN, &tid[i], err);
            if (rc && err && err->code == CASK_ENOKERNEL)
                snprintf(err->message, sizeof err->message, "tasks[%u] ('%s'): unknown kernel '%s'",
                         i, ft[i].key, kernel);
        }
        for (size_t j = 0; j < made; j++)
            cask_value_decref(&inputs[j]);
        if (rc)
            goto out;
    }

    /* Outputs: the listed keys, or every task nothing depends on. */
    size_t no = outs ? json_array_size(outs) : 0;
    if (!outs)
        for (size_t i = 0; i < n; i++)
            no += !nsucc[i];
    rc = CASK_ENOMEM;
    if (!(outv = cask__malloc((no ? no : 1) * sizeof *outv)))
        goto out;
    if (outs) {
        for (size_t i = 0; i < no; i++) {
            const char *k = json_string_value(json_array_get(outs, i));
            if (!k) {
                rc = cask__err(err, CASK_EPARSE, NULL, NULL, "outputs[%zu] is not a key string", i);
                goto out;
            }
            if ((outv[i] = cask_graph_find(g, k)) == CASK_NO_TASK) {
                rc = cask__err(err, CASK_EMISSING, k, NULL,
                               "outputs[%zu] refers to missing key '%s'", i, k);
                goto out;
            }
        }
    } else {
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (!nsucc[i])
                outv[k++] = tid[i];
    }
    if ((rc = cask_graph_set_outputs(g, outv, no, err)))
        goto out;
    *out = g;
    g = NULL;
    rc = 0;
out:
    if (rc == CASK_ENOMEM && err && err->code != CASK_ENOMEM)
        cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory to load the graph");
    cask_graph_decref(g);
    cask__strtab_destroy(&keys);
    cask__free(ft);
    cask__free(deps);
    cask__free(doff);
    cask__free(order);
    cask__free(tid);
    cask__free(nsucc);
    cask__free(keyv);
    cask__free(inputs);
    cask__free(after);
    cask__free(outv);
    return rc;
}

int cask__json_error(const struct json_error_t *je, const char *src, cask_error_t *err)
{
    enum json_error_code c = json_error_code(je);
    /* jansson reports a failed allocation as out_of_memory, except in its
    ** lexer's set-up, which fails with the error still empty */
    if (c == json_error_out_of_memory || (je->line < 0 && !je->text[0]))
        return cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory to read %s", src);
    if (c == json_error_cannot_open_file)
        return cask__err(err, CASK_EIO, NULL, NULL, "%s", je->text);
    return cask__err(err, CASK_EPARSE, NULL, NULL, "%s:%d:%d: %s", src, je->line, je->column,
                     je->text);
}

int cask_graph_parse_json(const char *buf, size_t len, unsigned flags, cask_graph_t **out,
                          cask_error_t *err)
{
    json_error_t je;
    if (!out)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "out is NULL");
    *out = NULL;
    if (!buf)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "buffer is NULL");
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return cask__json_error(&je, "<string>", err);
    int rc = cask__graph_from_json(root, flags, out, err);
    json_decref(root);
    return rc;
}

int cask_graph_load_json(const char *path, unsigned flags, cask_graph_t **out,
                         cask_error_t *err)
{
    json_error_t je;
    if (!out)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "out is NULL");
    *out = NULL;
    FILE *f = path ? fopen(path, "rb") : NULL;
    if (!f)
        return cask__err(err, CASK_EIO, NULL, NULL, "cannot open '%s': %s",
                         path ? path : "(null)", strerror(errno));
    json_t *root = json_loadf(f, JSON_REJECT_DUPLICATES, &je);
    fclose(f);
    if (!root)
        return cask__json_error(&je, path, err);
    int rc = cask__graph_from_json(root, flags, out, err);
    json_decref(root);
    return rc;
}

/* ---------------------------------------------------------------- writing */

int cask_graph_write_json(const cask_graph_t *g, FILE *f, cask_error_t *err)
{
    if (!g || !f)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "graph or file is NULL");
    int rc = CASK_ENOMEM;
    json_t *root = json_pack("{s:s, s:i}", "format", "cask-graph", "version", 1);
    json_t *tasks = json_array(), *outs = json_array();
    if (!root || !tasks || !outs)
        goto out;
    for (uint32_t t = 0; t < g->n; t++) {
        json_t *o = json_pack("{s:s}", "key", cask__key(g, t)), *ins = json_array(), *aft = NULL;
        if (!o || !ins || json_object_set_new(o, "inputs", ins)) {
            json_decref(o);
            goto out;
        }
        if (json_array_append_new(tasks, o))
            goto out;
        const char *kname = cask__kernel_name(g, t);
        if (kname && json_object_set_new(o, "kernel", json_string(kname)))
            goto out;
        for (uint32_t e = g->in_off[t]; e < g->in_off[t + 1]; e++) {
            const cask_value_t *v = &g->in[e];
            json_t *j;
            if (v->type == CASK_REF)
                j = json_pack("{s:s}", "ref", cask__key(g, cask__tix(v->u.task)));
            else if (!(j = cask__value_to_json(v))) {
                rc = cask__err(err, CASK_ETYPE, cask__key(g, t), kname,
                               "task '%s': input %u (%s) cannot be written as JSON",
                               cask__key(g, t), e - g->in_off[t], cask_type_name(v->type));
                goto out;
            }
            if (e < g->in_off[t] + cask__n_args(g, t)) {
                if (json_array_append_new(ins, j))
                    goto out;
            } else {
                json_decref(j);
                if (!aft && (!(aft = json_array()) || json_object_set_new(o, "after", aft)))
                    goto out;
                if (json_array_append_new(aft, json_string(cask__key(g, cask__tix(v->u.task)))))
                    goto out;
            }
        }
        if (!isnan(cask__cost_given(g, t)) && json_object_set_new(o, "cost", json_real(g->cost[t])))
            goto out;
        if (g->nbytes && g->nbytes[t] &&
            json_object_set_new(o, "nbytes", json_integer((json_int_t)g->nbytes[t])))
            goto out;
        if (cask__group_id(g, t) &&
            json_object_set_new(o, "group", json_string(cask__strtab_get(&g->groups, g->group[t] - 1))))
            goto out;
    }
    for (size_t i = 0; i < g->n_outputs; i++)
        if (json_array_append_new(outs, json_string(cask__key(g, g->outputs[i]))))
            goto out;
    if (json_object_set(root, "tasks", tasks) || json_object_set(root, "outputs", outs))
        goto out;
    rc = json_dumpf(root, f, JSON_INDENT(1)) || fputc('\n', f) == EOF ? CASK_EIO : 0;
    if (rc)
        cask__err(err, rc, NULL, NULL, "cannot write the graph: %s", strerror(errno));
out:
    if (rc == CASK_ENOMEM)
        cask__err(err, rc, NULL, NULL, "no memory to write the graph");
    json_decref(root);
    json_decref(tasks);
    json_decref(outs);
    return rc;
}

static int write_graph(FILE *f, const void *g, const void *opts, cask_error_t *err)
{
    (void)opts;
    return cask_graph_write_json(g, f, err);
}

int cask_graph_save_json(const cask_graph_t *g, const char *path, cask_error_t *err)
{
    return cask__save(path, write_graph, g, NULL, err);
}

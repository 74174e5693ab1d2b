/*
** collections/array_npy.c: arrays to and from NumPy .npy files (format
** versions 1.0 to 3.0; little-endian float64, float32, int64 and bool; C
** order). The header is a Python dict literal; only the three keys NumPy
** writes are read, and anything else is refused with the reason.
*/
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "array.h"

static const char *const descrs[] = { "<f8", "<f4", "<i8", "|b1" };

int cask_array_save_npy(cask_array_t *a, const char *path, const cask_compute_opts_t *opts,
                        cask_error_t *err)
{
    if (!a || !path)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "save_npy needs an array and a path");
    cask_dtype_t dt = cask_array_dtype(a);
    int ndim = cask_array_ndim(a);
    const int64_t *shape = cask_array_shape(a);
    size_t bytes = cask_array_size(a) * cask_dtype_size(dt);
    void *buf = cask__malloc(bytes ? bytes : 1);
    if (!buf)
        return cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for %zu bytes", bytes);
    int rc = cask_array_compute(&a, 1, opts, &buf, NULL, err);
    if (rc)
        goto out;
    /* The dict, padded with spaces and a newline so data starts at a
    ** multiple of 64 bytes, as NumPy writes it. */
    char dict[512];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                     descrs[dt]);
    for (int x = 0; x < ndim; x++)
        n += snprintf(dict + n, sizeof dict - (size_t)n, "%lld,%s", (long long)shape[x],
                      x + 1 < ndim ? " " : "");
    if (ndim > 1) /* (3, 4) not (3, 4,) */
        n--;
    n += snprintf(dict + n, sizeof dict - (size_t)n, "), }");
    size_t total = 10 + (size_t)n + 1;
    size_t pad = (64 - total % 64) % 64;
    FILE *f = fopen(path, "wb");
    if (!f) {
        rc = cask__err(err, CASK_EIO, NULL, NULL, "cannot write %s: %s", path, strerror(errno));
        goto out;
    }
    unsigned hl = (unsigned)((size_t)n + pad + 1);
    unsigned char pre[10] = { 0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hl & 0xff),
                              (unsigned char)(hl >> 8) };
    bool ok = fwrite(pre, 10, 1, f) == 1 && fwrite(dict, (size_t)n, 1, f) == 1;
    for (size_t i = 0; ok && i < pad; i++)
        ok = fputc(' ', f) != EOF;
    ok = ok && fputc('\n', f) != EOF && (!bytes || fwrite(buf, bytes, 1, f) == 1);
    if (fclose(f) || !ok)
        rc = cask__err(err, CASK_EIO, NULL, NULL, "cannot write %s: %s", path, strerror(errno));
out:
    cask__free(buf);
    return rc;
}

/* The value of key in a header dict, or NULL: where it starts. */
static const char *dict_value(const char *dict, const char *key)
{
    char k[32];
    snprintf(k, sizeof k, "'%s'", key);
    const char *p = strstr(dict, k);
    if (!p)
        return NULL;
    p += strlen(k);
    while (*p == ' ')
        p++;
    if (*p++ != ':')
        return NULL;
    while (*p == ' ')
        p++;
    return p;
}

/* Parse the header dict: dtype, ndim, shape; 0 or CASK_EPARSE. */
static int parse_dict(const char *dict, const char *path, cask_dtype_t *dt, int *ndim,
                      int64_t *shape, cask_error_t *err)
{
    const char *d = dict_value(dict, "descr"), *fo = dict_value(dict, "fortran_order");
    const char *sh = dict_value(dict, "shape");
    if (!d || !fo || !sh || *d != '\'' || *sh != '(')
        return cask__err(err, CASK_EPARSE, NULL, NULL,
                         "%s: the header lacks 'descr', 'fortran_order' or 'shape'", path);
    char descr[16];
    size_t len = strcspn(d + 1, "'");
    if (len >= sizeof descr || d[1 + len] != '\'')
        return cask__err(err, CASK_EPARSE, NULL, NULL, "%s: a bad 'descr'", path);
    memcpy(descr, d + 1, len);
    descr[len] = '\0';
    if (!strcmp(descr, "<b1")) /* NumPy writes |b1; accept the other spelling */
        strcpy(descr, "|b1");
    int found = -1;
    for (int i = 0; i < 4; i++)
        if (!strcmp(descr, descrs[i]))
            found = i;
    if (found < 0)
        return cask__err(err, CASK_ETYPE, NULL, NULL,
                         "%s: dtype '%s' is not one cask reads (<f8, <f4, <i8, |b1)", path,
                         descr);
    *dt = (cask_dtype_t)found;
    if (!strncmp(fo, "True", 4))
        return cask__err(err, CASK_EPARSE, NULL, NULL,
                         "%s: Fortran order; cask reads C order only", path);
    if (strncmp(fo, "False", 5))
        return cask__err(err, CASK_EPARSE, NULL, NULL, "%s: a bad 'fortran_order'", path);
    *ndim = 0;
    const char *p = sh + 1;
    for (;;) {
        while (*p == ' ' || *p == ',')
            p++;
        if (*p == ')')
            break;
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || errno || v < 0 || *ndim == CASK_MAX_NDIM)
            return cask__err(err, CASK_EPARSE, NULL, NULL,
                             "%s: a bad 'shape' (extents >= 0, at most %d axes)", path,
                             CASK_MAX_NDIM);
        shape[(*ndim)++] = v;
        p = end;
        if (*p != ',' && *p != ')' && *p != ' ')
            return cask__err(err, CASK_EPARSE, NULL, NULL, "%s: a bad 'shape'", path);
    }
    return 0;
}

cask_array_t *cask_array_load_npy(cask_graph_t *g, const char *path, const int64_t *chunks,
                                  cask_error_t *err)
{
    if (!g || !path)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "load_npy needs a graph and a path"),
               NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return cask__err(err, CASK_EIO, NULL, NULL, "cannot read %s: %s", path,
                         strerror(errno)), NULL;
    cask_array_t *a = NULL;
    char *dict = NULL;
    void *data = NULL;
    unsigned char pre[12];
    if (fread(pre, 1, 8, f) != 8 || memcmp(pre, "\x93NUMPY", 6) || pre[6] < 1 || pre[6] > 3) {
        cask__err(err, CASK_EPARSE, NULL, NULL, "%s: not a .npy file (version 1 to 3)", path);
        goto out;
    }
    size_t hl, lb = pre[6] == 1 ? 2 : 4;
    if (fread(pre + 8, 1, lb, f) != lb) {
        cask__err(err, CASK_EPARSE, NULL, NULL, "%s: the header is cut short", path);
        goto out;
    }
    hl = lb == 2 ? (size_t)pre[8] | (size_t)pre[9] << 8
                 : (size_t)pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 |
                       (size_t)pre[11] << 24;
    if (hl > 1 << 20 || !(dict = cask__malloc(hl + 1)) || fread(dict, 1, hl, f) != hl) {
        cask__err(err, CASK_EPARSE, NULL, NULL, "%s: the header is cut short or too long",
                  path);
        goto out;
    }
    dict[hl] = '\0';
    cask_dtype_t dt = CASK_F64;
    int ndim = 0;
    int64_t shape[CASK_MAX_NDIM];
    if (parse_dict(dict, path, &dt, &ndim, shape, err))
        goto out;
    double elems = 1;
    for (int x = 0; x < ndim; x++)
        elems *= (double)shape[x];
    if (elems * (double)cask_dtype_size(dt) > (double)(SIZE_MAX / 4)) {
        cask__err(err, CASK_EPARSE, NULL, NULL, "%s: shape too large", path);
        goto out;
    }
    size_t bytes = (size_t)elems * cask_dtype_size(dt);
    struct stat st;
    long at = ftell(f);
    if (!fstat(fileno(f), &st) && S_ISREG(st.st_mode) && at >= 0 &&
        (uint64_t)st.st_size - (uint64_t)at < bytes) { /* before asking for the memory */
        cask__err(err, CASK_EPARSE, NULL, NULL, "%s: %llu bytes of data, %zu expected", path,
                  (unsigned long long)((uint64_t)st.st_size - (uint64_t)at), bytes);
        goto out;
    }
    if (!(data = cask__malloc(bytes ? bytes : 1))) {
        cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for %zu bytes of %s", bytes, path);
        goto out;
    }
    size_t got = bytes ? fread(data, 1, bytes, f) : 0;
    if (got != bytes) {
        cask__err(err, CASK_EPARSE, NULL, NULL, "%s: %zu bytes of data, %zu expected", path,
                  got, bytes);
        goto out;
    }
    if (dt == CASK_BOOL)
        for (size_t i = 0; i < bytes; i++)
            if (((unsigned char *)data)[i] > 1) {
                cask__err(err, CASK_EPARSE, NULL, NULL, "%s: bool element %zu is %u", path, i,
                          ((unsigned char *)data)[i]);
                goto out;
            }
    a = cask_array_from_buffer(g, dt, ndim, shape, chunks, data, CASK_ARRAY_COPY, err);
out:
    fclose(f);
    cask__free(dict);
    cask__free(data);
    return a;
}

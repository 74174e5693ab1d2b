/*
** collections/bag_read.c: the kernels that read a bag's records from
** files (cask.bag.files, cask.bag.text), JSON values as records, and
** cask_bag_json_get. Files are read when their partition runs; a text
** block is read with pread from one byte before its range (to see whether
** a line starts there) to the end of the line that holds its last byte.
*/
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bag.h"

/* ------------------------------------------------------------------ JSON */

static int from_json(json_t *j, cask_value_t *out, char *msg, size_t cap)
{
    cask_error_t e;
    int rc = 0;
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        char *text = json_dumps(j, JSON_COMPACT);
        if (!text)
            return CASK_ENOMEM;
        rc = cask_value_string(text, (size_t)-1, out, &e);
        free(text);
        return rc;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(j);
        cask_value_t *items = cask__calloc(n ? n : 1, sizeof *items);
        if (!items)
            return CASK_ENOMEM;
        for (size_t i = 0; i < n && !rc; i++)
            rc = from_json(json_array_get(j, i), &items[i], msg, cap);
        if (!rc)
            rc = cask_value_list(items, n, out, &e);
        for (size_t i = 0; i < n; i++)
            cask_value_decref(&items[i]);
        cask__free(items);
        return rc;
    }
    case JSON_STRING:
        return cask_value_string(json_string_value(j), json_string_length(j), out, &e);
    case JSON_INTEGER: *out = cask_int(json_integer_value(j)); return 0;
    case JSON_REAL:    *out = cask_double(json_real_value(j)); return 0;
    case JSON_TRUE:    *out = cask_int(1); return 0;
    case JSON_FALSE:   *out = cask_int(0); return 0;
    case JSON_NULL:    *out = cask_none(); return 0;
    }
    snprintf(msg, cap, "a JSON value of unknown type");
    return CASK_EPARSE;
}

int cask__bag_json_parse(const char *text, size_t len, cask_value_t *out, char *msg,
                         size_t msgcap)
{
    json_error_t je;
    *out = cask_none();
    json_t *j = json_loadb(text, len, JSON_DECODE_ANY, &je);
    if (!j) {
        snprintf(msg, msgcap, "%s (column %d)", je.text, je.column);
        return CASK_EPARSE;
    }
    int rc = from_json(j, out, msg, msgcap);
    json_decref(j);
    return rc;
}

int cask_bag_json_get(const cask_value_t *rec, const char *key, cask_value_t *out,
                      cask_error_t *err)
{
    size_t len;
    const char *s = rec ? cask_value_str(rec, &len) : NULL;
    if (out)
        *out = cask_none();
    if (!s || !key || !out)
        return cask__err(err, s || !rec ? CASK_EINVAL : CASK_ETYPE, NULL, NULL,
                         s || !rec ? "json_get needs a record, a key and out"
                                   : "the record is a %s, not a JSON object's text",
                         rec ? cask_type_name(rec->type) : "null");
    json_error_t je;
    json_t *j = json_loadb(s, len, 0, &je);
    if (!j || !json_is_object(j)) {
        json_decref(j);
        return cask__err(err, CASK_EPARSE, NULL, NULL, "the record is not a JSON object%s%s",
                         j ? "" : ": ", j ? "" : je.text);
    }
    json_t *f = json_object_get(j, key);
    int rc;
    if (!f)
        rc = cask__err(err, CASK_EMISSING, NULL, NULL, "the record has no field '%s'", key);
    else {
        char msg[160] = "";
        if ((rc = from_json(f, out, msg, sizeof msg)))
            cask__err(err, rc, NULL, NULL, "field '%s': %s", key,
                      rc == CASK_ENOMEM ? "out of memory" : msg);
    }
    json_decref(j);
    return rc;
}

/* ----------------------------------------------------------------- files */

/* Open path for reading if it is a regular file (a FIFO or a device is
** refused without blocking on it): the descriptor and its size, or -1
** with ctx's message set. */
static int open_regular(cask_kctx_t *ctx, const char *path, int64_t *size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        cask_kernel_fail(ctx, "cannot read '%s': %s", path,
                         fd < 0 || errno ? strerror(errno) : "not a regular file");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *size = st.st_size;
    return fd;
}

/* Fail with code and a message. */
#define FAIL(code, ...) (cask_kernel_fail(ctx, __VA_ARGS__), (code))

/* cask.bag.files(flags, path...): each path (a string), or with
** CASK_BAG_CONTENTS each file's bytes. */
static int k_files(const cask_value_t *args, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    if (!n || args[0].type != CASK_INT64)
        return cask_kernel_fail(ctx, "first input must be the flags");
    bool contents = cask_value_int(&args[0]) & CASK_BAG_CONTENTS;
    cask_list_builder_t b;
    cask_list_builder_init(&b);
    cask_error_t e;
    int rc = 0;
    for (size_t i = 1; i < n && !rc; i++) {
        const char *path = cask_value_str(&args[i], NULL);
        if (!path) {
            rc = cask_kernel_fail(ctx, "input %zu is not a path", i);
            break;
        }
        if (!contents) {
            rc = cask_list_builder_append(&b, &args[i], &e);
            continue;
        }
        int64_t fsize;
        errno = 0;
        int fd = open_regular(ctx, path, &fsize);
        if (fd < 0) {
            rc = CASK_EIO;
            break;
        }
        cask_value_t v;
        if ((rc = cask__value_blank(CASK_BYTES, (size_t)fsize, &v)) == 0) {
            char *p = (char *)cask_value_data(&v, NULL);
            if (cask__pread_all(fd, p, (size_t)fsize, 0) != (size_t)fsize)
                rc = FAIL(CASK_EIO, "cannot read '%s': %s", path,
                          errno ? strerror(errno) : "it was cut short while read");
            if (!rc)
                rc = cask_list_builder_append(&b, &v, &e);
            cask_value_decref(&v);
        }
        close(fd);
    }
    if (!rc)
        rc = cask_list_builder_finish(&b, out, &e);
    cask_list_builder_destroy(&b);
    return rc;
}

/* Read [off, off + len) of fd into p: 0, or -1 when it ends first (errno
** 0) or fails. */
static int read_at(int fd, char *p, size_t len, int64_t off)
{
    return cask__pread_all(fd, p, len, (off_t)off) == len ? 0 : -1;
}

/* The line number (from 1) of the line that starts at byte off of fd,
** buf holding bytes [s, off) of it: 0 when it cannot be read. */
static int64_t line_number(int fd, const char *buf, int64_t s, int64_t off)
{
    int64_t lines = 1;
    for (const char *p = buf; p < buf + (off - s); p++)
        lines += *p == '\n';
    char chunk[1 << 16];
    for (int64_t at = 0; at < s;) {
        size_t m = s - at < (int64_t)sizeof chunk ? (size_t)(s - at) : sizeof chunk;
        if (read_at(fd, chunk, m, at))
            return 0;
        for (size_t i = 0; i < m; i++)
            lines += chunk[i] == '\n';
        at += (int64_t)m;
    }
    return lines;
}

/* Whether [p, e) holds only JSON whitespace. */
static bool blank(const char *p, const char *e)
{
    for (; p < e; p++)
        if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
            return false;
    return true;
}

/* cask.bag.text(path, lo, hi, size, mode): the lines that start in bytes
** [lo, hi) of the file, which must be size bytes long; as strings, or
** (BAG_JSON, BAG_JSON_SKIP) parsed as JSON. */
static int k_text(const cask_value_t *args, size_t n, cask_value_t *out, cask_kctx_t *ctx)
{
    const char *path = n == 5 ? cask_value_str(&args[0], NULL) : NULL;
    if (!path || args[1].type != CASK_INT64 || args[2].type != CASK_INT64 ||
        args[3].type != CASK_INT64 || args[4].type != CASK_INT64)
        return cask_kernel_fail(ctx, "inputs must be a path, lo, hi, size and a mode");
    int64_t lo = args[1].u.i, hi = args[2].u.i, size = args[3].u.i, mode = args[4].u.i;
    if (lo < 0 || hi < lo || size < hi || mode < BAG_TEXT || mode > BAG_JSON_SKIP)
        return cask_kernel_fail(ctx, "bad range [%lld, %lld) of %lld bytes", (long long)lo,
                                (long long)hi, (long long)size);
    int64_t fsize;
    errno = 0;
    int fd = open_regular(ctx, path, &fsize);
    if (fd < 0)
        return CASK_EIO;
    if (fsize != size) {
        close(fd);
        return FAIL(CASK_EIO, "'%s' is %lld bytes, not the %lld it was when the bag was made",
                    path, (long long)fsize, (long long)size);
    }
    int64_t s = lo ? lo - 1 : 0, e = hi; /* bytes [s, e) of the file are in buf */
    size_t cap = (size_t)(hi - s) + 4096;
    char *buf = cask__malloc(cap);
    int rc = 0;
    if (!buf) {
        close(fd);
        return CASK_ENOMEM;
    }
    if (read_at(fd, buf, (size_t)(e - s), s))
        rc = FAIL(CASK_EIO, "cannot read '%s': %s", path,
                  errno ? strerror(errno) : "it was cut short while read");
    /* a block inside one line owns none: nothing more to read */
    bool none = !rc && lo && !memchr(buf, '\n', (size_t)(hi - s - 1));
    /* the last line goes on to its end */
    while (!rc && !none && e < size && (e == s || buf[e - s - 1] != '\n')) {
        size_t m = size - e < 65536 ? (size_t)(size - e) : 65536;
        if ((size_t)(e - s) + m > cap) {
            char *nb = cask__realloc(buf, cap * 2 + m);
            if (!nb) {
                rc = CASK_ENOMEM;
                break;
            }
            buf = nb, cap = cap * 2 + m;
        }
        if (read_at(fd, buf + (e - s), m, e)) {
            rc = FAIL(CASK_EIO, "cannot read '%s': %s", path,
                      errno ? strerror(errno) : "it was cut short while read");
            break;
        }
        char *nl = memchr(buf + (e - s), '\n', m);
        e = nl ? e + (nl - (buf + (e - s))) + 1 : e + (int64_t)m;
    }
    const char *p = buf, *end = none ? buf : buf + (e - s);
    if (!rc && lo) { /* the line under way at lo - 1 is the block before's */
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        p = nl ? nl + 1 : end;
    }
    cask_list_builder_t b;
    cask_list_builder_init(&b);
    cask_error_t ce;
    while (!rc && p < end && s + (p - buf) < hi) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end, *next = nl ? nl + 1 : end;
        size_t len = (size_t)(le - p);
        if (nl && len && p[len - 1] == '\r') /* "\r\n" ends it; a last "\r" is text */
            len--;
        if (mode == BAG_TEXT)
            rc = cask_list_builder_append_str(&b, p, len, &ce);
        else if (!blank(p, p + len)) {
            cask_value_t v;
            char msg[200];
            rc = cask__bag_json_parse(p, len, &v, msg, sizeof msg);
            if (rc == CASK_EPARSE && mode == BAG_JSON_SKIP)
                rc = 0;
            else if (rc == CASK_EPARSE)
                cask_kernel_fail(ctx, "'%s' line %lld: %s", path,
                                 (long long)line_number(fd, buf, s, s + (p - buf)), msg);
            else if (!rc)
                rc = cask_list_builder_append(&b, &v, &ce);
            cask_value_decref(&v);
        }
        p = next;
    }
    close(fd);
    cask__free(buf);
    if (!rc)
        rc = cask_list_builder_finish(&b, out, &ce);
    cask_list_builder_destroy(&b);
    return rc;
}

/* The stamp of a task that reads files (cask__kernel_t.stamp): each path
** among its arguments, as the file is now (device, inode, size and
** modification time); -1 when one cannot be looked at. */
static int stamp_paths(const cask_value_t *args, size_t n, uint64_t h[2])
{
    for (size_t i = 0; i < n; i++) {
        const char *path = cask_value_str(&args[i], NULL);
        if (path && cask__hash_file_id(path, h))
            return -1;
    }
    return 0;
}

void cask__bag_register_read(void)
{
    cask__kernel_register("cask.bag.files", k_files, NULL, NULL);
    cask__kernel_register("cask.bag.text", k_text, NULL, NULL);
    cask__kernel_set_stamp("cask.bag.files", stamp_paths);
    cask__kernel_set_stamp("cask.bag.text", stamp_paths);
}

/*
** graph/readers.c: cask_graph_load, which reads a graph file of any
** format it knows, detected by content: cask-graph JSON, WfCommons
** workflow JSON (schemas 0.1 to 1.6), STG task-graph files, and .zip
** archives holding one such JSON file (libzip). Graphs from workflow and
** STG files have no kernels: they are for analysis and simulation.
*/
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>

#include "internal.h"

/* A DAG being collected: keys and groups interned, dependencies by index. */
typedef struct reader {
    cask__strtab_t keys, groups;
    cask__dag_t    d;
    size_t         cap_n, cap_deps;
    const char   **grp;            /* per task, into groups */
} reader_t;

static void reader_free(reader_t *r)
{
    cask__strtab_destroy(&r->keys);
    cask__strtab_destroy(&r->groups);
    cask__free(r->d.key);
    cask__free(r->grp);
    cask__free(r->d.cost);
    cask__free(r->d.off);
    cask__free(r->d.deps);
}

static int intern(cask__strtab_t *t, const char *s, size_t len, uint32_t *id)
{
    uint64_t h = cask__hash(s, len, 0);
    uint32_t f = cask__strtab_find(t, s, len, h);
    if (f == CASK__NOT_FOUND) {
        if (cask__strtab_reserve(t, len))
            return CASK_ENOMEM;
        f = cask__strtab_push(t, s, len, h);
    }
    *id = f;
    return 0;
}

/* Add task `key` (new: a duplicate is an error) with its group and cost;
** r->grp has room for it. */
static int add_task(reader_t *r, const char *key, const char *group, size_t glen, double cost,
                    const char *where, cask_error_t *err)
{
    size_t klen = strlen(key);
    if (!klen || klen > CASK_KEY_MAX)
        return cask__err(err, CASK_EPARSE, NULL, NULL, "%s: a key must have 1 to %d bytes",
                         where, CASK_KEY_MAX);
    uint64_t h = cask__hash(key, klen, 0);
    if (cask__strtab_find(&r->keys, key, klen, h) != CASK__NOT_FOUND)
        return cask__err(err, CASK_EDUPKEY, key, NULL, "%s: duplicate task '%s'", where, key);
    size_t n = r->d.n;
    uint32_t gid;
    if (glen > CASK_KEY_MAX)
        glen = CASK_KEY_MAX;
    if (cask__strtab_reserve(&r->keys, klen) || intern(&r->groups, group, glen, &gid) ||
        cask__grow((void **)&r->d.cost, &r->cap_n, n + 1, sizeof *r->d.cost))
        return cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for the graph");
    cask__strtab_push(&r->keys, key, klen, h);
    r->d.cost[n] = cost;
    r->grp[n] = cask__strtab_get(&r->groups, gid); /* stable: the table never moves strings */
    r->d.n++;
    return 0;
}

/* Finish: keys and groups as arrays, off filled from per-task counts. */
static int reader_build(reader_t *r, cask_graph_t **out, cask_error_t *err)
{
    size_t n = r->d.n;
    if (!(r->d.key = cask__malloc((n ? n : 1) * sizeof *r->d.key)))
        return cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for the graph");
    for (size_t i = 0; i < n; i++)
        r->d.key[i] = cask__strtab_get(&r->keys, (uint32_t)i);
    r->d.group = r->grp;
    return cask__dag_build(&r->d, out, err);
}

/* Append dependency `dep` of task `t`, the last task given any, dropping
** duplicates among its dependencies (off[t + 1] is its end so far). */
static int add_dep(reader_t *r, size_t t, uint32_t dep)
{
    uint32_t first = r->d.off[t], last = r->d.off[t + 1];
    for (uint32_t e = first; e < last; e++)
        if (r->d.deps[e] == dep)
            return 0;
    if (cask__grow((void **)&r->d.deps, &r->cap_deps, (size_t)last + 1, sizeof *r->d.deps))
        return CASK_ENOMEM;
    r->d.deps[last] = dep;
    r->d.off[t + 1]++;
    return 0;
}

/* ------------------------------------------------------------- WfCommons */

/* A program name fit to be a group: short, one word. */
static bool word(const char *g)
{
    return g && *g && strlen(g) <= 64 && !strpbrk(g, " \t\n\r");
}

/* A task's group: its category, else its program, else its name cut
** before the first "_" part holding a digit ("mProject_ID0000042",
** "create_dir_montage_0_local"). */
static const char *wf_group(json_t *t, json_t *exec, const char *name, size_t *len)
{
    const char *g = json_string_value(json_object_get(t, "category"));
    if (!word(g))
        g = json_string_value(json_object_get(json_object_get(exec ? exec : t, "command"),
                                              "program"));
    if (word(g)) {
        *len = strlen(g);
        return g;
    }
    *len = strlen(name);
    for (const char *u = strchr(name, '_'); u; u = strchr(u + 1, '_')) {
        size_t part = strcspn(u + 1, "_");
        for (size_t k = 0; k < part; k++)
            if (isdigit((unsigned char)u[1 + k])) {
                *len = (size_t)(u - name);
                return name;
            }
    }
    return name;
}

static int wf_read(json_t *root, reader_t *r, cask_error_t *err)
{
    json_t *wf = json_object_get(root, "workflow"), *spec = json_object_get(wf, "specification");
    json_t *list, *exec = NULL;
    const char *lname;
    bool by_id = spec != NULL; /* 1.5+: parents name task ids */
    if (spec) {
        list = json_object_get(spec, "tasks");
        lname = "workflow.specification.tasks";
        exec = json_object_get(json_object_get(wf, "execution"), "tasks");
        if (!json_is_array(exec))
            return cask__err(err, CASK_EPARSE, NULL, NULL,
                             "workflow.execution.tasks must be a list (the runtimes)");
    } else {
        list = json_object_get(wf, "tasks");
        lname = "workflow.tasks";
        if (!list) {
            list = json_object_get(wf, "jobs");
            lname = "workflow.jobs";
        }
    }
    if (!json_is_array(list))
        return cask__err(err, CASK_EPARSE, NULL, NULL,
                         "a WfCommons file needs workflow.specification.tasks, "
                         "workflow.tasks or workflow.jobs as a list");
    size_t n = json_array_size(list);
    if (n >= UINT32_MAX - 2)
        return cask__err(err, CASK_ELIMIT, NULL, NULL, "too many tasks");
    /* 1.5+: the runtimes, by id */
    cask__strtab_t eid = { 0 };
    json_t **eobj = NULL;
    int rc = 0;
    char where[128];
    if (exec) {
        size_t ne = json_array_size(exec);
        if (!(eobj = cask__malloc((ne ? ne : 1) * sizeof *eobj)))
            rc = CASK_ENOMEM;
        for (size_t i = 0; !rc && i < ne; i++) {
            json_t *e = json_array_get(exec, i);
            const char *id = json_string_value(json_object_get(e, "id"));
            if (!id) {
                rc = cask__err(err, CASK_EPARSE, NULL, NULL,
                               "workflow.execution.tasks[%zu].id must be a string", i);
                break;
            }
            uint32_t k;
            if (intern(&eid, id, strlen(id), &k))
                rc = CASK_ENOMEM;
            else
                eobj[k] = e;
        }
    }
    if (!rc && (!(r->d.off = cask__calloc(n + 1, sizeof *r->d.off)) ||
                !(r->grp = cask__malloc((n ? n : 1) * sizeof *r->grp))))
        rc = CASK_ENOMEM;
    /* pass 1: the tasks */
    for (size_t i = 0; !rc && i < n; i++) {
        json_t *t = json_array_get(list, i), *e = NULL;
        snprintf(where, sizeof where, "%s[%zu]", lname, i);
        const char *name = json_string_value(json_object_get(t, "name"));
        const char *key = by_id ? json_string_value(json_object_get(t, "id")) : name;
        if (!json_is_object(t) || !key) {
            rc = cask__err(err, CASK_EPARSE, NULL, NULL, "%s must be an object with a%s string",
                           where, by_id ? "n id" : " name");
            break;
        }
        json_t *rt;
        if (exec) {
            uint32_t k = cask__strtab_find(&eid, key, strlen(key), cask__hash(key, strlen(key), 0));
            if (k == CASK__NOT_FOUND) {
                rc = cask__err(err, CASK_EPARSE, key, NULL,
                               "%s ('%s') has no entry in workflow.execution.tasks", where, key);
                break;
            }
            e = eobj[k];
            rt = json_object_get(e, "runtimeInSeconds");
        } else {
            rt = json_object_get(t, "runtimeInSeconds");
            if (!rt)
                rt = json_object_get(t, "runtime");
        }
        double cost = json_number_value(rt);
        if (!json_is_number(rt) || !(cost >= 0) || isinf(cost)) {
            rc = cask__err(err, CASK_EPARSE, key, NULL, "%s ('%s'): the runtime must be a number >= 0",
                           where, key);
            break;
        }
        size_t glen;
        const char *gs = wf_group(t, e, name ? name : key, &glen);
        if ((rc = add_task(r, key, gs, glen, cost, where, err)))
            break;
    }
    /* pass 2: parents, by key */
    for (size_t i = 0; !rc && i < n; i++) {
        json_t *t = json_array_get(list, i), *par = json_object_get(t, "parents");
        r->d.off[i + 1] = r->d.off[i];
        if (!par)
            continue;
        if (!json_is_array(par)) {
            rc = cask__err(err, CASK_EPARSE, NULL, NULL, "%s[%zu].parents must be a list", lname, i);
            break;
        }
        for (size_t j = 0; !rc && j < json_array_size(par); j++) {
            const char *p = json_string_value(json_array_get(par, j));
            uint32_t d = p ? cask__strtab_find(&r->keys, p, strlen(p), cask__hash(p, strlen(p), 0))
                           : CASK__NOT_FOUND;
            if (!p)
                rc = cask__err(err, CASK_EPARSE, NULL, NULL, "%s[%zu].parents[%zu] must be a string",
                               lname, i, j);
            else if (d == CASK__NOT_FOUND)
                rc = cask__err(err, CASK_EMISSING, p, NULL,
                               "%s[%zu].parents[%zu]: no task '%s'", lname, i, j, p);
            else if (add_dep(r, i, d))
                rc = CASK_ENOMEM;
        }
    }
    cask__strtab_destroy(&eid);
    cask__free(eobj);
    if (rc == CASK_ENOMEM)
        cask__err(err, rc, NULL, NULL, "no memory for the graph");
    return rc;
}

/* ------------------------------------------------------------------ STG */

/* The next integer of the STG text, skipping '#' lines; false at the end
** or at something that is not a number (*bad set). */
typedef struct stg { const char *p, *end; int line; bool bad; } stg_t;

static bool stg_int(stg_t *s, long long *v)
{
    for (;;) {
        while (s->p < s->end && isspace((unsigned char)*s->p))
            s->line += *s->p++ == '\n';
        if (s->p < s->end && *s->p == '#') {
            while (s->p < s->end && *s->p != '\n')
                s->p++;
            continue;
        }
        break;
    }
    if (s->p >= s->end)
        return false;
    char buf[24];
    size_t k = 0;
    while (s->p < s->end && !isspace((unsigned char)*s->p) && k < sizeof buf - 1)
        buf[k++] = *s->p++;
    buf[k] = '\0';
    char *e;
    errno = 0;
    *v = strtoll(buf, &e, 10);
    if (*e || errno || k == sizeof buf - 1) {
        s->bad = true;
        return false;
    }
    return true;
}

static int stg_read(const char *buf, size_t len, const char *src, reader_t *r, cask_error_t *err)
{
    stg_t s = { buf, buf + len, 1, false };
    long long n, v[3];
    if (!stg_int(&s, &n) || n < 0 || n >= UINT32_MAX / 4)
        return cask__err(err, CASK_EPARSE, NULL, NULL,
                         "%s:%d: an STG file starts with its number of tasks", src, s.line);
    if ((size_t)n > len) /* before allocating: a task takes more than a byte */
        return cask__err(err, CASK_EPARSE, NULL, NULL,
                         "%s: %lld tasks cannot fit in %zu bytes", src, n, len);
    if (!(r->d.off = cask__calloc((size_t)n + 1, sizeof *r->d.off)) ||
        !(r->grp = cask__malloc(((size_t)n ? (size_t)n : 1) * sizeof *r->grp)))
        return cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for the graph");
    for (long long id = 0; id <= n + 1; id++) {
        for (int k = 0; k < 3; k++)
            if (!stg_int(&s, &v[k]))
                return cask__err(err, CASK_EPARSE, NULL, NULL,
                                 "%s:%d: task %lld of %lld: expected id, time and predecessor count",
                                 src, s.line, id, n + 2);
        if (v[0] != id || v[1] < 0 || v[2] < 0 || v[2] > id)
            return cask__err(err, CASK_EPARSE, NULL, NULL,
                             "%s:%d: task %lld: bad record (id %lld, time %lld, %lld predecessors)",
                             src, s.line, id, v[0], v[1], v[2]);
        bool real = id >= 1 && id <= n;
        if (real) {
            char key[24];
            snprintf(key, sizeof key, "%lld", id);
            if (add_task(r, key, "stg", 3, (double)v[1], src, err))
                return err ? err->code : CASK_ENOMEM;
            r->d.off[r->d.n] = r->d.off[r->d.n - 1];
        }
        for (long long j = 0; j < v[2]; j++) {
            long long p;
            if (!stg_int(&s, &p) || p < 0 || p >= id)
                return cask__err(err, CASK_EPARSE, NULL, NULL,
                                 "%s:%d: task %lld: predecessor %lld is not a task before it",
                                 src, s.line, id, j + 1);
            if (real && p >= 1 && add_dep(r, r->d.n - 1, (uint32_t)(p - 1)))
                return cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for the graph");
        }
    }
    long long extra;
    if (stg_int(&s, &extra) || s.bad)
        return cask__err(err, CASK_EPARSE, NULL, NULL,
                         "%s:%d: unexpected text after the last task", src, s.line);
    return 0;
}

/* ------------------------------------------------------------- detection */

static int read_all(const char *path, char **buf, size_t *len, cask_error_t *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return cask__err(err, CASK_EIO, NULL, NULL, "cannot open '%s': %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *b = cask__malloc(cap);
    int rc = 0;
    while (b) {
        n += fread(b + n, 1, cap - n, f);
        if (n < cap)
            break;
        if (cask__grow((void **)&b, &cap, cap * 2, 1)) {
            cask__free(b);
            b = NULL;
        }
    }
    if (!b)
        rc = cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory to read '%s'", path);
    else if (ferror(f))
        rc = cask__err(err, CASK_EIO, NULL, NULL, "cannot read '%s': %s", path, strerror(errno));
    fclose(f);
    if (rc) {
        cask__free(b);
        return rc;
    }
    *buf = b;
    *len = n;
    return 0;
}

/* The one file inside the zip archive buf[0..len). */
static int unzip_one(const char *buf, size_t len, const char *src, char **out, size_t *olen,
                     cask_error_t *err)
{
    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t *zs = zip_source_buffer_create(buf, len, 0, &ze);
    zip_t *z = zs ? zip_open_from_source(zs, ZIP_RDONLY, &ze) : NULL;
    int rc = 0;
    if (!z) {
        rc = cask__err(err, CASK_EPARSE, NULL, NULL, "%s: not a readable zip archive: %s", src,
                       zip_error_strerror(&ze));
        zip_source_free(zs);
        zip_error_fini(&ze);
        return rc;
    }
    zip_int64_t files = 0, which = -1;
    for (zip_int64_t i = 0; i < zip_get_num_entries(z, 0); i++) {
        const char *name = zip_get_name(z, (zip_uint64_t)i, 0);
        if (name && *name && name[strlen(name) - 1] != '/')
            files++, which = i;
    }
    zip_stat_t st;
    zip_file_t *zf = NULL;
    if (files != 1)
        rc = cask__err(err, CASK_EPARSE, NULL, NULL,
                       "%s: a zip archive must hold exactly one file, not %lld", src,
                       (long long)files);
    else if (zip_stat_index(z, (zip_uint64_t)which, 0, &st) || !(st.valid & ZIP_STAT_SIZE) ||
             st.size > (zip_uint64_t)1 << 34)
        rc = cask__err(err, CASK_EPARSE, NULL, NULL, "%s: cannot read the archive's entry", src);
    else if (!(*out = cask__malloc((size_t)st.size + 1)))
        rc = cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory to unzip %s", src);
    else if (!(zf = zip_fopen_index(z, (zip_uint64_t)which, 0)) ||
             zip_fread(zf, *out, st.size) != (zip_int64_t)st.size) {
        rc = cask__err(err, CASK_EPARSE, NULL, NULL, "%s: cannot unzip '%s': %s", src,
                       zip_get_name(z, (zip_uint64_t)which, 0), zip_strerror(z));
        cask__free(*out);
        *out = NULL;
    }
    if (zf)
        zip_fclose(zf);
    if (!rc)
        *olen = (size_t)st.size;
    zip_discard(z);
    zip_error_fini(&ze);
    return rc;
}

/* Read buf[0..len) as fmt (CASK__FMT_ANY: detected by its content). */
static int load_buf(const char *buf, size_t len, const char *src, unsigned flags, int fmt,
                    int depth, cask_graph_t **out, cask_error_t *err)
{
    size_t i = 0;
    while (i < len && isspace((unsigned char)buf[i]))
        i++;
    if (fmt == CASK__FMT_ANY && len >= 4 && !memcmp(buf, "PK\3\4", 4)) {
        if (depth)
            return cask__err(err, CASK_EPARSE, NULL, NULL, "%s: a zip inside a zip", src);
        char *inner = NULL;
        size_t ilen = 0;
        int rc = unzip_one(buf, len, src, &inner, &ilen, err);
        if (!rc) {
            rc = load_buf(inner, ilen, src, flags, fmt, depth + 1, out, err);
            cask__free(inner);
        }
        return rc;
    }
    if (fmt == CASK__FMT_ANY && i < len && isdigit((unsigned char)buf[i]))
        fmt = CASK__FMT_STG;
    else if (fmt == CASK__FMT_ANY && (i == len || buf[i] != '{'))
        return cask__err(err, CASK_EPARSE, NULL, NULL,
                         "%s: not a graph file (cask-graph or WfCommons JSON, STG, or a zip of "
                         "one)", src);
    reader_t r;
    memset(&r, 0, sizeof r);
    int rc;
    if (fmt == CASK__FMT_STG) {
        rc = stg_read(buf, len, src, &r, err);
    } else {
        json_error_t je;
        json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
        if (!root)
            return cask__json_error(&je, src, err);
        if (fmt == CASK__FMT_ANY && json_object_get(root, "format")) {
            rc = cask__graph_from_json(root, flags, out, err);
            json_decref(root);
            return rc;
        }
        if (fmt == CASK__FMT_WFCOMMONS || json_is_object(json_object_get(root, "workflow")))
            rc = wf_read(root, &r, err);
        else
            rc = cask__err(err, CASK_EPARSE, NULL, NULL,
                           "%s: JSON that is neither cask-graph (\"format\") nor WfCommons "
                           "(\"workflow\")", src);
        json_decref(root);
    }
    if (!rc)
        rc = reader_build(&r, out, err);
    reader_free(&r);
    return rc;
}

int cask_graph_load(const char *path, unsigned flags, cask_graph_t **out, cask_error_t *err)
{
    if (!out)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "out is NULL");
    *out = NULL;
    if (!path)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "path is NULL");
    char *buf = NULL;
    size_t len = 0;
    int rc = read_all(path, &buf, &len, err);
    if (rc)
        return rc;
    rc = load_buf(buf, len, path, flags, CASK__FMT_ANY, 0, out, err);
    cask__free(buf);
    return rc;
}

int cask__graph_load_buf(const char *buf, size_t len, const char *src, unsigned flags, int fmt,
                         cask_graph_t **out, cask_error_t *err)
{
    *out = NULL;
    return load_buf(buf, len, src, flags, fmt, 0, out, err);
}

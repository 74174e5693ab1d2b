/*
** viz/dot.c: graphs as Graphviz DOT. Reads the graph through its public
** accessors and never runs a task.
*/
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "viz.h"

/* A DOT string literal's contents. */
static void dot_puts(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', f);
        if ((unsigned char)*s >= 0x20)
            fputc(*s, f);
    }
}

/* ColorBrewer's YlOrRd, light (low rank) to dark (high). */
static const char *const heat[] = { "#ffffcc", "#ffeda0", "#fed976", "#feb24c", "#fd8d3c",
                                    "#fc4e2a", "#e31a1c", "#bd0026", "#800026" };

/* Everything the writer works out first. */
typedef struct dot {
    const cask_graph_t *g;
    size_t n;
    cask__plan_t p;        /* the whole graph: p.rank, successors (plan id = task) */
    double *rank;          /* p.rank: the upward rank of each task */
    uint8_t *crit;         /* on the critical path */
    int *worker;           /* CASK_DOT_WORKER: who ran it, -1 unknown */
    uint32_t *gid;         /* collapsed: group index of each task */
    char **gname;          /* collapsed: group names */
    size_t ng;
} dot_t;

static void dot_free(dot_t *d)
{
    cask__plan_destroy(&d->p);
    cask__free(d->crit);
    cask__free(d->worker);
    cask__free(d->gid);
    for (size_t i = 0; i < d->ng; i++)
        cask__free(d->gname[i]);
    cask__free(d->gname);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static int prepare(dot_t *d, const cask_dot_opts_t *o, bool collapse, cask_error_t *err)
{
    const cask_graph_t *g = d->g;
    size_t n = d->n;
    /* every task an output: the plan keeps them all, numbered as in g */
    cask_task_t *all = cask__malloc((n ? n : 1) * sizeof *all);
    d->crit = cask__calloc(n ? n : 1, 1);
    if (!all || !d->crit) {
        cask__free(all);
        return cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory to draw the graph");
    }
    for (size_t v = 0; v < n; v++)
        all[v] = cask__handle(g, (uint32_t)v);
    int prc = n ? cask__plan_build(g, all, n, 0, &d->p, err) : 0;
    cask__free(all);
    if (prc)
        return prc;
    d->rank = d->p.rank;
    if (o->color == CASK_DOT_CRITICAL) {
        cask_analysis_t a;
        int rc = cask_graph_analyze(g, CASK_ANALYZE_NO_WIDTH, &a, err);
        if (rc)
            return rc;
        for (size_t i = 0; i < a.critical_len; i++)
            d->crit[cask__tix(a.critical_path[i])] = 1;
        cask_analysis_free(&a);
    }
    if (o->color == CASK_DOT_WORKER) {
        if (!o->trace)
            return cask__err(err, CASK_EINVAL, NULL, NULL, "colour by worker needs a trace");
        if (!(d->worker = cask__malloc((n ? n : 1) * sizeof *d->worker)))
            return cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory to draw the graph");
        for (size_t v = 0; v < n; v++)
            d->worker[v] = -1;
        for (size_t i = 0; i < cask_trace_size(o->trace); i++) {
            const cask_trace_event_t *e = cask_trace_event(o->trace, i);
            uint32_t t = e ? cask__find(g, e->key) : UINT32_MAX;
            if (t != UINT32_MAX)
                d->worker[t] = e->worker;
        }
    }
    if (!collapse)
        return 0;
    /* group index of each task, by name (a small table: groups are few) */
    size_t cap = 0;
    if (!(d->gid = cask__malloc((n ? n : 1) * sizeof *d->gid)))
        return cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory to draw the graph");
    char buf[CASK_KEY_MAX + 1];
    uint32_t last = UINT32_MAX;
    for (size_t v = 0; v < n; v++) {
        cask__group_copy(g, (uint32_t)v, buf, sizeof buf);
        uint32_t k = last != UINT32_MAX && !strcmp(d->gname[last], buf) ? last : UINT32_MAX;
        for (uint32_t j = 0; k == UINT32_MAX && j < d->ng; j++)
            if (!strcmp(d->gname[j], buf))
                k = j;
        if (k == UINT32_MAX) {
            if (cask__grow((void **)&d->gname, &cap, d->ng + 1, sizeof *d->gname) ||
                !(d->gname[d->ng] = cask__malloc(strlen(buf) + 1)))
                return cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory to draw the graph");
            strcpy(d->gname[d->ng], buf);
            k = (uint32_t)d->ng++;
        }
        d->gid[v] = last = k;
    }
    return 0;
}

/* Whether white text reads better on colour c (the dark end of the heat scale). */
static bool dark(const char *c)
{
    for (int k = 6; k < 9; k++)
        if (c == heat[k])
            return true;
    return false;
}

static const char *fill(const dot_t *d, const cask_dot_opts_t *o, size_t v, double top,
                        const char *group)
{
    switch (o->color) {
    case CASK_DOT_GROUP: return cask__group_color(group);
    case CASK_DOT_CRITICAL: return d->crit[v] ? "#fb6a4a" : "#eeeeee";
    case CASK_DOT_WORKER: return d->worker[v] < 0 ? "#ffffff" : cask__palette((size_t)d->worker[v]);
    default: {
        int k = top > 0 ? (int)(d->rank[v] / top * 8.999) : 0;
        return heat[k < 0 ? 0 : k > 8 ? 8 : k];
    }
    }
}

static const char *legend(const cask_dot_opts_t *o)
{
    switch (o->color) {
    case CASK_DOT_GROUP: return "colour: group";
    case CASK_DOT_CRITICAL: return "red, bold: a critical path (the costliest chain)";
    case CASK_DOT_WORKER: return "colour: the worker that ran the task (white: not run)";
    default: return "colour: upward rank, light to dark red (dark runs first)";
    }
}

int cask_dot_write(const cask_graph_t *g, FILE *f, const cask_dot_opts_t *opts,
                   cask_error_t *err)
{
    static const cask_dot_opts_t dflt = { 0 };
    const cask_dot_opts_t *o = opts ? opts : &dflt;
    if (!g || !f)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "graph or file is NULL");
    dot_t d = { .g = g, .n = cask_graph_size(g) };
    size_t thr = o->threshold ? o->threshold : 300;
    bool collapse = o->collapse == CASK_DOT_ALL || (o->collapse == CASK_DOT_AUTO && d.n > thr);
    int rc = prepare(&d, o, collapse, err);
    if (rc) {
        dot_free(&d);
        return rc;
    }
    double top = 0, work = 0;
    for (size_t v = 0; v < d.n; v++) {
        top = d.rank[v] > top ? d.rank[v] : top;
        work += cask__cost(g, (uint32_t)v);
    }
    fprintf(f, "digraph cask {\n  graph [rankdir=\"");
    dot_puts(f, o->rankdir ? o->rankdir : "TB");
    fprintf(f, "\", fontname=\"Helvetica\", fontsize=12, labelloc=t, label=\"%zu tasks, "
               "%zu edges, work %.4g s, longest path %.4g s (cost estimates)%s\\n%s\"];\n",
            d.n, cask_graph_edges(g), work, top, collapse ? "; one node per group" : "",
            legend(o));
    fputs("  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\", fontsize=10];\n"
          "  edge [color=\"#555555\", arrowsize=0.6, fontname=\"Helvetica\", fontsize=9];\n", f);
    char grp[CASK_KEY_MAX + 1];
    if (!collapse) {
        for (size_t v = 0; v < d.n; v++) {
            const char *key = cask__key(g, (uint32_t)v), *k = cask__kernel_name(g, (uint32_t)v);
            cask__group_copy(g, (uint32_t)v, grp, sizeof grp);
            fprintf(f, "  t%zu [label=\"", v);
            dot_puts(f, key);
            if (k) {
                fputs("\\n", f);
                dot_puts(f, k);
            }
            const char *fc = fill(&d, o, v, top, grp);
            fprintf(f, "\", fillcolor=\"%s\",%s tooltip=\"", fc, dark(fc) ? " fontcolor=white," : "");
            dot_puts(f, key);
            fprintf(f, ": cost %.4g s, rank %.4g s\"%s];\n", cask__cost(g, (uint32_t)v),
                    d.rank[v], d.crit[v] ? ", penwidth=2.5" : "");
        }
        for (size_t u = 0; u < d.n; u++)
            for (uint32_t e = d.p.succ_off[u]; e < d.p.succ_off[u + 1]; e++) {
                uint32_t v = d.p.succ[e];
                fprintf(f, "  t%zu -> t%u%s;\n", u, v,
                        d.crit[u] && d.crit[v] ? " [penwidth=3, color=\"#cb181d\"]" : "");
            }
    } else {
        size_t ng = d.ng;
        size_t *cnt = cask__calloc(ng, sizeof *cnt);
        double *gw = cask__calloc(ng, sizeof *gw), *gr = cask__calloc(ng, sizeof *gr);
        uint8_t *gc = cask__calloc(ng, 1);
        uint64_t *pair = NULL; /* (from << 32 | to) per edge between groups, sorted */
        size_t np = 0, cap = 0;
        if (!cnt || !gw || !gr || !gc)
            rc = CASK_ENOMEM;
        for (size_t v = 0; !rc && v < d.n; v++) {
            uint32_t k = d.gid[v];
            cnt[k]++;
            gw[k] += cask__cost(g, (uint32_t)v);
            gr[k] = d.rank[v] > gr[k] ? d.rank[v] : gr[k];
            gc[k] |= d.crit[v];
            for (uint32_t e = d.p.succ_off[v]; !rc && e < d.p.succ_off[v + 1]; e++) {
                uint32_t to = d.gid[d.p.succ[e]];
                if (to == k)
                    continue;
                if (cask__grow((void **)&pair, &cap, np + 1, sizeof *pair))
                    rc = CASK_ENOMEM;
                else
                    pair[np++] = (uint64_t)k << 32 | to;
            }
        }
        if (!rc) {
            for (size_t k = 0; k < ng; k++) {
                fprintf(f, "  g%zu [label=\"", k);
                dot_puts(f, d.gname[k]);
                const char *c = o->color == CASK_DOT_CRITICAL ? (gc[k] ? "#fb6a4a" : "#eeeeee")
                              : o->color == CASK_DOT_RANK
                                  ? heat[top > 0 ? (int)fmin(8, gr[k] / top * 8.999) : 0]
                                  : cask__group_color(d.gname[k]);
                fprintf(f, "\\n%zu task%s, work %.4g s\", fillcolor=\"%s\",%s tooltip=\"", cnt[k],
                        cnt[k] == 1 ? "" : "s", gw[k], c, dark(c) ? " fontcolor=white," : "");
                dot_puts(f, d.gname[k]);
                fprintf(f, ": highest rank %.4g s\"%s];\n", gr[k], gc[k] ? ", penwidth=2.5" : "");
            }

            qsort(pair, np, sizeof *pair, cmp_u64);
            for (size_t i = 0; i < np;) {
                size_t j = i;
                while (j < np && pair[j] == pair[i])
                    j++;
                fprintf(f, "  g%u -> g%u [label=\"%zu\", penwidth=%.2f];\n",
                        (unsigned)(pair[i] >> 32), (unsigned)(pair[i] & 0xffffffffu), j - i,
                        1 + log10((double)(j - i)));
                i = j;
            }
        }
        cask__free(cnt);
        cask__free(gw);
        cask__free(gr);
        cask__free(gc);
        cask__free(pair);
        if (rc)
            cask__err(err, rc, NULL, NULL, "no memory to draw the graph");
    }
    fputs("}\n", f);
    dot_free(&d);
    if (!rc && ferror(f))
        rc = cask__err(err, CASK_EIO, NULL, NULL, "cannot write the DOT graph");
    return rc;
}

int cask_dot_save(const cask_graph_t *g, const char *path, const cask_dot_opts_t *opts,
                  cask_error_t *err)
{
    if (!path)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "path is NULL");
    const char *ext = strrchr(path, '.');
    bool picture = ext && strcmp(ext, ".dot") && strcmp(ext, ".gv");
    char tmp[4096];
    if (picture && snprintf(tmp, sizeof tmp, "%s.tmp.dot", path) >= (int)sizeof tmp)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "path is too long");
    const char *dotpath = picture ? tmp : path;
    FILE *f = fopen(dotpath, "w");
    if (!f)
        return cask__err(err, CASK_EIO, NULL, NULL, "cannot open '%s': %s", dotpath,
                         strerror(errno));
    int rc = cask_dot_write(g, f, opts, err);
    if (fclose(f) && !rc)
        rc = cask__err(err, CASK_EIO, NULL, NULL, "cannot write '%s'", dotpath);
    if (!rc && picture)
        rc = cask__run_dot(tmp, path, ext + 1, err);
    if (picture)
        remove(tmp);
    return rc;
}

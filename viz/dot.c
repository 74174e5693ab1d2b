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

#define NOT_RUN "#ffffff" /* by worker: a task the trace does not have */
#define KEY_COLS 4        /* entries in a row of the key */
#define KEY_NAME 40       /* bytes of a group's name in the key */

/* Everything the writer works out first. */
typedef struct dot {
    const cask_graph_t *g;
    size_t n;
    cask__plan_t p;        /* the whole graph: p.rank, successors (plan id = task) */
    double *rank;          /* p.rank: the upward rank of each task */
    uint8_t *crit;         /* on the critical path */
    int *worker;           /* CASK_DOT_WORKER: who ran it, -1 unknown */
    uint32_t *gid;         /* collapsed or by group: group index of each task */
    char **gname;          /* collapsed or by group: group names */
    size_t ng;
    cask__swatch_t *sw;    /* by group: the groups (by index); by worker: the workers that ran a
                              task of g, by number */
    size_t nsw, left;      /* entries of sw; how many of them have cask__other_color */
    size_t notrun;         /* by worker: tasks no worker of the trace ran */
    uint32_t *wsw;         /* by worker: each worker's entry in sw */
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
    cask__free(d->sw);
    cask__free(d->wsw);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/*
** Colour by worker: who ran each task of d->g in tr (by key; transfer rows
** left out), and a colour for each worker that ran one, weighted by its
** tasks.
*/
static int workers(dot_t *d, const cask_trace_t *tr, cask_error_t *err)
{
    if (!tr)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "colour by worker needs a trace");
    size_t n = d->n;
    int P = cask_trace_workers(tr) - cask__trace_xrows(tr);
    d->worker = cask__malloc((n ? n : 1) * sizeof *d->worker);
    d->wsw = cask__malloc((P > 0 ? (size_t)P : 1) * sizeof *d->wsw);
    d->sw = cask__calloc(P > 0 ? (size_t)P : 1, sizeof *d->sw);
    if (!d->worker || !d->wsw || !d->sw)
        return cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory to draw the graph");
    for (size_t v = 0; v < n; v++)
        d->worker[v] = -1;
    for (size_t i = 0; i < cask_trace_size(tr); i++) {
        const cask_trace_event_t *e = cask_trace_event(tr, i);
        uint32_t t = e && e->worker >= 0 && e->worker < P ? cask__find(d->g, e->key) : UINT32_MAX;
        if (t != UINT32_MAX)
            d->worker[t] = e->worker;
    }
    for (int w = 0; w < P; w++)
        d->sw[w] = (cask__swatch_t){ .id = (size_t)w };
    for (size_t v = 0; v < n; v++)
        if (d->worker[v] < 0)
            d->notrun++;
        else
            d->sw[d->worker[v]].weight++;
    for (int w = 0; w < P; w++) /* the workers that ran a task of g, in order */
        if (d->sw[w].weight > 0) {
            d->wsw[w] = (uint32_t)d->nsw;
            d->sw[d->nsw++] = d->sw[w];
        }
    d->left = cask__color_assign(d->sw, d->nsw);
    return 0;
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
        all[v] = cask__graph_handle(g, (uint32_t)v);
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
        cask_analysis_destroy(&a);
    }
    if (o->color == CASK_DOT_WORKER) {
        int rc = workers(d, o->trace, err);
        if (rc)
            return rc;
    }
    if (!collapse && o->color != CASK_DOT_GROUP)
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
    if (o->color != CASK_DOT_GROUP)
        return 0;
    /* the groups' colours, by work (by tasks when no task has a cost) */
    if (!(d->sw = cask__calloc(d->ng ? d->ng : 1, sizeof *d->sw)))
        return cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory to draw the graph");
    d->nsw = d->ng;
    double work = 0;
    for (size_t v = 0; v < n; v++)
        work += cask__cost(g, (uint32_t)v);
    for (size_t v = 0; v < n; v++)
        d->sw[d->gid[v]].weight += work > 0 ? cask__cost(g, (uint32_t)v) : 1;
    for (size_t k = 0; k < d->ng; k++)
        d->sw[k].name = d->gname[k];
    d->left = cask__color_assign(d->sw, d->nsw);
    return 0;
}

/* Whether white text reads better on colour c (the dark end of the heat
** scale, and transfers' grey); the palette is light. */
static bool dark(const char *c)
{
    for (int k = 6; k < 9; k++)
        if (c == heat[k])
            return true;
    return c == cask__xfer_color;
}

/* Task v's fill colour. */
static const char *fill(const dot_t *d, const cask_dot_opts_t *o, size_t v, double top)
{
    switch (o->color) {
    case CASK_DOT_GROUP: return d->sw[d->gid[v]].color;
    case CASK_DOT_CRITICAL: return d->crit[v] ? "#fb6a4a" : "#eeeeee";
    case CASK_DOT_WORKER: return d->worker[v] < 0 ? NOT_RUN : d->sw[d->wsw[d->worker[v]]].color;
    default: {
        int k = top > 0 ? (int)(d->rank[v] / top * 8.999) : 0;
        return heat[k < 0 ? 0 : k > 8 ? 8 : k];
    }
    }
}

/* What the colours say. */
static const char *legend(const cask_dot_opts_t *o, bool collapse)
{
    switch (o->color) {
    case CASK_DOT_GROUP: return "colour: group";
    case CASK_DOT_CRITICAL: return "red, bold: a critical path (the costliest chain)";
    case CASK_DOT_WORKER:
        return collapse ? "colour: the workers that ran the group's tasks, in proportion"
                        : "colour: the worker that ran the task";
    default: return "colour: upward rank, light to dark red (dark runs first)";
    }
}

/*
** Entry i of the key (KEY_COLS to a row, each row one cell): its swatch,
** a square glyph in its colour (an outlined one in grey for white), then
** its text. Glyphs, not coloured cells: Graphviz widens every cell of a
** table narrower than the label's other rows, which would part swatches
** from their text.
*/
static void key_entry(FILE *f, size_t i, const char *color)
{
    if (i % KEY_COLS == 0)
        fputs(i ? "</td></tr>\n    <tr><td>" : "\n    <tr><td>", f);
    else
        fputs("&#160;&#160;&#160;&#160;", f);
    if (strcmp(color, NOT_RUN))
        fprintf(f, "<font color=\"%s\" point-size=\"16\">&#9632;</font>&#160;", color);
    else
        fputs("<font color=\"#666666\" point-size=\"16\">&#9633;</font>&#160;", f);
}

/*
** The graph's label, an HTML-like table: what the graph is, what the
** colours say and, by group or worker, the key: every group or worker
** with a colour of its own (groups heaviest first, with their tasks and
** work; workers by number, with their tasks), then how many share
** cask__other_color, then the tasks not run. 0, or CASK_ENOMEM before
** writing anything.
*/
static int put_label(FILE *f, const dot_t *d, const cask_dot_opts_t *o, bool collapse, double work,
                     double top)
{
    bool key = o->color == CASK_DOT_GROUP || o->color == CASK_DOT_WORKER;
    const cask__swatch_t **ord = NULL; /* by group: the groups, heaviest first */
    size_t *cnt = NULL;                /* by group: tasks per group */
    if (key && o->color == CASK_DOT_GROUP && d->nsw &&
        (!(ord = cask__malloc(d->nsw * sizeof *ord)) || !(cnt = cask__calloc(d->nsw, sizeof *cnt)))) {
        cask__free(ord);
        return CASK_ENOMEM;
    }
    fprintf(f, "label=<<table border=\"0\" cellspacing=\"0\" cellpadding=\"1\">\n"
               "    <tr><td>%zu tasks, %zu edges, work %.4g s, longest path %.4g s (cost estimates)%s"
               "</td></tr>\n    <tr><td>%s</td></tr>",
            d->n, cask_graph_edges(d->g), work, top, collapse ? "; one node per group" : "",
            legend(o, collapse));
    size_t i = 0, left_tasks = 0;
    if (ord) { /* groups */
        for (size_t k = 0; k < d->nsw; k++)
            ord[k] = &d->sw[k];
        qsort(ord, d->nsw, sizeof *ord, cask__swatch_cmp);
        for (size_t v = 0; v < d->n; v++)
            cnt[d->gid[v]]++;
        for (size_t k = 0; k < d->nsw; k++) {
            size_t t = cnt[ord[k] - d->sw];
            if (ord[k]->color == cask__other_color) {
                left_tasks += t;
                continue;
            }
            key_entry(f, i++, ord[k]->color);
            cask__xml_putn(f, ord[k]->name, KEY_NAME);
            fprintf(f, " (%zu task%s", t, t == 1 ? "" : "s");
            if (work > 0) /* the weight is the work */
                fprintf(f, ", %.4g s", ord[k]->weight);
            fputc(')', f);
        }
        cask__free(cnt);
        cask__free(ord);
    } else if (key) { /* workers */
        for (size_t k = 0; k < d->nsw; k++) {
            size_t t = (size_t)d->sw[k].weight;
            if (d->sw[k].color == cask__other_color) {
                left_tasks += t;
                continue;
            }
            key_entry(f, i++, d->sw[k].color);
            fprintf(f, "worker %zu (%zu task%s)", d->sw[k].id, t, t == 1 ? "" : "s");
        }
    }
    if (d->left) {
        key_entry(f, i++, cask__other_color);
        fprintf(f, "%zu more %s, all in this grey (%zu task%s)", d->left,
                o->color == CASK_DOT_GROUP ? d->left == 1 ? "group" : "groups"
                                           : d->left == 1 ? "worker" : "workers",
                left_tasks, left_tasks == 1 ? "" : "s");
    }
    if (d->notrun) {
        key_entry(f, i++, NOT_RUN);
        fprintf(f, "not run (%zu task%s)", d->notrun, d->notrun == 1 ? "" : "s");
    }
    fputs(i ? "</td></tr>\n    </table>>" : "\n    </table>>", f);
    return 0;
}

/*
** A group node's fill by worker: its colour when one stripe has all its
** tasks, else Graphviz's stripes, each as wide as its share of the tasks
** (the last takes what rounding leaves, so the shares never sum over 1).
*/
static void put_stripes(FILE *f, const size_t *sc, const char *const *stripe, size_t ns,
                        size_t total)
{
    size_t used = 0, last = 0;
    for (size_t s = 0; s < ns; s++)
        if (sc[s]) {
            used++;
            last = s;
        }
    if (used <= 1) {
        fprintf(f, "fillcolor=\"%s\",", stripe[last]);
        return;
    }
    fputs("style=\"striped\", fillcolor=\"", f);
    for (size_t s = 0; s < last; s++)
        if (sc[s])
            fprintf(f, "%s;%.3f:", stripe[s], floor(1000.0 * (double)sc[s] / (double)total) / 1000);
    fprintf(f, "%s\",", stripe[last]);
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
    fputs("\", fontname=\"Helvetica\", fontsize=12, labelloc=t,\n    ", f);
    if (put_label(f, &d, o, collapse, work, top)) {
        dot_free(&d);
        return cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory to draw the graph");
    }
    fputs("];\n", f);
    fputs("  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\", fontsize=10];\n"
          "  edge [color=\"#555555\", arrowsize=0.6, fontname=\"Helvetica\", fontsize=9];\n", f);
    if (!collapse) {
        for (size_t v = 0; v < d.n; v++) {
            const char *key = cask__graph_key(g, (uint32_t)v), *k = cask__kernel_name(g, (uint32_t)v);
            fprintf(f, "  t%zu [label=\"", v);
            dot_puts(f, key);
            if (k) {
                fputs("\\n", f);
                dot_puts(f, k);
            }
            const char *fc = fill(&d, o, v, top);
            fprintf(f, "\", fillcolor=\"%s\",%s tooltip=\"", fc, dark(fc) ? " fontcolor=white," : "");
            dot_puts(f, key);
            fprintf(f, ": cost %.4g s, rank %.4g s", cask__cost(g, (uint32_t)v), d.rank[v]);
            if (d.worker && d.worker[v] >= 0)
                fprintf(f, ", ran on worker %d", d.worker[v]);
            else if (d.worker)
                fputs(", not run", f);
            fprintf(f, "\"%s];\n", d.crit[v] ? ", penwidth=2.5" : "");
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
        /* by worker, a group is striped: the workers with a colour of their
        ** own, then the others, then not run, in proportion to its tasks */
        const char *stripe[CASK__NCOLORS + 2]; /* the stripes' colours */
        size_t ns = 0, *sc = NULL;             /* stripes; tasks per group and stripe */
        uint32_t *ws = NULL;                   /* each worker's stripe, by its entry in d.sw */
        if (o->color == CASK_DOT_WORKER) {
            ws = cask__malloc((d.nsw ? d.nsw : 1) * sizeof *ws);
            for (size_t j = 0; ws && j < d.nsw; j++)
                if (d.sw[j].color != cask__other_color) {
                    ws[j] = (uint32_t)ns;
                    stripe[ns++] = d.sw[j].color;
                }
            for (size_t j = 0; ws && j < d.nsw; j++)
                if (d.sw[j].color == cask__other_color)
                    ws[j] = (uint32_t)ns;
            stripe[ns++] = cask__other_color;
            stripe[ns++] = NOT_RUN;
            sc = cask__calloc((ng ? ng : 1) * ns, sizeof *sc);
        }
        if (!cnt || !gw || !gr || !gc || (o->color == CASK_DOT_WORKER && (!ws || !sc)))
            rc = CASK_ENOMEM;
        for (size_t v = 0; !rc && v < d.n; v++) {
            uint32_t k = d.gid[v];
            cnt[k]++;
            if (sc)
                sc[k * ns + (d.worker[v] < 0 ? ns - 1 : ws[d.wsw[d.worker[v]]])]++;
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
                              : o->color == CASK_DOT_GROUP ? d.sw[k].color
                                                           : NULL;
                fprintf(f, "\\n%zu task%s, work %.4g s\", ", cnt[k], cnt[k] == 1 ? "" : "s", gw[k]);
                if (c)
                    fprintf(f, "fillcolor=\"%s\",%s", c, dark(c) ? " fontcolor=white," : "");
                else
                    put_stripes(f, sc + k * ns, stripe, ns, cnt[k]);
                fputs(" tooltip=\"", f);
                dot_puts(f, d.gname[k]);
                fprintf(f, ": highest rank %.4g s\"%s];\n", gr[k], gc[k] ? ", penwidth=2.5" : "");
            }

            if (np) /* pair is NULL when no edge joins two groups */
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
        cask__free(ws);
        cask__free(sc);
        if (rc)
            cask__err(err, rc, NULL, NULL, "no memory to draw the graph");
    }
    fputs("}\n", f);
    dot_free(&d);
    if (!rc && ferror(f))
        rc = cask__err(err, CASK_EIO, NULL, NULL, "cannot write the DOT graph");
    return rc;
}

static int write_dot(FILE *f, const void *g, const void *opts, cask_error_t *err)
{
    return cask_dot_write(g, f, opts, err);
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
    int rc = cask__save(picture ? tmp : path, write_dot, g, opts, err);
    if (!rc && picture)
        rc = cask__run_dot(tmp, path, ext + 1, err);
    if (picture)
        remove(tmp);
    return rc;
}

/*
** tests/unit/test_viz.c: the colours of the pictures. Within one picture
** every group (worker) has a colour of its own, far from the others and
** from the idle grey, up to 20; past 20 the rest share a grey the legend
** counts; a DOT coloured by worker has a key; a graph's DOT and its run's
** timeline colour each group alike. The tests read the SVG and DOT text.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "testutil.h"

/* ------------------------------------------------------------- helpers */

/* The text of a picture: f is written by the callback, read back here. */
typedef struct text { char *s; size_t n; FILE *f; } text_t;

static FILE *text_open(text_t *t)
{
    t->s = NULL;
    t->n = 0;
    t->f = open_memstream(&t->s, &t->n);
    assert_non_null(t->f);
    return t->f;
}

static char *text_close(text_t *t)
{
    assert_int_equal(fclose(t->f), 0);
    return t->s;
}

/* A trace of `workers` workers from JSON (its tasks' text, without the brackets). */
static cask_trace_t *trace_from(int workers, int xrows, const char *tasks)
{
    char path[64] = "/tmp/cask_viz_XXXXXX.json";
    int fd = mkstemps(path, 5);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "{\"workers\": %d, \"transfer_rows\": %d, \"tasks\": [%s]}", workers, xrows, tasks);
    fclose(f);
    cask_trace_t *tr;
    cask_error_t err;
    assert_ok(cask_trace_load_json(path, &tr, &err), &err);
    unlink(path);
    return tr;
}

/* Append one task's JSON to buf (a growing string): group g on worker w from start to end ms. */
static void add_task(char **buf, size_t *len, const char *key, const char *g, int w, double start,
                     double end)
{
    char one[512];
    int k = snprintf(one, sizeof one,
                     "%s{\"key\": \"%s\", \"group\": \"%s\", \"worker\": %d, \"start_ns\": %.0f, "
                     "\"end_ns\": %.0f}",
                     *len ? ", " : "", key, g, w, start * 1e6, end * 1e6);
    *buf = realloc(*buf, *len + (size_t)k + 1);
    memcpy(*buf + *len, one, (size_t)k + 1);
    *len += (size_t)k;
}

/* The SVG timeline of tr. */
static char *timeline(const cask_trace_t *tr)
{
    text_t t;
    cask_error_t err;
    assert_ok(cask_timeline_write(tr, text_open(&t), NULL, &err), &err);
    return text_close(&t);
}

/* The SVG timeline of a trace of `workers` workers and these tasks (freed). */
static char *timeline_of(int workers, int xrows, char *tasks)
{
    cask_trace_t *tr = trace_from(workers, xrows, tasks);
    free(tasks);
    char *svg = timeline(tr);
    cask_trace_free(tr);
    return svg;
}

/* The DOT of g. */
static char *dot(const cask_graph_t *g, const cask_dot_opts_t *o)
{
    text_t t;
    cask_error_t err;
    assert_ok(cask_dot_write(g, text_open(&t), o, &err), &err);
    return text_close(&t);
}

/* The legend of an SVG timeline: each entry's fill and text (up to 63 bytes). */
typedef struct entry { char fill[16]; char text[64]; } entry_t;

static size_t svg_legend(const char *svg, entry_t *e, size_t max)
{
    size_t n = 0;
    const char *p = strstr(svg, "font-weight=\"bold\">legend</text>");
    assert_non_null(p);
    while (n < max && (p = strstr(p, "width=\"14\" height=\"12\" fill=\""))) {
        p += strlen("width=\"14\" height=\"12\" fill=\"");
        size_t k = strcspn(p, "\"");
        snprintf(e[n].fill, sizeof e[n].fill, "%.*s", (int)k, p);
        p = strstr(p, "<text");
        p = strchr(p, '>') + 1;
        k = strcspn(p, "<");
        snprintf(e[n].text, sizeof e[n].text, "%.*s", (int)k, p);
        n++;
    }
    return n;
}

/* The fill of the legend entry whose text starts with `name (`, or NULL. */
static const char *legend_fill(const entry_t *e, size_t n, const char *name)
{
    size_t k = strlen(name);
    for (size_t i = 0; i < n; i++)
        if (!strncmp(e[i].text, name, k) && !strncmp(e[i].text + k, " (", 2))
            return e[i].fill;
    return NULL;
}

/* Into out, the quoted value of attribute attr (`fill="`) nearest the first
** fmt (with name for its %s) in text: the last before it, or the first
** after it. False when text has no such fmt. */
static bool value_near(const char *text, const char *fmt, const char *name, const char *attr,
                       bool before, char *out, size_t size)
{
    char pat[128];
    snprintf(pat, sizeof pat, fmt, name);
    const char *p = strstr(text, pat), *v = NULL;
    if (!p)
        return false;
    if (before)
        for (const char *q = text; (q = strstr(q, attr)) && q < p; q++)
            v = q;
    else
        v = strstr(p, attr);
    if (!v)
        fail_msg("no %s near %s", attr, pat);
    v += strlen(attr);
    snprintf(out, size, "%.*s", (int)strcspn(v, "\""), v);
    return true;
}

/* The fill of the timeline span whose tooltip is key `key`. */
static void span_fill(const char *svg, const char *key, char *out, size_t size)
{
    if (!value_near(svg, "<title>%s (", key, "fill=\"", true, out, size))
        fail_msg("no span of %s", key);
}

/* In a DOT key, the colour of the entry whose text starts with `name (`. */
static bool key_fill(const char *d, const char *name, char *out, size_t size)
{
    return value_near(d, "&#9632;</font>&#160;%s (", name, "<font color=\"", true, out, size);
}

/* The fillcolor of DOT node `node` ("t3", "g0"). */
static void node_fill(const char *d, const char *node, char *out, size_t size)
{
    if (!value_near(d, "\n  %s [", node, "fillcolor=\"", false, out, size))
        fail_msg("no node %s", node);
}

/* The name of DOT group node `node` (its label's first line). */
static void node_name(const char *d, const char *node, char *out, size_t size)
{
    char pat[32];
    snprintf(pat, sizeof pat, "\n  %s [label=\"", node);
    const char *p = strstr(d, pat);
    assert_non_null(p);
    p += strlen(pat);
    snprintf(out, size, "%.*s", (int)(strstr(p, "\\n") - p), p);
}

/* Graphviz reads the DOT and draws it, with nothing to warn about. */
static void assert_dot_draws(const char *d)
{
    char path[64] = "/tmp/cask_viz_XXXXXX.dot", errs[80], cmd[256];
    int fd = mkstemps(path, 4);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs(d, f);
    fclose(f);
    snprintf(errs, sizeof errs, "%s.err", path);
    snprintf(cmd, sizeof cmd, "dot -Tpng %s -o /dev/null 2>%s", path, errs);
    int rc = system(cmd);
    unlink(path);
    f = fopen(errs, "r");
    assert_non_null(f);
    char msg[256] = "";
    size_t k = fread(msg, 1, sizeof msg - 1, f);
    fclose(f);
    unlink(errs);
    assert_int_equal(rc, 0);
    if (k)
        fail_msg("dot says: %s", msg);
}

/* The SVG is well-formed XML. */
static void assert_xml(const char *svg)
{
    char path[64] = "/tmp/cask_viz_XXXXXX.svg", cmd[128];
    int fd = mkstemps(path, 4);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, svg, strlen(svg)), (ssize_t)strlen(svg));
    close(fd);
    snprintf(cmd, sizeof cmd, "xmllint --noout %s", path);
    int rc = system(cmd);
    unlink(path);
    assert_int_equal(rc, 0);
}

/* ---------------------------------------------------- colour arithmetic */

typedef struct lab { double L, a, b; } lab_t;

static double lin(int c) /* an sRGB channel, linear */
{
    double v = c / 255.0;
    return v <= 0.04045 ? v / 12.92 : pow((v + 0.055) / 1.055, 2.4);
}

static void rgb(const char *hex, double *r, double *g, double *b)
{
    unsigned x = 0;
    if (hex[0] != '#' || strlen(hex) != 7 || sscanf(hex + 1, "%6x", &x) != 1)
        fail_msg("'%s' is not #rrggbb", hex);
    *r = lin((int)(x >> 16));
    *g = lin((int)(x >> 8 & 255));
    *b = lin((int)(x & 255));
}

static double lab_f(double t)
{
    return t > 216.0 / 24389 ? cbrt(t) : (24389.0 / 27 * t + 16) / 116;
}

/* CIELAB (D65) of "#rrggbb". */
static lab_t lab(const char *hex)
{
    double r, g, b;
    rgb(hex, &r, &g, &b);
    double X = 0.4124564 * r + 0.3575761 * g + 0.1804375 * b;
    double Y = 0.2126729 * r + 0.7151522 * g + 0.0721750 * b;
    double Z = 0.0193339 * r + 0.1191920 * g + 0.9503041 * b;
    double fx = lab_f(X / 0.95047), fy = lab_f(Y), fz = lab_f(Z / 1.08883);
    return (lab_t){ 116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz) };
}

/* CIE76 colour difference. */
static double de76(const char *p, const char *q)
{
    lab_t x = lab(p), y = lab(q);
    return sqrt((x.L - y.L) * (x.L - y.L) + (x.a - y.a) * (x.a - y.a) + (x.b - y.b) * (x.b - y.b));
}

/* WCAG contrast ratio of black text on hex. */
static double contrast_black(const char *hex)
{
    double r, g, b;
    rgb(hex, &r, &g, &b);
    return (0.2126 * r + 0.7152 * g + 0.0722 * b + 0.05) / 0.05;
}

/* Thresholds, in CIE76 delta E (about 2.3 is just noticeable); viz/color.c
** gives by how much the palette clears them. */
#define APART 20.0      /* between two colours of one picture */
#define FROM_IDLE 30.0  /* between any busy colour and the idle grey (and white) */
#define READABLE 4.5    /* WCAG AA contrast for black text */

/* The timeline of groups g0..g{n-1} on `workers` workers, group i busy
** (n - i) ms in one task ("ti"), the tasks one after another per worker. */
static char *groups_timeline(int n, int workers)
{
    char *buf = NULL, key[16], grp[16];
    size_t len = 0;
    double at[64] = { 0 };
    for (int i = 0; i < n; i++) {
        int w = i % workers;
        snprintf(key, sizeof key, "t%d", i);
        snprintf(grp, sizeof grp, "g%d", i);
        add_task(&buf, &len, key, grp, w, at[w], at[w] + (n - i));
        at[w] += n - i;
    }
    return timeline_of(workers, 0, buf);
}

/* --------------------------------------------------------------- tests */

/* 21 groups: the 20 busiest take the 20 palette colours, all far apart,
** far from the idle grey and from white, and readable under black text;
** the last is in a grey that is no palette colour and not the idle grey. */
static void test_palette(void **state)
{
    (void)state;
    char *svg = groups_timeline(21, 4);
    assert_xml(svg);
    entry_t e[32];
    size_t n = svg_legend(svg, e, 32);
    assert_int_equal(n, 20 + 1 + 2); /* 20 groups, "1 more group", idle, releasable */
    const char *idle = e[21].fill, *other = e[20].fill;
    assert_non_null(strstr(e[21].text, "idle"));
    assert_non_null(strstr(e[20].text, "1 more group, all in this grey"));
    for (int i = 0; i < 20; i++) {
        char name[8];
        snprintf(name, sizeof name, "g%d", i);
        if (!legend_fill(e, n, name)) /* the busiest 20 are the ones shown */
            fail_msg("%s is not in the legend", name);
        if (de76(e[i].fill, idle) < FROM_IDLE || de76(e[i].fill, "#ffffff") < FROM_IDLE)
            fail_msg("%s (%s) is %.1f from the idle grey %s, %.1f from white", e[i].text,
                     e[i].fill, de76(e[i].fill, idle), idle, de76(e[i].fill, "#ffffff"));
        if (contrast_black(e[i].fill) < READABLE)
            fail_msg("black on %s: contrast %.2f", e[i].fill, contrast_black(e[i].fill));
        if (de76(e[i].fill, other) < APART)
            fail_msg("%s is %.1f from the grey of the rest", e[i].fill, de76(e[i].fill, other));
        for (int j = 0; j < i; j++)
            if (de76(e[i].fill, e[j].fill) < APART)
                fail_msg("%s and %s: %s and %s are %.1f apart", e[i].text, e[j].text, e[i].fill,
                         e[j].fill, de76(e[i].fill, e[j].fill));
    }
    assert_null(legend_fill(e, n, "g20"));
    if (de76(other, idle) < FROM_IDLE)
        fail_msg("the grey of the rest %s is %.1f from the idle grey", other, de76(other, idle));
    char fill[16];
    span_fill(svg, "t20", fill, sizeof fill); /* the one left out is drawn in that grey */
    assert_string_equal(fill, other);
    span_fill(svg, "t3", fill, sizeof fill);
    assert_string_equal(fill, legend_fill(e, n, "g3"));
    free(svg);
}

/* "sort" and "reduce": their name hashes agree modulo 80, so they fell on
** one colour of the old 16-colour palette and prefer one slot of the 20. */
static void test_colliding_names(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    add_task(&buf, &len, "sort-1", "sort", 0, 0, 5);
    add_task(&buf, &len, "reduce-1", "reduce", 1, 0, 4);
    char *svg = timeline_of(2, 0, buf);
    entry_t e[8];
    size_t n = svg_legend(svg, e, 8);
    assert_int_equal(n, 4);
    const char *a = legend_fill(e, n, "sort"), *b = legend_fill(e, n, "reduce");
    assert_non_null(a);
    assert_non_null(b);
    assert_string_not_equal(a, b);
    char fa[16], fb[16];
    span_fill(svg, "sort-1", fa, sizeof fa);
    span_fill(svg, "reduce-1", fb, sizeof fb);
    assert_string_equal(fa, a);
    assert_string_equal(fb, b);
    free(svg);

    /* the same in a DOT coloured by group */
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_spec_t s1 = { .key = "sort-1", .group = "sort", .cost = 1 };
    cask_task_spec_t s2 = { .key = "reduce-1", .group = "reduce", .cost = 1 };
    cask_task_t t;
    assert_ok(cask_graph_add(g, &s1, &t, &err), &err);
    assert_ok(cask_graph_add(g, &s2, &t, &err), &err);
    cask_dot_opts_t o = { .color = CASK_DOT_GROUP, .collapse = CASK_DOT_NONE };
    char *d = dot(g, &o);
    node_fill(d, "t0", fa, sizeof fa);
    node_fill(d, "t1", fb, sizeof fb);
    assert_string_not_equal(fa, fb);
    assert_string_equal(fa, a); /* and as in the timeline */
    assert_string_equal(fb, b);
    free(d);
    cask_graph_decref(g);
}

/* 20 groups: 20 colours, all in the legend, no "more groups"; 25: the 20
** busiest in the legend, one entry for the other 5 in the grey, and their
** spans in that grey. */
static void test_legend_counts(void **state)
{
    (void)state;
    char *svg = groups_timeline(20, 3);
    entry_t e[32];
    size_t n = svg_legend(svg, e, 32);
    assert_int_equal(n, 22);
    assert_null(strstr(svg, "more group"));
    for (size_t i = 0; i < 20; i++)
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(e[i].fill, e[j].fill);
    free(svg);

    svg = groups_timeline(25, 5);
    assert_xml(svg);
    n = svg_legend(svg, e, 32);
    assert_int_equal(n, 23);
    assert_non_null(strstr(e[20].text, "5 more groups, all in this grey (15 ms)")); /* 5+4+3+2+1 */
    char fill[16], key[8], name[8];
    for (int i = 0; i < 25; i++) {
        snprintf(key, sizeof key, "t%d", i);
        snprintf(name, sizeof name, "g%d", i);
        span_fill(svg, key, fill, sizeof fill);
        if (i < 20)
            assert_string_equal(fill, legend_fill(e, n, name));
        else {
            assert_null(legend_fill(e, n, name));
            assert_string_equal(fill, e[20].fill);
        }
    }
    /* the legend's last row is inside the picture */
    int h = 0, y = 0;
    assert_int_equal(sscanf(strstr(svg, "height=\""), "height=\"%d\"", &h), 1);
    const char *last = strstr(svg, "releasable: idle until the end");
    while (last > svg && strncmp(last, "<text x=", 8))
        last--;
    assert_int_equal(sscanf(last, "<text x=\"%*d\" y=\"%d\"", &y), 1);
    assert_true(y < h - 12);
    free(svg);
}

/* Transfers keep their dark grey and take no colour from the groups:
** 20 groups and the transfers still give 20 colours. */
static void test_transfers(void **state)
{
    (void)state;
    char *buf = NULL, key[16], grp[16];
    size_t len = 0;
    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof key, "t%d", i);
        snprintf(grp, sizeof grp, "g%d", i);
        add_task(&buf, &len, key, grp, i % 2, i, i + 1);
    }
    add_task(&buf, &len, "t3", "transfer", 2, 4, 4.5); /* t3's value moving to worker 0 */
    char *svg = timeline_of(3, 1, buf);
    entry_t e[32];
    size_t n = svg_legend(svg, e, 32);
    assert_int_equal(n, 20 + 1 + 2);
    assert_null(strstr(svg, "more group"));
    const char *x = legend_fill(e, n, "transfer");
    assert_non_null(x);
    assert_string_equal(x, "#525252");
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(e[i].fill, e[j].fill);
    free(svg);
}

/* A long name is cut between characters (the SVG stays valid UTF-8). */
static void test_long_names(void **state)
{
    (void)state;
    char name[256] = "", *buf = NULL;
    size_t len = 0;
    for (int i = 0; i < 40; i++)
        strcat(name, "\xce\xb1"); /* alpha */
    strcat(name, " & <more>");
    add_task(&buf, &len, "a-1", name, 0, 0, 1);
    cask_trace_t *tr = trace_from(1, 0, buf);
    free(buf);
    cask_timeline_opts_t o = { .width = 1000 };
    text_t t;
    cask_error_t err;
    for (int w = 400; w <= 1600; w += 200) { /* names cut to the room of each width */
        o.width = w;
        assert_ok(cask_timeline_write(tr, text_open(&t), &o, &err), &err);
        char *svg = text_close(&t);
        assert_xml(svg);
        assert_non_null(strstr(svg, "...")); /* cut in the legend */
        assert_non_null(strstr(svg, "&amp; &lt;more&gt;: busy")); /* whole in its tooltip */
        free(svg);
    }
    cask_trace_free(tr);
}

/* A graph of `groups` groups of `per` tasks, task j of group i after task
** j of group i - 1; cost 1 + i. */
static cask_graph_t *groups_graph(const char *const *names, int groups, int per)
{
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    assert_non_null(g);
    for (int i = 0; i < groups; i++)
        for (int j = 0; j < per; j++) {
            char key[64];
            snprintf(key, sizeof key, "%s-%d", names[i], j);
            cask_task_t after = i ? cask_graph_task(g, (size_t)((i - 1) * per + j)) : 0;
            cask_task_spec_t s = { .key = key, .group = names[i], .cost = 1 + i,
                                   .after = i ? &after : NULL, .n_after = i ? 1 : 0 };
            cask_task_t t;
            assert_ok(cask_graph_add(g, &s, &t, &err), &err);
        }
    return g;
}

static const char *const words[] = { "load",  "parse", "filter", "join",  "sort",
                                     "reduce", "store", "fetch",  "split", "merge",
                                     "scale", "shift", "train",  "score", "plot",
                                     "clean", "index", "group",  "count", "apply" };

/* A schedule of g's outs (all of g when n is 0) on `workers` workers. */
static cask_sim_result_t simulate(const cask_graph_t *g, int workers, const cask_task_t *outs,
                                  size_t n)
{
    cask_error_t err;
    cask_sim_opts_t so = { .workers = workers };
    cask_sim_result_t r;
    assert_ok(cask_simulate(g, outs, n, &so, &r, &err), &err);
    return r;
}

/* A graph's DOT by group (collapsed and not) and the timeline of its run
** give every group the same colour, all 20 different. */
static void test_dot_matches_timeline(void **state)
{
    (void)state;
    cask_graph_t *g = groups_graph(words, 20, 3);
    cask_sim_result_t r = simulate(g, 4, NULL, 0);
    char *svg = timeline(r.trace);
    entry_t e[32];
    size_t n = svg_legend(svg, e, 32);
    assert_int_equal(n, 22);
    cask_dot_opts_t oc = { .color = CASK_DOT_GROUP, .collapse = CASK_DOT_ALL };
    cask_dot_opts_t on = { .color = CASK_DOT_GROUP, .collapse = CASK_DOT_NONE };
    char *dc = dot(g, &oc), *dn = dot(g, &on);
    assert_dot_draws(dc);
    assert_dot_draws(dn);
    char fill[16], name[64], node[16], kf[16];
    for (int k = 0; k < 20; k++) {
        snprintf(node, sizeof node, "g%d", k);
        node_name(dc, node, name, sizeof name);
        node_fill(dc, node, fill, sizeof fill);
        const char *tl = legend_fill(e, n, name);
        if (!tl || strcmp(tl, fill))
            fail_msg("%s: %s in the DOT, %s in the timeline", name, fill, tl ? tl : "none");
        assert_true(key_fill(dc, name, kf, sizeof kf)); /* the keys say so too */
        assert_string_equal(kf, fill);
        assert_true(key_fill(dn, name, kf, sizeof kf));
        assert_string_equal(kf, fill);
        for (int j = 0; j < 3; j++) { /* and every task of the group has it */
            snprintf(node, sizeof node, "t%d", k * 3 + j);
            node_fill(dn, node, kf, sizeof kf);
            assert_string_equal(kf, fill);
        }
        for (int j = 0; j < k; j++)
            assert_string_not_equal(e[j].fill, e[k].fill);
    }
    free(dc);
    free(dn);
    free(svg);
    cask_sim_result_destroy(&r);
    cask_graph_decref(g);
}

/* Past 20 groups, the DOT's key names the 20 heaviest and counts the rest. */
static void test_dot_many_groups(void **state)
{
    (void)state;
    char names[23][8];
    const char *np[23];
    for (int i = 0; i < 23; i++) {
        snprintf(names[i], sizeof names[i], "h%02d", i);
        np[i] = names[i];
    }
    cask_graph_t *g = groups_graph(np, 23, 2); /* group i: cost 2 (1 + i) */
    cask_dot_opts_t o = { .color = CASK_DOT_GROUP, .collapse = CASK_DOT_ALL };
    char *d = dot(g, &o);
    assert_dot_draws(d);
    assert_non_null(strstr(d, "3 more groups, all in this grey (6 tasks)"));
    char kf[16];
    for (int i = 0; i < 23; i++) /* the lightest are h00, h01, h02 */
        assert_int_equal(key_fill(d, names[i], kf, sizeof kf), i >= 3);
    char fill[16];
    node_fill(d, "g0", fill, sizeof fill);
    assert_string_equal(fill, "#8c8c8c");
    free(d);
    cask_graph_decref(g);
}

/* A DOT coloured by worker has a key: each worker that ran a task, with
** the colour of its tasks; the tasks the trace lacks are white and counted. */
static void test_dot_worker_key(void **state)
{
    (void)state;
    cask_graph_t *g = groups_graph(words, 5, 4);
    cask_task_t outs[4];
    for (int j = 0; j < 4; j++)
        outs[j] = cask_graph_task(g, (size_t)(3 * 4 + j)); /* the first 4 groups only */
    cask_sim_result_t r = simulate(g, 3, outs, 4);
    cask_dot_opts_t o = { .color = CASK_DOT_WORKER, .collapse = CASK_DOT_NONE, .trace = r.trace };
    char *d = dot(g, &o);
    assert_dot_draws(d);
    char kf[3][16], fill[16], name[16];
    for (int w = 0; w < 3; w++) {
        snprintf(name, sizeof name, "worker %d", w);
        if (!key_fill(d, name, kf[w], sizeof kf[w]))
            fail_msg("no key for %s:\n%s", name, d);
        for (int v = 0; v < w; v++)
            assert_string_not_equal(kf[v], kf[w]);
    }
    assert_non_null(strstr(d, "&#9633;</font>&#160;not run (4 tasks)"));
    for (int v = 0; v < 20; v++) { /* each task has its worker's colour */
        char node[8], pat[64];
        snprintf(node, sizeof node, "t%d", v);
        node_fill(d, node, fill, sizeof fill);
        snprintf(pat, sizeof pat, "\n  %s [", node); /* its tooltip says who ran it */
        const char *line = strstr(d, pat), *end = strchr(line + 1, '\n');
        const char *ran = strstr(line, ", ran on worker "), *no = strstr(line, ", not run\"");
        if (v >= 16) {
            assert_string_equal(fill, "#ffffff");
            assert_true(no && no < end);
            continue;
        }
        int w = -1;
        assert_true(ran && ran < end);
        assert_int_equal(sscanf(ran, ", ran on worker %d", &w), 1);
        assert_true(w >= 0 && w < 3);
        assert_string_equal(fill, kf[w]);
    }
    free(d);
    /* collapsed: groups striped by worker, with the same key */
    o.collapse = CASK_DOT_ALL;
    d = dot(g, &o);
    assert_dot_draws(d);
    assert_non_null(strstr(d, "style=\"striped\""));
    for (int w = 0; w < 3; w++) {
        snprintf(name, sizeof name, "worker %d", w);
        assert_true(key_fill(d, name, fill, sizeof fill));
        assert_string_equal(fill, kf[w]);
    }
    node_fill(d, "g4", fill, sizeof fill); /* not run at all */
    assert_string_equal(fill, "#ffffff");
    free(d);
    cask_sim_result_destroy(&r);

    cask_graph_decref(g);

    /* 30 tasks at once on 24 workers: 20 colours in the key, and the rest counted */
    g = groups_graph(words, 1, 30);
    r = simulate(g, 24, NULL, 0);
    o.trace = r.trace;
    o.collapse = CASK_DOT_NONE;
    d = dot(g, &o);
    assert_dot_draws(d);
    assert_non_null(strstr(d, "4 more workers, all in this grey"));
    size_t keyed = 0;
    for (int w = 0; w < 24; w++) {
        snprintf(name, sizeof name, "worker %d", w);
        keyed += key_fill(d, name, fill, sizeof fill);
    }
    assert_int_equal(keyed, 20);
    free(d);
    cask_sim_result_destroy(&r);
    cask_graph_decref(g);
}

long cask__alloc_fail_at(long n); /* graph/util.c: the test-only failure hook */

/* Pictures of an empty graph and trace, and every allocation of a picture
** failing in turn: CASK_ENOMEM (or success), never a crash or a leak. */
static void test_edges_and_failures(void **state)
{
    (void)state;
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    cask_trace_t *tr = trace_from(2, 0, "");
    for (int c = 0; c < 4; c++)
        for (int k = 1; k <= 2; k++) {
            cask_dot_opts_t o = { .color = (cask_dot_color_t)c, .collapse = (cask_dot_collapse_t)k,
                                  .trace = tr };
            char *d = dot(g, &o);
            assert_dot_draws(d);
            free(d);
        }
    char *svg = timeline(tr);
    assert_xml(svg);
    free(svg);
    cask_trace_free(tr);
    cask_graph_decref(g);

    g = groups_graph(words, 6, 4);
    cask_sim_result_t r = simulate(g, 3, NULL, 0);
    for (int pic = 0; pic < 5; pic++) {
        cask_dot_opts_t o = { .color = pic < 2 ? CASK_DOT_GROUP : CASK_DOT_WORKER,
                              .collapse = pic % 2 ? CASK_DOT_ALL : CASK_DOT_NONE,
                              .trace = r.trace };
        for (long at = 1;; at++) {
            text_t t;
            FILE *f = text_open(&t);
            cask__alloc_fail_at(at);
            int rc = pic < 4 ? cask_dot_write(g, f, &o, &err) : cask_timeline_write(r.trace, f, NULL, &err);
            long made = cask__alloc_fail_at(0);
            free(text_close(&t));
            if (made < at) { /* no failure was injected: all points are covered */
                assert_ok(rc, &err);
                break;
            }
            if (rc && rc != CASK_ENOMEM)
                fail_msg("picture %d, allocation %ld failed: %s", pic, at, err.message);
        }
    }
    cask_sim_result_destroy(&r);
    cask_graph_decref(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_palette),
        cmocka_unit_test(test_colliding_names),
        cmocka_unit_test(test_legend_counts),
        cmocka_unit_test(test_transfers),
        cmocka_unit_test(test_long_names),
        cmocka_unit_test(test_dot_matches_timeline),
        cmocka_unit_test(test_dot_many_groups),
        cmocka_unit_test(test_dot_worker_key),
        cmocka_unit_test(test_edges_and_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

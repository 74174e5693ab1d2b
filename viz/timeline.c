/*
** viz/timeline.c: traces as pictures: an SVG timeline (a row per worker,
** idle gaps, releasable tails, a legend, the concurrency profile) and
** Chrome trace-event JSON.
*/
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "viz.h"

#define ROW 22      /* a worker's row, pixels */
#define LEFT 110    /* room for the row labels */
#define PROF 90     /* the concurrency profile's height */

/* A round step of about span/8 (1, 2 or 5 times a power of ten). */
static double tick_step(double span)
{
    double raw = span / 8, p = pow(10, floor(log10(raw > 0 ? raw : 1)));
    return raw / p < 1.5 ? p : raw / p < 3.5 ? 2 * p : raw / p < 7.5 ? 5 * p : 10 * p;
}

/* Seconds as text with a unit. */
static void fmt_s(char *b, size_t n, double s)
{
    if (s >= 1 || s == 0)
        snprintf(b, n, "%.4g s", s);
    else if (s >= 1e-3)
        snprintf(b, n, "%.4g ms", s * 1e3);
    else
        snprintf(b, n, "%.4g us", s * 1e6);
}

/* A worker's spans waiting to be drawn as one rect: slivers of one group
** under half a pixel apart join up. */
typedef struct pend {
    double x0, x1;
    const char *group, *key;  /* key: of the first (the tooltip when k == 1) */
    const char *color;        /* the group's */
    size_t k;                 /* spans joined */
    double busy;              /* their seconds */
} pend_t;

static void put_span(FILE *f, const pend_t *p, int y)
{
    char b[32];
    fprintf(f, "<rect x=\"%.2f\" y=\"%d\" width=\"%.2f\" height=\"%d\" fill=\"%s\" "
               "stroke=\"#666666\" stroke-width=\"0.3\"><title>",
            p->x0, y + 2, fmax(p->x1 - p->x0, 0.5), ROW - 4, p->color);
    if (p->k == 1)
        cask__xml_puts(f, p->key);
    else {
        fprintf(f, "%zu tasks of ", p->k);
        cask__xml_puts(f, p->group);
    }
    fmt_s(b, sizeof b, p->busy);
    fprintf(f, " (%s)</title></rect>\n", b);
}

/* Legend entry i (four to a row): its swatch, and its text opened. */
static void legend_entry(FILE *f, size_t i, int W, int legend_y, const char *fill)
{
    int x = 10 + (int)(i % 4) * ((W - 20) / 4), y = legend_y + 12 + (int)(i / 4) * 18;
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"14\" height=\"12\" fill=\"%s\" stroke=\"#666666\" "
               "stroke-width=\"0.5\"/><text x=\"%d\" y=\"%d\">",
            x, y, fill, x + 20, y + 10);
}

int cask_timeline_write(const cask_trace_t *tr, FILE *f, const cask_timeline_opts_t *opts,
                      cask_error_t *err)
{
    if (!tr || !f)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "trace or file is NULL");
    int W = opts && opts->width >= 400 ? opts->width : 1200, P = cask_trace_workers(tr);
    const char *title = opts && opts->title ? opts->title : "cask timeline";
    size_t n = cask_trace_size(tr);
    double span = (double)cask_trace_span_ns(tr) * 1e-9, plot = W - LEFT - 20;
    double scale = span > 0 ? plot / span : 0; /* pixels per second */
    double *idle = cask__malloc((size_t)P * sizeof *idle), *tail = cask__malloc((size_t)P * sizeof *tail);
    double *col = cask__calloc((size_t)plot + 1, sizeof *col); /* busy seconds per pixel column */
    cask__swatch_t *gs = NULL, **ord = NULL; /* the groups, as first met; by busy time */
    size_t ng = 0, gcap = 0;
    uint32_t *eg = cask__malloc((n ? n : 1) * sizeof *eg); /* each event's group in gs */
    pend_t *pd = cask__calloc((size_t)P, sizeof *pd);
    if (!idle || !tail || !col || !pd || !eg) {
        cask__free(idle);
        cask__free(tail);
        cask__free(col);
        cask__free(pd);
        cask__free(eg);
        return cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for the timeline");
    }
    cask_trace_idle(tr, idle, tail, NULL);
    /* The last rows may hold transfers (values a worker received, as the
    ** mpi scheduler records them): drawn apart, with no idle time and no
    ** tail, and not in the profile; the workers are the other rows. */
    int Pc = P - cask__trace_xrows(tr);
    size_t nx = 0;
    for (size_t i = 0; i < n; i++) {
        const cask_trace_event_t *e = cask_trace_event(tr, i);
        nx += e && e->worker >= Pc;
    }
    double busy = 0, releasable = 0;
    for (int w = 0; w < Pc; w++) {
        busy += span - idle[w];
        releasable += tail[w];
    }
    int rc = 0;
    size_t k = 0;
    for (size_t i = 0; i < n && !rc; i++) { /* group totals */
        const cask_trace_event_t *e = cask_trace_event(tr, i); /* NULL: no memory for groups */
        if (!e) {
            rc = CASK_ENOMEM;
            break;
        }
        if (k >= ng || strcmp(gs[k].name, e->group)) /* most often the last event's group */
            for (k = 0; k < ng && strcmp(gs[k].name, e->group);)
                k++;
        if (k == ng) {
            if (cask__grow((void **)&gs, &gcap, ng + 1, sizeof *gs)) {
                rc = CASK_ENOMEM;
                break;
            }
            gs[ng++] = (cask__swatch_t){ .name = e->group };
        }
        gs[k].weight += (double)(e->end_ns - e->start_ns) * 1e-9;
        eg[i] = (uint32_t)k;
    }
    /* Colours: the busiest groups get one each; the legend shows those
    ** (and transfers), then one entry for the rest, then idle and releasable. */
    size_t left = 0, shown = 0;
    double left_busy = 0;
    if (!rc && ng && !(ord = cask__malloc(ng * sizeof *ord)))
        rc = CASK_ENOMEM;
    if (!rc && ng) {
        left = cask__color_assign(gs, ng);
        for (size_t g = 0; g < ng; g++) {
            ord[g] = &gs[g];
            if (gs[g].color == cask__other_color)
                left_busy += gs[g].weight;
        }
        qsort(ord, ng, sizeof *ord, cask__swatch_cmp); /* busiest first */
        shown = ng - left;
    }
    size_t entries = shown + (left > 0) + 2;
    int top = 52, rows_h = P * ROW, prof_y = top + rows_h + 40;
    int legend_y = prof_y + PROF + 40, H = legend_y + 30 + (int)((entries + 3) / 4) * 18 + 10;
    char b1[32], b2[32], b3[32];
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
               "viewBox=\"0 0 %d %d\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\">\n",
            W, H, W, H);
    fputs("<defs><pattern id=\"hatch\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" "
          "patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"#f7f7f7\"/>"
          "<line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#e34a33\" stroke-width=\"2\"/>"
          "</pattern></defs>\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n", f);
    fmt_s(b1, sizeof b1, span);
    fmt_s(b2, sizeof b2, releasable);
    fputs("<text x=\"10\" y=\"20\" font-size=\"15\" font-weight=\"bold\">", f);
    cask__xml_puts(f, title);
    fprintf(f, "</text>\n<text x=\"10\" y=\"38\">%zu tasks on %d worker%s: makespan %s, "
               "utilisation %.1f%%, releasable worker-time %s</text>\n",
            n - nx, Pc, Pc == 1 ? "" : "s", b1, span > 0 && Pc ? 100 * busy / (span * Pc) : 0,
            b2);
    /* rows: idle background, then busy spans, then the releasable tail */
    for (int w = 0; w < P; w++) {
        int y = top + w * ROW;
        if (w >= Pc) { /* a transfer row: the values worker w - Pc received */
            fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">into %d</text>\n"
                       "<rect x=\"%d\" y=\"%d\" width=\"%.2f\" height=\"%d\" fill=\"#f6f6f6\">"
                       "<title>values moved to worker %d (transfers)</title></rect>\n",
                    LEFT - 8, y + ROW / 2 + 4, w - Pc, LEFT, y + 2, plot, ROW - 4, w - Pc);
            continue;
        }
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">worker %d</text>\n", LEFT - 8,
                y + ROW / 2 + 4, w);
        fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%.2f\" height=\"%d\" fill=\"%s\">"
                   "<title>worker %d: idle %.4g s of %.4g s</title></rect>\n",
                LEFT, y + 2, plot, ROW - 4, cask__idle_color, w, idle[w], span);
    }
    for (size_t i = 0; i < n && !rc; i++) { /* the groups are made: events are there */
        const cask_trace_event_t *e = cask_trace_event(tr, i);
        int w = e->worker;
        double x0 = LEFT + (double)e->start_ns * 1e-9 * scale;
        double x1 = LEFT + (double)e->end_ns * 1e-9 * scale;
        /* the profile: this span's busy time, spread over its columns */
        double s0 = (double)e->start_ns * 1e-9, s1 = (double)e->end_ns * 1e-9;
        int moving = w >= Pc;
        for (long c = (long)(x0 - LEFT); !moving && c <= (long)(x1 - LEFT) && c <= (long)plot; c++) {
            double o = fmin(s1, (c + 1) / scale) - fmax(s0, c / scale);
            if (c >= 0 && o > 0)
                col[c] += o;
        }
        if (w < 0 || w >= P)
            continue;
        pend_t *p = &pd[w];
        double d = (double)(e->end_ns - e->start_ns) * 1e-9;
        if (p->k && !strcmp(p->group, e->group) && x0 - p->x1 < 0.5 && x1 - p->x0 < 4) {
            p->x1 = x1; /* a sliver next to the last of its group: one rect */
            p->k++;
            p->busy += d;
            continue;
        }
        if (p->k)
            put_span(f, p, top + w * ROW);
        *p = (pend_t){ x0, x1, e->group, e->key, gs[eg[i]].color, 1, d };
    }
    for (int w = 0; w < P; w++)
        if (pd[w].k)
            put_span(f, &pd[w], top + w * ROW);
    for (int w = 0; w < P; w++) {
        if (tail[w] <= 0 || w >= Pc)
            continue;
        int y = top + w * ROW;
        double x0 = LEFT + (span - tail[w]) * scale;
        fmt_s(b1, sizeof b1, tail[w]);
        fprintf(f, "<rect x=\"%.2f\" y=\"%d\" width=\"%.2f\" height=\"%d\" fill=\"url(#hatch)\">"
                   "<title>worker %d could be released here: idle for the last %s</title></rect>\n",
                x0, y + 2, tail[w] * scale, ROW - 4, w, b1);
    }
    /* time axis */
    double step = tick_step(span > 0 ? span : 1);
    int ay = top + rows_h + 4;
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%.2f\" y2=\"%d\" stroke=\"black\"/>\n", LEFT, ay,
            LEFT + plot, ay);
    for (double t = 0; t <= span * 1.0001 && scale > 0; t += step) {
        fmt_s(b1, sizeof b1, t);
        fprintf(f, "<line x1=\"%.2f\" y1=\"%d\" x2=\"%.2f\" y2=\"%d\" stroke=\"black\"/>"
                   "<text x=\"%.2f\" y=\"%d\" text-anchor=\"middle\" font-size=\"10\">%s</text>\n",
                LEFT + t * scale, ay, LEFT + t * scale, ay + 4, LEFT + t * scale, ay + 15, b1);
    }
    /* the concurrency profile: tasks running, averaged per pixel */
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">running</text>\n"
               "<text x=\"%d\" y=\"%d\" text-anchor=\"end\" font-size=\"10\">%d</text>\n"
               "<text x=\"%d\" y=\"%d\" text-anchor=\"end\" font-size=\"10\">0</text>\n",
            LEFT - 8, prof_y + PROF / 2, LEFT - 4, prof_y + 8, Pc, LEFT - 4, prof_y + PROF);
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%.2f\" height=\"%d\" fill=\"none\" stroke=\"#bbbbbb\"/>\n",
            LEFT, prof_y, plot, PROF);
    fprintf(f, "<polyline fill=\"#9ecae1\" stroke=\"#3182bd\" points=\"%d,%d", LEFT, prof_y + PROF);
    for (long c = 0; c < (long)plot && scale > 0; c++) {
        double run = col[c] * scale; /* busy seconds / column seconds */
        double y = prof_y + PROF - (Pc ? run / Pc : 0) * PROF;
        fprintf(f, " %.1f,%.1f %.1f,%.1f", LEFT + (double)c, y, LEFT + (double)c + 1, y);
    }
    fprintf(f, " %.2f,%d\"><title>tasks running over time (average per pixel)</title></polyline>\n",
            LEFT + plot, prof_y + PROF);
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"10\" fill=\"#555555\">tasks running at once "
               "(the concurrency profile); full height = %d</text>\n", LEFT, prof_y + PROF + 14, Pc);
    /* the legend */
    fprintf(f, "<text x=\"10\" y=\"%d\" font-weight=\"bold\">legend</text>\n", legend_y);
    /* a name's room: about 6 pixels a character, less its busy time's 12 */
    size_t slot = 0, room = W >= 520 ? (size_t)((W - 20) / 4 - 30) / 6 - 12 : 8;
    for (size_t g = 0; g < ng && !rc; g++) { /* every group with a colour of its own */
        const cask__swatch_t *gw = ord[g];
        if (gw->color == cask__other_color)
            continue;
        fmt_s(b1, sizeof b1, gw->weight);
        fputs("<g><title>", f);
        cask__xml_puts(f, gw->name);
        fprintf(f, ": busy %s</title>", b1);
        legend_entry(f, slot++, W, legend_y, gw->color);
        cask__xml_putn(f, gw->name, room);
        fprintf(f, " (%s)</text></g>\n", b1);
    }
    if (left) {
        fmt_s(b1, sizeof b1, left_busy);
        legend_entry(f, slot++, W, legend_y, cask__other_color);
        fprintf(f, "%zu more group%s, all in this grey (%s)</text>\n", left, left == 1 ? "" : "s",
                b1);
    }
    legend_entry(f, slot++, W, legend_y, cask__idle_color);
    fputs("idle</text>\n", f);
    legend_entry(f, slot, W, legend_y, "url(#hatch)");
    fputs("releasable: idle until the end</text>\n", f);
    fmt_s(b1, sizeof b1, busy);
    fmt_s(b3, sizeof b3, span * Pc);
    fprintf(f, "<text x=\"10\" y=\"%d\" fill=\"#555555\">busy %s of %s worker-time</text>\n",
            H - 6, b1, b3);
    fputs("</svg>\n", f);
    cask__free(idle);
    cask__free(tail);
    cask__free(col);
    cask__free(pd);
    cask__free(eg);
    cask__free(gs);
    cask__free(ord);
    if (rc)
        return cask__err(err, rc, NULL, NULL, "no memory for the timeline");
    if (ferror(f))
        return cask__err(err, CASK_EIO, NULL, NULL, "cannot write the timeline");
    return 0;
}

static int write_timeline(FILE *f, const void *tr, const void *opts, cask_error_t *err)
{
    return cask_timeline_write(tr, f, opts, err);
}

int cask_timeline_save(const cask_trace_t *tr, const char *path,
                       const cask_timeline_opts_t *opts, cask_error_t *err)
{
    return cask__save(path, write_timeline, tr, opts, err);
}

int cask_trace_write_chrome(const cask_trace_t *tr, FILE *f, cask_error_t *err)
{
    if (!tr || !f)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "trace or file is NULL");
    json_t *root = json_object(), *ev = json_array();
    int rc = !root || !ev || json_object_set(root, "traceEvents", ev) ||
             json_object_set_new(root, "displayTimeUnit", json_string("ms"));
    for (int w = 0; !rc && w < cask_trace_workers(tr); w++) {
        char name[32];
        snprintf(name, sizeof name, "worker %d", w);
        rc = json_array_append_new(ev, json_pack("{s:s, s:s, s:i, s:i, s:{s:s}}", "name",
                                                 "thread_name", "ph", "M", "pid", 1, "tid", w,
                                                 "args", "name", name));
    }
    for (size_t i = 0; !rc && i < cask_trace_size(tr); i++) {
        const cask_trace_event_t *e = cask_trace_event(tr, i);
        rc = !e || json_array_append_new(
                       ev, json_pack("{s:s, s:s, s:s, s:f, s:f, s:i, s:i, s:{s:I}}", "name", e->key,
                                     "cat", e->group, "ph", "X", "ts", (double)e->start_ns / 1e3,
                                     "dur", (double)(e->end_ns - e->start_ns) / 1e3, "pid", 1,
                                     "tid", e->worker, "args", "bytes", (json_int_t)e->bytes));
    }
    if (rc)
        rc = cask__err(err, CASK_ENOMEM, NULL, NULL, "no memory for the Chrome trace");
    else if (json_dumpf(root, f, JSON_COMPACT) || fputc('\n', f) == EOF)
        rc = cask__err(err, CASK_EIO, NULL, NULL, "cannot write the Chrome trace: %s",
                       strerror(errno));
    json_decref(ev);
    json_decref(root);
    return rc;
}

static int write_chrome(FILE *f, const void *tr, const void *opts, cask_error_t *err)
{
    (void)opts;
    return cask_trace_write_chrome(tr, f, err);
}

int cask_trace_save_chrome(const cask_trace_t *tr, const char *path, cask_error_t *err)
{
    return cask__save(path, write_chrome, tr, NULL, err);
}

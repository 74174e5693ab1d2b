/*
** viz/viz.h: what the DOT writer and the timelines share.
*/
#ifndef CASK__VIZ_H
#define CASK__VIZ_H

#include <stdio.h>

#include "../graph/graph.h"
#include "../sched/trace.h"
#include "cask/viz.h"

#define CASK__NCOLORS 20 /* colours in the palette (viz/color.c) */

/* Colours besides the palette, "#rrggbb"; the pictures tell them by address. */
extern const char cask__idle_color[];  /* a worker's idle time in the timeline */
extern const char cask__other_color[]; /* the groups or workers a picture has no colour left for */
extern const char cask__xfer_color[];  /* group "transfer": values moving between workers */

/* One thing a picture colours: a group, or a worker. */
typedef struct cask__swatch {
    const char *name;   /* the group's name (borrowed); NULL for worker `id` */
    size_t      id;     /* the worker's number, when name is NULL */
    double      weight; /* how much of the picture it is (busy time, work, tasks) */
    const char *color;  /* out: its colour (static storage) */
} cask__swatch_t;

/*
** Colour the n things of one picture, setting each one's color. While there
** are no more than CASK__NCOLORS of them (not counting group "transfer",
** which is always cask__xfer_color), each gets its own palette colour;
** otherwise the CASK__NCOLORS heaviest do (ties: by name, by worker number)
** and the rest share cask__other_color. The colour depends only on the set
** of things (and, past CASK__NCOLORS, on their weights), never on their
** order, so up to CASK__NCOLORS groups a graph's DOT and the timeline of a
** run of all of it colour each group alike. Returns how many got
** cask__other_color.
** Cost: O(n * CASK__NCOLORS).
*/
size_t cask__color_assign(cask__swatch_t *s, size_t n);

/* qsort's order of pointers to swatches: the heaviest first, then by name
** (by worker number), as cask__color_assign ranks them. */
int cask__swatch_cmp(const void *a, const void *b);

/* Write s to f escaped for XML text and attributes. */
void cask__xml_puts(FILE *f, const char *s);

/* As cask__xml_puts, but when s is over max bytes (max >= 3), only its
** first max - 3 bytes or fewer, cut between UTF-8 characters, then "...". */
void cask__xml_putn(FILE *f, const char *s, size_t max);

/* Run Graphviz: dot -T<format> -o out in. 0, or CASK_EIO naming why. */
int cask__run_dot(const char *in, const char *out, const char *format, cask_error_t *err);

#endif

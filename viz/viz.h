/*
** viz/viz.h: what the DOT writer and the timelines share.
*/
#ifndef CASK__VIZ_H
#define CASK__VIZ_H

#include <stdio.h>

#include "../graph/graph.h"
#include "cask/viz.h"

/* A group's colour: chosen by a hash of its name, so a group has the same
** colour in the graph and in the timeline. */
const char *cask__group_color(const char *group);

/* The i-th of a sequence of distinct colours (workers). */
const char *cask__palette(size_t i);

/* Write s to f escaped for XML text and attributes. */
void cask__xml_puts(FILE *f, const char *s);

/* Run Graphviz: dot -T<format> -o out in. 0, or CASK_EIO naming why. */
int cask__run_dot(const char *in, const char *out, const char *format, cask_error_t *err);

#endif

/*
** collections/bag.h: what the files of the bags share.
**
**   bag.c          the bag object and building: one task per partition,
**                  reduction trees, the shuffle, results
**   bag_kernels.c  the kernels those tasks call (cask.bag.*)
**   bag_read.c     reading: files, text lines, JSON lines, JSON values
*/
#ifndef CASK__BAG_H
#define CASK__BAG_H

#include "../graph/graph.h"
#include "cask/bag.h"

/* Modes of cask.bag.text (its fifth argument). */
enum { BAG_TEXT = 0, BAG_JSON = 1, BAG_JSON_SKIP = 2 };

/* The JSON value held in text[0..len) (any JSON value) as a cask value, as
** cask/bag.h says, in *out. 0, CASK_EPARSE (msg says why) or CASK_ENOMEM. */
int cask__bag_json_parse(const char *text, size_t len, cask_value_t *out, char *msg,
                         size_t msgcap);

/* Register the kernels of bag_kernels.c and bag_read.c. */
void cask__bag_register(void);
void cask__bag_register_read(void);

#endif

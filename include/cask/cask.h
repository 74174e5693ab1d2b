/*
** cask/cask.h: the umbrella header. Include this one.
**
** cask is a lazy task-graph engine: build a graph of kernel calls, then
** compute the outputs you want on a scheduler of your choice.
*/
#ifndef CASK_CASK_H
#define CASK_CASK_H

#define CASK_VERSION_MAJOR 0
#define CASK_VERSION_MINOR 1
#define CASK_VERSION_PATCH 0
#define CASK_VERSION "0.1.0"
/* major * 1000000 + minor * 1000 + patch, as SQLite's SQLITE_VERSION_NUMBER */
#define CASK_VERSION_NUMBER 1000

#include "error.h"
#include "value.h"
#include "graph.h"
#include "sched.h"
#include "delayed.h"
#include "future.h"
#include "array.h"
#include "viz.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The library's CASK_VERSION_NUMBER: compare with the header's to check a match. */
CASK_API int cask_version_number(void);

/* The library's version string, e.g. "0.1.0". */
CASK_API const char *cask_version(void);

#ifdef __cplusplus
}
#endif
#endif /* CASK_CASK_H */

/*
** sched/trace.h: what viz/ reads of a trace beyond the public API.
*/
#ifndef CASK__TRACE_H
#define CASK__TRACE_H

#include "cask/cask.h"

/* How many of tr's last rows hold transfers between workers ("mpi"), not
** a worker's tasks (0: none). */
int cask__trace_xrows(const cask_trace_t *tr);

#endif /* CASK__TRACE_H */

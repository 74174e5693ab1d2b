/*
** sched/shm.h: the shared arena the processes scheduler's workers make
** their values in (sched/shm.c).
*/
#ifndef CASK__SHM_H
#define CASK__SHM_H

#include <stdbool.h>

#include "../graph/graph.h"

typedef struct cask__shm cask__shm_t;

/* Map a new arena of `slots` slots (before forking). 0, CASK_ENOMEM or
** CASK_EWORKER (no memfd or mapping). */
int  cask__shm_open(cask__shm_t **m, int slots, cask_error_t *err);
/* Unmap it (after the workers have gone). NULL is allowed. */
void cask__shm_close(cask__shm_t *m);
/* Hand out the next slot (slot 0 first, the parent's); -1 when none is left. */
int  cask__shm_new_slot(cask__shm_t *m);
/* In a worker process: make every new value in slot `slot`. */
void cask__shm_enter(cask__shm_t *m, int slot);
/* Parent only: `bytes` of slot 0, 64-byte aligned, never freed (the arena
** goes as a whole); NULL when the slot is full. */
void *cask__shm_parent_alloc(cask__shm_t *m, size_t bytes);
/* True when every process of the compute can read v: an inline value, or a
** block made in m. */
bool cask__shm_holds(const cask__shm_t *m, const cask_value_t *v);

#endif

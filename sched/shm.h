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
/* The size of an arena's file: sparse, only the pages touched cost memory. */
#define CASK__SHM_SIZE ((size_t)1 << 42)

/* A memfd of CASK__SHM_SIZE bytes for an arena: the descriptor, or minus
** CASK_EWORKER. */
int  cask__shm_memfd(cask_error_t *err);
/* Map `size` bytes of fd at exactly `at` as an arena of `slots` slots (the
** caller keeps fd): 0, CASK_ENOMEM, or CASK_EWORKER (that range is taken). */
int  cask__shm_map_fd(cask__shm_t **m, int fd, size_t size, void *at, int slots,
                      cask_error_t *err);
/* Unmap it (after the workers have gone). NULL is allowed. */
void cask__shm_close(cask__shm_t *m);
/* Hand out the next slot (slot 0 first, the parent's); -1 when none is left. */
int  cask__shm_new_slot(cask__shm_t *m);
/* Set up slot i for its owner (cask__shm_new_slot does it for the slot it
** hands out). */
void cask__shm_init_slot(cask__shm_t *m, int i);
/* Make every new value this thread makes in slot `slot`; when the slot is
** full, on the heap (heap_when_full) or nowhere (allocation fails). */
void cask__shm_enter(cask__shm_t *m, int slot, bool heap_when_full);
/* Make every new value this thread makes in slot `slot`, of which the
** thread's process is the owner and whose lock is set up already (slot 0
** by any thread of the parent); nowhere when it is full. */
void cask__shm_use(cask__shm_t *m, int slot);
/* This thread makes new values on the heap again. */
void cask__shm_leave(void);
/* Parent only: `bytes` of slot 0, 64-byte aligned, never freed (the arena
** goes as a whole); NULL when the slot is full. */
void *cask__shm_parent_alloc(cask__shm_t *m, size_t bytes);
/* Parent only, any of its threads: `bytes` of slot 0, 64-byte aligned,
** given back by cask__shm_free (from any process); NULL when the slot is
** full. For an arena that outlives a compute. */
void *cask__shm_alloc(cask__shm_t *m, size_t bytes);
void  cask__shm_free(void *p);
/* True when every process of the compute can read v: an inline value, or a
** block made in m. */
bool cask__shm_holds(const cask__shm_t *m, const cask_value_t *v);

#endif

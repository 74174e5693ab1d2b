/*
** graph/strtab.h: an append-only table of interned strings with a hash
** index (private to graph/). Ids are 0, 1, 2, ... in order of addition;
** a string's address never changes while the table lives.
*/
#ifndef CASK__STRTAB_H
#define CASK__STRTAB_H

#include <stddef.h>
#include <stdint.h>

typedef struct cask__strtab {
    char    **blocks;       /* blocks of NUL-terminated strings; never moved */
    size_t    n_blocks, cap_blocks;
    size_t    len, cap;     /* bytes used in the last block, and its size */
    size_t    bytes;        /* bytes of all blocks */
    const char **str;       /* string id, stable until the table is destroyed */
    uint64_t *hash;         /* hash of string id */
    uint32_t  n, cap_n;     /* strings, and room */
    uint64_t *slots;        /* (hash >> 32) << 32 | (id + 1); 0 is empty */
    size_t    n_slots;      /* a power of two, or 0 */
} cask__strtab_t;

#define CASK__NOT_FOUND UINT32_MAX

/* The id of s[0..len) with hash h, or CASK__NOT_FOUND. */
uint32_t cask__strtab_find(const cask__strtab_t *t, const char *s, size_t len,
                           uint64_t h);
/* Make room for one more string of len bytes; 0 or CASK_ENOMEM. */
int cask__strtab_reserve(cask__strtab_t *t, size_t len);
/* Append s (not already present; room reserved) and return its id. */
uint32_t cask__strtab_push(cask__strtab_t *t, const char *s, size_t len,
                           uint64_t h);
static inline const char *cask__strtab_get(const cask__strtab_t *t, uint32_t id)
{
    return t->str[id];
}
void cask__strtab_destroy(cask__strtab_t *t);
size_t cask__strtab_memory(const cask__strtab_t *t);

#endif

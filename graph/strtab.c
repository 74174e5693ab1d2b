/*
** graph/strtab.c: interned strings with an open-addressing index (linear
** probing, load kept at most 3/4). Strings live in blocks that grow with
** the table (half its size, 4 KiB to 64 MiB) and never move. Appends are
** O(1) amortised.
*/
#include <string.h>

#include "strtab.h"
#include "util.h"

uint32_t cask__strtab_find(const cask__strtab_t *t, const char *s, size_t len,
                           uint64_t h)
{
    if (!t->n_slots)
        return CASK__NOT_FOUND;
    uint64_t tag = h >> 32 << 32, mask = t->n_slots - 1;
    for (uint64_t i = h & mask;; i = (i + 1) & mask) {
        uint64_t e = t->slots[i];
        if (!e)
            return CASK__NOT_FOUND;
        uint32_t id = (uint32_t)e - 1;
        if ((e >> 32 << 32) == tag && t->hash[id] == h) {
            const char *o = t->str[id];
            if (memcmp(o, s, len) == 0 && o[len] == '\0')
                return id;
        }
    }
}

/* Insert id into slots (no duplicate check). */
static void slot_put(uint64_t *slots, size_t n_slots, uint64_t h, uint32_t id)
{
    uint64_t mask = n_slots - 1;
    uint64_t i = h & mask;
    while (slots[i])
        i = (i + 1) & mask;
    slots[i] = (h >> 32 << 32) | ((uint64_t)id + 1);
}

int cask__strtab_reserve(cask__strtab_t *t, size_t len)
{
    if (t->n == UINT32_MAX - 1)
        return CASK_ELIMIT;
    size_t need = t->n + 1;
    if (t->len + len + 1 > t->cap || !t->n_blocks) { /* a new block */
        size_t size = t->bytes < 4096 ? 4096 : t->bytes / 2 < (64u << 20) ? t->bytes / 2 : 64u << 20;
        if (size < len + 1)
            size = len + 1;
        char *b;
        if (cask__grow((void **)&t->blocks, &t->cap_blocks, t->n_blocks + 1, sizeof *t->blocks) ||
            !(b = cask__malloc(size)))
            return CASK_ENOMEM;
        t->blocks[t->n_blocks++] = b;
        t->len = 0;
        t->cap = size;
        t->bytes += size;
    }
    if (need > t->cap_n) {
        size_t c1 = t->cap_n, c2 = t->cap_n;
        if (cask__grow((void **)&t->str, &c1, need, sizeof *t->str) ||
            cask__grow((void **)&t->hash, &c2, need, sizeof *t->hash))
            return CASK_ENOMEM;
        t->cap_n = (uint32_t)(c1 < c2 ? c1 : c2);
    }
    if (need * 4 > t->n_slots * 3) { /* rehash at load 3/4 */
        size_t ns = t->n_slots ? t->n_slots * 2 : 64;
        uint64_t *s = cask__calloc(ns, sizeof *s);
        if (!s)
            return CASK_ENOMEM;
        for (uint32_t id = 0; id < t->n; id++)
            slot_put(s, ns, t->hash[id], id);
        cask__free(t->slots);
        t->slots = s;
        t->n_slots = ns;
    }
    return 0;
}

uint32_t cask__strtab_push(cask__strtab_t *t, const char *s, size_t len,
                           uint64_t h)
{
    uint32_t id = t->n++;
    char *dst = t->blocks[t->n_blocks - 1] + t->len;
    memcpy(dst, s, len);
    dst[len] = '\0';
    t->str[id] = dst;
    t->hash[id] = h;
    t->len += len + 1;
    slot_put(t->slots, t->n_slots, h, id);
    return id;
}

void cask__strtab_destroy(cask__strtab_t *t)
{
    for (size_t i = 0; i < t->n_blocks; i++)
        cask__free(t->blocks[i]);
    cask__free(t->blocks);
    cask__free(t->str);
    cask__free(t->hash);
    cask__free(t->slots);
    memset(t, 0, sizeof *t);
}

size_t cask__strtab_memory(const cask__strtab_t *t)
{
    return t->bytes + t->cap_blocks * sizeof *t->blocks +
           (size_t)t->cap_n * (sizeof *t->str + sizeof *t->hash) +
           t->n_slots * sizeof *t->slots;
}

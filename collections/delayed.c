/*
** collections/delayed.c: lazy function calls over the graph, and the map
** helper that cuts a list into chunks, one task per chunk.
*/
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../graph/graph.h"

cask_task_t cask_delayed(cask_graph_t *g, const char *kernel,
                         const cask_value_t *args, size_t n_args, cask_error_t *err)
{
    cask_task_spec_t spec = { .kernel = kernel, .inputs = args, .n_inputs = n_args };
    cask_task_t t;
    if (!kernel) {
        cask__err(err, CASK_EINVAL, NULL, NULL, "kernel name is NULL");
        return CASK_NO_TASK;
    }
    return cask_graph_add(g, &spec, &t, err) ? CASK_NO_TASK : t;
}

int cask_delayed_map(cask_graph_t *g, const char *kernel, const cask_value_t *items,
                     size_t n_items, size_t chunksize, cask_task_t *chunks,
                     size_t max_chunks, size_t *n_chunks, cask_error_t *err)
{
    if (n_chunks)
        *n_chunks = 0;
    if (!g || !kernel || !items || !chunks || n_items == 0)
        return cask__err(err, CASK_EINVAL, NULL, kernel,
                         "map needs a graph, a kernel, output room and at least one item");
    if (!cask_kernel_exists(kernel))
        return cask__err(err, CASK_ENOKERNEL, NULL, kernel, "unknown kernel '%s'", kernel);
    if (!chunksize) { /* as Pool.map: about four chunks per worker */
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        size_t parts = 4 * (size_t)(cores > 0 ? cores : 1);
        chunksize = (n_items + parts - 1) / parts;
    }
    size_t n = (n_items + chunksize - 1) / chunksize;
    if (n > max_chunks)
        return cask__err(err, CASK_ELIMIT, NULL, kernel,
                         "%zu items in chunks of %zu make %zu tasks; room for %zu", n_items,
                         chunksize, n, max_chunks);
    size_t width = chunksize < n_items ? chunksize : n_items;
    cask_value_t *args = cask__malloc((width + 1) * sizeof *args);
    if (!args)
        return cask__err(err, CASK_ENOMEM, NULL, kernel, "no memory for a chunk's arguments");
    int rc = cask_value_string(kernel, (size_t)-1, &args[0], err);
    if (rc)
        goto out;

    /* One token for the whole map: the kernel, the chunk size and every item. */
    uint64_t token = cask__hash(kernel, strlen(kernel), chunksize);
    for (size_t i = 0; i < n_items; i++) {
        if (items[i].type == CASK_REF) {
            char what[40];
            snprintf(what, sizeof what, "item %zu", i);
            if ((rc = cask__task_check(g, items[i].u.task, what, NULL, kernel, err)))
                goto out;
        }
        token = cask__mix(token, cask__value_hash(&items[i], g->keys.hash));
    }
    token |= 1; /* never 0, which would mean "hash it yourself" */
    const cask__kernel_t *k = cask__kernel_get(cask__kernel_lookup(kernel));
    for (size_t c = 0; c < n; c++) {
        size_t lo = c * chunksize, m = n_items - lo < chunksize ? n_items - lo : chunksize;
        memcpy(args + 1, items + lo, m * sizeof *args);
        cask_task_spec_t spec = { .kernel = "cask.map", .inputs = args, .n_inputs = m + 1,
                                  .name = k->name + k->short_at, .token = token, .index = c };
        if ((rc = cask_graph_add(g, &spec, &chunks[c], err)))
            break;
    }
    if (!rc && n_chunks)
        *n_chunks = n;
out:
    cask_value_decref(&args[0]);
    cask__free(args);
    return rc;
}

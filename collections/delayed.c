/*
** collections/delayed.c: lazy function calls over the graph, and Pool.map:
** one task per chunk of items, then one task joining their results into a
** list.
*/
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../graph/graph.h"

/* The name after a kernel's last '.' (its registered short name). */
static const char *short_name(const char *kernel)
{
    const cask__kernel_t *k = cask__kernel_named(kernel);
    return k ? k->name + k->short_at : NULL;
}

cask_task_t cask_delayed_named(cask_graph_t *g, const char *name, const char *kernel,
                               const cask_value_t *args, size_t n_args, cask_error_t *err)
{
    if (!kernel) {
        cask__err(err, CASK_EINVAL, NULL, NULL, "kernel name is NULL");
        return CASK_NO_TASK;
    }
    cask_task_spec_t spec = { .kernel = kernel, .inputs = args, .n_inputs = n_args,
                              .name = name, .group = name ? name : cask__group_is_name };
    cask_task_t t;
    return cask_graph_add(g, &spec, &t, err) ? CASK_NO_TASK : t;
}

cask_task_t cask_delayed(cask_graph_t *g, const char *kernel, const cask_value_t *args,
                         size_t n_args, cask_error_t *err)
{
    return cask_delayed_named(g, NULL, kernel, args, n_args, err);
}

/* Register fn under name unless it is already there (with fn). */
static int ensure_kernel(const char *name, cask_kernel_fn fn, cask_error_t *err)
{
    if (!name || !fn)
        return cask__err(err, CASK_EINVAL, NULL, NULL, "a kernel needs a name and a function");
    uint32_t id = cask__kernel_lookup(name);
    if (id != CASK__NO_KERNEL && cask__kernel_get(id)->fn == fn)
        return 0;
    return cask_kernel_register(name, fn, NULL, err);
}

cask_task_t cask_delayed_fn(cask_graph_t *g, const char *name, cask_kernel_fn fn,
                            const cask_value_t *args, size_t n_args, cask_error_t *err)
{
    return ensure_kernel(name, fn, err) ? CASK_NO_TASK
                                        : cask_delayed_named(g, NULL, name, args, n_args, err);
}

cask_task_t cask_map(cask_graph_t *g, const char *kernel, const cask_value_t *items,
                     size_t n_items, size_t chunksize, cask_error_t *err)
{
    if (!g || !kernel || (n_items && !items)) {
        cask__err(err, CASK_EINVAL, NULL, kernel, "map needs a graph, a kernel and its items");
        return CASK_NO_TASK;
    }
    const char *name = short_name(kernel);
    if (!name) {
        cask__err(err, CASK_ENOKERNEL, NULL, kernel, "unknown kernel '%s'", kernel);
        return CASK_NO_TASK;
    }
    if (!chunksize) { /* as Pool.map: about four chunks per worker */
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        size_t parts = 4 * (size_t)(cores > 0 ? cores : 1);
        chunksize = n_items ? (n_items + parts - 1) / parts : 1;
    }
    size_t n = (n_items + chunksize - 1) / chunksize;
    size_t width = chunksize < n_items ? chunksize : n_items;
    cask_value_t *args = cask__malloc(((width > n ? width : n) + 1) * sizeof *args);
    if (!args) {
        cask__err(err, CASK_ENOMEM, NULL, kernel, "no memory for a map's arguments");
        return CASK_NO_TASK;
    }
    cask_task_t out = CASK_NO_TASK;
    cask_value_t kname = cask_none(); /* each chunk's first input */
    int rc = cask_value_string(kernel, (size_t)-1, &kname, err);
    if (rc)
        goto done;

    /* One token for the whole map: the kernel, the chunk size and every item. */
    uint64_t token = cask__hash(kernel, strlen(kernel), chunksize);
    for (size_t i = 0; i < n_items; i++) {
        if (items[i].type == CASK_REF) {
            char what[40];
            snprintf(what, sizeof what, "item %zu", i);
            if ((rc = cask__task_check(g, items[i].u.task, what, NULL, kernel, err)))
                goto done;
        }
        token = cask__mix(token, cask__value_hash(&items[i], cask__graph_key_hashes(g)));
    }
    token |= 1; /* never 0, which would mean "hash it yourself" */
    cask_task_t *chunk = cask__malloc((n ? n : 1) * sizeof *chunk);
    if (!chunk) {
        rc = cask__err(err, CASK_ENOMEM, NULL, kernel, "no memory for %zu chunks", n);
        goto done;
    }
    for (size_t c = 0; c < n && !rc; c++) {
        size_t lo = c * chunksize, m = n_items - lo < chunksize ? n_items - lo : chunksize;
        args[0] = kname;
        memcpy(args + 1, items + lo, m * sizeof *args);
        cask_task_spec_t spec = { .kernel = "cask.map", .inputs = args, .n_inputs = m + 1,
                                  .name = name, .group = name, .token = token, .index = c };
        rc = cask_graph_add(g, &spec, &chunk[c], err);
    }
    if (!rc) { /* the chunks' lists, joined */
        for (size_t c = 0; c < n; c++)
            args[c] = cask_ref(chunk[c]);
        cask_task_spec_t spec = { .kernel = "cask.concat", .inputs = args, .n_inputs = n,
                                  .name = name, .group = name, .token = token, .index = n };
        rc = cask_graph_add(g, &spec, &out, err);
    }
    cask__free(chunk);
done:
    cask_value_decref(&kname);
    if (rc)
        out = CASK_NO_TASK;
    cask__free(args);
    return out;
}

cask_task_t cask_map_fn(cask_graph_t *g, const char *name, cask_kernel_fn fn,
                        const cask_value_t *items, size_t n_items, size_t chunksize,
                        cask_error_t *err)
{
    return ensure_kernel(name, fn, err) ? CASK_NO_TASK
                                        : cask_map(g, name, items, n_items, chunksize, err);
}

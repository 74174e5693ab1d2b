/* Fuzz target: cask-graph JSON (cask_graph_parse_json) computed on sync:
** every registered kernel on whatever literal arguments a file can spell.
** Skipped, by inspecting the loaded graph: a graph that would call
** cask.crash (it kills the process on purpose), or sleep or spin for over
** a millisecond, directly or through cask.map (whose kernel must then be a
** literal name), or through a bag kernel (any of its string inputs may
** name the kernel it calls), or a bag writer (it writes any path). Blocks are held to 1 MB (cask__ar_max_bytes) and fused
** reductions to 2^20 elements a task (cask__ar_max_stream), so a file that
** asks for big ones is refused quickly with CASK_ENOMEM or CASK_ELIMIT
** instead of taking the fuzzer's memory and time. A compute that fails must say why
** and leave every result CASK_NONE. */
#include <stdbool.h>

#include "fuzz.h"
#include "../../collections/array.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    cask__ar_max_bytes = 1u << 20; /* before the kernels are registered */
    cask__ar_max_stream = 1u << 20;
    return 0;
}

/* Whether calling kernel on in[0..n) could crash the process on purpose,
** or sleep or spin for over a millisecond (cask.sleep takes seconds,
** cask.spin microseconds, both from their first argument). */
static bool unsafe_call(const char *kernel, const cask_value_t *in, size_t n)
{
    if (!kernel)
        return false;
    if (!strcmp(kernel, "cask.crash"))
        return true;
    if (!strcmp(kernel, "cask.sleep") || !strcmp(kernel, "cask.spin")) {
        double most = !strcmp(kernel, "cask.sleep") ? 1e-3 : 1e3;
        return !n || !cask_value_is_number(&in[0]) || !(cask_value_double(&in[0]) <= most);
    }
    if (!strncmp(kernel, "cask.bag.", 9)) {
        /* writers touch any path; the others may call a kernel named by any
        ** string input: refuse the dangerous names and nested calls */
        if (!strcmp(kernel, "cask.bag.totext") || !strcmp(kernel, "cask.bag.writef"))
            return true;
        for (size_t i = 0; i < n; i++) {
            const char *s = cask_value_str(&in[i], NULL);
            if (s && (!strcmp(s, "cask.crash") || !strcmp(s, "cask.sleep") ||
                      !strcmp(s, "cask.spin") || !strcmp(s, "cask.map") ||
                      !strncmp(s, "cask.bag.", 9)))
                return true;
        }
    }
    if (!strcmp(kernel, "cask.map")) { /* calls in[0]'s kernel on each later input */
        const char *name = n ? cask_value_str(&in[0], NULL) : NULL;
        if (!name)
            return true;
        for (size_t i = 1; i < n; i++)
            if (unsafe_call(name, &in[i], 1))
                return true;
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cask_error_t err;
    cask_graph_t *g = NULL;
    int rc = cask_graph_parse_json((const char *)data, size, 0, &g, &err);
    if (rc) {
        if (g || !err.message[0])
            abort();
        return 0;
    }
    for (size_t i = 0, n = cask_graph_size(g); i < n; i++) {
        cask_task_t t = cask_graph_task(g, i);
        const cask_value_t *in;
        size_t k;
        if (cask_graph_inputs(g, t, &in, &k, &err))
            abort();
        if (unsafe_call(cask_graph_kernel(g, t), in, k)) {
            cask_graph_decref(g);
            return 0;
        }
    }
    size_t no;
    const cask_task_t *outs = cask_graph_outputs(g, &no);
    cask_value_t *vals = calloc(no ? no : 1, sizeof *vals);
    if (!vals)
        abort();
    cask_compute_opts_t o = { .scheduler = "sync" };
    rc = no ? cask_compute(g, outs, no, &o, vals, NULL, &err) : 0;
    if (rc && !err.message[0])
        abort();
    for (size_t i = 0; i < no; i++) {
        if (rc && vals[i].type != CASK_NONE)
            abort(); /* a failed compute leaves no result */
        if (cask_value_nbytes(&vals[i]) <= 4096) /* printed as `cask run` prints it */
            free(cask_value_to_json(&vals[i]));
        cask_value_decref(&vals[i]);
    }
    free(vals);
    cask_graph_decref(g);
    return 0;
}

/* Fuzz target: cask-graph JSON (cask_graph_parse_json), then every use.
** Inputs that end in a newline are read as computable graphs (unknown
** kernels refused), the others for analysis only. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cask_error_t err;
    cask_graph_t *g = NULL;
    unsigned flags = size && data[size - 1] == '\n' ? 0 : CASK_LOAD_ANALYSIS;
    fuzz_check_load(cask_graph_parse_json((const char *)data, size, flags, &g, &err), g, &err);
    return 0;
}

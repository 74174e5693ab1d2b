/* Fuzz target: the wfcommons reader alone, then every use of what it read. */
#include "fuzz.h"
#include "../../graph/graph.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cask_error_t err;
    cask_graph_t *g = NULL;
    fuzz_check_load(cask__graph_load_buf((const char *)data, size, "fuzz", 0, CASK__FMT_WFCOMMONS, &g, &err),
                    g, &err);
    return 0;
}

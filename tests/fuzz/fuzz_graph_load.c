/* Fuzz target: cask_graph_load on a file of any content (format detection,
** zip archives, every reader), then every use of what it read. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[32];
    int fd = fuzz_file(data, size, path);
    cask_error_t err;
    cask_graph_t *g = NULL;
    fuzz_check_load(cask_graph_load(path, CASK_LOAD_ANALYSIS, &g, &err), g, &err);
    close(fd);
    return 0;
}

/* Fuzz target: trace JSON (cask_trace_load_json), then its idle figures,
** a timeline, Chrome JSON and a JSON round trip. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[32];
    int fd = fuzz_file(data, size, path);
    cask_error_t err;
    cask_trace_t *tr = NULL;
    if (!cask_trace_load_json(path, &tr, &err)) {
        int w = cask_trace_workers(tr);
        if (w <= 256) {
            double idle[256], tail[256];
            if (cask_trace_idle(tr, idle, tail, NULL))
                abort();
            for (int i = 0; i < w; i++)
                if (idle[i] < -1e-9 || tail[i] < -1e-9 || tail[i] > idle[i] + 1e-9)
                    abort();
            cask_timeline_write(tr, fuzz_null(), NULL, &err);
        }
        cask_trace_write_chrome(tr, fuzz_null(), &err);
        cask_trace_free(tr);
    } else if (tr || !err.message[0]) {
        abort();
    }
    close(fd);
    return 0;
}

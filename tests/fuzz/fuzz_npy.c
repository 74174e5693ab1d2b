/* Fuzz target: .npy files (cask_array_load_npy), computed back when they
** load: the elements read must be the file's. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[32];
    int fd = fuzz_file(data, size, path);
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    if (!g)
        abort();
    cask_array_t *a = cask_array_load_npy(g, path, NULL, &err);
    if (a) {
        size_t bytes = cask_dtype_size(cask_array_dtype(a));
        for (int i = 0; i < cask_array_ndim(a); i++)
            bytes *= (size_t)cask_array_shape(a)[i];
        size_t at = data[6] == 1 ? 10u + (data[8] | (size_t)data[9] << 8)
                                 : 12u + (data[8] | (size_t)data[9] << 8 |
                                          (size_t)data[10] << 16 | (size_t)data[11] << 24);
        if (at > size || bytes > size - at) /* the data was in the file */
            abort();
        void *buf = malloc(bytes ? bytes : 1);
        cask_compute_opts_t o = { .scheduler = "sync" };
        if (cask_array_compute(&a, 1, &o, &buf, NULL, &err) ||
            (bytes && memcmp(buf, data + at, bytes)))
            abort();
        free(buf);
        cask_array_decref(a);
    } else if (!err.message[0]) {
        abort();
    }
    cask_graph_decref(g);
    close(fd);
    return 0;
}

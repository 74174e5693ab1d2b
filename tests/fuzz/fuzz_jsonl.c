/* Fuzz target: JSON lines and text lines (cask_bag_read_jsonl,
** cask_bag_read_text). The first byte picks a block size and the flags;
** the rest is the file. Cut into blocks or read whole, a file must give
** the same records (or, for JSON, fail alike): no line lost, read twice
** or split. */
#include "fuzz.h"

/* The bag of the file at path, read one way (in a graph of its own, so
** two ways never share a task), computed into *out. */
static int read_as(const char *path, bool json, size_t block, unsigned flags, cask_value_t *out,
                   cask_error_t *err)
{
    cask_graph_t *g = cask_graph_new(err);
    if (!g)
        abort();
    const char *paths[] = { path };
    cask_bag_t *b = json ? cask_bag_read_jsonl(g, paths, 1, block, flags, err)
                         : cask_bag_read_text(g, paths, 1, block, err);
    cask_compute_opts_t o = { .scheduler = "sync" };
    int rc = cask_bag_compute(b, &o, out, err);
    cask_bag_decref(b);
    cask_graph_decref(g);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!size)
        return 0;
    char path[32];
    int fd = fuzz_file(data + 1, size - 1, path);
    bool json = data[0] & 1;
    unsigned flags = data[0] & 2 ? CASK_BAG_SKIP_BAD : 0;
    size_t block = data[0] >> 2; /* 0: the whole file a block */
    cask_error_t err;
    cask_value_t whole, cut;
    int rw = read_as(path, json, 0, flags, &whole, &err);
    if (rw && !err.message[0])
        abort();
    int rc = read_as(path, json, block, flags, &cut, &err);
    if (rc && !err.message[0])
        abort();
    if ((rw == 0) != (rc == 0) || (!json && rw) || (flags && rw))
        abort(); /* text and skipping never fail; cut or whole fail alike */
    if (!rw && !cask_value_equal(&whole, &cut))
        abort();
    cask_value_decref(&whole);
    cask_value_decref(&cut);
    close(fd);
    return 0;
}

/*
** tests/fuzz/fuzz.h: what the fuzz targets share.
**
** Each target defines LLVMFuzzerTestOneInput. Built with clang's
** -fsanitize=fuzzer it is a libFuzzer binary (make fuzz); built with
** replay.c it replays its seeds and regression cases once each (make test).
*/
#ifndef CASK_FUZZ_H
#define CASK_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cask/cask.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An in-memory file holding data[0..size), so the readers that take a path
** read it through their public entry point. Fills path; returns the
** descriptor to close, or -1. */
static inline int fuzz_file(const uint8_t *data, size_t size, char path[32])
{
    int fd = memfd_create("cask-fuzz", MFD_CLOEXEC);
    if (fd < 0)
        abort();
    size_t done = 0;
    while (done < size) {
        ssize_t w = write(fd, data + done, size - done);
        if (w <= 0)
            abort();
        done += (size_t)w;
    }
    snprintf(path, 32, "/proc/self/fd/%d", fd);
    return fd;
}

/* A sink for writers, opened once. */
static inline FILE *fuzz_null(void)
{
    static FILE *f;
    if (!f && !(f = fopen("/dev/null", "w")))
        abort();
    return f;
}

/* Whatever loaded must hold up to everything a user does next with a graph
** read from a file: analysis, a simulation, a DOT picture, a JSON round
** trip that gives the same number of tasks. */
static inline void fuzz_use_graph(cask_graph_t *g)
{
    cask_error_t err;
    size_t n = cask_graph_size(g);
    if (n > 5000)
        return;
    cask_analysis_t a;
    if (!cask_graph_analyze(g, 0, &a, &err)) {
        if (a.width < 1 && n > 0)
            abort();
        cask_analysis_destroy(&a);
    }
    cask_sim_opts_t so = { .workers = 3 };
    cask_sim_result_t sr;
    if (!cask_simulate(g, NULL, 0, &so, &sr, &err)) {
        if (sr.makespan + 1e-9 < sr.lower_bound * (1 - 1e-9))
            abort();
        cask_sim_result_destroy(&sr);
    }
    cask_dot_opts_t d = { .color = CASK_DOT_CRITICAL };
    cask_dot_write(g, fuzz_null(), &d, &err);
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    if (!m)
        abort();
    int dumped = cask_graph_write_json(g, m, &err);
    fclose(m);
    if (!dumped) {
        cask_graph_t *back = NULL;
        if (cask_graph_parse_json(text, len, CASK_LOAD_ANALYSIS, &back, &err) ||
            cask_graph_size(back) != n)
            abort(); /* what cask writes, cask reads */
        cask_graph_decref(back);
    }
    free(text);
}

/* After a graph reader returned rc: use what it read, or check that a
** failure left nothing and said why. */
static inline void fuzz_check_load(int rc, cask_graph_t *g, const cask_error_t *err)
{
    if (!rc) {
        fuzz_use_graph(g);
        cask_graph_decref(g);
    } else if (g || !err->message[0]) {
        abort();
    }
}

#endif

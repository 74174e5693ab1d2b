/*
** tests/fuzz/replay.c: run a fuzz target once on each of its seeds and
** regression cases, as a test (TAP). The binary test_fuzz_NAME reads
** $CASK_FUZZ_DIR/seeds/NAME/ and $CASK_FUZZ_DIR/regress/NAME/ (default
** tests/fuzz). A case that crashes, leaks or trips a sanitizer fails it.
*/
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

int main(int argc, char **argv)
{
    const char *base = strrchr(argv[0], '/');
    base = base ? base + 1 : argv[0];
    if (strncmp(base, "test_fuzz_", 10)) {
        fprintf(stderr, "%s: the binary must be named test_fuzz_TARGET\n", argv[0]);
        return 2;
    }
    const char *dir = getenv("CASK_FUZZ_DIR") ? getenv("CASK_FUZZ_DIR") : "tests/fuzz";
    char *dirs[2];
    if (asprintf(&dirs[0], "%s/seeds/%s", dir, base + 10) < 0 ||
        asprintf(&dirs[1], "%s/regress/%s", dir, base + 10) < 0)
        return 2;
    /* Before the target's set-up, which may move to another directory or
    ** send stdout elsewhere: absolute paths, and a stream of our own. */
    for (int d = 0; d < 2; d++) {
        char *abs = realpath(dirs[d], NULL);
        if (abs) {
            free(dirs[d]);
            dirs[d] = abs;
        }
    }
    int out = dup(STDOUT_FILENO);
    FILE *tap = out < 0 ? NULL : fdopen(out, "w");
    if (!tap)
        return 2;
    setvbuf(tap, NULL, _IOLBF, 0);
    if (LLVMFuzzerInitialize)
        LLVMFuzzerInitialize(&argc, &argv);
    int n = 0;
    for (int d = 0; d < 2; d++) {
        struct dirent **e;
        int k = scandir(dirs[d], &e, NULL, by_name);
        for (int i = 0; i < k; i++) {
            char *path;
            FILE *f = NULL;
            if (e[i]->d_name[0] != '.' && asprintf(&path, "%s/%s", dirs[d], e[i]->d_name) >= 0) {
                f = fopen(path, "rb");
                if (f) {
                    fseek(f, 0, SEEK_END);
                    long len = ftell(f);
                    rewind(f);
                    uint8_t *buf = malloc(len > 0 ? (size_t)len : 1);
                    if (!buf || fread(buf, 1, (size_t)len, f) != (size_t)len) {
                        fprintf(tap, "not ok %d - cannot read %s\n", ++n, path);
                    } else {
                        LLVMFuzzerTestOneInput(buf, (size_t)len);
                        fprintf(tap, "ok %d - %s\n", ++n, path);
                    }
                    free(buf);
                    fclose(f);
                }
                free(path);
            }
            free(e[i]);
        }
        if (k >= 0)
            free(e);
        free(dirs[d]);
    }
    fprintf(tap, "1..%d\n", n);
    if (!n) {
        fprintf(tap, "not ok 1 - no cases in %s/{seeds,regress}/%s\n", dir, base + 10);
        return 1;
    }
    fclose(tap);
    return 0;
}

/*
** Fuzz target: option and environment parsing. The input is lines: lines
** "CASK_SCHEDULER=...", "CASK_NUM_WORKERS=...", "CASK_PROGRESS=..." and
** "CASK_MEMORY_LIMIT=..." set those variables; the others are the cask command's arguments, run in a
** scratch directory that holds a graph (g.json) and a trace (t.json).
** Inputs that name a path outside it, ask for worker processes, or hold a
** number from 65 to 2^20 (a legal, costly worker count) are skipped.
*/
#include <dirent.h>
#include <fcntl.h>
#include <getopt.h>

#include "fuzz.h"

int cask_cli_main(int argc, char **argv); /* cli/main.c's main, renamed */

static const char graph[] =
    "{\"format\": \"cask-graph\", \"version\": 1, \"tasks\": ["
    "{\"key\": \"a\", \"kernel\": \"cask.const\", \"inputs\": [2], \"group\": \"in\"},"
    "{\"key\": \"b\", \"kernel\": \"cask.const\", \"inputs\": [3], \"group\": \"in\"},"
    "{\"key\": \"c\", \"kernel\": \"cask.add\", \"inputs\": [{\"ref\": \"a\"}, {\"ref\": \"b\"}],"
    " \"cost\": 0.5}], \"outputs\": [\"c\"]}\n";
static const char trace[] =
    "{\"workers\": 2, \"tasks\": ["
    "{\"key\": \"a\", \"group\": \"in\", \"worker\": 0, \"start_ns\": 0, \"end_ns\": 100},"
    "{\"key\": \"b\", \"group\": \"in\", \"worker\": 1, \"start_ns\": 0, \"end_ns\": 50},"
    "{\"key\": \"c\", \"group\": \"c\", \"worker\": 0, \"start_ns\": 100, \"end_ns\": 300}]}\n";
static const char *const vars[] = { "CASK_SCHEDULER", "CASK_NUM_WORKERS", "CASK_PROGRESS",
                                     "CASK_MEMORY_LIMIT" };
#define NVARS (sizeof vars / sizeof *vars)

static void put(const char *name, const char *text)
{
    FILE *f = fopen(name, "w");
    if (!f || fputs(text, f) == EOF || fclose(f))
        abort();
}

static char dir[] = "/tmp/cask-fuzz-options-XXXXXX";

static void tidy(void);
static void remove_dir(void)
{
    tidy();
    unlink("g.json");
    unlink("t.json");
    if (chdir("/") == 0)
        rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    if (!mkdtemp(dir) || chdir(dir))
        abort();
    atexit(remove_dir);
    put("g.json", graph);
    put("t.json", trace);
    if (!freopen("/dev/null", "w", stdout))
        abort();
    return 0;
}

/* Remove what a run wrote, keeping the two inputs. */
static void tidy(void)
{
    DIR *d = opendir(".");
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.' && strcmp(e->d_name, "g.json") && strcmp(e->d_name, "t.json"))
            unlink(e->d_name);
    if (d)
        closedir(d);
}

static int costly(const char *s)
{
    if (strchr(s, '/') || strstr(s, "processes"))
        return 1;
    for (const char *p = s; *p; p++)
        if (*p >= '0' && *p <= '9' && (p == s || p[-1] < '0' || p[-1] > '9')) {
            unsigned long long v = strtoull(p, NULL, 10);
            if (v > 64 && v <= 1u << 20)
                return 1;
        }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    enum { MAXARG = 12, MAXLEN = 200 };
    char text[MAXARG * (MAXLEN + 1)], *argv[MAXARG + 2];
    int argc = 0, set[NVARS] = { 0 };
    size_t used = 0;
    argv[argc++] = "cask";
    for (size_t i = 0; i < size && argc <= MAXARG;) {
        size_t j = i;
        while (j < size && data[j] != '\n' && j - i < MAXLEN)
            j++;
        char *s = text + used;
        memcpy(s, data + i, j - i);
        s[j - i] = '\0';
        used += j - i + 1;
        i = j + (j < size && data[j] == '\n');
        if (costly(s)) {
            argc = 0;
            break;
        }
        int v = -1;
        for (int k = 0; k < (int)NVARS; k++)
            if (!strncmp(s, vars[k], strlen(vars[k])) && s[strlen(vars[k])] == '=')
                v = k;
        if (v >= 0) {
            setenv(vars[v], s + strlen(vars[v]) + 1, 1);
            set[v] = 1;
        } else {
            argv[argc++] = s;
        }
    }
    argv[argc] = NULL;
    optind = 0; /* getopt starts afresh */
    int rc = argc ? cask_cli_main(argc, argv) : 0;
    if (rc < 0 || rc > 2)
        abort(); /* exit status 0, 1 or 2 only */
    for (int k = 0; k < (int)NVARS; k++)
        if (set[k])
            unsetenv(vars[k]);
    tidy();
    return 0;
}

/*
** cli/main.c: the cask command: dispatch to a subcommand.
*/
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
    "usage: cask COMMAND [ARGS]\n"
    "\n"
    "commands:\n"
    "  run FILE        compute a cask-graph JSON file's outputs\n"
    "  analyze FILE    degree of parallelism: work, span, critical path, width, levels\n"
    "  simulate FILE   play the schedule on N virtual workers: makespan, speedup, idle time\n"
    "  dot FILE        draw the graph (Graphviz DOT, SVG or PNG)\n"
    "  timeline TRACE  draw a trace: per-worker timeline SVG, Chrome trace JSON\n"
    "\n"
    "FILE: cask-graph JSON, WfCommons workflow JSON, an STG file, or a zip of one JSON file.\n"
    "\n"
    "cask COMMAND --help describes a command; cask --version prints the version.\n";

void cli_error(const char *sub, const cask_error_t *err)
{
    fprintf(stderr, "cask %s: %s", sub, err->message[0] ? err->message : cask_strerror(err->code));
    if (err->key[0] && !strstr(err->message, err->key))
        fprintf(stderr, " (task %s)", err->key);
    if (err->kernel[0] && !strstr(err->message, err->kernel))
        fprintf(stderr, " (kernel %s)", err->kernel);
    fprintf(stderr, " [%s]\n", cask_err_name(err->code));
}

int cli_choice(const char *s, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(s, names[i]))
            return i;
    return -1;
}

int cli_parse_int(const char *s, int max)
{
    char *end;
    errno = 0;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || errno || end == s || *end || v < 1 || v > max)
        return -1;
    return (int)v;
}

cask_graph_t *cli_load(const char *sub, const char *path)
{
    cask_error_t err;
    cask_graph_t *g = NULL;
    if (cask_graph_load(path, CASK_LOAD_ANALYSIS, &g, &err)) {
        fprintf(stderr, "cask %s: ", sub);
        if (!strstr(err.message, path))
            fprintf(stderr, "%s: ", path);
        fprintf(stderr, "%s [%s]\n", err.message, cask_err_name(err.code));
        return NULL;
    }
    return g;
}

int cli_print_json(json_t *j)
{
    int rc = !j || json_dumpf(j, stdout, JSON_INDENT(2)) || puts("") == EOF ? -1 : 0;
    json_decref(j);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        fputs(usage, stdout);
        return EXIT_OK;
    }
    if (!strcmp(cmd, "--version")) {
        printf("cask %s\n", cask_version());
        return EXIT_OK;
    }
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = { { "run", cmd_run }, { "analyze", cmd_analyze }, { "dot", cmd_dot },
                 { "simulate", cmd_simulate }, { "timeline", cmd_timeline } };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (!strcmp(cmd, cmds[i].name))
            return cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "cask: unknown command '%s'\n\n%s", cmd, usage);
    return EXIT_USAGE;
}

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
    "  run FILE      compute a cask-graph JSON file's outputs\n"
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

int cli_parse_int(const char *s, int max)
{
    char *end;
    errno = 0;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || errno || end == s || *end || v < 1 || v > max)
        return -1;
    return (int)v;
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
    if (!strcmp(cmd, "run"))
        return cmd_run(argc - 1, argv + 1);
    fprintf(stderr, "cask: unknown command '%s'\n\n%s", cmd, usage);
    return EXIT_USAGE;
}

/*
** cli/cli.h: shared pieces of the cask command.
*/
#ifndef CASK_CLI_H
#define CASK_CLI_H

#include <cask/cask.h>
#include <jansson.h>

/* Exit codes: success, a compute that failed, bad usage or a bad file. */
enum { EXIT_OK = 0, EXIT_COMPUTE = 1, EXIT_USAGE = 2 };

int cmd_run(int argc, char **argv);
int cmd_analyze(int argc, char **argv);
int cmd_dot(int argc, char **argv);
int cmd_simulate(int argc, char **argv);
int cmd_timeline(int argc, char **argv);

/* Load a graph file of any format for `cask SUB`; NULL after printing why. */
cask_graph_t *cli_load(const char *sub, const char *path);

/* Print a JSON value to stdout (stolen); 0 or -1. */
int cli_print_json(json_t *j);

/* Print "cask SUB: MESSAGE" with the error's key and kernel to stderr. */
void cli_error(const char *sub, const cask_error_t *err);

/* The index of s among names[0..n), or -1. */
int cli_choice(const char *s, const char *const *names, int n);

/* Parse a positive integer option (1..max); -1 if it is not one. */
int cli_parse_int(const char *s, int max);

#endif

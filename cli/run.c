/*
** cli/run.c: `cask run FILE`: load a cask-graph file and compute its outputs.
*/
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char run_usage[] =
    "usage: cask run FILE [--scheduler NAME] [--workers N] [--retries N] [--trace OUT.json]\n"
    "                     [--timeline OUT.svg] [--memory-limit BYTES] [--cache DIR]\n"
    "                     [--progress | --no-progress] [--json]\n"
    "\n"
    "Load a cask-graph JSON file (docs/FORMAT.md) and compute its outputs.\n"
    "\n"
    "  -s, --scheduler NAME  sync, threads, processes, mpi (under mpirun, where MPI was\n"
    "                        found at build time; default: $CASK_SCHEDULER, else sync)\n"
    "  -w, --workers N       number of workers (default: $CASK_NUM_WORKERS, else the cores)\n"
    "  -r, --retries N       processes: reruns of a task whose worker process died\n"
    "                        (default 1; 0: none)\n"
    "  -t, --trace OUT.json  write the trace of the run as JSON\n"
    "  -T, --timeline OUT.svg  write the timeline of the run (cask timeline's picture)\n"
    "  -m, --memory-limit BYTES  a memory budget for task outputs (sizes from the\n"
    "                        tasks' \"nbytes\"; default: $CASK_MEMORY_LIMIT, else none):\n"
    "                        4000000, 64MB, 1GiB\n"
    "  -c, --cache DIR       keep each task's result in DIR, and read the results found\n"
    "                        there instead of running their tasks again: a run that\n"
    "                        failed resumes where it stopped (default: $CASK_CACHE_DIR,\n"
    "                        else none; not with mpi)\n"
    "  -p, --progress        draw a progress bar on stderr (default: when stderr is a\n"
    "                        terminal and the compute runs over half a second)\n"
    "  -P, --no-progress     never draw one\n"
    "  -j, --json            print {\"outputs\": {KEY: VALUE, ...}, \"stats\": {...}}\n"
    "  -h, --help            show this help\n"
    "\n"
    "Without --json, prints one line per output: KEY = VALUE (VALUE as JSON).\n"
    "Exit status: 0 on success, 1 when the compute fails, 2 for bad usage or a bad file.\n";

/* v as a JSON value (new), or NULL. */
static json_t *value_json(const cask_value_t *v)
{
    char *s = cask_value_to_json(v);
    json_t *j = s ? json_loads(s, JSON_DECODE_ANY, NULL) : NULL;
    free(s);
    return j;
}

int cmd_run(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "scheduler", required_argument, NULL, 's' },
        { "workers", required_argument, NULL, 'w' },
        { "trace", required_argument, NULL, 't' },
        { "timeline", required_argument, NULL, 'T' },
        { "retries", required_argument, NULL, 'r' },
        { "memory-limit", required_argument, NULL, 'm' },
        { "cache", required_argument, NULL, 'c' },
        { "progress", no_argument, NULL, 'p' },
        { "no-progress", no_argument, NULL, 'P' },
        { "json", no_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    cask_compute_opts_t opts = { 0 };
    const char *trace_path = NULL, *timeline_path = NULL;
    int json = 0, c;
    optind = 0; /* GNU getopt: start afresh, even after an earlier parse */
    while ((c = getopt_long(argc, argv, "s:w:t:T:r:m:c:pPjh", longopts, NULL)) != -1) {
        switch (c) {
        case 's': opts.scheduler = optarg; break;
        case 'w':
            if ((opts.workers = cli_parse_int(optarg, 4096)) < 0) {
                fprintf(stderr, "cask run: --workers '%s' is not a whole number from 1 to 4096\n",
                        optarg);
                return EXIT_USAGE;
            }
            break;
        case 'r': {
            int r = cli_parse_int(optarg, 100);
            if (r < 0 && strcmp(optarg, "0") != 0) {
                fprintf(stderr, "cask run: --retries '%s' is not a whole number from 0 to 100\n",
                        optarg);
                return EXIT_USAGE;
            }
            opts.retries = r > 0 ? r : CASK_NO_RETRY;
            break;
        }
        case 'm': {
            cask_error_t e;
            if (cask_bytes_parse(optarg, &opts.memory_limit, &e)) {
                fprintf(stderr, "cask run: --memory-limit %s\n", e.message);
                return EXIT_USAGE;
            }
            if (!opts.memory_limit) {
                fprintf(stderr, "cask run: --memory-limit must be above 0\n");
                return EXIT_USAGE;
            }
            break;
        }
        case 'c': opts.cache_dir = optarg; break;
        case 'p': opts.flags |= CASK_PROGRESS; break;
        case 'P': opts.flags |= CASK_NO_PROGRESS; break;
        case 't': trace_path = optarg; break;
        case 'T': timeline_path = optarg; break;
        case 'j': json = 1; break;
        case 'h': fputs(run_usage, stdout); return EXIT_OK;
        default: fputs(run_usage, stderr); return EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "cask run: expected one FILE\n\n%s", run_usage);
        return EXIT_USAGE;
    }
    cask_error_t err;
    if (opts.scheduler && cask_scheduler_check(opts.scheduler, &err)) {
        fprintf(stderr, "cask run: %s\n", err.message);
        return EXIT_USAGE;
    }
    if (trace_path || timeline_path)
        opts.flags |= CASK_TRACE;

    cask_graph_t *g = NULL;
    if (cask_graph_load_json(argv[optind], 0, &g, &err)) {
        if (!strstr(err.message, argv[optind]))
            fprintf(stderr, "cask run: %s: ", argv[optind]);
        else
            fputs("cask run: ", stderr);
        fprintf(stderr, "%s [%s]\n", err.message, cask_err_name(err.code));
        return EXIT_USAGE;
    }
    size_t n;
    const cask_task_t *outs = cask_graph_outputs(g, &n);
    cask_value_t *res = calloc(n ? n : 1, sizeof *res);
    cask_compute_info_t info;
    int status = EXIT_OK;
    if (!res) {
        fprintf(stderr, "cask run: out of memory\n");
        cask_graph_decref(g);
        return EXIT_COMPUTE;
    }
    int rc = n ? cask_compute(g, outs, n, &opts, res, &info, &err) : 0;
    /* Under mpirun with the mpi scheduler every rank runs this command and
    ** gets the same outcome: rank 0 alone prints it and writes the files. */
    int lead = cask_mpi_rank() == 0;
    if (rc) {
        if (lead)
            cli_error("run", &err);
        status = err.code == CASK_ENOSCHED || err.code == CASK_EINVAL ? EXIT_USAGE : EXIT_COMPUTE;
        goto out;
    }
    if (!n)
        memset(&info, 0, sizeof info);
    if (!lead)
        goto out;
    if (trace_path && info.trace && cask_trace_save_json(info.trace, trace_path, &err)) {
        cli_error("run", &err);
        status = EXIT_COMPUTE;
    }
    if (timeline_path && info.trace && cask_timeline_save(info.trace, timeline_path, NULL, &err)) {
        cli_error("run", &err);
        status = EXIT_COMPUTE;
    }
    if (json) {
        json_t *o = json_object();
        for (size_t i = 0; i < n; i++)
            json_object_set_new(o, cask_graph_key(g, outs[i]), value_json(&res[i]));
        json_t *root = json_pack("{s:o, s:{s:I, s:I, s:f, s:I, s:I, s:s, s:i}}", "outputs", o,
                                 "stats", "tasks", (json_int_t)info.tasks, "cached",
                                 (json_int_t)info.cached, "wall_s", info.wall_s,
                                 "peak_bytes", (json_int_t)info.peak_bytes, "memory_limit",
                                 (json_int_t)info.memory_limit, "scheduler", info.scheduler,
                                 "workers", info.workers);
        if (!root || json_dumpf(root, stdout, JSON_INDENT(2)) || puts("") == EOF)
            status = EXIT_COMPUTE;
        json_decref(root);
    } else {
        for (size_t i = 0; i < n; i++) {
            char *s = cask_value_to_json(&res[i]);
            printf("%s = %s\n", cask_graph_key(g, outs[i]), s ? s : "<opaque>");
            free(s);
        }
    }
out:
    for (size_t i = 0; i < n; i++)
        cask_value_decref(&res[i]);
    free(res);
    cask_trace_free(info.trace);
    cask_graph_decref(g);
    return status;
}

/*
** cli/simulate.c: `cask simulate FILE` (the schedule on N virtual workers)
** and `cask timeline TRACE` (pictures of a trace).
*/
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char simulate_usage[] =
    "usage: cask simulate FILE --workers 1,2,4,... [--policy critical-path|fifo|lifo|random]\n"
    "                     [--seed N] [--durations TRACE.json] [--timeline OUT.svg]\n"
    "                     [--trace OUT.json] [--chrome OUT.json] [--memory-limit BYTES]\n"
    "                     [--json]\n"
    "\n"
    "Play a list schedule of the graph on identical virtual workers with zero\n"
    "communication cost, from the tasks' cost estimates (for workflow files, their\n"
    "recorded runtimes) or from the durations of a recorded trace. Runs nothing.\n"
    "\n"
    "  -w, --workers LIST     worker counts, comma-separated (default 1,2,4,8)\n"
    "  -p, --policy ORDER     critical-path (default: every scheduler's order), fifo,\n"
    "                         lifo, random\n"
    "  -s, --seed N           seed of the random order (default 1)\n"
    "  -d, --durations FILE   durations by key from this trace (cask run --trace)\n"
    "  -T, --timeline OUT.svg the timeline of the last worker count\n"
    "  -t, --trace OUT.json   the trace of the last worker count\n"
    "  -c, --chrome OUT.json  the same as Chrome trace-event JSON\n"
    "  -m, --memory-limit BYTES  keep a memory budget, from the tasks' \"nbytes\"\n"
    "                         (4000000, 64MB, 1GiB; the critical-path order only)\n"
    "  -j, --json             print {\"runs\": [{\"workers\", \"makespan\", \"lower_bound\",\n"
    "                         \"speedup\", \"efficiency\", \"idle\", \"releasable\",\n"
    "                         \"peak_bytes\"}, ...]} (idle: seconds per worker;\n"
    "                         releasable: their idle tails; peak_bytes: the most bytes\n"
    "                         outputs hold at once, from the tasks' \"nbytes\")\n"
    "  -h, --help             show this help\n"
    "\n"
    "Without --json: a table and a speedup plot. lower_bound = max(work/p, span);\n"
    "speedup = work / makespan.\n"
    "Exit status: 0 on success, 1 when the simulation fails, 2 for bad usage or a bad file.\n";

int cmd_simulate(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "workers", required_argument, NULL, 'w' },
        { "policy", required_argument, NULL, 'p' },
        { "seed", required_argument, NULL, 's' },
        { "durations", required_argument, NULL, 'd' },
        { "timeline", required_argument, NULL, 'T' },
        { "trace", required_argument, NULL, 't' },
        { "chrome", required_argument, NULL, 'c' },
        { "memory-limit", required_argument, NULL, 'm' },
        { "json", no_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    static const char *const policies[] = { "critical-path", "fifo", "lifo", "random" };
    int counts[64], nc = 0, json = 0, c;
    const char *timeline = NULL, *trace_out = NULL, *chrome = NULL, *dur_path = NULL;
    cask_sim_opts_t o = { .seed = 1 };
    optind = 0; /* GNU getopt: start afresh, even after an earlier parse */
    while ((c = getopt_long(argc, argv, "w:p:s:d:T:t:c:m:jh", longopts, NULL)) != -1) {
        switch (c) {
        case 'w': {
            char *list = strdup(optarg), *save = NULL;
            nc = 0;
            for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                int v = cli_parse_int(tok, 1 << 20);
                if (v < 0 || nc == 64) {
                    fprintf(stderr, "cask simulate: --workers '%s': up to 64 whole numbers "
                                    "from 1, comma-separated\n", optarg);
                    free(list);
                    return EXIT_USAGE;
                }
                counts[nc++] = v;
            }
            free(list);
            break;
        }
        case 'p': {
            int k = cli_choice(optarg, policies, 4);
            if (k < 0) {
                fprintf(stderr, "cask simulate: --policy '%s': critical-path, fifo, lifo or "
                                "random\n", optarg);
                return EXIT_USAGE;
            }
            o.policy = (cask_sim_policy_t)k;
            break;
        }
        case 's': {
            char *end;
            o.seed = strtoull(optarg, &end, 10);
            if (*end || end == optarg) {
                fprintf(stderr, "cask simulate: --seed '%s' is not a whole number\n", optarg);
                return EXIT_USAGE;
            }
            break;
        }
        case 'd': dur_path = optarg; break;
        case 'm': {
            cask_error_t e;
            if (cask_bytes_parse(optarg, &o.memory_limit, &e)) {
                fprintf(stderr, "cask simulate: --memory-limit %s\n", e.message);
                return EXIT_USAGE;
            }
            break;
        }
        case 'T': timeline = optarg; break;
        case 't': trace_out = optarg; break;
        case 'c': chrome = optarg; break;
        case 'j': json = 1; break;
        case 'h': fputs(simulate_usage, stdout); return EXIT_OK;
        default: fputs(simulate_usage, stderr); return EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "cask simulate: expected one FILE\n\n%s", simulate_usage);
        return EXIT_USAGE;
    }
    if (!nc) {
        static const int dflt[] = { 1, 2, 4, 8 };
        memcpy(counts, dflt, sizeof dflt);
        nc = 4;
    }
    cask_error_t err;
    cask_trace_t *dur = NULL;
    if (dur_path && cask_trace_load_json(dur_path, &dur, &err)) {
        cli_error("simulate", &err);
        return EXIT_USAGE;
    }
    o.durations = dur;
    cask_graph_t *g = cli_load("simulate", argv[optind]);
    if (!g) {
        cask_trace_free(dur);
        return EXIT_USAGE;
    }
    int status = EXIT_OK;
    json_t *runs = json_array();
    cask_sim_result_t *res = calloc((size_t)nc, sizeof *res);
    for (int i = 0; i < nc && status == EXIT_OK; i++) {
        o.workers = counts[i];
        if (!res || cask_simulate(g, NULL, 0, &o, &res[i], &err)) {
            if (!res)
                err = (cask_error_t){ .code = CASK_ENOMEM };
            cli_error("simulate", &err);
            status = err.code == CASK_EMISSING ? EXIT_USAGE : EXIT_COMPUTE;
            break;
        }
        json_t *idle = json_array();
        for (int w = 0; w < counts[i]; w++)
            json_array_append_new(idle, json_real(res[i].idle[w]));
        json_array_append_new(runs, json_pack("{s:i, s:f, s:f, s:f, s:f, s:o, s:f, s:I}",
                                              "workers", counts[i], "makespan", res[i].makespan,
                                              "lower_bound", res[i].lower_bound, "speedup",
                                              res[i].speedup, "efficiency", res[i].efficiency,
                                              "idle", idle, "releasable", res[i].releasable,
                                              "peak_bytes", (json_int_t)res[i].peak_bytes));
    }
    if (status == EXIT_OK) {
        const cask_trace_t *last = res[nc - 1].trace;
        if ((timeline && cask_timeline_save(last, timeline, NULL, &err)) ||
            (trace_out && cask_trace_save_json(last, trace_out, &err)) ||
            (chrome && cask_trace_save_chrome(last, chrome, &err))) {
            cli_error("simulate", &err);
            status = EXIT_COMPUTE;
        }
    }
    if (status == EXIT_OK && json) {
        if (cli_print_json(json_pack("{s:O}", "runs", runs)))
            status = EXIT_COMPUTE;
    } else if (status == EXIT_OK) {
        printf("work %.6g s, span %.6g s, average parallelism %.4g, policy %s\n\n",
               res[0].work, res[0].span, res[0].span > 0 ? res[0].work / res[0].span : 0,
               policies[o.policy]);
        printf("%8s %14s %14s %9s %11s %14s %14s\n", "workers", "makespan", "lower bound",
               "speedup", "efficiency", "idle (total)", "releasable");
        double top = 0;
        for (int i = 0; i < nc; i++) {
            double idle = 0;
            for (int w = 0; w < counts[i]; w++)
                idle += res[i].idle[w];
            printf("%8d %14.6g %14.6g %9.3f %10.1f%% %14.6g %14.6g\n", counts[i],
                   res[i].makespan, res[i].lower_bound, res[i].speedup,
                   100 * res[i].efficiency, idle, res[i].releasable);
            top = res[i].speedup > top ? res[i].speedup : top;
            top = counts[i] > top ? counts[i] : top;
        }
        printf("\nspeedup (# simulated, | ideal = workers, capped by the average parallelism)\n");
        for (int i = 0; i < nc; i++) {
            int bar = top > 0 ? (int)(res[i].speedup / top * 50 + 0.5) : 0;
            double ideal = counts[i];
            if (res[i].span > 0 && res[i].work / res[i].span < ideal)
                ideal = res[i].work / res[i].span;
            int mark = top > 0 ? (int)(ideal / top * 50 + 0.5) : 0;
            printf("%6d  ", counts[i]);
            for (int k = 0; k < 51; k++)
                putchar(k < bar ? '#' : k == mark ? '|' : ' ');
            printf(" %.2fx\n", res[i].speedup);
        }
    }
    for (int i = 0; res && i < nc; i++)
        cask_sim_result_destroy(&res[i]);
    free(res);
    json_decref(runs);
    cask_graph_decref(g);
    cask_trace_free(dur);
    return status;
}

static const char timeline_usage[] =
    "usage: cask timeline TRACE.json [-o OUT.svg] [--chrome OUT.json] [--title TEXT] [--json]\n"
    "\n"
    "Draw a trace (cask run --trace, cask simulate --trace): an SVG with one row per\n"
    "worker, busy spans coloured by group, idle gaps, each worker's idle tail marked\n"
    "releasable, a legend with the makespan, utilisation and releasable worker-time,\n"
    "and the number of tasks running over time. --chrome writes Chrome trace-event\n"
    "JSON for Perfetto or chrome://tracing.\n"
    "\n"
    "  -o, --output OUT.svg   the SVG timeline\n"
    "  -c, --chrome OUT.json  Chrome trace-event JSON\n"
    "  -T, --title TEXT       the picture's title\n"
    "  -j, --json             print {\"workers\", \"tasks\", \"makespan\", \"utilisation\",\n"
    "                         \"idle\", \"releasable\"}\n"
    "  -h, --help             show this help\n"
    "\n"
    "Exit status: 0 on success, 1 when writing fails, 2 for bad usage or a bad trace.\n";

int cmd_timeline(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "output", required_argument, NULL, 'o' },
        { "chrome", required_argument, NULL, 'c' },
        { "title", required_argument, NULL, 'T' },
        { "json", no_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *out = NULL, *chrome = NULL;
    cask_timeline_opts_t to = { 0 };
    int json = 0, c;
    optind = 0; /* GNU getopt: start afresh, even after an earlier parse */
    while ((c = getopt_long(argc, argv, "o:c:T:jh", longopts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'c': chrome = optarg; break;
        case 'T': to.title = optarg; break;
        case 'j': json = 1; break;
        case 'h': fputs(timeline_usage, stdout); return EXIT_OK;
        default: fputs(timeline_usage, stderr); return EXIT_USAGE;
        }
    }
    if (optind != argc - 1 || (!out && !chrome && !json)) {
        fprintf(stderr, "cask timeline: expected one TRACE and -o, --chrome or --json\n\n%s",
                timeline_usage);
        return EXIT_USAGE;
    }
    cask_error_t err;
    cask_trace_t *tr = NULL;
    if (cask_trace_load_json(argv[optind], &tr, &err)) {
        cli_error("timeline", &err);
        return EXIT_USAGE;
    }
    int status = EXIT_OK, P = cask_trace_workers(tr);
    if ((out && cask_timeline_save(tr, out, &to, &err)) ||
        (chrome && cask_trace_save_chrome(tr, chrome, &err))) {
        cli_error("timeline", &err);
        status = EXIT_COMPUTE;
    } else if (json) {
        double *idle = calloc((size_t)P, sizeof *idle), *tail = calloc((size_t)P, sizeof *tail);
        double span = (double)cask_trace_span_ns(tr) * 1e-9, busy = 0, rel = 0;
        json_t *ji = json_array();
        if (idle && tail)
            cask_trace_idle(tr, idle, tail, NULL);
        for (int w = 0; idle && tail && w < P; w++) {
            busy += span - idle[w];
            rel += tail[w];
            json_array_append_new(ji, json_real(idle[w]));
        }
        if (!idle || !tail ||
            cli_print_json(json_pack("{s:i, s:I, s:f, s:f, s:o, s:f}", "workers", P, "tasks",
                                     (json_int_t)cask_trace_size(tr), "makespan", span,
                                     "utilisation", span > 0 ? busy / (span * P) : 0.0, "idle",
                                     ji, "releasable", rel)))
            status = EXIT_COMPUTE;
        free(idle);
        free(tail);
    }
    cask_trace_free(tr);
    return status;
}

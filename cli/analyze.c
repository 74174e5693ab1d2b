/*
** cli/analyze.c: `cask analyze FILE` (the degree of parallelism) and
** `cask dot FILE` (the picture of the graph).
*/
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char analyze_usage[] =
    "usage: cask analyze FILE [--no-width] [--json]\n"
    "\n"
    "The degree of parallelism of a graph: tasks, edges, work T1 (the sum of the\n"
    "costs), span T-inf (the costliest path) and that path, average parallelism\n"
    "T1/T-inf, the exact width (the most tasks that can ever run at once, with one\n"
    "such set), the levels and their widths, and the profile of the schedule in\n"
    "which every task starts as soon as its inputs are done.\n"
    "\n"
    "  -W, --no-width  skip the exact width (a maximum flow)\n"
    "  -j, --json      print one JSON object: tasks, edges, work, span, critical_path,\n"
    "                  average_parallelism, width, antichain, levels, level_widths,\n"
    "                  profile ([[seconds, tasks running], ...])\n"
    "  -h, --help      show this help\n"
    "\n"
    "FILE: cask-graph JSON, WfCommons workflow JSON, STG, or a zip of one JSON file.\n"
    "Exit status: 0 on success, 2 for bad usage or a bad file.\n";

static json_t *keys_json(const cask_graph_t *g, const cask_task_t *t, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_string(cask_graph_key(g, t[i])));
    return a;
}

/* Up to `most` keys of t[0..n), joined by sep, the middle elided. */
static void print_keys(const cask_graph_t *g, const cask_task_t *t, size_t n, const char *sep,
                       size_t most)
{
    for (size_t i = 0; i < n; i++) {
        if (n > most && i == most / 2) {
            printf("%s... (%zu more) ...", i ? sep : "", n - most);
            i = n - most / 2;
        }
        printf("%s%s", i ? sep : "", cask_graph_key(g, t[i]));
    }
    putchar('\n');
}

int cmd_analyze(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "no-width", no_argument, NULL, 'W' },
        { "json", no_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int json = 0, c;
    unsigned flags = 0;
    optind = 0; /* GNU getopt: start afresh, even after an earlier parse */
    while ((c = getopt_long(argc, argv, "Wjh", longopts, NULL)) != -1) {
        switch (c) {
        case 'W': flags |= CASK_ANALYZE_NO_WIDTH; break;
        case 'j': json = 1; break;
        case 'h': fputs(analyze_usage, stdout); return EXIT_OK;
        default: fputs(analyze_usage, stderr); return EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "cask analyze: expected one FILE\n\n%s", analyze_usage);
        return EXIT_USAGE;
    }
    cask_graph_t *g = cli_load("analyze", argv[optind]);
    if (!g)
        return EXIT_USAGE;
    cask_analysis_t a;
    cask_error_t err;
    if (cask_graph_analyze(g, flags, &a, &err)) {
        cli_error("analyze", &err);
        cask_graph_decref(g);
        return EXIT_COMPUTE;
    }
    int status = EXIT_OK;
    if (json) {
        json_t *lw = json_array(), *prof = json_array();
        for (size_t i = 0; i < a.levels; i++)
            json_array_append_new(lw, json_integer((json_int_t)a.level_widths[i]));
        for (size_t i = 0; i < a.profile_len; i++)
            json_array_append_new(prof, json_pack("[f, I]", a.profile_time[i],
                                                  (json_int_t)a.profile_running[i]));
        json_t *o = json_pack("{s:I, s:I, s:f, s:f, s:o, s:f, s:o, s:o, s:I, s:o, s:o}",
                              "tasks", (json_int_t)a.tasks, "edges", (json_int_t)a.edges,
                              "work", a.work, "span", a.span, "critical_path",
                              keys_json(g, a.critical_path, a.critical_len),
                              "average_parallelism", a.average_parallelism, "width",
                              flags & CASK_ANALYZE_NO_WIDTH ? json_null()
                                                            : json_integer((json_int_t)a.width),
                              "antichain", keys_json(g, a.antichain, a.antichain ? a.width : 0),
                              "levels", (json_int_t)a.levels, "level_widths", lw, "profile", prof);
        if (cli_print_json(o))
            status = EXIT_COMPUTE;
    } else {
        size_t most = 0;
        for (size_t i = 0; i < a.levels; i++)
            most = a.level_widths[i] > most ? a.level_widths[i] : most;
        printf("tasks                %zu\n", a.tasks);
        printf("edges                %zu\n", a.edges);
        printf("work (T1)            %.6g s\n", a.work);
        printf("span (T-inf)         %.6g s\n", a.span);
        printf("average parallelism  %.4g\n", a.average_parallelism);
        if (!(flags & CASK_ANALYZE_NO_WIDTH))
            printf("width                %zu (the most tasks that can run at once)\n", a.width);
        printf("levels               %zu (widest: %zu tasks)\n", a.levels, most);
        printf("critical path        %zu tasks: ", a.critical_len);
        print_keys(g, a.critical_path, a.critical_len, " -> ", 8);
        if (!(flags & CASK_ANALYZE_NO_WIDTH)) {
            printf("a widest antichain   ");
            print_keys(g, a.antichain, a.width, ", ", 8);
        }
        printf("level widths        ");
        for (size_t i = 0; i < a.levels && i < 40; i++)
            printf(" %zu", a.level_widths[i]);
        printf("%s\n", a.levels > 40 ? " ..." : "");
    }
    cask_analysis_destroy(&a);
    cask_graph_decref(g);
    return status;
}

static const char dot_usage[] =
    "usage: cask dot FILE [-o OUT.dot|OUT.svg|OUT.png] [--color rank|group|critical|worker]\n"
    "                     [--trace TRACE.json] [--collapse auto|none|all] [--rankdir TB|LR]\n"
    "                     [--json]\n"
    "\n"
    "Draw a graph with Graphviz. Graphs of over 300 tasks are drawn one node per group\n"
    "(its task count and work; edges summed) unless --collapse none.\n"
    "\n"
    "  -o, --output OUT      .dot/.gv: DOT text; .svg, .png, .pdf: run Graphviz's dot\n"
    "                        (default: DOT on standard output)\n"
    "  -c, --color WHAT      rank (default: upward rank, dark runs first), group,\n"
    "                        critical (a critical path, bold), worker (needs --trace)\n"
    "  -t, --trace FILE      a trace (cask run --trace) saying which worker ran what\n"
    "  -C, --collapse MODE   auto (default), none, all\n"
    "  -r, --rankdir DIR     TB (default) or LR\n"
    "  -j, --json            print {\"output\", \"tasks\", \"edges\", \"collapsed\"}\n"
    "  -h, --help            show this help\n"
    "\n"
    "Exit status: 0 on success, 1 when Graphviz fails, 2 for bad usage or a bad file.\n";

int cmd_dot(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "output", required_argument, NULL, 'o' },
        { "color", required_argument, NULL, 'c' },
        { "trace", required_argument, NULL, 't' },
        { "collapse", required_argument, NULL, 'C' },
        { "rankdir", required_argument, NULL, 'r' },
        { "json", no_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    static const char *const colors[] = { "rank", "group", "critical", "worker" };
    static const char *const modes[] = { "auto", "none", "all" };
    cask_dot_opts_t o = { 0 };
    const char *out = NULL, *trace_path = NULL;
    int json = 0, c;
    optind = 0; /* GNU getopt: start afresh, even after an earlier parse */
    while ((c = getopt_long(argc, argv, "o:c:t:C:r:jh", longopts, NULL)) != -1) {
        int k;
        switch (c) {
        case 'o': out = optarg; break;
        case 'c':
            if ((k = cli_choice(optarg, colors, 4)) < 0) {
                fprintf(stderr, "cask dot: --color '%s': rank, group, critical or worker\n", optarg);
                return EXIT_USAGE;
            }
            o.color = (cask_dot_color_t)k;
            break;
        case 'C':
            if ((k = cli_choice(optarg, modes, 3)) < 0) {
                fprintf(stderr, "cask dot: --collapse '%s': auto, none or all\n", optarg);
                return EXIT_USAGE;
            }
            o.collapse = (cask_dot_collapse_t)k;
            break;
        case 't': trace_path = optarg; break;
        case 'r': o.rankdir = optarg; break;
        case 'j': json = 1; break;
        case 'h': fputs(dot_usage, stdout); return EXIT_OK;
        default: fputs(dot_usage, stderr); return EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "cask dot: expected one FILE\n\n%s", dot_usage);
        return EXIT_USAGE;
    }
    if (o.color == CASK_DOT_WORKER && !trace_path) {
        fprintf(stderr, "cask dot: --color worker needs --trace TRACE.json\n");
        return EXIT_USAGE;
    }
    if (o.rankdir && strcmp(o.rankdir, "TB") && strcmp(o.rankdir, "LR") &&
        strcmp(o.rankdir, "BT") && strcmp(o.rankdir, "RL")) {
        fprintf(stderr, "cask dot: --rankdir '%s': TB, LR, BT or RL\n", o.rankdir);
        return EXIT_USAGE;
    }
    if (json && !out) {
        fprintf(stderr, "cask dot: --json needs -o OUT (the DOT would go to standard output)\n");
        return EXIT_USAGE;
    }
    cask_error_t err;
    cask_trace_t *tr = NULL;
    if (trace_path && cask_trace_load_json(trace_path, &tr, &err)) {
        cli_error("dot", &err);
        return EXIT_USAGE;
    }
    o.trace = tr;
    cask_graph_t *g = cli_load("dot", argv[optind]);
    int status = EXIT_OK;
    if (!g)
        status = EXIT_USAGE;
    else if (out ? cask_dot_save(g, out, &o, &err) : cask_dot_write(g, stdout, &o, &err)) {
        cli_error("dot", &err);
        status = EXIT_COMPUTE;
    } else if (json) {
        size_t n = cask_graph_size(g);
        int collapsed = o.collapse == CASK_DOT_ALL || (o.collapse == CASK_DOT_AUTO && n > 300);
        if (cli_print_json(json_pack("{s:s, s:I, s:I, s:b}", "output", out, "tasks",
                                     (json_int_t)n, "edges", (json_int_t)cask_graph_edges(g),
                                     "collapsed", collapsed)))
            status = EXIT_COMPUTE;
    }
    cask_graph_decref(g);
    cask_trace_free(tr);
    return status;
}

/*
** tests/unit/test_analysis.c: readers, analysis, the simulator and the
** pictures, on hand-checked graphs, on random graphs against brute force,
** and on the published graphs in tests/data/dagsets (the STG footers'
** critical paths and parallelism, and their optimal schedule lengths).
*/
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "testutil.h"

static const char *data(void)
{
    const char *d = getenv("CASK_TESTDATA");
    return d ? d : "tests/data";
}

/* A graph of n tasks with these costs; deps as pairs (from, to), from < to. */
static cask_graph_t *build(size_t n, const double *cost, const int (*dep)[2], size_t nd,
                           const char *const *keys)
{
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    for (size_t v = 0; v < n; v++) {
        cask_task_t after[64];
        size_t na = 0;
        for (size_t e = 0; e < nd; e++)
            if (dep[e][1] == (int)v)
                after[na++] = cask_graph_task(g, (size_t)dep[e][0]);
        char key[32];
        snprintf(key, sizeof key, "t%zu", v);
        cask_task_spec_t s = { .after = after, .n_after = na, .key = keys ? keys[v] : key,
                               .cost = cost[v] };
        cask_task_t t;
        assert_ok(cask_graph_add(g, &s, &t, &err), &err);
        assert_int_equal(cask_graph_index(g, t), v);
    }
    return g;
}

/* The course's example: A, then B C D, then E after B and F after C and D. */
static void test_hand_checked(void **state)
{
    (void)state;
    static const char *const keys[] = { "A", "B", "C", "D", "E", "F" };
    static const double cost[] = { 2, 3, 1, 2, 1, 2 };
    static const int dep[][2] = { { 0, 1 }, { 0, 2 }, { 0, 3 }, { 1, 4 }, { 2, 5 }, { 3, 5 } };
    cask_graph_t *g = build(6, cost, dep, 6, keys);
    cask_error_t err;
    cask_analysis_t a;
    assert_ok(cask_graph_analyze(g, 0, &a, &err), &err);
    assert_int_equal(a.tasks, 6);
    assert_int_equal(a.edges, 6);
    assert_true(a.work == 11 && a.span == 6);
    assert_true(fabs(a.average_parallelism - 11.0 / 6) < 1e-12);
    assert_int_equal(a.width, 3);
    assert_int_equal(a.levels, 3);
    assert_true(a.level_widths[0] == 1 && a.level_widths[1] == 3 && a.level_widths[2] == 2);
    assert_int_equal(a.critical_len, 3); /* A B E or A D F: both cost 6 */
    assert_int_equal(cask_graph_index(g, a.critical_path[0]), 0);
    /* the profile: A alone, then B C D, then ... */
    assert_true(a.profile_time[0] == 0 && a.profile_running[0] == 1);
    assert_true(a.profile_time[1] == 2 && a.profile_running[1] == 3);
    cask_analysis_destroy(&a);

    /* three workers: at t=2 B, D, then C (B and D lie on a costliest path,
    ** C has slack 1, a later class; E's inputs come before F's in memory's
    ** order); F at 4 on D's worker, E at 5 on B's */
    static const double want[] = { 11, 7, 6 };
    for (int p = 1; p <= 3; p++) {
        cask_sim_opts_t o = { .workers = p };
        cask_sim_result_t r;
        assert_ok(cask_simulate(g, NULL, 0, &o, &r, &err), &err);
        assert_true(r.makespan == want[p - 1]);
        assert_true(r.lower_bound == fmax(11.0 / p, 6));
        assert_int_equal(cask_trace_size(r.trace), 6);
        if (p == 3) {
            assert_true(r.idle[0] == 0 && r.idle[1] == 2 && r.idle[2] == 5);
            assert_true(r.tail[0] == 0 && r.tail[1] == 0 && r.tail[2] == 3);
            assert_true(r.releasable == 3);
            for (size_t i = 0; i < 6; i++) { /* who ran what, when */
                const cask_trace_event_t *e = cask_trace_event(r.trace, i);
                if (!strcmp(e->key, "C"))
                    assert_true(e->worker == 2 && e->start_ns == 2000000000u);
                if (!strcmp(e->key, "F"))
                    assert_true(e->worker == 1 && e->start_ns == 4000000000u);
                if (!strcmp(e->key, "E"))
                    assert_true(e->worker == 0 && e->start_ns == 5000000000u);
            }
        }
        cask_sim_result_destroy(&r);
    }
    /* fifo and lifo differ from the priority order here */
    cask_sim_opts_t o = { .workers = 2, .policy = CASK_SIM_FIFO };
    cask_sim_result_t r;
    assert_ok(cask_simulate(g, NULL, 0, &o, &r, &err), &err);
    assert_true(r.makespan >= 6);
    cask_sim_result_destroy(&r);
    o.policy = 9;
    assert_int_equal(cask_simulate(g, NULL, 0, &o, &r, &err), CASK_EINVAL);
    o.policy = CASK_SIM_PRIORITY;
    o.workers = 0;
    assert_int_equal(cask_simulate(g, NULL, 0, &o, &r, &err), CASK_EINVAL);
    cask_graph_decref(g);

    /* a chain, a fork-join and a diamond */
    static const double c4[] = { 1, 2, 3, 4, 5 };
    static const int chain[][2] = { { 0, 1 }, { 1, 2 }, { 2, 3 } };
    static const int fj[][2] = { { 0, 1 }, { 0, 2 }, { 0, 3 }, { 1, 4 }, { 2, 4 }, { 3, 4 } };
    static const int dia[][2] = { { 0, 1 }, { 0, 2 }, { 1, 3 }, { 2, 3 } };
    struct { const int (*d)[2]; size_t nd, n, width, levels; double span; } cases[] = {
        { chain, 3, 4, 1, 4, 10 }, { fj, 6, 5, 3, 3, 10 }, { dia, 4, 4, 2, 3, 8 },
    };
    for (size_t k = 0; k < 3; k++) {
        g = build(cases[k].n, c4, cases[k].d, cases[k].nd, NULL);
        assert_ok(cask_graph_analyze(g, 0, &a, &err), &err);
        assert_int_equal(a.width, cases[k].width);
        assert_int_equal(a.levels, cases[k].levels);
        assert_true(a.span == cases[k].span);
        cask_analysis_destroy(&a);
        cask_graph_decref(g);
    }
}

static uint64_t rng = 0x9e3779b97f4a7c15u;
static uint64_t rnd(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return rng;
}

/* Kuhn's augmenting path from left vertex u in the closure's bipartite graph. */
static bool augment(int u, int n, const uint64_t *reach, int *match, bool *seen)
{
    for (int v = 0; v < n; v++)
        if ((reach[u] >> v & 1) && !seen[v]) {
            seen[v] = true;
            if (match[v] < 0 || augment(match[v], n, reach, match, seen)) {
                match[v] = u;
                return true;
            }
        }
    return false;
}

/* The width against brute force: n minus a maximum matching in the
** transitive closure (Dilworth), and the antichain checked for being one. */
static void test_width_vs_closure(void **state)
{
    (void)state;
    for (int round = 0; round < 300; round++) {
        int n = 1 + (int)(rnd() % 40), nd = 0;
        static int dep[800][2];
        double cost[64];
        int density = 1 + (int)(rnd() % 12);
        for (int v = 0; v < n; v++) {
            cost[v] = (double)(rnd() % 5); /* zero costs too */
            for (int u = 0; u < v && nd < 800; u++)
                if ((int)(rnd() % 40) < density)
                    dep[nd][0] = u, dep[nd][1] = v, nd++;
        }
        cask_graph_t *g = build((size_t)n, cost, (const int (*)[2])dep, (size_t)nd, NULL);
        uint64_t reach[64] = { 0 }; /* reach[u]: tasks reachable from u */
        for (int v = n; v-- > 0;)
            for (int e = 0; e < nd; e++)
                if (dep[e][0] == v)
                    reach[v] |= (1ull << dep[e][1]) | reach[dep[e][1]];
        int match[64];
        bool seen[64];
        int m = 0;
        for (int v = 0; v < n; v++)
            match[v] = -1;
        for (int u = 0; u < n; u++) {
            memset(seen, 0, sizeof seen);
            m += augment(u, n, reach, match, seen);
        }
        cask_error_t err;
        cask_analysis_t a;
        assert_ok(cask_graph_analyze(g, 0, &a, &err), &err);
        if ((int)a.width != n - m)
            fail_msg("round %d: width %zu, brute force %d", round, a.width, n - m);
        for (size_t i = 0; i < a.width; i++)
            for (size_t j = 0; j < a.width; j++)
                assert_false(reach[cask_graph_index(g, a.antichain[i])] >> cask_graph_index(g, a.antichain[j]) & 1);
        /* the critical path is a path, and costs the span */
        double c = 0;
        for (size_t i = 0; i < a.critical_len; i++) {
            c += cask_graph_cost(g, a.critical_path[i]);
            if (i)
                assert_true(reach[cask_graph_index(g, a.critical_path[i - 1])] >> cask_graph_index(g, a.critical_path[i]) & 1);
        }
        assert_true(fabs(c - a.span) < 1e-9);
        cask_analysis_destroy(&a);
        cask_graph_decref(g);
    }
}

/* A footer value of an STG file: the number after `label`. */
static double footer(const char *path, const char *label)
{
    FILE *f = fopen(path, "r");
    char line[512];
    double v = NAN;
    while (f && fgets(line, sizeof line, f)) {
        char *p = strstr(line, label);
        if (p && (p = strchr(p, ':')))
            v = strtod(p + 1, NULL);
    }
    if (f)
        fclose(f);
    return v;
}

/* The STG graphs: span and parallelism against their footers; simulated
** makespans never below the optimum, and close to it on average: 0.65%
** above it (an order by upward rank alone came to 0.13%; ordering for
** memory among tasks of like slack costs the difference). */
static void test_stg(void **state)
{
    (void)state;
    static const char *const files[] = { "50/rand0000", "50/rand0009", "50/rand0110",
                                         "50/rand0150", "100/rand0000", "100/rand0012",
                                         "100/rand0060", "100/rand0175" };
    double excess = 0;
    int known = 0, pairs = 0;
    for (size_t i = 0; i < 8; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/dagsets/stg/%s.stg", data(), files[i]);
        cask_error_t err;
        cask_graph_t *g;
        assert_ok(cask_graph_load(path, 0, &g, &err), &err);
        cask_analysis_t a;
        assert_ok(cask_graph_analyze(g, 0, &a, &err), &err);
        assert_true(a.span == footer(path, "CP Length"));
        assert_true(fabs(a.average_parallelism - footer(path, "Parallelism")) < 1e-5);
        assert_int_equal(a.tasks, strstr(files[i], "100/") ? 100 : 50);
        for (int p = 2; p <= 16; p *= 2) {
            char csv[512], line[256], want[64];
            snprintf(csv, sizeof csv, "%s/dagsets/stg/Optimal_values/Case%s_%d_OPT.csv", data(),
                     strstr(files[i], "100/") ? "100" : "50", p);
            snprintf(want, sizeof want, "%s.stg,%d,", files[i], p);
            FILE *f = fopen(csv, "r");
            assert_non_null(f);
            double lo = NAN, hi = NAN;
            while (fgets(line, sizeof line, f))
                if (!strncmp(line, want, strlen(want))) {
                    char *end;
                    lo = strtod(line + strlen(want), &end);
                    hi = *end == ',' ? strtod(end + 1, NULL) : lo;
                }
            fclose(f);
            assert_false(isnan(lo));
            cask_sim_opts_t o = { .workers = p };
            cask_sim_result_t r;
            assert_ok(cask_simulate(g, NULL, 0, &o, &r, &err), &err);
            if (r.makespan < lo)
                fail_msg("%s on %d: makespan %g below the optimum %g", files[i], p, r.makespan, lo);
            assert_true(r.makespan >= r.lower_bound);
            pairs++;
            if (lo == hi) {
                excess += r.makespan / lo - 1;
                known++;
            }
            cask_sim_result_destroy(&r);
        }
        cask_analysis_destroy(&a);
        cask_graph_decref(g);
    }
    print_message("STG: %d of %d pairs with a proven optimum; makespan %.3f%% above it on "
                  "average\n", known, pairs, 100 * excess / known);
    assert_true(excess / known <= 0.007);
}

/* Check one analysed file: the figures agree with each other. */
static void check_file(const char *path, size_t *count)
{
    cask_error_t err;
    cask_graph_t *g;
    if (cask_graph_load(path, 0, &g, &err))
        fail_msg("%s: %s", path, err.message);
    cask_analysis_t a;
    assert_ok(cask_graph_analyze(g, 0, &a, &err), &err);
    size_t most = 0, sum = 0;
    for (size_t l = 0; l < a.levels; l++) {
        most = a.level_widths[l] > most ? a.level_widths[l] : most;
        sum += a.level_widths[l];
    }
    assert_int_equal(sum, a.tasks);
    assert_true(a.width >= most && a.width <= a.tasks);
    assert_true(a.span <= a.work + 1e-9 && a.work > 0);
    cask_sim_opts_t o = { .workers = 4 };
    cask_sim_result_t r;
    assert_ok(cask_simulate(g, NULL, 0, &o, &r, &err), &err);
    assert_true(r.makespan >= r.lower_bound * (1 - 1e-12));
    assert_true(fabs(r.span - a.span) < 1e-6 * a.span);
    cask_sim_result_destroy(&r);
    cask_analysis_destroy(&a);
    cask_graph_decref(g);
    ++*count;
}

static void walk(const char *dir, size_t *count)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char path[1024];
        size_t len = strlen(e->d_name);
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (e->d_name[0] == '.')
            continue;
        if (e->d_type == DT_DIR)
            walk(path, count);
        else if ((len > 5 && !strcmp(e->d_name + len - 5, ".json")) ||
                 (len > 4 && (!strcmp(e->d_name + len - 4, ".stg") ||
                              !strcmp(e->d_name + len - 4, ".zip"))))
            check_file(path, count);
    }
    if (d)
        closedir(d);
}

/* Every data set file here (and in ../shared/dagsets when it is there). */
static void test_every_dagset(void **state)
{
    (void)state;
    char dir[512];
    size_t here = 0, shared = 0;
    snprintf(dir, sizeof dir, "%s/dagsets", data());
    walk(dir, &here);
    assert_int_equal(here, 13);
    walk("../shared/dagsets", &shared);
    print_message("analysed %zu data set files here, %zu in ../shared/dagsets\n", here, shared);
}

/* A temporary file holding text; the path in buf. */
static void tmpfile_with(char *buf, size_t size, const char *suffix, const char *text, size_t len)
{
    snprintf(buf, size, "/tmp/cask_an_XXXXXX%s", suffix);
    int fd = mkstemps(buf, (int)strlen(suffix));
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
}

/* Bad files get clear errors. */
static void test_bad_files(void **state)
{
    (void)state;
    static const struct { const char *text, *code, *msg; } bad[] = {
        { "3\n 0 0 0\n 1 5 1 0\n 2 x 1 1\n", "EPARSE", "task 2" },
        { "2\n 0 0 0\n 1 5 1 0\n 2 4 1 3\n 3 0 2 1 2\n", "EPARSE", "predecessor 1 is not a task before it" },
        { "2\n 0 0 0\n 1 5 1 0\n", "EPARSE", "expected id, time" },
        { "{\"workflow\": {\"tasks\": [{\"name\": \"a\", \"runtime\": 1, \"parents\": [\"b\"]}]}}", "EMISSING", "no task 'b'" },
        { "{\"workflow\": {\"tasks\": [{\"name\": \"a\", \"runtime\": 1, \"parents\": [\"b\"]}, {\"name\": \"b\", \"runtime\": 1, \"parents\": [\"a\"]}]}}", "ECYCLE", "cycle: " },
        { "{\"workflow\": {\"tasks\": [{\"name\": \"a\", \"runtime\": -1}]}}", "EPARSE", "runtime must be a number" },
        { "{\"workflow\": {\"specification\": {\"tasks\": [{\"id\": \"a\"}]}, \"execution\": {\"tasks\": []}}}", "EPARSE", "no entry in workflow.execution.tasks" },
        { "{\"workflow\": 3}", "EPARSE", "neither cask-graph" },
        { "{\"workflow\": {\"jobs\": [{\"name\": \"a\", \"runtime\": 1}, {\"name\": \"a\", \"runtime\": 2}]}}", "EDUPKEY", "duplicate task 'a'" },
        { "hello", "EPARSE", "not a graph file" },
        { "{\"workflow\": ", "EPARSE", ":1:" },
        { "PK\3\4 not really a zip", "EPARSE", "zip" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char path[64];
        tmpfile_with(path, sizeof path, ".g", bad[i].text, strlen(bad[i].text));
        cask_error_t err;
        cask_graph_t *g = (cask_graph_t *)1;
        int rc = cask_graph_load(path, 0, &g, &err);
        unlink(path);
        assert_null(g);
        if (strcmp(cask_err_name(rc), bad[i].code) || !strstr(err.message, bad[i].msg))
            fail_msg("case %zu: %s '%s', wanted %s '%s'", i, cask_err_name(rc), err.message,
                     bad[i].code, bad[i].msg);
    }
    /* duplicate parents are dropped; keys are names before schema 1.5 */
    const char *dup = "{\"workflow\": {\"jobs\": [{\"name\": \"a\", \"runtime\": 1}, "
                      "{\"name\": \"b_ID01\", \"runtime\": 2, \"parents\": [\"a\", \"a\"]}]}}";
    char path[64];
    tmpfile_with(path, sizeof path, ".json", dup, strlen(dup));
    cask_error_t err;
    cask_graph_t *g;
    assert_ok(cask_graph_load(path, 0, &g, &err), &err);
    unlink(path);
    assert_int_equal(cask_graph_edges(g), 1);
    char grp[64];
    assert_true(cask_graph_group(g, cask_graph_find(g, "b_ID01"), grp, sizeof grp, NULL) > 0);
    assert_string_equal(grp, "b");
    cask_graph_decref(g);
    assert_int_equal(cask_graph_load("/nonexistent/x.stg", 0, &g, &err), CASK_EIO);
}

/* Pictures: DOT that Graphviz accepts, well-formed SVG, Chrome JSON that
** parses back, and traces that round-trip. */
static void test_pictures(void **state)
{
    (void)state;
    char path[512], out[64], cmd[1024];
    snprintf(path, sizeof path, "%s/dagsets/wfinstances/montage-chameleon-2mass-005d-001.json",
             data());
    cask_error_t err;
    cask_graph_t *g;
    assert_ok(cask_graph_load(path, 0, &g, &err), &err);
    for (int color = 0; color < 3; color++)
        for (int collapse = 1; collapse <= 2; collapse++) {
            snprintf(out, sizeof out, "/tmp/cask_an_%d_%d.dot", color, collapse);
            cask_dot_opts_t o = { .color = color, .collapse = collapse,
                                  .rankdir = collapse == 2 ? "LR" : NULL };
            assert_ok(cask_dot_save(g, out, &o, &err), &err);
            snprintf(cmd, sizeof cmd, "dot -Tsvg %s -o /dev/null", out);
            assert_int_equal(system(cmd), 0);
            FILE *f = fopen(out, "r");
            char text[200000];
            size_t n = fread(text, 1, sizeof text - 1, f);
            fclose(f);
            text[n] = '\0';
            unlink(out);
            if (collapse == 1) /* every task is a node, every edge an edge */
                assert_non_null(strstr(text, "mProject_ID0000001"));
            else
                assert_non_null(strstr(text, "mDiffFit\\n"));
            if (color == CASK_DOT_CRITICAL && collapse == 1)
                assert_non_null(strstr(text, "penwidth=3"));
        }
    cask_dot_opts_t wo = { .color = CASK_DOT_WORKER };
    assert_int_equal(cask_dot_write(g, stdout, &wo, &err), CASK_EINVAL);
    cask_sim_opts_t so = { .workers = 3 };
    cask_sim_result_t r;
    assert_ok(cask_simulate(g, NULL, 0, &so, &r, &err), &err);
    /* an SVG picture through Graphviz, coloured by worker */
    wo.trace = r.trace;
    assert_ok(cask_dot_save(g, "/tmp/cask_an_w.svg", &wo, &err), &err);
    assert_int_equal(system("xmllint --noout /tmp/cask_an_w.svg"), 0);
    unlink("/tmp/cask_an_w.svg");
    assert_int_equal(access("/tmp/cask_an_w.svg.tmp.dot", F_OK), -1);
    /* the timeline */
    assert_ok(cask_timeline_save(r.trace, "/tmp/cask_an_t.svg", NULL, &err), &err);
    assert_int_equal(system("xmllint --noout /tmp/cask_an_t.svg"), 0);
    FILE *f = fopen("/tmp/cask_an_t.svg", "r");
    static char svg[1 << 20];
    size_t n = fread(svg, 1, sizeof svg - 1, f);
    fclose(f);
    svg[n] = '\0';
    unlink("/tmp/cask_an_t.svg");
    assert_non_null(strstr(svg, "worker 2"));
    assert_non_null(strstr(svg, "releasable"));
    assert_non_null(strstr(svg, "utilisation"));
    assert_non_null(strstr(svg, "mProject"));
    /* Chrome JSON */
    assert_ok(cask_trace_save_chrome(r.trace, "/tmp/cask_an_c.json", &err), &err);
    json_error_t je;
    json_t *j = json_load_file("/tmp/cask_an_c.json", 0, &je);
    unlink("/tmp/cask_an_c.json");
    assert_non_null(j);
    json_t *ev = json_object_get(j, "traceEvents");
    size_t x = 0, i;
    json_t *v;
    json_array_foreach(ev, i, v)
        x += !strcmp(json_string_value(json_object_get(v, "ph")), "X");
    assert_int_equal(x, 58);
    json_decref(j);
    /* the trace round-trips, and its durations replay the same schedule */
    assert_ok(cask_trace_save_json(r.trace, "/tmp/cask_an_r.json", &err), &err);
    cask_trace_t *tr;
    assert_ok(cask_trace_load_json("/tmp/cask_an_r.json", &tr, &err), &err);
    unlink("/tmp/cask_an_r.json");
    assert_int_equal(cask_trace_size(tr), 58);
    assert_int_equal(cask_trace_workers(tr), 3);
    so.durations = tr;
    cask_sim_result_t r2;
    assert_ok(cask_simulate(g, NULL, 0, &so, &r2, &err), &err);
    assert_true(fabs(r2.makespan - r.makespan) < 1e-6);
    cask_sim_result_destroy(&r2);
    cask_trace_free(tr);
    cask_sim_result_destroy(&r);
    cask_graph_decref(g);
    /* a bad trace */
    char bad[64];
    const char *bt = "{\"workers\": 2, \"tasks\": [{\"key\": \"a\"}]}";
    tmpfile_with(bad, sizeof bad, ".json", bt, strlen(bt));
    assert_int_equal(cask_trace_load_json(bad, &tr, &err), CASK_EPARSE);
    assert_msg_has(&err, "tasks[0]");
    unlink(bad);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_checked),
        cmocka_unit_test(test_width_vs_closure),
        cmocka_unit_test(test_stg),
        cmocka_unit_test(test_every_dagset),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_pictures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

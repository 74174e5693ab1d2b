/* tests/unit/test_cli.c: the cask command, run as a user would. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

static char out[65536], errtxt[65536];

static const char *bin(void)
{
    const char *b = getenv("CASK_BIN");
    return b ? b : "build/cask";
}

static const char *data(void)
{
    const char *d = getenv("CASK_TESTDATA");
    return d ? d : "tests/data";
}

static void slurp(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, cap - 1, f) : 0;
    buf[n] = '\0';
    if (f)
        fclose(f);
}

/* Run `cask ARGS` through sh; capture stdout and stderr; return the exit code. */
static int run(const char *args)
{
    char cmd[2048], o[] = "/tmp/cask-cli-out-XXXXXX", e[] = "/tmp/cask-cli-err-XXXXXX";
    close(mkstemp(o));
    close(mkstemp(e));
    snprintf(cmd, sizeof cmd, "%s %s >%s 2>%s", bin(), args, o, e);
    int st = system(cmd);
    slurp(o, out, sizeof out);
    slurp(e, errtxt, sizeof errtxt);
    unlink(o);
    unlink(e);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* cask.crash really kills its process with SIGSEGV: the shell reports 128 + 11. */
static void test_crash_kernel(void **state)
{
    (void)state;
    char args[512];
    snprintf(args, sizeof args, "run %s/graphs/crash.json", data());
    setenv("ASAN_OPTIONS", "handle_segv=0", 1); /* a sanitizer build: let the signal kill */
    assert_int_equal(run(args), 128 + 11);
    unsetenv("ASAN_OPTIONS");
}

/* On processes the crash takes a worker, not cask: retried, then reported. */
static void test_processes_retries(void **state)
{
    (void)state;
    char args[512];
    const char *tries[] = { "0", "2", NULL }, *want[] = { "1 attempt,", "3 attempts", "2 attempts" };
    for (int i = 0; i < 3; i++) {
        snprintf(args, sizeof args, "run %s/graphs/crash.json --scheduler processes --workers 2%s%s",
                 data(), tries[i] ? " --retries " : "", tries[i] ? tries[i] : "");
        assert_int_equal(run(args), 1);
        if (!strstr(errtxt, want[i]) || !strstr(errtxt, "signal 11") || !strstr(errtxt, "boom"))
            fail_msg("stderr: %s", errtxt);
    }
    snprintf(args, sizeof args, "run %s/graphs/diamond.json --scheduler processes --retries x",
             data());
    assert_int_equal(run(args), 2);
    assert_non_null(strstr(errtxt, "--retries 'x'"));
    /* a trace from processes: every task once, on workers 0 and 1 */
    char trace[] = "/tmp/cask-cli-trace-XXXXXX";
    close(mkstemp(trace));
    snprintf(args, sizeof args, "run %s/graphs/diamond.json -s processes -w 2 --trace %s --progress",
             data(), trace);
    assert_int_equal(run(args), 0);
    assert_non_null(strstr(out, "total = 23.5"));
    assert_non_null(strstr(errtxt, "100%  4/4 tasks"));
    json_error_t je;
    json_t *j = json_load_file(trace, 0, &je);
    unlink(trace);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "workers")), 2);
    assert_int_equal(json_array_size(json_object_get(j, "tasks")), 4);
    json_decref(j);
}

static void test_help_and_usage(void **state)
{
    (void)state;
    assert_int_equal(run("--help"), 0);
    assert_non_null(strstr(out, "run FILE"));
    assert_int_equal(run("run --help"), 0);
    assert_non_null(strstr(out, "--scheduler"));
    assert_non_null(strstr(out, "--trace"));
    assert_int_equal(run(""), 2);
    assert_int_equal(run("bogus"), 2);
    assert_non_null(strstr(errtxt, "unknown command 'bogus'"));
    assert_int_equal(run("--version"), 0);
    assert_non_null(strstr(out, CASK_VERSION));
    assert_int_equal(run("run"), 2);
    assert_int_equal(run("run a.json b.json"), 2);
    assert_int_equal(run("run --frobnicate x.json"), 2);
}

static void test_run_prints_outputs(void **state)
{
    (void)state;
    char args[512];
    snprintf(args, sizeof args, "run %s/graphs/diamond.json", data());
    assert_int_equal(run(args), 0);
    assert_string_equal(out, "total = 23.5\nleft = 11\n");
}

static void test_run_json_and_trace(void **state)
{
    (void)state;
    char args[512], trace[] = "/tmp/cask-cli-trace-XXXXXX";
    close(mkstemp(trace));
    snprintf(args, sizeof args, "run %s/graphs/diamond.json --json --trace %s --workers 1",
             data(), trace);
    assert_int_equal(run(args), 0);
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);
    assert_non_null(j);
    assert_true(json_real_value(json_object_get(json_object_get(j, "outputs"), "total")) == 23.5);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "outputs"), "left")), 11);
    json_t *stats = json_object_get(j, "stats");
    assert_int_equal(json_integer_value(json_object_get(stats, "tasks")), 4);
    assert_true(json_is_real(json_object_get(stats, "wall_s")));
    json_decref(j);

    j = json_load_file(trace, 0, &je);
    unlink(trace);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "workers")), 1);
    json_t *tasks = json_object_get(j, "tasks");
    assert_int_equal(json_array_size(tasks), 4);
    size_t i;
    json_t *t;
    int seen_root = 0;
    json_array_foreach(tasks, i, t) {
        json_int_t s = json_integer_value(json_object_get(t, "start_ns"));
        json_int_t e = json_integer_value(json_object_get(t, "end_ns"));
        assert_true(s >= 0 && s <= e);
        assert_int_equal(json_integer_value(json_object_get(t, "worker")), 0);
        assert_non_null(json_string_value(json_object_get(t, "group")));
        seen_root |= !strcmp(json_string_value(json_object_get(t, "key")), "root");
    }
    assert_true(seen_root);
    assert_string_equal(json_string_value(json_object_get(json_array_get(tasks, 0), "key")), "root");
    json_decref(j);
}

static void test_run_failures(void **state)
{
    (void)state;
    char args[512];
    snprintf(args, sizeof args, "run %s/graphs/fail.json", data());
    assert_int_equal(run(args), 1);
    assert_non_null(strstr(errtxt, "broken-7"));
    assert_non_null(strstr(errtxt, "cask.fail"));
    assert_non_null(strstr(errtxt, "the answer was not 42"));
    assert_string_equal(out, "");
    snprintf(args, sizeof args, "run %s/json_bad/cycle.json", data());
    assert_int_equal(run(args), 2);
    assert_non_null(strstr(errtxt, "cycle"));
    assert_non_null(strstr(errtxt, "cycle.json"));
    assert_int_equal(run("run /nonexistent.json"), 2);
    assert_non_null(strstr(errtxt, "/nonexistent.json"));
    snprintf(args, sizeof args, "run %s/graphs/diamond.json --workers 0", data());
    assert_int_equal(run(args), 2);
    assert_non_null(strstr(errtxt, "--workers '0'"));
    snprintf(args, sizeof args, "run %s/graphs/diamond.json --scheduler warp", data());
    assert_int_equal(run(args), 2);
    assert_non_null(strstr(errtxt, "unknown scheduler 'warp'"));
    snprintf(args, sizeof args, "run %s/graphs/diamond.json", data());
    setenv("CASK_SCHEDULER", "warp", 1);
    assert_int_equal(run(args), 2);
    assert_non_null(strstr(errtxt, "CASK_SCHEDULER"));
    unsetenv("CASK_SCHEDULER");
}

/* analyze, simulate, dot and timeline, with --json, as the issue names them. */
static void test_analysis_commands(void **state)
{
    (void)state;
    char args[1024];
    const char *subs[] = { "analyze", "simulate", "dot", "timeline" };
    for (int i = 0; i < 4; i++) {
        snprintf(args, sizeof args, "%s --help", subs[i]);
        assert_int_equal(run(args), 0);
        assert_non_null(strstr(out, "--json"));
        snprintf(args, sizeof args, "%s", subs[i]);
        assert_int_equal(run(args), 2);
    }
    snprintf(args, sizeof args, "analyze --json %s/dagsets/stg/50/rand0000.stg", data());
    assert_int_equal(run(args), 0);
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);
    assert_non_null(j);
    static const char *const fields[] = { "tasks", "edges", "work", "span", "critical_path",
                                          "average_parallelism", "width", "antichain",
                                          "levels", "level_widths" };
    for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++)
        if (!json_object_get(j, fields[f]))
            fail_msg("analyze --json lacks %s", fields[f]);
    assert_int_equal(json_integer_value(json_object_get(j, "tasks")), 50);
    assert_true(json_real_value(json_object_get(j, "span")) == 55);
    assert_int_equal(json_array_size(json_object_get(j, "antichain")),
                     json_integer_value(json_object_get(j, "width")));
    json_decref(j);

    snprintf(args, sizeof args, "simulate %s/dagsets/wfinstances/helloworld-forkjoin-10-chameleon.json "
             "--workers 1,2,8 --json --trace /tmp/cask-cli-sim.json", data());
    assert_int_equal(run(args), 0);
    j = json_loads(out, 0, &je);
    json_t *runs = json_object_get(j, "runs");
    assert_int_equal(json_array_size(runs), 3);
    static const char *const rf[] = { "workers", "makespan", "lower_bound", "speedup",
                                      "efficiency", "idle", "releasable" };
    for (size_t r = 0; r < 3; r++)
        for (size_t f = 0; f < 7; f++)
            if (!json_object_get(json_array_get(runs, r), rf[f]))
                fail_msg("simulate --json run %zu lacks %s", r, rf[f]);
    /* on 8 workers the fork-join takes its span: the three levels' longest tasks */
    json_t *r8 = json_array_get(runs, 2);
    assert_true(fabs(json_real_value(json_object_get(r8, "makespan")) - 307.36) < 1e-6);
    assert_int_equal(json_array_size(json_object_get(r8, "idle")), 8);
    json_decref(j);

    assert_int_equal(run("timeline /tmp/cask-cli-sim.json -o /tmp/cask-cli-sim.svg "
                         "--chrome /tmp/cask-cli-sim-c.json --json"), 0);
    j = json_loads(out, 0, &je);
    assert_int_equal(json_integer_value(json_object_get(j, "workers")), 8);
    assert_int_equal(json_integer_value(json_object_get(j, "tasks")), 10);
    json_decref(j);
    assert_int_equal(system("xmllint --noout /tmp/cask-cli-sim.svg"), 0);
    unlink("/tmp/cask-cli-sim.json");
    unlink("/tmp/cask-cli-sim.svg");
    unlink("/tmp/cask-cli-sim-c.json");

    snprintf(args, sizeof args, "dot %s/dagsets/legacy/epigenomics-ilmn-100000-cc-run001.json.zip "
             "-o /tmp/cask-cli.png --json", data());
    assert_int_equal(run(args), 0);
    j = json_loads(out, 0, &je);
    assert_true(json_is_true(json_object_get(j, "collapsed"))); /* 889 tasks */
    json_decref(j);
    slurp("/tmp/cask-cli.png", out, 16);
    assert_memory_equal(out, "\x89PNG", 4);
    unlink("/tmp/cask-cli.png");
    assert_int_equal(run("dot nothing.json --color worker"), 2);
    assert_non_null(strstr(errtxt, "--trace"));

    /* cask run --timeline draws the real run */
    snprintf(args, sizeof args, "run %s/graphs/diamond.json --scheduler threads --workers 2 "
             "--timeline /tmp/cask-cli-run.svg", data());
    assert_int_equal(run(args), 0);
    assert_int_equal(system("xmllint --noout /tmp/cask-cli-run.svg"), 0);
    unlink("/tmp/cask-cli-run.svg");
}

/* cask run --memory-limit: a task bigger than the budget is refused before
** it runs; a bad byte count is a usage error; the budget is in the stats. */
static void test_run_memory_limit(void **state)
{
    (void)state;
    char path[] = "/tmp/cask-cli-budget-XXXXXX", args[512];
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    static const char graph[] =
        "{\"format\": \"cask-graph\", \"version\": 1, \"tasks\": ["
        "{\"key\": \"producer\", \"kernel\": \"cask.add\", \"inputs\": [1, 2], \"nbytes\": 500},"
        "{\"key\": \"sum\", \"kernel\": \"cask.add\", \"inputs\": [{\"ref\": \"producer\"}, 3]}]}";
    assert_int_equal(write(fd, graph, sizeof graph - 1), (ssize_t)(sizeof graph - 1));
    close(fd);
    snprintf(args, sizeof args, "run %s --memory-limit 100", path);
    assert_int_equal(run(args), 1);
    if (!strstr(errtxt, "needs 500 bytes at once") || !strstr(errtxt, "(task producer)"))
        fail_msg("stderr: %s", errtxt);
    snprintf(args, sizeof args, "run %s --memory-limit lots", path);
    assert_int_equal(run(args), 2);
    assert_non_null(strstr(errtxt, "not a byte count"));
    snprintf(args, sizeof args, "run %s -m 1MB --json", path);
    assert_int_equal(run(args), 0);
    if (!strstr(out, "\"memory_limit\": 1000000") || !strstr(out, "\"sum\": 6"))
        fail_msg("stdout: %s", out);
    unlink(path);
}

/* cask run --cache: the second run reads every output from the directory
** and says so in its stats; a file where the directory should be is an
** error. */
static void test_run_cache(void **state)
{
    (void)state;
    char path[] = "/tmp/cask-cli-cache-XXXXXX", dir[] = "/tmp/cask-cli-cachedir-XXXXXX";
    char args[1024];
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_non_null(mkdtemp(dir));
    static const char graph[] =
        "{\"format\": \"cask-graph\", \"version\": 1, \"tasks\": ["
        "{\"key\": \"a\", \"kernel\": \"cask.add\", \"inputs\": [1, 2]},"
        "{\"key\": \"b\", \"kernel\": \"cask.add\", \"inputs\": [{\"ref\": \"a\"}, 3]},"
        "{\"key\": \"c\", \"kernel\": \"cask.add\", \"inputs\": [{\"ref\": \"b\"}, 4]}],"
        "\"outputs\": [\"b\", \"c\"]}";
    assert_int_equal(write(fd, graph, sizeof graph - 1), (ssize_t)(sizeof graph - 1));
    close(fd);
    snprintf(args, sizeof args, "run %s --cache %s --json", path, dir);
    assert_int_equal(run(args), 0);
    if (!strstr(out, "\"cached\": 0") || !strstr(out, "\"c\": 10"))
        fail_msg("stdout: %s", out);
    assert_int_equal(run(args), 0);
    if (!strstr(out, "\"cached\": 2") || !strstr(out, "\"tasks\": 2") || !strstr(out, "\"c\": 10"))
        fail_msg("stdout: %s", out);
    snprintf(args, sizeof args, "run %s --cache %s", path, path);
    assert_int_equal(run(args), 1);
    assert_non_null(strstr(errtxt, "not a directory"));
    snprintf(args, sizeof args, "rm -rf %s", dir);
    assert_int_equal(system(args), 0);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help_and_usage),
        cmocka_unit_test(test_run_prints_outputs),
        cmocka_unit_test(test_run_json_and_trace),
        cmocka_unit_test(test_run_failures),
        cmocka_unit_test(test_crash_kernel),
        cmocka_unit_test(test_processes_retries),
        cmocka_unit_test(test_analysis_commands),
        cmocka_unit_test(test_run_memory_limit),
        cmocka_unit_test(test_run_cache),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
** 09_json2text.c: the course's process-pool job with a bag: a folder of
** JSON papers (a research corpus: metadata.title, abstract[].text,
** body_text[].text, one file per paper) converted to plain text files.
**
** The job itself is convert(), papers_to_text() and job(): a bag of the
** files, a map to [text path, text] records, write_files. The rest of this file makes a
** small corpus with the real one's structure, checks every text file, and
** prints the course's table: elapsed time against chunk size (files per
** partition) for 2 and 4 workers on threads and processes, beside what
** the schedule simulator predicts from one timed run on one worker; then
** what a paper and a partition cost, measured from a traced run, and the
** chunk size cask_bag_choose_npartitions picks from them, run and
** simulated.
**
**     09_json2text [FILES]     (default 120 papers of 20 to 200 KB)
**     09_json2text --figures PAPERS OUT   bench figures: the papers in folder
**                  PAPERS converted into OUT on threads and on processes, 2
**                  workers, partitions chosen by the bag (the best of 3 runs)
*/
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cask/cask.h>

/* ---------------------------------------------------------------- the job */

/* Append the "text" of each paragraph of array a, a blank line after each. */
static void paragraphs(json_t *a, FILE *f)
{
    size_t i;
    json_t *p;
    json_array_foreach(a, i, p)
        fprintf(f, "%s\n\n", json_string_value(json_object_get(p, "text")) ?: "");
}

/* A paper's path and the output folder -> [text path, text]. */
static CASK_KERNEL(convert)
{
    const char *path = cask_value_str(&args[0], NULL), *outdir = cask_value_str(&args[1], NULL);
    /* read it whole, then parse (json_load_file reads a character at a time) */
    FILE *in = fopen(path, "rb");
    char *buf = NULL;
    long size = in && !fseek(in, 0, SEEK_END) ? ftell(in) : -1;
    if (size >= 0 && (buf = malloc((size_t)size + 1)))
        size = !fseek(in, 0, SEEK_SET) && fread(buf, 1, (size_t)size, in) == (size_t)size ? size : -1;
    if (in)
        fclose(in);
    json_error_t je;
    json_t *doc = size >= 0 && buf ? json_loadb(buf, (size_t)size, 0, &je) : NULL;
    free(buf);
    if (!doc)
        return size < 0 ? cask_kernel_fail(ctx, "cannot read %s", path)
                        : cask_kernel_fail(ctx, "%s: line %d: %s", path, je.line, je.text);
    char *text = NULL, name[4096];
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    fprintf(f, "%s\n\n", json_string_value(json_object_get(json_object_get(doc, "metadata"),
                                                           "title")) ?: "");
    paragraphs(json_object_get(doc, "abstract"), f);
    paragraphs(json_object_get(doc, "body_text"), f);
    fclose(f);
    json_decref(doc);
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    snprintf(name, sizeof name, "%s/%.*s.txt", outdir, (int)(strcspn(base, ".")), base);
    cask_value_t rec[2];
    int rc = cask_value_string(name, (size_t)-1, &rec[0], NULL);
    if (!rc && !(rc = cask_value_string(text, len, &rec[1], NULL))) {
        rc = cask_value_list(rec, 2, out, NULL);
        cask_value_decref(&rec[1]);
    }
    cask_value_decref(&rec[0]);
    free(text);
    return rc;
}

/* Add the job to g: the papers matching pattern converted into outdir,
** chunk files a partition (0: as the bag picks); the task that writes them
** (its value: the files written), and the bag of [path, text] records in
** *texts (a new reference). */
static cask_task_t papers_to_text(cask_graph_t *g, const char *pattern, const char *outdir,
                                  size_t files, size_t chunk, cask_bag_t **texts,
                                  cask_error_t *err)
{
    cask_bag_t *papers = cask_bag_from_glob(g, pattern, 0, chunk ? (files + chunk - 1) / chunk : 0,
                                            err); /* chunk 0: the bag picks */
    cask_value_t dir;
    cask_value_string(outdir, (size_t)-1, &dir, err);
    *texts = cask_bag_map(papers, "convert", &dir, 1, err);
    cask_value_decref(&dir);
    cask_bag_decref(papers);
    return cask_bag_write_files(*texts, err);
}

/* Run the job on opts, its info in *info (may be NULL); with timing, what
** a paper and a partition cost (the compute must be traced). */
static int job(const char *pattern, const char *outdir, size_t files, size_t chunk,
               const cask_compute_opts_t *opts, cask_compute_info_t *info,
               cask_bag_timing_t *timing, cask_error_t *err)
{
    cask_graph_t *g = cask_graph_new(err);
    cask_bag_t *texts;
    cask_task_t written = papers_to_text(g, pattern, outdir, files, chunk, &texts, err);
    cask_value_t n;
    int rc = written == CASK_NO_TASK ? err->code
                                     : cask_compute(g, &written, 1, opts, &n, info, err);
    if (!rc && timing)
        rc = cask_bag_timing(texts, info->trace, timing, err);
    cask_bag_decref(texts);
    cask_graph_decref(g);
    return rc ? rc : cask_value_int(&n) == (int64_t)files ? 0 : CASK_EIO;
}

/* ------------------------------------------------------- corpus and checks */

static uint64_t seed = 88172645463325252ull;

static unsigned rnd(unsigned n)
{
    seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
    return (unsigned)(seed % n);
}

/* A paragraph of about `words` words. */
static json_t *paragraph(int words)
{
    static const char *const w[] = { "the", "cell", "protein", "binding", "of", "viral",
                                     "response", "and", "model", "data", "in", "patients" };
    char *s = malloc((size_t)words * 10 + 2), *p = s;
    for (int i = 0; i < words; i++)
        p += sprintf(p, "%s%s", i ? " " : "", w[rnd(12)]);
    json_t *o = json_pack("{s:s,s:s}", "text", s, "section", "Results");
    free(s);
    return o;
}

/* n papers of 20 to 200 KB in dir. */
static void make_corpus(const char *dir, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        json_t *abs = json_array(), *body = json_array();
        json_array_append_new(abs, paragraph(40 + (int)rnd(80)));
        size_t target = 20000 + rnd(180000), size = 0;
        while (size < target) {
            int words = 60 + (int)rnd(200);
            json_array_append_new(body, paragraph(words));
            size += (size_t)words * 7 + 40;
        }
        char id[64], path[4200];
        snprintf(id, sizeof id, "paper%05zu", i);
        json_t *doc = json_pack("{s:s,s:{s:s},s:o,s:o}", "paper_id", id, "metadata", "title",
                                id, "abstract", abs, "body_text", body);
        snprintf(path, sizeof path, "%s/%s.json", dir, id);
        json_dump_file(doc, path, JSON_INDENT(1));
        json_decref(doc);
    }
}

/* Every text file is what convert() makes of its paper, run here. */
static int check(const char *indir, const char *outdir, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/paper%05zu.json", indir, i);
        cask_value_t args[2], rec;
        cask_value_string(path, (size_t)-1, &args[0], NULL);
        cask_value_string(outdir, (size_t)-1, &args[1], NULL);
        int rc = convert(args, 2, &rec, NULL);
        cask_value_t name = cask_list_item(&rec, 0), text = cask_list_item(&rec, 1);
        size_t len, got = 0;
        const char *want = cask_value_str(&text, &len);
        FILE *f = rc ? NULL : fopen(cask_value_str(&name, NULL), "rb");
        char *buf = malloc(len + 1);
        if (f)
            got = fread(buf, 1, len + 1, f), fclose(f);
        bool ok = f && got == len && !memcmp(buf, want, len);
        free(buf);
        cask_value_decref(&rec);
        cask_value_decref(&args[0]);
        cask_value_decref(&args[1]);
        if (!ok) {
            fprintf(stderr, "09_json2text: %s: wrong or missing text\n", path);
            return 1;
        }
    }
    return 0;
}

/* Seconds on the monotonic clock. */
static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The simulator's makespan in ms, *ms, of the job's graph at chunk files
** a partition on w workers, with the durations of base, a trace of it. */
static int predict(const char *pattern, const char *out, size_t files, size_t chunk, int w,
                   const cask_trace_t *base, double *ms, cask_error_t *err)
{
    cask_graph_t *g = cask_graph_new(err);
    cask_bag_t *texts;
    cask_task_t wf = papers_to_text(g, pattern, out, files, chunk, &texts, err);
    cask_sim_opts_t so = { .workers = w, .durations = base };
    cask_sim_result_t sim;
    int rc = wf == CASK_NO_TASK ? err->code : cask_simulate(g, &wf, 1, &so, &sim, err);
    if (!rc) {
        *ms = sim.makespan * 1e3;
        cask_sim_result_destroy(&sim);
    }
    cask_bag_decref(texts);
    cask_graph_decref(g);
    return rc;
}

/* The rule from measured figures: a traced run on threads (2 workers) with
** the partitions the bag picks alone, then a run, checked, with the
** partitions cask_bag_choose_npartitions picks from what it measured. */
static int rule_row(const char *pattern, const char *in, const char *out, size_t files,
                    cask_error_t *err)
{
    cask_compute_opts_t o = { .scheduler = "threads", .workers = 2, .flags = CASK_TRACE };
    cask_compute_info_t info = { 0 }, base = { 0 };
    cask_bag_timing_t t;
    int rc = job(pattern, out, files, 0, &o, &info, &t, err);
    cask_trace_free(info.trace);
    if (rc)
        return rc;
    size_t np = cask_bag_choose_npartitions(files, 2, &t), chunk = (files + np - 1) / np;
    cask_compute_opts_t one = { .scheduler = "sync", .flags = CASK_TRACE };
    o.flags = 0;
    double ms = 0;
    if (!(rc = job(pattern, out, files, chunk, &o, &info, NULL, err)) &&
        !(rc = check(in, out, files)) &&
        !(rc = job(pattern, out, files, chunk, &one, &base, NULL, err)))
        rc = predict(pattern, out, files, chunk, 2, base.trace, &ms, err);
    cask_trace_free(base.trace);
    if (!rc)
        printf("measured (threads, 2 workers): %.2f ms a paper, %.0f us a partition more;\n"
               "the rule's chunk for 2 workers: %zu papers a partition, %.0f ms (%.0f)\n",
               t.item_s * 1e3, t.task_s * 1e6, chunk, info.wall_s * 1e3, ms);
    return rc;
}

/* The bench's figures for the papers in dir converted into out. */
static int figures(const char *dir, const char *out)
{
    char pattern[4200];
    size_t files = 0;
    double mb = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        struct stat st;
        snprintf(pattern, sizeof pattern, "%s/%s", dir, e->d_name);
        if (strstr(e->d_name, ".json") && !stat(pattern, &st))
            files++, mb += (double)st.st_size / 1e6;
    }
    if (d)
        closedir(d);
    snprintf(pattern, sizeof pattern, "%s/*.json", dir);
    static const char *const scheds[] = { "threads", "processes" };
    for (int s = 0; s < 2; s++) {
        double best = 1e30;
        for (int rep = 0; rep < 3; rep++) {
            cask_compute_opts_t o = { .scheduler = scheds[s], .workers = 2 };
            cask_error_t err;
            double t0 = now();
            if (job(pattern, out, files, 0, &o, NULL, NULL, &err)) {
                fprintf(stderr, "09_json2text: %s\n", err.message);
                return 1;
            }
            double t = now() - t0;
            best = t < best ? t : best;
        }
        printf("json2text.%s.cask.s %.4f\n", scheds[s], best);
        printf("json2text.%s.cask.mb_s %.1f\n", scheds[s], mb / best);
    }
    printf("json2text.files %zu\njson2text.mb %.1f\n", files, mb);
    return 0;
}

int main(int argc, char **argv)
{
    cask_error_t err;
    if (argc == 4 && !strcmp(argv[1], "--figures")) {
        cask_kernel_register("convert", convert, NULL, &err);
        return figures(argv[2], argv[3]);
    }
    size_t files = argc > 1 ? strtoul(argv[1], NULL, 10) : 120;
    char root[] = "/tmp/cask-json2text-XXXXXX", in[64], out[64], pattern[80];
    if (!files || !mkdtemp(root))
        return 1;
    snprintf(in, sizeof in, "%s/papers", root);
    snprintf(out, sizeof out, "%s/text", root);
    snprintf(pattern, sizeof pattern, "%s/*.json", in);
    mkdir(in, 0700);
    mkdir(out, 0700);
    make_corpus(in, files);
    cask_kernel_register("convert", convert, NULL, &err);

    printf("%zu papers -> text, elapsed ms (simulated from one timed run on 1 worker)\n", files);
    printf("%-10s %-10s %16s %16s\n", "chunk", "scheduler", "2 workers", "4 workers");
    static const size_t chunks[] = { 1, 4, 16, 64 };
    static const char *const scheds[] = { "threads", "processes" };
    int rc = 0;
    for (size_t c = 0; c < 4 && !rc; c++) {
        /* one timed run on one worker: its durations drive the simulator */
        cask_compute_info_t base;
        cask_compute_opts_t one = { .scheduler = "sync", .flags = CASK_TRACE };
        if ((rc = job(pattern, out, files, chunks[c], &one, &base, NULL, &err)))
            break;
        for (size_t s = 0; s < 2 && !rc; s++) {
            printf("%-10zu %-10s", chunks[c], scheds[s]);
            for (int w = 2; w <= 4 && !rc; w += 2) {
                cask_compute_opts_t o = { .scheduler = scheds[s], .workers = w };
                cask_compute_info_t info;
                if ((rc = job(pattern, out, files, chunks[c], &o, &info, NULL, &err)) ||
                    (rc = check(in, out, files)))
                    break;
                double ms;
                if (!(rc = predict(pattern, out, files, chunks[c], w, base.trace, &ms, &err)))
                    printf(" %7.0f (%6.0f)", info.wall_s * 1e3, ms);
                cask_trace_free(info.trace);
            }
            printf("\n");
        }
        cask_trace_free(base.trace);
    }
    if (!rc)
        rc = rule_row(pattern, in, out, files, &err);
    if (rc)
        fprintf(stderr, "09_json2text: %s\n", err.message);
    else
        printf("every text file checked\n");
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    if (system(cmd))
        return 1;
    return rc != 0;
}

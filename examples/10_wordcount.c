/*
** 10_wordcount.c: word frequencies over text files, MapReduce-style, with
** a bag: the files' lines in blocks of 256 KB (one big file is read in
** parallel), each block split into lowercase words, frequencies summed
** across blocks, the top 20 printed. The counts are checked by counting
** those 20 words again, sequentially.
**
**     10_wordcount [FILE...]     (default: 4 generated files of about 2 MB)
**     10_wordcount --figures FILE  bench figures: the top 20 of FILE in blocks
**                  of 32 MB on threads and on processes, 2 workers (best of 3)
*/
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cask/cask.h>

/* A partition of lines -> the list of their words, lowercased. */
static CASK_KERNEL(split_words)
{
    cask_list_builder_t b;
    cask_list_builder_init(&b);
    int rc = 0;
    for (size_t i = 0; i < cask_list_len(&args[0]) && !rc; i++) {
        cask_value_t line = cask_list_item(&args[0], i);
        size_t len;
        const char *s = cask_value_str(&line, &len);
        char word[64];
        size_t w = 0;
        for (size_t j = 0; j <= len && !rc; j++) {
            if (j < len && isalpha((unsigned char)s[j])) {
                if (w < sizeof word)
                    word[w++] = (char)tolower((unsigned char)s[j]);
            } else if (w) {
                rc = cask_list_builder_append_str(&b, word, w, NULL);
                w = 0;
            }
        }
    }
    if (!rc)
        rc = cask_list_builder_finish(&b, out, NULL);
    cask_list_builder_destroy(&b);
    return rc;
}

/* How often word occurs in the files, counted here one word at a time. */
static long count_word(char **paths, int n, const char *word)
{
    long count = 0;
    for (int i = 0; i < n; i++) {
        FILE *f = fopen(paths[i], "r");
        char w[64];
        size_t k = 0;
        for (int c = 0; f && c != EOF;) {
            c = getc(f);
            if (c != EOF && isalpha(c)) {
                if (k < sizeof w - 1)
                    w[k++] = (char)tolower(c);
            } else if (k) { /* a word ends */
                w[k] = 0;
                count += !strcmp(w, word);
                k = 0;
            }
        }
        if (f)
            fclose(f);
    }
    return count;
}

/* n files of about 2 MB of words drawn with Zipf-like weights. */
static char **make_files(const char *dir, int n)
{
    static const char *const w[] = { "the", "of", "and", "to", "in", "a", "is", "that",
                                     "for", "it", "as", "was", "with", "be", "by", "on",
                                     "not", "he", "this", "are", "or", "his", "from", "at",
                                     "which", "but", "have", "an", "had", "they" };
    char **paths = calloc((size_t)n, sizeof *paths);
    uint64_t x = 12345;
    for (int i = 0; i < n; i++) {
        paths[i] = malloc(strlen(dir) + 32);
        sprintf(paths[i], "%s/text%d.txt", dir, i);
        FILE *f = fopen(paths[i], "w");
        for (long bytes = 0; f && bytes < 2000000;) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            long r = (long)(x % 3983), k = 0; /* 3983: the sum of 1000 / (k + 1), k < 30 */
            while (k < 29 && (r -= 1000 / (k + 1)) >= 0) /* rank k, weight 1/(k+1) */
                k++;
            bytes += fprintf(f, "%s%s", w[k], x % 11 ? " " : ".\n");
        }
        if (f)
            fclose(f);
    }
    return paths;
}

/* The top 20 words of the bag of lines of paths[0..n) in *top. */
static int top20(char **paths, int n, size_t block, const cask_compute_opts_t *opts,
                 cask_value_t *top, size_t *blocks, cask_error_t *err)
{
    cask_graph_t *g = cask_graph_new(err);
    cask_bag_t *lines = cask_bag_read_text(g, (const char *const *)paths, (size_t)n, block, err);
    cask_bag_t *words = cask_bag_map_partitions(lines, "split_words", NULL, 0, err);
    cask_bag_t *freq = cask_bag_frequencies(words, true, err);
    int rc = cask_bag_take(freq, 20, opts, top, err);
    *blocks = cask_bag_npartitions(lines);
    cask_bag_decref(freq);
    cask_bag_decref(words);
    cask_bag_decref(lines);
    cask_graph_decref(g);
    return rc;
}

/* The bench's figures for the file at path. */
static int figures(char *path)
{
    static const char *const scheds[] = { "threads", "processes" };
    for (int s = 0; s < 2; s++) {
        double best = 1e30;
        for (int rep = 0; rep < 3; rep++) {
            cask_compute_opts_t o = { .scheduler = scheds[s], .workers = 2 };
            cask_error_t err;
            cask_value_t top;
            size_t blocks;
            struct timespec t0, t1;
            clock_gettime(CLOCK_MONOTONIC, &t0);
            if (top20(&path, 1, 32 << 20, &o, &top, &blocks, &err)) {
                fprintf(stderr, "10_wordcount: %s\n", err.message);
                return 1;
            }
            clock_gettime(CLOCK_MONOTONIC, &t1);
            double t = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
            best = t < best ? t : best;
            cask_value_decref(&top);
        }
        printf("wordcount.%s.cask.s %.4f\n", scheds[s], best);
    }
    return 0;
}

int main(int argc, char **argv)
{
    cask_error_t err;
    if (argc == 3 && !strcmp(argv[1], "--figures")) {
        cask_kernel_register("split_words", split_words, NULL, &err);
        return figures(argv[2]);
    }
    char dir[] = "/tmp/cask-wordcount-XXXXXX";
    char **paths = argv + 1, **made = NULL;
    int n = argc - 1;
    if (!n) {
        if (!mkdtemp(dir))
            return 1;
        paths = made = make_files(dir, n = 4);
    }
    cask_kernel_register("split_words", split_words, NULL, &err);
    cask_value_t top;
    size_t blocks;
    int rc = top20(paths, n, 256 << 10, NULL, &top, &blocks, &err);
    if (!rc) {
        printf("%zu blocks of lines; the top 20 words:\n", blocks);
        for (size_t i = 0; i < cask_list_len(&top) && !rc; i++) {
            cask_value_t pair = cask_list_item(&top, i), w = cask_list_item(&pair, 0);
            long c = (long)cask_list_item(&pair, 1).u.i;
            printf("%8ld  %s\n", c, cask_value_str(&w, NULL));
            if (count_word(paths, n, cask_value_str(&w, NULL)) != c) {
                fprintf(stderr, "10_wordcount: wrong count for '%s'\n", cask_value_str(&w, NULL));
                rc = 1;
            }
        }
        cask_value_decref(&top);
    } else
        fprintf(stderr, "10_wordcount: %s\n", err.message);
    for (int i = 0; made && i < n; i++)
        unlink(made[i]), free(made[i]);
    if (made)
        rmdir(dir), free(made);
    return rc != 0;
}

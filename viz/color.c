/*
** viz/color.c: colours, XML escaping and running Graphviz.
*/
#include <errno.h>
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>

#include "viz.h"

extern char **environ;

/*
** The palette of groups and workers. Its 20 colours came from a search of
** CIELAB for colours far apart, among sRGB colours light enough for black
** text (L* 55 to 88), and three were then replaced by hand (two glaring
** ones, one too near cask__other_color); they are ordered so that each is
** far from those before it, as workers 0, 1, 2, ... take them. Measured
** (D65, CIE76 delta E*ab; CIEDE2000 in brackets): any two differ by at
** least 23.5 (13.7); each is at least 30.8 (20.9) from the idle grey, 34.8
** from white (the background, and DOT's "not run"), 32.5 from
** cask__other_color and 39 from cask__xfer_color; black text on each has a
** contrast ratio of at least 5.5:1 (WCAG AA asks 4.5:1).
** tests/unit/test_viz.c checks the CIE76 distances and the contrast of
** what the pictures draw.
*/
const char cask__idle_color[] = "#e8e8e8", cask__other_color[] = "#8c8c8c",
           cask__xfer_color[] = "#525252";

static const char *const colors[] = {
    "#0087f0", "#e1d278", "#d6616b", "#00965a", "#69e1f0", "#f0c3ff", "#b4781e",
    "#9678e1", "#0096a5", "#fbb4ae", "#a5c3ff", "#87870f", "#a5e1a5", "#ff78c3",
    "#fdb462", "#f0784b", "#52bca3", "#b469a5", "#0fc3ff", "#87b45a",
};
_Static_assert(sizeof colors / sizeof *colors == CASK__NCOLORS, "CASK__NCOLORS is the palette's size");

static bool is_xfer(const cask__swatch_t *s) { return s->name && !strcmp(s->name, "transfer"); }

/* Whether a has the better claim to a colour than b: heavier, then first by name (number). */
static bool heavier(const cask__swatch_t *a, const cask__swatch_t *b)
{
    if (a->weight != b->weight)
        return a->weight > b->weight;
    return a->name && b->name ? strcmp(a->name, b->name) < 0 : a->id < b->id;
}

int cask__swatch_cmp(const void *a, const void *b)
{
    const cask__swatch_t *x = *(cask__swatch_t *const *)a, *y = *(cask__swatch_t *const *)b;
    return heavier(x, y) ? -1 : heavier(y, x);
}

/*
** Colours are handed out in the order of the names (worker numbers), not of
** first appearance: the graph lists its groups in task order and the
** timeline in start-time order, and handing out by name is what lets the
** two agree. Each takes the slot its name's hash (its worker number) picks,
** or, when that is taken, the next free one. So a group has the colour its
** hash picks in every picture where no group before it by name took that
** colour.
*/
size_t cask__color_assign(cask__swatch_t *s, size_t n)
{
    size_t top[CASK__NCOLORS], k = 0, nx = 0; /* top: the heaviest, heaviest first */
    for (size_t i = 0; i < n; i++) {
        bool x = is_xfer(&s[i]);
        s[i].color = x ? cask__xfer_color : cask__other_color;
        nx += x;
        if (x || (k == CASK__NCOLORS && !heavier(&s[i], &s[top[k - 1]])))
            continue;
        size_t j = k < CASK__NCOLORS ? k++ : k - 1; /* full: the lightest drops out */
        for (; j > 0 && heavier(&s[i], &s[top[j - 1]]); j--)
            top[j] = top[j - 1];
        top[j] = i;
    }
    for (size_t i = 1; i < k; i++) /* by name (number): insertion sort, k is small */
        for (size_t j = i; j > 0; j--) {
            const cask__swatch_t *a = &s[top[j - 1]], *b = &s[top[j]];
            if (a->name && b->name ? strcmp(a->name, b->name) <= 0 : a->id <= b->id)
                break;
            size_t t = top[j];
            top[j] = top[j - 1];
            top[j - 1] = t;
        }
    bool taken[CASK__NCOLORS] = { false };
    for (size_t i = 0; i < k; i++) {
        cask__swatch_t *t = &s[top[i]];
        size_t c = (t->name ? cask__hash(t->name, strlen(t->name), 0x636f6c6fu) : t->id) % CASK__NCOLORS;
        while (taken[c])
            c = (c + 1) % CASK__NCOLORS;
        taken[c] = true;
        t->color = colors[c];
    }
    return n - k - nx;
}

/* The first len bytes of s, escaped for XML. */
static void xml_write(FILE *f, const char *s, size_t len)
{
    for (; len--; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&apos;", f); break;
        default:
            if ((unsigned char)*s >= 0x20 || *s == '\t' || *s == '\n')
                fputc(*s, f);
        }
    }
}

void cask__xml_puts(FILE *f, const char *s) { xml_write(f, s, strlen(s)); }

void cask__xml_putn(FILE *f, const char *s, size_t max)
{
    size_t len = strlen(s), cut = max - 3;
    if (len <= max) {
        xml_write(f, s, len);
        return;
    }
    while (cut > 0 && ((unsigned char)s[cut] & 0xc0) == 0x80) /* back to a character's start */
        cut--;
    xml_write(f, s, cut);
    fputs("...", f);
}

int cask__run_dot(const char *in, const char *out, const char *format, cask_error_t *err)
{
    char fmt[32];
    snprintf(fmt, sizeof fmt, "-T%s", format);
    char *argv[] = { "dot", fmt, "-o", (char *)out, (char *)in, NULL };
    pid_t pid;
    int rc = posix_spawnp(&pid, "dot", NULL, NULL, argv, environ), status = 0;
    if (rc)
        return cask__err(err, CASK_EIO, NULL, NULL,
                         "cannot run Graphviz's dot (%s): install graphviz, or write .dot",
                         strerror(rc));
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status))
        return cask__err(err, CASK_EIO, NULL, NULL, "Graphviz's dot failed to write '%s'", out);
    return 0;
}

/*
** viz/color.c: colours, XML escaping and running Graphviz.
*/
#include <errno.h>
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>

#include "viz.h"

extern char **environ;

/* ColorBrewer's Set3 and Paired, light enough for black text. */
static const char *const colors[] = {
    "#8dd3c7", "#fdb462", "#bebada", "#fb8072", "#80b1d3", "#b3de69",
    "#fccde5", "#ffffb3", "#bc80bd", "#ccebc5", "#ffed6f", "#a6cee3",
    "#b2df8a", "#fdbf6f", "#cab2d6", "#d9d9d9",
};
#define NCOLORS (sizeof colors / sizeof colors[0])

const char *cask__palette(size_t i) { return colors[i % NCOLORS]; }

const char *cask__group_color(const char *group)
{
    if (!strcmp(group, "transfer")) /* values moving between workers: apart from any task */
        return "#525252";
    return colors[cask__hash(group, strlen(group), 0x636f6c6fu) % NCOLORS];
}

void cask__xml_puts(FILE *f, const char *s)
{
    for (; *s; s++) {
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

/* 06_smallest.c: the smallest cask program: square(7), lazily, then computed. */
#include <stdio.h>
#include <cask/cask.h>

static CASK_KERNEL(square) { *out = cask_int(cask_value_int(&args[0]) * cask_value_int(&args[0])); return 0; }

int main(void)
{
    cask_graph_t *g = cask_graph_new(NULL);
    cask_task_t t = CASK_CALL(g, square, NULL, cask_int(7));   /* nothing runs yet */
    cask_value_t v;
    int rc = cask_compute_one(g, t, &v, NULL);                   /* threads, one per core */
    printf("square(7) = %lld\n", (long long)cask_value_int(&v));
    cask_graph_decref(g);
    return rc || cask_value_int(&v) != 49;
}

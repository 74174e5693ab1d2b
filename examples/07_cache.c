/*
** 07_cache.c: the course's caching lesson, in cask.
**
** In Python, @lru_cache makes fib(n) call fib(k) once per k. In a cask
** graph that much is free (equal calls get equal keys: one task per k).
** A pool's result cache goes further, as lru_cache does across calls:
** results outlive the compute, so a later compute on the pool, in another
** graph, takes what was computed before and runs only what is new. A cache
** directory goes further still: results outlive the process too.
**
**     fib(25), first compute:    26 calls
**     fib(25) again, new graph:   0 calls (1 result taken)
**     fib(30), new graph:         5 calls (2 results taken)
**
** both ways. Each call sleeps 10 ms, as an expensive function would.
*/
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <cask/cask.h>

static atomic_int calls;

static CASK_KERNEL(fib)
{
    atomic_fetch_add(&calls, 1);
    nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
    if (n_args == 1) /* fib(0), fib(1): the number itself */
        *out = args[0];
    else
        *out = cask_int(cask_value_int(&args[1]) + cask_value_int(&args[2]));
    return 0;
}

/* fib(n) as a graph: fib(k) is a call fib(k, fib(k-1), fib(k-2)). */
static cask_task_t build(cask_graph_t *g, int n, cask_error_t *err)
{
    cask_task_t f[2] = { CASK_CALL(g, fib, err, cask_int(0)), CASK_CALL(g, fib, err, cask_int(1)) };
    for (int k = 2; k <= n; k++) {
        cask_task_t next = CASK_CALL(g, fib, err, cask_int(k), cask_ref(f[1]), cask_ref(f[0]));
        f[0] = f[1];
        f[1] = next;
    }
    return n == 0 ? f[0] : f[1];
}

/* Compute fib(n) in a graph of its own, as a later run would: on pool
** (its result cache), else with the cache directory dir. */
static int run(cask_pool_t *pool, const char *dir, int n, const char *what, int64_t *v)
{
    cask_error_t err;
    cask_graph_t *g = cask_graph_new(&err);
    cask_task_t t = g ? build(g, n, &err) : CASK_NO_TASK;
    if (t == CASK_NO_TASK) {
        fprintf(stderr, "07_cache: %s\n", err.message);
        return 1;
    }
    cask_compute_opts_t o = { .pool = pool, .workers = pool ? 0 : 2, .cache_dir = dir };
    cask_compute_info_t info;
    cask_value_t r;
    atomic_store(&calls, 0);
    if (cask_compute(g, &t, 1, &o, &r, &info, &err)) {
        fprintf(stderr, "07_cache: %s\n", err.message);
        cask_graph_decref(g);
        return 1;
    }
    *v = cask_value_int(&r);
    printf("%-28s fib(%d) = %-7lld %2d kernel calls, %zu results taken, %4.0f ms\n", what, n,
           (long long)*v, atomic_load(&calls), pool ? info.memcached : info.cached,
           info.wall_s * 1e3);
    cask_graph_decref(g);
    return 0;
}

int main(void)
{
    cask_error_t err;
    cask_pool_t *pool;
    if (cask_pool_create(&(cask_pool_opts_t){ .workers = 2, .cache_bytes = 1 << 20 }, &pool,
                         &err)) {
        fprintf(stderr, "07_cache: %s\n", err.message);
        return 1;
    }
    printf("a pool of 2 workers with a result cache of 1 MiB\n");
    int64_t a, b, c, d, e, f;
    int rc = run(pool, NULL, 25, "first compute:", &a) ||
             run(pool, NULL, 25, "again, in a new graph:", &b) ||
             run(pool, NULL, 30, "further, in a new graph:", &c);
    cask_pool_free(pool);
    char dir[] = "/tmp/cask-07-cache-XXXXXX";
    if (rc)
        return 1;
    if (!mkdtemp(dir)) {
        perror("07_cache: mkdtemp");
        return 1;
    }
    printf("cache directory %s (as another run of the program would find it)\n", dir);
    rc = run(NULL, dir, 25, "first compute:", &d) ||
         run(NULL, dir, 25, "again, in a new graph:", &e) ||
         run(NULL, dir, 30, "further, in a new graph:", &f);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd))
        fprintf(stderr, "07_cache: could not remove %s\n", dir);
    return rc || a != 75025 || b != 75025 || c != 832040 || d != a || e != a || f != c;
}

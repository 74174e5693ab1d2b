/*
** sched/progress.c: the progress bar on stderr.
**
** A thread per compute wakes every PERIOD and, once the compute has run
** longer than DELAY, redraws one line on stderr:
**     [##########..........]  50%  5000/10000 tasks  1.2 s
** It is on when stderr is a terminal, off otherwise; the flags
** CASK_NO_PROGRESS (first) and CASK_PROGRESS, then CASK_PROGRESS=0 or 1 in
** the environment, force it. A forced bar draws from the start; the last line is drawn at
** the end with a newline, so the output reads the same in a log file.
*/
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "sched.h"

#define PERIOD_NS 100000000ull  /* 0.1 s between redraws */
#define DELAY_NS  500000000ull  /* an automatic bar waits this long */
#define WIDTH     30            /* characters of bar */

static void draw(const cask__progress_t *p, int final)
{
    size_t n = p->r->p.n, done = atomic_load_explicit(&p->r->done, memory_order_relaxed);
    double secs = (double)(cask_now_ns() - p->t0) * 1e-9;
    char bar[WIDTH + 1];
    size_t fill = n ? done * WIDTH / n : WIDTH;
    for (size_t i = 0; i < WIDTH; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[WIDTH] = '\0';
    fprintf(stderr, "\r[%s] %3zu%%  %zu/%zu tasks  %.1f s%s", bar, n ? done * 100 / n : 100,
            done, n, secs, final ? "\n" : "");
    fflush(stderr);
}

static void *tick(void *arg)
{
    cask__progress_t *p = arg;
    pthread_mutex_lock(&p->lock);
    while (!p->over) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t at = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec + PERIOD_NS;
        ts.tv_sec = (time_t)(at / 1000000000ull);
        ts.tv_nsec = (long)(at % 1000000000ull);
        pthread_cond_timedwait(&p->wake, &p->lock, &ts);
        if (!p->over && (p->forced || cask_now_ns() - p->t0 >= DELAY_NS)) {
            draw(p, 0);
            p->drawn = 1;
        }
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

void cask__progress_start(cask__progress_t *p, cask_run_t *r, unsigned flags)
{
    p->on = 0;
    const char *env = getenv("CASK_PROGRESS");
    int want = flags & CASK_NO_PROGRESS ? 0 : flags & CASK_PROGRESS ? 1
             : env && *env ? atoi(env) != 0 : -1; /* -1: when stderr is a terminal */
    if (want == 0 || (want < 0 && !isatty(STDERR_FILENO)))
        return;
    p->r = r;
    p->forced = want > 0;
    p->over = p->drawn = 0;
    p->t0 = cask_now_ns();
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&p->wake, &a);
    pthread_condattr_destroy(&a);
    pthread_mutex_init(&p->lock, NULL);
    if (pthread_create(&p->th, NULL, tick, p)) { /* no bar, and no harm */
        pthread_cond_destroy(&p->wake);
        pthread_mutex_destroy(&p->lock);
        return;
    }
    p->on = 1;
}

void cask__progress_stop(cask__progress_t *p)
{
    if (!p->on)
        return;
    pthread_mutex_lock(&p->lock);
    p->over = 1;
    pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->lock);
    pthread_join(p->th, NULL);
    if (p->drawn || p->forced)
        draw(p, 1);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->lock);
    p->on = 0;
}

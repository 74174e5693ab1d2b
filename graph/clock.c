/*
** graph/clock.c: timestamps for traces.
**
** A trace takes two timestamps per task, so the clock is on the hot path:
** clock_gettime costs about 20 ns even through the vDSO, the x86 time-stamp
** counter under 10. Where the CPU says its TSC is invariant (constant rate,
** running in every power state), tasks record raw ticks and the compute
** converts them once at its end, using a rate measured between the first
** tick this process took and that moment (a baseline that only grows, so
** the rate only gets better). Elsewhere ticks are plain monotonic ns.
*/
#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "util.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <x86intrin.h>
#define HAVE_TSC 1
#else
#define HAVE_TSC 0
#endif

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int use_tsc;             /* the TSC is invariant */
static uint64_t base_tick, base_ns;

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t cask_now_ns(void)
{
    return mono_ns();
}

static void init(void)
{
#if HAVE_TSC
    unsigned a, b, c, d;
    /* CPUID 0x80000007, EDX bit 8: invariant TSC. */
    if ((unsigned)__get_cpuid_max(0x80000000u, NULL) >= 0x80000007u &&
        __get_cpuid(0x80000007u, &a, &b, &c, &d) && (d & (1u << 8)))
        use_tsc = 1;
#endif
    base_ns = mono_ns();
    base_tick = cask__tick();
}

void cask__clock_init(void)
{
    pthread_once(&once, init);
}

uint64_t cask__tick(void)
{
#if HAVE_TSC
    if (use_tsc)
        return __rdtsc();
#endif
    return mono_ns();
}

void cask__tick_rate(cask__tickconv_t *c)
{
    pthread_once(&once, init);
    uint64_t ns = mono_ns(), tick = cask__tick();
    c->tick0 = base_tick;
    c->ns0 = base_ns;
    c->ns_per_tick = use_tsc && tick > base_tick ? (double)(ns - base_ns) / (double)(tick - base_tick)
                                                 : 1.0;
}

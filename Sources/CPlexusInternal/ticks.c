/* The meters' clock (plexus_ticks.h). */
#define _GNU_SOURCE
#include "plexus_ticks.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

int plexus_ticks_tsc_;
_Thread_local int64_t plexus_tls_tick_;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static double per_ns = 1.0;

static int64_t mono_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* The TSC only where the kernel keeps time with it: it has then checked
** that the counter runs at a constant rate, through sleep states, in step
** on every CPU (an unstable TSC makes it switch to another clocksource). */
static int kernel_uses_tsc(void) {
    FILE *f = fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "r");
    if (!f) return 0;
    char name[32] = {0};
    int ok = fgets(name, sizeof name, f) != NULL && strncmp(name, "tsc", 3) == 0 && (name[3] == '\n' || name[3] == 0);
    fclose(f);
    return ok;
}

static void calibrate(void) {
#if defined(__x86_64__)
    if (!kernel_uses_tsc()) return;
    int64_t n0 = mono_ns(), t0 = (int64_t)__builtin_ia32_rdtsc();
    int64_t n1, t1;
    do { n1 = mono_ns(); t1 = (int64_t)__builtin_ia32_rdtsc(); } while (n1 - n0 < 2000000);
    double f = (double)(t1 - t0) / (double)(n1 - n0);
    if (f < 0.05 || f > 100) return;   /* not a counter we understand: keep nanoseconds */
    per_ns = f;
    plexus_ticks_tsc_ = 1;
#endif
}

double plexus_ticks_calibrate(void) {
    pthread_once(&once, calibrate);
    return per_ns;
}

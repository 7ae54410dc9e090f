/*
** plexus_ticks.h — the cheapest clock the host's meters can read per
** message. On x86-64 with the kernel's own clocksource on the TSC (it
** checked that the counter is invariant and in step across CPUs), a bare
** rdtsc: about 15 ns here, where clock_gettime(CLOCK_MONOTONIC) is about 40
** (its vDSO fences the read and converts it). Elsewhere: CLOCK_MONOTONIC in
** nanoseconds (one tick = 1 ns). Durations only: ticks are never dates.
** Private to the host.
*/
#ifndef PLEXUS_TICKS_H
#define PLEXUS_TICKS_H

#include <stdint.h>
#include <time.h>
#include "plexus_tls.h"   /* PLEXUS_TLS_MODEL */

/* 1: ticks are the TSC; 0: nanoseconds of CLOCK_MONOTONIC. Set once by plexus_ticks_calibrate. */
extern int plexus_ticks_tsc_;

static inline int64_t plexus_ticks(void) {
#if defined(__x86_64__)
    if (plexus_ticks_tsc_) return (int64_t)__builtin_ia32_rdtsc();
#endif
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Chooses the source and measures ticks per nanosecond (about 2 ms the first
** time; then returns the same figure). Call before the first plexus_ticks. */
double plexus_ticks_calibrate(void);

/* The last handler end read on this dispatcher thread, in ticks; 0 when the
** thread has waited since (the next handler reads its own start). */
extern _Thread_local int64_t plexus_tls_tick_ PLEXUS_TLS_MODEL;
static inline int64_t plexus_tls_tick(void) { return plexus_tls_tick_; }
static inline void plexus_tls_set_tick(int64_t t) { plexus_tls_tick_ = t; }

#endif

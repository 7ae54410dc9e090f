/*
** plexus_tls.h — two per-thread words the host reads and writes on every
** in-process message: the message the thread is handling (so what its
** handler sends continues the trace) and the dispatcher worker the thread
** is (so an agent it wakes runs next on it); and, during a blocking call's
** routing, the call waiting (so the worker it went to is known to it). A C
** thread-local is a load or a
** store relative to the thread pointer, where pthread_getspecific and
** pthread_setspecific are calls (about 3 % of an in-process round trip's
** instructions under callgrind). Swift cannot declare thread-locals, hence
** this header. Private to the host.
*/
#ifndef PLEXUS_TLS_H
#define PLEXUS_TLS_H

/* These variables live in the executable (never in a dlopen'ed library),
** so the initial-exec model holds: a load at a fixed offset from the thread
** pointer, where the default for position-independent code calls
** __tls_get_addr (about 0.5 % of an in-process round trip under perf). */
#define PLEXUS_TLS_MODEL __attribute__((tls_model("initial-exec")))

extern _Thread_local void *plexus_tls_message_ PLEXUS_TLS_MODEL;
extern _Thread_local void *plexus_tls_worker_ PLEXUS_TLS_MODEL;

static inline void *plexus_tls_message(void) { return plexus_tls_message_; }
static inline void plexus_tls_set_message(void *m) { plexus_tls_message_ = m; }
static inline void *plexus_tls_worker(void) { return plexus_tls_worker_; }
static inline void plexus_tls_set_worker(void *w) { plexus_tls_worker_ = w; }
extern _Thread_local void *plexus_tls_call_ PLEXUS_TLS_MODEL;
static inline void *plexus_tls_call(void) { return plexus_tls_call_; }
static inline void plexus_tls_set_call(void *c) { plexus_tls_call_ = c; }

#endif

/* broken — plugins the loader must refuse, one per -D flag. */
#include "plexus.h"

static plexus_status init(const plexus_host *h, plexus_ctx *c, const char *cfg, void **s) {
    (void)h; (void)c; (void)cfg; *s = 0;
#ifdef INIT_FAILS
    return PLEXUS_INVALID_ARGUMENT;
#else
    return PLEXUS_OK;
#endif
}
static plexus_status handle(void *s, plexus_ctx *c, const plexus_envelope *m) { (void)s; (void)c; (void)m; return PLEXUS_OK; }
static const plexus_capability caps[] = { PLEXUS_CAPABILITY("broken.cap", NULL) };

#ifndef MAJOR
#define MAJOR PLEXUS_ABI_MAJOR
#endif
#ifndef MINOR
#define MINOR PLEXUS_ABI_MINOR
#endif
#ifndef DESC_SIZE
#define DESC_SIZE sizeof(plexus_plugin_descriptor)
#endif
#ifndef ENV_SIZE
#define ENV_SIZE sizeof(plexus_envelope)
#endif
#ifndef HOST_SIZE
#define HOST_SIZE sizeof(plexus_host)
#endif
#ifndef NAME
#define NAME "broken"
#endif

static const plexus_plugin_descriptor d = {
    DESC_SIZE, MAJOR, MINOR, ENV_SIZE, HOST_SIZE, NAME, "1.0.0", NULL, 0,
    1, caps, 0, NULL, 0, NULL, init, handle, NULL };

#ifdef MISSING_SYMBOL
extern int plexus_fixture_symbol_nobody_defines(void);
int use_it(void) { return plexus_fixture_symbol_nobody_defines(); }
#endif

#ifndef NO_ENTRY
PLEXUS_EXPORT const plexus_plugin_descriptor *plexus_plugin_entry(void) { return &d; }
#endif

/* The worker's view of the plugin descriptor: the ABI checks that must pass
** before any plugin function is called, and its JSON form for HELLO. */
#ifndef PLEXUS_WORKER_DESCRIPTOR_H
#define PLEXUS_WORKER_DESCRIPTOR_H

#include "plexus.h"
#include <stdint.h>

/* Checks struct sizes, ABI version and the required functions (the host
** checks names and patterns in the JSON). Returns PLEXUS_OK, or a status
** with a message in err naming the field, expected and found values. */
plexus_status descriptor_check(const plexus_plugin_descriptor *d, char *err, uint64_t cap);

/* Writes the descriptor as JSON into a malloc'd string (caller frees). */
char *descriptor_json(const plexus_plugin_descriptor *d, const char *confinement);

#endif

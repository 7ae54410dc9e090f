/* multi (2 of 2) — the file without PLEXUS_AGENT(...): it uses the helpers,
** and so plexus_sdk_host and plexus_sdk_current, as multi_a.c set them. */
#include "plexus_agent.h"
#include <stdlib.h>

static int initialised;   /* set when init reached this file with a host to log to */

plexus_status multi_init(const char *config) {
    (void)config;
    if (!plexus_sdk_host || !plexus_sdk_ctx()) return PLEXUS_INTERNAL;
    plexus_logf(PLEXUS_LOG_INFO, "multi_b.c: init sees the host");
    initialised = 1;
    return PLEXUS_OK;
}

/* "hello <payload> from multi_b.c" */
plexus_status multi_hello(const plexus_envelope *msg) {
    if (!initialised) return PLEXUS_INTERNAL;
    char out[512];
    int n = snprintf(out, sizeof out, "hello %.*s from multi_b.c",
                     (int)(msg->payload_len < 256 ? msg->payload_len : 256), (const char *)msg->payload);
    plexus_logf(PLEXUS_LOG_INFO, "multi_b.c: replying to %s", msg->target);
    return plexus_reply(msg, "text/plain", out, (size_t)n);
}

/* An error whose message is the payload, byte for byte: quotes, backslashes,
** control characters and bytes that are not UTF-8 included. */
plexus_status multi_error(const plexus_envelope *msg) {
    char *text = malloc(msg->payload_len + 1);
    if (!text) return PLEXUS_NO_MEMORY;
    if (msg->payload_len) memcpy(text, msg->payload, msg->payload_len);
    text[msg->payload_len] = '\0';
    plexus_status s = plexus_reply_error(msg, PLEXUS_INVALID_ARGUMENT, text);
    free(text);
    return s;
}

/* The host functions' argument checks, shared by the host and the worker
** (plexus_contract.h). Nothing here allocates before a length is checked. */
#include "plexus_contract.h"
#include "plexus_wire.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static plexus_status fail(plexus_status s, const char **out_what, const char *what) {
    if (out_what) *out_what = what;
    return s;
}

plexus_status plexus_contract_envelope(const plexus_envelope *msg, plexus_envelope *out, const char **out_what) {
    if (!msg) return fail(PLEXUS_INVALID_ARGUMENT, out_what, "the envelope is NULL");
    if (msg->struct_size < PLEXUS_ENVELOPE_SIZE_1_0)
        return fail(PLEXUS_INVALID_ARGUMENT, out_what,
                    "envelope struct_size is below PLEXUS_ENVELOPE_SIZE_1_0 (set it with plexus_envelope_init())");
    memset(out, 0, sizeof *out);
    memcpy(out, msg, msg->struct_size < sizeof *out ? msg->struct_size : sizeof *out);
    out->struct_size = (uint32_t)sizeof *out;
    out->id.hi = out->id.lo = 0;
    out->sender = NULL;
    out->reserved = 0;
    return PLEXUS_OK;
}

plexus_status plexus_contract_fields(const plexus_envelope *e, uint64_t max_payload, const char **out_what) {
    return plexus_wire_validate(e, max_payload, out_what);
}

/* Well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF),
** as Swift's String(validating:) accepts it. */
static int utf8_ok(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t len;
        uint32_t cp;
        if (c < 0x80) { i++; continue; }
        else if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; }
        else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; }
        else return 0;
        if (n - i < len) return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
            return 0;
        i += len;
    }
    return 1;
}

uint64_t plexus_contract_kv_max_value(uint64_t max_payload) {
    uint64_t limit = max_payload < PLEXUS_MAX_PAYLOAD_LEN ? max_payload : PLEXUS_MAX_PAYLOAD_LEN;
    return limit < PLEXUS_KV_MAX_KEY + 13u ? 0 : PLEXUS_KV_MAX_VALUE(limit);
}

plexus_status plexus_contract_kv(const char *key, const uint8_t *value, uint64_t len, int64_t expected_version,
                                 uint64_t max_payload, const char **out_what) {
    if (!key) return fail(PLEXUS_INVALID_ARGUMENT, out_what, "the key is NULL");
    size_t n = strnlen(key, PLEXUS_KV_MAX_KEY + 1);
    if (n == 0 || n > PLEXUS_KV_MAX_KEY)
        return fail(PLEXUS_INVALID_ARGUMENT, out_what, "a key must be 1-512 bytes");
    if (!utf8_ok((const unsigned char *)key, n)) return fail(PLEXUS_INVALID_ARGUMENT, out_what, "a key must be UTF-8");
    if (expected_version < PLEXUS_KV_ANY)
        return fail(PLEXUS_INVALID_ARGUMENT, out_what,
                    "expected_version must be PLEXUS_KV_ANY (-1), 0 (create only) or a version (>= 1)");
    if (len > 0 && !value) return fail(PLEXUS_INVALID_ARGUMENT, out_what, "the value is NULL but its length is not 0");
    if (len > plexus_contract_kv_max_value(max_payload))
        return fail(PLEXUS_TOO_LARGE, out_what, "the value is longer than PLEXUS_KV_MAX_VALUE(the payload limit)");
    return PLEXUS_OK;
}

void *plexus_contract_alloc(uint64_t size) {
    if (size > (uint64_t)PTRDIFF_MAX) return NULL;
    return malloc(size ? (size_t)size : 1);
}

/* A plugin or instance name for spawn/stop: 1..PLEXUS_MAX_NAME_LEN bytes of
** [A-Za-z0-9_.:@-], plus '/' where slash_ok (a child's full name). */
static int name_ok(const char *s, int slash_ok) {
    size_t n = strnlen(s, PLEXUS_MAX_NAME_LEN + 1);
    if (n == 0 || n > PLEXUS_MAX_NAME_LEN) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '.' || c == ':' || c == '@' || c == '-' || (slash_ok && c == '/');
        if (!ok) return 0;
    }
    return 1;
}

plexus_status plexus_contract_spawn(const char *plugin_name, const char *instance_name, const char *config_json,
                                    const char *out_name, uint32_t out_name_size, uint64_t max_payload,
                                    const char **out_what) {
    if (!plugin_name) return fail(PLEXUS_INVALID_ARGUMENT, out_what, "plugin_name is NULL");
    if (!name_ok(plugin_name, 0))
        return fail(PLEXUS_INVALID_ARGUMENT, out_what, "plugin_name must be 1-255 bytes of A-Z a-z 0-9 _ . : @ -");
    if (instance_name && instance_name[0] && !name_ok(instance_name, 0))
        return fail(PLEXUS_INVALID_ARGUMENT, out_what, "instance_name must be NULL, empty or 1-255 bytes of A-Z a-z 0-9 _ . : @ -");
    if (out_name && out_name_size < PLEXUS_MAX_NAME_LEN + 1)
        return fail(PLEXUS_INVALID_ARGUMENT, out_what, "out_name_size must be at least PLEXUS_MAX_NAME_LEN + 1 (256)");
    if (config_json && strnlen(config_json, max_payload + 1) > max_payload)
        return fail(PLEXUS_TOO_LARGE, out_what, "config_json is longer than the payload limit");
    return PLEXUS_OK;
}

plexus_status plexus_contract_stop(const char *name, const char **out_what) {
    if (!name) return fail(PLEXUS_INVALID_ARGUMENT, out_what, "name is NULL");
    if (!name_ok(name, 1)) return fail(PLEXUS_INVALID_ARGUMENT, out_what, "name must be 1-255 bytes of A-Z a-z 0-9 _ . : / @ -");
    return PLEXUS_OK;
}

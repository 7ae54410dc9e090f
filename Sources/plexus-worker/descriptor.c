#include "descriptor.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static plexus_status refuse(plexus_status s, char *err, uint64_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
    return s;
}

/* Checks an array of growable structs walked with its first element's size. */
static plexus_status check_array(const void *base, uint32_t count, uint32_t min_size, const char *field,
                                 char *err, uint64_t cap) {
    if (count == 0) return PLEXUS_OK;
    if (!base) return refuse(PLEXUS_BAD_DESCRIPTOR, err, cap, "%s: count is %u but the array is NULL", field, count);
    if (count > 4096) return refuse(PLEXUS_BAD_DESCRIPTOR, err, cap, "%s: count %u exceeds 4096", field, count);
    uint32_t stride = *(const uint32_t *)base;
    if (stride < min_size)
        return refuse(PLEXUS_ABI_MISMATCH, err, cap, "%s[0].struct_size: expected at least %u (ABI 1.0), found %u", field, min_size, stride);
    for (uint32_t i = 0; i < count; i++) {
        uint32_t sz = *(const uint32_t *)((const char *)base + (uint64_t)i * stride);
        if (sz != stride)
            return refuse(PLEXUS_BAD_DESCRIPTOR, err, cap, "%s[%u].struct_size: expected %u like element 0, found %u", field, i, stride, sz);
    }
    return PLEXUS_OK;
}

#define AT(base, T, i) ((const T *)((const char *)(base) + (uint64_t)(i) * *(const uint32_t *)(base)))


plexus_status descriptor_check(const plexus_plugin_descriptor *d, char *err, uint64_t cap) {
    if (!d) return refuse(PLEXUS_BAD_DESCRIPTOR, err, cap, "plexus_plugin_entry returned NULL");
    /* At least the 1.0 size of each struct; a larger one has a tail this worker ignores. */
    if (d->struct_size < PLEXUS_DESCRIPTOR_SIZE_1_0)
        return refuse(PLEXUS_ABI_MISMATCH, err, cap, "descriptor struct_size: expected at least %u (ABI 1.0), found %u", PLEXUS_DESCRIPTOR_SIZE_1_0, d->struct_size);
    if (d->abi_major != PLEXUS_ABI_MAJOR)
        return refuse(PLEXUS_ABI_MISMATCH, err, cap, "ABI major version: expected %d, found %u (plugin built for ABI %u.%u, host speaks %d.%d)",
                      PLEXUS_ABI_MAJOR, d->abi_major, d->abi_major, d->abi_minor, PLEXUS_ABI_MAJOR, PLEXUS_ABI_MINOR);
    if (d->abi_minor > PLEXUS_ABI_MINOR)
        return refuse(PLEXUS_ABI_MISMATCH, err, cap, "ABI minor version: expected at most %d, found %u (plugin built for ABI %u.%u, a newer host is needed)",
                      PLEXUS_ABI_MINOR, d->abi_minor, d->abi_major, d->abi_minor);
    if (d->envelope_size < PLEXUS_ENVELOPE_SIZE_1_0 || d->envelope_size > sizeof(plexus_envelope)) {
        if (PLEXUS_ENVELOPE_SIZE_1_0 == sizeof(plexus_envelope))
            return refuse(PLEXUS_ABI_MISMATCH, err, cap, "envelope_size: expected %zu, found %u (the plugin was compiled against a different plexus.h)", sizeof(plexus_envelope), d->envelope_size);
        return refuse(PLEXUS_ABI_MISMATCH, err, cap, "envelope_size: expected %u (ABI 1.0) to %zu (ABI %d.%d), found %u (the plugin was compiled against a different plexus.h)",
                      PLEXUS_ENVELOPE_SIZE_1_0, sizeof(plexus_envelope), PLEXUS_ABI_MAJOR, PLEXUS_ABI_MINOR, d->envelope_size);
    }
    if (d->host_size < PLEXUS_HOST_SIZE_1_0 || d->host_size > sizeof(plexus_host))
        return refuse(PLEXUS_ABI_MISMATCH, err, cap, "host_size: expected %u (ABI 1.0) to %zu (ABI %d.%d), found %u (the plugin was compiled against a different plexus.h)",
                      PLEXUS_HOST_SIZE_1_0, sizeof(plexus_host), PLEXUS_ABI_MAJOR, PLEXUS_ABI_MINOR, d->host_size);
    if (!d->name) return refuse(PLEXUS_BAD_DESCRIPTOR, err, cap, "name: expected a name, found NULL");
    if (!d->version || !d->version[0])
        return refuse(PLEXUS_BAD_DESCRIPTOR, err, cap, "version: expected a non-empty string, found %s", d->version ? "\"\"" : "NULL");
    if (!d->init) return refuse(PLEXUS_BAD_DESCRIPTOR, err, cap, "init: expected a function, found NULL");
    if (d->capability_count > 0 && !d->handle)
        return refuse(PLEXUS_BAD_DESCRIPTOR, err, cap, "handle: expected a function (the plugin declares %u capabilities), found NULL", d->capability_count);
    plexus_status s;
    if ((s = check_array(d->capabilities, d->capability_count, PLEXUS_CAPABILITY_SIZE_1_0, "capabilities", err, cap))) return s;
    if ((s = check_array(d->permissions, d->permission_count, PLEXUS_PERMISSION_SIZE_1_0, "permissions", err, cap))) return s;
    if ((s = check_array(d->exports, d->export_count, PLEXUS_EXPORT_SIZE_1_0, "exports", err, cap))) return s;
    for (uint32_t i = 0; i < d->capability_count; i++)
        if (!AT(d->capabilities, plexus_capability, i)->name)
            return refuse(PLEXUS_BAD_DESCRIPTOR, err, cap, "capabilities[%u].name: expected a name, found NULL", i);
    for (uint32_t i = 0; i < d->permission_count; i++)
        if (!AT(d->permissions, plexus_permission, i)->pattern)
            return refuse(PLEXUS_BAD_DESCRIPTOR, err, cap, "permissions[%u].pattern: expected a pattern, found NULL", i);
    for (uint32_t i = 0; i < d->export_count; i++) {
        const plexus_export *x = AT(d->exports, plexus_export, i);
        if (!x->name) return refuse(PLEXUS_BAD_DESCRIPTOR, err, cap, "exports[%u].name: expected a name, found NULL", i);
        if (!x->function) return refuse(PLEXUS_BAD_DESCRIPTOR, err, cap, "exports[%u] '%s': function is NULL", i, x->name);
        if (x->arg_count > PLEXUS_MAX_EXPORT_ARGS)
            return refuse(PLEXUS_BAD_DESCRIPTOR, err, cap, "exports[%u] '%s': arg_count expected at most %d, found %u", i, x->name, PLEXUS_MAX_EXPORT_ARGS, x->arg_count);
        if (x->arg_count > 0 && !x->arg_types)
            return refuse(PLEXUS_BAD_DESCRIPTOR, err, cap, "exports[%u] '%s': arg_types is NULL", i, x->name);
        for (uint32_t j = 0; x->arg_names && j < x->arg_count; j++)
            if (!x->arg_names[j]) return refuse(PLEXUS_BAD_DESCRIPTOR, err, cap, "exports[%u] '%s': arg_names[%u] is NULL", i, x->name, j);
    }
    return PLEXUS_OK;
}

/* ---- JSON ---------------------------------------------------------------- */

typedef struct { char *p; size_t len, cap; } sbuf;

static void put(sbuf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 1024;
        while (c < b->len + n + 1) c *= 2;
        char *q = realloc(b->p, c);
        if (!q) abort();
        b->p = q; b->cap = c;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}
static void lit(sbuf *b, const char *s) { put(b, s, strlen(s)); }

static void str(sbuf *b, const char *s) {
    if (!s) { lit(b, "null"); return; }
    lit(b, "\"");
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        char esc[8];
        if (*c == '"' || *c == '\\') { esc[0] = '\\'; esc[1] = (char)*c; put(b, esc, 2); }
        else if (*c < 0x20) { snprintf(esc, sizeof esc, "\\u%04x", *c); lit(b, esc); }
        else put(b, (const char *)c, 1);
    }
    lit(b, "\"");
}

static void num(sbuf *b, uint64_t v) { char t[32]; snprintf(t, sizeof t, "%llu", (unsigned long long)v); lit(b, t); }

char *descriptor_json(const plexus_plugin_descriptor *d, const char *confinement) {
    sbuf b = { 0 };
    lit(&b, "{\"name\":"); str(&b, d->name);
    lit(&b, ",\"version\":"); str(&b, d->version);
    lit(&b, ",\"description\":"); str(&b, d->description);
    lit(&b, ",\"abi_major\":"); num(&b, d->abi_major);
    lit(&b, ",\"abi_minor\":"); num(&b, d->abi_minor);
    lit(&b, ",\"concurrent\":"); lit(&b, (d->flags & PLEXUS_PLUGIN_CONCURRENT) ? "true" : "false");
    lit(&b, ",\"confinement\":"); str(&b, confinement);
    lit(&b, ",\"capabilities\":[");
    for (uint32_t i = 0; i < d->capability_count; i++) {
        const plexus_capability *c = AT(d->capabilities, plexus_capability, i);
        lit(&b, i ? ",{\"name\":" : "{\"name\":"); str(&b, c->name);
        lit(&b, ",\"description\":"); str(&b, c->description);
        lit(&b, ",\"input\":"); str(&b, c->input);
        lit(&b, ",\"output\":"); str(&b, c->output);
        lit(&b, "}");
    }
    lit(&b, "],\"permissions\":[");
    for (uint32_t i = 0; i < d->permission_count; i++) {
        const plexus_permission *p = AT(d->permissions, plexus_permission, i);
        lit(&b, i ? ",{\"kind\":" : "{\"kind\":"); num(&b, p->kind);
        lit(&b, ",\"pattern\":"); str(&b, p->pattern);
        lit(&b, "}");
    }
    lit(&b, "],\"exports\":[");
    for (uint32_t i = 0; i < d->export_count; i++) {
        const plexus_export *x = AT(d->exports, plexus_export, i);
        lit(&b, i ? ",{\"name\":" : "{\"name\":"); str(&b, x->name);
        lit(&b, ",\"description\":"); str(&b, x->description);
        lit(&b, ",\"return_type\":"); num(&b, x->return_type);
        lit(&b, ",\"arg_types\":[");
        for (uint32_t j = 0; j < x->arg_count; j++) { if (j) lit(&b, ","); num(&b, x->arg_types[j]); }
        lit(&b, "],\"arg_names\":");
        if (!x->arg_names) lit(&b, "null");
        else {
            lit(&b, "[");
            for (uint32_t j = 0; j < x->arg_count; j++) { if (j) lit(&b, ","); str(&b, x->arg_names[j]); }
            lit(&b, "]");
        }
        lit(&b, "}");
    }
    lit(&b, "]}");
    return b.p;
}

/* The envelope codec: the only code that turns envelopes into bytes and back.
** Every length is checked against what is actually there before it is used. */
#include "plexus_wire.h"
#include "../CPlexusInternal/include/plexus_wire_internal.h"   /* private: not on the include path */

#include <string.h>

/* ---- little-endian primitives ------------------------------------------ */

static void put_u16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint16_t get_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static plexus_status fail(plexus_status s, const char **out_what, const char *what) {
    if (out_what) *out_what = what;
    return s;
}

/* ---- field validation --------------------------------------------------- */

/* Names: agents, capabilities, subjects. Wildcards are checked by the router,
** which knows whether a pattern or a concrete subject is expected. */
int plexus_wire_name_byte_ok(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-' || c == '.' || c == ':' || c == '/' || c == '@' ||
           c == '*' || c == '>';
}

int plexus_wire_content_type_byte_ok(unsigned char c) { return c >= 0x20 && c <= 0x7e; }

/* Returns the string's length; -1 if it is longer than PLEXUS_MAX_NAME_LEN,
** -2 if it has a byte `ok` refuses (checked first, so a long name with a bad
** byte early on is reported for the byte). */
static long checked_len(const char *s, int (*ok)(unsigned char)) {
    if (!s) return 0;
    size_t n = 0;
    for (; s[n]; n++) {
        if (!ok((unsigned char)s[n])) return -2;
        if (n >= PLEXUS_MAX_NAME_LEN) return -1;
    }
    return (long)n;
}

plexus_status plexus_wire_validate(const plexus_envelope *e, uint64_t max_payload,
                                   const char **out_what) {
    if (!e) return fail(PLEXUS_INVALID_ARGUMENT, out_what, "envelope is NULL");
    if (e->struct_size < PLEXUS_ENVELOPE_SIZE_1_0)
        return fail(PLEXUS_INVALID_ARGUMENT, out_what, "envelope struct_size is smaller than sizeof(plexus_envelope) of ABI 1.0");
    if (e->kind > PLEXUS_KIND_CANCEL)
        return fail(PLEXUS_INVALID_ARGUMENT, out_what, "kind is not a plexus_kind (0..5)");
    if (e->target_kind > PLEXUS_TARGET_REPLY)
        return fail(PLEXUS_INVALID_ARGUMENT, out_what, "target_kind is not a plexus_target_kind (0..3)");
    if (e->priority >= PLEXUS_PRIORITY_COUNT)
        return fail(PLEXUS_INVALID_ARGUMENT, out_what, "priority is not a plexus_priority (0..3)");
    if (e->flags & ~PLEXUS_FLAG_MORE)
        return fail(PLEXUS_INVALID_ARGUMENT, out_what, "flags has a bit other than PLEXUS_FLAG_MORE (0x1) set");
    if ((e->flags & PLEXUS_FLAG_MORE) && e->kind != PLEXUS_KIND_RESPONSE)
        return fail(PLEXUS_INVALID_ARGUMENT, out_what, "flag MORE (a partial answer) is only valid on a RESPONSE");
    long n = checked_len(e->sender, plexus_wire_name_byte_ok);
    if (n == -1) return fail(PLEXUS_INVALID_ARGUMENT, out_what, "sender is longer than 255 bytes");
    if (n == -2) return fail(PLEXUS_INVALID_ARGUMENT, out_what, "sender has a character outside [A-Za-z0-9_.:/@*>-]");
    long t = checked_len(e->target, plexus_wire_name_byte_ok);
    if (t == -1) return fail(PLEXUS_INVALID_ARGUMENT, out_what, "target is longer than 255 bytes");
    if (t == -2) return fail(PLEXUS_INVALID_ARGUMENT, out_what, "target has a character outside [A-Za-z0-9_.:/@*>-]");
    if (t == 0 && e->target_kind != PLEXUS_TARGET_REPLY)
        return fail(PLEXUS_INVALID_ARGUMENT, out_what, "target is empty");
    n = checked_len(e->content_type, plexus_wire_content_type_byte_ok);
    if (n == -1) return fail(PLEXUS_INVALID_ARGUMENT, out_what, "content_type is longer than 255 bytes");
    if (n == -2) return fail(PLEXUS_INVALID_ARGUMENT, out_what, "content_type has a character outside printable ASCII");
    if (e->payload_len > max_payload || e->payload_len > PLEXUS_MAX_PAYLOAD_LEN)
        return fail(PLEXUS_TOO_LARGE, out_what, "payload is larger than the limit");
    if (e->payload_len > 0 && !e->payload)
        return fail(PLEXUS_INVALID_ARGUMENT, out_what, "payload is NULL but payload_len > 0");
    return PLEXUS_OK;
}

/* ---- encoding ------------------------------------------------------------ */

static uint64_t slen(const char *s) { return s ? strlen(s) : 0; }

uint64_t plexus_wire_frame_size(const plexus_envelope *e) {
    return PLEXUS_WIRE_HEADER_LEN + PLEXUS_WIRE_ENVELOPE_FIXED_LEN + slen(e->sender) + 1 +
           slen(e->target) + 1 + slen(e->content_type) + 1 + e->payload_len;
}

static uint8_t *put_str(uint8_t *p, const char *s, uint64_t n) {
    if (n) memcpy(p, s, n);
    p[n] = 0;
    return p + n + 1;
}

static void put_id(uint8_t *p, plexus_id id) { put_u64(p, id.hi); put_u64(p + 8, id.lo); }
static plexus_id get_id(const uint8_t *p) { plexus_id id = { get_u64(p), get_u64(p + 8) }; return id; }

uint64_t plexus_wire_encode_valid(const plexus_envelope *e, uint8_t *buf) {
    uint64_t S = slen(e->sender), T = slen(e->target), C = slen(e->content_type);
    uint64_t size = PLEXUS_WIRE_HEADER_LEN + PLEXUS_WIRE_ENVELOPE_FIXED_LEN + S + 1 + T + 1 + C + 1 + e->payload_len;

    put_u32(buf, PLEXUS_WIRE_MAGIC);
    buf[4] = PLEXUS_WIRE_VERSION;
    buf[5] = PLEXUS_FRAME_ENVELOPE;
    put_u16(buf + 6, 0);
    put_u32(buf + 8, (uint32_t)(size - PLEXUS_WIRE_HEADER_LEN));

    uint8_t *b = buf + PLEXUS_WIRE_HEADER_LEN;
    b[0] = e->kind; b[1] = e->target_kind; b[2] = e->priority; b[3] = e->flags;
    put_u32(b + 4, (uint32_t)e->status);
    put_id(b + 8, e->id);
    put_id(b + 24, e->correlation_id);
    put_id(b + 40, e->trace_id);
    put_u64(b + 56, (uint64_t)e->deadline_unix_ns);
    put_u16(b + 64, (uint16_t)S);
    put_u16(b + 66, (uint16_t)T);
    put_u16(b + 68, (uint16_t)C);
    put_u16(b + 70, 0);
    put_u32(b + 72, (uint32_t)e->payload_len);
    uint8_t *p = b + PLEXUS_WIRE_ENVELOPE_FIXED_LEN;
    p = put_str(p, e->sender, S);
    p = put_str(p, e->target, T);
    p = put_str(p, e->content_type, C);
    if (e->payload_len) memcpy(p, e->payload, e->payload_len);
    return size;
}

plexus_status plexus_wire_encode(const plexus_envelope *e, uint64_t max_payload,
                                 uint8_t *buf, uint64_t cap, uint64_t *out_len,
                                 const char **out_what) {
    plexus_status s = plexus_wire_validate(e, max_payload, out_what);
    if (s != PLEXUS_OK) return s;
    uint64_t size = plexus_wire_frame_size(e);
    if (out_len) *out_len = size;
    if (!buf || cap < size) return fail(PLEXUS_TOO_LARGE, out_what, "output buffer is smaller than the frame");
    plexus_wire_encode_valid(e, buf);
    return PLEXUS_OK;
}

/* ---- decoding ------------------------------------------------------------ */

plexus_status plexus_wire_decode_header(const uint8_t *buf, uint64_t len, uint64_t max_body,
                                        uint8_t *out_type, uint32_t *out_body_len,
                                        const char **out_what) {
    if (!buf || len < PLEXUS_WIRE_HEADER_LEN)
        return fail(PLEXUS_INVALID_ARGUMENT, out_what, "fewer than 12 bytes: the frame header is incomplete");
    if (get_u32(buf) != PLEXUS_WIRE_MAGIC) return fail(PLEXUS_MALFORMED_FRAME, out_what, "bad magic: not a Plexus frame");
    if (buf[4] != PLEXUS_WIRE_VERSION) return fail(PLEXUS_MALFORMED_FRAME, out_what, "unsupported wire version");
    if (buf[5] != PLEXUS_FRAME_ENVELOPE) return fail(PLEXUS_MALFORMED_FRAME, out_what, "unknown frame type");
    if (get_u16(buf + 6) != 0) return fail(PLEXUS_MALFORMED_FRAME, out_what, "reserved header bytes are not zero");
    uint32_t body = get_u32(buf + 8);
    if (body < PLEXUS_WIRE_ENVELOPE_FIXED_LEN + 3)
        return fail(PLEXUS_MALFORMED_FRAME, out_what, "body length is shorter than the smallest envelope");
    if (body > max_body) return fail(PLEXUS_TOO_LARGE, out_what, "body length exceeds the limit");
    if (out_type) *out_type = buf[5];
    if (out_body_len) *out_body_len = body;
    return PLEXUS_OK;
}

/* The fixed part of an envelope body at b: enums, status, ids, deadline. */
static plexus_envelope read_fixed(const uint8_t *b) {
    plexus_envelope e = plexus_envelope_init();
    e.kind = b[0]; e.target_kind = b[1]; e.priority = b[2]; e.flags = b[3];
    e.status = (plexus_status)get_u32(b + 4);
    e.id = get_id(b + 8);
    e.correlation_id = get_id(b + 24);
    e.trace_id = get_id(b + 40);
    e.deadline_unix_ns = (int64_t)get_u64(b + 56);
    return e;
}

/* Reads a string of n bytes at *p, checking its NUL and that none is inside. */
static int take_str(const uint8_t **p, uint64_t n, const char **out) {
    const uint8_t *s = *p;
    if (s[n] != 0 || memchr(s, 0, n) != NULL) return 0;
    *out = (const char *)s;
    *p = s + n + 1;
    return 1;
}

plexus_status plexus_wire_decode(const uint8_t *frame, uint64_t len, uint64_t max_payload,
                                 plexus_envelope *out, const char **out_what) {
    if (!out) return fail(PLEXUS_INVALID_ARGUMENT, out_what, "output envelope is NULL");
    uint8_t type;
    uint32_t body_len;
    plexus_status s = plexus_wire_decode_header(frame, len, plexus_wire_max_body(max_payload),
                                                &type, &body_len, out_what);
    if (s != PLEXUS_OK) return s;
    if ((uint64_t)body_len + PLEXUS_WIRE_HEADER_LEN != len)
        return fail(PLEXUS_MALFORMED_FRAME, out_what, "frame length does not match the header's body length");

    const uint8_t *b = frame + PLEXUS_WIRE_HEADER_LEN;
    uint64_t S = get_u16(b + 64), T = get_u16(b + 66), C = get_u16(b + 68), P = get_u32(b + 72);
    if (get_u16(b + 70) != 0) return fail(PLEXUS_MALFORMED_FRAME, out_what, "reserved envelope bytes are not zero");
    if (S > PLEXUS_MAX_NAME_LEN || T > PLEXUS_MAX_NAME_LEN || C > PLEXUS_MAX_NAME_LEN)
        return fail(PLEXUS_MALFORMED_FRAME, out_what, "a string length exceeds 255");
    if (P > max_payload) return fail(PLEXUS_TOO_LARGE, out_what, "payload is larger than the limit");
    if (PLEXUS_WIRE_ENVELOPE_FIXED_LEN + S + 1 + T + 1 + C + 1 + P != body_len)
        return fail(PLEXUS_MALFORMED_FRAME, out_what, "field lengths do not add up to the body length");

    plexus_envelope e = read_fixed(b);
    const uint8_t *p = b + PLEXUS_WIRE_ENVELOPE_FIXED_LEN;
    if (!take_str(&p, S, &e.sender) || !take_str(&p, T, &e.target) || !take_str(&p, C, &e.content_type))
        return fail(PLEXUS_MALFORMED_FRAME, out_what, "a string is not NUL-terminated or contains a NUL");
    e.payload = P ? p : NULL;
    e.payload_len = P;
    s = plexus_wire_validate(&e, max_payload, out_what);
    if (s == PLEXUS_INVALID_ARGUMENT) s = PLEXUS_MALFORMED_FRAME;
    if (s != PLEXUS_OK) return s;
    *out = e;
    return PLEXUS_OK;
}

void plexus_wire_view(const uint8_t *frame, plexus_envelope *out) {
    const uint8_t *b = frame + PLEXUS_WIRE_HEADER_LEN;
    uint64_t S = get_u16(b + 64), T = get_u16(b + 66), C = get_u16(b + 68), P = get_u32(b + 72);
    plexus_envelope e = read_fixed(b);
    const uint8_t *p = b + PLEXUS_WIRE_ENVELOPE_FIXED_LEN;
    e.sender = (const char *)p;       p += S + 1;
    e.target = (const char *)p;       p += T + 1;
    e.content_type = (const char *)p; p += C + 1;
    e.payload = P ? p : NULL;
    e.payload_len = P;
    *out = e;
}

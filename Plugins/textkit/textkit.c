/* textkit — the C example agent.
**   echo          replies with exactly the payload it got (the smoke test)
**   text.stats    counts bytes, characters, words, lines and sentences in text
**   docs.catalog  lists the documents announced on "docs.>" (it subscribes)
**   count.stream  streams {"n":1}, {"n":2}, ... as partial answers, then
**                 {"count":N}: the streaming example (ABI 1.2); stops early
**                 when the caller cancels or its deadline passes
**   count.cancels how many CANCEL envelopes this agent has received
** and three typed exports called through libffi without any handler code:
**   math.pow (libm's own pow), text.levenshtein, text.crc32. */
#define _POSIX_C_SOURCE 200809L   /* nanosleep */
#include "plexus.h"
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

static plexus_status textkit_init(const char *config);
#define PLEXUS_AGENT_ON_INIT(config) textkit_init(config)
#define PLEXUS_AGENT_EXPORT_LIST 3, textkit_exports
#define PLEXUS_AGENT_PERMISSION_LIST 1, textkit_permissions
#include "plexus_agent.h"

/* ---- typed exports: plain C functions ---------------------------------- */

static int64_t levenshtein(const char *a, const char *b) {
    size_t n = strlen(a), m = strlen(b);
    if (m > 4096) return -1;
    size_t *row = calloc(m + 1, sizeof *row);
    if (!row) return -1;
    for (size_t j = 0; j <= m; j++) row[j] = j;
    for (size_t i = 1; i <= n; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= m; j++) {
            size_t up = row[j], cost = a[i - 1] != b[j - 1];
            size_t best = diag + cost;
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    int64_t d = (int64_t)row[m];
    free(row);
    return d;
}

static uint32_t crc32_buf(const uint8_t *data, uint64_t len) {
    uint32_t c = 0xffffffffu;
    for (uint64_t i = 0; i < len; i++) {
        c ^= data[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    }
    return ~c;
}

static const uint8_t f64x2[] = { PLEXUS_TYPE_F64, PLEXUS_TYPE_F64 };
static const char *const pow_names[] = { "base", "exponent" };
static const uint8_t strx2[] = { PLEXUS_TYPE_STRING, PLEXUS_TYPE_STRING };
static const char *const lev_names[] = { "a", "b" };
static const uint8_t buf1[] = { PLEXUS_TYPE_BUFFER };
static const char *const crc_names[] = { "data" };

static const plexus_export textkit_exports[] = {
    { sizeof(plexus_export), "math.pow", "libm pow(base, exponent)", (void (*)(void))pow,
      PLEXUS_TYPE_F64, 2, f64x2, pow_names },
    { sizeof(plexus_export), "text.levenshtein", "edit distance between two strings",
      (void (*)(void))levenshtein, PLEXUS_TYPE_I64, 2, strx2, lev_names },
    { sizeof(plexus_export), "text.crc32", "CRC-32 (IEEE) of the string's UTF-8 bytes",
      (void (*)(void))crc32_buf, PLEXUS_TYPE_U32, 1, buf1, crc_names },
};

/* ---- text.stats --------------------------------------------------------- */

static int is_word_byte(unsigned char c) { return c >= 0x80 || (c >= '0' && c <= '9') || ((c | 32) >= 'a' && (c | 32) <= 'z') || c == '\''; }

static plexus_status stats(const plexus_envelope *msg) {
    const unsigned char *p = msg->payload;
    uint64_t n = msg->payload_len, chars = 0, words = 0, lines = 0, sentences = 0, letters = 0, longest = 0, run = 0;
    for (uint64_t i = 0; i < n; i++) {
        unsigned char c = p[i];
        if ((c & 0xc0) != 0x80) chars++;              /* count UTF-8 lead bytes */
        if (c == '\n') lines++;
        if ((c == '.' || c == '!' || c == '?') && (i + 1 == n || p[i + 1] == ' ' || p[i + 1] == '\n')) sentences++;
        if (is_word_byte(c)) { if (run++ == 0) words++; letters++; if (run > longest) longest = run; }
        else run = 0;
    }
    if (n > 0 && p[n - 1] != '\n') lines++;
    char out[512];
    snprintf(out, sizeof out,
             "{\"bytes\":%llu,\"characters\":%llu,\"words\":%llu,\"lines\":%llu,\"sentences\":%llu,"
             "\"average_word_length\":%.2f,\"longest_word\":%llu,\"reading_minutes\":%.1f}",
             (unsigned long long)n, (unsigned long long)chars, (unsigned long long)words,
             (unsigned long long)lines, (unsigned long long)sentences,
             words ? (double)letters / (double)words : 0.0, (unsigned long long)longest, (double)words / 230.0);
    return plexus_reply_json(msg, out);
}

/* ---- docs.catalog: what was announced on docs.> ------------------------ */

#define CATALOG_MAX 256
static char *catalog[CATALOG_MAX];
static size_t catalog_len;

static plexus_status remember(const plexus_envelope *msg) {
    if (catalog_len == CATALOG_MAX) { free(catalog[0]); memmove(catalog, catalog + 1, sizeof catalog[0] * (CATALOG_MAX - 1)); catalog_len--; }
    char *copy = malloc(msg->payload_len + 1);
    if (!copy) return PLEXUS_NO_MEMORY;
    memcpy(copy, msg->payload, msg->payload_len);
    copy[msg->payload_len] = 0;
    catalog[catalog_len++] = copy;
    return PLEXUS_OK;
}

static plexus_status list_catalog(const plexus_envelope *msg) {
    size_t size = 3;
    for (size_t i = 0; i < catalog_len; i++) size += strlen(catalog[i]) + 1;
    char *out = malloc(size), *w = out;
    if (!out) return PLEXUS_NO_MEMORY;
    *w++ = '[';
    for (size_t i = 0; i < catalog_len; i++) {
        if (i) *w++ = ',';
        size_t k = strlen(catalog[i]);
        memcpy(w, catalog[i], k);
        w += k;
    }
    *w++ = ']';
    plexus_status s = plexus_reply(msg, "application/json", out, (size_t)(w - out));
    free(out);
    return s;
}

/* ---- count.stream: the streaming example -------------------------------
** Payload {"to": N, "every_ms": M} (defaults 5 and 100; N <= 100000, M <=
** 10000). Each partial is sent as it is made; a NOT_A_REQUEST from
** plexus_reply_partial means the caller is gone (cancelled, or past its
** deadline), and the loop stops there instead of counting on. */

static long json_int(const plexus_envelope *msg, const char *key, long fallback, long max) {
    char pat[32];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    char text[256];
    size_t n = msg->payload_len < sizeof text - 1 ? msg->payload_len : sizeof text - 1;
    memcpy(text, msg->payload ? (const char *)msg->payload : "", n);
    text[n] = 0;
    const char *at = strstr(text, pat);
    if (!at || !(at = strchr(at + strlen(pat), ':'))) return fallback;
    long v = strtol(at + 1, NULL, 10);
    return v < 0 ? 0 : v > max ? max : v;
}

static atomic_long cancels_seen;

static plexus_status count_stream(const plexus_envelope *msg) {
    long to = json_int(msg, "to", 5, 100000), every = json_int(msg, "every_ms", 100, 10000);
    char out[64];
    for (long i = 1; i <= to; i++) {
        if (every > 0) {
            struct timespec ts = { every / 1000, (every % 1000) * 1000000L };
            while (nanosleep(&ts, &ts) != 0) {}
        }
        int k = snprintf(out, sizeof out, "{\"n\":%ld}", i);
        plexus_status s = plexus_reply_partial(msg, "application/json", out, (size_t)k);
        if (s == PLEXUS_NOT_A_REQUEST) return PLEXUS_OK;   /* cancelled or expired: nobody reads on */
        if (s != PLEXUS_OK) return s;
    }
    snprintf(out, sizeof out, "{\"count\":%ld}", to);
    return plexus_reply_json(msg, out);
}

static plexus_status handle(const plexus_envelope *msg) {
    if (msg->kind == PLEXUS_KIND_CANCEL) { atomic_fetch_add(&cancels_seen, 1); return PLEXUS_OK; }
    if (msg->kind == PLEXUS_KIND_EVENT) return remember(msg);
    if (plexus_is(msg, "count.stream")) return count_stream(msg);
    if (plexus_is(msg, "count.cancels")) {
        char out[64];
        snprintf(out, sizeof out, "{\"cancels\":%ld}", (long)atomic_load(&cancels_seen));
        return plexus_reply_json(msg, out);
    }
    if (plexus_is(msg, "echo")) return plexus_reply(msg, msg->content_type, msg->payload, msg->payload_len);
    if (plexus_is(msg, "text.stats")) return stats(msg);
    if (plexus_is(msg, "docs.catalog")) return list_catalog(msg);
    return PLEXUS_UNSUPPORTED;
}

static plexus_status textkit_init(const char *config) {
    (void)config;
    return plexus_subscribe("docs.>");
}

static const plexus_capability caps[] = {
    { sizeof(plexus_capability), "echo", "replies with the payload it was sent", "any bytes", "the same bytes" },
    { sizeof(plexus_capability), "text.stats", "counts bytes, characters, words, lines, sentences", "text/plain", "JSON object" },
    { sizeof(plexus_capability), "docs.catalog", "documents announced on docs.>", NULL, "JSON array of events" },
    { sizeof(plexus_capability), "count.stream", "counts to N, one partial answer per number (a stream)",
      "{\"to\": N, \"every_ms\": M}", "partials {\"n\": i}, then {\"count\": N}" },
    { sizeof(plexus_capability), "count.cancels", "how many cancelled requests this agent was told of", NULL, "{\"cancels\": n}" },
};

/* What textkit asks to reach: the announcements it catalogues. */
static const plexus_permission textkit_permissions[] = { PLEXUS_PERMISSION(PLEXUS_PERMIT_SUBSCRIBE, "docs.>") };

PLEXUS_AGENT("textkit", "1.0.0", caps, handle)

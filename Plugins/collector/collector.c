#define _GNU_SOURCE
/* collector — the C agent that reads a data set for the weather crew.
**   data.collect  {"path": "...csv", "flaky": true?} in; out: the file's
**                 header, row count, an FNV-1a fingerprint
**                 and its rows grouped by month, one chunk per month, so
**                 the cleaners can fan out over them.
** With "flaky": true the first read of each worker answers UNAVAILABLE,
** as a busy remote source would: the workflow's retry policy shows itself
** on real data (the second attempt reads the file). */
#include "plexus.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>
#include "plexus_agent.h"

typedef struct { char *data; size_t len, cap; int failed; } buf;

static void put(buf *b, const char *s, size_t n) {
    if (b->failed) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1) cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d) { b->failed = 1; return; }
        b->data = d; b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = 0;
}

static void puts_(buf *b, const char *s) { put(b, s, strlen(s)); }

/* s as a JSON string literal. */
static void put_json(buf *b, const char *s, size_t n) {
    put(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '"' || c == '\\') { esc[0] = '\\'; esc[1] = (char)c; put(b, esc, 2); }
        else if (c == '\n') put(b, "\\n", 2);
        else if (c == '\r') continue;
        else if (c < 0x20) { snprintf(esc, sizeof esc, "\\u%04x", c); put(b, esc, 6); }
        else put(b, (const char *)&c, 1);
    }
    put(b, "\"", 1);
}

/* The string value of "key" in a flat JSON object; NULL if absent. */
static char *json_field(const char *json, size_t n, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    const char *p = memmem(json, n, pat, strlen(pat));
    if (!p) return NULL;
    p += strlen(pat);
    const char *end = json + n;
    while (p < end && (*p == ' ' || *p == ':')) p++;
    if (p >= end || *p != '"') return NULL;
    char *out = malloc((size_t)(end - p)), *o = out;
    if (!out) return NULL;
    for (p++; p < end && *p != '"'; p++) {
        if (*p == '\\' && p + 1 < end) p++;
        *o++ = *p;
    }
    *o = 0;
    return out;
}

/* One month's rows as {"month": "YYYY/MM", "text": "..."}, comma-led after the first. */
static void emit_chunk(buf *out, const char *month, const buf *text, size_t index) {
    puts_(out, index ? ",{\"month\":" : "{\"month\":");
    put_json(out, month, 7);
    puts_(out, ",\"text\":");
    put_json(out, text->data, text->len);
    puts_(out, "}");
}

static int first_read_done;

static plexus_status collect(const plexus_envelope *msg) {
    const char *json = (const char *)msg->payload;
    size_t n = msg->payload_len;
    char *path = json_field(json, n, "path");
    if (!path) return plexus_reply_error(msg, PLEXUS_INVALID_ARGUMENT, "data.collect needs {\"path\": \"file.csv\"}");
    if (memmem(json, n, "\"flaky\":true", 12) && !first_read_done) {
        first_read_done = 1;
        free(path);
        return plexus_reply_error(msg, PLEXUS_UNAVAILABLE, "the source is busy (flaky: the first read of each collector fails); try again");
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        /* Say which file was tried, and where this agent looks: a relative
        ** path is read from its own working directory (/ in a sandboxed
        ** worker, the host's in process), and a sandboxed agent sees only
        ** the paths plexus.yaml grants it. */
        int err = errno;
        char why[2048], cwd[512];
        const char *grant = "a sandboxed agent sees only the paths plexus.yaml's filesystem.read grants it";
        if (path[0] == '/') snprintf(why, sizeof why, "cannot open %.500s: %.200s (%s)", path, strerror(err), grant);
        else if (getcwd(cwd, sizeof cwd))
            snprintf(why, sizeof why, "cannot open %s%s%.500s: %.200s (a relative path is read from the agent's working directory, %s; give an absolute path; %s)",
                     cwd, strcmp(cwd, "/") ? "/" : "", path, strerror(err), cwd, grant);
        else snprintf(why, sizeof why, "cannot open %.500s: %.200s (a relative path is read from the agent's working directory; %s)", path, strerror(err), grant);
        free(path);
        return plexus_reply_error(msg, PLEXUS_INVALID_ARGUMENT, why);
    }
    buf file = {0}, out = {0};
    char chunk[65536];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) put(&file, chunk, got);
    fclose(f);
    if (file.failed || !file.data) { free(path); free(file.data); return plexus_reply_error(msg, PLEXUS_INVALID_ARGUMENT, "the file is empty or too big"); }

    const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    uint64_t fnv = 1469598103934665603ull;
    for (size_t i = 0; i < file.len; i++) { fnv ^= (unsigned char)file.data[i]; fnv *= 1099511628211ull; }
    char *line = file.data, *header_end = strchr(line, '\n');
    if (!header_end) { free(path); free(file.data); return plexus_reply_error(msg, PLEXUS_INVALID_ARGUMENT, "the file has no rows after its header"); }
    puts_(&out, "{\"source\":");
    put_json(&out, name, strlen(name));
    puts_(&out, ",\"header\":");
    put_json(&out, line, (size_t)(header_end - line) - (header_end > line && header_end[-1] == '\r'));
    puts_(&out, ",\"chunks\":[");

    /* Rows grouped by their first 7 characters (YYYY/MM of the date). */
    char month[8] = "";
    size_t rows = 0, chunks = 0;
    buf text = {0};
    for (char *p = header_end + 1; p < file.data + file.len;) {
        char *e = memchr(p, '\n', (size_t)(file.data + file.len - p));
        if (!e) e = file.data + file.len;
        if (e > p) {
            if ((size_t)(e - p) >= 7 && strncmp(month, p, 7) != 0) {
                if (text.len) { emit_chunk(&out, month, &text, chunks++); text.len = 0; }
                memcpy(month, p, 7);
            }
            put(&text, p, (size_t)(e - p) + 1);
            rows++;
        }
        p = e + 1;
    }
    if (text.len) emit_chunk(&out, month, &text, chunks++);
    char tail[160];
    snprintf(tail, sizeof tail, "],\"rows\":%zu,\"months\":%zu,\"bytes\":%zu,\"fnv1a\":\"%016llx\"}", rows, chunks, file.len,
             (unsigned long long)fnv);
    puts_(&out, tail);
    plexus_status s = out.failed ? plexus_reply_error(msg, PLEXUS_NO_MEMORY, "out of memory") : plexus_reply_json(msg, out.data);
    free(path); free(file.data); free(out.data); free(text.data);
    return s;
}

static plexus_status handle(const plexus_envelope *msg) {
    if (plexus_is(msg, "data.collect")) return collect(msg);
    return PLEXUS_UNSUPPORTED;
}

static const plexus_capability caps[] = {
    { sizeof(plexus_capability), "data.collect", "reads a CSV file and groups its rows by month", "{path, flaky?}", "JSON: header, rows, chunks[{month, text}]" },
};

PLEXUS_AGENT("collector", "1.0.0", caps, handle)

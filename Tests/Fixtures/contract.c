/* contract — calls every host function with bad and good inputs and reports
** each status, so ContractTests can run the same table in process and in a
** sandboxed worker and compare both with plexus.h. Compiled at test time;
** -DAGENT_NAME='"name"' gives it another name (its capabilities keep theirs).
**
**   contract.table   QUERY: runs the table, replies "label STATUS" lines
**   contract.sink    COMMAND: nothing; QUERY: replies "ok"
**   contract.big     QUERY: replies with a 100 MiB payload_len; returns what reply() said
**   contract.badreply QUERY: replies with a content type holding a control byte
**   contract.fail    QUERY: returns INTERNAL without replying
**   contract.hold    QUERY: keeps the request's id, returns OK without replying
**   contract.late    QUERY: replies to the kept request now; answers with that status
**   contract.huge    typed export: returns a 17 MiB string (over every payload limit) */
#include "plexus.h"
#define PLEXUS_AGENT_PERMISSION_LIST 3, contract_permissions
#define PLEXUS_AGENT_EXPORT_LIST 1, contract_exports
#include "plexus_agent.h"
#include <stdio.h>
#include <stdlib.h>

#ifndef AGENT_NAME
#define AGENT_NAME "contract"
#endif

static char out[16384];
static size_t out_len;
static plexus_id held;

static void line(const char *label, const char *value) {
    int n = snprintf(out + out_len, sizeof out - out_len, "%s %s\n", label, value);
    if (n > 0 && (size_t)n < sizeof out - out_len) out_len += (size_t)n;
}
static void rec(const char *label, plexus_status s) { line(label, plexus_status_name(s)); }

static plexus_envelope to(const char *target, uint8_t target_kind) {
    plexus_envelope e = plexus_envelope_init();
    e.kind = PLEXUS_KIND_COMMAND;
    e.target_kind = target_kind;
    e.target = target;
    e.payload = (const uint8_t *)"x";
    e.payload_len = 1;
    return e;
}

static void envelopes(const plexus_host *h, plexus_ctx *c) {
    static char long_name[301];
    memset(long_name, 'a', 300);
    plexus_envelope good = to("contract.sink", PLEXUS_TARGET_CAPABILITY), e;

    rec("send.null_msg", h->send(c, NULL));
    rec("send.null_ctx", h->send(NULL, &good));
    e = good; e.struct_size = 0;                    rec("send.struct_size_0", h->send(c, &e));
    e = good; e.struct_size = 8;                    rec("send.struct_size_8", h->send(c, &e));
    rec("send.ok", h->send(c, &good));
    struct { plexus_envelope e; uint8_t tail[64]; } newer;   /* a newer plexus.h's larger envelope */
    memset(&newer, 0xAB, sizeof newer);
    newer.e = good; newer.e.struct_size = sizeof newer;
    rec("send.larger_struct_size", h->send(c, &newer.e));
    e = good; e.reserved = 0xdeadbeefu;             rec("send.reserved_ignored", h->send(c, &e));
    e = good; e.target_kind = 9;                    rec("send.target_kind_9", h->send(c, &e));
    e = good; e.priority = 7;                       rec("send.priority_7", h->send(c, &e));
    e = good; e.kind = 9;                           rec("send.kind_9", h->send(c, &e));
    e = good; e.flags = 1;                          rec("send.flags_1", h->send(c, &e));
    e = good; e.target = NULL;                      rec("send.null_target", h->send(c, &e));
    e = good; e.target = "";                        rec("send.empty_target", h->send(c, &e));
    e = good; e.target = long_name;                 rec("send.long_target", h->send(c, &e));
    e = good; e.target = "a b";                     rec("send.bad_char_target", h->send(c, &e));
    e = good; e.content_type = "text/\x01";         rec("send.bad_content_type", h->send(c, &e));
    e = to("nobody", PLEXUS_TARGET_AGENT);          rec("send.no_such_agent", h->send(c, &e));
    e = to("no.such.cap", PLEXUS_TARGET_CAPABILITY); rec("send.no_such_capability", h->send(c, &e));
    e = good; e.payload_len = 1ull << 40;           rec("send.len_2^40", h->send(c, &e));
    e = good; e.payload = NULL; e.payload_len = 5;  rec("send.null_payload", h->send(c, &e));
    e = good; e.kind = PLEXUS_KIND_QUERY;           rec("send.kind_query", h->send(c, &e));
    e = good; e.kind = PLEXUS_KIND_RESPONSE;        rec("send.kind_response", h->send(c, &e));
    e = good; e.target_kind = PLEXUS_TARGET_REPLY;  rec("send.target_kind_reply", h->send(c, &e));
    e = good; e.deadline_unix_ns = 1;               rec("send.expired", h->send(c, &e));

    plexus_id id;
    rec("request.null_msg", h->request(c, NULL, 5000, &id));
    rec("request.null_ctx", h->request(NULL, &good, 5000, &id));
    e = good; e.struct_size = 0;                    rec("request.struct_size_0", h->request(c, &e, 5000, &id));
    e = to("contract.news", PLEXUS_TARGET_TOPIC);   rec("request.topic", h->request(c, &e, 5000, &id));
    e = to("no.such.cap", PLEXUS_TARGET_CAPABILITY); rec("request.no_such_capability", h->request(c, &e, 5000, &id));
    e = good; e.payload_len = 1ull << 40;           rec("request.len_2^40", h->request(c, &e, 5000, &id));
    e = good; e.priority = 9;                       rec("request.priority_9", h->request(c, &e, 5000, &id));
    e = good; e.kind = PLEXUS_KIND_EVENT;           rec("request.kind_ignored", h->request(c, &e, 5000, &id));
    rec("request.ok", h->request(c, &good, 5000, NULL));

    plexus_envelope r = plexus_envelope_init();
    r.kind = PLEXUS_KIND_RESPONSE;
    r.correlation_id.hi = 7; r.correlation_id.lo = 7;
    rec("reply.null_msg", h->reply(c, NULL));
    rec("reply.null_ctx", h->reply(NULL, &r));
    e = r; e.struct_size = 0;                       rec("reply.struct_size_0", h->reply(c, &e));
    rec("reply.unknown_request", h->reply(c, &r));

    /* ABI 1.2: reply_partial and cancel. id is request.kind_ignored's, still open. */
    rec("reply_partial.null_msg", h->reply_partial(c, NULL));
    rec("reply_partial.null_ctx", h->reply_partial(NULL, &r));
    e = r; e.struct_size = 0;                       rec("reply_partial.struct_size_0", h->reply_partial(c, &e));
    rec("reply_partial.unknown_request", h->reply_partial(c, &r));
    plexus_id zero = { 0, 0 };
    rec("cancel.null_ctx", h->cancel(NULL, id));
    rec("cancel.zero_id", h->cancel(c, zero));
    rec("cancel.unknown_request", h->cancel(c, r.correlation_id));
    rec("cancel.own_request", h->cancel(c, id));
    rec("cancel.again", h->cancel(c, id));
    e = good; e.kind = PLEXUS_KIND_CANCEL;          rec("send.kind_cancel", h->send(c, &e));

    /* ABI 1.2: spawn and stop (no spawn: section for this plugin: it may spawn nothing). */
    char child[PLEXUS_MAX_NAME_LEN + 1], small[16];
    rec("spawn.null_ctx", h->spawn(NULL, AGENT_NAME, NULL, NULL, NULL, 0));
    rec("spawn.null_plugin", h->spawn(c, NULL, NULL, NULL, NULL, 0));
    rec("spawn.bad_plugin", h->spawn(c, "a b", NULL, NULL, NULL, 0));
    rec("spawn.long_plugin", h->spawn(c, long_name, NULL, NULL, NULL, 0));
    rec("spawn.slash_instance", h->spawn(c, AGENT_NAME, "x/y", NULL, NULL, 0));
    rec("spawn.small_out", h->spawn(c, AGENT_NAME, NULL, NULL, small, sizeof small));
    rec("spawn.not_json", h->spawn(c, AGENT_NAME, NULL, "[1]", child, sizeof child));
    rec("spawn.no_such_plugin", h->spawn(c, "contract-ghost", NULL, NULL, child, sizeof child));
    rec("spawn.not_permitted", h->spawn(c, AGENT_NAME, "c1", "{}", child, sizeof child));
    rec("stop.null_ctx", h->stop(NULL, "x"));
    rec("stop.null_name", h->stop(c, NULL));
    rec("stop.bad_name", h->stop(c, "a b"));
    rec("stop.no_such_agent", h->stop(c, "contract/none"));
    rec("stop.not_a_child", h->stop(c, "plexus"));

    plexus_envelope news = to("contract.news", PLEXUS_TARGET_TOPIC);
    news.kind = PLEXUS_KIND_EVENT;
    rec("publish.null_msg", h->publish(c, NULL));
    rec("publish.null_ctx", h->publish(NULL, &news));
    e = news; e.struct_size = 0;                    rec("publish.struct_size_0", h->publish(c, &e));
    e = news; e.target_kind = PLEXUS_TARGET_AGENT;  rec("publish.agent_target", h->publish(c, &e));
    e = news; e.target = "contract.*";              rec("publish.wildcard", h->publish(c, &e));
    e = news; e.payload_len = 1ull << 40;           rec("publish.len_2^40", h->publish(c, &e));
    e = news; e.kind = PLEXUS_KIND_QUERY;           rec("publish.kind_ignored", h->publish(c, &e));
    rec("publish.ok", h->publish(c, &news));

    rec("subscribe.null_pattern", h->subscribe(c, NULL));
    rec("subscribe.null_ctx", h->subscribe(NULL, "contract.x.>"));
    rec("subscribe.bad_pattern", h->subscribe(c, "contract..x"));
    rec("subscribe.ok", h->subscribe(c, "contract.x.>"));
    rec("unsubscribe.ok", h->unsubscribe(c, "contract.x.>"));
    rec("unsubscribe.not_subscribed", h->unsubscribe(c, "contract.never"));
    rec("unsubscribe.null_pattern", h->unsubscribe(c, NULL));
}

static void key_value(const plexus_host *h, plexus_ctx *c) {
    static char long_key[514];
    memset(long_key, 'k', 513);
    uint8_t *v = NULL;
    uint64_t len = 0, version = 0;
    const uint8_t one[1] = { '1' };

    rec("kv_get.null_ctx", h->kv_get(NULL, "k", &v, &len, &version));
    rec("kv_get.null_key", h->kv_get(c, NULL, &v, &len, &version));
    rec("kv_get.null_out", h->kv_get(c, "k", NULL, &len, &version));
    rec("kv_get.empty_key", h->kv_get(c, "", &v, &len, &version));
    rec("kv_get.key_513", h->kv_get(c, long_key, &v, &len, &version));
    rec("kv_get.key_not_utf8", h->kv_get(c, "\xff\xfe", &v, &len, &version));
    plexus_status s = h->kv_get(c, "contract-absent", &v, &len, &version);
    line("kv_get.absent", s == PLEXUS_OK ? (version == 0 && !v ? "OK-absent" : "OK-present") : plexus_status_name(s));

    rec("kv_put.null_ctx", h->kv_put(NULL, "k", one, 1, PLEXUS_KV_ANY, NULL));
    rec("kv_put.null_key", h->kv_put(c, NULL, one, 1, PLEXUS_KV_ANY, NULL));
    rec("kv_put.expected_-77", h->kv_put(c, "k", one, 1, -77, NULL));
    rec("kv_put.expected_-2", h->kv_put(c, "k", one, 1, -2, NULL));
    rec("kv_put.len_2^40", h->kv_put(c, "k", one, 1ull << 40, PLEXUS_KV_ANY, NULL));
    rec("kv_put.null_value", h->kv_put(c, "k", NULL, 3, PLEXUS_KV_ANY, NULL));
    rec("kv_put.key_513", h->kv_put(c, long_key, one, 1, PLEXUS_KV_ANY, NULL));
    rec("kv_put.any", h->kv_put(c, "k", one, 1, PLEXUS_KV_ANY, &version));
    rec("kv_put.create_existing", h->kv_put(c, "k", one, 1, 0, NULL));
    rec("kv_put.stale_version", h->kv_put(c, "k", one, 1, 999, NULL));
    rec("kv_put.at_version", h->kv_put(c, "k", one, 1, (int64_t)version, NULL));
    rec("kv_put.empty_value", h->kv_put(c, "e", NULL, 0, PLEXUS_KV_ANY, NULL));
    s = h->kv_get(c, "k", &v, &len, &version);
    line("kv_get.present", s == PLEXUS_OK ? (version == 2 && len == 1 && v && v[0] == '1' && v[1] == 0 ? "OK-v2" : "OK-wrong") : plexus_status_name(s));
    h->free(v);

    rec("kv_delete.null_ctx", h->kv_delete(NULL, "k", PLEXUS_KV_ANY));
    rec("kv_delete.null_key", h->kv_delete(c, NULL, PLEXUS_KV_ANY));
    rec("kv_delete.expected_-77", h->kv_delete(c, "k", -77));
    rec("kv_delete.stale_version", h->kv_delete(c, "k", 999));
    rec("kv_delete.any", h->kv_delete(c, "k", PLEXUS_KV_ANY));
    rec("kv_delete.absent_any", h->kv_delete(c, "k", PLEXUS_KV_ANY));
}

static void memory(const plexus_host *h, plexus_ctx *c) {
    void *p = h->alloc(UINT64_MAX);
    line("alloc.UINT64_MAX", p ? "PTR" : "NULL");
    h->free(p);
    p = h->alloc(1ull << 63);
    line("alloc.2^63", p ? "PTR" : "NULL");
    h->free(p);
    p = h->alloc(0);
    line("alloc.0", p ? "PTR" : "NULL");
    h->free(p);
    p = h->alloc(64);
    line("alloc.64", p ? "PTR" : "NULL");
    h->free(p);
    h->free(NULL);
    const char *n = h->agent_name(c);
    line("agent_name", n && strcmp(n, AGENT_NAME) == 0 ? "SELF" : "OTHER");
    line("agent_name.null_ctx", h->agent_name(NULL) ? "PTR" : "NULL");
    line("now_unix_ns", h->now_unix_ns() > 1700000000000000000ll ? "SANE" : "WRONG");
}

static plexus_status reply_text(const plexus_envelope *m, const char *text) {
    return plexus_reply(m, "text/plain", text, strlen(text));
}

static plexus_status handle(const plexus_envelope *m) {
    if (m->kind == PLEXUS_KIND_RESPONSE || m->kind == PLEXUS_KIND_ERROR || m->kind == PLEXUS_KIND_EVENT) return PLEXUS_OK;
    int query = m->kind == PLEXUS_KIND_QUERY;
    if (plexus_is(m, "contract.sink")) return query ? reply_text(m, "ok") : PLEXUS_OK;
    if (plexus_is(m, "contract.table")) {
        out_len = 0;
        envelopes(plexus_sdk_host, plexus_sdk_ctx());
        key_value(plexus_sdk_host, plexus_sdk_ctx());
        memory(plexus_sdk_host, plexus_sdk_ctx());
        return plexus_reply(m, "text/plain", out, out_len);
    }
    if (plexus_is(m, "contract.big")) {          /* checked on its length: the byte past "x" is never read */
        plexus_envelope r = plexus_envelope_init();
        r.kind = PLEXUS_KIND_RESPONSE;
        r.correlation_id = m->id;
        r.payload = (const uint8_t *)"x";
        r.payload_len = 100ull << 20;
        return plexus_sdk_host->reply(plexus_sdk_ctx(), &r);
    }
    if (plexus_is(m, "contract.badreply")) {
        plexus_envelope r = plexus_envelope_init();
        r.kind = PLEXUS_KIND_RESPONSE;
        r.correlation_id = m->id;
        r.content_type = "text/\x01";
        return plexus_sdk_host->reply(plexus_sdk_ctx(), &r);
    }
    if (plexus_is(m, "contract.fail")) return PLEXUS_INTERNAL;
    if (plexus_is(m, "contract.hold")) { held = m->id; return PLEXUS_OK; }
    if (plexus_is(m, "contract.late")) {
        plexus_envelope r = plexus_envelope_init();
        r.kind = PLEXUS_KIND_RESPONSE;
        r.correlation_id = held;
        return reply_text(m, plexus_status_name(plexus_sdk_host->reply(plexus_sdk_ctx(), &r)));
    }
    return PLEXUS_UNSUPPORTED;
}

static const plexus_capability caps[] = {
    PLEXUS_CAPABILITY("contract.table", NULL), PLEXUS_CAPABILITY("contract.sink", NULL),
    PLEXUS_CAPABILITY("contract.big", NULL), PLEXUS_CAPABILITY("contract.badreply", NULL),
    PLEXUS_CAPABILITY("contract.fail", NULL), PLEXUS_CAPABILITY("contract.hold", NULL),
    PLEXUS_CAPABILITY("contract.late", NULL),
};

static char *huge(void) {
    size_t n = (17u << 20) + 1;
    char *p = malloc(n + 1);
    if (!p) return NULL;
    memset(p, 'h', n);
    p[n] = 0;
    return p;
}
static const plexus_export contract_exports[] = {
    { sizeof(plexus_export), "contract.huge", NULL, (void (*)(void))huge, PLEXUS_TYPE_STRING_OWNED, 0, NULL, NULL },
};

static const plexus_permission contract_permissions[] = {
    PLEXUS_PERMISSION(PLEXUS_PERMIT_CALL, ">"),
    PLEXUS_PERMISSION(PLEXUS_PERMIT_PUBLISH, "contract.>"),
    PLEXUS_PERMISSION(PLEXUS_PERMIT_SUBSCRIBE, "contract.>"),
};

#ifdef NEWER_STRUCTS
#define plexus_plugin_entry contract_entry_as_built   /* replaced below */
#endif
PLEXUS_AGENT(AGENT_NAME, "0.1.0", caps, handle)

#ifdef NEWER_STRUCTS
#undef plexus_plugin_entry
/* -DNEWER_STRUCTS: the same agent as a newer plexus.h would lay it out, each
** growable struct 24 bytes longer, its tail filled with bytes a host must
** skip (arrays are walked by their first element's struct_size). */
#define TAIL { [0 ... 23] = 0xEE }
typedef struct { plexus_capability c; uint8_t tail[24]; } newer_capability;
typedef struct { plexus_permission p; uint8_t tail[24]; } newer_permission;
#define NEWER_CAP(n) { { sizeof(newer_capability), (n), NULL, NULL, NULL }, TAIL }
static const newer_capability newer_caps[] = {
    NEWER_CAP("contract.table"), NEWER_CAP("contract.sink"), NEWER_CAP("contract.big"), NEWER_CAP("contract.badreply"),
    NEWER_CAP("contract.fail"), NEWER_CAP("contract.hold"), NEWER_CAP("contract.late"),
};
static const newer_permission newer_perms[] = {
    { { sizeof(newer_permission), PLEXUS_PERMIT_CALL, ">" }, TAIL },
    { { sizeof(newer_permission), PLEXUS_PERMIT_PUBLISH, "contract.>" }, TAIL },
    { { sizeof(newer_permission), PLEXUS_PERMIT_SUBSCRIBE, "contract.>" }, TAIL },
};
static const struct { plexus_plugin_descriptor d; uint8_t tail[24]; } newer = {
    { sizeof newer, PLEXUS_ABI_MAJOR, PLEXUS_ABI_MINOR, sizeof(plexus_envelope), sizeof(plexus_host),
      AGENT_NAME, "0.2.0", NULL, 0, 7, &newer_caps[0].c, 3, &newer_perms[0].p, 0, NULL,
      plexus_sdk_init, plexus_sdk_handle, NULL }, TAIL };
PLEXUS_EXPORT const plexus_plugin_descriptor *plexus_plugin_entry(void) { return &newer.d; }
#endif

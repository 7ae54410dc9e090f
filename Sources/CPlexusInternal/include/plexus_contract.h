/*
** plexus_contract.h — the argument checks of the host functions, written
** once and run by both implementations of the host table: the host's own
** (HostTable.swift, plugins in process) and the worker's (plexus-worker,
** sandboxed plugins). A plugin then hears the same status for the same
** input in both modes; plexus.h documents each answer. Private.
*/
#ifndef PLEXUS_CONTRACT_H
#define PLEXUS_CONTRACT_H

#include "plexus.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What a plugin passes to send/request/publish/reply, made safe to read:
** INVALID_ARGUMENT when msg is NULL or its struct_size is below
** PLEXUS_ENVELOPE_SIZE_1_0; otherwise *out is a copy of the first
** min(struct_size, sizeof) bytes of msg (a newer plugin's tail is ignored,
** an older one's missing fields are zero) with struct_size = sizeof and the
** host-set fields cleared (id, sender, reserved). *out_what names the
** problem. */
plexus_status plexus_contract_envelope(const plexus_envelope *msg, plexus_envelope *out, const char **out_what);

/* The fields of a send/request/publish envelope after plexus_contract_envelope
** and after the caller forced what the function forces (kind for request and
** publish): as plexus_wire_validate, with the payload limit max_payload. */
plexus_status plexus_contract_fields(const plexus_envelope *e, uint64_t max_payload, const char **out_what);

/* kv_get/kv_put/kv_delete arguments, before any store is asked: key NULL,
** empty, over PLEXUS_KV_MAX_KEY bytes or not UTF-8; expected_version below
** PLEXUS_KV_ANY; value NULL with len > 0 (INVALID_ARGUMENT); len over
** PLEXUS_KV_MAX_VALUE(max_payload) (TOO_LARGE). Pass len 0 and value NULL
** for get and delete. */
plexus_status plexus_contract_kv(const char *key, const uint8_t *value, uint64_t len, int64_t expected_version,
                                 uint64_t max_payload, const char **out_what);

/* The longest key-value value under a payload limit: PLEXUS_KV_MAX_VALUE of
** the limit (capped at PLEXUS_MAX_PAYLOAD_LEN), 0 for a limit too small. */
uint64_t plexus_contract_kv_max_value(uint64_t max_payload);

/* spawn (1.2) arguments, in plexus.h's order: plugin_name NULL or not a
** name, instance_name (NULL or "" allowed) not a name, out_name with
** out_name_size below PLEXUS_MAX_NAME_LEN + 1 (INVALID_ARGUMENT);
** config_json longer than max_payload (TOO_LARGE). The JSON itself and
** everything after are the host's to check. */
plexus_status plexus_contract_spawn(const char *plugin_name, const char *instance_name, const char *config_json,
                                    const char *out_name, uint32_t out_name_size, uint64_t max_payload,
                                    const char **out_what);

/* stop (1.2): name NULL or not a name ('/' allowed: children's names have one). */
plexus_status plexus_contract_stop(const char *name, const char **out_what);

/* alloc for both tables: NULL for size > PTRDIFF_MAX (malloc's own limit,
** and what a signed size would wrap on), a unique pointer for size 0. */
void *plexus_contract_alloc(uint64_t size);

#ifdef __cplusplus
}
#endif
#endif /* PLEXUS_CONTRACT_H */

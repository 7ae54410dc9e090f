/* spawner — spawns helpers through the C SDK (SpawnTests):
**   spawner.spawn  "PLUGIN INSTANCE CONFIG" (INSTANCE "-": the host names it;
**                  CONFIG "-": NULL) -> the child's name, or the status name
**   spawner.stop   "NAME" -> "OK" or the status name
**   spawner.events the plexus.agent.terminated payloads it received, one a line
**   spawner.crash  abort()
*/
#include "plexus_agent.h"
#include <pthread.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char journal[16384];
static size_t journal_len;

static plexus_status answer(const plexus_envelope *msg, const char *text) {
    return plexus_reply(msg, "text/plain", text, strlen(text));
}

static plexus_status handle(const plexus_envelope *msg) {
    if (plexus_is_child_terminated(msg)) {
        pthread_mutex_lock(&lock);
        if (journal_len + msg->payload_len + 1 < sizeof journal) {
            memcpy(journal + journal_len, msg->payload, msg->payload_len);
            journal_len += msg->payload_len;
            journal[journal_len++] = '\n';
        }
        pthread_mutex_unlock(&lock);
        return PLEXUS_OK;
    }
    if (msg->kind != PLEXUS_KIND_QUERY) return PLEXUS_OK;
    char arg[1024];
    size_t n = msg->payload_len < sizeof arg - 1 ? msg->payload_len : sizeof arg - 1;
    memcpy(arg, msg->payload, n);
    arg[n] = 0;
    if (plexus_is(msg, "spawner.spawn")) {
        char *plugin = strtok(arg, " "), *instance = strtok(NULL, " "), *config = strtok(NULL, "");
        if (instance && strcmp(instance, "-") == 0) instance = NULL;
        if (config && strcmp(config, "-") == 0) config = NULL;
        char name[PLEXUS_MAX_NAME_LEN + 1];
        plexus_status s = plexus_spawn(plugin ? plugin : "", instance, config, name);
        return answer(msg, s == PLEXUS_OK ? name : plexus_status_name(s));
    }
    if (plexus_is(msg, "spawner.stop")) {
        plexus_status s = plexus_stop_child(arg);
        return answer(msg, s == PLEXUS_OK ? "OK" : plexus_status_name(s));
    }
    if (plexus_is(msg, "spawner.events")) {
        pthread_mutex_lock(&lock);
        plexus_status s = plexus_reply(msg, "text/plain", journal, journal_len);
        pthread_mutex_unlock(&lock);
        return s;
    }
    if (plexus_is(msg, "spawner.crash")) abort();
    return PLEXUS_UNSUPPORTED;
}

static const plexus_capability caps[] = {
    PLEXUS_CAPABILITY("spawner.spawn", NULL), PLEXUS_CAPABILITY("spawner.stop", NULL),
    PLEXUS_CAPABILITY("spawner.events", NULL), PLEXUS_CAPABILITY("spawner.crash", NULL) };
PLEXUS_AGENT("spawner", "1.0.0", caps, handle)

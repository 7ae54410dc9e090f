/* The official NATS C client (Debian's libnats-dev), for PlexusCluster. */
#include <nats/nats.h>

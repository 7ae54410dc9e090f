/* The host's per-thread words (plexus_tls.h). */
#include "plexus_tls.h"

_Thread_local void *plexus_tls_message_;
_Thread_local void *plexus_tls_worker_;
_Thread_local void *plexus_tls_call_;

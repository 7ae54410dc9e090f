/*
** plexus_channel.h — the control conversation on a channel between the host
** and something that acts as an agent outside it: a sandboxed worker process
** today, a socket client registering as an agent later.
**
** A channel carries nothing but plexus_wire.h envelope frames, in both
** directions. To a worker they travel on the shared-memory rings of
** plexus_ring.h, which the host passes over the worker's socket first. Most are ordinary messages (deliveries to the agent, messages
** the agent sends, replies). Control frames are envelopes with
** target_kind = PLEXUS_TARGET_TOPIC and a target under the reserved prefix
** "_plexus." below; the host never routes them and agents may not publish
** under that prefix. Integers in control payloads are little-endian.
**
** The conversation, in order:
**
**   agent -> host  HELLO    payload: the descriptor as JSON (see the worker)
**   host  -> agent START    payload: the agent's configuration JSON;
**                           correlation_id.lo: the host's payload limit, which
**                           the agent's host functions check (0: the channel's)
**   agent -> host  READY    init() returned OK          (or REFUSED, then exit)
**   ...
**   host  -> agent (message)          a delivery; handle() runs in order
**   agent -> host  DONE     payload: the ids of deliveries finished since the
**                           last DONE, 16 bytes each (hi, lo). The agent may
**                           take what it has received by priority, not in
**                           arrival order. The host redelivers every delivery
**                           not yet named if the agent dies.
**   agent -> host  EXPIRED  payload: one 16-byte id: a delivery whose
**                           deadline passed before it was handled; the host
**                           dead-letters it and ends its request EXPIRED
**   agent -> host  (message)          send / request / publish: id is the
**                           agent's own call number (hi = 0); the host routes
**                           it and answers ACK
**   host  -> agent ACK      correlation_id = the call number, id = the id
**                           the host gave the message, status = the result,
**                           payload = the error text when status != OK
**   agent -> host  (reply)            RESPONSE/ERROR, target_kind REPLY; no ACK
**   agent -> host  SUBSCRIBE / UNSUBSCRIBE   payload: the pattern; ACKed
**   agent -> host  LOG      status = plexus_log_level, payload = the text
**   agent -> host  KV       the kv_* host functions: id = the call number;
**                           payload: op ('g' get, 'p' put, 'd' delete), the
**                           expected version (i64, -1: any), the key's
**                           length (u32), the key, then the value (put).
**                           ACKed; on OK the ACK's payload is the version
**                           (u64, 0: absent) followed by the value (get)
**   typed exports: a delivery with content type
**                           application/x-plexus-ffi-call carries the
**                           arguments (scalars: 8 bytes; strings, buffers:
**                           u64 length, bytes, NUL); the RESPONSE has content
**                           type application/x-plexus-ffi-result: the return
**                           type byte, then 8 bytes or the string's bytes
**   agent -> host  DENIED   payload: the name of a system call the sandbox
**                           refused
**   host  -> agent PING     agent -> host PONG, same correlation_id, answered
**                           between deliveries: a PONG proves progress
**   host  -> agent SHUTDOWN the agent calls shutdown() and exits 0
**   streams (ABI 1.2): reply_partial() is a RESPONSE to target REPLY with
**                           flags PLEXUS_FLAG_MORE (not ACKed; the request
**                           stays open); a partial answer to the agent's own
**                           request arrives as a delivery with that flag
**   host  -> agent          a delivery of kind CANCEL (correlation_id: the
**                           request) closes that open request in the agent:
**                           a later reply is forwarded, for the host to
**                           dead-letter, and answers NOT_A_REQUEST
**   agent -> host  CANCEL   cancel(): id = the call number; payload: the
**                           request id (hi, lo: u64 each). ACKed with the status
**   agent -> host  SPAWN    spawn() (1.2): id = the call number; payload: the
**                           plugin name's length (u32), the name, the
**                           instance name's length (u32, 0: the host names
**                           it), the instance name, then the config JSON (the
**                           rest; a config_json of NULL travels as "{}").
**                           ACKed; on OK the ACK's payload is the child's name
**   agent -> host  STOP     stop() (1.2): id = the call number; payload: the
**                           child's name. ACKed with the status
*/
#ifndef PLEXUS_CHANNEL_H
#define PLEXUS_CHANNEL_H

#define PLEXUS_CONTROL_PREFIX     "_plexus."
#define PLEXUS_CONTROL_HELLO      "_plexus.hello"
#define PLEXUS_CONTROL_START      "_plexus.start"
#define PLEXUS_CONTROL_READY      "_plexus.ready"
#define PLEXUS_CONTROL_REFUSED    "_plexus.refused"
#define PLEXUS_CONTROL_DONE       "_plexus.done"
#define PLEXUS_CONTROL_EXPIRED    "_plexus.expired"
#define PLEXUS_CONTROL_ACK        "_plexus.ack"
#define PLEXUS_CONTROL_SUBSCRIBE  "_plexus.subscribe"
#define PLEXUS_CONTROL_UNSUBSCRIBE "_plexus.unsubscribe"
#define PLEXUS_CONTROL_LOG        "_plexus.log"
#define PLEXUS_CONTROL_KV         "_plexus.kv"
#define PLEXUS_CONTROL_DENIED     "_plexus.denied"
#define PLEXUS_CONTROL_PING       "_plexus.ping"
#define PLEXUS_CONTROL_PONG       "_plexus.pong"
#define PLEXUS_CONTROL_SHUTDOWN   "_plexus.shutdown"
#define PLEXUS_CONTROL_CANCEL     "_plexus.cancel"   /* worker -> host: cancel(), the request id (16 bytes); ACK */
#define PLEXUS_CONTROL_SPAWN      "_plexus.spawn"    /* worker -> host: spawn(); ACK with the child's name */
#define PLEXUS_CONTROL_STOP       "_plexus.stop"     /* worker -> host: stop() of a child; ACK */

/* Exit codes of the worker helper (plexus-worker) before the plugin runs,
** so the host can name why a worker never became ready. */
#define PLEXUS_WORKER_EXIT_USAGE     64 /* bad command line                      */
#define PLEXUS_WORKER_EXIT_ORPHANED  65 /* the host died before the worker started */
#define PLEXUS_WORKER_EXIT_SANDBOX   66 /* a limit or the filter could not be set  */
#define PLEXUS_WORKER_EXIT_REFUSED   67 /* load or init refused (REFUSED was sent) */
#define PLEXUS_WORKER_EXIT_CHANNEL   68 /* the channel broke or carried garbage    */

#endif /* PLEXUS_CHANNEL_H */

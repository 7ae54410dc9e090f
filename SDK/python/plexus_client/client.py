"""A client of a running Plexus host (`plexus run`), over its Unix socket.

    from plexus_client import Client
    with Client() as c:
        print(c.call("echo", {"hello": "world"}))

Thread-safe: any thread may call, send or publish at any time. One reader
thread per client receives every frame; messages for the client's agents and
subscriptions are handled on one delivery thread, in arrival order, so a
handler may itself call other agents.

Pipelining: `submit` sends a query without waiting and returns a
concurrent.futures.Future of its reply payload, so one connection can keep
many queries in flight; each future gets its own query's answer (matched by
correlation id) whatever order the agents answer in.

    futures = [c.submit("echo", str(i)) for i in range(1000)]
    replies = [f.result(timeout=5) for f in futures]
"""
import concurrent.futures
import json
import os
import queue
import random
import socket
import threading
import time

from . import wire


class PlexusError(Exception):
    """An ERROR answer: `status` is its code, `name` its name (e.g. NO_SUCH_CAPABILITY)."""

    def __init__(self, name, message, status=0):
        super().__init__(f"{name}: {message}")
        self.name, self.message, self.status = name, message, status


def default_socket_path():
    """$PLEXUS_SOCKET, else $XDG_RUNTIME_DIR/plexus.sock, else /tmp/plexus-UID/plexus.sock (as `plexus run`)."""
    if os.environ.get("PLEXUS_SOCKET"):
        return os.environ["PLEXUS_SOCKET"]
    if os.environ.get("XDG_RUNTIME_DIR"):
        return os.environ["XDG_RUNTIME_DIR"] + "/plexus.sock"
    return f"/tmp/plexus-{os.getuid()}/plexus.sock"


def _payload(p):
    if p is None:
        return b""
    if isinstance(p, (bytes, bytearray, memoryview)):
        return bytes(p)
    if isinstance(p, str):
        return p.encode()
    return json.dumps(p, separators=(",", ":")).encode()


def _error(env):
    try:
        d = json.loads(env.payload)
        return PlexusError(d.get("error", "ERROR"), d.get("message", ""), env.status)
    except (ValueError, AttributeError):
        return PlexusError("ERROR", env.payload.decode("utf-8", "replace"), env.status)


def parse_traceparent(traceparent):
    """A W3C traceparent "00-<32 hex trace-id>-<16 hex parent-id>-<2 hex flags>" as
    ((trace hi, trace lo), parent id); PlexusError INVALID_ARGUMENT when malformed."""
    parts = traceparent.split("-") if isinstance(traceparent, str) else []
    hexdigits = set("0123456789abcdef")

    def ok(s, n):
        return len(s) == n and set(s) <= hexdigits

    if (len(parts) != 4 or parts[0] != "00" or not ok(parts[1], 32) or not ok(parts[2], 16) or not ok(parts[3], 2)
            or int(parts[1], 16) == 0 or int(parts[2], 16) == 0):
        raise PlexusError("INVALID_ARGUMENT", f"traceparent {traceparent!r} is malformed: expected 00-<32 lowercase hex "
                          "trace id, not all zero>-<16 lowercase hex parent id, not all zero>-<2 hex flags>",
                          wire.STATUS["INVALID_ARGUMENT"])
    return (int(parts[1][:16], 16), int(parts[1][16:], 16)), int(parts[2], 16)


def _traced(env, traceparent, query=True):
    """env joined to traceparent's trace: its trace id, and on a query the parent span
    in correlation_id's low half (SDK/PROTOCOL.md, "Tracing")."""
    if traceparent is not None:
        env.trace_id, parent = parse_traceparent(traceparent)
        if query:
            env.correlation_id = (0, parent)
    return env


class Message:
    """A message delivered to one of this client's agents or subscriptions."""

    def __init__(self, env, client=None):
        self.envelope = env
        self.payload = env.payload
        self.sender = env.sender
        self.target = env.target
        self.is_query = env.kind == wire.QUERY
        self.is_event = env.kind == wire.EVENT
        self._client = client

    @property
    def cancelled(self):
        """For a query: whether its caller cancelled it (a CANCEL came). A handler that
        streams checks this between partials and stops; its reply is then dropped."""
        return self._client is not None and self._client._was_cancelled(self.envelope.id)

    def partial(self, payload):
        """Sends one partial answer to this query (ABI 1.2): the caller reads it at once,
        and the handler's return value is still the final answer. Returns False, sending
        nothing, once the caller has cancelled the query."""
        if not self.is_query or self._client is None:
            raise ValueError("only a query delivered to a registered agent takes partial answers")
        if self.cancelled:
            return False
        self._client._write(wire.Envelope(kind=wire.RESPONSE, target_kind=wire.TARGET_REPLY, flags=wire.FLAG_MORE,
                                          correlation_id=self.envelope.id, payload=_payload(payload)))
        return True

    def json(self):
        return json.loads(self.payload)

    def __repr__(self):
        return f"Message({self.envelope.kind_name} {self.target!r} from {self.sender!r}, {len(self.payload)} bytes)"


class Client:
    def __init__(self, path=None, connect_timeout=5.0, client=None, token=None):
        """Connects to the host at path. With client (and token), says hello as that
        client of the host's plexus.yaml: its grants then decide what this connection
        may do. Without, the connection is the host's own user (or the one client
        plexus.yaml admits by this process's uid)."""
        self.path = path or default_socket_path()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._sock.settimeout(connect_timeout)
            self._sock.connect(self.path)
            self._sock.settimeout(None)
        except OSError as e:
            self._sock.close()
            raise PlexusError("UNAVAILABLE", f"no host is running at {self.path} ({e.strerror or e})", wire.STATUS["UNAVAILABLE"]) from None
        self._node = random.getrandbits(64) or 1
        self._next = 0
        self._lock = threading.Lock()          # ids and writes
        self._waiting = {}                      # frame id -> _Waiter
        self._handlers = {}                     # agent name -> handler
        self._subscriptions = {}                # pattern -> callback (None: queue)
        self._inbox = queue.Queue()             # deliveries without a callback
        self._cancelled = set()                 # ids of queries to our agents their callers cancelled
        self._cancel_order = []
        self._deliveries = queue.Queue()
        self._closed = None
        self._refusal = None                    # the host's reason, when it refused the connection
        self._reader = threading.Thread(target=self._read_loop, name="plexus-client-read", daemon=True)
        self._reader.start()
        self._deliverer = threading.Thread(target=self._delivery_loop, name="plexus-client-deliver", daemon=True)
        self._deliverer.start()
        self.grants = None
        self.last_trace_id = None               # the trace id of the last call's answer (32 hex digits)
        if client is not None:
            hello = {"client": client}
            if token is not None:
                hello["token"] = token
            try:
                self.grants = self._operate("plexus.hello", hello)["grants"]
            except PlexusError:
                self.close()
                raise

    # ---- calling ----------------------------------------------------------

    def call(self, target, payload=None, timeout=30.0, priority=wire.NORMAL, traceparent=None):
        """Sends a query and returns the reply's payload (bytes); raises PlexusError on an ERROR answer.
        With traceparent (W3C, "00-<trace-id>-<parent-id>-<flags>") the request joins that trace;
        either way last_trace_id then names the trace the host recorded it in (`plexus trace ID`)."""
        kind, name = wire.parse_target(target)
        env = _traced(wire.Envelope(kind=wire.QUERY, target_kind=kind, target=name, payload=_payload(payload),
                                    priority=priority, deadline_unix_ns=time.time_ns() + int(timeout * 1e9)), traceparent)
        answer = self._exchange(env, timeout + 1.0)
        self.last_trace_id = "%016x%016x" % answer.trace_id
        return answer.payload

    def submit(self, target, payload=None, timeout=30.0, priority=wire.NORMAL, traceparent=None):
        """Sends a query without waiting; returns a concurrent.futures.Future whose result is the
        reply's payload (bytes), or which raises PlexusError for an ERROR answer (the host answers
        TIMEOUT once `timeout` seconds pass). Many may be in flight at once on one connection."""
        kind, name = wire.parse_target(target)
        env = _traced(wire.Envelope(kind=wire.QUERY, target_kind=kind, target=name, payload=_payload(payload),
                                    priority=priority, deadline_unix_ns=time.time_ns() + int(timeout * 1e9)), traceparent)
        return self._post(env, payload_only=True).future

    def stream(self, target, payload=None, timeout=30.0, priority=wire.NORMAL, traceparent=None):
        """Sends a query whose answer may come as a stream (ABI 1.2). Returns a Stream:
        iterate it for each partial answer's payload (bytes) as it arrives; iteration ends
        at the final answer, whose payload is then stream.result (an ERROR answer raises
        PlexusError from the iteration: EXPIRED when the deadline passes mid-stream,
        CANCELLED after stream.cancel())."""
        kind, name = wire.parse_target(target)
        env = _traced(wire.Envelope(kind=wire.QUERY, target_kind=kind, target=name, payload=_payload(payload),
                                    priority=priority, deadline_unix_ns=time.time_ns() + int(timeout * 1e9)), traceparent)
        return self._post(env, waiter=Stream(self, timeout + 1.0))

    def cancel(self, query_id):
        """Cancels a query of this client's still waiting for its answer (Stream.id): its
        answer becomes an ERROR CANCELLED, and the agent handling it is told."""
        with self._lock:
            self._next += 1
            frame_id = (self._node, self._next)
        self._write(wire.Envelope(kind=wire.CANCEL, target_kind=wire.TARGET_REPLY, content_type="",
                                  id=frame_id, correlation_id=tuple(query_id)))

    def call_json(self, target, payload=None, timeout=30.0):
        return json.loads(self.call(target, payload, timeout))

    def send(self, target, payload=None, priority=wire.NORMAL, traceparent=None):
        """Sends a command (or, to 'topic:SUBJECT', an event); returns the id the host gave it (hex).
        With traceparent it carries that trace's id."""
        kind, name = wire.parse_target(target)
        env = _traced(wire.Envelope(kind=wire.EVENT if kind == wire.TARGET_TOPIC else wire.COMMAND,
                                    target_kind=kind, target=name, payload=_payload(payload), priority=priority),
                      traceparent, query=False)
        return json.loads(self._exchange(env, 30.0).payload)["id"]

    def publish(self, subject, payload=None):
        return self.send("topic:" + subject, payload)

    # ---- subscribing and registering -----------------------------------------

    def subscribe(self, pattern, callback=None):
        """Events whose subject matches pattern ('*' one token, '>' the rest) go to
        callback(Message) on the delivery thread, or to receive() when callback is None."""
        self._subscriptions[pattern] = callback
        self._operate("plexus.subscribe", {"pattern": pattern})

    def unsubscribe(self, pattern):
        self._operate("plexus.unsubscribe", {"pattern": pattern})
        self._subscriptions.pop(pattern, None)

    def receive(self, timeout=None):
        """The next event from a subscription without a callback; None after timeout seconds."""
        try:
            return self._inbox.get(timeout=timeout)
        except queue.Empty:
            return None

    def register(self, name, capabilities, handler):
        """Joins the host as agent `name` providing `capabilities`. handler(Message) runs on the
        delivery thread; for a query its return value (bytes, str, or JSON-able) is the reply,
        and an exception becomes an ERROR reply naming it."""
        self._handlers[name] = handler
        try:
            self._operate("plexus.register", {"name": name, "capabilities": list(capabilities)})
        except PlexusError:
            self._handlers.pop(name, None)
            raise

    def unregister(self, name):
        self._operate("plexus.unregister", {"name": name})
        self._handlers.pop(name, None)

    def _operate(self, op, args):
        env = wire.Envelope(kind=wire.QUERY, target_kind=wire.TARGET_CAPABILITY, target=op, payload=_payload(args))
        return json.loads(self._exchange(env, 30.0).payload)

    # ---- the connection -------------------------------------------------------

    def close(self):
        if self._closed is None:
            self._closed = "the client closed the connection"
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._reader.join(5)
        self._deliveries.put(None)
        if threading.current_thread() is not self._deliverer:
            self._deliverer.join(5)
        self._sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def wait_closed(self, timeout=None):
        """Blocks until the host closes the connection (or timeout); serves registered agents meanwhile."""
        self._reader.join(timeout)

    def _write(self, env):
        with self._lock:
            if self._closed:
                raise self._refusal or PlexusError("UNAVAILABLE", self._closed, wire.STATUS["UNAVAILABLE"])
            try:
                self._sock.sendall(wire.encode(env))
                return
            except OSError as e:
                failure = e
        # A host that refused the connection closed it; its reason may still be on its way.
        self._reader.join(1.0)
        raise self._refusal or PlexusError("UNAVAILABLE", f"writing to the host failed: {failure}", wire.STATUS["UNAVAILABLE"])

    def _post(self, env, payload_only=False, waiter=None):
        """Sends env with a fresh id, registered so that waiter (a new _Waiter
        unless given, such as a Stream) receives its answers; returns waiter."""
        if waiter is None:
            waiter = _Waiter(payload_only)
        with self._lock:
            self._next += 1
            env.id = (self._node, self._next)
            self._waiting[env.id] = waiter
        waiter.id = env.id
        try:
            self._write(env)
        except PlexusError:
            with self._lock:
                self._waiting.pop(env.id, None)
            raise
        return waiter

    def _exchange(self, env, timeout):
        waiter = self._post(env)
        try:
            answer = waiter.future.result(timeout)
        except concurrent.futures.TimeoutError:
            raise PlexusError("TIMEOUT", f"no answer from the host within {timeout:.1f} s", wire.STATUS["TIMEOUT"]) from None
        finally:
            with self._lock:
                self._waiting.pop(env.id, None)
        if answer.kind == wire.ERROR:
            raise _error(answer)
        return answer

    def _read_exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = self._sock.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return bytes(buf)

    def _read_loop(self):
        reason = "the host closed the connection"
        try:
            while True:
                header = self._read_exact(wire.HEADER.size)
                if header is None:
                    break
                body = self._read_exact(wire.body_length(header))
                if body is None:
                    break
                self._received(wire.decode_body(body))
        except (OSError, wire.WireError) as e:
            reason = f"the connection failed: {e}"
        with self._lock:
            self._closed = self._closed or reason
            waiting = list(self._waiting.values())
            self._waiting.clear()
        for waiter in waiting:   # an answer that arrived before the close stands
            waiter.fail(self._refusal or PlexusError("UNAVAILABLE", self._closed, wire.STATUS["UNAVAILABLE"]))
        self._deliveries.put(None)

    def _received(self, env):
        if env.kind == wire.ERROR and env.correlation_id == (0, 0):
            # An ERROR answering nothing: the host refuses this connection and closes it.
            self._refusal = _error(env)
            return
        if env.is_partial:
            # A partial answer: a Stream takes it; a plain call waits for the final one.
            with self._lock:
                waiter = self._waiting.get(env.correlation_id)
            if isinstance(waiter, Stream):
                waiter.partial(env)
            return
        if env.kind in (wire.RESPONSE, wire.ERROR):
            with self._lock:
                waiter = self._waiting.pop(env.correlation_id, None)
            if waiter:
                waiter.answer(env)
            return
        if env.kind == wire.CANCEL:
            # Read here, not on the delivery thread: a handler still streaming sees it at once.
            with self._lock:
                self._cancelled.add(env.correlation_id)
                self._cancel_order.append(env.correlation_id)
                while len(self._cancel_order) > 4096:
                    self._cancelled.discard(self._cancel_order.pop(0))
            return
        self._deliveries.put(env)

    def _was_cancelled(self, query_id):
        with self._lock:
            return query_id in self._cancelled

    def _delivery_loop(self):
        while True:
            env = self._deliveries.get()
            if env is None:
                return
            msg = Message(env, self)
            handler = self._handler_for(env)
            if env.kind == wire.EVENT and not handler:
                self._deliver_event(msg)
            else:
                self._run_handler(msg, handler)

    def _handler_for(self, env):
        """The registered agent's handler for a message: by agent name, else the only/first one
        providing the capability (the host chose this connection's agent for it)."""
        if env.target in self._handlers:
            return self._handlers[env.target]
        if env.kind == wire.EVENT:
            return None
        return next(iter(self._handlers.values()), None)

    def _deliver_event(self, msg):
        callback = None
        for pattern, cb in self._subscriptions.items():
            if _matches(pattern, msg.target):
                callback = cb
                break
        if callback is None:
            self._inbox.put(msg)
        else:
            try:
                callback(msg)
            except Exception as e:  # a callback's failure must not stop deliveries
                print(f"plexus_client: subscription callback for {msg.target!r} raised {e!r}")

    def _run_handler(self, msg, handler):
        reply = wire.Envelope(kind=wire.RESPONSE, target_kind=wire.TARGET_REPLY, correlation_id=msg.envelope.id)
        try:
            if handler is None:
                raise LookupError(f"no handler registered for {msg.target!r}")
            result = handler(msg)
            reply.payload = _payload(result)
        except Exception as e:
            reply.kind = wire.ERROR
            reply.status = wire.STATUS["HANDLER_FAILED"]
            reply.payload = _payload({"error": "HANDLER_FAILED", "message": f"{type(e).__name__}: {e}"})
        if msg.is_query and not msg.cancelled:   # a cancelled query's answer would only be dropped
            try:
                self._write(reply)
            except (OSError, PlexusError):
                pass


class Stream:
    """A query answered as a stream (Client.stream): iterate for the partial answers'
    payloads; then result holds the final answer's payload."""

    def __init__(self, client, timeout):
        self._client = client
        self._timeout = timeout
        self._items = queue.Queue()
        self.id = None
        self.result = None
        self.trace_id = None
        self._done = False

    def partial(self, env):
        self._items.put(("partial", env))

    def answer(self, env):
        self._items.put(("final", env))

    def fail(self, error):
        self._items.put(("failed", error))

    def cancel(self):
        """Cancels the query; the iteration then ends with PlexusError CANCELLED."""
        if not self._done:
            self._client.cancel(self.id)

    def __iter__(self):
        return self

    def __next__(self):
        if self._done:
            raise StopIteration
        try:
            what, value = self._items.get(timeout=self._timeout)
        except queue.Empty:
            self._done = True
            with self._client._lock:
                self._client._waiting.pop(self.id, None)
            raise PlexusError("TIMEOUT", f"no answer from the host within {self._timeout:.1f} s", wire.STATUS["TIMEOUT"]) from None
        if what == "partial":
            return value.payload
        self._done = True
        if what == "failed":
            raise value
        self.trace_id = "%016x%016x" % value.trace_id
        if value.kind == wire.ERROR:
            raise _error(value)
        self.result = value.payload
        raise StopIteration


class _Waiter:
    """A query in flight: its future gets the answer envelope, or (payload_only, for submit)
    the reply payload or the PlexusError of an ERROR answer."""

    def __init__(self, payload_only):
        self.future = concurrent.futures.Future()
        self.payload_only = payload_only
        self.id = None   # the request's id, set by Client._post

    def answer(self, env):
        if not self.payload_only:
            self._settle(self.future.set_result, env)
        elif env.kind == wire.ERROR:
            self._settle(self.future.set_exception, _error(env))
        else:
            self._settle(self.future.set_result, env.payload)

    def fail(self, error):
        self._settle(self.future.set_exception, error)

    @staticmethod
    def _settle(how, value):
        try:
            how(value)
        except concurrent.futures.InvalidStateError:   # cancelled by its owner, or settled already
            pass


def _matches(pattern, subject):
    """NATS-style matching: '*' is one token, '>' one or more trailing tokens."""
    p, s = pattern.split("."), subject.split(".")
    for i, tok in enumerate(p):
        if tok == ">":
            return len(s) > i
        if i >= len(s) or (tok != "*" and tok != s[i]):
            return False
    return len(p) == len(s)

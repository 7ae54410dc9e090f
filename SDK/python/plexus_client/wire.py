"""The Plexus wire format (include/plexus_wire.h), in pure Python.

A frame is a 12-byte header (magic "PLXF", version 1, type 1, two reserved
zero bytes, body length) and an envelope body: 76 fixed bytes, then sender,
target and content type each followed by a NUL, then the payload. All
integers are little-endian.
"""
import struct
from dataclasses import dataclass, field

MAGIC = b"PLXF"
VERSION = 1
FRAME_ENVELOPE = 1
HEADER = struct.Struct("<4sBBHI")
FIXED = struct.Struct("<BBBBiQQQQQQqHHHHI")
MAX_NAME = 255
MAX_PAYLOAD = 16 * 1024 * 1024

COMMAND, QUERY, RESPONSE, EVENT, ERROR, CANCEL = range(6)
KIND_NAMES = ["COMMAND", "QUERY", "RESPONSE", "EVENT", "ERROR", "CANCEL"]
# Envelope flags (ABI 1.2). MORE: a partial answer; more answers to the same query follow.
FLAG_MORE = 0x1
TARGET_AGENT, TARGET_CAPABILITY, TARGET_TOPIC, TARGET_REPLY = range(4)
LOW, NORMAL, HIGH, CRITICAL = range(4)


class WireError(Exception):
    """A frame that is not a valid Plexus frame."""


@dataclass
class Envelope:
    kind: int = COMMAND
    target_kind: int = TARGET_CAPABILITY
    target: str = ""
    payload: bytes = b""
    priority: int = NORMAL
    status: int = 0
    id: tuple = (0, 0)
    correlation_id: tuple = (0, 0)
    trace_id: tuple = (0, 0)
    deadline_unix_ns: int = 0
    sender: str = ""
    content_type: str = "application/json"
    flags: int = 0

    @property
    def is_partial(self):
        return self.kind == RESPONSE and bool(self.flags & FLAG_MORE)

    @property
    def kind_name(self):
        return KIND_NAMES[self.kind] if 0 <= self.kind < len(KIND_NAMES) else str(self.kind)


def parse_target(spec):
    """'agent:NAME', 'topic:SUBJECT' or a capability name, as the CLI spells them."""
    if spec.startswith("agent:"):
        return TARGET_AGENT, spec[6:]
    if spec.startswith("topic:"):
        return TARGET_TOPIC, spec[6:]
    return TARGET_CAPABILITY, spec


def _name(s, what):
    b = s.encode()
    if len(b) > MAX_NAME:
        raise ValueError(f"{what} is longer than {MAX_NAME} bytes")
    if b"\0" in b:
        raise ValueError(f"{what} contains a NUL byte")
    return b


def encode(e):
    sender, target, ctype = _name(e.sender, "sender"), _name(e.target, "target"), _name(e.content_type, "content_type")
    payload = bytes(e.payload)
    body_len = FIXED.size + len(sender) + len(target) + len(ctype) + 3 + len(payload)
    fixed = FIXED.pack(e.kind, e.target_kind, e.priority, e.flags, e.status,
                       e.id[0], e.id[1], e.correlation_id[0], e.correlation_id[1],
                       e.trace_id[0], e.trace_id[1], e.deadline_unix_ns,
                       len(sender), len(target), len(ctype), 0, len(payload))
    return b"".join([HEADER.pack(MAGIC, VERSION, FRAME_ENVELOPE, 0, body_len), fixed,
                     sender, b"\0", target, b"\0", ctype, b"\0", payload])


def body_length(header, max_payload=MAX_PAYLOAD):
    magic, version, ftype, reserved, n = HEADER.unpack(header)
    if magic != MAGIC:
        raise WireError("bad magic: not a Plexus frame")
    if version != VERSION or ftype != FRAME_ENVELOPE or reserved != 0:
        raise WireError(f"unsupported frame (version {version}, type {ftype})")
    if n < FIXED.size + 3 or n > FIXED.size + 3 * (MAX_NAME + 1) + max_payload:
        raise WireError(f"body length {n} is out of range")
    return n


def decode_body(body):
    if len(body) < FIXED.size + 3:
        raise WireError("body shorter than the smallest envelope")
    (kind, tkind, prio, flags, status, ih, il, ch, cl, th, tl, deadline,
     s, t, c, _res, p) = FIXED.unpack_from(body)
    if FIXED.size + s + t + c + 3 + p != len(body):
        raise WireError("body length does not match its fields")
    off = FIXED.size
    strings = []
    for n in (s, t, c):
        chunk = body[off:off + n]
        if body[off + n] != 0 or b"\0" in chunk:
            raise WireError("string field is not NUL-terminated")
        strings.append(chunk.decode("utf-8", "replace"))
        off += n + 1
    if flags & ~FLAG_MORE or (flags and kind != RESPONSE):
        raise WireError(f"flags {flags:#x} are not valid on a {KIND_NAMES[kind] if kind < len(KIND_NAMES) else kind}")
    return Envelope(kind=kind, target_kind=tkind, priority=prio, status=status, id=(ih, il), flags=flags,
                    correlation_id=(ch, cl), trace_id=(th, tl), deadline_unix_ns=deadline,
                    sender=strings[0], target=strings[1], content_type=strings[2],
                    payload=bytes(body[off:off + p]))

# plexus_status codes (include/plexus.h), by name.
STATUS = {name: code for code, name in enumerate([
    "OK", "INVALID_ARGUMENT", "NO_MEMORY", "NO_SUCH_AGENT", "NO_SUCH_CAPABILITY", "TIMEOUT", "EXPIRED",
    "TOO_LARGE", "MAILBOX_FULL", "HANDLER_FAILED", "PERMISSION_DENIED", "ABI_MISMATCH", "BAD_DESCRIPTOR",
    "MALFORMED_FRAME", "UNSUPPORTED", "SHUTTING_DOWN", "AGENT_CRASHED", "TYPE_MISMATCH", "ARITY_MISMATCH",
    "NOT_A_REQUEST", "INTERNAL", "UNAVAILABLE", "CONFLICT", "CANCELLED", "LIMIT_REACHED"])}

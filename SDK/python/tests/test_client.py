"""Offline tests of the Python client: the codec against the C wire format's
layout, subject matching, and the error when no host runs. The live tests
(calls, agents, subscriptions through `plexus run`) are in
Tests/PlexusHostTests/ExternalAgentTests.swift, run by the same test command."""
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from plexus_client import Client, PlexusError, wire  # noqa: E402
from plexus_client.client import _matches  # noqa: E402


class WireTests(unittest.TestCase):
    def sample(self):
        return wire.Envelope(kind=wire.QUERY, target_kind=wire.TARGET_AGENT, target="pong", payload=b"\x00\x01hi",
                             priority=wire.HIGH, status=0, id=(1, 2), correlation_id=(3, 4), trace_id=(5, 6),
                             deadline_unix_ns=123456789, sender="client:1", content_type="text/plain")

    def test_round_trip(self):
        frame = wire.encode(self.sample())
        self.assertEqual(frame[:4], b"PLXF")
        n = wire.body_length(frame[:12])
        self.assertEqual(n, len(frame) - 12)
        self.assertEqual(wire.decode_body(frame[12:]), self.sample())

    def test_layout_matches_the_c_header(self):
        frame = wire.encode(self.sample())
        body = frame[12:]
        self.assertEqual(body[0], wire.QUERY)
        self.assertEqual(body[1], wire.TARGET_AGENT)
        self.assertEqual(body[2], wire.HIGH)
        self.assertEqual(int.from_bytes(body[8:16], "little"), 1)      # id.hi
        self.assertEqual(int.from_bytes(body[24:32], "little"), 3)     # correlation_id.hi
        self.assertEqual(int.from_bytes(body[56:64], "little"), 123456789)
        self.assertEqual(body[76:85], b"client:1\x00")

    def test_corruption_is_refused(self):
        frame = bytearray(wire.encode(self.sample()))
        with self.assertRaises(wire.WireError):
            wire.body_length(b"XXXX" + bytes(frame[4:12]))
        cut = bytes(frame[12:-1])
        with self.assertRaises(wire.WireError):
            wire.decode_body(cut)
        frame[12 + 76 + 8] = ord("x")   # the sender's NUL
        with self.assertRaises(wire.WireError):
            wire.decode_body(bytes(frame[12:]))

    def test_the_more_flag_marks_a_partial_answer_and_nothing_else(self):
        partial = wire.Envelope(kind=wire.RESPONSE, target_kind=wire.TARGET_REPLY, flags=wire.FLAG_MORE,
                                correlation_id=(1, 2), payload=b'{"n":1}')
        frame = wire.encode(partial)
        self.assertEqual(frame[12 + 3], wire.FLAG_MORE)
        self.assertTrue(wire.decode_body(frame[12:]).is_partial)
        reserved = bytearray(frame)
        reserved[12 + 3] = 0x2
        with self.assertRaises(wire.WireError):
            wire.decode_body(bytes(reserved[12:]))
        on_query = bytearray(wire.encode(self.sample()))
        on_query[12 + 3] = wire.FLAG_MORE
        with self.assertRaises(wire.WireError):
            wire.decode_body(bytes(on_query[12:]))
        self.assertEqual(wire.KIND_NAMES[wire.CANCEL], "CANCEL")
        self.assertEqual(wire.STATUS["CANCELLED"], 23)

    def test_long_names_are_refused_before_sending(self):
        with self.assertRaises(ValueError):
            wire.encode(wire.Envelope(target="x" * 256))


class MatchTests(unittest.TestCase):
    def test_table(self):
        for pattern, subject, want in [("a.b", "a.b", True), ("a.*", "a.b", True), ("a.*", "a.b.c", False),
                                       ("a.>", "a.b.c", True), ("a.>", "a", False), ("*", "a", True),
                                       (">", "a.b", True), ("a.b", "a.c", False)]:
            self.assertEqual(_matches(pattern, subject), want, (pattern, subject))


class ConnectTests(unittest.TestCase):
    def test_no_host_says_so(self):
        path = os.path.join(tempfile.mkdtemp(), "nobody.sock")
        with self.assertRaises(PlexusError) as e:
            Client(path)
        self.assertEqual(e.exception.name, "UNAVAILABLE")
        self.assertIn(f"no host is running at {path}", e.exception.message)

    def test_default_path_follows_the_environment(self):
        from plexus_client import default_socket_path
        old = dict(os.environ)
        try:
            os.environ["PLEXUS_SOCKET"] = "/x/y.sock"
            self.assertEqual(default_socket_path(), "/x/y.sock")
            del os.environ["PLEXUS_SOCKET"]
            os.environ["XDG_RUNTIME_DIR"] = "/run/u"
            self.assertEqual(default_socket_path(), "/run/u/plexus.sock")
            del os.environ["XDG_RUNTIME_DIR"]
            self.assertEqual(default_socket_path(), f"/tmp/plexus-{os.getuid()}/plexus.sock")
        finally:
            os.environ.clear()
            os.environ.update(old)


class PipelineTests(unittest.TestCase):
    """submit against a stand-in host on a real Unix socket that holds every query
    and answers them in reverse order (the live host is in PipelinedClientTests.swift)."""

    def serve_reversed(self, listener, n, go):
        conn, _ = listener.accept()
        with conn:
            buf, held = b"", []
            while len(held) < n:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
                while len(buf) >= wire.HEADER.size and len(buf) >= wire.HEADER.size + wire.body_length(buf[:12]):
                    end = wire.HEADER.size + wire.body_length(buf[:12])
                    held.append(wire.decode_body(buf[12:end]))
                    buf = buf[end:]
            answers = b"".join(wire.encode(wire.Envelope(kind=wire.RESPONSE, target_kind=wire.TARGET_REPLY,
                                                         correlation_id=q.id, payload=q.payload))
                               for q in reversed(held))
            go.wait(30)   # once the test watches every future
            conn.sendall(answers)
            conn.recv(1)   # until the client closes

    def test_many_in_flight_each_future_gets_its_own_answer(self):
        import socket
        import threading
        path = os.path.join(tempfile.mkdtemp(), "host.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        listener.listen(1)
        n = 2000
        go = threading.Event()
        host = threading.Thread(target=self.serve_reversed, args=(listener, n, go), daemon=True)
        host.start()
        arrived = []
        with Client(path) as c:
            futures = [c.submit("echo", str(i)) for i in range(n)]
            for f in futures:
                f.add_done_callback(lambda f: arrived.append(int(f.result())))
            go.set()
            self.assertEqual([f.result(timeout=30) for f in futures], [str(i).encode() for i in range(n)])
        self.assertEqual(arrived, list(reversed(range(n))))   # settled in the order the host answered
        host.join(5)
        listener.close()


if __name__ == "__main__":
    unittest.main()

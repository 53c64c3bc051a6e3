"""A raw HTTP/2 client for the hostile tests: it opens streams, sends exactly the frames a test
asks for (headers without a body, half a gRPC message, megabytes it then stops sending) and
records what the server answers on each stream, with the time it answered. Built on the `h2`
package's state machine over a plain socket; only 127.0.0.1, every wait with a deadline.
"""

import select
import socket
import struct
import time

import h2.config
import h2.connection
import h2.events


class Stream:
    """What one stream sent and what came back."""

    def __init__(self, stream_id, opened):
        self.id = stream_id
        self.opened = opened
        self.headers = {}  # response headers (and trailers) by lower-case name
        self.data = b""
        self.answered_at = None  # when the first response headers arrived
        self.reset = None  # the RST_STREAM error code, when the server reset it
        self.ended = False  # END_STREAM from the server
        self.to_send = b""  # body bytes still to send (within flow control)
        self.finish = False  # END_STREAM after to_send

    @property
    def done(self):
        return self.ended or self.reset is not None

    def grpc_status(self):
        value = self.headers.get("grpc-status")
        return None if value is None else int(value)


class H2Client:
    def __init__(self, address, timeout=10):
        host, port = address.rsplit(":", 1)
        assert host == "127.0.0.1", f"tests only talk to 127.0.0.1, not {address}"
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.conn.initiate_connection()
        self.streams = {}
        self.closed = False
        self.settings_seen = False
        self.flush()
        # The server's SETTINGS carry its windows and stream limit: wait for them.
        deadline = time.monotonic() + timeout
        while not self.settings_seen and time.monotonic() < deadline and not self.closed:
            self.pump(0.05)
        assert self.settings_seen, "the server sent no SETTINGS"

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            try:
                self.sock.sendall(data)
            except OSError:
                self.closed = True

    def open(self, path, headers=(), body=b"", finish=False, authority="127.0.0.1"):
        """Opens a POST stream; `body` is sent as flow control allows, then END_STREAM if
        `finish`."""
        stream_id = self.conn.get_next_available_stream_id()
        self.conn.send_headers(stream_id, [
            (":method", "POST"), (":scheme", "http"), (":authority", authority), (":path", path),
            *headers,
        ], end_stream=finish and not body)
        stream = Stream(stream_id, time.monotonic())
        stream.to_send, stream.finish = body, finish and bool(body)
        self.streams[stream_id] = stream
        self.flush()
        return stream

    def send_pending(self):
        """Sends what flow control allows of the streams' pending bodies, a frame per stream in
        turn, so every stream gets its first bytes out before any sends its last."""
        progress = True
        while progress and not self.closed:
            progress = False
            for stream in self.streams.values():
                if not stream.to_send or stream.done:
                    continue
                window = min(self.conn.local_flow_control_window(stream.id),
                             self.conn.max_outbound_frame_size)
                if window <= 0:
                    continue
                chunk, stream.to_send = stream.to_send[:window], stream.to_send[window:]
                end = stream.finish and not stream.to_send
                try:
                    self.conn.send_data(stream.id, chunk, end_stream=end)
                except Exception:  # the stream was closed under us (a reset not yet read)
                    stream.to_send = b""
                    continue
                progress = True
            self.flush()

    def pump(self, wait):
        """Reads what the server sent within `wait` seconds and applies it."""
        if self.closed:
            return
        readable, _, _ = select.select([self.sock], [], [], wait)
        if not readable:
            return
        try:
            data = self.sock.recv(1 << 20)
        except OSError:
            data = b""
        if not data:
            self.closed = True
            return
        for event in self.conn.receive_data(data):
            stream = self.streams.get(getattr(event, "stream_id", None))
            if isinstance(event, h2.events.RemoteSettingsChanged):
                self.settings_seen = True
            elif isinstance(event, (h2.events.ResponseReceived, h2.events.TrailersReceived)) and stream:
                stream.answered_at = stream.answered_at or time.monotonic()
                stream.headers.update({k.lower(): v for k, v in event.headers})
            elif isinstance(event, h2.events.DataReceived):
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                if stream:
                    stream.data += event.data
            elif isinstance(event, h2.events.StreamEnded) and stream:
                stream.ended = True
            elif isinstance(event, h2.events.StreamReset) and stream:
                stream.reset = event.error_code
                stream.answered_at = stream.answered_at or time.monotonic()
            elif isinstance(event, h2.events.ConnectionTerminated):
                self.closed = True
        self.flush()

    def run_until(self, done, within):
        """Sends and reads until `done()` or `within` seconds pass; returns done()."""
        deadline = time.monotonic() + within
        while not done() and time.monotonic() < deadline and not self.closed:
            self.send_pending()
            self.pump(min(0.05, max(0.0, deadline - time.monotonic())))
        return done()

    def close(self):
        try:
            self.conn.close_connection()
            self.flush()
        except Exception:
            pass
        self.sock.close()


def grpc_frame(message, declared=None):
    """A gRPC message frame: not compressed, its length (or `declared`), the message."""
    return struct.pack(">BI", 0, len(message) if declared is None else declared) + message


GRPC_HEADERS = [("content-type", "application/grpc"), ("te", "trailers")]

"""Frames on a job socket: `[u32 header length][u32 payload length][JSON header][payload]`,
big-endian, read through one buffer that lives as long as the connection."""

import json
import socket
import struct

from . import _schema
from ._contract import AGENT_MESSAGE

PREFIX = struct.Struct(">II")


class FrameReader:
    """Reads frames from a socket through a buffer: one `recv_into` brings in as many frames as
    have arrived (a task's execute, a batch of results), not three reads per frame, and no new
    buffer is made per read (a fresh 256 KiB one cost a map, a remap and an unmap each time). A
    frame larger than the buffer grows it for that frame only.

    A frame is taken only once all of it is in the buffer, so a read interrupted by a signal
    (KeyboardInterrupt, a cancelled task) loses nothing: the next read goes on from there."""

    CHUNK = 256 * 1024

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray(self.CHUNK)
        # Unread bytes are buf[start:end].
        self.start = 0
        self.end = 0
        # Frames and bytes read (for tests that count what a task costs on the wire).
        self.frames = 0
        self.bytes = 0

    def _need(self):
        """The length of the frame at the front (8 while its prefix is not in yet)."""
        if self.end - self.start < 8:
            return 8
        hlen, plen = PREFIX.unpack_from(self.buf, self.start)
        return 8 + hlen + plen

    def buffered(self):
        """Whether a whole frame waits in the buffer."""
        have = self.end - self.start
        return have >= 8 and have >= self._need()

    def fill(self, block=True):
        """One receive into the buffer, after making room for the frame at the front. False when
        nothing was there (`block=False`); ConnectionError when the agent closed the socket."""
        need = self._need()
        if self.start + need > len(self.buf):
            n = self.end - self.start
            if self.start:
                self.buf[:n] = self.buf[self.start:self.end]
                self.start, self.end = 0, n
            if need > len(self.buf):
                self.buf.extend(bytes(need - len(self.buf)))
        with memoryview(self.buf) as view:
            try:
                k = self.sock.recv_into(view[self.end:], 0, 0 if block else socket.MSG_DONTWAIT)
            except BlockingIOError:
                return False
        if k == 0:
            raise ConnectionError("the agent closed the connection")
        self.end += k
        return True

    def take(self):
        """The frame at the front (`buffered()` is true): (header, payload)."""
        s = self.start
        hlen, plen = PREFIX.unpack_from(self.buf, s)
        h = s + 8 + hlen
        header = json.loads(self.buf[s + 8:h])
        with memoryview(self.buf) as view:
            payload = bytes(view[h:h + plen]) if plen else b""
        end = h + plen
        if end == self.end:
            if len(self.buf) > self.CHUNK:
                # A large frame grew the buffer: give the memory back.
                self.buf = bytearray(self.CHUNK)
            end = self.end = 0
        self.frames += 1
        self.bytes += 8 + hlen + plen
        self.start = end
        try:
            _schema.check(AGENT_MESSAGE, header)
        except _schema.SchemaError as e:
            raise ConnectionError("the agent sent a message this library does not understand (%s): are the agent and this library the same version?" % e) from None
        return header, payload

    def read(self):
        """The next frame, waiting for it."""
        while not self.buffered():
            self.fill()
        return self.take()

"""The connection of one process (a job's entrypoint or a worker) to its agent's job socket.

Frames (see `_frames`) are read by whichever thread waits for them: a thread waiting on a result (or,
in a worker, for its next task) reads the socket itself when no other thread does, so a frame does
not pass through another thread first (a wake-up and a hand-over of the interpreter lock each way);
a background thread reads whenever nobody waits. Submissions are buffered and sent in batches
(after a couple of milliseconds, at a size threshold, or before anything waits on a result)."""

import collections
import json
import socket
import threading
import time

from ._contract import SIZES
from ._frames import PREFIX as _PREFIX, FrameReader  # noqa: F401 - FrameReader is used from here by tests
from ._receive import Receiving
FLUSH_AFTER_S = 0.002
FLUSH_AWAKE_ROUNDS = 25
FLUSH_AT_TASKS = 500
FLUSH_AT_BYTES = 4 * 1024 * 1024
# The agent takes headers of at most 1 MiB: a batch's header is cut well below that.
FLUSH_AT_HEADER_BYTES = SIZES["BATCH_HEADER_BYTES"]
GET_REFS_PER_FRAME = SIZES["GET_REFS_PER_FRAME"]
SMALL_FRAME_BYTES = 64 * 1024
# One encoder for every header (json.dumps with separators builds a new one per call).
_encode_json = json.JSONEncoder(separators=(",", ":")).encode


class Connection(Receiving):
    def __init__(self, path, token, role, worker_id=None):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.send_lock = threading.Lock()
        lock = threading.RLock()
        self.cond = threading.Condition(lock)
        # Who reads the socket now (a waiting thread's ident, "background", or None), how many
        # threads wait in `wait`, and when a waiting thread last stopped reading.
        self._reading = None
        self._waiters = 0
        self._last_read = 0.0
        self._background = threading.Condition(lock)
        self.read_by = {"waiter": 0, "background": 0}
        # id -> (state, payload, extra): state is value | path | error | remote
        self.objects = {}
        self.requested = set()
        self.owned = set()
        # id -> callbacks run (on the reader thread) once the agent says how the object stands.
        self.watchers = {}
        # Results other than values that came (errors, values held elsewhere): see _objects._await.
        self.notable = 0
        self.closed = None
        # In a worker, execute messages queue here (see `next_task`).
        self.tasks = collections.deque() if role == "worker" else None
        # Frames, bytes and writes sent (for tests that count what a task costs on the wire).
        self.sent_frames = self.sent_bytes = self.sent_writes = 0
        hello = {"t": "hello", "token": token, "role": role, "lang": "python"}
        if worker_id:
            hello["worker_id"] = worker_id
        self.send(hello)
        self.reader = FrameReader(self.sock)
        welcome, _ = self.reader.read()
        if welcome.get("t") != "welcome":
            raise ConnectionError("the agent refused this process: %s: %s" % (welcome.get("code", "?"), welcome.get("message", welcome)))
        self.node_id = welcome["node_id"]
        self.job_id = welcome["job_id"]
        self._replies = {}
        self._req = [0]
        # A worker sets this: the agent asks it to cancel a task it runs.
        self.on_cancel = None
        self._buf = []
        self._buf_payload = []
        self._buf_bytes = 0
        self._buf_header = 0
        self._buf_lock = threading.Lock()
        # Objects and actors this process no longer refers to (appended from __del__, so no lock).
        self._released = collections.deque()
        # Released objects whose state the agent has yet to send: not kept when it comes.
        self._gone = set()
        self._flush_wanted = threading.Event()
        # The flusher sleeps on _flush_wanted only while idle; awake, it looks every FLUSH_AFTER_S.
        self._flusher_idle = True
        self._reader = threading.Thread(target=self._background_read, name="raysub-reader", daemon=True)
        self._reader.start()
        self._flusher = threading.Thread(target=self._flush_loop, name="raysub-flusher", daemon=True)
        self._flusher.start()

    def send(self, header, payload=()):
        self.send_frames(((header, payload),))

    def send_frames(self, frames):
        """Send frames in order; small ones go in one write (a system call each costs more than the copy)."""
        small = []
        with self.send_lock:
            for header, payload in frames:
                h = header if isinstance(header, bytes) else _encode_json(header).encode()
                plen = sum(len(p) for p in payload)
                self.sent_frames += 1
                self.sent_bytes += 8 + len(h) + plen
                if plen <= SMALL_FRAME_BYTES:
                    small.append(_PREFIX.pack(len(h), plen))
                    small.append(h)
                    small.extend(payload)
                    continue
                if small:
                    self._write(b"".join(small))
                    small = []
                self._write(_PREFIX.pack(len(h), plen) + h)
                for p in payload:
                    if len(p):
                        self._write(p)
            if small:
                self._write(b"".join(small))

    def _write(self, data):
        self.sent_writes += 1
        self.sock.sendall(data)

    # ---- submissions -----------------------------------------------------------------------

    def submit(self, spec, args):
        encoded = _encode_json(spec).encode()
        with self._buf_lock:
            if self._buf and self._buf_header + len(encoded) > FLUSH_AT_HEADER_BYTES:
                self._flush_locked()
            self._buf.append(encoded)
            self._buf_payload.append(args)
            self._buf_bytes += len(args)
            self._buf_header += len(encoded) + 1
            self.owned.add(spec["id"])
            first = len(self._buf) == 1
            full = len(self._buf) >= FLUSH_AT_TASKS or self._buf_bytes >= FLUSH_AT_BYTES
        if full:
            self.flush()
        elif first and self._flusher_idle:
            self._flush_wanted.set()

    def release(self, kind, oid):
        """This process holds no more refs to object (kind "o") or actor ("a") `oid`: sent after the
        submissions made before, which may still need it."""
        self._released.append((kind, oid))
        if self._flusher_idle:
            self._flush_wanted.set()

    def flush(self):
        """Send the buffered submissions, then the releases made since (one write for both)."""
        with self._buf_lock:
            frames = []
            if self._buf:
                frames.append(self._take_batch())
            if self._released:
                frames.append(self._take_released())
            if frames:
                self.send_frames(frames)

    def _flush_locked(self):
        if self._buf:
            # Sent while holding the buffer lock, so batches leave in the order they were made.
            self.send_frames((self._take_batch(),))

    def _take_batch(self):
        tasks, payload = self._buf, self._buf_payload
        self._buf, self._buf_payload, self._buf_bytes, self._buf_header = [], [], 0, 0
        return b'{"t":"submit","tasks":[' + b",".join(tasks) + b"]}", payload

    def _take_released(self):
        objects, actors = [], []
        while self._released and len(objects) + len(actors) < FLUSH_AT_TASKS * 20:
            kind, oid = self._released.popleft()
            (objects if kind == "o" else actors).append(oid)
        with self.cond:
            for oid in objects:
                if self.objects.pop(oid, None) is None and (oid in self.owned or oid in self.requested):
                    self._gone.add(oid)
                self.owned.discard(oid)
                self.requested.discard(oid)
        return {"t": "release", "objects": objects, "actors": actors}, ()

    def _flush_loop(self):
        """Send what waits in the buffer FLUSH_AFTER_S after it came. Once woken, the flusher stays
        awake, looking every FLUSH_AFTER_S, until nothing came for FLUSH_AWAKE_ROUNDS looks: a
        driver submitting one task at a time (each sent at once by its `get`) does not wake it for
        every submission and every release, only to find them sent."""
        while self.closed is None:
            self._flusher_idle = True
            # Looked at after saying so: a submission made before then is seen here, one made after
            # sees the flusher idle and wakes it.
            if not (self._buf or self._released):
                self._flush_wanted.wait()
            self._flush_wanted.clear()
            self._flusher_idle = False
            quiet = 0
            while self.closed is None and quiet < FLUSH_AWAKE_ROUNDS:
                time.sleep(FLUSH_AFTER_S)
                if not (self._buf or self._released):
                    quiet += 1
                    continue
                quiet = 0
                try:
                    self.flush()
                    while self._released:
                        self.flush()
                except OSError:
                    return

    # ---- results ---------------------------------------------------------------------------

    def watch(self, ref, callback):
        """Run `callback` once the agent has said how `ref` stands (at once if it has)."""
        with self.cond:
            now = ref.id in self.objects or self.closed is not None
            if not now:
                self.watchers.setdefault(ref.id, []).append(callback)
                # The background reader reads for it at once, not after a moment.
                self._background.notify()
        if now:
            callback()
        elif ref.id not in self.owned:
            self.request([ref])

    def put(self, oid, parts):
        """Store a value's bytes (buffers sent one after another) as object `oid` (after the
        submissions made before it); returns their length."""
        size = sum(len(p) for p in parts)
        self.flush()
        self.send({"t": "put", "id": oid, "len": size}, parts)
        return size

    def put_file(self, oid, size):
        """Object `oid` is the file of `size` bytes this process wrote into its store (after the
        submissions made before it)."""
        self.flush()
        self.send({"t": "put", "id": oid, "len": size, "file": True})

    def call(self, op, fields=None, payload=(), timeout=75.0):
        """Ask the agent something and wait for its answer: (header, payload). Raises RaySystemError
        when the agent does not answer in time (it answers within 60 s, an error if the head did
        not) or the connection is lost."""
        from .exceptions import RaySystemError

        with self.cond:
            self._req[0] += 1
            rid = self._req[0]
            box = []
            self._replies[rid] = box
        try:
            self.flush()
            self.send({"t": "request", "req_id": rid, "call": dict(fields or {}, op=op), "len": sum(len(p) for p in payload)}, payload)
            deadline = time.monotonic() + timeout
            with self.cond:
                while not box:
                    if self.closed is not None:
                        raise RaySystemError("lost the connection to the agent: %s" % self.closed)
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise RaySystemError("the agent did not answer %s in %ss" % (op, timeout))
                    self.wait(left)
                return box[0]
        finally:
            with self.cond:
                self._replies.pop(rid, None)

    def request(self, refs):
        """Ask the agent for objects this process does not own (or that are held elsewhere)."""
        want = [{"id": r.id, "owner": r.owner} for r in refs if r.id not in self.requested]
        for w in want:
            self.requested.add(w["id"])
        for at in range(0, len(want), GET_REFS_PER_FRAME):
            self.send({"t": "get", "refs": want[at:at + GET_REFS_PER_FRAME]})

    def close(self):
        try:
            self.flush()
        except OSError:
            pass
        with self.cond:
            self.closed = self.closed or ConnectionError("shut down")
            self.cond.notify_all()
            self._background.notify_all()
        self._flush_wanted.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

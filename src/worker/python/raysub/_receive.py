"""How a connection takes in what the agent sends: whichever thread waits for a frame reads the
socket itself when no other thread does (a thread waiting on a result, or a worker's main thread
waiting for its next task), so a frame does not pass through another thread first, which costs a
wake-up and a hand-over of the interpreter lock each way. A background thread reads whenever
nobody waits: results nobody waits for yet, callbacks, cancellations of a running task, the agent
going away. Every frame is filed under the connection's condition, for whoever waits on it."""

import select
import threading
import time

# After a thread stops waiting on the socket, how long the background reader lets it come back
# before reading the socket itself: a program making one call at a time waits again well within
# this, and reads its own results.
BACKGROUND_AFTER_S = 0.05


class Receiving:
    """The reading half of `_conn.Connection` (which sets up `sock`, `reader`, `cond`,
    `_background` on the same lock, `_reading`, `_waiters`, `_last_read`, `objects`, `watchers`,
    `tasks`, `_replies`, `_gone`, `notable`, `on_cancel`, `closed`, `_flush_wanted`, and `read_by`:
    how many frames waiting threads and the background reader read, for tests)."""

    def wait(self, timeout=None):
        """As `cond.wait(timeout)` (called holding `cond`), for a thread waiting on what the agent
        sends: returns once frames came, or after `timeout`. When no other thread reads the socket,
        this one reads it (at least one frame and every whole one already buffered, each filed for
        whoever waits on it); otherwise it waits for the reader to file something."""
        if self.closed is not None:
            return
        if self._reading is not None:
            self._waiters += 1
            try:
                self.cond.wait(timeout)
            finally:
                self._waiters -= 1
            return
        self._reading = threading.get_ident()
        self._waiters += 1
        saved = self.cond._release_save()
        try:
            self._read_frames(timeout, True, "waiter")
        except (OSError, ConnectionError, ValueError) as e:
            self._lost(e)
        finally:
            self.cond._acquire_restore(saved)
            self._reading = None
            self._waiters -= 1
            self._last_read = time.monotonic()
            # Another waiting thread reads next; else the background reader, at once if a callback
            # waits on a frame, after a moment otherwise.
            if self._waiters:
                self.cond.notify_all()
            elif self.watchers:
                self._background.notify()

    def next_task(self):
        """In a worker: the next task the agent sends, waiting for it (None once the connection
        is gone and no task is left)."""
        with self.cond:
            while not self.tasks:
                if self.closed is not None:
                    return None
                self.wait()
            return self.tasks.popleft()

    def _read_frames(self, timeout, block, who):
        """Read a frame (waiting up to `timeout`; not at all unless `block`, when nothing has come)
        and every other whole frame already buffered, and file them."""
        r = self.reader
        if not r.buffered():
            if not block:
                if not r.fill(block=False):
                    return
            elif timeout is not None:
                deadline = time.monotonic() + timeout
                poller = select.poll()
                poller.register(self.sock, select.POLLIN)
                while not r.buffered():
                    left = deadline - time.monotonic()
                    if left <= 0 or not poller.poll(int(left * 1000) + 1):
                        return
                    r.fill()
            while not r.buffered():
                r.fill()
        while r.buffered():
            self._file(*r.take())
            self.read_by[who] += 1

    def _background_read(self):
        """Reads the socket whenever no thread waits on it (and none did for BACKGROUND_AFTER_S,
        unless a callback waits): results nobody waits for yet, cancellations of a running task,
        the agent going away."""
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        try:
            while True:
                with self.cond:
                    while True:
                        if self.closed is not None:
                            return
                        quiet = time.monotonic() - self._last_read
                        if self._reading is None and not self._waiters and (quiet >= BACKGROUND_AFTER_S or self.watchers):
                            # Frames a reader left in the buffer (interrupted while filing them)
                            # are filed without waiting for more to come.
                            buffered = self.reader.buffered()
                            break
                        self._background.wait(max(BACKGROUND_AFTER_S - quiet, 0.001) if self._reading is None and not self._waiters else BACKGROUND_AFTER_S)
                if not buffered:
                    poller.poll()
                with self.cond:
                    if self._reading is not None or self._waiters or self.closed is not None:
                        continue
                    self._reading = "background"
                try:
                    self._read_frames(None, False, "background")
                finally:
                    with self.cond:
                        self._reading = None
                        if self._waiters:
                            self.cond.notify_all()
        except (OSError, ConnectionError, ValueError) as e:
            self._lost(e)

    def _file(self, header, payload):
        """File one frame from the agent for whoever waits on it."""
        t = header.get("t")
        if t == "resolved":
            at = 0
            ready = []
            with self.cond:
                for item in header["items"]:
                    n = item["len"] if item["state"] in ("value", "error") else 0
                    data = payload[at:at + n]
                    at += n
                    if item["state"] != "value" and item["state"] != "path":
                        # An error, or a value held elsewhere: waiters look at every ref again.
                        self.notable += 1
                    if item["id"] in self._gone:
                        self._gone.discard(item["id"])
                    else:
                        self.objects[item["id"]] = (item["state"], data, item.get("path") or item.get("error"))
                    ready.extend(self.watchers.pop(item["id"], ()))
                self.cond.notify_all()
            for cb in ready:
                cb()
        elif t == "execute" and self.tasks is not None:
            with self.cond:
                self.tasks.append((header["task"], payload))
                self.cond.notify_all()
        elif t == "reply":
            with self.cond:
                waiter = self._replies.get(header.get("req_id"))
                if waiter is not None:
                    waiter.append((header, payload))
                self.cond.notify_all()
        elif t == "cancel" and self.on_cancel is not None:
            self.on_cancel(header.get("task_id"), bool(header.get("force")))
        elif t == "error":
            raise ConnectionError("the agent closed this connection: %s: %s" % (header["code"], header["message"]))

    def _lost(self, e):
        """The connection is gone: every waiter and callback learns it."""
        with self.cond:
            if self.closed is None:
                self.closed = e
            self.cond.notify_all()
            self._background.notify_all()
            waiting = [cb for cbs in self.watchers.values() for cb in cbs]
            self.watchers.clear()
        for cb in waiting:
            cb()
        self._flush_wanted.set()

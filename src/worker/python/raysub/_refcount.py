"""Reference counting, as far as one process can tell: the process that made an object (a task it
submitted, a value it put) or an actor tells its agent when its last ObjectRef or ActorHandle to it
is gone, and the agent frees the object (once no queued task needs it) or ends the actor (once its
queued calls have run).

A ref or handle that was pickled (inside an argument, a result, a put value) may live on in other
processes that cannot be counted from here, so what escaped that way is kept until the job ends
(or the actor is killed); refs passed as top-level task arguments do not escape (the agent holds
their values for the task). Named and detached actors are never ended by counting."""

import threading

from . import _context

# Reentrant: a ref's __del__ may run (garbage collection) while this thread holds the lock.
_lock = threading.RLock()
_counts = {}
_made_here = set()


def made(key):
    """This process made the object or actor `key` (("o", id) or ("a", id))."""
    with _lock:
        _made_here.add(key)


def made_and_add(key):
    """This process made `key` and holds its first ref (one lock taken, not two: every submission
    makes one)."""
    with _lock:
        _made_here.add(key)
        _counts[key] = _counts.get(key, 0) + 1


def escaped(key):
    """A ref or handle to `key` was pickled: other processes may hold it, so it is never released."""
    with _lock:
        _made_here.discard(key)


def add(key):
    with _lock:
        _counts[key] = _counts.get(key, 0) + 1


def drop(key):
    """A ref or handle to `key` was garbage collected."""
    try:
        with _lock:
            n = _counts.get(key, 0) - 1
            if n > 0:
                _counts[key] = n
                return
            _counts.pop(key, None)
            if key not in _made_here:
                return
            _made_here.discard(key)
        c = _context.conn
        if c is not None and c.closed is None:
            c.release(key[0], key[1])
    except Exception:  # noqa: BLE001 - runs from __del__, possibly at interpreter exit
        pass

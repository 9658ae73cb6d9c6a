"""Objects: put, get, wait and futures, on this process's connection to its agent. Values are
encoded and decoded only through `_serialization`."""

import concurrent.futures
import threading
import time

from . import _context, _failure, _refs, _serialization, exceptions
from ._refs import ObjectRef, new_id
from ._contract import SIZES

INLINE_LIMIT = SIZES["INLINE_LIMIT"]


def put(value, *, _owner=None, _tensor_transport=None):
    """Store a value in this node's object store; returns its ObjectRef."""
    if _owner is not None:
        raise ValueError("The experimental `_owner` argument to `ray.put` has been removed in Ray 2.56.")
    if isinstance(value, ObjectRef):
        raise TypeError("Calling 'put' on an ray.ObjectRef is not allowed. If you really want to do this, you can wrap the ray.ObjectRef in a list and call 'put' on it.")
    c = _context.connection()
    parts = _serialization.encode_parts(value)
    oid = new_id()
    size = sum(len(p) for p in parts)
    if size > INLINE_LIMIT and _serialization.write_file(oid, parts):
        c.put_file(oid, size)
    else:
        c.put(oid, parts)
    if size <= INLINE_LIMIT:
        with c.cond:
            c.objects[oid] = ("value", b"".join(parts), None)
    return ObjectRef(oid, c.node_id, _made=True)


def _await(c, refs, need, timeout, local, stop_on_error=False):
    """Wait until `need` of `refs` are ready (and local, when `local`), or one failed when
    `stop_on_error`; tells the agent while blocked, so it lends this task's CPUs.

    Each wake-up looks only at the refs not ready yet (a ready object stays ready while its ref is
    held), and, waiting for all of them while only values arrive, only up to the first not ready:
    gathering N results that arrive in order costs O(N) in all, not O(N) per frame of results."""
    missing = [r for r in refs if r.id not in c.objects and r.id not in c.owned]
    if local:
        missing += [r for r in refs if c.objects.get(r.id, ("",))[0] == "remote"]
    if missing:
        c.request(missing)
    deadline = None if timeout is None else time.monotonic() + timeout
    blocked = False
    pending = list(refs)
    state = {"ready": 0, "failed": False, "far": [], "notable": None}
    wants_all = need == len(refs)

    def done():
        if wants_all and state["notable"] == c.notable:
            # Waiting for all, and only values came since the last look (no error, nothing held
            # elsewhere): look from the front up to the first ref not ready, not at every ref.
            i = 0
            for r in pending:
                e = c.objects.get(r.id)
                if e is None or (local and e[0] == "remote"):
                    break
                i += 1
            del pending[:i]
            state["ready"] += i
            state["far"] = []
            return state["ready"] >= need
        state["notable"] = c.notable
        still = []
        far = []
        for r in pending:
            e = c.objects.get(r.id)
            if e is None:
                still.append(r)
                continue
            if local and e[0] == "remote":
                still.append(r)
                if r.id not in c.requested:
                    far.append(r)
                continue
            if stop_on_error and e[0] == "error":
                state["failed"] = True
            state["ready"] += 1
        pending[:] = still
        state["far"] = far
        return state["failed"] or state["ready"] >= need

    try:
        with c.cond:
            while not done():
                if c.closed is not None:
                    raise exceptions.RaySystemError("lost the connection to the agent: %s" % c.closed)
                far = state["far"]
                if far:
                    c.cond.release()
                    try:
                        c.request(far)
                    finally:
                        c.cond.acquire()
                    continue
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                if not blocked:
                    blocked = True
                    _context.blocked()
                c.wait(left)
        return True
    finally:
        if blocked:
            _context.unblocked()


def _value(c, r):
    state, data, extra = c.objects[r.id]
    if state == "value":
        return _serialization.decode(data)
    if state == "path":
        return _serialization.decode_file(extra)
    if state == "error":
        raise _failure.error_of(extra, data, r.id)
    raise exceptions.ObjectLostError(r.id, None, "", "object %s is not available here" % r.id)


def get(object_refs, *, timeout=None):
    """The value(s) of an ObjectRef or a list of them; raises the first failed task's error (at
    once, without waiting for the rest), or GetTimeoutError."""
    if getattr(type(object_refs), "_raysub_generator", False):  # an ObjectRefGenerator is its own value
        return object_refs
    single = isinstance(object_refs, ObjectRef)
    if not single and not isinstance(object_refs, list):
        raise ValueError("Invalid type of object refs, %s, is given. 'object_refs' must either be an ObjectRef or a list of ObjectRefs. " % type(object_refs))
    lst = [object_refs] if single else object_refs
    for r in lst:
        if not isinstance(r, ObjectRef):
            raise TypeError("Attempting to call `get` on the value %r, which is not an ray.ObjectRef." % (r,))
    if timeout is not None and timeout < 0:
        raise ValueError("'timeout' must be a non-negative number")
    c = _context.connection()
    c.flush()
    if not _await(c, lst, len(lst), timeout, True, stop_on_error=True):
        raise exceptions.GetTimeoutError("Get timed out: some object(s) not ready.")
    with c.cond:
        for r in lst:
            e = c.objects.get(r.id)
            if e is not None and e[0] == "error":
                raise _failure.error_of(e[2], e[1], r.id)
    values = [_value(c, r) for r in lst]
    return values[0] if single else values


def wait(ray_waitables, *, num_returns=1, timeout=None, fetch_local=True):
    """(ready, not_ready): the first `num_returns` refs that are ready, in the order given (each
    list keeps the input's order)."""
    if isinstance(ray_waitables, ObjectRef):
        raise TypeError("wait() expected a list of ray.ObjectRef or ray.ObjectRefGenerator, got a single ray.ObjectRef or ray.ObjectRefGenerator %s" % (ray_waitables,))
    if not isinstance(ray_waitables, list):
        raise TypeError("wait() expected a list of ray.ObjectRef or ray.ObjectRefGenerator, got %s" % type(ray_waitables))
    if timeout is not None and timeout < 0:
        raise ValueError("The 'timeout' argument must be nonnegative. Received %s" % timeout)
    for r in ray_waitables:
        if not isinstance(r, ObjectRef):
            raise TypeError("wait() expected a list of ray.ObjectRef or ray.ObjectRefGenerator, got list containing %s" % type(r))
    if not ray_waitables:
        return [], []
    if len(ray_waitables) != len(set(ray_waitables)):
        raise ValueError("Wait requires a list of unique ray_waitables.")
    if num_returns <= 0:
        raise ValueError("Invalid number of objects to return %d." % num_returns)
    if num_returns > len(ray_waitables):
        raise ValueError("num_returns cannot be greater than the number of ray_waitables provided to ray.wait.")
    c = _context.connection()
    c.flush()
    _await(c, ray_waitables, num_returns, timeout, bool(fetch_local))
    ready, not_ready = [], []
    with c.cond:
        for r in ray_waitables:
            e = c.objects.get(r.id)
            ok = e is not None and not (fetch_local and e[0] == "remote")
            (ready if ok and len(ready) < num_returns else not_ready).append(r)
    return ready, not_ready


# Futures: a callback on the reader thread hands a resolved ref to these threads, which decode it
# (and fetch it from another node when needed) without holding up the reader.
_pool = None
_pool_lock = threading.Lock()


def _executor():
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="raysub-future")
        return _pool


def future(ref):
    """A concurrent.futures.Future of `ref`'s value."""
    fut = concurrent.futures.Future()
    c = _context.connection()
    c.flush()

    def resolve():
        try:
            fut.set_result(get(ref))
        except BaseException as e:  # noqa: BLE001 - the future carries any failure
            fut.set_exception(e)

    c.watch(ref, lambda: _executor().submit(resolve))
    return fut


def free(object_refs, local_only=False):
    """Accepted for compatibility (`ray.internal.free`): objects are freed when their last
    reference goes, or when their job ends."""
    return None


_refs._future_of = future  # ObjectRef.future() (the reference module does not import this one)

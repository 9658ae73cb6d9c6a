"""Objects: put, get and wait, on this process's connection to its agent."""

import pickle
import time

from . import _api, _errors
from ._api import INLINE_LIMIT, ObjectRef, _connection, _new_id


def put(value):
    """Store a value in this node's object store; returns its ObjectRef."""
    c = _connection()
    data = pickle.dumps(value, protocol=5)
    oid = _new_id()
    c.flush()
    c.send({"t": "put", "id": oid, "len": len(data)}, (data,))
    if len(data) <= INLINE_LIMIT:
        with c.cond:
            c.objects[oid] = ("value", data, None)
    return ObjectRef(oid, c.node_id)


def _await(c, refs, need, timeout, local):
    """Wait until `need` of `refs` are ready (and local, when `local`); tell the agent while blocked."""
    missing = [r for r in refs if r.id not in c.objects and r.id not in c.owned]
    if local:
        missing += [r for r in refs if c.objects.get(r.id, ("",))[0] == "remote"]
    if missing:
        c.request(missing)
    deadline = None if timeout is None else time.monotonic() + timeout
    blocked = False

    def count():
        n = 0
        for r in refs:
            e = c.objects.get(r.id)
            if e is not None and not (local and e[0] == "remote"):
                n += 1
        return n

    try:
        with c.cond:
            while count() < need:
                if c.closed is not None:
                    raise _errors.RaysubError("lost the connection to the agent: %s" % c.closed)
                if local:
                    far = [r for r in refs if c.objects.get(r.id, ("",))[0] == "remote" and r.id not in c.requested]
                    if far:
                        c.cond.release()
                        try:
                            c.request(far)
                        finally:
                            c.cond.acquire()
                        continue
                if not blocked and _api._in_worker:
                    blocked = True
                    c.send({"t": "blocked"})
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                c.cond.wait(left if left is not None else 1.0)
        return True
    finally:
        if blocked:
            c.send({"t": "unblocked"})


def _value(c, r):
    state, data, extra = c.objects[r.id]
    if state == "value":
        return pickle.loads(data)
    if state == "path":
        with open(extra, "rb") as f:
            return pickle.loads(f.read())
    if state == "error":
        cause = None
        if data:
            try:
                cause = pickle.loads(data)
            except Exception:
                cause = None
        raise _errors.make_error(extra or {}, cause)
    raise _errors.ObjectLostError("object %s is not available here" % r.id)


def get(refs, timeout=None):
    """The value(s) of an ObjectRef or a list of them; raises the task's error, or GetTimeoutError."""
    single = isinstance(refs, ObjectRef)
    lst = [refs] if single else list(refs)
    for r in lst:
        if not isinstance(r, ObjectRef):
            raise TypeError("get() takes an ObjectRef or a list of ObjectRefs, got %r" % (r,))
    c = _connection()
    c.flush()
    if not _await(c, lst, len(lst), timeout, True):
        raise _errors.GetTimeoutError("get() timed out after %ss" % timeout)
    values = [_value(c, r) for r in lst]
    return values[0] if single else values


def wait(refs, num_returns=1, timeout=None, fetch_local=True):
    """(ready, not_ready): the first `num_returns` refs that are ready, in the order given."""
    lst = list(refs)
    if num_returns > len(lst):
        raise ValueError("num_returns (%d) is larger than the number of refs (%d)" % (num_returns, len(lst)))
    c = _connection()
    c.flush()
    _await(c, lst, num_returns, timeout, False)
    ready, not_ready = [], []
    with c.cond:
        for r in lst:
            (ready if r.id in c.objects and len(ready) < num_returns else not_ready).append(r)
    return ready, not_ready

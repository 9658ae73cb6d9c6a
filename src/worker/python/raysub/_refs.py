"""Object references: made by the caller (a task's id is its result's id), awaitable, and turned
into concurrent.futures.Future objects on request."""

import asyncio
import concurrent.futures
import os
import threading

from . import _refcount


def _future_of(ref):  # replaced by _objects.future when _objects is imported (the package imports it)
    raise RuntimeError("raysub._objects is not loaded")

_lock = threading.Lock()
_prefix = os.urandom(6).hex()
_counter = [0]


def new_id():
    with _lock:
        _counter[0] += 1
        return "%s%x" % (_prefix, _counter[0])


class ObjectRef:
    """A reference to a task's result or a value put in the object store."""

    __slots__ = ("id", "owner", "__weakref__")

    def __init__(self, id, owner, _made=False):
        self.id = id
        self.owner = owner
        if _made:
            _refcount.made_and_add(("o", id))
        else:
            _refcount.add(("o", id))

    def __del__(self):
        _refcount.drop(("o", self.id))

    def __reduce__(self):
        # Pickled into a value or an argument: other processes may hold it now.
        _refcount.escaped(("o", self.id))
        return (ObjectRef, (self.id, self.owner))

    def __eq__(self, other):
        return isinstance(other, ObjectRef) and other.id == self.id

    def __hash__(self):
        return hash(self.id)

    def __repr__(self):
        return "ObjectRef(%s)" % self.id

    def hex(self):
        return self.id

    def binary(self):
        return self.id.encode()

    def task_id(self):
        return self.id

    def is_nil(self):
        return False

    def future(self):
        """A concurrent.futures.Future that completes with the value (or the task's error)."""
        return _future_of(self)

    def as_future(self):
        """An asyncio future of the value, on the running event loop."""
        return asyncio.wrap_future(self.future())

    def __await__(self):
        return self.as_future().__await__()


class _Dep:
    """Stands in for an ObjectRef passed as a top-level argument: the worker puts its value there."""

    __slots__ = ("id",)

    def __init__(self, id):
        self.id = id

    def __reduce__(self):
        return (_Dep, (self.id,))


def completed_future(value=None, error=None):
    f = concurrent.futures.Future()
    if error is not None:
        f.set_exception(error)
    else:
        f.set_result(value)
    return f

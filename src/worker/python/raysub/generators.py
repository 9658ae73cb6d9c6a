"""Generator tasks' results. `ObjectRefGenerator` (num_returns="streaming", the default for a
generator function or method) yields one ObjectRef per value the task yields, as it yields them;
`DynamicObjectRefGenerator` (num_returns="dynamic") is the value of the task's single ref once the
task has finished, and holds them all.

A generator task's values are objects `<task id>_<i>`; the task's own object, once it ends, is
the number of values it yielded (an error it raised is the value after the last one)."""

import asyncio

from . import _objects, exceptions
from ._refs import ObjectRef

_DONE = object()


def _item(task_id, owner, index):
    return ObjectRef("%s_%d" % (task_id, index), owner)


class ObjectRefGenerator:
    _raysub_generator = True  # ray.get of one gives it back (_objects.get)

    """Iterate (or `async for`) to get each yielded value's ObjectRef, in order."""

    def __init__(self, task_id, owner):
        self._task_id = task_id
        self._owner = owner
        self._end = ObjectRef(task_id, owner)
        self._next = 0
        self._count = None

    def __reduce__(self):
        return (ObjectRefGenerator, (self._task_id, self._owner))

    def task_id(self):
        return self._task_id

    def completed(self):
        """A ref ready once the task has finished."""
        return self._end

    def is_finished(self):
        return self._count is not None and self._next >= self._count

    def __iter__(self):
        return self

    def _step(self, timeout):
        if self._count is not None and self._next >= self._count:
            raise StopIteration
        ref = _item(self._task_id, self._owner, self._next)
        ready, _ = _objects.wait([ref, self._end], num_returns=1, timeout=timeout, fetch_local=False)
        if ref in ready:
            self._next += 1
            return ref
        if self._end in ready:
            self._count = _objects.get(self._end)  # raises the task's error if it failed outright
            if self._next < self._count:
                self._next += 1
                return ref
            raise StopIteration
        raise exceptions.GetTimeoutError("the generator's next value was not ready in time")

    def __next__(self):
        return self._step(None)

    def next_ready(self, timeout=0):
        """The next ref if it is ready within `timeout` seconds (GetTimeoutError otherwise)."""
        return self._step(timeout)

    def __aiter__(self):
        return self

    def _step_or_done(self):
        try:
            return self._step(None)
        except StopIteration:
            return _DONE

    async def __anext__(self):
        ref = await asyncio.get_running_loop().run_in_executor(None, self._step_or_done)
        if ref is _DONE:
            raise StopAsyncIteration
        return ref

    def __repr__(self):
        return "ObjectRefGenerator(%s)" % self._task_id


class DynamicObjectRefGenerator:
    """The value of a `num_returns="dynamic"` task: iterate to get its ObjectRefs."""

    def __init__(self, refs):
        self._refs = list(refs)

    def __iter__(self):
        return iter(self._refs)

    def __len__(self):
        return len(self._refs)

    def __reduce__(self):
        return (DynamicObjectRefGenerator, (self._refs,))

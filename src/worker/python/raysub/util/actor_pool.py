"""ActorPool: spread calls over a fixed set of actors, each busy with one call at a time (Ray's
`ray.util.ActorPool`, same methods and semantics)."""

from .. import _objects
from ..exceptions import ActorDiedError

_TIMED_OUT = "Timed out waiting for result"


def _key(ref):
    return tuple(ref) if isinstance(ref, list) else ref


class ActorPool:
    """A pool over `actors`: `map`/`map_unordered` a function `fn(actor, value) -> ObjectRef`
    over values, or `submit` and collect with `get_next`/`get_next_unordered`."""

    def __init__(self, actors):
        self._idle_actors = list(actors)
        self._future_to_actor = {}  # ref -> (submission index, actor)
        self._index_to_future = {}
        self._next_task_index = 0
        self._next_return_index = 0
        self._pending_submits = []

    def _drain(self, ordered):
        # Results of earlier submissions are dropped, as Ray does, before a new map.
        while self.has_next():
            try:
                if ordered:
                    self.get_next(timeout=0, ignore_if_timedout=True)
                else:
                    self.get_next_unordered(timeout=0)
            except TimeoutError:
                pass

    def map(self, fn, values):
        """Results of `fn(actor, v)` for each value, in the order of `values`."""
        self._drain(True)
        for v in values:
            self.submit(fn, v)
        return (self.get_next() for _ in iter(self.has_next, False))

    def map_unordered(self, fn, values):
        """Results of `fn(actor, v)` for each value, as they finish."""
        self._drain(False)
        for v in values:
            self.submit(fn, v)
        return (self.get_next_unordered() for _ in iter(self.has_next, False))

    def submit(self, fn, value):
        """Run `fn(actor, value)` on an idle actor now, or when one is free."""
        if not self._idle_actors:
            self._pending_submits.append((fn, value))
            return
        actor = self._idle_actors.pop()
        ref = fn(actor, value)
        self._future_to_actor[_key(ref)] = (self._next_task_index, actor)
        self._index_to_future[self._next_task_index] = ref
        self._next_task_index += 1

    def has_next(self):
        return bool(self._future_to_actor)

    def get_next(self, timeout=None, ignore_if_timedout=False):
        """The next result in submission order (TimeoutError after `timeout` seconds)."""
        if not self.has_next():
            raise StopIteration("No more results to get")
        if self._next_return_index >= self._next_task_index:
            raise ValueError("It is not allowed to call get_next() after get_next_unordered().")
        ref = self._index_to_future[self._next_return_index]
        timed_out = False
        if timeout is not None:
            ready, _ = _objects.wait([ref] if not isinstance(ref, list) else ref, num_returns=1 if not isinstance(ref, list) else len(ref), timeout=timeout)
            if not ready:
                if not ignore_if_timedout:
                    raise TimeoutError(_TIMED_OUT)
                timed_out = True
        del self._index_to_future[self._next_return_index]
        self._next_return_index += 1
        _, actor = self._future_to_actor.pop(_key(ref))
        if timed_out:
            self._return_actor(actor)
            raise TimeoutError("%s. The task %s has been ignored." % (_TIMED_OUT, ref))
        return self._result(ref, actor)

    def get_next_unordered(self, timeout=None, ignore_if_timedout=False):
        """The next result to finish (TimeoutError after `timeout` seconds)."""
        if not self.has_next():
            raise StopIteration("No more results to get")
        ready, _ = _objects.wait(list(self._future_to_actor), num_returns=1, timeout=timeout)
        if not ready:
            raise TimeoutError(_TIMED_OUT)
        ref = ready[0]
        index, actor = self._future_to_actor.pop(ref)
        del self._index_to_future[index]
        self._next_return_index = max(self._next_return_index, index + 1)
        return self._result(ref, actor)

    def _result(self, ref, actor):
        alive = True
        try:
            return _objects.get(ref)
        except ActorDiedError:
            alive = False
            raise
        finally:
            self._return_actor(actor, alive)

    def _return_actor(self, actor, alive=True):
        if alive:
            self._idle_actors.append(actor)
        if self._pending_submits and self._idle_actors:
            self.submit(*self._pending_submits.pop(0))

    def has_free(self):
        """Whether an actor is idle and no submission waits for one."""
        return bool(self._idle_actors) and not self._pending_submits

    def pop_idle(self):
        """Take an idle actor out of the pool (None if there is none)."""
        return self._idle_actors.pop() if self.has_free() else None

    def push(self, actor):
        """Add an actor to the pool."""
        busy = [a for _, a in self._future_to_actor.values()]
        if actor in self._idle_actors or actor in busy:
            raise ValueError("Actor already belongs to current ActorPool")
        self._return_actor(actor)

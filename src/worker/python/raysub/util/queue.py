"""Queue: a first-in, first-out queue shared by the tasks and actors of a job, held by an actor
(Ray's `ray.util.queue.Queue`, same methods, exceptions and blocking semantics).

The actor answers at once (its calls never block it), and a blocking `get` or `put` retries with a
short back-off until it succeeds or its timeout passes, so it works whatever the actor's
concurrency."""

import asyncio
import collections
import queue as _queue
import time
from collections.abc import Iterable

from .. import _objects
from ..actor import ActorClass

_MAX_POLL_S = 0.05


class Empty(_queue.Empty):
    pass


class Full(_queue.Full):
    pass


class _QueueActor:
    def __init__(self, maxsize):
        self.maxsize = maxsize
        self.items = collections.deque()

    def qsize(self):
        return len(self.items)

    def empty(self):
        return not self.items

    def full(self):
        return 0 < self.maxsize <= len(self.items)

    def put_nowait(self, item):
        if self.full():
            return False
        self.items.append(item)
        return True

    def put_nowait_batch(self, items):
        if self.maxsize > 0 and len(items) + len(self.items) > self.maxsize:
            return "Cannot add %d items to queue of size %d and maxsize %d." % (len(items), len(self.items), self.maxsize)
        self.items.extend(items)
        return None

    def get_nowait(self):
        if not self.items:
            return (False, None)
        return (True, self.items.popleft())

    def get_nowait_batch(self, num_items):
        if num_items > len(self.items):
            return (False, "Cannot get %d items from queue of size %d." % (num_items, len(self.items)))
        return (True, [self.items.popleft() for _ in range(num_items)])


def _check_timeout(timeout):
    if timeout is not None and timeout < 0:
        raise ValueError("'timeout' must be a non-negative number")


def _retry(attempt, timeout, failed):
    """Call `attempt` until it says done, backing off; raise `failed` after `timeout` seconds."""
    deadline = None if timeout is None else time.monotonic() + timeout
    pause = 0.001
    while True:
        done, value = attempt()
        if done:
            return value
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            raise failed()
        time.sleep(pause if left is None else min(pause, left))
        pause = min(pause * 2, _MAX_POLL_S)


class Queue:
    """A FIFO queue: `put`, `get` (blocking, with timeouts, or `_nowait`), batches, sizes."""

    def __init__(self, maxsize=0, actor_options=None):
        self.maxsize = maxsize
        self.actor = ActorClass(_QueueActor, {}).options(**(actor_options or {})).remote(maxsize)

    def __len__(self):
        return self.size()

    def size(self):
        return _objects.get(self.actor.qsize.remote())

    def qsize(self):
        return self.size()

    def empty(self):
        return _objects.get(self.actor.empty.remote())

    def full(self):
        return _objects.get(self.actor.full.remote())

    def put(self, item, block=True, timeout=None):
        if not block:
            if not _objects.get(self.actor.put_nowait.remote(item)):
                raise Full
            return
        _check_timeout(timeout)
        _retry(lambda: (_objects.get(self.actor.put_nowait.remote(item)), None), timeout, Full)

    def get(self, block=True, timeout=None):
        if not block:
            ok, item = _objects.get(self.actor.get_nowait.remote())
            if not ok:
                raise Empty
            return item
        _check_timeout(timeout)
        return _retry(lambda: _objects.get(self.actor.get_nowait.remote()), timeout, Empty)

    async def put_async(self, item, block=True, timeout=None):
        _check_timeout(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.001
        while not await self.actor.put_nowait.remote(item):
            if not block or deadline is not None and time.monotonic() >= deadline:
                raise Full
            await asyncio.sleep(pause)
            pause = min(pause * 2, _MAX_POLL_S)

    async def get_async(self, block=True, timeout=None):
        _check_timeout(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.001
        while True:
            ok, item = await self.actor.get_nowait.remote()
            if ok:
                return item
            if not block or deadline is not None and time.monotonic() >= deadline:
                raise Empty
            await asyncio.sleep(pause)
            pause = min(pause * 2, _MAX_POLL_S)

    def put_nowait(self, item):
        return self.put(item, block=False)

    def put_nowait_batch(self, items):
        if not isinstance(items, Iterable):
            raise TypeError("Argument 'items' must be an Iterable")
        err = _objects.get(self.actor.put_nowait_batch.remote(list(items)))
        if err:
            raise Full(err)

    def get_nowait(self):
        return self.get(block=False)

    def get_nowait_batch(self, num_items):
        if not isinstance(num_items, int):
            raise TypeError("Argument 'num_items' must be an int")
        if num_items < 0:
            raise ValueError("'num_items' must be nonnegative")
        ok, items = _objects.get(self.actor.get_nowait_batch.remote(num_items))
        if not ok:
            raise Empty(items)
        return items

    def shutdown(self, force=False, grace_period_s=5):
        """End the queue's actor (what it held is gone)."""
        if self.actor is not None:
            from ..actor import kill

            kill(self.actor)
        self.actor = None

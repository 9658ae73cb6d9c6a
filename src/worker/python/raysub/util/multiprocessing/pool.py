"""Pool: `multiprocessing.Pool`'s interface (apply, map, starmap, imap and their async forms) on a
set of actors, as Ray's `ray.util.multiprocessing.Pool` does. Work is sent to the actors in chunks,
round robin; an actor's initializer runs once when it starts."""

import multiprocessing
import os
import threading

from ... import _context, _objects
from ...actor import ActorClass, kill


class PoolTaskError(Exception):
    def __init__(self, underlying):
        super().__init__(underlying)
        self.underlying = underlying


class PoolActor:
    """One process of the pool."""

    def __init__(self, initializer=None, initargs=None):
        if initializer:
            initializer(*(initargs or ()))

    def ping(self):
        return None

    def run_batch(self, func, batch):
        out = []
        for args, kwargs in batch:
            try:
                out.append(func(*(args or ()), **(kwargs or {})))
            except Exception as e:  # noqa: BLE001 - each call's failure is its result
                out.append(PoolTaskError(e))
        return out


def _unwrap(values):
    for v in values:
        if isinstance(v, PoolTaskError):
            raise v.underlying
    return values


class AsyncResult:
    """The result of an `*_async` call: `get`, `wait`, `ready`, `successful`."""

    def __init__(self, refs, callback=None, error_callback=None, single=False):
        self._refs = refs
        self._single = single
        self._done = threading.Event()
        self._value = None
        self._error = None
        threading.Thread(target=self._collect, args=(callback, error_callback), daemon=True, name="raysub-pool-result").start()

    def _collect(self, callback, error_callback):
        try:
            values = [v for chunk in _objects.get(self._refs) for v in chunk]
            values = _unwrap(values)
            self._value = values[0] if self._single else values
        except BaseException as e:  # noqa: BLE001 - kept for get()
            self._error = e
        self._done.set()
        if self._error is None and callback is not None:
            callback(self._value)
        elif self._error is not None and error_callback is not None:
            error_callback(self._error)

    def get(self, timeout=None):
        if not self._done.wait(timeout):
            raise multiprocessing.TimeoutError
        if self._error is not None:
            raise self._error
        return self._value

    def wait(self, timeout=None):
        self._done.wait(timeout)

    def ready(self):
        return self._done.is_set()

    def successful(self):
        if not self.ready():
            raise ValueError("%r not ready" % self)
        return self._error is None


class IMapIterator:
    """Results of `imap` (in order) or `imap_unordered` (as chunks finish)."""

    def __init__(self, refs, ordered):
        self._pending = list(refs)
        self._ordered = ordered
        self._buffer = []

    def __iter__(self):
        return self

    def __next__(self):
        return self.next()

    def next(self, timeout=None):
        if not self._buffer:
            if not self._pending:
                raise StopIteration
            if self._ordered:
                ref = self._pending[0]
                ready, _ = _objects.wait([ref], timeout=timeout)
            else:
                ready, _ = _objects.wait(self._pending, num_returns=1, timeout=timeout)
            if not ready:
                raise multiprocessing.TimeoutError
            self._pending.remove(ready[0])
            self._buffer.extend(_objects.get(ready[0]))
        v = self._buffer.pop(0)
        if isinstance(v, PoolTaskError):
            raise v.underlying
        return v


class Pool:
    """A pool of `processes` actors (default: the CPUs of the cluster)."""

    def __init__(self, processes=None, initializer=None, initargs=None, maxtasksperchild=None, context=None, ray_address=None, ray_remote_args=None):
        if not _context.is_initialized():
            _context.init(address=ray_address)
        cpus = _cluster_cpus()
        if processes is None:
            processes = cpus
        if processes <= 0:
            raise ValueError("Processes in the pool must be >0.")
        if cpus < processes:
            raise ValueError("Tried to start a pool with %d processes on an existing ray cluster, but there are only %d CPUs in the ray cluster." % (processes, cpus))
        self._initializer = initializer
        self._initargs = initargs
        self._maxtasksperchild = maxtasksperchild or -1
        self._actor_class = ActorClass(PoolActor, {}).options(**dict({"num_cpus": 0}, **(ray_remote_args or {})))
        self._actors = [self._new_actor() for _ in range(processes)]
        self._next = 0
        self._closed = False
        _objects.get([a.ping.remote() for a, _ in self._actors])

    def _new_actor(self):
        return [self._actor_class.remote(self._initializer, self._initargs), 0]

    def _run_batch(self, func, batch):
        i = self._next
        self._next = (self._next + 1) % len(self._actors)
        entry = self._actors[i]
        ref = entry[0].run_batch.remote(func, batch)
        entry[1] += 1
        if entry[1] == self._maxtasksperchild:
            entry[0].__ray_terminate__.remote()
            self._actors[i] = self._new_actor()
        return ref

    def _check_running(self):
        if self._closed:
            raise ValueError("Pool not running")

    def _chunks(self, func, iterable, chunksize, star):
        items = list(iterable)
        if chunksize is None:
            chunksize, extra = divmod(len(items), len(self._actors) * 4)
            chunksize += 1 if extra else 0
        chunksize = max(1, chunksize)
        refs = []
        for at in range(0, len(items), chunksize):
            batch = [(tuple(x) if star else (x,), {}) for x in items[at:at + chunksize]]
            refs.append(self._run_batch(func, batch))
        return refs

    def apply(self, func, args=None, kwargs=None):
        return self.apply_async(func, args, kwargs).get()

    def apply_async(self, func, args=None, kwargs=None, callback=None, error_callback=None):
        self._check_running()
        return AsyncResult([self._run_batch(func, [(args or (), kwargs or {})])], callback, error_callback, single=True)

    def map(self, func, iterable, chunksize=None):
        return self.map_async(func, iterable, chunksize).get()

    def map_async(self, func, iterable, chunksize=None, callback=None, error_callback=None):
        self._check_running()
        return AsyncResult(self._chunks(func, iterable, chunksize, False), callback, error_callback)

    def starmap(self, func, iterable, chunksize=None):
        return self.starmap_async(func, iterable, chunksize).get()

    def starmap_async(self, func, iterable, chunksize=None, callback=None, error_callback=None):
        self._check_running()
        return AsyncResult(self._chunks(func, iterable, chunksize, True), callback, error_callback)

    def imap(self, func, iterable, chunksize=1):
        self._check_running()
        return IMapIterator(self._chunks(func, iterable, chunksize, False), True)

    def imap_unordered(self, func, iterable, chunksize=1):
        self._check_running()
        return IMapIterator(self._chunks(func, iterable, chunksize, False), False)

    def close(self):
        """No more work; the actors finish what they have, then exit."""
        if not self._closed:
            for a, _ in self._actors:
                a.__ray_terminate__.remote()
        self._closed = True

    def terminate(self):
        """No more work; the actors stop now."""
        self.close()
        for a, _ in self._actors:
            kill(a)

    def join(self):
        if not self._closed:
            raise ValueError("Pool is still running")

    def __enter__(self):
        self._check_running()
        return self

    def __exit__(self, *exc):
        self.terminate()


def _cluster_cpus():
    from ... import _cluster

    try:
        return int(_cluster.cluster_resources().get("CPU", 0))
    except NotImplementedError:
        return os.cpu_count() or 1

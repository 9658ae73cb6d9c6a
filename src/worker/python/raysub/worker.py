"""A warm worker: `python3 -m raysub.worker`, started by the agent for one job. It runs the tasks
the agent sends it one at a time in its main thread, or holds one actor instance whose calls run
one at a time (the default), in a pool of threads (`max_concurrency` > 1), or as coroutines on an
event loop (an async actor), and reports each result."""

import asyncio
import inspect
import os
import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

from . import _context
from ._calls import Invocation, TaskCancelled


class Worker:
    def __init__(self, conn):
        self.conn = conn
        self.instance = None
        self.paths = set()
        # Functions and classes by value this worker was sent (object id -> its state and bytes or path).
        self.functions = {}
        self.mode = "serial"
        self.pool = None
        self.loop = None
        self.lock = threading.Lock()
        # The call running in the main thread, and calls asked to stop.
        self.main_call = None
        self.cancelled = set()
        # Calls the agent sent ahead (queued here behind the one running) that were cancelled before
        # their turn: dropped when it comes, as a call queued in the agent would be.
        self.dropped = set()
        self.async_calls = {}
        self.slots = None
        self.concurrency = 1
        conn.on_cancel = self.cancel
        signal.signal(signal.SIGINT, self._on_sigint)

    # ---- dispatch ----------------------------------------------------------------------------

    def dispatch(self, task, payload):
        if task["kind"] == "actor_call" and self.mode == "threads":
            self.pool.submit(self.run, task, payload)
        elif task["kind"] == "actor_call" and self.mode == "async":
            fut = asyncio.run_coroutine_threadsafe(self.run_async_in_turn(task, payload), self.loop)
            with self.lock:
                self.async_calls[task["id"]] = fut
            fut.add_done_callback(lambda _f, tid=task["id"]: self._forget(tid))
        else:
            if task["kind"] == "actor_call":
                with self.lock:
                    dropped = task["id"] in self.dropped
                    self.dropped.discard(task["id"])
                if dropped:
                    return self._report_dropped(task)
            self.run(task, payload, main=True)

    def _report_dropped(self, task):
        """A call cancelled before it started: it never runs (TaskCancelledError, as for a call the
        agent dropped from its queue)."""
        error = {"type": "TaskCancelledError", "message": "%s was cancelled" % task["name"], "traceback": "", "task": task["name"]}
        self.conn.flush()
        self.conn.send({"t": "result", "task_id": task["id"], "ok": False, "len": 0, "error": error, "retryable": False})

    def _forget(self, tid):
        with self.lock:
            self.async_calls.pop(tid, None)
            self.cancelled.discard(tid)

    def _start_actor(self, meta):
        """After the constructor: how this actor's calls run."""
        info = meta.get("actor") or {}
        concurrency = info.get("concurrency") or 1
        if info.get("async"):
            self.mode = "async"
            self.loop = asyncio.new_event_loop()
            threading.Thread(target=self.loop.run_forever, name="raysub-actor-loop", daemon=True).start()
            self.concurrency = concurrency
        elif concurrency > 1:
            self.mode = "threads"
            self.pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="raysub-actor")

    # ---- cancellation ------------------------------------------------------------------------

    def cancel(self, task_id, force):
        """The agent asks to stop `task_id` (forced stops kill the process; the agent does that)."""
        with self.lock:
            main = self.main_call == task_id and self.instance is None
            fut = self.async_calls.get(task_id)
            if main:
                self.cancelled.add(task_id)
            elif self.instance is not None and self.mode == "serial" and self.main_call != task_id:
                # A call sent ahead, still queued here (one that has ended already is not sent again).
                self.dropped.add(task_id)
        if main:
            # A real signal, so a task blocked in sleep or I/O wakes up to it. (A running call of a
            # sync actor is not interrupted, as in Ray: only queued ones are dropped, by the agent.)
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
        elif fut is not None:
            fut.cancel()

    def _on_sigint(self, signum, frame):
        with self.lock:
            stop = self.main_call is not None and self.main_call in self.cancelled
        if stop:
            raise TaskCancelled()
        # Not for a running task (it ended already): nothing to interrupt.

    # ---- running calls -----------------------------------------------------------------------

    def run(self, task, payload, main=False):
        inv = Invocation(self, task, payload)
        if main:
            with self.lock:
                self.main_call = task["id"]
        try:
            try:
                inv.prepare()
                result = inv.call()
                if inspect.iscoroutine(result):
                    result = asyncio.run(result)
                inv.report(result)
            finally:
                if main:
                    with self.lock:
                        self.main_call = None
                        self.cancelled.discard(task["id"])
        except TaskCancelled as e:
            inv.fail_cancelled(e)
        except SystemExit as e:
            self._exit_or_fail(inv, e)
        except BaseException as e:  # noqa: BLE001 - a task's failure is its result
            if isinstance(e, KeyboardInterrupt):
                raise
            inv.fail(e)
        finally:
            inv.leave()

    async def run_async_in_turn(self, task, payload):
        """An async actor's call, once fewer than its max_concurrency run (calls sent ahead wait)."""
        if self.slots is None:
            # Made on the loop's own thread (where every call runs): the agent may send an actor
            # of one call at a time its calls ahead, and they wait here.
            self.slots = asyncio.Semaphore(self.concurrency)
        try:
            await self.slots.acquire()
        except asyncio.CancelledError:
            return self._report_dropped(task)
        try:
            await self.run_async(task, payload)
        finally:
            self.slots.release()

    async def run_async(self, task, payload):
        inv = Invocation(self, task, payload)
        try:
            inv.prepare()
            result = inv.call()
            if inspect.isawaitable(result):
                result = await result
            if inspect.isasyncgen(result):
                result = [x async for x in result] if inv.num_returns not in ("streaming", "dynamic") else _AsyncItems(result)
            if isinstance(result, _AsyncItems):
                await inv.report_async_items(result.gen)
            else:
                inv.report(result)
        except asyncio.CancelledError as e:
            inv.fail_cancelled(e)
        except SystemExit as e:
            self._exit_or_fail(inv, e)
        except BaseException as e:  # noqa: BLE001
            inv.fail(e)
        finally:
            inv.leave()

    def _exit_or_fail(self, inv, e):
        from .actor import _ActorExit

        if isinstance(e, _ActorExit) and self.instance is not None:
            # The actor ends here: its process exits and the agent fails this call and the ones
            # queued behind it with ActorDiedError.
            self.conn.flush()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
        inv.fail(e)


class _AsyncItems:
    def __init__(self, gen):
        self.gen = gen


def main():
    _context.in_worker = True
    conn = _context.connect()
    # As in Ray, a worker is connected: ray.init() in a task raises unless ignore_reinit_error.
    _context.explicit_init = True
    w = Worker(conn)
    while True:
        try:
            item = conn.next_task()
        except TaskCancelled:
            continue  # a cancellation that came after its task ended
        if item is None:
            return
        w.dispatch(*item)


if __name__ == "__main__":
    main()

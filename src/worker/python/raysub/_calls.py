"""One task or actor call in a worker: its arguments, the context it runs in, and how its result
(one value, N values, or the values a generator yields) goes back to the agent."""

import inspect
import os
import pickle
import sys

from . import _context, _failure, _options, _serialization, _submit
from ._contract import SIZES
from ._refs import ObjectRef, _Dep

INLINE_LIMIT = SIZES["INLINE_LIMIT"]


class TaskCancelled(BaseException):
    """Raised in a running task the agent was asked to cancel (not an Exception, as
    KeyboardInterrupt is not: user code's `except Exception` does not swallow it)."""


def return_id(task_id, index):
    """The object id of a task's `index`-th return (num_returns != 1) or yielded value."""
    return "%s_%d" % (task_id, index)


class Invocation:
    def __init__(self, worker, task, payload):
        self.worker = worker
        self.conn = worker.conn
        self.task = task
        self.payload = payload
        self.deps = {}
        self.meta = {}
        self.num_returns = 1
        self._token = None
        self._saved_env = None
        self._counted = False

    # ---- before ------------------------------------------------------------------------------

    def dep(self, oid):
        got = self.deps.get(oid) or self.worker.functions.get(oid)
        if got is None:
            raise RuntimeError("the agent did not send object %s with this task" % oid)
        state, v = got
        return _serialization.decode(v) if state == "value" else _serialization.decode_file(v)

    def prepare(self):
        task, payload = self.task, self.payload
        n = task["args_len"]
        at = n
        for d in task["deps"]:
            if d["state"] == "value":
                self.deps[d["id"]] = ("value", payload[at:at + d["len"]])
                at += d["len"]
            else:
                self.deps[d["id"]] = ("path", d["path"])
        fn = task["fn"]
        if fn["module"] == _submit.BY_VALUE and fn["name"] in self.deps:
            # A function by value comes with the first task this worker runs of it, not again.
            self.worker.functions[fn["name"]] = self.deps[fn["name"]]
        if task.get("args_path"):
            # Large arguments that came from another node: in a file of this node's object store.
            args, kwargs, meta = _serialization.decode_file(task["args_path"])
        else:
            args, kwargs, meta = _serialization.decode(payload[:n])
        self.meta = meta
        self.num_returns = meta.get("nr", 1)
        values = {}

        def fill(a):
            if isinstance(a, _Dep):
                if a.id not in values:
                    values[a.id] = self.dep(a.id)
                return values[a.id]
            return a

        self.args = tuple(fill(a) for a in args)
        self.kwargs = {k: fill(v) for k, v in kwargs.items()}
        self._enter()

    def _enter(self):
        task, meta, w = self.task, self.meta, self.worker
        if task["kind"] != "actor_call" or w.mode == "serial":
            gpus = ",".join(str(g) for g in task["gpu_ids"])
            # Set only when it differs (setting it costs as much as a small task's own work).
            if os.environ.get("CUDA_VISIBLE_DEVICES") != gpus:
                os.environ["CUDA_VISIBLE_DEVICES"] = gpus
        if task["kind"] == "actor_create":
            _context.process_actor["pg"] = meta.get("pg")
        pg = _context.process_actor.get("pg") if task["kind"] == "actor_call" else meta.get("pg")
        call = _context.Call(task["id"], task["name"], _options.assigned(meta["res"]) if meta.get("res") else {}, meta.get("path"), pg)
        self._token = _context.enter_call(call)
        _context.call_started()
        self._counted = True
        if meta.get("ns"):
            _context.namespace = meta["ns"]
        d = meta.get("path")
        if d and d not in w.paths:
            w.paths.add(d)
            sys.path.insert(1, os.path.join(os.getcwd(), d))
        env = meta.get("env") or {}
        if task["kind"] == "actor_create":
            os.environ.update(env)  # for the actor's lifetime
        elif task["kind"] == "task" and env:
            self._saved_env = {k: os.environ.get(k) for k in env}
            os.environ.update(env)

    # ---- the call ----------------------------------------------------------------------------

    def call(self):
        task, w = self.task, self.worker
        kind = task["kind"]
        if kind == "actor_call":
            if w.instance is None:
                raise RuntimeError("this worker holds no actor")
            name = task["method"]
            if name == "__ray_ready__":
                return True
            if name == "__ray_terminate__":
                from .actor import _ActorExit

                raise _ActorExit("__ray_terminate__")
            return getattr(w.instance, name)(*self.args, **self.kwargs)
        target = _submit.load(task["fn"], self.dep)
        if kind == "actor_create":
            from .actor import ActorHandle, _method_table

            _context.process_actor.update(id=task["actor_id"], name=(self.meta.get("actor") or {}).get("name"),
                                          restarted=task.get("attempt", 1) > 1)
            w.instance = target(*self.args, **self.kwargs)
            _context.process_actor["handle"] = ActorHandle(task["actor_id"], self.conn.node_id, task["fn"], target.__name__, _method_table(target), counted=False)
            w._start_actor(self.meta)
            return None
        return target(*self.args, **self.kwargs)

    # ---- after -------------------------------------------------------------------------------

    def _send_result(self, ok, data, **extra):
        self._send_parts(ok, [data], **extra)

    def _send_parts(self, ok, parts, **extra):
        self.conn.flush()
        self.conn.send(dict({"t": "result", "task_id": self.task["id"], "ok": ok, "len": sum(len(p) for p in parts)}, **extra), parts)

    def report(self, result):
        nr = self.num_returns
        if nr in ("streaming", "dynamic"):
            return self._report_items(result)
        if nr == 1:
            if _submit.plain(result):
                # Plain data pickles the same with the standard pickler, several times faster.
                return self._send_parts(True, [pickle.dumps(result, protocol=_serialization.PROTOCOL)])
            parts = _serialization.encode_parts(result)
            size = sum(len(p) for p in parts)
            if size > INLINE_LIMIT and _serialization.write_file(self.task["id"], parts):
                self.conn.flush()
                return self.conn.send({"t": "result", "task_id": self.task["id"], "ok": True, "len": size, "file": True})
            return self._send_parts(True, parts)
        values = [] if nr == 0 else list(result) if isinstance(result, (list, tuple)) else None
        if values is None or len(values) != nr:
            raise ValueError("Task returned %s objects, but num_returns=%d." % (len(values) if values is not None else "a non-sequence of", nr))
        parts = [_serialization.encode(v) for v in values]
        self.conn.flush()
        self.conn.send({"t": "result", "task_id": self.task["id"], "ok": True, "len": sum(len(p) for p in parts), "returns": [len(p) for p in parts]}, parts)

    def _yield(self, index, ok, data, error=None):
        msg = {"t": "yield", "task_id": self.task["id"], "index": index, "ok": ok, "len": len(data)}
        if error is not None:
            msg["error"] = error
        self.conn.flush()
        self.conn.send(msg, (data,))

    def _report_items(self, items):
        count = 0
        try:
            for item in items:
                self._yield(count, True, _serialization.encode(item))
                count += 1
        except Exception as e:  # noqa: BLE001 - the error is the stream's next item
            if self.num_returns == "dynamic":
                raise
            info, data = self._failure(e)
            self._yield(count, False, data, info)
            count += 1
        self._finish_items(count)

    async def report_async_items(self, gen):
        count = 0
        try:
            async for item in gen:
                self._yield(count, True, _serialization.encode(item))
                count += 1
        except Exception as e:  # noqa: BLE001
            if self.num_returns == "dynamic":
                raise
            info, data = self._failure(e)
            self._yield(count, False, data, info)
            count += 1
        self._finish_items(count)

    def _finish_items(self, count):
        if self.num_returns == "dynamic":
            from .generators import DynamicObjectRefGenerator

            refs = [ObjectRef(return_id(self.task["id"], i), self.conn.node_id) for i in range(count)]
            self._send_result(True, _serialization.encode(DynamicObjectRefGenerator(refs)))
        else:
            self._send_result(True, _serialization.encode(count))

    def _failure(self, e):
        actor = None
        if _context.process_actor["id"] is not None:
            inst = self.worker.instance
            actor = {"id": _context.process_actor["id"], "repr": repr(inst) if inst is not None else None}
        return _failure.task_failure(self.task["name"], e, actor)

    def fail(self, e):
        info, data = self._failure(e)
        msg = {"t": "result", "task_id": self.task["id"], "ok": False, "len": len(data), "error": info}
        if not self._retryable(e):
            msg["retryable"] = False
        self.conn.flush()
        self.conn.send(msg, (data,))

    def _retryable(self, e):
        """With `retry_exceptions=[...]`, only those exceptions are retried."""
        allowed = self.meta.get("retry_on")
        return allowed is None or isinstance(e, tuple(allowed))

    def fail_cancelled(self, interrupted=None):
        """The task stopped because it was cancelled: its error is TaskCancelledError raised where
        it was interrupted (as Ray reports a cancelled running task), never retried."""
        from .exceptions import TaskCancelledError

        err = TaskCancelledError(self.task["id"])
        if interrupted is not None:
            err.__traceback__ = interrupted.__traceback__
        info, data = self._failure(err)
        self.conn.flush()
        self.conn.send({"t": "result", "task_id": self.task["id"], "ok": False, "len": len(data), "error": info, "retryable": False}, (data,))

    def leave(self):
        if self._saved_env:
            for k, v in self._saved_env.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        if self._counted:
            _context.call_ended()
        if self._token is not None:
            _context.leave_call(self._token)
        sys.stdout.flush()
        sys.stderr.flush()


def is_generator_function(fn):
    return inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn)

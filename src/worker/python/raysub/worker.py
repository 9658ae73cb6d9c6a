"""A warm worker: `python3 -m raysub.worker`, started by the agent for one job. It runs the tasks
the agent sends it one at a time (or holds one actor instance), in the job's working dir and
sandbox, and reports each result."""

import os
import sys

from . import _context, _failure, _options, _serialization, _submit
from ._refs import _Dep


class _Task:
    """One execute message: its dependencies' bytes, decoded on demand."""

    def __init__(self, task, payload):
        self.task = task
        n = task["args_len"]
        if task.get("args_path"):
            # Large arguments that came from another node: in a file of this node's object store.
            with open(task["args_path"], "rb") as f:
                self.args_bytes = f.read()
        else:
            self.args_bytes = payload[:n]
        self.deps = {}
        at = n
        for d in task["deps"]:
            if d["state"] == "value":
                self.deps[d["id"]] = ("value", payload[at:at + d["len"]])
                at += d["len"]
            else:
                self.deps[d["id"]] = ("path", d["path"])

    def dep(self, oid):
        state, v = self.deps[oid]
        return _serialization.decode(v) if state == "value" else _serialization.decode_file(v)

    def arguments(self):
        args, kwargs, meta = _serialization.decode(self.args_bytes)
        values = {}

        def fill(a):
            if isinstance(a, _Dep):
                if a.id not in values:
                    values[a.id] = self.dep(a.id)
                return values[a.id]
            return a

        return tuple(fill(a) for a in args), {k: fill(v) for k, v in kwargs.items()}, meta


class Worker:
    def __init__(self, conn):
        self.conn = conn
        self.instance = None
        self.paths = set()

    def _enter(self, t, meta):
        """Set what the call sees of its context; returns how to undo the env_vars it set."""
        task = t.task
        cur = _context.current
        cur.task_id = task["id"]
        cur.task_name = task["name"]
        cur.resources = _options.assigned(meta["res"]) if meta.get("res") else {}
        cur.script_dir = meta.get("path")
        if meta.get("ns"):
            _context.namespace = meta["ns"]
        d = meta.get("path")
        if d and d not in self.paths:
            self.paths.add(d)
            sys.path.insert(1, os.path.join(os.getcwd(), d))
        env = meta.get("env") or {}
        if task["kind"] == "actor_create":
            os.environ.update(env)  # for the actor's lifetime
            return None
        if task["kind"] == "actor_call" or not env:
            return None
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        return saved

    def _call(self, t, args, kwargs, meta):
        task = t.task
        kind = task["kind"]
        if kind == "actor_call":
            if self.instance is None:
                raise RuntimeError("this worker holds no actor")
            name = task["method"]
            if name == "__ray_ready__":
                return True
            if name == "__ray_terminate__":
                from .actor import _ActorExit

                raise _ActorExit("__ray_terminate__")
            return getattr(self.instance, name)(*args, **kwargs)
        target = _submit.load(task["fn"], t.dep)
        if kind == "actor_create":
            from .actor import ActorHandle, _method_table

            _context.process_actor.update(id=task["actor_id"], name=(meta.get("actor") or {}).get("name"))
            self.instance = target(*args, **kwargs)
            _context.process_actor["handle"] = ActorHandle(task["actor_id"], self.conn.node_id, task["fn"], target.__name__, _method_table(target))
            return None
        return target(*args, **kwargs)

    def run(self, task, payload):
        conn = self.conn
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in task["gpu_ids"])
        saved = None
        try:
            t = _Task(task, payload)
            args, kwargs, meta = t.arguments()
            saved = self._enter(t, meta)
            result = self._call(t, args, kwargs, meta)
            data = _serialization.encode(result)
            conn.flush()
            conn.send({"t": "result", "task_id": task["id"], "ok": True, "len": len(data)}, (data,))
        except SystemExit as e:
            from .actor import _ActorExit

            if isinstance(e, _ActorExit) and self.instance is not None:
                # The actor ends here: its process exits and the agent fails this call and the
                # ones queued behind it with ActorDiedError.
                conn.flush()
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(0)
            self._failed(task, e)
        except KeyboardInterrupt:
            raise
        except BaseException as e:  # noqa: BLE001 - a task's failure is its result
            self._failed(task, e)
        finally:
            if saved:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
            sys.stdout.flush()
            sys.stderr.flush()

    def _failed(self, task, e):
        actor = None
        if _context.process_actor["id"] is not None:
            actor = {"id": _context.process_actor["id"], "repr": repr(self.instance) if self.instance is not None else None}
        info, data = _failure.task_failure(task["name"], e, actor)
        self.conn.flush()
        self.conn.send({"t": "result", "task_id": task["id"], "ok": False, "len": len(data), "error": info}, (data,))


def main():
    _context.in_worker = True
    conn = _context.connect()
    # As in Ray, a worker is connected: ray.init() in a task raises unless ignore_reinit_error.
    _context.explicit_init = True
    w = Worker(conn)
    while True:
        item = conn.tasks.get()
        if item is None:
            return
        w.run(*item)


if __name__ == "__main__":
    main()

"""A warm worker: `python3 -m raysub.worker`, started by the agent for one job. It runs the tasks
the agent sends it one at a time (or holds one actor instance), in the job's working dir and
sandbox, and reports each result."""

import os
import pickle
import sys
import traceback

from . import _api
from ._loader import load_function

def _arguments(task, payload):
    n = task["args_len"]
    args, kwargs = pickle.loads(payload[:n])
    values = {}
    at = n
    for d in task["deps"]:
        if d["state"] == "value":
            values[d["id"]] = pickle.loads(payload[at:at + d["len"]])
            at += d["len"]
        else:
            with open(d["path"], "rb") as f:
                values[d["id"]] = pickle.loads(f.read())

    def fill(a):
        return values[a.id] if isinstance(a, _api._Dep) else a

    return tuple(fill(a) for a in args), {k: fill(v) for k, v in kwargs.items()}


def _error(task, e):
    # The first frame is this worker's own loop: the user's traceback starts below it.
    tb = "".join(traceback.format_exception(type(e), e, e.__traceback__.tb_next if e.__traceback__ else None))
    info = {"type": type(e).__name__, "message": str(e)[:100000], "traceback": tb[-200000:], "task": task["name"]}
    try:
        data = pickle.dumps(e, protocol=5)
        pickle.loads(data)
    except Exception:
        data = b""
    return info, data


def main():
    _api._in_worker = True
    _api.init()
    conn = _api._conn
    instance = None
    while True:
        item = conn.tasks.get()
        if item is None:
            return
        task, payload = item
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in task["gpu_ids"])
        try:
            args, kwargs = _arguments(task, payload)
            kind = task["kind"]
            if kind == "actor_call":
                if instance is None:
                    raise RuntimeError("this worker holds no actor")
                result = getattr(instance, task["method"])(*args, **kwargs)
            else:
                target = load_function(task["fn"])
                if kind == "actor_create":
                    instance = target(*args, **kwargs)
                    result = None
                else:
                    result = target(*args, **kwargs)
            data = pickle.dumps(result, protocol=5)
            conn.flush()
            conn.send({"t": "result", "task_id": task["id"], "ok": True, "len": len(data)}, (data,))
        except BaseException as e:  # noqa: BLE001 - a task's failure is its result
            if isinstance(e, KeyboardInterrupt):
                raise
            info, data = _error(task, e)
            conn.flush()
            conn.send({"t": "result", "task_id": task["id"], "ok": False, "len": len(data), "error": info}, (data,))
        finally:
            sys.stdout.flush()
            sys.stderr.flush()


if __name__ == "__main__":
    main()

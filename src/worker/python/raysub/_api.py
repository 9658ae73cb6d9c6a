"""Remote functions, actors and objects."""

import os
import pickle
import sys
import threading

from . import _errors
from ._conn import Connection

INLINE_LIMIT = 100 * 1024
_lock = threading.RLock()
_conn = None
_in_worker = False
_prefix = os.urandom(6).hex()
_counter = [0]


def _new_id():
    with _lock:
        _counter[0] += 1
        return "%s%x" % (_prefix, _counter[0])


class ObjectRef:
    """A reference to a task's result or a value put in the object store."""

    __slots__ = ("id", "owner")

    def __init__(self, id, owner):
        self.id = id
        self.owner = owner

    def __reduce__(self):
        return (ObjectRef, (self.id, self.owner))

    def __eq__(self, other):
        return isinstance(other, ObjectRef) and other.id == self.id

    def __hash__(self):
        return hash(self.id)

    def __repr__(self):
        return "ObjectRef(%s)" % self.id

    def hex(self):
        return self.id


class _Dep:
    """Stands in for an ObjectRef passed as a top-level argument: the worker puts its value there."""

    __slots__ = ("id",)

    def __init__(self, id):
        self.id = id

    def __reduce__(self):
        return (_Dep, (self.id,))


# ---- connection ----------------------------------------------------------------------------------


def is_initialized():
    return _conn is not None


def init(address=None, **_ignored):
    """Connect this process to its job's agent. Inside a raysub job it needs no arguments."""
    global _conn
    with _lock:
        if _conn is not None:
            return
        path = os.environ.get("RAYSUB_TASK_SOCKET")
        token = os.environ.get("RAYSUB_JOB_TOKEN")
        if not path or not token:
            where = " (address %r)" % address if address else ""
            raise _errors.RaysubError(
                "raysub.init()%s: this process is not running inside a raysub job, and connecting to a "
                "cluster from outside one is not supported; run the script as a job: "
                "raysub job submit --working-dir . -- python3 %s" % (where, os.path.basename(sys.argv[0] or "script.py"))
            )
        _conn = Connection(path, token, "worker" if _in_worker else "driver", os.environ.get("RAYSUB_WORKER_ID") if _in_worker else None)


def _connection():
    if _conn is None:
        init()
    if _conn.closed is not None and not isinstance(_conn.closed, ConnectionError):
        raise _errors.RaysubError("lost the connection to the agent: %s" % _conn.closed)
    return _conn


def shutdown():
    """Disconnect from the agent (tasks already submitted keep running until the job ends)."""
    global _conn
    with _lock:
        if _conn is not None:
            _conn.close()
            _conn = None


class RuntimeContext:
    def __init__(self, c):
        self.job_id = c.job_id
        self.node_id = c.node_id
        self.worker_id = os.environ.get("RAYSUB_WORKER_ID")

    def get_job_id(self):
        return self.job_id

    def get_node_id(self):
        return self.node_id


def get_runtime_context():
    return RuntimeContext(_connection())


def get_gpu_ids():
    """The GPUs this task or actor holds (as CUDA_VISIBLE_DEVICES says)."""
    v = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    return [int(x) for x in v.split(",") if x.strip().isdigit()]


# ---- shipping functions by reference --------------------------------------------------------------


def _main_file():
    main = sys.modules.get("__main__")
    f = getattr(main, "__file__", None)
    if not f:
        return None
    f = os.path.abspath(f)
    cwd = os.getcwd()
    return os.path.relpath(f, cwd) if f.startswith(cwd + os.sep) else f


def _fn_ref(obj, what):
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    if not module or not qualname or "<lambda>" in qualname or "<locals>" in qualname:
        raise _errors.RaysubError(
            "%s %r cannot run remotely: it must be defined at the top level of a module or of the "
            "entrypoint script (not a lambda, closure or nested function)" % (what, qualname)
        )
    ref = {"module": module, "name": qualname}
    if module in ("__main__", "__raysub_main__"):
        main = _main_file()
        if main is None:
            raise _errors.RaysubError(
                "%s %s is defined in an interactive session or `python -c`: put it in a module or a script file" % (what, qualname)
            )
        ref = {"module": "__main__", "name": qualname, "main_file": main}
    return ref


def _resources(opts, default_cpus):
    cpus = opts.get("num_cpus")
    return {
        "cpus": float(default_cpus if cpus is None else cpus),
        "gpus": float(opts.get("num_gpus") or 0),
        "memory": int(opts.get("memory") or 0),
        "custom": {k: float(v) for k, v in (opts.get("resources") or {}).items()},
    }


_OPTIONS = {"num_cpus", "num_gpus", "memory", "resources", "max_retries", "retry_exceptions", "name", "max_restarts", "max_task_retries", "max_concurrency", "scheduling_strategy", "runtime_env"}


def _check_options(opts):
    unknown = set(opts) - _OPTIONS
    if unknown:
        raise ValueError("unknown option(s) %s; raysub takes %s" % (", ".join(sorted(unknown)), ", ".join(sorted(_OPTIONS))))
    gpus = opts.get("num_gpus") or 0
    if gpus > 1 and int(gpus) != gpus:
        raise ValueError("num_gpus above 1 must be a whole number")


def _pack_args(args, kwargs):
    deps = []
    seen = set()

    def swap(a):
        if isinstance(a, ObjectRef):
            if a.id not in seen:
                seen.add(a.id)
                deps.append({"id": a.id, "owner": a.owner})
            return _Dep(a.id)
        return a

    args = tuple(swap(a) for a in args)
    kwargs = {k: swap(v) for k, v in kwargs.items()}
    return pickle.dumps((args, kwargs), protocol=5), deps


def _submit(kind, fn, name, opts, default_cpus, default_retries, args, kwargs, actor_id=None, method=None, task_id=None):
    c = _connection()
    data, deps = _pack_args(args, kwargs)
    tid = task_id or _new_id()
    retries = opts.get("max_retries")
    spec = {
        "id": tid,
        "kind": kind,
        "fn": fn,
        "name": name,
        "resources": _resources(opts, default_cpus),
        "max_retries": default_retries if retries is None else int(retries),
        "retry_exceptions": bool(opts.get("retry_exceptions", False)),
        "deps": deps,
        "args_len": len(data),
    }
    if actor_id is not None:
        spec["actor_id"] = actor_id
    if method is not None:
        spec["method"] = method
    c.submit(spec, data)
    return ObjectRef(tid, c.node_id)


class RemoteFunction:
    def __init__(self, function, options):
        _check_options(options)
        self._function = function
        self._options = options
        self._fn = None
        self.__name__ = getattr(function, "__name__", "task")
        self.__qualname__ = getattr(function, "__qualname__", self.__name__)
        self.__module__ = getattr(function, "__module__", None)
        self.__doc__ = getattr(function, "__doc__", None)

    def __call__(self, *a, **k):
        raise TypeError("remote function %s cannot be called directly; use %s.remote(...)" % (self.__name__, self.__name__))

    def __reduce__(self):
        return (_load_remote, (_fn_ref(self._function, "function"), self._options))

    def options(self, **opts):
        merged = dict(self._options)
        merged.update(opts)
        return RemoteFunction(self._function, merged)

    def remote(self, *args, **kwargs):
        if self._fn is None:
            self._fn = _fn_ref(self._function, "function")
        return _submit("task", self._fn, self._options.get("name") or self.__name__, self._options, 1, 3, args, kwargs)


def _load_remote(ref, options):
    from ._loader import load_function

    return RemoteFunction(load_function(ref), options)


class ActorMethod:
    def __init__(self, handle, name):
        self._handle = handle
        self._name = name

    def remote(self, *args, **kwargs):
        h = self._handle
        return _submit("actor_call", h._fn, "%s.%s" % (h._class_name, self._name), {"num_cpus": 0}, 0, 0, args, kwargs, actor_id=h._actor_id, method=self._name)

    def __call__(self, *a, **k):
        raise TypeError("actor methods cannot be called directly; use handle.%s.remote(...)" % self._name)


class ActorHandle:
    def __init__(self, actor_id, owner, fn, class_name):
        self._actor_id = actor_id
        self._owner = owner
        self._fn = fn
        self._class_name = class_name

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return ActorMethod(self, name)

    def __reduce__(self):
        return (ActorHandle, (self._actor_id, self._owner, self._fn, self._class_name))

    def __repr__(self):
        return "ActorHandle(%s, %s)" % (self._class_name, self._actor_id)


class ActorClass:
    def __init__(self, cls, options):
        _check_options(options)
        self._cls = cls
        self._options = options
        self.__name__ = cls.__name__
        self.__qualname__ = cls.__qualname__
        self.__module__ = cls.__module__
        self.__doc__ = cls.__doc__

    def __call__(self, *a, **k):
        raise TypeError("actor class %s cannot be instantiated directly; use %s.remote(...)" % (self.__name__, self.__name__))

    def options(self, **opts):
        merged = dict(self._options)
        merged.update(opts)
        return ActorClass(self._cls, merged)

    def remote(self, *args, **kwargs):
        fn = _fn_ref(self._cls, "class")
        actor_id = _new_id()
        ref = _submit("actor_create", fn, "%s.__init__" % self.__name__, self._options, 0, 0, args, kwargs, actor_id=actor_id, task_id=actor_id)
        return ActorHandle(actor_id, ref.owner, fn, self.__name__)


def remote(*args, **options):
    """`@remote` or `@remote(num_cpus=..., num_gpus=..., memory=..., resources=..., max_retries=...)`."""
    if len(args) == 1 and not options and callable(args[0]):
        target = args[0]
        return ActorClass(target, {}) if isinstance(target, type) else RemoteFunction(target, {})
    if args:
        raise TypeError("use @raysub.remote or @raysub.remote(option=value, ...)")

    def wrap(target):
        return ActorClass(target, options) if isinstance(target, type) else RemoteFunction(target, options)

    return wrap


def method(**_opts):
    """Accepted for compatibility (`@ray.method(num_returns=1)`); has no effect."""

    def wrap(f):
        return f

    return wrap


def kill(handle, no_restart=True):
    """Kill an actor: its process ends, and its pending and future calls fail with ActorDiedError."""
    if not isinstance(handle, ActorHandle):
        raise TypeError("kill() takes an actor handle")
    c = _connection()
    c.flush()
    c.send({"t": "kill_actor", "actor": {"id": handle._actor_id, "owner": handle._owner}})

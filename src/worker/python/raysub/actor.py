"""Actors: `@remote` on a class, `Cls.remote()` to start one (a dedicated worker process holding
the instance), handles whose methods are called with `.remote()`, `method`, `exit_actor`."""

import inspect

from . import _cluster, _context, _options, _refcount, _submit
from ._refs import new_id
from .remote_function import _Remote, _env_vars

# Calls every actor understands, as in Ray.
_BUILTIN_METHODS = ("__ray_ready__", "__ray_terminate__")


def method(*args, **kwargs):
    """`@method(num_returns=..., concurrency_group=..., max_task_retries=..., retry_exceptions=...)`
    on an actor method (or bare `@method`)."""

    def annotate(m):
        _options.method_options(kwargs)
        m.__ray_method_options__ = dict(kwargs)
        if "num_returns" in kwargs:
            m.__ray_num_returns__ = kwargs["num_returns"]
        if "concurrency_group" in kwargs:
            m.__ray_concurrency_group__ = kwargs["concurrency_group"]
        return m

    if len(args) == 1 and callable(args[0]) and not kwargs:
        return annotate(args[0])
    assert not args, "The @ray.method decorator must be applied using no arguments or at least one keyword argument, for example '@ray.method(num_returns=2)'."
    return annotate


def _method_table(cls):
    """Each public method's options (from `@method`) and whether it is a coroutine."""
    table = {}
    for name, fn in inspect.getmembers(cls, predicate=lambda x: inspect.isfunction(x) or inspect.ismethod(x)):
        if name.startswith("__") and name.endswith("__") and name != "__call__":
            continue
        opts = dict(getattr(fn, "__ray_method_options__", {}))
        if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
            opts["_async"] = True
        if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
            opts["_gen"] = True
        table[name] = opts
    return table


class ActorMethod:
    """`handle.method`: call it with `.remote()`."""

    def __init__(self, handle, name, options=None):
        self._handle = handle
        self._name = name
        self._call_options = options or {}

    def remote(self, *args, **kwargs):
        h = self._handle
        opts = dict(h._methods.get(self._name, {}))
        opts.update(self._call_options)
        name = opts.get("name") or "%s.%s" % (h._class_name, self._name)
        req = {"cpus": 0.0, "gpus": 0.0, "memory": 0, "custom": {}}
        nr, extra, spec = _submit.returns_meta(opts, bool(opts.get("_gen")))
        retries = opts.get("max_task_retries", h._task_retries)
        ref = _submit.submit("actor_call", (h._fn, None), name, {"max_retries": retries, "retry_exceptions": opts.get("retry_exceptions", False)},
                             req, 0, args, kwargs, actor_id=h._actor_id, method=self._name, extra=extra, spec_extra=spec)
        return _submit.returns(ref, nr)

    def options(self, **options):
        _options.method_options(options)
        return ActorMethod(self._handle, self._name, dict(self._call_options, **options))

    def bind(self, *args, **kwargs):
        raise NotImplementedError("Ray DAGs (.bind()) are not supported by raysub: call .remote()")

    def __call__(self, *args, **kwargs):
        raise TypeError("Actor methods cannot be called directly. Instead of running 'object.%s()', try 'object.%s.remote()'." % (self._name, self._name))


class ActorHandle:
    """A handle to an actor: pass it to tasks and other actors; call its methods with `.remote()`.
    When the process that started an actor holds no handle to it any more (and none escaped to
    other processes), the actor ends once its queued calls have run, as in Ray."""

    def __init__(self, actor_id, owner, fn, class_name, methods=None, task_retries=0, counted=True):
        self._actor_id = actor_id
        self._owner = owner
        self._fn = fn
        self._class_name = class_name
        self._methods = methods if methods is not None else {}
        self._task_retries = task_retries
        self._counted = counted
        if counted:
            _refcount.add(("a", actor_id))

    def __del__(self):
        if self.__dict__.get("_counted"):
            _refcount.drop(("a", self._actor_id))

    def __getattr__(self, name):
        if name.startswith("_") and name not in _BUILTIN_METHODS:
            raise AttributeError(name)
        methods = self.__dict__.get("_methods") or {}
        if methods and name not in methods and name not in _BUILTIN_METHODS:
            raise AttributeError("'ActorHandle' object has no attribute '%s'" % name)
        return ActorMethod(self, name)

    def __reduce__(self):
        _refcount.escaped(("a", self._actor_id))
        return (ActorHandle, (self._actor_id, self._owner, self._fn, self._class_name, self._methods, self._task_retries))

    def __eq__(self, other):
        return isinstance(other, ActorHandle) and other._actor_id == self._actor_id

    def __hash__(self):
        return hash(self._actor_id)

    def __repr__(self):
        return "Actor(%s, %s)" % (self._class_name, self._actor_id)

    @property
    def _ray_actor_id(self):
        return self._actor_id


class ActorClass(_Remote):
    """A class whose instances are actors: `Cls.remote(*args)` starts one and returns its handle."""

    _check_options = staticmethod(_options.actor_options)

    @property
    def _raysub_wrapped(self):
        """What a worker creates for it (_submit.load)."""
        return self._cls

    def __init__(self, cls, options):
        _options.actor_options(options)
        self._cls = cls
        self._options = dict(options)
        self._env_vars = _env_vars(options, "@remote")
        self._export = None
        self._methods = _method_table(cls)
        self.__name__ = cls.__name__
        self.__qualname__ = cls.__qualname__
        self.__module__ = cls.__module__
        self.__doc__ = cls.__doc__

    def __call__(self, *args, **kwargs):
        raise TypeError("Actors cannot be instantiated directly. Instead of '%s()', use '%s.remote()'." % (self.__name__, self.__name__))

    def _remote(self, opts, env_vars, args, kwargs):
        export = self._export or _submit.export(self, self._cls, "class")
        c = _context.connection()
        actor_id = new_id()
        is_async = any(m.get("_async") for m in self._methods.values())
        concurrency = opts.get("max_concurrency") or (1000 if is_async else 1)
        task_retries = opts.get("max_task_retries") or 0
        handle = ActorHandle(actor_id, c.node_id, export[0], self.__name__, self._methods, task_retries)
        name = opts.get("name")
        if name:
            existing = _cluster.register_actor(handle, name, opts.get("namespace"), bool(opts.get("get_if_exists")), opts.get("lifetime") == "detached")
            if existing is not None:
                return existing
        elif opts.get("lifetime") != "detached":
            _refcount.made(("a", actor_id))
        req = _options.resources(opts, 0)
        meta = {"actor": {"name": name, "class": self.__name__, "concurrency": concurrency, "async": is_async}}
        spec = {"max_concurrency": concurrency, "max_restarts": opts.get("max_restarts") or 0}
        where, where_meta = _submit.placement(opts)
        spec.update(where)
        meta.update(where_meta)
        _submit.submit("actor_create", export, "%s.__init__" % self.__name__, opts, req, 0, args, kwargs, env_vars,
                       actor_id=actor_id, task_id=actor_id, extra=meta, spec_extra=spec)
        return handle

    def __reduce__(self):
        state = {"options": self._options, "env": self._env_vars, "methods": self._methods,
                 "names": (self.__name__, self.__qualname__, self.__module__)}
        export = _submit.export_if_connected(self, self._cls, "class")
        if export is not None:
            state["export"] = export
        else:
            state["cls"] = self._cls
        return (_rebuild, (), state)

    def __setstate__(self, state):
        self._cls = state.get("cls")
        self._options = state["options"]
        self._env_vars = state.get("env")
        self._methods = state["methods"]
        self._export = state.get("export")
        self.__name__, self.__qualname__, self.__module__ = state["names"]
        self.__doc__ = None


def _rebuild():
    return ActorClass.__new__(ActorClass)


class _ActorExit(SystemExit):
    """Raised by exit_actor(): the worker ends the actor's process after this call."""


def exit_actor():
    """End the actor this is called in: the current call fails with ActorDiedError, as do calls
    queued behind it."""
    if _context.in_worker and _context.process_actor["id"] is not None:
        raise _ActorExit("exit_actor() is called.")
    raise TypeError("exit_actor API is called on a non-actor worker. Call this API inside an actor methods if you'd like to exit the actor gracefully.")


def kill(actor, *, no_restart=True):
    """Kill an actor: its process ends, and its pending and later calls fail with ActorDiedError
    (with `no_restart=False`, an actor with restarts left is restarted instead)."""
    if not isinstance(actor, ActorHandle):
        raise ValueError("ray.kill() only supported for actors. For tasks, try ray.cancel(). Got: %s." % type(actor))
    c = _context.connection()
    c.flush()
    msg = {"t": "kill_actor", "actor": {"id": actor._actor_id, "owner": actor._owner}}
    if not no_restart:
        msg["restart"] = True
    c.send(msg)

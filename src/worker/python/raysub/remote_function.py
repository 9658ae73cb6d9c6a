"""Remote functions: `@remote` on a function, `.remote()` to run it as a task, `.options()`."""

import inspect

from . import _options, _runtime_env, _submit


def _env_vars(opts, where):
    re = opts.get("runtime_env")
    return _runtime_env.check(re, where) if re is not None else None


class _Remote:
    """What remote functions and actor classes share: `.remote()`, `.options()`, no `.bind()`."""

    _check_options = None

    def options(self, **options):
        """The same, with other options for the calls made through what this returns."""
        type(self)._check_options(options, in_options=True)
        merged = dict(self._options)
        merged.update(options)
        return _WithOptions(self, merged, _env_vars(options, ".options()") if "runtime_env" in options else self._env_vars)

    def remote(self, *args, **kwargs):
        return self._remote(self._options, self._env_vars, args, kwargs)

    def bind(self, *args, **kwargs):
        raise NotImplementedError("Ray DAGs (.bind()) are not supported by raysub: call .remote() and pass ObjectRefs between tasks")


class RemoteFunction(_Remote):
    """A function that runs as a task: `f.remote(*args)` returns an ObjectRef at once."""

    _check_options = staticmethod(_options.task_options)

    @property
    def _raysub_wrapped(self):
        """What a worker runs for it (_submit.load)."""
        return self._function

    def __init__(self, function, options):
        _options.task_options(options)
        self._function = function
        self._options = dict(options)
        self._env_vars = _env_vars(options, "@remote")
        self._export = None
        self._is_gen = inspect.isgeneratorfunction(function) or inspect.isasyncgenfunction(function)
        self._name = getattr(function, "__name__", "task")
        self.__name__ = self._name
        self.__qualname__ = getattr(function, "__qualname__", self._name)
        self.__module__ = getattr(function, "__module__", None)
        self.__doc__ = getattr(function, "__doc__", None)
        self.__wrapped__ = function

    def __call__(self, *args, **kwargs):
        qual = "%s.%s" % (self.__module__, self._name)
        raise TypeError("Remote functions cannot be called directly. Instead of running '%s()', try '%s.remote()'." % (qual, qual))

    def _remote(self, opts, env_vars, args, kwargs):
        export = self._export or _submit.export(self, self._function, "function")
        req = _options.resources(opts, 1)
        nr, extra, spec = _submit.returns_meta(opts, self._is_gen)
        where, where_meta = _submit.placement(opts)
        spec.update(where)
        extra.update(where_meta)
        ref = _submit.submit("task", export, opts.get("name") or self._name, opts, req, 3, args, kwargs, env_vars, extra=extra, spec_extra=spec)
        return _submit.returns(ref, nr)

    def __reduce__(self):
        state = {"options": self._options, "name": self._name, "qualname": self.__qualname__, "module": self.__module__, "env": self._env_vars,
                 "gen": self._is_gen}
        export = _submit.export_if_connected(self, self._function, "function")
        if export is not None:
            state["export"] = export
        else:
            state["function"] = self._function
        return (_rebuild, (), state)

    def __setstate__(self, state):
        self._function = state.get("function")
        self._options = state["options"]
        self._env_vars = state.get("env")
        self._export = state.get("export")
        self._is_gen = state.get("gen", False)
        self._name = state["name"]
        self.__name__ = state["name"]
        self.__qualname__ = state["qualname"]
        self.__module__ = state["module"]
        self.__doc__ = None
        self.__wrapped__ = self._function

    def __repr__(self):
        return "<raysub.remote_function.RemoteFunction %s.%s>" % (self.__module__, self.__qualname__)


def _rebuild():
    return RemoteFunction.__new__(RemoteFunction)


class _WithOptions:
    """What `.options()` of a remote function or an actor class returns: `.remote()` with those
    options."""

    def __init__(self, parent, options, env_vars):
        self._parent = parent
        self._options = options
        self._env_vars = env_vars

    def remote(self, *args, **kwargs):
        return self._parent._remote(self._options, self._env_vars, args, kwargs)

    def options(self, **options):
        return self._parent.options(**dict(self._options, **options))

    def bind(self, *args, **kwargs):
        return self._parent.bind(*args, **kwargs)

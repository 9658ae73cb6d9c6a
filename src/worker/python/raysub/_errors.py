"""Exceptions raised by raysub's in-job API."""


class RaysubError(Exception):
    """Base of every error raysub itself raises."""


class GetTimeoutError(RaysubError, TimeoutError):
    """`get` gave up before the objects were ready."""


class ActorDiedError(RaysubError):
    """The actor is dead (killed, crashed, or its constructor failed); its calls cannot run."""


class WorkerCrashedError(RaysubError):
    """The worker process running the task died, and the task had no retries left."""


class ObjectLostError(RaysubError):
    """An object could not be retrieved (its node is gone, or the job ended)."""


class TaskError(RaysubError):
    """A task raised an exception. `get` raises it with the remote traceback; it is also an
    instance of the original exception's class where that class allows it."""

    def __init__(self, function_name, traceback_str, cause=None, cause_type=""):
        self.function_name = function_name
        self.traceback_str = traceback_str
        self.cause = cause
        self.cause_type = cause_type
        super().__init__(self._message())

    def _message(self):
        return "task %s failed:\n\n%s" % (self.function_name, self.traceback_str.rstrip() or self.cause_type)

    def __str__(self):
        return self._message()


_SYSTEM = {
    "ActorDiedError": ActorDiedError,
    "WorkerCrashedError": WorkerCrashedError,
    "ObjectLostError": ObjectLostError,
}


def make_error(info, cause):
    """The exception a `get` raises for a failed object."""
    kind = _SYSTEM.get(info.get("type", ""))
    if kind is not None:
        return kind(info.get("message", ""))
    name = info.get("task", "") or "?"
    tb = info.get("traceback", "") or ("%s: %s" % (info.get("type", ""), info.get("message", "")))
    if isinstance(cause, TaskError):
        return cause
    if isinstance(cause, BaseException) and not isinstance(cause, RaysubError):
        cls = type(cause)
        try:
            # As Ray does: the error is also an instance of the task's own exception class.
            dual = type("TaskError(%s)" % cls.__name__, (TaskError, cls), {"__module__": __name__})
            err = dual.__new__(dual)
            err.__dict__.update(getattr(cause, "__dict__", {}))
            err.args = cause.args
            TaskError.__init__(err, name, tb, cause, cls.__name__)
            return err
        except TypeError:
            pass
    return TaskError(name, tb, cause, info.get("type", ""))

"""Exceptions of the in-job API, with Ray's names and hierarchy (`ray.exceptions`), so code that
catches Ray's errors catches raysub's.

`get` on a failed task raises `RayTaskError` made an instance of the task's own exception class as
well (`RayTaskError(KeyError)`), so `except KeyError:` works; `.cause` is the original exception.
Errors raysub itself detects (a dead actor, a crashed worker, a lost object, a timeout, a
cancellation) have their own classes below."""

import os

from ._traceback import ip as _ip, strip_internal as _strip_internal


class RayError(Exception):
    """Base of every error the in-job API raises."""


RaysubError = RayError


class CrossLanguageError(RayError):
    """Raised from another language."""


class TaskCancelledError(RayError):
    """The task was cancelled (`cancel`)."""

    def __init__(self, task_id=None, error_message=None):
        self.task_id = task_id
        self.error_message = error_message

    def __str__(self):
        msg = "Task: %s was cancelled. " % self.task_id if self.task_id else ""
        return msg + (self.error_message or "")


class RayTaskError(RayError):
    """A task raised an exception. `str()` is the remote traceback, headed by where it ran."""

    def __init__(self, function_name, traceback_str, cause, proctitle=None, pid=None, ip=None, actor_repr=None, actor_id=None):
        self.function_name = function_name
        self.traceback_str = traceback_str
        self.cause = cause
        self.proctitle = proctitle or "ray::%s" % function_name
        self.pid = pid or os.getpid()
        self.ip = ip or _ip()
        self.actor_repr = actor_repr
        self._actor_id = actor_id
        self.args = (function_name, traceback_str, cause, proctitle, pid, ip)

    def __str__(self):
        out = []
        for line in _strip_internal(self.traceback_str or ""):
            if line.startswith("Traceback "):
                head = "%s() (pid=%s, ip=%s" % (self.proctitle, self.pid, self.ip)
                head += ", actor_id=%s, repr=%s)" % (self._actor_id, self.actor_repr) if self.actor_repr else ")"
                out.append(head)
            else:
                out.append(line)
        return "\n".join(out)

    def as_instanceof_cause(self):
        """This error as an instance of both RayTaskError and the cause's class (or itself, when
        that class cannot be subclassed)."""
        cause = self.cause
        if not isinstance(cause, BaseException) or issubclass(RayTaskError, type(cause)):
            return self
        try:
            return _dual(self)
        except Exception:  # noqa: BLE001 - a class that refuses subclassing: the plain error it is
            return self


_FIELDS = ("function_name", "traceback_str", "proctitle", "pid", "ip", "actor_repr", "_actor_id")


def _dual(err):
    cause_cls = type(err.cause)
    message = str(err)
    fields = tuple(getattr(err, k) for k in _FIELDS)

    class cls(RayTaskError, cause_cls):
        def __init__(self, cause):
            self.__dict__["cause"] = cause
            self._ray_task_error_args = (cause,)
            self.__dict__.update(zip(_FIELDS, fields))

        @property
        def args(self):
            return self._ray_task_error_args

        @args.setter
        def args(self, value):
            self._ray_task_error_args = value

        def __reduce__(self):
            return (_rebuild_dual, (self.cause, fields))

        def __getattr__(self, name):
            if name == "cause":
                raise AttributeError(name)
            return getattr(self.cause, name)

        def __str__(self):
            return message

    name = "RayTaskError(%s)" % cause_cls.__name__
    cls.__name__ = cls.__qualname__ = name
    return cls(err.cause)


def _rebuild_dual(cause, fields):
    function_name, traceback_str, proctitle, pid, ip, actor_repr, actor_id = fields
    return RayTaskError(function_name, traceback_str, cause, proctitle, pid, ip, actor_repr, actor_id).as_instanceof_cause()


class LocalRayletDiedError(RayError):
    """The task's local agent went away."""


def _message_error(default=""):
    """Give a RayError class a message raysub writes (Ray's constructors for these take internal
    data), keeping Ray's class hierarchy exactly (no extra base class)."""

    def wrap(cls):
        def __init__(self, message=None, *args):
            self._message = message
            RayError.__init__(self, *((message,) + args if message is not None else args))

        def __str__(self):
            return self._message if isinstance(self._message, str) and self._message else default

        cls.__init__ = __init__
        cls.__str__ = __str__
        return cls

    return wrap


@_message_error("The worker died unexpectedly while executing this task.")
class WorkerCrashedError(RayError):
    """The worker process running the task died, and the task had no retries left."""


class RayActorError(RayError):
    """The actor failed before finishing this call (it died, or is unavailable for now)."""

    BASE_ERROR_MSG = "The actor experienced an error before finishing this task."

    def __init__(self, actor_id=None, error_msg=BASE_ERROR_MSG, actor_init_failed=False, preempted=False):
        self.actor_id = actor_id
        self.error_msg = error_msg
        self._actor_init_failed = actor_init_failed
        self._preempted = preempted

    def __str__(self):
        return self.error_msg

    @property
    def preempted(self):
        return self._preempted

    @property
    def actor_init_failed(self):
        return self._actor_init_failed


class ActorDiedError(RayActorError):
    """The actor is dead (killed, crashed, exited, or its constructor failed)."""

    BASE_ERROR_MSG = "The actor died unexpectedly before finishing this task."

    def __init__(self, cause=None):
        if isinstance(cause, RayTaskError):
            super().__init__(cause._actor_id, "The actor died because of an error raised in its creation task, %s" % cause, True)
        elif isinstance(cause, str):
            super().__init__(None, cause)
        else:
            super().__init__(None, ActorDiedError.BASE_ERROR_MSG)
        self.args = (cause,)

    @staticmethod
    def from_task_error(task_error):
        return ActorDiedError(task_error)


class ActorUnavailableError(RayActorError):
    """The actor cannot be reached for now; the call may or may not have run."""

    def __init__(self, error_message, actor_id=None):
        super().__init__(actor_id, "The actor %s is unavailable: %s. The task may or may not have been executed on the actor." % (actor_id, error_message))
        self.args = (error_message, actor_id)


class RaySystemError(RayError):
    """raysub itself failed."""

    def __init__(self, client_exc, traceback_str=None):
        self.client_exc = client_exc
        self.traceback_str = traceback_str

    def __str__(self):
        return "System error: %s%s" % (self.client_exc, "\ntraceback: %s" % self.traceback_str if self.traceback_str else "")


@_message_error()
class AuthenticationError(RayError):
    """The agent refused this process's token."""


class UserCodeException(RayError):
    """Wraps an exception raised by user code."""


@_message_error()
class ObjectStoreFullError(RayError):
    """The object store is full."""


@_message_error()
class OutOfDiskError(RayError):
    """The disk is full."""


@_message_error()
class OutOfMemoryError(RayError):
    """The task or its node ran out of memory."""


@_message_error()
class NodeDiedError(RayError):
    """The node is dead or unreachable."""


class ObjectLostError(RayError):
    """An object could not be retrieved (its node is gone, its owner is gone, or the job ended)."""

    def __init__(self, object_ref_hex="", owner_address=None, call_site="", message=None):
        self.object_ref_hex = object_ref_hex
        self.owner_address = owner_address
        self.call_site = call_site
        self._message = message

    def _base_str(self):
        return "Failed to retrieve object %s. " % self.object_ref_hex

    def __str__(self):
        return self._message or self._base_str() + "All copies of %s have been lost." % self.object_ref_hex


class ObjectFetchTimedOutError(ObjectLostError):
    """Fetching an object timed out."""


@_message_error()
class RpcError(RayError):
    """A call between raysub's processes failed."""


class ReferenceCountingAssertionError(ObjectLostError, AssertionError):
    """An object was deleted while a reference to it remained."""


class ObjectFreedError(ObjectLostError):
    """The object was freed explicitly."""


class OwnerDiedError(ObjectLostError):
    """The process that owned the object has exited."""


class ObjectReconstructionFailedError(ObjectLostError):
    """The object cannot be made again."""


class GetTimeoutError(RayError, TimeoutError):
    """`get` gave up before the objects were ready."""


class PlasmaObjectNotAvailable(RayError):
    """An object was not available within the given timeout."""


class AsyncioActorExit(RayError):
    """An async actor exits through `exit_actor()`."""


class RuntimeEnvSetupError(RayError):
    """A runtime environment could not be set up."""

    def __init__(self, error_message=None):
        self.error_message = error_message

    def __str__(self):
        return "\n".join(["Failed to set up runtime environment."] + ([self.error_message] if self.error_message else []))


class TaskPlacementGroupRemoved(RayError):
    def __str__(self):
        return "The placement group corresponding to this task has been removed."


class ActorPlacementGroupRemoved(RayError):
    def __str__(self):
        return "The placement group corresponding to this Actor has been removed."


class PendingCallsLimitExceeded(RayError):
    """More calls wait for an actor than its `max_pending_calls`."""


class TaskUnschedulableError(RayError):
    """No node can ever run the task as asked."""

    def __init__(self, error_message):
        self.error_message = error_message

    def __str__(self):
        return "The task is not schedulable: %s" % self.error_message


class ActorUnschedulableError(RayError):
    """No node can ever hold the actor as asked."""

    def __init__(self, error_message):
        self.error_message = error_message

    def __str__(self):
        return "The actor is not schedulable: %s" % self.error_message


class ObjectRefStreamEndOfStreamError(RayError):
    """A generator task has no more objects."""


class UnserializableException(RayError):
    """A task's exception could not be unpickled where it was caught; its text is kept."""

    def __init__(self, original_stack_trace):
        self._original_stack_trace = original_stack_trace

    def __str__(self):
        return "Failed to deserialize exception.\nOriginal exception:\n%s" % self._original_stack_trace


class ActorAlreadyExistsError(ValueError, RayError):
    """A named actor with this name already exists in the namespace."""

    def __init__(self, error_message):
        super().__init__(error_message)
        self.error_message = error_message

    def __str__(self):
        return self.error_message


class ActorHandleNotFoundError(ValueError, RayError):
    """The actor handle does not name an actor of this job."""

    def __init__(self, error_message):
        super().__init__(error_message)
        self.error_message = error_message

    def __str__(self):
        return self.error_message


class RaysubNotSupportedError(ImportError, NotImplementedError):
    """A part of Ray that raysub does not provide (Ray Data, Tune, Train, Serve, Ray Client, ...).
    Also an ImportError, so `try: import ray.data / except ImportError:` probes keep working."""


# Compatibility names of raysub's earlier in-job API.
TaskError = RayTaskError

RAY_EXCEPTION_TYPES = [
    PlasmaObjectNotAvailable, RayError, RayTaskError, WorkerCrashedError, RayActorError, ObjectStoreFullError,
    ObjectLostError, ObjectFetchTimedOutError, ReferenceCountingAssertionError, ObjectReconstructionFailedError,
    OwnerDiedError, GetTimeoutError, AsyncioActorExit, RuntimeEnvSetupError, TaskPlacementGroupRemoved,
    ActorPlacementGroupRemoved, PendingCallsLimitExceeded, LocalRayletDiedError, TaskUnschedulableError,
    ActorUnschedulableError, ActorUnavailableError, RaySystemError, ActorDiedError, TaskCancelledError,
    OutOfMemoryError, OutOfDiskError, NodeDiedError, ObjectFreedError,
]

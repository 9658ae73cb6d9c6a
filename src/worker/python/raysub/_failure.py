"""Failed objects: the error a task's failure becomes where it is read, and the bytes a worker
sends for a task that raised."""

import os
import traceback

from . import _serialization, exceptions


def task_failure(name, e, actor=None):
    """(info, bytes) a worker reports for a task that raised `e`: the bytes are a pickled
    RayTaskError holding the exception itself (or, if that cannot be pickled, its text)."""
    # The first frame is the worker's own loop: the user's traceback starts below it.
    tb = "".join(traceback.format_exception(type(e), e, e.__traceback__.tb_next if e.__traceback__ else None))
    info = {"type": type(e).__name__, "message": str(e)[:100000], "traceback": tb[-200000:], "task": name}
    # A task that let another task's error through: the cause stays the original exception (as in Ray).
    cause = e.cause if isinstance(e, exceptions.RayTaskError) and isinstance(e.cause, BaseException) else e
    try:
        _serialization.decode(_serialization.encode(cause))
    except Exception as pe:  # noqa: BLE001 - any exception may refuse pickling
        cause = exceptions.RayError("Exception %s.%s isn't serializable: %s.\nOriginal exception details:\n%s" % (type(e).__module__, type(e).__name__, pe, tb))
    err = exceptions.RayTaskError(name, tb, cause, pid=os.getpid(), actor_repr=actor and actor.get("repr"), actor_id=actor and actor.get("id"))
    try:
        data = _serialization.encode(err)
    except Exception:  # noqa: BLE001
        data = b""
    return info, data


def _system(info, ref_id):
    kind = info.get("type", "")
    msg = info.get("message", "") or kind
    task = info.get("task", "") or ""
    if kind == "ActorDiedError":
        return exceptions.ActorDiedError(msg)
    if kind == "ActorUnavailableError":
        return exceptions.ActorUnavailableError(msg)
    if kind == "TaskPlacementGroupRemoved":
        return exceptions.ActorPlacementGroupRemoved(msg) if task.endswith(".__init__") else exceptions.TaskPlacementGroupRemoved(msg)
    if kind == "WorkerCrashedError":
        return exceptions.WorkerCrashedError(msg)
    if kind in ("ObjectLostError", "OwnerDiedError", "ObjectFreedError"):
        return getattr(exceptions, kind)(ref_id or "", None, "", msg)
    if kind in ("UnschedulableError", "TaskUnschedulableError", "ActorUnschedulableError"):
        return exceptions.ActorUnschedulableError(msg) if task.endswith(".__init__") else exceptions.TaskUnschedulableError(msg)
    if kind == "TaskCancelledError":
        return exceptions.TaskCancelledError(ref_id, msg)
    if kind in ("OutOfMemoryError", "NodeDiedError", "ObjectStoreFullError", "OutOfDiskError", "RpcError"):
        return getattr(exceptions, kind)(msg)
    if kind == "RuntimeEnvSetupError":
        return exceptions.RuntimeEnvSetupError(msg)
    return exceptions.RaySystemError(msg)


def error_of(info, data, ref_id=None):
    """The exception `get` raises for a failed object."""
    info = info or {}
    if not data and not info.get("traceback"):
        return _system(info, ref_id)
    err = None
    if data:
        try:
            err = _serialization.decode(data)
        except Exception:  # noqa: BLE001 - the exception's class may not import here
            err = None
    if isinstance(err, exceptions.RayTaskError):
        return err.as_instanceof_cause()
    if isinstance(err, BaseException):
        return err
    name = info.get("task", "") or "task"
    tb = info.get("traceback", "") or "%s: %s" % (info.get("type", ""), info.get("message", ""))
    return exceptions.RayTaskError(name, tb, exceptions.UnserializableException(tb))
